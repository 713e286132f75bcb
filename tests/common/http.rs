//! HTTP/1.0 answers on the agent port: a request from a chosen source, and
//! a strict parser of the status line, headers and body.

use super::net::{ask_from, text, V4};

use std::net::{IpAddr, SocketAddr};

/// One HTTP answer: the status line, the headers in order, the body.
pub struct HttpReply {
    pub status: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn code(&self) -> u16 {
        self.status
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap()
    }
}

/// Parses an HTTP/1.0 answer; panics unless it has a status line, `Name: value`
/// headers and an empty line before the body.
pub fn parse_http(raw: &str) -> HttpReply {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {raw:?}"));
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_string();
    assert!(status.starts_with("HTTP/1.0 "), "status line {status:?}");
    let headers = lines
        .map(|l| {
            let (k, v) = l
                .split_once(": ")
                .unwrap_or_else(|| panic!("bad header {l:?}"));
            (k.to_string(), v.to_string())
        })
        .collect();
    HttpReply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Sends `METHOD path HTTP/1.0` from 127.0.0.1 and parses the response.
pub fn http(port: u16, method: &str, path: &str) -> HttpReply {
    http_from(V4, SocketAddr::new(V4, port), method, path)
}

/// Sends `METHOD path HTTP/1.0` from `src` to `dst` and parses the response.
pub fn http_from(src: IpAddr, dst: SocketAddr, method: &str, path: &str) -> HttpReply {
    let req = format!("{method} {path} HTTP/1.0\r\nUser-Agent: heft-ops-test\r\n\r\n");
    parse_http(&text(ask_from(src, dst, req.as_bytes()).unwrap()))
}
