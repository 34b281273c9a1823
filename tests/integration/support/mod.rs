//! The test harness: real, independent RADIUS peers on loopback, and the plumbing they share.
//!
//! - [`freeradius`]: a private FreeRADIUS 3.2 instance as the upstream "directory", with fixture users.
//! - [`radclient`]: one request through FreeRADIUS's `radclient`, with the reply parsed.
//! - [`eapol`]: one EAP conversation through `eapol_test` (PEAP/MSCHAPv2 by default), with the MPPE key check.
//! - [`mschap`]: the peer's side of MS-CHAPv2 (RFC 2759) and its MPPE keys (RFC 3079), for native MS-CHAPv2 logins.
//! - [`probe`]: a minimal Status-Server probe, to know when a server answers without sleeping blindly.
//!
//! This module owns what they share: the harness [`Error`], [`TestDir`], free loopback ports, finding the peer
//! binaries, and stopping a child process by its own pid. Every peer is started by the test and stopped by its pid;
//! nothing here touches system services or other processes.

pub mod eapol;
pub mod freeradius;
pub mod mschap;
pub mod ntfy;
pub mod probe;
pub mod proxy;
pub mod radclient;

use std::io::{self, Read, Seek, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The script that installs every peer binary; named in every "missing peer" failure.
pub const INSTALL_SCRIPT: &str = "scripts/install-test-peers";

/// IPv4 loopback, the address every peer listens on.
pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Why the harness could not do what a test asked. A test that gets one of these fails: peers are never skipped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A peer binary is not installed.
    #[error("`{0}` is not installed or not on PATH: run {INSTALL_SCRIPT} (as root, or with sudo)")]
    MissingPeer(&'static str),
    /// An I/O operation of the harness failed.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A server exited or never became ready; `details` carries the tail of its logs.
    #[error("{peer} did not start: {reason}\n{details}")]
    Start {
        /// Which peer.
        peer: &'static str,
        /// What went wrong.
        reason: String,
        /// Log excerpts, for the test output.
        details: String,
    },
    /// A server could not bind its ports because something else holds them.
    #[error("{peer} could not bind its ports (already in use)\n{details}")]
    PortInUse {
        /// Which peer.
        peer: &'static str,
        /// Log excerpts, for the test output.
        details: String,
    },
    /// A peer's output could not be understood.
    #[error("unexpected output from {peer}: {reason}\n--- output ---\n{output}")]
    Output {
        /// Which peer.
        peer: &'static str,
        /// What was wrong with it.
        reason: String,
        /// The whole output.
        output: String,
    },
    /// The test asked for something the peer cannot do.
    #[error("{0}")]
    Unsupported(String),
}

impl Error {
    /// Wraps an I/O error with what the harness was doing.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where Debian installs the peers; searched after `PATH`, because `/usr/sbin` is not on every user's `PATH`.
const SYSTEM_BIN_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// Finds a peer binary on `PATH` or in the system directories, or fails naming [`INSTALL_SCRIPT`].
pub fn peer_binary(name: &'static str) -> Result<PathBuf> {
    let path_dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_dirs)
        .chain(SYSTEM_BIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or(Error::MissingPeer(name))
}

/// A temporary directory that is removed when dropped, unless [`TestDir::keep`] was called.
#[derive(Debug)]
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    /// Creates a fresh directory under the system temp dir; `prefix` makes it recognisable.
    pub fn new(prefix: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("portvakt-{prefix}-"))
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory", e))?;
        Ok(Self { dir })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the directory.
    pub fn join(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes `contents` to `relative`, creating parent directories, and returns the full path.
    pub fn write(&self, relative: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> Result<PathBuf> {
        let path = self.join(relative);
        write_file(&path, contents)?;
        Ok(path)
    }

    /// Keeps the directory after the test (for debugging: its logs stay readable).
    pub fn keep(&mut self) {
        self.dir.disable_cleanup(true);
    }
}

/// Writes a file, creating its parent directories, with the path in any error.
pub fn write_file(path: &Path, contents: impl AsRef<[u8]>) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    std::fs::write(path, contents).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Reads a file to a string, with the path in any error.
pub fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))
}

/// The last `lines` lines of a file, headed by its path, for error messages; never fails.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).map_or_else(
        |e| format!("(unreadable: {e})"),
        |bytes| String::from_utf8_lossy(&bytes).into_owned(),
    );
    let all: Vec<&str> = text.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n");
    format!("--- {} (last {lines} lines) ---\n{tail}", path.display())
}

/// `count` distinct UDP ports that were free on `ip` a moment ago.
///
/// The kernel picks them (bind to port 0); all sockets are held until every port is chosen, so the ports are
/// distinct. They are released before returning, so a server configured with them can bind them, and a race with
/// another process remains possible: callers that write ports into a config retry on "port in use".
pub fn free_udp_ports(ip: IpAddr, count: usize) -> Result<Vec<u16>> {
    let sockets = (0..count)
        .map(|_| UdpSocket::bind(SocketAddr::new(ip, 0)))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| Error::io(format!("binding {ip}:0 to find a free port"), e))?;
    sockets
        .iter()
        .map(|socket| socket.local_addr().map(|addr| addr.port()))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| Error::io("reading a bound port", e))
}

/// One UDP port that was free on `ip` a moment ago (see [`free_udp_ports`] for the race).
pub fn free_udp_port(ip: IpAddr) -> Result<u16> {
    let ports = free_udp_ports(ip, 1)?;
    Ok(ports[0]) // free_udp_ports returns exactly `count` (1) ports or an error.
}

/// How long a process gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How often to look at a process or a port that is not ready yet. Polling a condition, not a blind sleep.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Stops a child process: SIGTERM to its own pid, SIGKILL if it is still alive after `grace`, then reaps it.
///
/// Returns its exit status. A child that already exited is only reaped.
pub fn stop_child(child: &mut Child, grace: Duration) -> Result<ExitStatus> {
    if let Some(status) = child
        .try_wait()
        .map_err(|e| Error::io("checking a child process", e))?
    {
        return Ok(status);
    }
    send_sigterm(child.id())?;
    if let Some(status) = wait_for_exit(child, grace)? {
        return Ok(status);
    }
    // Still alive after the grace period: SIGKILL cannot be ignored.
    child
        .kill()
        .map_err(|e| Error::io(format!("killing pid {}", child.id()), e))?;
    child
        .wait()
        .map_err(|e| Error::io(format!("reaping pid {}", child.id()), e))
}

/// Waits up to `limit` for a child to exit; `None` if it is still running.
pub fn wait_for_exit(child: &mut Child, limit: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::io("checking a child process", e))?
        {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Sends SIGTERM to exactly `pid`.
///
/// The crate forbids `unsafe`, so there is no `libc::kill`; the shell's builtin `kill` (present even on minimal
/// systems, unlike procps' `/bin/kill`) does it by pid.
fn send_sigterm(pid: u32) -> Result<()> {
    let status = Command::new("sh")
        .args(["-c", "kill -TERM \"$1\"", "sh", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| Error::io("running sh to send SIGTERM", e))?;
    // A non-zero status means the process is already gone; the caller reaps it either way.
    let _ = status;
    Ok(())
}

/// What a short-lived peer tool (radclient, eapol_test) did.
#[derive(Debug)]
pub struct PeerRun {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout and stderr, interleaved as written.
    pub output: String,
}

/// Runs a peer tool with `stdin` as input, waits at most `limit` (then kills it), and returns its output.
///
/// Output goes to an anonymous file rather than a pipe, so a chatty tool (eapol_test writes ~100 KB) never blocks
/// on a full pipe while we wait for it.
pub fn run_peer(
    name: &'static str,
    args: &[String],
    stdin: &str,
    limit: Duration,
) -> Result<PeerRun> {
    let binary = peer_binary(name)?;
    let mut output = tempfile::tempfile().map_err(|e| Error::io("creating an output file", e))?;
    let clone = |file: &std::fs::File| {
        file.try_clone()
            .map_err(|e| Error::io("duplicating a file handle", e))
    };
    let mut child = Command::new(&binary)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(clone(&output)?)
        .stderr(clone(&output)?)
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::MissingPeer(name),
            _ => Error::io(format!("running {}", binary.display()), e),
        })?;
    if let Some(mut input) = child.stdin.take() {
        // A tool that exits early closes its stdin; its output then says why.
        let _ = input.write_all(stdin.as_bytes());
    }
    let finished = wait_for_exit(&mut child, limit)?;
    let status = match finished {
        Some(status) => status,
        None => stop_child(&mut child, Duration::ZERO)?,
    };
    let mut bytes = Vec::new();
    output
        .seek(io::SeekFrom::Start(0))
        .and_then(|_| output.read_to_end(&mut bytes))
        .map_err(|e| Error::io(format!("reading the output of {name}"), e))?;
    let output = String::from_utf8_lossy(&bytes).into_owned();
    match finished {
        Some(_) => Ok(PeerRun { status, output }),
        None => Err(Error::Output {
            peer: name,
            reason: format!("still running after {limit:?}, killed"),
            output,
        }),
    }
}
