//! `portvakt-load`: a RADIUS load generator for benchmarking portvakt against other proxies.
//!
//! It plays many NAS logins against a server on the loopback interface only: PAP logins for
//! many users, MFA logins (Access-Challenge answered with a TOTP code, or the code appended to
//! the password), and accounting. Every request carries a Message-Authenticator; every reply
//! is verified (Response Authenticator, Message-Authenticator, code, the user's Class, State)
//! before it counts. Load is a closed loop (N logins in flight) or an open loop (a fixed rate),
//! bounded by time and optionally by count. It reports sent, accepted, rejected, challenged,
//! timeouts, invalid, req/s and latency percentiles, and the CPU time per request of named
//! processes, read from `/proc`, its own included.
//!
//! ```text
//! portvakt-load run --target 127.0.0.1:1812 --secret-file s --concurrency 16 --duration 10s \
//!                   --watch-pid proxy=4242 --json
//! portvakt-load users --count 1000 --totp-seed bench      # the users it will log in as
//! portvakt-load ping --target 127.0.0.1:1812 --secret-file s   # wait until a server answers
//! ```
//!
//! Layout: [`workload`] (what is sent and accepted; no I/O), [`engine`] (sockets, Identifier
//! pools, closed and open loop), [`stats`] (counts and histograms), [`procfs`] (CPU and RSS).
#![forbid(unsafe_code)]

mod engine;
mod procfs;
mod report;
mod stats;
mod workload;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use portvakt::radius::{self, Code, Packet, random};
use zeroize::Zeroizing;

use crate::engine::{Load, MAX_PER_LANE, Plan};
use crate::procfs::Watched;
use crate::workload::{Mode, Users, Workload, WorkloadOptions};

/// Exit status for arguments we refuse (sysexits `EX_USAGE`).
const EX_USAGE: u8 = 64;
/// Exit status for a run that finished with timeouts, invalid or unexpected replies.
const EX_UNCLEAN: u8 = 3;
/// The longest run and warm-up accepted: a load tool must not run away.
const MAX_DURATION: Duration = Duration::from_secs(3600);
const MAX_WARMUP: Duration = Duration::from_secs(600);

#[derive(Parser)]
#[command(
    name = "portvakt-load",
    version,
    about = "RADIUS load generator (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send load and report.
    Run(Box<RunArgs>),
    /// Print the users a run logs in as: name, password, Class, TOTP secret (base32), tab-separated.
    Users {
        #[command(flatten)]
        users: UserArgs,
        /// Seed of the TOTP secrets (adds the fourth column).
        #[arg(long)]
        totp_seed: Option<String>,
    },
    /// Send Status-Server until the server answers (exit 0) or `--wait` runs out (exit 1).
    Ping {
        #[command(flatten)]
        target: TargetArgs,
        /// How long to keep trying.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        wait: Duration,
    },
}

#[derive(Args)]
struct TargetArgs {
    /// The server: a loopback ip:port (`127.0.0.0/8` or `[::1]`); anything else is refused.
    #[arg(long)]
    target: SocketAddr,
    /// The shared secret (visible in `ps`; prefer --secret-file).
    #[arg(long, conflicts_with = "secret_file")]
    secret: Option<String>,
    /// A file holding the shared secret (trailing newline ignored).
    #[arg(long)]
    secret_file: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct UserArgs {
    /// How many numbered users; logins go round-robin over them.
    #[arg(long = "users", id = "users", default_value_t = 1000)]
    count: u32,
    /// The number of the first user (a slice of a larger population: with `--first-user
    /// 5000 --users 100` the run logs in as user5000…user5099).
    #[arg(long, default_value_t = 0)]
    first_user: u32,
    /// User-Name prefix (`user0000`, `user0001`, …).
    #[arg(long, default_value = "user")]
    name_prefix: String,
    /// Password prefix (`pw-0000`, …).
    #[arg(long, default_value = "pw-")]
    password_prefix: String,
    /// Class each Access-Accept must carry (`class-0000`, …); empty turns the check off.
    #[arg(long, default_value = "class-")]
    class_prefix: String,
}

impl UserArgs {
    fn users(&self) -> Users {
        Users {
            first: self.first_user,
            count: self.count,
            name_prefix: self.name_prefix.clone(),
            password_prefix: self.password_prefix.clone(),
            class_prefix: Some(self.class_prefix.clone()).filter(|p| !p.is_empty()),
        }
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    users: UserArgs,
    /// What a login is.
    #[arg(long, value_enum, default_value_t = Mode::Pap)]
    mode: Mode,
    /// Closed loop: logins in flight.
    #[arg(long, default_value_t = 16, conflicts_with = "rate")]
    concurrency: usize,
    /// Open loop: logins started per second, whatever the replies do.
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: requests in flight at most (further starts are skipped and counted as stalled).
    #[arg(long, default_value_t = 128)]
    max_in_flight: usize,
    /// UDP sockets (default: enough for at most 128 in flight per socket).
    #[arg(long)]
    sockets: Option<usize>,
    /// How long to start logins after the warm-up (at most 1 h).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Load before counting starts.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Stop after this many counted logins (a challenge login is two requests).
    #[arg(long)]
    requests: Option<u64>,
    /// Wait this long for each reply; requests are never retransmitted.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Every Nth login uses a wrong password and expects Access-Reject (0: never).
    #[arg(long, default_value_t = 0)]
    reject_every: u64,
    /// Seed of the users' TOTP secrets (challenge and append modes); see `users`.
    #[arg(long)]
    totp_seed: Option<String>,
    /// Accept Access-* replies without Message-Authenticator (only for unpatched servers).
    #[arg(long)]
    no_require_ma: bool,
    /// Send Accounting-Requests without Message-Authenticator (radsecproxy 1.9.2 refuses
    /// the one FreeRADIUS and portvakt compute, over a zeroed Request Authenticator).
    #[arg(long)]
    no_acct_ma: bool,
    /// Calling-Station-Id to send with every request (the user's address).
    #[arg(long)]
    calling_station_id: Option<String>,
    /// A process to measure, as name=PID (repeatable). The generator measures itself too.
    #[arg(long = "watch-pid", value_parser = procfs::parse_watch)]
    watch: Vec<Watched>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(*args),
        Command::Users { users, totp_seed } => {
            print_users(&users.users(), totp_seed.as_deref());
            Ok(ExitCode::SUCCESS)
        }
        Command::Ping { target, wait } => ping(&target, wait),
    };
    result.unwrap_or_else(|(code, message)| {
        eprintln!("portvakt-load: {message}");
        ExitCode::from(code)
    })
}

type Failed = (u8, String);

fn usage(message: impl Into<String>) -> Failed {
    (EX_USAGE, message.into())
}

/// The target, if it is on the loopback interface; the secret from the argument or file.
fn target_and_secret(t: &TargetArgs) -> Result<(SocketAddr, Zeroizing<Vec<u8>>), Failed> {
    if !is_loopback(t.target) {
        return Err(usage(format!(
            "{} is not a loopback address: portvakt-load only loads 127.0.0.0/8 and ::1",
            t.target
        )));
    }
    let secret = match (&t.secret, &t.secret_file) {
        (Some(s), _) => Zeroizing::new(s.as_bytes().to_vec()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
            Zeroizing::new(text.trim_end_matches(['\r', '\n']).as_bytes().to_vec())
        }
        (None, None) => return Err(usage("give --secret-file (or --secret)")),
    };
    if secret.is_empty() {
        return Err(usage("the shared secret is empty"));
    }
    Ok((t.target, secret))
}

fn is_loopback(addr: SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback() && addr.port() != 0
}

fn plan(args: &RunArgs, target: SocketAddr) -> Result<Plan, Failed> {
    if args.duration.is_zero() || args.duration > MAX_DURATION {
        return Err(usage("--duration must be between 1 ms and 1 h"));
    }
    if args.warmup > MAX_WARMUP {
        return Err(usage("--warmup must be at most 10 min"));
    }
    if args.timeout < Duration::from_millis(10) || args.timeout > Duration::from_secs(60) {
        return Err(usage("--timeout must be between 10 ms and 60 s"));
    }
    if args.requests == Some(0) {
        return Err(usage("--requests must be at least 1"));
    }
    let (load, total) = match args.rate {
        Some(rate) if !(1.0..=1_000_000.0).contains(&rate) => {
            return Err(usage("--rate must be between 1 and 1,000,000 per second"));
        }
        Some(rate) => (
            Load::Open {
                rate,
                in_flight: args.max_in_flight,
            },
            args.max_in_flight,
        ),
        None => (
            Load::Closed {
                concurrency: args.concurrency,
            },
            args.concurrency,
        ),
    };
    if !(1..=16_384).contains(&total) {
        return Err(usage(
            "--concurrency and --max-in-flight must be between 1 and 16384",
        ));
    }
    let lanes = args.sockets.unwrap_or_else(|| total.div_ceil(MAX_PER_LANE));
    if lanes == 0 || lanes > total || lanes * MAX_PER_LANE < total {
        return Err(usage(format!(
            "--sockets {lanes} cannot carry {total} in flight at 1..=128 per socket"
        )));
    }
    Ok(Plan {
        target,
        lanes,
        load,
        warmup: args.warmup,
        duration: args.duration,
        requests: args.requests,
        timeout: args.timeout,
    })
}

fn run(args: RunArgs) -> Result<ExitCode, Failed> {
    let (target, secret) = target_and_secret(&args.target)?;
    let plan = plan(&args, target)?;
    let workload = Workload::new(WorkloadOptions {
        mode: args.mode,
        users: args.users.users(),
        secret,
        reject_every: args.reject_every,
        require_ma: !args.no_require_ma,
        calling_station_id: args.calling_station_id.clone(),
        totp_seed: args.totp_seed.as_ref().map(|s| s.as_bytes().to_vec()),
        acct_ma: !args.no_acct_ma,
    })
    .map_err(usage)?;
    let mut watched = args.watch.clone();
    watched.push(Watched {
        name: "generator".into(),
        pid: None,
    });
    let measured = engine::run(&plan, workload, &watched).map_err(|e| (1, e))?;
    let report = report::Report::new(&plan, args.mode, &measured, &watched);
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(if report.clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EX_UNCLEAN)
    })
}

fn print_users(users: &Users, seed: Option<&str>) {
    use std::io::Write as _;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for i in 0..users.count {
        let name = users.name(i);
        let class = users.class(i).unwrap_or_default();
        let totp = seed
            .map(|s| {
                format!(
                    "\t{}",
                    workload::base32(&workload::totp_secret(s.as_bytes(), &name))
                )
            })
            .unwrap_or_default();
        // A closed pipe (e.g. `| head`) ends the listing; nothing else can fail here.
        if writeln!(out, "{name}\t{}\t{class}{totp}", users.password(i)).is_err() {
            return;
        }
    }
    let _ = out.flush();
}

/// Status-Server with Message-Authenticator every 100 ms, a new Identifier each time, until
/// a reply verifies. Any authentic reply counts: servers answer it with Access-Accept.
fn ping(t: &TargetArgs, wait: Duration) -> Result<ExitCode, Failed> {
    let (target, secret) = target_and_secret(t)?;
    let local: SocketAddr = if target.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    }
    .parse()
    .expect("literal address");
    let io = |e: std::io::Error| (1, format!("socket: {e}"));
    let socket = UdpSocket::bind(local).map_err(io)?;
    socket.connect(target).map_err(io)?;
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(io)?;
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; radius::packet::MAX_PACKET_LEN];
    let mut id = 0u8;
    while Instant::now() < deadline {
        id = id.wrapping_add(1);
        let authenticator = random::bytes16();
        let mut p = Packet::new(Code::StatusServer, id, authenticator);
        p.set_message_authenticator_first();
        let bytes = radius::encode_request(&p, &secret).map_err(|e| (1, e.to_string()))?;
        // A refused send (nothing listening yet) is retried like a lost one.
        let _ = socket.send(&bytes);
        let sent = Instant::now();
        while sent.elapsed() < Duration::from_millis(100) {
            let Ok(n) = socket.recv(&mut buf) else { break };
            if buf[1] == id && radius::verify_response(&buf[..n], &authenticator, &secret).is_ok() {
                println!("{target} answered Status-Server");
                return Ok(ExitCode::SUCCESS);
            }
        }
        if sent.elapsed() < Duration::from_millis(100) {
            std::thread::sleep(Duration::from_millis(100) - sent.elapsed());
        }
    }
    Err((
        1,
        format!("{target} did not answer Status-Server within {wait:?}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        for ok in [
            "127.0.0.1:1812",
            "127.9.9.9:1",
            "[::1]:1812",
            "[::ffff:127.0.0.1]:1812",
        ] {
            assert!(is_loopback(ok.parse().unwrap()), "{ok}");
        }
        for refused in [
            "10.0.0.1:1812",
            "192.0.2.1:1812",
            "0.0.0.0:1812",
            "[::]:1812",
            "[2001:db8::1]:1812",
            "[::ffff:10.0.0.1]:1812",
            "127.0.0.1:0",
        ] {
            assert!(!is_loopback(refused.parse().unwrap()), "{refused}");
        }
    }

    fn args(extra: &[&str]) -> RunArgs {
        let mut argv = vec![
            "portvakt-load",
            "run",
            "--target",
            "127.0.0.1:1812",
            "--secret",
            "s",
        ];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(a) => *a,
            _ => unreachable!("run"),
        }
    }

    #[test]
    fn plans_are_bounded() {
        let target = "127.0.0.1:1812".parse().unwrap();
        let p = plan(&args(&["--concurrency", "300"]), target).unwrap();
        assert_eq!(p.lanes, 3);
        assert!(plan(&args(&["--concurrency", "300", "--sockets", "2"]), target).is_err());
        assert!(plan(&args(&["--duration", "2h"]), target).is_err());
        assert!(plan(&args(&["--rate", "0"]), target).is_err());
        assert!(plan(&args(&["--requests", "0"]), target).is_err());
        let open = plan(&args(&["--rate", "5000"]), target).unwrap();
        assert!(matches!(open.load, Load::Open { in_flight: 128, .. }));
        assert_eq!(open.lanes, 1);
    }

    #[test]
    fn refused_before_any_packet() {
        let t = TargetArgs {
            target: "192.0.2.1:1812".parse().unwrap(),
            secret: Some("s".into()),
            secret_file: None,
        };
        let Err((code, message)) = target_and_secret(&t) else {
            panic!("a non-loopback target must be refused")
        };
        assert_eq!(code, EX_USAGE);
        assert!(message.contains("not a loopback address"));
    }
}
