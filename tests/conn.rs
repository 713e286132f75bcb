//! Established connections to a local port, counted with sock_diag: the
//! `conn` feedback rule and `heft set drain --wait-idle`, through the real
//! binary, with connections the tests open to listeners they own (IPv4, and
//! IPv6 where the host has `::1`).
//!
//! `cargo test --release --test conn -- --ignored --nocapture` runs the
//! benchmark: the cost of one count with many sockets on the host.

mod common;
use common::*;

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Why these tests are skipped under a runner: qemu-user refuses netlink
/// sockets other than NETLINK_ROUTE, NETLINK_KOBJECT_UEVENT and NETLINK_AUDIT.
const NO_SOCK_DIAG: &str = "qemu-user refuses NETLINK_SOCK_DIAG sockets";

/// A listener on 127.0.0.1 (and `::1` on the same port, where there is one).
struct Listeners {
    port: u16,
    v4: TcpListener,
    v6: Option<TcpListener>,
}

impl Listeners {
    fn new() -> Listeners {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        let v6 = TcpListener::bind(("::1", port)).ok();
        Listeners { port, v4, v6 }
    }

    /// Opens `n` connections, every third one over IPv6 when it can.
    fn open(&self, n: usize) -> Vec<TcpStream> {
        (0..n)
            .map(|i| {
                let host = if i % 3 == 2 && self.v6.is_some() {
                    "::1"
                } else {
                    "127.0.0.1"
                };
                TcpStream::connect((host, self.port)).unwrap()
            })
            .collect()
    }
}

/// Waits until a probe returns `want`.
fn expect(a: &Agent, want: &str) {
    expect_that(a, want, |r| r == want);
}

/// Waits until a probe's reply passes `ok` (`what` says what was wanted).
fn expect_that(a: &Agent, what: &str, ok: impl Fn(&str) -> bool) {
    let mut last = String::new();
    let done = wait_for(Duration::from_secs(10), || {
        last = a.probe();
        ok(&last)
    });
    assert!(done, "wanted {what:?}, got {last:?}; log:\n{}", a.log());
}

#[cfg(feature = "feedback")]
#[test]
fn conn_rule_follows_the_connections_to_its_port() {
    if skip_under_runner(NO_SOCK_DIAG) {
        return;
    }
    let l = Listeners::new();
    let dir = temp_dir("conn-rule");
    let cfg = dir.join("feedback.json");
    // Linear from 100% at 0 to 1% at 50: 20 connections give
    // 100 − 99 × 20/50 = 60.4, i.e. 60%. Down above 30, back below 5.
    std::fs::write(
        &cfg,
        format!(
            r#"{{"interval_ms":100,"rules":[{{"metric":"conn","port":{},
                "curve":"linear","limit":50,"enter":30,"leave":5}}]}}"#,
            l.port
        ),
    )
    .unwrap();
    let a = Agent::start(
        Some(r#"{"status":"UP"}"#),
        &["--feedback", cfg.to_str().unwrap()],
    );
    expect(&a, "up ready 100%\n");
    let mut held = l.open(20);
    expect(&a, "up ready 60%\n");
    held.extend(l.open(15));
    // 35 connections: 100 − 99 × 35/50 = 30.7. The reason holds the count
    // the sample that tripped saw: above 30, at most 35.
    let tripped = |w: u32| {
        move |r: &str| {
            let Some(rest) = r.strip_prefix(&format!("down ready {w}% #conn ")) else {
                return false;
            };
            let n: u32 = rest.split(' ').next().unwrap().parse().unwrap();
            (31..=35).contains(&n) && rest.ends_with(" > 30\n")
        }
    };
    expect_that(&a, "down ready 31% #conn N > 30", tripped(31));
    // Connections to another port do not count.
    let other = Listeners::new();
    let _others = other.open(10);
    held.truncate(10);
    // 10 is not below `leave` (5): still down, at the weight of 10
    // (100 − 99 × 10/50 = 80.2).
    expect_that(&a, "down ready 80% #conn N > 30", tripped(80));
    drop(held);
    expect(&a, "up ready 100%\n");
    let log = a.log();
    assert!(
        log.contains("feedback: conn 3") && log.contains(" > 30: down"),
        "log:\n{log}"
    );
    assert!(log.contains("feedback: conn cleared"), "log:\n{log}");
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(feature = "feedback")]
#[test]
fn conn_rule_needs_a_port() {
    let dir = temp_dir("conn-cfg");
    for (rule, want) in [
        (
            r#"{"metric":"conn","enter":5}"#,
            "rules[0].port: missing (the local port to count connections to)",
        ),
        (
            r#"{"metric":"conn","port":0,"enter":5}"#,
            "rules[0].port: must be a port number 1 to 65535",
        ),
        (
            r#"{"metric":"cpu","port":80,"enter":5}"#,
            "rules[0].port: only for metric conn",
        ),
    ] {
        let cfg = dir.join("feedback.json");
        std::fs::write(&cfg, format!(r#"{{"rules":[{rule}]}}"#)).unwrap();
        let (code, _, err) = run_heft_for(
            &["--port", "1", "--feedback", cfg.to_str().unwrap()],
            &[],
            Duration::from_secs(10),
        );
        assert_eq!(code, Some(100), "{rule}: {err}");
        assert!(err.contains(want), "{rule}: {err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs `heft set ARGS` against `a`'s state and pid files, for at most 30 s;
/// returns (code, stderr, how long it took).
fn set(a: &Agent, args: &[&str]) -> (Option<i32>, String, Duration) {
    let mut argv = vec!["set"];
    argv.extend_from_slice(args);
    let start = Instant::now();
    let (code, _, err) = run_heft_for(
        &argv,
        &[
            ("HEFT_STATE_FILE", a.state.to_str().unwrap()),
            ("HEFT_PID_FILE", a.pid_file.to_str().unwrap()),
        ],
        Duration::from_secs(30),
    );
    (code, err, start.elapsed())
}

#[test]
fn wait_idle_drains_then_exits_0_once_connections_are_gone() {
    if skip_under_runner(NO_SOCK_DIAG) {
        return;
    }
    let a = Agent::start(Some(r#"{"status":"UP"}"#), &[]);
    let l = Listeners::new();
    let held = l.open(6);
    // The connections end about 1.5 s after the drain.
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        drop(held);
    });
    let port = l.port.to_string();
    let (code, err, took) = set(&a, &["drain", "--wait-idle", &port, "--settle", "1"]);
    release.join().unwrap();
    assert_eq!(code, Some(0), "stderr:\n{err}");
    // The drain took effect at once; the wait ended 2 s after the last
    // connection, which was still there after the 1 s settle.
    expect(&a, "up drain 100%\n");
    let first = format!("6 established connection(s) to {port} after 1 s");
    assert!(err.contains(&first), "{err}");
    assert!(err.contains("0 established connection(s) to "), "{err}");
    assert!(err.contains("heft: idle for 2 s"), "{err}");
    assert!(took >= Duration::from_millis(3400), "idle after {took:?}");
    assert!(took < Duration::from_secs(10), "idle only after {took:?}");
}

#[test]
fn wait_idle_exits_1_when_connections_stay_past_the_timeout() {
    if skip_under_runner(NO_SOCK_DIAG) {
        return;
    }
    let a = Agent::start(Some(r#"{"status":"UP"}"#), &[]);
    let l = Listeners::new();
    let other = Listeners::new();
    let _held = l.open(2);
    let ports = format!("{},{}", other.port, l.port);
    let (code, err, took) = set(
        &a,
        &[
            "maint",
            "--wait-idle",
            &ports,
            "--settle",
            "0",
            "--idle-timeout",
            "2",
        ],
    );
    assert_eq!(code, Some(1), "stderr:\n{err}");
    let last = format!("2 established connection(s) to {ports} after 2 s");
    assert!(err.contains(&last), "{err}");
    assert!(
        err.contains("heft: error: not idle by --idle-timeout"),
        "{err}"
    );
    assert!(took >= Duration::from_secs(2), "gave up after {took:?}");
    assert!(took < Duration::from_secs(8), "gave up only after {took:?}");
    expect(&a, "maint 100%\n");
}

#[test]
fn wait_idle_refuses_what_cannot_work() {
    for args in [
        &["up", "--wait-idle", "80"][..],
        &["drain", "--wait-idle", "0"],
        &["drain", "--wait-idle", "80,"],
        &[
            "drain",
            "--wait-idle",
            "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17",
        ],
        &["drain", "--settle", "1"],
        &["drain", "--idle-timeout", "5"],
        &["drain", "--wait-idle", "80", "--idle-timeout", "0"],
    ] {
        let mut argv = vec!["set"];
        argv.extend_from_slice(args);
        let (code, out, err) = run_heft(&argv, &[("HEFT_STATE_FILE", "/nonexistent/x")]);
        assert_eq!(code, 100, "{args:?}: {out}{err}");
        assert!(err.contains("heft: error: "), "{args:?}: {err}");
    }
}

/// This process's CPU time so far (user and system: the kernel's walk of
/// its socket tables counts as system time), which a loaded machine skews
/// less than wall-clock time.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) }, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The TCP sockets on the host in each state other than ESTABLISHED and
/// LISTEN, from /proc/net/tcp and tcp6, as `count × state`.
fn other_sockets() -> String {
    let mut n = std::collections::BTreeMap::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            let st = line.split_whitespace().nth(3).unwrap_or("");
            *n.entry(st.to_string()).or_insert(0) += 1;
        }
    }
    n.iter()
        .map(|(st, k)| format!("{k} in state {st}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How much CPU one count takes with `n` connections on the host to another
/// port and `k` to the counted one (each connection is two established
/// sockets, both ends held here), against reading /proc/net/tcp and tcp6
/// whole. Needs about 2 × (n + k) descriptors (`ulimit -n`).
#[test]
#[ignore]
fn bench_count_with_many_sockets() {
    let mut buf = [0u8; 8192];
    let busy = Listeners::new();
    let counted = Listeners::new();
    busy.v4.set_nonblocking(true).unwrap();
    counted.v4.set_nonblocking(true).unwrap();
    let mut held = Vec::new();
    let mut mine = Vec::new();
    // Opens connections to `l` until `to` sockets hold both their ends.
    let fill = |l: &Listeners, to: usize, into: &mut Vec<TcpStream>| {
        while into.len() < to {
            into.push(TcpStream::connect(("127.0.0.1", l.port)).unwrap());
            while let Ok((s, _)) = l.v4.accept() {
                into.push(s);
            }
        }
    };
    println!("before: {}", other_sockets());
    for (n, k) in [(0, 0), (1000, 0), (8000, 0), (8000, 100), (8000, 1000)] {
        fill(&busy, 2 * n, &mut held);
        fill(&counted, 2 * k, &mut mine);
        let rounds = 50;
        let (t, cpu) = (Instant::now(), cpu_time());
        let mut c = 0;
        for _ in 0..rounds {
            c = heft::os::sockdiag::count_established(counted.port, &mut buf).unwrap();
        }
        let diag = ((cpu_time() - cpu) / rounds, t.elapsed() / rounds);
        let (t, cpu) = (Instant::now(), cpu_time());
        let mut bytes = 0;
        for _ in 0..rounds {
            bytes = std::fs::read("/proc/net/tcp").unwrap().len()
                + std::fs::read("/proc/net/tcp6").unwrap().len();
        }
        let procfs = ((cpu_time() - cpu) / rounds, t.elapsed() / rounds);
        println!(
            "{:>6} established sockets held, {c:>5} counted: sock_diag {:>8.1?} CPU ({:>8.1?} wall) per count; reading /proc/net/tcp{{,6}} {:>8.1?} CPU ({:>8.1?} wall, {bytes} bytes)",
            held.len() + mine.len(),
            diag.0,
            diag.1,
            procfs.0,
            procfs.1,
        );
    }
    println!("after: {}", other_sockets());
}
