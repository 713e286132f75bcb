//! `heft set`: changes the state file atomically, then sends SIGHUP to the agent.
//!
//! It holds the state file's directory lock from its read to its write, so
//! a write of the agent's can neither come between them nor undo it.

use std::path::Path;

use nix::errno::Errno;

use crate::cli::Set;
use crate::log;
use crate::model::agent::LoadError;
use crate::model::state::{Entry, Name, State, FILE_MAX};
use crate::server::persist::{self, NotAgent, Place, Seen};

/// How long `heft set` waits (ms) for the agent or another `heft set` to finish a write.
const LOCK_WAIT_MS: u32 = 2000;

/// Exit code: bad usage, nothing written.
const USAGE: i32 = 100;
/// Exit code: the file could not be read or written.
const SYSCALL: i32 = 111;

/// Applies `s` to the state file; returns the exit code (0 done, 1 agent not
/// signalled, 100 the change cannot apply, 111 not written).
pub fn run(s: &Set) -> i32 {
    let path = &s.state_file;
    let place = match Place::find(path).map_err(persist::WriteError::dir) {
        Ok(p) => p,
        Err(e) => return not_written(e, s),
    };
    if let Err(e) = place.lock(LOCK_WAIT_MS) {
        return not_written(e, s);
    }
    let mut buf = [0u8; FILE_MAX + 1];
    let mut seen = Seen::default();
    let mut state = match persist::read(&place, &mut buf, &mut seen) {
        Ok(st) => st,
        Err(e) => {
            // Missing or invalid: replaced by what set is told. Anything
            // else (not a regular file, not readable) is left alone.
            let new = matches!(e, LoadError::Invalid(_) | LoadError::Io(Errno::ENOENT));
            // Each line is made where it is kept: a tuple would copy it.
            let mut l = if new { log::info() } else { log::error() };
            let then = if new {
                "; writing a new one"
            } else {
                "; not writing it"
            };
            crate::server::unreadable(&mut l, path, e).s(then).send();
            if !new {
                return SYSCALL;
            }
            State::default()
        }
    };
    if !apply(&mut state, s) {
        log::error()
            .s("too many services (at most 16); the file is not changed")
            .send();
        return USAGE;
    }
    if let Err(e) = persist::write(&place, seen, &state, &mut buf) {
        return not_written(e, s);
    }
    match &s.pid_file {
        None => {
            log::info()
                .s("no pid file given: send SIGHUP to the agent yourself")
                .send();
            0
        }
        Some(p) => signal(p),
    }
}

/// Logs why the state file of `s` was not written; returns the exit code.
fn not_written(e: persist::WriteError, s: &Set) -> i32 {
    // A missing directory is named with what to create.
    crate::server::firstrun::unwritable(s.state_file, s.state_from)
        .unwrap_or_else(|| e.line(s.state_file))
        .send();
    SYSCALL
}

/// Changes the top level, or one service, as `s` says; keeps every field it
/// is not told to change. Returns false, changing nothing, when a new
/// service does not fit.
pub fn apply(state: &mut State, s: &Set) -> bool {
    let entry: &mut Entry = match s.service {
        None => state.top.get_or_insert_with(|| Entry::new(s.status)),
        Some(name) => {
            let services = &mut state.services;
            let i = services
                .iter()
                .position(|(n, _)| n.as_str() == name)
                .unwrap_or(services.len());
            if i == services.len() {
                let mut n = Name::new();
                // cli checked the name, so it fits.
                let _ = n.push_str(name);
                if services.push((n, Entry::new(s.status))).is_err() {
                    return false;
                }
            }
            match services.get_mut(i) {
                Some((_, e)) => e,
                None => return false,
            }
        }
    };
    entry.status = s.status;
    if let Some(w) = s.weight {
        entry.weight = w;
    }
    if let Some(m) = s.maxconn {
        entry.maxconn = m;
    }
    if let Some(r) = &s.reason {
        entry.reason.clear();
        // cli checked the reason, so it fits.
        let _ = entry.reason.push_str(r);
    }
    true
}

/// Sends SIGHUP to the agent serving `pid_file`; returns the exit code (0 sent, 1 not).
fn signal(pid_file: &Path) -> i32 {
    let l = &mut log::error();
    match persist::agent_pid(pid_file) {
        Ok(pid) => match crate::os::kill(pid as i32, libc::SIGHUP) {
            Ok(()) => {
                log::info().s("sent SIGHUP to ").u(pid).send();
                return 0;
            }
            Err(e) => l.s("SIGHUP to ").u(pid).s(": ").errno(e),
        },
        Err(why) => {
            l.s("pid file ").b(pid_file.as_os_str().as_encoded_bytes());
            match why {
                NotAgent::Unreadable(e) => l.s(": ").errno(e),
                NotAgent::Stale => l.s(": no agent holds it (stale)"),
                NotAgent::Other(h) => l.s(" does not name ").u(h).s(", which holds it"),
            }
        }
    };
    l.s("; the file is written, the agent was not told").send();
    1
}
