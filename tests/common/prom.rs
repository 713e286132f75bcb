//! `/metrics` in Prometheus text format: fetched over HTTP and parsed
//! strictly (every line HELP, TYPE or a sample, TYPE before samples,
//! counters named `_total`), each sample by `name{labels}`.

use super::http::http_from;
use super::net::V4;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// One parsed `/metrics` page: every sample by `name{labels}`, each line checked.
pub struct Metrics {
    pub samples: BTreeMap<String, f64>,
    pub raw: String,
}

impl Metrics {
    pub fn get(&self, key: &str) -> f64 {
        *self
            .samples
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key} in\n{}", self.raw))
    }
}

/// Tells whether `n` is a valid Prometheus metric or label name.
pub fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

/// Parses Prometheus text: every line is `# HELP name text`, `# TYPE name
/// kind`, or `name{k="v",...} value`, with the TYPE before the samples.
pub fn parse_metrics(raw: &str) -> Metrics {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    assert!(raw.ends_with('\n'), "metrics do not end with a newline");
    for line in raw.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(
                valid_name(name) && !help.is_empty(),
                "bad HELP line {line:?}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad TYPE line {line:?}"));
            assert!(valid_name(name), "bad TYPE line {line:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad TYPE line {line:?}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice: {line:?}"
            );
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "neither HELP, TYPE nor a sample: {line:?}"
        );
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line:?}"));
        let name = match series.split_once('{') {
            None => series,
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("bad labels: {line:?}"));
                for pair in labels.split(',') {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("bad label: {line:?}"));
                    assert!(valid_name(k), "bad label name: {line:?}");
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or_else(|| panic!("unquoted label value: {line:?}"));
                    assert!(
                        !v.contains('"') && !v.contains('\\'),
                        "label value needs escapes: {line:?}"
                    );
                }
                name
            }
        };
        assert!(valid_name(name), "bad metric name: {line:?}");
        assert!(types.contains_key(name), "sample before its TYPE: {line:?}");
        if types[name] == "counter" {
            assert!(
                name.ends_with("_total") && value >= 0.0,
                "bad counter: {line:?}"
            );
        }
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "sample twice: {line:?}"
        );
    }
    Metrics {
        samples,
        raw: raw.to_string(),
    }
}

/// Scrapes `/metrics` from `src`, checks the headers and parses the page.
pub fn metrics_from(src: IpAddr, dst: SocketAddr) -> Metrics {
    let r = http_from(src, dst, "GET", "/metrics");
    assert_eq!(r.code(), 200, "{}", r.body);
    assert_eq!(r.header("Content-Type"), Some("text/plain; version=0.0.4"));
    assert_eq!(
        r.header("Content-Length"),
        Some(r.body.len().to_string().as_str())
    );
    parse_metrics(&r.body)
}

/// Scrapes `/metrics` from 127.0.0.1.
pub fn metrics(port: u16) -> Metrics {
    metrics_from(V4, SocketAddr::new(V4, port))
}
