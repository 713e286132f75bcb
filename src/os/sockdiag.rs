//! Counts established TCP connections to a local port, IPv4 and IPv6, with
//! the kernel's `NETLINK_SOCK_DIAG` (inet_diag) dump, as
//! `ss -tn state established '( sport = :PORT )'` does.
//!
//! The kernel does the filtering: a state mask (ESTABLISHED only) and a
//! two-instruction bytecode (local port ≥ PORT, local port ≤ PORT, which
//! every kernel since 2.6 understands) mean only the matching sockets are
//! copied out, one ~100-byte message each. Other sockets on the host cost a
//! hash-table walk in the kernel and nothing here. Reading stops at
//! `COUNT_MAX` matches, so one count reads at most about 6.5 MB, and a
//! count is non-blocking throughout: the kernel fills each reply during the
//! `send` or `recv` that asks for it.
//!
//! No `unsafe`: nix wraps the netlink socket, and messages are read field by
//! field from bytes in the kernel's (native) byte order.

use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType};

/// The count at which a count stops reading (it then reports this).
pub const COUNT_MAX: u32 = 65_535;

/// The size of a request: netlink header, `inet_diag_req_v2`, the bytecode attribute.
const REQUEST_LEN: usize = 16 + 56 + 4 + 16;
/// `SOCK_DIAG_BY_FAMILY`, the message type of requests and of each socket's reply.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLMSG_ERROR`.
const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
const NLMSG_DONE: u16 = 3;
/// `TCP_ESTABLISHED`, as the kernel numbers TCP states.
const TCP_ESTABLISHED: u8 = 1;

/// The dump request for established TCP sockets, without its family
/// (byte 16) and port (bytes 24, 82 and 90).
const REQUEST: [u8; REQUEST_LEN] = {
    let mut r = [0u8; REQUEST_LEN];
    let mut i = 0;
    // nlmsghdr: length, type, flags (NLM_F_REQUEST | NLM_F_DUMP), sequence
    // and port id 0. inet_diag_req_v2: family, protocol, no extensions, the
    // state mask, the socket id (its local port is set per request). nlattr
    // INET_DIAG_REQ_BYTECODE (1), 20 bytes. Then two inet_diag_bc_op pairs
    // {code, yes, no} {0, 0, port}: S_GE (2) and S_LE (3); `yes` goes to the
    // next instruction, `no` 4 bytes past the end, which rejects.
    let fields = [
        (0, REQUEST_LEN as u32, 4),
        (4, SOCK_DIAG_BY_FAMILY as u32, 2),
        (6, 0x301, 2),
        (17, libc::IPPROTO_TCP as u32, 1),
        (20, 1 << TCP_ESTABLISHED, 4),
        (72, 20, 2),
        (74, 1, 2),
        (76, 2, 1),
        (77, 8, 1),
        (78, 20, 2),
        (84, 3, 1),
        (85, 8, 1),
        (86, 12, 2),
    ];
    while i < fields.len() {
        let (at, v, n) = fields[i];
        let b = v.to_ne_bytes();
        // The low `n` bytes of `v`, in native order.
        let lo = if cfg!(target_endian = "big") {
            4 - n
        } else {
            0
        };
        let mut k = 0;
        while k < n {
            r[at + k] = b[lo + k];
            k += 1;
        }
        i += 1;
    }
    r
};

/// Builds the dump request for `family`'s established TCP sockets whose local port is `port`.
fn request(family: u8, port: u16) -> [u8; REQUEST_LEN] {
    let mut r = REQUEST;
    r[16] = family;
    // The socket id's local port: kernels that filter dumps on it skip the
    // bytecode for other ports (and older ones ignore it).
    r[24..26].copy_from_slice(&port.to_be_bytes());
    let p = port.to_ne_bytes();
    r[82..84].copy_from_slice(&p);
    r[90..92].copy_from_slice(&p);
    r
}

/// Reads a native-endian u32 from the first 4 bytes of `b`.
fn u32_at(b: &[u8]) -> u32 {
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

/// Counts established TCP connections, IPv4 and IPv6, whose local port is
/// `port`, up to `COUNT_MAX`; `buf` (8 KiB is plenty) takes the replies.
pub fn count_established(port: u16, buf: &mut [u8]) -> Result<u32, Errno> {
    let fd = socket::socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )?;
    let fd = fd.as_raw_fd();
    let mut count = 0;
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        socket::send(fd, &request(family, port), MsgFlags::empty())?;
        loop {
            let len = socket::recv(fd, buf, MsgFlags::MSG_DONTWAIT)?;
            let mut rest = buf.get(..len).unwrap_or_default();
            if rest.is_empty() {
                return Err(Errno::EBADMSG);
            }
            // Every message heft reads has at least 20 bytes: a header and
            // an error code, or the first bytes of an `inet_diag_msg`.
            while rest.len() >= 20 {
                let msg_len = u32_at(rest) as usize;
                if msg_len < 20 || msg_len > rest.len() {
                    return Err(Errno::EBADMSG);
                }
                match u16::from_ne_bytes([rest[4], rest[5]]) {
                    NLMSG_DONE => break,
                    NLMSG_ERROR => return Err(Errno::from_raw(-(u32_at(&rest[16..]) as i32))),
                    // inet_diag_msg: family, state, timer, retransmits, then
                    // the local port in network byte order. Checked again
                    // here, so a kernel that ignored the filter counts right.
                    SOCK_DIAG_BY_FAMILY
                        if rest[17] == TCP_ESTABLISHED
                            && rest.get(20..22) == Some(&port.to_be_bytes()[..]) =>
                    {
                        count += 1;
                        if count >= COUNT_MAX {
                            return Ok(COUNT_MAX);
                        }
                    }
                    _ => {}
                }
                rest = rest.get((msg_len + 3) & !3..).unwrap_or_default();
            }
            // The loop above ends early only at NLMSG_DONE.
            if rest.len() >= 20 {
                break;
            }
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn counts_connections_to_a_port_in_both_families() {
        let mut buf = [0u8; 8192];
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        // The same port on ::1, where the host has IPv6.
        let v6 = TcpListener::bind(("::1", port)).ok();
        assert_eq!(count_established(port, &mut buf), Ok(0));
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(TcpStream::connect(("127.0.0.1", port)).unwrap());
        }
        if v6.is_some() {
            for _ in 0..3 {
                held.push(TcpStream::connect(("::1", port)).unwrap());
            }
        }
        // Accepted or still queued, each is established on the server side;
        // the clients' own sockets have other local ports.
        let want = held.len() as u32;
        assert_eq!(count_established(port, &mut buf), Ok(want));
        // A connection to another port does not count.
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let _o = TcpStream::connect(other.local_addr().unwrap()).unwrap();
        assert_eq!(count_established(port, &mut buf), Ok(want));
        drop(held);
        drop(v4);
        drop(v6);
        assert_eq!(count_established(port, &mut buf), Ok(0));
    }

    #[test]
    fn builds_the_request_the_kernel_expects() {
        let r = request(2, 8080);
        let u16_at = |at: usize| u16::from_ne_bytes([r[at], r[at + 1]]);
        assert_eq!(u32_at(&r), 92);
        assert_eq!((u16_at(4), u16_at(6)), (SOCK_DIAG_BY_FAMILY, 0x301));
        assert_eq!((r[16], r[17], r[20]), (2, 6, 2));
        assert_eq!((u16_at(72), u16_at(74)), (20, 1));
        // S_GE yes 8 no 20, port; S_LE yes 8 no 12, port.
        assert_eq!((r[76], r[77], u16_at(78), u16_at(82)), (2, 8, 20, 8080));
        assert_eq!((r[84], r[85], u16_at(86), u16_at(90)), (3, 8, 12, 8080));
    }
}
