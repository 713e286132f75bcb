//! The first bytes a client sends on the agent port: an `agent-send` payload or
//! an HTTP request line, and the HTTP response heft builds for the latter.
//!
//! Input: one flag byte (bit 0: `done`, bit 1: `want_word`, bit 2: the agent
//! serves the largest state a file may hold, bits 3..: counters), then the bytes.
//!
//! Properties of `request::classify`:
//! - never `Partial` once `done`; every slice it returns lies inside the input;
//! - an HTTP path follows `GET `/`HEAD ` and ends at a space, CR, LF or the end;
//!   a request line is HTTP as soon as its path has ended, never a probe;
//! - with services (`want_word`), the answer to a payload is exactly what an
//!   independent reading of the rule gives: the service is the first word of
//!   the first line (a line ends at LF, CR or NUL; words are separated by
//!   space, tab or comma), decided once the line ends or a separator follows
//!   the word, `Partial` before that until `done`; without services, a
//!   payload that cannot become `GET `/`HEAD ` is answered at once;
//! - consistent: once a prefix is classified (not `Partial`), every longer
//!   input and the same input at `done` classify the same way.
//! Properties of `http::respond` for every HTTP request: one status line (200
//! or 503), CRLF headers, `Content-Length` equal to the body's length (no body
//! for HEAD), within `http::RESPONSE_MAX`; the body is the agent's reply for
//! the path's service (200 exactly when it starts `up `), or whole metrics.
#![no_main]

use heft::model::agent::Agent;
use heft::proto::http;
use heft::proto::request::{classify, Request};
use heft::proto::http::Counters;
use heft::model::state;
use heft::time::Instant;
use libfuzzer_sys::fuzz_target;

/// Ends the payload's first line.
fn is_line_end(c: u8) -> bool {
    matches!(c, b'\n' | b'\r' | 0)
}

/// Separates words on the payload's first line.
fn is_word_sep(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b',')
}

fn inside(buf: &[u8], s: &[u8]) -> usize {
    let (b, p) = (buf.as_ptr() as usize, s.as_ptr() as usize);
    assert!(
        p >= b && p + s.len() <= b + buf.len(),
        "slice outside the input"
    );
    p - b
}

/// A non-empty proper prefix of `GET ` or `HEAD `: it may still become HTTP.
fn method_prefix(buf: &[u8]) -> bool {
    !buf.is_empty()
        && [&b"GET "[..], b"HEAD "]
            .iter()
            .any(|m| buf.len() < m.len() && m.starts_with(buf))
}

/// The rule for a payload (src/request.rs), written without heft's code: the service
/// is the first word of the first line, and the answer is decided once the
/// line has ended or a separator follows that word (or no more bytes come).
/// Returns the word and whether it is decided.
fn first_word(buf: &[u8]) -> (Option<&[u8]>, bool) {
    let (line, ended) = match buf.iter().position(|&c| is_line_end(c)) {
        Some(e) => (&buf[..e], true),
        None => (buf, false),
    };
    let word = line.split(|&c| is_word_sep(c)).find(|w| !w.is_empty());
    let sep_after = word.is_some_and(|w| inside(line, w) + w.len() < line.len());
    (word, ended || sep_after)
}

fn check(buf: &[u8], done: bool, want_word: bool) -> Request<'_> {
    let r = classify(buf, done, want_word);
    let method = [(&b"GET "[..], false), (b"HEAD ", true)]
        .into_iter()
        .find(|(m, _)| buf.starts_with(m));
    match r {
        Request::Partial => assert!(!done, "Partial although done: {buf:?}"),
        Request::Agent(_) => assert!(method.is_none(), "an HTTP request line as a probe: {buf:?}"),
        Request::Http { head, path } => {
            let at = inside(buf, path);
            let (m, h) = method.unwrap_or_else(|| panic!("HTTP without a method: {buf:?}"));
            assert!(head == h && at == m.len(), "{buf:?}");
            assert!(!path.iter().any(|&c| matches!(c, b' ' | b'\r' | b'\n')));
            let end = at + path.len();
            assert!(
                (end == buf.len() && done) || matches!(buf.get(end), Some(b' ' | b'\r' | b'\n')),
                "path end in {buf:?}"
            );
        }
    }
    if let Some((m, _)) = method {
        // The request line decides once the path has ended.
        let ended = buf[m.len()..].iter().any(|&c| matches!(c, b' ' | b'\r' | b'\n'));
        assert_eq!(r == Request::Partial, !done && !ended, "{buf:?}");
    } else if buf.is_empty() || method_prefix(buf) {
        // Not enough to tell a probe from an HTTP client (at `done`, the
        // method's letters are the payload's word: checked below).
        assert_eq!(r == Request::Partial, !done, "{buf:?}");
    } else if !want_word {
        // No services: the word does not matter, and nothing is worth waiting for.
        assert!(matches!(r, Request::Agent(_)), "{r:?} for {buf:?}");
    }
    if method.is_none() && want_word {
        let (word, decided) = first_word(buf);
        let want = if decided || done {
            Request::Agent(word)
        } else {
            Request::Partial
        };
        assert_eq!(r, want, "payload {buf:?} (done {done})");
        if let Request::Agent(Some(w)) = r {
            // The slice is the word itself, where it is in the input.
            let at = inside(buf, w);
            assert!(buf[..at].iter().all(|&c| is_word_sep(c)), "not the first word");
        }
    }
    r
}

/// The largest state a file may hold: 16 services with 32-byte names, all with maxconn.
fn big_state() -> state::State {
    let mut s = state::State::default();
    let mut top = state::Entry::new(state::Status::Stopped);
    top.weight = 255;
    top.maxconn = Some(65535);
    for _ in 0..state::REASON_MAX {
        let _ = top.reason.push('r');
    }
    s.top = Some(top.clone());
    for i in 0..state::SERVICES_MAX {
        let mut n = state::Name::new();
        for _ in 0..state::NAME_MAX - 2 {
            let _ = n.push('s');
        }
        let _ = n.push((b'a' + i as u8) as char);
        let _ = n.push('x');
        let _ = s.services.push((n, top.clone()));
    }
    s
}

fn small_state() -> state::State {
    state::parse(
        br#"{"status":"UP","weight":77,"maxconn":300,"services":{"web":{"status":"DOWN","reason":"deploy"},"db":{"status":"DRAIN"}}}"#,
    )
    .unwrap()
}

fn check_response(out: &[u8], head: bool, path: &[u8], agent: &Agent) {
    assert!(out.len() <= http::RESPONSE_MAX);
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of head");
    let (headers, body) = (&out[..end], &out[end + 4..]);
    let mut lines = headers.split(|&c| c == b'\n');
    let status = lines.next().unwrap();
    let ok = match status {
        b"HTTP/1.0 200 OK\r" => true,
        b"HTTP/1.0 503 Service Unavailable\r" => false,
        _ => panic!("status line {:?}", String::from_utf8_lossy(status)),
    };
    let mut length = None;
    for l in headers.split(|&c| c == b'\n') {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        assert!(l.iter().all(|&c| (0x20..0x7f).contains(&c)), "{l:?}");
        if let Some(v) = l.strip_prefix(b"Content-Length: ") {
            length = Some(std::str::from_utf8(v).unwrap().parse::<usize>().unwrap());
        }
    }
    let length = length.expect("no Content-Length");
    if head {
        assert!(body.is_empty(), "HEAD with a body");
    } else {
        assert_eq!(length, body.len(), "Content-Length");
    }
    if path == b"/metrics" {
        assert!(ok);
        if head {
            return;
        }
        assert!(body.ends_with(b"\n"));
        assert!(!body.starts_with(b"# metrics truncated"), "metrics truncated");
        for l in body.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            if l.starts_with(b"# ") {
                continue;
            }
            let sp = l.iter().rposition(|&c| c == b' ').expect("metric value");
            assert!(l[sp + 1..].iter().all(u8::is_ascii_digit) && sp + 1 < l.len());
            assert!(l.starts_with(b"heft_"));
        }
    } else {
        let name = path.strip_prefix(b"/").filter(|n| !n.is_empty());
        let line = agent.reply(name);
        assert_eq!(ok, line.starts_with(b"up "));
        assert_eq!(length, line.len());
        if !head {
            assert_eq!(body, line);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    heft::log::set_level(heft::log::Level::Error);
    let Some((&flags, buf)) = data.split_first() else {
        return;
    };
    let (done, want_word) = (flags & 1 != 0, flags & 2 != 0);
    let r = check(buf, done, want_word);

    // Consistency: a decided prefix stays decided the same way (bounded work).
    if buf.len() <= 256 {
        if r != Request::Partial && !done {
            assert_eq!(check(buf, true, want_word), r, "done changes {buf:?}");
        }
        let whole = check(buf, false, want_word);
        for k in 0..buf.len() {
            let p = check(&buf[..k], false, want_word);
            if p != Request::Partial {
                assert_eq!(p, whole, "prefix {:?} of {:?}", &buf[..k], buf);
                break;
            }
        }
    }

    if let Request::Http { head, path } = r {
        let mut agent = Agent::new(None);
        agent.load(Ok(if flags & 4 != 0 { big_state() } else { small_state() }), Instant::default());
        let big = (flags >> 3) as u32;
        let counters = Counters {
            probes: u32::MAX - big,
            http: big * 1000,
            refused: big,
            reloads: u32::MAX,
            accept_errors: big,
            persist_errors: u32::MAX,
            state_errors: big,
            timeouts: u32::MAX,
        };
        let mut buf = http::Response::new();
        let out = http::respond(&mut buf, head, path, &agent, &counters);
        check_response(out, head, path, &agent);
    }
});
