//! End to end against a real HAProxy 2.6 (Debian's `haproxy`, installed by
//! the harness if missing): each test starts heft and an HAProxy of its own
//! on 127.0.0.1 whose servers are checked only by heft's agent every 100 ms,
//! and asserts what HAProxy itself reports on its stats socket —
//! `show servers state` (op state, admin state, weight) and `show stat`
//! (`slim`, the maxconn) — not just the bytes heft sent. The down reason is
//! read from HAProxy's own log ("via agent : down (reason)").
//!
//! Load feedback end to end as well: the weight in `show servers state`
//! follows a `file` rule, and a failure rule takes the server DOWN with its
//! reason on the stats page (`last_agt`) and brings it back after the hold
//! time.

mod common;

use common::haproxy::{server_line, Haproxy, Srv, ADMIN_DRAIN, ADMIN_MAINT, OP_DOWN, OP_UP};
use common::*;
use std::time::{Duration, Instant};

const BACKEND: &str = "b";

/// One heft and one HAProxy whose backend `b` has a server per `(name,
/// agent-send)`, each polled by the agent every 100 ms.
struct Rig {
    agent: Agent,
    hap: Haproxy,
}

impl Rig {
    fn new(state: &str, args: &[&str], servers: &[(&str, Option<&str>)]) -> Rig {
        let agent = Agent::start(Some(state), args);
        let lines: String = servers
            .iter()
            .map(|(name, send)| server_line(name, agent.port, "100ms", *send))
            .collect();
        let hap = Haproxy::start(&format!(
            "backend {BACKEND}\n    balance roundrobin\n{lines}"
        ));
        Rig { agent, hap }
    }

    /// Waits until `server`'s `show servers state` line satisfies `ok`.
    fn expect(&self, server: &str, what: &str, ok: impl Fn(Srv) -> bool) -> Srv {
        self.hap
            .expect(BACKEND, server, what, &|| self.agent.log(), ok)
    }

    /// Waits for op state, admin state and weight to be exactly these.
    fn expect_exact(&self, server: &str, op: u32, admin: u32, weight: u32) -> Srv {
        let what = format!("op {op} admin {admin} weight {weight}");
        self.expect(server, &what, |s| {
            (s.op, s.admin, s.weight) == (op, admin, weight)
        })
    }

    /// Waits for `show stat`'s `slim` (maxconn; empty for none) to be `want`.
    fn expect_slim(&self, server: &str, want: &str) {
        self.hap.expect_stat(
            BACKEND,
            server,
            &format!("slim {want:?}"),
            &|| self.agent.log(),
            |r| r.get("slim").map(String::as_str) == Some(want),
        );
    }

    /// Checks that `ok` holds on every look for `dur` (a state that must stick).
    fn holds(&self, server: &str, what: &str, dur: Duration, ok: impl Fn(Srv) -> bool) {
        let t = Instant::now();
        while t.elapsed() < dur {
            let s = self.hap.server(BACKEND, server);
            if !s.is_some_and(&ok) {
                self.hap.fail(
                    BACKEND,
                    &format!(
                        "{server}: {what} stopped holding after {:?}: {s:?}",
                        t.elapsed()
                    ),
                    &|| self.agent.log(),
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until HAProxy's log shows the agent's reason for a down server.
    fn expect_logged(&self, text: &str) {
        if !wait_for(haproxy::LIMIT, || self.hap.log().contains(text)) {
            self.hap
                .fail(BACKEND, &format!("haproxy never logged {text:?}"), &|| {
                    self.agent.log()
                });
        }
    }

    /// Replaces the state file and sends SIGHUP.
    fn file(&self, json: &str) {
        std::fs::write(&self.agent.state, json).unwrap();
        self.agent.signal(libc::SIGHUP);
    }

    /// Runs `heft set ARGS` against the agent; it must succeed.
    fn set(&self, args: &[&str]) {
        let mut v = vec!["set"];
        v.extend_from_slice(args);
        let (code, out, err) = self.agent.heft(&v);
        assert_eq!(code, 0, "heft {v:?}: {out} {err}");
    }

    /// Sends a command to HAProxy's CLI; it must answer with nothing.
    fn cli(&self, cmd: &str) {
        let r = self.hap.cmd(cmd);
        assert!(r.trim().is_empty(), "{cmd:?}: {r:?}");
    }

    /// An operator's `set server b/SERVER state maint`, seen to take effect:
    /// heft is paused meanwhile (an agent that does not answer changes
    /// nothing in HAProxy), so that its next reply cannot undo it unseen.
    fn operator_maint(&self, server: &str) {
        self.agent.signal(libc::SIGSTOP);
        self.cli(&format!("set server {BACKEND}/{server} state maint"));
        let ok = wait_for(haproxy::LIMIT, || {
            self.hap
                .server(BACKEND, server)
                .is_some_and(|s| s.admin & ADMIN_MAINT != 0)
        });
        self.agent.signal(libc::SIGCONT);
        if !ok {
            self.hap
                .fail(BACKEND, "the operator's maint never showed", &|| {
                    self.agent.log()
                });
        }
    }
}

/// Every status through the state file: UP, READY, DRAIN, MAINT, DOWN, FAIL
/// and STOPPED each give HAProxy's matching state, DRAIN then UP leaves
/// DRAIN, MAINT then UP leaves MAINT, and the reason reaches HAProxy.
#[test]
fn each_status_in_the_file() {
    let r = Rig::new(
        r#"{"status":"UP","weight":77,"maxconn":300}"#,
        &[],
        &[("s", None)],
    );
    r.expect_exact("s", OP_UP, 0, 77);
    r.expect_slim("s", "300");
    r.file(r#"{"status":"READY","weight":60}"#);
    r.expect_exact("s", OP_UP, 0, 60);
    r.file(r#"{"status":"DRAIN","weight":60}"#);
    r.expect_exact("s", OP_UP, ADMIN_DRAIN, 60);
    r.file(r#"{"status":"UP","weight":60}"#);
    r.expect_exact("s", OP_UP, 0, 60);
    r.file(r#"{"status":"MAINT","weight":60}"#);
    r.expect("s", "forced maint", |s| s.admin & ADMIN_MAINT != 0);
    r.file(r#"{"status":"UP","weight":60}"#);
    r.expect_exact("s", OP_UP, 0, 60);
    for (status, word) in [("DOWN", "down"), ("FAIL", "fail"), ("STOPPED", "stopped")] {
        let reason = format!("{word} for test 1");
        r.file(&format!(
            r#"{{"status":"{status}","weight":60,"reason":"{reason}"}}"#
        ));
        r.expect_exact("s", OP_DOWN, 0, 60);
        r.expect_logged(&format!("via agent : {word} ({reason})"));
        r.file(r#"{"status":"UP","weight":60}"#);
        r.expect_exact("s", OP_UP, 0, 60);
    }
    // The configured weight is untouched: the agent's percentage applies to it.
    let s = r.expect_exact("s", OP_UP, 0, 60);
    assert_eq!(s.iweight, 100);
}

/// Weight and maxconn: a weight removed from the file goes back to 100%, a
/// maxconn removed is no longer sent (HAProxy keeps the last one), and
/// `maxconn:0` lifts it; 0% and 255% reach HAProxy as weights 0 and 255.
#[test]
fn weight_and_maxconn() {
    let r = Rig::new(
        r#"{"status":"UP","weight":50,"maxconn":300}"#,
        &[],
        &[("s", None)],
    );
    r.expect_exact("s", OP_UP, 0, 50);
    r.expect_slim("s", "300");
    r.file(r#"{"status":"UP"}"#);
    r.expect_exact("s", OP_UP, 0, 100);
    // Checks with the new reply have been applied, and the limit stays.
    r.holds("s", "weight 100", Duration::from_millis(500), |s| {
        s.weight == 100
    });
    r.expect_slim("s", "300");
    r.file(r#"{"status":"UP","maxconn":0}"#);
    r.expect_slim("s", "");
    r.file(r#"{"status":"UP","weight":0,"maxconn":12}"#);
    r.expect_exact("s", OP_UP, 0, 0);
    r.expect_slim("s", "12");
    r.hap.expect_stat(
        BACKEND,
        "s",
        "show stat weight 0",
        &|| r.agent.log(),
        |row| row.get("weight").map(String::as_str) == Some("0"),
    );
    r.file(r#"{"status":"UP","weight":255}"#);
    r.expect_exact("s", OP_UP, 0, 255);
}

/// SIGUSR2 takes the server down and SIGUSR1 brings it back, with the
/// file's weight, maxconn and reason kept.
#[test]
fn signals() {
    let r = Rig::new(
        r#"{"status":"DRAIN","weight":40,"maxconn":20,"reason":"planned work"}"#,
        &[],
        &[("s", None)],
    );
    r.expect_exact("s", OP_UP, ADMIN_DRAIN, 40);
    r.expect_slim("s", "20");
    r.agent.signal(libc::SIGUSR2);
    r.expect_exact("s", OP_DOWN, 0, 40);
    r.expect_logged("via agent : down (planned work)");
    r.expect_slim("s", "20");
    r.agent.signal(libc::SIGUSR1);
    r.expect_exact("s", OP_UP, 0, 40);
    r.expect_slim("s", "20");
    r.agent.signal(libc::SIGUSR2);
    r.expect_exact("s", OP_DOWN, 0, 40);
    r.agent.signal(libc::SIGUSR1);
    r.expect_exact("s", OP_UP, 0, 40);
}

/// `heft set` drives HAProxy through the file and SIGHUP.
#[test]
fn heft_set() {
    let r = Rig::new(
        r#"{"status":"UP","weight":77,"maxconn":300}"#,
        &[],
        &[("s", None)],
    );
    r.expect_exact("s", OP_UP, 0, 77);
    r.set(&["drain", "--weight", "30"]);
    r.expect_exact("s", OP_UP, ADMIN_DRAIN, 30);
    r.expect_slim("s", "300");
    r.set(&["up", "--maxconn", "50"]);
    r.expect_exact("s", OP_UP, 0, 30);
    r.expect_slim("s", "50");
    r.set(&["down", "--reason", "deploy 7"]);
    r.expect_exact("s", OP_DOWN, 0, 30);
    r.expect_logged("via agent : down (deploy 7)");
    r.set(&["maint"]);
    r.expect("s", "forced maint", |s| s.admin & ADMIN_MAINT != 0);
    r.set(&["up", "--weight", "100", "--maxconn", "0"]);
    r.expect_exact("s", OP_UP, 0, 100);
    r.expect_slim("s", "");
}

/// Two HAProxy servers polling one agent with different `agent-send`
/// payloads (one with a newline, one without) follow their own service.
#[test]
fn agent_send_routes_two_services() {
    let r = Rig::new(
        r#"{"services":{"web":{"status":"UP","weight":50},"db":{"status":"DRAIN","weight":20,"maxconn":7}}}"#,
        &[],
        &[("web1", Some("web\\n")), ("db1", Some("db"))],
    );
    r.expect_exact("web1", OP_UP, 0, 50);
    r.expect_exact("db1", OP_UP, ADMIN_DRAIN, 20);
    r.expect_slim("db1", "7");
    r.set(&["up", "--service", "db", "--weight", "70"]);
    r.expect_exact("db1", OP_UP, 0, 70);
    r.holds("web1", "web unchanged", Duration::from_millis(300), |s| {
        (s.op, s.admin, s.weight) == (OP_UP, 0, 50)
    });
    r.set(&["down", "--service", "web", "--reason", "web only"]);
    r.expect_exact("web1", OP_DOWN, 0, 50);
    r.expect_logged("via agent : down (web only)");
    r.holds("db1", "db unchanged", Duration::from_millis(300), |s| {
        (s.op, s.admin, s.weight) == (OP_UP, 0, 70)
    });
    // Signals apply to every service.
    r.agent.signal(libc::SIGUSR1);
    r.expect_exact("web1", OP_UP, 0, 50);
    r.agent.signal(libc::SIGUSR2);
    r.expect_exact("web1", OP_DOWN, 0, 50);
    r.expect_exact("db1", OP_DOWN, 0, 70);
    r.agent.signal(libc::SIGUSR1);
    r.expect_exact("web1", OP_UP, 0, 50);
    r.expect_exact("db1", OP_UP, 0, 70);
}

/// By default `ready` undoes an operator's `set server ... state maint`;
/// with `--ready-window`, only while the window after a status change is
/// open: once it closes, the operator's maint sticks (while the agent's
/// weight still applies), and a status change opens the window again.
#[test]
fn ready_window_lets_an_operator_maint_stick() {
    // Without a window: undone at the next check.
    let r = Rig::new(r#"{"status":"UP","weight":80}"#, &[], &[("s", None)]);
    r.expect_exact("s", OP_UP, 0, 80);
    r.operator_maint("s");
    r.expect_exact("s", OP_UP, 0, 80);
    drop(r);

    let r = Rig::new(
        r#"{"status":"UP","weight":80}"#,
        &["--ready-window", "2"],
        &[("s", None)],
    );
    r.expect_exact("s", OP_UP, 0, 80);
    // The window after start-up closes.
    r.agent.expect_reply("up 80%\n");
    r.cli(&format!("set server {BACKEND}/s state maint"));
    r.expect("s", "operator's maint", |s| s.admin & ADMIN_MAINT != 0);
    // A new weight (same status, no window) still applies; maint sticks.
    r.file(r#"{"status":"UP","weight":60}"#);
    r.expect("s", "weight 60 under maint", |s| {
        s.weight == 60 && s.admin & ADMIN_MAINT != 0
    });
    r.holds("s", "operator's maint", Duration::from_millis(1000), |s| {
        s.admin & ADMIN_MAINT != 0
    });

    // A change of status opens the window: `ready` overrides the operator.
    r.agent.signal(libc::SIGUSR2);
    r.expect_exact("s", OP_DOWN, 0, 60);
    r.agent.signal(libc::SIGUSR1);
    r.expect_exact("s", OP_UP, 0, 60);
    assert_eq!(r.agent.probe(), "up ready 60%\n", "window not open");
    r.operator_maint("s");
    r.expect_exact("s", OP_UP, 0, 60);
    assert_eq!(
        r.agent.probe(),
        "up ready 60%\n",
        "the window closed before HAProxy saw ready"
    );

    // Once it has closed again, the operator's maint sticks.
    r.agent.expect_reply("up 60%\n");
    r.cli(&format!("set server {BACKEND}/s state maint"));
    r.expect("s", "operator's maint", |s| s.admin & ADMIN_MAINT != 0);
    r.holds("s", "operator's maint", Duration::from_millis(1000), |s| {
        s.admin & ADMIN_MAINT != 0
    });
    // And the operator's own `ready` ends it.
    r.cli(&format!("set server {BACKEND}/s state ready"));
    r.expect_exact("s", OP_UP, 0, 60);
}

/// Load feedback against HAProxy.
#[cfg(feature = "feedback")]
mod feedback {
    use super::*;
    use std::path::PathBuf;

    /// heft with one `file` rule (`rule` holds its other members) reading `value`, plus HAProxy.
    struct Setup {
        value: PathBuf,
        agent: Agent,
        hap: Haproxy,
        dir: PathBuf,
    }

    impl Setup {
        fn start(tag: &str, first: &str, rule: &str) -> Setup {
            let dir = temp_dir(tag);
            let value = dir.join("value");
            write_atomic(&value, first);
            let cfg = dir.join("feedback.json");
            std::fs::write(
                &cfg,
                format!(
                    r#"{{"interval_ms":100,"rules":[{{"metric":"file","path":"{}",{rule}}}]}}"#,
                    value.display()
                ),
            )
            .unwrap();
            let agent = Agent::start(
                Some(r#"{"status":"UP","weight":100}"#),
                &["--feedback", cfg.to_str().unwrap()],
            );
            let hap = Haproxy::start(&format!(
                "backend app\n    balance roundrobin\n{}",
                server_line("web1", agent.port, "200ms", None)
            ));
            Setup {
                value,
                agent,
                hap,
                dir,
            }
        }

        fn set(&self, v: &str) {
            write_atomic(&self.value, v);
        }

        fn expect(&self, what: &str, ok: impl Fn(Srv) -> bool) -> Srv {
            let log = || self.agent.log();
            self.hap.expect("app", "web1", what, &log, ok)
        }
    }

    impl Drop for Setup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn weight_in_show_servers_state_follows_a_file_rule() {
        let s = Setup::start("hfb-weight", "30", r#""curve":"linear","limit":100"#);
        // Linear 0..100 from 100% to 1%: 30 → 70.3, 60 → 40.6, 85 → 15.85 (configured weight 100).
        s.expect("weight 70 for value 30", |v| {
            v.op == OP_UP && v.weight == 70
        });
        for (value, want) in [("60", 41), ("85", 16), ("0", 100), ("100", 1), ("30", 70)] {
            s.set(value);
            let srv = s.expect(&format!("weight {want} for value {value}"), |v| {
                v.op == OP_UP && v.weight == want
            });
            assert_eq!((srv.iweight, srv.admin), (100, 0));
        }
        // Without a health check, HAProxy 2.6 shows an up server as "no check".
        let stat = s.hap.stat("app", "web1").unwrap();
        assert_eq!(
            (stat["weight"].as_str(), stat["last_agt"].as_str()),
            ("70", "via agent : up"),
            "{stat:?}"
        );
    }

    #[test]
    fn a_failure_rule_takes_the_server_down_with_its_reason_and_back_after_the_hold() {
        let hold = 2000;
        let s = Setup::start(
            "hfb-down",
            "50",
            &format!(r#""name":"appload","enter":95,"leave":80,"hold_ms":{hold}"#),
        );
        s.expect("up at weight 100", |v| v.op == OP_UP && v.weight == 100);
        s.set("99");
        s.expect("down", |v| v.op == OP_DOWN);
        // HAProxy 2.6 shows the agent's reason in `last_agt` ("via agent : down (<reason>)").
        let log = || s.agent.log();
        let row = s
            .hap
            .expect_stat("app", "web1", "agent reason on the stats page", &log, |r| {
                r.get("last_agt")
                    .is_some_and(|a| a.contains("appload 99 > 95"))
                    && r.get("status").is_some_and(|st| st.starts_with("DOWN"))
            });
        println!(
            "show stat while down: status={:?} last_agt={:?} agent_status={:?}",
            row["status"], row["last_agt"], row["agent_status"]
        );
        // Between leave and enter: stays down.
        s.set("90");
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(hold as u64 + 500) {
            let v = s.hap.server("app", "web1").unwrap();
            assert_eq!(v.op, OP_DOWN, "came back at 90 after {:?}", t.elapsed());
            std::thread::sleep(Duration::from_millis(50));
        }
        // Below leave: back up once the hold time has passed, not before.
        s.set("50");
        let t = Instant::now();
        let mut up_after = None;
        let ok = wait_for(LIMIT, || {
            let v = s.hap.server("app", "web1").unwrap();
            if v.op == OP_UP {
                up_after.get_or_insert(t.elapsed());
                true
            } else {
                false
            }
        });
        if !ok {
            s.hap.fail("app", "never came back up", &log);
        }
        let took = up_after.unwrap();
        println!(
            "HAProxy saw the server up {took:?} after the value fell below leave (hold {hold} ms)"
        );
        assert!(
            took >= Duration::from_millis(hold as u64),
            "up after {took:?}"
        );
        s.hap
            .expect_stat("app", "web1", "up on the stats page", &log, |r| {
                r.get("last_agt").map(String::as_str) == Some("via agent : up")
                    && r.get("status").is_some_and(|st| !st.starts_with("DOWN"))
            });
        assert!(
            s.agent.log().contains("feedback: appload cleared"),
            "{}",
            s.agent.log()
        );
    }
}
