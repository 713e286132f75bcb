//! What the agent logs: start-up, changes and their causes, `-q`, and syslog
//! lines (format, facility, severities) on a socket the test owns, also after
//! dropping privileges.

mod common;
use common::prom::metrics;
use common::state::*;
use common::users::*;
use common::*;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Start-up names address, port and state file; changes name their cause;
/// `-q` (or HEFT_LOG=quiet) logs errors only.
#[test]
fn logging_and_quiet() {
    let a = Agent::start(Some(STATE), &[]);
    let first = a.log().lines().next().unwrap_or_default().to_string();
    assert_eq!(
        first,
        format!(
            "heft: listening on 127.0.0.1:{}, state file {}",
            a.port,
            a.state.display()
        )
    );
    // Logged when the file is read, which may come just after the port opens.
    let change = "state: UP weight 77 maxconn 300 (state file)";
    assert!(wait_for(SECS5, || a.log().contains(change)), "{}", a.log());
    drop(a);

    for (args, env) in [(&["-q"][..], &[][..]), (&[], &[("HEFT_LOG", "quiet")])] {
        let a = Agent::spawn(Some(STATE), args, env, &[]);
        a.wait_serving();
        a.signal(libc::SIGUSR2);
        a.expect_reply("down ready 77% maxconn:300\n");
        expect_file_status(&a, heft::model::state::Status::Down);
        std::fs::write(&a.state, "{").unwrap();
        a.signal(libc::SIGHUP);
        expect_fail(&a, None);
        let log = a.log();
        assert!(
            !log.is_empty(),
            "{args:?} {env:?}: the error was not logged"
        );
        assert_eq!(
            error_lines(&log).len(),
            log.lines().count(),
            "{args:?} {env:?}: not only errors:\n{log}"
        );
        assert!(
            log.contains(&format!("state file {}: ", a.state.display())),
            "{log}"
        );
    }
}

/// Receives datagrams until one contains `needle`; returns all of them.
fn recv_until(sock: &UnixDatagram, needle: &str, got: &mut Vec<String>) {
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    while !got.iter().any(|l| l.contains(needle)) {
        assert!(
            start.elapsed() < LIMIT,
            "no {needle:?} on the syslog socket; got {got:#?}"
        );
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8(buf[..n].to_vec()).expect("syslog line is not UTF-8"));
        }
    }
}

/// Checks `<PRI>heft[PID]: text` with facility daemon (3), PRI 24 to 31; returns the severity.
fn check_syslog_line(line: &str, pid: i32) -> u32 {
    let rest = line.strip_prefix('<').unwrap_or_else(|| panic!("{line:?}"));
    let (pri, rest) = rest.split_once('>').unwrap_or_else(|| panic!("{line:?}"));
    let pri: u32 = pri.parse().unwrap_or_else(|_| panic!("{line:?}"));
    assert!((24..=31).contains(&pri), "facility is not daemon: {line:?}");
    let tag = format!("heft[{pid}]: ");
    let msg = rest
        .strip_prefix(&tag)
        .unwrap_or_else(|| panic!("no {tag:?} in {line:?}"));
    assert!(
        !msg.is_empty() && msg.bytes().all(|c| (0x20..0x7f).contains(&c)),
        "{line:?}"
    );
    pri - 24
}

fn syslog_run(use_variable: bool, user: bool) {
    let dir = temp_dir("ops-syslog");
    let _cleanup = Cleanup(dir.clone());
    let path = dir.join("log.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    if user {
        // /dev/log is writable by everyone; this socket must be too for nobody.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let p = path.to_str().unwrap();
    let mut args: Vec<&str> = Vec::new();
    let mut env: Vec<(&str, &str)> = Vec::new();
    if use_variable {
        env.push(("HEFT_SYSLOG_SOCKET", p));
    } else {
        args.extend(["--syslog-socket", p]);
    }
    if user {
        args.extend(["--user", "nobody"]);
    }
    // No state file: an error line (severity 3) as well as events (6).
    let mut a = spawn_in(temp_dir("ops"), "127.0.0.1", free_port(), None, &args, &env);
    let mut got = Vec::new();
    let start = Instant::now();
    while !got.iter().any(|l: &String| l.contains("listening on")) {
        if let Ok(Some(st)) = a.child.try_wait() {
            panic!(
                "heft exited ({st}) before logging to syslog; stderr:\n{}",
                a.log()
            );
        }
        assert!(
            start.elapsed() < LIMIT,
            "nothing on the syslog socket; stderr:\n{}",
            a.log()
        );
        let mut buf = [0u8; 2048];
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
        }
    }
    recv_until(&sock, "unreadable", &mut got);
    a.signal(libc::SIGUSR1);
    recv_until(&sock, "(signal)", &mut got);
    assert_eq!(a.probe(), "up ready 100%\n");
    let pid = a.pid();
    let code = a.stop();
    assert_eq!(code, Some(0));
    recv_until(&sock, "stopping", &mut got);
    let mut severities = BTreeSet::new();
    for l in &got {
        severities.insert(check_syslog_line(l, pid));
    }
    assert!(
        severities.contains(&3) && severities.contains(&6),
        "severities {severities:?} in {got:#?}"
    );
    // Nothing went to stderr once syslog was connected.
    let err = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    assert!(!err.contains("listening on"), "{err}");
}

#[test]
fn syslog_lines_reach_a_socket_the_test_owns() {
    syslog_run(false, false);
}

#[test]
fn syslog_socket_from_the_environment() {
    syslog_run(true, false);
}

#[test]
fn syslog_still_works_after_dropping_privileges() {
    if nobody().is_none() {
        return;
    }
    syslog_run(false, true);
}

/// Sends `rounds` state changes (SIGUSR2, SIGUSR1, ...: one log line each)
/// and probes after each; returns the slowest probe's time.
fn changes_and_probes(a: &Agent, rounds: usize) -> Duration {
    let mut worst = Duration::ZERO;
    for i in 0..rounds {
        a.signal(if i % 2 == 0 {
            libc::SIGUSR2
        } else {
            libc::SIGUSR1
        });
        let t = Instant::now();
        let r = a.probe();
        worst = worst.max(t.elapsed());
        assert!(r.starts_with("up ") || r.starts_with("down "), "{r:?}");
    }
    worst
}

/// Checks what a stalled log reader must not change: probes answered within
/// 0.5 s while heft logs a lot, the lines it dropped counted in /metrics.
fn serves_while_the_log_is_stalled(a: &Agent) {
    let worst = changes_and_probes(a, 100);
    assert!(
        worst < Duration::from_millis(500),
        "a probe took {worst:?} while the log reader was stalled"
    );
    let dropped = metrics(a.port).get("heft_log_lines_dropped_total");
    assert!(dropped >= 50.0, "{dropped} lines counted as dropped");
}

/// Waits until the agent on `port` answers probes (its start-up line may be lost).
fn wait_answering(port: u16) {
    let ok = wait_for(LIMIT, || {
        probe_port(port, b"").is_ok_and(|r| r.starts_with("up "))
    });
    assert!(ok, "heft did not start answering");
}

/// SIGTERM stops heft within 1 s with exit code 0, the log still stalled.
fn stops_at_once(a: Agent) {
    let t = Instant::now();
    assert_eq!(a.stop_with(libc::SIGTERM, Duration::from_secs(1)), Some(0));
    println!("stopped {:?} after SIGTERM", t.elapsed());
}

/// A datagram syslog socket nobody reads (its queue full from the start):
/// heft keeps answering, counts the lines it drops, stops at once on
/// SIGTERM, and once the socket is read again says how many it dropped.
#[test]
fn a_syslog_socket_nobody_reads_never_stalls_the_agent() {
    let dir = temp_dir("log-stalled-syslog");
    let _cleanup = Cleanup(dir.clone());
    let path = dir.join("log.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    // Fill the socket's queue (net.unix.max_dgram_qlen, 10 by default) from
    // a socket of the test's own: heft's first line finds it full.
    let filler = UnixDatagram::unbound().unwrap();
    filler.set_nonblocking(true).unwrap();
    let mut queued = 0;
    while filler.send_to(b"filler", &path).is_ok() {
        queued += 1;
        assert!(queued < 100_000, "the socket's queue never filled");
    }
    let args = ["--syslog-socket", path.to_str().unwrap()];
    let a = Agent::spawn(Some(STATE), &args, &[], &[]);
    wait_answering(a.port);
    serves_while_the_log_is_stalled(&a);
    // Read again: the next line to get through says how many were lost.
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let mut got = Vec::new();
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(got.len() >= queued, "{got:?}");
    a.signal(libc::SIGUSR2);
    recv_until(&sock, "log lines dropped before)", &mut got);
    let notice = got.last().unwrap();
    check_syslog_line(notice, a.pid());
    stops_at_once(a);
}

/// A pipe of `size` bytes whose read end the caller keeps, already full, as
/// a logger that has stopped reading leaves it.
fn full_pipe(size: i32) -> (std::fs::File, std::process::Stdio) {
    use std::os::fd::AsRawFd;
    let (r, w) = nix::unistd::pipe().unwrap();
    // SAFETY: F_SETPIPE_SZ on a pipe this test just made.
    let got = unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
    assert!(got >= size, "F_SETPIPE_SZ: {got}");
    let mut w = std::fs::File::from(w);
    // The whole capacity in one write to an empty pipe never blocks.
    std::io::Write::write_all(&mut w, &vec![b'.'; got as usize]).unwrap();
    (std::fs::File::from(r), std::process::Stdio::from(w))
}

/// Runs heft with `argv`, an empty environment and `stderr` as its stderr.
fn spawn_with_stderr(
    argv: &[std::ffi::OsString],
    stderr: std::process::Stdio,
) -> std::process::Child {
    heft_command(&[])
        .args(argv)
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// stderr a pipe nobody reads (full from the start): heft keeps answering,
/// counts the lines it drops, stops at once on SIGTERM, and once the pipe is
/// read again says how many it dropped. The pipe keeps its blocking mode.
#[test]
fn a_stderr_pipe_nobody_reads_never_stalls_the_agent() {
    let dir = temp_dir("log-stalled-stderr");
    let port = free_port();
    std::fs::write(dir.join("state.json"), STATE).unwrap();
    let (mut reader, stderr) = full_pipe(4096);
    let argv = [
        "--addr".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string().into(),
        "--state-file".into(),
        dir.join("state.json").into_os_string(),
    ];
    let a = Agent::adopt(spawn_with_stderr(&argv, stderr), port, dir.clone());
    wait_answering(port);
    serves_while_the_log_is_stalled(&a);
    // heft left its stderr blocking, for the other holders of the pipe.
    if !under_runner() {
        let info =
            std::fs::read_to_string(format!("/proc/{}/fdinfo/2", a.pid())).unwrap_or_default();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|f| i64::from_str_radix(f.trim(), 8).unwrap())
            .expect("no flags in fdinfo");
        assert_eq!(flags & libc::O_NONBLOCK as i64, 0, "fd 2 made non-blocking");
    }
    // Drain the pipe; the next line says how many were dropped.
    let drained = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = std::io::Read::read_to_end(&mut reader, &mut all);
        String::from_utf8_lossy(&all).into_owned()
    });
    std::thread::sleep(Duration::from_millis(100));
    a.signal(libc::SIGUSR2);
    std::thread::sleep(Duration::from_millis(200));
    stops_at_once(a);
    let text = drained.join().unwrap();
    let text = text.trim_start_matches('.');
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("heft: state: ") && first.ends_with(" log lines dropped before)"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `heft set` with stderr on a full pipe still finishes within a few
/// seconds (it waits up to 1 s per line), having written the file.
#[test]
fn heft_set_finishes_with_a_stalled_stderr() {
    let dir = temp_dir("log-stalled-set");
    let _cleanup = Cleanup(dir.clone());
    let state = dir.join("state.json");
    std::fs::write(&state, STATE).unwrap();
    let (_reader, stderr) = full_pipe(4096);
    let t = Instant::now();
    let argv = [
        "set".into(),
        "maint".into(),
        "--state-file".into(),
        state.clone().into_os_string(),
    ];
    let mut child = spawn_with_stderr(&argv, stderr);
    let done = wait_for(LIMIT, || child.try_wait().unwrap().is_some());
    if !done {
        let _ = child.kill();
    }
    assert!(done, "heft set hung on a stalled stderr");
    let took = t.elapsed();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(took < Duration::from_secs(5), "heft set took {took:?}");
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(text.contains("\"MAINT\""), "{text}");
    println!("heft set took {took:?} with a full stderr pipe");
}
