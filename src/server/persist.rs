//! The state file and the pid file on disk: where they are, reading the state
//! file, replacing it without touching any other file or losing an update,
//! and holding the pid file.
//!
//! Every name is taken relative to a directory opened once, so a directory
//! swapped later cannot redirect a write. A replacement is written to a
//! temporary file created exclusively under a random name (never through a
//! link, never an existing file), synced, renamed over the state file, and
//! the directory synced: a crash leaves the old file or the new one. Where
//! the directory is not writable but the file is, the file is rewritten in
//! place instead (weaker: a crash can leave it half-written).
//!
//! `heft set` and the agent take an exclusive `flock` on the directory around
//! each write, and the agent writes only while the file is still what it
//! last read or wrote (same identity, size and hash): anything newer wins.

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::log;
use crate::model::agent::LoadError;
use crate::model::state::{self, State, FILE_MAX};
use crate::os::fs::{self as file, Stat, CWD};
use crate::os::{self, fsync, Fd};

/// The step of a write that failed, for the log, and its error if it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteError(Step, Option<Errno>);

/// The file is no longer what heft last read or wrote: it was not written.
pub const CHANGED: WriteError = WriteError(Step::Changed, None);
/// Another process (`heft set`) holds the directory's lock: try again later.
pub const BUSY: WriteError = WriteError(Step::Locking, Some(Errno::EWOULDBLOCK));

/// The steps of a write that can fail (a small integer: errors compare
/// without comparing text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Changed,
    TooLarge,
    FindingDir,
    Locking,
    ReadingFirst,
    CreatingTemp,
    WritingTemp,
    Fsync,
    Fstat,
    ReadingAgain,
    Rename,
    InPlace,
}

impl Step {
    /// How the log names the step.
    fn name(self) -> &'static str {
        match self {
            Step::Changed => "changed on disk",
            Step::TooLarge => "state larger than 4096 bytes",
            Step::FindingDir => "finding its directory",
            Step::Locking => "locking its directory",
            Step::ReadingFirst => "reading it first",
            Step::CreatingTemp => "creating a temporary file",
            Step::WritingTemp => "writing a temporary file",
            Step::Fsync => "fsync",
            Step::Fstat => "fstat",
            Step::ReadingAgain => "reading it again",
            Step::Rename => "rename",
            Step::InPlace => "rewriting it in place",
        }
    }
}

impl WriteError {
    /// The error of a state file whose directory could not be found.
    pub fn dir(e: Errno) -> WriteError {
        failed(Step::FindingDir)(e)
    }

    /// Starts the error line `writing PATH: step[: errno]` for a failed write of `path`.
    pub fn line(self, path: &Path) -> log::Line {
        let mut l = log::error();
        l.s("writing ")
            .b(path.as_os_str().as_encoded_bytes())
            .s(": ")
            .s(self.0.name());
        if let Some(e) = self.1 {
            l.s(": ").errno(e);
        }
        l
    }
}

/// Makes the error of a failed step.
fn failed(step: Step) -> impl Fn(Errno) -> WriteError {
    move |e| WriteError(step, Some(e))
}

/// Where a file lives: its directory, open for good, and its name in it.
pub struct Place {
    dir: Fd,
    name: Box<Path>,
}

/// How many symbolic links `Place::find` follows from the path it is given.
const LINKS_MAX: usize = 8;

impl Place {
    /// Opens the directory of `path`. A symlink at the name is followed (to
    /// the target's directory and name) only while the directory holding it
    /// belongs to root or this user and no one else may write it: ENOLINK
    /// otherwise, so a link another user plants never redirects a write.
    pub fn find(path: &Path) -> Result<Place, Errno> {
        let mut p = Place::open_in(CWD, path)?;
        let mut buf = [0u8; 256];
        for _ in 0..LINKS_MAX {
            let Ok(n) = file::link_target(p.dir(), &p.name, &mut buf) else {
                return Ok(p);
            };
            let d = file::fstat(p.dir())?;
            if d.uid != 0 && d.uid != os::euid() || d.mode & 0o022 != 0 {
                return Err(Errno::ENOLINK);
            }
            let t = Path::new(std::ffi::OsStr::from_bytes(&buf[..n]));
            p = Place::open_in(p.dir(), t)?;
        }
        Err(Errno::ELOOP)
    }

    /// Opens the directory of `path` relative to `base` (a link's target is
    /// relative to the directory holding the link), taking its last part as
    /// the name as it is.
    fn open_in(base: BorrowedFd, path: &Path) -> Result<Place, Errno> {
        Ok(Place {
            dir: file::open_dir(base, file::dir_of(path))?,
            name: file::file_name(path).into(),
        })
    }

    /// Returns the place kept in `slot`, found from `path` first if there is
    /// none yet (the agent finds it at its first read or write, then keeps it,
    /// and then removes what a crash left there).
    pub fn keep<'p>(slot: &'p mut Option<Place>, path: &Path) -> Result<&'p Place, Errno> {
        if slot.is_none() {
            let p = Place::find(path)?;
            remove_leftovers(&p);
            *slot = Some(p);
        }
        slot.as_ref().ok_or(Errno::ENOENT)
    }

    /// The directory.
    fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// Takes the directory's write lock (`heft set` and the agent around a
    /// write), waiting up to `wait_ms` for whoever holds it.
    pub fn lock(&self, wait_ms: u32) -> Result<(), WriteError> {
        let mut waited = 0;
        loop {
            match file::flock(self.dir(), true) {
                Err(Errno::EWOULDBLOCK) if waited < wait_ms => {
                    let _ = os::poll(&mut [], 10);
                    waited += 10;
                }
                r => return r.map_err(failed(Step::Locking)),
            }
        }
    }
}

/// What heft last read or wrote at the state file's name: identity, size
/// and a hash of the bytes; all zero for no file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    id: (u64, u64),
    size: u64,
    hash: u64,
}

impl Seen {
    /// Describes the file `st` holding `bytes`.
    fn of(st: &Stat, bytes: &[u8]) -> Seen {
        // FNV-1a: changes with any edit a person or program makes, cheap on 32-bit targets.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in bytes {
            hash = (hash ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        Seen {
            id: st.id,
            size: bytes.len() as u64,
            hash,
        }
    }
}

/// Reads the state file at `place` into `buf` and records it in `seen` (all
/// zero if there is none); returns the bytes read and the file's `Stat`.
fn look<'b>(place: &Place, buf: &'b mut [u8], seen: &mut Seen) -> Result<(&'b [u8], Stat), Errno> {
    *seen = Seen::default();
    let (n, st) = file::read_at(place.dir(), &place.name, buf, OFlag::O_NOFOLLOW)?;
    let bytes = &buf[..n];
    *seen = Seen::of(&st, bytes);
    Ok((bytes, st))
}

/// Reads and parses the state file into a caller-owned buffer; records what was read in `seen`.
pub fn read(
    place: &Place,
    buf: &mut [u8; FILE_MAX + 1],
    seen: &mut Seen,
) -> Result<State, LoadError> {
    let (bytes, _) = look(place, buf, seen).map_err(LoadError::Io)?;
    // A full buffer is a file larger than FILE_MAX, which parse refuses as such.
    state::parse(bytes).map_err(LoadError::Invalid)
}

/// Tells whether the state file is still what `seen` says (`buf` is scratch
/// space). A file that cannot be read now (EMFILE, say) is an error, not a
/// change: taking it for one would drop the change heft is writing.
pub fn unchanged(place: &Place, seen: Seen, buf: &mut [u8]) -> Result<bool, Errno> {
    let mut now = Seen::default();
    match look(place, buf, &mut now) {
        Ok(_) | Err(Errno::ENOENT) => Ok(now == seen),
        Err(e) => Err(e),
    }
}

/// Writes `st` to the state file at `place`, under the directory's lock,
/// unless the file there is no longer what `seen` says (`CHANGED`); a file
/// gone since is created. `buf` is scratch space. Returns what was written.
pub fn write(place: &Place, seen: Seen, st: &State, buf: &mut [u8]) -> Result<Seen, WriteError> {
    let mut out: heapless::Vec<u8, FILE_MAX> = heapless::Vec::new();
    state::write(st, &mut out).map_err(|_| WriteError(Step::TooLarge, None))?;
    place.lock(0)?;
    let result = write_locked(place, seen, &out, buf);
    let _ = file::flock(place.dir(), false);
    result
}

/// Checks the file against `seen` and replaces it with `bytes`, the lock held.
fn write_locked(
    place: &Place,
    seen: Seen,
    bytes: &[u8],
    buf: &mut [u8],
) -> Result<Seen, WriteError> {
    let mut now = Seen::default();
    let old = match look(place, buf, &mut now) {
        Ok((_, st)) if now == seen => Some(st),
        Ok(_) => return Err(CHANGED),
        Err(Errno::ENOENT) => None,
        Err(e) => return Err(failed(Step::ReadingFirst)(e)),
    };
    match (replace(place, old.as_ref(), bytes, &now, buf), old) {
        (Err(WriteError(_, Some(Errno::EACCES | Errno::EPERM))), Some(o)) => {
            in_place(place, o, bytes)
        }
        (r, _) => r,
    }
}

/// Room for a temporary file's name: the state file's name, a dot, 16 hex digits and `.tmp`.
type TempName = heapless::Vec<u8, 300>;

/// Removes the temporary files a crash left in the state file's directory:
/// every name `.<name>.<16 hex digits>.tmp` (a name, never what it points
/// to). The agent calls this once, when it first finds the directory.
pub fn remove_leftovers(place: &Place) {
    let mut tmp = TempName::new();
    temp_name(&place.name, 0, &mut tmp);
    let n = tmp.len();
    // Not while `heft set` writes: its temporary file is not a leftover.
    if place.lock(0).is_err() {
        return;
    }
    let hex = n - 20..n - 4;
    let _ = file::each_name(place.dir(), |e| {
        // `tmp`'s bytes, but for any hex digit in place of each of its 16 zeroes.
        let leftover = e.len() == n
            && (0..n).all(|i| e[i] == tmp[i] || hex.contains(&i) && e[i].is_ascii_hexdigit());
        if leftover {
            let _ = file::remove_at(place.dir(), Path::new(std::ffi::OsStr::from_bytes(e)));
        }
    });
    let _ = file::flock(place.dir(), false);
}

/// Names a temporary file `.<name>.<16 hex digits>.tmp` from `r`.
fn temp_name(name: &Path, r: u64, out: &mut TempName) {
    out.clear();
    let _ = out.push(b'.');
    let _ = out.extend_from_slice(name.as_os_str().as_bytes());
    let _ = out.push(b'.');
    for i in (0..16).rev() {
        let _ = out.push(b"0123456789abcdef"[(r >> (i * 4)) as usize & 15]);
    }
    let _ = out.extend_from_slice(b".tmp");
}

/// Views a temporary file's name as a path.
fn as_path(t: &TempName) -> &Path {
    Path::new(std::ffi::OsStr::from_bytes(t))
}

/// Writes `bytes` to a new temporary file, gives it `old`'s mode and owner
/// (0644 and ours for a new file), syncs it, checks the state file against
/// `seen` once more (an edit made meanwhile without the lock wins), renames
/// it over the state file and syncs the directory.
fn replace(
    place: &Place,
    old: Option<&Stat>,
    bytes: &[u8],
    seen: &Seen,
    buf: &mut [u8],
) -> Result<Seen, WriteError> {
    let mut tmp = TempName::new();
    let mut salt = 0;
    let f = loop {
        temp_name(&place.name, file::random(salt), &mut tmp);
        match file::create_new_at(place.dir(), as_path(&tmp)) {
            // Something already has that name (by chance, or planted): another one.
            Err(Errno::EEXIST) if salt < 16 => salt += 1,
            r => break r.map_err(failed(Step::CreatingTemp))?,
        }
    };
    let result = fill(place, &f, old, bytes, as_path(&tmp), seen, buf);
    if result.is_err() {
        let _ = file::remove_at(place.dir(), as_path(&tmp));
    }
    result
}

/// The rest of `replace`, once the temporary file `f` (named `tmp`) exists.
fn fill(
    place: &Place,
    f: &Fd,
    old: Option<&Stat>,
    bytes: &[u8],
    tmp: &Path,
    seen: &Seen,
    buf: &mut [u8],
) -> Result<Seen, WriteError> {
    let fd = f.as_fd();
    os::write_all(fd, bytes).map_err(failed(Step::WritingTemp))?;
    // Only this new file gets the old one's owner and mode: root's `heft set`
    // must leave a file the agent's user can still read and replace. Without
    // the right to chown (not root), the file stays ours.
    let mode = match old {
        Some(o) => {
            let _ = file::fchown(fd, o.uid, o.gid);
            o.mode & 0o666
        }
        None => 0o644,
    };
    let _ = file::fchmod(fd, mode);
    fsync(f).map_err(failed(Step::Fsync))?;
    let new = Seen::of(&file::fstat(fd).map_err(failed(Step::Fstat))?, bytes);
    if !unchanged(place, *seen, buf).map_err(failed(Step::ReadingAgain))? {
        return Err(CHANGED);
    }
    file::rename_at(place.dir(), tmp, &place.name).map_err(failed(Step::Rename))?;
    fsync(&place.dir).map_err(failed(Step::Fsync))?;
    Ok(new)
}

/// Rewrites the state file in place, for a directory heft may not write:
/// only the regular file `old` with one link, owned by root or this user,
/// opened without following a link. A crash meanwhile can leave it half-written.
fn in_place(place: &Place, old: Stat, bytes: &[u8]) -> Result<Seen, WriteError> {
    let step = Step::InPlace;
    let (f, st) = file::open_at(
        place.dir(),
        &place.name,
        OFlag::O_WRONLY | OFlag::O_NOFOLLOW,
    )
    .map_err(failed(step))?;
    if st.id != old.id || st.links != 1 || st.uid != 0 && st.uid != os::euid() {
        return Err(WriteError(step, Some(Errno::EPERM)));
    }
    let fd = f.as_fd();
    os::write_all(fd, bytes)
        .and_then(|_| file::truncate(fd, bytes.len()))
        .and_then(|_| fsync(&f))
        .map_err(failed(step))?;
    Ok(Seen::of(&st, bytes))
}

/// The agent's pid file, write-locked for as long as the agent runs, so
/// that `heft set` can tell which process serves it.
pub struct PidFile {
    place: Place,
    /// Open for as long as the lock is to be held.
    _fd: Fd,
}

impl PidFile {
    /// Creates the pid file at `path` exclusively, or takes over a stale one
    /// (a regular file with one link, owned by this user, that no process
    /// holds), locks it and writes this process's id.
    pub fn create(path: &Path) -> Result<PidFile, Errno> {
        let place = Place::open_in(CWD, path)?;
        let fd = match file::create_new_at(place.dir(), &place.name) {
            Err(Errno::EEXIST) => {
                let (fd, st) =
                    file::open_at(place.dir(), &place.name, OFlag::O_RDWR | OFlag::O_NOFOLLOW)?;
                if st.links != 1 || st.uid != os::euid() {
                    return Err(Errno::EPERM);
                }
                fd
            }
            r => r?,
        };
        let f = fd.as_fd();
        file::lock(f).map_err(|_| Errno::EAGAIN)?;
        let mut d = [b'\n'; 11];
        // The digits end right before the newline.
        let [digits @ .., _] = &mut d;
        let n = crate::num::fmt_u32(os::pid(), digits).len();
        file::truncate(f, 0)?;
        file::fchmod(f, 0o644)?;
        os::write_all(f, &d[10 - n..])?;
        Ok(PidFile { place, _fd: fd })
    }

    /// Removes the pid file's name (no other agent can have taken it over
    /// while this one held the lock).
    pub fn remove(self) {
        let _ = file::remove_at(self.place.dir(), &self.place.name);
    }
}

/// Why `heft set` did not signal the process a pid file names.
#[derive(Debug, PartialEq, Eq)]
pub enum NotAgent {
    /// The pid file could not be opened or read.
    Unreadable(Errno),
    /// No process holds its lock: no agent runs with it.
    Stale,
    /// The lock holder is not the pid the file names.
    Other(u32),
}

/// Returns the pid of the agent serving pid file `path`: the process that
/// holds its lock and that it names (`/proc` is not consulted: under
/// qemu-user it shows qemu).
pub fn agent_pid(path: &Path) -> Result<u32, NotAgent> {
    let (fd, _) = file::open_at(CWD, path, OFlag::O_RDONLY | OFlag::O_NOFOLLOW)
        .map_err(NotAgent::Unreadable)?;
    let mut text = [0u8; 16];
    let n = file::read_full(&fd, &mut text).map_err(NotAgent::Unreadable)?;
    let named = text[..n]
        .split(|c| c.is_ascii_whitespace())
        .next()
        .and_then(crate::num::parse_u32);
    match file::lock_holder(fd.as_fd()).map_err(NotAgent::Unreadable)? {
        None => Err(NotAgent::Stale),
        Some(h) if Some(h) == named => Ok(h),
        Some(h) => Err(NotAgent::Other(h)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary one, with `state.json` in it.
    fn place(tag: &str) -> (std::path::PathBuf, Place) {
        let dir = std::env::temp_dir().join(format!("heft-persist-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        std::fs::write(&path, r#"{"status":"UP"}"#).unwrap();
        let p = Place::find(&path).unwrap();
        (dir, p)
    }

    #[test]
    fn unchanged_tells_a_change_from_a_file_it_cannot_read() {
        let (dir, p) = place("unchanged");
        let mut buf = [0u8; FILE_MAX + 1];
        let mut seen = Seen::default();
        read(&p, &mut buf, &mut seen).unwrap();
        assert_eq!(unchanged(&p, seen, &mut buf), Ok(true));
        std::fs::write(dir.join("state.json"), r#"{"status":"DOWN"}"#).unwrap();
        assert_eq!(unchanged(&p, seen, &mut buf), Ok(false));
        // Not a regular file: it cannot be read, which says nothing of a change.
        std::fs::remove_file(dir.join("state.json")).unwrap();
        nix::unistd::mkfifo(
            &dir.join("state.json"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        assert_eq!(unchanged(&p, seen, &mut buf), Err(Errno::ESPIPE));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
