//! What the agent answers, through its real binary on 127.0.0.1: the exact
//! reply for every status, bad and unreadable state files at start-up,
//! reasons that could break the reply line, payloads with and without a
//! newline, how connections are read, answered and closed (slots, deadlines,
//! descriptor exhaustion), the ready window, and the start-up configuration
//! (flags, variables, hapgent's variables, bad usage, a taken port).

mod common;
use common::http::*;
use common::prom::*;
use common::state::*;
use common::*;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Reads from `s` until a newline, EOF or error; returns what came.
fn read_line(s: &mut TcpStream, limit: Duration) -> String {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut b = [0u8; 256];
    while !out.contains(&b'\n') {
        match s.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&b[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What one `read` on `s` gives within `limit`: Some(0) for EOF, Some(n) for
/// data, None when nothing came (the connection is still open and silent).
fn poll_read(s: &mut TcpStream, limit: Duration) -> Option<usize> {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut b = [0u8; 256];
    match s.read(&mut b) {
        Ok(n) => Some(n),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        Err(e) => panic!("read: {e}"),
    }
}

/// Waits up to `limit` for the peer to have closed `s` completely (heft
/// half-closes after its reply, so EOF alone proves nothing): writes a byte
/// every 20 ms until a write fails, which happens once the peer's socket is
/// gone (its kernel resets the connection). Returns how long that took.
fn wait_closed(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if s.write(b"z").is_err() {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Probes with `payload` and returns the reply and how long it took.
fn timed(a: &Agent, payload: &[u8]) -> (String, Duration) {
    let t = Instant::now();
    let r = a.probe_with(payload);
    (r, t.elapsed())
}

/// Every status, in any letter case, gives its exact reply; weight defaults
/// to 100, maxconn is sent only when the file has it, the reason only for
/// DOWN, FAIL and STOPPED.
#[test]
fn each_status_gives_its_exact_reply() {
    let r64 = "r".repeat(64);
    let long_reason = format!(r#"{{"status":"STOPPED","reason":"{r64}"}}"#);
    let long_reply = format!("stopped ready 100% #{r64}\n");
    // Exactly 4096 bytes is still accepted.
    let mut full = String::from(r#"{"status":"DRAIN","weight":3}"#);
    full.push_str(&" ".repeat(4096 - full.len()));
    let cases: &[(&str, &str)] = &[
        (STATE, "up ready 77% maxconn:300\n"),
        (r#"{"status":"READY","weight":77,"maxconn":300}"#, "up ready 77% maxconn:300\n"),
        (r#"{"status":"DRAIN","weight":77,"maxconn":300}"#, "up drain 77% maxconn:300\n"),
        (r#"{"status":"MAINT","weight":77,"maxconn":300}"#, "maint 77% maxconn:300\n"),
        (
            r#"{"status":"DOWN","weight":77,"maxconn":300,"reason":"deploying 1.4.2"}"#,
            "down ready 77% maxconn:300 #deploying 1.4.2\n",
        ),
        (
            r#"{"status":"FAIL","weight":77,"maxconn":300,"reason":"disk full"}"#,
            "fail ready 77% maxconn:300 #disk full\n",
        ),
        (
            r#"{"status":"STOPPED","weight":77,"maxconn":300,"reason":"bye"}"#,
            "stopped ready 77% maxconn:300 #bye\n",
        ),
        // Any letter case.
        (r#"{"status":"up"}"#, "up ready 100%\n"),
        (r#"{"status":"Ready"}"#, "up ready 100%\n"),
        (r#"{"status":"dRaIn"}"#, "up drain 100%\n"),
        (r#"{"status":"Maint"}"#, "maint 100%\n"),
        (r#"{"status":"down"}"#, "down ready 100%\n"),
        (r#"{"status":"fail"}"#, "fail ready 100%\n"),
        (r#"{"status":"Stopped"}"#, "stopped ready 100%\n"),
        // Defaults and bounds.
        (r#"{"status":"UP"}"#, "up ready 100%\n"),
        (r#"{"status":"UP","weight":0,"maxconn":0}"#, "up ready 0% maxconn:0\n"),
        (r#"{"status":"UP","weight":255,"maxconn":65535}"#, "up ready 255% maxconn:65535\n"),
        // The reason only for down statuses.
        (r#"{"status":"UP","reason":"not sent"}"#, "up ready 100%\n"),
        (r#"{"status":"DRAIN","reason":"not sent"}"#, "up drain 100%\n"),
        (r#"{"status":"MAINT","reason":"not sent"}"#, "maint 100%\n"),
        (r#"{"status":"READY","reason":"not sent"}"#, "up ready 100%\n"),
        (&long_reason, &long_reply),
        // hapgent's files: unknown fields, any field order, whitespace.
        (
            "{\n  \"maxconn\": 12,\n  \"comment\": \"x\",\n  \"n\": [1, 2],\n  \"status\": \"UP\"\n}\n",
            "up ready 100% maxconn:12\n",
        ),
        (&full, "up drain 3%\n"),
    ];
    for (file, want) in cases {
        let a = Agent::start(Some(file), &[]);
        assert_eq!(a.probe(), *want, "file {file:?}");
        assert_eq!(a.probe_with(b"\n"), *want, "file {file:?}, payload \\n");
        assert!(
            error_lines(&a.log()).is_empty(),
            "file {file:?}: {}",
            a.log()
        );
    }
}

/// Each bad file, at start-up: heft serves `fail ready 100% #state file: ...`,
/// logs the error with the path, keeps serving, and recovers on SIGHUP once
/// the file is fixed.
#[test]
fn bad_state_files_at_startup_serve_fail_and_keep_running() {
    for (what, content, reason) in bad_files() {
        let a = Agent::start(content.as_deref(), &[]);
        let (r1, r2) = (a.probe(), a.probe_with(b"\n"));
        assert!(is_fail_reply(&r1, reason), "{what}: {r1:?}");
        assert_eq!(r1, r2, "{what}");
        // What the reply says is what the log says.
        let reason = r1["fail ready 100% #state file: ".len()..]
            .trim_end()
            .to_string();
        let path = a.state.display().to_string();
        let logged = a.log();
        assert!(
            logged.lines().any(|l| l.contains("error:")
                && l.contains(&format!("state file {path}"))
                && l.contains(&reason[..reason.len().min(40)])),
            "{what}: error not logged with the path:\n{logged}"
        );
        a.reload(STATE, "up ready 77% maxconn:300\n");
    }
}

/// The state file cannot be read because its path is a directory (root reads
/// any file whatever its mode, so chmod 000 proves nothing here): at start-up
/// and on SIGHUP.
#[test]
fn unreadable_state_file_serves_fail() {
    let elsewhere = temp_dir("unreadable");
    // A later --state-file beats the harness's.
    let a = Agent::start(None, &["--state-file", elsewhere.to_str().unwrap()]);
    assert_eq!(a.probe(), fail_reply("unreadable EISDIR"));
    let logged = format!(
        "error: state file {}: unreadable EISDIR",
        elsewhere.display()
    );
    assert!(a.log().contains(&logged), "{}", a.log());
    drop(a);
    let _ = std::fs::remove_dir_all(&elsewhere);
    let a = Agent::start(Some(STATE), &[]);
    std::fs::remove_file(&a.state).unwrap();
    std::fs::create_dir(&a.state).unwrap();
    a.signal(libc::SIGHUP);
    a.expect_reply(&fail_reply("unreadable EISDIR"));
    std::fs::remove_dir(&a.state).unwrap();
    a.reload(r#"{"status":"DRAIN"}"#, "up drain 100%\n");
}

/// A missing state file or directory at start-up: the log names the path,
/// what chose it and what to create; the reply says which is missing. Once
/// the directory exists, a signal writes the file.
#[test]
fn a_missing_state_file_or_directory_says_what_to_create() {
    let dir = temp_dir("fresh");
    let etc = dir.join("etc");
    let state = etc.join("state.json");
    let (sf, d) = (state.to_str().unwrap(), etc.to_str().unwrap());
    let a = Agent::start(None, &["--state-file", sf]);
    assert_eq!(
        a.probe(),
        fail_reply("unreadable ENOENT, no directory (see the log)")
    );
    // (The line is cut at 256 bytes: this temporary path is longer than most.)
    let want = format!(
        "error: state file {sf} (from --state-file): unreadable ENOENT, no directory {d}; create it \
         (mkdir -p {d}, writable by the agent) or point --state-file"
    );
    assert!(a.log().contains(&want), "{}\nwanted {want}", a.log());
    std::fs::create_dir(&etc).unwrap();
    a.signal(libc::SIGUSR2);
    a.expect_reply("down ready 100%\n");
    assert!(wait_for(SECS5, || exists(&state)), "{}", a.log());
    drop(a);
    // The directory exists, the file does not.
    std::fs::remove_file(&state).unwrap();
    let a = Agent::start(None, &["--state-file", sf]);
    assert_eq!(a.probe(), fail_reply("unreadable ENOENT"));
    let want = format!(
        "error: state file {sf} (from --state-file): unreadable ENOENT; create it \
         (heft set UP --state-file {sf}) or point --state-file / HEFT_STATE_FILE elsewhere"
    );
    assert!(a.log().contains(&want), "{}\nwanted {want}", a.log());
    drop(a);
    let _ = std::fs::remove_dir_all(&dir);
}

/// At boot the listen address may not exist yet (DHCP, a bridge that comes
/// later): heft binds it anyway (IP_FREEBIND) and serves once it exists,
/// instead of exiting into the init system's respawn limit. 198.51.100.7
/// (TEST-NET-2) is not on this host; binding sends nothing anywhere.
#[test]
fn binds_an_address_the_host_does_not_have_yet() {
    let port = free_port();
    let mut a = spawn_in_with(
        temp_dir("freebind"),
        "198.51.100.7",
        port,
        Some(STATE),
        &[],
        &[],
        &[],
    );
    let want = format!("listening on 198.51.100.7:{port}");
    assert!(wait_for(SECS5, || a.log().contains(&want)), "{}", a.log());
    assert!(a.running(), "{}", a.log());
    assert_eq!(a.stop(), Some(0));
}

/// A link-local IPv6 address with its scope, by name or index, is bound on
/// that interface (the loopback has no link-local address: IP_FREEBIND binds
/// it anyway); `::1%lo` serves for real; an interface that does not exist
/// yet is waited for, with one line saying so.
#[test]
fn scoped_ipv6_addresses_are_bound_on_their_interface() {
    let lo = std::fs::read_to_string("/sys/class/net/lo/ifindex").unwrap();
    let lo = lo.trim();
    let full = "fe80:0000:0000:0000:0000:0000:0000:0001";
    for (addr, shown) in [
        ("fe80::1%lo".to_string(), format!("{full}%lo")),
        (format!("[fe80::1%{lo}]"), format!("{full}%{lo}")),
    ] {
        let port = free_port();
        let mut a = spawn_in_with(temp_dir("scope"), &addr, port, Some(STATE), &[], &[], &[]);
        let want = format!("listening on [{shown}]:{port}");
        assert!(
            wait_for(SECS5, || a.log().contains(&want)),
            "{addr}: {}",
            a.log()
        );
        assert!(a.running(), "{}", a.log());
        assert_eq!(a.stop(), Some(0));
    }
    let port = free_port();
    let a = spawn_in_with(
        temp_dir("scope"),
        "::1%lo",
        port,
        Some(STATE),
        &[],
        &[],
        &[],
    );
    let p = port.to_string();
    let mut got = (0, String::new(), String::new());
    let served = wait_for(SECS5, || {
        got = run_heft(&["get", "--addr", "::1%lo", "--port", &p], &[]);
        got.0 == 0
    });
    assert!(served, "{got:?}; log:\n{}", a.log());
    assert_eq!(got.1, "up ready 77% maxconn:300\n");
    drop(a);

    let mut a = spawn_in_with(
        temp_dir("scope"),
        "fe80::1%heftnone0",
        free_port(),
        Some(STATE),
        &[],
        &[],
        &[],
    );
    let want = "error: no interface heftnone0 yet: ENODEV; trying again every second";
    assert!(wait_for(SECS5, || a.log().contains(want)), "{}", a.log());
    std::thread::sleep(Duration::from_millis(2500));
    assert!(a.running(), "{}", a.log());
    assert_eq!(a.log().matches("no interface").count(), 1, "{}", a.log());
    assert!(!a.log().contains("listening"), "{}", a.log());
}

/// A state file that is a symlink loop, or whose path is too long to open,
/// is named by its error: `ELOOP`, `ENAMETOOLONG`.
#[test]
fn a_symlink_loop_and_an_overlong_path_are_named() {
    let a = Agent::start(Some(STATE), &[]);
    std::fs::remove_file(&a.state).unwrap();
    std::os::unix::fs::symlink(&a.state, &a.state).unwrap();
    a.signal(libc::SIGHUP);
    a.expect_reply(&fail_reply("unreadable ELOOP"));
    wait_log(
        &a,
        &format!("error: state file {}: unreadable ELOOP", a.state.display()),
    );
    // Longer than the 1,023 bytes a path may have.
    let long = a.dir.join("x".repeat(1100));
    let b = Agent::start(None, &["--state-file", long.to_str().unwrap()]);
    assert_eq!(b.probe(), fail_reply("unreadable ENAMETOOLONG"));
}

/// Bad usage or configuration exits 100 at once, with one line naming the
/// flag or variable and the bad value.
#[test]
fn bad_usage_exits_100_naming_the_value() {
    // (arguments, environment, words the error line must hold)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        (&["--bogus"], &[], &["--bogus"]),
        (&["serve", "extra"], &[], &["extra"]),
        (&["--port", "99999"], &[], &["--port", "99999"]),
        (&["--port", "abc"], &[], &["--port", "abc"]),
        (&["--port", "0"], &[], &["--port", "\"0\""]),
        (&["--port"], &[], &["--port"]),
        (&[], &[("HEFT_PORT", "x")], &["HEFT_PORT", "\"x\""]),
        (&[], &[("HAPGENT_PORT", "y")], &["HAPGENT_PORT", "\"y\""]),
        // HEFT_PORT beats HAPGENT_PORT, even when it is the bad one.
        (
            &[],
            &[("HEFT_PORT", "x"), ("HAPGENT_PORT", "9")],
            &["HEFT_PORT", "\"x\""],
        ),
        (&["--addr", "1.2.3"], &[], &["--addr", "1.2.3"]),
        (&[], &[("HEFT_ADDR", "nowhere")], &["HEFT_ADDR", "nowhere"]),
        (&[], &[("HAPGENT_IP", "nope")], &["HAPGENT_IP", "nope"]),
        (&["--ready-window", "0"], &[], &["--ready-window", "\"0\""]),
        (
            &[],
            &[("HEFT_READY_WINDOW", "soon")],
            &["HEFT_READY_WINDOW", "soon"],
        ),
        (&["--slots", "0"], &[], &["--slots", "\"0\""]),
        (&["--slots", "5000"], &[], &["--slots", "5000"]),
        (&["--wait", "x"], &[], &["--wait", "\"x\""]),
        (&["--timeout", "5"], &[], &["--timeout", "\"5\""]),
        (&[], &[("HEFT_TIMEOUT", "-1")], &["HEFT_TIMEOUT", "-1"]),
    ];
    for (args, env, names) in cases {
        // A state file of our own, should a case wrongly start serving.
        let mut env = env.to_vec();
        env.push(("HEFT_STATE_FILE", "/nonexistent/heft-test.json"));
        let t = Instant::now();
        let got = run_heft_for(args, &env, SECS5);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{args:?} {env:?}: not at once"
        );
        assert_usage(&format!("{args:?} {env:?}"), got, names);
    }
}

/// A flag beats its variable (a bad variable does not matter when the flag
/// is given), and `HEFT_*` beats `HAPGENT_*`.
#[test]
fn flag_beats_variable() {
    let a = Agent::start_with(
        Some(STATE),
        &[],
        &[
            ("HEFT_PORT", "x"),
            ("HEFT_ADDR", "nowhere"),
            ("HEFT_STATE_FILE", "/nonexistent/x.json"),
            ("HAPGENT_PORT", "y"),
        ],
    );
    assert_eq!(a.probe(), "up ready 77% maxconn:300\n");
    // A variable given with a different value than the flag.
    let other = free_port().to_string();
    let a = Agent::start_with(Some(STATE), &[], &[("HEFT_PORT", &other)]);
    assert_eq!(a.probe(), "up ready 77% maxconn:300\n");
    assert!(TcpStream::connect(("127.0.0.1", other.parse::<u16>().unwrap())).is_err());
}

/// Starts heft with no flags at all, only `env`, in a directory of its own;
/// `port` is where it should listen.
fn start_from_env(port: u16, env: &[(&str, &str)]) -> Agent {
    let dir = temp_dir("env");
    let a = Agent::adopt(spawn_heft(&dir, &[], &[], env), port, dir);
    a.wait_listening();
    a
}

/// hapgent's variables are honoured when ours are unset (or empty), and ours
/// win when both are set.
#[test]
fn hapgent_variables_are_honoured() {
    let dir = temp_dir("env-paths");
    let (s1, s2) = (dir.join("heft.json"), dir.join("hapgent.json"));
    std::fs::write(&s1, r#"{"status":"UP","weight":11}"#).unwrap();
    std::fs::write(&s2, r#"{"status":"UP","weight":22}"#).unwrap();
    let (s1, s2) = (s1.to_str().unwrap(), s2.to_str().unwrap());

    let p = free_port();
    let ps = p.to_string();
    let a = start_from_env(
        p,
        &[
            ("HAPGENT_IP", "127.0.0.1"),
            ("HAPGENT_PORT", &ps),
            ("HAPGENT_STATE_FILE", s2),
            ("HEFT_PORT", ""),
        ],
    );
    assert_eq!(a.probe(), "up ready 22%\n");
    assert!(
        a.log()
            .contains(&format!("listening on 127.0.0.1:{p}, state file {s2}")),
        "{}",
        a.log()
    );
    drop(a);

    let (p1, p2) = (free_port(), free_port());
    let (p1s, p2s) = (p1.to_string(), p2.to_string());
    let a = start_from_env(
        p1,
        &[
            ("HEFT_ADDR", "127.0.0.1"),
            ("HAPGENT_IP", "not an address"),
            ("HEFT_PORT", &p1s),
            ("HAPGENT_PORT", &p2s),
            ("HEFT_STATE_FILE", s1),
            ("HAPGENT_STATE_FILE", s2),
        ],
    );
    assert_eq!(a.probe(), "up ready 11%\n");
    assert!(TcpStream::connect(("127.0.0.1", p2)).is_err());
    drop(a);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A second instance on a taken port exits 111 with a clear message; the
/// first keeps serving. The same for a port some other program holds.
#[test]
fn taken_port_exits_111() {
    let a = Agent::start(Some(STATE), &[]);
    let p = a.port.to_string();
    let state = a.state.to_str().unwrap();
    for addr in ["127.0.0.1", "0.0.0.0"] {
        let (code, _, err) = run_heft_for(
            &["--addr", addr, "--port", &p, "--state-file", state],
            &[],
            SECS5,
        );
        assert_eq!(code, Some(111), "{addr}: {err}");
        assert!(
            err.contains(&format!("bind {addr}:{p}: EADDRINUSE"))
                && err.contains("(another agent already listens there)"),
            "{addr}: {err:?}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
        assert_eq!(a.probe(), "up ready 77% maxconn:300\n");
    }
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let op = other.local_addr().unwrap().port().to_string();
    let (code, _, err) = run_heft_for(
        &["--addr", "127.0.0.1", "--port", &op, "--state-file", state],
        &[],
        SECS5,
    );
    assert_eq!(code, Some(111), "{err}");
    assert!(err.contains("EADDRINUSE"), "{err:?}");
    // A pid file that cannot be written is a failed system call too.
    let free = free_port().to_string();
    let (code, _, err) = run_heft_for(
        &[
            "--addr",
            "127.0.0.1",
            "--port",
            &free,
            "--state-file",
            state,
            "--pid-file",
            "/nonexistent/dir/heft.pid",
        ],
        &[],
        SECS5,
    );
    assert_eq!(code, Some(111), "{err}");
    assert!(
        err.contains("pid file /nonexistent/dir/heft.pid: ENOENT"),
        "{err:?}"
    );
    assert_eq!(a.stop(), Some(0));
}

/// Probes with `payload`; checks the reply and that it took `min` to `max`.
fn answered_in(a: &Agent, payload: &[u8], want: &str, min: Duration, max: Duration) {
    let (r, t) = timed(a, payload);
    assert_eq!(r, want, "payload {payload:?}");
    assert!(
        t >= min && t < max,
        "payload {payload:?} took {t:?}, not {min:?} to {max:?}"
    );
}

/// Payloads with a newline, without one, and none at all. Without services
/// every probe is answered at once, whatever it sends, even with a long
/// --wait; with services, a payload is answered as soon as its first word is
/// complete, and one that may still be arriving (or none) waits --wait;
/// `--wait 0` answers at once.
#[test]
fn payloads_with_and_without_newline_or_none() {
    let (zero, quick) = (Duration::ZERO, Duration::from_millis(500));
    // --wait 1500, with some slack either side.
    let (waited, too_long) = (Duration::from_millis(1400), Duration::from_millis(3000));
    let a = Agent::start(Some(STATE), &["--wait", "1500"]);
    let top = "up ready 77% maxconn:300\n";
    for payload in [
        &b""[..],
        b"\n",
        b"\r\n",
        b"pouet",
        b"web\n",
        b"web",
        b"GET / HTTP/1.0\r\n\r\n",
        b"a much longer payload, with words",
    ] {
        answered_in(&a, payload, top, zero, quick);
    }

    // With services, a word without a newline may be cut short: wait for more.
    let services = r#"{"status":"UP","weight":77,"services":{"web":{"status":"DRAIN"}}}"#;
    let a = Agent::start(Some(services), &["--wait", "1500"]);
    answered_in(&a, b"web\n", "up drain 100%\n", zero, quick);
    answered_in(&a, b"web ", "up drain 100%\n", zero, quick);
    answered_in(&a, b"\n", "up ready 77%\n", zero, quick);
    answered_in(&a, b"web", "up drain 100%\n", waited, too_long);
    answered_in(&a, b"", "up ready 77%\n", waited, too_long);
    // The services go: nothing is worth waiting for any more.
    a.reload(STATE, top);
    answered_in(&a, b"", top, zero, quick);

    // --wait 0: at once; a service is routed only if its name came with the
    // connection (read right after accept), which the test cannot force.
    let a = Agent::start(Some(services), &["--wait", "0"]);
    answered_in(&a, b"", "up ready 77%\n", zero, quick);
    let (r, t) = timed(&a, b"web\n");
    assert!(r == "up ready 77%\n" || r == "up drain 100%\n", "{r:?}");
    assert!(t < quick, "{t:?}");
}

/// The agent port never waits without services: HAProxy's default check
/// (no payload) is answered in well under --wait, one probe after another.
#[test]
fn no_payload_without_services_is_answered_at_once_whatever_the_wait() {
    let a = Agent::start(Some(STATE), &["--wait", "2000"]);
    let mut slowest = Duration::ZERO;
    for _ in 0..50 {
        let (r, t) = timed(&a, b"");
        assert_eq!(r, "up ready 77% maxconn:300\n");
        slowest = slowest.max(t);
    }
    assert!(slowest < Duration::from_millis(500), "slowest {slowest:?}");
    assert_eq!(a.stop(), Some(0));
}

/// heft never closes with unread bytes (which would send RST): a client that
/// sends far more than a payload, and more again after the reply, reads the
/// whole line and then a clean EOF.
#[test]
fn never_resets_a_client_that_sends_more() {
    let a = Agent::start(Some(STATE), &[]);
    for extra in [100usize, 10_000, 200_000] {
        let mut s = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
        let mut payload = b"web\n".to_vec();
        payload.extend(std::iter::repeat_n(b'x', extra));
        s.write_all(&payload).unwrap();
        // Like HAProxy on a slow path: read a little later.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            read_line(&mut s, SECS5),
            "up ready 77% maxconn:300\n",
            "extra {extra}"
        );
        // More bytes after the reply are drained too.
        s.write_all(&vec![b'y'; extra]).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        s.set_read_timeout(Some(SECS5)).unwrap();
        let r = s.read_to_end(&mut rest);
        assert!(r.is_ok(), "extra {extra}: {r:?} (a reset?)");
        assert!(rest.is_empty(), "{rest:?}");
    }
    assert!(error_lines(&a.log()).is_empty(), "{}", a.log());
}

/// A client that resets (as HAProxy does) is normal: nothing logged.
#[test]
fn client_resets_are_not_logged() {
    let a = Agent::start(Some(STATE), &[]);
    for i in 0..20 {
        let s = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
        if i % 2 == 0 {
            let _ = (&s).write_all(b"\n");
        }
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt on a live socket with a correctly sized struct.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
        if i % 4 == 0 {
            std::thread::sleep(Duration::from_millis(30));
        }
        drop(s); // RST
    }
    assert_eq!(a.probe(), "up ready 77% maxconn:300\n");
    std::thread::sleep(Duration::from_millis(100));
    assert!(error_lines(&a.log()).is_empty(), "{}", a.log());
}

/// A client that never closes is answered, then closed at --timeout.
#[test]
fn silent_client_is_closed_at_the_deadline() {
    let a = Agent::start(Some(STATE), &["--timeout", "400"]);
    let mut s = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
    let t = Instant::now();
    assert_eq!(read_line(&mut s, SECS5), "up ready 77% maxconn:300\n");
    assert!(wait_closed(&mut s, SECS5).is_some(), "not closed");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

/// All `--slots` taken by answered clients that neither read nor close: the
/// oldest answered one is closed to make room, so a new probe is answered at
/// once rather than after --timeout, and only that one is closed.
///
/// Eviction happens only for a connection actually accepted: evicting
/// before `accept(2)` would close a second answered client when the accept
/// then fails with EAGAIN (here the second-oldest, held[1], must stay open).
#[test]
fn full_slots_evict_the_oldest_answered_connection() {
    let a = Agent::start(Some(STATE), &["--slots", "4", "--timeout", "5000"]);
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
        // Answered at accept (no services); read it so we know.
        assert_eq!(read_line(&mut s, SECS5), "up ready 77% maxconn:300\n");
        held.push(s);
        std::thread::sleep(Duration::from_millis(20));
    }
    for round in 0..3 {
        // The new probe is held open too, so that every slot stays taken: a
        // payload without a line end is answered at once (one service) but,
        // unlike a whole line, is not closed at once.
        let t = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
        s.write_all(b"x").unwrap();
        assert_eq!(
            read_line(&mut s, SECS5),
            "up ready 77% maxconn:300\n",
            "round {round}"
        );
        let took = t.elapsed();
        assert!(
            took < Duration::from_millis(1000),
            "round {round}: took {took:?}"
        );
        // The oldest held connection was closed, and only that one.
        assert!(
            wait_closed(&mut held[round], SECS5).is_some(),
            "round {round}"
        );
        for (i, h) in held.iter_mut().enumerate().skip(round + 1) {
            let closed = wait_closed(h, Duration::from_millis(100));
            assert!(closed.is_none(), "round {round}: held[{i}] was closed too");
        }
        held.push(s);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// All `--slots` taken by clients still inside their --wait (with services,
/// nothing answered to evict): a new probe takes the slot of the one that
/// has waited longest, which is answered at once as if its wait were over;
/// the others keep waiting.
#[test]
fn full_slots_of_waiting_clients_answer_the_longest_waiting_to_make_room() {
    let services = r#"{"status":"UP","weight":77,"services":{"web":{"status":"DRAIN"}}}"#;
    let a = Agent::start(
        Some(services),
        &["--slots", "4", "--wait", "5000", "--timeout", "8000"],
    );
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(("127.0.0.1", a.port)).unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    for round in 0..2 {
        let t = Instant::now();
        let mut p = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
        p.write_all(b"web\n").unwrap();
        assert_eq!(read_line(&mut p, SECS5), "up drain 100%\n", "round {round}");
        // The longest waiting was answered (top level: it named no service).
        assert_eq!(read_line(&mut held[round], SECS5), "up ready 77%\n");
        assert!(wait_closed(&mut held[round], SECS5).is_some());
        assert!(
            t.elapsed() < Duration::from_millis(1000),
            "round {round}: {:?}",
            t.elapsed()
        );
        // The others are still waiting (no reply before their --wait ends).
        for h in held.iter_mut().skip(round + 1) {
            assert_eq!(
                poll_read(h, Duration::from_millis(50)),
                None,
                "round {round}"
            );
        }
        // The probe said all it had and was closed: a new silent client
        // fills the table again.
        held.push(TcpStream::connect(("127.0.0.1", a.port)).unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Out of descriptors (`ulimit -n 12`) with silent clients holding them:
/// accept fails with EMFILE, which is logged once (not per failure), heft
/// keeps running, and a probe is answered once the held clients have theirs.
#[test]
fn emfile_is_logged_once_and_heft_recovers() {
    let wrapper = ["sh", "-c", "ulimit -n 12 && exec \"$0\" \"$@\""];
    let mut a = Agent::spawn(
        Some(STATE),
        &["--wait", "500", "--timeout", "3000"],
        &[],
        &wrapper,
    );
    a.wait_listening();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", a.pid())).unwrap();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(nofile.split_whitespace().nth(3), Some("12"), "{nofile}");
    let held: Vec<TcpStream> = (0..12)
        .map(|_| TcpStream::connect(("127.0.0.1", a.port)).unwrap())
        .collect();
    assert!(
        wait_for(SECS5, || a.log().contains("accept: EMFILE")),
        "no EMFILE; log:\n{}",
        a.log()
    );
    let t = Instant::now();
    let r = probe_port(a.port, b"\n").unwrap();
    assert_eq!(r, "up ready 77% maxconn:300\n");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert!(a.running());
    drop(held);
    a.expect_reply("up ready 77% maxconn:300\n");
    let emfile = a.log().lines().filter(|l| l.contains("EMFILE")).count();
    assert_eq!(emfile, 1, "EMFILE not rate-limited:\n{}", a.log());
    assert_eq!(a.stop(), Some(0));
}

/// With --ready-window, `ready` is sent only after start-up and after each
/// change of status, for the window; DRAIN and MAINT are always sent.
#[test]
fn ready_window_sends_ready_only_after_a_status_change() {
    let a = Agent::start(Some(STATE), &["--ready-window", "1"]);
    assert_eq!(a.probe(), "up ready 77% maxconn:300\n");
    a.expect_reply("up 77% maxconn:300\n");
    a.signal(libc::SIGUSR2);
    assert_eq!(a.probe(), "down ready 77% maxconn:300\n");
    a.expect_reply("down 77% maxconn:300\n");
    // The same status with another weight opens no window.
    a.reload(r#"{"status":"DOWN","weight":50}"#, "down 50%\n");
    a.reload(r#"{"status":"DRAIN","weight":50}"#, "up drain 50%\n");
    a.reload(r#"{"status":"MAINT","weight":50}"#, "maint 50%\n");
    // The variable works too.
    let b = Agent::start_with(Some(STATE), &[], &[("HEFT_READY_WINDOW", "1")]);
    b.expect_reply("up 77% maxconn:300\n");
}

/// Asserts that `line` is one whole agent line of printable ASCII.
fn assert_one_line(line: &str) {
    assert!(line.ends_with('\n'), "{line:?}");
    let body = &line[..line.len() - 1];
    assert!(
        body.bytes().all(|c| (0x20..0x7f).contains(&c)),
        "unprintable byte in {line:?}"
    );
}

#[test]
fn reasons_that_could_break_the_line_are_rejected_when_the_file_is_loaded() {
    let good = r#"{"status":"DOWN","reason":"deploying 1.4.2","services":{"web":{"status":"UP"}}}"#;
    let good_reply = "down ready 100% #deploying 1.4.2\n";
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("JSON \\n", br#"{"status":"DOWN","reason":"a\nb"}"#.to_vec()),
        ("JSON \\r", br#"{"status":"DOWN","reason":"a\rb"}"#.to_vec()),
        (
            "JSON \\r\\n",
            br#"{"status":"DOWN","reason":"up ready\r\nmaint"}"#.to_vec(),
        ),
        ("#", br#"{"status":"DOWN","reason":"a#b"}"#.to_vec()),
        ("JSON \\t", br#"{"status":"DOWN","reason":"a\tb"}"#.to_vec()),
        (
            "JSON \\u0001",
            br#"{"status":"DOWN","reason":"a\u0001b"}"#.to_vec(),
        ),
        (
            "JSON \\u007f",
            br#"{"status":"DOWN","reason":"a\u007fb"}"#.to_vec(),
        ),
        (
            "JSON \\u00e9",
            br#"{"status":"DOWN","reason":"caf\u00e9"}"#.to_vec(),
        ),
        (
            "raw 0x01",
            b"{\"status\":\"DOWN\",\"reason\":\"a\x01b\"}".to_vec(),
        ),
        (
            "raw 0x7f",
            b"{\"status\":\"DOWN\",\"reason\":\"a\x7fb\"}".to_vec(),
        ),
        (
            "raw newline",
            b"{\"status\":\"DOWN\",\"reason\":\"a\nb\"}".to_vec(),
        ),
        (
            "raw UTF-8",
            "{\"status\":\"DOWN\",\"reason\":\"caf\u{e9}\"}"
                .as_bytes()
                .to_vec(),
        ),
        (
            "raw 0xff",
            b"{\"status\":\"DOWN\",\"reason\":\"a\xffb\"}".to_vec(),
        ),
        (
            "service reason \\n",
            br#"{"status":"UP","services":{"web":{"status":"DOWN","reason":"x\ny"}}}"#.to_vec(),
        ),
    ];
    let a = Agent::start(Some(good), &[]);
    assert_eq!(a.probe(), good_reply);
    let m0 = metrics(a.http_port);
    for (i, (what, bytes)) in bad.iter().enumerate() {
        std::fs::write(&a.state, bytes).unwrap();
        a.signal(libc::SIGHUP);
        let mut last = String::new();
        let ok = wait_for(LIMIT, || {
            last = a.probe();
            last.starts_with("fail ready 100% #state file: ")
        });
        assert!(ok, "{what}: got {last:?}; log:\n{}", a.log());
        assert_one_line(&last);
        // Every way of asking gets the same single line.
        assert_eq!(a.probe_with(b"web\n"), last, "{what}, service web");
        let r = http(a.http_port, "GET", "/web");
        assert_eq!((r.code(), r.body.as_str()), (503, last.as_str()), "{what}");
        // The log line names the file and the problem, printable too.
        let log = a.log();
        let line = log
            .lines()
            .filter(|l| l.contains("error: state file"))
            .nth(i)
            .unwrap_or_else(|| panic!("{what}: no error line for load {i}:\n{log}"));
        assert!(line.contains(a.state.to_str().unwrap()), "{line}");
        // Back to a good file before the next case, so each case is a change.
        a.reload(good, good_reply);
    }
    let m1 = metrics(a.http_port);
    let n = bad.len() as f64;
    assert_eq!(
        m1.get("heft_errors_total{kind=\"state_file\"}")
            - m0.get("heft_errors_total{kind=\"state_file\"}"),
        n
    );
    assert_eq!(
        m1.get("heft_reloads_total") - m0.get("heft_reloads_total"),
        2.0 * n
    );
    assert_eq!(a.stop(), Some(0));
}

#[test]
fn a_bad_reason_in_the_file_at_start_up_serves_fail_and_keeps_the_file() {
    let bad = r#"{"status":"DOWN","reason":"two\nlines"}"#;
    let a = Agent::start(Some(bad), &[]);
    let r = a.probe();
    assert_eq!(
        r,
        "fail ready 100% #state file: reason: expected printable ASCII without a hash sign\n"
    );
    // A signal changes the reply but leaves the unparsable file for a human.
    a.signal(libc::SIGUSR1);
    a.expect_reply("up ready 100%\n");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.state_text(), bad);
    // heft set refuses such a reason outright.
    let (code, _, err) = a.heft(&["set", "down", "--reason", "a\nb"]);
    assert_eq!(code, 100, "{err}");
    assert!(err.contains("--reason"), "{err}");
    let (code, _, err) = a.heft(&["set", "down", "--reason", "see #4"]);
    assert_eq!(code, 100, "{err}");
    assert_eq!(a.state_text(), bad);
}

/// The descriptors the process `pid` has open.
fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn a_client_that_closed_its_side_is_answered_and_let_go_at_once() {
    // Without this, such a connection would linger until its timeout.
    if skip_under_runner("reads the agent's /proc/PID/fd, which is qemu's under qemu-user") {
        return;
    }
    let a = Agent::start(Some(r#"{"status":"UP","weight":50}"#), &[]);
    // Start-up's own check of the port connects and closes: past the 2 s a
    // connection may linger, its descriptor is surely gone.
    std::thread::sleep(Duration::from_millis(2300));
    let idle = open_fds(a.pid());
    // Stopped, the agent accepts each connection only after its FIN has
    // arrived, so its first read finds the EOF.
    a.signal(libc::SIGSTOP);
    let mut held = Vec::new();
    for _ in 0..3 {
        let s = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(100));
    a.signal(libc::SIGCONT);
    for s in &mut held {
        let mut got = String::new();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.read_to_string(&mut got).unwrap();
        assert_eq!(got, "up ready 50%\n");
    }
    // Each is still open on this side, so only heft's own close frees its
    // descriptor.
    // The fds are gone well before the 2 s an unfinished probe may linger.
    let gone = wait_for(Duration::from_millis(500), || open_fds(a.pid()) == idle);
    assert!(
        gone,
        "{} descriptors open, {idle} when idle",
        open_fds(a.pid())
    );
}
