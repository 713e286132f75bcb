//! The `disk` metric: % used of the filesystem holding a path, as `df` shows it.
//!
//! `statfs(2)` on a network filesystem may wait for its server, which would
//! stall the loop: such paths are refused when the configuration is loaded,
//! and no longer sampled if one is mounted there later.

use std::path::Path;

use crate::os::statfs::{statfs, FsStat};

/// Filesystem types whose `statfs` may wait on a network or a user-space
/// daemon: NFS, SMB, CIFS, SMB2, FUSE (sshfs, glusterfs, s3fs...), Ceph, AFS,
/// kAFS, 9P, Coda, NCP, Lustre, GPFS, OCFS2, GFS2.
const REMOTE: [u32; 15] = [
    0x6969,
    0x517b,
    0xff53_4d42,
    0xfe53_4d42,
    0x6573_5546,
    0x00c3_6400,
    0x5346_414f,
    0x6b41_4653,
    0x0102_1997,
    0x7375_7245,
    0x564c,
    0x0bd0_0bd0,
    0x4750_4653,
    0x7461_636f,
    0x0116_1970,
];

/// Tells whether a filesystem type is one `statfs` may wait on.
pub fn is_remote(kind: u32) -> bool {
    REMOTE.contains(&kind)
}

/// Computes the % used as `df` does: used / (used + available to users), rounded up.
pub fn used_pct(s: &FsStat) -> Option<u32> {
    let used = s.blocks.saturating_sub(s.free);
    let all = used.checked_add(s.avail)?;
    if all == 0 {
        return None;
    }
    // Saturates only past 2^57 blocks, far beyond any filesystem.
    Some(used.saturating_mul(100).div_ceil(all).min(100) as u32)
}

/// Reads the % used of the filesystem holding `path`; says why it cannot
/// (at load, a network filesystem is refused with that reason).
#[inline(never)]
pub fn read(path: &str) -> Result<u32, &'static str> {
    match statfs(Path::new(path)) {
        Ok(s) if is_remote(s.kind) => Err("on a network filesystem (statfs could block)"),
        Ok(s) => used_pct(&s).ok_or("a filesystem without blocks"),
        Err(e) => Err(crate::os::errno_name(e).unwrap_or("cannot be read (statfs failed)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(blocks: u64, free: u64, avail: u64) -> FsStat {
        FsStat {
            kind: 0x0102_1994,
            blocks,
            free,
            avail,
        }
    }

    #[test]
    fn computes_use_as_df_does() {
        assert_eq!(used_pct(&fs(256, 128, 128)), Some(50));
        // Reserved blocks count neither as used nor as available.
        assert_eq!(used_pct(&fs(1000, 100, 50)), Some(95));
        assert_eq!(used_pct(&fs(1000, 999, 999)), Some(1));
        assert_eq!(used_pct(&fs(1000, 0, 0)), Some(100));
        assert_eq!(used_pct(&fs(0, 0, 0)), None);
        assert_eq!(used_pct(&fs(u64::MAX, 0, u64::MAX)), None);
        assert_eq!(used_pct(&fs(1 << 56, 1 << 55, 1 << 55)), Some(50));
    }

    #[test]
    fn knows_network_filesystems_and_reads_a_local_one() {
        assert!(is_remote(0x6969) && is_remote(0x6573_5546) && is_remote(0xff53_4d42));
        assert!(!is_remote(0x0102_1994) && !is_remote(0xef53));
        assert!(read("/").is_ok_and(|p| p <= 100));
        assert_eq!(read("/no/such/path/here"), Err("ENOENT"));
        assert_eq!(read("/proc"), Err("a filesystem without blocks"));
    }
}
