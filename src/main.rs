//! The `portvakt` command: the daemon and its tools.
//!
//! Exit codes: 0 success, 64 (`EX_USAGE`) for a bad configuration, 65 for bad data,
//! 1 for anything else that stops the daemon or a tool.

mod demo;

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use portvakt::cli::{self, CliIo, StoreCommand, user::UserCommand};
use portvakt::config::Settings;
use portvakt::daemon::{self, Daemon, Listener};
use portvakt::login::{self, RadiusClient};
use portvakt::radius::dictionary::Dictionary;
use portvakt::radius::{Code, Packet, attr, display};
use portvakt::secret::Secret;
use portvakt::{journal, logsink};
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's malloc: a request allocates its task (about 2 KB, which
/// glibc serves from its slower large-chunk path) and a few dozen small buffers, and
/// frees them on the same thread moments later — the pattern mimalloc's per-thread
/// pages are made for. Measured in `scripts/bench` (README, "Performance").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The default configuration file.
const DEFAULT_CONFIG: &str = "/etc/portvakt/portvakt.toml";
/// `EX_USAGE` from sysexits.h: the configuration is wrong.
const EX_USAGE: u8 = 64;

#[derive(Parser)]
#[command(name = "portvakt", version, about = "RADIUS multi-factor proxy")]
struct Cli {
    /// Log format: human-readable text, or one JSON object per line (for a SIEM).
    /// Under systemd (JOURNAL_STREAM set), `auto` logs to the journal.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Auto,
    Human,
    Json,
    Journald,
}

#[derive(Subcommand)]
enum Command {
    /// Run the RADIUS proxy.
    Serve {
        /// The configuration file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate a configuration file: exit 0, or print the offending key and exit 64.
    CheckConfig {
        /// The configuration file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Enrol and manage users in the store named by the configuration.
    User {
        /// The configuration file (for `[store]`).
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[command(subcommand)]
        command: UserCommand,
    },
    /// List lockouts (users locked by the limits), with reason and expiry.
    Lockouts {
        /// The configuration file (for `[store]`).
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[command(flatten)]
        command: cli::lockouts::LockoutsCommand,
    },
    /// Store key management.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Show how a login would be decided: origin found, site and rule matched, decision —
    /// through the same code the daemon uses.
    Explain {
        /// The configuration file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The client (NAS) name from `[[clients]]`.
        #[arg(long)]
        nas: String,
        /// The User-Name.
        #[arg(long)]
        user: String,
        /// An attribute the gateway would send, e.g. `Calling-Station-Id=203.0.113.7`.
        #[arg(long = "attr", value_name = "NAME=VALUE")]
        attrs: Vec<String>,
        /// Groups the directory's Accept would name (decides group exceptions).
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// A challenge-aware radtest: send an Access-Request, print the reply, and answer
    /// Access-Challenge prompts.
    Login {
        /// The RADIUS server, `ip:port`.
        #[arg(long)]
        server: SocketAddr,
        /// The shared secret.
        #[arg(long, env = "PORTVAKT_LOGIN_SECRET")]
        secret: String,
        /// The User-Name.
        #[arg(long)]
        user: String,
        /// The password (asked without echo if not given).
        #[arg(long)]
        password: Option<String>,
        /// Extra attributes, e.g. `Calling-Station-Id=203.0.113.7`.
        #[arg(long = "attr", value_name = "NAME=VALUE")]
        attrs: Vec<String>,
        /// Answers to Access-Challenge prompts, in order (asked on the terminal otherwise).
        #[arg(long = "response")]
        responses: Vec<String>,
        /// A dictionaries folder (default: the built-in dictionaries).
        #[arg(long)]
        dictionaries: Option<PathBuf>,
        /// Seconds to wait for each reply.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// Start a self-contained demo instance on 127.0.0.1 (temporary store, a demo user
    /// with a password and a TOTP secret shown as a QR code) and print how to log in.
    Demo {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:1812")]
        listen: SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Dropped when main returns, after the daemon has drained: every buffered line is written.
    let _log = init_logging(cli.log_format);
    // Before any settings are loaded: the push and SMS providers build TLS clients then.
    portvakt::factor::install_crypto_provider();
    match cli.command {
        Command::CheckConfig { config } => match Settings::load(&config) {
            Ok(settings) => {
                // The same file list and digests the daemon logs at start and at each reload.
                let files = file_list(&settings.files);
                let _ = writeln!(std::io::stdout(), "configuration OK: {files}");
                ExitCode::SUCCESS
            }
            Err(e) => usage_error(&e),
        },
        Command::Serve { config } => match Settings::load(&config) {
            Ok(settings) => serve(settings),
            Err(e) => usage_error(&e),
        },
        Command::User { config, command } => {
            with_store(&config, |store, io| cli::user::run(store, command, io))
        }
        Command::Lockouts { config, command } => {
            with_store(&config, |store, io| cli::lockouts::run(store, command, io))
        }
        Command::Store { command } => {
            let (stdin, stdout) = (std::io::stdin().lock(), std::io::stdout().lock());
            finish_cli(cli::store_run(command, &mut CliIo::new(stdin, stdout)))
        }
        Command::Explain {
            config,
            nas,
            user,
            attrs,
            groups,
        } => report(explain(&config, &nas, &user, &attrs, &groups)),
        Command::Login {
            server,
            secret,
            user,
            password,
            attrs,
            responses,
            dictionaries,
            timeout,
        } => {
            let args = LoginArgs {
                server,
                secret,
                user,
                password,
                attrs,
                responses,
                dictionaries,
                timeout,
            };
            report(runtime().and_then(|rt| rt.block_on(login(args))))
        }
        Command::Demo { listen } => report(demo::run(listen)),
    }
}

fn usage_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("Invalid configuration: {e}");
    ExitCode::from(EX_USAGE)
}

fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("portvakt: {e:#}");
        ExitCode::FAILURE
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

/// The daemon's runtime: `server.workers` threads run requests (see `default_workers`
/// in the config). Store work runs on the store's own threads either way (Argon2 on the
/// blocking pool).
fn daemon_runtime(workers: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

/// Runs the daemon until SIGTERM/SIGINT; SIGHUP reloads the clients and sites.
fn serve(settings: Settings) -> ExitCode {
    let rt = match daemon_runtime(settings.workers) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portvakt: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let daemon = match Daemon::bind(settings) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("portvakt: {e}");
                return ExitCode::FAILURE;
            }
        };
        for (kind, listener) in [("auth", Listener::Auth), ("acct", Listener::Acct)] {
            for addr in daemon.local_addrs(listener) {
                tracing::info!("listening for {kind} on {addr}");
            }
        }
        if let Some(addr) = daemon.approval_addr() {
            tracing::info!("approval API listening on {addr}");
        }
        let ctx = daemon.context();
        tracing::info!("configuration: {}", file_list(&ctx.settings.files));
        let shutdown = CancellationToken::new();
        tokio::spawn(signals(shutdown.clone(), ctx));
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        if let Some(period) = sd_notify::watchdog_enabled() {
            tokio::spawn(watchdog(period / 2));
        }
        daemon.run(shutdown).await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Opens the store named by `config` and runs a CLI command on it.
fn with_store(
    config: &Path,
    run: impl FnOnce(&portvakt::store::Store, &mut CliIo<'_>) -> Result<(), cli::CliError>,
) -> ExitCode {
    let settings = match Settings::load(config) {
        Ok(s) => s,
        Err(e) => return usage_error(&e),
    };
    let store = match daemon::open_store(&settings) {
        Ok(Some(store)) => store,
        Ok(None) => {
            return usage_error(&format!(
                "store: {} has no [store] section",
                config.display()
            ));
        }
        Err(e) => {
            eprintln!("portvakt: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (stdin, stdout) = (std::io::stdin().lock(), std::io::stdout().lock());
    let mut io =
        CliIo::new(stdin, stdout).with_secret_prompt(|p: &str| rpassword::prompt_password(p));
    finish_cli(run(&store, &mut io))
}

fn finish_cli(result: Result<(), cli::CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portvakt: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn explain(
    config: &Path,
    nas: &str,
    user: &str,
    attrs: &[String],
    groups: &[String],
) -> anyhow::Result<ExitCode> {
    let settings = match Settings::load(config) {
        Ok(s) => s,
        Err(e) => return Ok(usage_error(&e)),
    };
    let Some(client) = settings.clients.iter().find(|c| c.name == nas) else {
        bail!("no client named `{nas}` in {}", config.display());
    };
    let mut packet = Packet::new(Code::AccessRequest, 0, [0; 16]);
    packet.push(attr::USER_NAME, user.as_bytes());
    for a in attrs {
        portvakt::origin::push_attribute(&mut packet, a)?;
    }
    let strip = settings.store.as_ref().is_some_and(|s| s.strip_realm);
    let normalized =
        portvakt::username::normalize(user.as_bytes(), strip).unwrap_or_else(|| user.to_owned());
    let request = portvakt::policy::ExplainRequest {
        client: &client.name,
        sources: &client.origin,
        client_policy: client.policy,
        packet: &packet,
        packet_source: client.network.addr(),
        user: &normalized,
        groups: (!groups.is_empty()).then_some(groups),
    };
    let text = portvakt::policy::explain(&settings.sites, &request).to_string();
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

struct LoginArgs {
    server: SocketAddr,
    secret: String,
    user: String,
    password: Option<String>,
    attrs: Vec<String>,
    responses: Vec<String>,
    dictionaries: Option<PathBuf>,
    timeout: u64,
}

/// The most challenge rounds `login` answers before giving up.
const MAX_ROUNDS: usize = 10;

async fn login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let dict = match &args.dictionaries {
        Some(dir) => Dictionary::load(&dir.join("dictionary"))?,
        None => Dictionary::builtin(),
    };
    let mut attributes = vec![portvakt::radius::Attribute {
        typ: attr::USER_NAME,
        value: args.user.clone().into_bytes(),
    }];
    for a in &args.attrs {
        attributes.push(login::attribute_from_text(&dict, a).map_err(anyhow::Error::msg)?);
    }
    let password = match args.password {
        Some(p) => p,
        None => rpassword::prompt_password("Password: ")?,
    };
    let mut client = RadiusClient::new(args.server, Secret::new(args.secret)).await?;
    client.timeout = std::time::Duration::from_secs(args.timeout);
    let mut responses = args.responses.into_iter();
    let mut answer = password;
    let mut state: Option<Vec<u8>> = None;
    for _ in 0..MAX_ROUNDS {
        let mut attrs = attributes.clone();
        if let Some(s) = &state {
            attrs.push(portvakt::radius::Attribute {
                typ: attr::STATE,
                value: s.clone(),
            });
        }
        let reply = client.access(&attrs, Some(answer.as_bytes())).await?;
        let mut shown = format!("Received {} (id {})\n", reply.code, reply.identifier);
        for a in &reply.attributes {
            shown += &format!("\t{}\n", display::format_attribute(&dict, a.typ, &a.value));
        }
        // A closed pipe (`| head`) is an error to report, not a panic.
        std::io::stdout().lock().write_all(shown.as_bytes())?;
        match reply.code {
            Code::AccessAccept => return Ok(ExitCode::SUCCESS),
            Code::AccessChallenge => {
                state = reply.state().map(<[u8]>::to_vec);
                let prompt = login::reply_message(&reply);
                answer = match responses.next() {
                    Some(r) => r,
                    None => read_response(&prompt)?,
                };
            }
            _ => return Ok(ExitCode::from(2)),
        }
    }
    bail!("gave up after {MAX_ROUNDS} challenges")
}

fn read_response(prompt: &str) -> anyhow::Result<String> {
    let mut out = std::io::stdout().lock();
    write!(out, "{prompt} ")?;
    out.flush()?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        bail!("no response given");
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Cancels `shutdown` on SIGTERM or SIGINT, naming the signal; reloads the clients and
/// sites from the configuration file on SIGHUP (as FreeRADIUS admins expect; unhandled,
/// SIGHUP would end the process without the drain).
async fn signals(shutdown: CancellationToken, ctx: Arc<daemon::Context>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    let name = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => reload(&ctx).await,
        }
    };
    tracing::info!("{name} received: finishing requests in progress");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    shutdown.cancel();
}

/// SIGHUP: loads the configuration file again, checked as at start. If it is valid, the NAS
/// table and the sites and exceptions are replaced (see [`daemon::Context::reload`]); if not,
/// the error (naming the key) is logged and what is in force stays.
async fn reload(ctx: &daemon::Context) {
    use sd_notify::NotifyState;
    let _ = sd_notify::notify(&[
        NotifyState::Reloading,
        NotifyState::MonotonicUsec(monotonic_usec()),
    ]);
    let config = ctx.settings.source.clone();
    match tokio::task::spawn_blocking(move || Settings::load(&config)).await {
        Ok(Ok(settings)) => {
            ctx.reload(&settings);
            tracing::info!(
                "SIGHUP: reloaded {} client(s), {} site(s) and {} exception(s) from {}; \
                 other settings take effect at the next restart",
                settings.clients.len(),
                settings.sites.sites.len(),
                settings.sites.exceptions.len(),
                file_list(&settings.files)
            );
        }
        Ok(Err(e)) => tracing::error!(
            "SIGHUP: not reloaded, {}: {e}; the clients and sites in force are kept",
            ctx.settings.source.display()
        ),
        Err(e) => tracing::error!("SIGHUP: not reloaded: {e}"),
    }
    let _ = sd_notify::notify(&[NotifyState::Ready]);
}

/// The files a configuration was read from, with their digests, for the log.
fn file_list(files: &[portvakt::config::FileDigest]) -> String {
    files
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// CLOCK_MONOTONIC in microseconds, as systemd wants it with RELOADING=1.
fn monotonic_usec() -> i128 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    i128::from(now.tv_sec) * 1_000_000 + i128::from(now.tv_nsec) / 1_000
}

/// Pings the systemd watchdog while the runtime is responsive.
async fn watchdog(every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
    }
}

/// Installs the subscriber. Journal entries, text and JSON lines all go through a
/// [`logsink::Sink`], whose guard must live until the end of `main`.
fn init_logging(format: LogFormat) -> Option<logsink::SinkGuard> {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_env("PORTVAKT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let journald = match format {
        LogFormat::Journald => true,
        LogFormat::Auto => std::env::var_os("JOURNAL_STREAM").is_some(),
        _ => false,
    };
    let registry = tracing_subscriber::registry().with(filter);
    if journald && let Ok(socket) = journal::Socket::connect(Path::new(journal::SOCKET)) {
        let (sink, guard) = logsink::spawn_eager(socket, journal::SEND_EVERY, journal::SEND_AT);
        registry.with(journal::Layer::new(sink, "portvakt")).init();
        return Some(guard);
    }
    let (sink, guard) = logsink::spawn(std::io::stderr());
    match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .event_format(portvakt::logfmt::Json::default())
                    .with_writer(sink),
            )
            .init(),
        _ => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            registry
                .with(
                    fmt::layer()
                        .with_ansi(ansi)
                        .event_format(portvakt::logfmt::Text::default())
                        .with_writer(sink),
                )
                .init();
        }
    }
    Some(guard)
}
