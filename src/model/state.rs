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

/// Every status's name as the state file spells it, run together in `STATUSES` order.
const NAMES: &str = "UPREADYDRAINMAINTDOWNFAILSTOPPED";
/// Where each name starts in `NAMES`, and where the last one ends.
const NAME_ENDS: [u8; 8] = [0, 2, 7, 12, 17, 21, 25, 32];

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
        let i = self as usize;
        NAMES
            .get(NAME_ENDS[i] as usize..NAME_ENDS[i + 1] as usize)
            .unwrap_or("")
    }

    /// Numbers the status for storing in an atomic.
    pub fn index(self) -> u8 {
        self as u8
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

/// Why a state file was refused, in a few words for logs and the FAIL reason.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StateError(pub &'static str);

impl StateError {
    /// Larger than `FILE_MAX`.
    pub const TOO_LARGE: StateError = StateError("file larger than 4096 bytes");
    /// No `status` and no `services`.
    pub const MISSING_STATUS: StateError = StateError("status missing");
    /// A `status` that is not one of the seven names.
    pub const BAD_STATUS: StateError =
        StateError("status not one of UP READY DRAIN MAINT DOWN FAIL STOPPED");
    /// `weight` outside 0 to 255.
    pub const WEIGHT_RANGE: StateError = StateError("weight out of range");
    /// `maxconn` outside 0 to 65535.
    pub const MAXCONN_RANGE: StateError = StateError("maxconn out of range");
    /// `reason` longer than 64 bytes.
    pub const REASON_TOO_LONG: StateError = StateError("reason longer than 64 bytes");
    /// `reason` with a byte that is not printable ASCII, or with `#`.
    pub const REASON_INVALID: StateError =
        StateError("reason not printable ASCII, or with a hash sign");
    /// A service name that is empty, too long or has other bytes.
    pub const BAD_NAME: StateError = StateError("service name not [A-Za-z0-9_.-]{1,32}");
    /// A service without a valid state.
    pub const SERVICE_STATUS: StateError = StateError("service status missing or invalid");
    /// A value of the wrong type.
    const WRONG_TYPE: StateError = StateError("value of the wrong type");
}

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

/// The fields of one entry as the file has them, in `KEYS` order, before any check.
#[derive(Default)]
struct Fields<'a>([Option<Token<'a>>; 4]);

impl<'a> Fields<'a> {
    /// Takes the value of `key` if it is an entry field; returns false for other keys.
    fn take(&mut self, r: &mut Reader<'a>, key: &[u8]) -> Result<bool, StateError> {
        let Some(i) = KEYS.iter().position(|k| *k == key) else {
            return Ok(false);
        };
        self.0[i] = Some(r.token()?);
        Ok(true)
    }

    /// Tells whether no field is set.
    fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

impl From<Syntax> for StateError {
    fn from(s: Syntax) -> StateError {
        StateError(s.0)
    }
}

/// Reads an optional whole number no larger than `max`; `null` is absent.
fn number(t: Option<Token>, max: u32, range: StateError) -> Result<Option<u32>, StateError> {
    let t = match t {
        None | Some(Token::Bare(b"null")) => return Ok(None),
        Some(Token::Bare(t)) => t,
        Some(Token::Str(_)) => return Err(StateError::WRONG_TYPE),
    };
    let digits = t.strip_prefix(b"-").unwrap_or(t);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(StateError("number not a whole number"));
    }
    match num::parse_u32(t) {
        Some(v) if v <= max => Ok(Some(v)),
        _ => Err(range),
    }
}

/// Checks one entry's fields and builds it; `missing` is the error for an entry without a status.
fn entry(f: &Fields, missing: StateError) -> Result<Entry, StateError> {
    let [status, weight, maxconn, raw_reason] = f.0;
    let status = match status {
        None => return Err(missing),
        Some(Token::Str(s)) => Status::parse(s).ok_or(StateError::BAD_STATUS)?,
        Some(Token::Bare(_)) => return Err(StateError::WRONG_TYPE),
    };
    let weight = number(weight, 255, StateError::WEIGHT_RANGE)?.unwrap_or(100) as u8;
    let maxconn = number(maxconn, 65535, StateError::MAXCONN_RANGE)?.map(|m| m as u16);
    let mut reason = Reason::new();
    match raw_reason {
        None | Some(Token::Bare(b"null")) => {}
        Some(Token::Str(raw)) => {
            let mut text: Vec<u8, 256> = Vec::new();
            if !json::unescape(raw, &mut text) {
                return Err(if raw.len() > text.capacity() {
                    StateError::REASON_TOO_LONG
                } else {
                    StateError("bad escape in a string")
                });
            }
            check_reason(&text)?;
            // check_reason allowed printable ASCII only, no longer than the capacity.
            let _ = reason.push_str(crate::os::ascii_str(&text).unwrap_or(""));
        }
        Some(Token::Bare(_)) => return Err(StateError::WRONG_TYPE),
    }
    Ok(Entry {
        status,
        weight,
        maxconn,
        reason,
    })
}

/// Reads an entry's object into `f`; with `state`, reads `services` into it
/// too, and with `services` as well, reads the object as the named entries.
fn object<'a>(
    r: &mut Reader<'a>,
    f: &mut Fields<'a>,
    mut state: Option<&mut State>,
    services: bool,
) -> Result<(), StateError> {
    let mut first = true;
    r.open(b'{')?;
    while let Some(key) = r.next_key(&mut first)? {
        match state.as_deref_mut() {
            Some(state) if services => named(r, state, key)?,
            Some(state) if key == b"services" => object(r, f, Some(state), true)?,
            _ => {
                if !f.take(r, key)? {
                    r.skip()?;
                }
            }
        }
    }
    Ok(())
}

/// Reads the entry of the service `name` into `state`.
fn named(r: &mut Reader, state: &mut State, name: &[u8]) -> Result<(), StateError> {
    check_name(name)?;
    if state.service(name).is_some() {
        return Err(StateError("a service named twice"));
    }
    let mut f = Fields::default();
    object(r, &mut f, None, false)?;
    let e = entry(&f, StateError::SERVICE_STATUS)?;
    let mut n = Name::new();
    // check_name bounded the length and the bytes, so this cannot fail.
    let _ = n.push_str(crate::os::ascii_str(name).unwrap_or(""));
    state
        .services
        .push((n, e))
        .map_err(|_| StateError("more than 16 services"))
}

/// Parses a state file's bytes.
pub fn parse(bytes: &[u8]) -> Result<State, StateError> {
    if bytes.len() > FILE_MAX {
        return Err(StateError::TOO_LARGE);
    }
    let mut state = State::default();
    let mut top = Fields::default();
    let mut r = Reader::new(bytes);
    object(&mut r, &mut top, Some(&mut state), false)?;
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
        for (text, why) in [
            (
                r#"{"status":"UP","weight":7.5}"#,
                "number not a whole number",
            ),
            (r#"{"status":"UP""#, "expected ',' or '}' in an object"),
            (r#"{"status":"UP"} x"#, "bytes after the JSON value"),
            ("", "expected an object"),
        ] {
            assert_eq!(p(text), Err(StateError(why)), "{text}");
        }
        assert_eq!(parse(&[b' '; FILE_MAX + 1]), Err(StateError::TOO_LARGE));
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
