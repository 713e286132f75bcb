//! heft on a host where another local user plants links, FIFOs and files
//! next to the state file and the pid file, where signals, `heft set` and
//! edits race, and where memory is short: nothing but the state file and
//! the pid file is ever written, nothing blocks, no update is lost.

mod common;
use common::state::*;
use common::users::*;
use common::*;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use heft::model::state::Status;

/// A root-only file that must come out of every test as it went in.
struct Victim {
    path: PathBuf,
}

/// What a victim file starts as.
const SECRET: &str = "root:SECRET:0:0\n";

impl Victim {
    /// Writes the victim in `dir`: root's, mode 0600.
    fn new(dir: &Path) -> Victim {
        let path = dir.join("victim");
        std::fs::write(&path, SECRET).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        Victim { path }
    }

    /// Fails unless content, mode and owner are as they were.
    fn check(&self, what: &str) {
        let m = std::fs::metadata(&self.path).unwrap();
        let text = std::fs::read_to_string(&self.path).unwrap();
        assert_eq!(text, SECRET, "{what}: victim's content");
        assert_eq!(m.mode() & 0o7777, 0o600, "{what}: victim's mode");
        assert_eq!((m.uid(), m.gid()), (0, 0), "{what}: victim's owner");
    }
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
}

/// The next pids the kernel will hand out, as an attacker reads them.
fn next_pids(n: u32) -> std::ops::Range<u32> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .map(|s| s.trim().parse().unwrap())
        .unwrap_or(1000);
    last + 1..last + 1 + n
}

/// Plants symbolic links to `victim` and FIFOs at every name a temporary
/// file of heft's might have: fixed names, pid-based names for the next
/// pids, and a spray of names in heft's own pattern. Returns how many.
fn plant(dir: &Path, name: &str, victim: &Path) -> usize {
    let mut names = vec![format!("{name}.tmp"), format!(".{name}.tmp")];
    names.extend(next_pids(300).map(|p| format!("{name}.set-{p}.tmp")));
    for i in 0..200u64 {
        let r = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ std::process::id() as u64;
        names.push(format!(".{name}.{r:016x}.tmp"));
    }
    for (i, n) in names.iter().enumerate() {
        let p = dir.join(n);
        if i % 2 == 0 {
            std::os::unix::fs::symlink(victim, &p).unwrap();
        } else {
            mkfifo(&p);
        }
    }
    names.len()
}

/// Fails unless every planted name is still there, as planted.
fn planted_untouched(dir: &Path, name: &str, count: usize) {
    let left = file_names(dir)
        .into_iter()
        .filter(|n| n.contains(name) && n.ends_with(".tmp"))
        .count();
    assert_eq!(left, count, "{:?}", file_names(dir));
}

/// A directory owned by nobody, as a state directory is, with `STATE` in it (nobody's).
fn nobody_dir(tag: &str) -> Option<(PathBuf, PathBuf)> {
    let (uid, gid) = nobody()?;
    let root = temp_dir(tag);
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = root.join("etcheft");
    std::fs::create_dir(&dir).unwrap();
    let state = dir.join("state.json");
    std::fs::write(&state, STATE).unwrap();
    for p in [&dir, &state] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    }
    Some((root, state))
}

#[test]
fn heft_set_as_root_writes_only_the_state_file_whatever_is_planted() {
    let Some((root, state)) = nobody_dir("hostile-set") else {
        return;
    };
    let _c = Cleanup(root.clone());
    let victim = Victim::new(&root);
    let dir = state.parent().unwrap();
    let n = plant(dir, "state.json", &victim.path);
    let sf = state.to_str().unwrap();
    for status in ["maint", "drain", "up"] {
        let (code, _, err) = run_heft_for(&["set", status, "--state-file", sf], &[], SECS5);
        assert_eq!(code, Some(0), "{err}");
        victim.check(status);
    }
    assert_eq!(
        top_of(&std::fs::read_to_string(&state).unwrap()).0,
        Status::Up
    );
    // The new file keeps nobody's ownership, so the agent can go on replacing it.
    let m = std::fs::metadata(&state).unwrap();
    assert_eq!(m.uid(), passwd_ids("nobody").unwrap().0);
    planted_untouched(dir, "state.json", n);
}

/// The agent as root (no --user) and as nobody, with links and FIFOs at
/// every temporary name: signals are saved, the victim is untouched. Names
/// in heft's own pattern found at start-up are crash leftovers: removed
/// (the names, not what they point to).
#[test]
fn the_agent_writes_only_the_state_file_whatever_is_planted() {
    for user in [None, Some("nobody")] {
        let Some((root, state)) = nobody_dir("hostile-agent") else {
            return;
        };
        let _c = Cleanup(root.clone());
        let victim = Victim::new(&root);
        let dir = state.parent().unwrap().to_path_buf();
        plant(&dir, "state.json", &victim.path);
        let mut args = vec!["--state-file", state.to_str().unwrap()];
        if let Some(u) = user {
            args.extend(["--user", u]);
        }
        let a = Agent::start(None, &args);
        a.expect_reply("up ready 77% maxconn:300\n");
        // What is left is what does not look like heft's own; plant again.
        let left = temp_files(&dir);
        assert!(
            left.iter()
                .all(|n| !n.starts_with(".state.json.") || n.len() != 32),
            "{left:?}"
        );
        assert!(left.contains(&"state.json.tmp".to_string()), "{left:?}");
        victim.check("leftovers removed");
        for n in &left {
            std::fs::remove_file(dir.join(n)).unwrap();
        }
        let n = plant(&dir, "state.json", &victim.path);
        for (sig, status) in [
            (libc::SIGUSR2, "DOWN"),
            (libc::SIGUSR1, "UP"),
            (libc::SIGUSR2, "DOWN"),
        ] {
            a.signal(sig);
            let ok = wait_for(SECS5, || {
                std::fs::read_to_string(&state).unwrap().contains(status)
            });
            assert!(ok, "{user:?}: never saved {status}; log:\n{}", a.log());
        }
        victim.check(&format!("agent as {user:?}"));
        planted_untouched(&dir, "state.json", n);
        assert_eq!(a.stop(), Some(0));
    }
}

/// A link, a FIFO or another user's file at the pid file's name: the agent
/// exits 111 at once with a message, touches nothing, leaves what was there.
#[test]
fn the_pid_file_is_never_written_through_a_link_or_into_a_fifo() {
    let dir = temp_dir("hostile-pid");
    let _c = Cleanup(dir.clone());
    let victim = Victim::new(&dir);
    let pid = dir.join("heft.pid");
    let p = pid.to_str().unwrap();
    let nobody_file = |path: &Path| {
        std::fs::write(path, "1\n").unwrap();
        if let Some((uid, gid)) = nobody() {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        }
    };
    type Plant = fn(&Path, &Path);
    let plants: [(&str, Plant, &str); 3] = [
        (
            "link",
            |p, v| std::os::unix::fs::symlink(v, p).unwrap(),
            "ELOOP",
        ),
        ("fifo", |p, _| mkfifo(p), "not a regular file (a FIFO)"),
        (
            "hard link",
            |p, v| std::fs::hard_link(v, p).unwrap(),
            "other links",
        ),
    ];
    for (what, plant, says) in plants {
        let _ = std::fs::remove_file(&pid);
        plant(&pid, &victim.path);
        let start = Instant::now();
        let (code, err) = failing_start(&["--pid-file", p], &[]);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{what}: took {:?}",
            start.elapsed()
        );
        assert_eq!(code, 111, "{what}: {err}");
        assert!(
            err.contains("pid file") && err.contains(says),
            "{what}: {err}"
        );
        victim.check(what);
    }
    let _ = std::fs::remove_file(&pid);
    nobody_file(&pid);
    if nobody().is_some() {
        let (code, err) = failing_start(&["--pid-file", p], &[]);
        assert_eq!(code, 111, "{err}");
        assert!(err.contains("another user's"), "{err}");
        assert_eq!(std::fs::read_to_string(&pid).unwrap(), "1\n");
    }
}

/// A stale pid file of ours (after kill -9) is taken over; a second agent
/// with the same pid file is refused while the first holds it.
#[test]
fn a_stale_pid_file_is_taken_over_a_held_one_is_not() {
    let mut a = Agent::start(Some(STATE), &[]);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(a.pid(), libc::SIGKILL) };
    a.wait_exit(SECS5);
    assert!(a.pid_file.exists());
    let pid_file = a.pid_file.to_str().unwrap().to_string();
    let (code, _, err) = a.heft(&["set", "down"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no agent holds it"), "{err}");
    let b = Agent::start(Some(STATE), &["--pid-file", &pid_file]);
    let text = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(text, format!("{}\n", b.pid()));
    let (code, err) = failing_start(&["--pid-file", &pid_file], &[]);
    assert_eq!(code, 111, "{err}");
    assert!(err.contains("a running agent holds it"), "{err}");
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), text);
    let (code, _, err) = b.heft(&["set", "maint", "--pid-file", &pid_file]);
    assert_eq!(code, 0, "{err}");
    b.expect_reply("maint 77% maxconn:300\n");
    assert_eq!(b.stop(), Some(0));
    assert!(!Path::new(&pid_file).exists(), "pid file left behind");
}

/// A pid file naming a process that is not a heft agent holding it (a
/// `sleep`): `heft set` writes the file, does not signal, says why, exits 1.
#[test]
fn heft_set_never_signals_a_foreign_process() {
    let dir = temp_dir("hostile-foreign");
    let _c = Cleanup(dir.clone());
    let state = dir.join("s2.json");
    std::fs::write(&state, STATE).unwrap();
    let mut sleep = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .unwrap();
    let fake = dir.join("fake.pid");
    std::fs::write(&fake, format!("{}\n", sleep.id())).unwrap();
    let args = [
        "set",
        "drain",
        "--state-file",
        state.to_str().unwrap(),
        "--pid-file",
        fake.to_str().unwrap(),
    ];
    let (code, _, err) = run_heft_for(&args, &[], SECS5);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("no agent holds it") && err.contains("not told"),
        "{err}"
    );
    assert_eq!(
        top_of(&std::fs::read_to_string(&state).unwrap()).0,
        Status::Drain
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        sleep.try_wait().unwrap().is_none(),
        "the foreign process died"
    );
    // A foreign process that locks the file but is not the pid named in it: not signalled either.
    let a = Agent::start(Some(STATE), &[]);
    let args = ["set", "drain", "--pid-file", a.pid_file.to_str().unwrap()];
    std::fs::write(&a.pid_file, format!("{}\n", sleep.id())).unwrap();
    let (code, _, err) = a.heft(&args);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("does not name {}", a.pid())), "{err}");
    assert!(
        sleep.try_wait().unwrap().is_none(),
        "the foreign process died"
    );
    let _ = sleep.kill();
    let _ = sleep.wait();
}

/// A FIFO as the state file: the agent serves FAIL with the reason at once,
/// keeps answering and stops on SIGTERM; `heft set` refuses within a second.
#[test]
fn a_fifo_state_file_blocks_nothing() {
    let dir = temp_dir("hostile-fifo");
    mkfifo(&dir.join("state.json"));
    let a = spawn_in(dir, "127.0.0.1", free_port(), None, &[], &[]);
    a.wait_listening();
    let reason = "not a regular file (a FIFO)";
    for i in 1..=3 {
        let start = Instant::now();
        let reply = a.probe();
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
        assert!(is_fail_reply(&reply, Some(reason)), "{reply:?}");
        a.signal(libc::SIGHUP);
        wait_for(SECS5, || a.log().matches("SIGHUP").count() == i);
    }
    a.signal(libc::SIGUSR2);
    a.expect_reply("down ready 100%\n");
    let start = Instant::now();
    let (code, _, err) = a.heft(&["set", "up"]);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(code, 111, "{err}");
    assert!(err.contains(reason), "{err}");
    let start = Instant::now();
    assert_eq!(a.stop_with(libc::SIGTERM, Duration::from_secs(1)), Some(0));
    assert!(start.elapsed() < Duration::from_secs(1));
}

/// A FIFO as a `file` rule's source: probes are answered, SIGTERM works.
#[cfg(feature = "feedback")]
#[test]
fn a_fifo_file_rule_blocks_nothing() {
    let dir = temp_dir("hostile-fifo-rule");
    let fifo = dir.join("queue");
    mkfifo(&fifo);
    let fb = dir.join("feedback.json");
    let rule = format!(
        r#"{{"interval_ms":100,"rules":[{{"metric":"file","path":"{}","enter":5}}]}}"#,
        fifo.display()
    );
    std::fs::write(&fb, rule).unwrap();
    let a = spawn_in(
        dir,
        "127.0.0.1",
        free_port(),
        Some(STATE),
        &["--feedback", fb.to_str().unwrap()],
        &[],
    );
    a.wait_listening();
    for _ in 0..5 {
        let start = Instant::now();
        assert_eq!(a.probe(), "up ready 77% maxconn:300\n");
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(150));
    }
    let start = Instant::now();
    assert_eq!(a.stop_with(libc::SIGTERM, Duration::from_secs(1)), Some(0));
    assert!(start.elapsed() < Duration::from_secs(1));
}

/// SIGUSR1, SIGUSR2, then at once `heft set maint`, 50 times: the file and
/// the reply always end as `set` wrote them.
#[test]
fn set_right_after_signals_always_wins() {
    let a = Agent::start(Some(r#"{"status":"UP","weight":50}"#), &[]);
    for round in 0..50 {
        a.signal(libc::SIGUSR1);
        a.signal(libc::SIGUSR2);
        let (code, _, err) = a.heft(&["set", "maint", "--reason", &format!("r{round}")]);
        assert_eq!(code, 0, "round {round}: {err}");
        // Past the pending write's 100 ms gap.
        std::thread::sleep(Duration::from_millis(150));
        let reply = a.probe();
        assert!(
            reply.starts_with("maint 50%"),
            "round {round}: {reply:?}; log:\n{}",
            a.log()
        );
        let text = a.state_text();
        assert_eq!(
            top_of(&text),
            (Status::Maint, 50, None, format!("r{round}")),
            "round {round}"
        );
        a.heft(&["set", "up"]);
    }
}

/// A signal, then at once an operator's edit (atomic, or in place with the
/// same size), with or without SIGHUP, 50 times: the edit always wins, and
/// the log says the signal's change was superseded.
#[test]
fn an_edit_right_after_a_signal_always_wins() {
    let a = Agent::start(Some(r#"{"status":"UP","weight":50}"#), &[]);
    for round in 0..50 {
        let w = 10 + round;
        // Longer than any file heft writes here, so an edit in place needs no truncation.
        let text = format!(r#"{{"status":"UP","weight":{w}}}{}"#, " ".repeat(12));
        a.signal(libc::SIGUSR2);
        match round % 3 {
            0 => write_atomic(&a.state, &text),
            // Same inode, same size, one write(2) over the old bytes: only the content tells.
            _ => {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&a.state)
                    .unwrap();
                f.write_all(text.as_bytes()).unwrap();
            }
        }
        if round % 2 == 0 {
            a.signal(libc::SIGHUP);
        }
        std::thread::sleep(Duration::from_millis(150));
        // Whichever came first, the edit or the signal's write, the file
        // ends as the edit: the signal never overwrites it.
        assert_eq!(a.state_text(), text, "round {round}; log:\n{}", a.log());
        if round % 2 == 1 {
            // Without a SIGHUP, heft serves the edit only when its write came
            // after the edit and found the file changed; an operator's SIGHUP
            // after the edit makes it the reply either way.
            a.signal(libc::SIGHUP);
        }
        a.expect_reply(&format!("up ready {w}%\n"));
    }
    assert!(
        a.log().contains("the signal's change is superseded"),
        "{}",
        a.log()
    );
}

/// `heft set --service` on a file whose list is full exits 100 and leaves
/// the file byte for byte as it was; the agent is not signalled.
#[test]
fn a_full_services_list_is_refused_and_the_file_untouched() {
    let services: Vec<String> = (0..16)
        .map(|i| format!(r#""s{i}":{{"status":"UP"}}"#))
        .collect();
    let text = format!(r#"{{"status":"UP","services":{{{}}}}}"#, services.join(","));
    let a = Agent::start(Some(&text), &[]);
    let before = std::fs::metadata(&a.state).unwrap().ino();
    let (code, _, err) = a.heft(&["set", "drain", "--service", "s17"]);
    assert_eq!(code, 100, "{err}");
    assert!(err.contains("too many services"), "{err}");
    assert_eq!(a.state_text(), text);
    assert_eq!(
        std::fs::metadata(&a.state).unwrap().ino(),
        before,
        "the file was replaced"
    );
    assert!(!a.log().contains("SIGHUP"), "{}", a.log());
    // An existing service still changes.
    let (code, _, err) = a.heft(&["set", "drain", "--service", "s15"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(service_of(&a.state_text(), "s15").0, Status::Drain);
    assert!(a.probe_with(b"s15\n").contains("drain"));
}

/// VmPeak (kB) of an agent started with `slots` connection slots.
fn vm_peak(slots: &str) -> u64 {
    let a = Agent::start(Some(STATE), &["--slots", slots]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", a.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmPeak:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Too little memory for the slots table (an RLIMIT_AS between what one
/// slot and 1024 slots need): exit 111 with a message, no pid file; the same
/// limit with one slot starts, so the limit is what failed.
#[test]
fn start_up_out_of_memory_exits_111_without_a_pid_file() {
    if skip_under_runner("RLIMIT_AS would limit qemu, not heft") {
        return;
    }
    let (one, all) = (vm_peak("1"), vm_peak("1024"));
    if all < one + 64 {
        // glibc's heap keeps slack that holds the whole table (the host
        // build); the static musl build, which ci.sh also tests, maps it.
        println!("skipped: 1024 slots take no more address space than one ({one} kB, {all} kB)");
        return;
    }
    let limit = format!("ulimit -v {}; exec \"$0\" \"$@\"", (one + all) / 2);
    let mut a = Agent::spawn(
        Some(STATE),
        &["--slots", "1024"],
        &[],
        &["sh", "-c", &limit],
    );
    let code = a.wait_exit(Duration::from_secs(5));
    assert_eq!(code, Some(111), "log:\n{}", a.log());
    assert!(
        a.log().contains("allocating the connection slots: ENOMEM"),
        "{}",
        a.log()
    );
    assert!(!a.pid_file.exists(), "pid file left behind");
    let b = Agent::spawn(Some(STATE), &["--slots", "1"], &[], &["sh", "-c", &limit]);
    b.wait_listening();
    assert_eq!(b.probe(), "up ready 77% maxconn:300\n");
    assert_eq!(b.stop(), Some(0));
}

/// A state file that is a symlink in a directory only root may write (a
/// read-only root's `/etc/heft/state.json -> /data/...`) is followed: signals
/// and `heft set` write the target, in the target's directory; the link stays.
#[test]
fn a_link_in_a_root_only_directory_is_followed() {
    let dir = temp_dir("hostile-link");
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    let target = data.join("state.json");
    std::fs::write(&target, STATE).unwrap();
    let etc = dir.join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let link = etc.join("state.json");
    std::os::unix::fs::symlink("../data/state.json", &link).unwrap();
    let a = spawn_in(
        dir.clone(),
        "127.0.0.1",
        free_port(),
        None,
        &["--state-file", link.to_str().unwrap()],
        &[],
    );
    a.wait_listening();
    a.expect_reply("up ready 77% maxconn:300\n");
    a.signal(libc::SIGUSR2);
    let ok = wait_for(SECS5, || {
        std::fs::read_to_string(&target).unwrap().contains("DOWN")
    });
    assert!(ok, "{}", a.log());
    let (code, _, err) = a.heft(&["set", "maint", "--state-file", link.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        top_of(&std::fs::read_to_string(&target).unwrap()).0,
        Status::Maint
    );
    a.expect_reply("maint 77% maxconn:300\n");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(temp_files(&data).is_empty() && temp_files(&etc).is_empty());
}

/// A symlink another user planted as the state file (in a directory that
/// user may write) is never followed by root: the agent serves FAIL saying
/// why and writes nothing; `heft set` exits 111; the target is untouched.
#[test]
fn a_link_in_a_directory_others_can_write_is_refused() {
    let Some((root, state)) = nobody_dir("hostile-planted") else {
        return;
    };
    let victim = Victim::new(&root);
    std::fs::remove_file(&state).unwrap();
    std::os::unix::fs::symlink(&victim.path, &state).unwrap();
    let a = spawn_in(
        root.clone(),
        "127.0.0.1",
        free_port(),
        None,
        &["--state-file", state.to_str().unwrap()],
        &[],
    );
    a.wait_listening();
    let why = "a symlink in a directory others can write";
    assert!(is_fail_reply(&a.probe(), Some(why)), "{}", a.probe());
    a.signal(libc::SIGUSR2);
    a.expect_reply("down ready 100%\n");
    let (code, _, err) = a.heft(&["set", "up", "--state-file", state.to_str().unwrap()]);
    assert_eq!(code, 111, "{err}");
    assert!(err.contains("ENOLINK") || err.contains(why), "{err}");
    std::thread::sleep(Duration::from_millis(200));
    victim.check("planted link");
    assert!(std::fs::symlink_metadata(&state)
        .unwrap()
        .file_type()
        .is_symlink());
}

/// When a signal's write fails, SIGHUP does not undo the signal while the
/// file is unchanged; an edit made since does win.
#[test]
fn sighup_keeps_an_unsaved_signal_until_the_file_changes() {
    let Some(_) = nobody() else { return };
    // Root's directory and file: nobody can write neither.
    let a = Agent::start(Some(STATE), &["--user", "nobody"]);
    a.signal(libc::SIGUSR2);
    a.expect_reply("down ready 77% maxconn:300\n");
    wait_log(&a, "error: writing");
    a.signal(libc::SIGHUP);
    wait_log(&a, "keeping it");
    assert_eq!(a.probe(), "down ready 77% maxconn:300\n");
    assert_eq!(a.state_text(), STATE);
    write_atomic(&a.state, r#"{"status":"UP","weight":33}"#);
    a.signal(libc::SIGHUP);
    a.expect_reply("up ready 33%\n");
}

/// hapgent's ansible layout: `/etc/hapgent` root:nogroup 0755 (not the
/// agent's to write), `state.json` root:nogroup 0664, the agent as
/// nobody:nogroup with the HAPGENT_* variables. Signals are saved by
/// rewriting the file in place (same inode, owner and mode), SIGHUP keeps
/// them, and root's `heft set` keeps the file writable for the agent.
#[test]
fn hapgent_layout_saves_signals_in_place() {
    let Some((_, nogroup)) = nobody() else { return };
    let dir = temp_dir("hapgent");
    let etc = dir.join("etc-hapgent");
    std::fs::create_dir(&etc).unwrap();
    let state = etc.join("state.json");
    std::fs::write(&state, r#"{"status":"UP","weight":77}"#).unwrap();
    std::os::unix::fs::chown(&etc, Some(0), Some(nogroup)).unwrap();
    std::os::unix::fs::chown(&state, Some(0), Some(nogroup)).unwrap();
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o664)).unwrap();
    let port = free_port();
    let p = port.to_string();
    let env = [
        ("HAPGENT_IP", "127.0.0.1"),
        ("HAPGENT_PORT", p.as_str()),
        ("HAPGENT_STATE_FILE", state.to_str().unwrap()),
    ];
    let argv = [
        heft_bin().into_os_string(),
        "--user".into(),
        "nobody".into(),
        "--group".into(),
        "nogroup".into(),
    ];
    let pid = dir.join("heft.pid");
    let a = launch(&argv, &env, dir.clone(), port, state.clone(), pid);
    a.wait_listening();
    assert!(!a.log().contains("not writable"), "{}", a.log());
    let ino = std::fs::metadata(&state).unwrap().ino();
    let file_is = |status: &str| {
        let ok = wait_for(SECS5, || {
            std::fs::read_to_string(&state).unwrap().contains(status)
        });
        assert!(ok, "file never said {status}; log:\n{}", a.log());
        let m = std::fs::metadata(&state).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, nogroup, 0o664));
        m.ino()
    };
    a.signal(libc::SIGUSR2);
    a.expect_reply("down ready 77%\n");
    assert_eq!(file_is("DOWN"), ino, "not rewritten in place");
    a.signal(libc::SIGHUP);
    wait_log(&a, "SIGHUP");
    a.expect_reply("down ready 77%\n");
    let (code, _, err) = run_heft(
        &["set", "up"],
        &[("HAPGENT_STATE_FILE", state.to_str().unwrap())],
    );
    assert_eq!(code, 0, "{err}");
    file_is("UP");
    a.signal(libc::SIGHUP);
    a.expect_reply("up ready 77%\n");
    a.signal(libc::SIGUSR2);
    file_is("DOWN");
    a.signal(libc::SIGUSR1);
    file_is("UP");
    assert!(!a.log().contains("error"), "{}", a.log());
    assert!(temp_files(&etc).is_empty(), "{:?}", file_names(&etc));
}

/// Start-up warns when signals cannot be saved (neither the file nor its
/// directory writable), also when heft is started as that user without --user.
#[test]
fn start_up_warns_when_signals_cannot_be_saved_without_user() {
    let Some((uid, gid)) = nobody() else { return };
    let own = temp_dir("warn-pid");
    let _c = Cleanup(own.clone());
    std::os::unix::fs::chown(&own, Some(uid), Some(gid)).unwrap();
    let pid = own.join("heft.pid");
    let (u, g) = (format!("--reuid={uid}"), format!("--regid={gid}"));
    let wrapper = ["setpriv", u.as_str(), g.as_str(), "--clear-groups", "--"];
    let a = Agent::spawn(
        Some(STATE),
        &["--pid-file", pid.to_str().unwrap()],
        &[],
        &wrapper,
    );
    a.wait_listening();
    wait_log(&a, "not writable by this user");
}
