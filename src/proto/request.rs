//! Reads the first bytes a client sends: an agent payload's first word on the
//! agent port, an HTTP request line on the HTTP port.
//!
//! Does no I/O. HAProxy's `agent-send` payload is sent verbatim, with or
//! without a newline; its first word names a service. An HTTP request line
//! is `METHOD TARGET ...`; any method but HEAD is answered as GET.

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

/// Classifies `buf`, from the HTTP port when `http`, else from the agent
/// port. `done` says no more bytes will come (end of stream, wait over, or
/// buffer full).
pub fn classify(buf: &[u8], done: bool, http: bool) -> Request<'_> {
    if http {
        // The method ends at the first space (or the line's end: no target).
        let Some(m) = buf.iter().position(|&c| is_http_end(c) || c == b' ') else {
            return partial_or(
                done,
                Request::Http {
                    head: false,
                    path: b"",
                },
            );
        };
        let head = &buf[..m] == b"HEAD";
        if buf[m] != b' ' {
            return Request::Http { head, path: b"" };
        }
        let rest = &buf[m + 1..];
        return match rest.iter().position(|&c| is_http_end(c) || c == b' ') {
            Some(e) => Request::Http {
                head,
                path: &rest[..e],
            },
            None => partial_or(done, Request::Http { head, path: rest }),
        };
    }
    // The service is the first word of the first line, after any separators:
    // the line's end or a separator after it decides, whatever arrives next.
    let separator = |c: &u8| matches!(c, b' ' | b'\t' | b',');
    let word = &buf[buf.iter().take_while(|c| separator(c)).count()..];
    let end = word
        .iter()
        .position(|c| separator(c) || matches!(c, b'\n' | b'\r' | 0));
    match end {
        // The line ended before any word.
        Some(0) => Request::Agent(None),
        Some(e) => Request::Agent(Some(&word[..e])),
        None => partial_or(done, Request::Agent((!word.is_empty()).then_some(word))),
    }
}

/// Returns `r` once no more bytes will come (`done`), else `Partial`.
fn partial_or(done: bool, r: Request<'_>) -> Request<'_> {
    if done {
        r
    } else {
        Request::Partial
    }
}

/// Tells whether `c` ends an HTTP request line.
fn is_http_end(c: u8) -> bool {
    c == b'\r' || c == b'\n'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_agent_payloads() {
        assert_eq!(
            classify(b"web\n", false, false),
            Request::Agent(Some(b"web"))
        );
        assert_eq!(classify(b"web", false, false), Request::Partial);
        assert_eq!(classify(b"web", true, false), Request::Agent(Some(b"web")));
        assert_eq!(
            classify(b"db extra\r\n", false, false),
            Request::Agent(Some(b"db"))
        );
        assert_eq!(classify(b"\n", false, false), Request::Agent(None));
        assert_eq!(classify(b"", true, false), Request::Agent(None));
        assert_eq!(classify(b"", false, false), Request::Partial);
        // The agent port does not speak HTTP: a request line is a payload.
        assert_eq!(
            classify(b"GET / HTTP/1.0\r\n", false, false),
            Request::Agent(Some(b"GET"))
        );
    }

    #[test]
    fn reads_http_request_lines() {
        assert_eq!(
            classify(b"GET /metrics HTTP/1.1\r\n", false, true),
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
        // HAProxy's `option httpchk` sends OPTIONS unless told otherwise.
        assert_eq!(
            classify(b"OPTIONS /web HTTP/1.0\r\n", false, true),
            Request::Http {
                head: false,
                path: b"/web"
            }
        );
        assert_eq!(classify(b"GE", false, true), Request::Partial);
        assert_eq!(classify(b"GET /x", false, true), Request::Partial);
        assert_eq!(
            classify(b"GET /x", true, true),
            Request::Http {
                head: false,
                path: b"/x"
            }
        );
        assert_eq!(
            classify(b"HEAD\r\n", false, true),
            Request::Http {
                head: true,
                path: b""
            }
        );
        assert_eq!(
            classify(b"", true, true),
            Request::Http {
                head: false,
                path: b""
            }
        );
    }
}
