//! Matches client addresses against a list of CIDR blocks; does no I/O.

use std::net::IpAddr;

/// The most blocks one list may hold.
pub const BLOCKS_MAX: usize = 16;

/// One block, kept as an IPv6 prefix (IPv4 is mapped into `::ffff:0:0/96`):
/// the address as given and how many of its leading bits an address must share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    addr: [u8; 16],
    bits: u8,
}

/// Who may ask; empty means everyone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    blocks: heapless::Vec<Block, BLOCKS_MAX>,
}

/// Returns an address's bytes in IPv6 space (IPv4 as `::ffff:a.b.c.d`).
fn mapped(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

impl Block {
    /// Tells whether `a` starts with the block's leading `bits`.
    fn covers(&self, a: &[u8; 16]) -> bool {
        // Byte `i` must match in its leading `bits - 8 * i` bits (all 8 at most).
        (0..16).all(|i| {
            let keep = (self.bits as u32).saturating_sub(8 * i).min(8);
            u32::from(a[i as usize] ^ self.addr[i as usize]) >> (8 - keep) == 0
        })
    }
}

impl AllowList {
    /// Lets everyone ask.
    pub fn everyone() -> AllowList {
        AllowList::default()
    }

    /// Reads `CIDR[,CIDR...]` into the list, in place of what it held (a
    /// bare address is a one-address block); false if the text is not such a
    /// list, the list then holding the blocks read before the fault.
    pub fn read(&mut self, s: &[u8]) -> bool {
        self.blocks.clear();
        crate::num::pieces(s, b',').all(|part| self.push(part.trim_ascii()).is_some())
    }

    /// Adds the block `a[/len]`; none if it is malformed or the list is full.
    fn push(&mut self, part: &[u8]) -> Option<()> {
        let (a, len) = match part.iter().position(|&c| c == b'/') {
            Some(p) => (&part[..p], Some(crate::num::parse_u32(&part[p + 1..])?)),
            None => (part, None),
        };
        let ip = crate::num::parse_ip(a)?;
        let (max, offset) = if ip.is_ipv4() { (32, 96) } else { (128, 0) };
        let len = len.unwrap_or(max);
        if len > max {
            return None;
        }
        self.blocks
            .push(Block {
                addr: mapped(ip),
                bits: (len + offset) as u8,
            })
            .ok()
    }

    /// Tells whether `ip` may ask.
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.blocks.is_empty() {
            return true;
        }
        // A dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d, the
        // very number an IPv4 address maps to.
        let a = mapped(ip);
        self.blocks.iter().any(|b| b.covers(&a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The list `s` reads as, none if it is malformed.
    fn parse(s: &[u8]) -> Option<AllowList> {
        let mut l = AllowList::everyone();
        l.read(s).then_some(l)
    }

    #[test]
    fn matches_blocks() {
        let l = parse(b"10.0.0.0/8, 127.0.0.1,::1/128").unwrap();
        assert!(l.allows(ip("10.1.2.3")));
        assert!(l.allows(ip("127.0.0.1")));
        assert!(l.allows(ip("::ffff:127.0.0.1")));
        assert!(!l.allows(ip("127.0.0.2")));
        assert!(l.allows(ip("::1")));
        assert!(!l.allows(ip("::2")));
        assert!(!l.allows(ip("11.0.0.1")));
        assert!(parse(b"0.0.0.0/0").unwrap().allows(ip("1.2.3.4")));
        assert!(!parse(b"0.0.0.0/0").unwrap().allows(ip("2001:db8::1")));
        assert!(parse(b"::/0").unwrap().allows(ip("2001:db8::1")));
        assert!(AllowList::everyone().allows(ip("1.2.3.4")));
        // Prefixes that end inside a byte.
        let l = parse(b"10.16.0.0/12,2001:db8::/33,::ff00/121").unwrap();
        assert!(l.allows(ip("10.31.255.255")));
        assert!(l.allows(ip("10.16.0.0")));
        assert!(!l.allows(ip("10.32.0.0")));
        assert!(!l.allows(ip("10.15.255.255")));
        assert!(l.allows(ip("2001:db8:7fff::1")));
        assert!(!l.allows(ip("2001:db8:8000::")));
        assert!(l.allows(ip("::ff7f")));
        assert!(!l.allows(ip("::fe80")));
    }

    #[test]
    fn refuses_bad_lists() {
        for bad in [
            &b"10.0.0.0/33"[..],
            b"::1/129",
            b"",
            b"10.0.0.0/8,",
            b"x",
            b"1.2.3.4/",
            b"1.2.3.4/8/8",
            b"/8",
        ] {
            assert!(parse(bad).is_none(), "{:?}", bad);
        }
    }
}
