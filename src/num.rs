//! Decimal conversion without `core::fmt`, which would cost ~8 KB.

/// Writes `n` in decimal into `buf` and returns the digits.
pub fn fmt_u32(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
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
pub fn push_u32<const N: usize>(out: &mut heapless::Vec<u8, N>, n: u32) -> Result<(), Full> {
    let mut b = [0u8; 10];
    push(out, fmt_u32(n, &mut b))
}

/// Appends an IP address: dotted IPv4, or eight hex groups for IPv6 (logs only need it readable).
pub fn push_ip<const N: usize>(out: &mut heapless::Vec<u8, N>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    let _ = push(out, b".");
                }
                let _ = push_u32(out, *o as u32);
            }
        }
        std::net::IpAddr::V6(v6) => {
            for (i, g) in v6.segments().iter().enumerate() {
                if i > 0 {
                    let _ = push(out, b":");
                }
                for shift in [12, 8, 4, 0] {
                    let _ = push(out, &[b"0123456789abcdef"[((g >> shift) & 15) as usize]]);
                }
            }
        }
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
}
