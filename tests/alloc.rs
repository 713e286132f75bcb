//! Proves "no heap allocation after start-up": valgrind counts every malloc of
//! the real binary; a run that serves probes, signals and reloads must count
//! exactly as many as a run that only starts and stops.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs heft under valgrind, calls `work` with its port and pid, stops it, returns its alloc count.
fn allocations(work: impl Fn(u16, i32)) -> u64 {
    let dir = temp_dir("alloc");
    let state = dir.join("state.json");
    std::fs::write(&state, r#"{"status":"UP","weight":77,"services":{"web":{"status":"UP"}}}"#).unwrap();
    let vlog = dir.join("valgrind.log");
    let port = free_port();
    let mut child = Command::new("valgrind")
        .arg("--log-file=".to_string() + vlog.to_str().unwrap())
        .arg(HEFT)
        .args(["--addr", "127.0.0.1", "--port", &port.to_string(), "--state-file"])
        .arg(&state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let ok = wait_for(Duration::from_secs(60), || probe_port(port, b"").map(|r| r.starts_with("up")).unwrap_or(false));
    assert!(ok, "heft under valgrind did not answer");
    work(port, pid);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let text = std::fs::read_to_string(&vlog).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let line = text.lines().find(|l| l.contains("total heap usage:")).expect("no valgrind summary");
    let n = line.split("total heap usage:").nth(1).unwrap().trim().split(' ').next().unwrap();
    n.replace(',', "").parse().unwrap()
}

#[test]
fn serving_signals_and_reloads_allocate_nothing() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        panic!("valgrind is needed (tests/ci.sh installs it)");
    }
    let idle = allocations(|port, _| {
        probe_port(port, b"").unwrap();
    });
    let busy = allocations(|port, pid| {
        for i in 0..200 {
            probe_port(port, if i % 2 == 0 { b"web\n" } else { b"" }).unwrap();
            if i % 20 == 0 {
                let sig = [libc::SIGUSR2, libc::SIGUSR1, libc::SIGHUP][i / 20 % 3];
                // SAFETY: kill(2) on our own child.
                unsafe { libc::kill(pid, sig) };
            }
        }
        probe_port(port, b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        probe_port(port, b"HEAD / HTTP/1.0\r\n\r\n").unwrap();
    });
    assert_eq!(busy, idle, "allocations after start-up: {} (idle run {})", busy - idle, idle);
}
