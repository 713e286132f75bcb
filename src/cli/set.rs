//! `heft set`: changes the state file atomically, then sends SIGHUP to the agent.

use std::path::Path;

use crate::cli::Set;
use crate::log;
use crate::model::state::{Entry, Name, State, FILE_MAX};
use crate::server::persist;

/// Applies `s` to the state file; returns the exit code (0 done, 1 agent not signalled, 111 not written).
pub fn run(s: &Set) -> i32 {
    let mut buf = [0u8; FILE_MAX + 1];
    let mut state = match persist::read(&s.state_file, &mut buf) {
        Ok(st) => st,
        Err(e) => {
            let mut why = crate::model::state::Reason::new();
            e.describe(&mut why);
            log::info()
                .s("state file ")
                .b(s.state_file.as_os_str().as_encoded_bytes())
                .s(": ")
                .s(&why)
                .s("; writing a new one")
                .send();
            State::default()
        }
    };
    apply(&mut state, s);
    let tmp = persist::temp_path(&s.state_file, &pid_suffix());
    if let Err(e) = persist::write(&s.state_file, &tmp, &state) {
        e.line(&s.state_file).send();
        return 111;
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

/// Changes the top level, or one service, as `s` says; keeps every field it is not told to change.
pub fn apply(state: &mut State, s: &Set) {
    let entry: &mut Entry = match s.service.as_deref() {
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
                    log::error()
                        .s("too many services (at most 64); changing nothing")
                        .send();
                    return;
                }
            }
            match services.get_mut(i) {
                Some((_, e)) => e,
                None => return,
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
}

/// Makes the temporary file suffix `.set-<pid>.tmp`, so that two `heft set`s never share one.
fn pid_suffix() -> crate::model::state::Reason {
    let mut s = crate::model::state::Reason::new();
    let mut d = [0u8; 10];
    let _ = s.push_str(".set-");
    let pid = crate::num::fmt_u32(crate::os::pid(), &mut d);
    let _ = s.push_str(crate::os::ascii_str(pid).unwrap_or("0"));
    let _ = s.push_str(".tmp");
    s
}

/// Sends SIGHUP to the pid in `pid_file`; returns the exit code (0 sent, 1 not).
fn signal(pid_file: &Path) -> i32 {
    let mut text = [0u8; 16];
    let n = crate::os::fs::read(pid_file, &mut text).unwrap_or(0);
    let digits: &[u8] = text[..n]
        .split(|c| c.is_ascii_whitespace())
        .next()
        .unwrap_or(b"");
    let Some(pid) = crate::num::parse_u32(digits).filter(|&p| p > 1 && p <= i32::MAX as u32) else {
        log::error()
            .s("no pid in ")
            .b(pid_file.as_os_str().as_encoded_bytes())
            .s("; the agent was not told")
            .send();
        return 1;
    };
    match crate::os::kill(pid as i32, libc::SIGHUP) {
        Ok(()) => {
            log::info().s("sent SIGHUP to ").u(pid).send();
            0
        }
        Err(e) => {
            log::error()
                .s("SIGHUP to ")
                .u(pid)
                .s(": ")
                .errno(e)
                .s("; the agent was not told")
                .send();
            1
        }
    }
}
