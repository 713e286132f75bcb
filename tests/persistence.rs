//! How the agent writes its state file after a signal: a missing file is
//! created, a file it could not parse is left for a human, a pending change
//! is written on SIGTERM, a stale temporary file is reused, and a failed
//! rename or a read-only directory is retried while the agent keeps serving.

mod common;
use common::state::*;
use common::*;

use std::time::Duration;

/// A file heft could not parse is kept for a human: a signal changes the
/// reply, not the file, and says so.
#[test]
fn invalid_file_is_not_overwritten_by_signals() {
    let bad = r#"{"status":"UP","weight":999}"#;
    let a = Agent::start(Some(bad), &[]);
    a.expect_reply(&fail_reply(
        "weight: expected a whole number 0-255, got another number",
    ));
    a.signal(libc::SIGUSR1);
    a.expect_reply("up ready 100%\n");
    a.signal(libc::SIGUSR2);
    // Whether the reply still says why the file was refused is left open.
    assert!(
        wait_for(SECS5, || a.probe().starts_with("down ready 100%")),
        "{}",
        a.probe()
    );
    // Longer than the 100 ms between writes: a write would have happened.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(a.state_text(), bad, "the invalid file was overwritten");
    assert!(
        a.log().contains("not writing the state file"),
        "{}",
        a.log()
    );
}

/// A missing file is created by the first signal, with the signal's status
/// and nothing that was not in a file.
///
/// The FAIL entry heft serves for the missing file has the reason
/// `state file: unreadable ENOENT`; a signal must not carry that reason into
/// the new file or the reply: SIGUSR2 gives `down ready 100%`.
#[test]
fn missing_file_is_created_by_the_first_signal() {
    let a = Agent::start(None, &[]);
    a.expect_reply(&fail_reply("unreadable ENOENT"));
    a.signal(libc::SIGUSR1);
    a.expect_reply("up ready 100%\n");
    expect_file_status(&a, heft::model::state::Status::Up);
    let (_, weight, maxconn, reason) = top_of(&a.state_text());
    assert_eq!((weight, maxconn), (100, None));
    a.signal(libc::SIGUSR2);
    expect_file_status(&a, heft::model::state::Status::Down);
    assert_eq!(
        (reason.as_str(), a.probe().as_str()),
        ("", "down ready 100%\n"),
        "the made-up reason was kept; file {:?}",
        a.state_text()
    );
}

/// SIGTERM writes a change that was still waiting for the gap between writes.
#[test]
fn term_writes_a_pending_change() {
    use heft::model::state::Status::{Down, Up};
    for round in 0..3 {
        let mut a = Agent::start(Some(STATE), &[]);
        a.signal(libc::SIGUSR2);
        a.expect_reply("down ready 77% maxconn:300\n");
        expect_file_status(&a, Down);
        // The file was just written: this change waits up to 100 ms for its write.
        a.signal(libc::SIGUSR1);
        assert_eq!(a.probe_with(b"\n"), "up ready 77% maxconn:300\n");
        a.signal(libc::SIGTERM);
        assert_eq!(a.wait_exit(SECS5), Some(0));
        let text = a.state_text();
        assert_eq!(
            top_of(&text).0,
            Up,
            "round {round}: change lost at exit: {text:?}"
        );
        assert!(temp_files(&a.dir).is_empty(), "{:?}", temp_files(&a.dir));
    }
}

/// A file at a name heft might once have used for its temporary file is
/// someone else's: never written, never removed; heft's own temporary file
/// is gone after the write.
#[test]
fn foreign_temporary_names_are_left_alone() {
    let a = Agent::start(Some(STATE), &[]);
    let tmp = a.dir.join("state.json.tmp");
    std::fs::write(&tmp, "{\"status\":\"garb").unwrap();
    a.signal(libc::SIGUSR2);
    a.expect_reply("down ready 77% maxconn:300\n");
    expect_file_status(&a, heft::model::state::Status::Down);
    assert!(
        wait_for(SECS5, || temp_files(&a.dir) == ["state.json.tmp"]),
        "{:?}",
        file_names(&a.dir)
    );
    assert_eq!(std::fs::read_to_string(&tmp).unwrap(), "{\"status\":\"garb");
    assert_eq!(
        top_of(&a.state_text()),
        (
            heft::model::state::Status::Down,
            77,
            Some(300),
            String::new()
        )
    );
}

/// The state file became a directory: heft serves the new state, logs that
/// it cannot read back what it would replace, writes nothing, and writes the
/// file once the directory is gone.
#[test]
fn failed_rename_keeps_serving_and_retries() {
    let a = Agent::start(Some(STATE), &[]);
    // The first read (after "listening" is logged) comes before the change.
    a.expect_reply("up ready 77% maxconn:300\n");
    std::fs::remove_file(&a.state).unwrap();
    std::fs::create_dir(&a.state).unwrap();
    std::fs::write(a.state.join("in-the-way"), "x").unwrap();
    a.signal(libc::SIGUSR2);
    a.expect_reply("down ready 77% maxconn:300\n");
    let path = a.state.display().to_string();
    assert!(
        wait_for(SECS5, || a.log().contains(&format!(
            "error: writing {path}: reading it first: EISDIR"
        ))),
        "{}",
        a.log()
    );
    assert!(temp_files(&a.dir).is_empty(), "{:?}", file_names(&a.dir));
    // Still serving, and still answering signals.
    a.signal(libc::SIGUSR1);
    a.expect_reply("up ready 77% maxconn:300\n");
    a.signal(libc::SIGUSR2);
    a.expect_reply("down ready 77% maxconn:300\n");
    // Out of the way: the retry (every 5 s) writes the current state.
    std::fs::remove_dir_all(&a.state).unwrap();
    assert!(
        wait_for(Duration::from_secs(12), || a.state.is_file()
            && heft::model::state::parse(a.state_text().as_bytes()).is_ok()),
        "never written again; log:\n{}",
        a.log()
    );
    assert_eq!(top_of(&a.state_text()).0, heft::model::state::Status::Down);
    // Logged right after the rename, so it can trail the file a little.
    assert!(
        wait_for(SECS5, || a.log().contains("state file written again after")),
        "{}",
        a.log()
    );
    assert_eq!(a.probe(), "down ready 77% maxconn:300\n");
}

/// Runs `nsenter` into `pid`'s mount namespace and root directory (so a
/// chroot the tests run in is kept) with `args`; panics on failure.
fn in_mount_ns(pid: i32, args: &[&str]) {
    let out = std::process::Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "-r", "--"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nsenter {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A read-only file system (EROFS), as on a router's read-only root: heft
/// runs in its own mount namespace, on a bind mount of its directory that is
/// then remounted read-only (heft holds its directory open, so only a change
/// of the mount it opened reaches it). It serves the new state, logs, and
/// writes the file once the mount is writable again.
#[test]
fn read_only_directory_keeps_serving_and_retries() {
    let can = std::process::Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !can {
        // Without CAP_SYS_ADMIN there is no way to make a directory read-only
        // for root; failed_rename_keeps_serving_and_retries covers the logic.
        println!("skipped: unshare -m is not permitted here");
        return;
    }
    let env = [("PATH", SYSTEM_PATH)];
    let d = temp_dir("ro");
    let dir = d.to_str().unwrap().to_string();
    let script = format!("mount --bind {dir} {dir} && exec \"$0\" \"$@\"");
    let wrapper = [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        &script,
    ];
    // A file open for writing (the pid file) would keep the mount from going read-only.
    let pid_dir = temp_dir("ro-pid");
    let _cleanup = Cleanup(pid_dir.clone());
    let pid = pid_dir.join("heft.pid");
    let args = ["--pid-file", pid.to_str().unwrap()];
    let a = spawn_in_with(
        d,
        "127.0.0.1",
        free_port(),
        Some(STATE),
        &args,
        &env,
        &wrapper,
    );
    a.wait_listening();
    in_mount_ns(a.pid(), &["mount", "-o", "remount,bind,ro", &dir]);
    a.signal(libc::SIGUSR2);
    a.expect_reply("down ready 77% maxconn:300\n");
    let path = a.state.display().to_string();
    assert!(
        wait_for(SECS5, || a.log().contains(&format!(
            "error: writing {path}: creating a temporary file: EROFS"
        ))),
        "{}",
        a.log()
    );
    // Our own view is writable and unchanged.
    assert_eq!(a.state_text(), STATE);
    assert_eq!(a.probe_with(b"\n"), "down ready 77% maxconn:300\n");
    in_mount_ns(a.pid(), &["mount", "-o", "remount,bind,rw", &dir]);
    assert!(
        wait_for(Duration::from_secs(12), || a.state_text().contains("DOWN")),
        "never written after the directory became writable; log:\n{}",
        a.log()
    );
    assert_eq!(top_of(&a.state_text()).0, heft::model::state::Status::Down);
    assert!(temp_files(&a.dir).is_empty(), "{:?}", file_names(&a.dir));
}
