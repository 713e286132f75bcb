//! Signals to the running agent: SIGUSR1 and SIGUSR2 set UP and DOWN keeping
//! the rest, SIGHUP re-reads the state file (good or bad), a probe after a
//! signal sees its effect at once, and SIGTERM and SIGINT stop it cleanly.

mod common;
use common::state::*;
use common::*;

use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The same bad files on SIGHUP to a running agent, alternating with a good
/// one: every transition shows, and the agent never stops serving.
#[test]
fn bad_state_files_on_sighup_serve_fail_and_keep_running() {
    let a = Agent::start(Some(STATE), &[]);
    // heft logs "listening" before its first read of the file: let that
    // read happen before the file changes, or it too finds a bad file.
    a.expect_reply("up ready 77% maxconn:300\n");
    for (what, content, reason) in bad_files() {
        match &content {
            Some(c) => std::fs::write(&a.state, c).unwrap(),
            None => std::fs::remove_file(&a.state).unwrap(),
        }
        a.signal(libc::SIGHUP);
        expect_fail(&a, reason);
        let errors = a.log().lines().filter(|l| l.contains("error:")).count();
        assert!(errors > 0, "{what}: nothing logged");
        a.reload(STATE, "up ready 77% maxconn:300\n");
    }
    let log = a.log();
    let path = a.state.display().to_string();
    let logged = log
        .lines()
        // `state file PATH: why`, or `state file PATH (from ...): ...` when missing.
        .filter(|l| l.contains("error:") && l.contains(&format!("state file {path}")))
        .count();
    assert_eq!(
        logged,
        bad_files().len(),
        "one error line with the path per bad file:\n{log}"
    );
    assert_eq!(a.stop(), Some(0));
}

/// SIGUSR2 gives DOWN and SIGUSR1 UP, keeping weight, maxconn and reason, in
/// the reply and in the file, which stays valid JSON with no temporary left.
#[test]
fn usr1_usr2_keep_weight_maxconn_reason_and_persist() {
    use heft::model::state::Status::{Down, Up};
    let a = Agent::start(
        Some(r#"{"status":"DRAIN","weight":42,"maxconn":7,"reason":"deploy x","note":"kept?"}"#),
        &[],
    );
    a.expect_reply("up drain 42% maxconn:7\n");
    a.signal(libc::SIGUSR2);
    a.expect_reply("down ready 42% maxconn:7 #deploy x\n");
    expect_file_status(&a, Down);
    assert_eq!(
        top_of(&a.state_text()),
        (Down, 42, Some(7), "deploy x".into())
    );
    a.signal(libc::SIGUSR1);
    a.expect_reply("up ready 42% maxconn:7\n");
    expect_file_status(&a, Up);
    assert_eq!(
        top_of(&a.state_text()),
        (Up, 42, Some(7), "deploy x".into())
    );
    assert!(temp_files(&a.dir).is_empty(), "{:?}", temp_files(&a.dir));
    let log = a.log();
    assert!(
        log.contains("state: DOWN weight 42 maxconn 7 reason \"deploy x\" (signal)"),
        "{log}"
    );
    assert!(
        log.contains("state: UP weight 42 maxconn 7 reason \"deploy x\" (signal)"),
        "{log}"
    );
    assert_eq!(a.stop(), Some(0));
}

/// Signals sent one at a time take effect in order, and a probe accepted
/// after `kill` returned already gets the new state: no waiting, no retry.
#[test]
fn probe_after_a_signal_gets_the_new_state() {
    let a = Agent::start(Some(STATE), &[]);
    let mut seed = std::process::id() as u64 | 1;
    let mut up = true;
    for i in 0..300 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Mostly flips, sometimes the same signal twice.
        if !seed.is_multiple_of(4) {
            up = !up;
        }
        a.signal(if up { libc::SIGUSR1 } else { libc::SIGUSR2 });
        let want = if up {
            "up ready 77% maxconn:300\n"
        } else {
            "down ready 77% maxconn:300\n"
        };
        let payload: &[u8] = if i % 3 == 0 { b"" } else { b"\n" };
        assert_eq!(
            a.probe_with(payload),
            want,
            "probe {i} right after the signal"
        );
    }
    // After the last signal the file catches up.
    expect_file_status(
        &a,
        if up {
            heft::model::state::Status::Up
        } else {
            heft::model::state::Status::Down
        },
    );
    assert_eq!(a.stop(), Some(0));
}

/// SIGHUP re-reads the file: content changes, then the cause is logged.
#[test]
fn sighup_rereads_the_file() {
    let a = Agent::start(Some(STATE), &[]);
    // The first read (after "listening" is logged) comes before the change.
    a.expect_reply("up ready 77% maxconn:300\n");
    std::fs::write(&a.state, r#"{"status":"MAINT","weight":5}"#).unwrap();
    // Not read before SIGHUP.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(a.probe(), "up ready 77% maxconn:300\n");
    a.signal(libc::SIGHUP);
    a.expect_reply("maint 5%\n");
    let log = a.log();
    assert!(
        log.contains(&format!("SIGHUP: reading {}", a.state.display())),
        "{log}"
    );
    assert!(log.contains("state: MAINT weight 5 (state file)"), "{log}");
    // A SIGHUP that changes nothing logs no state change.
    let before = log.lines().filter(|l| l.contains("state: ")).count();
    a.signal(libc::SIGHUP);
    assert!(wait_for(SECS5, || a
        .log()
        .matches("SIGHUP: reading")
        .count()
        == 2));
    assert_eq!(
        a.log().lines().filter(|l| l.contains("state: ")).count(),
        before
    );
    assert_eq!(a.probe(), "maint 5%\n");
}

/// A SIGHUP sent after a signal's effect is visible does not undo it.
///
/// Writes after signals are spaced apart, so a change may still be pending
/// when SIGHUP re-reads the file: the pending write must not be dropped (nor
/// the old file win), or SIGUSR2, SIGUSR1, SIGHUP would end DOWN, not UP.
#[test]
fn sighup_after_a_signal_does_not_undo_it() {
    let a = Agent::start(Some(STATE), &[]);
    let mut lost = 0;
    for _ in 0..5 {
        a.signal(libc::SIGUSR2);
        a.expect_reply("down ready 77% maxconn:300\n");
        expect_file_status(&a, heft::model::state::Status::Down);
        // The file was just written: this SIGUSR1's write waits for the gap.
        a.signal(libc::SIGUSR1);
        a.expect_reply("up ready 77% maxconn:300\n");
        a.signal(libc::SIGHUP);
        assert!(wait_for(SECS5, || a.log().contains("SIGHUP")));
        std::thread::sleep(Duration::from_millis(300));
        if a.probe() != "up ready 77% maxconn:300\n" {
            lost += 1;
        }
        // Back to a known state for the next round.
        a.signal(libc::SIGUSR1);
        expect_file_status(&a, heft::model::state::Status::Up);
        a.expect_reply("up ready 77% maxconn:300\n");
        std::thread::sleep(Duration::from_millis(150));
    }
    assert_eq!(
        lost,
        0,
        "SIGHUP undid a SIGUSR1 in {lost} of 5 rounds; log:\n{}",
        a.log()
    );
}

/// SIGTERM and SIGINT stop heft promptly with exit code 0, even with a
/// client connected, and remove the pid file.
#[test]
fn term_and_int_exit_zero_promptly() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut a = Agent::start(Some(STATE), &[]);
        assert!(wait_for(SECS5, || a.pid_file.exists()));
        let pid_text = std::fs::read_to_string(&a.pid_file).unwrap();
        assert_eq!(pid_text.trim(), a.pid().to_string());
        let _idle = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
        let t = Instant::now();
        a.signal(sig);
        let code = a.wait_exit(SECS5);
        let took = t.elapsed();
        assert_eq!(code, Some(0), "signal {sig}; log:\n{}", a.log());
        assert!(took < Duration::from_secs(1), "signal {sig}: took {took:?}");
        assert!(!a.pid_file.exists(), "pid file left behind");
        assert!(a.log().contains("stopping: "), "{}", a.log());
    }
}
