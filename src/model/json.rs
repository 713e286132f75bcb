//! Reads JSON a piece at a time from a byte slice, without allocating.
//!
//! Enough for the state file, the feedback configuration (whose errors must
//! name the field, which a derived deserializer cannot do) and picking one
//! top-level field out of a health URL's body. Strings are returned raw,
//! escapes left in place; `unescape` decodes one when text is wanted.
//!
//! # What is accepted
//!
//! Exactly JSON as RFC 8259 defines it, checked everywhere, including inside
//! values that are skipped: whitespace is space, tab, LF and CR only; numbers
//! follow the grammar (no `077`, `1.`, `-`, `+1`, `.5`); a string holds valid
//! UTF-8, no raw control character and only the escapes `\" \\ \/ \b \f \n \r
//! \t \uXXXX`; the bare words are `true`, `false` and `null`. Each error says
//! what was expected. Two things on top of the grammar:
//!
//! - a UTF-8 byte order mark (EF BB BF) before the text is skipped, which
//!   RFC 8259 section 8.1 allows a parser to do;
//! - `skip` goes through at most `DEPTH_MAX` (1024) levels of nesting below
//!   the value it skips, and refuses deeper ones.
//!
//! Callers set their own limits (the state file's size, number of services
//! and reason length; the configuration's size) and their own rule for a key
//! given twice; `top_field` takes the first.
//!
//! # Differences from serde_json
//!
//! The fuzz target `tests/fuzz/fuzz_targets/json_diff.rs` compares this reader
//! and the state file parser with serde_json on every input. They differ
//! only where one of these applies, and the target leaves those inputs out:
//!
//! - nesting deeper than `DEPTH_MAX`: refused here, accepted by serde_json
//!   when it skips a value (its parser of values stops at 128 levels);
//! - a byte order mark at the start: skipped here, refused by serde_json;
//! - inputs over the state file's 4096 bytes: refused by the state file
//!   parser before any JSON is read.
//!
//! These are not differences: lone surrogate escapes (`"\ud800"`) and numbers
//! beyond any machine range (`1e400`) are valid JSON and accepted, as
//! serde_json accepts them in values it skips (it refuses them only when it
//! has to build a Rust `String` or `f64`); `-0` is the number 0; a key written
//! with escapes (`"st\u0061tus"`) is the same key. Duplicate keys are valid
//! JSON too; what a second one means is the caller's to say (the state file
//! refuses a known field or service given twice, as a serde-derived struct
//! refuses a duplicate field).

/// The deepest nesting `skip` goes through.
pub const DEPTH_MAX: usize = 1024;

/// The bare words JSON has besides numbers.
const BARE_WORDS: [&[u8]; 3] = [b"true", b"false", b"null"];

/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// What was wrong with the JSON text; `text` says it in words.
///
/// A one-byte code rather than the text: every reading step returns it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Syntax {
    /// No `{` where an object must start.
    Object,
    /// No `[` where an array must start.
    Array,
    /// A member that does not start with a string.
    Key,
    /// No `:` after a key.
    Colon,
    /// Neither `,` nor `}` after a member.
    ObjectComma,
    /// Neither `,` nor `]` after an item.
    ArrayComma,
    /// A number without digits where they must be.
    Digit,
    /// A string without its closing quote.
    StringEnd,
    /// A backslash followed by something else than an escape.
    Escape,
    /// A raw control character in a string.
    Control,
    /// Invalid UTF-8 in a string.
    Utf8,
    /// A number such as `077`.
    LeadingZero,
    /// Lowercase letters that are not `true`, `false` or `null`.
    Word,
    /// An object or array where a string or scalar must be.
    Scalar,
    /// Nothing that starts a value.
    Value,
    /// Nesting deeper than `DEPTH_MAX`.
    Deep,
    /// More than whitespace after the value.
    Trailing,
}

impl Syntax {
    /// Says what was wrong, as the logs and the FAIL reason show it.
    pub fn text(self) -> &'static str {
        match self {
            Syntax::Object => "expected an object",
            Syntax::Array => "expected an array",
            Syntax::Key => "expected a quoted key",
            Syntax::Colon => "expected ':' after a key",
            Syntax::ObjectComma => "expected ',' or '}' in an object",
            Syntax::ArrayComma => "expected ',' or ']' in an array",
            Syntax::Digit => "expected a digit in a number",
            Syntax::StringEnd => "expected '\"' to end a string",
            Syntax::Escape => "expected an escape of \" \\ / b f n r t or uXXXX",
            Syntax::Control => "control character in a string (escape it)",
            Syntax::Utf8 => "invalid UTF-8 in a string",
            Syntax::LeadingZero => "number with a leading zero",
            Syntax::Word => "expected a value, or true, false or null",
            Syntax::Scalar => "expected a string or a number",
            Syntax::Value => "expected a value",
            Syntax::Deep => "nested deeper than 1024 levels",
            Syntax::Trailing => "bytes after the JSON value",
        }
    }
}

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

impl Token<'_> {
    /// Tells whether the token is `null` (the only bare word starting with `n`).
    pub fn is_null(self) -> bool {
        matches!(self, Token::Bare([b'n', ..]))
    }
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `s`, after a byte order mark if it has one.
    pub fn new(s: &'a [u8]) -> Reader<'a> {
        let i = if s.starts_with(BOM) { BOM.len() } else { 0 };
        Reader { s, i }
    }

    /// Skips whitespace and returns the next byte, without taking it.
    pub fn peek(&mut self) -> Option<u8> {
        while let Some(&c) = self.s.get(self.i) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(c);
            }
            self.i += 1;
        }
        None
    }

    /// Takes the byte `c` after any whitespace, or fails with `what`.
    fn expect(&mut self, c: u8, what: Syntax) -> Result<(), Syntax> {
        if self.peek() != Some(c) {
            return Err(what);
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
            Syntax::Object
        } else {
            Syntax::Array
        };
        self.expect(open, what)
    }

    /// Moves to the next member of the object being read and returns its key,
    /// raw like any string, or `None` after the closing `}`. `first` starts
    /// true for each object.
    pub fn next_key(&mut self, first: &mut bool) -> Result<Option<&'a [u8]>, Syntax> {
        if !self.next(b'}', first)? {
            return Ok(None);
        }
        if self.peek() != Some(b'"') {
            return Err(Syntax::Key);
        }
        let key = self.string()?;
        self.expect(b':', Syntax::Colon)?;
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
                Syntax::ObjectComma
            } else {
                Syntax::ArrayComma
            };
            self.expect(b',', what)?;
        }
        Ok(true)
    }

    /// Takes the byte at the reader if `ok` accepts it.
    fn take(&mut self, ok: fn(&u8) -> bool) -> bool {
        let hit = self.s.get(self.i).is_some_and(ok);
        self.i += hit as usize;
        hit
    }

    /// Takes one or more digits, or fails.
    fn digits(&mut self) -> Result<(), Syntax> {
        if !self.take(u8::is_ascii_digit) {
            return Err(Syntax::Digit);
        }
        while self.take(u8::is_ascii_digit) {}
        Ok(())
    }

    /// Reads the string whose `"` is at the reader and returns its raw content.
    fn string(&mut self) -> Result<&'a [u8], Syntax> {
        self.i += 1;
        let start = self.i;
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return Err(Syntax::StringEnd);
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.s.get(self.i).copied().unwrap_or(0);
                    self.i += 1;
                    let hex = e == b'u'
                        && self
                            .s
                            .get(self.i..self.i + 4)
                            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
                    if hex {
                        self.i += 4;
                    } else if !ESCAPES.contains(&e) {
                        return Err(Syntax::Escape);
                    }
                }
                0..=0x1f => return Err(Syntax::Control),
                0x80.. => {
                    let n = utf8_tail(c, &self.s[self.i..]);
                    if n == 0 {
                        return Err(Syntax::Utf8);
                    }
                    self.i += n;
                }
                _ => {}
            }
        }
        Ok(&self.s[start..self.i - 1])
    }

    /// Reads a string, number, `true`, `false` or `null`.
    pub fn token(&mut self) -> Result<Token<'a>, Syntax> {
        match self.peek() {
            Some(b'"') => self.string().map(Token::Str),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                self.take(|&c| c == b'-');
                let int = self.i;
                self.digits()?;
                if self.s[int] == b'0' && self.i - int > 1 {
                    return Err(Syntax::LeadingZero);
                }
                if self.take(|&c| c == b'.') {
                    self.digits()?;
                }
                if self.take(|&c| c == b'e' || c == b'E') {
                    self.take(|&c| c == b'+' || c == b'-');
                    self.digits()?;
                }
                Ok(Token::Bare(&self.s[start..self.i]))
            }
            Some(b'a'..=b'z') => {
                let start = self.i;
                while self.take(u8::is_ascii_lowercase) {}
                let t = &self.s[start..self.i];
                if BARE_WORDS.contains(&t) {
                    Ok(Token::Bare(t))
                } else {
                    Err(Syntax::Word)
                }
            }
            Some(b'{') | Some(b'[') => Err(Syntax::Scalar),
            _ => Err(Syntax::Value),
        }
    }

    /// Skips one value of any kind, nested up to `DEPTH_MAX` levels, without recursion.
    pub fn skip(&mut self) -> Result<(), Syntax> {
        // One bit per open container, set for an object; `depth` are open.
        // 32-bit words: shifts of a u64 take several instructions on 32-bit targets.
        let mut objects = [0u32; DEPTH_MAX / 32];
        let mut depth = 0;
        loop {
            let mut first = false;
            match self.peek() {
                Some(c @ (b'{' | b'[')) => {
                    if depth == DEPTH_MAX {
                        return Err(Syntax::Deep);
                    }
                    self.i += 1;
                    let bit = 1 << (depth % 32);
                    let word = &mut objects[depth / 32];
                    *word = if c == b'{' { *word | bit } else { *word & !bit };
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
                let top = depth - 1;
                let more = if objects[top / 32] >> (top % 32) & 1 == 1 {
                    self.next_key(&mut first)?.is_some()
                } else {
                    self.next_item(&mut first)?
                };
                if more {
                    break;
                }
                depth -= 1;
                first = false;
            }
        }
    }

    /// Checks that nothing but whitespace is left.
    pub fn end(&mut self) -> Result<(), Syntax> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(Syntax::Trailing),
        }
    }
}

/// Checks the bytes after the lead byte `c` (0x80 or more) of a UTF-8
/// sequence at the start of `rest`, and returns how many continuation bytes
/// it has: 1 to 3, or 0 if the sequence is not valid UTF-8 (RFC 3629:
/// no overlong forms, no surrogates, nothing above U+10FFFF).
fn utf8_tail(c: u8, rest: &[u8]) -> usize {
    // How many continuation bytes follow, and the range of the first one.
    let (n, lo, hi) = match c {
        0xc2..=0xdf => (1, 0x80, 0xbf),
        0xe0 => (2, 0xa0, 0xbf),
        0xed => (2, 0x80, 0x9f),
        0xe1..=0xef => (2, 0x80, 0xbf),
        0xf0 => (3, 0x90, 0xbf),
        0xf1..=0xf3 => (3, 0x80, 0xbf),
        0xf4 => (3, 0x80, 0x8f),
        _ => return 0,
    };
    match rest.get(..n) {
        Some([first, others @ ..])
            if (lo..=hi).contains(first) && others.iter().all(|b| (0x80..=0xbf).contains(b)) =>
        {
            n
        }
        _ => 0,
    }
}

/// Tells whether the raw key (or string) `raw` stands for `name`, escapes
/// decoded; `name` may be up to 64 bytes.
pub fn is_key(raw: &[u8], name: &[u8]) -> bool {
    if !raw.contains(&b'\\') {
        return raw == name;
    }
    let mut text: heapless::Vec<u8, 64> = heapless::Vec::new();
    unescape(raw, &mut text) && text == name
}

/// Finds a top-level member of a JSON object and returns its value if it is a
/// string or scalar: the first member with that key (escapes decoded), in a
/// body that is all valid JSON.
pub fn top_field<'a>(body: &'a [u8], key: &[u8]) -> Option<Token<'a>> {
    let mut r = Reader::new(body);
    let mut found = None;
    let mut first = true;
    r.open(b'{').ok()?;
    while let Some(k) = r.next_key(&mut first).ok()? {
        if found.is_none() && is_key(k, key) {
            found = Some(r.token().ok()?);
        } else {
            r.skip().ok()?;
        }
    }
    r.end().ok()?;
    found
}

/// The letters that may follow a backslash, other than `u`.
const ESCAPES: [u8; 8] = *b"\"\\/bfnrt";
/// What each of `ESCAPES` stands for.
const ESCAPED: [u8; 8] = *b"\"\\/\x08\x0c\n\r\t";

/// Decodes the escapes of a raw string into `out`; returns false when it does
/// not fit or an escape is malformed. A `\\u` escape outside ASCII becomes the
/// byte 0x80, which callers that want printable ASCII refuse anyway.
///
/// It takes a `VecView`, which every `heapless::Vec<u8, N>` coerces to, so it
/// is compiled once rather than once per capacity.
pub fn unescape(raw: &[u8], out: &mut heapless::vec::VecView<u8>) -> bool {
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

    /// Reads `s` as one JSON text with `skip`.
    fn valid(s: &[u8]) -> Result<(), Syntax> {
        let mut r = Reader::new(s);
        r.skip()?;
        r.end()
    }

    /// Nests `inner` in `n` arrays.
    fn nested(n: usize, inner: &str) -> std::string::String {
        std::format!("{}{inner}{}", "[".repeat(n), "]".repeat(n))
    }

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
        assert_eq!(top_field(br#"{"queue":1} x"#, b"queue"), None);
        assert_eq!(top_field(b"", b"queue"), None);
        // The first of two wins; an escaped key is the same key.
        assert_eq!(
            top_field(br#"{"queue":1,"queue":2}"#, b"queue"),
            Some(Token::Bare(b"1"))
        );
        assert_eq!(
            top_field(br#"{"q\u0075eue":3}"#, b"queue"),
            Some(Token::Bare(b"3"))
        );
        // Deep nesting in another field does not hide the one asked for.
        let deep = std::format!(r#"{{"x":{},"queue":4}}"#, nested(200, "{}"));
        assert_eq!(
            top_field(deep.as_bytes(), b"queue"),
            Some(Token::Bare(b"4"))
        );
    }

    #[test]
    fn accepts_json() {
        for ok in [
            &b"0"[..],
            b"-0",
            b"-0.0e-0",
            b"1E+400",
            b"123.456e78",
            b" \t\r\n[ ] ",
            b"{}",
            br#"{"a":[1,{"b":null}],"c":true,"d":false}"#,
            br#""\"\\\/\b\f\n\r\t\u00e9\uD800\udc00""#,
            "\"caf\u{e9} \u{1f600}\"".as_bytes(),
            b"\xef\xbb\xbf{}",
        ] {
            assert_eq!(
                valid(ok),
                Ok(()),
                "{:?}",
                std::string::String::from_utf8_lossy(ok)
            );
        }
        assert_eq!(valid(nested(DEPTH_MAX, "").as_bytes()), Ok(()));
    }

    #[test]
    fn refuses_everything_else() {
        for (bad, why) in [
            (&b"\x0c{}"[..], "expected a value"),
            (b"{}\x0c", "bytes after the JSON value"),
            (b"077", "number with a leading zero"),
            (b"-01", "number with a leading zero"),
            (b"1.", "expected a digit in a number"),
            (b"-", "expected a digit in a number"),
            (b"1e", "expected a digit in a number"),
            (b"1e+", "expected a digit in a number"),
            (b".5", "expected a value"),
            (b"+1", "expected a value"),
            (b"[1.5.2]", "expected ',' or ']' in an array"),
            (b"[1x]", "expected ',' or ']' in an array"),
            (b"nul", "expected a value, or true, false or null"),
            (b"True", "expected a value"),
            (b"[truex]", "expected a value, or true, false or null"),
            (
                br#""\x""#,
                "expected an escape of \" \\ / b f n r t or uXXXX",
            ),
            (
                br#""\u12g4""#,
                "expected an escape of \" \\ / b f n r t or uXXXX",
            ),
            (
                br#""\u12"#,
                "expected an escape of \" \\ / b f n r t or uXXXX",
            ),
            (br#""\"#, "expected an escape of \" \\ / b f n r t or uXXXX"),
            (b"\"\xff\"", "invalid UTF-8 in a string"),
            (b"\"\xc3\"", "invalid UTF-8 in a string"),
            (b"\"\xed\xa0\x80\"", "invalid UTF-8 in a string"),
            (b"\"a\tb\"", "control character in a string (escape it)"),
            (b"\"abc", "expected '\"' to end a string"),
            (b"\xef\xbb{}", "expected a value"),
            (b"{1:2}", "expected a quoted key"),
            (b"{\"a\" 2}", "expected ':' after a key"),
            (b"[1 2]", "expected ',' or ']' in an array"),
            (b"[1,]", "expected a value"),
            (b"[}", "expected a value"),
            (b"{\"a\":1]", "expected ',' or '}' in an object"),
            (b"[1,2", "expected ',' or ']' in an array"),
            (b"", "expected a value"),
            (b"{} x", "bytes after the JSON value"),
        ] {
            assert_eq!(
                valid(bad).map_err(Syntax::text),
                Err(why),
                "{:?}",
                std::string::String::from_utf8_lossy(bad)
            );
        }
        // Bad bytes inside a skipped (unknown) field are refused too.
        assert!(valid(b"{\"x\":\"\xff\",\"a\":1}").is_err());
        assert!(valid(br#"{"x":[01]}"#).is_err());
        assert_eq!(
            valid(nested(DEPTH_MAX + 1, "").as_bytes()),
            Err(Syntax::Deep)
        );
    }

    #[test]
    fn compares_keys_with_escapes_decoded() {
        assert!(is_key(b"status", b"status"));
        assert!(is_key(br"st\u0061tus", b"status"));
        assert!(is_key(br"\u0073\u0074\u0061\u0074\u0075\u0073", b"status"));
        assert!(!is_key(br"st\u00e1tus", b"status"));
        assert!(!is_key(b"Status", b"status"));
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
