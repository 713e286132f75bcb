//! Drops root privileges after binding: supplementary groups, group, then user.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::unistd::{self, Gid, Group, Uid, User};

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
        Some(name) => Some(lookup_user(name)?),
        None => None,
    };
    let gid: Option<Gid> = match group {
        Some(name) => Some(lookup_group(name)?),
        None => u.as_ref().map(|u| u.gid),
    };
    if let Some(g) = gid {
        unistd::setgroups(&[]).map_err(|e| DropError::Call("setgroups", e))?;
        unistd::setresgid(g, g, g).map_err(|e| DropError::Call("setresgid", e))?;
    }
    if let Some(u) = u {
        unistd::setresuid(u.uid, u.uid, u.uid).map_err(|e| DropError::Call("setresuid", e))?;
        // Make sure there is no way back.
        if u.uid != Uid::from_raw(0) && unistd::setuid(Uid::from_raw(0)).is_ok() {
            return Err(DropError::Call("setuid check", Errno::EPERM));
        }
    }
    Ok(())
}

fn lookup_user(name: &OsStr) -> Result<User, DropError> {
    let found = match crate::num::parse_u32(name.as_bytes()) {
        Some(id) => User::from_uid(Uid::from_raw(id)),
        None => User::from_name(name.to_str().ok_or(DropError::NoUser)?),
    };
    found.ok().flatten().ok_or(DropError::NoUser)
}

fn lookup_group(name: &OsStr) -> Result<Gid, DropError> {
    if let Some(id) = crate::num::parse_u32(name.as_bytes()) {
        return Ok(Gid::from_raw(id));
    }
    let g = Group::from_name(name.to_str().ok_or(DropError::NoGroup)?)
        .ok()
        .flatten()
        .ok_or(DropError::NoGroup)?;
    Ok(g.gid)
}
