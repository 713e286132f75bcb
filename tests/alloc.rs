//! Proves "no heap allocation after start-up" from outside: the process's
//! data segment (VmData in /proc/PID/status, which counts every heap and
//! mapped page) must not grow while heft serves probes, HTTP requests,
//! signals and reloads.

mod common;
use common::*;

/// Reads VmData (kB) of process `pid`.
fn vm_data(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmData:"))
        .unwrap_or_else(|| panic!("no VmData in {status}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn serving_signals_and_reloads_allocate_nothing() {
    let state = r#"{"status":"UP","weight":77,"services":{"web":{"status":"UP"}}}"#;
    // A short --wait: a quarter of the probes send nothing and are answered
    // when the wait for a payload ends.
    let a = Agent::start(Some(state), &["--wait", "2"]);
    let pid = a.child.id();
    // One round of every kind first, so that whatever is made on first use exists.
    probe_port(a.http_port, b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let before = vm_data(pid);
    for i in 0..20_000 {
        let (port, payload): (u16, &[u8]) = match i % 4 {
            0 => (a.port, b"web\n"),
            1 => (a.port, b""),
            2 => (a.http_port, b"HEAD / HTTP/1.0\r\n\r\n"),
            _ => (a.port, b"nosuch"),
        };
        probe_port(port, payload).unwrap();
        if i % 400 == 0 {
            a.signal([libc::SIGUSR2, libc::SIGUSR1, libc::SIGHUP][i / 400 % 3]);
        }
    }
    a.signal(libc::SIGUSR1);
    a.expect_reply("up ready 77%\n");
    probe_port(a.http_port, b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(vm_data(pid), before, "VmData (kB) after 20,000 probes");
    assert_eq!(a.stop(), Some(0));
}
