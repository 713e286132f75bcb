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

use std::net::IpAddr;

use heapless::string::StringView;
use heapless::{String, Vec};

use super::curve::{Curve, Shape};
use super::metrics::parse_decimal;
use crate::model::json::{Reader, Token};
use crate::model::state::{check_name, Name};
use crate::num::pieces;

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
    pub fn name(self) -> &'static [u8] {
        nth(METRIC_NAMES, self as usize)
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
    /// The address to connect to (kept apart from the port: a `SocketAddr`
    /// costs unaligned copies each time its parts are taken out).
    pub ip: IpAddr,
    /// The port to connect to.
    pub port: u16,
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

impl ConfigError {
    /// Makes the error about `field`, named as written: cut short, `?` for
    /// any byte outside printable ASCII.
    fn new(rule: Option<u8>, field: &[u8], what: &'static str) -> ConfigError {
        let mut f = String::new();
        copy(f.as_mut_view(), field, true);
        ConfigError {
            rule,
            field: f,
            what,
        }
    }

    /// Appends `rules[N].field: what` to a log line.
    pub fn describe<'l>(&self, l: &'l mut crate::log::Line) -> &'l mut crate::log::Line {
        if let Some(i) = self.rule {
            l.s("rules[").u(i as u32).s("]");
            if !self.field.is_empty() {
                l.s(".");
            }
        }
        if !self.field.is_empty() {
            l.s(&self.field);
        }
        if self.rule.is_some() || !self.field.is_empty() {
            l.s(": ");
        }
        l.s(self.what)
    }
}

/// The fields a rule may have, in the order `Parser::vals` stores them.
///
/// This and the other word lists below are one string of space-separated
/// words rather than arrays of `&str`: an array stores a pointer and a length
/// for every word.
const RULE_FIELDS: &str = "metric name service path url field timeout_ms stale_ms stale \
    decimals curve low limit min_weight max_weight enter leave hold_ms smooth_ms";
/// How many words `RULE_FIELDS` has.
const RULE_FIELD_COUNT: usize = F::SmoothMs as usize + 1;

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

/// The metrics, in the order of `METRIC_NAMES`.
const METRICS: [Metric; 5] = [
    Metric::Cpu,
    Metric::Load,
    Metric::Mem,
    Metric::File,
    Metric::Http,
];
/// The metrics' names as the configuration spells them.
const METRIC_NAMES: &str = "cpu load mem file http";
/// The `stale` values, in the order of `STALE_NAMES`.
const STALES: [Stale; 4] = [Stale::Down, Stale::Keep, Stale::Ignore, Stale::Min];
/// The `stale` values as the configuration spells them.
const STALE_NAMES: &str = "down keep ignore min";
/// The curve shapes, in the order of `SHAPE_NAMES`.
const SHAPES: [Shape; 2] = [Shape::Linear, Shape::FirstOrder];
/// The curve shapes as the configuration spells them.
const SHAPE_NAMES: &str = "linear first-order";
/// The top-level fields.
const TOP_FIELDS: &str = "interval_ms rules";

/// Makes a rule with every field at its default, for `check_rule` to fill in
/// (built field by field: a `const` would be a 600-byte copy from rodata).
fn blank_rule() -> Rule {
    Rule {
        metric: Metric::Cpu,
        name: String::new(),
        service: None,
        path: String::new(),
        http: None,
        decimals: 0,
        curve: None,
        threshold: None,
        smooth_ms: 0,
        text_hash: 0,
    }
}

/// Finds `s` among the space-separated `words` and returns its index.
pub(super) fn find(words: &str, s: &[u8]) -> Option<usize> {
    pieces(words.as_bytes(), b' ').position(|w| w == s)
}

/// Counts the space-separated words of a list, for the checks below.
const fn word_count(words: &str) -> usize {
    let (b, mut i, mut n) = (words.as_bytes(), 0, 1);
    while i < b.len() {
        n += (b[i] == b' ') as usize;
        i += 1;
    }
    n
}

// Each list has a word for every value it stands for.
const _: () = assert!(word_count(RULE_FIELDS) == RULE_FIELD_COUNT);
const _: () = assert!(word_count(METRIC_NAMES) == METRICS.len());
const _: () = assert!(word_count(STALE_NAMES) == STALES.len());
const _: () = assert!(word_count(SHAPE_NAMES) == SHAPES.len());

/// Returns word `i` of the space-separated `words` (empty past the last).
fn nth(words: &str, i: usize) -> &[u8] {
    pieces(words.as_bytes(), b' ').nth(i).unwrap_or_default()
}

/// Reads a whole number in `lo..=hi` from a token.
#[inline(always)]
fn bounded(t: Token<'_>, lo: u32, hi: u32) -> Option<u32> {
    match t {
        Token::Bare(t) => crate::num::parse_u32(t).filter(|v| (lo..=hi).contains(v)),
        Token::Str(_) => None,
    }
}

/// Appends each byte of `s`, ASCII unless `printable` says to write `?` for
/// any byte outside printable ASCII, leaving out those that do not fit.
fn copy(out: &mut StringView, s: &[u8], printable: bool) {
    for &c in s {
        let c = if printable && !(0x20..0x7f).contains(&c) {
            b'?'
        } else {
            c
        };
        // Masked, the char is known to take one byte (callers pass ASCII).
        let _ = out.push((c & 0x7f) as char);
    }
}

/// Stops parsing; `Parser::bad` says why.
struct Stop;

/// Reads a configuration and keeps the first problem found.
struct Parser<'a> {
    /// Where in the text it is.
    r: Reader<'a>,
    /// The index of the rule being read, if any.
    rule: Option<u8>,
    /// The rule's fields as written, before they are checked.
    vals: [Option<Token<'a>>; RULE_FIELD_COUNT],
    /// The decimal places values are read with.
    decimals: u8,
    /// The field found wrong, as written, and what is wrong with it.
    bad: (&'a [u8], &'static str),
}

impl<'a> Parser<'a> {
    /// Records that `field`, as written, is wrong.
    #[cold]
    fn record(&mut self, field: &'a [u8], what: &'static str) -> Stop {
        self.bad = (field, what);
        Stop
    }

    /// Records that the field at `i` in `RULE_FIELDS` is wrong.
    #[cold]
    #[inline(never)]
    fn fail_at(&mut self, i: usize, what: &'static str) -> Stop {
        self.record(nth(RULE_FIELDS, i), what)
    }

    /// Records that field `f` is wrong.
    #[inline(always)]
    fn fail(&mut self, f: F, what: &'static str) -> Stop {
        self.fail_at(f as usize, what)
    }

    /// Reads the configuration into `cfg`.
    fn config(&mut self, cfg: &mut Config) -> Result<(), Stop> {
        cfg.interval_ms = 2000;
        cfg.rules.clear();
        let mut http_count = 0;
        let mut first = true;
        self.r.open(b'{').map_err(|e| self.record(b"", e.text()))?;
        while let Some(key) = self.next_key(&mut first)? {
            // A syntax error inside a known field's value names the field.
            match find(TOP_FIELDS, key) {
                Some(0) => {
                    let t = self.r.token().map_err(|e| self.record(key, e.text()))?;
                    cfg.interval_ms = bounded(t, 100, 3_600_000).ok_or_else(|| {
                        self.record(key, "must be a whole number from 100 to 3600000")
                    })?;
                }
                Some(_) => {
                    let mut first = true;
                    self.r.open(b'[').map_err(|e| self.record(key, e.text()))?;
                    while self
                        .r
                        .next_item(&mut first)
                        .map_err(|e| self.record(key, e.text()))?
                    {
                        let idx = cfg.rules.len();
                        if cfg.rules.push(blank_rule()).is_err() {
                            return Err(self.record(key, "more than 16 rules"));
                        }
                        let rule = &mut cfg.rules[idx];
                        self.rule = Some(idx as u8);
                        self.read_rule(rule)?;
                        if rule.metric == Metric::Http {
                            http_count += 1;
                            if http_count > HTTP_MAX {
                                return Err(self.record(b"metric", "more than 4 http rules"));
                            }
                        }
                        self.rule = None;
                    }
                }
                None => {
                    return Err(self.record(key, "unknown field (expected interval_ms or rules)"))
                }
            }
        }
        self.r.end().map_err(|e| self.record(b"", e.text()))
    }

    /// Moves to the next member of the object being read and returns its key.
    fn next_key(&mut self, first: &mut bool) -> Result<Option<&'a [u8]>, Stop> {
        self.r
            .next_key(first)
            .map_err(|e| self.record(b"", e.text()))
    }

    /// Reads the rule at the reader into `rule`, a blank one.
    fn read_rule(&mut self, rule: &mut Rule) -> Result<(), Stop> {
        self.r.open(b'{').map_err(|e| self.record(b"", e.text()))?;
        let start = self.r.pos();
        self.vals = [None; RULE_FIELD_COUNT];
        let mut first = true;
        while let Some(key) = self.next_key(&mut first)? {
            let Some(i) = find(RULE_FIELDS, key) else {
                return Err(self.record(
                    key,
                    "unknown field (expected a rule key, e.g. metric, curve, limit)",
                ));
            };
            if self.vals[i].is_some() {
                return Err(self.record(key, "given twice"));
            }
            self.vals[i] = Some(self.r.token().map_err(|e| self.record(key, e.text()))?);
        }
        check_rule(self, rule)?;
        // FNV-1a.
        rule.text_hash = self.r.since(start).iter().fold(0x811c_9dc5, |h, &b| {
            (h ^ b as u32).wrapping_mul(0x0100_0193)
        });
        Ok(())
    }

    /// Refuses the fields `from..=to` if any is set.
    fn none_of(&mut self, from: F, to: F, what: &'static str) -> Result<(), Stop> {
        for i in from as usize..=to as usize {
            if self.vals[i].is_some() {
                return Err(self.fail_at(i, what));
            }
        }
        Ok(())
    }

    /// Reads a plain string field (no escapes).
    fn str(&mut self, f: F) -> Result<Option<&'a [u8]>, Stop> {
        match self.vals[f as usize] {
            None => Ok(None),
            Some(Token::Str(s)) if s.contains(&b'\\') => {
                Err(self.fail(f, "must be a string without escapes"))
            }
            Some(Token::Str(s)) => Ok(Some(s)),
            Some(Token::Bare(_)) => Err(self.fail(f, "must be a string")),
        }
    }

    /// Reads a string field that must be one of `words`, as an index into them.
    ///
    /// Inlined into its three callers: that comes out smaller than the calls.
    #[inline(always)]
    fn word(&mut self, f: F, words: &str, what: &'static str) -> Result<Option<usize>, Stop> {
        match self.str(f)? {
            None => Ok(None),
            Some(s) => match find(words, s) {
                Some(i) => Ok(Some(i)),
                None => Err(self.fail(f, what)),
            },
        }
    }

    /// Reads a whole number in `lo..=hi`, or `default` if the field is not set.
    fn int(
        &mut self,
        f: F,
        lo: u32,
        hi: u32,
        default: u32,
        what: &'static str,
    ) -> Result<u32, Stop> {
        match self.vals[f as usize] {
            None => Ok(default),
            Some(t) => bounded(t, lo, hi).ok_or_else(|| self.fail(f, what)),
        }
    }

    /// Reads a time of up to a day in ms, 0 if the field is not set.
    #[inline(never)]
    fn ms(&mut self, f: F) -> Result<u32, Stop> {
        self.int(f, 0, 86_400_000, 0, "must be 0 to 86400000")
    }

    /// Reads a metric value with the rule's decimal places.
    fn value(&mut self, f: F) -> Result<Option<u32>, Stop> {
        match self.vals[f as usize] {
            None => Ok(None),
            Some(Token::Bare(t)) if t.first() != Some(&b'-') => {
                let places = t
                    .iter()
                    .position(|&c| c == b'.')
                    .map_or(0, |p| t.len() - p - 1);
                match parse_decimal(t, self.decimals) {
                    Some(v) if places <= self.decimals as usize => Ok(Some(v)),
                    _ => Err(self.fail(
                        f,
                        "must be a number with no more decimals than the rule keeps",
                    )),
                }
            }
            Some(_) => Err(self.fail(f, "must be a number, 0 or more")),
        }
    }
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
    let mut p = Parser {
        r: Reader::new(bytes),
        rule: None,
        vals: [None; RULE_FIELD_COUNT],
        decimals: 0,
        bad: (b"", "file larger than 8192 bytes"),
    };
    // One error path: a file too large stops before `config` with `bad` as set.
    let r = if bytes.len() > CONFIG_MAX {
        Err(Stop)
    } else {
        p.config(cfg)
    };
    r.map_err(|Stop| ConfigError::new(p.rule, p.bad.0, p.bad.1))
}

/// Checks a rule's fields and fills in `rule`, a blank one.
#[inline(never)]
fn check_rule(p: &mut Parser<'_>, rule: &mut Rule) -> Result<(), Stop> {
    let metric = match p.word(
        F::Metric,
        METRIC_NAMES,
        "must be cpu, load, mem, file or http",
    )? {
        Some(i) => METRICS[i],
        None => return Err(p.fail(F::Metric, "missing (cpu, load, mem, file or http)")),
    };
    rule.metric = metric;
    let name = match p.str(F::Name)? {
        Some(n) if n.len() <= RULE_NAME_MAX && check_name(n).is_ok() => n,
        Some(_) => return Err(p.fail(F::Name, "must be 1 to 16 of [A-Za-z0-9_.-]")),
        None => metric.name(),
    };
    copy(rule.name.as_mut_view(), name, false);
    if let Some(s) = p.str(F::Service)? {
        if check_name(s).is_err() {
            return Err(p.fail(F::Service, "must be 1 to 32 of [A-Za-z0-9_.-]"));
        }
        copy(rule.service.insert(String::new()).as_mut_view(), s, false);
    }
    let is_http = metric == Metric::Http;
    let is_file = metric == Metric::File;
    if !is_file {
        p.none_of(F::Path, F::Path, "only for metric file")?;
    }
    if !is_http {
        p.none_of(F::Url, F::Stale, "only for metric http")?;
    }
    if !is_file && !is_http {
        p.none_of(F::Decimals, F::Decimals, "only for metric file or http")?;
    }
    match p.str(F::Path)? {
        // ASCII only: `copy` stores each byte as a char, which would garble UTF-8.
        Some(path)
            if path.len() <= PATH_MAX
                && !path.is_empty()
                && crate::os::ascii_str(path).is_some() =>
        {
            copy(rule.path.as_mut_view(), path, false)
        }
        Some(_) => return Err(p.fail(F::Path, "must be 1 to 128 ASCII bytes")),
        None if is_file => return Err(p.fail(F::Path, "missing (the file to read)")),
        None => {}
    }
    // Only file and http rules may set decimals (refused above for the others).
    let decimals = p.int(F::Decimals, 0, 3, 0, "must be 0 to 3")? as u8;
    p.decimals = if metric == Metric::Load { 2 } else { decimals };
    rule.decimals = p.decimals;
    if is_http {
        check_http(p, rule)?;
    }
    let low = p.value(F::Low)?;
    let limit = p.value(F::Limit)?;
    let min_w = p.int(F::MinWeight, 0, 100, 1, "must be 0 to 100")?;
    let max_w = p.int(F::MaxWeight, 1, 100, 100, "must be 1 to 100")?;
    match p.word(F::Curve, SHAPE_NAMES, "must be linear or first-order")? {
        None => p.none_of(
            F::Low,
            F::MaxWeight,
            "needs a curve (linear or first-order)",
        )?,
        Some(shape) => {
            let low = low.unwrap_or(0);
            let Some(limit) = limit else {
                return Err(p.fail(F::Limit, "missing (where the minimum weight is reached)"));
            };
            if limit <= low {
                return Err(p.fail(F::Limit, "must be above low"));
            }
            if min_w > max_w {
                return Err(p.fail(F::MinWeight, "must not be above max_weight"));
            }
            rule.curve = Some(Curve::new(
                SHAPES[shape],
                low,
                limit,
                min_w as u8,
                max_w as u8,
            ));
        }
    }
    match p.value(F::Enter)? {
        None => p.none_of(F::Leave, F::HoldMs, "needs enter")?,
        Some(enter) => {
            let leave = p.value(F::Leave)?.unwrap_or(enter);
            if leave > enter {
                return Err(p.fail(F::Leave, "must not be above enter"));
            }
            let hold_ms = p.ms(F::HoldMs)?;
            rule.threshold = Some(Threshold {
                enter,
                leave,
                hold_ms,
            });
        }
    }
    rule.smooth_ms = p.ms(F::SmoothMs)?;
    if rule.curve.is_none() && rule.threshold.is_none() && !is_http {
        return Err(p.fail(
            F::Curve,
            "missing: a rule needs a curve, an enter threshold, or both",
        ));
    }
    Ok(())
}

/// Checks an `http` rule's own fields and fills in `rule.http`.
fn check_http(p: &mut Parser<'_>, rule: &mut Rule) -> Result<(), Stop> {
    let Some(url) = p.str(F::Url)? else {
        return Err(p.fail(F::Url, "missing (http://host:port/path)"));
    };
    let Some((ip, port, host, path)) = parse_url(url) else {
        return Err(p.fail(
            F::Url,
            "must be http://HOST[:PORT]/PATH with HOST an IP address or localhost",
        ));
    };
    let h = rule.http.insert(HttpTarget {
        ip,
        port,
        request: Vec::new(),
        field: None,
        timeout_ms: 0,
        stale_ms: 0,
        stale: Stale::Down,
    });
    let parts: [&[u8]; 5] = [
        b"GET ",
        path,
        b" HTTP/1.0\r\nHost: ",
        host,
        b"\r\nUser-Agent: heft\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
    ];
    for part in &parts {
        if h.request.extend_from_slice(part).is_err() {
            return Err(p.fail(F::Url, "too long"));
        }
    }
    match p.str(F::Field)? {
        Some(f) if !f.is_empty() && f.len() <= FIELD_MAX && crate::os::ascii_str(f).is_some() => {
            copy(h.field.insert(String::new()).as_mut_view(), f, false)
        }
        Some(_) => return Err(p.fail(F::Field, "must be 1 to 32 ASCII bytes")),
        None => {}
    }
    if let Some(i) = p.word(F::Stale, STALE_NAMES, "must be down, keep, ignore or min")? {
        h.stale = STALES[i];
    }
    h.timeout_ms = p.int(F::TimeoutMs, 1, 60_000, 1000, "must be 1 to 60000")?;
    h.stale_ms = p.ms(F::StaleMs)?;
    Ok(())
}

/// Splits `http://host[:port][/path]` into an address and port, the Host header value and the path.
pub fn parse_url(url: &[u8]) -> Option<(IpAddr, u16, &[u8], &[u8])> {
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
    // `localhost` is read as its address, so that one parse makes every `IpAddr`.
    let host: &[u8] = if host.eq_ignore_ascii_case(b"localhost") {
        b"127.0.0.1"
    } else {
        host
    };
    let ip = crate::num::parse_ip(host)?;
    Some((ip, port, authority, path))
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
        assert_eq!((h.ip, h.port), ("127.0.0.1".parse().unwrap(), 8080));
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
        assert_eq!((h.ip, h.port), ("127.0.0.1".parse().unwrap(), 80));
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
        // A UTF-8 path or field would be stored garbled: refused, naming the field.
        assert_eq!(
            err("{\"rules\":[{\"metric\":\"file\",\"enter\":9,\"path\":\"/run/l\u{f6}ad\"}]}").1,
            "path"
        );
        assert_eq!(
            err("{\"rules\":[{\"metric\":\"http\",\"url\":\"http://127.0.0.1/\",\"field\":\"l\u{e4}nge\"}]}").1,
            "field"
        );
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
    fn errors_say_what_was_expected() {
        for (text, want) in [
            (
                r#"{"rules":[{"metric":"cpu","limt":5}]}"#,
                (
                    Some(0),
                    "limt",
                    "unknown field (expected a rule key, e.g. metric, curve, limit)",
                ),
            ),
            (
                r#"{"rules":[{"metric":"c\u0070u"}]}"#,
                (Some(0), "metric", "must be a string without escapes"),
            ),
            (
                r#"{"interval_ms":{}}"#,
                (None, "interval_ms", "expected a string or a number"),
            ),
            (r#"{"rules":{}}"#, (None, "rules", "expected an array")),
            (r#"{"rules":[1]}"#, (Some(0), "", "expected an object")),
            (
                r#"{"rules":[{"metric":"cpu","enter":07}]}"#,
                (Some(0), "enter", "number with a leading zero"),
            ),
            (
                "{\"rules\":[{\"metric\":\"cpu\",\"name\":\"\u{ff}\"}]}",
                (Some(0), "name", "must be 1 to 16 of [A-Za-z0-9_.-]"),
            ),
        ] {
            let (rule, field, what) = err(text);
            assert_eq!((rule, field.as_str(), what), want, "{text}");
        }
        // A byte order mark before the object is skipped.
        assert!(parse(b"\xef\xbb\xbf{}").is_ok());
    }

    #[test]
    fn describes_errors_for_the_log() {
        let e = parse(br#"{"rules":[{"metric":"cpu","curve":"linear","limit":5,"low":6}]}"#)
            .unwrap_err();
        assert_eq!(e.rule, Some(0));
        // describe() is exercised through the binary's start-up test.
        let _ = e.describe(&mut crate::log::error());
    }

    #[test]
    fn parses_urls() {
        let (a, port, h, p) = parse_url(b"http://[::1]:8081/x/y").unwrap();
        assert_eq!(
            (a, port, h, p),
            (
                "::1".parse().unwrap(),
                8081,
                &b"[::1]:8081"[..],
                &b"/x/y"[..]
            )
        );
        assert!(parse_url(b"http://[::1]x/").is_none());
        assert!(parse_url(b"http://1.2.3.4:0/").is_none());
        assert!(parse_url(b"http:///x").is_none());
        assert!(parse_url(b"http://1.2.3.4/a b").is_none());
        let (a, port, _, _) = parse_url(b"http://LOCALHOST:9/").unwrap();
        assert_eq!((a, port), ("127.0.0.1".parse().unwrap(), 9));
    }
}
