//! What the agent logs: start-up, changes and their causes, `-q`, and syslog
//! lines (format, facility, severities) on a socket the test owns, also after
//! dropping privileges.

mod common;
use common::state::*;
use common::users::*;
use common::*;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Start-up names the agent's and HTTP's addresses and ports and the state file; changes name their cause;
/// `-q` (or HEFT_LOG=quiet) logs errors only.
#[test]
fn logging_and_quiet() {
    let a = Agent::start(Some(STATE), &[]);
    let first = a.log().lines().next().unwrap_or_default().to_string();
    assert_eq!(
        first,
        format!(
            "heft: listening on 127.0.0.1:{}, HTTP on 127.0.0.1:{}, state file {}",
            a.port,
            a.http_port,
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
