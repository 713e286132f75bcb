//! The state file: any bytes a deploy script or a human may leave in it.
//!
//! Properties, for every input that `state::parse` accepts:
//! - it has at least one entry (a top level or a service);
//! - every entry formats (through `reply::format` and through `Agent`, as the
//!   agent serves it) to exactly the line an independent `format!` oracle
//!   builds from the README's grammar, and that line is one valid line:
//!   lowercase words, ends in exactly one `\n`, no other control bytes,
//!   at most `reply::LINE_MAX` bytes;
//! - `state::write` never runs out of room for it, and parse ∘ write gives the
//!   same state back, and write ∘ parse ∘ write the same bytes.
//! For inputs it refuses: the FAIL line the agent serves instead is valid too.
#![no_main]

use heft::model::agent::{Agent, LoadError};
use heft::model::reply::{self, Line, Reply, LINE_MAX};
use heft::model::state::{self, Entry, Status};
use heft::time::Instant;
use libfuzzer_sys::fuzz_target;

/// The README's reply grammar, built without any of heft's code.
fn expected(e: &Entry, ready: bool) -> String {
    let (health, admin) = match e.status {
        Status::Up | Status::Ready => ("up ", "ready "),
        Status::Drain => ("up ", "drain "),
        Status::Maint => ("", "maint "),
        Status::Down => ("down ", "ready "),
        Status::Fail => ("fail ", "ready "),
        Status::Stopped => ("stopped ", "ready "),
    };
    let admin = if !ready && admin == "ready " { "" } else { admin };
    let mut s = format!("{health}{admin}{}%", e.weight);
    if let Some(m) = e.maxconn {
        s += &format!(" maxconn:{m}");
    }
    if e.status.is_down() && !e.reason.is_empty() {
        s += &format!(" #{}", e.reason);
    }
    s + "\n"
}

/// One valid agent line: lowercase words, one final `\n`, no other control bytes.
fn check_line(line: &[u8]) {
    assert!(!line.is_empty() && line.len() <= LINE_MAX, "length {}", line.len());
    assert_eq!(line.last(), Some(&b'\n'), "{line:?}");
    let body = &line[..line.len() - 1];
    assert!(
        body.iter().all(|&c| (0x20..0x7f).contains(&c)),
        "control or non-ASCII byte in {line:?}"
    );
    let words = match body.windows(2).position(|w| w == b" #") {
        Some(p) => &body[..p],
        None => body,
    };
    for w in words.split(|&c| c == b' ') {
        assert!(!w.is_empty(), "empty word in {line:?}");
        assert!(
            w.iter()
                .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'%' || c == b':'),
            "word {:?} in {line:?}",
            String::from_utf8_lossy(w)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    heft::log::set_level(heft::log::Level::Error);
    let mut agent = Agent::new(None);
    let s = match state::parse(data) {
        Ok(s) => s,
        Err(e) => {
            assert!(!e.parts().0.is_empty());
            agent.load(Err(LoadError::Invalid(e)), Instant::default());
            let line = agent.reply(None);
            check_line(line);
            assert!(line.starts_with(b"fail ready 100% #state file: "), "{line:?}");
            return;
        }
    };
    // A state names at least one entry: a top level or a service.
    assert!(s.top.is_some() || !s.services.is_empty(), "a state with no entry");
    assert!(s.services.len() <= state::SERVICES_MAX);

    // Every entry, formatted directly and as the agent serves it.
    agent.load(Ok(s.clone()), Instant::default());
    let entries = s
        .top
        .iter()
        .map(|e| (None, e))
        .chain(s.services.iter().map(|(n, e)| (Some(n.as_bytes()), e)));
    for (name, e) in entries {
        if let Some(n) = name {
            assert!(state::check_name(n).is_ok());
        }
        assert!(state::check_reason(e.reason.as_bytes()).is_ok());
        for ready in [false, true] {
            let mut line = Line::new();
            reply::format(
                &Reply {
                    status: e.status,
                    weight: e.weight,
                    maxconn: e.maxconn,
                    reason: e.reason.as_bytes(),
                },
                ready,
                &mut line,
            );
            check_line(&line);
            assert_eq!(
                String::from_utf8_lossy(&line),
                expected(e, ready),
                "reply for {:?}",
                name.map(String::from_utf8_lossy)
            );
        }
        let served = agent.reply(name);
        check_line(served);
        assert_eq!(String::from_utf8_lossy(served), expected(e, true));
    }
    // A name the file does not have gets the top level, or "unknown service".
    let other = agent.reply(Some(b"-no-such-service-name-is-this-long-"));
    check_line(other);
    match &s.top {
        Some(t) => assert_eq!(String::from_utf8_lossy(other), expected(t, true)),
        None => assert_eq!(other, reply::UNKNOWN_SERVICE),
    }

    // parse ∘ write round-trips; write ∘ parse ∘ write is stable.
    let mut out = heapless::Vec::<u8, { state::FILE_MAX }>::new();
    state::write(&s, &mut out).expect("a state that parses must fit in a state file");
    let again = state::parse(&out).unwrap_or_else(|e| {
        panic!(
            "written file does not parse ({}): {}",
            e.parts().0,
            String::from_utf8_lossy(&out)
        )
    });
    assert_eq!(again, s, "{}", String::from_utf8_lossy(&out));
    let mut out2 = heapless::Vec::<u8, { state::FILE_MAX }>::new();
    state::write(&again, &mut out2).unwrap();
    assert_eq!(out, out2);
});
