//! The init-system files in contrib/: the busybox/SysV script run by Debian's
//! busybox and the system sh (with and without start-stop-daemon), the
//! systemd unit checked by `systemd-analyze`, and the procd, OpenRC and runit
//! scripts run as far as their frameworks allow here. Tests run as root.

mod common;
use common::net::*;
use common::users::*;
use common::*;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn contrib(rel: &str) -> PathBuf {
    repo().join("contrib").join(rel)
}

/// Debian's busybox: installed by tests/ci.sh; the tests that need it say so when it is missing.
fn busybox() -> PathBuf {
    which("busybox")
        .expect("busybox is not installed: run tests/ci.sh or `apt-get install -y busybox`")
}

/// Splits a command line written out in a test (no quoting needed: no spaces in its words).
fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

/// Why a test that runs an init script which starts heft is skipped under a
/// runner: the script execs HEFT_BIN itself, with no room for a prefix.
const SCRIPT_EXECS: &str = "the init script execs HEFT_BIN itself, not through the runner prefix";
/// Like `SCRIPT_EXECS`, for tests that also find heft by name in /proc.
const SCRIPT_EXECS_BY_NAME: &str =
    "the init script execs HEFT_BIN itself, not through the runner prefix, and the test finds heft by its name in /proc";

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
        let mut path = SYSTEM_PATH.to_string();
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
                "# written by tests/init_scripts.rs\nHEFT_BIN={}\nHEFT_PID_FILE={}\nHEFT_LOG_FILE={}\nHEFT_ADDR=127.0.0.1\nHEFT_PORT={port}\n",
                heft_path(),
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
    if skip_under_runner(SCRIPT_EXECS_BY_NAME) {
        return;
    }
    sysv_life_cycle(Ssd::Debian, None);
}

#[test]
fn sysv_script_under_the_system_sh() {
    if skip_under_runner(SCRIPT_EXECS_BY_NAME) {
        return;
    }
    // Debian's /bin/sh is dash: the script is POSIX sh, not busybox-only.
    sysv_life_cycle(Ssd::Debian, Some("/bin/sh"));
    sysv_life_cycle(Ssd::None, Some("/bin/sh"));
}

#[test]
fn sysv_script_with_busybox_start_stop_daemon() {
    if skip_under_runner(SCRIPT_EXECS_BY_NAME) {
        return;
    }
    sysv_life_cycle(Ssd::Busybox, None);
}

#[test]
fn sysv_script_with_the_pid_file_alone() {
    if skip_under_runner(SCRIPT_EXECS_BY_NAME) {
        return;
    }
    sysv_life_cycle(Ssd::None, None);
}

#[test]
fn sysv_script_drops_to_a_user_and_creates_the_state_directory_for_it() {
    if skip_under_runner(SCRIPT_EXECS_BY_NAME) {
        return;
    }
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
    if skip_under_runner(SCRIPT_EXECS) {
        return;
    }
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
    // The unit sets no state file, so hapgent's HAPGENT_STATE_FILE still
    // counts, and heft may write to both usual state directories.
    assert!(
        !keys.iter().any(|l| l.contains("HEFT_STATE_FILE=")),
        "the unit sets HEFT_STATE_FILE"
    );
    assert!(
        has("ReadWritePaths=-/etc/heft -/etc/hapgent"),
        "the state directories are not writable"
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
        unit.replace(
            "ExecStart=/usr/sbin/heft",
            &format!("ExecStart={}", heft_path()),
        ),
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
        .env("PATH", SYSTEM_PATH)
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
            ("HEFT_BIN", heft_path().into()),
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
    let heft = heft_path();
    let want = words(&format!(
        "{heft} --addr 0.0.0.0 --port 9777 --state-file /etc/heft/state.json \
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
    if skip_under_runner(READS_PROC_STATUS) {
        return;
    }
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
    let heft = heft_path();
    let want = words(&format!(
        "{heft} --addr 127.0.0.1 --port {port} --state-file {} --pid-file {} \
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
    a.reload(r#"{"status":"MAINT"}"#, "maint 100%\n");
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
    env.push(("TEST_BIN", heft_path().into()));
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
    let heft = heft_path();
    let want = words(&format!(
        "{heft} --addr 127.0.0.1 --port {port} --state-file {} --pid-file /run/heft.pid \
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
    if skip_under_runner(SCRIPT_EXECS_BY_NAME) {
        return;
    }
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
            "HEFT_BIN={}\nHEFT_ADDR=127.0.0.1\nHEFT_PORT={port}\nHEFT_STATE_FILE={}\nHEFT_PID_FILE={}\nHEFT_ALLOW=127.0.0.1\nHEFT_OPTS=\"--wait 50\"\n",
            heft_path(),
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
        .env("PATH", SYSTEM_PATH)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let a = Agent {
        child,
        port,
        http_port: 0,
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
    a.reload(r#"{"status":"DRAIN"}"#, "up drain 100%\n");
    // stderr goes to the log pipe (`exec 2>&1`).
    assert!(a.log().contains("SIGHUP"), "{}", a.log());
    assert_eq!(a.stop(), Some(0));
}
