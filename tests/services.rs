//! Services in one state file: the payload's first word selects one, an
//! unknown name gets the top level (or FAIL without one), and signals apply
//! to every service.

mod common;
use common::state::*;
use common::*;

const SERVICES: &str = r#"{"status":"UP","weight":10,"services":{"web":{"status":"DRAIN","weight":50},"db":{"status":"DOWN","maxconn":5,"reason":"db maintenance"}}}"#;

/// The first word of the payload selects a service, however it ends; other
/// names, and no payload, get the top level.
#[test]
fn payload_selects_a_service() {
    let a = Agent::start(Some(SERVICES), &[]);
    for (payload, want) in [
        (&b"web\n"[..], "up drain 50%\n"),
        (b"web", "up drain 50%\n"),
        (b"web\r\n", "up drain 50%\n"),
        (b"web extra words\n", "up drain 50%\n"),
        (b"web,x", "up drain 50%\n"),
        (b"\tweb\n", "up drain 50%\n"),
        (b"db\n", "down ready 100% maxconn:5 #db maintenance\n"),
        (b"db", "down ready 100% maxconn:5 #db maintenance\n"),
        (b"nosuch\n", "up ready 10%\n"),
        (b"webx\n", "up ready 10%\n"),
        (b"\n", "up ready 10%\n"),
        (b"", "up ready 10%\n"),
    ] {
        assert_eq!(a.probe_with(payload), want, "payload {payload:?}");
    }
}

/// Without a top-level status, an unknown name (or none) gets
/// `fail ready 100% #unknown service`; signals still apply to every service.
#[test]
fn unknown_service_without_top_level_fails() {
    use heft::model::state::Status::{Down, Up};
    let a = Agent::start(
        Some(r#"{"services":{"web":{"status":"UP","weight":50},"db":{"status":"MAINT"}}}"#),
        &[],
    );
    for payload in [&b"other\n"[..], b"", b"\n"] {
        assert_eq!(
            a.probe_with(payload),
            "fail ready 100% #unknown service\n",
            "{payload:?}"
        );
    }
    assert_eq!(a.probe_with(b"web\n"), "up ready 50%\n");
    a.signal(libc::SIGUSR2);
    assert!(wait_for(SECS5, || a.probe_with(b"db\n") == "down ready 100%\n"));
    assert_eq!(a.probe_with(b"web\n"), "down ready 50%\n");
    assert_eq!(
        a.probe_with(b"other\n"),
        "fail ready 100% #unknown service\n"
    );
    assert!(
        wait_for(SECS5, || a.state_text().matches("DOWN").count() == 2),
        "{}",
        a.state_text()
    );
    let st = heft::model::state::parse(a.state_text().as_bytes()).unwrap();
    assert!(st.top.is_none(), "a top level appeared: {}", a.state_text());
    assert_eq!(
        service_of(&a.state_text(), "web"),
        (Down, 50, None, String::new())
    );
    a.signal(libc::SIGUSR1);
    assert!(
        wait_for(SECS5, || a.state_text().matches("UP").count() == 2),
        "{}",
        a.state_text()
    );
    assert_eq!(
        service_of(&a.state_text(), "db"),
        (Up, 100, None, String::new())
    );
}

/// SIGUSR1 and SIGUSR2 apply to the top level and every service, keeping
/// each one's weight, maxconn and reason, in replies and in the file.
#[test]
fn signals_apply_to_every_service() {
    use heft::model::state::Status::{Down, Up};
    let a = Agent::start(Some(SERVICES), &[]);
    let steps = [
        (
            libc::SIGUSR2,
            Down,
            [
                "down ready 10%\n",
                "down ready 50%\n",
                "down ready 100% maxconn:5 #db maintenance\n",
            ],
        ),
        (
            libc::SIGUSR1,
            Up,
            [
                "up ready 10%\n",
                "up ready 50%\n",
                "up ready 100% maxconn:5\n",
            ],
        ),
    ];
    for (sig, status, [top, web, db]) in steps {
        a.signal(sig);
        a.expect_reply(top);
        assert_eq!(a.probe_with(b"web\n"), web);
        assert_eq!(a.probe_with(b"db\n"), db);
        expect_file_status(&a, status);
        let text = a.state_text();
        assert_eq!(service_of(&text, "web"), (status, 50, None, String::new()));
        assert_eq!(
            service_of(&text, "db"),
            (status, 100, Some(5), "db maintenance".into())
        );
    }
    assert!(
        a.log().contains("state: web DOWN weight 50 (signal)"),
        "{}",
        a.log()
    );
}

/// Sixteen services, names of every allowed kind, each answers for itself.
#[test]
fn sixteen_services() {
    let names: Vec<String> = (0..16)
        .map(|i| match i {
            0 => "A-z_0.9".to_string(),
            1 => "x".repeat(32),
            _ => format!("s{i}"),
        })
        .collect();
    let body = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!(r#""{n}":{{"status":"UP","weight":{i}}}"#))
        .collect::<Vec<_>>()
        .join(",");
    let a = Agent::start(Some(&format!(r#"{{"services":{{{body}}}}}"#)), &[]);
    for (i, n) in names.iter().enumerate() {
        assert_eq!(
            a.probe_with(format!("{n}\n").as_bytes()),
            format!("up ready {i}%\n"),
            "{n}"
        );
    }
}

/// One agent answers for a rack: 64 services with 64-byte `backend/server`
/// names in a state file of exactly 16 KiB, each probe (and each HTTP path)
/// getting its own entry, and `/metrics` listing them all.
#[test]
fn sixty_four_backend_server_names_in_a_16_kib_file() {
    let name = |i: usize| format!("be_{i:02}/{}", "s".repeat(64 - 6));
    let services: Vec<String> = (0..64)
        .map(|i| format!(r#""{}":{{"status":"UP","weight":{}}}"#, name(i), i + 1))
        .collect();
    let mut text = format!(
        r#"{{"status":"MAINT","services":{{{}}},"pad":""}}"#,
        services.join(",")
    );
    // An unknown field pads the file to exactly 16384 bytes.
    let pad = 16384 - text.len();
    text.insert_str(text.len() - 2, &"x".repeat(pad));
    assert_eq!(text.len(), 16384);
    let a = Agent::start(Some(&text), &[]);
    for i in [0, 1, 31, 62, 63] {
        let payload = format!("{}\n", name(i));
        assert_eq!(
            a.probe_with(payload.as_bytes()),
            format!("up ready {}%\n", i + 1)
        );
        let reply = common::http::http(a.port, "GET", &format!("/{}", name(i)));
        assert_eq!(reply.body, format!("up ready {}%\n", i + 1));
    }
    let metrics = common::http::http(a.port, "GET", "/metrics").body;
    assert_eq!(
        metrics.matches("heft_weight{service=\"be_").count(),
        64,
        "{metrics}"
    );
    assert!(metrics.contains("heft_probes_total"), "{metrics}");
    assert_eq!(a.probe_with(b"be_64/x\n"), "maint 100%\n");
    // A 65-byte name is refused, naming what a name may be.
    let long = format!(
        r#"{{"services":{{"{}":{{"status":"UP"}}}}}}"#,
        "n".repeat(65)
    );
    let (code, _, err) = a.heft(&["set", "up", "--service", &"n".repeat(65)]);
    assert_eq!(code, 100, "{err}");
    assert!(err.contains("1 to 64 bytes of [A-Za-z0-9_./-]"), "{err}");
    a.reload(
        long,
        "fail ready 100% #state file: service name: expected 1 to 64 of [A-Za-z0-9_./-]\n",
    );
}

/// A probe naming a service the file does not have gets the top level, and
/// the name is logged once, however often it comes.
#[test]
fn unknown_names_are_logged_once_each() {
    let a = Agent::start(Some(SERVICES), &[]);
    for _ in 0..5 {
        assert_eq!(a.probe_with(b"be_web/typo\n"), "up ready 10%\n");
    }
    // A second unknown name is logged too, a second after the first at the soonest.
    let start = std::time::Instant::now();
    assert!(wait_for(SECS5, || {
        a.probe_with(b"other\n");
        a.log().contains("\"other\"")
    }));
    assert!(start.elapsed() >= std::time::Duration::from_millis(500));
    for _ in 0..5 {
        a.probe_with(b"other\n");
        a.probe_with(b"web\n");
    }
    let log = a.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("unknown service"))
        .collect();
    assert_eq!(
        lines,
        [
            "heft: probe for unknown service \"be_web/typo\" (answered as if none was named)",
            "heft: probe for unknown service \"other\" (answered as if none was named)",
        ],
        "{log}"
    );
}
