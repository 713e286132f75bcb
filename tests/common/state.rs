//! State files and the replies they give: the FAIL reply for an unusable
//! file, what a state file holds, and the bad files heft must refuse.

use super::*;

use std::path::Path;

/// The reply heft gives for a state file it cannot use: `what` after
/// `state file: `, cut to the 64 bytes a reason may have.
pub fn fail_reply(what: &str) -> String {
    let reason = format!("state file: {what}");
    format!("fail ready 100% #{}\n", &reason[..reason.len().min(64)])
}

/// Tells whether `reply` is the FAIL reply for an unusable state file: with
/// exactly `what` when given; with any description when None (the words for
/// JSON syntax errors belong to the parser and may change).
pub fn is_fail_reply(reply: &str, what: Option<&str>) -> bool {
    match what {
        Some(w) => reply == fail_reply(w),
        None => reply
            .strip_prefix("fail ready 100% #state file: ")
            .and_then(|r| r.strip_suffix('\n'))
            .is_some_and(|r| !r.trim().is_empty() && !r.contains('\n')),
    }
}

/// Waits until the agent serves the FAIL reply `is_fail_reply` accepts.
pub fn expect_fail(a: &Agent, what: Option<&str>) {
    let mut last = String::new();
    let ok = wait_for(SECS5, || {
        last = a.probe();
        is_fail_reply(&last, what)
    });
    assert!(
        ok,
        "wanted FAIL for {what:?}, got {last:?}; log:\n{}",
        a.log()
    );
}

/// The state file's top-level entry as (status, weight, maxconn, reason);
/// panics if the file does not parse.
pub fn top_of(text: &str) -> (heft::model::state::Status, u8, Option<u16>, String) {
    let st = heft::model::state::parse(text.as_bytes())
        .unwrap_or_else(|e| panic!("state file does not parse ({e:?}): {text:?}"));
    let t = st
        .top
        .unwrap_or_else(|| panic!("no top-level state: {text:?}"));
    (t.status, t.weight, t.maxconn, t.reason.as_str().to_string())
}

/// One service's entry in a state file, as `top_of` gives the top level.
pub fn service_of(text: &str, name: &str) -> (heft::model::state::Status, u8, Option<u16>, String) {
    let st = heft::model::state::parse(text.as_bytes())
        .unwrap_or_else(|e| panic!("state file does not parse ({e:?}): {text:?}"));
    let e = st
        .service(name.as_bytes())
        .unwrap_or_else(|| panic!("no service {name}: {text:?}"));
    (e.status, e.weight, e.maxconn, e.reason.as_str().to_string())
}

/// Waits until the state file's top level has `status`; panics with the file otherwise.
pub fn expect_file_status(a: &Agent, status: heft::model::state::Status) {
    let ok = wait_for(SECS5, || {
        heft::model::state::parse(a.state_text().as_bytes())
            .ok()
            .and_then(|s| s.top)
            .is_some_and(|t| t.status == status)
    });
    assert!(
        ok,
        "file never said {status:?}: {:?}; log:\n{}",
        a.state_text(),
        a.log()
    );
}

/// Temporary files (`*.tmp`) in `dir`.
pub fn temp_files(dir: &Path) -> Vec<String> {
    file_names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// The bad state files and the words heft must serve after `state file: `
/// (None: a JSON syntax error, described in the parser's own words).
pub fn bad_files() -> Vec<(&'static str, Option<String>, Option<&'static str>)> {
    let big = format!(r#"{{"status":"UP"}}{}"#, " ".repeat(16384));
    let r65 = format!(r#"{{"status":"DOWN","reason":"{}"}}"#, "x".repeat(65));
    let services65 = format!(
        r#"{{"services":{{{}}}}}"#,
        (0..65)
            .map(|i| format!(r#""s{i}":{{"status":"UP"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    let s = |x: &str| Some(x.to_string());
    vec![
        ("missing", None, Some("unreadable ENOENT")),
        (
            "larger than 16384 bytes",
            Some(big),
            Some("file larger than 16384 bytes"),
        ),
        ("truncated JSON", s(r#"{"status":"UP""#), None),
        ("empty", s(""), None),
        ("trailing bytes", s(r#"{"status":"UP"} {}"#), None),
        ("not an object", s("[1]"), None),
        (
            "weight 256",
            s(r#"{"status":"UP","weight":256}"#),
            Some("weight: expected a whole number 0-255, got another number"),
        ),
        (
            "weight -1",
            s(r#"{"status":"UP","weight":-1}"#),
            Some("weight: expected a whole number 0-255, got another number"),
        ),
        ("weight 7.5", s(r#"{"status":"UP","weight":7.5}"#), None),
        (
            "maxconn 65536",
            s(r#"{"status":"UP","maxconn":65536}"#),
            Some("maxconn: expected a whole number 0-65535, got another number"),
        ),
        (
            "bad status",
            s(r#"{"status":"UPP"}"#),
            Some("status: expected one of UP READY DRAIN MAINT DOWN FAIL STOPPED"),
        ),
        (
            "no status",
            s(r#"{"weight":5}"#),
            Some("status: missing (needed unless only services are given)"),
        ),
        (
            "reason with #",
            s(r##"{"status":"DOWN","reason":"a#b"}"##),
            Some("reason: expected printable ASCII without a hash sign"),
        ),
        (
            "reason with \\n",
            s(r#"{"status":"DOWN","reason":"a\nb"}"#),
            Some("reason: expected printable ASCII without a hash sign"),
        ),
        (
            "reason with \\u0001",
            s(r#"{"status":"DOWN","reason":"a\u0001"}"#),
            Some("reason: expected printable ASCII without a hash sign"),
        ),
        (
            "reason with é",
            s(r#"{"status":"DOWN","reason":"caf\u00e9"}"#),
            Some("reason: expected printable ASCII without a hash sign"),
        ),
        (
            "reason of 65 bytes",
            Some(r65),
            Some("reason: expected at most 64 bytes"),
        ),
        (
            "bad service name",
            s(r#"{"services":{"a b":{"status":"UP"}}}"#),
            Some("service name: expected 1 to 64 of [A-Za-z0-9_./-]"),
        ),
        (
            "service without status",
            s(r#"{"services":{"a":{"weight":1}}}"#),
            Some("status: missing in a service"),
        ),
        ("65 services", Some(services65), None),
    ]
}
