//! Sockets: the agent's listener and connections, outgoing TCP checks, the
//! syslog socket.

use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, FromRawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{
    self, sockopt, AddressFamily, Backlog, MsgFlags, Shutdown, SockFlag, SockType, SockaddrStorage,
    UnixAddr,
};

use super::Fd;

/// Opens a non-blocking, close-on-exec TCP socket for `ip`'s family.
pub fn tcp_socket(ip: IpAddr) -> Result<Fd, Errno> {
    let family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    socket::socket(family, SockType::Stream, flags, None)
}

/// Lets a restarted agent bind over connections of its predecessor still in TIME_WAIT.
pub fn set_reuse_addr(fd: &Fd) -> Result<(), Errno> {
    socket::setsockopt(fd, sockopt::ReuseAddr, &true)
}

/// Makes an IPv6 socket also take IPv4 (false) or not (true).
pub fn set_v6_only(fd: &Fd, only: bool) -> Result<(), Errno> {
    socket::setsockopt(fd, sockopt::Ipv6V6Only, &only)
}

/// Lets `fd` bind an address the host does not have yet (`IP_FREEBIND`, which
/// Linux applies to IPv6 sockets too): at boot, DHCP or a bridge may bring it later.
pub fn set_freebind(fd: &Fd) -> Result<(), Errno> {
    socket::setsockopt(fd, sockopt::IpFreebind, &true)
}

/// The socket address of `ip`:`port`, with the interface index `scope` for
/// IPv6, as bind(2) and connect(2) take it: built in one place rather than
/// in each of them.
#[inline(never)]
fn sockaddr(ip: IpAddr, port: u16, scope: u32) -> SockaddrStorage {
    SockaddrStorage::from(match ip {
        IpAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(a, port)),
        IpAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(a, port, 0, scope)),
    })
}

/// Binds `fd` to `ip`:`port`, on the interface `scope` (0: any) for IPv6.
pub fn bind(fd: &Fd, ip: IpAddr, port: u16, scope: u32) -> Result<(), Errno> {
    socket::bind(fd.as_raw_fd(), &sockaddr(ip, port, scope))
}

/// Starts connecting `fd` to `ip`:`port`; `EINPROGRESS` while a non-blocking connect runs.
pub fn connect(fd: &Fd, ip: IpAddr, port: u16) -> Result<(), Errno> {
    connect_scoped(fd, ip, port, 0)
}

/// Like `connect`, through the interface `scope` (0: any) for IPv6.
pub fn connect_scoped(fd: &Fd, ip: IpAddr, port: u16, scope: u32) -> Result<(), Errno> {
    socket::connect(fd.as_raw_fd(), &sockaddr(ip, port, scope))
}

/// Starts listening on `fd`, with room for as many connections not yet
/// accepted as the kernel allows (`net.core.somaxconn`: 4096 since Linux
/// 5.4, 128 before).
pub fn listen(fd: &Fd) -> Result<(), Errno> {
    socket::listen(fd, Backlog::MAXALLOWABLE)
}

/// Accepts one connection as a non-blocking, close-on-exec descriptor, with the peer's address.
///
/// libc's accept4, not nix's: nix's drops the peer's address, and asking for
/// it again (getpeername) would cost a system call per probe.
pub fn accept(listener: &Fd) -> Result<(Fd, Option<IpAddr>), Errno> {
    // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
    let mut len = core::mem::size_of_val(&addr) as libc::socklen_t;
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    let p = (&mut addr as *mut libc::sockaddr_storage).cast::<libc::sockaddr>();
    // SAFETY: `addr` and `len` are live and describe a buffer of `len` bytes.
    let raw = Errno::result(unsafe { libc::accept4(listener.as_raw_fd(), p, &mut len, flags) })?;
    // SAFETY: accept4 just returned this descriptor; nothing else owns it.
    let fd = unsafe { Fd::from_raw_fd(raw) };
    Ok((fd, peer_ip(&addr, len as usize)))
}

/// Reads the IP address out of a peer address of `len` bytes that the
/// kernel wrote; none if it is not a whole IPv4 or IPv6 address.
fn peer_ip(addr: &libc::sockaddr_storage, len: usize) -> Option<IpAddr> {
    let p: *const libc::sockaddr_storage = addr;
    match addr.ss_family as i32 {
        libc::AF_INET if len >= core::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the kernel wrote a whole sockaddr_in there (family and
            // length say so), and sockaddr_storage is aligned for any sockaddr.
            let a = unsafe { &*p.cast::<libc::sockaddr_in>() };
            Some(IpAddr::from(a.sin_addr.s_addr.to_ne_bytes()))
        }
        libc::AF_INET6 if len >= core::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for a whole sockaddr_in6.
            let a = unsafe { &*p.cast::<libc::sockaddr_in6>() };
            Some(IpAddr::from(a.sin6_addr.s6_addr))
        }
        _ => None,
    }
}

/// Takes the error a non-blocking connect ended with; `Ok` if it connected.
/// A send of no bytes returns that error as `SO_ERROR` would (TCP checks
/// the connection before it looks at the length), and sends nothing.
pub fn connect_result(fd: &Fd) -> Result<(), Errno> {
    send(fd, &[]).map(drop)
}

/// Sends bytes without raising SIGPIPE; returns how many were taken.
pub fn send(fd: &Fd, buf: &[u8]) -> Result<usize, Errno> {
    socket::send(fd.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL)
}

/// Sends the last bytes of a connection, which is closed or shut down for
/// writing right after: MSG_MORE holds them until then, so the reply and the
/// FIN leave in one segment and wake the peer once.
pub fn send_last(fd: &Fd, buf: &[u8]) -> Result<usize, Errno> {
    socket::send(
        fd.as_raw_fd(),
        buf,
        // nix names no MSG_MORE.
        MsgFlags::MSG_NOSIGNAL | MsgFlags::from_bits_retain(libc::MSG_MORE),
    )
}

/// Reads what has arrived, without waiting; 0 means the peer closed.
pub fn recv(fd: &Fd, buf: &mut [u8]) -> Result<usize, Errno> {
    socket::recv(fd.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT)
}

/// Closes the write side, so the peer sees the end of the reply.
pub fn shutdown_write(fd: &Fd) -> Result<(), Errno> {
    socket::shutdown(fd.as_fd().as_raw_fd(), Shutdown::Write)
}

/// Opens a non-blocking datagram socket connected to the syslog socket at `path`.
pub fn connect_syslog(path: &Path) -> Result<Fd, Errno> {
    // Through `fs::c`: nix's own path copy would bring a heap fallback.
    let addr = UnixAddr::new(super::fs::c(path, &mut [0; 1024])?)?;
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    socket::connect(fd.as_raw_fd(), &addr)?;
    Ok(fd)
}
