//! The `heft` command: start-up in a fixed order, then the loop.
//!
//! `serve` goes: parse options, load feedback, bind, install signal
//! handlers, allocate the loop's tables, write and lock the pid file, drop
//! privileges, connect syslog, read the state file, loop. Exit codes: 0 after
//! SIGTERM/SIGINT, 100 bad usage or configuration, 111 a system call failed at
//! start-up (`get`: 0 a whole line came back, 1 not).
#![deny(unsafe_code)]

use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;

use heft::cli::{self, Command, Serve};
use heft::log;
use heft::server::persist::PidFile;
use heft::server::privs::DropError;
use heft::server::{self, Server};

/// Exit code for bad usage or configuration.
const USAGE: i32 = 100;
/// Exit code for a system call that failed at start-up.
const SYSCALL: i32 = 111;

fn main() {
    // std's runtime has already set SIGPIPE to be ignored, so a write to a
    // closed stdout or stderr fails with EPIPE instead of killing heft.
    std::process::exit(run());
}

/// Runs the command the arguments name; returns the exit code.
fn run() -> i32 {
    // Pushed one by one: `collect` brings a larger, generic Vec::from_iter.
    let mut args = Vec::new();
    let mut all = std::env::args_os();
    // The program name.
    all.next();
    for arg in all {
        args.push(arg);
    }
    // Kept for the life of the process (it exits right after), so that the
    // options borrow the arguments, as they borrow the variables, instead of
    // copying them.
    let parsed = cli::parse(args.leak(), &heft::os::env);
    match &parsed {
        Err(u) => usage(u),
        Ok(Command::Help(text)) => {
            heft::os::write_stdout(text.as_bytes());
            0
        }
        Ok(Command::Version) => {
            let v = concat!(
                "heft ",
                env!("CARGO_PKG_VERSION"),
                " (",
                env!("HEFT_TARGET"),
                ", profile ",
                env!("HEFT_PROFILE"),
                ")\n",
            );
            heft::os::write_stdout(v.as_bytes());
            0
        }
        Ok(Command::Get(g)) => heft::cli::get::run(g),
        Ok(Command::Set(s)) => {
            log::set_level(s.level);
            heft::cli::set::run(s)
        }
        Ok(Command::Check(c)) => serve(c, true),
        Ok(Command::Serve(s)) => serve(s, false),
    }
}

/// Logs a start-up step that failed, as `what` `detail`: errno `note`.
#[cold]
#[inline(never)]
fn log_failed(what: &str, detail: &[u8], e: Errno, note: &str) {
    log::error()
        .s(what)
        .b(detail)
        .s(": ")
        .errno(e)
        .s(note)
        .send();
}

/// Logs a start-up step that failed, as `log_failed` does, and exits 111.
/// Only before the pid file exists: nothing else is left to undo, and the
/// kernel closes the sockets.
#[cold]
#[inline(never)]
fn exit_failed(what: &str, detail: &[u8], e: Errno, note: &str) -> ! {
    log_failed(what, detail, e, note);
    std::process::exit(SYSCALL)
}

/// Logs a bad command line or environment value; returns the exit code.
fn usage(u: &cli::Usage) -> i32 {
    let mut line = log::error();
    u.say(&mut |part| {
        line.b(part);
    });
    line.send();
    USAGE
}

/// Loads the feedback rules, binds and writes the pid file, then runs the
/// agent; returns the exit code. A step that fails before the pid file
/// exists logs why and exits. With `check` (`heft check`), reads the state
/// file and the rules as the agent would, and exits 0, or 100 if one is bad.
#[inline(never)]
fn serve(cfg: &Serve, check: bool) -> i32 {
    // Nothing heft runs gains privileges. Kernels before 3.5 lack it: go on.
    let _ = heft::os::ids::forbid_new_privs();
    log::set_level(cfg.level);
    let code = match check && !server::check_state(cfg.state_file, cfg.state_from) {
        true => USAGE,
        false => 0,
    };
    #[cfg(feature = "feedback")]
    let feedback = cfg.feedback.map(|p| {
        // `load` has logged why the rules cannot be used.
        heft::feedback::Feedback::load(p, heft::os::now())
            .unwrap_or_else(|| std::process::exit(USAGE))
    });
    if check {
        std::process::exit(code);
    }
    // The addresses, as the start-up line and a failed bind name them.
    let mut at = Addrs::new();
    let listener = bind(&cfg.addr, cfg.port, &cfg.scope, &mut at);
    let http = cfg.http().map(|(addr, port, scope)| {
        let _ = at.extend_from_slice(b", HTTP on");
        bind(addr, port, scope, &mut at)
    });
    // What can fail (handlers, memory) is set up before the pid file, so a
    // failed start leaves none behind.
    let wake = match heft::os::signal::install() {
        Ok(w) => w,
        Err(e) => exit_failed("installing signal handlers", b"", e, ""),
    };
    let loop_cfg = server::Config {
        state_file: cfg.state_file,
        state_from: cfg.state_from,
        allow: &cfg.allow,
        ready_window_ms: cfg.ready_window_ms,
        wait_ms: cfg.wait_ms,
        timeout_ms: cfg.timeout_ms,
        slots: cfg.slots,
    };
    // Never dropped: the process exits when the loop ends, and the drop is code.
    let mut server = match Server::new(loop_cfg, listener, http, wake) {
        Ok(s) => std::mem::ManuallyDrop::new(s),
        Err(e) => exit_failed(e.step, b"", e.errno, ""),
    };
    #[cfg(feature = "feedback")]
    if let Some(f) = feedback {
        server.set_feedback(f);
    }
    let mut pid_file = None;
    if let Some(p) = &cfg.pid_file {
        match PidFile::create(p) {
            Ok(f) => pid_file = Some(f),
            Err(e) => {
                let note = match e {
                    Errno::EAGAIN => " (a running agent holds it)",
                    Errno::EPERM => " (another user's, or it has other links)",
                    _ => "",
                };
                exit_failed("pid file ", p.as_os_str().as_bytes(), e, note);
            }
        }
    }
    let code = drop_and_run(cfg, &mut server, &at);
    if let Some(p) = pid_file {
        p.remove();
    }
    code
}

/// Start-up after the pid file: drop privileges, syslog; then the loop.
/// `at`: the listen addresses, for the start-up line.
#[inline(never)]
fn drop_and_run(cfg: &Serve, server: &mut Server, at: &[u8]) -> i32 {
    if cfg.user.is_some() || cfg.group.is_some() {
        let user = cfg.user.as_ref().map(|g| g.value);
        let group = cfg.group.as_ref().map(|g| g.value);
        if let Err(e) = heft::server::privs::drop_to(user, group) {
            let (given, what) = match e {
                DropError::NoUser => (&cfg.user, "a user in /etc/passwd or a number"),
                DropError::NoGroup => (&cfg.group, "a group in /etc/group or a number"),
                DropError::Call(c, errno) => {
                    log_failed("dropping privileges: ", c.as_bytes(), errno, "");
                    return SYSCALL;
                }
            };
            return match given {
                Some(g) => usage(&g.bad(what)),
                None => USAGE,
            };
        }
    }
    if let Some(path) = &cfg.syslog {
        match heft::os::net::connect_syslog(path) {
            Ok(fd) => log::use_syslog(fd, heft::os::pid() as i32),
            Err(e) => {
                let detail = path.as_os_str().as_bytes();
                log_failed("syslog ", detail, e, " (logging to stderr)");
            }
        }
    }
    // Start-up errors wait up to 1 s for a slow log reader; the agent never does.
    log::set_wait(0);
    log::info()
        .s("listening on")
        .b(at)
        .s(", state file ")
        .b(cfg.state_file.as_os_str().as_bytes())
        .send();
    server.run()
}

/// The listen addresses, each after a space: the agent's, then `, HTTP on`
/// and HTTP's.
type Addrs = heapless::Vec<u8, 112>;

/// Opens a listener on `addr`:`port` (on the interface `scope` names, for
/// IPv6) and writes the address to `out`; if it cannot, logs why, naming the
/// address, and exits 111.
fn bind(addr: &IpAddr, port: u16, scope: &[u8], out: &mut Addrs) -> heft::os::Fd {
    let mark = out.len();
    let v6 = addr.is_ipv6();
    let _ = heft::num::push(out, if v6 { b" [" } else { b" " });
    heft::num::push_ip(out, *addr);
    if !scope.is_empty() {
        let _ = heft::num::push(out, b"%");
        let _ = heft::num::push(out, scope);
    }
    let _ = heft::num::push(out, if v6 { b"]:" } else { b":" });
    let _ = heft::num::push_u32(out, port as u32);
    // While the interface of a scoped address does not exist yet (at
    // boot), say so once and try again every second.
    let mut told = false;
    let e = loop {
        match server::listen(*addr, port, scope) {
            Ok(l) => return l,
            Err(e) if e.errno == Errno::ENODEV => {
                if !told {
                    told = true;
                    log::error()
                        .s("no interface ")
                        .b(scope)
                        .s(" yet: ENODEV; trying again every second")
                        .send();
                }
                // poll(2) on nothing: a sleep that needs no other call.
                let _ = heft::os::poll(&mut [], 1000);
            }
            Err(e) => break e,
        }
    };
    let note = if e.errno == Errno::EADDRINUSE {
        " (another agent already listens there)"
    } else {
        ""
    };
    exit_failed(e.step, &out[mark..], e.errno, note)
}
