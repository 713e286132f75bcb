//! Parses and writes the JSON state file; does no I/O.
//!
//! The format is hapgent's (`{"status":"UP","weight":77,"maxconn":300}`) plus
//! an optional `reason` and an optional `services` object of named states.

use heapless::{String, Vec};

use crate::model::json::{self, Reader, Syntax, Token};
use crate::num::{self, Full};

/// The largest state file accepted, in bytes.
pub const FILE_MAX: usize = 4096;
/// The longest reason, in bytes.
pub const REASON_MAX: usize = 64;
/// The longest service name, in bytes.
pub const NAME_MAX: usize = 32;
/// The most services one file may name.
pub const SERVICES_MAX: usize = 16;

/// What a state asks HAProxy to do with the server.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Status {
    /// Operationally up, administratively ready.
    Up,
    /// Same reply as `Up`; kept apart so the file says what was written.
    Ready,
    /// Up, but takes no new connections.
    Drain,
    /// Maintenance: no connections, no health checks.
    Maint,
    /// Operationally down.
    Down,
    /// Down, shown as `fail`.
    Fail,
    /// Down, shown as `stopped`.
    Stopped,
}

/// Every status, in the order `Status::index` numbers them.
pub const STATUSES: [Status; 7] = [
    Status::Up,
    Status::Ready,
    Status::Drain,
    Status::Maint,
    Status::Down,
    Status::Fail,
    Status::Stopped,
];

impl Status {
    /// Reads a status name in any letter case.
    pub fn parse(s: &[u8]) -> Option<Status> {
        STATUSES
            .iter()
            .copied()
            .find(|st| st.name().as_bytes().eq_ignore_ascii_case(s))
    }

    /// Names the status as the state file spells it.
    pub fn name(self) -> &'static str {
        match self {
            Status::Up => "UP",
            Status::Ready => "READY",
            Status::Drain => "DRAIN",
            Status::Maint => "MAINT",
            Status::Down => "DOWN",
            Status::Fail => "FAIL",
            Status::Stopped => "STOPPED",
        }
    }

    /// Tells whether HAProxy takes the server out of service for this status.
    pub fn is_down(self) -> bool {
        matches!(self, Status::Down | Status::Fail | Status::Stopped)
    }
}

/// A reason shown on HAProxy's stats page: printable ASCII without `#`.
pub type Reason = String<REASON_MAX>;
/// A service name: `[A-Za-z0-9_.-]`, 1 to 32 bytes.
pub type Name = String<NAME_MAX>;

/// One server's intended state.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Entry {
    /// What HAProxy should do with the server.
    pub status: Status,
    /// Percentage of the configured weight, 0 to 255.
    pub weight: u8,
    /// The connection limit to send; `None` sends none.
    pub maxconn: Option<u16>,
    /// Text for the stats page; empty for none.
    pub reason: Reason,
}

impl Entry {
    /// Makes an entry with the default weight, no maxconn and no reason.
    pub fn new(status: Status) -> Entry {
        Entry {
            status,
            weight: 100,
            maxconn: None,
            reason: Reason::new(),
        }
    }
}

/// Everything a state file holds.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct State {
    /// The state that answers when no service is named, if the file has one.
    pub top: Option<Entry>,
    /// Named states, in file order.
    pub services: Vec<(Name, Entry), SERVICES_MAX>,
}

impl State {
    /// Finds a service's entry by name.
    pub fn service(&self, name: &[u8]) -> Option<&Entry> {
        self.services
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map(|(_, e)| e)
    }
}

/// Why a state file was refused, in a few words for logs and the FAIL reason:
/// the field and what was expected of it, or what is wrong with the JSON.
/// `parts` gives the message as two texts to write one after the other.
///
/// Indices into tables of texts keep it one word: every parsing step returns it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StateError {
    /// The JSON itself is wrong.
    Syntax(Syntax),
    /// A message on its own, an index of `PLAIN`.
    Plain(u8),
    /// A field (an index of `EXPECTED`) given twice.
    Twice(u8),
    /// A field (an index of `EXPECTED`) holding what `FOUND` says at the second index.
    Wrong(u8, u8),
}

impl StateError {
    /// Larger than `FILE_MAX`.
    pub const TOO_LARGE: StateError = StateError::Plain(0);
    /// No `status`, and more than `services` at the top level or no services.
    pub const MISSING_STATUS: StateError = StateError::Plain(1);
    /// A `status` that is not one of the seven names.
    pub const BAD_STATUS: StateError = StateError::Plain(2);
    /// `weight` a number other than a whole one from 0 to 255.
    pub const WEIGHT_RANGE: StateError = StateError::Wrong(1, ANOTHER);
    /// `maxconn` a number other than a whole one from 0 to 65535.
    pub const MAXCONN_RANGE: StateError = StateError::Wrong(2, ANOTHER);
    /// `reason` longer than 64 bytes.
    pub const REASON_TOO_LONG: StateError = StateError::Plain(3);
    /// `reason` with a byte that is not printable ASCII, or with `#`.
    pub const REASON_INVALID: StateError = StateError::Plain(4);
    /// A service name that is empty, too long or has other bytes.
    pub const BAD_NAME: StateError = StateError::Plain(5);
    /// A service without a status.
    pub const SERVICE_STATUS: StateError = StateError::Plain(6);
    /// More than `SERVICES_MAX` services.
    pub const TOO_MANY_SERVICES: StateError = StateError::Plain(7);

    /// Returns the message as two texts to write one after the other (the second often empty).
    pub fn parts(self) -> (&'static str, &'static str) {
        match self {
            StateError::Syntax(s) => (s.text(), ""),
            StateError::Plain(i) => (PLAIN[i as usize], ""),
            StateError::Twice(f) => (TWICE[f as usize], ""),
            StateError::Wrong(f, k) => (EXPECTED[f as usize], FOUND[k as usize]),
        }
    }
}

/// The messages that stand alone, in the order of `StateError`'s constants.
const PLAIN: [&str; 8] = [
    "file larger than 4096 bytes",
    "status: missing (needed unless only services are given)",
    "status: expected one of UP READY DRAIN MAINT DOWN FAIL STOPPED",
    "reason: expected at most 64 bytes",
    "reason: expected printable ASCII without a hash sign",
    "service name: expected 1 to 32 of [A-Za-z0-9_.-]",
    "status: missing in a service",
    "services: expected at most 16, got more",
];

/// Where a value sits: an entry's fields in `KEYS` order, then `services` and one service.
const FIELD_SERVICES: u8 = 4;
/// A service's entry, in `EXPECTED`.
const FIELD_SERVICE: u8 = 5;

/// What each field expects, by field (`KEYS`, then `services`, then a
/// service); `wrong` adds what was found instead.
const EXPECTED: [&str; 6] = [
    "status: expected a string",
    "weight: expected a whole number 0-255",
    "maxconn: expected a whole number 0-65535",
    "reason: expected a string",
    "services: expected an object",
    "service: expected an object",
];

/// What was found instead, by the kind of value (`wrong`); the last is what a
/// number field says of a number it cannot take.
const FOUND: [&str; 7] = [
    ", got a string",
    ", got a number",
    ", got true or false",
    ", got null",
    ", got an object",
    ", got an array",
    ", got another number",
];

/// The index in `FOUND` of a number a number field cannot take.
const ANOTHER: u8 = 6;

/// The message for a key given twice, by field as in `EXPECTED`.
const TWICE: [&str; 6] = [
    "status: given twice",
    "weight: given twice",
    "maxconn: given twice",
    "reason: given twice",
    "services: given twice",
    "service name: given twice",
];

/// Checks that a reason is printable ASCII without `#` and short enough.
pub fn check_reason(r: &[u8]) -> Result<(), StateError> {
    if r.len() > REASON_MAX {
        return Err(StateError::REASON_TOO_LONG);
    }
    if r.iter().any(|&c| !(0x20..0x7f).contains(&c) || c == b'#') {
        return Err(StateError::REASON_INVALID);
    }
    Ok(())
}

/// Checks that a service name is 1 to 32 bytes of `[A-Za-z0-9_.-]`.
pub fn check_name(n: &[u8]) -> Result<(), StateError> {
    let ok = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-');
    if n.is_empty() || n.len() > NAME_MAX || !n.iter().all(ok) {
        return Err(StateError::BAD_NAME);
    }
    Ok(())
}

/// The keys of an entry's fields, in the order `Fields` holds them.
const KEYS: [&[u8]; 4] = [b"status", b"weight", b"maxconn", b"reason"];

/// A value as found: a string or scalar, or the kind of container that was there instead.
#[derive(Clone, Copy)]
enum Val<'a> {
    /// A string, number, `true`, `false` or `null`.
    Tok(Token<'a>),
    /// An object, not read.
    Object,
    /// An array, not read.
    Array,
}

/// Reads a string or scalar, or tells which container is at the reader without reading it.
fn val<'a>(r: &mut Reader<'a>) -> Result<Val<'a>, StateError> {
    Ok(match r.peek() {
        Some(b'{') => Val::Object,
        Some(b'[') => Val::Array,
        _ => Val::Tok(r.token()?),
    })
}

/// The error for `field` (an index of `EXPECTED`) holding `v`.
fn wrong(field: usize, v: Val) -> StateError {
    let kind = match v {
        // A status or reason string is checked on its own (`BAD_STATUS`, `REASON_INVALID`).
        Val::Tok(Token::Str(_)) => 0,
        // The reader's bare tokens are numbers, `true`, `false` and `null`:
        // the first letter tells the words apart.
        Val::Tok(Token::Bare([b't' | b'f', ..])) => 2,
        Val::Tok(Token::Bare([b'n', ..])) => 3,
        Val::Tok(Token::Bare(_)) if matches!(field, 1 | 2) => ANOTHER,
        Val::Tok(Token::Bare(_)) => 1,
        Val::Object => 4,
        Val::Array => 5,
    };
    StateError::Wrong(field as u8, kind)
}

/// The fields of one entry as the file has them, in `KEYS` order, before any
/// check; `null` is kept, to tell a field given twice.
#[derive(Default)]
struct Fields<'a>([Option<Token<'a>>; 4]);

impl<'a> Fields<'a> {
    /// Takes the value of the (raw) `key` if it is an entry field; returns false for other keys.
    fn take(&mut self, r: &mut Reader<'a>, key: &[u8]) -> Result<bool, StateError> {
        let Some(i) = KEYS.iter().position(|k| json::is_key(key, k)) else {
            return Ok(false);
        };
        if self.0[i].is_some() {
            return Err(StateError::Twice(i as u8));
        }
        match val(r)? {
            Val::Tok(t) => self.0[i] = Some(t),
            v => return Err(wrong(i, v)),
        }
        Ok(true)
    }

    /// Tells whether no field is set, other than to `null`.
    fn is_empty(&self) -> bool {
        (0..KEYS.len()).all(|i| self.get(i).is_none())
    }

    /// Returns field `i` unless it is absent or `null`.
    fn get(&self, i: usize) -> Option<Token<'a>> {
        self.0[i].filter(|t| !t.is_null())
    }
}

impl From<Syntax> for StateError {
    fn from(s: Syntax) -> StateError {
        StateError::Syntax(s)
    }
}

/// Reads field `i`, an optional whole number no larger than `max` (`-0` is 0).
fn number(f: &Fields, i: usize, max: u32) -> Result<Option<u32>, StateError> {
    let t = match f.get(i) {
        None => return Ok(None),
        Some(Token::Bare(t)) => t,
        Some(t) => return Err(wrong(i, Val::Tok(t))),
    };
    // parse_u32 refuses any other sign.
    let v = if t == b"-0" {
        Some(0)
    } else {
        num::parse_u32(t)
    };
    match v {
        Some(v) if v <= max => Ok(Some(v)),
        _ => Err(wrong(i, Val::Tok(Token::Bare(t)))),
    }
}

/// Checks one entry's fields and builds it; `missing` is the error for an entry without a status.
fn entry(f: &Fields, missing: StateError) -> Result<Entry, StateError> {
    let status = match f.get(0) {
        None => return Err(missing),
        Some(Token::Str(raw)) => {
            let mut name: Vec<u8, 8> = Vec::new();
            json::unescape(raw, &mut name)
                .then(|| Status::parse(&name))
                .flatten()
                .ok_or(StateError::BAD_STATUS)?
        }
        Some(t) => return Err(wrong(0, Val::Tok(t))),
    };
    let weight = number(f, 1, 255)?.unwrap_or(100) as u8;
    let maxconn = number(f, 2, 65535)?.map(|m| m as u16);
    let mut reason = Reason::new();
    match f.get(3) {
        None => {}
        Some(Token::Str(raw)) => {
            // The reader checked the escapes: only a text too long fails here.
            let mut text: Vec<u8, { REASON_MAX + 1 }> = Vec::new();
            if !json::unescape(raw, &mut text) {
                return Err(StateError::REASON_TOO_LONG);
            }
            check_reason(&text)?;
            // check_reason allowed printable ASCII only, no longer than the capacity.
            let _ = reason.push_str(crate::os::ascii_str(&text).unwrap_or(""));
        }
        Some(t) => return Err(wrong(3, Val::Tok(t))),
    }
    Ok(Entry {
        status,
        weight,
        maxconn,
        reason,
    })
}

/// Reads an entry's object into `f`, skipping the members that are not entry
/// fields; at the top level (`top` given) `services` is read into `top`.
fn fields<'a>(
    r: &mut Reader<'a>,
    f: &mut Fields<'a>,
    mut top: Option<&mut State>,
) -> Result<(), StateError> {
    let mut first = true;
    let mut seen = false;
    r.open(b'{')?;
    while let Some(key) = r.next_key(&mut first)? {
        match top.as_deref_mut() {
            Some(state) if json::is_key(key, b"services") => {
                if core::mem::replace(&mut seen, true) {
                    return Err(StateError::Twice(FIELD_SERVICES));
                }
                services(r, state)?;
            }
            _ if f.take(r, key)? => {}
            _ => r.skip()?,
        }
    }
    Ok(())
}

/// Reads the value of `services` into `state`; `null` names none.
fn services(r: &mut Reader, state: &mut State) -> Result<(), StateError> {
    match val(r)? {
        Val::Object => {}
        Val::Tok(t) if t.is_null() => return Ok(()),
        v => return Err(wrong(FIELD_SERVICES as usize, v)),
    }
    let mut first = true;
    r.open(b'{')?;
    while let Some(raw) = r.next_key(&mut first)? {
        let mut name: Vec<u8, NAME_MAX> = Vec::new();
        if !json::unescape(raw, &mut name) {
            return Err(StateError::BAD_NAME);
        }
        check_name(&name)?;
        if state.service(&name).is_some() {
            return Err(StateError::Twice(FIELD_SERVICE));
        }
        match val(r)? {
            Val::Object => {}
            v => return Err(wrong(FIELD_SERVICE as usize, v)),
        }
        let mut f = Fields::default();
        fields(r, &mut f, None)?;
        let e = entry(&f, StateError::SERVICE_STATUS)?;
        let mut n = Name::new();
        // check_name bounded the length and the bytes, so this cannot fail.
        let _ = n.push_str(crate::os::ascii_str(&name).unwrap_or(""));
        state
            .services
            .push((n, e))
            .map_err(|_| StateError::TOO_MANY_SERVICES)?;
    }
    Ok(())
}

/// Parses a state file's bytes. A byte order mark at the start is skipped;
/// `null` is the same as leaving a field out; a known field, `services` or a
/// service given twice is an error; unknown fields are skipped, any JSON.
pub fn parse(bytes: &[u8]) -> Result<State, StateError> {
    if bytes.len() > FILE_MAX {
        return Err(StateError::TOO_LARGE);
    }
    let mut state = State::default();
    let mut top = Fields::default();
    let mut r = Reader::new(bytes);
    fields(&mut r, &mut top, Some(&mut state))?;
    r.end()?;
    match entry(&top, StateError::MISSING_STATUS) {
        Ok(e) => state.top = Some(e),
        // Services stand in for a top-level entry; an empty object does not.
        Err(_) if top.is_empty() && !state.services.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(state)
}

/// Appends a state file's bytes, remembering whether any did not fit.
struct Out<'a> {
    buf: &'a mut Vec<u8, FILE_MAX>,
    full: bool,
}

impl Out<'_> {
    /// Appends `s`, or notes that it did not fit.
    fn put(&mut self, s: &[u8]) {
        self.full |= num::push(self.buf, s).is_err();
    }

    /// Appends `n` in decimal.
    fn put_u32(&mut self, n: u32) {
        let mut b = [0u8; 10];
        self.put(num::fmt_u32(n, &mut b));
    }
}

/// Appends one entry's members, without the braces.
fn write_entry(e: &Entry, out: &mut Out) {
    out.put(b"\"status\":\"");
    out.put(e.status.name().as_bytes());
    out.put(b"\",\"weight\":");
    out.put_u32(e.weight as u32);
    if let Some(m) = e.maxconn {
        out.put(b",\"maxconn\":");
        out.put_u32(m as u32);
    }
    if !e.reason.is_empty() {
        // A checked reason has no `"` escapes to worry about but `\` and `"`.
        out.put(b",\"reason\":\"");
        for &c in e.reason.as_bytes() {
            if c == b'"' || c == b'\\' {
                out.put(b"\\");
            }
            out.put(&[c]);
        }
        out.put(b"\"");
    }
}

/// Writes a state as a JSON file that `parse` reads back to the same state.
pub fn write(state: &State, buf: &mut Vec<u8, FILE_MAX>) -> Result<(), Full> {
    buf.clear();
    let out = &mut Out { buf, full: false };
    out.put(b"{");
    if let Some(t) = &state.top {
        write_entry(t, out);
    }
    if !state.services.is_empty() {
        // A comma only after the top level's members.
        out.put(&b",\"services\":{"[state.top.is_none() as usize..]);
        for (i, (name, e)) in state.services.iter().enumerate() {
            // A comma only between services.
            out.put(&b",\""[(i == 0) as usize..]);
            out.put(name.as_bytes());
            out.put(b"\":{");
            write_entry(e, out);
            out.put(b"}");
        }
        out.put(b"}");
    }
    out.put(b"}\n");
    if out.full {
        return Err(Full);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_status_as_the_file_spells_it() {
        let names = STATUSES.map(Status::name);
        assert_eq!(
            names,
            ["UP", "READY", "DRAIN", "MAINT", "DOWN", "FAIL", "STOPPED"]
        );
    }

    fn p(s: &str) -> Result<State, StateError> {
        parse(s.as_bytes())
    }

    #[test]
    fn reads_hapgent_files() {
        let s = p(r#"{"status":"UP","maxconn":300,"weight":77}"#).unwrap();
        let t = s.top.unwrap();
        assert_eq!((t.status, t.weight, t.maxconn), (Status::Up, 77, Some(300)));
        assert_eq!(p(r#"{"status":"ready"}"#).unwrap().top.unwrap().weight, 100);
        assert_eq!(
            p(r#"{"status":"DoWn","maxconn":10}"#)
                .unwrap()
                .top
                .unwrap()
                .status,
            Status::Down
        );
        assert_eq!(
            p(" {\"status\":\"STOPPED\"}\n")
                .unwrap()
                .top
                .unwrap()
                .status,
            Status::Stopped
        );
    }

    #[test]
    fn ignores_unknown_fields() {
        assert!(p(r#"{"status":"UP","comment":"x","n":[1,2]}"#).is_ok());
    }

    #[test]
    fn refuses_bad_values() {
        assert_eq!(
            p(r#"{"status":"UP","weight":256}"#),
            Err(StateError::WEIGHT_RANGE)
        );
        assert_eq!(
            p(r#"{"status":"UP","weight":-1}"#),
            Err(StateError::WEIGHT_RANGE)
        );
        assert_eq!(
            p(r#"{"status":"UP","maxconn":65536}"#),
            Err(StateError::MAXCONN_RANGE)
        );
        assert_eq!(p(r#"{"status":"UPP"}"#), Err(StateError::BAD_STATUS));
        assert_eq!(p(r#"{"weight":5}"#), Err(StateError::MISSING_STATUS));
        assert_eq!(p(r#"{}"#), Err(StateError::MISSING_STATUS));
        for (text, msg) in [
            (r#"{"status":"UP""#, "expected ',' or '}' in an object"),
            (r#"{"status":"UP"} x"#, "bytes after the JSON value"),
            ("", "expected an object"),
        ] {
            assert_eq!(why(text), msg, "{text}");
        }
        assert_eq!(parse(&[b' '; FILE_MAX + 1]), Err(StateError::TOO_LARGE));
    }

    /// The error for `text`, as a string.
    fn why(text: &str) -> std::string::String {
        match p(text) {
            Ok(s) => panic!("{text} parsed: {s:?}"),
            Err(e) => [e.parts().0, e.parts().1].concat(),
        }
    }

    #[test]
    fn errors_name_the_field_and_what_was_expected() {
        for (text, msg) in [
            (
                r#"{"status":"UP","weight":"77"}"#,
                "weight: expected a whole number 0-255, got a string",
            ),
            (
                r#"{"status":"UP","weight":7.5}"#,
                "weight: expected a whole number 0-255, got another number",
            ),
            (
                r#"{"status":"UP","weight":1e2}"#,
                "weight: expected a whole number 0-255, got another number",
            ),
            (
                r#"{"status":"UP","weight":-1}"#,
                "weight: expected a whole number 0-255, got another number",
            ),
            (
                r#"{"status":"UP","weight":99999999999}"#,
                "weight: expected a whole number 0-255, got another number",
            ),
            (
                r#"{"status":"UP","weight":true}"#,
                "weight: expected a whole number 0-255, got true or false",
            ),
            (
                r#"{"status":"UP","weight":{}}"#,
                "weight: expected a whole number 0-255, got an object",
            ),
            (
                r#"{"status":"UP","weight":[1]}"#,
                "weight: expected a whole number 0-255, got an array",
            ),
            (
                r#"{"status":"UP","maxconn":"1"}"#,
                "maxconn: expected a whole number 0-65535, got a string",
            ),
            (
                r#"{"status":"UP","maxconn":65536}"#,
                "maxconn: expected a whole number 0-65535, got another number",
            ),
            (
                r#"{"status":"UP","maxconn":false}"#,
                "maxconn: expected a whole number 0-65535, got true or false",
            ),
            (
                r#"{"status":"UP","maxconn":{}}"#,
                "maxconn: expected a whole number 0-65535, got an object",
            ),
            (
                r#"{"status":"UP","maxconn":[]}"#,
                "maxconn: expected a whole number 0-65535, got an array",
            ),
            (
                r#"{"status":"UPP"}"#,
                "status: expected one of UP READY DRAIN MAINT DOWN FAIL STOPPED",
            ),
            (
                r#"{"status":"\u00dcP"}"#,
                "status: expected one of UP READY DRAIN MAINT DOWN FAIL STOPPED",
            ),
            (r#"{"status":1}"#, "status: expected a string, got a number"),
            (
                r#"{"status":true}"#,
                "status: expected a string, got true or false",
            ),
            (
                r#"{"status":{"a":1}}"#,
                "status: expected a string, got an object",
            ),
            (
                r#"{"status":["UP"]}"#,
                "status: expected a string, got an array",
            ),
            (
                r#"{"weight":5}"#,
                "status: missing (needed unless only services are given)",
            ),
            (
                r#"{"status":null}"#,
                "status: missing (needed unless only services are given)",
            ),
            (
                r#"{"services":null}"#,
                "status: missing (needed unless only services are given)",
            ),
            (
                r#"{"weight":5,"services":{"a":{"status":"UP"}}}"#,
                "status: missing (needed unless only services are given)",
            ),
            (
                r#"{"status":"DOWN","reason":5}"#,
                "reason: expected a string, got a number",
            ),
            (
                r#"{"status":"DOWN","reason":false}"#,
                "reason: expected a string, got true or false",
            ),
            (
                r#"{"status":"DOWN","reason":{}}"#,
                "reason: expected a string, got an object",
            ),
            (
                r#"{"status":"DOWN","reason":["a"]}"#,
                "reason: expected a string, got an array",
            ),
            (
                r#"{"status":"DOWN","reason":"a#b"}"#,
                "reason: expected printable ASCII without a hash sign",
            ),
            (
                r#"{"status":"UP","services":"web"}"#,
                "services: expected an object, got a string",
            ),
            (
                r#"{"status":"UP","services":1}"#,
                "services: expected an object, got a number",
            ),
            (
                r#"{"status":"UP","services":true}"#,
                "services: expected an object, got true or false",
            ),
            (
                r#"{"status":"UP","services":[]}"#,
                "services: expected an object, got an array",
            ),
            (
                r#"{"services":{"a":"UP"}}"#,
                "service: expected an object, got a string",
            ),
            (
                r#"{"services":{"a":1}}"#,
                "service: expected an object, got a number",
            ),
            (
                r#"{"services":{"a":true}}"#,
                "service: expected an object, got true or false",
            ),
            (
                r#"{"services":{"a":null}}"#,
                "service: expected an object, got null",
            ),
            (
                r#"{"services":{"a":[]}}"#,
                "service: expected an object, got an array",
            ),
            (
                r#"{"services":{"a":{"weight":1}}}"#,
                "status: missing in a service",
            ),
            (
                r#"{"services":{"":{"status":"UP"}}}"#,
                "service name: expected 1 to 32 of [A-Za-z0-9_.-]",
            ),
            (
                r#"{"services":{"a\u00e9":{"status":"UP"}}}"#,
                "service name: expected 1 to 32 of [A-Za-z0-9_.-]",
            ),
            (r#"{"status":"UP","status":"UP"}"#, "status: given twice"),
            (
                r#"{"status":"UP","weight":1,"weight":1}"#,
                "weight: given twice",
            ),
            (
                r#"{"status":"UP","maxconn":null,"maxconn":1}"#,
                "maxconn: given twice",
            ),
            (
                r#"{"status":"UP","reason":"a","re\u0061son":"b"}"#,
                "reason: given twice",
            ),
            (
                r#"{"status":"UP","services":{},"services":{}}"#,
                "services: given twice",
            ),
            (
                r#"{"services":{"a":{"status":"UP"},"\u0061":{"status":"UP"}}}"#,
                "service name: given twice",
            ),
            (
                r#"{"services":{"a":{"status":"UP","status":"UP"}}}"#,
                "status: given twice",
            ),
            ("[]", "expected an object"),
            (r#"{"status":"UP","x":[1,]}"#, "expected a value"),
        ] {
            assert_eq!(why(text), msg, "{text}");
        }
        let many = std::format!(
            r#"{{"services":{{{}}}}}"#,
            (0..17)
                .map(|i| std::format!(r#""s{i}":{{"status":"UP"}}"#))
                .collect::<std::vec::Vec<_>>()
                .join(",")
        );
        assert_eq!(why(&many), "services: expected at most 16, got more");
        let long = std::format!(r#"{{"status":"DOWN","reason":"{}"}}"#, "x".repeat(65));
        assert_eq!(why(&long), "reason: expected at most 64 bytes");
    }

    #[test]
    fn messages_can_be_a_reason() {
        // A FAIL reply carries the message as its reason, and a signal may write it to the file.
        let all = EXPECTED.iter().chain(&FOUND).chain(&TWICE).chain(&PLAIN);
        for m in all {
            assert!(
                m.bytes().all(|c| (0x20..0x7f).contains(&c) && c != b'#'),
                "{m}"
            );
        }
    }

    #[test]
    fn reads_any_json_the_format_allows() {
        // Escaped keys and values, -0, nulls as absent, a byte order mark.
        let s = p(r#"{"st\u0061tus":"\u0055P","w\u0065ight":-0,"maxconn":null,"reason":null,"services":null}"#)
            .unwrap();
        let t = s.top.unwrap();
        assert_eq!((t.status, t.weight, t.maxconn), (Status::Up, 0, None));
        assert!(s.services.is_empty());
        let s =
            p(r#"{"status":null,"services":{"w\u0065b":{"status":"UP","weight":null}}}"#).unwrap();
        assert!(s.top.is_none());
        assert_eq!(s.service(b"web").unwrap().weight, 100);
        assert!(parse(b"\xef\xbb\xbf{\"status\":\"UP\"}").is_ok());
        // Unknown fields hold any JSON, nested as deep as the file allows.
        let deep = std::format!(
            r#"{{"status":"UP","x":{}{}}}"#,
            "[".repeat(1000),
            "]".repeat(1000)
        );
        assert!(p(&deep).is_ok());
        assert!(p(r#"{"status":"UP","x":{"a":1,"a":"\ud800","b":1e400,"c":-0.0E+1}}"#).is_ok());
        // Within unknown fields only valid JSON.
        for bad in [
            &b"{\"status\":\"UP\",\"x\":\"\xff\"}"[..],
            b"{\"status\":\"UP\",\"x\":077}",
            b"{\"status\":\"UP\",\"x\":1.}",
            b"{\"status\":\"UP\",\"x\":-}",
            b"{\"status\":\"UP\",\"x\":\"\\q\"}",
            b"{\"status\":\"UP\",\x0c\"x\":1}",
        ] {
            assert!(
                parse(bad).is_err(),
                "{:?}",
                std::string::String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn checks_reasons() {
        let s = p(r#"{"status":"DOWN","reason":"deploy 42"}"#).unwrap();
        assert_eq!(s.top.unwrap().reason.as_str(), "deploy 42");
        assert_eq!(
            p(r#"{"status":"DOWN","reason":"a\nb"}"#),
            Err(StateError::REASON_INVALID)
        );
        assert_eq!(
            p(r#"{"status":"DOWN","reason":"a\rb"}"#),
            Err(StateError::REASON_INVALID)
        );
        assert_eq!(
            p(r#"{"status":"DOWN","reason":"a#b"}"#),
            Err(StateError::REASON_INVALID)
        );
        assert_eq!(
            p(r#"{"status":"DOWN","reason":"\u00e9"}"#),
            Err(StateError::REASON_INVALID)
        );
        let long = std::format!(r#"{{"status":"DOWN","reason":"{}"}}"#, "x".repeat(65));
        assert_eq!(p(&long), Err(StateError::REASON_TOO_LONG));
        let max = std::format!(r#"{{"status":"DOWN","reason":"{}"}}"#, "x".repeat(64));
        assert!(p(&max).is_ok());
    }

    #[test]
    fn reads_services() {
        let s = p(r#"{"services":{"web":{"status":"UP","weight":50},"db-1":{"status":"drain"}}}"#)
            .unwrap();
        assert!(s.top.is_none());
        assert_eq!(s.service(b"web").unwrap().weight, 50);
        assert_eq!(s.service(b"db-1").unwrap().status, Status::Drain);
        assert_eq!(
            p(r#"{"services":{"a b":{"status":"UP"}}}"#),
            Err(StateError::BAD_NAME)
        );
        assert_eq!(
            p(r#"{"services":{"a":{"weight":1}}}"#),
            Err(StateError::SERVICE_STATUS)
        );
        let s = p(r#"{"status":"MAINT","services":{"a":{"status":"UP"}}}"#).unwrap();
        assert_eq!(s.top.unwrap().status, Status::Maint);
    }

    #[test]
    fn round_trips() {
        for text in [
            r#"{"status":"UP","weight":77,"maxconn":300}"#,
            r#"{"status":"DOWN","weight":0,"reason":"say \"hi\" \\o/"}"#,
            r#"{"status":"FAIL","services":{"a":{"status":"MAINT","weight":255,"maxconn":0}}}"#,
            r#"{"services":{"x.y_z":{"status":"READY"}}}"#,
        ] {
            let s = p(text).unwrap();
            let mut out = Vec::new();
            write(&s, &mut out).unwrap();
            assert_eq!(
                parse(&out).unwrap(),
                s,
                "{}",
                core::str::from_utf8(&out).unwrap()
            );
        }
    }
}
