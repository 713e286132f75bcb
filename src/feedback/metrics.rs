//! Parses `/proc` files and numbers into metric values; does no I/O.
//!
//! Counters are kept modulo 2^32: `/proc/stat` counts can pass 2^32 on a
//! long-lived many-core host, but the difference between two samples a few
//! seconds apart never does, and `wrapping_sub` gets it right.

use super::config::find;
use super::curve::VALUE_MAX;
use crate::model::state::Reason;
use crate::num::pieces;

/// CPU time counters from the first line of `/proc/stat`, modulo 2^32.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CpuTimes {
    /// Time spent doing anything but idling or waiting for I/O.
    pub busy: u32,
    /// All time counted.
    pub total: u32,
}

/// Reads a word of ASCII digits: its value modulo 2^32, and whether `num::parse_u32` refuses it.
#[inline(never)]
fn digits(word: &[u8]) -> Option<(u32, bool)> {
    if word.is_empty() {
        return None;
    }
    let mut v: u32 = 0;
    let mut over = word.len() > 10;
    for &c in word {
        if !c.is_ascii_digit() {
            return None;
        }
        let (m, o) = v.overflowing_mul(10);
        let (a, p) = m.overflowing_add((c - b'0') as u32);
        over |= o | p;
        v = a;
    }
    Some((v, over))
}

/// Halves a pair until the first is below 2^24, so that multiplying by 100 cannot overflow.
#[inline(always)]
fn scaled(mut whole: u32, mut part: u32) -> (u32, u32) {
    while whole >= 1 << 24 {
        whole >>= 1;
        part >>= 1;
    }
    (whole, part)
}

/// Rounds `part` of `whole` (below 2^24, not 0) to a percentage.
///
/// Out of line: the cpu and mem reads share one copy of its division.
#[inline(never)]
fn percent(part: u32, whole: u32) -> u32 {
    (part * 100 + whole / 2) / whole.max(1)
}

/// Splits `s` at its first `sep`: what comes before it, and what comes after it if it is there.
pub fn split_once(s: &[u8], sep: u8) -> (&[u8], Option<&[u8]>) {
    match s.iter().position(|&c| c == sep) {
        Some(p) => (&s[..p], Some(&s[p + 1..])),
        None => (s, None),
    }
}

/// Takes the next word (separated by spaces or tabs) off the front of `line`.
fn next_word<'a>(line: &mut &'a [u8]) -> Option<&'a [u8]> {
    let blank = |c: &u8| *c == b' ' || *c == b'\t';
    let start = line.iter().position(|c| !blank(c))?;
    let rest = &line[start..];
    let (word, after) = rest.split_at(rest.iter().position(blank).unwrap_or(rest.len()));
    *line = after;
    Some(word)
}

/// Reads the aggregate `cpu` line of `/proc/stat`.
///
/// Busy is user + nice + system + irq + softirq + steal; idle and iowait are
/// not busy. Guest time is already inside user and nice, so it is not added.
pub fn parse_stat(text: &[u8]) -> Option<CpuTimes> {
    let mut line = split_once(text, b'\n').0;
    if next_word(&mut line)? != b"cpu" {
        return None;
    }
    let (mut total, mut idle, mut n) = (0u32, 0u32, 0);
    while n < 8 {
        let Some(word) = next_word(&mut line) else {
            break;
        };
        let (v, _) = digits(word)?;
        total = total.wrapping_add(v);
        if n == 3 || n == 4 {
            idle = idle.wrapping_add(v);
        }
        n += 1;
    }
    // user nice system idle are in every kernel since 2.6.
    if n < 4 {
        return None;
    }
    Some(CpuTimes {
        busy: total.wrapping_sub(idle),
        total,
    })
}

/// Computes the busy percentage (0 to 100) between two samples; `None` if no time passed.
pub fn cpu_busy_pct(prev: CpuTimes, cur: CpuTimes) -> Option<u32> {
    let dt = cur.total.wrapping_sub(prev.total);
    if dt == 0 || dt > u32::MAX / 2 {
        return None;
    }
    let (dt, db) = scaled(dt, cur.busy.wrapping_sub(prev.busy));
    Some(percent(db.min(dt), dt))
}

/// Reads the 1-minute load average of `/proc/loadavg` in hundredths.
pub fn parse_loadavg(text: &[u8]) -> Option<u32> {
    let first = next_word(&mut split_once(text, b'\n').0)?;
    parse_decimal(first, 2)
}

/// Counts the CPUs in a list like `/sys/devices/system/cpu/online` (`0-3,6,8-9`).
pub fn parse_cpu_list(text: &[u8]) -> Option<u32> {
    let mut count: u32 = 0;
    // An empty list is one empty part, which parse_u32 refuses.
    for part in pieces(text.trim_ascii(), b',') {
        let (a, b) = split_once(part, b'-');
        let a = crate::num::parse_u32(a)?;
        let b = match b {
            Some(b) => crate::num::parse_u32(b)?,
            None => a,
        };
        if b < a {
            return None;
        }
        count = count.checked_add(b - a + 1)?;
    }
    Some(count)
}

/// Divides a load average (hundredths) by the CPU count: hundredths of load per CPU.
pub fn load_per_cpu(load: u32, cpus: u32) -> u32 {
    let cpus = cpus.max(1);
    ((load + cpus / 2) / cpus).min(VALUE_MAX)
}

/// Reads `MemTotal` and `MemAvailable` from `/proc/meminfo` and returns the % in use (0 to 100).
pub fn parse_meminfo(text: &[u8]) -> Option<u32> {
    // kB of each key, in the order of this list.
    let mut kb = [None; 2];
    for line in pieces(text, b'\n') {
        let mut line = line;
        let Some(i) = next_word(&mut line).and_then(|k| find("MemTotal: MemAvailable:", k)) else {
            continue;
        };
        // Above 4 TiB in kB: u32::MAX, the ratio is what matters.
        let (v, over) = digits(next_word(&mut line)?)?;
        kb[i] = Some(if over { u32::MAX } else { v });
        if kb[0].is_some() && kb[1].is_some() {
            break;
        }
    }
    let (t, a) = (kb[0]?, kb[1]?);
    if t == 0 {
        return None;
    }
    let (t, a) = scaled(t, a.min(t));
    Some(percent(t - a, t))
}

/// Reads a decimal number like `12`, `-3` or `0.75` (surrounding whitespace allowed) as
/// an integer count of 10^−`decimals` units, truncated; negatives read as 0 and large
/// values as `VALUE_MAX`. Exponents and anything else are refused.
pub fn parse_decimal(text: &[u8], decimals: u8) -> Option<u32> {
    let mut s = text.trim_ascii();
    let sign = s.first().copied();
    if matches!(sign, Some(b'-' | b'+')) {
        s = &s[1..];
    }
    // No digits at all, or none after the point.
    if s.is_empty() || s.last() == Some(&b'.') {
        return None;
    }
    let (mut v, mut point, mut places) = (0u32, false, 0);
    // The text, then `decimals` zeros as if after the point; past the point
    // only `decimals` digits count, but all must be digits.
    for i in 0..s.len() + decimals as usize {
        let c = match s.get(i) {
            Some(&c) => c,
            None => {
                point = true;
                b'0'
            }
        };
        if c == b'.' && !point {
            point = true;
            continue;
        }
        if !c.is_ascii_digit() {
            return None;
        }
        if point {
            if places == decimals {
                continue;
            }
            places += 1;
        }
        v = v
            .saturating_mul(10)
            .saturating_add((c - b'0') as u32)
            .min(VALUE_MAX * 10);
    }
    if sign == Some(b'-') {
        return Some(0);
    }
    Some(v.min(VALUE_MAX))
}

/// Writes a value of `decimals` decimal places as text at the end of `buf`, e.g. 150
/// with 2 as `1.50`, and returns that text.
pub fn value_text(mut v: u32, decimals: u8, buf: &mut [u8; 14]) -> &[u8] {
    let dec = decimals as usize;
    let mut i = buf.len();
    let mut k = 0;
    loop {
        if k == dec && dec > 0 {
            i -= 1;
            buf[i] = b'.';
        }
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        k += 1;
        if v == 0 && k > dec {
            return &buf[i..];
        }
    }
}

/// Appends a value of `decimals` decimal places as text, e.g. 150 with 2 as `1.50`.
pub fn push_value(out: &mut Reason, v: u32, decimals: u8) {
    let mut buf = [0; 14];
    let text = value_text(v, decimals, &mut buf);
    let _ = out.push_str(crate::os::ascii_str(text).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    // Copied from the machine these tests were written on (2 CPUs), intr line shortened.
    const STAT_A: &str = "cpu  44415 0 15184 2015383 769 0 565 490 0 0
cpu0 19230 0 6938 1011742 208 0 143 284 0 0
cpu1 25185 0 8245 1003640 560 0 422 205 0 0
intr 668796 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 8 0 0 0 0 2079 1
ctxt 1033635
btime 1795417973
processes 16806
procs_running 2
procs_blocked 0
softirq 1263040 0 125459 4 693841 49717 0 75 231207 0 162737
";
    const STAT_B: &str = "cpu  32328 0 11180 2006043 681 0 242 474 0 0
cpu0 14292 0 5244 1005553 161 0 91 277 0 0
";
    const LOADAVG: &str = "1.14 1.06 0.47 1/89 13523\n";
    const MEMINFO: &str = "MemTotal:       24683656 kB
MemFree:        22287176 kB
MemAvailable:   24088960 kB
Buffers:           14260 kB
Cached:          1936872 kB
SwapCached:            0 kB
Active:           969844 kB
Inactive:        1200840 kB
SwapTotal:             0 kB
VmallocTotal:   34359738367 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
DirectMap1G:    25165824 kB
";

    #[test]
    fn reads_real_proc_stat() {
        let a = parse_stat(STAT_A.as_bytes()).unwrap();
        assert_eq!(a.total, 44415 + 15184 + 2015383 + 769 + 565 + 490);
        assert_eq!(a.busy, 44415 + 15184 + 565 + 490);
        let b = parse_stat(STAT_B.as_bytes()).unwrap();
        // B was taken earlier than A: from B to A, 12087+4004+323+16 busy of 25779+...
        let pct = cpu_busy_pct(b, a).unwrap();
        assert_eq!(pct, 64); // 16430 busy of 25858 ticks
        assert_eq!(cpu_busy_pct(a, a), None);
    }

    #[test]
    fn cpu_deltas_survive_wrapping() {
        let prev = CpuTimes {
            busy: u32::MAX - 10,
            total: u32::MAX - 100,
        };
        let cur = CpuTimes {
            busy: 40,
            total: 100,
        };
        // 51 busy of 201
        assert_eq!(cpu_busy_pct(prev, cur), Some(25));
        // Counters above 2^32 in the text are read modulo 2^32.
        let t = parse_stat(b"cpu 4294967296 0 1 2\n").unwrap();
        assert_eq!((t.busy, t.total), (1, 3));
    }

    #[test]
    fn refuses_malformed_stat() {
        assert_eq!(parse_stat(b""), None);
        assert_eq!(parse_stat(b"cpu0 1 2 3 4\n"), None);
        assert_eq!(parse_stat(b"cpu 1 2 3\n"), None);
        assert_eq!(parse_stat(b"cpu 1 2 x 4\n"), None);
        assert_eq!(parse_stat(b"cpu 1 2 -3 4\n"), None);
        assert_eq!(parse_stat(b"intr 1 2 3 4\ncpu 1 2 3 4\n"), None);
        assert!(parse_stat(b"cpu 1 2 3 4").is_some());
    }

    #[test]
    fn reads_real_loadavg_and_cpu_lists() {
        assert_eq!(parse_loadavg(LOADAVG.as_bytes()), Some(114));
        assert_eq!(parse_loadavg(b"0.00 0.01 0.05 1/1 1\n"), Some(0));
        assert_eq!(parse_loadavg(b"123.45 1 1 1/1 1"), Some(12345));
        assert_eq!(parse_loadavg(b""), None);
        assert_eq!(parse_loadavg(b"high 1 1"), None);
        assert_eq!(parse_cpu_list(b"0-1\n"), Some(2));
        assert_eq!(parse_cpu_list(b"0\n"), Some(1));
        assert_eq!(parse_cpu_list(b"0-3,6,8-9\n"), Some(7));
        assert_eq!(parse_cpu_list(b""), None);
        assert_eq!(parse_cpu_list(b"3-1"), None);
        assert_eq!(parse_cpu_list(b"0-"), None);
        assert_eq!(load_per_cpu(114, 2), 57);
        assert_eq!(load_per_cpu(114, 0), 114);
    }

    #[test]
    fn reads_real_meminfo() {
        // (24683656 − 24088960) / 24683656 = 2.4%
        assert_eq!(parse_meminfo(MEMINFO.as_bytes()), Some(2));
        assert_eq!(
            parse_meminfo(b"MemTotal: 1000 kB\nMemAvailable: 250 kB\n"),
            Some(75)
        );
        assert_eq!(
            parse_meminfo(b"MemTotal: 1000 kB\nMemAvailable: 2000 kB\n"),
            Some(0)
        );
    }

    #[test]
    fn refuses_malformed_meminfo() {
        assert_eq!(parse_meminfo(b""), None);
        assert_eq!(parse_meminfo(b"MemTotal: 1000 kB\n"), None);
        assert_eq!(parse_meminfo(b"MemAvailable: 10 kB\n"), None);
        assert_eq!(parse_meminfo(b"MemTotal: 0 kB\nMemAvailable: 0 kB\n"), None);
        assert_eq!(parse_meminfo(b"MemTotal: lots\nMemAvailable: 1 kB\n"), None);
        assert_eq!(parse_meminfo(b"MemTotal:\nMemAvailable: 1 kB\n"), None);
    }

    #[test]
    fn reads_decimals() {
        assert_eq!(parse_decimal(b"42\n", 0), Some(42));
        assert_eq!(parse_decimal(b" 0.75 ", 2), Some(75));
        assert_eq!(parse_decimal(b"0.756", 2), Some(75));
        assert_eq!(parse_decimal(b"3", 3), Some(3000));
        assert_eq!(parse_decimal(b"1.5", 0), Some(1));
        assert_eq!(parse_decimal(b".5", 1), Some(5));
        assert_eq!(parse_decimal(b"+7", 0), Some(7));
        assert_eq!(parse_decimal(b"-7", 0), Some(0));
        assert_eq!(parse_decimal(b"99999999999999", 0), Some(VALUE_MAX));
        for bad in [
            &b""[..],
            b"-",
            b".",
            b"5.",
            b"1e3",
            b"1,5",
            b"0x10",
            b"1 2",
            b"--1",
            b"nan",
        ] {
            assert_eq!(parse_decimal(bad, 1), None, "{:?}", bad);
        }
    }

    #[test]
    fn writes_values_with_decimals() {
        let mut s = Reason::new();
        push_value(&mut s, 150, 2);
        assert_eq!(s.as_str(), "1.50");
        s.clear();
        push_value(&mut s, 7, 2);
        assert_eq!(s.as_str(), "0.07");
        s.clear();
        push_value(&mut s, 97, 0);
        assert_eq!(s.as_str(), "97");
        s.clear();
        push_value(&mut s, 0, 3);
        assert_eq!(s.as_str(), "0.000");
    }
}
