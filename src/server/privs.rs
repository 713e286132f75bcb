//! Drops root privileges after binding: supplementary groups, group, the
//! capability bounding set, then user.
//!
//! Names are looked up in `/etc/passwd` and `/etc/group` directly, as on the
//! routers and busybox boxes heft is for; NSS (LDAP, NIS) is not consulted.
//! Numeric ids are taken as they are. (musl's getpwnam would cost ~15 KB.)

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

use crate::num::parse_u32;
use crate::num::pieces;
use crate::os;

/// Why privileges could not be dropped.
#[derive(Debug)]
pub enum DropError {
    /// No such user.
    NoUser,
    /// No such group.
    NoGroup,
    /// A set*id call failed.
    Call(&'static str, Errno),
}

/// Switches to `user` (and its group, or `group`); refuses to go on as root if that fails.
pub fn drop_to(user: Option<&OsStr>, group: Option<&OsStr>) -> Result<(), DropError> {
    let u = match user {
        Some(name) => Some(lookup_user(name.as_bytes(), group.is_some())?),
        None => None,
    };
    let gid = match group {
        Some(name) => Some(lookup_group(name.as_bytes())?),
        None => u.map(|(_, g)| g),
    };
    if let Some(g) = gid {
        os::ids::clear_groups().map_err(|e| DropError::Call("setgroups", e))?;
        os::ids::set_gid(g).map_err(|e| DropError::Call("setresgid", e))?;
    }
    if let Some((uid, _)) = u {
        // While still root: afterwards CAP_SETPCAP is gone.
        os::ids::clear_cap_bound().map_err(|e| DropError::Call("PR_CAPBSET_DROP", e))?;
        os::ids::set_uid(uid).map_err(|e| DropError::Call("setresuid", e))?;
        // Make sure there is no way back.
        if uid != 0 && os::ids::can_become_root() {
            return Err(DropError::Call("setuid check", Errno::EPERM));
        }
    }
    Ok(())
}

/// Finds the line of a `name:password:id:...` database whose name (or, for a
/// number, id) is `key`; returns that line's id and the field after it.
fn lookup(db: &str, key: &[u8]) -> Option<(u32, Option<u32>)> {
    let numeric = parse_u32(key);
    let mut buf = [0u8; 512];
    crate::os::fs::find_line(Path::new(db), &mut buf, |line| {
        let mut f = pieces(line, b':');
        let name = f.next()?;
        let id = parse_u32(f.nth(1)?)?;
        let matches = match numeric {
            Some(n) => n == id,
            None => name == key,
        };
        matches.then(|| (id, f.next().and_then(parse_u32)))
    })
    .ok()
    .flatten()
}

/// Finds a user's uid and primary gid; a number not in the file is accepted when a group is given.
fn lookup_user(name: &[u8], have_group: bool) -> Result<(u32, u32), DropError> {
    match lookup("/etc/passwd", name) {
        Some((uid, Some(gid))) => Ok((uid, gid)),
        _ => match parse_u32(name) {
            Some(uid) if have_group => Ok((uid, 0)),
            _ => Err(DropError::NoUser),
        },
    }
}

/// Finds a group's gid; a number is taken as it is.
fn lookup_group(name: &[u8]) -> Result<u32, DropError> {
    if let Some(id) = parse_u32(name) {
        return Ok(id);
    }
    lookup("/etc/group", name)
        .map(|(g, _)| g)
        .ok_or(DropError::NoGroup)
}
