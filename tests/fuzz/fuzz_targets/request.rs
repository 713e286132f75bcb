//! The first bytes a client sends: an `agent-send` payload on the agent
//! port, an HTTP request line on the HTTP port, and the HTTP response heft
//! builds for the latter.
//!
//! Input: one flag byte (bit 0: `done`, bit 1: the HTTP port, bit 2: the
//! agent serves the largest state a file may hold, bits 3..: counters), then
//! the bytes.
//!
//! Properties of `request::classify`:
//! - never `Partial` once `done`; every slice it returns lies inside the input;
//! - on the agent port, never HTTP: the answer to a payload is exactly what
//!   an independent reading of the rule gives: the service is the first word
//!   of the first line (a line ends at LF, CR or NUL; words are separated by
//!   space, tab or comma), decided once the line ends or a separator follows
//!   the word, `Partial` before that until `done`;
//! - on the HTTP port, always HTTP: the method ends at the first space, CR or
//!   LF, `head` exactly for `HEAD`; the path follows that space and ends at a
//!   space, CR, LF or (at `done`) the end; empty when the line ends first;
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

/// Ends a word of an HTTP request line.
fn is_http_sep(c: u8) -> bool {
    matches!(c, b' ' | b'\r' | b'\n')
}

fn check(buf: &[u8], done: bool, http: bool) -> Request<'_> {
    let r = classify(buf, done, http);
    if r == Request::Partial {
        assert!(!done, "Partial although done: {buf:?}");
    }
    if http {
        let m = buf.iter().position(|&c| is_http_sep(c));
        let decided = match m {
            None => false,
            Some(m) if buf[m] != b' ' => true,
            Some(m) => buf[m + 1..].iter().any(|&c| is_http_sep(c)),
        };
        assert_eq!(r == Request::Partial, !done && !decided, "{buf:?}");
        match r {
            Request::Partial => {}
            Request::Agent(_) => panic!("a probe on the HTTP port: {buf:?}"),
            Request::Http { head, path } => {
                let method = &buf[..m.unwrap_or(buf.len())];
                // A method no separator ends (the client closed mid-word) is
                // not known to be HEAD: it is answered as GET.
                assert_eq!(head, m.is_some() && method == b"HEAD", "{buf:?}");
                if m.is_some_and(|m| buf[m] == b' ') {
                    let at = inside(buf, path);
                    assert_eq!(at, method.len() + 1, "{buf:?}");
                    assert!(!path.iter().any(|&c| is_http_sep(c)));
                    let end = at + path.len();
                    assert!(
                        (end == buf.len() && done) || buf.get(end).is_some_and(|&c| is_http_sep(c)),
                        "path end in {buf:?}"
                    );
                } else {
                    assert!(path.is_empty(), "{buf:?}");
                }
            }
        }
        return r;
    }
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
    let (done, http_port) = (flags & 1 != 0, flags & 2 != 0);
    let r = check(buf, done, http_port);

    // Consistency: a decided prefix stays decided the same way (bounded work).
    if buf.len() <= 256 {
        if r != Request::Partial && !done {
            assert_eq!(check(buf, true, http_port), r, "done changes {buf:?}");
        }
        let whole = check(buf, false, http_port);
        for k in 0..buf.len() {
            let p = check(&buf[..k], false, http_port);
            if p != Request::Partial {
                assert_eq!(p, whole, "prefix {:?} of {:?}", &buf[..k], buf);
                break;
            }
        }
    }

    if let Request::Http { head, path } = r {
        let mut agent = Agent::new(None);
        agent.load(Ok(if flags & 4 != 0 { big_state() } else { small_state() }), Instant::default());
        let big = (flags >> 3) as u64;
        // Probes, HTTP, refused, reloads, timeouts, log lines dropped; accept,
        // persist and state file errors (`Counter`'s order).
        let counters = Counters([
            u64::MAX - big,
            big * 1000,
            big,
            u64::MAX,
            u64::MAX,
            big,
            big,
            u64::MAX,
            big,
        ]);
        let mut buf = http::Response::new();
        let out = http::respond(&mut buf, head, path, &agent, &counters);
        check_response(out, head, path, &agent);
    }
});
