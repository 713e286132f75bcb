//! Runs the agent: one `poll(2)` loop over the listeners (agent and HTTP),
//! the signals' eventfd and a fixed table of connection slots.
//!
//! Each wake-up does bounded work: take signals, serve ready connections,
//! look again at those answered at accept, close expired ones, accept one
//! connection per listener, then write the state file if a signal changed
//! it. Serving a probe is accept, read what came with it, write a prepared
//! slice, then close if the client's bytes ended a line, else shut down the
//! write side and read until EOF before closing (so the client never gets an
//! RST). The clock is read only in a wake-up that needs it.

pub mod allow;
pub mod firstrun;
pub mod persist;
pub mod privs;

use std::ffi::OsStr;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

use crate::log;
use crate::model::agent::{Agent, LoadError};
use crate::os::{self, Fd};
use crate::proto::http::{self, Counter, Counters};
use crate::proto::request::{self, Request};
use crate::time::Instant;

/// The shortest time (ms) between two writes of the state file after signals.
const PERSIST_GAP_MS: u32 = 100;
/// How long (ms) to wait before writing the state file again after a failure.
const PERSIST_RETRY_MS: u32 = 5000;
/// How long (ms) to stop accepting after running out of descriptors or memory.
const ACCEPT_PAUSE_MS: u32 = 100;
/// The bytes kept of what a client sends first.
const FIRST_BYTES: usize = 96;

/// The most descriptors load feedback adds to the poll table.
#[cfg(feature = "feedback")]
const FEEDBACK_FDS: usize = crate::feedback::FDS_MAX;
/// Without load feedback: none.
#[cfg(not(feature = "feedback"))]
const FEEDBACK_FDS: usize = 0;

/// A step of start-up that failed, with its error.
#[derive(Debug)]
pub struct StartError {
    /// What was being done.
    pub step: &'static str,
    /// Why it failed.
    pub errno: Errno,
}

/// Makes the error of a failed start-up step from its name.
fn fail(step: &'static str) -> impl FnOnce(Errno) -> StartError {
    move |errno| StartError { step, errno }
}

/// Opens the listening socket: exclusive (no SO_REUSEPORT), dual-stack for
/// `::`, on the interface `scope` names for IPv6 (`ENODEV` while there is no
/// such interface), and bound even to an address the host does not have yet
/// (`IP_FREEBIND`).
pub fn listen(addr: IpAddr, port: u16, scope: &[u8]) -> Result<Fd, StartError> {
    let fd = os::tcp_socket(addr).map_err(fail("socket"))?;
    let scope = scope_id(scope).map_err(fail("interface"))?;
    // SO_REUSEADDR only lets us bind over TIME_WAIT leftovers after a restart;
    // Linux still refuses a second listener on the same address and port.
    os::net::set_reuse_addr(&fd).map_err(fail("setsockopt SO_REUSEADDR"))?;
    if addr.is_ipv6() {
        os::net::set_v6_only(&fd, false).map_err(fail("setsockopt IPV6_V6ONLY"))?;
    }
    // Without it (a kernel that refuses it), bind says whether the address is there.
    let _ = os::net::set_freebind(&fd);
    os::net::bind(&fd, addr, port, scope).map_err(fail("bind"))?;
    // The deepest queue the kernel allows: a flood's burst waits there
    // rather than having SYNs dropped (which costs a probe a second).
    os::net::listen(&fd).map_err(fail("listen"))?;
    Ok(fd)
}

/// The interface index an IPv6 scope names: a number as it is (as glibc
/// reads `%2`), else an interface's name, looked up in sysfs; 0 for none.
pub fn scope_id(scope: &[u8]) -> Result<u32, Errno> {
    match crate::num::parse_u32(scope) {
        Some(n) => Ok(n),
        None if scope.is_empty() => Ok(0),
        None => if_index(scope),
    }
}

/// The index of the interface `name`, from `/sys/class/net/NAME/ifindex`
/// (where iproute2 and udev read it too); `ENODEV` if there is no such
/// interface.
fn if_index(name: &[u8]) -> Result<u32, Errno> {
    // Interface names have at most 15 bytes and no `/`, which would lead
    // out of /sys/class/net.
    if name.len() > 15 || name.contains(&b'/') {
        return Err(Errno::ENODEV);
    }
    // The name goes over the 15 placeholders; `/ifindex` moves up behind it.
    let mut path = *b"/sys/class/net/_______________/ifindex";
    let end = 15 + name.len();
    path[15..end].copy_from_slice(name);
    path.copy_within(30.., end);
    let path = &path[..end + 8];
    let mut buf = [0; 12];
    let n = match os::fs::read(Path::new(OsStr::from_bytes(path)), &mut buf) {
        Err(Errno::ENOENT) => return Err(Errno::ENODEV),
        r => r?,
    };
    crate::num::parse_u32(buf[..n].trim_ascii_end()).ok_or(Errno::ENODEV)
}

/// Reads the state file in `place` (or the error finding it) as the agent does.
fn read_state(
    place: Result<&persist::Place, Errno>,
    buf: &mut [u8; crate::model::state::FILE_MAX + 1],
    seen: &mut persist::Seen,
) -> Result<crate::model::state::State, LoadError> {
    persist::read(place.map_err(LoadError::Io)?, buf, seen)
}

/// Reads the state file at `path` (named by `from`) once, as the agent
/// would, for `heft check`; logs what is wrong, as the agent would, and
/// returns false then.
pub fn check_state(path: &Path, from: &str) -> bool {
    let mut buf = [0u8; crate::model::state::FILE_MAX + 1];
    let place = persist::Place::find(path);
    match read_state(
        place.as_ref().map_err(|e| *e),
        &mut buf,
        &mut persist::Seen::default(),
    ) {
        Ok(_) => true,
        Err(e) => {
            state_error(path, from, e, "").send();
            false
        }
    }
}

/// The error line for the state file `path` (named by `from`) that could not
/// be used, ended by `end`: what to create when it is missing, else why.
pub fn state_error(path: &Path, from: &str, e: LoadError, end: &str) -> log::Line {
    let mut l = if e == LoadError::Io(Errno::ENOENT) {
        firstrun::missing(path, from)
    } else {
        let mut l = log::error();
        unreadable(&mut l, path, e);
        l
    };
    l.s(end);
    l
}

/// Appends `state file PATH: why` to `l`, for the state file `path` that
/// could not be used as `e` says (the agent's line and `heft set`'s).
#[inline(never)]
pub fn unreadable<'l>(l: &'l mut log::Line, path: &Path, e: LoadError) -> &'l mut log::Line {
    let mut why = crate::model::state::Reason::new();
    e.describe(&mut why);
    l.s("state file ")
        .b(path.as_os_str().as_encoded_bytes())
        .s(": ")
        .s(&why)
}

/// Where a connection is in its short life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Waiting (until `wait_until`) for a payload's first word or an HTTP request line.
    Await,
    /// Answered at accept and shut down for writing; not polled: read at the
    /// next wake-up, when the client has usually closed already.
    Linger,
    /// Answered and shut down for writing; polled and read until EOF.
    Drain,
}

/// One connection slot; 128 bytes, a power of two, so that finding a slot
/// in the table is a shift rather than a multiplication.
#[repr(align(128))]
struct Conn {
    fd: Fd,
    phase: Phase,
    /// Whether it came to the HTTP listener.
    http: bool,
    /// When the whole connection must be over; none for one answered at
    /// accept without reading the clock, until heft looks at it again.
    deadline: Option<Instant>,
    /// When to stop waiting for the first bytes.
    wait_until: Instant,
    /// The first bytes the client sent: `len` of them.
    first: [u8; FIRST_BYTES],
    /// How many of `first` were received.
    len: u8,
    /// Whether a read found the client's EOF: it sends nothing more.
    eof: bool,
}

/// Logs an error at most once per interval, with how many were skipped.
#[derive(Default)]
struct RateLimit {
    last: Option<Instant>,
    skipped: u32,
}

impl RateLimit {
    /// Sends `l`, ended with `before` and the count of lines skipped, unless one was sent in the last 10 s.
    fn send(&mut self, now: Instant, l: &mut log::Line, before: &str) {
        match self.last {
            Some(t) if now.since(t) < 10_000 => self.skipped += 1,
            _ => {
                self.last = Some(now);
                let skipped = core::mem::take(&mut self.skipped);
                l.s(before).u(skipped).s(" more since last logged)").send();
            }
        }
    }
}

/// The running agent.
pub struct Server<'a> {
    listener: Fd,
    /// The HTTP listener, when configured.
    http: Option<Fd>,
    wake: Fd,
    agent: Agent,
    state_file: &'a Path,
    /// The flag or variable that named the state file, for first-run errors.
    state_from: &'a str,
    /// The state file's directory and name, once found (see `persist::Place::find`).
    place: Option<persist::Place>,
    /// What was last read from or written to the state file.
    seen: persist::Seen,
    /// How many writes in a row found the directory locked.
    busy: u8,
    /// Room for the state file as read, and scratch space when writing it.
    read_buf: [u8; crate::model::state::FILE_MAX + 1],
    allow: &'a crate::server::allow::AllowList,
    wait_ms: u32,
    timeout_ms: u32,
    conns: Vec<Option<Conn>>,
    /// The signals' eventfd, the two listeners, each polled connection in slot order, then feedback's.
    pfds: Vec<libc::pollfd>,
    /// This wake-up's time, once read.
    clock: Option<Instant>,
    /// Whether ready windows may be running (`--ready-window`): the clock is read every wake-up.
    windowed: bool,
    /// Whether the poll's timeout is that of lingering connections; after
    /// the poll, whether it ran out, so that they have lingered `timeout_ms`.
    linger_bound: bool,
    /// When set, the state must be written, not before this time.
    persist_at: Option<Instant>,
    /// When the state file was last written.
    last_write: Option<Instant>,
    /// Accepting is paused until this time after EMFILE and friends.
    accept_paused_until: Option<Instant>,
    counters: Counters,
    accept_log: RateLimit,
    refuse_log: RateLimit,
    persist_log: RateLimit,
    /// Load feedback, when configured.
    #[cfg(feature = "feedback")]
    feedback: Option<Box<crate::feedback::Feedback>>,
}

/// What the loop takes from the command line.
pub struct Config<'a> {
    /// The JSON state file.
    pub state_file: &'a Path,
    /// The flag or variable that named the state file, for first-run errors.
    pub state_from: &'a str,
    /// Who may ask.
    pub allow: &'a allow::AllowList,
    /// How long `ready` is sent after start-up and each status change; `None`: always.
    pub ready_window_ms: Option<u32>,
    /// With services, how long to wait for a payload's first word.
    pub wait_ms: u32,
    /// How long a connection may stay open.
    pub timeout_ms: u32,
    /// How many connections are served at once.
    pub slots: u32,
}

impl<'a> Server<'a> {
    /// Builds the server around bound listeners (the agent's, HTTP's if
    /// configured); allocates everything it will ever use, failing (ENOMEM)
    /// rather than aborting when memory is short.
    pub fn new(
        cfg: Config<'a>,
        listener: Fd,
        http: Option<Fd>,
        wake: Fd,
    ) -> Result<Server<'a>, StartError> {
        let slots = cfg.slots as usize;
        let mut conns = Vec::new();
        let mut pfds = Vec::new();
        if conns.try_reserve_exact(slots).is_err()
            || pfds.try_reserve_exact(slots + 3 + FEEDBACK_FDS).is_err()
        {
            return Err(fail("allocating the connection slots")(Errno::ENOMEM));
        }
        conns.extend((0..slots).map(|_| None));
        Ok(Server {
            listener,
            http,
            wake,
            agent: Agent::new(cfg.ready_window_ms),
            state_file: cfg.state_file,
            state_from: cfg.state_from,
            place: None,
            seen: persist::Seen::default(),
            busy: 0,
            read_buf: [0; crate::model::state::FILE_MAX + 1],
            allow: cfg.allow,
            wait_ms: cfg.wait_ms,
            timeout_ms: cfg.timeout_ms,
            conns,
            pfds,
            clock: None,
            windowed: cfg.ready_window_ms.is_some(),
            linger_bound: false,
            persist_at: None,
            last_write: None,
            accept_paused_until: None,
            counters: Counters::default(),
            accept_log: RateLimit::default(),
            refuse_log: RateLimit::default(),
            persist_log: RateLimit::default(),
            #[cfg(feature = "feedback")]
            feedback: None,
        })
    }

    /// Adds load feedback, loaded at start-up.
    #[cfg(feature = "feedback")]
    pub fn set_feedback(&mut self, f: Box<crate::feedback::Feedback>) {
        self.feedback = Some(f);
    }

    /// This wake-up's time: the clock is read once, on first use.
    fn now(&mut self) -> Instant {
        *self.clock.get_or_insert_with(os::now)
    }

    /// Reads the state file (at start-up and on SIGHUP) and logs any failure with the path.
    fn load(&mut self, now: Instant) {
        self.seen = persist::Seen::default();
        let place = persist::Place::keep(&mut self.place, self.state_file);
        let mut loaded = read_state(place, &mut self.read_buf, &mut self.seen);
        if let Err(e) = loaded {
            self.counters[Counter::StateErrors] += 1;
            state_error(self.state_file, self.state_from, e, " (serving FAIL)").send();
            loaded = Err(firstrun::refine(self.state_file, e));
        }
        self.agent.load(loaded, now);
        self.persist_at = None;
    }

    /// Runs until SIGTERM or SIGINT; returns the exit code.
    #[inline(never)]
    pub fn run(&mut self) -> i32 {
        let now = self.now();
        self.load(now);
        let path = self.state_file;
        if !os::fs::writable(os::fs::dir_of(path)) && !os::fs::writable(path) {
            log::error()
                .s("the state file ")
                .b(self.state_file.as_os_str().as_encoded_bytes())
                .s(" and its directory are not writable by this user: signals will change the replies but not the file")
                .send();
        }
        loop {
            // The time read in this wake-up, if it was: what the loop did
            // since takes microseconds. A wake-up that needs no time reads
            // no clock, which is one system call per probe on targets
            // without a vDSO clock.
            let timeout = self.timeout();
            self.build_pollset();
            let polled = os::poll(&mut self.pfds, timeout);
            self.clock = None;
            let Ok(ready) = polled else {
                // EINVAL/ENOMEM: nothing to do but try again shortly.
                if let Err(e) = polled {
                    log::error().s("poll: ").errno(e).send();
                }
                let _ = os::poll(&mut [], 10);
                continue;
            };
            if self.pfds[0].revents != 0 {
                os::signal::drain_wake(&self.wake);
            }
            if self.signals() {
                break;
            }
            self.linger_bound &= ready == 0;
            self.service();
            self.expire();
            // The agent listener is at index 1, HTTP's at 2.
            for i in 1..3 {
                if self.pfds[i].revents != 0 {
                    self.accept(i == 2);
                }
            }
            #[cfg(feature = "feedback")]
            if self.feedback.is_some() {
                let now = self.now();
                if let Some(f) = self.feedback.as_mut() {
                    f.run(now, &self.pfds, &mut self.agent);
                }
            }
            self.persist_if_due();
        }
        self.shutdown();
        0
    }

    /// Ends the ready windows that are over and computes the poll timeout:
    /// the nearest deadline, window end or due write; -1 for none. Reads the
    /// clock only if one of them is set.
    fn timeout(&mut self) -> i32 {
        // u32::MAX for none: every wait found is at most i32::MAX.
        let mut next = u32::MAX;
        if self.windowed {
            let now = self.now();
            next = self.agent.tick(now);
        }
        let mut clock = self.clock;
        let mut lingering = false;
        let mut at = |t: Instant| next = next.min(clock.get_or_insert_with(os::now).until(t));
        for c in self.conns.iter().flatten() {
            match (c.phase, c.deadline) {
                (Phase::Await, _) => at(c.wait_until),
                (_, Some(d)) => at(d),
                (_, None) => lingering = true,
            }
        }
        if let Some(t) = self.persist_at {
            at(t);
        }
        if let Some(t) = self.accept_paused_until {
            at(t);
        }
        #[cfg(feature = "feedback")]
        if let Some(t) = self.feedback.as_ref().and_then(|f| f.next_wake()) {
            at(t);
        }
        self.clock = clock;
        // A lingering connection was answered in the last wake-up: it may
        // linger `timeout_ms` from this poll on.
        self.linger_bound = lingering && self.timeout_ms <= next;
        if lingering {
            next = next.min(self.timeout_ms);
        }
        i32::try_from(next).unwrap_or(-1)
    }

    /// Lists the fds to poll: the signals' eventfd, the agent and HTTP listeners (-1
    /// while not accepting or not configured), polled connections, feedback's.
    fn build_pollset(&mut self) {
        if let Some(t) = self.accept_paused_until {
            if self.now().reached(t) {
                self.accept_paused_until = None;
            }
        }
        // A negative fd is ignored by poll(2): the listeners stay in place at indexes 1 and 2.
        let mut fds = [self.wake.as_raw_fd(), -1, -1];
        if self.accept_paused_until.is_none() {
            fds[1] = self.listener.as_raw_fd();
            fds[2] = self.http.as_ref().map_or(-1, |l| l.as_raw_fd());
        }
        self.pfds.clear();
        let polled = self
            .conns
            .iter()
            .flatten()
            .filter(|c| c.phase != Phase::Linger);
        for fd in fds.into_iter().chain(polled.map(|c| c.fd.as_raw_fd())) {
            self.pfds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        #[cfg(feature = "feedback")]
        if let Some(f) = self.feedback.as_mut() {
            f.add_fds(&mut self.pfds);
        }
    }

    /// Applies what the signal handlers recorded; returns true when it is time to stop.
    fn signals(&mut self) -> bool {
        let s = os::signal::take();
        if !s.any() {
            return false;
        }
        let now = self.now();
        // SIGUSR1 asks for up, SIGUSR2 for down; the last one counts.
        let status = s.user.map(|u| match u {
            os::UserSignal::Usr1 => crate::model::state::Status::Up,
            os::UserSignal::Usr2 => crate::model::state::Status::Down,
        });
        if let Some(status) = status {
            self.agent.set_status(status, now);
            if self.agent.may_persist() {
                if self.persist_at.is_none() {
                    // The gap keeps a signal storm from turning into an fsync storm.
                    let gap_end = self.last_write.map_or(now, |t| t + PERSIST_GAP_MS);
                    let wait = now.until(gap_end).min(PERSIST_GAP_MS);
                    self.persist_at = Some(now + wait);
                }
            } else {
                log::error().s("not writing the state file: it could not be read; fix it and send SIGHUP, or use heft set").send();
            }
        }
        // After the signal: an edit made since (the operator's, with this
        // SIGHUP) is newer than the signal and wins over it.
        if s.hup {
            log::info()
                .s("SIGHUP: reading ")
                .b(self.state_file.as_os_str().as_encoded_bytes())
                .send();
            self.counters[Counter::Reloads] += 1;
            // A signal's state not yet written would be undone by reading the
            // old file: write it first; if that fails and the file is as it
            // was, keep it (and keep trying). A changed file wins.
            self.persist_now();
            let kept = self.persist_at.is_some()
                && self.place.as_ref().is_some_and(|p| {
                    persist::unchanged(p, self.seen, &mut self.read_buf[..]) == Ok(true)
                });
            if kept {
                log::error()
                    .s("the state file is unchanged and the signal's change is not saved yet: keeping it")
                    .send();
            } else {
                self.load(now);
            }
            #[cfg(feature = "feedback")]
            if let Some(f) = self.feedback.as_mut() {
                f.reload(now);
            }
        }
        s.stop
    }

    /// Writes a pending state change now, whatever the gap since the last write.
    #[inline(always)]
    fn persist_now(&mut self) {
        if self.persist_at.is_some() {
            self.persist_at = Some(self.now());
            self.persist_if_due();
        }
    }

    /// Writes the state file when a signal changed the state and the gap since the last write is over.
    fn persist_if_due(&mut self) {
        let Some(at) = self.persist_at else { return };
        let now = self.now();
        if !now.reached(at) {
            return;
        }
        let written = match persist::Place::keep(&mut self.place, self.state_file) {
            Ok(p) => persist::write(p, self.seen, self.agent.state(), &mut self.read_buf[..]),
            Err(e) => Err(persist::WriteError::dir(e)),
        };
        match written {
            Err(persist::CHANGED) => {
                log::info()
                    .s("state file ")
                    .b(self.state_file.as_os_str().as_encoded_bytes())
                    .s(" changed on disk since heft last read or wrote it: reading it; the signal's change is superseded")
                    .send();
                self.load(now);
            }
            Ok(seen) => {
                self.seen = seen;
                self.busy = 0;
                let skipped = self.persist_log.skipped;
                if self.persist_log.last.is_some() {
                    log::info()
                        .s("state file written again after ")
                        .u(skipped + 1)
                        .s(" failure(s)")
                        .send();
                    self.persist_log = RateLimit::default();
                }
                self.persist_at = None;
                self.last_write = Some(now);
            }
            // `heft set` holds the lock for a moment: try again after the gap, quietly at first.
            Err(e) if e == persist::BUSY && self.busy < 20 => {
                self.busy += 1;
                self.persist_at = Some(now + PERSIST_GAP_MS);
            }
            Err(e) => {
                self.counters[Counter::PersistErrors] += 1;
                let before = " (still serving the new state; retrying; ";
                self.persist_log
                    .send(now, &mut e.line(self.state_file), before);
                self.persist_at = Some(now + PERSIST_RETRY_MS);
            }
        }
    }

    /// Reads from every connection poll found ready, and from every one
    /// answered at accept (lingering, unpolled) since the last wake-up.
    ///
    /// Nothing opened, closed or stopped polling a connection since
    /// `build_pollset`, and `readable` closes at most the slot it reads, so
    /// the polled slots still match `pfds` from index 3 on, in order.
    fn service(&mut self) {
        let mut k = 3;
        for slot in 0..self.conns.len() {
            let Some(c) = &self.conns[slot] else { continue };
            if c.phase == Phase::Linger {
                self.readable(slot);
                continue;
            }
            debug_assert!(
                c.fd.as_raw_fd() == self.pfds[k].fd,
                "the pollset is out of step with the slots"
            );
            if self.pfds[k].revents != 0 {
                self.readable(slot);
            }
            k += 1;
        }
    }

    /// Reads what a connection sent and moves it along.
    fn readable(&mut self, slot: usize) {
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        if c.phase == Phase::Await {
            let done = match os::recv(&c.fd, &mut c.first[c.len as usize..]) {
                // Done at EOF (nothing read) or with the buffer full.
                Ok(n) => {
                    c.len += n as u8;
                    c.eof = n == 0;
                    c.eof || c.len as usize == FIRST_BYTES
                }
                Err(Errno::EAGAIN) => false,
                Err(_) => {
                    self.conns[slot] = None;
                    return;
                }
            };
            return self.answer(slot, done);
        }
        // The first bytes are answered: their buffer takes what follows.
        for _ in 0..4 {
            match os::recv(&c.fd, &mut c.first) {
                Ok(FIRST_BYTES) => continue,
                Ok(1..) | Err(Errno::EAGAIN) => break,
                Ok(0) | Err(_) => {
                    // EOF or reset: the client is done (ECONNRESET is HAProxy's normal close).
                    self.conns[slot] = None;
                    return;
                }
            }
        }
        // Answered at accept and still open at the next wake-up: polled from
        // now on, until EOF or `timeout_ms` from now; closed if it has
        // lingered that long already (the poll ran out waiting for it).
        if c.phase == Phase::Linger {
            if self.linger_bound {
                self.counters[Counter::Timeouts] += 1;
                self.conns[slot] = None;
            } else {
                c.phase = Phase::Drain;
                let now = *self.clock.get_or_insert_with(os::now);
                c.deadline = Some(now + self.timeout_ms);
            }
        }
    }

    /// Answers a waiting connection (any other is left alone) if its first
    /// bytes say enough (or `done`); without services, an agent probe is
    /// answered whatever came.
    fn answer(&mut self, slot: usize, done: bool) {
        // A probe accepted after a signal was sent must see the signal's state:
        // the handler ran before accept(2) returned, so its atomics are set.
        if os::signal::pending() {
            self.signals();
        }
        let want_word = !self.agent.state().services.is_empty();
        let Some(c) = self.conns[slot]
            .as_mut()
            .filter(|c| c.phase == Phase::Await)
        else {
            return;
        };
        let mut out = http::Response::new();
        let first = &c.first[..c.len as usize];
        let request = if c.http || want_word {
            request::classify(first, done, c.http)
        } else {
            Request::Agent(None)
        };
        let reply = match request {
            Request::Partial => return,
            Request::Agent(word) => {
                self.counters[Counter::Probes] += 1;
                self.agent.reply(word)
            }
            Request::Http { head, path } => {
                self.counters[Counter::Http] += 1;
                self.counters[Counter::LogDropped] += u64::from(log::take_dropped());
                http::respond(&mut out, head, path, &self.agent, &self.counters)
            }
        };
        let sent = os::send_last(&c.fd, reply);
        // A client whose EOF was read, or whose bytes end what it says (a
        // line for HAProxy's agent-send, an empty line for an HTTP request
        // head) and did not fill the buffer, has said all it will, so
        // nothing is left unread: closing now sends FIN, not RST, and saves
        // a shutdown, a poll and a read. Anything else is shut down for
        // writing and drained to EOF or the deadline.
        let end: &[u8] = if c.http { b"\n\r\n" } else { b"\n" };
        let said_all = c.eof || (first.len() < FIRST_BYTES && first.ends_with(end));
        // A failed send or shutdown is a reset: nothing more to do for it.
        if sent.is_ok() && !said_all && os::shutdown_write(&c.fd).is_ok() {
            // One answered at accept lingers unpolled: its client usually
            // closes before the next wake-up, where one read finds EOF.
            c.phase = if c.deadline.is_some() {
                Phase::Drain
            } else {
                Phase::Linger
            };
        } else {
            self.conns[slot] = None;
        }
    }

    /// Answers connections whose wait is over and closes those past their deadline.
    fn expire(&mut self) {
        for slot in 0..self.conns.len() {
            let Some(c) = &self.conns[slot] else { continue };
            let Some(deadline) = c.deadline else { continue };
            let (waiting, wait_until) = (c.phase == Phase::Await, c.wait_until);
            let now = self.now();
            if waiting && now.reached(wait_until) {
                self.answer(slot, true);
            }
            if self.conns[slot].is_some() && now.reached(deadline) {
                self.counters[Counter::Timeouts] += 1;
                self.conns[slot] = None;
            }
        }
    }

    /// Accepts one connection on the agent listener or, if `http`, the HTTP
    /// one, and reads what it already sent.
    ///
    /// One per wake-up: poll is level-triggered, so another waiting
    /// connection wakes the next poll at once, and no accept(2) is spent on
    /// EAGAIN. HAProxy's payload usually arrives with the connection, so it
    /// is read now rather than after another poll. Without services, an
    /// agent probe is answered now, whatever it sent.
    #[inline(never)]
    fn accept(&mut self, http: bool) {
        let listener = if http {
            self.http.as_ref()
        } else {
            Some(&self.listener)
        };
        let Some(listener) = listener else { return };
        match os::accept(listener) {
            Ok((fd, peer)) => {
                if let Some(ip) = peer.filter(|ip| !self.allow.allows(*ip)) {
                    self.counters[Counter::Refused] += 1;
                    let now = self.now();
                    let l = &mut log::info();
                    self.refuse_log
                        .send(now, l.s("refused a probe from ").b(&ip_text(ip)), " (");
                    return;
                }
                // Room is made (by closing or answering the connection that
                // has had its slot longest) only for a connection actually
                // accepted, never in advance.
                let Some(slot) = self.free_slot() else { return };
                self.conns[slot] = Some(Conn {
                    fd,
                    phase: Phase::Await,
                    http,
                    deadline: None,
                    wait_until: Instant::default(),
                    first: [0; FIRST_BYTES],
                    len: 0,
                    eof: false,
                });
                self.readable(slot);
                // Still waiting: its wait and deadline start now. An HTTP
                // client may take until the deadline to send its request line.
                let wait = if http { self.timeout_ms } else { self.wait_ms };
                if let Some(c) = self.conns[slot]
                    .as_mut()
                    .filter(|c| c.phase == Phase::Await)
                {
                    let now = *self.clock.get_or_insert_with(os::now);
                    c.deadline = Some(now + self.timeout_ms);
                    c.wait_until = now + wait;
                }
            }
            Err(Errno::EAGAIN) | Err(Errno::ECONNABORTED) | Err(Errno::EPROTO) => {}
            Err(e) => {
                // EMFILE, ENFILE, ENOMEM, ENOBUFS: free what we can, or pause briefly.
                self.counters[Counter::AcceptErrors] += 1;
                let now = self.now();
                let l = &mut log::error();
                self.accept_log
                    .send(now, l.s("accept: ").errno(e), " (pausing accepts; ");
                if self.evict_one().is_none() {
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE_MS);
                }
            }
        }
    }

    /// Finds a free slot, making one if all are taken (see `evict_one`).
    fn free_slot(&mut self) -> Option<usize> {
        let free = self.conns.iter().position(Option::is_none);
        free.or_else(|| self.evict_one())
    }

    /// Frees the slot of the connection that matters least: the answered one
    /// closest to its deadline (one answered at accept counts as the newest),
    /// else the one that has waited longest, answered now as if its wait
    /// were over. Returns the slot, none if every slot is free.
    ///
    /// So a flood of connections that send nothing, or send slowly, only
    /// ever pushes out its own oldest, and a probe always gets a slot.
    fn evict_one(&mut self) -> Option<usize> {
        // Every answered deadline is within `timeout_ms` (at most a minute)
        // and every wait within 10 s: a waiting connection's wait end, put
        // two minutes later, comes after all of them.
        let newest = self.now() + self.timeout_ms;
        let keys = self.conns.iter().enumerate().filter_map(|(i, c)| {
            let c = c.as_ref()?;
            let key = match c.phase {
                Phase::Await => c.wait_until + 120_000,
                _ => c.deadline.unwrap_or(newest),
            };
            Some((i, key))
        });
        let i = earliest(keys)?;
        self.answer(i, true);
        self.conns[i] = None;
        Some(i)
    }

    /// Stops: closes every connection, writes a pending state change, logs.
    fn shutdown(&mut self) {
        self.conns.clear();
        self.persist_now();
        let mut b = [0; 20];
        log::info()
            .s("stopping: ")
            .b(crate::num::fmt_u64(self.counters[Counter::Probes], &mut b))
            .s(" probes served")
            .send();
    }
}

/// Returns the slot of the earliest of `deadlines` (slot, deadline), none if there are none.
fn earliest(deadlines: impl Iterator<Item = (usize, Instant)>) -> Option<usize> {
    let mut first: Option<(usize, Instant)> = None;
    for (i, d) in deadlines {
        if first.is_none_or(|(_, f)| d.is_before(f)) {
            first = Some((i, d));
        }
    }
    first.map(|(i, _)| i)
}

/// Writes a client's address for the log, in the capacity `num::push_ip` already has for the listen address.
fn ip_text(ip: IpAddr) -> heapless::Vec<u8, 64> {
    let mut s = heapless::Vec::new();
    // An IPv4 client of a dual-stack listener reads better as IPv4.
    crate::num::push_ip(&mut s, canonical(ip));
    s
}

/// Returns the IPv4 address an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) stands for, as `IpAddr::to_canonical` does.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if u128::from(v6) >> 32 == 0xffff => {
            IpAddr::V4((u128::from(v6) as u32).into())
        }
        _ => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_numbers_or_interface_names_only() {
        let lo = std::fs::read_to_string("/sys/class/net/lo/ifindex").unwrap();
        assert_eq!(scope_id(b"lo"), Ok(lo.trim().parse().unwrap()));
        assert_eq!(scope_id(b"7"), Ok(7));
        assert_eq!(scope_id(b""), Ok(0));
        for name in [
            &b"heftnone0"[..],
            b"..",
            b".",
            b"lo/..",
            b"../net/lo",
            b"lo x",
            b"a:b",
            b"sixteen-bytes-xx",
        ] {
            assert_eq!(scope_id(name), Err(Errno::ENODEV), "{name:?}");
        }
    }

    #[test]
    fn evicts_the_earliest_deadline_across_the_wrap() {
        // Slot 1 expires just before the clock wraps, the others just after.
        let at = Instant::from_ms;
        let deadlines = [
            (0, at(3)),
            (1, at(u32::MAX - 2)),
            (2, at(1)),
            (4, at(u32::MAX)),
        ];
        assert_eq!(earliest(deadlines.into_iter()), Some(1));
        assert_eq!(earliest(deadlines[2..].iter().copied()), Some(4));
        assert_eq!(earliest([(3, at(7))].into_iter()), Some(3));
        assert_eq!(earliest(core::iter::empty()), None);
    }

    #[test]
    fn canonical_matches_std() {
        for s in [
            "::ffff:127.0.0.2",
            "::ffff:0.0.0.0",
            "::fffe:1.2.3.4",
            "::1.2.3.4",
            "1::ffff:1.2.3.4",
            "::1",
            "2001:db8::1",
            "10.0.0.1",
        ] {
            let ip: IpAddr = s.parse().unwrap();
            assert_eq!(canonical(ip), ip.to_canonical(), "{s}");
        }
    }
}
