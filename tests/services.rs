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
