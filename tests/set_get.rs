//! `heft set` (change the state file and signal the agent) and `heft get`
//! (ask an agent and print its reply line): what they change, what they
//! print, and their exit codes.

mod common;
use common::state::*;
use common::*;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::time::{Duration, Instant};

/// `heft set` changes what it is told, keeps the rest, writes the file
/// atomically (no temporary file left) and SIGHUPs the agent in the pid file.
#[test]
fn set_changes_only_what_it_is_told_and_signals_the_agent() {
    use heft::model::state::Status::*;
    let a = Agent::start(
        Some(r#"{"status":"UP","weight":77,"maxconn":300,"reason":"r1"}"#),
        &[],
    );
    // (heft arguments, the file's entry afterwards, the reply afterwards)
    type Step<'a> = (
        &'a [&'a str],
        (heft::model::state::Status, u8, Option<u16>, &'a str),
        &'a str,
    );
    let steps: &[Step] = &[
        (
            &["set", "drain"],
            (Drain, 77, Some(300), "r1"),
            "up drain 77% maxconn:300\n",
        ),
        (
            &["set", "up", "--weight", "5"],
            (Up, 5, Some(300), "r1"),
            "up ready 5% maxconn:300\n",
        ),
        (
            &["set", "DOWN", "--reason", "deploy 7"],
            (Down, 5, Some(300), "deploy 7"),
            "down ready 5% maxconn:300 #deploy 7\n",
        ),
        (
            &["set", "down", "--maxconn", "none"],
            (Down, 5, None, "deploy 7"),
            "down ready 5% #deploy 7\n",
        ),
        (
            &["set", "up", "--maxconn", "0"],
            (Up, 5, Some(0), "deploy 7"),
            "up ready 5% maxconn:0\n",
        ),
        (
            &["set", "stopped", "--reason", ""],
            (Stopped, 5, Some(0), ""),
            "stopped ready 5% maxconn:0\n",
        ),
        (
            &["set", "Maint", "--weight=255", "--maxconn=65535"],
            (Maint, 255, Some(65535), ""),
            "maint 255% maxconn:65535\n",
        ),
        (
            &["set", "ready", "--weight", "0"],
            (Ready, 0, Some(65535), ""),
            "up ready 0% maxconn:65535\n",
        ),
        (
            &["set", "fail"],
            (Fail, 0, Some(65535), ""),
            "fail ready 0% maxconn:65535\n",
        ),
    ];
    for (args, (status, weight, maxconn, reason), reply) in steps {
        let (code, out, err) = a.heft(args);
        assert_eq!(code, 0, "{args:?}: stdout {out:?} stderr {err:?}");
        assert!(
            err.contains(&format!("sent SIGHUP to {}", a.pid())),
            "{args:?}: {err:?}"
        );
        assert_eq!(
            top_of(&a.state_text()),
            (*status, *weight, *maxconn, reason.to_string()),
            "{args:?}"
        );
        a.expect_reply(reply);
        assert!(
            temp_files(&a.dir).is_empty(),
            "{args:?}: {:?}",
            file_names(&a.dir)
        );
    }
    assert!(
        a.log()
            .contains("state: FAIL weight 0 maxconn 65535 (state file)"),
        "{}",
        a.log()
    );
    // The same through flags instead of variables.
    let state = a.state.to_str().unwrap();
    let pid_file = a.pid_file.to_str().unwrap();
    let (code, _, err) = run_heft(
        &[
            "set",
            "up",
            "--state-file",
            state,
            "--pid-file",
            pid_file,
            "--weight",
            "9",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    a.expect_reply("up ready 9% maxconn:65535\n");
    // And hapgent's variable for the state file.
    let (code, _, err) = run_heft(
        &["set", "drain", "--pid-file", pid_file],
        &[("HAPGENT_STATE_FILE", state)],
    );
    assert_eq!(code, 0, "{err}");
    a.expect_reply("up drain 9% maxconn:65535\n");
}

/// `heft set --service NAME` changes (or adds) one service and nothing else.
#[test]
fn set_service_changes_one_service() {
    use heft::model::state::Status::*;
    let a = Agent::start(
        Some(
            r#"{"status":"UP","weight":77,"services":{"web":{"status":"UP","weight":50},"db":{"status":"DRAIN","maxconn":9}}}"#,
        ),
        &[],
    );
    let (code, _, err) = a.heft(&["set", "down", "--service", "db", "--reason", "db move"]);
    assert_eq!(code, 0, "{err}");
    a.expect_reply("up ready 77%\n");
    assert!(wait_for(SECS5, || a.probe_with(b"db\n")
        == "down ready 100% maxconn:9 #db move\n"));
    assert_eq!(a.probe_with(b"web\n"), "up ready 50%\n");
    let text = a.state_text();
    assert_eq!(
        service_of(&text, "db"),
        (Down, 100, Some(9), "db move".into())
    );
    assert_eq!(service_of(&text, "web"), (Up, 50, None, String::new()));
    assert_eq!(top_of(&text), (Up, 77, None, String::new()));
    // A new name adds a service.
    let (code, _, err) = a.heft(&["set", "maint", "--service", "cache.1", "--weight", "3"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_for(SECS5, || a.probe_with(b"cache.1\n") == "maint 3%\n"),
        "{}",
        a.log()
    );
    assert_eq!(
        service_of(&a.state_text(), "web"),
        (Up, 50, None, String::new())
    );
}

/// On a missing or invalid file `heft set` writes a new one from what it is
/// told, says so, and the agent (which served FAIL) follows it; signals then
/// write the file again.
#[test]
fn set_on_a_missing_or_invalid_file_writes_a_new_one() {
    use heft::model::state::Status::*;
    for (what, content) in [("missing", None), ("invalid", Some(r#"{"status":"#))] {
        let a = Agent::start(content, &[]);
        assert!(
            a.probe().starts_with("fail ready 100% #state file: "),
            "{what}"
        );
        let (code, _, err) = a.heft(&["set", "up", "--weight", "40"]);
        assert_eq!(code, 0, "{what}: {err}");
        assert!(
            err.contains("writing a new one"),
            "{what}: does not say so: {err:?}"
        );
        assert!(
            err.contains(a.state.to_str().unwrap()),
            "{what}: no path: {err:?}"
        );
        assert_eq!(
            top_of(&a.state_text()),
            (Up, 40, None, String::new()),
            "{what}"
        );
        a.expect_reply("up ready 40%\n");
        a.signal(libc::SIGUSR2);
        expect_file_status(&a, Down);
        assert_eq!(
            top_of(&a.state_text()),
            (Down, 40, None, String::new()),
            "{what}"
        );
    }
}

/// `heft set` exit codes: 100 for bad usage (file untouched), 1 when written
/// but the agent could not be told, 0 without a pid file (saying so), 111
/// when the file cannot be written (no temporary file left).
#[test]
fn set_exit_codes() {
    let dir = temp_dir("set");
    let state = dir.join("state.json");
    std::fs::write(&state, STATE).unwrap();
    let sf = state.to_str().unwrap();
    let env = [("HEFT_STATE_FILE", sf)];
    let limit = SECS5;
    for (args, names) in [
        (&["set"][..], &["STATUS"][..]),
        (&["set", "sideways"], &["STATUS", "sideways"]),
        (&["set", "up", "--weight", "256"], &["--weight", "256"]),
        (&["set", "up", "--weight", "-1"], &["--weight", "-1"]),
        (
            &["set", "up", "--maxconn", "65536"],
            &["--maxconn", "65536"],
        ),
        (&["set", "up", "--maxconn", "lots"], &["--maxconn", "lots"]),
        (&["set", "up", "--reason", "a#b"], &["--reason", "a#b"]),
        (&["set", "up", "--reason", "tab\there"], &["--reason"]),
        (&["set", "up", "--service", "a b"], &["--service", "a b"]),
        (&["set", "up", "--bogus"], &["--bogus"]),
        (&["set", "up", "--weight"], &["--weight"]),
    ] {
        assert_usage(&format!("{args:?}"), run_heft_for(args, &env, limit), names);
        assert_eq!(
            std::fs::read_to_string(&state).unwrap(),
            STATE,
            "{args:?} touched the file"
        );
    }
    let long = "x".repeat(65);
    assert_usage(
        "long reason",
        run_heft_for(&["set", "up", "--reason", &long], &env, limit),
        &["--reason"],
    );

    // No pid file: written, and told to signal by hand.
    let (code, _, err) = run_heft(&["set", "drain"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("no pid file given"), "{err:?}");
    assert_eq!(
        top_of(&std::fs::read_to_string(&state).unwrap()).0,
        heft::model::state::Status::Drain
    );

    // A pid file without a pid, a missing one, a dead pid (no agent holds
    // any of them): written, exit 1.
    let pf = dir.join("heft.pid");
    std::fs::write(&pf, "not a pid\n").unwrap();
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    for (what, content, says) in [
        (
            "garbage",
            Some("not a pid\n".to_string()),
            "no agent holds it".to_string(),
        ),
        ("missing", None, "ENOENT".to_string()),
        (
            "dead pid",
            Some(format!("{dead_pid}\n")),
            "no agent holds it".to_string(),
        ),
    ] {
        match &content {
            Some(c) => std::fs::write(&pf, c).unwrap(),
            None => {
                let _ = std::fs::remove_file(&pf);
            }
        }
        let (code, _, err) = run_heft(&["set", "down", "--pid-file", pf.to_str().unwrap()], &env);
        assert_eq!(code, 1, "{what}: {err}");
        assert!(err.contains(&says), "{what}: {err:?}");
        assert_eq!(
            top_of(&std::fs::read_to_string(&state).unwrap()).0,
            heft::model::state::Status::Down
        );
        std::fs::write(&state, STATE).unwrap();
    }

    // Cannot be written: 111, no temporary file left.
    let (code, _, err) = run_heft(
        &["set", "up"],
        &[(
            "HEFT_STATE_FILE",
            dir.join("no/such/dir.json").to_str().unwrap(),
        )],
    );
    assert_eq!(code, 111, "{err}");
    assert!(err.contains("error: state file"), "{err:?}");
    let in_the_way = dir.join("dir.json");
    std::fs::create_dir(&in_the_way).unwrap();
    std::fs::write(in_the_way.join("x"), "x").unwrap();
    let (code, _, err) = run_heft(
        &["set", "up"],
        &[("HEFT_STATE_FILE", in_the_way.to_str().unwrap())],
    );
    assert_eq!(code, 111, "{err}");
    assert!(
        err.contains("EISDIR") && err.contains("not writing it"),
        "{err:?}"
    );
    assert!(temp_files(&dir).is_empty(), "{:?}", file_names(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}

/// On a fresh box, `heft set` names the missing directory, what chose the
/// path, and what to do; once the directory exists, it writes the file.
#[test]
fn set_on_a_fresh_box_says_what_to_create() {
    let dir = temp_dir("fresh");
    // Short names: the log line has room for 256 bytes, and says the path twice.
    let etc = dir.join("e");
    let state = etc.join("s.json");
    let sf = state.to_str().unwrap();
    let d = etc.to_str().unwrap();
    let advice = format!(
        "unreadable ENOENT, no directory {d}; create it (mkdir -p {d}, writable by the agent) \
         or point --state-file / HEFT_STATE_FILE elsewhere"
    );
    for (args, env, from) in [
        (
            &["set", "drain", "--state-file", sf][..],
            &[][..],
            "from --state-file",
        ),
        (
            &["set", "drain"],
            &[("HEFT_STATE_FILE", sf)],
            "from HEFT_STATE_FILE",
        ),
        (
            &["set", "drain"],
            &[("HAPGENT_STATE_FILE", sf)],
            "from HAPGENT_STATE_FILE",
        ),
    ] {
        let (code, _, err) = run_heft(args, env);
        assert_eq!(code, 111, "{err}");
        let want = format!("error: state file {sf} ({from}): {advice}\n");
        assert!(err.ends_with(&want), "{err:?}\nwanted {want:?}");
    }
    assert!(!etc.exists());
    std::fs::create_dir_all(&etc).unwrap();
    let (code, _, err) = run_heft(&["set", "drain"], &[("HEFT_STATE_FILE", sf)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        top_of(&std::fs::read_to_string(&state).unwrap()).0,
        heft::model::state::Status::Drain
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A listener on 127.0.0.1 that answers each connection with `reply` and closes.
fn fake_agent(reply: &'static [u8]) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let _ = s.write_all(reply);
            let _ = s.shutdown(Shutdown::Write);
            let mut sink = Vec::new();
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.read_to_end(&mut sink);
        }
    });
    port
}

/// `heft get` prints the reply line and exits 0, with or without a payload,
/// the port from a flag or a variable.
#[test]
fn get_prints_the_reply_line() {
    let a = Agent::start(
        Some(
            r#"{"status":"UP","weight":77,"maxconn":300,"services":{"web":{"status":"DRAIN","weight":5}}}"#,
        ),
        &[],
    );
    let p = a.port.to_string();
    let ok = |args: &[&str], env: &[(&str, &str)], want: &str| {
        let (code, out, err) = run_heft(args, env);
        assert_eq!((code, out.as_str()), (0, want), "{args:?} {env:?}: {err}");
    };
    ok(&["get", "--port", &p], &[], "up ready 77% maxconn:300\n");
    ok(
        &["get", "--addr", "127.0.0.1", "--port", &p],
        &[],
        "up ready 77% maxconn:300\n",
    );
    ok(
        &["get", "--port", &p, "--send", "web\\n"],
        &[],
        "up drain 5%\n",
    );
    ok(
        &["get", "--port", &p, "--send", "web"],
        &[],
        "up drain 5%\n",
    );
    ok(
        &["get", "--port", &p, "--send", "\\tweb\\r\\n"],
        &[],
        "up drain 5%\n",
    );
    ok(
        &["get", "--port", &p, "--send", "nosuch\\n"],
        &[],
        "up ready 77% maxconn:300\n",
    );
    ok(&["get"], &[("HEFT_PORT", &p)], "up ready 77% maxconn:300\n");
    ok(
        &["get"],
        &[("HAPGENT_PORT", &p)],
        "up ready 77% maxconn:300\n",
    );
    ok(
        &["get", "--port", &p],
        &[("HEFT_PORT", "1")],
        "up ready 77% maxconn:300\n",
    );
    // A line ended by \r, with more after it.
    let fake = fake_agent(b"up 50%\r\ntrailing words\n").to_string();
    ok(&["get", "--port", &fake], &[], "up 50%\n");
}

/// `heft get --addr` takes an IPv6 scope, by interface name or index, and
/// connects through it; an interface that does not exist is an error.
#[test]
fn get_takes_a_scoped_ipv6_address() {
    let l = TcpListener::bind("[::1]:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let _ = (&s).write_all(b"up 42%\n");
            let _ = s.shutdown(Shutdown::Both);
        }
    });
    let lo = std::fs::read_to_string("/sys/class/net/lo/ifindex").unwrap();
    for addr in ["::1%lo".to_string(), format!("[::1%{}]", lo.trim())] {
        let (code, out, err) = run_heft(&["get", "--addr", &addr, "--port", &port], &[]);
        assert_eq!((code, out.as_str()), (0, "up 42%\n"), "{addr}: {err}");
    }
    let (code, out, err) = run_heft(
        &["get", "--addr", "fe80::1%heftnone0", "--port", &port],
        &[],
    );
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("no interface heftnone0"), "{err:?}");
}

/// `heft get` exits non-zero without a whole line: refused, closed before a
/// line end, or nothing within --timeout; and 100 for bad usage.
#[test]
fn get_fails_without_a_whole_line() {
    // Refused: nothing listens on a port that was just free.
    let closed = free_port().to_string();
    let (code, out, err) = run_heft(&["get", "--port", &closed], &[]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("ECONNREFUSED"), "{err:?}");
    // Closed before the line end.
    let partial = fake_agent(b"up ready 100%").to_string();
    let (code, out, err) = run_heft(&["get", "--port", &partial], &[]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("no whole line"), "{err:?}");
    // Nothing at all: a listener that never accepts; --timeout bounds the wait.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let sp = silent.local_addr().unwrap().port().to_string();
    let t = Instant::now();
    let (code, out, err) = run_heft(&["get", "--port", &sp, "--timeout", "300"], &[]);
    let took = t.elapsed();
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "--timeout 300 took {took:?}"
    );
    // Bad usage.
    for (args, names) in [
        (&["get", "--port", "0"][..], &["--port", "0"][..]),
        (&["get", "--port", "http"], &["--port", "http"]),
        (&["get", "--timeout", "0"], &["--timeout", "0"]),
        (&["get", "--addr", "localhost"], &["--addr", "localhost"]),
        (&["get", "--bogus"], &["--bogus"]),
    ] {
        assert_usage(&format!("{args:?}"), run_heft_for(args, &[], SECS5), names);
    }
    assert_usage(
        "HEFT_PORT",
        run_heft_for(&["get"], &[("HEFT_PORT", "x")], SECS5),
        &["HEFT_PORT", "x"],
    );
}
