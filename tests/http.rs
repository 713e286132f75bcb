//! HTTP on the agent port: GET and HEAD of `/` and `/SERVICE` (200 or 503 by
//! health), checked with raw requests and curl, and `/metrics` in Prometheus
//! text format counting exactly what happened.

mod common;
use common::http::*;
use common::prom::*;
use common::*;

use std::process::Command;

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
        a.reload(
            format!(r#"{{"status":"{status}","weight":77,"maxconn":300}}"#),
            want,
        );
        let g = http(a.port, "GET", "/");
        assert_eq!((g.code(), g.body.as_str()), (code, want), "{status}");
        assert_eq!(g.header("Connection"), Some("close"));
        let h = http(a.port, "HEAD", "/");
        assert_eq!((h.code(), h.body.as_str()), (code, ""), "{status}");
    }
    // The plain agent probe still works between HTTP requests.
    assert_eq!(a.probe_with(b"\n"), "up ready 77% maxconn:300\n");
    a.reload(state, "up ready 77% maxconn:300\n");
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
