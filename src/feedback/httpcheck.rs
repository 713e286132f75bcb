//! Checks a local HTTP/1.x health URL without ever blocking: a non-blocking
//! connect, one write and reads driven by the agent's own `poll(2)`.
//!
//! The request is HTTP/1.0 with `Connection: close`, so the answer is never
//! chunked and ends at EOF or after `Content-Length` bytes. The head must fit
//! in 2048 bytes; the body goes through the same buffer, a window at a time,
//! into a `Scan` for the field's path, so a value anywhere in the first 64 KiB
//! is found with the memory of one window.

use std::os::fd::{AsRawFd, RawFd};

use nix::errno::Errno;

use super::config::HttpTarget;
use super::metrics::{parse_decimal, split_once};
use super::scan::Scan;
use crate::num::pieces;
use crate::os::{self, Fd};
use crate::time::Instant;

/// The longest head of an answer, and the window the body is read through.
pub const RESPONSE_MAX: usize = 2048;
/// The most bytes of a body searched for the field.
pub const BODY_MAX: usize = 65536;

/// How a check ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// A 2xx answer, with the field's value when one was asked for.
    Healthy(Option<u32>),
    /// Any other status.
    Status(u16),
    /// 2xx, but the field's path is not in the body (or its first 64 KiB).
    NotInBody,
    /// 2xx, but the value at the field's path is not a number.
    NotNumber,
    /// Not an HTTP answer, or too long.
    BadReply,
    /// No complete answer before the timeout.
    Timeout,
    /// The connection failed.
    Error(Errno),
}

/// Where the answer's head ends: the index of the body, if the head is complete.
///
/// The head ends with the first `\n\n` or `\r\n\r\n`: the last four bytes read are
/// kept in a word, the newest in the low byte.
fn body_start(buf: &[u8]) -> Option<usize> {
    let mut last: u32 = 0;
    for (i, &c) in buf.iter().enumerate() {
        last = last << 8 | c as u32;
        if last & 0xffff == 0x0a0a || last == 0x0d0a_0d0a {
            return Some(i + 1);
        }
    }
    None
}

/// Reads the value of `Content-Length` from the head, if present.
fn content_length(head: &[u8]) -> Option<usize> {
    for line in pieces(head, b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (name, Some(value)) = split_once(line, b':') else {
            continue;
        };
        if name.eq_ignore_ascii_case(b"content-length") {
            return crate::num::parse_u32(value.trim_ascii()).map(|n| n as usize);
        }
    }
    None
}

/// What the head of an answer says.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Head {
    /// More bytes are needed.
    More,
    /// The check is decided.
    Done(Outcome),
    /// A 2xx answer whose body starts at `start`, `Content-Length` bytes long if given.
    Body { start: usize, len: Option<usize> },
}

/// Judges the bytes of an answer so far, up to the end of its head.
///
/// `eof` says the server closed (or the buffer is full): decide with what there is.
fn head(buf: &[u8], eof: bool) -> Head {
    let (line, after) = split_once(buf, b'\n');
    // The status line may still be coming.
    let open = after.is_none() && !eof;
    if open && buf.len() < 16 {
        return Head::More;
    }
    // `HTTP/1.x ddd`: exactly three digits.
    let code = match line.get(8..12) {
        Some([b' ', digits @ ..])
            if line.starts_with(b"HTTP/1.") && !line.get(12).is_some_and(u8::is_ascii_digit) =>
        {
            crate::num::parse_u32(digits)
        }
        _ => None,
    };
    let code = match code {
        Some(c) => c as u16,
        None if open => return Head::More,
        None => return Head::Done(Outcome::BadReply),
    };
    let Some(start) = body_start(buf) else {
        return if eof {
            Head::Done(Outcome::BadReply)
        } else {
            Head::More
        };
    };
    if !(200..300).contains(&code) {
        return Head::Done(Outcome::Status(code));
    }
    Head::Body {
        start,
        len: content_length(&buf[..start]),
    }
}

/// Where a check is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Waiting for the connection to complete.
    Connecting,
    /// Request sent; reading the answer.
    Reading,
}

/// One check in flight, or none.
pub struct Check {
    /// The socket and phase while a check runs.
    conn: Option<(Fd, Phase)>,
    /// When the running check times out.
    deadline: Instant,
    /// The answer so far.
    buf: [u8; RESPONSE_MAX],
    /// How many bytes of `buf` hold the head so far.
    len: usize,
    /// Once the head is read: how many more body bytes are searched.
    left: Option<usize>,
    /// The search for the field's path in the body.
    scan: Scan,
    /// This check's index in the poll set, while it is in one.
    pub pidx: Option<usize>,
}

impl Default for Check {
    fn default() -> Self {
        Check::new()
    }
}

impl Check {
    /// Makes an idle check.
    pub const fn new() -> Check {
        Check {
            conn: None,
            deadline: Instant::from_ms(0),
            buf: [0; RESPONSE_MAX],
            len: 0,
            left: None,
            scan: Scan::new(),
            pidx: None,
        }
    }

    /// Tells whether a check is in flight.
    pub fn busy(&self) -> bool {
        self.conn.is_some()
    }

    /// Returns the running check's deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.conn.as_ref().map(|_| self.deadline)
    }

    /// Drops a running check without a result.
    pub fn cancel(&mut self) {
        self.conn = None;
        self.pidx = None;
    }

    /// Starts a check; returns its outcome at once if it failed already.
    pub fn start(&mut self, t: &HttpTarget, now: Instant) -> Option<Outcome> {
        self.cancel();
        self.len = 0;
        self.left = None;
        self.scan = Scan::new();
        self.deadline = now + t.timeout_ms;
        let fd = match os::tcp_socket(t.ip) {
            Ok(fd) => fd,
            Err(e) => return Some(Outcome::Error(e)),
        };
        let r = os::connect(&fd, t.ip, t.port);
        match r {
            Ok(()) | Err(Errno::EINPROGRESS) | Err(Errno::EINTR) => {}
            Err(e) => return Some(Outcome::Error(e)),
        }
        self.conn = Some((fd, Phase::Connecting));
        // Connected at once: send now, as `ready` would.
        r.ok().and_then(|()| self.send(t))
    }

    /// Returns the descriptor and events to poll for, while a check runs.
    pub fn pollfd(&self) -> Option<(RawFd, i16)> {
        self.conn.as_ref().map(|(fd, phase)| {
            let ev = match phase {
                Phase::Connecting => libc::POLLOUT,
                Phase::Reading => libc::POLLIN,
            };
            (fd.as_raw_fd(), ev)
        })
    }

    /// Sends the request once connected.
    fn send(&mut self, t: &HttpTarget) -> Option<Outcome> {
        let (fd, phase) = self.conn.as_mut()?;
        let e = match os::socket_error(fd).and_then(|()| os::send(fd, &t.request)) {
            Ok(n) if n == t.request.len() => {
                *phase = Phase::Reading;
                return None;
            }
            Ok(_) => Errno::EMSGSIZE,
            Err(e) => e,
        };
        self.finish(Outcome::Error(e))
    }

    /// Ends the check with outcome `o`.
    fn finish(&mut self, o: Outcome) -> Option<Outcome> {
        self.cancel();
        Some(o)
    }

    /// Moves the check along after `poll` reported events on its socket.
    ///
    /// Out of line: inlined, it grew the agent's poll loop by more than its own size.
    #[inline(never)]
    pub fn ready(&mut self, t: &HttpTarget, decimals: u8) -> Option<Outcome> {
        if self.conn.as_ref()?.1 == Phase::Connecting {
            return self.send(t);
        }
        let field = t.field.as_ref().map(|f| f.as_bytes());
        // A few reads per wake-up at most, so that a fast talker cannot hold the loop.
        for _ in 0..4 {
            // The head gathers in the buffer; the body passes through all of it.
            let from = if self.left.is_some() { 0 } else { self.len };
            let fd = &self.conn.as_ref()?.0;
            let outcome = match os::recv(fd, &mut self.buf[from..]) {
                Ok(n) => match self.take(from, from + n, n == 0, field, decimals) {
                    Some(o) => o,
                    None => continue,
                },
                Err(Errno::EAGAIN) => return None,
                Err(e) => Outcome::Error(e),
            };
            return self.finish(outcome);
        }
        None
    }

    /// Takes the bytes read into `buf[from..to]`; `eof`: the server closed.
    /// Returns the outcome once it is decided.
    fn take(
        &mut self,
        mut from: usize,
        to: usize,
        eof: bool,
        field: Option<&[u8]>,
        decimals: u8,
    ) -> Option<Outcome> {
        if self.left.is_none() {
            self.len = to;
            // A full buffer without the end of the head: judged as if closed.
            match head(&self.buf[..to], eof || to == RESPONSE_MAX) {
                Head::More => return None,
                Head::Done(o) => return Some(o),
                Head::Body { .. } if field.is_none() => return Some(Outcome::Healthy(None)),
                Head::Body { start, len } => {
                    self.left = Some(len.unwrap_or(BODY_MAX).min(BODY_MAX));
                    from = start;
                }
            }
        }
        let (left, path) = (self.left.as_mut()?, field?);
        let n = (to - from).min(*left);
        *left -= n;
        let found = match self.scan.feed(&self.buf[from..from + n], path) {
            Some(f) => f,
            None if eof || *left == 0 => self.scan.finish(),
            None => return None,
        };
        Some(match found {
            false => Outcome::NotInBody,
            true => match parse_decimal(self.scan.text(), decimals) {
                Some(v) => Outcome::Healthy(Some(v)),
                None => Outcome::NotNumber,
            },
        })
    }

    /// Ends a check that is past its deadline at `now`.
    pub fn expire(&mut self, now: Instant) -> Option<Outcome> {
        let d = self.deadline()?;
        if now.reached(d) {
            return self.finish(Outcome::Timeout);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `answer` to a check in pieces of `step` bytes, as reads would,
    /// then the end of the answer if `eof`; the outcome once decided.
    fn judge_in(
        answer: &[u8],
        step: usize,
        eof: bool,
        field: Option<&[u8]>,
        d: u8,
    ) -> Option<Outcome> {
        let mut c = Check::new();
        let mut rest = answer;
        while !rest.is_empty() {
            let from = if c.left.is_some() { 0 } else { c.len };
            let n = step.min(rest.len()).min(RESPONSE_MAX - from);
            c.buf[from..from + n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            if let Some(o) = c.take(from, from + n, false, field, d) {
                return Some(o);
            }
        }
        let from = if c.left.is_some() { 0 } else { c.len };
        eof.then(|| c.take(from, from, true, field, d)).flatten()
    }

    fn judge(answer: &[u8], eof: bool, field: Option<&[u8]>, decimals: u8) -> Option<Outcome> {
        let whole = judge_in(answer, answer.len().max(1), eof, field, decimals);
        for step in [1, 7] {
            assert_eq!(
                judge_in(answer, step, eof, field, decimals),
                whole,
                "{step}"
            );
        }
        whole
    }

    #[test]
    fn judges_status_lines() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfine";
        assert_eq!(judge(ok, false, None, 0), Some(Outcome::Healthy(None)));
        assert_eq!(
            judge(b"HTTP/1.0 204 No Content\n\n", false, None, 0),
            Some(Outcome::Healthy(None))
        );
        assert_eq!(
            judge(b"HTTP/1.1 503 Busy\r\n\r\n", false, None, 0),
            Some(Outcome::Status(503))
        );
        assert_eq!(
            judge(b"HTTP/1.1 301 Moved\r\n\r\n", false, None, 0),
            Some(Outcome::Status(301))
        );
        assert_eq!(judge(b"HTTP/1.1 200 OK\r\nX: y\r\n", false, None, 0), None);
        assert_eq!(
            judge(b"HTTP/1.1 200 OK\r\nX: y\r\n", true, None, 0),
            Some(Outcome::BadReply)
        );
        assert_eq!(judge(b"HTTP/1.", false, None, 0), None);
        // Exactly three digits: a longer number is no 200.
        for bad in [
            &b"HTTP/1.0 2000000000000\r\n\r\n"[..],
            b"HTTP/1.0 2000 OK\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
        ] {
            assert_eq!(judge(bad, false, None, 0), Some(Outcome::BadReply));
        }
        assert_eq!(
            judge(b"HTTP/1.0 200\r\n\r\n", false, None, 0),
            Some(Outcome::Healthy(None))
        );
        assert_eq!(judge(b"", true, None, 0), Some(Outcome::BadReply));
        assert_eq!(
            judge(b"SSH-2.0-OpenSSH_9.2\r\n", false, None, 0),
            Some(Outcome::BadReply)
        );
        assert_eq!(
            judge(b"HTTP/2 200\r\n\r\n", false, None, 0),
            Some(Outcome::BadReply)
        );
        // A head that does not fit in the buffer.
        let mut long = b"HTTP/1.1 200 OK\r\n".to_vec();
        long.extend_from_slice(&[b'x'; RESPONSE_MAX]);
        assert_eq!(
            judge_in(&long, 100, false, None, 0),
            Some(Outcome::BadReply)
        );
    }

    #[test]
    fn takes_a_number_from_the_json_body() {
        let head =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n";
        let mut full = head.to_vec();
        full.extend_from_slice(br#"{"queue":42.5,"ok":true}   "#);
        assert_eq!(
            judge(&full, false, Some(b"queue"), 1),
            Some(Outcome::Healthy(Some(425)))
        );
        // The number may end with the body: wait for Content-Length bytes (or the close).
        let mut end = head.to_vec();
        end.extend_from_slice(br#"{"ok":true,      "queue":42"#);
        assert_eq!(judge(&end[..end.len() - 1], false, Some(b"queue"), 0), None);
        assert_eq!(
            judge(&end, false, Some(b"queue"), 0),
            Some(Outcome::Healthy(Some(42)))
        );
        let no_len = b"HTTP/1.0 200 OK\r\n\r\n{\"queue\": \"7\"}";
        assert_eq!(
            judge(no_len, true, Some(b"queue"), 0),
            Some(Outcome::Healthy(Some(7)))
        );
        assert_eq!(
            judge(no_len, true, Some(b"depth"), 0),
            Some(Outcome::NotInBody)
        );
        assert_eq!(
            judge(b"HTTP/1.0 200 OK\r\n\r\nnot json", true, Some(b"q"), 0),
            Some(Outcome::NotInBody)
        );
        assert_eq!(
            judge(b"HTTP/1.0 200 OK\r\n\r\n{\"q\":true}", true, Some(b"q"), 0),
            Some(Outcome::NotNumber)
        );
        assert_eq!(
            judge(
                b"HTTP/1.0 200 OK\r\n\r\n{\"q\":{\"a\":1}}",
                true,
                Some(b"q"),
                0
            ),
            Some(Outcome::NotNumber)
        );
        // A failing status wins without reading the body.
        assert_eq!(
            judge(b"HTTP/1.0 500 x\r\n\r\n", false, Some(b"q"), 0),
            Some(Outcome::Status(500))
        );
        assert_eq!(
            content_length(b"HTTP/1.1 200 OK\r\ncontent-LENGTH:  12 \r\n"),
            Some(12)
        );
    }

    #[test]
    fn searches_the_first_64_kib_of_a_long_body() {
        let pad = "x".repeat(60_000);
        let body = format!(r#"{{"pad":"{pad}","stats":{{"active":4.8e1}},"more":"{pad}"}}"#);
        let answer = format!("HTTP/1.0 200 OK\r\n\r\n{body}");
        assert_eq!(
            judge_in(answer.as_bytes(), 1500, false, Some(b"stats.active"), 0),
            Some(Outcome::Healthy(Some(48)))
        );
        // Past 64 KiB: not looked at.
        let late = format!("HTTP/1.0 200 OK\r\n\r\n{{\"pad\":\"{pad}{pad}\",\"active\":1}}");
        assert_eq!(
            judge_in(late.as_bytes(), 2000, false, Some(b"active"), 0),
            Some(Outcome::NotInBody)
        );
    }
}
