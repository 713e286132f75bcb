//! Load feedback: samples the host on a timer inside the agent's poll loop and
//! turns what it sees into a weight and a health verdict for each UP entry.
//!
//! The loop asks `next_wake` for its poll timeout, lets `add_fds` put running
//! HTTP checks into the poll set after its own descriptors, and calls `run`
//! after every wake-up. `run` reads `/proc` (a few small reads per interval),
//! moves HTTP checks along without blocking, and hands each entry its
//! `Verdict`; `Agent::set_verdict` re-formats a reply only when it changes.
//! Everything is allocated once, when the configuration is first loaded.
//!
//! Module map: `config` and `json` read the configuration, `curve` and `rule`
//! do the arithmetic, `metrics` parses `/proc` text, `httpcheck` runs checks.
//! Only this file reads files.

pub mod config;
pub mod curve;
pub mod httpcheck;
pub mod metrics;
pub mod rule;

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

use crate::log;
use crate::model::agent::{Agent, Verdict};
use crate::model::state::{Name, Reason};
use crate::time::Instant;
use config::{Config, ConfigError, Metric, Rule, CONFIG_MAX, HTTP_MAX, RULES_MAX};
use httpcheck::{Check, Outcome};
use metrics::CpuTimes;
use rule::{Change, Health, RuleState};

/// The most poll entries feedback adds to the loop's poll set.
pub const FDS_MAX: usize = HTTP_MAX;

/// Why the configuration could not be used.
enum LoadError {
    /// It could not be opened or read.
    Io(Errno),
    /// Its content is invalid.
    Invalid(ConfigError),
}

impl LoadError {
    /// Logs the error about the configuration at `path`, ending the line with `after`.
    fn log(&self, path: &Path, after: &str) {
        let mut l = log::error();
        l.s("feedback ").b(path.as_os_str().as_bytes()).s(": ");
        match self {
            LoadError::Io(e) => l.s("unreadable: ").errno(*e),
            LoadError::Invalid(e) => e.describe(&mut l),
        };
        l.s(after).send();
    }
}

/// What one metric read gave.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Read {
    /// A value.
    Value(u32),
    /// Nothing yet (CPU needs two samples).
    Pending,
    /// The source could not be read or parsed.
    Failed,
}

/// The feedback engine the loop drives.
pub struct Feedback {
    /// The configuration file, read again on SIGHUP (the command line's, which lives as long as the process).
    path: &'static Path,
    /// The configuration in use.
    cfg: Config,
    /// Where SIGHUP reads a new configuration before it replaces `cfg`.
    spare: Config,
    /// Each rule's running state, by rule index.
    states: [RuleState; RULES_MAX],
    /// The HTTP checks, one per `http` rule in file order.
    checks: [Check; HTTP_MAX],
    /// Scratch space for the configuration and the files sampled.
    buf: [u8; CONFIG_MAX + 1],
    /// When the next sample is due.
    next_sample: Instant,
    /// The CPU times of the previous sample, for the busy % between two.
    cpu_prev: Option<CpuTimes>,
}

/// Reads and parses a configuration file into `cfg`, with `buf` as scratch
/// space; if it cannot be used, logs why, ending the line with `after`.
fn read_config(path: &Path, buf: &mut [u8; CONFIG_MAX + 1], cfg: &mut Config, after: &str) -> bool {
    let r = match crate::os::fs::read(path, buf) {
        Ok(n) => config::parse_into(&buf[..n], cfg).map_err(LoadError::Invalid),
        Err(e) => Err(LoadError::Io(e)),
    };
    match r {
        Ok(()) => true,
        Err(e) => {
            e.log(path, after);
            false
        }
    }
}

/// Reads a file into `buf` and returns its bytes, `None` if it cannot be read.
#[inline(never)]
fn read_file<'b>(path: &Path, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let n = crate::os::fs::read(path, buf).ok()?;
    buf.get(..n)
}

/// The files cpu, load and mem rules read, by `Metric` value (0 to 2).
const SYSTEM_FILES: [&str; 3] = ["/proc/stat", "/proc/loadavg", "/proc/meminfo"];

impl Feedback {
    /// Reads and checks the configuration at `path`; allocates everything feedback will use.
    /// Logs why the configuration cannot be used and returns `None` if so.
    pub fn load(path: &'static Path, now: Instant) -> Option<Box<Feedback>> {
        let mut f = Box::new(Feedback {
            path,
            cfg: Config::new(),
            spare: Config::new(),
            states: core::array::from_fn(|_| RuleState::new()),
            checks: core::array::from_fn(|_| Check::new()),
            buf: [0; CONFIG_MAX + 1],
            next_sample: now,
            cpu_prev: None,
        });
        if !read_config(path, &mut f.buf, &mut f.cfg, "") {
            return None;
        }
        f.log_loaded();
        Some(f)
    }

    /// Logs how many rules were loaded, from where, and the sampling interval.
    fn log_loaded(&self) {
        log::info()
            .s("feedback: ")
            .u(self.cfg.rules.len() as u32)
            .s(" rule(s) from ")
            .b(self.path.as_os_str().as_bytes())
            .s(", sampling every ")
            .u(self.cfg.interval_ms)
            .s(" ms")
            .send();
    }

    /// Re-reads the configuration (SIGHUP); keeps the previous rules if the new file is bad.
    pub fn reload(&mut self, now: Instant) {
        let after = " (keeping the previous rules)";
        if !read_config(self.path, &mut self.buf, &mut self.spare, after) {
            return;
        }
        for i in 0..RULES_MAX {
            // A rule that did not change keeps its value, smoothing and trip.
            let hash = |c: &Config| c.rules.get(i).map(|r| r.text_hash);
            if hash(&self.cfg) != hash(&self.spare) {
                self.states[i] = RuleState::new();
            }
        }
        for c in self.checks.iter_mut() {
            c.cancel();
        }
        core::mem::swap(&mut self.cfg, &mut self.spare);
        self.next_sample = now;
        self.log_loaded();
    }

    /// Returns when the loop must wake up next for feedback, if ever.
    pub fn next_wake(&self) -> Option<Instant> {
        if self.cfg.rules.is_empty() {
            return None;
        }
        let mut next = self.next_sample;
        for c in self.checks.iter() {
            if let Some(d) = c.deadline() {
                if d.is_before(next) {
                    next = d;
                }
            }
        }
        Some(next)
    }

    /// Appends the sockets of running HTTP checks to the poll set and remembers where.
    pub fn add_fds(&mut self, pfds: &mut Vec<libc::pollfd>) {
        for c in self.checks.iter_mut() {
            c.pidx = None;
            if let Some((fd, events)) = c.pollfd() {
                c.pidx = Some(pfds.len());
                pfds.push(libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                });
            }
        }
    }

    /// Does what is due after a wake-up at `now`: HTTP progress, sampling, verdicts.
    pub fn run(&mut self, now: Instant, pfds: &[libc::pollfd], agent: &mut Agent) {
        let mut ci = 0;
        for i in 0..self.cfg.rules.len() {
            let Some(target) = &self.cfg.rules[i].http else {
                continue;
            };
            let check = &mut self.checks[ci];
            ci += 1;
            let woke = check
                .pidx
                .and_then(|p| pfds.get(p))
                .is_some_and(|p| p.revents != 0);
            let mut outcome = None;
            if woke {
                outcome = check.ready(target, self.cfg.rules[i].decimals);
            }
            if outcome.is_none() {
                outcome = check.expire(now);
            }
            if let Some(o) = outcome {
                self.http_outcome(i, o, now);
            }
        }
        if !self.cfg.rules.is_empty() && now.reached(self.next_sample) {
            self.sample(now);
            let next = self.next_sample + self.cfg.interval_ms;
            self.next_sample = if now.reached(next) {
                now + self.cfg.interval_ms
            } else {
                next
            };
        }
        self.apply(now, agent);
    }

    /// Reads every metric once and feeds the rules; starts HTTP checks that are not running.
    #[inline(never)]
    fn sample(&mut self, now: Instant) {
        // What cpu, load and mem read (by `Metric` value, 0 to 2): each is read
        // once, and only if a rule uses it.
        let mut system: [Option<Read>; 3] = [None; 3];
        let mut ci = 0;
        for i in 0..self.cfg.rules.len() {
            let rule = &self.cfg.rules[i];
            let read = match rule.metric {
                Metric::File => {
                    let d = rule.decimals;
                    let p = Path::new(rule.path.as_str());
                    match read_file(p, &mut self.buf[..64])
                        .and_then(|text| metrics::parse_decimal(text, d))
                    {
                        Some(v) => Read::Value(v),
                        None => Read::Failed,
                    }
                }
                Metric::Http => {
                    let check = &mut self.checks[ci];
                    ci += 1;
                    let started = match (&rule.http, check.busy()) {
                        (Some(t), false) => check.start(t, now),
                        _ => None,
                    };
                    if let Some(o) = started {
                        self.http_outcome(i, o, now);
                    }
                    continue;
                }
                m => *system[m as usize].get_or_insert_with(|| self.read_system(m)),
            };
            self.feed(i, read, now);
        }
    }

    /// Reads the system metric `m`: cpu, load or mem.
    fn read_system(&mut self, m: Metric) -> Read {
        let path = Path::new(SYSTEM_FILES[m as usize]);
        let Some(text) = read_file(path, &mut self.buf[..4096]) else {
            return Read::Failed;
        };
        let v = match m {
            // The busy % since the previous read: nothing yet on the first.
            Metric::Cpu => {
                let Some(cur) = metrics::parse_stat(text) else {
                    return Read::Failed;
                };
                let prev = self.cpu_prev.replace(cur);
                match prev.and_then(|p| metrics::cpu_busy_pct(p, cur)) {
                    Some(v) => Some(v),
                    None => return Read::Pending,
                }
            }
            // Hundredths of load per online CPU (one if they cannot be counted).
            Metric::Load => metrics::parse_loadavg(text).map(|load| {
                let online = Path::new("/sys/devices/system/cpu/online");
                let cpus =
                    read_file(online, &mut self.buf[..4096]).and_then(metrics::parse_cpu_list);
                metrics::load_per_cpu(load, cpus.unwrap_or(1))
            }),
            _ => metrics::parse_meminfo(text),
        };
        match v {
            Some(v) => Read::Value(v),
            None => Read::Failed,
        }
    }

    /// Gives rule `i` what its metric read, and logs what changed.
    fn feed(&mut self, i: usize, read: Read, now: Instant) {
        let rule = &self.cfg.rules[i];
        let st = &mut self.states[i];
        match read {
            Read::Value(v) => {
                if core::mem::take(&mut st.failed) {
                    note(&rule.name, " readable again");
                }
                let change = st.observe(rule, v, now);
                log_change(rule, st, change);
                if log::enabled(log::Level::Debug) {
                    let say = st.say(rule, now);
                    let l = &mut log::debug();
                    with_value(l.s("sample ").s(&rule.name).s(" "), v, rule.decimals);
                    if rule.smooth_ms > 0 {
                        with_value(l.s(" smoothed "), st.value.unwrap_or(0), rule.decimals);
                    }
                    l.s(" weight ").u(say.weight as u32).s("%").send();
                }
            }
            Read::Pending => {}
            Read::Failed => {
                st.lose_value();
                if !core::mem::replace(&mut st.failed, true) {
                    let l = &mut log::error();
                    l.s("feedback: ").s(&rule.name).s(": cannot read ");
                    let (what, path) = match SYSTEM_FILES.get(rule.metric as usize) {
                        Some(file) => (*file, ""),
                        None => ("a number from ", rule.path.as_str()),
                    };
                    l.s(what)
                        .s(path)
                        .s(" (the rule has no say until it can)")
                        .send();
                }
            }
        }
    }

    /// Takes the outcome of rule `i`'s HTTP check.
    fn http_outcome(&mut self, i: usize, o: Outcome, now: Instant) {
        let rule = &self.cfg.rules[i];
        let st = &mut self.states[i];
        let result = match o {
            Outcome::Healthy(v) => Ok(v),
            other => Err(outcome_reason(rule, other)),
        };
        if log::enabled(log::Level::Debug) {
            // The words are picked first: arms that each built the line would copy it.
            let mut buf = [0; 14];
            let (what, text): (&str, &[u8]) = match &result {
                Ok(Some(v)) => ("healthy ", metrics::value_text(*v, rule.decimals, &mut buf)),
                Ok(None) => ("healthy", b""),
                Err(r) => ("failed: ", r.as_bytes()),
            };
            log::debug()
                .s("sample ")
                .s(&rule.name)
                .s(" ")
                .s(what)
                .b(text)
                .send();
        }
        // Health becomes Good on Ok and Failing(reason) on Err: log what that changes.
        match (&st.health, &result) {
            (Health::Failing(_), Ok(_)) => note(&rule.name, " healthy again"),
            (Health::Failing(a), Err(b)) if a == b => {}
            (_, Err(b)) => note("check failed: ", b),
            _ => {}
        }
        let change = st.http_result(rule, result, now);
        log_change(rule, st, change);
    }

    /// Hands every entry of the agent its verdict.
    fn apply(&self, now: Instant, agent: &mut Agent) {
        // Entry 0 is the top level, entry k the k-th service.
        for i in 0..agent.state().services.len() + 1 {
            let service = i.checked_sub(1).map(|k| &agent.state().services[k].0);
            let v = self.verdict(service, now);
            agent.set_verdict(i, v);
        }
    }

    /// Combines the rules that apply to one entry: the lowest weight and the first failure.
    pub fn verdict(&self, service: Option<&Name>, now: Instant) -> Verdict {
        // Above any weight, so that the first rule that applies sets both.
        let (mut weight, mut min) = (u8::MAX, Verdict::none().min_weight);
        let mut down = None;
        for (i, rule) in self.cfg.rules.iter().enumerate() {
            if rule.service.is_some() && rule.service.as_ref() != service {
                continue;
            }
            let say = self.states[i].say(rule, now);
            if say.weight < weight {
                weight = say.weight;
                min = say.min;
            }
            down = down.or(say.down);
        }
        let mut v = Verdict::none();
        v.weight_pct = weight.min(v.weight_pct);
        v.min_weight = min;
        // Only the reason kept is copied, into the verdict's own buffer.
        if let Some(r) = down {
            let _ = v.down.push_str(r);
        }
        v
    }
}

/// Names a failed check for the stats page, e.g. `http status 503`.
fn outcome_reason(rule: &Rule, o: Outcome) -> Reason {
    let mut r = Reason::new();
    let mut buf = heapless::Vec::new();
    let _ = r.push_str(&rule.name);
    let _ = r.push_str(" ");
    let _ = r.push_str(match o {
        Outcome::Healthy(_) => "",
        Outcome::Status(_) => "status ",
        Outcome::NoField => "no number in the body",
        Outcome::BadReply => "bad reply",
        Outcome::Timeout => "timeout",
        Outcome::Error(e) => crate::num::errno_text(e, &mut buf),
    });
    if let Outcome::Status(code) = o {
        metrics::push_value(&mut r, code as u32, 0);
    }
    r
}

/// Appends a value with `decimals` decimal places to a log line.
fn with_value(l: &mut log::Line, v: u32, decimals: u8) -> &mut log::Line {
    l.b(metrics::value_text(v, decimals, &mut [0; 14]))
}

/// Logs `feedback: ` followed by `who` and `what`.
fn note(who: &str, what: &str) {
    log::info().s("feedback: ").s(who).s(what).send();
}

/// Logs a rule tripping or clearing.
fn log_change(rule: &Rule, st: &RuleState, change: Option<Change>) {
    match (change, &rule.threshold) {
        (None, _) => {}
        // Only a value trips a rule, and an http rule only has one while
        // healthy: the trip's reason is what the rule says.
        (Some(Change::Tripped), _) => note(&st.trip_reason, ": down"),
        (Some(Change::Cleared), Some(th)) => {
            let l = &mut log::info();
            l.s("feedback: ").s(&rule.name).s(" cleared (below ");
            with_value(l, th.leave, rule.decimals)
                .s(" for ")
                .u(th.hold_ms)
                .s(" ms)")
                .send()
        }
        (Some(Change::Cleared), None) => note(&rule.name, " cleared"),
    }
}
