//! Shared by the integration tests: start the real `heft` binary on 127.0.0.1
//! in a private directory, probe it, signal it, and clean up by PID.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The binary under test, built by cargo for this test run.
pub const HEFT: &str = env!("CARGO_BIN_EXE_heft");

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Makes a fresh private directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("heft-{}-{}-{}", tag, std::process::id(), n));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Finds a port on 127.0.0.1 that is free right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    if !payload.is_empty() {
        s.write_all(payload)?;
    }
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let _ = s.shutdown(Shutdown::Both);
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A running agent, killed and cleaned up when dropped.
pub struct Agent {
    pub child: Child,
    pub port: u16,
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
        let dir = temp_dir("agent");
        let state_path = dir.join("state.json");
        if let Some(s) = state {
            std::fs::write(&state_path, s).unwrap();
        }
        let port = free_port();
        let pid_file = dir.join("heft.pid");
        let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let mut cmd = Command::new(HEFT);
        cmd.arg("--addr")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg("--state-file")
            .arg(&state_path)
            .arg("--pid-file")
            .arg(&pid_file)
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = cmd.spawn().unwrap();
        let a = Agent {
            child,
            port,
            dir,
            state: state_path,
            pid_file,
        };
        a.wait_listening();
        a
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

    /// Sends SIGTERM and returns the exit status code.
    pub fn stop(mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            if start.elapsed() > Duration::from_secs(5) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
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
    let out = Command::new(HEFT)
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

/// Tells whether `path` exists.
pub fn exists(path: &Path) -> bool {
    path.exists()
}
