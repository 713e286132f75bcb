//! Operations and security (issue 5) through the real binary on loopback:
//! the allow-list (IPv4, IPv6, dual-stack), the privilege drop, reasons that
//! could break the reply line, HTTP and `/metrics` on the agent port, syslog
//! lines on a socket the test owns, and the init-system files in contrib/:
//! the busybox/SysV script run by Debian's busybox, the systemd unit checked
//! by `systemd-analyze`, the procd, OpenRC and runit scripts run as far as
//! their frameworks allow here. Tests run as root (they check and say so).

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const STATE: &str = r#"{"status":"UP","weight":77,"maxconn":300}"#;
/// How long anything expected may take to appear on a busy two-core machine.
const LIMIT: Duration = Duration::from_secs(10);
/// A PATH for commands run with a cleared environment.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn contrib(rel: &str) -> PathBuf {
    repo().join("contrib").join(rel)
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Finds `name` on the PATH (or in the usual system directories).
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(PATH.split(':').map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Debian's busybox: installed by tests/ci.sh; the tests that need it say so when it is missing.
fn busybox() -> PathBuf {
    which("busybox")
        .expect("busybox is not installed: run tests/ci.sh or `apt-get install -y busybox`")
}

// ---------------------------------------------------------------------------
// Starting agents on any address, and talking to them from any source.

/// Starts heft on `addr`:`port` in `dir` (from `temp_dir`), with the state
/// file written if given, and extra `args` and `env`, without waiting for it.
fn spawn_in(
    dir: PathBuf,
    addr: &str,
    port: u16,
    state: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
) -> Agent {
    let state_path = dir.join("state.json");
    if let Some(s) = state {
        std::fs::write(&state_path, s).unwrap();
    }
    let pid_file = dir.join("heft.pid");
    let mut argv: Vec<OsString> = [HEFT, "--addr", addr, "--port", &port.to_string()]
        .map(OsString::from)
        .to_vec();
    argv.extend(["--state-file".into(), state_path.clone().into_os_string()]);
    argv.extend(["--pid-file".into(), pid_file.clone().into_os_string()]);
    argv.extend(args.iter().map(OsString::from));
    launch(&argv, env, dir, port, state_path, pid_file)
}

/// Runs the command line `argv` (heft's path first) with exactly `env`, its
/// stderr in `dir/stderr.log`, as an agent on `port` with these files.
fn launch(
    argv: &[OsString],
    env: &[(&str, &str)],
    dir: PathBuf,
    port: u16,
    state: PathBuf,
    pid_file: PathBuf,
) -> Agent {
    assert_eq!(argv[0], OsString::from(HEFT), "launch runs heft itself");
    let child = spawn_heft(&dir, &[], &argv[1..], env);
    Agent {
        child,
        port,
        dir,
        state,
        pid_file,
    }
}

/// Waits until the agent's stderr has `needle`.
fn wait_log(a: &Agent, needle: &str) {
    let ok = wait_for(LIMIT, || a.log().contains(needle));
    assert!(ok, "no {needle:?} in the log:\n{}", a.log());
}

/// Waits until heft logs that it listens, then until `from` gets a whole line from `to`.
fn wait_ready(a: &Agent, from: IpAddr, to: IpAddr) {
    wait_log(a, "listening on");
    let dst = SocketAddr::new(to, a.port);
    let ok = wait_for(LIMIT, || {
        ask_from(from, dst, b"\n").is_ok_and(|r| r.ends_with(b"\n"))
    });
    assert!(ok, "{dst} does not answer {from}; log:\n{}", a.log());
}

/// A port free on both 0.0.0.0 and :: right now (a dual-stack listener holds both).
fn free_dual_port() -> u16 {
    TcpListener::bind("[::]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free port below 1024 on 127.0.0.1 (we are root, so binding says whether it is free).
fn free_low_port() -> u16 {
    (700..1000)
        .rev()
        .find(|&p| {
            TcpListener::bind(("127.0.0.1", p)).is_ok() && TcpListener::bind(("::1", p)).is_ok()
        })
        .expect("no free port below 1024")
}

/// Connects from source address `src` to `dst`.
fn connect_from(src: IpAddr, dst: SocketAddr) -> std::io::Result<TcpStream> {
    use nix::sys::socket::{self as ns, AddressFamily, SockFlag, SockType, SockaddrStorage};
    let fam = if dst.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = ns::socket(fam, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    ns::bind(
        fd.as_raw_fd(),
        &SockaddrStorage::from(SocketAddr::new(src, 0)),
    )?;
    ns::connect(fd.as_raw_fd(), &SockaddrStorage::from(dst))?;
    Ok(TcpStream::from(fd))
}

/// Connects from `src`, sends `payload`, returns every byte until EOF.
fn ask_from(src: IpAddr, dst: SocketAddr, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    exchange(connect_from(src, dst)?, payload)
}

/// Connects from `src` and asserts that the agent closes without sending a byte
/// (EOF, or a reset when the client had sent something unread).
fn assert_refused(src: IpAddr, dst: SocketAddr, payload: &[u8]) {
    let mut s = connect_from(src, dst).unwrap_or_else(|e| panic!("connect {src} -> {dst}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    if !payload.is_empty() {
        let _ = s.write_all(payload);
    }
    let mut out = Vec::new();
    let r = s.read_to_end(&mut out);
    assert!(
        out.is_empty(),
        "{src} was refused, yet got {:?}",
        String::from_utf8_lossy(&out)
    );
    match r {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("{src} -> {dst}: wanted a close without a reply, got {other:?}"),
    }
}

/// Splits a command line written out in a test (no quoting needed: no spaces in its words).
fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

/// Removes a directory when dropped, also when a test fails.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8(b).expect("reply is not UTF-8")
}

// ---------------------------------------------------------------------------
// HTTP and Prometheus text.

struct HttpReply {
    status: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn code(&self) -> u16 {
        self.status
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap()
    }
}

fn parse_http(raw: &str) -> HttpReply {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {raw:?}"));
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_string();
    assert!(status.starts_with("HTTP/1.0 "), "status line {status:?}");
    let headers = lines
        .map(|l| {
            let (k, v) = l
                .split_once(": ")
                .unwrap_or_else(|| panic!("bad header {l:?}"));
            (k.to_string(), v.to_string())
        })
        .collect();
    HttpReply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Sends `METHOD path HTTP/1.0` from 127.0.0.1 and parses the response.
fn http(port: u16, method: &str, path: &str) -> HttpReply {
    http_from(V4, SocketAddr::new(V4, port), method, path)
}

fn http_from(src: IpAddr, dst: SocketAddr, method: &str, path: &str) -> HttpReply {
    let req = format!("{method} {path} HTTP/1.0\r\nUser-Agent: heft-ops-test\r\n\r\n");
    parse_http(&text(ask_from(src, dst, req.as_bytes()).unwrap()))
}

/// One parsed `/metrics` page: every sample by `name{labels}`, each line checked.
struct Metrics {
    samples: BTreeMap<String, f64>,
    raw: String,
}

impl Metrics {
    fn get(&self, key: &str) -> f64 {
        *self
            .samples
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key} in\n{}", self.raw))
    }
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

/// Parses Prometheus text: every line is `# HELP name text`, `# TYPE name
/// kind`, or `name{k="v",...} value`, with the TYPE before the samples.
fn parse_metrics(raw: &str) -> Metrics {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    assert!(raw.ends_with('\n'), "metrics do not end with a newline");
    for line in raw.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(
                valid_name(name) && !help.is_empty(),
                "bad HELP line {line:?}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad TYPE line {line:?}"));
            assert!(valid_name(name), "bad TYPE line {line:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad TYPE line {line:?}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice: {line:?}"
            );
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "neither HELP, TYPE nor a sample: {line:?}"
        );
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line:?}"));
        let name = match series.split_once('{') {
            None => series,
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("bad labels: {line:?}"));
                for pair in labels.split(',') {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("bad label: {line:?}"));
                    assert!(valid_name(k), "bad label name: {line:?}");
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or_else(|| panic!("unquoted label value: {line:?}"));
                    assert!(
                        !v.contains('"') && !v.contains('\\'),
                        "label value needs escapes: {line:?}"
                    );
                }
                name
            }
        };
        assert!(valid_name(name), "bad metric name: {line:?}");
        assert!(types.contains_key(name), "sample before its TYPE: {line:?}");
        if types[name] == "counter" {
            assert!(
                name.ends_with("_total") && value >= 0.0,
                "bad counter: {line:?}"
            );
        }
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "sample twice: {line:?}"
        );
    }
    Metrics {
        samples,
        raw: raw.to_string(),
    }
}

fn metrics_from(src: IpAddr, dst: SocketAddr) -> Metrics {
    let r = http_from(src, dst, "GET", "/metrics");
    assert_eq!(r.code(), 200, "{}", r.body);
    assert_eq!(r.header("Content-Type"), Some("text/plain; version=0.0.4"));
    assert_eq!(
        r.header("Content-Length"),
        Some(r.body.len().to_string().as_str())
    );
    parse_metrics(&r.body)
}

fn metrics(port: u16) -> Metrics {
    metrics_from(V4, SocketAddr::new(V4, port))
}

// ---------------------------------------------------------------------------
// Who may ask.

#[test]
fn allow_list_refuses_other_ipv4_sources_without_a_reply_and_counts_them() {
    let a = Agent::start(Some(STATE), &["--allow", "127.0.0.1/32"]);
    let dst = SocketAddr::new(V4, a.port);
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    assert_eq!(
        text(ask_from(V4, dst, b"").unwrap()),
        "up ready 77% maxconn:300\n"
    );
    let before = metrics(a.port).get("heft_refused_total");
    assert_eq!(before, 0.0);
    // Five bare connections and one that sends an HTTP request first.
    for _ in 0..5 {
        assert_refused(other, dst, b"");
    }
    assert_refused(other, dst, b"GET / HTTP/1.0\r\n\r\n");
    // The allowed source is still served, by agent line and by HTTP.
    assert_eq!(
        text(ask_from(V4, dst, b"\n").unwrap()),
        "up ready 77% maxconn:300\n"
    );
    assert_eq!(metrics(a.port).get("heft_refused_total"), 6.0);
    // Logged, rate-limited: one line for the burst, naming the source.
    wait_log(&a, "refused a probe from 127.0.0.2");
    let lines = a
        .log()
        .lines()
        .filter(|l| l.contains("refused a probe"))
        .count();
    assert_eq!(lines, 1, "refusals are not rate-limited:\n{}", a.log());
    assert_eq!(a.stop(), Some(0));
}

#[test]
fn allow_list_from_the_environment_takes_cidr_blocks() {
    // 127.0.0.2/31 is .2 and .3; 10.0.0.0/8 matches nothing here.
    let a = Agent::start_with(
        Some(STATE),
        &[],
        &[("HEFT_ALLOW", "10.0.0.0/8,127.0.0.2/31")],
    );
    let dst = SocketAddr::new(V4, a.port);
    for ok in ["127.0.0.2", "127.0.0.3"] {
        let r = ask_from(ok.parse().unwrap(), dst, b"").unwrap();
        assert_eq!(text(r), "up ready 77% maxconn:300\n", "from {ok}");
    }
    for no in ["127.0.0.1", "127.0.0.4"] {
        assert_refused(no.parse().unwrap(), dst, b"");
    }
    let m = metrics_from("127.0.0.3".parse().unwrap(), dst);
    // wait_listening's own connection came from 127.0.0.1 and was refused too.
    assert!(m.get("heft_refused_total") >= 2.0, "{}", m.raw);
}

/// Starts heft on `::` (dual-stack) with `--allow allow`; waits until `ready_from` is served.
fn start_dual_stack(allow: &str, ready_from: IpAddr) -> Agent {
    let port = free_dual_port();
    let a = spawn_in(
        temp_dir("ops"),
        "::",
        port,
        Some(STATE),
        &["--allow", allow],
        &[],
    );
    wait_ready(&a, ready_from, ready_from);
    a
}

#[test]
fn allow_list_on_a_dual_stack_listener() {
    // Only ::1: an IPv4 client, seen as ::ffff:127.0.0.1, is refused.
    let a = start_dual_stack("::1/128", V6);
    let port = a.port;
    let v6 = SocketAddr::new(V6, port);
    let v4 = SocketAddr::new(V4, port);
    assert_eq!(
        text(ask_from(V6, v6, b"").unwrap()),
        "up ready 77% maxconn:300\n"
    );
    assert_refused(V4, v4, b"");
    assert_refused(V4, v4, b"\n");
    assert_eq!(metrics_from(V6, v6).get("heft_refused_total"), 2.0);
    wait_log(&a, "refused a probe from");
    // The client is named, as IPv4 or in its v4-mapped IPv6 form.
    let line = a
        .log()
        .lines()
        .find(|l| l.contains("refused a probe"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("127.0.0.1") || line.contains("ffff:7f00:0001"),
        "{line}"
    );
    drop(a);

    // An IPv4 block matches v4-mapped clients of a dual-stack socket; ::1 is then refused.
    let a = start_dual_stack("127.0.0.1/32", V4);
    let port = a.port;
    assert_eq!(
        text(ask_from(V4, SocketAddr::new(V4, port), b"").unwrap()),
        "up ready 77% maxconn:300\n"
    );
    assert_refused(V6, SocketAddr::new(V6, port), b"");
    drop(a);

    // So does the block written in its v4-mapped IPv6 form.
    let a = start_dual_stack("::ffff:127.0.0.1/128,::1", V6);
    let port = a.port;
    for src in [V4, V6] {
        let r = ask_from(src, SocketAddr::new(src, port), b"").unwrap();
        assert_eq!(text(r), "up ready 77% maxconn:300\n", "from {src}");
    }
    assert_eq!(
        metrics_from(V4, SocketAddr::new(V4, port)).get("heft_refused_total"),
        0.0
    );
}

/// Starts heft on 127.0.0.1 with `extra` options and `env`, expecting it to
/// stop at start-up: returns (exit code, stderr); fails if it is still running after 10 s.
fn failing_start(extra: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let port = free_port().to_string();
    let base = [
        "--addr",
        "127.0.0.1",
        "--port",
        &port,
        "--state-file",
        "/nonexistent/s.json",
    ];
    let mut cmd = Command::new(HEFT);
    cmd.args(base)
        .args(extra)
        .env_clear()
        .envs(env.iter().copied());
    let dir = temp_dir("ops-failing");
    let _cleanup = Cleanup(dir.clone());
    let (code, _, err) = run_limited(cmd, &dir, "heft", Duration::from_secs(10));
    (code, err)
}

#[test]
fn a_bad_allow_list_exits_100_naming_it() {
    for bad in [
        "10.0.0.0/33",
        "::1/129",
        "10.0.0.0/8,",
        "localhost",
        "1.2.3.4/",
    ] {
        let (code, err) = failing_start(&["--allow", bad], &[]);
        assert_eq!(code, 100, "--allow {bad}: {err}");
        assert!(
            err.contains("--allow") && err.contains(bad),
            "--allow {bad}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let (code, err) = failing_start(&[], &[("HEFT_ALLOW", "fe80::/200")]);
    assert_eq!(code, 100, "{err}");
    assert!(
        err.contains("HEFT_ALLOW") && err.contains("fe80::/200"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// As whom heft runs.

/// The uid and primary gid of `user` in /etc/passwd.
fn passwd_ids(user: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() > 3 && f[0] == user {
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        } else {
            None
        }
    })
}

/// The gid of `group` in /etc/group.
fn group_id(group: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() > 2 && f[0] == group {
            f[2].parse().ok()
        } else {
            None
        }
    })
}

/// nobody's uid and nogroup's gid, when this machine has both (Debian does).
fn nobody() -> Option<(u32, u32)> {
    assert!(
        is_root(),
        "these tests run as root (the privilege drop needs it)"
    );
    match (passwd_ids("nobody"), group_id("nogroup")) {
        (Some((uid, _)), Some(gid)) if uid != 0 && gid != 0 => Some((uid, gid)),
        _ => {
            println!("note: no nobody user or nogroup group here: privilege drop not tested");
            None
        }
    }
}

/// The `Uid:`, `Gid:`, `Groups:` and `CapEff:` lines of /proc/PID/status.
fn proc_ids(pid: i32) -> (Vec<u32>, Vec<u32>, Vec<u32>, String) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> String {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            .trim()
            .to_string()
    };
    let nums =
        |v: String| -> Vec<u32> { v.split_whitespace().map(|n| n.parse().unwrap()).collect() };
    (
        nums(field("Uid:")),
        nums(field("Gid:")),
        nums(field("Groups:")),
        field("CapEff:"),
    )
}

fn assert_dropped(pid: i32, uid: u32, gid: u32) {
    let (uids, gids, groups, cap_eff) = proc_ids(pid);
    // Real, effective, saved and file-system ids all changed: no way back to root.
    assert_eq!(uids, vec![uid; 4], "Uid: line of heft");
    assert_eq!(gids, vec![gid; 4], "Gid: line of heft");
    assert!(groups.is_empty(), "supplementary groups left: {groups:?}");
    assert_eq!(cap_eff, "0000000000000000", "capabilities left");
}

#[test]
fn drops_to_nobody_after_binding_and_warns_about_an_unwritable_state_directory() {
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
    let out = Command::new("sh")
        .args([
            "-c",
            "umask 027; exec \"$0\" \"$@\"",
            HEFT,
            "set",
            "down",
            "--reason",
            "deploying",
        ])
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

// ---------------------------------------------------------------------------
// Replies never carry bytes that could break the line.

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
    let m0 = metrics(a.port);
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
        let r = http(a.port, "GET", "/web");
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
        std::fs::write(&a.state, good).unwrap();
        a.signal(libc::SIGHUP);
        a.expect_reply(good_reply);
    }
    let m1 = metrics(a.port);
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

// ---------------------------------------------------------------------------
// HTTP and metrics on the agent port.

#[test]
fn http_get_and_head_answer_on_the_agent_port() {
    let state = r#"{"status":"UP","weight":77,"maxconn":300,"services":{"web":{"status":"DRAIN","weight":50},"db":{"status":"DOWN","reason":"disk full"}}}"#;
    let a = Agent::start(Some(state), &[]);
    let line = a.probe();
    assert_eq!(line, "up ready 77% maxconn:300\n");

    let get = http(a.port, "GET", "/");
    assert_eq!(get.status, "HTTP/1.0 200 OK");
    assert_eq!(get.header("Content-Type"), Some("text/plain"));
    assert_eq!(get.header("Connection"), Some("close"));
    assert_eq!(
        get.header("Content-Length"),
        Some(line.len().to_string().as_str())
    );
    assert_eq!(get.body, line);

    let head = http(a.port, "HEAD", "/");
    assert_eq!(head.status, get.status);
    assert_eq!(head.headers, get.headers);
    assert_eq!(head.body, "", "HEAD sends headers only");

    let web = http(a.port, "GET", "/web");
    assert_eq!((web.code(), web.body.as_str()), (200, "up drain 50%\n"));
    let db = http(a.port, "GET", "/db");
    assert_eq!(
        (db.code(), db.body.as_str()),
        (503, "down ready 100% #disk full\n")
    );
    assert_eq!(http(a.port, "HEAD", "/db").code(), 503);

    // 200 while the health is up (ready or drain), 503 otherwise.
    for (status, code, want) in [
        ("DRAIN", 200, "up drain 77% maxconn:300\n"),
        ("MAINT", 503, "maint 77% maxconn:300\n"),
        ("DOWN", 503, "down ready 77% maxconn:300\n"),
        ("FAIL", 503, "fail ready 77% maxconn:300\n"),
        ("STOPPED", 503, "stopped ready 77% maxconn:300\n"),
        ("READY", 200, "up ready 77% maxconn:300\n"),
    ] {
        std::fs::write(
            &a.state,
            format!(r#"{{"status":"{status}","weight":77,"maxconn":300}}"#),
        )
        .unwrap();
        a.signal(libc::SIGHUP);
        a.expect_reply(want);
        let g = http(a.port, "GET", "/");
        assert_eq!((g.code(), g.body.as_str()), (code, want), "{status}");
        assert_eq!(g.header("Connection"), Some("close"));
        let h = http(a.port, "HEAD", "/");
        assert_eq!((h.code(), h.body.as_str()), (code, ""), "{status}");
    }
    // The plain agent probe still works between HTTP requests.
    assert_eq!(a.probe_with(b"\n"), "up ready 77% maxconn:300\n");
    std::fs::write(&a.state, state).unwrap();
    a.signal(libc::SIGHUP);
    a.expect_reply("up ready 77% maxconn:300\n");
    let db = http(a.port, "GET", "/db");
    assert_eq!(db.code(), 503);

    let Some(curl) = which("curl") else {
        println!("note: curl is not installed: HTTP checked with raw requests only");
        return;
    };
    let run = |args: &[&str]| -> String {
        let out = Command::new(&curl)
            .args(["-s", "--max-time", "5"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "curl {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let url = format!("http://127.0.0.1:{}/", a.port);
    let r = parse_http(&run(&["-i", &url]));
    assert_eq!(
        (r.status.as_str(), r.body.as_str()),
        ("HTTP/1.0 200 OK", "up ready 77% maxconn:300\n")
    );
    let r = parse_http(&run(&["-I", &url]));
    assert_eq!((r.code(), r.body.as_str()), (200, ""));
    assert_eq!(
        run(&["-o", "/dev/null", "-w", "%{http_code}", &format!("{url}db")]),
        "503"
    );
    let m = parse_metrics(&run(&[&format!("{url}metrics")]));
    assert_eq!(m.get("heft_weight{service=\"\"}"), 77.0);
    assert_eq!(a.stop(), Some(0));
}

#[test]
fn metrics_parse_and_count_exactly_what_happened() {
    let state = r#"{"status":"UP","weight":77,"maxconn":300,"services":{"web":{"status":"MAINT","weight":5}}}"#;
    let a = Agent::start(Some(state), &[]);
    // A first scrape is answered after the harness's own start-up probe.
    metrics(a.port);
    let m0 = metrics(a.port);
    assert_eq!(m0.get("heft_up{service=\"\",status=\"UP\"}"), 1.0);
    assert_eq!(m0.get("heft_weight{service=\"\"}"), 77.0);
    assert_eq!(m0.get("heft_maxconn{service=\"\"}"), 300.0);
    assert_eq!(m0.get("heft_up{service=\"web\",status=\"MAINT\"}"), 0.0);
    assert_eq!(m0.get("heft_weight{service=\"web\"}"), 5.0);
    for kind in ["accept", "persist", "state_file"] {
        assert_eq!(
            m0.get(&format!("heft_errors_total{{kind=\"{kind}\"}}")),
            0.0
        );
    }
    assert_eq!(m0.get("heft_refused_total"), 0.0);
    assert_eq!(m0.get("heft_reloads_total"), 0.0);
    for name in [
        "heft_probes_total",
        "heft_http_requests_total",
        "heft_timeouts_total",
    ] {
        m0.get(name);
    }

    // Exactly 7 agent probes and 3 HTTP requests between two scrapes.
    for i in 0..7 {
        let payload: &[u8] = if i % 2 == 0 { b"" } else { b"web\n" };
        assert!(a.probe_with(payload).ends_with('\n'));
    }
    for _ in 0..3 {
        assert_eq!(http(a.port, "GET", "/").code(), 200);
    }
    let m1 = metrics(a.port);
    assert_eq!(
        m1.get("heft_probes_total") - m0.get("heft_probes_total"),
        7.0,
        "{}",
        m1.raw
    );
    // The second scrape counts itself.
    assert_eq!(
        m1.get("heft_http_requests_total") - m0.get("heft_http_requests_total"),
        4.0
    );

    // Reloads, one signal at a time (two at once may merge into one).
    for n in 1..=2 {
        a.signal(libc::SIGHUP);
        let ok = wait_for(LIMIT, || {
            metrics(a.port).get("heft_reloads_total") == n as f64
        });
        assert!(ok, "reload {n} not counted; log:\n{}", a.log());
    }
    // A state change shows at once.
    a.signal(libc::SIGUSR2);
    a.expect_reply("down ready 77% maxconn:300\n");
    let m2 = metrics(a.port);
    assert_eq!(m2.get("heft_up{service=\"\",status=\"DOWN\"}"), 0.0);
    assert_eq!(m2.get("heft_up{service=\"web\",status=\"DOWN\"}"), 0.0);
    assert_eq!(a.stop(), Some(0));
}

// ---------------------------------------------------------------------------
// Syslog.

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

// ---------------------------------------------------------------------------
// Shell scripts in contrib/.

/// Every shell file in contrib/: scripts and the sourced settings files.
const SHELL_FILES: [(&str, bool); 9] = [
    ("sysv/heft", true),
    ("sysv/heft.default", false),
    ("openwrt/heft.init", true),
    ("openwrt/heft.config", false),
    ("openrc/heft", true),
    ("openrc/heft.confd", false),
    ("runit/run", true),
    ("runit/log/run", true),
    ("runit/conf", false),
];

#[test]
fn contrib_shell_files_pass_sh_n_and_busybox_ash_n() {
    let bb = busybox();
    let mut shells: Vec<Vec<OsString>> =
        vec![vec!["sh".into()], vec![bb.into_os_string(), "ash".into()]];
    if let Some(dash) = which("dash") {
        shells.push(vec![dash.into_os_string()]);
    }
    for (rel, executable) in SHELL_FILES {
        let path = contrib(rel);
        assert!(path.is_file(), "{rel} is missing");
        for sh in &shells {
            let out = Command::new(&sh[0])
                .args(&sh[1..])
                .arg("-n")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{sh:?} -n {rel}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o111 != 0, executable, "{rel}: mode {mode:o}");
        let text = std::fs::read_to_string(&path).unwrap();
        if executable {
            assert!(
                text.starts_with("#!/bin/sh") || text.starts_with("#!/sbin/openrc-run"),
                "{rel}: shebang"
            );
        }
        // A few bashisms that sh -n does not catch.
        for bashism in [
            "[[",
            "function ",
            "$'",
            "<<<",
            "source ",
            "declare ",
            "echo -e",
        ] {
            let hit = text
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .any(|l| l.contains(bashism));
            assert!(!hit, "{rel}: {bashism:?} is not POSIX sh");
        }
    }
    // The default state file the README's quick start copies is a valid state.
    let st = std::fs::read_to_string(contrib("state.json")).unwrap();
    heft::model::state::parse(st.as_bytes()).expect("contrib/state.json parses");
}

/// Runs a command with files for stdout and stderr (a daemon it leaves behind
/// must not hold our pipes) and a time limit; returns (code, stdout, stderr).
fn run_limited(mut cmd: Command, dir: &Path, tag: &str, limit: Duration) -> (i32, String, String) {
    let out_path = dir.join(format!("{tag}.out"));
    let err_path = dir.join(format!("{tag}.err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{tag}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        status.code().unwrap_or(-1),
        std::fs::read_to_string(out_path).unwrap_or_default(),
        std::fs::read_to_string(err_path).unwrap_or_default(),
    )
}

/// Whether `pid` is gone (or a zombie nobody reaped: it has exited all the same).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// Whether `pid` is a live heft.
fn live_heft(pid: i32) -> bool {
    !gone(pid)
        && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "heft")
}

/// Kills, when dropped, every heft a script started for us (by pid, if still heft).
struct Reaper(Vec<i32>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if live_heft(pid) {
                // SAFETY: kill(2) on a pid we saw our own script start, checked to be heft.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// How the SysV script is to find start-stop-daemon.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ssd {
    Debian,
    Busybox,
    None,
}

struct SysV {
    /// The shell that runs the script: busybox sh unless told otherwise.
    shell: Vec<OsString>,
    dir: PathBuf,
    env: Vec<(String, String)>,
    port: u16,
    pid_file: PathBuf,
    reaper: Reaper,
}

impl SysV {
    /// A private "system": a settings file naming the test binary, a temp pid
    /// file and log, and a free port, with start-stop-daemon as `ssd` says.
    fn new(ssd: Ssd) -> SysV {
        let bb = busybox();
        let dir = temp_dir("ops-sysv");
        let port = free_port();
        let pid_file = dir.join("run/heft.pid");
        std::fs::create_dir_all(dir.join("run")).unwrap();
        let mut path = PATH.to_string();
        // The start-stop-daemon the script finds first on PATH is a wrapper
        // that notes its arguments in ssd.log, then runs the real one. (The
        // script's xtrace cannot tell: two shells' traces interleave.)
        let real = match ssd {
            Ssd::Busybox => Some(format!("{} start-stop-daemon", bb.display())),
            Ssd::Debian => Some(
                which("start-stop-daemon")
                    .expect("Debian's start-stop-daemon is missing")
                    .display()
                    .to_string(),
            ),
            Ssd::None => None,
        };
        if let Some(real) = real {
            use std::os::unix::fs::PermissionsExt;
            let bin = dir.join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            let wrapper = bin.join("start-stop-daemon");
            let log = dir.join("ssd.log");
            std::fs::write(
                &wrapper,
                format!(
                    "#!/bin/sh\necho \"$*\" >>'{}'\nexec {real} \"$@\"\n",
                    log.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
            path = format!("{}:{path}", bin.display());
        }
        let config = dir.join("default");
        std::fs::write(
            &config,
            format!(
                "# written by tests/ops.rs\nHEFT_BIN={}\nHEFT_PID_FILE={}\nHEFT_LOG_FILE={}\nHEFT_ADDR=127.0.0.1\nHEFT_PORT={port}\n",
                HEFT,
                pid_file.display(),
                dir.join("heft.log").display(),
            ),
        )
        .unwrap();
        let mut env = vec![
            ("PATH".to_string(), path),
            ("HEFT_CONFIG".to_string(), config.display().to_string()),
        ];
        if ssd == Ssd::None {
            env.push(("HEFT_SSD".to_string(), String::new()));
        }
        SysV {
            shell: vec![bb.into_os_string(), "sh".into()],
            dir,
            env,
            port,
            pid_file,
            reaper: Reaper(Vec::new()),
        }
    }

    /// Adds lines to the settings file.
    fn settings(&self, lines: &str) {
        let cfg = self.dir.join("default");
        let mut t = std::fs::read_to_string(&cfg).unwrap();
        t.push_str(lines);
        std::fs::write(&cfg, t).unwrap();
    }

    /// `busybox sh contrib/sysv/heft ACTION` (with `-x` when `trace`).
    fn run(&mut self, action: &str, trace: bool) -> (i32, String, String) {
        let mut cmd = Command::new(&self.shell[0]);
        cmd.args(&self.shell[1..]);
        if trace {
            cmd.arg("-x");
        }
        cmd.arg(contrib("sysv/heft"))
            .arg(action)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let r = run_limited(cmd, &self.dir, action, Duration::from_secs(60));
        if let Some(pid) = self.pid() {
            self.reaper.0.push(pid);
        }
        r
    }

    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("heft.log")).unwrap_or_default()
    }

    fn probe(&self) -> String {
        probe_port(self.port, b"").unwrap_or_else(|e| format!("error: {e}"))
    }

    fn expect_reply(&self, want: &str) {
        let mut last = String::new();
        let ok = wait_for(LIMIT, || {
            last = self.probe();
            last == want
        });
        assert!(ok, "wanted {want:?}, got {last:?}; log:\n{}", self.log());
    }
}

impl Drop for SysV {
    fn drop(&mut self) {
        let pids = std::mem::take(&mut self.reaper.0);
        drop(Reaper(pids));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// start, start again, status, reload, restart, stop, status, stop again;
/// under busybox sh, or under `shell` when given.
fn sysv_life_cycle(ssd: Ssd, shell: Option<&str>) {
    let mut s = SysV::new(ssd);
    if let Some(sh) = shell {
        s.shell = vec![sh.into()];
    }
    let state = s.dir.join("state.json");
    // The quick start's default state file.
    std::fs::copy(contrib("state.json"), &state).unwrap();
    s.settings(&format!("HEFT_STATE_FILE={}\n", state.display()));

    let (code, out, err) = s.run("start", true);
    assert_eq!(code, 0, "start: {out}{err}\nlog:\n{}", s.log());
    let used_ssd = std::fs::read_to_string(s.dir.join("ssd.log"))
        .is_ok_and(|l| l.lines().any(|l| l.starts_with("-S ")));
    assert_eq!(
        used_ssd,
        ssd != Ssd::None,
        "start-stop-daemon use with {ssd:?}:\n{err}"
    );
    let pid = s.pid().expect("pid file after start");
    assert!(out.contains(&format!("heft started (pid {pid})")), "{out}");
    assert!(live_heft(pid));
    s.expect_reply("up ready 100%\n");

    let (code, out, _) = s.run("start", false);
    assert_eq!((code, s.pid()), (0, Some(pid)), "second start: {out}");
    assert!(out.contains("already running"), "{out}");

    let (code, out, _) = s.run("status", false);
    assert_eq!(code, 0, "status: {out}");
    assert!(out.contains(&format!("running (pid {pid})")), "{out}");

    std::fs::write(&state, r#"{"status":"DRAIN","weight":40}"#).unwrap();
    let (code, out, err) = s.run("reload", false);
    assert_eq!(code, 0, "reload: {out}{err}");
    s.expect_reply("up drain 40%\n");
    assert!(s.log().contains("SIGHUP"), "{}", s.log());
    assert_eq!(s.pid(), Some(pid), "reload restarted heft");

    let (code, out, err) = s.run("restart", false);
    assert_eq!(code, 0, "restart: {out}{err}");
    let pid2 = s.pid().expect("pid file after restart");
    assert_ne!(pid2, pid);
    assert!(gone(pid), "old heft still running after restart");
    s.expect_reply("up drain 40%\n");

    let (code, out, err) = s.run("stop", false);
    assert_eq!(code, 0, "stop: {out}{err}");
    assert!(
        wait_for(LIMIT, || gone(pid2)),
        "heft still running after stop"
    );
    assert!(!s.pid_file.exists(), "pid file left after stop");
    assert!(
        probe_port(s.port, b"").is_err(),
        "still answering after stop"
    );
    assert!(
        s.log().contains("stopping:"),
        "heft was not stopped by SIGTERM:\n{}",
        s.log()
    );

    let (code, out, _) = s.run("status", false);
    assert_eq!(code, 3, "status after stop: {out}");
    let (code, out, _) = s.run("stop", false);
    assert_eq!(code, 0, "second stop: {out}");
    let (code, _, _) = s.run("reload", false);
    assert_ne!(code, 0, "reload of a stopped heft succeeded");
    let (code, _, err) = s.run("bogus", false);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn sysv_script_with_debians_start_stop_daemon() {
    sysv_life_cycle(Ssd::Debian, None);
}

#[test]
fn sysv_script_under_the_system_sh() {
    // Debian's /bin/sh is dash: the script is POSIX sh, not busybox-only.
    sysv_life_cycle(Ssd::Debian, Some("/bin/sh"));
    sysv_life_cycle(Ssd::None, Some("/bin/sh"));
}

#[test]
fn sysv_script_with_busybox_start_stop_daemon() {
    sysv_life_cycle(Ssd::Busybox, None);
}

#[test]
fn sysv_script_with_the_pid_file_alone() {
    sysv_life_cycle(Ssd::None, None);
}

#[test]
fn sysv_script_drops_to_a_user_and_creates_the_state_directory_for_it() {
    let Some((uid, gid)) = nobody() else { return };
    let mut s = SysV::new(Ssd::Debian);
    let state = s.dir.join("lib/heft/state.json");
    s.settings(&format!(
        "HEFT_STATE_FILE={}\nHEFT_USER=nobody\nHEFT_GROUP=nogroup\n",
        state.display()
    ));
    let (code, out, err) = s.run("start", false);
    assert_eq!(code, 0, "start: {out}{err}\n{}", s.log());
    let pid = s.pid().unwrap();
    assert_dropped(pid, uid, gid);
    // No state file yet: FAIL until a deploy script says otherwise.
    s.expect_reply("fail ready 100% #state file: unreadable ENOENT\n");
    let dir_meta = std::fs::metadata(state.parent().unwrap()).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (dir_meta.uid(), dir_meta.gid()),
        (uid, gid),
        "state directory owner"
    );
    assert!(!s.log().contains("not writable"), "{}", s.log());
    // heft set, as root, with the same variables as the init script.
    let env = [
        ("HEFT_STATE_FILE", state.to_str().unwrap()),
        ("HEFT_PID_FILE", s.pid_file.to_str().unwrap()),
    ];
    let (code, _, err) = run_heft(&["set", "up", "--weight", "60"], &env);
    assert_eq!(code, 0, "{err}");
    s.expect_reply("up ready 60%\n");
    // Signals are saved by nobody in its own directory.
    // SAFETY: kill(2) on the heft our script started.
    unsafe { libc::kill(pid, libc::SIGUSR2) };
    s.expect_reply("down ready 60%\n");
    assert!(wait_for(LIMIT, || std::fs::read_to_string(&state)
        .unwrap_or_default()
        .contains("\"DOWN\"")));
    let (code, out, err) = s.run("stop", false);
    assert_eq!(code, 0, "stop: {out}{err}");
    assert!(wait_for(LIMIT, || gone(pid)));
    // heft, as nobody, could not remove the root-owned pid file: the script did.
    assert!(!s.pid_file.exists());
    let (code, _, _) = s.run("status", false);
    assert_eq!(code, 3);
}

#[test]
fn sysv_script_reports_a_failed_start() {
    let mut s = SysV::new(Ssd::Debian);
    s.settings(&format!(
        "HEFT_STATE_FILE={}\nHEFT_ALLOW=10.0.0.0/33\n",
        s.dir.join("state.json").display()
    ));
    let (code, out, err) = s.run("start", false);
    assert_eq!(code, 1, "start with a bad allow list: {out}{err}");
    assert!(
        err.contains("exit 100") && err.contains("10.0.0.0/33"),
        "{err}"
    );
    let (code, out, _) = s.run("status", false);
    assert_eq!(code, 3, "{out}");

    // A port already taken: exit 111, reported the same way.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = s.dir.join("default");
    let t = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("HEFT_ALLOW=10.0.0.0/33\n", "")
        .replace(
            &format!("HEFT_PORT={}", s.port),
            &format!("HEFT_PORT={port}"),
        );
    std::fs::write(&cfg, t).unwrap();
    let (code, out, err) = s.run("start", false);
    assert_eq!(code, 1, "start on a taken port: {out}{err}");
    assert!(
        err.contains("exit 111") && err.contains("EADDRINUSE"),
        "{err}"
    );
    assert_ne!(s.run("status", false).0, 0);
}

// ---------------------------------------------------------------------------
// systemd.

#[test]
fn systemd_unit_has_the_hardening_and_passes_systemd_analyze() {
    let unit_path = contrib("systemd/heft.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let keys: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .collect();
    let has = |k: &str| keys.contains(&k);
    assert!(
        has("DynamicUser=yes")
            || keys
                .iter()
                .any(|l| l.starts_with("User=") && *l != "User=root"),
        "no dedicated user"
    );
    for k in [
        "ProtectSystem=strict",
        "StateDirectory=heft",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "CapabilityBoundingSet=",
        "ExecStart=/usr/sbin/heft",
    ] {
        assert!(has(k), "{k} missing from the unit");
    }
    // The state file lives in the StateDirectory, the one writable place under ProtectSystem=strict.
    assert!(
        unit.contains("HEFT_STATE_FILE=/var/lib/heft/state.json"),
        "state file not in /var/lib/heft"
    );
    assert!(
        !keys.iter().any(|l| l.starts_with("HEFT_USER")),
        "HEFT_USER in the unit"
    );

    let Some(analyze) = which("systemd-analyze") else {
        println!("note: systemd-analyze is not installed: the unit was checked for its keys only");
        return;
    };
    // verify wants ExecStart to exist: check a copy that points at the binary under test.
    let dir = temp_dir("ops-systemd");
    let _cleanup = Cleanup(dir.clone());
    let copy = dir.join("heft.service");
    std::fs::write(
        &copy,
        unit.replace("ExecStart=/usr/sbin/heft", &format!("ExecStart={HEFT}")),
    )
    .unwrap();
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify:\n{said}"
    );
    // And verify does catch mistakes here (it needs no running systemd).
    let bad = dir.join("bad").join("heft.service");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    std::fs::write(
        &bad,
        std::fs::read_to_string(&copy)
            .unwrap()
            .replace("ProtectSystem=strict", "ProtectSystem=stricter"),
    )
    .unwrap();
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(&bad)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("stricter"),
        "verify missed a bad value: {said}"
    );

    // The exposure score systemd gives the hardening, where this version can compute it offline.
    let out = Command::new(&analyze)
        .args(["security", "--offline=yes"])
        .arg(&copy)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    if let Some(line) = said.lines().find(|l| l.contains("Overall exposure level")) {
        let score: f64 = line
            .split_whitespace()
            .find_map(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        println!("systemd-analyze security: {line}");
        assert!(score <= 2.0, "exposure {score} for the unit: {said}");
    } else {
        println!("note: this systemd-analyze cannot score units offline");
    }
}

// ---------------------------------------------------------------------------
// OpenWrt procd + UCI, OpenRC, runit.

/// Just enough of OpenWrt's /lib/functions.sh and procd.sh to run an init
/// script's start_service: a UCI file is shell (`config TYPE NAME`, `option K
/// V`, `list K V`), loaded into CONFIG_<section>_<option> variables as
/// functions.sh does; procd's calls are printed one word a line.
const PROCD_STUB: &str = r#"
config() { _sec=$2; _SECTIONS="$_SECTIONS $2"; eval "CONFIG_${2}_TYPE=\$1"; }
option() { eval "CONFIG_${_sec}_$1=\$2"; }
list() {
    eval "_n=\${CONFIG_${_sec}_$1_LENGTH:-0}"
    _n=$((_n + 1))
    eval "CONFIG_${_sec}_$1_ITEM$_n=\$2; CONFIG_${_sec}_$1_LENGTH=$_n"
}
config_load() { _SECTIONS=; . "$UCI_CONFIG_DIR/$1"; }
config_get() { eval "_v=\${CONFIG_${2}_${3}:-}"; [ -n "$_v" ] || _v=$4; eval "$1=\$_v"; }
config_get_bool() {
    config_get _b "$2" "$3" "$4"
    case $_b in
        1|on|true|yes|enabled) _b=1 ;;
        0|off|false|no|disabled) _b=0 ;;
        *) _b=$4 ;;
    esac
    eval "$1=\$_b"
}
config_list_foreach() {
    _ls=$1 _lo=$2 _lf=$3
    shift 3
    eval "_ln=\${CONFIG_${_ls}_${_lo}_LENGTH:-0}"
    _li=1
    while [ "$_li" -le "$_ln" ]; do
        eval "_lv=\$CONFIG_${_ls}_${_lo}_ITEM$_li"
        "$_lf" "$_lv" "$@"
        _li=$((_li + 1))
    done
}
config_foreach() {
    _ff=$1 _ft=$2
    for _fs in $_SECTIONS; do
        eval "_fty=\$CONFIG_${_fs}_TYPE"
        [ "$_fty" = "$_ft" ] && "$_ff" "$_fs"
    done
}
procd_open_instance() { echo "instance $1"; }
procd_set_param() { _p=$1; shift; echo "set $_p"; for _w in "$@"; do echo "word $_w"; done; }
procd_append_param() { _p=$1; shift; echo "add $_p"; for _w in "$@"; do echo "word $_w"; done; }
procd_close_instance() { echo "close"; }
procd_add_reload_trigger() { echo "trigger $*"; }
"#;

/// Runs `code` with `busybox sh -c`, a fixed PATH and `env` alone; returns
/// its stdout, failing the test if it exits non-zero.
fn busybox_sh(code: &str, env: &[(&str, OsString)]) -> String {
    let out = Command::new(busybox())
        .args(["sh", "-c", code])
        .env_clear()
        .env("PATH", PATH)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "busybox sh: {stdout}{stderr}");
    stdout
}

/// One procd instance: its command and its other parameters.
#[derive(Debug, Default)]
struct Instance {
    name: String,
    command: Vec<String>,
    params: BTreeMap<String, Vec<String>>,
}

/// Runs the procd script's start_service and service_triggers under busybox
/// sh with `UCI_CONFIG_DIR` holding `heft`; `prelude` may stub more commands.
fn procd_start(uci_dir: &Path, prelude: &str) -> (Vec<Instance>, Vec<String>) {
    let driver = format!(
        "{PROCD_STUB}\n{prelude}\n. \"$SCRIPT\"\nPROG=\"$HEFT_BIN\"\nstart_service\nservice_triggers\n"
    );
    let stdout = busybox_sh(
        &driver,
        &[
            ("SCRIPT", contrib("openwrt/heft.init").into()),
            ("UCI_CONFIG_DIR", uci_dir.into()),
            ("HEFT_BIN", HEFT.into()),
        ],
    );
    let mut instances: Vec<Instance> = Vec::new();
    let mut other = Vec::new();
    let mut param = String::new();
    let mut open = false;
    for line in stdout.lines() {
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        match verb {
            "instance" => {
                instances.push(Instance {
                    name: rest.to_string(),
                    ..Default::default()
                });
                open = true;
            }
            "set" | "add" => {
                param = rest.to_string();
                let i = instances.last_mut().expect("param outside an instance");
                assert!(open, "procd param outside an instance: {line}");
                let v = i.params.entry(param.clone()).or_default();
                if verb == "set" {
                    v.clear();
                }
            }
            "word" => {
                let i = instances.last_mut().unwrap();
                i.params.get_mut(&param).unwrap().push(rest.to_string());
            }
            "close" => open = false,
            _ => other.push(line.to_string()),
        }
    }
    assert!(!open, "instance left open");
    for i in &mut instances {
        i.command = i.params.remove("command").unwrap_or_default();
    }
    (instances, other)
}

#[test]
fn procd_script_maps_the_shipped_uci_config() {
    let uci = temp_dir("ops-uci-shipped");
    let _cleanup = Cleanup(uci.clone());
    std::fs::copy(contrib("openwrt/heft.config"), uci.join("heft")).unwrap();
    // Record instead of touching /etc/heft on this machine.
    let (inst, other) = procd_start(
        &uci,
        "mkdir() { echo \"ran mkdir $*\"; }\nchown() { echo \"ran chown $*\"; }",
    );
    assert_eq!(inst.len(), 1, "{inst:?}");
    let i = &inst[0];
    assert_eq!(i.name, "main");
    let want = words(&format!(
        "{HEFT} --addr 0.0.0.0 --port 9777 --state-file /etc/heft/state.json \
         --pid-file /var/run/heft.pid --allow 127.0.0.0/8,::1/128,192.168.1.0/24 \
         --user nobody --group nogroup"
    ));
    assert_eq!(i.command, want);
    assert_eq!(i.params["reload_signal"], ["HUP"]);
    assert_eq!(i.params["stdout"], ["1"]);
    assert_eq!(i.params["stderr"], ["1"]);
    assert!(i.params.contains_key("respawn"));
    assert!(other.contains(&"trigger heft".to_string()), "{other:?}");
    if !Path::new("/etc/heft").exists() {
        assert!(
            other.contains(&"ran mkdir -p /etc/heft".to_string()),
            "{other:?}"
        );
        assert!(
            other.contains(&"ran chown nobody:nogroup /etc/heft".to_string()),
            "{other:?}"
        );
    }
    // The command heft would get is one it accepts: parse it without binding.
    let mut args: Vec<&str> = i.command[1..].iter().map(String::as_str).collect();
    args.extend(["--port", "0"]);
    let (code, _, err) = run_heft(&args, &[]);
    assert_eq!(code, 100, "only the port 0 we added may be refused: {err}");
    assert!(err.contains("--port") && err.contains("\"0\""), "{err}");
}

#[test]
fn procd_script_command_runs_a_working_agent() {
    let Some((uid, gid)) = nobody() else { return };
    let dir = temp_dir("ops-procd");
    let _cleanup = Cleanup(dir.clone());
    let port = free_port();
    let state = dir.join("etc-heft/state.json");
    let pid_file = dir.join("heft.pid");
    let uci = format!(
        "config heft 'main'\n\toption enabled '1'\n\toption address '127.0.0.1'\n\toption port '{port}'\n\
         \toption state_file '{}'\n\toption pid_file '{}'\n\tlist allow '127.0.0.1/32'\n\tlist allow '::1/128'\n\
         \toption user 'nobody'\n\toption group 'nogroup'\n\toption ready_window '10'\n\toption syslog '0'\n\n\
         config heft 'off'\n\toption enabled '0'\n\toption port '1'\n",
        state.display(),
        pid_file.display()
    );
    std::fs::write(dir.join("heft"), uci).unwrap();
    let (inst, _) = procd_start(&dir, "");
    assert_eq!(inst.len(), 1, "the disabled section started: {inst:?}");
    let cmd = &inst[0].command;
    let want = words(&format!(
        "{HEFT} --addr 127.0.0.1 --port {port} --state-file {} --pid-file {} \
         --allow 127.0.0.1/32,::1/128 --user nobody --group nogroup --ready-window 10",
        state.display(),
        pid_file.display()
    ));
    assert_eq!(cmd, &want);
    // start_service made the state directory for nobody.
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(state.parent().unwrap()).unwrap();
    assert_eq!((m.uid(), m.gid()), (uid, gid));
    // Run it as procd would, with the state file an admin put in place.
    std::fs::write(&state, STATE).unwrap();
    let argv: Vec<OsString> = cmd.iter().map(OsString::from).collect();
    let a = launch(&argv, &[], dir, port, state, pid_file);
    a.wait_listening();
    assert_eq!(a.probe(), "up ready 77% maxconn:300\n");
    assert_dropped(a.pid(), uid, gid);
    assert_refused("127.0.0.2".parse().unwrap(), SocketAddr::new(V4, port), b"");
    assert!(!a.log().contains("not writable"), "{}", a.log());
    // procd's reload of an unchanged instance is SIGHUP.
    std::fs::write(&a.state, r#"{"status":"MAINT"}"#).unwrap();
    a.signal(libc::SIGHUP);
    a.expect_reply("maint 100%\n");
    assert_eq!(a.stop(), Some(0));
}

#[test]
fn openrc_script_builds_a_working_command_line() {
    let dir = temp_dir("ops-openrc");
    let _cleanup = Cleanup(dir.clone());
    let port = free_port();
    let state = dir.join("heft/state.json");
    // openrc-run sources /etc/conf.d/heft, then the script, and runs
    // "$command" $command_args; start_pre first. Nothing else is simulated.
    let driver = r#"
        RC_SVCNAME=heft
        . "$CONFD"
        HEFT_BIN="$TEST_BIN" HEFT_ADDR=127.0.0.1 HEFT_PORT="$TEST_PORT" HEFT_STATE_FILE="$TEST_STATE"
        HEFT_ALLOW=127.0.0.1/32 HEFT_USER= HEFT_GROUP= HEFT_OPTS="--ready-window 10"
        . "$SCRIPT"
        for f in depend start_pre reload; do command -v "$f" >/dev/null || { echo "no $f"; exit 1; }; done
        start_pre || exit 1
        echo "pidfile $pidfile"
        echo "background $command_background"
        echo "log $output_log $error_log"
        echo "extra $extra_started_commands"
        for w in "$command" $command_args; do echo "word $w"; done
    "#;
    let openrc = [
        ("CONFD", contrib("openrc/heft.confd").into()),
        ("SCRIPT", contrib("openrc/heft").into()),
    ];
    let mut env = openrc.to_vec();
    env.push(("TEST_BIN", HEFT.into()));
    env.push(("TEST_PORT", port.to_string().into()));
    env.push(("TEST_STATE", state.clone().into()));
    let stdout = busybox_sh(driver, &env);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"pidfile /run/heft.pid"), "{stdout}");
    assert!(lines.contains(&"background yes"), "{stdout}");
    assert!(lines.contains(&"extra reload"), "{stdout}");
    assert!(
        lines.contains(&"log /var/log/heft.log /var/log/heft.log"),
        "{stdout}"
    );
    let argv: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("word "))
        .collect();
    let want = words(&format!(
        "{HEFT} --addr 127.0.0.1 --port {port} --state-file {} --pid-file /run/heft.pid \
         --allow 127.0.0.1/32 --ready-window 10",
        state.display()
    ));
    assert_eq!(argv, want);
    assert!(
        state.parent().unwrap().is_dir(),
        "start_pre did not make the state directory"
    );
    // The command, with a private pid file in place of /run/heft.pid, serves.
    std::fs::write(&state, STATE).unwrap();
    let pid_file = dir.join("heft.pid");
    let argv: Vec<OsString> = argv
        .iter()
        .map(|w| match *w {
            "/run/heft.pid" => pid_file.clone().into_os_string(),
            w => w.into(),
        })
        .collect();
    let a = launch(&argv, &[], dir, port, state, pid_file);
    a.wait_listening();
    assert_eq!(a.probe(), "up ready 77% maxconn:300\n");
    assert_refused("127.0.0.2".parse().unwrap(), SocketAddr::new(V4, port), b"");
    assert_eq!(a.stop(), Some(0));

    // The shipped conf.d alone: heft's defaults and the nobody user.
    let mut env = openrc.to_vec();
    env.push(("RC_SVCNAME", "heft".into()));
    let out = busybox_sh(
        r#". "$CONFD"; . "$SCRIPT"; echo "$command $command_args""#,
        &env,
    );
    assert_eq!(
        out.trim(),
        "/usr/sbin/heft --addr 0.0.0.0 --port 9777 --state-file /etc/heft/state.json --pid-file /run/heft.pid --user nobody --group nobody"
    );
}

#[test]
fn runit_run_script_execs_heft_in_the_foreground() {
    let dir = temp_dir("ops-runit");
    let _cleanup = Cleanup(dir.clone());
    let port = free_port();
    let state = dir.join("state.json");
    std::fs::write(&state, STATE).unwrap();
    let pid_file = dir.join("heft.pid");
    // The service directory: the shipped run script and a conf for this test.
    let sv = dir.join("sv");
    std::fs::create_dir_all(&sv).unwrap();
    std::fs::copy(contrib("runit/run"), sv.join("run")).unwrap();
    std::fs::write(
        sv.join("conf"),
        format!(
            "HEFT_BIN={HEFT}\nHEFT_ADDR=127.0.0.1\nHEFT_PORT={port}\nHEFT_STATE_FILE={}\nHEFT_PID_FILE={}\nHEFT_ALLOW=127.0.0.1\nHEFT_OPTS=\"--wait 50\"\n",
            state.display(),
            pid_file.display()
        ),
    )
    .unwrap();
    // runsv runs ./run in the service directory; stdout is the log pipe.
    let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
    let child = Command::new(busybox())
        .args(["sh", "./run"])
        .current_dir(&sv)
        .env_clear()
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let a = Agent {
        child,
        port,
        dir,
        state,
        pid_file,
    };
    a.wait_listening();
    // exec'd in place: the supervisor's child is heft itself, which signals reach.
    let pid = a.pid();
    assert!(live_heft(pid), "the run script did not exec heft");
    assert_eq!(
        std::fs::read_to_string(&a.pid_file).unwrap().trim(),
        pid.to_string()
    );
    assert_eq!(a.probe(), "up ready 77% maxconn:300\n");
    assert_refused("127.0.0.2".parse().unwrap(), SocketAddr::new(V4, port), b"");
    // `sv hup heft` / `s6-svc -h`: SIGHUP re-reads the file.
    std::fs::write(&a.state, r#"{"status":"DRAIN"}"#).unwrap();
    a.signal(libc::SIGHUP);
    a.expect_reply("up drain 100%\n");
    // stderr goes to the log pipe (`exec 2>&1`).
    assert!(a.log().contains("SIGHUP"), "{}", a.log());
    assert_eq!(a.stop(), Some(0));
}
