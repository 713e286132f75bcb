//! `/metrics` in Prometheus text format: fetched over HTTP, parsed strictly
//! (every line HELP, TYPE or a sample; each family's HELP and TYPE, then all
//! of its samples; counters named `_total`), each sample by `name{labels}`,
//! and checked by Prometheus's own parser (`promtool check metrics`).

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
/// kind`, or `name{k="v",...} value`; each family is its HELP, its TYPE,
/// then all of its samples, before the next family starts.
pub fn parse_metrics(raw: &str) -> Metrics {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    // The family whose samples may follow, and the last HELP's name.
    let (mut family, mut helped) = (String::new(), String::new());
    assert!(raw.ends_with('\n'), "metrics do not end with a newline");
    for line in raw.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(
                valid_name(name) && !help.is_empty(),
                "bad HELP line {line:?}"
            );
            helped = name.to_string();
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
            assert_eq!(helped, name, "TYPE without its HELP just before: {line:?}");
            family = name.to_string();
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
        assert_eq!(family, name, "sample outside its family: {line:?}");
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

/// Runs Prometheus's parser and linter on `raw` (`promtool check metrics`);
/// panics with what it says unless it accepts the page.
pub fn promtool_check(raw: &str) {
    use std::io::Write;
    let promtool = super::which("promtool")
        .expect("promtool is not installed (Debian's prometheus package; tests/ci.sh installs it)");
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(raw.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {:?}\n{}{}\npage:\n{raw}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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
