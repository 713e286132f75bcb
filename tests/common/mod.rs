//! Shared by the integration tests: start the real `heft` binary on 127.0.0.1
//! in a private directory, probe it, signal it, and clean up by PID.
//!
//! The binary under test is `$HEFT_BIN` (default: the one cargo built), run
//! through the command prefix in `$HEFT_RUNNER` when set (e.g.
//! `qemu-mipsel-static -cpu 24Kc`); every test starts heft through
//! `heft_command`, and a test that cannot work under a runner says so with
//! `skip_under_runner`.
#![allow(dead_code)]

pub mod haproxy;
pub mod http;
pub mod net;
pub mod prom;
pub mod state;
pub mod users;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A state file most tests start from.
pub const STATE: &str = r#"{"status":"UP","weight":77,"maxconn":300}"#;
/// How long a quick change may take to show.
pub const SECS5: Duration = Duration::from_secs(5);
/// How long anything expected may take to appear on a busy two-core machine.
pub const LIMIT: Duration = Duration::from_secs(10);

/// The heft binary under test: `$HEFT_BIN` when set and not empty (e.g. a
/// static cross build), else the one cargo built for this test run.
pub fn heft_bin() -> PathBuf {
    match std::env::var_os("HEFT_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_heft")),
    }
}

/// `heft_bin()` as a string, for command lines written out in a test.
pub fn heft_path() -> String {
    heft_bin()
        .to_str()
        .expect("HEFT_BIN is not UTF-8")
        .to_string()
}

/// The command prefix in `$HEFT_RUNNER`, split on whitespace (empty when
/// unset). Its first word is looked up on PATH here, so that wrappers run
/// with a cleared environment (`sh -c`, `unshare`) still find it.
pub fn runner() -> Vec<OsString> {
    let text = std::env::var("HEFT_RUNNER").unwrap_or_default();
    let mut words: Vec<OsString> = text.split_whitespace().map(OsString::from).collect();
    if let Some(first) = words.first_mut() {
        if !first.to_string_lossy().contains('/') {
            let name = first.to_string_lossy().into_owned();
            let found =
                which(&name).unwrap_or_else(|| panic!("HEFT_RUNNER: {name} is not on PATH"));
            *first = found.into_os_string();
        }
    }
    words
}

/// Tells whether tests run under a runner prefix (`$HEFT_RUNNER` is set).
pub fn under_runner() -> bool {
    std::env::var("HEFT_RUNNER").is_ok_and(|r| !r.trim().is_empty())
}

/// Why a test that reads the agent's /proc/PID/status is skipped under a runner.
pub const READS_PROC_STATUS: &str =
    "reads the agent's /proc/PID/status, which is qemu's under qemu-user";

/// When `$HEFT_RUNNER` is set, says on stderr (past the harness's capture)
/// that the calling test is skipped and why, and returns true: the test
/// then returns at once. Returns false without a runner.
pub fn skip_under_runner(reason: &str) -> bool {
    if !under_runner() {
        return false;
    }
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("(unnamed test)");
    let _ = writeln!(
        std::io::stderr(),
        "skipped under HEFT_RUNNER: {name}: {reason}"
    );
    true
}

/// The words that start heft: `wrapper` (which must exec what follows it in
/// place), then the runner prefix, then the binary.
pub fn heft_argv(wrapper: &[&str]) -> Vec<OsString> {
    let mut v: Vec<OsString> = wrapper.iter().map(OsString::from).collect();
    v.extend(runner());
    v.push(heft_bin().into_os_string());
    v
}

/// The one way tests start heft: a `Command` for `heft_argv(wrapper)`, to
/// which the caller adds heft's arguments.
pub fn heft_command(wrapper: &[&str]) -> Command {
    let argv = heft_argv(wrapper);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    cmd
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Makes a fresh private directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("heft-{}-{}-{}", tag, std::process::id(), n));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Finds a port on 127.0.0.1 that is free right now, below the kernel's
/// ephemeral range: a port the kernel hands out (as `bind(0)` would) could be
/// taken by a parallel test's client socket before heft binds it. Each call
/// takes the next port of a sequence that starts at a place derived from the
/// process id, so parallel tests and test binaries do not ask for the same one.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (first, span) = (10_000u32, low.saturating_sub(10_000));
    if span < 1000 {
        return TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
    }
    let start = std::process::id().wrapping_mul(7919) % span;
    loop {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = (first + (start + n * 13) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits up to `limit` for `f` to hold; returns whether it did.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// Connects to 127.0.0.1:`port`, sends `payload`, returns everything until EOF (or 5 s).
pub fn probe_port(port: u16, payload: &[u8]) -> std::io::Result<String> {
    let out = exchange(TcpStream::connect(("127.0.0.1", port))?, payload)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// On a connected stream: sends `payload` (if any), returns every byte until EOF (or 5 s).
pub fn exchange(mut s: TcpStream, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    if !payload.is_empty() {
        s.write_all(payload)?;
    }
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let _ = s.shutdown(Shutdown::Both);
    Ok(out)
}

/// A running agent, killed and cleaned up when dropped.
pub struct Agent {
    pub child: Child,
    pub port: u16,
    /// The HTTP port (`--http-port`); 0 when HTTP is off.
    pub http_port: u16,
    pub dir: PathBuf,
    pub state: PathBuf,
    pub pid_file: PathBuf,
}

impl Agent {
    /// Starts heft on 127.0.0.1 with `state` (if any) as its state file and extra `args`.
    pub fn start(state: Option<&str>, args: &[&str]) -> Agent {
        Agent::start_with(state, args, &[])
    }

    /// Like `start`, with extra environment variables.
    pub fn start_with(state: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Agent {
        let mut a = Agent::spawn(state, args, env, &[]);
        // A port found free can be taken by another process before heft
        // binds it: then start again on another port.
        for _ in 0..3 {
            wait_for(Duration::from_secs(10), || {
                a.log().contains("listening on") || !a.running()
            });
            if a.running() || !a.log().contains("EADDRINUSE") {
                break;
            }
            a = Agent::spawn(state, args, env, &[]);
        }
        a.wait_listening();
        a
    }

    /// Starts heft like `start_with` without waiting for it, run through
    /// `wrapper` when it is not empty (e.g. `["unshare", "-m", "--"]`, or
    /// `["sh", "-c", "ulimit -n 12; exec \"$0\" \"$@\""]`): heft's path and
    /// arguments are appended to it, so the wrapper must exec heft in place
    /// for `pid()` and `signal` to reach heft itself.
    pub fn spawn(
        state: Option<&str>,
        args: &[&str],
        env: &[(&str, &str)],
        wrapper: &[&str],
    ) -> Agent {
        spawn_in_with(
            temp_dir("agent"),
            "127.0.0.1",
            free_port(),
            state,
            args,
            env,
            wrapper,
        )
    }

    /// Wraps a heft child started by hand in `dir` (state file `dir/state.json`,
    /// pid file `dir/heft.pid`), listening on 127.0.0.1:`port`.
    pub fn adopt(child: Child, port: u16, dir: PathBuf) -> Agent {
        Agent {
            child,
            port,
            http_port: 0,
            state: dir.join("state.json"),
            pid_file: dir.join("heft.pid"),
            dir,
        }
    }

    /// Waits until the agent accepts connections (it has read its state file by then).
    pub fn wait_listening(&self) {
        let ok = wait_for(Duration::from_secs(10), || {
            self.log().contains("listening on")
        }) && wait_for(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
        assert!(ok, "agent did not start; log:\n{}", self.log());
    }

    /// Probes without a payload and returns the reply.
    pub fn probe(&self) -> String {
        probe_port(self.port, b"").unwrap()
    }

    /// Probes with a payload and returns the reply.
    pub fn probe_with(&self, payload: &[u8]) -> String {
        probe_port(self.port, payload).unwrap()
    }

    /// The agent's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends a signal to the agent.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let r = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(r, 0, "kill failed");
    }

    /// Everything the agent wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// The state file's content.
    pub fn state_text(&self) -> String {
        std::fs::read_to_string(&self.state).unwrap_or_default()
    }

    /// Waits until a probe returns `want`; panics with the last reply if it never does.
    pub fn expect_reply(&self, want: &str) {
        let mut last = String::new();
        let ok = wait_for(Duration::from_secs(5), || {
            last = self.probe();
            last == want
        });
        assert!(ok, "wanted {want:?}, got {last:?}; log:\n{}", self.log());
    }

    /// Writes `state` to the state file, sends SIGHUP and waits until a probe
    /// returns `want`.
    pub fn reload(&self, state: impl AsRef<[u8]>, want: &str) {
        std::fs::write(&self.state, state).unwrap();
        self.signal(libc::SIGHUP);
        self.expect_reply(want);
    }

    /// Sends SIGTERM and returns the exit status code.
    pub fn stop(self) -> Option<i32> {
        self.stop_with(libc::SIGTERM, Duration::from_secs(5))
    }

    /// Sends `sig` and returns the exit status code if heft exits within `limit`.
    pub fn stop_with(mut self, sig: i32, limit: Duration) -> Option<i32> {
        self.signal(sig);
        self.wait_exit(limit)
    }

    /// Waits up to `limit` for heft to exit; returns its exit code (None: still running, or killed by a signal).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Tells whether heft is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits until a probe with a newline payload gets a whole line back
    /// (for agents started with `-q`, which log no start-up line).
    pub fn wait_serving(&self) {
        let ok = wait_for(Duration::from_secs(10), || {
            probe_port(self.port, b"\n").is_ok_and(|r| r.ends_with('\n'))
        });
        assert!(ok, "agent does not serve; log:\n{}", self.log());
    }

    /// Runs `heft` with `args` (e.g. `set`) against this agent's files and returns (code, stderr).
    pub fn heft(&self, args: &[&str]) -> (i32, String, String) {
        run_heft(
            args,
            &[
                ("HEFT_STATE_FILE", self.state.to_str().unwrap()),
                ("HEFT_PID_FILE", self.pid_file.to_str().unwrap()),
            ],
        )
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `heft` with `args` and `env` and returns (exit code, stdout, stderr).
pub fn run_heft(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = heft_command(&[])
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Like `run_heft`, but kills heft if it has not exited within `limit`
/// (for commands that must fail at once and would otherwise serve forever);
/// the code is None when it had to be killed.
pub fn run_heft_for(
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> (Option<i32>, String, String) {
    let mut child = heft_command(&[])
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().unwrap();
    (
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Spawns `heft` with exactly `args` and `env` (nothing implied), through
/// `wrapper` when it is not empty (see `Agent::spawn`); stdin and stdout are
/// null, stderr is appended to `dir/stderr.log`.
pub fn spawn_heft(
    dir: &Path,
    wrapper: &[&str],
    args: &[std::ffi::OsString],
    env: &[(&str, &str)],
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("stderr.log"))
        .unwrap();
    heft_command(wrapper)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", heft_argv(wrapper)))
}

/// A fixed PATH for wrappers run with a cleared environment.
pub const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The names in `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Writes `text` to `path` atomically (through a temporary file and a
/// rename), so heft never reads a file empty or half-written.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-test");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Tells whether `path` exists.
pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// Starts heft on `addr`:`port` in `dir` (from `temp_dir`), with the state
/// file written if given, and extra `args` and `env`, without waiting for it.
pub fn spawn_in(
    dir: PathBuf,
    addr: &str,
    port: u16,
    state: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
) -> Agent {
    spawn_in_with(dir, addr, port, state, args, env, &[])
}

/// Like `spawn_in`, through `wrapper` when it is not empty (see `Agent::spawn`).
pub fn spawn_in_with(
    dir: PathBuf,
    addr: &str,
    port: u16,
    state: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
    wrapper: &[&str],
) -> Agent {
    let state_path = dir.join("state.json");
    if let Some(s) = state {
        std::fs::write(&state_path, s).unwrap();
    }
    let pid_file = dir.join("heft.pid");
    // HTTP on its own port, on the agent's address; `args` may say otherwise.
    let http_port = free_port();
    let mut argv: Vec<OsString> = ["--addr", addr, "--port", &port.to_string()]
        .map(OsString::from)
        .to_vec();
    argv.extend(["--http-port".into(), http_port.to_string().into()]);
    argv.extend(["--state-file".into(), state_path.clone().into_os_string()]);
    argv.extend(["--pid-file".into(), pid_file.clone().into_os_string()]);
    argv.extend(args.iter().map(OsString::from));
    let child = spawn_heft(&dir, wrapper, &argv, env);
    Agent {
        child,
        port,
        http_port,
        dir,
        state: state_path,
        pid_file,
    }
}

/// Runs the command line `argv` (heft's path first, as an init script
/// builds it) with exactly `env`, its stderr in `dir/stderr.log`, as an
/// agent on `port` with these files.
pub fn launch(
    argv: &[OsString],
    env: &[(&str, &str)],
    dir: PathBuf,
    port: u16,
    state: PathBuf,
    pid_file: PathBuf,
) -> Agent {
    assert_eq!(
        argv[0],
        heft_bin().into_os_string(),
        "launch runs heft itself"
    );
    let child = spawn_heft(&dir, &[], &argv[1..], env);
    Agent {
        child,
        port,
        http_port: 0,
        dir,
        state,
        pid_file,
    }
}

/// Log lines that are errors.
pub fn error_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("error:")).collect()
}

/// Checks that a usage failure exited 100 with one stderr line naming `names`.
pub fn assert_usage(what: &str, got: (Option<i32>, String, String), names: &[&str]) {
    let (code, _, err) = got;
    assert_eq!(code, Some(100), "{what}: exit code; stderr {err:?}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{what}: not one line: {err:?}"
    );
    for n in names {
        assert!(
            err.contains(n),
            "{what}: stderr does not name {n:?}: {err:?}"
        );
    }
}

/// Tells whether the tests run as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Finds `name` on the PATH (or in the usual system directories).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SYSTEM_PATH.split(':').map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Waits until the agent's stderr has `needle`.
pub fn wait_log(a: &Agent, needle: &str) {
    let ok = wait_for(LIMIT, || a.log().contains(needle));
    assert!(ok, "no {needle:?} in the log:\n{}", a.log());
}

/// Removes a directory when dropped, also when a test fails.
pub struct Cleanup(pub PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts heft on 127.0.0.1 with `extra` options and `env`, expecting it to
/// stop at start-up: returns (exit code, stderr); fails if it is still running after 10 s.
pub fn failing_start(extra: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let port = free_port().to_string();
    let base = [
        "--addr",
        "127.0.0.1",
        "--port",
        &port,
        "--state-file",
        "/nonexistent/s.json",
    ];
    let mut cmd = heft_command(&[]);
    cmd.args(base)
        .args(extra)
        .env_clear()
        .envs(env.iter().copied());
    let dir = temp_dir("ops-failing");
    let _cleanup = Cleanup(dir.clone());
    let (code, _, err) = run_limited(cmd, &dir, "heft", Duration::from_secs(10));
    (code, err)
}

/// Runs a command with files for stdout and stderr (a daemon it leaves behind
/// must not hold our pipes) and a time limit; returns (code, stdout, stderr).
pub fn run_limited(
    mut cmd: Command,
    dir: &Path,
    tag: &str,
    limit: Duration,
) -> (i32, String, String) {
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
