//! `heft get`: probes an agent the way HAProxy does and prints its reply line.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::cli::Get;
use crate::log;

/// Connects, sends the payload, prints the first line; 0 if a whole line came back, else 1.
pub fn run(g: &Get) -> i32 {
    let start = Instant::now();
    let total = Duration::from_millis(g.timeout_ms as u64);
    let addr = SocketAddr::new(g.addr, g.port);
    let mut s = match TcpStream::connect_timeout(&addr, total) {
        Ok(s) => s,
        Err(e) => {
            log::error().s("connect: ").errno(errno(&e)).send();
            return 1;
        }
    };
    if !g.send.is_empty() && s.write_all(&g.send).is_err() {
        log::error().s("could not send the payload").send();
        return 1;
    }
    let mut buf = [0u8; 4096];
    let mut n = 0;
    while n < buf.len() {
        let left = total.saturating_sub(start.elapsed());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                n += k;
                if let Some(end) = buf[..n].iter().position(|&c| c == b'\n' || c == b'\r') {
                    let _ = std::io::stdout().write_all(&buf[..end]);
                    let _ = std::io::stdout().write_all(b"\n");
                    return 0;
                }
            }
        }
    }
    log::error().s("no whole line came back").send();
    1
}

fn errno(e: &std::io::Error) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0))
}
