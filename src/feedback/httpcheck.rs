//! Checks a local HTTP/1.x health URL without ever blocking: a non-blocking
//! connect, one write and reads driven by the agent's own `poll(2)`.
//!
//! The request is HTTP/1.0 with `Connection: close`, so the answer is never
//! chunked and ends at EOF or after `Content-Length` bytes. Only the first
//! 2048 bytes are kept; a JSON body that does not fit is a bad reply.

use std::os::fd::{AsRawFd, RawFd};

use nix::errno::Errno;

use super::config::HttpTarget;
use super::metrics::{parse_decimal, split_once};
use crate::model::json::{top_field, Token};
use crate::num::pieces;
use crate::os::{self, Fd};
use crate::time::Instant;

/// The most bytes of an answer kept.
pub const RESPONSE_MAX: usize = 2048;

/// How a check ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// A 2xx answer, with the field's value when one was asked for.
    Healthy(Option<u32>),
    /// Any other status.
    Status(u16),
    /// 2xx, but the body had no usable number in the field.
    NoField,
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

/// Judges the bytes of an answer so far; `None` means more are needed.
///
/// `eof` says the server closed (or the buffer is full): decide with what there is.
pub fn judge(buf: &[u8], eof: bool, field: Option<&[u8]>, decimals: u8) -> Option<Outcome> {
    let (line, after) = split_once(buf, b'\n');
    // The status line may still be coming.
    let open = after.is_none() && !eof;
    if open && buf.len() < 16 {
        return None;
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
        None if open => return None,
        None => return Some(Outcome::BadReply),
    };
    let Some(start) = body_start(buf) else {
        return eof.then_some(Outcome::BadReply);
    };
    if !(200..300).contains(&code) {
        return Some(Outcome::Status(code));
    }
    let Some(field) = field else {
        return Some(Outcome::Healthy(None));
    };
    let body = match (&buf[start..], content_length(&buf[..start])) {
        (b, Some(n)) if b.len() >= n => &b[..n],
        _ if !eof => return None,
        (b, _) => b,
    };
    let v = match top_field(body, field) {
        Some(Token::Bare(t)) | Some(Token::Str(t)) => parse_decimal(t, decimals),
        None => None,
    };
    Some(v.map_or(Outcome::NoField, |v| Outcome::Healthy(Some(v))))
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
    /// How many bytes of `buf` hold the answer.
    len: usize,
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

    /// Sends the request once connected; a connect that failed fails the
    /// send with its error (ECONNREFUSED, ...), so that needs no check of its own.
    ///
    /// Inlined into `start` and `ready`: as a call, its outcome came back through memory.
    #[inline(always)]
    fn send(&mut self, t: &HttpTarget) -> Option<Outcome> {
        let (fd, phase) = self.conn.as_mut()?;
        let e = match os::send(fd, &t.request) {
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
    pub fn ready(&mut self, t: &HttpTarget, decimals: u8) -> Option<Outcome> {
        let (fd, phase) = self.conn.as_ref()?;
        if *phase == Phase::Connecting {
            return self.send(t);
        }
        let field = t.field.as_ref().map(|f| f.as_bytes());
        // A few reads per wake-up at most, so that a fast talker cannot hold the loop.
        for _ in 0..4 {
            let outcome = match os::recv(fd, &mut self.buf[self.len..]) {
                Ok(n) => {
                    self.len += n;
                    // Closed or full: judge decides with what there is.
                    let eof = n == 0 || self.len == RESPONSE_MAX;
                    match judge(&self.buf[..self.len], eof, field, decimals) {
                        None if !eof => continue,
                        o => o.unwrap_or(Outcome::BadReply),
                    }
                }
                Err(Errno::EAGAIN) => return None,
                Err(e) => Outcome::Error(e),
            };
            return self.finish(outcome);
        }
        None
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
        // Until Content-Length bytes arrive, wait (unless the server closed).
        assert_eq!(
            judge(&full[..full.len() - 5], false, Some(b"queue"), 1),
            None
        );
        let no_len = b"HTTP/1.0 200 OK\r\n\r\n{\"queue\": \"7\"}";
        assert_eq!(judge(no_len, false, Some(b"queue"), 0), None);
        assert_eq!(
            judge(no_len, true, Some(b"queue"), 0),
            Some(Outcome::Healthy(Some(7)))
        );
        assert_eq!(
            judge(no_len, true, Some(b"depth"), 0),
            Some(Outcome::NoField)
        );
        assert_eq!(
            judge(b"HTTP/1.0 200 OK\r\n\r\nnot json", true, Some(b"q"), 0),
            Some(Outcome::NoField)
        );
        assert_eq!(
            judge(b"HTTP/1.0 200 OK\r\n\r\n{\"q\":true}", true, Some(b"q"), 0),
            Some(Outcome::NoField)
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
}
