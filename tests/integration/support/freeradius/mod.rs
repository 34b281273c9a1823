//! A private FreeRADIUS 3.2 instance as the upstream "directory".
//!
//! Each instance runs from its own temporary directory (a copy of the packaged raddb, see `config.rs`) on
//! kernel-chosen loopback ports, as a child process (`freeradius -f`) that the test starts and stops by its pid.
//! It is ready when it answers a Status-Server; nobody sleeps blindly. The fixture users are in `users.rs`.
//!
//! ```ignore
//! let upstream = FreeRadius::builder().require_message_authenticator(true).sign_replies(true).start()?;
//! let reply = radclient(upstream.auth(), upstream.secret(), Kind::Auth, &[("User-Name", ALICE.name), ..])?;
//! assert_eq!(upstream.access_requests()?, 1);
//! ```
//!
//! Set `PORTVAKT_TEST_FR_DEBUG=1` to run the instance with `-X` (every packet traced) into `log/debug.log`; the
//! path is printed and the directory is kept after the test.

mod config;
mod users;

pub use users::*;

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::io::{Read, Seek, SeekFrom};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{
    Error, LOCALHOST, Result, STOP_GRACE, TestDir, free_udp_ports, log_tail, peer_binary, probe,
    stop_child,
};

/// The shared secret of the loopback clients unless [`FreeRadiusBuilder::secret`] says otherwise.
pub const DEFAULT_SECRET: &str = "upstream-secret-0123";

/// The environment variable that turns on `-X` tracing for every instance.
pub const DEBUG_ENV: &str = "PORTVAKT_TEST_FR_DEBUG";

/// How long a start may take before the harness gives up. Generous: CI machines are small and shared.
const START_LIMIT: Duration = Duration::from_secs(20);

/// How many sets of ports to try when another process takes a port between our choice and FreeRADIUS's bind.
const PORT_ATTEMPTS: usize = 5;

/// Text FreeRADIUS logs when a listen socket cannot bind.
const PORT_IN_USE_MARKER: &str = "Address already in use";

/// Options for a [`FreeRadius`] instance; start with [`FreeRadius::builder`].
#[derive(Debug, Clone)]
pub struct FreeRadiusBuilder {
    secret: String,
    require_message_authenticator: bool,
    sign_replies: bool,
    numbered_users: usize,
    ipv6: bool,
}

impl FreeRadiusBuilder {
    /// The shared secret for the loopback clients (default [`DEFAULT_SECRET`]).
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = secret.into();
        self
    }

    /// Whether FreeRADIUS silently drops Access-Requests without Message-Authenticator (default no, as 3.2.1).
    pub fn require_message_authenticator(mut self, required: bool) -> Self {
        self.require_message_authenticator = required;
        self
    }

    /// Whether every Accept, Reject, Challenge and Status-Server answer carries Message-Authenticator, like a
    /// BlastRADIUS-patched server (default no: 3.2.1 signs only EAP replies).
    pub fn sign_replies(mut self, sign: bool) -> Self {
        self.sign_replies = sign;
        self
    }

    /// Adds `count` numbered users (see [`numbered_user`]), e.g. for load tests.
    pub fn users(mut self, count: usize) -> Self {
        self.numbered_users = count;
        self
    }

    /// Also listens on `::1` (auth and acct, on their own ports; see [`FreeRadius::auth_v6`]).
    pub fn ipv6(mut self, enabled: bool) -> Self {
        self.ipv6 = enabled;
        self
    }

    /// Writes the configuration, starts the instance and waits until it answers a Status-Server.
    pub fn start(self) -> Result<FreeRadius> {
        let debug = std::env::var(DEBUG_ENV).is_ok_and(|v| v == "1");
        let mut dir = TestDir::new("freeradius")?;
        if debug {
            dir.keep();
        }
        config::write_raddb(dir.path(), &self.settings())?;
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let mut instance = FreeRadius::configure(self.clone(), dir, debug)?;
            match instance.launch() {
                Ok(()) => return Ok(instance),
                Err(error @ Error::PortInUse { .. }) => {
                    last_error = Some(error);
                    dir = instance.into_dir();
                }
                Err(error) => return Err(error),
            }
        }
        // The loop ran at least once and only continues after storing an error.
        Err(last_error.expect("PORT_ATTEMPTS > 0"))
    }

    fn settings(&self) -> config::Settings<'_> {
        config::Settings {
            secret: &self.secret,
            require_message_authenticator: self.require_message_authenticator,
            sign_replies: self.sign_replies,
            numbered_users: self.numbered_users,
        }
    }
}

/// A running (or stopped) private FreeRADIUS; stopped by its pid when dropped.
#[derive(Debug)]
pub struct FreeRadius {
    options: FreeRadiusBuilder,
    debug: bool,
    auth: SocketAddr,
    acct: SocketAddr,
    auth_v6: Option<SocketAddr>,
    acct_v6: Option<SocketAddr>,
    child: Option<Child>,
    // Last, so the directory outlives the process in drop order (Drop stops the process first anyway).
    dir: Option<TestDir>,
}

impl FreeRadius {
    /// A builder with the defaults: [`DEFAULT_SECRET`], no Message-Authenticator required, replies unsigned,
    /// only the fixture users, IPv4 only.
    pub fn builder() -> FreeRadiusBuilder {
        FreeRadiusBuilder {
            secret: DEFAULT_SECRET.to_owned(),
            require_message_authenticator: false,
            sign_replies: false,
            numbered_users: 0,
            ipv6: false,
        }
    }

    /// Starts an instance with the defaults.
    pub fn start_default() -> Result<Self> {
        Self::builder().start()
    }

    /// The authentication port on 127.0.0.1.
    pub fn auth(&self) -> SocketAddr {
        self.auth
    }

    /// The accounting port on 127.0.0.1.
    pub fn acct(&self) -> SocketAddr {
        self.acct
    }

    /// The authentication port on ::1, if built with [`FreeRadiusBuilder::ipv6`].
    pub fn auth_v6(&self) -> Option<SocketAddr> {
        self.auth_v6
    }

    /// The accounting port on ::1, if built with [`FreeRadiusBuilder::ipv6`].
    pub fn acct_v6(&self) -> Option<SocketAddr> {
        self.acct_v6
    }

    /// The shared secret of the loopback clients.
    pub fn secret(&self) -> &str {
        &self.options.secret
    }

    /// The pid of the running server, if it is running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The instance's temporary directory (`raddb/`, `log/`, `run/`).
    pub fn dir(&self) -> &Path {
        // `dir` is only taken by `into_dir`, which consumes the instance.
        self.dir
            .as_ref()
            .map(TestDir::path)
            .expect("the directory lives as long as the instance")
    }

    /// FreeRADIUS's own log (`log/radius.log`): start-up messages and errors.
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("log/radius.log")
    }

    /// How many Access-Requests the directory processed (Status-Server and duplicates answered from its cache
    /// are not counted). Each EAP round trip counts as one.
    pub fn access_requests(&self) -> Result<usize> {
        Ok(self.counter_lines(config::ACCESS_LOG)?.len())
    }

    /// How many Access-Requests for `user_name` the directory processed.
    pub fn access_requests_for(&self, user_name: &str) -> Result<usize> {
        Ok(self
            .counter_lines(config::ACCESS_LOG)?
            .iter()
            .filter(|line| *line == user_name)
            .count())
    }

    /// How many Accounting-Requests the directory processed.
    pub fn accounting_requests(&self) -> Result<usize> {
        Ok(self.counter_lines(config::ACCOUNTING_LOG)?.len())
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> Result<bool> {
        match self.child.as_mut() {
            None => Ok(false),
            Some(child) => Ok(child
                .try_wait()
                .map_err(|e| Error::io("checking freeradius", e))?
                .is_none()),
        }
    }

    /// Stops the server: SIGTERM to its pid, SIGKILL after about 5 s. The ports stay reserved for [`Self::start`].
    pub fn stop(&mut self) -> Result<()> {
        match self.child.take() {
            Some(mut child) => stop_child(&mut child, STOP_GRACE).map(drop),
            None => Ok(()),
        }
    }

    /// Starts a stopped server again on the same ports (e.g. for failover tests); no-op if it is running.
    /// Fails with [`Error::PortInUse`] if something else took a port meanwhile.
    pub fn start(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        self.launch()
    }

    /// Chooses fresh ports and writes the virtual server for them.
    fn configure(options: FreeRadiusBuilder, dir: TestDir, debug: bool) -> Result<Self> {
        let v4 = free_udp_ports(LOCALHOST, 2)?;
        let v6 = if options.ipv6 {
            Some(free_udp_ports(IpAddr::V6(Ipv6Addr::LOCALHOST), 2)?)
        } else {
            None
        };
        let v6_addr = |i: usize| {
            v6.as_ref()
                .map(|ports| SocketAddr::new(Ipv6Addr::LOCALHOST.into(), ports[i]))
        };
        let listen = config::Listen {
            auth: SocketAddr::new(LOCALHOST, v4[0]),
            acct: SocketAddr::new(LOCALHOST, v4[1]),
            auth_v6: v6_addr(0),
            acct_v6: v6_addr(1),
        };
        config::write_site(dir.path(), &options.settings(), &listen)?;
        Ok(Self {
            options,
            debug,
            auth: listen.auth,
            acct: listen.acct,
            auth_v6: listen.auth_v6,
            acct_v6: listen.acct_v6,
            child: None,
            dir: Some(dir),
        })
    }

    /// Spawns `freeradius -f` (or `-X`) and waits until it answers a Status-Server or exits.
    fn launch(&mut self) -> Result<()> {
        let binary = peer_binary("freeradius")?;
        let output_path = self.dir().join(if self.debug {
            "log/debug.log"
        } else {
            "log/stdout.log"
        });
        // Append: after stop() and start() the earlier run's output stays readable.
        let output = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&output_path)
            .map_err(|e| Error::io(format!("opening {}", output_path.display()), e))?;
        // Only what this run logs decides whether a failure was a port clash.
        let log_offsets = (file_len(&self.log_path()), file_len(&output_path));
        let output_err = output
            .try_clone()
            .map_err(|e| Error::io("duplicating a file handle", e))?;
        let mut child = Command::new(binary)
            // -f: stay in the foreground as our child, so we hold its pid from the start. -X adds the trace.
            .arg(if self.debug { "-X" } else { "-f" })
            .arg("-d")
            .arg(self.dir().join("raddb"))
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(output_err)
            .spawn()
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => Error::MissingPeer("freeradius"),
                _ => Error::io("spawning freeradius", e),
            })?;
        if self.debug {
            eprintln!(
                "FreeRADIUS -X trace (pid {}): {}",
                child.id(),
                output_path.display()
            );
        }
        let answered = probe::wait_until_answering(
            self.auth,
            &self.options.secret,
            START_LIMIT,
            || match child.try_wait() {
                Ok(None) => Ok(()),
                Ok(Some(status)) => Err(self.start_failure(
                    format!("it exited with {status}"),
                    &output_path,
                    log_offsets,
                )),
                Err(e) => Err(Error::io("checking freeradius", e)),
            },
        );
        match answered {
            Ok(true) => {
                self.child = Some(child);
                Ok(())
            }
            Ok(false) => {
                let _ = stop_child(&mut child, STOP_GRACE);
                let reason = format!("no answer to Status-Server within {START_LIMIT:?}");
                Err(self.start_failure(reason, &output_path, log_offsets))
            }
            Err(error) => {
                let _ = stop_child(&mut child, STOP_GRACE);
                Err(error)
            }
        }
    }

    fn start_failure(&self, reason: String, output_path: &Path, log_offsets: (u64, u64)) -> Error {
        let details = format!(
            "{}\n{}",
            log_tail(&self.log_path(), 20),
            log_tail(output_path, 20)
        );
        let this_run = [
            (self.log_path(), log_offsets.0),
            (output_path.to_owned(), log_offsets.1),
        ];
        if this_run
            .iter()
            .any(|(path, offset)| text_from(path, *offset).contains(PORT_IN_USE_MARKER))
        {
            Error::PortInUse {
                peer: "freeradius",
                details,
            }
        } else {
            Error::Start {
                peer: "freeradius",
                reason,
                details,
            }
        }
    }

    fn counter_lines(&self, file: &str) -> Result<Vec<String>> {
        let path = self.dir().join("log").join(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text.lines().map(str::to_owned).collect()),
            // linelog creates the file on the first request.
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Gives the directory back (to retry with other ports); the process is stopped first.
    fn into_dir(mut self) -> TestDir {
        let _ = self.stop();
        // Only `into_dir` takes the directory, and it consumes `self`.
        self.dir
            .take()
            .expect("the directory lives as long as the instance")
    }
}

/// A file's length, 0 if it does not exist yet.
fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// A file's text from byte `offset` on; empty if unreadable (only used to classify a failure).
fn text_from(path: &Path, offset: u64) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut file) = std::fs::File::open(path)
        && file.seek(SeekFrom::Start(offset)).is_ok()
    {
        let _ = file.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        // Errors cannot be reported from drop; stop_child already escalates to SIGKILL.
        let _ = self.stop();
    }
}
