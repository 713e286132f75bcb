//! Dropping privileges (`--user`, `--group`) after binding, as root: ids and
//! capabilities in /proc, the state directory's owner, a port below 1024,
//! `heft set` run as root under a strict umask, and unknown users or groups.

mod common;
use common::users::*;
use common::*;

use std::net::TcpListener;

/// A free port below 1024 on 127.0.0.1 (we are root, so binding says whether it is free).
fn free_low_port() -> u16 {
    (700..1000)
        .rev()
        .find(|&p| {
            TcpListener::bind(("127.0.0.1", p)).is_ok() && TcpListener::bind(("::1", p)).is_ok()
        })
        .expect("no free port below 1024")
}

#[test]
fn drops_to_nobody_after_binding_and_warns_about_an_unwritable_state_directory() {
    if skip_under_runner(READS_PROC_STATUS) {
        return;
    }
    let Some((uid, gid)) = nobody() else { return };
    // The harness's directory belongs to root: nobody cannot save signals there.
    let a = Agent::start(Some(STATE), &["--user", "nobody", "--group", "nogroup"]);
    assert_dropped(a.pid(), uid, gid);
    assert_eq!(a.probe(), "up ready 77% maxconn:300\n");
    let log = a.log();
    let warning = log
        .lines()
        .find(|l| l.contains("not writable by this user"))
        .unwrap_or_else(|| panic!("no warning about the state file's directory:\n{log}"));
    assert!(warning.contains(a.dir.to_str().unwrap()), "{warning}");
    // And it is true: a signal changes the reply, the write fails and is logged.
    a.signal(libc::SIGUSR2);
    a.expect_reply("down ready 77% maxconn:300\n");
    wait_log(&a, "error: writing");
    assert!(a.state_text().contains("\"UP\""), "{}", a.state_text());
    assert_eq!(a.stop(), Some(0));
}

/// Starts heft with `--user nobody` in a directory nobody owns; returns it with nobody's uid and gid.
fn start_as_nobody_in_its_own_dir() -> Option<(Agent, u32, u32)> {
    nobody()?;
    let (uid, gid) = passwd_ids("nobody").unwrap();
    let dir = temp_dir("ops-owned");
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
    let port = free_port();
    let a = spawn_in(
        dir,
        "127.0.0.1",
        port,
        Some(STATE),
        &["--user", "nobody"],
        &[],
    );
    a.wait_listening();
    Some((a, uid, gid))
}

#[test]
fn drops_to_the_user_s_own_group_and_saves_signals_in_a_directory_it_owns() {
    if skip_under_runner(READS_PROC_STATUS) {
        return;
    }
    let Some((a, uid, user_gid)) = start_as_nobody_in_its_own_dir() else {
        return;
    };
    assert_dropped(a.pid(), uid, user_gid);
    assert!(!a.log().contains("not writable"), "{}", a.log());
    a.signal(libc::SIGUSR2);
    a.expect_reply("down ready 77% maxconn:300\n");
    assert!(
        wait_for(LIMIT, || a.state_text().contains("\"DOWN\"")),
        "{}",
        a.log()
    );
    assert_eq!(a.stop(), Some(0));
}

/// A deploy script run as root with a common umask (027) must not leave a
/// state file the agent's user cannot read: `heft set` says "written and
/// signalled" (exit 0), so the agent must then serve what it was told.
#[test]
fn heft_set_as_root_under_umask_027_leaves_a_file_the_agent_can_read() {
    let Some((a, _, _)) = start_as_nobody_in_its_own_dir() else {
        return;
    };
    assert_eq!(a.probe(), "up ready 77% maxconn:300\n");
    let out = heft_command(&["sh", "-c", "umask 027; exec \"$0\" \"$@\""])
        .args(["set", "down", "--reason", "deploying"])
        .env_clear()
        .env("HEFT_STATE_FILE", &a.state)
        .env("HEFT_PID_FILE", &a.pid_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "heft set: {out:?}");
    a.expect_reply("down ready 77% maxconn:300 #deploying\n");
}

#[test]
fn binds_a_port_below_1024_as_root_then_drops() {
    if skip_under_runner(READS_PROC_STATUS) {
        return;
    }
    let Some((uid, gid)) = nobody() else { return };
    let port = free_low_port();
    let a = spawn_in(
        temp_dir("ops"),
        "127.0.0.1",
        port,
        Some(STATE),
        &["--user", "nobody", "--group", "nogroup"],
        &[],
    );
    a.wait_listening();
    assert_eq!(a.probe(), "up ready 77% maxconn:300\n");
    assert_dropped(a.pid(), uid, gid);
    wait_log(&a, &format!("listening on 127.0.0.1:{port}"));
    assert_eq!(a.stop(), Some(0));
}

#[test]
fn an_unknown_user_or_group_stops_start_up_with_exit_100() {
    assert!(is_root());
    let cases: [(&[&str], &str); 4] = [
        (
            &["--user", "heft-no-such-user"],
            "expected a user in /etc/passwd",
        ),
        (
            &["--user", "nobody", "--group", "heft-no-such-group"],
            "expected a group in /etc/group",
        ),
        (
            &["--group", "heft-no-such-group"],
            "expected a group in /etc/group",
        ),
        // A number that is no uid in /etc/passwd is taken only with a group.
        (&["--user", "4294967"], "expected a user in /etc/passwd"),
    ];
    for (extra, want) in cases {
        let (code, err) = failing_start(extra, &[]);
        assert_eq!(code, 100, "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

/// README, exit code 100: "one line on stderr names the bad value and where it came from".
#[test]
fn an_unknown_user_is_named_with_its_flag_or_variable() {
    let (code, err) = failing_start(&["--user", "heft-no-such-user"], &[]);
    assert_eq!(code, 100, "{err}");
    assert!(
        err.contains("--user") && err.contains("heft-no-such-user"),
        "names neither the flag nor the value: {err}"
    );
    let (code, err) = failing_start(&[], &[("HEFT_GROUP", "heft-no-such-group")]);
    assert_eq!(code, 100, "{err}");
    assert!(
        err.contains("HEFT_GROUP") && err.contains("heft-no-such-group"),
        "names neither the variable nor the value: {err}"
    );
}

/// NoNewPrivs is set at start-up, as root too; after `--user` the
/// capability bounding set is empty, while root without `--user` keeps the
/// bounding set it was given (its exec'd checks may need capabilities).
#[test]
fn no_new_privileges_and_an_empty_bounding_set_after_dropping() {
    if skip_under_runner(READS_PROC_STATUS) {
        return;
    }
    let a = Agent::start(Some(STATE), &[]);
    assert_eq!(proc_status_field(a.pid(), "NoNewPrivs:"), "1", "as root");
    let own = proc_status_field(std::process::id() as i32, "CapBnd:");
    assert_eq!(proc_status_field(a.pid(), "CapBnd:"), own, "as root");
    assert_eq!(a.stop(), Some(0));
    let Some((uid, gid)) = nobody() else { return };
    let a = Agent::start(Some(STATE), &["--user", "nobody", "--group", "nogroup"]);
    assert_dropped(a.pid(), uid, gid);
    assert_eq!(proc_status_field(a.pid(), "NoNewPrivs:"), "1");
    assert_eq!(proc_status_field(a.pid(), "CapBnd:"), "0000000000000000");
    assert_eq!(a.probe(), "up ready 77% maxconn:300\n");
    assert_eq!(a.stop(), Some(0));
}
