//! HTTP on its own port (`--http-port`): GET and HEAD of `/` and `/SERVICE`
//! (200 or 503 by health), checked with raw requests and curl; `/metrics` in
//! Prometheus text format, accepted by promtool, counting exactly what
//! happened; HTTP off unless configured, and the agent port speaking only the
//! agent protocol.

mod common;
use common::http::*;
use common::net::*;
use common::prom::*;
use common::*;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

#[test]
fn http_get_and_head_answer_on_the_http_port() {
    let state = r#"{"status":"UP","weight":77,"maxconn":300,"services":{"web":{"status":"DRAIN","weight":50},"db":{"status":"DOWN","reason":"disk full"}}}"#;
    let a = Agent::start(Some(state), &[]);
    let line = a.probe();
    assert_eq!(line, "up ready 77% maxconn:300\n");

    let get = http(a.http_port, "GET", "/");
    assert_eq!(get.status, "HTTP/1.0 200 OK");
    assert_eq!(get.header("Content-Type"), Some("text/plain"));
    assert_eq!(get.header("Connection"), Some("close"));
    assert_eq!(
        get.header("Content-Length"),
        Some(line.len().to_string().as_str())
    );
    assert_eq!(get.body, line);

    let head = http(a.http_port, "HEAD", "/");
    assert_eq!(head.status, get.status);
    assert_eq!(head.headers, get.headers);
    assert_eq!(head.body, "", "HEAD sends headers only");

    let web = http(a.http_port, "GET", "/web");
    assert_eq!((web.code(), web.body.as_str()), (200, "up drain 50%\n"));
    let db = http(a.http_port, "GET", "/db");
    assert_eq!(
        (db.code(), db.body.as_str()),
        (503, "down ready 100% #disk full\n")
    );
    assert_eq!(http(a.http_port, "HEAD", "/db").code(), 503);
    // HAProxy's `option httpchk` sends OPTIONS unless told otherwise: any
    // method but HEAD is answered as GET.
    let options = http(a.http_port, "OPTIONS", "/web");
    assert_eq!(
        (options.code(), options.body.as_str()),
        (200, "up drain 50%\n")
    );

    // 200 while the health is up (ready or drain), 503 otherwise.
    for (status, code, want) in [
        ("DRAIN", 200, "up drain 77% maxconn:300\n"),
        ("MAINT", 503, "maint 77% maxconn:300\n"),
        ("DOWN", 503, "down ready 77% maxconn:300\n"),
        ("FAIL", 503, "fail ready 77% maxconn:300\n"),
        ("STOPPED", 503, "stopped ready 77% maxconn:300\n"),
        ("READY", 200, "up ready 77% maxconn:300\n"),
    ] {
        a.reload(
            format!(r#"{{"status":"{status}","weight":77,"maxconn":300}}"#),
            want,
        );
        let g = http(a.http_port, "GET", "/");
        assert_eq!((g.code(), g.body.as_str()), (code, want), "{status}");
        assert_eq!(g.header("Connection"), Some("close"));
        let h = http(a.http_port, "HEAD", "/");
        assert_eq!((h.code(), h.body.as_str()), (code, ""), "{status}");
    }
    // The plain agent probe still works between HTTP requests.
    assert_eq!(a.probe_with(b"\n"), "up ready 77% maxconn:300\n");
    a.reload(state, "up ready 77% maxconn:300\n");
    let db = http(a.http_port, "GET", "/db");
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
    let url = format!("http://127.0.0.1:{}/", a.http_port);
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

/// HTTP is off unless a port is given; the agent port answers a request
/// line with the agent line, as any payload (its first word names no
/// service), and never waits for one.
#[test]
fn the_agent_port_speaks_only_the_agent_protocol() {
    let dir = temp_dir("no-http");
    let port = free_port();
    std::fs::write(dir.join("state.json"), STATE).unwrap();
    let args: Vec<std::ffi::OsString> = [
        "--addr".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string().into(),
        "--state-file".into(),
        dir.join("state.json").into_os_string(),
    ]
    .into();
    let a = Agent::adopt(spawn_heft(&dir, &[], &args, &[]), port, dir);
    a.wait_listening();
    let line = a
        .log()
        .lines()
        .find(|l| l.contains("listening on"))
        .unwrap()
        .to_string();
    assert!(
        line.contains(&format!("listening on 127.0.0.1:{port}, state file")),
        "{line}"
    );
    assert!(!a.log().contains("HTTP"), "{}", a.log());
    for req in [
        "GET / HTTP/1.0\r\n\r\n",
        "HEAD /metrics HTTP/1.0\r\n\r\n",
        "GET ",
    ] {
        let t = std::time::Instant::now();
        assert_eq!(
            a.probe_with(req.as_bytes()),
            "up ready 77% maxconn:300\n",
            "{req:?}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{req:?}: {:?}",
            t.elapsed()
        );
    }
    // With services too: the request line's first word is the service asked for.
    let services = r#"{"status":"UP","weight":77,"services":{"GET":{"status":"DRAIN"}}}"#;
    a.reload(services, "up ready 77%\n");
    assert_eq!(
        a.probe_with(b"GET /metrics HTTP/1.0\r\n\r\n"),
        "up drain 100%\n"
    );
    assert_eq!(a.stop(), Some(0));
}

/// `/metrics` passes Prometheus's own parser and linter, and every value in
/// it is what the test did: probes, HTTP requests, refusals, reloads, a
/// connection closed at its deadline, a bad state file, and the state's
/// gauges.
#[test]
fn metrics_are_valid_exposition_and_count_exactly_what_happened() {
    let state = r#"{"status":"UP","weight":77,"maxconn":300,"services":{"web":{"status":"MAINT","weight":5},"db":{"status":"DRAIN","maxconn":7}}}"#;
    let a = Agent::start(Some(state), &["--allow", "127.0.0.1", "--timeout", "300"]);
    let m0 = metrics(a.http_port);
    promtool_check(&m0.raw);
    let gauges = [
        ("heft_up{service=\"\",status=\"UP\"}", 1.0),
        ("heft_up{service=\"web\",status=\"MAINT\"}", 0.0),
        ("heft_up{service=\"db\",status=\"DRAIN\"}", 1.0),
        ("heft_weight{service=\"\"}", 77.0),
        ("heft_weight{service=\"web\"}", 5.0),
        ("heft_weight{service=\"db\"}", 100.0),
        ("heft_maxconn{service=\"\"}", 300.0),
        ("heft_maxconn{service=\"db\"}", 7.0),
    ];
    for (k, v) in gauges {
        assert_eq!(m0.get(k), v, "{k}");
    }
    // Nothing else: web has no maxconn.
    let counters = [
        "heft_probes_total",
        "heft_http_requests_total",
        "heft_refused_total",
        "heft_reloads_total",
        "heft_timeouts_total",
        "heft_log_lines_dropped_total",
        "heft_errors_total{kind=\"accept\"}",
        "heft_errors_total{kind=\"persist\"}",
        "heft_errors_total{kind=\"state_file\"}",
    ];
    assert_eq!(
        m0.samples.len(),
        gauges.len() + counters.len(),
        "{}",
        m0.raw
    );
    // Only the harness's start-up connection came before: one probe.
    assert_eq!(m0.get("heft_probes_total"), 1.0, "{}", m0.raw);
    assert_eq!(
        m0.get("heft_http_requests_total"),
        1.0,
        "the scrape counts itself"
    );
    for k in &counters[2..] {
        assert_eq!(m0.get(k), 0.0, "{k}");
    }

    // 7 agent probes, 3 HTTP requests.
    for i in 0..7 {
        let payload: &[u8] = [&b"web\n"[..], b"\n", b"db"][i % 3];
        assert!(a.probe_with(payload).ends_with('\n'));
    }
    for _ in 0..3 {
        assert_eq!(http(a.http_port, "GET", "/").code(), 200);
    }
    // 2 refused sources on the agent port, 1 on the HTTP port.
    let other = "127.0.0.2".parse().unwrap();
    assert_refused(other, SocketAddr::new(V4, a.port), b"");
    assert_refused(other, SocketAddr::new(V4, a.port), b"\n");
    assert_refused(
        other,
        SocketAddr::new(V4, a.http_port),
        b"GET / HTTP/1.0\r\n\r\n",
    );
    // A probe that names its service but never closes: answered, then closed
    // at --timeout (300 ms).
    let mut held = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
    held.write_all(b"db ").unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    // Two reloads, one signal at a time (two at once may merge into one), the
    // second of a file that does not parse.
    a.reload(state, "up ready 77% maxconn:300\n");
    std::fs::write(&a.state, "{").unwrap();
    a.signal(libc::SIGHUP);
    wait_log(&a, "error: state file");
    let m1 = metrics(a.http_port);
    promtool_check(&m1.raw);
    // reload() probed until the reply showed; the failed load serves FAIL.
    let reload_probes = m1.get("heft_probes_total") - m0.get("heft_probes_total") - 8.0;
    assert!(reload_probes >= 1.0, "{}", m1.raw);
    let want = [
        ("heft_http_requests_total", 1.0 + 3.0 + 1.0),
        ("heft_refused_total", 3.0),
        ("heft_reloads_total", 2.0),
        ("heft_timeouts_total", 1.0),
        ("heft_log_lines_dropped_total", 0.0),
        ("heft_errors_total{kind=\"accept\"}", 0.0),
        ("heft_errors_total{kind=\"persist\"}", 0.0),
        ("heft_errors_total{kind=\"state_file\"}", 1.0),
        ("heft_up{service=\"\",status=\"FAIL\"}", 0.0),
        ("heft_weight{service=\"\"}", 100.0),
    ];
    for (k, v) in want {
        assert_eq!(m1.get(k), v, "{k}:\n{}", m1.raw);
    }
    // The held connection got its reply and was closed.
    let mut got = String::new();
    std::io::Read::read_to_string(&mut held, &mut got).unwrap();
    assert_eq!(got, "up drain 100% maxconn:7\n");
    drop(held);
    assert_eq!(a.stop(), Some(0));
}
