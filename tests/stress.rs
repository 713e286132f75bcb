//! Fault injection against the real binary on 127.0.0.1: signal storms,
//! kill -9 while persisting, slow clients, descriptor exhaustion and memory
//! growth. Each test is bounded in time and prints what it measured
//! (`cargo test --test stress -- --nocapture` shows the numbers).

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A small xorshift generator: enough randomness for kill timings, no crate needed.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        println!("rng seed {seed}");
        Rng(seed | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Probes once and returns the reply (or the error) and how long it took.
fn timed_probe(port: u16, payload: &[u8]) -> (std::io::Result<String>, Duration) {
    let t = Instant::now();
    let r = probe_port(port, payload);
    (r, t.elapsed())
}

/// Reads a `Vm*` line of /proc/PID/status, in KiB.
fn vm_kib(pid: i32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The reply heft must give for the state in `text` (weight and maxconn kept).
fn reply_for(text: &str) -> String {
    let st = heft::model::state::parse(text.as_bytes())
        .unwrap_or_else(|e| panic!("state file does not parse ({e:?}): {text:?}"));
    let t = st.top.expect("top-level state");
    let mut line = heft::model::reply::Line::new();
    heft::model::reply::format(
        &heft::model::reply::Reply {
            status: t.status,
            weight: t.weight,
            maxconn: t.maxconn,
            reason: t.reason.as_bytes(),
        },
        true,
        &mut line,
    );
    String::from_utf8(line.to_vec()).unwrap()
}

/// Sorts durations and returns (p50, p99, max).
fn percentiles(v: &mut [Duration]) -> (Duration, Duration, Duration) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize];
    (at(0.50), at(0.99), *v.last().unwrap())
}

fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a child of this test.
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig})");
}

/// Starts heft in `dir` (state.json, heft.pid, stderr.log appended) on `port`, optionally through `sh -c` with a prefix.
fn spawn(dir: &Path, port: u16, args: &[&str], shell_prefix: Option<&str>) -> Child {
    let mut argv: Vec<std::ffi::OsString> = vec![
        "--addr".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string().into(),
        "--state-file".into(),
        dir.join("state.json").into(),
        "--pid-file".into(),
        dir.join("heft.pid").into(),
    ];
    argv.extend(args.iter().map(|s| s.into()));
    let script = shell_prefix.map(|p| format!("{p}; exec \"$0\" \"$@\""));
    let wrapper: Vec<&str> = match &script {
        None => Vec::new(),
        Some(s) => vec!["sh", "-c", s],
    };
    spawn_heft(dir, &wrapper, &argv, &[])
}

/// Waits until a probe with a newline payload gets a whole line back.
fn wait_serving(port: u16, limit: Duration) -> bool {
    wait_for(limit, || {
        probe_port(port, b"\n")
            .map(|r| r.ends_with('\n'))
            .unwrap_or(false)
    })
}

/// Raises this process's soft descriptor limit to at least `want` (up to the hard limit).
fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a live struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < want as libc::rlim_t {
            lim.rlim_cur = (want as libc::rlim_t).min(lim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
}

/// Four clients probe continuously while 10,000 SIGUSR2+SIGUSR1 pairs (and
/// SIGHUPs) arrive back to back: no probe waits long, and afterwards the reply
/// and the file agree; one more SIGUSR1 gives UP with the original weight.
#[test]
fn signal_storm() {
    let a = Agent::start(Some(STATE), &[]);
    let port = a.port;
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for i in 0..4 {
        let stop = stop.clone();
        let failures = failures.clone();
        clients.push(std::thread::spawn(move || {
            // Two clients send a payload (answered at once); two send nothing
            // and wait out heft's --wait, as HAProxy without agent-send does.
            let payload: &[u8] = if i % 2 == 0 { b"\n" } else { b"" };
            let mut times = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (r, t) = timed_probe(port, payload);
                match r {
                    Ok(line)
                        if line == "up ready 77% maxconn:300\n"
                            || line == "down ready 77% maxconn:300\n" => {}
                    other => {
                        eprintln!("bad reply during storm: {other:?}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                times.push(t);
            }
            times
        }));
    }
    std::thread::sleep(Duration::from_millis(200));
    let pid = a.pid();
    let t = Instant::now();
    // Half in one burst, half in bursts of 100 pairs 2 ms apart, so that the
    // signals land among many probes rather than between two of them.
    for i in 0..10_000 {
        kill(pid, libc::SIGUSR2);
        kill(pid, libc::SIGUSR1);
        if i % 10 == 0 {
            kill(pid, libc::SIGHUP);
        }
        if i >= 5_000 && i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let storm = t.elapsed();
    // Keep probing a little after the storm, then stop the clients.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let mut with_payload: Vec<Duration> = Vec::new();
    let mut without: Vec<Duration> = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let t = c.join().unwrap();
        if i % 2 == 0 {
            with_payload.extend(t);
        } else {
            without.extend(t);
        }
    }
    let (n1, n2) = (with_payload.len(), without.len());
    let (a50, a99, amax) = percentiles(&mut with_payload);
    let (b50, b99, bmax) = percentiles(&mut without);
    println!(
        "signal storm: 20,000 USR1/USR2 + 1,000 HUP in {storm:?}; {n1} probes with payload: p50 {a50:?} p99 {a99:?} max {amax:?}; {n2} without (heft waits the default --wait): p50 {b50:?} p99 {b99:?} max {bmax:?}"
    );
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "bad replies during the storm"
    );
    assert!(n1 > 100 && n2 > 10, "too few probes: {n1} {n2}");
    for (p99, max) in [(a99, amax), (b99, bmax)] {
        assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");
        assert!(max < Duration::from_secs(1), "max {max:?}");
    }
    // A write may still be pending (heft spaces writes 100 ms apart).
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..3 {
        let text = a.state_text();
        assert_eq!(
            a.probe_with(b"\n"),
            reply_for(&text),
            "reply and file disagree"
        );
    }
    a.signal(libc::SIGUSR1);
    a.expect_reply("up ready 77% maxconn:300\n");
    assert!(
        wait_for(Duration::from_secs(5), || reply_for(&a.state_text())
            == "up ready 77% maxconn:300\n"),
        "file after SIGUSR1: {}",
        a.state_text()
    );
    let st = heft::model::state::parse(a.state_text().as_bytes()).unwrap();
    let top = st.top.unwrap();
    assert_eq!((top.weight, top.maxconn), (77, Some(300)));
    assert!(a.child.id() > 0);
    assert_eq!(a.stop(), Some(0));
}

/// Lists the names in `dir` that heft itself did not put there as the state file, pid file or log.
fn stray_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !matches!(n.as_str(), "state.json" | "heft.pid" | "stderr.log"))
        .collect()
}

/// kill -9 at random moments while signals make heft persist state changes:
/// the file always parses and is the old or the new state, never anything
/// else, and temporary files do not pile up.
#[test]
fn crash_safety() {
    const ROUNDS: usize = 200;
    let dir = temp_dir("crash");
    std::fs::write(dir.join("state.json"), STATE).unwrap();
    let port = free_port();
    let mut rng = Rng::new();
    let mut writes_seen = 0;
    let mut last = STATE.to_string();
    let mut max_tmp = 0;
    // Rounds where the kill left a temporary file: it landed inside a write.
    let mut mid_write = 0;
    let t0 = Instant::now();
    for round in 0..ROUNDS {
        let mut child = spawn(&dir, port, &[], None);
        let pid = child.id() as i32;
        if !wait_serving(port, Duration::from_secs(10)) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "round {round}: heft did not come back; log:\n{}",
                std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
            );
        }
        // The restarted agent serves what the file says.
        let text = std::fs::read_to_string(dir.join("state.json")).unwrap();
        assert_eq!(
            probe_port(port, b"\n").unwrap(),
            reply_for(&text),
            "round {round}"
        );
        let deadline = Instant::now() + Duration::from_micros(rng.below(200_000));
        let mut up = round % 2 == 0;
        while Instant::now() < deadline {
            kill(pid, if up { libc::SIGUSR1 } else { libc::SIGUSR2 });
            up = !up;
            std::thread::sleep(Duration::from_micros(rng.below(3000)));
        }
        kill(pid, libc::SIGKILL);
        let _ = child.wait();
        let text = std::fs::read_to_string(dir.join("state.json")).unwrap();
        let st = heft::model::state::parse(text.as_bytes())
            .unwrap_or_else(|e| panic!("round {round}: state file broken ({e:?}): {text:?}"));
        let top = st.top.expect("top-level state");
        assert!(
            matches!(
                top.status,
                heft::model::state::Status::Up | heft::model::state::Status::Down
            ),
            "round {round}: {text:?}"
        );
        assert_eq!(
            (top.weight, top.maxconn),
            (77, Some(300)),
            "round {round}: {text:?}"
        );
        assert!(top.reason.is_empty(), "round {round}: {text:?}");
        if text != last {
            writes_seen += 1;
            last = text;
        }
        let stray = stray_files(&dir);
        max_tmp = max_tmp.max(stray.len());
        mid_write += (!stray.is_empty()) as usize;
        assert!(
            stray.len() <= 1,
            "round {round}: temporary files pile up: {stray:?}"
        );
    }
    println!(
        "crash safety: {ROUNDS} kill -9 rounds in {:?}; the file changed in {writes_seen}; {mid_write} kills left a temporary file (at most {max_tmp} at once)",
        t0.elapsed()
    );
    assert!(
        writes_seen > ROUNDS / 10,
        "too few writes to prove anything: {writes_seen}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// 500 connections that send nothing and never read stay open while normal
/// probes are still answered and heft's memory stays small.
#[test]
fn slow_clients() {
    raise_nofile(2048);
    let a = Agent::start(Some(STATE), &[]);
    let rss0 = vm_kib(a.pid(), "VmRSS");
    let mut idle = Vec::new();
    let mut worst = Duration::ZERO;
    let t0 = Instant::now();
    for i in 0..500 {
        idle.push(TcpStream::connect(("127.0.0.1", a.port)).unwrap());
        if i % 50 == 49 {
            let (r, t) = timed_probe(a.port, b"\n");
            assert_eq!(
                r.unwrap(),
                "up ready 77% maxconn:300\n",
                "with {} idle",
                i + 1
            );
            worst = worst.max(t);
        }
    }
    // All 500 held open: probes keep being answered, with and without payload.
    let mut times = Vec::new();
    for i in 0..40 {
        let (r, t) = timed_probe(a.port, if i % 2 == 0 { b"\n" } else { b"" });
        assert_eq!(r.unwrap(), "up ready 77% maxconn:300\n");
        times.push(t);
    }
    let (p50, p99, max) = percentiles(&mut times);
    let rss = vm_kib(a.pid(), "VmRSS");
    let hwm = vm_kib(a.pid(), "VmHWM");
    println!(
        "slow clients: 500 idle connections opened in {:?} (worst probe meanwhile {worst:?}); then 40 probes p50 {p50:?} p99 {p99:?} max {max:?}; VmRSS {rss0} KiB before, {rss} KiB with them, VmHWM {hwm} KiB",
        t0.elapsed()
    );
    assert!(max < Duration::from_secs(2), "a probe took {max:?}");
    assert!(rss < rss0 + 512, "VmRSS grew from {rss0} to {rss} KiB");
    assert!(a.child.id() > 0);
    drop(idle);
    assert_eq!(a.stop(), Some(0));
}

/// With `ulimit -n 16` and 64 parallel clients heft runs out of descriptors,
/// keeps running, and serves normally once the load drops.
#[test]
fn descriptor_exhaustion() {
    let dir = temp_dir("emfile");
    std::fs::write(dir.join("state.json"), STATE).unwrap();
    let port = free_port();
    let child = spawn(&dir, port, &[], Some("ulimit -n 16"));
    let a = Agent {
        child,
        port,
        http_port: 0,
        state: dir.join("state.json"),
        pid_file: dir.join("heft.pid"),
        dir,
    };
    a.wait_listening();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", a.pid())).unwrap();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    assert!(nofile.split_whitespace().nth(3) == Some("16"), "{nofile}");
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Mutex::new((0u64, 0u64)));
    let mut clients = Vec::new();
    for i in 0..64 {
        let stop = stop.clone();
        let counts = counts.clone();
        clients.push(std::thread::spawn(move || {
            let (mut ok, mut bad) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                // Half hold their connection for a while without sending, to use up descriptors.
                let r = (|| -> std::io::Result<String> {
                    let mut s = TcpStream::connect(("127.0.0.1", port))?;
                    s.set_read_timeout(Some(Duration::from_secs(3)))?;
                    if i % 2 == 0 {
                        s.write_all(b"\n")?;
                    }
                    let mut out = String::new();
                    s.read_to_string(&mut out)?;
                    let _ = s.shutdown(Shutdown::Both);
                    Ok(out)
                })();
                match r {
                    Ok(l)
                        if l == "up ready 77% maxconn:300\n"
                            || l == "down ready 77% maxconn:300\n" =>
                    {
                        ok += 1
                    }
                    _ => bad += 1,
                }
            }
            let mut c = counts.lock().unwrap();
            c.0 += ok;
            c.1 += bad;
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // A state change while descriptors are short: the write may fail; it must not kill heft.
    a.signal(libc::SIGUSR2);
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let (ok, bad) = *counts.lock().unwrap();
    let mut alive = a;
    assert!(
        alive.child.try_wait().unwrap().is_none(),
        "heft died under descriptor exhaustion; log:\n{}",
        alive.log()
    );
    let t = Instant::now();
    assert!(
        wait_serving(alive.port, Duration::from_secs(5)),
        "not serving again; log:\n{}",
        alive.log()
    );
    let back = t.elapsed();
    alive.expect_reply("down ready 77% maxconn:300\n");
    alive.signal(libc::SIGUSR1);
    alive.expect_reply("up ready 77% maxconn:300\n");
    assert!(
        wait_for(Duration::from_secs(10), || alive
            .state_text()
            .contains("\"UP\"")),
        "file not written after the load dropped: {}",
        alive.state_text()
    );
    let log = alive.log();
    let emfile = log.lines().filter(|l| l.contains("EMFILE")).count();
    for l in log.lines().filter(|l| !l.contains("state: ")) {
        println!("  heft: {l}");
    }
    println!(
        "descriptor exhaustion: ulimit -n 16, 64 clients for 3 s: {ok} answered, {bad} failed; {emfile} EMFILE log line(s); serving again after {back:?}"
    );
    assert!(ok > 0, "nothing answered under load");
    assert_eq!(alive.stop(), Some(0));
}

/// VmHWM after 100,000 probes and 10,000 SIGHUPs is within 16 KiB of its
/// value after the first 1,000 probes.
#[test]
fn memory_does_not_grow() {
    if skip_under_runner(READS_PROC_STATUS) {
        return;
    }
    const PROBES: u64 = 100_000;
    const HUPS: u64 = 10_000;
    let a = Agent::start(
        Some(
            r#"{"status":"UP","weight":77,"maxconn":300,"services":{"web":{"status":"DRAIN","weight":5}}}"#,
        ),
        &[],
    );
    let (port, http_port) = (a.port, a.http_port);
    let pid = a.pid();
    let run = |n: u64, threads: u64| {
        let hs: Vec<_> = (0..threads)
            .map(|k| {
                std::thread::spawn(move || {
                    let mut bad = 0u64;
                    for i in 0..n / threads {
                        // Mostly plain probes, some naming a service, some HTTP.
                        let (port, payload): (u16, &[u8]) = match (i + k) % 10 {
                            0 => (port, b"web\n"),
                            1 => (http_port, b"GET /metrics HTTP/1.0\r\n\r\n"),
                            2 => (port, b"nosuch\n"),
                            3 => (http_port, b"GET /web HTTP/1.0\r\n\r\n"),
                            _ => (port, b"\n"),
                        };
                        match probe_port(port, payload) {
                            Ok(r) if !r.is_empty() && r.ends_with('\n') => {}
                            _ => bad += 1,
                        }
                    }
                    bad
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    };
    let t = Instant::now();
    assert_eq!(run(1_000, 4), 0);
    let hwm0 = vm_kib(pid, "VmHWM");
    let stop = Arc::new(AtomicBool::new(false));
    let hup = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while sent < HUPS {
                kill(pid, libc::SIGHUP);
                sent += 1;
                std::thread::sleep(Duration::from_micros(500));
            }
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
            sent
        })
    };
    let bad = run(PROBES - 1_000, 4);
    stop.store(true, Ordering::Relaxed);
    let hups = hup.join().unwrap();
    let hwm = vm_kib(pid, "VmHWM");
    let rss = vm_kib(pid, "VmRSS");
    println!(
        "memory: VmHWM {hwm0} KiB after 1,000 probes, {hwm} KiB after {PROBES} probes and {hups} SIGHUPs ({:?}); VmRSS {rss} KiB; {bad} failed probes",
        t.elapsed()
    );
    assert_eq!(bad, 0);
    assert_eq!(hups, HUPS);
    assert!(hwm <= hwm0 + 16, "VmHWM grew from {hwm0} to {hwm} KiB");
    assert_eq!(a.probe_with(b"\n"), "up ready 77% maxconn:300\n");
    assert_eq!(a.stop(), Some(0));
}
