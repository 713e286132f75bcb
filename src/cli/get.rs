//! `heft get`: probes an agent the way HAProxy does and prints its reply line.
//!
//! Plain non-blocking sockets and `poll`, like the agent itself: std's
//! `TcpStream` with timeouts would cost more bytes than this whole file.

use std::os::fd::AsRawFd;

use nix::errno::Errno;

use crate::cli::Get;
use crate::os::Fd;
use crate::time::Instant;
use crate::{log, os};

/// Connects, sends the payload, prints the first line; 0 if a whole line came back, else 1.
pub fn run(g: &Get) -> i32 {
    let deadline = os::now() + g.timeout_ms;
    let fd = match connect(g, deadline) {
        Ok(fd) => fd,
        Err(e) => {
            // (ENODEV also stands for a file that is not regular in the log's names.)
            let mut l = log::error();
            match e {
                Errno::ENODEV => l.s("no interface ").b(&g.scope),
                e => l.s("connect: ").errno(e),
            }
            .send();
            return 1;
        }
    };
    let why = if !g.send.is_empty() && os::send(&fd, &g.send) != Ok(g.send.len()) {
        "could not send the payload"
    } else {
        let mut buf = [0u8; 4096];
        match read_line(&fd, &mut buf, deadline) {
            Some(line) => return if os::write_stdout(line) { 0 } else { 1 },
            None => "no whole line came back",
        }
    };
    log::error().s(why).send();
    1
}

/// Reads until a whole line is in `buf` and returns it, its CR or LF made a
/// newline; `None` if none came before `deadline`, the end or a full buffer.
fn read_line<'a>(fd: &Fd, buf: &'a mut [u8; 4096], deadline: Instant) -> Option<&'a [u8]> {
    let mut n = 0;
    while n < buf.len() && wait(fd, libc::POLLIN, deadline) {
        match os::recv(fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                if let Some(end) = buf[..n].iter().position(|&c| c == b'\n' || c == b'\r') {
                    buf[end] = b'\n';
                    return Some(&buf[..=end]);
                }
            }
            Err(Errno::EAGAIN) => {}
            Err(_) => break,
        }
    }
    None
}

/// Opens a non-blocking connection to the agent, waiting until `deadline` for it.
fn connect(g: &Get, deadline: Instant) -> Result<Fd, Errno> {
    let fd = os::tcp_socket(g.addr)?;
    let scope = crate::server::scope_id(&g.scope)?;
    match os::net::connect_scoped(&fd, g.addr, g.port, scope) {
        Ok(()) => Ok(fd),
        Err(Errno::EINPROGRESS) if !wait(&fd, libc::POLLOUT, deadline) => Err(Errno::ETIMEDOUT),
        Err(Errno::EINPROGRESS) => os::connect_result(&fd).map(|()| fd),
        Err(e) => Err(e),
    }
}

/// Waits until `fd` has `events` or `deadline` passes; false on timeout.
fn wait(fd: &Fd, events: i16, deadline: Instant) -> bool {
    loop {
        let left = os::now().until(deadline);
        if left == 0 {
            return false;
        }
        let mut p = [libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        }];
        match os::poll(&mut p, left as i32) {
            Ok(0) => {} // a signal or the timeout: look at the clock again
            Ok(_) => return true,
            Err(_) => return false,
        }
    }
}
