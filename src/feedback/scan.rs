//! Finds the value at a dotted path (`stats.active`, `servers.0.load`) in a
//! JSON text that arrives in pieces, with fixed memory: a few counters and a
//! 32-byte buffer, whatever the size or nesting of the text.
//!
//! It follows JSON's structure (strings and their escapes, nesting, keys and
//! array elements) but does not validate it: the text is an application's
//! health answer, and only the value at the path matters. Each component of
//! the path is an object key (escapes in the body's keys decoded), or, in an
//! array, an element's index from 0. The first match wins.

use crate::model::json::is_key;
use crate::num::{parse_u32, pieces};

/// The longest key or value text kept; a longer one matches nothing and is no number.
const TEXT_MAX: usize = 32;

/// Where the scanner is in the text.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lex {
    /// Between tokens.
    Between,
    /// Inside a string.
    Str,
    /// Inside a string, right after a backslash.
    Esc,
    /// Inside a number or bare word.
    Bare,
}

/// What the string or bare word being read is to the path.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    /// Nothing: skipped.
    Skip,
    /// A key of the innermost object on the path.
    Key,
    /// The value at the path.
    Value,
}

/// A resumable search for one path.
#[derive(Clone, Debug)]
pub struct Scan {
    /// How many containers are open.
    depth: u32,
    /// How many of them, from the outermost, lie on the path.
    on: u32,
    /// Bit k: the container at depth k + 1 on the path is an array.
    arrays: u32,
    /// The index of the current element in the innermost array on the path.
    index: u32,
    /// The current value in the innermost container on the path is not the
    /// path's next step (false at the start: the top-level value is where
    /// every path starts; every field starts at zero, so a `Scan` is cheap to make).
    miss: bool,
    /// The next string in the innermost object on the path is a key.
    key: bool,
    /// Where the lexer is.
    lex: Lex,
    /// What the token being read is.
    role: Role,
    /// The token's text so far.
    buf: [u8; TEXT_MAX],
    /// How many bytes of `buf` hold it; `u8::MAX` once it overflowed.
    len: u8,
}

impl Default for Scan {
    fn default() -> Self {
        Scan::new()
    }
}

/// Counts the components of `path`.
fn count(path: &[u8]) -> u32 {
    path.iter().filter(|&&c| c == b'.').count() as u32 + 1
}

/// Returns component `k` of `path` (empty past the end).
fn component(path: &[u8], k: u32) -> &[u8] {
    pieces(path, b'.').nth(k as usize).unwrap_or_default()
}

impl Scan {
    /// Starts a search at the beginning of a text.
    pub const fn new() -> Scan {
        Scan {
            depth: 0,
            on: 0,
            arrays: 0,
            index: 0,
            miss: false,
            key: false,
            lex: Lex::Between,
            role: Role::Skip,
            buf: [0; TEXT_MAX],
            len: 0,
        }
    }

    /// The text of the value found: a string's content or a number as written
    /// (empty if longer than 32 bytes; `{` or `[` for a container).
    pub fn text(&self) -> &[u8] {
        self.buf.get(..self.len as usize).unwrap_or_default()
    }

    /// Reads the next piece of text; `Some(true)` once the value is found
    /// (see `text`), `Some(false)` once the top-level value ended without it.
    pub fn feed(&mut self, bytes: &[u8], path: &[u8]) -> Option<bool> {
        bytes.iter().find_map(|&c| self.byte(c, path))
    }

    /// Decides at the end of the text: a number at the path ends there too.
    pub fn finish(&self) -> bool {
        self.lex == Lex::Bare && self.role == Role::Value
    }

    /// Keeps one byte of the token.
    fn push(&mut self, c: u8) {
        match self.buf.get_mut(self.len as usize) {
            Some(b) => {
                *b = c;
                self.len += 1;
            }
            None => self.len = u8::MAX,
        }
    }

    /// Tells whether the innermost container on the path is the current one.
    fn inside(&self) -> bool {
        self.depth == self.on && self.depth > 0
    }

    /// Tells whether the innermost container on the path is an array.
    fn in_array(&self) -> bool {
        self.arrays >> (self.on.wrapping_sub(1) & 31) & 1 != 0
    }

    /// Marks whether the current element of the innermost array is the path's next step.
    fn at_index(&mut self, path: &[u8]) {
        self.miss = parse_u32(component(path, self.on - 1)) != Some(self.index);
    }

    /// Takes one byte.
    fn byte(&mut self, c: u8, path: &[u8]) -> Option<bool> {
        match self.lex {
            Lex::Esc => {
                self.lex = Lex::Str;
                self.push(c);
            }
            Lex::Str if c == b'"' => {
                self.lex = Lex::Between;
                return self.end(path);
            }
            Lex::Str => {
                if c == b'\\' {
                    self.lex = Lex::Esc;
                }
                self.push(c);
            }
            Lex::Bare if !matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b',' | b'}' | b']' | b':') => {
                self.push(c)
            }
            _ => {
                if self.lex == Lex::Bare {
                    self.lex = Lex::Between;
                    if let Some(r) = self.end(path) {
                        return Some(r);
                    }
                }
                match c {
                    b'"' => self.start(Lex::Str),
                    b'{' | b'[' => return self.open(c, path),
                    b'}' | b']' => return self.close(),
                    b',' => self.comma(path),
                    b' ' | b'\t' | b'\n' | b'\r' | b':' => {}
                    _ => {
                        self.start(Lex::Bare);
                        self.push(c);
                    }
                }
            }
        }
        None
    }

    /// Starts a string or bare word and decides what it is to the path.
    fn start(&mut self, lex: Lex) {
        self.lex = lex;
        self.len = 0;
        self.role = if !self.inside() {
            Role::Skip
        } else if !self.in_array() && core::mem::take(&mut self.key) {
            Role::Key
        } else if !self.miss {
            Role::Value
        } else {
            Role::Skip
        };
    }

    /// Ends a string or bare word; `Some(true)` if it was the value at the path.
    fn end(&mut self, path: &[u8]) -> Option<bool> {
        match self.role {
            Role::Key => self.miss = !is_key(self.text(), component(path, self.on - 1)),
            // A scalar on the way, not at the end of the path: not there.
            Role::Value => return (self.on == count(path)).then_some(true),
            Role::Skip => {}
        }
        None
    }

    /// Opens an object or array.
    fn open(&mut self, c: u8, path: &[u8]) -> Option<bool> {
        if self.depth == self.on && !self.miss {
            if self.on == count(path) {
                self.len = 0;
                self.push(c);
                return Some(true);
            }
            let bit = 1 << (self.on & 31);
            self.arrays = (self.arrays & !bit) | if c == b'[' { bit } else { 0 };
            self.on += 1;
            self.index = 0;
            self.key = c == b'{';
            self.miss = true;
            if c == b'[' {
                self.at_index(path);
            }
        }
        self.depth += 1;
        None
    }

    /// Closes an object or array; `Some(false)` once the top-level value ends.
    fn close(&mut self) -> Option<bool> {
        if self.inside() {
            self.on -= 1;
            // Back in the parent: the element just left was its match, and
            // no later index can be one.
            self.miss = true;
            self.index = u32::MAX;
        }
        self.depth = self.depth.saturating_sub(1);
        (self.depth == 0).then_some(false)
    }

    /// Moves to the next member or element.
    fn comma(&mut self, path: &[u8]) {
        if self.inside() {
            if self.in_array() {
                self.index = self.index.saturating_add(1);
                self.at_index(path);
            } else {
                self.key = true;
                self.miss = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `text` for `path` in pieces of `step` bytes; the text found, if any.
    fn find(text: &str, path: &str, step: usize) -> Option<std::string::String> {
        let mut s = Scan::new();
        let mut r = None;
        for piece in text.as_bytes().chunks(step) {
            r = s.feed(piece, path.as_bytes());
            if r.is_some() {
                break;
            }
        }
        let found = r.unwrap_or_else(|| s.finish());
        found.then(|| std::string::String::from_utf8(s.text().to_vec()).unwrap())
    }

    fn all(text: &str, path: &str) -> Option<std::string::String> {
        let whole = find(text, path, text.len().max(1));
        for step in 1..8 {
            assert_eq!(
                find(text, path, step),
                whole,
                "{text} {path} in pieces of {step}"
            );
        }
        whole
    }

    #[test]
    fn finds_top_level_nested_and_indexed_values() {
        let body = r#"{"status":"ok","stats":{"x":{"active":7},"active":48,"b":[1]},"active":1}"#;
        assert_eq!(all(body, "active").as_deref(), Some("1"));
        assert_eq!(all(body, "stats.active").as_deref(), Some("48"));
        assert_eq!(all(body, "stats.x.active").as_deref(), Some("7"));
        assert_eq!(all(body, "stats.b.0").as_deref(), Some("1"));
        assert_eq!(all(body, "stats.b.1"), None);
        assert_eq!(all(body, "stats.missing"), None);
        assert_eq!(all(body, "status").as_deref(), Some("ok"));
        assert_eq!(all(body, "stats").as_deref(), Some("{"));
        // Through a scalar: not there.
        assert_eq!(all(body, "status.x"), None);
        let arr = r#"{"servers":[{"load":1},{"name":"b","load":4.8e1},[3]],"n":2}"#;
        assert_eq!(all(arr, "servers.1.load").as_deref(), Some("4.8e1"));
        assert_eq!(all(arr, "servers.0.load").as_deref(), Some("1"));
        assert_eq!(all(arr, "servers.2.0").as_deref(), Some("3"));
        assert_eq!(all(arr, "servers.3.load"), None);
        assert_eq!(all(arr, "n").as_deref(), Some("2"));
        assert_eq!(all("[5, [6, 7]]", "1.1").as_deref(), Some("7"));
        assert_eq!(all(" 42 ", "x"), None);
        assert_eq!(all(r#"{"a":-3}"#, "a").as_deref(), Some("-3"));
        // The value may end with the text.
        assert_eq!(find(r#"{"a":12"#, "a", 3).as_deref(), Some("12"));
    }

    #[test]
    fn skips_what_looks_like_the_path_inside_strings() {
        let body =
            r#"{"note":"{\"active\":9, [1]}","k\"ey":1,"deep":[[{"active":2}]],"active":"5"}"#;
        assert_eq!(all(body, "active").as_deref(), Some("5"));
        assert_eq!(all(body, "deep.0.0.active").as_deref(), Some("2"));
        // Escapes in keys are decoded.
        assert_eq!(all(r#"{"a\u0062":1}"#, "ab").as_deref(), Some("1"));
        // A value longer than 32 bytes is kept empty, a longer key matches nothing.
        let long = std::format!(r#"{{"a":"{}"}}"#, "9".repeat(40));
        assert_eq!(all(&long, "a").as_deref(), Some(""));
        let key = std::format!(r#"{{"{}":1,"b":2}}"#, "a".repeat(40));
        assert_eq!(all(&key, "b").as_deref(), Some("2"));
    }

    #[test]
    fn the_first_match_wins_and_a_later_duplicate_is_found_after_a_miss() {
        assert_eq!(all(r#"{"a":1,"a":2}"#, "a").as_deref(), Some("1"));
        assert_eq!(
            all(r#"{"s":{"x":1},"s":{"y":2}}"#, "s.y").as_deref(),
            Some("2")
        );
    }
}
