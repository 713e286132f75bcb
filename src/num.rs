//! Numbers and IP addresses to and from text, without `core::fmt` (about
//! 8 KB) or `core::net`'s parser (about 2 KB), and the splitter every text
//! parser shares.

/// Splits `s` at every `sep` (one splitter for every parser: one copy of
/// its code).
pub fn pieces(s: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    s.split(move |&c| c == sep)
}

/// Writes `n` in decimal into `buf` and returns the digits.
pub fn fmt_u32(n: u32, buf: &mut [u8; 10]) -> &[u8] {
    fmt_u64(n.into(), buf)
}

/// Names an OS error, e.g. `ELOOP`, or numbers one `os::errno_name` does
/// not name, e.g. `errno 123`, in `buf`.
pub fn errno_text(e: nix::errno::Errno, buf: &mut heapless::Vec<u8, 16>) -> &str {
    if let Some(name) = crate::os::errno_name(e) {
        return name;
    }
    let _ = push(buf, b"errno ");
    let _ = push_u32(buf, e as i32 as u32);
    crate::os::ascii_str(buf).unwrap_or("")
}

/// Parses a non-empty run of ASCII digits; `None` on anything else or overflow.
pub fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    let mut v: u32 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u32)?;
    }
    Some(v)
}

/// Appends `s` to a fixed-capacity buffer, failing without writing if it does not fit.
pub fn push<const N: usize>(out: &mut heapless::Vec<u8, N>, s: &[u8]) -> Result<(), Full> {
    out.extend_from_slice(s).map_err(|_| Full)
}

/// Appends `n` in decimal to a fixed-capacity buffer.
///
/// This and `push_ip` take a `VecView`, which every `heapless::Vec<u8, N>`
/// coerces to, so each is compiled once rather than once per capacity.
pub fn push_u32(out: &mut heapless::vec::VecView<u8>, n: u32) -> Result<(), Full> {
    let mut b = [0u8; 10];
    out.extend_from_slice(fmt_u32(n, &mut b)).map_err(|_| Full)
}

/// Writes `n` in decimal at the end of `buf` (20 bytes hold any u64) and
/// returns the digits.
pub fn fmt_u64(mut n: u64, buf: &mut [u8]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Appends `n` in decimal to a fixed-capacity buffer, as `push_u32`.
pub fn push_u64(out: &mut heapless::vec::VecView<u8>, n: u64) -> Result<(), Full> {
    let mut b = [0u8; 20];
    out.extend_from_slice(fmt_u64(n, &mut b)).map_err(|_| Full)
}

/// Appends an IP address: dotted IPv4, or eight hex groups for IPv6 (logs only need it readable).
pub fn push_ip(out: &mut heapless::vec::VecView<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    let _ = out.extend_from_slice(b".");
                }
                let _ = push_u32(out, *o as u32);
            }
        }
        std::net::IpAddr::V6(v6) => {
            // Two hex digits a byte, and a colon after every second byte but the last.
            let mut text = [b':'; 39];
            for (i, b) in v6.octets().iter().enumerate() {
                let at = i * 2 + i / 2;
                text[at] = HEX[(b >> 4) as usize];
                text[at + 1] = HEX[(b & 15) as usize];
            }
            let _ = out.extend_from_slice(&text);
        }
    }
}

/// The hex digits, by value.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Parses an IPv4 address (`a.b.c.d`) or an IPv6 address (RFC 4291 text,
/// with `::` and a trailing dotted IPv4), accepting what `core::net` accepts.
pub fn parse_ip(s: &[u8]) -> Option<std::net::IpAddr> {
    // Text without a colon is never IPv6, and text with one never IPv4.
    match parse_v4(s) {
        Some(v4) => Some(v4.into()),
        None => parse_v6(s).map(std::net::IpAddr::from),
    }
}

/// Parses a dotted IPv4 address; a part with a leading zero is refused.
fn parse_v4(s: &[u8]) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = pieces(s, b'.');
    for o in out.iter_mut() {
        let p = parts.next()?;
        if p.len() > 1 && p[0] == b'0' {
            return None;
        }
        *o = u8::try_from(parse_u32(p)?).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Parses an IPv6 address into its sixteen bytes, each group big-endian, in
/// one pass: hex groups, at most one `::` standing for one or more zero
/// groups, and a dotted IPv4 address (worth two groups) that may end the text.
fn parse_v6(s: &[u8]) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    // Bytes filled, and where the `::` stands once seen.
    let mut n = 0;
    let mut gap = None;
    let mut rest = s;
    if let Some(r) = s.strip_prefix(b"::") {
        gap = Some(0);
        rest = r;
    }
    // A group follows every `:`; a `::` may also end the text.
    while !(rest.is_empty() && gap == Some(n)) {
        let end = rest.iter().position(|&c| c == b':').unwrap_or(rest.len());
        let part = &rest[..end];
        if part.contains(&b'.') {
            if end < rest.len() || n > 12 {
                return None;
            }
            out[n..n + 4].copy_from_slice(&parse_v4(part)?);
            n += 4;
            break;
        }
        if part.is_empty() || part.len() > 4 || n == 16 {
            return None;
        }
        let mut v = 0u16;
        for &c in part {
            v = v << 4 | HEX.iter().position(|&h| h == c.to_ascii_lowercase())? as u16;
        }
        out[n..n + 2].copy_from_slice(&v.to_be_bytes());
        n += 2;
        if end == rest.len() {
            break;
        }
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(b":") {
            if gap.is_some() {
                return None;
            }
            gap = Some(n);
            rest = r;
        }
    }
    match gap {
        None => (n == 16).then_some(out),
        // The groups after the `::` move to the end, a byte at a time from
        // the last, each leaving a zero.
        Some(g) if n <= 14 => {
            for k in (g..n).rev() {
                out[k + 16 - n] = core::mem::take(&mut out[k]);
            }
            Some(out)
        }
        Some(_) => None,
    }
}

/// A fixed buffer was too small for what had to go in it.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Full;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_edges() {
        let mut b = [0u8; 10];
        assert_eq!(fmt_u32(0, &mut b), b"0");
        assert_eq!(fmt_u32(77, &mut b), b"77");
        assert_eq!(fmt_u32(u32::MAX, &mut b), b"4294967295");
    }

    #[test]
    fn parses_strictly() {
        assert_eq!(parse_u32(b"0"), Some(0));
        assert_eq!(parse_u32(b"65535"), Some(65535));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u32(b"-1"), None);
        assert_eq!(parse_u32(b"1.5"), None);
        assert_eq!(parse_u32(b" 1"), None);
    }

    #[test]
    fn writes_ips_in_full() {
        let mut v: heapless::Vec<u8, 64> = heapless::Vec::new();
        push_ip(&mut v, "10.200.0.255".parse().unwrap());
        assert_eq!(&v[..], b"10.200.0.255");
        v.clear();
        push_ip(&mut v, "fe80::1:abcd".parse().unwrap());
        assert_eq!(&v[..], b"fe80:0000:0000:0000:0000:0000:0001:abcd");
    }

    #[test]
    fn parses_ips_as_core_net_does() {
        let cases = [
            "0.0.0.0",
            "127.0.0.1",
            "255.255.255.255",
            "256.0.0.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.",
            ".1.2.3",
            "1..2.3",
            "a.b.c.d",
            "",
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3:4::5:6:7:8",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7",
            ":::",
            "1:::2",
            "1::2::3",
            ":1",
            "1:",
            "::1:",
            "fe80::1",
            "FE80::ABCD",
            "12345::",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "1:2:3:4:5:6:1.2.3.4",
            "1:2:3:4:5:6:7:1.2.3.4",
            "1:2:3:4:5::1.2.3.4",
            "1:2:3:4:5:6::1.2.3.4",
            "::1.2.3.4:5",
            "::1.2.3",
            "g::",
            "2001:db8::8a2e:370:7334",
            "::ffff:1.2.3.04",
            "[::1]",
            " 1.2.3.4",
            "::0:0",
            "0:0:0:0:0:0:0:0",
            "1:2:3:4:5:6:7:8::",
            "1:2:3:4:5:6:7::1",
            "1.2.3.4::",
            "1.2.3.4::1",
            "::1:2:3:4:5:6:1.2.3.4",
            "::1:2:3:4:5:1.2.3.4",
            "1:2:3:4:5:6:7:8:",
            "::12345",
            "1::2:",
            ":1::2",
            "1:2:3:4:5:6:7:8:1.2.3.4",
            "ffff::fffff",
            "::1.2.3.4.5",
            "::256.1.1.1",
        ];
        for c in cases {
            let ours = parse_ip(c.as_bytes());
            let std = c.parse::<std::net::IpAddr>().ok();
            assert_eq!(ours, std, "{c:?}");
        }
    }
}
