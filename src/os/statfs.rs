//! What `statfs(2)` says of a filesystem, through nix's wrapper.

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

/// Asks the kernel about the filesystem holding `path` (on a network
/// filesystem this may wait for the server).
pub fn statfs(path: &Path) -> Result<FsStat, Errno> {
    let s = nix::sys::statfs::statfs(path)?;
    Ok(FsStat {
        // Magic numbers are 32 bits wide; `f_type` is wider on some ABIs.
        kind: s.filesystem_type().0 as u32,
        blocks: s.blocks(),
        free: s.blocks_free(),
        avail: s.blocks_available(),
    })
}
