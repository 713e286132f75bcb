//! Answers HTTP/1.0 requests on the HTTP port: the agent line, or Prometheus metrics.
//!
//! Does no I/O: responses are built into a caller-owned fixed buffer. Any
//! path answers with the top-level state, `/NAME` with service NAME's, and
//! `/metrics` with counters; status 200 when the health is up (ready or
//! drain), 503 otherwise.

use crate::model::agent::Agent;
use crate::num::{self, Full};

/// Counts of what happened, for `/metrics` and the log, indexed by
/// `Counter`; 64-bit, so none wraps.
#[derive(Default, Clone, Copy, Debug)]
pub struct Counters(pub [u64; COUNTERS]);

/// What `Counters` counts, in the order `/metrics` writes them: the counter
/// families with one sample each, then `heft_errors_total` by kind.
#[derive(Clone, Copy, Debug)]
pub enum Counter {
    /// Agent replies written.
    Probes,
    /// HTTP requests answered.
    Http,
    /// Connections closed at once because of `--allow`.
    Refused,
    /// Times the state file was read after start-up.
    Reloads,
    /// Connections closed at their deadline.
    Timeouts,
    /// Log lines dropped because their reader could not take them at once.
    LogDropped,
    /// Failed accepts (EMFILE, ENFILE, ENOMEM, ...).
    AcceptErrors,
    /// Failed writes of the state file.
    PersistErrors,
    /// State file reads that failed.
    StateErrors,
}

/// How many counts `Counters` holds: one for each `Counter`.
pub const COUNTERS: usize = Counter::StateErrors as usize + 1;

impl core::ops::Index<Counter> for Counters {
    type Output = u64;

    /// The count of `c`.
    fn index(&self, c: Counter) -> &u64 {
        &self.0[c as usize]
    }
}

impl core::ops::IndexMut<Counter> for Counters {
    /// The count of `c`, to change it.
    fn index_mut(&mut self, c: Counter) -> &mut u64 {
        &mut self.0[c as usize]
    }
}

/// The largest response.
pub const RESPONSE_MAX: usize = 8192;
/// A response under construction.
pub type Response = heapless::Vec<u8, RESPONSE_MAX>;
/// The room kept for a response head: a reply line's, whose buffer it uses
/// (the longest head, a 503's, is 103 bytes).
const HEAD_MAX: usize = crate::model::reply::LINE_MAX;
/// The most one entry adds to `/metrics` (three lines, a 32-byte name in each).
const METRICS_ENTRY_MAX: usize = 3 * 96;
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

/// Writes `template`, in which bytes 1, 2 and 3 stand for `args`' pieces,
/// escaped as label values (`\`, `"` and newline; heft's names and texts have
/// none, so help texts read the same).
fn put(out: &mut Response, template: &[u8], args: [&[u8]; 3]) -> Result<(), Full> {
    for &c in template {
        let Some(&piece) = args.get((c as usize).wrapping_sub(1)) else {
            out.push(c).map_err(|_| Full)?;
            continue;
        };
        for &b in piece {
            if matches!(b, b'\\' | b'"' | b'\n') {
                out.push(b'\\').map_err(|_| Full)?;
            }
            out.push(if b == b'\n' { b'n' } else { b })
                .map_err(|_| Full)?;
        }
    }
    Ok(())
}

/// Writes one sample: `template` as `put` does, then a space, `v` and a newline.
fn sample(out: &mut Response, template: &[u8], args: [&[u8]; 3], v: u64) -> Result<(), Full> {
    put(out, template, args)?;
    // The digits go through `put` too (they need no escaping): one writer.
    let mut digits = [0; 20];
    put(out, b" \x01\n", [num::fmt_u64(v, &mut digits), b"", b""])
}

/// Every family's `# HELP` text: its name, a space and what it counts, in
/// the order `metrics` writes them: the gauges (the first `GAUGES`), the
/// counters with one sample each, the errors by kind.
const FAMILIES: [&[u8]; 10] = [
    b"heft_up 1 if up (ready or drain), else 0",
    b"heft_weight weight sent",
    b"heft_maxconn maxconn sent",
    b"heft_probes_total agent replies written",
    b"heft_http_requests_total HTTP requests answered",
    b"heft_refused_total connections refused by --allow",
    b"heft_reloads_total state file reloads",
    b"heft_timeouts_total connections timed out",
    b"heft_log_lines_dropped_total log lines dropped (stalled reader)",
    b"heft_errors_total errors by kind",
];

/// How many of `FAMILIES` are gauges; the others are counters.
const GAUGES: usize = 3;

/// The kinds of `heft_errors_total`, in the order `metrics` gives their values.
const ERROR_KINDS: [&[u8]; 3] = [b"accept", b"persist", b"state_file"];

/// Writes the `/metrics` body: each family's HELP and TYPE, then all its samples.
fn metrics(out: &mut Response, agent: &Agent, c: &Counters) -> Result<(), Full> {
    // The counter families' samples, then the errors by kind (`Counter`'s order).
    let (counters, errors) = c.0.split_at(Counter::AcceptErrors as usize);
    for (k, &family) in FAMILIES.iter().enumerate() {
        let name = family.split(|&b| b == b' ').next().unwrap_or(family);
        let kind: &[u8] = if k < GAUGES { b"gauge" } else { b"counter" };
        put(
            out,
            b"# HELP \x01\n# TYPE \x02 \x03\n",
            [family, name, kind],
        )?;
        if let Some(&v) = counters.get(k.wrapping_sub(GAUGES)) {
            sample(out, b"\x01", [name, b"", b""], v)?;
        } else if k >= GAUGES {
            for (&kind, &v) in ERROR_KINDS.iter().zip(errors) {
                sample(out, b"\x01{kind=\"\x02\"}", [name, kind, b""], v)?;
            }
        } else {
            for (service, status, weight, maxconn) in agent.summary() {
                let up = !status.is_down() && status != crate::model::state::Status::Maint;
                let v = [Some(up as u16), Some(weight as u16), maxconn][k];
                let template: &[u8] = if k == 0 {
                    b"\x01{service=\"\x02\",status=\"\x03\"}"
                } else {
                    b"\x01{service=\"\x02\"}"
                };
                if let Some(v) = v {
                    let labels = [name, service.unwrap_or(b""), status.name().as_bytes()];
                    sample(out, template, labels, v.into())?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_counters_are_64_bit() {
        let mut out = Response::new();
        let name: &[u8] = b"a\"b\\c\nd";
        sample(&mut out, b"x{s=\"\x01\"}", [name, b"", b""], u64::MAX).unwrap();
        assert_eq!(
            &out[..],
            &b"x{s=\"a\\\"b\\\\c\\nd\"} 18446744073709551615\n"[..]
        );
    }

    #[test]
    fn each_family_is_whole_before_the_next() {
        let mut agent = Agent::new(None);
        let s = crate::model::state::parse(
            br#"{"status":"UP","weight":7,"maxconn":9,"services":{"a":{"status":"DOWN"},"b":{"status":"DRAIN","maxconn":3}}}"#,
        )
        .unwrap();
        agent.load(Ok(s), crate::time::Instant::default());
        let mut c = Counters::default();
        c[Counter::Probes] = 1 << 40;
        let mut out = Response::new();
        let body = respond(&mut out, false, b"/metrics", &agent, &c);
        let text = core::str::from_utf8(body).unwrap();
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        // Every sample's name is the family of the TYPE line before it.
        let mut family = "";
        let mut families = Vec::new();
        for l in body.lines() {
            if let Some(t) = l.strip_prefix("# TYPE ") {
                family = t.split(' ').next().unwrap();
                families.push(family);
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap();
                assert_eq!(name, family, "{l}");
            }
        }
        let mut unique = families.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), families.len(), "{body}");
        assert!(body.contains("heft_probes_total 1099511627776\n"), "{body}");
        assert!(body.contains("heft_maxconn{service=\"b\"} 3\n"), "{body}");
        assert!(!body.contains("heft_maxconn{service=\"a\"}"), "{body}");
    }
}
