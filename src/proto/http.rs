//! Answers HTTP/1.0 requests on the agent port: the agent line, or Prometheus metrics.
//!
//! Does no I/O: responses are built into a caller-owned fixed buffer. Any
//! path answers with the top-level state, `/NAME` with service NAME's, and
//! `/metrics` with counters; status 200 when the health is up (ready or
//! drain), 503 otherwise.

use crate::model::agent::Agent;
use crate::num::{self, Full};

/// Counts of what happened, for `/metrics` and the log.
#[derive(Default, Clone, Copy, Debug)]
pub struct Counters {
    /// Agent replies written.
    pub probes: u32,
    /// HTTP requests answered.
    pub http: u32,
    /// Connections closed at once because of `--allow`.
    pub refused: u32,
    /// Times the state file was read after start-up.
    pub reloads: u32,
    /// Failed accepts (EMFILE, ENFILE, ENOMEM, ...).
    pub accept_errors: u32,
    /// Failed writes of the state file.
    pub persist_errors: u32,
    /// State file reads that failed.
    pub state_errors: u32,
    /// Connections closed at their deadline.
    pub timeouts: u32,
    /// Log lines dropped because their reader could not take them at once.
    pub log_dropped: u32,
}

/// The largest response (the `/metrics` of 64 services with 64-byte names).
pub const RESPONSE_MAX: usize = 28 * 1024;
/// A response under construction.
pub type Response = heapless::Vec<u8, RESPONSE_MAX>;
/// The room kept for a response head: a reply line's, whose buffer it uses
/// (the longest head, a 503's, is 103 bytes).
const HEAD_MAX: usize = crate::model::reply::LINE_MAX;
/// The most one entry adds to `/metrics` (three lines, a name in each).
const METRICS_ENTRY_MAX: usize = 3 * (crate::model::state::NAME_MAX + 64);
// The largest state's metrics (a top level and every service), the counters'
// lines and a head fit: checked when compiling.
const _: () = assert!(
    (crate::model::state::SERVICES_MAX + 1) * METRICS_ENTRY_MAX + 2048 + HEAD_MAX <= RESPONSE_MAX
);

/// Builds the response to `GET`/`HEAD path` in `out` and returns it.
///
/// The body is written after room for the longest head, and the head put
/// just in front of it, so one buffer holds both and nothing moves.
pub fn respond<'a>(
    out: &'a mut Response,
    head: bool,
    path: &[u8],
    agent: &Agent,
    counters: &Counters,
) -> &'a [u8] {
    out.clear();
    let _ = out.resize(HEAD_MAX, 0);
    // The status line and the content type's header.
    let start: &[u8] = if path == b"/metrics" {
        if metrics(out, agent, counters).is_err() {
            out.truncate(HEAD_MAX);
            let _ = num::push(out, b"# metrics truncated\n");
        }
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4"
    } else {
        let name = path.strip_prefix(b"/").filter(|n| !n.is_empty());
        let line = agent.reply(name);
        let _ = num::push(out, line);
        if line.starts_with(b"up ") {
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain"
        } else {
            b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain"
        }
    };
    let mut h = crate::model::reply::Line::new();
    let _ = head_lines(&mut h, start, out.len() - HEAD_MAX);
    let at = HEAD_MAX - h.len();
    out[at..HEAD_MAX].copy_from_slice(&h);
    let end = if head { HEAD_MAX } else { out.len() };
    &out[at..end]
}

/// Writes the head for a body of `len` bytes: `start` (the status line and
/// the content type's header), then the length and the end of the head.
fn head_lines(out: &mut crate::model::reply::Line, start: &[u8], len: usize) -> Result<(), Full> {
    num::push(out, start)?;
    num::push(out, b"\r\nContent-Length: ")?;
    num::push_u32(out, len as u32)?;
    num::push(out, b"\r\nConnection: close\r\n\r\n")
}

/// Writes one sample from `template`, in which byte 1 stands for `a` and
/// byte 2 for `b`, then a space, `v` and a newline.
fn metric(out: &mut Response, template: &[u8], a: &[u8], b: &[u8], v: u32) -> Result<(), Full> {
    for &c in template {
        let piece: &[u8] = match c {
            1 => a,
            2 => b,
            _ => &[c],
        };
        num::push(out, piece)?;
    }
    num::push(out, b" ")?;
    num::push_u32(out, v)?;
    num::push(out, b"\n")
}

/// The counters' names and help texts, in the order `metrics` gives their values.
const COUNTERS: [(&[u8], &[u8]); 6] = [
    (b"heft_probes_total", b"agent replies written"),
    (b"heft_http_requests_total", b"HTTP requests answered"),
    (b"heft_refused_total", b"connections refused by --allow"),
    (b"heft_reloads_total", b"state file reloads after start-up"),
    (
        b"heft_timeouts_total",
        b"connections closed at their deadline",
    ),
    (
        b"heft_log_lines_dropped_total",
        b"log lines dropped (stalled reader)",
    ),
];

/// The kinds of `heft_errors_total`, in the order `metrics` gives their values.
const ERROR_KINDS: [&[u8]; 3] = [b"accept", b"persist", b"state_file"];

/// Writes the `/metrics` body: every entry's gauges, then the counters.
fn metrics(out: &mut Response, agent: &Agent, c: &Counters) -> Result<(), Full> {
    num::push(
        out,
        b"# TYPE heft_up gauge\n# TYPE heft_weight gauge\n# TYPE heft_maxconn gauge\n",
    )?;
    for (name, status, weight, maxconn) in agent.summary() {
        let name = name.unwrap_or(b"");
        let up = !status.is_down() && status != crate::model::state::Status::Maint;
        let status = status.name().as_bytes();
        metric(
            out,
            b"heft_up{service=\"\x01\",status=\"\x02\"}",
            name,
            status,
            up as u32,
        )?;
        metric(
            out,
            b"heft_weight{service=\"\x01\"}",
            name,
            b"",
            weight as u32,
        )?;
        if let Some(m) = maxconn {
            metric(out, b"heft_maxconn{service=\"\x01\"}", name, b"", m as u32)?;
        }
    }
    let values = [
        c.probes,
        c.http,
        c.refused,
        c.reloads,
        c.timeouts,
        c.log_dropped,
    ];
    for (&(name, help), &v) in COUNTERS.iter().zip(&values) {
        // The HELP and TYPE lines, then the sample's name, written as one
        // "metric" whose template starts with `# HELP `.
        let lines = b"# HELP \x01 \x02\n# TYPE \x01 counter\n\x01";
        metric(out, lines, name, help, v)?;
    }
    num::push(
        out,
        b"# HELP heft_errors_total errors by kind\n# TYPE heft_errors_total counter\n",
    )?;
    let errors = [c.accept_errors, c.persist_errors, c.state_errors];
    for (&kind, &v) in ERROR_KINDS.iter().zip(&errors) {
        metric(out, b"heft_errors_total{kind=\"\x01\"}", kind, b"", v)?;
    }
    Ok(())
}
