//! The feedback configuration file (`--feedback PATH`), and the health URLs in it.
//!
//! Properties of `feedback::config::parse`:
//! - never panics;
//! - an error says what is wrong, and names where: a rule index and/or a
//!   field, except for a file that is not well-formed JSON (checked against
//!   serde_json) or whose top level is not an object;
//! - a configuration that parses has sane bounds: interval 100 ms to 1 h, at
//!   most 16 rules and 4 http rules, names and services well-formed, curves
//!   with limit > low giving weights from max down to their minimum,
//!   thresholds with leave ≤ enter, an http rule's request a clean HTTP/1.0
//!   request, a file rule's path set.
//! Properties of `parse_url`: the path starts with `/` and is printable
//! without spaces, the port is not 0, the host is what the URL says.
#![no_main]

use heft::feedback::config::{self, Metric};
use heft::feedback::curve::VALUE_MAX;
use libfuzzer_sys::fuzz_target;

const FIELDS: [&str; 21] = [
    "interval_ms",
    "rules",
    "metric",
    "name",
    "service",
    "path",
    "url",
    "field",
    "timeout_ms",
    "stale_ms",
    "stale",
    "decimals",
    "curve",
    "low",
    "limit",
    "min_weight",
    "max_weight",
    "enter",
    "leave",
    "hold_ms",
    "smooth_ms",
];

fn name_ok(n: &[u8], max: usize) -> bool {
    !n.is_empty()
        && n.len() <= max
        && n.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn check_url(data: &[u8]) {
    let Some((_, port, host, path)) = config::parse_url(data) else {
        return;
    };
    let rest = data.strip_prefix(b"http://").expect("accepted without http://");
    assert!(rest.starts_with(host), "host {host:?} not from {data:?}");
    assert!(!host.contains(&b'/'));
    assert!(path.starts_with(b"/"));
    assert!(path.iter().all(|&c| (0x21..0x7f).contains(&c)));
    assert_ne!(port, 0);
}

fuzz_target!(|data: &[u8]| {
    check_url(data);
    let cfg = match config::parse(data) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.what.is_empty());
            assert!(e.field.bytes().all(|c| (0x20..0x7f).contains(&c)));
            if let Some(i) = e.rule {
                assert!((i as usize) < config::RULES_MAX + 1, "rule index {i}");
            }
            if !e.field.is_empty() && !e.what.starts_with("unknown field") {
                assert!(
                    FIELDS.contains(&e.field.as_str()),
                    "error names {:?}: {}",
                    e.field,
                    e.what
                );
            }
            // Well-formed JSON with an object at the top: the error must say where.
            // (An unknown key is named as written, which may be the empty key "".)
            let located =
                e.rule.is_some() || !e.field.is_empty() || e.what.starts_with("unknown field");
            if !located && data.len() <= config::CONFIG_MAX {
                if let Ok(serde_json::Value::Object(_)) = serde_json::from_slice(data) {
                    panic!(
                        "error without a field for well-formed JSON: {:?} ({})",
                        String::from_utf8_lossy(data),
                        e.what
                    );
                }
            }
            return;
        }
    };
    assert!(data.len() <= config::CONFIG_MAX);
    assert!((100..=3_600_000).contains(&cfg.interval_ms));
    assert!(cfg.rules.len() <= config::RULES_MAX);
    let http = cfg.rules.iter().filter(|r| r.metric == Metric::Http).count();
    assert!(http <= config::HTTP_MAX);
    for r in &cfg.rules {
        assert!(name_ok(r.name.as_bytes(), config::RULE_NAME_MAX), "{:?}", r.name);
        if let Some(s) = &r.service {
            assert!(heft::model::state::check_name(s.as_bytes()).is_ok());
        }
        assert_eq!(r.metric == Metric::File, !r.path.is_empty());
        assert!(r.path.len() <= config::PATH_MAX);
        assert_eq!(r.metric == Metric::Http, r.http.is_some());
        assert!(r.decimals <= 3);
        assert!(r.smooth_ms <= 86_400_000);
        assert!(
            r.curve.is_some() || r.threshold.is_some() || r.metric == Metric::Http,
            "a rule that does nothing"
        );
        if let Some(c) = &r.curve {
            let xs = [
                0,
                1,
                10,
                99,
                100,
                1000,
                10_000,
                100_000,
                1_000_000,
                VALUE_MAX,
                u32::MAX,
            ];
            let mut last = 100u8;
            for x in xs {
                let w = c.weight(x);
                assert!(w <= last, "weight rises: {w} > {last} at {x}");
                assert!(w >= c.min() && w <= 100);
                last = w;
            }
            assert_eq!(c.weight(u32::MAX), c.min());
        }
        if let Some(t) = &r.threshold {
            assert!(t.leave <= t.enter);
            assert!(t.enter <= VALUE_MAX);
            assert!(t.hold_ms <= 86_400_000);
        }
        if let Some(h) = &r.http {
            assert!((1..=60_000).contains(&h.timeout_ms));
            assert!(h.stale_ms <= 86_400_000);
            assert_ne!(h.port, 0);
            let q = &h.request[..];
            assert!(q.starts_with(b"GET /"), "{q:?}");
            assert!(q.ends_with(b"\r\n\r\n"));
            assert_eq!(q.windows(4).filter(|w| w == b"\r\n\r\n").count(), 1);
            for (i, &c) in q.iter().enumerate() {
                match c {
                    b'\r' => assert_eq!(q.get(i + 1), Some(&b'\n')),
                    b'\n' => assert_eq!(q[i - 1], b'\r'),
                    c => assert!((0x20..0x7f).contains(&c), "byte {c} in request"),
                }
            }
            let line_end = q.iter().position(|&c| c == b'\r').unwrap();
            let line = &q[..line_end];
            assert!(line.ends_with(b" HTTP/1.0"));
            assert_eq!(line.iter().filter(|&&c| c == b' ').count(), 2, "{line:?}");
            if let Some(f) = &h.field {
                assert!(!f.is_empty() && f.len() <= config::FIELD_MAX);
            }
        }
    }
});
