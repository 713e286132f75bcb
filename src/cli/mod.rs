//! Reads the command line and environment into the options of one command; does no I/O.
//!
//! Each subcommand has one function with one `match` over its flags, and a
//! table of the variables it reads. A flag beats its `HEFT_*` variable, which
//! beats hapgent's variable, which beats the default. A bad value is reported
//! naming the flag or variable that gave it.
//!
//! Adding an option: one arm in its subcommand's `match`, one line in its
//! help file, and one line in the subcommand's variable table if a variable
//! may also give it.

pub mod get;
pub mod set;
pub mod wait_idle;

use std::ffi::{OsStr, OsString};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::log::Level;
use crate::model::state::{self, Status};
use crate::num;
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

/// What `heft --help`, `heft help` and `heft serve --help` print.
pub const HELP: &str = include_str!("help.txt");
/// What `heft set --help` and `heft help set` print.
pub const SET_HELP: &str = include_str!("set-help.txt");
/// What `heft get --help` and `heft help get` print.
pub const GET_HELP: &str = include_str!("get-help.txt");

/// Looks up an environment variable: `std::env::var_os` in `main`, a map in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

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
    /// Print this help text.
    Help(&'static str),
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
    pub state_file: PathBuf,
    /// Where to write our pid, if anywhere.
    pub pid_file: Option<PathBuf>,
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
    pub feedback: Option<PathBuf>,
    /// Who may ask.
    pub allow: AllowList,
    /// User to run as after binding, and the flag or variable that said so.
    pub user: Option<Given>,
    /// Group to run as after binding, and the flag or variable that said so.
    pub group: Option<Given>,
    /// The syslog socket to log to, when logging to syslog.
    pub syslog: Option<PathBuf>,
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
    pub reason: Option<String>,
    /// The service to change instead of the top level; checked to fit a `Name`.
    pub service: Option<String>,
    /// The state file.
    pub state_file: PathBuf,
    /// The agent's pid file, to send it SIGHUP.
    pub pid_file: Option<PathBuf>,
    /// How much to log.
    pub level: Level,
    /// The local ports to wait for idleness on afterwards (`--wait-idle`),
    /// then zeros; all zeros: no wait.
    pub wait_idle: [u16; wait_idle::PORTS_MAX],
    /// The longest wait, in seconds from the start (`--idle-timeout`); `None`: no limit.
    pub idle_timeout_s: Option<u32>,
    /// The wait before counting, in seconds (`--settle`); `None`: the default.
    pub settle_s: Option<u32>,
}

/// Options of `heft get`.
pub struct Get {
    /// Agent address.
    pub addr: IpAddr,
    /// Agent port.
    pub port: u16,
    /// Bytes to send after connecting, at most `SEND_MAX`.
    pub send: Vec<u8>,
    /// How long to wait for the whole exchange.
    pub timeout_ms: u32,
}

/// The most bytes `heft get --send` sends.
pub const SEND_MAX: usize = 256;

/// A value kept as given, with the flag or variable that gave it, for
/// checks made after start-up (`--user`, `--group`).
#[derive(Debug, PartialEq)]
pub struct Given {
    /// The flag or variable, e.g. `--user` or `HEFT_USER`.
    pub source: String,
    /// The value.
    pub value: OsString,
}

impl Given {
    /// The error for this value when it turns out not to be what `expected` says.
    pub fn bad(&self, expected: &'static str) -> Usage {
        Usage::Bad {
            source: self.source.clone(),
            value: self.value.clone(),
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
        /// The option as given.
        option: OsString,
        /// The help that lists the subcommand's options, e.g. `heft set --help`.
        page: &'static str,
    },
    /// An argument where the subcommand takes none, or no more.
    Unexpected {
        /// The argument.
        argument: OsString,
        /// The help that lists the subcommand's options.
        page: &'static str,
    },
    /// An option, or a subcommand's argument, given without its value.
    Missing {
        /// The flag, or the subcommand that wants an argument.
        option: String,
        /// What the value must be.
        wants: Wants,
    },
    /// A value that is not what it must be.
    Bad {
        /// The flag or variable that gave it.
        source: String,
        /// The value.
        value: OsString,
        /// What it must be.
        wants: Wants,
    },
}

impl Usage {
    /// The error line, e.g. `--port: bad value "x": expected a port number 1-65535`.
    pub fn message(&self) -> Vec<u8> {
        match self {
            Usage::Unknown { option, page } => [
                b"unknown option ",
                option.as_bytes(),
                b" (see ",
                page.as_bytes(),
                b")",
            ]
            .concat(),
            Usage::Unexpected { argument, page } => [
                b"unexpected argument \"",
                argument.as_bytes(),
                b"\" (see ",
                page.as_bytes(),
                b")",
            ]
            .concat(),
            Usage::Missing { option, wants } => {
                [option.as_bytes(), b" wants ", &wants.text()].concat()
            }
            Usage::Bad {
                source,
                value,
                wants,
            } => [
                source.as_bytes(),
                b": bad value \"",
                value.as_bytes(),
                b"\": expected ",
                &wants.text(),
            ]
            .concat(),
        }
    }
}

impl Wants {
    /// Says what is wanted, e.g. `a port number 1-65535`.
    pub fn text(&self) -> Vec<u8> {
        match *self {
            Wants::Text(t) => t.as_bytes().to_vec(),
            Wants::Range(t, min, max) => {
                let (mut a, mut b) = ([0; 10], [0; 10]);
                let (min, max) = (num::fmt_u32(min, &mut a), num::fmt_u32(max, &mut b));
                [t.as_bytes(), b" ", min, b"-", max].concat()
            }
        }
    }
}

/// Parses the arguments after the program name, reading variables through `env`.
///
/// Errors are boxed here and below: they are large and rare, and a box
/// keeps each `?` a pointer's move (x86_64 -2 KB).
// Kept out of `main`, where the commands would be copied between more stack slots.
#[inline(never)]
pub fn parse(args: impl IntoIterator<Item = OsString>, env: Env) -> Result<Command, Box<Usage>> {
    let mut args = args.into_iter().peekable();
    let first = args.peek().and_then(|a| a.to_str());
    match first {
        Some("help" | "-h" | "--help") => {
            args.next();
            Ok(Command::Help(
                match args.next().as_ref().and_then(|a| a.to_str()) {
                    Some("set") => SET_HELP,
                    Some("get") => GET_HELP,
                    _ => HELP,
                },
            ))
        }
        Some("version" | "-V" | "--version") => Ok(Command::Version),
        Some("set") => {
            args.next();
            set(&mut args, env)
        }
        Some("get") => {
            args.next();
            get(&mut args, env)
        }
        Some("serve") => {
            args.next();
            serve(&mut args, env)
        }
        _ => serve(&mut args, env),
    }
}

/// The variables `heft serve` reads for the flags not given: each flag, then
/// its variables, strongest first.
const SERVE_VARS: &[(&str, &[&str])] = &[
    ("--addr", &["HEFT_ADDR", "HAPGENT_IP"]),
    ("--port", &["HEFT_PORT", "HAPGENT_PORT"]),
    ("--state-file", &["HEFT_STATE_FILE", "HAPGENT_STATE_FILE"]),
    ("--pid-file", &["HEFT_PID_FILE"]),
    ("--ready-window", &["HEFT_READY_WINDOW"]),
    ("--wait", &["HEFT_WAIT"]),
    ("--timeout", &["HEFT_TIMEOUT"]),
    ("--slots", &["HEFT_SLOTS"]),
    ("--feedback", &["HEFT_FEEDBACK"]),
    ("--allow", &["HEFT_ALLOW"]),
    ("--user", &["HEFT_USER"]),
    ("--group", &["HEFT_GROUP"]),
    ("--syslog", &["HEFT_SYSLOG"]),
    ("--syslog-socket", &["HEFT_SYSLOG_SOCKET"]),
];

/// Reads the options of `heft serve`.
fn serve(args: &mut dyn Iterator<Item = OsString>, env: Env) -> Result<Command, Box<Usage>> {
    let mut s = Serve {
        addr: Ipv4Addr::UNSPECIFIED.into(),
        port: DEFAULT_PORT,
        state_file: DEFAULT_STATE_FILE.into(),
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
    let mut opts = Options::new(args, env, "heft --help", SERVE_VARS, 0);
    while let Some(mut o) = opts.next()? {
        match o.flag.as_str() {
            "--addr" => s.addr = o.value(ADDR, ip)?,
            "--port" => s.port = o.number(PORT, 1, 65535)? as u16,
            "--state-file" => s.state_file = o.value(PATH, path)?,
            "--pid-file" => s.pid_file = Some(o.value(PATH, path)?),
            "--ready-window" => s.ready_window_ms = Some(o.number("seconds", 1, 86_400)? * 1000),
            "--wait" => s.wait_ms = o.number("milliseconds", 0, 10_000)?,
            "--timeout" => s.timeout_ms = o.number("milliseconds", 10, 60_000)?,
            "--slots" => s.slots = o.number("a number", 1, SLOTS_MAX)?,
            #[cfg(feature = "feedback")]
            "--feedback" => s.feedback = Some(o.value(PATH, path)?),
            #[cfg(not(feature = "feedback"))]
            "--feedback" => return Err(o.value(NO_FEEDBACK, |_| None::<()>).unwrap_err()),
            "--allow" => s.allow = o.value(ALLOW, |v| AllowList::parse(v.as_bytes()))?,
            "--user" => s.user = Some(o.given("a user name or number")?),
            "--group" => s.group = Some(o.given("a group name or number")?),
            "--syslog" => syslog = o.switch()?,
            "--syslog-socket" => syslog_socket = Some(o.value(PATH, path)?),
            "-h" | "--help" => return Ok(Command::Help(HELP)),
            _ => return Err(o.unknown()),
        }
    }
    s.syslog = syslog_socket.or(syslog.then(|| "/dev/log".into()));
    s.level = opts.level();
    Ok(Command::Serve(s))
}

/// The variables `heft set` reads for the flags not given, as `SERVE_VARS`.
const SET_VARS: &[(&str, &[&str])] = &[
    ("--state-file", &["HEFT_STATE_FILE", "HAPGENT_STATE_FILE"]),
    ("--pid-file", &["HEFT_PID_FILE"]),
];

/// Reads the status and options of `heft set`.
fn set(args: &mut dyn Iterator<Item = OsString>, env: Env) -> Result<Command, Box<Usage>> {
    let mut s = Set {
        // Replaced by the STATUS argument, read once the options are.
        status: Status::Up,
        weight: None,
        maxconn: None,
        reason: None,
        service: None,
        state_file: DEFAULT_STATE_FILE.into(),
        pid_file: None,
        level: Level::Info,
        wait_idle: [0; wait_idle::PORTS_MAX],
        idle_timeout_s: None,
        settle_s: None,
    };
    let mut opts = Options::new(args, env, "heft set --help", SET_VARS, 1);
    while let Some(mut o) = opts.next()? {
        match o.flag.as_str() {
            "--weight" => s.weight = Some(o.number("a weight", 0, 255)? as u8),
            "--maxconn" => s.maxconn = Some(o.value("a number 0-65535 or none", maxconn)?),
            "--reason" => s.reason = Some(o.value(REASON, reason)?),
            "--service" => s.service = Some(o.value(SERVICE, service)?),
            "--state-file" => s.state_file = o.value(PATH, path)?,
            "--pid-file" => s.pid_file = Some(o.value(PATH, path)?),
            "--wait-idle" => s.wait_idle = o.value(wait_idle::WANTS, wait_idle::ports)?,
            "--idle-timeout" => s.idle_timeout_s = Some(o.number("seconds", 1, 86_400)?),
            "--settle" => s.settle_s = Some(o.number("seconds", 0, 3600)?),
            "-h" | "--help" => return Ok(Command::Help(SET_HELP)),
            _ => return Err(o.unknown()),
        }
    }
    s.status = match opts.arguments.pop() {
        None => {
            return Err(Box::new(Usage::Missing {
                option: "set".into(),
                wants: Wants::Text("a STATUS: UP, READY, DRAIN, MAINT, DOWN, FAIL or STOPPED"),
            }))
        }
        Some(a) => Status::parse(a.as_bytes()).ok_or_else(|| Usage::Bad {
            source: "STATUS".into(),
            value: a,
            wants: Wants::Text("UP, READY, DRAIN, MAINT, DOWN, FAIL or STOPPED"),
        })?,
    };
    s.level = opts.level();
    wait_idle::check(&s)?;
    Ok(Command::Set(s))
}

/// The variables `heft get` reads for the flags not given, as `SERVE_VARS`.
const GET_VARS: &[(&str, &[&str])] = &[("--port", &["HEFT_PORT", "HAPGENT_PORT"])];

/// Reads the options of `heft get`.
fn get(args: &mut dyn Iterator<Item = OsString>, env: Env) -> Result<Command, Box<Usage>> {
    let mut g = Get {
        addr: Ipv4Addr::LOCALHOST.into(),
        port: DEFAULT_PORT,
        send: Vec::new(),
        timeout_ms: DEFAULT_TIMEOUT_MS,
    };
    let mut opts = Options::new(args, env, "heft get --help", GET_VARS, 0);
    while let Some(mut o) = opts.next()? {
        match o.flag.as_str() {
            "--addr" => g.addr = o.value(ADDR, ip)?,
            "--port" => g.port = o.number(PORT, 1, 65535)? as u16,
            "--send" => g.send = o.value("a payload of at most 256 bytes", unescape)?,
            "--timeout" => g.timeout_ms = o.number("milliseconds", 1, 600_000)?,
            "-h" | "--help" => return Ok(Command::Help(GET_HELP)),
            _ => return Err(o.unknown()),
        }
    }
    Ok(Command::Get(g))
}

// What values must be, as errors say it.
const ADDR: &str = "an IPv4 or IPv6 address";
const PORT: &str = "a port number";
const PATH: &str = "a path";
/// What `--feedback` wants in a build without the `feedback` feature.
#[cfg(not(feature = "feedback"))]
const NO_FEEDBACK: &str = "a build with the feedback feature (this one leaves load feedback out)";
const ALLOW: &str = "CIDR[,CIDR...] like 10.0.0.0/8,::1/128";
const REASON: &str = "at most 64 printable ASCII bytes without #";
const SERVICE: &str = "a name of 1 to 64 bytes of [A-Za-z0-9_./-]";

/// Reads an IP address, bare or in brackets.
fn ip(v: &OsStr) -> Option<IpAddr> {
    let b = v.as_bytes();
    let b = b.strip_prefix(b"[").unwrap_or(b);
    let b = b.strip_suffix(b"]").unwrap_or(b);
    num::parse_ip(b)
}

/// Reads a path: anything but nothing.
fn path(v: &OsStr) -> Option<PathBuf> {
    (!v.is_empty()).then(|| v.into())
}

/// Reads `heft set --maxconn`: a number, or `none` to remove it.
fn maxconn(v: &OsStr) -> Option<Option<u16>> {
    match v.as_bytes() {
        b"none" => Some(None),
        n => Some(Some(u16::try_from(num::parse_u32(n)?).ok()?)),
    }
}

/// Reads `heft set --reason`, checked to fit a state file's reason.
fn reason(v: &OsStr) -> Option<String> {
    let s = v.to_str()?;
    state::check_reason(s.as_bytes()).ok()?;
    Some(s.into())
}

/// Reads `heft set --service`, checked to be a service's name.
fn service(v: &OsStr) -> Option<String> {
    let s = v.to_str()?;
    state::check_name(s.as_bytes()).ok()?;
    Some(s.into())
}

/// Reads `heft get --send`, turning `\n`, `\r`, `\t` and `\\` into their
/// bytes (a backslash before any other byte stands for that byte).
fn unescape(v: &OsStr) -> Option<Vec<u8>> {
    let mut out = Vec::new();
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
        out.push(b);
    }
    (out.len() <= SEND_MAX).then_some(out)
}

/// The options of one subcommand as they are found: first the flags in the
/// arguments, in order, then the variables for the flags that were not given.
///
/// `-q`, `-v` and `HEFT_LOG`, which every subcommand takes, are read here;
/// so are the arguments that are not options (`heft set`'s STATUS).
struct Options<'a> {
    /// The arguments not yet read.
    args: &'a mut dyn Iterator<Item = OsString>,
    /// Looks up variables.
    env: Env<'a>,
    /// The help that lists the subcommand's options, for errors.
    page: &'static str,
    /// Each flag a variable may give, then its variables, strongest first.
    vars: &'static [(&'static str, &'static [&'static str])],
    /// Whether all the arguments have been read.
    args_done: bool,
    /// How many of `vars` have been looked at.
    vars_read: usize,
    /// The flags given.
    given: Vec<String>,
    /// The arguments that are not options.
    arguments: Vec<OsString>,
    /// How many arguments that are not options the subcommand takes.
    arguments_max: usize,
    /// The level `-q` or `-v` asked for.
    level: Option<Level>,
}

/// One option found: its flag, the flag or variable that gave it, and its value.
struct Opt<'a> {
    /// The flag, e.g. `--port`, also when a variable gave the value.
    flag: String,
    /// The flag or variable that gave it, e.g. `--port` or `HEFT_PORT`.
    source: String,
    /// The value given with `--flag=value`, or the variable's.
    inline: Option<OsString>,
    /// The arguments after the flag, where its value is when not inline;
    /// `None` when a variable gave it.
    rest: Option<&'a mut dyn Iterator<Item = OsString>>,
    /// The help that lists the subcommand's options, for errors.
    page: &'static str,
}

impl<'a> Options<'a> {
    fn new(
        args: &'a mut dyn Iterator<Item = OsString>,
        env: Env<'a>,
        page: &'static str,
        vars: &'static [(&'static str, &'static [&'static str])],
        arguments_max: usize,
    ) -> Options<'a> {
        Options {
            args,
            env,
            page,
            vars,
            args_done: false,
            vars_read: 0,
            given: Vec::new(),
            arguments: Vec::new(),
            arguments_max,
            level: None,
        }
    }

    /// Returns the next option found, or `None` when all have been.
    fn next(&mut self) -> Result<Option<Opt<'_>>, Box<Usage>> {
        if !self.args_done {
            if let Some((flag, inline)) = self.next_flag()? {
                return Ok(Some(Opt {
                    source: flag.clone(),
                    flag,
                    inline,
                    rest: Some(&mut *self.args),
                    page: self.page,
                }));
            }
            self.args_done = true;
        }
        Ok(self.next_var().map(|(flag, var, value)| Opt {
            flag: flag.into(),
            source: var.into(),
            inline: Some(value),
            rest: None,
            page: self.page,
        }))
    }

    /// Reads the arguments up to the next flag the subcommand is to look at;
    /// returns it and the value given with it as `--flag=value`.
    fn next_flag(&mut self) -> Result<Option<(String, Option<OsString>)>, Box<Usage>> {
        for arg in &mut *self.args {
            let b = arg.as_bytes();
            if b.len() < 2 || b[0] != b'-' {
                if self.arguments.len() == self.arguments_max {
                    return Err(Box::new(Usage::Unexpected {
                        argument: arg,
                        page: self.page,
                    }));
                }
                self.arguments.push(arg);
                continue;
            }
            let (name, inline) = match b.iter().position(|&c| c == b'=') {
                Some(i) => (&b[..i], Some(OsStr::from_bytes(&b[i + 1..]).to_owned())),
                None => (b, None),
            };
            let Ok(flag) = String::from_utf8(name.to_vec()) else {
                return Err(Box::new(Usage::Unknown {
                    option: arg,
                    page: self.page,
                }));
            };
            let level = match flag.as_str() {
                "-q" | "--quiet" => Level::Error,
                "-v" | "--verbose" => Level::Debug,
                _ => {
                    self.given.push(flag.clone());
                    return Ok(Some((flag, inline)));
                }
            };
            if let Some(v) = inline {
                return Err(no_value(flag, v));
            }
            self.level = Some(level);
        }
        Ok(None)
    }

    /// Returns the next flag of `vars` not given whose variable is set (and
    /// not empty), with that variable and its value.
    fn next_var(&mut self) -> Option<(&'static str, &'static str, OsString)> {
        while let Some(&(flag, vars)) = self.vars.get(self.vars_read) {
            self.vars_read += 1;
            if self.given.iter().any(|g| g == flag) {
                continue;
            }
            for &var in vars {
                if let Some(value) = (self.env)(var).filter(|v| !v.is_empty()) {
                    return Some((flag, var, value));
                }
            }
        }
        None
    }

    /// The level asked for: by `-q` or `-v` (the last given), else by
    /// `HEFT_LOG` (`quiet` or `verbose`; other values are ignored), else `Info`.
    fn level(&self) -> Level {
        let var = || match (self.env)("HEFT_LOG")?.to_str()? {
            "quiet" => Some(Level::Error),
            "verbose" => Some(Level::Debug),
            _ => None,
        };
        self.level.or_else(var).unwrap_or(Level::Info)
    }
}

/// The error for a flag that takes no value given one with `--flag=value`.
fn no_value(flag: String, value: OsString) -> Box<Usage> {
    Box::new(Usage::Bad {
        source: flag,
        value,
        wants: Wants::Text("no value"),
    })
}

impl Opt<'_> {
    /// Reads the value with `read`; names the flag or variable if it is
    /// missing or `read` refuses it, saying what was wanted.
    fn read<T>(
        &mut self,
        wants: Wants,
        read: impl Fn(&OsStr) -> Option<T>,
    ) -> Result<T, Box<Usage>> {
        let value = self.take(wants)?;
        match read(&value) {
            Some(v) => Ok(v),
            None => Err(self.bad(value, wants)),
        }
    }

    /// Takes the value: the inline one, else the next argument.
    fn take(&mut self, wants: Wants) -> Result<OsString, Box<Usage>> {
        let next = || self.rest.as_mut()?.next();
        let missing = || {
            Box::new(Usage::Missing {
                option: self.flag.clone(),
                wants,
            })
        };
        self.inline.take().or_else(next).ok_or_else(missing)
    }

    /// The error for `value`, which is not what `wants` says.
    #[cold]
    fn bad(&self, value: OsString, wants: Wants) -> Box<Usage> {
        Box::new(Usage::Bad {
            source: self.source.clone(),
            value,
            wants,
        })
    }

    /// Reads the value with `read`; `wants` says what it must be.
    fn value<T>(
        &mut self,
        wants: &'static str,
        read: impl Fn(&OsStr) -> Option<T>,
    ) -> Result<T, Box<Usage>> {
        self.read(Wants::Text(wants), read)
    }

    /// Reads a whole number from `min` to `max`; `what` names it in errors.
    fn number(&mut self, what: &'static str, min: u32, max: u32) -> Result<u32, Box<Usage>> {
        let read = |v: &OsStr| num::parse_u32(v.as_bytes()).filter(|n| (min..=max).contains(n));
        self.read(Wants::Range(what, min, max), read)
    }

    /// Reads a value kept as given, with its source, for checks made later.
    fn given(&mut self, wants: &'static str) -> Result<Given, Box<Usage>> {
        let value = self.value(wants, |v| (!v.is_empty()).then(|| v.to_owned()))?;
        Ok(Given {
            source: self.source.clone(),
            value,
        })
    }

    /// Reads a switch: the flag, which takes no value, turns it on; its
    /// variable turns it on with `1` or `yes`, off with `0` or `no`.
    fn switch(&mut self) -> Result<bool, Box<Usage>> {
        if self.rest.is_some() {
            return match self.inline.take() {
                None => Ok(true),
                Some(v) => Err(no_value(self.flag.clone(), v)),
            };
        }
        self.value("1, yes, 0 or no", |v| match v.as_bytes() {
            b"1" | b"yes" => Some(true),
            b"0" | b"no" => Some(false),
            _ => None,
        })
    }

    /// The error for an option the subcommand does not have.
    fn unknown(self) -> Box<Usage> {
        Box::new(Usage::Unknown {
            option: self.flag.into(),
            page: self.page,
        })
    }
}

#[cfg(test)]
mod tests;
