//! The `portvakt` command: the daemon and its tools.
//!
//! Exit codes: 0 success, 64 (`EX_USAGE`) for a bad configuration, 1 for anything
//! else that stops the daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use portvakt::config::Settings;
use portvakt::daemon::{Daemon, Listener};
use tokio_util::sync::CancellationToken;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::CheckConfig { config } => match Settings::load(&config) {
            Ok(_) => {
                println!("{}: configuration OK", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("Invalid configuration: {e}");
                ExitCode::from(EX_USAGE)
            }
        },
        Command::Serve { config } => serve(config),
    }
}

fn serve(config: PathBuf) -> ExitCode {
    // Parsed once, before any socket is bound.
    let settings = match Settings::load(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Invalid configuration: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let daemon = match Daemon::bind(settings) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        for (kind, listener) in [("auth", Listener::Auth), ("acct", Listener::Acct)] {
            for addr in daemon.local_addrs(listener) {
                tracing::info!("listening for {kind} on {addr}");
            }
        }
        let shutdown = CancellationToken::new();
        tokio::spawn(signals(shutdown.clone()));
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        if let Some(period) = sd_notify::watchdog_enabled() {
            tokio::spawn(watchdog(period / 2));
        }
        daemon.run(shutdown).await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Cancels `shutdown` on SIGTERM or SIGINT, naming the signal.
async fn signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!("{name} received: finishing requests in progress");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    shutdown.cancel();
}

/// Pings the systemd watchdog while the runtime is responsive.
async fn watchdog(every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_env("PORTVAKT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let journald = match format {
        LogFormat::Journald => true,
        LogFormat::Auto => std::env::var_os("JOURNAL_STREAM").is_some(),
        _ => false,
    };
    let registry = tracing_subscriber::registry().with(filter);
    if journald && let Ok(layer) = tracing_journald::layer() {
        registry.with(layer).init();
        return;
    }
    match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .init(),
        _ => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .init(),
    }
}
