//! Reads the command line and environment into typed options; does no I/O.
//!
//! A flag beats its `HEFT_*` variable, which beats hapgent's variable, which
//! beats the default. A bad value is reported by `Usage` naming its source.

pub mod get;
pub mod set;

use std::ffi::OsStr;
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::log::Level;
use crate::model::state::{self, Status};
use crate::num;
use crate::num::pieces;
use crate::server::allow::AllowList;

/// The default agent port, hapgent's.
pub const DEFAULT_PORT: u16 = 9777;
/// The default state file.
pub const DEFAULT_STATE_FILE: &str = "/etc/heft/state.json";
/// How long (ms) to wait for a payload's first word or an HTTP request line.
pub const DEFAULT_WAIT_MS: u32 = 50;
/// How long (ms) a connection may live in all.
pub const DEFAULT_TIMEOUT_MS: u32 = 2000;
/// How many connections are served at once.
pub const DEFAULT_SLOTS: u32 = 64;
/// The most connection slots one agent may have.
pub const SLOTS_MAX: u32 = 1024;

/// A value as given (borrowed from `argv` or `environ`) and the flag or variable that gave it.
pub type Given = (Text, &'static OsStr);

/// A value as found: the offset in `HELP` of the name that gave it, and the value.
type Val = (u16, &'static OsStr);

/// What to run.
// Made once at start-up and matched at once: boxing `Serve` would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run the agent.
    Serve(Serve),
    /// Change the state file and signal the agent.
    Set(Set),
    /// Probe an agent.
    Get(Get),
    /// Print the usage text.
    Help,
    /// Print the version.
    Version,
}

/// Options of `heft serve`.
pub struct Serve {
    /// Address to listen on (`::` is dual-stack).
    pub addr: IpAddr,
    /// Port to listen on.
    pub port: u16,
    /// The JSON state file.
    pub state_file: &'static Path,
    /// Where to write our pid, if anywhere.
    pub pid_file: Option<&'static Path>,
    /// How long `ready` is sent after start-up and each status change; `None`: always.
    pub ready_window_ms: Option<u32>,
    /// How long to wait for a payload or HTTP request line before answering.
    pub wait_ms: u32,
    /// How long a connection may stay open.
    pub timeout_ms: u32,
    /// How many connections are served at once.
    pub slots: u32,
    /// The load feedback rules, if any.
    #[cfg(feature = "feedback")]
    pub feedback: Option<&'static Path>,
    /// Who may ask.
    pub allow: AllowList,
    /// User to run as after binding, and where that was said (flag or variable).
    pub user: Option<Given>,
    /// Group to run as after binding, and where that was said.
    pub group: Option<Given>,
    /// The syslog socket to log to, when logging to syslog.
    pub syslog: Option<&'static Path>,
    /// How much to log.
    pub level: Level,
}

/// Options of `heft set`.
pub struct Set {
    /// The new status.
    pub status: Status,
    /// The new weight, if told.
    pub weight: Option<u8>,
    /// The new maxconn (`Some(None)` removes it), if told.
    pub maxconn: Option<Option<u16>>,
    /// The new reason (empty removes it), if told; checked to fit a `Reason`.
    pub reason: Option<&'static str>,
    /// The service to change instead of the top level; checked to fit a `Name`.
    pub service: Option<&'static str>,
    /// The state file.
    pub state_file: &'static Path,
    /// The agent's pid file, to send it SIGHUP.
    pub pid_file: Option<&'static Path>,
    /// How much to log.
    pub level: Level,
}

/// Options of `heft get`.
pub struct Get {
    /// Agent address.
    pub addr: IpAddr,
    /// Agent port.
    pub port: u16,
    /// Bytes to send after connecting.
    pub send: heapless::Vec<u8, 256>,
    /// How long to wait for the whole exchange.
    pub timeout_ms: u32,
}

/// A bad command line or environment value.
#[derive(Debug)]
pub struct Usage {
    /// The flag or variable at fault.
    pub source: Text,
    /// The value given, if one was.
    pub value: Option<&'static OsStr>,
    /// What was expected.
    pub expected: Text,
}

/// A text an error gives: a name where `HELP` shows it (its offset), or a
/// line of `LINES` (`LINE` plus its offset times 64 plus its length).
///
/// A number rather than a `&str`: each error then stores two numbers, not
/// two pointers and two lengths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Text(u16);

/// The bit of a `Text` that is a line of `LINES`.
const LINE: u16 = 0x8000;

impl Text {
    /// Returns the text, e.g. `--port` or `1 or 0`.
    pub fn text(self) -> &'static str {
        if self.0 & LINE == 0 {
            return name_at(self.0);
        }
        let (at, len) = ((self.0 >> 6 & 0x1ff) as usize, (self.0 & 63) as usize);
        let line = LINES.as_bytes().get(at..at + len).unwrap_or(&[]);
        crate::os::ascii_str(line).unwrap_or("")
    }
}

/// Every text an error may give that is not a name in `HELP`, one a line.
const LINES: &str = "\
option
argument
see heft --help
no value
a value
a port from 1 to 65535
seconds from 1 to 86400
milliseconds from 0 to 10000
milliseconds from 10 to 60000
a number from 1 to 1024
0 to 255
milliseconds from 1 to 600000
0 to 65535, or none
an IPv4 or IPv6 address
CIDR[,CIDR...] like 10.0.0.0/8,::1/128
1 or 0
UP READY DRAIN MAINT DOWN FAIL or STOPPED
at most 64 printable ASCII bytes without #
a name of 1 to 32 bytes of [A-Za-z0-9_.-]
at most 256 bytes
a user in /etc/passwd or a number
a group in /etc/group or a number
";

/// Returns the `Text` of `text`, a whole line of `LINES`; fails the build if missing.
pub const fn line(text: &str) -> Text {
    let (e, t) = (LINES.as_bytes(), text.as_bytes());
    let mut i = 0;
    while i + t.len() < e.len() {
        let mut j = 0;
        while j < t.len() && e[i + j] == t[j] {
            j += 1;
        }
        if j == t.len() && e[i + j] == b'\n' && (i == 0 || e[i - 1] == b'\n') {
            assert!(i < 512 && j < 64, "LINES is too long for Text");
            return Text(LINE | (i << 6 | j) as u16);
        }
        i += 1;
    }
    panic!("a text is missing from LINES")
}

/// Builds the `Usage` error for a value that `source` gave.
#[cold]
fn bad(source: Text, value: &'static OsStr, expected: Text) -> Usage {
    Usage {
        source,
        value: Some(value),
        expected,
    }
}

/// The command `heft serve` (bit for `Opt::cmds`).
const SERVE: u8 = 1;
/// The command `heft set`.
const SET: u8 = 2;
/// The command `heft get`.
const GET: u8 = 4;

/// A whole-number option's range, its default, and how the range reads in an error.
struct Range {
    min: u16,
    max: u32,
    default: u16,
    expected: Text,
}

/// How an option's value is read.
enum Kind {
    /// A flag without a value (its variable's value is checked by the command).
    Switch,
    /// A value the command checks and converts.
    Text,
    /// A whole number in a range (an index of `RANGES`), checked here.
    Number(u8),
}

/// One option: the commands that take it, its names, and how its value is read.
struct Opt {
    /// Bits of `SERVE`, `SET` and `GET`.
    cmds: u8,
    /// The flag, then the `HEFT_*` variable and hapgent's, as offsets of
    /// `HELP` (0: none).
    names: [u16; 3],
    kind: Kind,
}

/// Narrows a default to a `Range`'s `u16`; fails the build if it does not fit.
const fn small(n: u32) -> u16 {
    assert!(n <= u16::MAX as u32, "a default does not fit a u16");
    n as u16
}

/// The whole-number options' ranges, indexed by `Kind::Number`.
const RANGES: [Range; 7] = [
    // `--port` of `heft serve` and `heft get`.
    Range {
        min: 1,
        max: 65535,
        default: DEFAULT_PORT,
        expected: line("a port from 1 to 65535"),
    },
    // `--ready-window`, in seconds.
    Range {
        min: 1,
        max: 86400,
        default: 0,
        expected: line("seconds from 1 to 86400"),
    },
    // `--wait`.
    Range {
        min: 0,
        max: 10_000,
        default: small(DEFAULT_WAIT_MS),
        expected: line("milliseconds from 0 to 10000"),
    },
    // `--timeout` of `heft serve`.
    Range {
        min: 10,
        max: 60_000,
        default: small(DEFAULT_TIMEOUT_MS),
        expected: line("milliseconds from 10 to 60000"),
    },
    // `--slots`.
    Range {
        min: 1,
        max: SLOTS_MAX,
        default: small(DEFAULT_SLOTS),
        expected: line("a number from 1 to 1024"),
    },
    // `--weight`.
    Range {
        min: 0,
        max: 255,
        default: 0,
        expected: line("0 to 255"),
    },
    // `--timeout` of `heft get`.
    Range {
        min: 1,
        max: 600_000,
        default: small(DEFAULT_TIMEOUT_MS),
        expected: line("milliseconds from 1 to 600000"),
    },
];

/// Indexes of `OPTS` (and of `Found`'s arrays), in table order.
mod o {
    /// `--addr` of `heft serve`.
    pub const ADDR: usize = 0;
    /// `--port`.
    pub const PORT: usize = 1;
    /// `--state-file`.
    pub const STATE_FILE: usize = 2;
    /// `--pid-file`.
    pub const PID_FILE: usize = 3;
    /// `--ready-window`.
    pub const READY_WINDOW: usize = 4;
    /// `--wait`.
    pub const WAIT: usize = 5;
    /// `--timeout` of `heft serve`.
    pub const TIMEOUT: usize = 6;
    /// `--slots`.
    pub const SLOTS: usize = 7;
    /// `--feedback` (taken only with the `feedback` feature).
    #[cfg_attr(not(feature = "feedback"), allow(dead_code))]
    pub const FEEDBACK: usize = 8;
    /// `--allow`.
    pub const ALLOW: usize = 9;
    /// `--user`.
    pub const USER: usize = 10;
    /// `--group`.
    pub const GROUP: usize = 11;
    /// `--syslog`.
    pub const SYSLOG: usize = 12;
    /// `--syslog-socket`.
    pub const SYSLOG_SOCKET: usize = 13;
    /// `--weight`.
    pub const WEIGHT: usize = 14;
    /// `--maxconn`.
    pub const MAXCONN: usize = 15;
    /// `--reason`.
    pub const REASON: usize = 16;
    /// `--service`.
    pub const SERVICE: usize = 17;
    /// `--addr` of `heft get`.
    pub const GET_ADDR: usize = 18;
    /// `--send`.
    pub const SEND: usize = 19;
    /// `--timeout` of `heft get`.
    pub const GET_TIMEOUT: usize = 20;
}

/// Every option of every command; `Found::vals` follows this order.
const OPTS: [Opt; 21] = [
    Opt {
        cmds: SERVE,
        names: [at("--addr"), at("HEFT_ADDR"), at("HAPGENT_IP")],
        kind: Kind::Text,
    },
    Opt {
        cmds: SERVE | GET,
        names: [at("--port"), at("HEFT_PORT"), at("HAPGENT_PORT")],
        kind: Kind::Number(0),
    },
    Opt {
        cmds: SERVE | SET,
        names: [
            at("--state-file"),
            at("HEFT_STATE_FILE"),
            at("HAPGENT_STATE_FILE"),
        ],
        kind: Kind::Text,
    },
    Opt {
        cmds: SERVE | SET,
        names: [at("--pid-file"), at("HEFT_PID_FILE"), 0],
        kind: Kind::Text,
    },
    Opt {
        cmds: SERVE,
        names: [at("--ready-window"), at("HEFT_READY_WINDOW"), 0],
        kind: Kind::Number(1),
    },
    Opt {
        cmds: SERVE,
        names: [at("--wait"), at("HEFT_WAIT"), 0],
        kind: Kind::Number(2),
    },
    Opt {
        cmds: SERVE,
        names: [at("--timeout"), at("HEFT_TIMEOUT"), 0],
        kind: Kind::Number(3),
    },
    Opt {
        cmds: SERVE,
        names: [at("--slots"), at("HEFT_SLOTS"), 0],
        kind: Kind::Number(4),
    },
    // Without the `feedback` feature no command takes it, so it is an
    // unknown option, and its names are not in the help text.
    Opt {
        cmds: if cfg!(feature = "feedback") { SERVE } else { 0 },
        names: if cfg!(feature = "feedback") {
            [at("--feedback"), at("HEFT_FEEDBACK"), 0]
        } else {
            [0; 3]
        },
        kind: Kind::Text,
    },
    Opt {
        cmds: SERVE,
        names: [at("--allow"), at("HEFT_ALLOW"), 0],
        kind: Kind::Text,
    },
    Opt {
        cmds: SERVE,
        names: [at("--user"), at("HEFT_USER"), 0],
        kind: Kind::Text,
    },
    Opt {
        cmds: SERVE,
        names: [at("--group"), at("HEFT_GROUP"), 0],
        kind: Kind::Text,
    },
    Opt {
        cmds: SERVE,
        names: [at("--syslog"), at("HEFT_SYSLOG"), 0],
        kind: Kind::Switch,
    },
    Opt {
        cmds: SERVE,
        names: [at("--syslog-socket"), at("HEFT_SYSLOG_SOCKET"), 0],
        kind: Kind::Text,
    },
    Opt {
        cmds: SET,
        names: [at("--weight"), 0, 0],
        kind: Kind::Number(5),
    },
    Opt {
        cmds: SET,
        names: [at("--maxconn"), 0, 0],
        kind: Kind::Text,
    },
    Opt {
        cmds: SET,
        names: [at("--reason"), 0, 0],
        kind: Kind::Text,
    },
    Opt {
        cmds: SET,
        names: [at("--service"), 0, 0],
        kind: Kind::Text,
    },
    Opt {
        cmds: GET,
        names: [at("--addr"), 0, 0],
        kind: Kind::Text,
    },
    Opt {
        cmds: GET,
        names: [at("--send"), 0, 0],
        kind: Kind::Text,
    },
    Opt {
        cmds: GET,
        names: [at("--timeout"), 0, 0],
        kind: Kind::Number(6),
    },
];

/// The values found for one command's options, by index into `OPTS`.
struct Found {
    /// The values given; a switch's flag gives an empty one.
    vals: [Option<Val>; OPTS.len()],
    /// Each number option's value, or its default, by its index of `RANGES`.
    nums: [u32; RANGES.len()],
    /// The one argument that is not an option (`heft set`'s status).
    positional: Option<&'static [u8]>,
    /// How much to log.
    level: Level,
}

/// Returns where `Found::nums` holds the number option `i` of `OPTS`.
const fn num(i: usize) -> usize {
    match OPTS[i].kind {
        Kind::Number(r) => r as usize,
        _ => panic!("not a number option"),
    }
}

/// Reads `cmd`'s options from `args`, then from the environment, into `f`
/// (a blank one, filled in place rather than copied out); checks the numbers.
fn scan(
    f: &mut Found,
    cmd: u8,
    args: &mut dyn Iterator<Item = &'static [u8]>,
    env: &dyn Fn(&str) -> Option<&'static [u8]>,
) -> Result<(), Usage> {
    while let Some(arg) = args.next() {
        let given = OsStr::from_bytes(arg);
        if let Some(i) = word_index(LEVEL_FLAGS, arg) {
            f.level = LEVELS[i / 2];
            continue;
        }
        match arg {
            [b'-', _, ..] => {
                let (name, inline) = match arg.iter().position(|&c| c == b'=') {
                    Some(i) => (&arg[..i], Some(&arg[i + 1..])),
                    None => (arg, None),
                };
                let Some(i) = OPTS
                    .iter()
                    .position(|o| o.cmds & cmd != 0 && flag(o).as_bytes() == name)
                else {
                    return Err(bad(
                        const { line("option") },
                        given,
                        const { line("see heft --help") },
                    ));
                };
                let at = OPTS[i].names[0];
                let v = match (&OPTS[i].kind, inline) {
                    (Kind::Switch, None) => &[][..],
                    (Kind::Switch, Some(_)) => {
                        return Err(bad(Text(at), given, const { line("no value") }))
                    }
                    (_, Some(v)) => v,
                    (_, None) => args.next().ok_or(Usage {
                        source: Text(at),
                        value: None,
                        expected: const { line("a value") },
                    })?,
                };
                f.vals[i] = Some((at, OsStr::from_bytes(v)));
            }
            _ if cmd == SET && f.positional.is_none() => f.positional = Some(arg),
            _ => {
                return Err(bad(
                    const { line("argument") },
                    given,
                    const { line("see heft --help") },
                ))
            }
        }
    }
    for (i, o) in OPTS.iter().enumerate() {
        if o.cmds & cmd == 0 {
            continue;
        }
        if f.vals[i].is_none() {
            let vars = o.names[1..].iter().filter(|&&at| at != 0);
            f.vals[i] = vars.copied().find_map(|at| {
                let v = env(name_at(at)).filter(|v| !v.is_empty())?;
                Some((at, OsStr::from_bytes(v)))
            });
        }
        if let Kind::Number(k) = o.kind {
            let r = &RANGES[k as usize];
            f.nums[k as usize] = match f.vals[i] {
                None => r.default.into(),
                Some((src, val)) => number(src, val, r)?,
            };
        }
    }
    if f.level == Level::Info {
        let name = |l: &[u8]| word_index(LEVEL_NAMES, l);
        f.level = env("HEFT_LOG")
            .and_then(name)
            .map_or(Level::Info, |i| LEVELS[i]);
    }
    Ok(())
}

/// The flags that say how much to log, space-separated: two for each of `LEVELS`.
const LEVEL_FLAGS: &str = "-q --quiet -v --verbose";

/// The values of `HEFT_LOG`, space-separated: one for each of `LEVELS`.
const LEVEL_NAMES: &str = "quiet verbose";

/// The levels the flags and `HEFT_LOG` may ask for.
const LEVELS: [Level; 2] = [Level::Error, Level::Debug];

/// Returns the position of `word` among the space-separated `words`.
///
/// Words in one string rather than a table of `&str`, which costs 16 B a
/// word on 64-bit targets; split by `pieces`, whose code every byte splitter
/// shares.
fn word_index(words: &str, word: &[u8]) -> Option<usize> {
    pieces(words.as_bytes(), b' ').position(|w| w == word)
}

/// Returns an option's flag, the first of its names.
fn flag(o: &Opt) -> &'static str {
    name_at(o.names[0])
}

/// Tells whether `c` may be part of an option's name.
const fn in_name(c: u8) -> bool {
    c == b'-' || c == b'_' || c.is_ascii_alphabetic()
}

/// Returns the offset in `HELP` of `name` standing alone, so that each name
/// is stored once, where the help text shows it; fails the build if missing.
const fn at(name: &str) -> u16 {
    let (h, n) = (&HELP, name.as_bytes());
    let mut i = 1;
    while i + n.len() < h.len() {
        let mut j = 0;
        while j < n.len() && h[i + j] == n[j] {
            j += 1;
        }
        if j == n.len() && !in_name(h[i - 1]) && !in_name(h[i + j]) {
            assert!(i < LINE as usize, "HELP is too long for Text");
            return i as u16;
        }
        i += 1;
    }
    panic!("an option's name is missing from HELP")
}

/// Returns the name that starts at offset `at` of `HELP`.
fn name_at(at: u16) -> &'static str {
    let rest = &HELP[at as usize..];
    let n = rest.iter().position(|&c| !in_name(c)).unwrap_or(0);
    crate::os::ascii_str(&rest[..n]).unwrap_or("")
}

/// Parses a whole number that `src` gave and checks it is in `r`.
fn number(src: u16, val: &'static OsStr, r: &Range) -> Result<u32, Usage> {
    match num::parse_u32(val.as_bytes()) {
        Some(n) if (r.min.into()..=r.max).contains(&n) => Ok(n),
        _ => Err(bad(Text(src), val, r.expected)),
    }
}

/// Reads an IP address, bare or in brackets; `default` when none was given.
fn addr(v: &Option<Val>, default: [u8; 4]) -> Result<IpAddr, Usage> {
    let Some((src, val)) = *v else {
        return Ok(IpAddr::from(default));
    };
    let b = val.as_bytes();
    let b = b.strip_prefix(b"[").unwrap_or(b);
    let b = b.strip_suffix(b"]").unwrap_or(b);
    num::parse_ip(b).ok_or_else(|| bad(Text(src), val, const { line("an IPv4 or IPv6 address") }))
}

/// Names a value's source for `Serve`, which reports it after start-up.
fn given((at, val): Val) -> Given {
    (Text(at), val)
}

/// Returns the path given, if one was.
fn path(v: Option<Val>) -> Option<&'static Path> {
    v.map(|(_, p)| Path::new(p))
}

/// Returns the state file given, or the default one.
fn state_file(v: Option<Val>) -> &'static Path {
    path(v).unwrap_or(Path::new(DEFAULT_STATE_FILE))
}

/// `heft --help` (not an option bit).
const HELP_CMD: u8 = 8;
/// `heft --version` (not an option bit).
const VERSION_CMD: u8 = 16;
/// The words that may come first, space-separated.
const FIRST: &str = "--help -h help --version -V version set get serve";
/// What each of `FIRST`'s words asks for.
const FIRST_CMDS: [u8; 9] = [
    HELP_CMD,
    HELP_CMD,
    HELP_CMD,
    VERSION_CMD,
    VERSION_CMD,
    VERSION_CMD,
    SET,
    GET,
    SERVE,
];

/// Parses the arguments after the program name, reading variables through `env`.
// Kept out of `main`: inlined there, the options are copied between more
// stack slots (x86_64 +864 B, mipsel +192 B).
#[inline(never)]
pub fn parse(
    args: impl Iterator<Item = &'static [u8]>,
    env: &dyn Fn(&str) -> Option<&'static [u8]>,
) -> Result<Command, Usage> {
    let mut args = args.peekable();
    let first = args.peek().and_then(|a| word_index(FIRST, a));
    let cmd = match first.map(|i| FIRST_CMDS[i]) {
        Some(HELP_CMD) => return Ok(Command::Help),
        Some(VERSION_CMD) => return Ok(Command::Version),
        Some(cmd) => {
            args.next();
            cmd
        }
        None => SERVE,
    };
    let mut found = Found {
        vals: [None; OPTS.len()],
        nums: [0; RANGES.len()],
        positional: None,
        level: Level::Info,
    };
    scan(&mut found, cmd, &mut args, env)?;
    match cmd {
        SET => parse_set(&found),
        GET => parse_get(&found),
        _ => parse_serve(&found),
    }
}

/// The values `--syslog` (empty) and `HEFT_SYSLOG` may have, space-separated
/// (the first is empty): the first three turn it on, the others off.
const SWITCH: &str = " 1 yes 0 no";

/// Builds the `heft serve` command from what was found.
fn parse_serve(f: &Found) -> Result<Command, Usage> {
    let (v, n) = (&f.vals, &f.nums);
    let allow = match v[o::ALLOW] {
        None => AllowList::everyone(),
        Some((src, val)) => AllowList::parse(val.as_bytes()).ok_or_else(|| {
            bad(
                Text(src),
                val,
                const { line("CIDR[,CIDR...] like 10.0.0.0/8,::1/128") },
            )
        })?,
    };
    let syslog = match v[o::SYSLOG] {
        None => None,
        Some((src, val)) => match word_index(SWITCH, val.as_bytes()) {
            Some(i) => (i < 3).then_some(Path::new("/dev/log")),
            None => return Err(bad(Text(src), val, const { line("1 or 0") })),
        },
    };
    Ok(Command::Serve(Serve {
        addr: addr(&v[o::ADDR], [0, 0, 0, 0])?,
        port: n[const { num(o::PORT) }] as u16,
        ready_window_ms: v[o::READY_WINDOW].map(|_| n[const { num(o::READY_WINDOW) }] * 1000),
        wait_ms: n[const { num(o::WAIT) }],
        timeout_ms: n[const { num(o::TIMEOUT) }],
        slots: n[const { num(o::SLOTS) }],
        state_file: state_file(v[o::STATE_FILE]),
        pid_file: path(v[o::PID_FILE]),
        #[cfg(feature = "feedback")]
        feedback: path(v[o::FEEDBACK]),
        allow,
        user: v[o::USER].map(given),
        group: v[o::GROUP].map(given),
        syslog: path(v[o::SYSLOG_SOCKET]).or(syslog),
        level: f.level,
    }))
}

/// Builds the `heft set` command from what was found.
fn parse_set(f: &Found) -> Result<Command, Usage> {
    let status = f.positional.and_then(Status::parse).ok_or(Usage {
        source: Text(const { at("STATUS") }),
        value: f.positional.map(OsStr::from_bytes),
        expected: const { line("UP READY DRAIN MAINT DOWN FAIL or STOPPED") },
    })?;
    let v = &f.vals;
    let maxconn = match v[o::MAXCONN] {
        None => None,
        Some((_, val)) if val.as_bytes() == b"none" => Some(None),
        Some((src, val)) => Some(Some(number(src, val, &MAXCONN)? as u16)),
    };
    Ok(Command::Set(Set {
        status,
        weight: v[o::WEIGHT].map(|_| f.nums[const { num(o::WEIGHT) }] as u8),
        maxconn,
        reason: text(
            v[o::REASON],
            state::check_reason,
            const { line("at most 64 printable ASCII bytes without #") },
        )?,
        service: text(
            v[o::SERVICE],
            state::check_name,
            const { line("a name of 1 to 32 bytes of [A-Za-z0-9_.-]") },
        )?,
        state_file: state_file(v[o::STATE_FILE]),
        pid_file: path(v[o::PID_FILE]),
        level: f.level,
    }))
}

/// The range of `heft set --maxconn`, which also takes `none`.
const MAXCONN: Range = Range {
    min: 0,
    max: 65535,
    default: 0,
    expected: line("0 to 65535, or none"),
};

/// Returns the text given if `check` accepts it; `None` if none was given.
fn text(
    v: Option<Val>,
    check: fn(&[u8]) -> Result<(), state::StateError>,
    expected: Text,
) -> Result<Option<&'static str>, Usage> {
    let Some((src, val)) = v else {
        return Ok(None);
    };
    match crate::os::ascii_str(val.as_bytes()) {
        Some(s) if check(s.as_bytes()).is_ok() => Ok(Some(s)),
        _ => Err(bad(Text(src), val, expected)),
    }
}

/// Builds the `heft get` command from what was found.
fn parse_get(f: &Found) -> Result<Command, Usage> {
    let v = &f.vals;
    let mut send = heapless::Vec::new();
    if let Some((src, val)) = v[o::SEND] {
        unescape(val.as_bytes(), &mut send)
            .map_err(|_| bad(Text(src), val, const { line("at most 256 bytes") }))?;
    }
    Ok(Command::Get(Get {
        addr: addr(&v[o::GET_ADDR], [127, 0, 0, 1])?,
        port: f.nums[const { num(o::PORT) }] as u16,
        send,
        timeout_ms: f.nums[const { num(o::GET_TIMEOUT) }],
    }))
}

/// Copies `s` into `out`, turning `\n`, `\r`, `\t` and `\\` into their bytes.
fn unescape(s: &[u8], out: &mut heapless::Vec<u8, 256>) -> Result<(), num::Full> {
    let mut it = s.iter();
    while let Some(&c) = it.next() {
        let b = if c == b'\\' {
            match it.next() {
                Some(b'n') => b'\n',
                Some(b'r') => b'\r',
                Some(b't') => b'\t',
                Some(&o) => o,
                None => b'\\',
            }
        } else {
            c
        };
        out.push(b).map_err(|_| num::Full)?;
    }
    Ok(())
}

/// `HELP_TEXT` as stored: each run of two or more spaces (the columns) is one
/// byte, 0x80 + its length (x86_64 -336 B, mipsel -368 B).
const HELP: [u8; packed_len()] = pack();

/// Returns the length of `HELP`.
const fn packed_len() -> usize {
    let t = HELP_TEXT.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < t.len() {
        i += run(t, i);
        n += 1;
    }
    n
}

/// Returns how many bytes of `t` from `i` make one byte of `HELP`: a run of spaces, or 1.
const fn run(t: &[u8], i: usize) -> usize {
    let mut k = 0;
    while i + k < t.len() && t[i + k] == b' ' && k < 0x7f {
        k += 1;
    }
    if k > 1 {
        k
    } else {
        1
    }
}

/// Packs `HELP_TEXT` into `HELP`.
const fn pack() -> [u8; packed_len()] {
    let t = HELP_TEXT.as_bytes();
    let mut out = [0; packed_len()];
    let (mut i, mut n) = (0, 0);
    while i < t.len() {
        let k = run(t, i);
        out[n] = if k > 1 { 0x80 + k as u8 } else { t[i] };
        i += k;
        n += 1;
    }
    out
}

/// The length of the text `heft --help` prints.
pub const HELP_LEN: usize = HELP_TEXT.len();

/// Room for the text `heft --help` prints, made without clearing it first.
pub type HelpBuf = heapless::Vec<u8, HELP_LEN>;

/// Unpacks the text `heft --help` prints into `out`.
pub fn help(out: &mut HelpBuf) -> &[u8] {
    for &c in &HELP {
        let (c, k) = if c < 0x80 { (c, 1) } else { (b' ', c - 0x80) };
        for _ in 0..k {
            let _ = out.push(c);
        }
    }
    out
}

/// The help line of `--feedback`, when built with the `feedback` feature.
#[cfg(feature = "feedback")]
macro_rules! feedback_help {
    () => {
        "  --feedback PATH       HEFT_FEEDBACK                load feedback rules (none)\n"
    };
}
/// Without the `feedback` feature: no help line.
#[cfg(not(feature = "feedback"))]
macro_rules! feedback_help {
    () => {
        ""
    };
}

/// The text `heft --help` prints, as written; only `HELP` is in the binary.
const HELP_TEXT: &str = concat!(
    "\
usage: heft [serve] [options]      run the agent in the foreground
       heft set STATUS [options]   change the state file, then SIGHUP the agent
       heft get [options]          probe an agent and print its reply line
       heft --help | --version

serve options (each also read from the variable shown):
  --addr ADDR           HEFT_ADDR, HAPGENT_IP        listen address (0.0.0.0; :: is dual-stack)
  --port PORT           HEFT_PORT, HAPGENT_PORT      listen port (9777)
  --state-file PATH     HEFT_STATE_FILE, HAPGENT_STATE_FILE  (/etc/heft/state.json)
  --pid-file PATH       HEFT_PID_FILE                write the pid here (none)
  --ready-window SEC    HEFT_READY_WINDOW            send `ready` only SEC after a change (always)
  --wait MS             HEFT_WAIT                    wait for a payload or HTTP request (50)
  --timeout MS          HEFT_TIMEOUT                 close connections after MS (2000)
  --slots N             HEFT_SLOTS                   connections served at once (64)
",
    feedback_help!(),
    "\
  --allow CIDR,...      HEFT_ALLOW                   who may ask (everyone)
  --user NAME           HEFT_USER                    run as NAME after binding
  --group NAME          HEFT_GROUP                   run as group NAME after binding
  --syslog              HEFT_SYSLOG=1                log to /dev/log, facility daemon
  --syslog-socket PATH  HEFT_SYSLOG_SOCKET           log to this syslog socket instead
  -q | -v               HEFT_LOG=quiet|verbose       log less | more

set options: --weight N, --maxconn N|none, --reason TEXT, --service NAME,
             --state-file PATH, --pid-file PATH
get options: --addr ADDR (127.0.0.1), --port PORT, --send PAYLOAD (\\n \\r \\t
             understood), --timeout MS (2000)

exit codes: 0 stopped by SIGTERM/SIGINT (get: a whole line came back),
            1 get: no whole line, 100 bad usage or configuration,
            111 a system call failed at start-up
"
);

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&'static str], env: &[(&str, &'static str)]) -> Result<Command, Usage> {
        let lookup = |k: &str| env.iter().find(|e| e.0 == k).map(|e| e.1.as_bytes());
        parse(args.iter().map(|a| a.as_bytes()), &lookup)
    }

    fn serve(args: &[&'static str], env: &[(&str, &'static str)]) -> Serve {
        match run(args, env) {
            Ok(Command::Serve(s)) => s,
            _ => panic!("not serve"),
        }
    }

    #[test]
    fn option_indexes_name_their_options() {
        let flag = |i: usize| flag(&OPTS[i]);
        for (i, want) in [
            (o::ADDR, "--addr"),
            (o::PORT, "--port"),
            (o::STATE_FILE, "--state-file"),
            (o::PID_FILE, "--pid-file"),
            (o::READY_WINDOW, "--ready-window"),
            (o::WAIT, "--wait"),
            (o::TIMEOUT, "--timeout"),
            (o::SLOTS, "--slots"),
            #[cfg(feature = "feedback")]
            (o::FEEDBACK, "--feedback"),
            (o::ALLOW, "--allow"),
            (o::USER, "--user"),
            (o::GROUP, "--group"),
            (o::SYSLOG, "--syslog"),
            (o::SYSLOG_SOCKET, "--syslog-socket"),
            (o::WEIGHT, "--weight"),
            (o::MAXCONN, "--maxconn"),
            (o::REASON, "--reason"),
            (o::SERVICE, "--service"),
            (o::GET_ADDR, "--addr"),
            (o::SEND, "--send"),
            (o::GET_TIMEOUT, "--timeout"),
        ] {
            assert_eq!(flag(i), want);
        }
        assert_eq!(OPTS[o::GET_ADDR].cmds, GET);
        assert_eq!(OPTS[o::GET_TIMEOUT].cmds, GET);
    }

    #[test]
    fn texts_come_back_whole() {
        for l in LINES.lines() {
            assert_eq!(line(l).text(), l);
        }
        assert_eq!(Text(at("HEFT_SYSLOG")).text(), "HEFT_SYSLOG");
    }

    #[test]
    fn help_unpacks_to_the_text() {
        assert_eq!(help(&mut HelpBuf::new()), HELP_TEXT.as_bytes());
    }

    #[test]
    fn defaults() {
        let s = serve(&[], &[]);
        assert_eq!(s.addr.to_string(), "0.0.0.0");
        assert_eq!(s.port, 9777);
        assert_eq!(s.state_file, Path::new("/etc/heft/state.json"));
        assert!(s.pid_file.is_none() && s.ready_window_ms.is_none());
    }

    #[test]
    fn flag_beats_variable_beats_hapgent() {
        let env = [
            ("HEFT_PORT", "1000"),
            ("HAPGENT_PORT", "2000"),
            ("HAPGENT_IP", "127.0.0.1"),
        ];
        assert_eq!(serve(&["--port", "3000"], &env).port, 3000);
        assert_eq!(serve(&["--port=3001"], &env).port, 3001);
        assert_eq!(serve(&[], &env).port, 1000);
        assert_eq!(serve(&[], &env[1..]).port, 2000);
        assert_eq!(serve(&["serve"], &env).addr.to_string(), "127.0.0.1");
        assert_eq!(serve(&["--addr", "::"], &env).addr.to_string(), "::");
        let s = serve(
            &[],
            &[
                ("HAPGENT_STATE_FILE", "/x.json"),
                ("HEFT_READY_WINDOW", "6"),
            ],
        );
        assert_eq!(
            (s.state_file, s.ready_window_ms),
            (Path::new("/x.json"), Some(6000))
        );
    }

    #[test]
    fn names_bad_values() {
        let e = run(&["--port", "99999"], &[]).err().unwrap();
        assert_eq!(
            (e.source.text(), e.value.unwrap()),
            ("--port", OsStr::new("99999"))
        );
        let e = run(&[], &[("HEFT_PORT", "x")]).err().unwrap();
        assert_eq!(e.source.text(), "HEFT_PORT");
        assert_eq!(
            run(&["--addr", "1.2.3"], &[]).err().unwrap().source.text(),
            "--addr"
        );
        assert_eq!(
            run(&["--bogus"], &[]).err().unwrap().source.text(),
            "option"
        );
        assert_eq!(run(&["--port"], &[]).err().unwrap().source.text(), "--port");
    }

    #[test]
    fn levels_and_syslog_switch() {
        assert_eq!(
            serve(&["-q"], &[("HEFT_LOG", "verbose")]).level,
            Level::Error
        );
        assert_eq!(serve(&[], &[("HEFT_LOG", "verbose")]).level, Level::Debug);
        assert_eq!(serve(&[], &[("HEFT_LOG", "--quiet")]).level, Level::Info);
        assert_eq!(
            run(&["quiet"], &[]).err().unwrap().source.text(),
            "argument"
        );
        assert_eq!(run(&["-q=1"], &[]).err().unwrap().source.text(), "option");
        assert_eq!(
            serve(&["--syslog"], &[]).syslog,
            Some(Path::new("/dev/log"))
        );
        assert_eq!(serve(&[], &[("HEFT_SYSLOG", "no")]).syslog, None);
        let e = run(&[], &[("HEFT_SYSLOG", "on")]).err().unwrap();
        assert_eq!(
            (e.source.text(), e.expected.text()),
            ("HEFT_SYSLOG", "1 or 0")
        );
    }

    #[test]
    fn set_and_get() {
        match run(
            &[
                "set",
                "drain",
                "--weight",
                "5",
                "--maxconn",
                "none",
                "--reason",
                "x y",
            ],
            &[],
        ) {
            Ok(Command::Set(s)) => {
                assert_eq!(
                    (s.status, s.weight, s.maxconn),
                    (Status::Drain, Some(5), Some(None))
                );
                assert_eq!(s.reason, Some("x y"));
            }
            _ => panic!(),
        }
        assert_eq!(
            run(&["set", "up", "--reason", "a#b"], &[])
                .err()
                .unwrap()
                .source
                .text(),
            "--reason"
        );
        assert_eq!(run(&["set"], &[]).err().unwrap().source.text(), "STATUS");
        match run(&["get", "--send", "web\\n", "--port", "1"], &[]) {
            Ok(Command::Get(g)) => assert_eq!((&g.send[..], g.port), (&b"web\n"[..], 1)),
            _ => panic!(),
        }
    }
}
