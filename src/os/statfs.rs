//! What `statfs(2)` says of a filesystem.
//!
//! Through libc with a path buffer on the stack: nix's wrapper brings a
//! generic path conversion (with an allocating fallback) of its own.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

/// The type and block counts of the filesystem holding a path.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FsStat {
    /// `f_type`: the filesystem's magic number.
    pub kind: u32,
    /// `f_blocks`: all data blocks.
    pub blocks: u64,
    /// `f_bfree`: free blocks.
    pub free: u64,
    /// `f_bavail`: free blocks an unprivileged user may take.
    pub avail: u64,
}

/// Asks the kernel about the filesystem holding `path`, at most 255 bytes
/// (on a network filesystem this may wait for the server).
// The field types differ between targets: u64 on some, narrower or signed on others.
#[allow(clippy::unnecessary_cast)]
pub fn statfs(path: &Path) -> Result<FsStat, Errno> {
    let p = path.as_os_str().as_bytes();
    let mut c = [0u8; 256];
    c.get_mut(..p.len())
        .filter(|_| p.len() < 256 && !p.contains(&0))
        .ok_or(Errno::ENAMETOOLONG)?
        .copy_from_slice(p);
    let mut st = core::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c` holds the path and at least one NUL after it; `st` is a
    // valid place for the kernel to write a `struct statfs` into.
    Errno::result(unsafe { libc::statfs(c.as_ptr().cast(), st.as_mut_ptr()) })?;
    // SAFETY: statfs succeeded, so it filled `st`.
    let st = unsafe { st.assume_init() };
    Ok(FsStat {
        // Magic numbers are 32 bits wide; `f_type` is wider on some ABIs.
        kind: st.f_type as u32,
        blocks: st.f_blocks as u64,
        free: st.f_bfree as u64,
        avail: st.f_bavail as u64,
    })
}
