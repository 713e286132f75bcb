//! Process and user ids, dropping privileges, and the prctl switches that
//! keep them dropped.
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

/// Makes sure no program this process runs gains privileges (setuid bits,
/// file capabilities); inherited by children, irreversible.
pub fn forbid_new_privs() -> Result<(), Errno> {
    nix::sys::prctl::set_no_new_privs()
}

/// Empties the capability bounding set, so that no capability can come
/// back; needs CAP_SETPCAP, so before the switch away from root.
pub fn clear_cap_bound() -> Result<(), Errno> {
    // Every capability up to the kernel's last: the next is EINVAL.
    let mut cap: libc::c_ulong = 0;
    loop {
        // SAFETY: PR_CAPBSET_DROP takes one integer and touches no memory of
        // ours; nix has no wrapper for it.
        match Errno::result(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap) }) {
            Ok(_) => cap += 1,
            Err(Errno::EINVAL) if cap > 0 => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Returns this process's id.
pub fn pid() -> u32 {
    nix::unistd::getpid().as_raw() as u32
}

/// Returns this process's effective user id.
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}
