//! Parses and checks the feedback configuration; does no I/O.
//!
//! ```json
//! {"interval_ms": 2000,
//!  "rules": [
//!    {"metric": "cpu", "curve": "linear", "low": 50, "limit": 90,
//!     "enter": 95, "leave": 80, "hold_ms": 10000, "smooth_ms": 6000},
//!    {"metric": "http", "url": "http://127.0.0.1:8080/health",
//!     "field": "queue", "curve": "first-order", "limit": 500,
//!     "timeout_ms": 1000, "stale_ms": 10000, "stale": "down",
//!     "service": "web"}]}
//! ```
//!
//! Every error names the field it is about, e.g. `rules[1].limit: must be above low`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use heapless::{String, Vec};

use super::curve::{Curve, Shape};
use super::metrics::parse_decimal;
use crate::json::{Reader, Syntax, Token};
use crate::state::{check_name, Name};

/// The largest configuration file accepted, in bytes.
pub const CONFIG_MAX: usize = 8192;
/// The most rules one file may hold.
pub const RULES_MAX: usize = 16;
/// The most `http` rules one file may hold.
pub const HTTP_MAX: usize = 4;
/// The longest rule name, in bytes.
pub const RULE_NAME_MAX: usize = 16;
/// The longest `path`, in bytes.
pub const PATH_MAX: usize = 128;
/// The longest HTTP request heft sends, in bytes.
pub const REQUEST_MAX: usize = 256;
/// The longest JSON field name, in bytes.
pub const FIELD_MAX: usize = 32;

/// What a rule measures.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Metric {
    /// Busy % of all CPUs, from `/proc/stat` deltas.
    Cpu,
    /// 1-minute load average per CPU, in hundredths.
    Load,
    /// % of memory in use, from `MemAvailable`.
    Mem,
    /// A number an application writes to a file.
    File,
    /// A local HTTP health URL, optionally with a number from its JSON body.
    Http,
}

impl Metric {
    /// Names the metric as the configuration spells it.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cpu => "cpu",
            Metric::Load => "load",
            Metric::Mem => "mem",
            Metric::File => "file",
            Metric::Http => "http",
        }
    }
}

/// What an `http` rule does once its last good answer is older than `stale_ms`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stale {
    /// Report the server DOWN with the failure as the reason.
    Down,
    /// Keep using the last good answer (Herald's `noop`).
    Keep,
    /// Drop the rule's say: 100%, never down.
    Ignore,
    /// Give the rule's minimum weight.
    Min,
}

/// Failure thresholds with hysteresis.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Threshold {
    /// Above this the rule trips and the server is reported DOWN.
    pub enter: u32,
    /// A tripped rule clears only below this...
    pub leave: u32,
    /// ...for at least this long (ms).
    pub hold_ms: u32,
}

/// Where and how an `http` rule asks.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HttpTarget {
    /// The address to connect to.
    pub addr: SocketAddr,
    /// The whole request, ready to send.
    pub request: Vec<u8, REQUEST_MAX>,
    /// The top-level JSON field whose number feeds the curve and thresholds.
    pub field: Option<String<FIELD_MAX>>,
    /// How long one check may take (ms).
    pub timeout_ms: u32,
    /// How long the last good answer stays in use while checks fail (ms).
    pub stale_ms: u32,
    /// What applies after that.
    pub stale: Stale,
}

/// One rule, checked and ready to run.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Rule {
    /// What it measures.
    pub metric: Metric,
    /// Its name in reasons and logs (the metric's name unless set).
    pub name: String<RULE_NAME_MAX>,
    /// The service it applies to; `None`: every entry.
    pub service: Option<Name>,
    /// The file a `file` rule reads.
    pub path: String<PATH_MAX>,
    /// What an `http` rule asks.
    pub http: Option<HttpTarget>,
    /// Decimal places kept of the value (load: 2).
    pub decimals: u8,
    /// The weight curve, if the rule sets weight.
    pub curve: Option<Curve>,
    /// The failure thresholds, if the rule can take the server down.
    pub threshold: Option<Threshold>,
    /// The smoothing time constant (ms); 0 for none.
    pub smooth_ms: u32,
    /// A hash of the rule's text: SIGHUP keeps the running state of a rule
    /// whose text did not change (cheaper than comparing every field).
    pub text_hash: u32,
}

/// A whole configuration.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Config {
    /// Time between samples (ms).
    pub interval_ms: u32,
    /// The rules, in file order.
    pub rules: Vec<Rule, RULES_MAX>,
}

impl Config {
    /// Makes the configuration of no file: no rules, sampling every 2 s.
    pub const fn new() -> Config {
        Config {
            interval_ms: 2000,
            rules: Vec::new(),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}

/// Why a configuration was refused: where, and what is wrong.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConfigError {
    /// The rule's index, for errors inside `rules`.
    pub rule: Option<u8>,
    /// The field's name as written (possibly cut short), or empty for the whole file.
    pub field: String<24>,
    /// What is wrong with it.
    pub what: &'static str,
}

impl From<Syntax> for ConfigError {
    fn from(s: Syntax) -> ConfigError {
        ConfigError {
            rule: None,
            field: String::new(),
            what: s.0,
        }
    }
}

impl ConfigError {
    fn new(rule: Option<u8>, field: &[u8], what: &'static str) -> ConfigError {
        let mut f = String::new();
        for &c in field {
            let c = if (0x20..0x7f).contains(&c) {
                c as char
            } else {
                '?'
            };
            if f.push(c).is_err() {
                break;
            }
        }
        ConfigError {
            rule,
            field: f,
            what,
        }
    }

    /// Appends `rules[N].field: what` to a log line.
    pub fn describe(&self, mut l: crate::log::Line) -> crate::log::Line {
        if let Some(i) = self.rule {
            l = l.s("rules[").u(i as u32).s("]");
            if !self.field.is_empty() {
                l = l.s(".");
            }
        }
        if !self.field.is_empty() {
            l = l.s(&self.field);
        }
        if self.rule.is_some() || !self.field.is_empty() {
            l = l.s(": ");
        }
        l.s(self.what)
    }
}

/// The fields a rule may have, in the order `RawRule` stores them.
const RULE_FIELDS: [&str; 19] = [
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

/// Indexes into `RULE_FIELDS`.
#[derive(Clone, Copy)]
enum F {
    Metric,
    Name,
    Service,
    Path,
    Url,
    Field,
    TimeoutMs,
    StaleMs,
    Stale,
    Decimals,
    Curve,
    Low,
    Limit,
    MinWeight,
    MaxWeight,
    Enter,
    Leave,
    HoldMs,
    SmoothMs,
}

/// A rule's fields as written, before they are checked.
struct RawRule<'a> {
    idx: u8,
    vals: [Option<Token<'a>>; RULE_FIELDS.len()],
}

impl<'a> RawRule<'a> {
    fn err(&self, f: F, what: &'static str) -> ConfigError {
        ConfigError::new(Some(self.idx), RULE_FIELDS[f as usize].as_bytes(), what)
    }

    fn has(&self, f: F) -> bool {
        self.vals[f as usize].is_some()
    }

    /// Reads a plain string field (no escapes).
    fn str(&self, f: F) -> Result<Option<&'a [u8]>, ConfigError> {
        match self.vals[f as usize] {
            None => Ok(None),
            Some(Token::Str(s)) if s.contains(&b'\\') => {
                Err(self.err(f, "escapes are not supported"))
            }
            Some(Token::Str(s)) => Ok(Some(s)),
            Some(Token::Bare(_)) => Err(self.err(f, "must be a string")),
        }
    }

    /// Reads a whole number in `lo..=hi`.
    fn int(&self, f: F, lo: u32, hi: u32, what: &'static str) -> Result<Option<u32>, ConfigError> {
        match self.vals[f as usize] {
            None => Ok(None),
            Some(Token::Bare(t)) => match crate::num::parse_u32(t) {
                Some(v) if (lo..=hi).contains(&v) => Ok(Some(v)),
                _ => Err(self.err(f, what)),
            },
            Some(Token::Str(_)) => Err(self.err(f, what)),
        }
    }

    /// Reads a metric value with `decimals` places.
    fn value(&self, f: F, decimals: u8) -> Result<Option<u32>, ConfigError> {
        match self.vals[f as usize] {
            None => Ok(None),
            Some(Token::Bare(t)) if t.first() != Some(&b'-') => {
                let places = t
                    .iter()
                    .position(|&c| c == b'.')
                    .map_or(0, |p| t.len() - p - 1);
                match parse_decimal(t, decimals) {
                    Some(v) if places <= decimals as usize => Ok(Some(v)),
                    _ => Err(self.err(
                        f,
                        "must be a number with no more decimals than the rule keeps",
                    )),
                }
            }
            Some(_) => Err(self.err(f, "must be a number, 0 or more")),
        }
    }
}

fn copy<const N: usize>(s: &[u8]) -> String<N> {
    let mut out = String::new();
    for &c in s {
        let _ = out.push(c as char);
    }
    out
}

fn rule_name_ok(n: &[u8]) -> bool {
    !n.is_empty()
        && n.len() <= RULE_NAME_MAX
        && n.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Parses a configuration file's bytes.
pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
    let mut cfg = Config::new();
    parse_into(bytes, &mut cfg).map(|()| cfg)
}

/// Parses a configuration file's bytes into `cfg`, which the caller owns
/// (a `Config` is several KB: the loop keeps a spare one rather than grow its
/// stack on SIGHUP). On error `cfg` holds a partial configuration.
pub fn parse_into(bytes: &[u8], cfg: &mut Config) -> Result<(), ConfigError> {
    if bytes.len() > CONFIG_MAX {
        return Err(ConfigError::new(None, b"", "file larger than 8192 bytes"));
    }
    cfg.interval_ms = 2000;
    cfg.rules.clear();
    let mut r = Reader::new(bytes);
    let mut http_count = 0;
    let mut first = true;
    r.open(b'{')?;
    while let Some(key) = r.next_key(&mut first)? {
        // A syntax error inside a known field's value names the field.
        let in_key = |e: Syntax| ConfigError::new(None, key, e.0);
        match key {
            b"interval_ms" => {
                const WHAT: &str = "must be a whole number from 100 to 3600000";
                cfg.interval_ms = match r.token().map_err(in_key)? {
                    Token::Bare(t) => crate::num::parse_u32(t)
                        .filter(|v| (100..=3_600_000).contains(v))
                        .ok_or(ConfigError::new(None, key, WHAT))?,
                    Token::Str(_) => return Err(ConfigError::new(None, key, WHAT)),
                };
            }
            b"rules" => {
                let mut first = true;
                r.open(b'[').map_err(in_key)?;
                while r.next_item(&mut first).map_err(in_key)? {
                    let idx = cfg.rules.len();
                    if idx == RULES_MAX {
                        return Err(ConfigError::new(None, b"rules", "more than 16 rules"));
                    }
                    let rule = parse_rule(&mut r, idx as u8)?;
                    if rule.metric == Metric::Http {
                        http_count += 1;
                        if http_count > HTTP_MAX {
                            return Err(ConfigError::new(
                                Some(idx as u8),
                                b"metric",
                                "more than 4 http rules",
                            ));
                        }
                    }
                    let _ = cfg.rules.push(rule);
                }
            }
            _ => {
                return Err(ConfigError::new(
                    None,
                    key,
                    "unknown field (expected interval_ms or rules)",
                ))
            }
        }
    }
    r.end()?;
    Ok(())
}

fn parse_rule(r: &mut Reader<'_>, idx: u8) -> Result<Rule, ConfigError> {
    let mut raw = RawRule {
        idx,
        vals: [None; RULE_FIELDS.len()],
    };
    let syntax = |e: Syntax| ConfigError::new(Some(idx), b"", e.0);
    let mut first = true;
    r.open(b'{').map_err(syntax)?;
    let start = r.pos();
    while let Some(key) = r.next_key(&mut first).map_err(syntax)? {
        let Some(i) = RULE_FIELDS.iter().position(|f| f.as_bytes() == key) else {
            return Err(ConfigError::new(Some(idx), key, "unknown field"));
        };
        if raw.vals[i].is_some() {
            return Err(ConfigError::new(Some(idx), key, "given twice"));
        }
        raw.vals[i] = Some(
            r.token()
                .map_err(|e| ConfigError::new(Some(idx), key, e.0))?,
        );
    }
    let mut rule = check_rule(&raw)?;
    // FNV-1a.
    rule.text_hash = r.since(start).iter().fold(0x811c_9dc5, |h, &b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    });
    Ok(rule)
}

fn check_rule(raw: &RawRule<'_>) -> Result<Rule, ConfigError> {
    let metric = match raw.str(F::Metric)? {
        Some(b"cpu") => Metric::Cpu,
        Some(b"load") => Metric::Load,
        Some(b"mem") => Metric::Mem,
        Some(b"file") => Metric::File,
        Some(b"http") => Metric::Http,
        Some(_) => return Err(raw.err(F::Metric, "must be cpu, load, mem, file or http")),
        None => return Err(raw.err(F::Metric, "missing (cpu, load, mem, file or http)")),
    };
    let name = match raw.str(F::Name)? {
        Some(n) if rule_name_ok(n) => copy(n),
        Some(_) => return Err(raw.err(F::Name, "must be 1 to 16 of [A-Za-z0-9_.-]")),
        None => copy(metric.name().as_bytes()),
    };
    let service = match raw.str(F::Service)? {
        Some(s) => {
            check_name(s).map_err(|_| raw.err(F::Service, "must be 1 to 32 of [A-Za-z0-9_.-]"))?;
            Some(copy(s))
        }
        None => None,
    };
    let only = |f: F, ok: bool, what: &'static str| -> Result<(), ConfigError> {
        if raw.has(f) && !ok {
            return Err(raw.err(f, what));
        }
        Ok(())
    };
    let is_http = metric == Metric::Http;
    only(F::Path, metric == Metric::File, "only for metric file")?;
    for f in [F::Url, F::Field, F::TimeoutMs, F::StaleMs, F::Stale] {
        only(f, is_http, "only for metric http")?;
    }
    only(
        F::Decimals,
        matches!(metric, Metric::File | Metric::Http),
        "only for metric file or http",
    )?;
    let path = match raw.str(F::Path)? {
        Some(p) if p.len() <= PATH_MAX && !p.is_empty() => copy(p),
        Some(_) => return Err(raw.err(F::Path, "must be 1 to 128 bytes")),
        None if metric == Metric::File => {
            return Err(raw.err(F::Path, "missing (the file to read)"))
        }
        None => String::new(),
    };
    let decimals = match metric {
        Metric::Load => 2,
        Metric::File | Metric::Http => {
            raw.int(F::Decimals, 0, 3, "must be 0 to 3")?.unwrap_or(0) as u8
        }
        _ => 0,
    };
    let http = if is_http {
        Some(check_http(raw)?)
    } else {
        None
    };
    let low = raw.value(F::Low, decimals)?;
    let limit = raw.value(F::Limit, decimals)?;
    let min_w = raw.int(F::MinWeight, 0, 100, "must be 0 to 100")?;
    let max_w = raw.int(F::MaxWeight, 1, 100, "must be 1 to 100")?;
    let curve = match raw.str(F::Curve)? {
        None => {
            for f in [F::Low, F::Limit, F::MinWeight, F::MaxWeight] {
                only(f, false, "needs a curve (linear or first-order)")?;
            }
            None
        }
        Some(c) => {
            let shape = match c {
                b"linear" => Shape::Linear,
                b"first-order" => Shape::FirstOrder,
                _ => return Err(raw.err(F::Curve, "must be linear or first-order")),
            };
            let low = low.unwrap_or(0);
            let limit =
                limit.ok_or(raw.err(F::Limit, "missing (where the minimum weight is reached)"))?;
            if limit <= low {
                return Err(raw.err(F::Limit, "must be above low"));
            }
            let (min_w, max_w) = (min_w.unwrap_or(1), max_w.unwrap_or(100));
            if min_w > max_w {
                return Err(raw.err(F::MinWeight, "must not be above max_weight"));
            }
            Some(Curve::new(shape, low, limit, min_w as u8, max_w as u8))
        }
    };
    let enter = raw.value(F::Enter, decimals)?;
    let threshold = match enter {
        None => {
            only(F::Leave, false, "needs enter")?;
            only(F::HoldMs, false, "needs enter")?;
            None
        }
        Some(enter) => {
            let leave = raw.value(F::Leave, decimals)?.unwrap_or(enter);
            if leave > enter {
                return Err(raw.err(F::Leave, "must not be above enter"));
            }
            let hold_ms = raw
                .int(F::HoldMs, 0, 86_400_000, "must be 0 to 86400000")?
                .unwrap_or(0);
            Some(Threshold {
                enter,
                leave,
                hold_ms,
            })
        }
    };
    let smooth_ms = raw
        .int(F::SmoothMs, 0, 86_400_000, "must be 0 to 86400000")?
        .unwrap_or(0);
    if curve.is_none() && threshold.is_none() && !is_http {
        return Err(raw.err(
            F::Curve,
            "missing: a rule needs a curve, an enter threshold, or both",
        ));
    }
    Ok(Rule {
        metric,
        name,
        service,
        path,
        http,
        decimals,
        curve,
        threshold,
        smooth_ms,
        text_hash: 0,
    })
}

fn check_http(raw: &RawRule<'_>) -> Result<HttpTarget, ConfigError> {
    let url = raw
        .str(F::Url)?
        .ok_or(raw.err(F::Url, "missing (http://host:port/path)"))?;
    let (addr, host, path) = parse_url(url).ok_or(raw.err(
        F::Url,
        "must be http://HOST[:PORT]/PATH with HOST an IP address or localhost",
    ))?;
    let mut request: Vec<u8, REQUEST_MAX> = Vec::new();
    let parts: [&[u8]; 5] = [
        b"GET ",
        path,
        b" HTTP/1.0\r\nHost: ",
        host,
        b"\r\nUser-Agent: heft\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
    ];
    for p in parts {
        request
            .extend_from_slice(p)
            .map_err(|_| raw.err(F::Url, "too long"))?;
    }
    let field = match raw.str(F::Field)? {
        Some(f) if !f.is_empty() && f.len() <= FIELD_MAX => Some(copy(f)),
        Some(_) => return Err(raw.err(F::Field, "must be 1 to 32 bytes")),
        None => None,
    };
    let stale = match raw.str(F::Stale)? {
        None | Some(b"down") => Stale::Down,
        Some(b"keep") => Stale::Keep,
        Some(b"ignore") => Stale::Ignore,
        Some(b"min") => Stale::Min,
        Some(_) => return Err(raw.err(F::Stale, "must be down, keep, ignore or min")),
    };
    Ok(HttpTarget {
        addr,
        request,
        field,
        timeout_ms: raw
            .int(F::TimeoutMs, 1, 60_000, "must be 1 to 60000")?
            .unwrap_or(1000),
        stale_ms: raw
            .int(F::StaleMs, 0, 86_400_000, "must be 0 to 86400000")?
            .unwrap_or(0),
        stale,
    })
}

/// Splits `http://host[:port][/path]` into an address, the Host header value and the path.
pub fn parse_url(url: &[u8]) -> Option<(SocketAddr, &[u8], &[u8])> {
    let rest = url.strip_prefix(b"http://")?;
    let end = rest.iter().position(|&c| c == b'/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let path: &[u8] = if path.is_empty() { b"/" } else { path };
    if path.iter().any(|&c| !(0x21..0x7f).contains(&c)) || authority.is_empty() {
        return None;
    }
    let (host, port) = if let Some(r) = authority.strip_prefix(b"[") {
        let close = r.iter().position(|&c| c == b']')?;
        let port = r[close + 1..].strip_prefix(b":");
        if port.is_none() && close + 1 != r.len() {
            return None;
        }
        (&r[..close], port)
    } else {
        match authority.iter().position(|&c| c == b':') {
            Some(p) => (&authority[..p], Some(&authority[p + 1..])),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => u16::try_from(crate::num::parse_u32(p)?)
            .ok()
            .filter(|&p| p != 0)?,
        None => 80,
    };
    let ip: IpAddr = if host.eq_ignore_ascii_case(b"localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        core::str::from_utf8(host).ok()?.parse().ok()?
    };
    Some((SocketAddr::new(ip, port), authority, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> (Option<u8>, std::string::String, &'static str) {
        let e = parse(s.as_bytes()).unwrap_err();
        (e.rule, e.field.as_str().into(), e.what)
    }

    #[test]
    fn reads_a_full_configuration() {
        let c = parse(
            br#"{"interval_ms": 500, "rules": [
              {"metric":"cpu","curve":"linear","low":50,"limit":90,"enter":95,"leave":80,"hold_ms":10000,"smooth_ms":6000},
              {"metric":"load","curve":"first-order","limit":1.5,"min_weight":5,"max_weight":80},
              {"metric":"mem","enter":90,"service":"web"},
              {"metric":"file","path":"/run/app/load","decimals":1,"curve":"linear","low":0.5,"limit":10,"name":"appload"},
              {"metric":"http","url":"http://127.0.0.1:8080/health?x=1","field":"queue","curve":"linear","limit":500,
               "timeout_ms":300,"stale_ms":10000,"stale":"keep"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(c.interval_ms, 500);
        assert_eq!(c.rules.len(), 5);
        let cpu = &c.rules[0];
        assert_eq!(cpu.name.as_str(), "cpu");
        assert_eq!(
            cpu.threshold,
            Some(Threshold {
                enter: 95,
                leave: 80,
                hold_ms: 10000
            })
        );
        assert_eq!(cpu.curve.unwrap().weight(70), 50);
        let load = &c.rules[1];
        assert_eq!(load.decimals, 2);
        assert_eq!(load.curve.unwrap().weight(150), 5);
        assert_eq!(load.curve.unwrap().weight(0), 80);
        assert_eq!(c.rules[2].service.as_ref().unwrap().as_str(), "web");
        assert!(c.rules[2].curve.is_none());
        let file = &c.rules[3];
        assert_eq!(
            (file.name.as_str(), file.path.as_str(), file.decimals),
            ("appload", "/run/app/load", 1)
        );
        let h = c.rules[4].http.as_ref().unwrap();
        assert_eq!(h.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            (h.timeout_ms, h.stale_ms, h.stale),
            (300, 10000, Stale::Keep)
        );
        assert!(h
            .request
            .starts_with(b"GET /health?x=1 HTTP/1.0\r\nHost: 127.0.0.1:8080\r\n"));
        assert!(h.request.ends_with(b"\r\n\r\n"));
        assert_eq!(h.field.as_ref().unwrap().as_str(), "queue");
    }

    #[test]
    fn defaults() {
        let c = parse(br#"{"rules":[{"metric":"http","url":"http://localhost"}]}"#).unwrap();
        assert_eq!(c.interval_ms, 2000);
        let h = c.rules[0].http.as_ref().unwrap();
        assert_eq!(h.addr, "127.0.0.1:80".parse().unwrap());
        assert_eq!((h.timeout_ms, h.stale_ms, h.stale), (1000, 0, Stale::Down));
        assert!(h.request.starts_with(b"GET / HTTP/1.0\r\n"));
        let c = parse(br#"{"rules":[{"metric":"cpu","curve":"linear","limit":90}]}"#).unwrap();
        let cv = c.rules[0].curve.unwrap();
        assert_eq!((cv.weight(0), cv.weight(90), cv.min()), (100, 1, 1));
        assert!(parse(b" {} ").unwrap().rules.is_empty());
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            err(r#"{"rules":[{"metric":"cpu","curve":"linear","limit":50,"low":60}]}"#),
            (Some(0), "limit".into(), "must be above low")
        );
        assert_eq!(
            err(r#"{"rules":[{"metric":"cpu","enter":9},{"metric":"disk"}]}"#).0,
            Some(1)
        );
        assert_eq!(err(r#"{"rules":[{"metric":"disk"}]}"#).1, "metric");
        assert_eq!(err(r#"{"rules":[{"curve":"linear"}]}"#).1, "metric");
        assert_eq!(err(r#"{"rules":[{"metric":"cpu","limt":5}]}"#).1, "limt");
        assert_eq!(
            err(r#"{"rules":[{"metric":"cpu","enter":5,"enter":6}]}"#).2,
            "given twice"
        );
        assert_eq!(err(r#"{"rules":[{"metric":"cpu"}]}"#).1, "curve");
        assert_eq!(
            err(r#"{"rules":[{"metric":"cpu","curve":"cubic","limit":5}]}"#).1,
            "curve"
        );
        assert_eq!(
            err(r#"{"rules":[{"metric":"cpu","curve":"linear"}]}"#).1,
            "limit"
        );
        assert_eq!(
            err(r#"{"rules":[{"metric":"cpu","enter":"95"}]}"#).1,
            "enter"
        );
        assert_eq!(err(r#"{"rules":[{"metric":"cpu","enter":-5}]}"#).1, "enter");
        assert_eq!(
            err(r#"{"rules":[{"metric":"cpu","enter":9,"leave":10}]}"#).1,
            "leave"
        );
        assert_eq!(err(r#"{"rules":[{"metric":"cpu","leave":10}]}"#).1, "leave");
        assert_eq!(
            err(r#"{"rules":[{"metric":"cpu","enter":9,"path":"/x"}]}"#).1,
            "path"
        );
        assert_eq!(err(r#"{"rules":[{"metric":"file","enter":9}]}"#).1, "path");
        assert_eq!(
            err(r#"{"rules":[{"metric":"cpu","low":1,"enter":9}]}"#).1,
            "low"
        );
        assert_eq!(
            err(r#"{"rules":[{"metric":"cpu","curve":"linear","limit":9,"min_weight":101}]}"#).1,
            "min_weight"
        );
        assert_eq!(err(r#"{"rules":[{"metric":"cpu","curve":"linear","limit":9,"min_weight":50,"max_weight":40}]}"#).1, "min_weight");
        assert_eq!(
            err(r#"{"rules":[{"metric":"cpu","enter":9,"service":"a b"}]}"#).1,
            "service"
        );
        assert_eq!(
            err(r#"{"rules":[{"metric":"cpu","enter":9,"name":"x#y"}]}"#).1,
            "name"
        );
        assert_eq!(err(r#"{"rules":[{"metric":"http"}]}"#).1, "url");
        assert_eq!(
            err(r#"{"rules":[{"metric":"http","url":"https://x/"}]}"#).1,
            "url"
        );
        assert_eq!(
            err(r#"{"rules":[{"metric":"http","url":"http://example.com/"}]}"#).1,
            "url"
        );
        assert_eq!(
            err(r#"{"rules":[{"metric":"http","url":"http://127.0.0.1:99999/"}]}"#).1,
            "url"
        );
        assert_eq!(
            err(r#"{"rules":[{"metric":"http","url":"http://[::1]:80/","stale":"maybe"}]}"#).1,
            "stale"
        );
        assert_eq!(
            err(r#"{"rules":[{"metric":"http","url":"http://[::1]:80/","timeout_ms":0}]}"#).1,
            "timeout_ms"
        );
        assert_eq!(
            err(r#"{"rules":[{"metric":"file","path":"/x","enter":1.25,"decimals":1}]}"#).1,
            "enter"
        );
        assert_eq!(err(r#"{"interval_ms":50}"#).1, "interval_ms");
        assert_eq!(err(r#"{"interval":2000}"#).1, "interval");
        assert_eq!(err(r#"{"rules":[{"metric":"cpu","enter":{}}]}"#).1, "enter");
        // A syntax error inside the rules array names it.
        let (rule, field, what) = err(r#"{"rules":[{"metric":"cpu","enter":9}"#);
        assert_eq!((rule, field.as_str()), (None, "rules"));
        assert!(!what.is_empty());
        assert_eq!(err("").2, "expected an object");
        assert_eq!(err("{} {}").2, "bytes after the JSON value");
        let many = std::format!(
            r#"{{"rules":[{}]}}"#,
            vec![r#"{"metric":"cpu","enter":9}"#; 17].join(",")
        );
        assert_eq!(err(&many).2, "more than 16 rules");
        let http = std::format!(
            r#"{{"rules":[{}]}}"#,
            [r#"{"metric":"http","url":"http://localhost/"}"#; 5].join(",")
        );
        assert_eq!(err(&http).2, "more than 4 http rules");
    }

    #[test]
    fn describes_errors_for_the_log() {
        let e = parse(br#"{"rules":[{"metric":"cpu","curve":"linear","limit":5,"low":6}]}"#)
            .unwrap_err();
        assert_eq!(e.rule, Some(0));
        // describe() is exercised through the binary's start-up test.
        let _ = e.describe(crate::log::error());
    }

    #[test]
    fn parses_urls() {
        let (a, h, p) = parse_url(b"http://[::1]:8081/x/y").unwrap();
        assert_eq!(
            (a, h, p),
            (
                "[::1]:8081".parse().unwrap(),
                &b"[::1]:8081"[..],
                &b"/x/y"[..]
            )
        );
        assert!(parse_url(b"http://[::1]x/").is_none());
        assert!(parse_url(b"http://1.2.3.4:0/").is_none());
        assert!(parse_url(b"http:///x").is_none());
        assert!(parse_url(b"http://1.2.3.4/a b").is_none());
        assert_eq!(
            parse_url(b"http://LOCALHOST:9/").unwrap().0,
            "127.0.0.1:9".parse().unwrap()
        );
    }
}
