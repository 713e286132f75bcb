//! Load feedback end to end against a real HAProxy (2.6 on Debian 12): the
//! weight in `show servers state` follows a `file` rule, and a failure rule
//! takes the server DOWN with its reason on the stats page (`last_agt`) and
//! brings it back after the hold time.

mod common;
#[path = "common/haproxy.rs"]
mod haproxy;

use common::*;
use haproxy::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Writes `text` to `path` atomically, so heft never reads half a number.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-test");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

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
