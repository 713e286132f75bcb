//! Runs `exec` rules' commands (Nagios plugins) from the poll loop without
//! blocking it: the output pipe is read when `poll` says so, an ended child
//! is found through SIGCHLD, and a run past its timeout has its whole
//! process group killed.
//!
//! A run's answer is its exit code (0 OK, 1 WARNING, 2 CRITICAL, anything
//! else UNKNOWN or a failure), its first line of output (the reason) and the
//! perfdata after `|` on that line (the value). Only the first `LINE_MAX`
//! bytes are kept; the rest of the output is read and dropped, so a command
//! that talks a lot neither blocks on a full pipe nor holds the loop.
//!
//! When a command exits, what is left of its process group is killed: a check
//! leaves nothing behind (a plugin that must start something long-lived has
//! to take it out of the group with `setsid`).

use std::os::fd::{AsRawFd, RawFd};

use nix::errno::Errno;

use super::config::{copy, Rule};
use super::metrics::{parse_decimal, push_value, split_once};
use crate::model::state::Reason;
use crate::num::errno_text;
use crate::os::process::{self, Exit};
use crate::os::{self, Fd};
use crate::time::Instant;

/// The most bytes of a command's first line kept.
pub const LINE_MAX: usize = 4096;

/// How a run ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum End {
    /// The command exited or was killed by a signal.
    Exit(Exit),
    /// It ran past its timeout.
    Timeout,
    /// It could not be started.
    CannotStart(Errno),
}

/// What an answer asks besides its value: `None` nothing, `Some(true)`
/// DRAIN, `Some(false)` DOWN; and the value.
pub type Answer = (Option<bool>, Option<u32>);

/// One rule's command: running, or not.
pub struct Run {
    /// The child's pid until it is reaped (it may outlive its run: killed at
    /// a timeout, or cancelled).
    pid: Option<i32>,
    /// How the child ended, once reaped while its run was on.
    exit: Option<Exit>,
    /// The read end of its output pipe, until the end of the output.
    pipe: Option<Fd>,
    /// Whether the rule waits for this run's answer.
    on: bool,
    /// When the run times out.
    deadline: Instant,
    /// The start of the output.
    buf: [u8; LINE_MAX],
    /// How many bytes of `buf` hold output.
    len: usize,
    /// Whether `buf` holds the whole first line (later output is dropped).
    line_done: bool,
    /// The pipe's index in the poll set, while it is in one.
    pub pidx: Option<usize>,
    /// What the last run that ended told: an answer, or `None` if it failed.
    pub told: Option<Answer>,
    /// The last ended run's reason.
    pub why: Reason,
}

impl Default for Run {
    fn default() -> Self {
        Run::new()
    }
}

impl Run {
    /// Makes an idle run.
    pub const fn new() -> Run {
        Run {
            pid: None,
            exit: None,
            pipe: None,
            on: false,
            deadline: Instant::from_ms(0),
            buf: [0; LINE_MAX],
            len: 0,
            line_done: false,
            pidx: None,
            told: None,
            why: Reason::new(),
        }
    }

    /// Tells whether a child of this rule is still there: no other run starts until it is gone.
    pub fn busy(&self) -> bool {
        self.pid.is_some()
    }

    /// Returns the running command's deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.on.then_some(self.deadline)
    }

    /// Returns the output pipe to poll, while it is open.
    pub fn pollfd(&self) -> Option<RawFd> {
        self.pipe.as_ref().map(|p| p.as_raw_fd())
    }

    /// Starts `rule`'s command; true if it could not start (`told` and `why` say so).
    pub fn start(&mut self, rule: &Rule, now: Instant) -> bool {
        let Some(e) = &rule.exec else {
            return false;
        };
        self.len = 0;
        self.line_done = false;
        self.exit = None;
        self.deadline = now + e.timeout_ms;
        match process::spawn(&e.command) {
            Ok((pid, pipe)) => {
                self.pid = Some(pid);
                self.pipe = Some(pipe);
                self.on = true;
                false
            }
            Err(err) => self.end(rule, End::CannotStart(err)),
        }
    }

    /// Reads what the command wrote, a few reads at most, so that a fast
    /// talker cannot hold the loop; closes the pipe at its end.
    pub fn read(&mut self) {
        let Some(fd) = &self.pipe else {
            return;
        };
        let mut drop = [0u8; 2048];
        for _ in 0..8 {
            let keep = !self.line_done;
            let to = if keep {
                &mut self.buf[self.len..]
            } else {
                &mut drop[..]
            };
            match os::read(fd, to) {
                Ok(0) => {}
                Ok(n) => {
                    if keep {
                        self.line_done = to[..n].contains(&b'\n') || self.len + n == LINE_MAX;
                        self.len += n;
                    }
                    continue;
                }
                Err(Errno::EAGAIN | Errno::EINTR) => return,
                Err(_) => {}
            }
            // The end, or an error: no more output.
            self.pipe = None;
            return;
        }
    }

    /// Ends the run if its command was reaped or its time is up at `now`;
    /// true if it ended (`told` and `why` say what it told).
    pub fn finish(&mut self, rule: &Rule, now: Instant) -> bool {
        if let Some(exit) = self.exit.take() {
            self.pid = None;
            // What the group wrote before it ended is in the pipe.
            self.read();
            return self.end(rule, End::Exit(exit));
        }
        self.on && now.reached(self.deadline) && self.end(rule, End::Timeout)
    }

    /// Ends the run as `end` says: kills what is left of it and judges; returns true.
    #[inline(never)]
    fn end(&mut self, rule: &Rule, end: End) -> bool {
        self.cancel();
        let line = split_once(&self.buf[..self.len], b'\n').0;
        self.why.clear();
        self.told = judge(rule, end, line, &mut self.why);
        true
    }

    /// Kills a running command's process group and drops its run without an answer.
    pub fn cancel(&mut self) {
        if let (true, Some(pid)) = (self.on, self.pid) {
            process::kill_group(pid);
        }
        self.on = false;
        self.pipe = None;
        self.pidx = None;
    }
}

/// Reaps every child that ended: a run's child after killing what is left
/// of its process group (before its pid, the group's id, can be reused),
/// and any other (orphans adopted when heft runs as process 1).
pub fn reap(runs: &mut [Run]) {
    while let Some(pid) = process::ended() {
        let run = runs.iter_mut().find(|r| r.pid == Some(pid));
        if run.is_some() {
            process::kill_group(pid);
        }
        let exit = process::reap(pid);
        match run {
            Some(r) if r.on => r.exit = Some(exit),
            Some(r) => r.pid = None,
            None => {}
        }
    }
}

/// Reads what a run told from how it ended and its first line of output;
/// writes the reason (`rule name: text`, cut to fit, `?` for any byte a
/// reason may not hold) to the empty `why`. `None`: no answer.
pub fn judge(rule: &Rule, end: End, line: &[u8], why: &mut Reason) -> Option<Answer> {
    let e = rule.exec.as_ref()?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (msg, perf) = split_once(line, b'|');
    let label = e.label.as_ref().map(|l| l.as_bytes());
    let value = perf.and_then(|p| perf_value(p, label, rule.decimals));
    // The reason without a message says how the command ended.
    let mut asks = None;
    let mut buf = heapless::Vec::new();
    let (mut text, mut n, mut tail): (&[u8], _, _) = match end {
        End::Exit(Exit::Code(c)) => {
            let answers = [None, e.warning, Some(false)];
            asks = answers.get(c as usize).copied();
            (b"exit ", Some(c), "")
        }
        End::Exit(Exit::Signal(s)) => (b"killed by signal ", Some(s), ""),
        End::Timeout => (b"timeout", None, ""),
        End::CannotStart(err) => (b"cannot start: ", None, errno_text(err, &mut buf)),
    };
    let msg = msg.trim_ascii();
    if !msg.is_empty() && end != End::Timeout {
        (text, n) = (msg, None);
    }
    // A rule that uses the value cannot say OK without it.
    let needed = label.is_some() || rule.curve.is_some() || rule.threshold.is_some();
    if asks == Some(None) && value.is_none() && needed {
        (asks, text, tail) = (None, label.unwrap_or(b"no number"), " not in perfdata");
    }
    let _ = why.push_str(&rule.name);
    let _ = why.push_str(": ");
    copy(why.as_mut_view(), text, true);
    let _ = why.push_str(tail);
    if let Some(n) = n {
        push_value(why, n as u32, 0);
    }
    asks.map(|a| (a, value))
}

/// Finds a value in Nagios perfdata (`'label'=value[UOM];warn;crit;min;max`,
/// space-separated): the one labelled `label`, or the first. A value that is
/// not a number (`U`) gives `None`; a negative one reads as 0.
pub fn perf_value(perf: &[u8], label: Option<&[u8]>, decimals: u8) -> Option<u32> {
    let mut rest = perf;
    while let (name, Some(v)) = split_once(rest, b'=') {
        // A quoted label may hold spaces; otherwise it starts after the last one.
        let name = name.trim_ascii();
        let name = match name.strip_prefix(b"'") {
            Some(q) => q.strip_suffix(b"'").unwrap_or(q),
            None => name.rsplit(|&c| c == b' ').next().unwrap_or(name),
        };
        let num = v
            .iter()
            .position(|&c| !(c.is_ascii_digit() || c == b'.' || c == b'-'))
            .unwrap_or(v.len());
        if label.is_none_or(|l| l == name) {
            return parse_decimal(&v[..num], decimals);
        }
        // The next item starts after the next space.
        rest = split_once(v, b' ').1?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feedback::config::parse;

    fn rule(more: &str) -> Rule {
        let text =
            std::format!(r#"{{"rules":[{{"metric":"exec","command":["/bin/true"]{more}}}]}}"#);
        parse(text.as_bytes()).unwrap().rules[0].clone()
    }

    fn why(s: &str) -> Reason {
        let mut r = Reason::new();
        r.push_str(s).unwrap();
        r
    }

    fn judged(r: &Rule, end: End, line: &[u8]) -> (Option<Answer>, Reason) {
        let mut w = Reason::new();
        (judge(r, end, line, &mut w), w)
    }

    fn exit(c: u8) -> End {
        End::Exit(Exit::Code(c))
    }
    #[test]
    fn reads_perfdata() {
        let p = b" load1=0.50;5;10;0 'disk used'=97%;80;90 time=12ms";
        assert_eq!(perf_value(p, None, 2), Some(50));
        assert_eq!(perf_value(p, Some(b"disk used"), 0), Some(97));
        assert_eq!(perf_value(p, Some(b"time"), 0), Some(12));
        assert_eq!(perf_value(p, Some(b"load"), 0), None);
        assert_eq!(perf_value(b"a=U;1;2", None, 0), None);
        assert_eq!(perf_value(b"x=-4", None, 0), Some(0));
        assert_eq!(perf_value(b"junk b=3", Some(b"b"), 0), Some(3));
        assert_eq!(perf_value(b"", None, 0), None);
        assert_eq!(perf_value(b"'open", None, 0), None);
    }

    #[test]
    fn maps_exit_codes() {
        let r = rule("");
        let line = b"DISK WARNING - free space: / 15% | /=85%;80;90";
        let warn = why("exec: DISK WARNING - free space: / 15%");
        assert_eq!(
            judged(&r, exit(1), line),
            (Some((Some(true), Some(85))), warn.clone())
        );
        let r = rule(r#","warning":"down""#);
        assert_eq!(
            judged(&r, exit(1), line),
            (Some((Some(false), Some(85))), warn.clone())
        );
        let r = rule(r#","warning":"up""#);
        assert_eq!(
            judged(&r, exit(1), line),
            (Some((None, Some(85))), warn.clone())
        );
        assert_eq!(
            judged(&r, exit(2), b"bad#\x01"),
            (Some((Some(false), None)), why("exec: bad??"))
        );
        assert_eq!(
            judged(&r, exit(0), b""),
            (Some((None, None)), why("exec: exit 0"))
        );
        assert_eq!(judged(&r, exit(3), b""), (None, why("exec: exit 3")));
        assert_eq!(
            judged(&r, exit(3), b"UNKNOWN - no disk\r"),
            (None, why("exec: UNKNOWN - no disk"))
        );
        assert_eq!(
            judged(&r, End::Exit(Exit::Signal(9)), b""),
            (None, why("exec: killed by signal 9"))
        );
        assert_eq!(
            judged(&r, End::Timeout, b"half a line"),
            (None, why("exec: timeout"))
        );
        assert_eq!(
            judged(&r, End::CannotStart(Errno::EAGAIN), b""),
            (None, why("exec: cannot start: EAGAIN"))
        );
        let (a, w) = judged(&r, exit(2), &[b'x'; 100]);
        assert_eq!((a, w.len()), (Some((Some(false), None)), 64));
        // A rule that uses the value fails without one, unless the answer asks for more.
        let r = rule(r#","field":"used","curve":"linear","limit":100"#);
        assert_eq!(
            judged(&r, exit(0), b"OK | free=3"),
            (None, why("exec: used not in perfdata"))
        );
        assert_eq!(
            judged(&r, exit(0), b"OK | free=3 used=40"),
            (Some((None, Some(40))), why("exec: OK"))
        );
        assert_eq!(judged(&r, exit(2), b"CRIT").0, Some((Some(false), None)));
    }
}
