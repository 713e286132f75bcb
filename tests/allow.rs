//! The allow-list (`--allow`, `HEFT_ALLOW`) on IPv4, IPv6 and dual-stack
//! listeners, agent and HTTP alike: refused sources get no reply, are counted
//! in `/metrics` and logged once per burst; a bad list stops start-up with
//! exit 100.

mod common;
use common::net::*;
use common::prom::*;
use common::*;

use std::net::{IpAddr, SocketAddr, TcpListener};

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

#[test]
fn allow_list_refuses_other_ipv4_sources_without_a_reply_and_counts_them() {
    let a = Agent::start(Some(STATE), &["--allow", "127.0.0.1/32"]);
    let dst = SocketAddr::new(V4, a.port);
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    assert_eq!(
        text(ask_from(V4, dst, b"").unwrap()),
        "up ready 77% maxconn:300\n"
    );
    let before = metrics(a.http_port).get("heft_refused_total");
    assert_eq!(before, 0.0);
    // Five bare connections, and one HTTP request on the HTTP port: the
    // same list guards both.
    for _ in 0..5 {
        assert_refused(other, dst, b"");
    }
    let http_dst = SocketAddr::new(V4, a.http_port);
    assert_refused(other, http_dst, b"GET / HTTP/1.0\r\n\r\n");
    // The allowed source is still served, by agent line and by HTTP.
    assert_eq!(
        text(ask_from(V4, dst, b"\n").unwrap()),
        "up ready 77% maxconn:300\n"
    );
    assert_eq!(metrics(a.http_port).get("heft_refused_total"), 6.0);
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
    let m = metrics_from(
        "127.0.0.3".parse().unwrap(),
        SocketAddr::new(V4, a.http_port),
    );
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
    let http = SocketAddr::new(V6, a.http_port);
    assert_eq!(metrics_from(V6, http).get("heft_refused_total"), 2.0);
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
        metrics_from(V4, SocketAddr::new(V4, a.http_port)).get("heft_refused_total"),
        0.0
    );
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
