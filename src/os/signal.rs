//! Signals: handlers that record what arrived, an eventfd that wakes
//! `poll`, and sending signals.
//!
//! The handlers and the loop share atomics with plain loads and stores, never
//! a read-modify-write: ARMv6 in Thumb mode has no atomic swap, and one
//! thread needs none. A handler cannot be interrupted by another of ours
//! (each blocks them all). SIGUSR1/SIGUSR2 store, in one word, which of the
//! two came last and a count of both; the loop acts when the count differs
//! from the one it last saw, so no signal is lost between its read and its
//! bookkeeping. SIGHUP is a flag the loop clears *before* acting on it, so a
//! SIGHUP that lands meanwhile causes one more reload, never none.

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::os::fd::{BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::Pid;

use super::Fd;

/// Count of SIGUSR1/SIGUSR2 << 8 | the last one's number.
static USER: AtomicU32 = AtomicU32::new(0);
/// The count in USER that the loop last took (only the loop touches it).
static USER_SEEN: AtomicU32 = AtomicU32::new(0);
/// Whether SIGHUP arrived since the loop last looked.
static HUP: AtomicBool = AtomicBool::new(false);
/// Whether SIGTERM or SIGINT arrived.
static STOP: AtomicBool = AtomicBool::new(false);
/// The eventfd the handlers write to wake `poll`, or -1.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// The ordering every atomic here uses (see above).
const R: Ordering = Ordering::Relaxed;

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work: atomic stores and one write(2), with the
    // errno the interrupted code may be about to read kept as it was.
    match sig {
        libc::SIGUSR1 | libc::SIGUSR2 => {
            USER.store((USER.load(R) >> 8).wrapping_add(1) << 8 | sig as u32, R);
        }
        libc::SIGHUP => HUP.store(true, R),
        _ => STOP.store(true, R),
    }
    let fd = WAKE_FD.load(R);
    if fd >= 0 {
        let errno = Errno::last_raw();
        // SAFETY: the handlers' eventfd stays open for the whole process (`install`).
        let wake = unsafe { BorrowedFd::borrow_raw(fd) };
        // Adds one to its counter; a full counter (EAGAIN) is fine: the loop is awake already.
        let _ = nix::unistd::write(wake, &1u64.to_ne_bytes());
        Errno::set_raw(errno);
    }
}

/// SIGUSR1 or SIGUSR2.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UserSignal {
    /// SIGUSR1.
    Usr1,
    /// SIGUSR2.
    Usr2,
}

/// What the signal handlers recorded since the last call.
#[derive(Default, Clone, Copy, Debug)]
pub struct Signals {
    /// The last of SIGUSR1 and SIGUSR2 to arrive, if any did.
    pub user: Option<UserSignal>,
    /// How many SIGUSR1 and SIGUSR2 arrived (modulo 2^24).
    pub user_count: u32,
    /// Whether SIGHUP arrived.
    pub hup: bool,
    /// Whether SIGTERM or SIGINT ever arrived.
    pub stop: bool,
}

impl Signals {
    /// Tells whether any signal arrived.
    pub fn any(&self) -> bool {
        self.user.is_some() || self.hup || self.stop
    }
}

/// Takes what the handlers recorded, leaving nothing pending; costs no system call.
pub fn take() -> Signals {
    let user = USER.load(R);
    let seen = USER_SEEN.load(R);
    let mut s = Signals::default();
    if user >> 8 != seen {
        USER_SEEN.store(user >> 8, R);
        s.user_count = (user >> 8).wrapping_sub(seen) & 0xff_ffff;
        s.user = match (user & 0xff) as libc::c_int {
            libc::SIGUSR1 => Some(UserSignal::Usr1),
            _ => Some(UserSignal::Usr2),
        };
    }
    s.hup = HUP.load(R);
    if s.hup {
        HUP.store(false, R);
    }
    s.stop = STOP.load(R);
    s
}

/// Tells whether a handler recorded anything not yet taken; costs no system call.
pub fn pending() -> bool {
    USER.load(R) >> 8 != USER_SEEN.load(R) || HUP.load(R) || STOP.load(R)
}

/// Installs the handlers for SIGUSR1, SIGUSR2, SIGHUP, SIGTERM and SIGINT,
/// and returns a descriptor of the eventfd they write, for `poll`.
///
/// SA_RESTART makes every other blocking call resume by itself, so the one
/// place that sees EINTR is `poll`.
pub fn install() -> Result<Fd, Errno> {
    let w = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
    let w = OwnedFd::from(w).into_raw_fd();
    // This descriptor lives for the whole process: a handler may use it at
    // any time. The loop gets a copy of its own.
    WAKE_FD.store(w, R);
    // SAFETY: `w` stays open for the whole process.
    let copy = fcntl(
        unsafe { BorrowedFd::borrow_raw(w) },
        FcntlArg::F_DUPFD_CLOEXEC(0),
    )?;
    // SAFETY: fcntl just made this descriptor, and nothing else owns it.
    let r = unsafe { Fd::from_raw_fd(copy) };
    let ours = [
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGHUP,
        Signal::SIGTERM,
        Signal::SIGINT,
    ];
    // Each handler blocks every signal it can while it runs, so handlers never nest.
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::all(),
    );
    for sig in ours {
        // SAFETY: the handler only touches atomics and errno and calls write(2).
        unsafe { signal::sigaction(sig, &action) }?;
    }
    Ok(r)
}

/// Resets the eventfd's counter after it woke `poll`.
pub fn drain_wake(fd: &Fd) {
    let _ = super::read(fd, &mut [0u8; 8]);
}

/// Sends signal number `sig` to process `pid`.
pub fn kill(pid: i32, sig: i32) -> Result<(), Errno> {
    signal::kill(Pid::from_raw(pid), Signal::try_from(sig)?)
}
