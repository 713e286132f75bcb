//! Users, groups and the ids a process runs with: /etc/passwd and
//! /etc/group, nobody and nogroup, and the ids and capabilities in
//! /proc/PID/status after heft drops privileges.

use super::is_root;

/// The uid and primary gid of `user` in /etc/passwd.
pub fn passwd_ids(user: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() > 3 && f[0] == user {
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        } else {
            None
        }
    })
}

/// The gid of `group` in /etc/group.
pub fn group_id(group: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() > 2 && f[0] == group {
            f[2].parse().ok()
        } else {
            None
        }
    })
}

/// nobody's uid and nogroup's gid, when this machine has both (Debian does).
pub fn nobody() -> Option<(u32, u32)> {
    assert!(
        is_root(),
        "these tests run as root (the privilege drop needs it)"
    );
    match (passwd_ids("nobody"), group_id("nogroup")) {
        (Some((uid, _)), Some(gid)) if uid != 0 && gid != 0 => Some((uid, gid)),
        _ => {
            println!("note: no nobody user or nogroup group here: privilege drop not tested");
            None
        }
    }
}

/// The `Uid:`, `Gid:`, `Groups:` and `CapEff:` lines of /proc/PID/status.
pub fn proc_ids(pid: i32) -> (Vec<u32>, Vec<u32>, Vec<u32>, String) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> String {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            .trim()
            .to_string()
    };
    let nums =
        |v: String| -> Vec<u32> { v.split_whitespace().map(|n| n.parse().unwrap()).collect() };
    (
        nums(field("Uid:")),
        nums(field("Gid:")),
        nums(field("Groups:")),
        field("CapEff:"),
    )
}

/// Asserts that `pid` runs as `uid`:`gid` with no supplementary groups and no capabilities.
pub fn assert_dropped(pid: i32, uid: u32, gid: u32) {
    let (uids, gids, groups, cap_eff) = proc_ids(pid);
    // Real, effective, saved and file-system ids all changed: no way back to root.
    assert_eq!(uids, vec![uid; 4], "Uid: line of heft");
    assert_eq!(gids, vec![gid; 4], "Gid: line of heft");
    assert!(groups.is_empty(), "supplementary groups left: {groups:?}");
    assert_eq!(cap_eff, "0000000000000000", "capabilities left");
}

/// The value of field `name` (e.g. `NoNewPrivs:`) in /proc/PID/status.
pub fn proc_status_field(pid: i32, name: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        .trim()
        .to_string()
}
