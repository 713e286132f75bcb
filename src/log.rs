//! Writes one line per event to stderr or the local syslog, without `core::fmt`.
//!
//! A line is built, prefix first, in one fixed buffer and leaves in one
//! `write(2)` (or one datagram), so lines from one process never interleave.
//! Text past 256 bytes is cut, and the text then ends in `...`.
//!
//! Logging never blocks the agent: a line its reader cannot take at once is
//! dropped and counted, and the next line that gets through says how many
//! were lost. Short-lived commands (`heft set`) and start-up wait up to a
//! second for a slow reader first.

use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU8, Ordering};
use std::os::fd::{AsFd, BorrowedFd};

use crate::num;
use crate::os;

/// How much is logged: errors only, events (the default), or every sample and probe.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
#[repr(u8)]
pub enum Level {
    /// Something failed.
    Error = 0,
    /// A state change, start-up or shutdown.
    Info = 1,
    /// Detail for `-v`.
    Debug = 2,
}

/// The most detailed level written, as a `Level`.
static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
/// The connected syslog socket, once there is one; until then, stderr.
static SYSLOG: os::fd::StaticFd = os::fd::StaticFd::new();
/// The pid shown in syslog lines.
static PID: AtomicI32 = AtomicI32::new(0);
/// How long a line waits for its reader, in milliseconds.
static WAIT_MS: AtomicI32 = AtomicI32::new(1000);
/// Lines dropped since `take_dropped` last took them.
static DROPPED: AtomicU32 = AtomicU32::new(0);
/// Lines dropped since a line last got through.
static UNSAID: AtomicU32 = AtomicU32::new(0);

/// Sets how long a line may wait for its reader (0 for the agent: never).
pub fn set_wait(ms: i32) {
    WAIT_MS.store(ms, Ordering::Relaxed);
}

/// Returns how many lines were dropped since the last call, and starts again from 0.
pub fn take_dropped() -> u32 {
    // Plain loads and stores (ARMv6's Thumb code has no compare-and-swap):
    // one thread logs, and signal handlers never do.
    let n = DROPPED.load(Ordering::Relaxed);
    DROPPED.store(0, Ordering::Relaxed);
    n
}

/// Sets the most detailed level that is written.
pub fn set_level(l: Level) {
    LEVEL.store(l as u8, Ordering::Relaxed);
}

/// Sends every later line to the connected syslog socket `fd` as `pid`.
pub fn use_syslog(fd: os::Fd, pid: i32) {
    PID.store(pid, Ordering::Relaxed);
    SYSLOG.set(fd);
}

/// Tells whether lines of level `l` are written.
pub fn enabled(l: Level) -> bool {
    l as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Room for the longest prefix, `<31>heft[4294967295]: `.
const PREFIX_MAX: usize = 22;
/// The most bytes of text after the prefix.
const TEXT_MAX: usize = 256;

/// One log line under construction, already holding its prefix.
///
/// Its methods append in place and return the line, so that a chain such as
/// `log::info().s("x").u(1).send()` builds it in one stack slot, never
/// copying it.
pub struct Line {
    /// The prefix, the text, and room for stderr's newline.
    buf: heapless::Vec<u8, { PREFIX_MAX + TEXT_MAX + 1 }>,
    /// Where the text must stop: the prefix's length plus `TEXT_MAX`.
    end: usize,
    /// The syslog socket the prefix was written for, or None for stderr.
    fd: Option<BorrowedFd<'static>>,
    /// The level, checked when the line is sent.
    level: Level,
}

/// Starts an error line.
pub fn error() -> Line {
    Line::new(Level::Error)
}

/// Starts an event line.
pub fn info() -> Line {
    Line::new(Level::Info)
}

/// Starts a detail line (shown with `-v`).
pub fn debug() -> Line {
    Line::new(Level::Debug)
}

impl Line {
    /// Starts a line with its prefix: `heft: ` on stderr, `<prio>heft[pid]: ` to syslog.
    fn new(level: Level) -> Line {
        let fd = SYSLOG.get();
        let mut l = Line {
            buf: heapless::Vec::new(),
            end: PREFIX_MAX + TEXT_MAX,
            fd,
            level,
        };
        if fd.is_some() {
            // RFC 3164 without a timestamp (syslogd adds it): facility daemon (3).
            // `<27>heft[`, `<30>heft[` or `<31>heft[` by level: one string
            // sliced (a match over three arrays is larger on MIPS).
            l.b(&b"<27>heft[<30>heft[<31>heft["[level as usize * 9..][..9])
                .u(PID.load(Ordering::Relaxed) as u32)
                .s("]: ");
        } else {
            l.s("heft: ");
        }
        l.end = l.buf.len() + TEXT_MAX;
        if level == Level::Error {
            l.s("error: ");
        }
        l
    }

    /// Appends text.
    #[inline(always)]
    pub fn s(&mut self, s: &str) -> &mut Line {
        self.b(s.as_bytes())
    }

    /// Appends bytes, replacing anything that is not printable ASCII by `?`.
    #[inline(never)]
    pub fn b(&mut self, s: &[u8]) -> &mut Line {
        for &c in s {
            let c = if (0x20..0x7f).contains(&c) { c } else { b'?' };
            if self.buf.len() == self.end {
                // Cut: the last three bytes of text become `...`.
                self.buf.truncate(self.end - 3);
                return self.b(b"...");
            }
            let _ = self.buf.push(c);
        }
        self
    }

    /// Appends a number in decimal.
    #[inline(never)]
    pub fn u(&mut self, n: u32) -> &mut Line {
        self.b(num::fmt_u32(n, &mut [0; 10]))
    }

    /// Appends an OS error as its name and number, e.g. `EACCES (13)`, or
    /// `errno (123)` when heft has no name for it.
    #[inline(never)]
    pub fn errno(&mut self, e: nix::errno::Errno) -> &mut Line {
        self.s(os::errno_name(e).unwrap_or("errno"))
            .s(" (")
            .u(e as i32 as u32)
            .s(")")
    }

    /// Writes the line if its level is enabled, with a newline on stderr,
    /// in one write(2) or one datagram if its reader takes it in time; it
    /// ends saying how many lines before it were dropped, if any were.
    pub fn send(&mut self) {
        if !enabled(self.level) {
            return;
        }
        let unsaid = UNSAID.load(Ordering::Relaxed);
        if unsaid != 0 {
            self.s(" (").u(unsaid).s(" log lines dropped before)");
        }
        let stderr = std::io::stderr();
        let fd = self.fd.unwrap_or_else(|| {
            let _ = self.buf.push(b'\n');
            stderr.as_fd()
        });
        let sent = os::write_within(fd, &self.buf, WAIT_MS.load(Ordering::Relaxed));
        UNSAID.store(if sent { 0 } else { unsaid + 1 }, Ordering::Relaxed);
        if !sent {
            // Saturating: `take_dropped` takes them into a wider counter.
            let n = DROPPED.load(Ordering::Relaxed);
            DROPPED.store(n.saturating_add(1), Ordering::Relaxed);
        }
    }
}
