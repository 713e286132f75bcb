//! Talking to an agent from a chosen source address (127.0.0.2, ::1, ...),
//! and asserting that it refuses a client without a reply.

use super::*;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

/// 127.0.0.1.
pub const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// ::1.
pub const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

/// Connects from source address `src` to `dst`.
pub fn connect_from(src: IpAddr, dst: SocketAddr) -> std::io::Result<TcpStream> {
    use nix::sys::socket::{self as ns, AddressFamily, SockFlag, SockType, SockaddrStorage};
    let fam = if dst.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = ns::socket(fam, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    ns::bind(
        fd.as_raw_fd(),
        &SockaddrStorage::from(SocketAddr::new(src, 0)),
    )?;
    ns::connect(fd.as_raw_fd(), &SockaddrStorage::from(dst))?;
    Ok(TcpStream::from(fd))
}

/// Connects from `src`, sends `payload`, returns every byte until EOF.
pub fn ask_from(src: IpAddr, dst: SocketAddr, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    exchange(connect_from(src, dst)?, payload)
}

/// Connects from `src` and asserts that the agent closes without sending a byte
/// (EOF, or a reset when the client had sent something unread).
pub fn assert_refused(src: IpAddr, dst: SocketAddr, payload: &[u8]) {
    let mut s = connect_from(src, dst).unwrap_or_else(|e| panic!("connect {src} -> {dst}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    if !payload.is_empty() {
        let _ = s.write_all(payload);
    }
    let mut out = Vec::new();
    let r = s.read_to_end(&mut out);
    assert!(
        out.is_empty(),
        "{src} was refused, yet got {:?}",
        String::from_utf8_lossy(&out)
    );
    match r {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("{src} -> {dst}: wanted a close without a reply, got {other:?}"),
    }
}

/// A reply as text; panics if it is not UTF-8.
pub fn text(b: Vec<u8>) -> String {
    String::from_utf8(b).expect("reply is not UTF-8")
}
