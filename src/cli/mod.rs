//! Reads the command line and environment into the options of one command; does no I/O.
//!
//! Each subcommand has one function with one `match` over its flags, and a
//! table of its flags with the variables that may give each. A flag beats its
//! `HEFT_*` variable, which beats hapgent's variable, which beats the default.
//! A bad value is reported naming the flag or variable that gave it.
//!
//! Adding an option: a `Flag` with its name (unless another subcommand has
//! it already), one line in its subcommand's flag table (with its variables,
//! if any), one arm in the subcommand's `match`, and one line in its help
//! file.

pub mod get;
pub mod set;

use std::ffi::{OsStr, OsString};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::log::Level;
use crate::model::state::{self, Status};
use crate::num;
use crate::server::allow::AllowList;

/// The default agent port, hapgent's.
pub const DEFAULT_PORT: u16 = 9777;
/// The HTTP port when only `--http-addr` is given.
pub const DEFAULT_HTTP_PORT: u16 = 9778;
/// The default state file.
pub const DEFAULT_STATE_FILE: &str = "/etc/heft/state.json";
/// How long (ms) to wait for a payload's first word when the state has services.
pub const DEFAULT_WAIT_MS: u32 = 50;
/// How long (ms) a connection may live in all.
pub const DEFAULT_TIMEOUT_MS: u32 = 2000;
/// How many connections are served at once.
pub const DEFAULT_SLOTS: u32 = 64;
/// The most connection slots one agent may have.
pub const SLOTS_MAX: u32 = 1024;

/// What `heft --help`, `heft help` and `heft serve --help` print.
pub const HELP: &str = include_str!("help.txt");
/// What `heft set --help` and `heft help set` print.
pub const SET_HELP: &str = include_str!("set-help.txt");
/// What `heft get --help` and `heft help get` print.
pub const GET_HELP: &str = include_str!("get-help.txt");
/// What `heft check --help` and `heft help check` print.
pub const CHECK_HELP: &str = include_str!("check-help.txt");

/// Looks up an environment variable: `heft::os::env` in `main`, a map in tests.
/// Values, like the arguments, live as long as the process, so the options
/// borrow them instead of copying them.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<&'static OsStr>;

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
    /// Check the state file and the feedback rules that `serve` with these options would read.
    Check(Serve),
    /// Print this help text.
    Help(&'static str),
    /// Print the version.
    Version,
}

/// Options of `heft serve`.
pub struct Serve {
    /// Address to listen on (`::` is dual-stack).
    pub addr: IpAddr,
    /// The IPv6 scope given after `%`: an interface's name or index; empty for none.
    pub scope: Scope,
    /// Port to listen on.
    pub port: u16,
    /// Where to answer HTTP (health and `/metrics`), if anywhere: the
    /// address (`addr` if none) and the port (`DEFAULT_HTTP_PORT` if none);
    /// see `http`.
    pub http_addr: Option<IpAddr>,
    /// The IPv6 scope of `http_addr`, as `scope`.
    pub http_scope: Scope,
    /// The HTTP port, if given.
    pub http_port: Option<u16>,
    /// The JSON state file.
    pub state_file: &'static Path,
    /// The flag or variable that named the state file; empty for the default.
    pub state_from: &'static str,
    /// Where to write our pid, if anywhere.
    pub pid_file: Option<&'static Path>,
    /// How long `ready` is sent after start-up and each status change; `None`: always.
    pub ready_window_ms: Option<u32>,
    /// With services, how long to wait for a payload's first word before answering.
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
    /// User to run as after binding, and the flag or variable that said so.
    pub user: Option<Given>,
    /// Group to run as after binding, and the flag or variable that said so.
    pub group: Option<Given>,
    /// The syslog socket to log to, when logging to syslog.
    pub syslog: Option<&'static Path>,
    /// How much to log.
    pub level: Level,
}

impl Serve {
    /// Where to answer HTTP, with the address's scope: off unless its address or port is given.
    pub fn http(&self) -> Option<(&IpAddr, u16, &[u8])> {
        if self.http_addr.is_none() && self.http_port.is_none() {
            return None;
        }
        let port = self.http_port.unwrap_or(DEFAULT_HTTP_PORT);
        Some(match &self.http_addr {
            Some(a) => (a, port, &self.http_scope),
            None => (&self.addr, port, &self.scope),
        })
    }
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
    /// The flag or variable that named the state file; empty for the default.
    pub state_from: &'static str,
    /// The agent's pid file, to send it SIGHUP.
    pub pid_file: Option<&'static Path>,
    /// How much to log.
    pub level: Level,
}

/// Options of `heft get`.
pub struct Get {
    /// Agent address.
    pub addr: IpAddr,
    /// The IPv6 scope given after `%`, as `Serve::scope`.
    pub scope: Scope,
    /// Agent port.
    pub port: u16,
    /// Bytes to send after connecting, at most `SEND_MAX`.
    pub send: Send,
    /// How long to wait for the whole exchange.
    pub timeout_ms: u32,
}

/// An IPv6 scope as given after `%` (an interface's name, at most 15 bytes,
/// or index); empty for none. Resolved when the socket is made.
pub type Scope = heapless::Vec<u8, 15>;

/// The most bytes `heft get --send` sends.
pub const SEND_MAX: usize = 256;

/// The bytes `heft get --send` sends.
pub type Send = heapless::Vec<u8, SEND_MAX>;

/// A value kept as given, with the flag or variable that gave it, for
/// checks made after start-up (`--user`, `--group`).
#[derive(Debug, PartialEq)]
pub struct Given {
    /// The flag or variable, e.g. `--user` or `HEFT_USER`.
    pub source: &'static str,
    /// The value.
    pub value: &'static OsStr,
}

impl Given {
    /// The error for this value when it turns out not to be what `expected` says.
    pub fn bad(&self, expected: &'static str) -> Usage {
        Usage::Bad {
            source: self.source,
            value: self.value,
            wants: Wants::Text(expected),
        }
    }
}

/// What a value must be, as an error says it.
#[derive(Debug, PartialEq, Clone, Copy)]
pub enum Wants {
    /// Said as it is, e.g. `an IPv4 or IPv6 address`.
    Text(&'static str),
    /// A whole number from the first to the second, said after the text:
    /// `Range("a port number", 1, 65535)` is `a port number 1-65535`.
    Range(&'static str, u32, u32),
}

/// A bad command line or environment value; each exits 100.
#[derive(Debug, PartialEq)]
pub enum Usage {
    /// An option the subcommand does not have.
    Unknown {
        /// The option as given, without its `=value`.
        option: &'static OsStr,
        /// The help that lists the subcommand's options, e.g. `heft set --help`.
        page: &'static str,
    },
    /// An argument where the subcommand takes none, or no more.
    Unexpected {
        /// The argument.
        argument: &'static OsStr,
        /// The help that lists the subcommand's options.
        page: &'static str,
    },
    /// An option, or a subcommand's argument, given without its value.
    Missing {
        /// The flag, or the subcommand that wants an argument.
        option: &'static str,
        /// What the value must be.
        wants: Wants,
    },
    /// A value that is not what it must be.
    Bad {
        /// The flag or variable that gave it.
        source: &'static str,
        /// The value.
        value: &'static OsStr,
        /// What it must be.
        wants: Wants,
    },
}

impl Usage {
    /// Says the error line, e.g. `--port: bad value "x": expected a port
    /// number 1-65535`, piece by piece to `say`, so that it is written
    /// straight into a log line.
    pub fn say(&self, say: &mut dyn FnMut(&[u8])) {
        let (parts, wants): ([&[u8]; 5], _) = match self {
            Usage::Unknown { option, page } => (
                [
                    b"unknown option ",
                    option.as_bytes(),
                    b" (see ",
                    page.as_bytes(),
                    b")",
                ],
                None,
            ),
            Usage::Unexpected { argument, page } => (
                [
                    b"unexpected argument \"",
                    argument.as_bytes(),
                    b"\" (see ",
                    page.as_bytes(),
                    b")",
                ],
                None,
            ),
            Usage::Missing { option, wants } => {
                ([option.as_bytes(), b" wants ", b"", b"", b""], Some(wants))
            }
            Usage::Bad {
                source,
                value,
                wants,
            } => (
                [
                    source.as_bytes(),
                    b": bad value \"",
                    value.as_bytes(),
                    b"\": expected ",
                    b"",
                ],
                Some(wants),
            ),
        };
        for part in parts {
            say(part);
        }
        match wants {
            None => {}
            Some(Wants::Text(t)) => say(t.as_bytes()),
            Some(&Wants::Range(t, min, max)) => {
                say(t.as_bytes());
                say(b" ");
                say(num::fmt_u32(min, &mut [0; 10]));
                say(b"-");
                say(num::fmt_u32(max, &mut [0; 10]));
            }
        }
    }
}

/// Parses the arguments after the program name, reading variables through `env`.
// Kept out of `main`, where the commands would be copied between more stack slots.
#[inline(never)]
pub fn parse(args: &'static [OsString], env: Env) -> Result<Command, Usage> {
    let mut args = args.iter();
    // The subcommand the `i`th argument names, if it names one.
    let named = |args: &Args, i: usize| {
        let word = crate::os::ascii_str(args.as_slice().get(i)?.as_bytes())?;
        SUBCOMMANDS
            .iter()
            .find(|(name, _)| *name == word)
            .map(|&(_, sub)| sub)
    };
    let sub = match args
        .as_slice()
        .first()
        .and_then(|a| crate::os::ascii_str(a.as_bytes()))
    {
        Some("help" | "-h" | "--help") => {
            return Ok(Command::Help(named(&args, 1).map_or(HELP, |sub| sub.help)));
        }
        Some("version" | "-V" | "--version") => return Ok(Command::Version),
        _ => match named(&args, 0) {
            Some(sub) => {
                args.next();
                sub
            }
            None => &SERVE,
        },
    };
    let mut opts = Options::new(args, env, sub);
    let command = (sub.read)(&mut opts);
    match opts.error {
        None => Ok(command),
        Some(error) => Err(error),
    }
}

/// The subcommands by name, for `heft NAME` and `heft help NAME`.
const SUBCOMMANDS: [(&str, &Subcommand); 4] = [
    ("serve", &SERVE),
    ("set", &SET),
    ("get", &GET),
    ("check", &CHECK),
];

/// What `parse` and `Options` need to know of a subcommand.
struct Subcommand {
    /// Reads its options into its command (which means nothing once
    /// `Options::error` holds an error).
    read: fn(&mut Options) -> Command,
    /// Its help text, for `--help` and `heft help`.
    help: &'static str,
    /// The help that lists its options, for errors, e.g. `heft set --help`.
    page: &'static str,
    /// Its flags, each with the variables that may give it when the flag
    /// is not given, strongest first.
    flags: &'static [(Flag, &'static [&'static str])],
    /// Whether it takes an argument that is not an option (`heft set`'s STATUS).
    takes_argument: bool,
}

/// A flag of some subcommand, as `Options::next` returns it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flag {
    Addr,
    Port,
    HttpAddr,
    HttpPort,
    StateFile,
    PidFile,
    ReadyWindow,
    Wait,
    Timeout,
    Slots,
    Feedback,
    Allow,
    User,
    Group,
    Syslog,
    SyslogSocket,
    Weight,
    Maxconn,
    Reason,
    Service,
    Send,
    /// `-h` or `--help`, which every subcommand takes.
    Help,
}

impl Flag {
    /// The flag as typed, e.g. `--port`.
    fn name(self) -> &'static str {
        match self {
            Flag::Addr => "--addr",
            Flag::Port => "--port",
            Flag::HttpAddr => "--http-addr",
            Flag::HttpPort => "--http-port",
            Flag::StateFile => "--state-file",
            Flag::PidFile => "--pid-file",
            Flag::ReadyWindow => "--ready-window",
            Flag::Wait => "--wait",
            Flag::Timeout => "--timeout",
            Flag::Slots => "--slots",
            Flag::Feedback => "--feedback",
            Flag::Allow => "--allow",
            Flag::User => "--user",
            Flag::Group => "--group",
            Flag::Syslog => "--syslog",
            Flag::SyslogSocket => "--syslog-socket",
            Flag::Weight => "--weight",
            Flag::Maxconn => "--maxconn",
            Flag::Reason => "--reason",
            Flag::Service => "--service",
            Flag::Send => "--send",
            Flag::Help => "--help",
        }
    }
}

/// `heft serve`.
const SERVE: Subcommand = Subcommand {
    read: serve,
    help: HELP,
    page: "heft --help",
    flags: &[
        (Flag::Addr, &["HEFT_ADDR", "HAPGENT_IP"]),
        (Flag::Port, &["HEFT_PORT", "HAPGENT_PORT"]),
        (Flag::HttpAddr, &["HEFT_HTTP_ADDR"]),
        (Flag::HttpPort, &["HEFT_HTTP_PORT"]),
        (Flag::StateFile, &["HEFT_STATE_FILE", "HAPGENT_STATE_FILE"]),
        (Flag::PidFile, &["HEFT_PID_FILE"]),
        (Flag::ReadyWindow, &["HEFT_READY_WINDOW"]),
        (Flag::Wait, &["HEFT_WAIT"]),
        (Flag::Timeout, &["HEFT_TIMEOUT"]),
        (Flag::Slots, &["HEFT_SLOTS"]),
        (Flag::Feedback, &["HEFT_FEEDBACK"]),
        (Flag::Allow, &["HEFT_ALLOW"]),
        (Flag::User, &["HEFT_USER"]),
        (Flag::Group, &["HEFT_GROUP"]),
        (Flag::Syslog, &["HEFT_SYSLOG"]),
        (Flag::SyslogSocket, &["HEFT_SYSLOG_SOCKET"]),
    ],
    takes_argument: false,
};

/// Reads the options of `heft serve`.
fn serve(opts: &mut Options) -> Command {
    let mut s = Serve {
        addr: Ipv4Addr::UNSPECIFIED.into(),
        scope: Scope::new(),
        port: DEFAULT_PORT,
        http_addr: None,
        http_scope: Scope::new(),
        http_port: None,
        state_file: Path::new(DEFAULT_STATE_FILE),
        state_from: "",
        pid_file: None,
        ready_window_ms: None,
        wait_ms: DEFAULT_WAIT_MS,
        timeout_ms: DEFAULT_TIMEOUT_MS,
        slots: DEFAULT_SLOTS,
        #[cfg(feature = "feedback")]
        feedback: None,
        allow: AllowList::everyone(),
        user: None,
        group: None,
        syslog: None,
        level: Level::Info,
    };
    let (mut syslog, mut syslog_socket) = (false, None);
    while let Some(flag) = opts.next() {
        match flag {
            Flag::Addr => opts.addr(&mut s.addr, &mut s.scope),
            Flag::Port => s.port = opts.number(PORT, 1, 65535) as u16,
            Flag::HttpAddr => {
                let addr = s.http_addr.insert(Ipv4Addr::UNSPECIFIED.into());
                opts.addr(addr, &mut s.http_scope);
            }
            Flag::HttpPort => s.http_port = Some(opts.number(PORT, 1, 65535) as u16),
            Flag::StateFile => s.state_from = opts.path_from(&mut s.state_file),
            Flag::PidFile => opts.read_some(&mut s.pid_file, PATH, path),
            Flag::ReadyWindow => s.ready_window_ms = Some(opts.number("seconds", 1, 86_400) * 1000),
            Flag::Wait => s.wait_ms = opts.number("milliseconds", 0, 10_000),
            Flag::Timeout => s.timeout_ms = opts.number("milliseconds", 10, 60_000),
            Flag::Slots => s.slots = opts.number("a number", 1, SLOTS_MAX),
            #[cfg(feature = "feedback")]
            Flag::Feedback => opts.read_some(&mut s.feedback, PATH, path),
            #[cfg(not(feature = "feedback"))]
            Flag::Feedback => opts.read(&mut (), NO_FEEDBACK, |_| None),
            Flag::Allow => opts.take(ALLOW, &mut |v| s.allow.read(v.as_bytes())),
            Flag::User => opts.given(&mut s.user, "a user name or number"),
            Flag::Group => opts.given(&mut s.group, "a group name or number"),
            Flag::Syslog => syslog = opts.switch(),
            Flag::SyslogSocket => opts.read_some(&mut syslog_socket, PATH, path),
            Flag::Help => return Command::Help(opts.sub.help),
            // `next` returns only the flags of SERVE and `--help`.
            _ => unreachable!(),
        }
    }
    s.syslog = syslog_socket.or(syslog.then(|| Path::new("/dev/log")));
    s.level = opts.level();
    Command::Serve(s)
}

/// `heft set`.
const SET: Subcommand = Subcommand {
    read: set,
    help: SET_HELP,
    page: "heft set --help",
    flags: &[
        (Flag::Weight, &[]),
        (Flag::Maxconn, &[]),
        (Flag::Reason, &[]),
        (Flag::Service, &[]),
        (Flag::StateFile, &["HEFT_STATE_FILE", "HAPGENT_STATE_FILE"]),
        (Flag::PidFile, &["HEFT_PID_FILE"]),
    ],
    takes_argument: true,
};

/// Reads the status and options of `heft set`.
fn set(opts: &mut Options) -> Command {
    let mut s = Set {
        // Replaced by the STATUS argument, read once the options are.
        status: Status::Up,
        weight: None,
        maxconn: None,
        reason: None,
        service: None,
        state_file: Path::new(DEFAULT_STATE_FILE),
        state_from: "",
        pid_file: None,
        level: Level::Info,
    };
    while let Some(flag) = opts.next() {
        match flag {
            Flag::Weight => s.weight = Some(opts.number("a weight", 0, 255) as u8),
            Flag::Maxconn => opts.read_some(&mut s.maxconn, "a number 0-65535 or none", maxconn),
            Flag::Reason => opts.read_some(&mut s.reason, REASON, reason),
            Flag::Service => opts.read_some(&mut s.service, SERVICE, service),
            Flag::StateFile => s.state_from = opts.path_from(&mut s.state_file),
            Flag::PidFile => opts.read_some(&mut s.pid_file, PATH, path),
            Flag::Help => return Command::Help(opts.sub.help),
            // `next` returns only the flags of SET and `--help`.
            _ => unreachable!(),
        }
    }
    match opts.argument.take() {
        None => {
            let wants = "a STATUS: UP, READY, DRAIN, MAINT, DOWN, FAIL or STOPPED";
            opts.fail(Usage::Missing {
                option: "set",
                wants: Wants::Text(wants),
            });
        }
        Some(a) => match Status::parse(a.as_bytes()) {
            Some(status) => s.status = status,
            None => {
                let statuses = "UP, READY, DRAIN, MAINT, DOWN, FAIL or STOPPED";
                opts.fail(bad("STATUS", a, Wants::Text(statuses)));
            }
        },
    }
    s.level = opts.level();
    Command::Set(s)
}

/// `heft check`: `serve`'s options, read the same way.
const CHECK: Subcommand = Subcommand {
    read: check,
    help: CHECK_HELP,
    page: "heft check --help",
    flags: SERVE.flags,
    takes_argument: false,
};

/// Reads the options of `heft check`: those of `heft serve`.
fn check(opts: &mut Options) -> Command {
    match serve(opts) {
        Command::Serve(s) => Command::Check(s),
        help => help,
    }
}

/// `heft get`.
const GET: Subcommand = Subcommand {
    read: get,
    help: GET_HELP,
    page: "heft get --help",
    flags: &[
        (Flag::Addr, &[]),
        (Flag::Port, &["HEFT_PORT", "HAPGENT_PORT"]),
        (Flag::Send, &[]),
        (Flag::Timeout, &[]),
    ],
    takes_argument: false,
};

/// Reads the options of `heft get`.
fn get(opts: &mut Options) -> Command {
    let mut g = Get {
        addr: Ipv4Addr::LOCALHOST.into(),
        scope: Scope::new(),
        port: DEFAULT_PORT,
        send: Send::new(),
        timeout_ms: DEFAULT_TIMEOUT_MS,
    };
    while let Some(flag) = opts.next() {
        match flag {
            Flag::Addr => opts.addr(&mut g.addr, &mut g.scope),
            Flag::Port => g.port = opts.number(PORT, 1, 65535) as u16,
            Flag::Send => {
                let wants = "a payload of at most 256 bytes";
                opts.take(wants, &mut |v| unescape(v, &mut g.send));
            }
            Flag::Timeout => g.timeout_ms = opts.number("milliseconds", 1, 600_000),
            Flag::Help => return Command::Help(opts.sub.help),
            // `next` returns only the flags of GET and `--help`.
            _ => unreachable!(),
        }
    }
    Command::Get(g)
}

// What values must be, as errors say it.
const ADDR: &str = "an IPv4 or IPv6[%interface] address";
const PORT: &str = "a port number";
const PATH: &str = "a path";
/// What `--feedback` wants in a build without the `feedback` feature.
#[cfg(not(feature = "feedback"))]
const NO_FEEDBACK: &str = "a build with the feedback feature (this one leaves load feedback out)";
const ALLOW: &str = "CIDR[,CIDR...] like 10.0.0.0/8,::1/128";
const REASON: &str = "at most 64 printable ASCII bytes without #";
const SERVICE: &str = "a name of 1 to 32 bytes of [A-Za-z0-9_.-]";

/// Reads an IP address, bare or in brackets; an IPv6 one may end in
/// `%scope`, an interface's name or index (`fe80::1%br-lan`, `fe80::1%2`).
fn ip(v: &OsStr) -> Option<(IpAddr, Scope)> {
    let b = v.as_bytes();
    let b = b.strip_prefix(b"[").unwrap_or(b);
    let b = b.strip_suffix(b"]").unwrap_or(b);
    let (a, scope) = match b.iter().position(|&c| c == b'%') {
        Some(i) => (&b[..i], Some(&b[i + 1..]).filter(|s| !s.is_empty())?),
        None => (b, &b[..0]),
    };
    let ip = num::parse_ip(a)?;
    // An interface's name has at most 15 bytes (the kernel judges the rest).
    let scope = Scope::from_slice(scope).ok()?;
    (ip.is_ipv6() || scope.is_empty()).then_some((ip, scope))
}

/// Reads a path: anything but nothing.
fn path(v: &'static OsStr) -> Option<&'static Path> {
    (!v.is_empty()).then(|| Path::new(v))
}

/// Reads `heft set --maxconn`: a number, or `none` to remove it.
fn maxconn(v: &OsStr) -> Option<Option<u16>> {
    match v.as_bytes() {
        b"none" => Some(None),
        n => Some(Some(u16::try_from(num::parse_u32(n)?).ok()?)),
    }
}

/// Reads `heft set --reason`, checked to fit a state file's reason.
fn reason(v: &'static OsStr) -> Option<&'static str> {
    let s = crate::os::ascii_str(v.as_bytes())?;
    state::check_reason(s.as_bytes()).ok()?;
    Some(s)
}

/// Reads `heft set --service`, checked to be a service's name.
fn service(v: &'static OsStr) -> Option<&'static str> {
    let s = crate::os::ascii_str(v.as_bytes())?;
    state::check_name(s.as_bytes()).ok()?;
    Some(s)
}

/// Reads `heft get --send` into `out`, turning `\n`, `\r`, `\t` and `\\`
/// into their bytes (a backslash before any other byte stands for that
/// byte); false if it does not fit.
fn unescape(v: &OsStr, out: &mut Send) -> bool {
    out.clear();
    let mut it = v.as_bytes().iter();
    while let Some(&c) = it.next() {
        let b = if c != b'\\' {
            c
        } else {
            match it.next() {
                Some(b'n') => b'\n',
                Some(b'r') => b'\r',
                Some(b't') => b'\t',
                Some(&o) => o,
                None => b'\\',
            }
        };
        if out.push(b).is_err() {
            return false;
        }
    }
    true
}

/// The arguments not yet read, borrowed for the life of the process.
type Args = std::slice::Iter<'static, OsString>;

/// The error for a bad `value` from `source`.
fn bad(source: &'static str, value: &'static OsStr, wants: Wants) -> Usage {
    Usage::Bad {
        source,
        value,
        wants,
    }
}

/// The flags every subcommand takes besides its own: `-h` (help), and `-q`
/// and `-v` with the level each asks for.
const COMMON_FLAGS: [(&str, Option<Level>); 6] = [
    ("-h", None),
    ("--help", None),
    ("-q", Some(Level::Error)),
    ("--quiet", Some(Level::Error)),
    ("-v", Some(Level::Debug)),
    ("--verbose", Some(Level::Debug)),
];

/// The options of one subcommand as they are found: first the flags in the
/// arguments, in order, then the variables for the flags that were not given.
/// `next` returns each option's flag; `read` and the others then read its value.
///
/// The first bad value is kept in `error`, and then `next` finds no more
/// options: the readers return a stand-in value instead of failing, and
/// `parse` returns the error instead of the command.
///
/// `-h`, `-q`, `-v` and `HEFT_LOG`, which every subcommand takes, are read
/// here; so is the argument that is not an option (`heft set`'s STATUS).
struct Options<'a> {
    /// The arguments not yet read.
    args: Args,
    /// Looks up variables.
    env: Env<'a>,
    /// The subcommand.
    sub: &'static Subcommand,
    /// Whether all the arguments have been read, and the variables are being.
    args_done: bool,
    /// How many of the subcommand's flags have had their variables looked at.
    vars_read: usize,
    /// The flags given, a bit each (`1 << flag`).
    given: u32,
    /// The argument that is not an option, once found; only `heft set` takes one.
    argument: Option<&'static OsStr>,
    /// The level `-q` or `-v` asked for.
    level: Option<Level>,
    /// The flag of the option found last, e.g. `--port`, also when a variable gave it.
    flag: &'static str,
    /// The flag or variable that gave it, e.g. `--port` or `HEFT_PORT`.
    source: &'static str,
    /// Its value given with `--flag=value`, or its variable's.
    inline: Option<&'static OsStr>,
    /// What was wrong first, once something was.
    error: Option<Usage>,
}

impl<'a> Options<'a> {
    fn new(args: Args, env: Env<'a>, sub: &'static Subcommand) -> Options<'a> {
        Options {
            args,
            env,
            sub,
            args_done: false,
            vars_read: 0,
            given: 0,
            argument: None,
            level: None,
            flag: "",
            source: "",
            inline: None,
            error: None,
        }
    }

    /// Keeps `error` for `parse` to return, unless an earlier one is kept.
    #[cold]
    #[inline(never)]
    fn fail(&mut self, error: Usage) {
        self.error.get_or_insert(error);
    }

    /// Finds the next option and returns its flag, or `None` when all have
    /// been found or something was wrong.
    fn next(&mut self) -> Option<Flag> {
        if !self.args_done {
            if let Some(flag) = self.next_flag() {
                self.given |= 1 << flag as u32;
                (self.flag, self.source) = (flag.name(), flag.name());
                return Some(flag);
            }
            self.args_done = true;
        }
        while self.error.is_none() {
            let &(flag, vars) = self.sub.flags.get(self.vars_read)?;
            self.vars_read += 1;
            if self.given & 1 << flag as u32 != 0 {
                continue;
            }
            for &var in vars {
                if let Some(value) = (self.env)(var).filter(|v| !v.is_empty()) {
                    (self.flag, self.source, self.inline) = (flag.name(), var, Some(value));
                    return Some(flag);
                }
            }
        }
        None
    }

    /// Reads the arguments up to the next flag the subcommand is to look at
    /// and returns it, keeping the value given with it as `--flag=value`.
    fn next_flag(&mut self) -> Option<Flag> {
        while self.error.is_none() {
            let arg = self.args.next()?.as_os_str();
            let b = arg.as_bytes();
            if b.len() < 2 || b[0] != b'-' {
                if !self.sub.takes_argument || self.argument.is_some() {
                    self.fail(Usage::Unexpected {
                        argument: arg,
                        page: self.sub.page,
                    });
                } else {
                    self.argument = Some(arg);
                }
                continue;
            }
            let (name, inline) = match b.iter().position(|&c| c == b'=') {
                Some(i) => (&b[..i], Some(OsStr::from_bytes(&b[i + 1..]))),
                None => (b, None),
            };
            self.inline = inline;
            let own = self
                .sub
                .flags
                .iter()
                .find(|(f, _)| f.name().as_bytes() == name);
            if let Some(&(flag, _)) = own {
                return Some(flag);
            }
            let Some(&(flag, level)) = COMMON_FLAGS.iter().find(|(f, _)| f.as_bytes() == name)
            else {
                let option = OsStr::from_bytes(name);
                self.fail(Usage::Unknown {
                    option,
                    page: self.sub.page,
                });
                continue;
            };
            match level {
                None => return Some(Flag::Help),
                Some(level) => self.level = Some(level),
            }
            if let Some(v) = self.inline.take() {
                self.fail(bad(flag, v, Wants::Text("no value")));
            }
        }
        None
    }

    /// The level asked for: by `-q` or `-v` (the last given), else by
    /// `HEFT_LOG` (`quiet` or `verbose`; other values are ignored), else `Info`.
    fn level(&self) -> Level {
        let var = || match crate::os::ascii_str((self.env)("HEFT_LOG")?.as_bytes())? {
            "quiet" => Some(Level::Error),
            "verbose" => Some(Level::Debug),
            _ => None,
        };
        self.level.or_else(var).unwrap_or(Level::Info)
    }

    /// Refuses the option's `value`, which is not what `wants` says.
    #[cold]
    #[inline(never)]
    fn refuse(&mut self, value: &'static OsStr, wants: Wants) {
        self.fail(bad(self.source, value, wants))
    }

    /// Takes the option's value: the one after `=` or the variable's, else
    /// the next argument; `wants` says what it must be if there is none.
    fn value(&mut self, wants: Wants) -> Option<&'static OsStr> {
        let value = self
            .inline
            .take()
            .or_else(|| self.args.next().map(|a| a.as_os_str()));
        if value.is_none() {
            self.fail(Usage::Missing {
                option: self.flag,
                wants,
            });
        }
        value
    }

    /// Reads the option's value into `to` with `read`; names the flag or
    /// variable if the value is missing or `read` refuses it, saying what
    /// was wanted.
    fn read<T>(&mut self, to: &mut T, wants: &'static str, read: fn(&'static OsStr) -> Option<T>) {
        self.take(wants, &mut |v| read(v).map(|v| *to = v).is_some())
    }

    /// Reads an address and its IPv6 scope (`--addr`) into `addr` and `scope`.
    fn addr(&mut self, addr: &mut IpAddr, scope: &mut Scope) {
        self.take(ADDR, &mut |v| ip(v).map(|a| (*addr, *scope) = a).is_some())
    }

    /// Reads a path into `to`; returns the flag or variable that gave it.
    fn path_from(&mut self, to: &mut &'static Path) -> &'static str {
        self.read(to, PATH, path);
        self.source
    }

    /// Reads the option's value into `to` as `read` does, when `to` is an `Option`.
    fn read_some<T>(
        &mut self,
        to: &mut Option<T>,
        wants: &'static str,
        read: fn(&'static OsStr) -> Option<T>,
    ) {
        self.take(wants, &mut |v| read(v).map(|v| *to = Some(v)).is_some())
    }

    /// Takes the option's value and hands it to `store`, which keeps it and
    /// says true, or refuses it; not generic, so each value type adds only
    /// its small `store`.
    #[inline(never)]
    fn take(&mut self, wants: &'static str, store: &mut dyn FnMut(&'static OsStr) -> bool) {
        let wants = Wants::Text(wants);
        if let Some(value) = self.value(wants) {
            if !store(value) {
                self.refuse(value, wants);
            }
        }
    }

    /// Reads a whole number from `min` to `max`; `what` names it in errors.
    /// A bad or missing one reads as `min`.
    fn number(&mut self, what: &'static str, min: u32, max: u32) -> u32 {
        let wants = Wants::Range(what, min, max);
        let Some(value) = self.value(wants) else {
            return min;
        };
        match num::parse_u32(value.as_bytes()) {
            Some(n) if min <= n && n <= max => n,
            _ => {
                self.refuse(value, wants);
                min
            }
        }
    }

    /// Reads into `to` a value kept as given, with its source, for checks made later.
    fn given(&mut self, to: &mut Option<Given>, wants: &'static str) {
        let mut value = OsStr::new("");
        self.read(&mut value, wants, |v| (!v.is_empty()).then_some(v));
        *to = Some(Given {
            source: self.source,
            value,
        });
    }

    /// Reads a switch: the flag, which takes no value, turns it on; its
    /// variable turns it on with `1` or `yes`, off with `0` or `no`.
    fn switch(&mut self) -> bool {
        if self.args_done {
            let mut on = false;
            self.read(&mut on, "1, yes, 0 or no", |v| match v.as_bytes() {
                b"1" | b"yes" => Some(true),
                b"0" | b"no" => Some(false),
                _ => None,
            });
            return on;
        }
        if let Some(v) = self.inline.take() {
            self.fail(bad(self.flag, v, Wants::Text("no value")));
        }
        true
    }
}

#[cfg(test)]
mod tests;
