//! `heft check`: validates the state file and the feedback rules without
//! running the agent, for ansible's `validate:` and deploy scripts: exit 0,
//! or 100 with the very lines the agent would log. It takes `heft serve`'s
//! options and variables.

mod common;
use common::*;

use std::path::Path;

/// The agent's log line about the state file `state`: starts an agent on it
/// and returns the line, without the agent's ` (serving FAIL)` ending.
fn agent_says(state: &Path) -> String {
    let a = Agent::start(None, &["--state-file", state.to_str().unwrap()]);
    // The file is read after the "listening on" line.
    let error = |log: &str| {
        log.lines()
            .find(|l| l.contains("state file") && l.contains("error"))
            .map(str::to_string)
    };
    wait_for(SECS5, || error(&a.log()).is_some());
    let line = error(&a.log()).unwrap_or_else(|| panic!("no state file error in {}", a.log()));
    line.trim_end_matches(" (serving FAIL)").to_string() + "\n"
}

/// A valid file passes silently; each bad one exits 100 with the line the
/// agent logs for it, whichever flag or variable names it.
#[test]
fn check_judges_the_state_file_as_the_agent_does() {
    let dir = temp_dir("check");
    let good = dir.join("good.json");
    std::fs::write(&good, STATE).unwrap();
    let gp = good.to_str().unwrap();
    for env in [&[][..], &[("HAPGENT_STATE_FILE", "/nonexistent/x.json")]] {
        let (code, out, err) = run_heft(&["check", "--state-file", gp], env);
        assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    }
    for (var, from) in [("HEFT_STATE_FILE", gp), ("HAPGENT_STATE_FILE", gp)] {
        let (code, _, err) = run_heft(&["check"], &[(var, from)]);
        assert_eq!(code, 0, "{var}: {err}");
    }

    let bad = [
        ("json", r#"{"status":"UP""#),
        ("status", r#"{"status":"SIDEWAYS"}"#),
        ("weight", r#"{"status":"UP","weight":300}"#),
        ("reason", r#"{"status":"UP","reason":"a#b"}"#),
        ("empty", ""),
    ];
    for (name, text) in bad {
        let f = dir.join(format!("{name}.json"));
        std::fs::write(&f, text).unwrap();
        let (code, out, err) = run_heft(&["check", "--state-file", f.to_str().unwrap()], &[]);
        assert_eq!((code, out.as_str()), (100, ""), "{name}: {err}");
        let agent = agent_says(&f);
        // The agent names the flag its harness gave, as check does here.
        assert_eq!(err, agent, "{name}");
    }

    // Missing: the file, then its directory; named by the variable that chose it.
    let missing = dir.join("missing.json");
    let (code, _, err) = run_heft(
        &["check"],
        &[("HAPGENT_STATE_FILE", missing.to_str().unwrap())],
    );
    assert_eq!(code, 100, "{err}");
    assert!(
        err.contains("(from HAPGENT_STATE_FILE): unreadable ENOENT; create it"),
        "{err}"
    );
    let (code, _, err) = run_heft(&["check", "--state-file", missing.to_str().unwrap()], &[]);
    assert_eq!((code, err.clone()), (100, agent_says(&missing)));
    let nodir = dir.join("etc/heft/state.json");
    let (code, _, err) = run_heft(&["check"], &[("HEFT_STATE_FILE", nodir.to_str().unwrap())]);
    assert_eq!(code, 100, "{err}");
    let d = dir.join("etc/heft");
    assert!(
        err.contains(&format!(
            "(from HEFT_STATE_FILE): unreadable ENOENT, no directory {}",
            d.display()
        )),
        "{err}"
    );
    // The default path is named as such (this host has no /etc/heft/state.json
    // unless heft is installed; only the wording is checked then).
    if !Path::new("/etc/heft/state.json").exists() {
        let (code, _, err) = run_heft(&["check"], &[]);
        assert_eq!(code, 100, "{err}");
        assert!(
            err.contains("state file /etc/heft/state.json (the default): unreadable ENOENT"),
            "{err}"
        );
    }
    // It takes serve's options and variables, so a deploy script can check
    // the agent's whole command line; bad usage is 100, with its own line.
    let (code, _, err) = run_heft(
        &[
            "check",
            "--port",
            "1",
            "--addr",
            "fe80::1%nosuchif",
            "--state-file",
            gp,
        ],
        &[("HEFT_SLOTS", "5"), ("HEFT_ALLOW", "10.0.0.0/8")],
    );
    assert_eq!((code, err.as_str()), (0, ""));
    assert_usage(
        "check --bogus",
        run_heft_for(&["check", "--bogus"], &[], SECS5),
        &["--bogus"],
    );
    assert_usage(
        "HEFT_PORT=0",
        run_heft_for(&["check", "--state-file", gp], &[("HEFT_PORT", "0")], SECS5),
        &["HEFT_PORT", "0"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--feedback` (or HEFT_FEEDBACK) is loaded as `heft serve --feedback`
/// loads it: the same line and exit code for bad rules; both files are
/// judged when both are bad.
#[cfg(feature = "feedback")]
#[test]
fn check_judges_the_feedback_rules_as_the_agent_does() {
    let dir = temp_dir("check-feedback");
    let state = dir.join("state.json");
    std::fs::write(&state, STATE).unwrap();
    let sp = state.to_str().unwrap();
    let good = dir.join("good.json");
    std::fs::write(
        &good,
        r#"{"rules":[{"metric":"cpu","curve":"linear","low":50,"limit":95}]}"#,
    )
    .unwrap();
    let (code, _, err) = run_heft(
        &[
            "check",
            "--state-file",
            sp,
            "--feedback",
            good.to_str().unwrap(),
        ],
        &[],
    );
    // As the agent, it says what it loaded.
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("feedback: 1 rule(s) from") && !err.contains("error"),
        "{err}"
    );
    for (name, text) in [
        ("json", "{"),
        ("metric", r#"{"rules":[{"metric":"nope"}]}"#),
    ] {
        let f = dir.join(format!("{name}.json"));
        std::fs::write(&f, text).unwrap();
        let fp = f.to_str().unwrap();
        let (code, out, err) = run_heft(&["check", "--state-file", sp, "--feedback", fp], &[]);
        assert_eq!((code, out.as_str()), (100, ""), "{name}: {err}");
        let port = free_port().to_string();
        let args = [
            "--addr",
            "127.0.0.1",
            "--port",
            &port,
            "--state-file",
            sp,
            "--feedback",
            fp,
        ];
        let (serve_code, _, serve_err) = run_heft_for(&args, &[], SECS5);
        assert_eq!(serve_code, Some(100), "{serve_err}");
        assert_eq!(err, serve_err, "{name}");
        let (code, _, env_err) = run_heft(&["check", "--state-file", sp], &[("HEFT_FEEDBACK", fp)]);
        assert_eq!((code, env_err), (100, err), "{name} from HEFT_FEEDBACK");
    }
    let missing = dir.join("missing.json");
    let (code, _, err) = run_heft(
        &["check", "--feedback", missing.to_str().unwrap()],
        &[(
            "HEFT_STATE_FILE",
            dir.join("bad/state.json").to_str().unwrap(),
        )],
    );
    assert_eq!(code, 100, "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(
        err.contains("no directory") && err.contains("unreadable: ENOENT"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without the feedback feature, `--feedback` is refused as `serve` refuses it.
#[cfg(not(feature = "feedback"))]
#[test]
fn check_without_the_feature_refuses_feedback() {
    let (code, _, err) = run_heft(&["check", "--feedback", "/f.json"], &[]);
    assert_eq!(code, 100, "{err}");
    assert!(err.contains("feedback feature"), "{err}");
}
