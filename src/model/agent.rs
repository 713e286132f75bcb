//! Keeps the current state and every reply it can give, formatted ahead of time.
//!
//! The loop asks `reply` for a slice to write; nothing on that path formats,
//! allocates or reads a clock. Replies are re-formatted only when the state,
//! the ready window or the load feedback changes.

use crate::log;
use crate::model::reply::{self, Line, Reply};
use crate::model::state::{self, Entry, Name, State, StateError, Status, SERVICES_MAX};
use crate::time::Instant;

/// What load feedback asks of one UP entry.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Verdict {
    /// Percentage to apply to the file's weight (100 leaves it alone).
    pub weight_pct: u8,
    /// The lowest effective weight feedback may produce.
    pub min_weight: u8,
    /// When not empty, report the server down with this reason (a rule's
    /// reason never is: it starts with the rule's name and a space).
    pub down: state::Reason,
}

impl Verdict {
    /// Leaves an entry as the file says.
    ///
    /// A function, not a constant: a constant is copied whole from read-only
    /// data, its empty reason buffer included.
    pub const fn none() -> Verdict {
        Verdict {
            weight_pct: 100,
            min_weight: 0,
            down: state::Reason::new(),
        }
    }
}

/// The replies prepared for one entry.
#[derive(Clone, Debug)]
struct Prepared {
    /// `[without ready, with ready]`.
    lines: [Line; 2],
    /// Until when `ready` is sent, if a window is set and running.
    ready_until: Option<Instant>,
    /// The feedback applied when these lines were made.
    verdict: Verdict,
    /// The status and weight the lines report, after feedback.
    shown: (Status, u8),
}

/// The agent's state and its prepared replies.
pub struct Agent {
    state: State,
    /// Index 0: top level; 1..: `state.services` in order.
    prepared: heapless::Vec<Prepared, { SERVICES_MAX + 1 }>,
    /// How long `ready` is sent after a status change; `None`: always.
    window_ms: Option<u32>,
    /// Whether the file may be overwritten (false after reading an invalid one).
    may_persist: bool,
    /// Whether the state was made up after a failed load (its reason is heft's, not the file's).
    made_up: bool,
}

impl Agent {
    /// Makes an agent with an empty state and a ready window.
    pub fn new(window_ms: Option<u32>) -> Agent {
        Agent {
            state: State::default(),
            prepared: heapless::Vec::new(),
            window_ms,
            may_persist: true,
            made_up: false,
        }
    }

    /// Shows the current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Tells whether the state may be written back to the file.
    pub fn may_persist(&self) -> bool {
        self.may_persist
    }

    /// Takes a state read from the file, or the failure to read one.
    pub fn load(&mut self, loaded: Result<State, LoadError>, now: Instant) {
        // A missing file may be created; anything else is kept for a human.
        self.may_persist = matches!(
            loaded,
            Ok(_) | Err(LoadError::Io(nix::errno::Errno::ENOENT) | LoadError::NoDir)
        );
        self.made_up = loaded.is_err();
        let s = loaded.unwrap_or_else(|e| {
            let mut top = Entry::new(Status::Fail);
            let _ = top.reason.push_str("state file: ");
            e.describe(&mut top.reason);
            State {
                top: Some(top),
                services: heapless::Vec::new(),
            }
        });
        self.replace(s, " (state file)", now);
    }

    /// Applies SIGUSR1 (`Up`) or SIGUSR2 (`Down`) to the top level and every service.
    pub fn set_status(&mut self, status: Status, now: Instant) {
        let mut s = self.state.clone();
        if let Some(t) = &mut s.top {
            t.status = status;
            // The FAIL reason of a missing file is ours: the file a signal writes must not keep it.
            if core::mem::take(&mut self.made_up) {
                t.reason.clear();
            }
        }
        for (_, e) in s.services.iter_mut() {
            e.status = status;
        }
        self.replace(s, " (signal)", now);
    }

    /// Installs a new state, logs what changed and why (`cause`, as the log ends it), and re-formats the replies.
    fn replace(&mut self, new: State, cause: &str, now: Instant) {
        let mut prepared: heapless::Vec<Prepared, { SERVICES_MAX + 1 }> = heapless::Vec::new();
        for i in 0..new.services.len() + 1 {
            let (name, entry) = nth(&new, i);
            let found = find(&self.state, name.map(|n| n.as_bytes()));
            let kept = found.and_then(|(i, _)| self.prepared.get(i));
            let before = found.map(|(_, e)| e);
            let mut p = Prepared {
                lines: [Line::new(), Line::new()],
                ready_until: None,
                verdict: Verdict::none(),
                shown: (Status::Fail, 0),
            };
            if let Some(k) = kept {
                p.ready_until = k.ready_until;
                p.verdict.clone_from(&k.verdict);
            }
            if let Some(e) = entry {
                let changed = before.map(|b| b.status != e.status).unwrap_or(true);
                if changed {
                    p.ready_until = self.window_ms.map(|w| now + w);
                }
                if before != Some(e) {
                    log_entry(cause, name, e);
                }
                p.shown = format(e, &p.verdict, &mut p.lines);
            }
            let _ = prepared.push(p);
        }
        self.state = new;
        self.prepared = prepared;
    }

    /// Returns the reply for a probe that named `service` (or none).
    pub fn reply(&self, service: Option<&[u8]>) -> &[u8] {
        let found = service.and_then(|n| find(&self.state, Some(n)));
        let Some((i, _)) = found.or_else(|| find(&self.state, None)) else {
            return reply::UNKNOWN_SERVICE;
        };
        let p = &self.prepared[i];
        let ready = self.window_ms.is_none() || p.ready_until.is_some();
        &p.lines[ready as usize]
    }

    /// Lists every entry as (service name, status shown, weight shown, maxconn).
    pub fn summary(&self) -> impl Iterator<Item = (Option<&[u8]>, Status, u8, Option<u16>)> + '_ {
        self.prepared.iter().enumerate().filter_map(|(i, p)| {
            let (name, e) = nth(&self.state, i);
            Some((name.map(|n| n.as_bytes()), p.shown.0, p.shown.1, e?.maxconn))
        })
    }

    /// Ends ready windows that are over at `now`; returns the time left (ms) to the next end, `u32::MAX` for none.
    pub fn tick(&mut self, now: Instant) -> u32 {
        let mut next = u32::MAX;
        for p in self.prepared.iter_mut() {
            if let Some(until) = p.ready_until {
                if now.reached(until) {
                    p.ready_until = None;
                } else {
                    next = next.min(now.until(until));
                }
            }
        }
        next
    }

    /// Sets the feedback verdict for entry `i` (0: the top level, k: the k-th service); re-formats on change.
    pub fn set_verdict(&mut self, i: usize, v: Verdict) {
        let (name, Some(e)) = nth(&self.state, i) else {
            return;
        };
        let Some(p) = self.prepared.get_mut(i) else {
            return;
        };
        if p.verdict == v {
            return;
        }
        p.verdict = v;
        p.shown = format(e, &p.verdict, &mut p.lines);
        log_start("feedback: ", name)
            .b(p.lines[1].strip_suffix(b"\n").unwrap_or_default())
            .send();
    }
}

/// Returns the entry at `i` in `Agent::prepared` order (the top level, then each service) and its service name.
fn nth(s: &State, i: usize) -> (Option<&Name>, Option<&Entry>) {
    match i.checked_sub(1) {
        None => (None, s.top.as_ref()),
        Some(k) => s
            .services
            .get(k)
            .map_or((None, None), |(n, e)| (Some(n), Some(e))),
    }
}

/// Finds the top level (`None`) or a service's entry and its index in `Agent::prepared`.
fn find<'a>(s: &'a State, name: Option<&[u8]>) -> Option<(usize, &'a Entry)> {
    match name {
        None => s.top.as_ref().map(|e| (0, e)),
        Some(n) => s
            .services
            .iter()
            .enumerate()
            .find(|(_, (m, _))| m.as_bytes() == n)
            .map(|(i, (_, e))| (i + 1, e)),
    }
}

/// Applies feedback to an entry, formats both reply variants, returns the status and weight shown.
fn format(e: &Entry, v: &Verdict, lines: &mut [Line; 2]) -> (Status, u8) {
    let mut r = Reply {
        status: e.status,
        weight: e.weight,
        maxconn: e.maxconn,
        reason: e.reason.as_bytes(),
    };
    if matches!(e.status, Status::Up | Status::Ready) {
        if v.weight_pct < 100 {
            let w = (e.weight as u32 * v.weight_pct as u32 / 100) as u8;
            r.weight = w.max(v.min_weight.min(e.weight));
        }
        if !v.down.is_empty() {
            r.status = Status::Down;
            r.reason = v.down.as_bytes();
        }
    }
    reply::format(&r, false, &mut lines[0]);
    reply::format(&r, true, &mut lines[1]);
    (r.status, r.weight)
}

/// Starts an event line with `what`, then the service's name and a space if
/// there is one (the top level has none).
fn log_start(what: &str, name: Option<&Name>) -> log::Line {
    let mut l = log::info();
    l.s(what);
    if let Some(n) = name {
        l.s(n).s(" ");
    }
    l
}

/// Logs an entry that changed and why.
fn log_entry(cause: &str, name: Option<&Name>, e: &Entry) {
    let l = &mut log_start("state: ", name);
    l.s(e.status.name()).s(" weight ").u(e.weight as u32);
    if let Some(m) = e.maxconn {
        l.s(" maxconn ").u(m as u32);
    }
    // An empty reason is left out with its quotes.
    if !e.reason.is_empty() {
        l.s(" reason \"").s(&e.reason).s("\"");
    }
    l.s(cause).send();
}

/// Why the state file could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// It could not be opened or read.
    Io(nix::errno::Errno),
    /// Its directory does not exist (ENOENT).
    NoDir,
    /// Its content is invalid.
    Invalid(StateError),
}

impl LoadError {
    /// Appends a short description, as much as fits.
    pub fn describe(self, out: &mut state::Reason) {
        let mut buf = heapless::Vec::new();
        let (a, b) = match self {
            LoadError::NoDir => ("unreadable ENOENT, no directory (see the log)", ""),
            // A name (`EACCES`) or number (`errno 123`) follows "unreadable"; a
            // refusal of `fs` (see `os::errno_name`) says what it is without it.
            LoadError::Io(e) => match crate::num::errno_text(e, &mut buf) {
                n if matches!(n.as_bytes().first(), Some(b'E' | b'e')) => ("unreadable ", n),
                n => ("", n),
            },
            LoadError::Invalid(e) => e.parts(),
        };
        // Both texts are ASCII, so any cut is on a character boundary.
        for t in &[a, b] {
            let room = out.capacity() - out.len();
            let _ = out.push_str(t.get(..t.len().min(room)).unwrap_or(""));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_unreadable_except_for_refusals() {
        for raw in 0..4096 {
            let e = nix::errno::Errno::from_raw(raw);
            let mut out = state::Reason::new();
            LoadError::Io(e).describe(&mut out);
            // Only the refusals of `fs` are named without "E" or "errno".
            let named = crate::os::errno_name(e).filter(|n| !n.starts_with('E'));
            match named {
                Some(n) => assert_eq!(out.as_str(), n),
                None => assert!(out.starts_with("unreadable "), "{out}"),
            }
        }
    }
}
