//! Process and user ids, and dropping privileges.
//!
//! The id changes are raw system calls: musl's set*id functions stop every
//! thread and repeat the call in each, machinery a one-thread program never
//! needs; on one thread the system call has the same effect.

use nix::errno::Errno;

/// The id system calls that take 32-bit ids: ARM's original ones take 16-bit ids.
#[cfg(target_arch = "arm")]
mod nr {
    pub use libc::{
        SYS_setgroups32 as SETGROUPS, SYS_setresgid32 as SETRESGID, SYS_setresuid32 as SETRESUID,
        SYS_setuid32 as SETUID,
    };
}
/// The id system calls; on every other target they take 32-bit ids.
#[cfg(not(target_arch = "arm"))]
mod nr {
    pub use libc::{
        SYS_setgroups as SETGROUPS, SYS_setresgid as SETRESGID, SYS_setresuid as SETRESUID,
        SYS_setuid as SETUID,
    };
}

/// Makes id system call `nr` with three integer arguments.
fn id_call(
    nr: libc::c_long,
    a: libc::c_long,
    b: libc::c_long,
    c: libc::c_long,
) -> Result<(), Errno> {
    // SAFETY: the id calls take integers, and for setgroups a null list with
    // length 0; they touch no memory of ours.
    Errno::result(unsafe { libc::syscall(nr, a, b, c) }).map(drop)
}

/// Clears the supplementary groups (raw: musl's setgroups broadcasts to threads).
pub fn clear_groups() -> Result<(), Errno> {
    id_call(nr::SETGROUPS, 0, 0, 0)
}

/// Sets the real, effective and saved group id (raw: musl's broadcasts to threads).
pub fn set_gid(g: u32) -> Result<(), Errno> {
    let g = g as libc::c_long;
    id_call(nr::SETRESGID, g, g, g)
}

/// Sets the real, effective and saved user id (raw: musl's broadcasts to threads).
pub fn set_uid(u: u32) -> Result<(), Errno> {
    let u = u as libc::c_long;
    id_call(nr::SETRESUID, u, u, u)
}

/// Tells whether this process can still become root (it must not, after a
/// drop; raw: musl's setuid broadcasts to threads).
pub fn can_become_root() -> bool {
    id_call(nr::SETUID, 0, 0, 0).is_ok()
}

/// Returns this process's id.
pub fn pid() -> u32 {
    nix::unistd::getpid().as_raw() as u32
}

/// Returns this process's effective user id.
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}
