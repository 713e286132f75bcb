//! Files: reading small regular files whole into caller-owned buffers, and
//! the calls that replace the state file and hold the pid file, each named
//! relative to a directory opened once.
//!
//! Each path is copied into a C string on the stack by one helper (`c`)
//! before nix sees it: nix's own copying, with a heap fallback, would be
//! compiled once per call. Every file is opened without blocking (a FIFO opens at once)
//! and refused unless it is regular.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{self, OFlag};
use nix::sys::stat::{self, Mode};
use nix::unistd::{self, Gid, Uid};
use std::ffi::CStr;

use super::Fd;
use crate::os;

/// Room for a path as a C string; a longer path is ENAMETOOLONG.
type CBuf = [u8; 1024];

/// Copies `p` into `buf` as a C string (EINVAL for a NUL inside it).
pub(super) fn c<'b>(p: &Path, buf: &'b mut CBuf) -> Result<&'b CStr, Errno> {
    let b = p.as_os_str().as_bytes();
    let room = buf.get_mut(..b.len()).ok_or(Errno::ENAMETOOLONG)?;
    room.copy_from_slice(b);
    buf[b.len()] = 0;
    CStr::from_bytes_with_nul(&buf[..=b.len()]).map_err(|_| Errno::EINVAL)
}

/// The current directory, for paths given whole.
pub const CWD: BorrowedFd<'static> = fcntl::AT_FDCWD;

/// What `fstat` says about a file, as far as heft looks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// The device and inode: the file's identity.
    pub id: (u64, u64),
    /// The type and permission bits.
    pub mode: u32,
    /// The owner.
    pub uid: u32,
    /// The group.
    pub gid: u32,
    /// How many names the file has.
    pub links: u32,
}

/// Keeps what heft looks at of a `stat` result (its field types differ
/// between targets, hence casts that are no-ops on some).
#[allow(clippy::unnecessary_cast)]
fn stat_of(st: stat::FileStat) -> Stat {
    Stat {
        id: (st.st_dev as u64, st.st_ino as u64),
        mode: st.st_mode as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        links: st.st_nlink as u32,
    }
}

/// Returns what `fstat` says about `fd`.
pub fn fstat(fd: BorrowedFd) -> Result<Stat, Errno> {
    stat::fstat(fd).map(stat_of)
}

/// Refuses a file that is not regular: EISDIR for a directory, ESPIPE for a
/// FIFO, ENODEV for a device or socket (`os::errno_name` says which).
fn regular(st: Stat) -> Result<Stat, Errno> {
    match st.mode & libc::S_IFMT {
        libc::S_IFREG => Ok(st),
        libc::S_IFDIR => Err(Errno::EISDIR),
        libc::S_IFIFO => Err(Errno::ESPIPE),
        _ => Err(Errno::ENODEV),
    }
}

/// Opens the regular file `name` in `dir` with `flags` (O_NOFOLLOW: not
/// through a link); never blocks on a FIFO, refuses anything not regular.
pub fn open_at(dir: BorrowedFd, name: &Path, flags: OFlag) -> Result<(Fd, Stat), Errno> {
    let flags = flags | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let fd = openat(dir, name, flags, Mode::empty())?;
    let st = regular(fstat(fd.as_fd())?)?;
    Ok((fd, st))
}

/// Opens the regular file at `path` for reading (see `open_at`).
pub fn open_read(path: &Path) -> Result<Fd, Errno> {
    open_at(CWD, path, OFlag::O_RDONLY).map(|(fd, _)| fd)
}

/// Opens the directory `path` (relative to `dir`), following links, to name files in it.
pub fn open_dir(dir: BorrowedFd, path: &Path) -> Result<Fd, Errno> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
    openat(dir, path, flags, Mode::empty())
}

/// Opens `name` in `dir` with `flags` (close-on-exec added) and, for a new file, `mode`.
fn openat(dir: BorrowedFd, name: &Path, flags: OFlag, mode: Mode) -> Result<Fd, Errno> {
    fcntl::openat(
        dir,
        c(name, &mut [0; 1024])?,
        flags | OFlag::O_CLOEXEC,
        mode,
    )
}

/// Creates `name` in `dir` for reading and writing with mode 0600: never an
/// existing file, never through a link (EEXIST for anything already there).
pub fn create_new_at(dir: BorrowedFd, name: &Path) -> Result<Fd, Errno> {
    let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW;
    openat(dir, name, flags, Mode::S_IRUSR | Mode::S_IWUSR)
}

/// Reads from `fd` until EOF or until `buf` is full; returns the bytes read.
pub fn read_full(fd: &Fd, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut n = 0;
    while n < buf.len() {
        match os::read(fd, &mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads the start of the regular file `name` in `dir` (opened with `flags`
/// added) into `buf`; returns the bytes read and its `Stat`.
pub fn read_at(
    dir: BorrowedFd,
    name: &Path,
    buf: &mut [u8],
    flags: OFlag,
) -> Result<(usize, Stat), Errno> {
    let (fd, st) = open_at(dir, name, OFlag::O_RDONLY | flags)?;
    Ok((read_full(&fd, buf)?, st))
}

/// Reads the start of the regular file at `path` into `buf`; returns the bytes read.
pub fn read(path: &Path, buf: &mut [u8]) -> Result<usize, Errno> {
    read_at(CWD, path, buf, OFlag::empty()).map(|r| r.0)
}

/// Renames `from` over `to`, both in `dir` (a link at `to` is replaced, not followed).
pub fn rename_at(dir: BorrowedFd, from: &Path, to: &Path) -> Result<(), Errno> {
    fcntl::renameat(dir, c(from, &mut [0; 1024])?, dir, c(to, &mut [0; 1024])?)
}

/// Removes the name `name` from `dir` (a link, not what it points to).
pub fn remove_at(dir: BorrowedFd, name: &Path) -> Result<(), Errno> {
    unistd::unlinkat(
        dir,
        c(name, &mut [0; 1024])?,
        unistd::UnlinkatFlags::NoRemoveDir,
    )
}

/// Reads where the symbolic link `name` in `dir` points into `buf`; returns
/// its length (EINVAL: not a link; ENAMETOOLONG: longer than `buf`).
///
/// libc's readlinkat, not nix's: nix's returns a heap `OsString`.
pub fn link_target(dir: BorrowedFd, name: &Path, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut cbuf = [0; 1024];
    let name = c(name, &mut cbuf)?;
    // SAFETY: readlinkat(2) writes at most `buf.len()` bytes into `buf`;
    // `name` is a C string that outlives the call.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    match Errno::result(n)? as usize {
        n if n < buf.len() => Ok(n),
        _ => Err(Errno::ENAMETOOLONG),
    }
}

/// Calls `f` with the name of each entry of the directory `dir` (read
/// through a descriptor of its own, so `dir`'s position is left alone).
pub fn each_name(dir: BorrowedFd, mut f: impl FnMut(&[u8])) -> Result<(), Errno> {
    let d = open_dir(dir, Path::new("."))?;
    let mut buf = [0u64; 128];
    loop {
        // A raw getdents64: neither nix nor libc reads a directory through a
        // descriptor without allocating a DIR stream for it.
        // SAFETY: getdents64(2) writes at most the buffer's size in bytes into it.
        let n =
            unsafe { libc::syscall(libc::SYS_getdents64, d.as_raw_fd(), buf.as_mut_ptr(), 1024) };
        let n = Errno::result(n)? as usize;
        if n == 0 {
            return Ok(());
        }
        // SAFETY: the kernel filled the first `n` bytes; u64s may be read as bytes.
        let bytes: &[u8] = unsafe { core::slice::from_raw_parts(buf.as_ptr().cast(), n) };
        let mut at = 0;
        // Each record: inode (8), offset (8), length (2), type (1), name, NUL.
        while let Some(rec) = bytes.get(at..at + 19) {
            let len = u16::from_ne_bytes([rec[16], rec[17]]) as usize;
            let name = bytes.get(at + 19..at + len).unwrap_or(&[]);
            f(name.split(|&c| c == 0).next().unwrap_or(&[]));
            at += len.max(19);
        }
    }
}

/// Tells whether this process may write at `path` (access(2): as its real user).
pub fn writable(path: &Path) -> bool {
    c(path, &mut [0; 1024]).is_ok_and(|p| unistd::access(p, unistd::AccessFlags::W_OK).is_ok())
}

/// Cuts the file open at `fd` to `len` bytes.
pub fn truncate(fd: BorrowedFd, len: usize) -> Result<(), Errno> {
    unistd::ftruncate(fd, len as libc::off_t)
}

/// Sets the permission bits of the file open at `fd`.
pub fn fchmod(fd: BorrowedFd, mode: u32) -> Result<(), Errno> {
    stat::fchmod(fd, Mode::from_bits_truncate(mode as _))
}

/// Sets the owner and group of the file open at `fd`.
///
/// fchownat(2) with an empty path (AT_EMPTY_PATH) acts on `fd` itself, as
/// fchown(2) does, without musl's fchown fallback for O_PATH descriptors
/// (a /proc path), which heft never passes.
pub fn fchown(fd: BorrowedFd, uid: u32, gid: u32) -> Result<(), Errno> {
    let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    unistd::fchownat(fd, c"", uid, gid, fcntl::AtFlags::AT_EMPTY_PATH)
}

/// Flushes what was written to `fd` to the disk.
pub fn fsync(fd: &Fd) -> Result<(), Errno> {
    unistd::fsync(fd)
}

/// Takes (`true`) or drops the exclusive `flock` on `fd`, without waiting:
/// EWOULDBLOCK while another open file holds it.
///
/// libc's flock, not nix's: nix's `Flock` takes the file for the lock's life,
/// and the directory it locks here stays borrowed by its owner.
pub fn flock(fd: BorrowedFd, take: bool) -> Result<(), Errno> {
    let op = if take {
        libc::LOCK_EX | libc::LOCK_NB
    } else {
        libc::LOCK_UN
    };
    // SAFETY: flock(2) on a descriptor we borrow; it touches no memory of ours.
    Errno::result(unsafe { libc::flock(fd.as_raw_fd(), op) }).map(drop)
}

/// The whole-file write lock that `lock` takes and `lock_holder` asks about.
fn whole_file() -> libc::flock {
    // SAFETY: flock is plain data; all zeroes is a valid value.
    let mut l: libc::flock = unsafe { core::mem::zeroed() };
    l.l_type = libc::F_WRLCK as _;
    l.l_whence = libc::SEEK_SET as _;
    l
}

/// Takes a write lock on the whole file open (for writing) at `fd`, for as
/// long as this process keeps it open; EAGAIN or EACCES while another holds it.
pub fn lock(fd: BorrowedFd) -> Result<(), Errno> {
    fcntl::fcntl(fd, fcntl::FcntlArg::F_SETLK(&whole_file())).map(drop)
}

/// Returns the pid of the process holding a lock on the file open at `fd`, none if none does.
pub fn lock_holder(fd: BorrowedFd) -> Result<Option<u32>, Errno> {
    let mut l = whole_file();
    fcntl::fcntl(fd, fcntl::FcntlArg::F_GETLK(&mut l))?;
    Ok((l.l_type != libc::F_UNLCK as _).then_some(l.l_pid as u32))
}

/// Returns 64 bits no other user can predict: getrandom(2) without waiting
/// for entropy, else the clock, the pid and `salt` (callers create files
/// exclusively, so a guessed name is only a retry).
///
/// libc's getrandom: nix has no wrapper for it.
pub fn random(salt: u32) -> u64 {
    let mut r = [0u8; 8];
    // SAFETY: getrandom(2) writes at most `r.len()` bytes into `r`.
    let n = unsafe { libc::getrandom(r.as_mut_ptr().cast(), r.len(), libc::GRND_NONBLOCK) };
    let v = u64::from_ne_bytes(r);
    if n == 8 {
        v ^ salt as u64
    } else {
        let ms = os::now().since(crate::time::Instant::from_ms(0));
        (os::pid() as u64) << 32 ^ (ms ^ salt.wrapping_mul(0x9e37_79b9)) as u64
    }
}

/// Returns the last part of `path` (after its last `/`): the file's name.
pub fn file_name(path: &Path) -> &Path {
    let b = path.as_os_str().as_bytes();
    let start = b.iter().rposition(|&c| c == b'/').map_or(0, |i| i + 1);
    Path::new(std::ffi::OsStr::from_bytes(&b[start..]))
}

/// Returns the directory that holds `path`: `.` for a bare name.
pub fn dir_of(path: &Path) -> &Path {
    let b = path.as_os_str().as_bytes();
    match b.iter().rposition(|&c| c == b'/') {
        Some(0) => Path::new("/"),
        Some(i) => Path::new(std::ffi::OsStr::from_bytes(&b[..i])),
        None => Path::new("."),
    }
}

/// Calls `f` with each line of the file at `path` (without its `\n`), using `buf`
/// as the window; lines longer than `buf` are skipped. Stops when `f` returns `Some`.
pub fn find_line<T>(
    path: &Path,
    buf: &mut [u8],
    mut f: impl FnMut(&[u8]) -> Option<T>,
) -> Result<Option<T>, Errno> {
    let fd = open_read(path)?;
    let mut have = 0;
    let mut skipping = false;
    loop {
        let k = os::read(&fd, &mut buf[have..])?;
        let eof = k == 0;
        have += k;
        let mut start = 0;
        // At the end of the file, what is left is the last line (one call site of `f`).
        loop {
            let end = match buf[start..have].iter().position(|&c| c == b'\n') {
                Some(p) => start + p,
                None if eof && start < have => have,
                None => break,
            };
            let line = &buf[start..end];
            start = have.min(end + 1);
            if core::mem::take(&mut skipping) {
                continue;
            }
            if let Some(t) = f(line) {
                return Ok(Some(t));
            }
        }
        if eof {
            return Ok(None);
        }
        buf.copy_within(start..have, 0);
        have -= start;
        if have == buf.len() {
            have = 0;
            skipping = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_directory() {
        for (p, d) in [
            ("/etc/heft/state.json", "/etc/heft"),
            ("/s.json", "/"),
            ("s.json", "."),
            ("a/b", "a"),
        ] {
            assert_eq!(dir_of(Path::new(p)), Path::new(d));
        }
        assert_eq!(
            file_name(Path::new("/etc/heft/state.json")),
            Path::new("state.json")
        );
        assert_eq!(file_name(Path::new("s.json")), Path::new("s.json"));
    }

    #[test]
    fn finds_lines_skipping_long_ones_up_to_the_last() {
        let path = std::env::temp_dir().join(format!("heft-find-line-{}", std::process::id()));
        let long = "x".repeat(40);
        let mut buf = [0u8; 16];
        let mut find = |text: &str, key: &[u8]| {
            std::fs::write(&path, text).unwrap();
            find_line(&path, &mut buf, |l| l.strip_prefix(key).map(<[u8]>::to_vec))
        };
        let text = format!("a:1\n{long}:9\nb:2\nc:3");
        assert_eq!(find(&text, b"a:"), Ok(Some(b"1".to_vec())));
        assert_eq!(find(&text, b"b:"), Ok(Some(b"2".to_vec())));
        assert_eq!(find(&text, b"c:"), Ok(Some(b"3".to_vec())));
        assert_eq!(find(&text, b"x"), Ok(None));
        assert_eq!(find(&format!("a:1\n{long}"), b"x"), Ok(None));
        assert_eq!(find("c:3\n", b"c:"), Ok(Some(b"3".to_vec())));
        assert_eq!(find("", b""), Ok(None));
        std::fs::remove_file(&path).unwrap();
    }
}
