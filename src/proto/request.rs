//! Classifies the first bytes a client sends: an agent payload or an HTTP request line.
//!
//! Does no I/O. HAProxy's `agent-send` payload is sent verbatim, with or
//! without a newline; its first word names a service. `GET ` or `HEAD ` at the
//! start means an HTTP client on the same port.

/// What the bytes so far say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// Not enough to decide: keep reading until the wait ends.
    Partial,
    /// An agent probe; the payload's first word, if it has one.
    Agent(Option<&'a [u8]>),
    /// An HTTP request for `path`; `head` for HEAD.
    Http {
        /// Whether the method is HEAD.
        head: bool,
        /// The request target, e.g. `/metrics`.
        path: &'a [u8],
    },
}

/// Classifies `buf`. `done` says no more bytes will come (end of stream,
/// wait over, or buffer full); `want_word` says whether the first word matters.
pub fn classify(buf: &[u8], done: bool, want_word: bool) -> Request<'_> {
    // The first byte tells which method the bytes could start.
    let head = buf.first() == Some(&b'H');
    let method: &[u8] = if head { b"HEAD " } else { b"GET " };
    if let Some(rest) = buf.strip_prefix(method) {
        let end = rest
            .iter()
            .position(|&c| c == b' ' || c == b'\r' || c == b'\n');
        return match end {
            Some(e) => Request::Http {
                head,
                path: &rest[..e],
            },
            None if done => Request::Http { head, path: rest },
            None => Request::Partial,
        };
    }
    // Nothing yet, or the start of a method: it may still become HTTP. At
    // `done`, they are a payload like any other.
    if !done && method.starts_with(buf) {
        return Request::Partial;
    }
    if !want_word {
        return Request::Agent(None);
    }
    // The service is the first word of the first line: a line that ends (or a
    // word that a space ends) decides, whatever arrives after it.
    let mut start = None;
    for (i, &c) in buf.iter().enumerate() {
        let line_end = matches!(c, b'\n' | b'\r' | 0);
        if line_end || is_sep(c) {
            if let Some(s) = start {
                return Request::Agent(Some(&buf[s..i]));
            }
            if line_end {
                return Request::Agent(None);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if done {
        Request::Agent(start.map(|s| &buf[s..]))
    } else {
        Request::Partial
    }
}

/// Tells whether `c` separates words on a payload's first line.
fn is_sep(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b',')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_agent_payloads() {
        assert_eq!(
            classify(b"web\n", false, true),
            Request::Agent(Some(b"web"))
        );
        assert_eq!(classify(b"web", false, true), Request::Partial);
        assert_eq!(classify(b"web", true, true), Request::Agent(Some(b"web")));
        assert_eq!(classify(b"pouet", false, false), Request::Agent(None));
        assert_eq!(
            classify(b"db extra\r\n", false, true),
            Request::Agent(Some(b"db"))
        );
        assert_eq!(classify(b"\n", false, true), Request::Agent(None));
        assert_eq!(classify(b"", true, true), Request::Agent(None));
        assert_eq!(classify(b"", false, false), Request::Partial);
    }

    #[test]
    fn reads_http_request_lines() {
        assert_eq!(
            classify(b"GET /metrics HTTP/1.1\r\n", false, false),
            Request::Http {
                head: false,
                path: b"/metrics"
            }
        );
        assert_eq!(
            classify(b"HEAD / HTTP/1.0\r\n", false, true),
            Request::Http {
                head: true,
                path: b"/"
            }
        );
        assert_eq!(classify(b"GE", false, false), Request::Partial);
        assert_eq!(classify(b"GET /x", false, false), Request::Partial);
        assert_eq!(
            classify(b"GET /x", true, false),
            Request::Http {
                head: false,
                path: b"/x"
            }
        );
        // A service called GET is still a service when it is not followed by a space.
        assert_eq!(
            classify(b"GETTER\n", false, true),
            Request::Agent(Some(b"GETTER"))
        );
        assert_eq!(classify(b"GE", true, true), Request::Agent(Some(b"GE")));
    }
}
