//! Proves "no heap allocation after start-up": the binary's allocator counts
//! every allocation and `/metrics` shows the count, which must not move while
//! heft serves probes, HTTP requests, signals and reloads.

mod common;
use common::*;

/// Reads `heft_heap_allocations_total` from `/metrics`.
fn allocations(port: u16) -> u64 {
    let text = probe_port(port, b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("heft_heap_allocations_total "))
        .unwrap_or_else(|| panic!("no allocation count in {text}"));
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn serving_signals_and_reloads_allocate_nothing() {
    let state = r#"{"status":"UP","weight":77,"services":{"web":{"status":"UP"}}}"#;
    let a = Agent::start(Some(state), &[]);
    let before = allocations(a.port);
    assert!(before > 0, "the count is live: start-up allocates");
    for i in 0..300 {
        let payload: &[u8] = match i % 4 {
            0 => b"web\n",
            1 => b"",
            2 => b"HEAD / HTTP/1.0\r\n\r\n",
            _ => b"nosuch",
        };
        probe_port(a.port, payload).unwrap();
        if i % 20 == 0 {
            a.signal([libc::SIGUSR2, libc::SIGUSR1, libc::SIGHUP][i / 20 % 3]);
        }
    }
    a.signal(libc::SIGUSR1);
    a.expect_reply("up ready 77%\n");
    assert_eq!(allocations(a.port), before, "allocations after start-up");
    assert_eq!(a.stop(), Some(0));
}
