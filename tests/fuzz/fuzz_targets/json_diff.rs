//! heft's JSON reader and state file parser against serde_json, on any bytes.
//!
//! serde_json (this fuzz workspace only) is the reference for JSON: a text is
//! valid when it is UTF-8 and `serde_json::from_str::<IgnoredAny>` takes it
//! (serde_json skips a value without a depth limit and, when skipping, takes
//! lone surrogate escapes and numbers of any size, as RFC 8259's grammar
//! does). Strings are decoded by serde_json as bytes (lone surrogates as
//! WTF-8), numbers kept as written (`RawValue`), object members kept in order
//! with duplicates. For every input:
//!
//! 1. A generic walk with `json::Reader` (`open`, `next_key`, `next_item`,
//!    `token`) accepts exactly the valid texts and finds the same tree: same
//!    keys and strings (heft's raw text decoded by serde_json), same number
//!    texts, same order; `json::unescape` gives serde_json's bytes for strings
//!    that decode to ASCII.
//! 2. `Reader::skip` accepts exactly the valid texts.
//! 3. `state::parse` accepts exactly the valid texts that are a valid state
//!    file by the README's rules, checked here on serde_json's values, and
//!    gives the same entries: status names in any case; weight and maxconn
//!    whole numbers written without fraction or exponent (`-0` is 0) within
//!    0-255 and 0-65535; reason printable ASCII without `#`, at most 64 bytes;
//!    `null` the same as absent, except as a service's entry; at most 16
//!    services named `[A-Za-z0-9_.-]{1,32}`; a known field, `services` or a
//!    service name given twice refused; keys compared after decoding escapes.
//!
//! The only differences allowed, and the inputs left out for them (also in
//! the module documentation of src/model/json.rs):
//! - nesting deeper than `json::DEPTH_MAX` (1024) where heft skips a value:
//!   heft refuses it, saying so ("nested deeper than 1024 levels");
//! - a UTF-8 byte order mark at the start: heft skips it (RFC 8259 section
//!   8.1 allows that), serde_json refuses it; serde_json is given the text after it;
//! - a state file over `state::FILE_MAX` (4096) bytes: heft refuses it
//!   before reading any JSON ("file larger than 4096 bytes").
//! Not differences, so compared: lone surrogate escapes, numbers beyond any
//! machine range, `-0`, escaped keys, duplicate keys (heft's rule for them is
//! the reference's too).
#![no_main]

use std::fmt;

use heft::model::json::{self, Reader, Syntax, Token, DEPTH_MAX};
use heft::model::state::{self, Status, FILE_MAX};
use libfuzzer_sys::fuzz_target;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// A JSON value: strings and keys as bytes, numbers as written, members in order.
#[derive(Debug, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(Vec<u8>),
    Arr(Vec<J>),
    Obj(Vec<(Vec<u8>, J)>),
}

/// A string's content decoded by serde_json, as bytes.
struct Bytes(Vec<u8>);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Bytes, E> {
                Ok(Bytes(v.as_bytes().to_vec()))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// An object's members as serde_json reads them: decoded keys, raw values, duplicates kept.
struct Members(Vec<(Vec<u8>, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Members, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<Bytes, Box<RawValue>>()? {
                    out.push((k.0, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Decodes a string value's text (quotes included) with serde_json.
fn decode(raw: &str) -> Vec<u8> {
    serde_json::from_str::<Bytes>(raw)
        .unwrap_or_else(|e| panic!("serde_json cannot decode {raw:?}: {e}"))
        .0
}

/// The object members of `raw`, an object's text.
fn members(raw: &str) -> Vec<(Vec<u8>, Box<RawValue>)> {
    serde_json::from_str::<Members>(raw).unwrap().0
}

/// Builds the tree of a valid value's text with serde_json.
fn tree(raw: &str) -> J {
    match raw.as_bytes()[0] {
        b'n' => J::Null,
        b't' => J::Bool(true),
        b'f' => J::Bool(false),
        b'"' => J::Str(decode(raw)),
        b'[' => J::Arr(
            serde_json::from_str::<Vec<Box<RawValue>>>(raw)
                .unwrap()
                .iter()
                .map(|v| tree(v.get()))
                .collect(),
        ),
        b'{' => J::Obj(
            members(raw)
                .into_iter()
                .map(|(k, v)| (k, tree(v.get())))
                .collect(),
        ),
        _ => J::Num(raw.to_string()),
    }
}

/// Decodes a string heft returned raw (escapes in place) with serde_json, and
/// checks `json::unescape` against it where the text is ASCII.
fn heft_str(raw: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(raw)
        .unwrap_or_else(|_| panic!("heft took a string that is not UTF-8: {raw:?}"));
    let bytes = decode(&format!("\"{text}\""));
    let mut un = heapless::Vec::<u8, 4096>::new();
    assert!(json::unescape(raw, &mut un), "unescape refused {text:?}");
    if bytes.is_ascii() {
        assert_eq!(&un[..], &bytes[..], "unescape of {text:?}");
    }
    bytes
}

/// Reads one value with heft's reader, recursively, into a tree.
fn walk(r: &mut Reader) -> Result<J, Syntax> {
    let mut first = true;
    Ok(match r.peek() {
        Some(b'{') => {
            r.open(b'{')?;
            let mut m = Vec::new();
            while let Some(k) = r.next_key(&mut first)? {
                let k = heft_str(k);
                m.push((k, walk(r)?));
            }
            J::Obj(m)
        }
        Some(b'[') => {
            r.open(b'[')?;
            let mut a = Vec::new();
            while r.next_item(&mut first)? {
                a.push(walk(r)?);
            }
            J::Arr(a)
        }
        _ => match r.token()? {
            Token::Str(s) => J::Str(heft_str(s)),
            Token::Bare(b"null") => J::Null,
            Token::Bare(b"true") => J::Bool(true),
            Token::Bare(b"false") => J::Bool(false),
            Token::Bare(n) => J::Num(String::from_utf8(n.to_vec()).unwrap()),
        },
    })
}

/// How deeply a text nests: brackets outside strings.
fn depth(s: &[u8]) -> usize {
    let (mut d, mut max, mut in_str, mut esc) = (0usize, 0, false, false);
    for &c in s {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'[' | b'{' => {
                d += 1;
                max = max.max(d);
            }
            b']' | b'}' => d = d.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// One entry as the reference reads it: status, weight, maxconn, reason.
type Want = (Status, u8, Option<u16>, Vec<u8>);

/// The statuses by name, for the reference.
const NAMES: [(&str, Status); 7] = [
    ("up", Status::Up),
    ("ready", Status::Ready),
    ("drain", Status::Drain),
    ("maint", Status::Maint),
    ("down", Status::Down),
    ("fail", Status::Fail),
    ("stopped", Status::Stopped),
];

/// A whole number written without fraction or exponent, at most `max` (`-0` is 0).
fn whole(raw: &str, max: u64) -> Result<u64, ()> {
    if raw == "-0" {
        return Ok(0);
    }
    if raw.is_empty() || !raw.bytes().all(|c| c.is_ascii_digit()) {
        return Err(());
    }
    raw.parse::<u64>().ok().filter(|&v| v <= max).ok_or(())
}

/// Reads an entry's object members by the README's rules. `Ok(None)`: no
/// status, and no other field but nulls (an empty top level).
fn want_entry(m: &[(Vec<u8>, Box<RawValue>)], top: bool) -> Result<Option<Want>, ()> {
    let keys: [&[u8]; 4] = [b"status", b"weight", b"maxconn", b"reason"];
    let mut f: [Option<&str>; 4] = [None; 4];
    for (k, v) in m {
        if top && k == b"services" {
            continue;
        }
        if let Some(i) = keys.iter().position(|x| x == k) {
            if f[i].is_some() {
                return Err(());
            }
            f[i] = Some(v.get());
        }
    }
    // Containers are refused whether or not a status is there.
    if f.iter().flatten().any(|v| v.starts_with(['{', '['])) {
        return Err(());
    }
    let f = f.map(|v| v.filter(|&v| v != "null"));
    let Some(status) = f[0] else {
        return if f.iter().all(Option::is_none) {
            Ok(None)
        } else {
            Err(())
        };
    };
    if !status.starts_with('"') {
        return Err(());
    }
    let name = decode(status).to_ascii_lowercase();
    let status = NAMES
        .iter()
        .find(|(n, _)| n.as_bytes() == name)
        .ok_or(())?
        .1;
    let weight = match f[1] {
        None => 100,
        Some(w) => whole(w, 255)? as u8,
    };
    let maxconn = match f[2] {
        None => None,
        Some(m) => Some(whole(m, 65535)? as u16),
    };
    let reason = match f[3] {
        None => Vec::new(),
        Some(r) if r.starts_with('"') => decode(r),
        Some(_) => return Err(()),
    };
    if reason.len() > 64
        || reason
            .iter()
            .any(|&c| !(0x20..0x7f).contains(&c) || c == b'#')
    {
        return Err(());
    }
    Ok(Some((status, weight, maxconn, reason)))
}

/// The state a valid JSON text stands for by the README's rules, or `Err` for an invalid state.
fn want_state(text: &str) -> Result<(Option<Want>, Vec<(Vec<u8>, Want)>), ()> {
    if !text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return Err(());
    }
    let top = members(text);
    let mut services = Vec::new();
    let svc: Vec<_> = top.iter().filter(|(k, _)| k == b"services").collect();
    if svc.len() > 1 {
        return Err(());
    }
    if let Some((_, v)) = svc.first() {
        let v = v.get();
        if v != "null" {
            if !v.starts_with('{') {
                return Err(());
            }
            for (name, e) in members(v) {
                let ok = |c: &u8| c.is_ascii_alphanumeric() || b"_.-".contains(c);
                if name.is_empty() || name.len() > 32 || !name.iter().all(ok) {
                    return Err(());
                }
                if services.iter().any(|(n, _)| *n == name) || !e.get().starts_with('{') {
                    return Err(());
                }
                let entry = want_entry(&members(e.get()), false)?.ok_or(())?;
                services.push((name, entry));
                if services.len() > 16 {
                    return Err(());
                }
            }
        }
    }
    match want_entry(&top, true)? {
        Some(e) => Ok((Some(e), services)),
        None if !services.is_empty() => Ok((None, services)),
        None => Err(()),
    }
}

/// What heft's state looks like in the reference's terms.
fn got_state(s: &state::State) -> (Option<Want>, Vec<(Vec<u8>, Want)>) {
    let e = |e: &state::Entry| (e.status, e.weight, e.maxconn, e.reason.as_bytes().to_vec());
    (
        s.top.as_ref().map(e),
        s.services
            .iter()
            .map(|(n, x)| (n.as_bytes().to_vec(), e(x)))
            .collect(),
    )
}

fuzz_target!(|data: &[u8]| {
    let body = data.strip_prefix(BOM).unwrap_or(data);
    let text = std::str::from_utf8(body).ok();
    let valid = text.is_some_and(|t| serde_json::from_str::<IgnoredAny>(t).is_ok());
    let deep = depth(body) > DEPTH_MAX;
    let show = || String::from_utf8_lossy(data).into_owned();

    // 1. The generic walk: no depth limit of its own.
    let mut r = Reader::new(data);
    let walked = walk(&mut r).and_then(|j| r.end().map(|()| j));
    match (&walked, valid) {
        (Ok(j), true) => assert_eq!(
            *j,
            tree(text.unwrap().trim_matches([' ', '\t', '\n', '\r'])),
            "{:?}",
            show()
        ),
        (Err(_), false) => {}
        (w, _) => panic!("walk {w:?}, serde_json valid {valid}: {:?}", show()),
    }

    // 2. skip.
    let mut r = Reader::new(data);
    let skipped = r.skip().and_then(|()| r.end());
    match skipped {
        Err(Syntax::Deep) if deep => {}
        s => assert_eq!(s.is_ok(), valid, "skip {s:?}: {:?}", show()),
    }

    // 3. The state file.
    let got = state::parse(data);
    if data.len() > FILE_MAX {
        assert_eq!(got, Err(state::StateError::TOO_LARGE));
        return;
    }
    let want = if valid {
        want_state(text.unwrap())
    } else {
        Err(())
    };
    match (&got, &want) {
        (Err(state::StateError::Syntax(Syntax::Deep)), _) if deep => {}
        (Ok(s), Ok(w)) => assert_eq!(got_state(s), *w, "{:?}", show()),
        (Err(e), Err(())) => assert!(!e.parts().0.is_empty()),
        _ => panic!("heft {got:?}, reference {want:?}: {:?}", show()),
    }
});
