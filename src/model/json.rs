//! Reads JSON a piece at a time from a byte slice, without allocating.
//!
//! Enough for the state file, the feedback configuration (whose errors must
//! name the field, which a derived deserializer cannot do) and picking one
//! top-level field out of a health URL's body. Strings are returned raw,
//! escapes left in place; `unescape` decodes one when text is wanted.

/// The deepest nesting skipped over.
const DEPTH_MAX: u8 = 32;

/// The bare words JSON has besides numbers.
const BARE_WORDS: [&[u8]; 3] = [b"true", b"false", b"null"];

/// What was wrong with the JSON text.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Syntax(pub &'static str);

/// A position in a JSON text.
pub struct Reader<'a> {
    s: &'a [u8],
    i: usize,
}

/// A scalar or string value, as its text.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Token<'a> {
    /// A string's raw content, between the quotes.
    Str(&'a [u8]),
    /// A number, `true`, `false` or `null`, as written.
    Bare(&'a [u8]),
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `s`.
    pub fn new(s: &'a [u8]) -> Reader<'a> {
        Reader { s, i: 0 }
    }

    /// Skips whitespace and returns the next byte, without taking it.
    pub fn peek(&mut self) -> Option<u8> {
        while let Some(&c) = self.s.get(self.i) {
            if !c.is_ascii_whitespace() {
                return Some(c);
            }
            self.i += 1;
        }
        None
    }

    /// Takes the byte `c` after any whitespace, or fails with `what`.
    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), Syntax> {
        if self.peek() != Some(c) {
            return Err(Syntax(what));
        }
        self.i += 1;
        Ok(())
    }

    /// Tells how far into the text the reader is.
    pub fn pos(&self) -> usize {
        self.i
    }

    /// Returns the text from `start` (a `pos`) to where the reader is now.
    pub fn since(&self, start: usize) -> &'a [u8] {
        &self.s[start.min(self.i)..self.i]
    }

    /// Starts reading an object (`open` is `{`) or an array (`[`): consumes the opening byte.
    pub fn open(&mut self, open: u8) -> Result<(), Syntax> {
        let what = if open == b'{' {
            "expected an object"
        } else {
            "expected an array"
        };
        self.expect(open, what)
    }

    /// Moves to the next member of the object being read and returns its key,
    /// or `None` after the closing `}`. `first` starts true for each object.
    pub fn next_key(&mut self, first: &mut bool) -> Result<Option<&'a [u8]>, Syntax> {
        if !self.next(b'}', first)? {
            return Ok(None);
        }
        let Token::Str(key) = self.token()? else {
            return Err(Syntax("expected a quoted key"));
        };
        self.expect(b':', "expected ':' after a key")?;
        Ok(Some(key))
    }

    /// Moves to the next item of the array being read; false after the closing `]`.
    pub fn next_item(&mut self, first: &mut bool) -> Result<bool, Syntax> {
        self.next(b']', first)
    }

    /// Consumes the `close` byte (`}` or `]`, false) or, after the first element, the comma before the next (true).
    fn next(&mut self, close: u8, first: &mut bool) -> Result<bool, Syntax> {
        if self.peek() == Some(close) {
            self.i += 1;
            return Ok(false);
        }
        if !core::mem::replace(first, false) {
            let what = if close == b'}' {
                "expected ',' or '}' in an object"
            } else {
                "expected ',' or ']' in an array"
            };
            self.expect(b',', what)?;
        }
        Ok(true)
    }

    /// Reads a string, number, `true`, `false` or `null`.
    pub fn token(&mut self) -> Result<Token<'a>, Syntax> {
        match self.peek() {
            Some(b'"') => {
                self.i += 1;
                let start = self.i;
                while self.i < self.s.len() {
                    match self.s[self.i] {
                        b'"' => {
                            self.i += 1;
                            return Ok(Token::Str(&self.s[start..self.i - 1]));
                        }
                        b'\\' => self.i += 2,
                        c if c < 0x20 => return Err(Syntax("control character in a string")),
                        _ => self.i += 1,
                    }
                }
                Err(Syntax("unterminated string"))
            }
            Some(c) if c == b'-' || c.is_ascii_alphanumeric() => {
                let start = self.i;
                while self.i < self.s.len()
                    && matches!(self.s[self.i], b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
                {
                    self.i += 1;
                }
                let t = &self.s[start..self.i];
                let number = c == b'-' || c.is_ascii_digit();
                if number || BARE_WORDS.contains(&t) {
                    Ok(Token::Bare(t))
                } else {
                    Err(Syntax("unknown bare word"))
                }
            }
            Some(b'{') | Some(b'[') => Err(Syntax("expected a string or a number")),
            _ => Err(Syntax("expected a value")),
        }
    }

    /// Skips one value of any kind, without recursion.
    pub fn skip(&mut self) -> Result<(), Syntax> {
        // One bit per open container, set for an object; `depth` are open.
        let mut objects: u64 = 0;
        let mut depth = 0;
        loop {
            if depth > DEPTH_MAX {
                return Err(Syntax("nested too deeply"));
            }
            let mut first = false;
            match self.peek() {
                Some(c @ (b'{' | b'[')) => {
                    self.i += 1;
                    objects = objects << 1 | (c == b'{') as u64;
                    depth += 1;
                    first = true;
                }
                _ => {
                    self.token()?;
                }
            }
            // Moves on to the next value, closing every container that ends first.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                let more = if objects & 1 == 1 {
                    self.next_key(&mut first)?.is_some()
                } else {
                    self.next_item(&mut first)?
                };
                if more {
                    break;
                }
                objects >>= 1;
                depth -= 1;
                first = false;
            }
        }
    }

    /// Checks that nothing but whitespace is left.
    pub fn end(&mut self) -> Result<(), Syntax> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(Syntax("bytes after the JSON value")),
        }
    }
}

/// Finds a top-level member of a JSON object and returns its value if it is a string or scalar.
pub fn top_field<'a>(body: &'a [u8], key: &[u8]) -> Option<Token<'a>> {
    let mut r = Reader::new(body);
    let mut found = None;
    let mut first = true;
    r.open(b'{').ok()?;
    while let Some(k) = r.next_key(&mut first).ok()? {
        if k == key && found.is_none() {
            found = Some(r.token().ok()?);
        } else {
            r.skip().ok()?;
        }
    }
    found
}

/// The letters that may follow a backslash, other than `u`.
const ESCAPES: [u8; 8] = *b"\"\\/bfnrt";
/// What each of `ESCAPES` stands for.
const ESCAPED: [u8; 8] = *b"\"\\/\x08\x0c\n\r\t";

/// Decodes the escapes of a raw string into `out`; returns false when it does
/// not fit or an escape is malformed. A `\\u` escape outside ASCII becomes the
/// byte 0x80, which callers that want printable ASCII refuse anyway.
pub fn unescape<const N: usize>(raw: &[u8], out: &mut heapless::Vec<u8, N>) -> bool {
    let mut i = 0;
    while i < raw.len() {
        let mut c = raw[i];
        i += 1;
        if c == b'\\' {
            let Some(&e) = raw.get(i) else { return false };
            i += 1;
            c = match e {
                b'u' => {
                    let Some(hex) = raw.get(i..i + 4) else {
                        return false;
                    };
                    i += 4;
                    let mut v = 0u32;
                    for &h in hex {
                        let Some(d) = (h as char).to_digit(16) else {
                            return false;
                        };
                        v = v * 16 + d;
                    }
                    if v < 0x80 {
                        v as u8
                    } else {
                        0x80
                    }
                }
                _ => match ESCAPES.iter().position(|&k| k == e) {
                    Some(k) => ESCAPED[k],
                    None => return false,
                },
            };
        }
        if out.push(c).is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_top_level_fields() {
        let body = br#"{"status":"ok","nested":{"queue":1,"a":[1,{"queue":2}]},"queue": 17.5 ,"s":"a\"b"}"#;
        assert_eq!(top_field(body, b"queue"), Some(Token::Bare(b"17.5")));
        assert_eq!(top_field(body, b"status"), Some(Token::Str(b"ok")));
        assert_eq!(top_field(body, b"s"), Some(Token::Str(br#"a\"b"#)));
        assert_eq!(top_field(body, b"missing"), None);
        assert_eq!(top_field(body, b"nested"), None);
        assert_eq!(top_field(b"[1,2]", b"queue"), None);
        assert_eq!(top_field(br#"{"queue":1"#, b"queue"), None);
        assert_eq!(top_field(br#"{"queue":tru}"#, b"queue"), None);
        assert_eq!(top_field(b"", b"queue"), None);
    }

    #[test]
    fn refuses_broken_json() {
        let mut deep = [b'['; 40];
        deep[39] = b']';
        assert!(Reader::new(&deep).skip().is_err());
        assert!(Reader::new(b"\"abc").skip().is_err());
        assert!(Reader::new(b"{1:2}").skip().is_err());
        assert!(Reader::new(b"{\"a\" 2}").skip().is_err());
        assert!(Reader::new(b"[1 2]").skip().is_err());
        let mut r = Reader::new(b"{} x");
        r.skip().unwrap();
        assert!(r.end().is_err());
        let mut r = Reader::new(b" {\"a\":[],\"b\":{}} \n");
        r.skip().unwrap();
        assert!(r.end().is_ok());
    }

    #[test]
    fn unescapes_strings() {
        let mut out: heapless::Vec<u8, 8> = heapless::Vec::new();
        assert!(unescape(br#"a\"b\\c\n\u0041"#, &mut out));
        assert_eq!(&out[..], b"a\"b\\c\nA");
        out.clear();
        assert!(unescape(br#"\b\f\r\t\/"#, &mut out));
        assert_eq!(&out[..], b"\x08\x0c\r\t/");
        out.clear();
        assert!(unescape(br#"\u00e9"#, &mut out));
        assert_eq!(&out[..], b"\x80");
        for bad in [
            &br#"\"#[..],
            br#"\x"#,
            br#"\u12"#,
            br#"\u12g4"#,
            b"123456789",
        ] {
            out.clear();
            assert!(!unescape(bad, &mut out), "{bad:?}");
        }
    }
}
