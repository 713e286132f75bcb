//! Load feedback through the real binary on 127.0.0.1: `file` rules driven by
//! the test, `http` rules against a test server that turns slow, fails, sends
//! JSON and stops answering, CPU load made by the test, `load` and `mem`
//! checked against `/proc`, precedence of the state file and signals,
//! configuration errors at start-up and on SIGHUP, and no wake-ups when idle.
//!
//! Expected weights come from the issue's formulas computed here in floating
//! point, not from heft's own integer code; the values used are chosen away
//! from rounding ties. `cargo test --test feedback -- --nocapture` prints what
//! the timing tests measured.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Tests that measure time or make CPU load take this, so they do not disturb each other.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A private directory for configuration and value files, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        Dir(temp_dir(tag))
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    /// Writes `name` atomically (a reader never sees it empty or half-written).
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        write_atomic(&p, text);
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts heft with `state` and the feedback configuration `cfg` written to `dir`.
fn start(dir: &Dir, state: &str, cfg: &str, extra: &[&str]) -> Agent {
    let cfg_path = dir.write("feedback.json", cfg);
    let mut args = vec!["--feedback", cfg_path.to_str().unwrap()];
    args.extend_from_slice(extra);
    Agent::start(Some(state), &args)
}

/// Starts heft on `state` with one `file` rule (other members `rule`, 100 ms
/// interval) reading a value file that holds `first`; returns the directory,
/// the value file and the agent.
fn one_rule(
    tag: &str,
    first: &str,
    rule: &str,
    state: &str,
    extra: &[&str],
) -> (Dir, PathBuf, Agent) {
    let d = Dir::new(tag);
    let v = d.write("value", first);
    let a = start(&d, state, &config(100, &[file_rule(&v, rule)]), extra);
    (d, v, a)
}

/// A `file` rule reading `path`, with extra members `more` (e.g. `"curve":"linear","limit":100`).
fn file_rule(path: &Path, more: &str) -> String {
    format!(r#"{{"metric":"file","path":"{}",{more}}}"#, path.display())
}

fn config(interval_ms: u32, rules: &[String]) -> String {
    format!(
        r#"{{"interval_ms":{interval_ms},"rules":[{}]}}"#,
        rules.join(",")
    )
}

/// The issue's linear curve: M at or below x0, m at x1, a straight line between.
fn linear(x: f64, x0: f64, x1: f64, m: f64, max: f64) -> f64 {
    let t = ((x - x0) / (x1 - x0)).clamp(0.0, 1.0);
    max - (max - m) * t
}

/// The issue's first-order curve: (M−m+1)·e^(−k·t) + m − 1 with k = ln(M−m+1).
fn first_order(x: f64, x0: f64, x1: f64, m: f64, max: f64) -> f64 {
    let t = ((x - x0) / (x1 - x0)).clamp(0.0, 1.0);
    let r = max - m + 1.0;
    r * (-r.ln() * t).exp() + m - 1.0
}

/// Rounds a formula's weight, refusing values too close to a tie to be a fair test.
fn pct(w: f64) -> u32 {
    let frac = w - w.floor();
    assert!(
        (frac - 0.5).abs() > 0.05,
        "{w} is too close to a rounding tie to test exactly"
    );
    w.round() as u32
}

/// What an UP entry of file weight `file_w` shows for rule weight `rule_pct` and minimum `min`.
fn shown(file_w: u32, rule_pct: u32, min: u32) -> u32 {
    if rule_pct >= 100 {
        return file_w;
    }
    (file_w * rule_pct / 100).max(min.min(file_w))
}

/// Waits until a probe (with `payload`) returns `want`, for up to `limit`.
fn expect_within(a: &Agent, payload: &[u8], want: &str, limit: Duration) {
    let mut last = String::new();
    let ok = wait_for(limit, || {
        last = a.probe_with(payload);
        last == want
    });
    assert!(
        ok,
        "probe {payload:?}: wanted {want:?}, got {last:?}; log:\n{}",
        a.log()
    );
}

fn expect(a: &Agent, want: &str) {
    expect_within(a, b"", want, Duration::from_secs(10));
}

/// Writes the agent's state file, sends SIGHUP and waits for `want`.
fn reload_state(a: &Agent, state: &str, want: &str) {
    write_atomic(&a.state, state);
    a.signal(libc::SIGHUP);
    expect(a, want);
}

/// The weight in a reply line such as `up ready 41%`.
fn weight(reply: &str) -> u32 {
    reply
        .split_whitespace()
        .find_map(|w| w.strip_suffix('%'))
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no weight in {reply:?}"))
}

/// Asserts that every probe for `d` returns `want`.
fn holds_for(a: &Agent, payload: &[u8], want: &str, d: Duration) {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < d {
        let got = a.probe_with(payload);
        assert_eq!(
            got,
            want,
            "changed after {:?} ({n} probes); log:\n{}",
            start.elapsed(),
            a.log()
        );
        n += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn linear_curve_sets_the_exact_weight_and_clamps() {
    let (_d, v, a) = one_rule(
        "fb-linear",
        "30",
        r#""curve":"linear","low":0,"limit":100"#,
        r#"{"status":"UP","weight":100}"#,
        &[],
    );
    for x in [30.0, 60.0, 85.0] {
        write_atomic(&v, &format!("{x}"));
        let w = pct(linear(x, 0.0, 100.0, 1.0, 100.0));
        expect(&a, &format!("up ready {w}%\n"));
    }
    // Clamping: at or below the lower bound 100%, at or past the limit the minimum (1).
    write_atomic(&v, "0");
    expect(&a, "up ready 100%\n");
    write_atomic(&v, "100");
    expect(&a, "up ready 1%\n");
    write_atomic(&v, "100000");
    expect(&a, "up ready 1%\n");
    // Changes are logged without -v; samples are not.
    let log = a.log();
    assert!(log.contains("feedback: up ready 70%"), "log:\n{log}");
    assert!(
        !log.contains("sample "),
        "samples logged without -v:\n{log}"
    );
    assert_eq!(a.stop(), Some(0));
}

#[test]
fn linear_curve_with_a_lower_bound_and_max_weight() {
    let (_d, v, a) = one_rule(
        "fb-linear2",
        "10",
        r#""curve":"linear","low":20,"limit":80,"max_weight":80"#,
        r#"{"status":"UP","weight":100}"#,
        &[],
    );
    // Below the lower bound the rule gives its maximum weight, 80.
    expect(&a, "up ready 80%\n");
    for x in [35.0, 65.0] {
        write_atomic(&v, &format!("{x}"));
        let w = pct(linear(x, 20.0, 80.0, 1.0, 80.0));
        expect(&a, &format!("up ready {w}%\n"));
    }
    write_atomic(&v, "80");
    expect(&a, "up ready 1%\n");
}

#[test]
fn first_order_curve_sets_the_exact_weight() {
    let d = Dir::new("fb-first");
    let v = d.write("value", "0");
    let w2 = d.write("value2", "0");
    let cfg = config(
        100,
        &[
            file_rule(&v, r#""curve":"first-order","limit":100"#),
            file_rule(
                &w2,
                r#""name":"floor10","curve":"first-order","limit":100,"min_weight":10"#,
            ),
        ],
    );
    let a = start(&d, r#"{"status":"UP","weight":100}"#, &cfg, &[]);
    expect(&a, "up ready 100%\n");
    for x in [10.0, 20.0, 30.0, 50.0, 70.0] {
        write_atomic(&v, &format!("{x}"));
        let w = pct(first_order(x, 0.0, 100.0, 1.0, 100.0));
        expect(&a, &format!("up ready {w}%\n"));
    }
    write_atomic(&v, "100");
    expect(&a, "up ready 1%\n");
    // The second rule alone (the first back at 0): minimum 10, so M−m+1 = 91.
    write_atomic(&v, "0");
    for x in [20.0, 40.0] {
        write_atomic(&w2, &format!("{x}"));
        let w = pct(first_order(x, 0.0, 100.0, 10.0, 100.0));
        expect(&a, &format!("up ready {w}%\n"));
    }
    write_atomic(&w2, "1000");
    expect(&a, "up ready 10%\n");
    // Both rules: the lowest weight wins.
    write_atomic(&w2, "20"); // 46%
    write_atomic(&v, "30"); // 25%
    let lowest = pct(first_order(30.0, 0.0, 100.0, 1.0, 100.0))
        .min(pct(first_order(20.0, 0.0, 100.0, 10.0, 100.0)));
    expect(&a, &format!("up ready {lowest}%\n"));
}

#[test]
fn file_weight_times_rule_weight_never_below_the_minimum() {
    let d = Dir::new("fb-product");
    let v = d.write("value", "30");
    let m = d.write("value-min10", "0");
    let cfg = config(
        100,
        &[
            file_rule(&v, r#""curve":"linear","limit":100"#),
            file_rule(
                &m,
                r#""name":"min10","curve":"linear","limit":100,"min_weight":10"#,
            ),
        ],
    );
    let a = start(&d, r#"{"status":"UP","weight":80,"maxconn":30}"#, &cfg, &[]);
    for x in [30.0, 60.0, 85.0] {
        write_atomic(&v, &format!("{x}"));
        let w = shown(80, pct(linear(x, 0.0, 100.0, 1.0, 100.0)), 1);
        expect(
            &a,
            &format!("up ready {w}%\n").replace("%\n", "% maxconn:30\n"),
        );
    }
    // 80 × 1% = 0.8: the default minimum 1 holds.
    write_atomic(&v, "100");
    expect(&a, "up ready 1% maxconn:30\n");
    // Only the second rule: 80 × 10% = 8, below its minimum 10.
    write_atomic(&v, "0");
    write_atomic(&m, "100");
    assert_eq!(shown(80, 10, 10), 10);
    expect(&a, "up ready 10% maxconn:30\n");
    // A file weight already below the minimum is left alone, not raised.
    reload_state(&a, r#"{"status":"UP","weight":5}"#, "up ready 5%\n");
    reload_state(&a, r#"{"status":"UP","weight":0}"#, "up ready 0%\n");
    reload_state(&a, r#"{"status":"UP","weight":200}"#, "up ready 20%\n");
    // An unreadable value file: the rule has no say until it can be read again.
    write_atomic(&m, "0");
    expect(&a, "up ready 200%\n");
    write_atomic(&v, "30");
    expect(&a, &format!("up ready {}%\n", shown(200, 70, 1)));
    std::fs::remove_file(&v).unwrap();
    expect(&a, "up ready 200%\n");
    wait_log(&a, "feedback: file: cannot read a number from");
    write_atomic(&v, "not a number");
    holds_for(&a, b"", "up ready 200%\n", Duration::from_millis(300));
    write_atomic(&v, "85");
    expect(&a, &format!("up ready {}%\n", shown(200, 16, 1)));
    assert!(
        a.log().contains("feedback: file readable again"),
        "log:\n{}",
        a.log()
    );
}

#[test]
fn failure_threshold_trips_and_clears_only_after_the_hold_time() {
    let (_d, v, a) = one_rule(
        "fb-hyst",
        "50",
        r#""name":"appload","decimals":1,"enter":95,"leave":80,"hold_ms":1500"#,
        r#"{"status":"UP","weight":60}"#,
        &[],
    );
    expect(&a, "up ready 60%\n");
    let down = "down ready 60% #appload 97.5 > 95.0\n";
    // At enter is not above it.
    write_atomic(&v, "95");
    holds_for(&a, b"", "up ready 60%\n", Duration::from_millis(400));
    write_atomic(&v, "97.5");
    expect(&a, down);
    // Between leave and enter: stays down well past the hold time, also
    // across a SIGHUP that re-reads an unchanged rule (a rule reset by the
    // reload would start untripped, and 90 would not trip it again).
    write_atomic(&v, "90");
    holds_for(&a, b"", down, Duration::from_millis(300));
    a.signal(libc::SIGHUP);
    assert!(wait_for(Duration::from_secs(5), || a
        .log()
        .matches("feedback: 1 rule(s) from")
        .count()
        == 2));
    holds_for(&a, b"", down, Duration::from_millis(1700));
    // Below leave for a while, then back above it: the hold starts again.
    write_atomic(&v, "50");
    holds_for(&a, b"", down, Duration::from_millis(500));
    write_atomic(&v, "85");
    holds_for(&a, b"", down, Duration::from_millis(2000));
    // Below leave for the whole hold time: up again, not sooner.
    write_atomic(&v, "79.9");
    let t = Instant::now();
    let mut last = String::new();
    assert!(
        wait_for(Duration::from_secs(10), || {
            last = a.probe();
            if last != "up ready 60%\n" {
                assert_eq!(last, down, "log:\n{}", a.log());
                false
            } else {
                true
            }
        }),
        "never came back: {last:?}; log:\n{}",
        a.log()
    );
    let took = t.elapsed();
    println!("cleared {took:?} after the value went below leave (hold 1500 ms)");
    assert!(
        took >= Duration::from_millis(1490),
        "cleared after {took:?}"
    );
    assert!(took < Duration::from_millis(4000), "cleared after {took:?}");
    let log = a.log();
    assert!(
        log.contains("feedback: appload 97.5 > 95.0: down"),
        "log:\n{log}"
    );
    assert!(
        log.contains("feedback: appload cleared (below 80.0 for 1500 ms)"),
        "log:\n{log}"
    );
    // The issue's example: a curve and a threshold on one rule, file weight 80.
    let (_d2, _, b) = one_rule(
        "fb-hyst2",
        "99",
        r#""curve":"linear","limit":100,"enter":95,"leave":80"#,
        r#"{"status":"UP","weight":80}"#,
        &[],
    );
    expect(&b, "down ready 1% #file 99 > 95\n");
}

#[test]
fn state_file_and_signals_win_over_feedback() {
    let (_d, v, a) = one_rule(
        "fb-precedence",
        "30",
        r#""curve":"linear","limit":100,"enter":95,"leave":80"#,
        r#"{"status":"UP","weight":80}"#,
        &[],
    );
    let fed = format!("up ready {}%\n", shown(80, 70, 1));
    expect(&a, &fed);
    let cases = [
        (r#"{"status":"DRAIN","weight":80}"#, "up drain 80%\n"),
        (r#"{"status":"MAINT","weight":80}"#, "maint 80%\n"),
        (
            r#"{"status":"DOWN","weight":80,"reason":"deploying"}"#,
            "down ready 80% #deploying\n",
        ),
        (r#"{"status":"FAIL","weight":80}"#, "fail ready 80%\n"),
        (r#"{"status":"STOPPED","weight":80}"#, "stopped ready 80%\n"),
        (r#"{"status":"READY","weight":80}"#, fed.as_str()),
    ];
    for (state, want) in cases {
        reload_state(&a, state, want);
    }
    // A tripped failure rule does not replace the file's own DOWN reason.
    write_atomic(&v, "99");
    expect(&a, "down ready 1% #file 99 > 95\n");
    reload_state(
        &a,
        r#"{"status":"DOWN","weight":80,"reason":"deploying"}"#,
        "down ready 80% #deploying\n",
    );
    reload_state(&a, r#"{"status":"DRAIN","weight":80}"#, "up drain 80%\n");
    reload_state(
        &a,
        r#"{"status":"UP","weight":80}"#,
        "down ready 1% #file 99 > 95\n",
    );
    write_atomic(&v, "30");
    expect(&a, &fed);
    // SIGUSR2 (DOWN) wins; SIGUSR1 (UP) puts feedback back.
    a.signal(libc::SIGUSR2);
    expect(&a, "down ready 80%\n");
    write_atomic(&v, "60");
    holds_for(&a, b"", "down ready 80%\n", Duration::from_millis(300));
    a.signal(libc::SIGUSR1);
    expect(&a, &format!("up ready {}%\n", shown(80, 41, 1)));
    assert_eq!(a.stop(), Some(0));
}

#[test]
fn signals_write_the_file_weight_not_the_fed_back_one() {
    let (_d, _, a) = one_rule(
        "fb-persist",
        "60",
        r#""curve":"linear","limit":100"#,
        r#"{"status":"UP","weight":80}"#,
        &[],
    );
    expect(&a, "up ready 32%\n");
    a.signal(libc::SIGUSR2);
    expect(&a, "down ready 80%\n");
    assert!(
        wait_for(Duration::from_secs(5), || a.state_text().contains("DOWN")),
        "state file: {}",
        a.state_text()
    );
    let text = a.state_text();
    assert!(text.contains("\"weight\":80"), "state file: {text}");
}

#[test]
fn rules_may_be_global_or_name_a_service() {
    let d = Dir::new("fb-services");
    let g = d.write("global", "30");
    let w = d.write("web", "60");
    let cfg = config(
        100,
        &[
            file_rule(&g, r#""name":"hostload","curve":"linear","limit":100"#),
            file_rule(
                &w,
                r#""name":"webq","service":"web","curve":"linear","limit":100,"enter":95,"leave":80"#,
            ),
        ],
    );
    let state = r#"{"status":"UP","weight":100,"services":{
        "web":{"status":"UP","weight":100},
        "db":{"status":"UP","weight":50},
        "batch":{"status":"DRAIN","weight":100}}}"#;
    let a = start(&d, state, &cfg, &[]);
    let g70 = pct(linear(30.0, 0.0, 100.0, 1.0, 100.0));
    let w41 = pct(linear(60.0, 0.0, 100.0, 1.0, 100.0));
    let limit = Duration::from_secs(10);
    expect_within(&a, b"", &format!("up ready {g70}%\n"), limit);
    expect_within(
        &a,
        b"web\n",
        &format!("up ready {}%\n", g70.min(w41)),
        limit,
    );
    expect_within(
        &a,
        b"db\n",
        &format!("up ready {}%\n", shown(50, g70, 1)),
        limit,
    );
    expect_within(&a, b"batch\n", "up drain 100%\n", limit);
    write_atomic(&w, "99");
    expect_within(&a, b"web\n", "down ready 2% #webq 99 > 95\n", limit);
    holds_for(
        &a,
        b"db\n",
        &format!("up ready {}%\n", shown(50, g70, 1)),
        Duration::from_millis(300),
    );
    assert_eq!(a.probe(), format!("up ready {g70}%\n"));
    // A global rule reaches every UP entry.
    write_atomic(&g, "100");
    expect_within(&a, b"", "up ready 1%\n", limit);
    expect_within(&a, b"db\n", "up ready 1%\n", limit);
    expect_within(&a, b"web\n", "down ready 1% #webq 99 > 95\n", limit);
    expect_within(&a, b"batch\n", "up drain 100%\n", limit);
    let log = a.log();
    assert!(
        log.contains("feedback: web down ready 2% #webq 99 > 95"),
        "log:\n{log}"
    );
    assert!(log.contains("feedback: db up ready 1%"), "log:\n{log}");
}

#[test]
fn smoothing_keeps_a_spike_from_moving_the_weight_fully() {
    let (_d, v, a) = one_rule(
        "fb-smooth",
        "0",
        r#""curve":"linear","limit":100,"smooth_ms":1000"#,
        r#"{"status":"UP","weight":100}"#,
        &["-v"],
    );
    wait_log(&a, "sample file 0 smoothed 0 weight 100%");
    // A spike: 100 until the first sample sees it, then 0 again.
    write_atomic(&v, "100");
    let mut first = 100;
    assert!(wait_for(Duration::from_secs(5), || {
        first = weight(&a.probe());
        first < 100
    }));
    write_atomic(&v, "0");
    println!("one spike to 100 moved the weight to {first}% (1% without smoothing)");
    assert!(first >= 50, "one spike moved the weight to {first}%");
    let spike = a
        .log()
        .lines()
        .find(|l| l.contains("sample file 100 smoothed"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no sample line; log:\n{}", a.log()));
    let smoothed: u32 = spike
        .split_whitespace()
        .skip_while(|w| *w != "smoothed")
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap();
    assert!(smoothed <= 30, "{spike}");
    expect(&a, "up ready 100%\n");
    // A lasting change does get through, gradually.
    write_atomic(&v, "100");
    let mut seen = std::collections::BTreeSet::new();
    assert!(
        wait_for(Duration::from_secs(15), || {
            let w = weight(&a.probe());
            seen.insert(w);
            w <= 5
        }),
        "weights seen {seen:?}; log:\n{}",
        a.log()
    );
    let between = seen.iter().filter(|w| (6..100).contains(*w)).count();
    println!("weights on the way down: {seen:?}");
    assert!(between >= 5, "jumped: only {seen:?}");
}

// ---------------------------------------------------------------------------
// http rules against a test server

/// What the test server does with the next connections.
#[derive(Clone, Debug)]
enum Mode {
    /// Answer at once with this status and body.
    Reply(u16, String),
    /// Answer like `Reply`, after a delay.
    Slow(Duration, u16, String),
    /// Accept, read nothing, answer nothing, keep the connection open.
    Hang,
    /// Answer at once with exactly these bytes.
    Raw(&'static str),
}

/// A tiny HTTP/1.x server on 127.0.0.1 whose behaviour the test switches.
struct HttpServer {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    fn start(mode: Mode) -> HttpServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(mode));
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, h, s) = (mode.clone(), hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in l.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let mode = m.lock().unwrap().clone();
                h.fetch_add(1, Ordering::SeqCst);
                match mode {
                    Mode::Hang => held.push(conn),
                    Mode::Reply(code, body) => answer(conn, code, &body),
                    Mode::Raw(bytes) => answer_raw(conn, bytes.as_bytes()),
                    Mode::Slow(d, code, body) => {
                        std::thread::spawn(move || {
                            std::thread::sleep(d);
                            answer(conn, code, &body);
                        });
                    }
                }
            }
        });
        HttpServer {
            port,
            mode,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads the request head, then sends one answer and closes.
fn answer(s: TcpStream, code: u16, body: &str) {
    let head = format!(
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    answer_raw(s, &[head.as_bytes(), body.as_bytes()].concat());
}

/// Reads the request head, then sends `bytes` and closes.
fn answer_raw(mut s: TcpStream, bytes: &[u8]) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut req = Vec::new();
    let mut buf = [0u8; 512];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    let _ = s.read(&mut buf);
}

fn json(body: &str) -> Mode {
    Mode::Reply(200, body.into())
}

#[test]
fn http_status_json_field_and_timeout() {
    let srv = HttpServer::start(json(r#"{"nested":{"load":99},"load":20,"ok":true}"#));
    let d = Dir::new("fb-http");
    let rule = format!(
        r#"{{"metric":"http","url":"{}","field":"load","curve":"first-order","limit":100,"timeout_ms":300}}"#,
        srv.url("/health")
    );
    let a = start(
        &d,
        r#"{"status":"UP","weight":100}"#,
        &config(100, &[rule]),
        &[],
    );
    // The number of the top-level field, not the nested one, feeds the curve.
    let w20 = pct(first_order(20.0, 0.0, 100.0, 1.0, 100.0));
    expect(&a, &format!("up ready {w20}%\n"));
    srv.set(json(r#"{"load": "10"}"#));
    let w10 = pct(first_order(10.0, 0.0, 100.0, 1.0, 100.0));
    expect(&a, &format!("up ready {w10}%\n"));
    // Any other status is a failure; with no staleness allowance (stale_ms 0) it is down at once.
    srv.set(Mode::Reply(500, "{\"load\":10}".into()));
    expect(&a, &format!("down ready {w10}% #http status 500\n"));
    srv.set(json(r#"{"load":10}"#));
    expect(&a, &format!("up ready {w10}%\n"));
    // 2xx without the field is a failure too.
    srv.set(json(r#"{"queue":10}"#));
    expect(
        &a,
        &format!("down ready {w10}% #http no number in the body\n"),
    );
    // Slow but within timeout_ms: fine. Slower: a timeout.
    srv.set(Mode::Slow(
        Duration::from_millis(50),
        200,
        r#"{"load":30}"#.into(),
    ));
    let w30 = pct(first_order(30.0, 0.0, 100.0, 1.0, 100.0));
    expect(&a, &format!("up ready {w30}%\n"));
    srv.set(Mode::Slow(
        Duration::from_millis(900),
        200,
        r#"{"load":30}"#.into(),
    ));
    expect(&a, &format!("down ready {w30}% #http timeout\n"));
    srv.set(json(r#"{"load":0}"#));
    expect(&a, "up ready 100%\n");
    let log = a.log();
    assert!(
        log.contains("feedback: check failed: http status 500"),
        "log:\n{log}"
    );
    assert!(log.contains("feedback: http healthy again"), "log:\n{log}");
    // The request heft sent.
    assert!(srv.hits() > 5);
}

/// Starts heft on `{"status":"UP","weight":90}` in `d` with one http rule,
/// `web`, checking `srv`'s `/`.
fn start_web(d: &Dir, srv: &HttpServer) -> Agent {
    let rules = [format!(
        r#"{{"metric":"http","name":"web","url":"{}","timeout_ms":500}}"#,
        srv.url("/")
    )];
    start(
        d,
        r#"{"status":"UP","weight":90}"#,
        &config(100, &rules),
        &[],
    )
}

#[test]
fn http_status_alone_decides_health() {
    let srv = HttpServer::start(Mode::Reply(200, "OK".into()));
    let d = Dir::new("fb-http-plain");
    let a = start_web(&d, &srv);
    expect(&a, "up ready 90%\n");
    srv.set(Mode::Reply(204, String::new()));
    holds_for(&a, b"", "up ready 90%\n", Duration::from_millis(300));
    srv.set(Mode::Reply(503, "busy".into()));
    expect(&a, "down ready 90% #web status 503\n");
    srv.set(Mode::Reply(301, String::new()));
    expect(&a, "down ready 90% #web status 301\n");
    srv.set(Mode::Reply(200, "OK".into()));
    expect(&a, "up ready 90%\n");
    // Nothing listening at all: down at once, the errno as the reason.
    let d2 = Dir::new("fb-http-refused");
    let rules = [format!(
        r#"{{"metric":"http","url":"http://127.0.0.1:{}/"}}"#,
        free_port()
    )];
    let b = start(&d2, r#"{"status":"UP"}"#, &config(100, &rules), &[]);
    expect(&b, "down ready 100% #http ECONNREFUSED\n");
}

/// A status code is exactly three digits: `HTTP/1.0 2000000000000` is no
/// 200 (nor any status) but a bad reply.
#[test]
fn an_overlong_status_code_is_a_bad_reply() {
    let srv = HttpServer::start(Mode::Raw("HTTP/1.0 2000000000000 OK\r\n\r\n"));
    let d = Dir::new("fb-http-overlong");
    let a = start_web(&d, &srv);
    expect(&a, "down ready 90% #web bad reply\n");
    srv.set(Mode::Reply(200, "OK".into()));
    expect(&a, "up ready 90%\n");
    srv.set(Mode::Raw("HTTP/1.1 2001\r\n\r\n"));
    expect(&a, "down ready 90% #web bad reply\n");
}

#[test]
fn http_staleness_applies_the_configured_behaviour() {
    let srv = HttpServer::start(json(r#"{"q":60}"#));
    let d = Dir::new("fb-stale");
    let rules: Vec<String> = ["down", "keep", "ignore", "min"]
        .iter()
        .map(|s| {
            format!(
                r#"{{"metric":"http","name":"h-{s}","service":"{s}","url":"{}","field":"q","curve":"linear","limit":100,"min_weight":5,"timeout_ms":200,"stale_ms":1500,"stale":"{s}"}}"#,
                srv.url("/load")
            )
        })
        .collect();
    let state = r#"{"status":"UP","services":{"down":{"status":"UP"},"keep":{"status":"UP"},"ignore":{"status":"UP"},"min":{"status":"UP"}}}"#;
    let a = start(&d, state, &config(100, &rules), &[]);
    let w60 = pct(linear(60.0, 0.0, 100.0, 5.0, 100.0));
    let up60 = format!("up ready {w60}%\n");
    for s in ["down", "keep", "ignore", "min"] {
        expect_within(
            &a,
            format!("{s}\n").as_bytes(),
            &up60,
            Duration::from_secs(10),
        );
    }
    assert_eq!(a.probe(), "up ready 100%\n");
    // The server stops answering: the last good answer is used for stale_ms.
    let _g = serial();
    srv.set(Mode::Hang);
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(1000) {
        for s in ["down", "keep", "ignore", "min"] {
            let got = a.probe_with(format!("{s}\n").as_bytes());
            assert_eq!(got, up60, "{s} after {:?}; log:\n{}", t.elapsed(), a.log());
        }
    }
    let limit = Duration::from_secs(10);
    expect_within(
        &a,
        b"down\n",
        &format!("down ready {w60}% #h-down timeout\n"),
        limit,
    );
    let took = t.elapsed();
    println!("stale 'down' applied {took:?} after the server stopped answering (stale_ms 1500)");
    assert!(took >= Duration::from_millis(1300), "{took:?}");
    expect_within(&a, b"ignore\n", "up ready 100%\n", limit);
    expect_within(&a, b"min\n", "up ready 5%\n", limit);
    assert_eq!(a.probe_with(b"keep\n"), up60);
    drop(_g);
    // Answers again: every rule follows the new value.
    srv.set(json(r#"{"q":20}"#));
    let w20 = pct(linear(20.0, 0.0, 100.0, 5.0, 100.0));
    for s in ["down", "keep", "ignore", "min"] {
        expect_within(
            &a,
            format!("{s}\n").as_bytes(),
            &format!("up ready {w20}%\n"),
            limit,
        );
    }
}

#[test]
fn a_hanging_health_url_never_delays_a_probe() {
    let srv = HttpServer::start(Mode::Hang);
    let d = Dir::new("fb-hang");
    let rules = [format!(
        r#"{{"metric":"http","url":"{}","timeout_ms":3000,"stale":"keep"}}"#,
        srv.url("/")
    )];
    let a = start(
        &d,
        r#"{"status":"UP","weight":100}"#,
        &config(100, &rules),
        &[],
    );
    let _g = serial();
    assert!(wait_for(Duration::from_secs(5), || srv.hits() >= 1));
    let mut worst = Duration::ZERO;
    let mut total = Duration::ZERO;
    let mut n = 0;
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(1500) {
        n += 1;
        std::thread::sleep(Duration::from_millis(2));
        let s = Instant::now();
        // "\n" ends the payload at once, so heft does not wait --wait ms for one.
        let r = a.probe_with(b"\n");
        let took = s.elapsed();
        assert_eq!(r, "up ready 100%\n");
        worst = worst.max(took);
        total += took;
    }
    let span = t.elapsed();
    println!(
        "{n} probes over {span:?} while the health URL hung: mean {:?}, worst {worst:?} (http timeout 3 s)",
        total / n
    );
    assert!(worst < Duration::from_millis(300), "a probe took {worst:?}");
    // The check was really hanging all along, and then timed out.
    wait_log(&a, "feedback: check failed: http timeout");
}

// ---------------------------------------------------------------------------
// Host metrics

/// Reads the aggregate CPU line of /proc/stat as (busy, total) jiffies.
fn cpu_jiffies() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

#[test]
fn cpu_load_made_by_the_test_moves_the_weight_down_and_back() {
    let d = Dir::new("fb-cpu");
    let rules = [r#"{"metric":"cpu","curve":"linear","limit":100}"#.to_string()];
    let a = start(
        &d,
        r#"{"status":"UP","weight":100}"#,
        &config(200, &rules),
        &["-v"],
    );
    let _g = serial();
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let stop = Arc::new(AtomicBool::new(false));
    let (b0, t0) = cpu_jiffies();
    let burners: Vec<_> = (0..cpus)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for i in 0..10_000u64 {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
                    }
                    std::hint::black_box(x);
                }
            })
        })
        .collect();
    let t = Instant::now();
    let mut low = 100;
    let loaded = wait_for(Duration::from_secs(20), || {
        low = low.min(weight(&a.probe()));
        low <= 25
    });
    let took_down = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    for b in burners {
        b.join().unwrap();
    }
    let (b1, t1) = cpu_jiffies();
    let busy = (b1 - b0) * 100 / (t1 - t0).max(1);
    assert!(
        loaded,
        "weight only fell to {low}% under {cpus} busy threads (host busy {busy}%); log:\n{}",
        a.log()
    );
    // Others may share the host (a compiler takes a whole core): 45% means
    // the host is at most about half busy, i.e. our load is gone.
    let t = Instant::now();
    let (b2, t2) = cpu_jiffies();
    let mut high = 0;
    let back = wait_for(Duration::from_secs(30), || {
        high = high.max(weight(&a.probe()));
        high >= 45
    });
    let (b3, t3) = cpu_jiffies();
    let busy_after = (b3 - b2) * 100 / (t3 - t2).max(1);
    println!(
        "{cpus} busy threads: weight {low}% after {took_down:?} (host busy {busy}%); \
         back to {high}% {:?} after they stopped (host busy {busy_after}% meanwhile)",
        t.elapsed()
    );
    assert!(
        back,
        "weight stayed at most {high}% for 30 s after the load stopped, \
         with the host {busy_after}% busy meanwhile (others' load?); log:\n{}",
        a.log()
    );
    assert!(a.log().contains("sample cpu "), "log:\n{}", a.log());
}

/// Takes the value from the latest `-v` line `sample NAME VALUE ...` in `log`.
fn last_sample(log: &str, name: &str) -> Option<(f64, u32)> {
    let prefix = format!("sample {name} ");
    let line = log.lines().rev().find(|l| l.contains(&prefix))?;
    let rest = &line[line.find(&prefix)? + prefix.len()..];
    let mut w = rest.split_whitespace();
    let value = w.next()?.parse().ok()?;
    let weight = w
        .skip_while(|x| *x != "weight")
        .nth(1)?
        .trim_end_matches('%')
        .parse()
        .ok()?;
    Some((value, weight))
}

fn proc_load_per_cpu() -> f64 {
    let l: f64 = std::fs::read_to_string("/proc/loadavg")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let cpus: u32 = online
        .trim()
        .split(',')
        .map(|p| match p.split_once('-') {
            Some((a, b)) => b.parse::<u32>().unwrap() - a.parse::<u32>().unwrap() + 1,
            None => 1,
        })
        .sum();
    l / cpus as f64
}

fn proc_mem_used_pct() -> f64 {
    let s = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb = |k: &str| -> f64 {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap()
    };
    let (total, avail) = (kb("MemTotal:"), kb("MemAvailable:"));
    (total - avail) * 100.0 / total
}

#[test]
fn load_and_mem_rules_read_sane_values() {
    let d = Dir::new("fb-loadmem");
    let rules = [
        r#"{"metric":"load","curve":"linear","limit":4}"#.to_string(),
        r#"{"metric":"mem","curve":"linear","limit":100}"#.to_string(),
    ];
    let a = start(
        &d,
        r#"{"status":"UP","weight":100}"#,
        &config(100, &rules),
        &["-v"],
    );
    // Take a few samples each, comparing with /proc read by the test at the same moment.
    let mut checked = 0;
    let mut last = (None, None);
    let ok = wait_for(Duration::from_secs(10), || {
        let before = (proc_load_per_cpu(), proc_mem_used_pct());
        let log = a.log();
        let after = (proc_load_per_cpu(), proc_mem_used_pct());
        last = (last_sample(&log, "load"), last_sample(&log, "mem"));
        if let (Some((load, lw)), Some((mem, mw))) = last {
            let lo = before.0.min(after.0) - 0.15;
            let hi = before.0.max(after.0) + 0.15;
            assert!(
                (lo..=hi).contains(&load),
                "load per CPU {load}, /proc says {} to {}",
                before.0,
                after.0
            );
            let (mlo, mhi) = (before.1.min(after.1) - 2.0, before.1.max(after.1) + 2.0);
            assert!(
                (mlo..=mhi).contains(&mem),
                "mem {mem}%, /proc says {}%",
                before.1
            );
            let want_lw = linear(load, 0.0, 4.0, 1.0, 100.0);
            let want_mw = linear(mem, 0.0, 100.0, 1.0, 100.0);
            assert!(
                (lw as f64 - want_lw).abs() <= 1.0,
                "load {load}: weight {lw}%"
            );
            assert!(
                (mw as f64 - want_mw).abs() <= 1.0,
                "mem {mem}: weight {mw}%"
            );
            checked += 1;
        }
        checked >= 5
    });
    assert!(ok, "only {checked} samples: {last:?}; log:\n{}", a.log());
    println!(
        "load per CPU {:?}, mem used {:?} (value, weight %)",
        last.0.unwrap(),
        last.1.unwrap()
    );
    // The reply has the lower of the two weights.
    let (_, lw) = last.0.unwrap();
    let (_, mw) = last.1.unwrap();
    let w = weight(&a.probe());
    assert!(
        (w as i64 - lw.min(mw) as i64).abs() <= 2,
        "reply {w}%, rules {lw}% and {mw}%"
    );
}

// ---------------------------------------------------------------------------
// Configuration

/// Runs `heft serve` with `--feedback cfg`; it must exit 100 at once, naming `field`.
fn refuses(cfg: &str, field: &str) {
    let d = Dir::new("fb-bad");
    let path = d.write("feedback.json", cfg);
    let state = d.write("state.json", r#"{"status":"UP"}"#);
    let port = free_port().to_string();
    let (code, _, err) = run_heft(
        &[
            "--addr",
            "127.0.0.1",
            "--port",
            &port,
            "--state-file",
            state.to_str().unwrap(),
            "--feedback",
            path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 100, "config {cfg}: stderr {err}");
    assert!(
        err.contains(field),
        "config {cfg}: wanted {field:?} in {err:?}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(path.to_str().unwrap()), "{err}");
}

#[test]
fn a_bad_configuration_at_start_up_exits_100_naming_the_field() {
    refuses(
        r#"{"rules":[{"metric":"cpu","curve":"linear","low":60,"limit":50}]}"#,
        "rules[0].limit: must be above low",
    );
    refuses(
        r#"{"rules":[{"metric":"cpu","enter":90},{"metric":"mem","curve":"linear","limt":5}]}"#,
        "rules[1].limt: unknown field",
    );
    refuses(
        r#"{"rules":[{"metric":"disk","enter":1}]}"#,
        "rules[0].metric",
    );
    refuses(
        r#"{"rules":[{"metric":"http","url":"https://127.0.0.1/"}]}"#,
        "rules[0].url",
    );
    refuses(
        r#"{"rules":[{"metric":"file","path":"/x","enter":9,"leave":10}]}"#,
        "rules[0].leave: must not be above enter",
    );
    refuses(r#"{"interval_ms":10}"#, "interval_ms");
    refuses(r#"{"rules":[{"metric":"cpu","enter":9}"#, "feedback");
    // A missing file, through the variable.
    let d = Dir::new("fb-missing");
    let state = d.write("state.json", r#"{"status":"UP"}"#);
    let missing = d.path("nope.json");
    let (code, _, err) = run_heft(
        &["--addr", "127.0.0.1", "--port", &free_port().to_string()],
        &[
            ("HEFT_STATE_FILE", state.to_str().unwrap()),
            ("HEFT_FEEDBACK", missing.to_str().unwrap()),
        ],
    );
    assert_eq!(code, 100, "{err}");
    assert!(err.contains("nope.json: unreadable: ENOENT"), "{err}");
}

#[test]
fn sighup_keeps_the_rules_on_a_bad_file_and_takes_a_good_one() {
    let (d, v, a) = one_rule(
        "fb-reload",
        "30",
        r#""curve":"linear","limit":100"#,
        r#"{"status":"UP","weight":100}"#,
        &[],
    );
    expect(&a, "up ready 70%\n");
    let cfg = d.path("feedback.json");
    write_atomic(
        &cfg,
        &config(
            100,
            &[file_rule(&v, r#""curve":"linear","low":200,"limit":100"#)],
        ),
    );
    a.signal(libc::SIGHUP);
    wait_log(
        &a,
        "rules[0].limit: must be above low (keeping the previous rules)",
    );
    // The previous rules still run.
    write_atomic(&v, "60");
    expect(&a, "up ready 41%\n");
    // A missing file is no better.
    std::fs::remove_file(&cfg).unwrap();
    a.signal(libc::SIGHUP);
    wait_log(&a, "unreadable: ENOENT (2) (keeping the previous rules)");
    write_atomic(&v, "30");
    expect(&a, "up ready 70%\n");
    // A good new file: its rules apply.
    write_atomic(
        &cfg,
        &config(
            100,
            &[file_rule(&v, r#""curve":"first-order","limit":100"#)],
        ),
    );
    a.signal(libc::SIGHUP);
    let w = pct(first_order(30.0, 0.0, 100.0, 1.0, 100.0));
    expect(&a, &format!("up ready {w}%\n"));
    // No rules at all: the file's weight, untouched.
    write_atomic(&cfg, r#"{"rules":[]}"#);
    a.signal(libc::SIGHUP);
    expect(&a, "up ready 100%\n");
    assert_eq!(
        a.log().matches("feedback: 1 rule(s) from").count(),
        2,
        "{}",
        a.log()
    );
    assert!(a.log().contains("feedback: 0 rule(s) from"), "{}", a.log());
}

// ---------------------------------------------------------------------------
// Idle

/// Voluntary plus involuntary context switches of `pid` so far.
fn ctxt_switches(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .filter(|l| l.contains("ctxt_switches:"))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn no_wake_ups_while_idle_without_rules() {
    if skip_under_runner(READS_PROC_STATUS) {
        return;
    }
    let d = Dir::new("fb-idle");
    let none = Agent::start(Some(r#"{"status":"UP"}"#), &[]);
    let empty = start(&d, r#"{"status":"UP"}"#, r#"{"rules":[]}"#, &[]);
    let (_d2, _, busy) = one_rule(
        "fb-idle2",
        "30",
        r#""curve":"linear","limit":100"#,
        r#"{"status":"UP"}"#,
        &[],
    );
    expect(&busy, "up ready 70%\n");
    let agents = [
        ("no --feedback", &none),
        ("no rules", &empty),
        ("one rule, 100 ms", &busy),
    ];
    // Let the start-up probes' connections finish.
    let settled = wait_for(Duration::from_secs(5), || {
        let a: Vec<u64> = agents.iter().map(|(_, x)| ctxt_switches(x.pid())).collect();
        std::thread::sleep(Duration::from_millis(300));
        let b: Vec<u64> = agents.iter().map(|(_, x)| ctxt_switches(x.pid())).collect();
        a[0] == b[0] && a[1] == b[1]
    });
    assert!(settled, "agents without rules kept waking up");
    let before: Vec<u64> = agents.iter().map(|(_, x)| ctxt_switches(x.pid())).collect();
    std::thread::sleep(Duration::from_secs(2));
    let after: Vec<u64> = agents.iter().map(|(_, x)| ctxt_switches(x.pid())).collect();
    for (i, (what, _)) in agents.iter().enumerate() {
        println!(
            "{what}: {} context switches in 2 s idle",
            after[i] - before[i]
        );
    }
    assert_eq!(after[0], before[0], "woke up without --feedback");
    assert_eq!(after[1], before[1], "woke up with no rules");
    // The measurement does see wake-ups: 20 samples in 2 s.
    assert!(
        after[2] - before[2] >= 10,
        "{} switches",
        after[2] - before[2]
    );
}
