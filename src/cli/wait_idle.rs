//! `heft set STATUS --wait-idle PORT[,PORT...]`: changes the state as `heft
//! set` does, then waits until no established TCP connection to those local
//! ports is left, so a deploy script can stop the service right after.
//!
//! It waits `--settle` seconds first (every HAProxy probes the agent and sees
//! the drain), then counts once a second with `os::sockdiag` until the count
//! has stayed at 0 for 2 seconds (exit 0), or `--idle-timeout` seconds from
//! the start have passed (exit 1).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::cli::{Set, Usage, Wants};
use crate::log;
use crate::model::state::Status;
use crate::os;

/// The most ports `--wait-idle` takes.
pub const PORTS_MAX: usize = 16;
/// What `--wait-idle` wants, as errors say it.
pub const WANTS: &str = "1 to 16 ports like 8080,8443";
/// The default `--settle`, in seconds: two typical `agent-inter` periods.
pub const DEFAULT_SETTLE_S: u32 = 4;

/// Reads 1 to 16 port numbers separated by commas; unused places are 0.
pub fn ports(v: &[u8]) -> Option<[u16; PORTS_MAX]> {
    let mut out = [0; PORTS_MAX];
    for (i, p) in crate::num::pieces(v, b',').enumerate() {
        let p = crate::num::parse_u32(p).filter(|p| (1..=65535).contains(p))?;
        *out.get_mut(i)? = p as u16;
    }
    Some(out)
}

/// Reads `--wait-idle`, keeping the text once its ports are checked.
pub fn text(v: &OsStr) -> Option<String> {
    ports(v.as_bytes())?;
    Some(v.to_str()?.into())
}

/// The error for `--wait-idle` with a status that still takes new
/// connections, or for `--idle-timeout` or `--settle` without `--wait-idle`.
pub fn check(s: &Set) -> Option<Usage> {
    let waits = s.wait_idle.is_some();
    let alone = s.idle_timeout_s.is_some() || s.settle_s.is_some();
    ((waits && matches!(s.status, Status::Up | Status::Ready)) || (alone && !waits))
        .then_some(Usage::Missing {
        option: "--wait-idle",
        wants: Wants::Text(
            "DRAIN, MAINT, DOWN, FAIL or STOPPED, and is what --settle and --idle-timeout go with",
        ),
    })
}

/// Runs `heft set`, then waits if `--wait-idle` was given; returns the exit
/// code (0 set and idle, 1 agent not signalled or still busy at the
/// timeout, 111 not written or connections not countable).
pub fn run(s: &Set) -> i32 {
    match crate::cli::set::run(s) {
        0 if s.wait_idle.is_some() => wait(s),
        code => code,
    }
}

/// Waits for the ports to be idle; returns the exit code.
fn wait(s: &Set) -> i32 {
    let text = s.wait_idle.as_deref().unwrap_or_default();
    let ports = ports(text.as_bytes()).unwrap_or_default();
    let start = os::now();
    let settle_ms = s.settle_s.unwrap_or(DEFAULT_SETTLE_S) * 1000;
    let mut buf = [0u8; 8192];
    // Samples come once a second: 0 three times in a row is 2 s idle.
    let mut zeros = 0;
    let mut t = 0;
    log::info()
        .s("waiting --settle seconds for HAProxy to see the change")
        .send();
    loop {
        let _ = os::poll(&mut [], os::now().until(start + t) as i32);
        if t >= settle_ms {
            let mut n = 0;
            for &p in ports.iter().take_while(|&&p| p != 0) {
                match os::sockdiag::count_established(p, &mut buf) {
                    Ok(c) => n += c,
                    Err(e) => {
                        log::error().s("counting connections: ").errno(e).send();
                        return 111;
                    }
                }
            }
            log::info()
                .u(n)
                .s(" established connection(s) to ")
                .s(text)
                .s(" after ")
                .u(t / 1000)
                .s(" s")
                .send();
            zeros = if n == 0 { zeros + 1 } else { 0 };
            if zeros == 3 {
                log::info().s("idle for 2 s").send();
                return 0;
            }
        }
        if s.idle_timeout_s.is_some_and(|limit| t >= limit * 1000) {
            log::error().s("not idle by --idle-timeout").send();
            return 1;
        }
        t += 1000;
    }
}
