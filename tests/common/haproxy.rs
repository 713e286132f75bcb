//! A real HAProxy for end-to-end tests: installed if missing (when root),
//! started in the foreground on a private config, read and driven through its
//! stats socket, and killed by PID when dropped.
//!
//! A module of common/: a test file reaches it as `common::haproxy`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::{temp_dir, wait_for};

/// How long any expected HAProxy state may take to appear.
pub const LIMIT: Duration = Duration::from_secs(10);

/// Serialises the one-time install so parallel tests do not race apt.
static INSTALL: Mutex<Option<Result<PathBuf, String>>> = Mutex::new(None);

fn find_haproxy() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join("haproxy"))
        .find(|p| p.is_file())
}

fn install() -> Result<PathBuf, String> {
    if let Some(p) = find_haproxy() {
        return Ok(p);
    }
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(
            "haproxy is not installed and we are not root to install it: \
                    run `apt-get install haproxy` (or tests/ci.sh as root)"
                .into(),
        );
    }
    for args in [
        &["update", "-qq"][..],
        &["install", "-y", "-qq", "haproxy"][..],
    ] {
        let out = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("haproxy is missing and apt-get could not run: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "haproxy is missing and `apt-get {}` failed:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    find_haproxy().ok_or_else(|| "apt-get installed haproxy but it is not on PATH".into())
}

/// The haproxy binary, installed with apt-get first if missing and we are root.
pub fn haproxy_binary() -> PathBuf {
    let mut g = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    match g.get_or_insert_with(install) {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// One server's line of `show servers state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Srv {
    /// `srv_op_state`: 0 stopped (down), 2 running (up).
    pub op: u32,
    /// `srv_admin_state`: bit flags, 0x01 forced maint, 0x08 forced drain.
    pub admin: u32,
    /// `srv_uweight`: the current weight.
    pub weight: u32,
    /// `srv_iweight`: the configured weight.
    pub iweight: u32,
}

/// `srv_op_state` of a server that is down.
pub const OP_DOWN: u32 = 0;
/// `srv_op_state` of a server that is up.
pub const OP_UP: u32 = 2;
/// `srv_admin_state` flag: forced maintenance (CLI or agent `maint`).
pub const ADMIN_MAINT: u32 = 0x01;
/// `srv_admin_state` flag: forced drain (CLI or agent `drain`).
pub const ADMIN_DRAIN: u32 = 0x08;

/// A running HAProxy, killed and cleaned up when dropped.
pub struct Haproxy {
    child: Child,
    /// The private directory holding the config, the socket and the log.
    pub dir: PathBuf,
    /// The admin stats socket.
    pub sock: PathBuf,
}

impl Haproxy {
    /// Starts HAProxy in the foreground with `proxies` (backend sections)
    /// after a global section with an admin stats socket and tcp defaults.
    ///
    /// `timeout check` is set so that a check's read timeout is not
    /// `agent-inter`: without `agent-send`, HAProxy's delayed ACK of the
    /// handshake holds the connection out of the agent's accept queue for
    /// about 200 ms, longer than the short `agent-inter` the tests use.
    pub fn start(proxies: &str) -> Haproxy {
        let bin = haproxy_binary();
        let dir = temp_dir("haproxy");
        let sock = dir.join("haproxy.sock");
        let cfg = format!(
            "global\n\
             \x20   stats socket {sock} level admin\n\
             \x20   stats timeout 10s\n\
             \n\
             defaults\n\
             \x20   mode tcp\n\
             \x20   timeout connect 1s\n\
             \x20   timeout client 10s\n\
             \x20   timeout server 10s\n\
             \x20   timeout check 2s\n\
             \n\
             {proxies}",
            sock = sock.display()
        );
        let cfg_path = dir.join("haproxy.cfg");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = std::fs::File::create(dir.join("haproxy.log")).unwrap();
        let child = Command::new(&bin)
            .arg("-f")
            .arg(&cfg_path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        let mut h = Haproxy { child, dir, sock };
        let up = wait_for(LIMIT, || {
            h.child.try_wait().ok().flatten().is_none() && h.try_cmd("show info").is_ok()
        });
        if !up {
            panic!(
                "haproxy did not start (exit {:?}); config:\n{}\nlog:\n{}",
                h.child.try_wait().ok().flatten(),
                std::fs::read_to_string(&cfg_path).unwrap_or_default(),
                h.log()
            );
        }
        h
    }

    /// Everything HAProxy wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default()
    }

    /// Sends one command line (or several joined by `;`) to the stats socket; returns the answer.
    pub fn try_cmd(&self, cmd: &str) -> std::io::Result<String> {
        let mut s = UnixStream::connect(&self.sock)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(cmd.as_bytes())?;
        s.write_all(b"\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    /// Like `try_cmd`, panicking on socket errors.
    pub fn cmd(&self, cmd: &str) -> String {
        self.try_cmd(cmd)
            .unwrap_or_else(|e| panic!("stats socket {cmd:?}: {e}; log:\n{}", self.log()))
    }

    /// The raw `show servers state BACKEND` answer.
    pub fn servers_state_text(&self, backend: &str) -> String {
        self.cmd(&format!("show servers state {backend}"))
    }

    /// One server's op state, admin state and weights, if listed.
    pub fn server(&self, backend: &str, server: &str) -> Option<Srv> {
        let text = self.servers_state_text(backend);
        let row = servers_state_rows(&text).into_iter().find(|r| {
            r.get("be_name").map(String::as_str) == Some(backend)
                && r.get("srv_name").map(String::as_str) == Some(server)
        })?;
        let n = |k: &str| row.get(k)?.parse::<u32>().ok();
        Some(Srv {
            op: n("srv_op_state")?,
            admin: n("srv_admin_state")?,
            weight: n("srv_uweight")?,
            iweight: n("srv_iweight")?,
        })
    }

    /// One server's row of `show stat`, by column name.
    pub fn stat(&self, backend: &str, server: &str) -> Option<HashMap<String, String>> {
        stat_rows(&self.cmd("show stat")).into_iter().find(|r| {
            r.get("pxname").map(String::as_str) == Some(backend)
                && r.get("svname").map(String::as_str) == Some(server)
        })
    }

    /// One `show stat` field of one server (empty if absent).
    pub fn stat_field(&self, backend: &str, server: &str, field: &str) -> String {
        self.stat(backend, server)
            .and_then(|mut r| r.remove(field))
            .unwrap_or_default()
    }

    /// Waits until `ok` holds for the server's `show servers state` line;
    /// panics with `what`, the last state dump, HAProxy's log and `agent_log`.
    pub fn expect(
        &self,
        backend: &str,
        server: &str,
        what: &str,
        agent_log: &dyn Fn() -> String,
        ok: impl Fn(Srv) -> bool,
    ) -> Srv {
        let mut last = None;
        if wait_for(LIMIT, || {
            last = self.server(backend, server);
            last.is_some_and(&ok)
        }) {
            return last.unwrap();
        }
        self.fail(
            backend,
            &format!("{backend}/{server}: {what}; last seen {last:?}"),
            agent_log,
        )
    }

    /// Waits until `ok` holds for the server's `show stat` row; panics like `expect`.
    pub fn expect_stat(
        &self,
        backend: &str,
        server: &str,
        what: &str,
        agent_log: &dyn Fn() -> String,
        ok: impl Fn(&HashMap<String, String>) -> bool,
    ) -> HashMap<String, String> {
        let mut last = None;
        if wait_for(LIMIT, || {
            last = self.stat(backend, server);
            last.as_ref().is_some_and(&ok)
        }) {
            return last.unwrap();
        }
        let brief = last.map(|r| {
            [
                "status",
                "weight",
                "slim",
                "last_agt",
                "agent_status",
                "agent_desc",
            ]
            .iter()
            .map(|k| format!("{k}={:?}", r.get(*k).cloned().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(" ")
        });
        self.fail(
            backend,
            &format!("{backend}/{server} show stat: {what}; last seen {brief:?}"),
            agent_log,
        )
    }

    /// Panics with `msg`, the backend's state dump, HAProxy's log and the agent's.
    pub fn fail(&self, backend: &str, msg: &str, agent_log: &dyn Fn() -> String) -> ! {
        panic!(
            "{msg}\n--- show servers state {backend}:\n{}\n--- haproxy log:\n{}\n--- agent log:\n{}",
            self.try_cmd(&format!("show servers state {backend}"))
                .unwrap_or_else(|e| format!("(stats socket: {e})")),
            self.log(),
            agent_log()
        )
    }

    /// HAProxy's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The config file HAProxy runs.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("haproxy.cfg")
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        // Child::kill sends SIGKILL to this child's pid only.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Parses `show servers state` output into rows keyed by column name
/// (the header line is `# be_id be_name srv_id ...`, after a version line).
pub fn servers_state_rows(text: &str) -> Vec<HashMap<String, String>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.by_ref().find(|l| l.starts_with('#')) else {
        return Vec::new();
    };
    let names: Vec<&str> = header.trim_start_matches('#').split_whitespace().collect();
    lines
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            names
                .iter()
                .zip(l.split_whitespace())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// Parses `show stat` CSV into rows keyed by column name (the header line is
/// `# pxname,svname,...`); honours double-quoted fields.
pub fn stat_rows(text: &str) -> Vec<HashMap<String, String>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let names = csv_fields(header.trim_start_matches('#').trim_start());
    lines
        .map(|l| names.iter().cloned().zip(csv_fields(l)).collect())
        .collect()
}

fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// A `server` line for backend tests: `name` at an unused 127.0.0.1 port,
/// configured weight 100 (so `srv_uweight` equals the agent's percentage),
/// agent-only checks every `inter` against 127.0.0.1:`agent_port`, and
/// `agent-send` when `send` is given (written as a HAProxy string, e.g. `web\n`).
pub fn server_line(name: &str, agent_port: u16, inter: &str, send: Option<&str>) -> String {
    let port = super::free_port();
    let mut s = format!(
        "    server {name} 127.0.0.1:{port} weight 100 agent-check agent-addr 127.0.0.1 \
         agent-port {agent_port} agent-inter {inter}"
    );
    if let Some(p) = send {
        s.push_str(&format!(" agent-send \"{p}\""));
    }
    s.push('\n');
    s
}

/// Tells whether `path` is an existing Unix socket.
pub fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}
