//! Shutdown and overload: `portvakt serve` as a real process stopped by SIGTERM with requests in flight, and the
//! in-process daemon under `server.max_in_flight` with a dead upstream (security.md R-06: drop, never Reject).
//!
//! The fake upstreams here are plain UDP sockets held by the test: one that receives and never answers (a "slow"
//! directory, which also tells the test that a request is in flight), one that answers when the test says so, and a
//! port nobody listens on (a dead directory).
//!
//! [`Served`] (the binary as a child process, its port read from its own log) is shared with `logs.rs`.

use std::fs::File;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use portvakt::config::Settings;
use portvakt::daemon::{Context, Daemon, Listener};
use portvakt::radius::{self, Code, Keying, Packet, attr, crypt, random};
use tokio_util::sync::CancellationToken;

use crate::support::freeradius::BOB;
use crate::support::proxy::NAS_SECRET;
use crate::support::{LOCALHOST, POLL_INTERVAL, STOP_GRACE, TestDir, stop_child};

/// The secret portvakt shares with the fake upstreams.
const UPSTREAM_SECRET: &str = "fake-upstream-secret-0123";

/// How long a `portvakt serve` may take to log its listening address.
const START_LIMIT: Duration = Duration::from_secs(20);

/// `portvakt serve` as a child process, logging JSON at the level `PORTVAKT_LOG` says into files of its directory.
/// Stopped by its own pid (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Served {
    child: Child,
    auth: SocketAddr,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Served {
    /// Starts `portvakt --log-format json serve --config CONFIG` with `PORTVAKT_LOG=log_filter`; stdout and stderr
    /// go to `stdout.log` and `stderr.log` in `dir`. Returns once it has logged "listening for auth on ADDR".
    pub(crate) fn start(dir: &TestDir, config: &Path, log_filter: &str) -> Result<Self> {
        Self::start_with_env(dir, config, log_filter, &[])
    }

    /// [`Served::start`] with extra environment variables (e.g. `NOTIFY_SOCKET`).
    pub(crate) fn start_with_env(
        dir: &TestDir,
        config: &Path,
        log_filter: &str,
        env: &[(&str, &Path)],
    ) -> Result<Self> {
        let stdout = dir.join("stdout.log");
        let stderr = dir.join("stderr.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_portvakt"));
        // No `PORTVAKT__…` variable of the test's own environment may override the config it wrote.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PORTVAKT") {
                command.env_remove(key);
            }
        }
        let child = command
            .args(["--log-format", "json", "serve", "--config"])
            .arg(config)
            .env("PORTVAKT_LOG", log_filter)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout)?)
            .stderr(File::create(&stderr)?)
            .spawn()
            .context("spawning portvakt serve")?;
        let mut served = Self {
            child,
            auth: SocketAddr::new(LOCALHOST, 0),
            stdout,
            stderr,
        };
        served.auth = served.wait_for_listener()?;
        Ok(served)
    }

    /// Polls the log for the listening address; fails at once if the process exits.
    fn wait_for_listener(&mut self) -> Result<SocketAddr> {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(addr) = self
                .messages()?
                .iter()
                .find_map(|m| m.strip_prefix("listening for auth on "))
            {
                return addr
                    .parse()
                    .with_context(|| format!("listening address {addr:?}"));
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "portvakt serve exited with {status} before listening:\n{}",
                    self.stderr_text()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "portvakt serve did not log its address within {START_LIMIT:?}:\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The authentication address the daemon bound.
    pub(crate) fn auth(&self) -> SocketAddr {
        self.auth
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything written to stderr so far.
    pub(crate) fn stderr_bytes(&self) -> Result<Vec<u8>> {
        std::fs::read(&self.stderr).context("reading stderr.log")
    }

    /// Everything written to stdout so far.
    pub(crate) fn stdout_bytes(&self) -> Result<Vec<u8>> {
        std::fs::read(&self.stdout).context("reading stdout.log")
    }

    fn stderr_text(&self) -> String {
        self.stderr_bytes()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("({e})"))
    }

    /// The `message` of every complete JSON log line so far (lines that are not JSON objects are skipped here;
    /// `logs.rs` checks that there are none).
    pub(crate) fn messages(&self) -> Result<Vec<String>> {
        let bytes = self.stderr_bytes()?;
        Ok(bytes
            .split(|b| *b == b'\n')
            .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
            .filter_map(|v| v.get("message")?.as_str().map(str::to_owned))
            .collect())
    }

    /// Waits up to `limit` for a log message starting with `prefix`, and returns the first.
    pub(crate) fn wait_for_message(&self, prefix: &str, limit: Duration) -> Result<String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(m) = self.messages()?.into_iter().find(|m| m.starts_with(prefix)) {
                return Ok(m);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        bail!(
            "no log message {prefix:?} within {limit:?}:\n{}",
            self.stderr_text()
        )
    }

    /// Sends SIGTERM to the process (its own pid only) without waiting.
    pub(crate) fn sigterm(&self) -> Result<()> {
        self.signal("TERM")
    }

    /// Sends the signal `name` (`TERM`, `HUP`, …) to the process (its own pid only) without waiting.
    pub(crate) fn signal(&self, name: &str) -> Result<()> {
        let status = Command::new("sh")
            .args([
                "-c",
                "kill -s \"$1\" \"$2\"",
                "sh",
                name,
                &self.pid().to_string(),
            ])
            .status()
            .with_context(|| format!("running sh to send SIG{name}"))?;
        ensure!(status.success(), "kill -s {name} {} failed", self.pid());
        Ok(())
    }

    /// SIGTERM, then waits up to `limit` for the exit (SIGKILL after that). Returns the status and how long the
    /// process took from the signal to its exit.
    pub(crate) fn terminate(&mut self, limit: Duration) -> Result<(ExitStatus, Duration)> {
        let started = Instant::now();
        let status = stop_child(&mut self.child, limit)?;
        Ok((status, started.elapsed()))
    }

    /// Waits up to `limit` for the process to exit by itself.
    pub(crate) fn wait(&mut self, limit: Duration) -> Result<Option<ExitStatus>> {
        Ok(crate::support::wait_for_exit(&mut self.child, limit)?)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // Errors cannot be reported from drop; stop_child escalates to SIGKILL by itself.
        let _ = stop_child(&mut self.child, STOP_GRACE);
    }
}

/// A signed PAP Access-Request for bob (Message-Authenticator first) and its Request Authenticator.
pub(crate) fn bob_request() -> Result<(Vec<u8>, [u8; 16])> {
    let authenticator = random::bytes16();
    let mut id = [0u8; 1];
    random::fill(&mut id);
    let mut request = Packet::new(Code::AccessRequest, id[0], authenticator);
    request.set_message_authenticator_first();
    request.push(attr::USER_NAME, BOB.name.as_bytes());
    let keying = Keying {
        secret: NAS_SECRET.as_bytes(),
        authenticator: &authenticator,
    };
    request.push(
        attr::USER_PASSWORD,
        crypt::hide_password(BOB.password.as_bytes(), keying)?,
    );
    Ok((
        radius::encode_request(&request, NAS_SECRET.as_bytes())?,
        authenticator,
    ))
}

/// A signed Status-Server (RFC 5997: Message-Authenticator required).
fn status_server_request() -> Result<Vec<u8>> {
    let mut id = [0u8; 1];
    random::fill(&mut id);
    let mut request = Packet::new(Code::StatusServer, id[0], random::bytes16());
    request.set_message_authenticator_first();
    Ok(radius::encode_request(&request, NAS_SECRET.as_bytes())?)
}

/// A NAS socket on an ephemeral loopback port, with a read timeout.
fn nas_socket(timeout: Duration) -> Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddr::new(LOCALHOST, 0))?;
    socket.set_read_timeout(Some(timeout))?;
    Ok(socket)
}

/// Whatever is waiting on `socket` right now, without blocking.
fn pending_datagram(socket: &UdpSocket) -> Result<Option<Vec<u8>>> {
    socket.set_nonblocking(true)?;
    let mut buf = [0u8; 4096];
    let got = match socket.recv(&mut buf) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(e) if e.kind() == ErrorKind::WouldBlock => None,
        // ICMP port unreachable from an earlier send: no reply either.
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => None,
        Err(e) => return Err(e.into()),
    };
    socket.set_nonblocking(false)?;
    Ok(got)
}

/// A config for `portvakt serve`: one trusted loopback NAS, one upstream at `upstream`.
fn serve_config(upstream: SocketAddr, server_extra: &str, upstream_extra: &str) -> String {
    format!(
        "[server]\nauth_listen = [\"127.0.0.1:0\"]\nacct_listen = []\n{server_extra}\n\n\
         [[clients]]\nname = \"test-nas\"\naddress = \"127.0.0.0/8\"\nsecret = \"{NAS_SECRET}\"\npolicy = \"trusted\"\n\n\
         [[upstreams]]\nname = \"fake\"\nauth = \"{upstream}\"\nsecret = \"{UPSTREAM_SECRET}\"\n{upstream_extra}\n"
    )
}

/// A fake upstream that receives: the test learns that a request is in flight when it arrives here.
fn fake_upstream() -> Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddr::new(LOCALHOST, 0))?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(socket)
}

#[test]
fn sigterm_with_a_request_stuck_upstream_exits_zero_within_the_grace_period() -> Result<()> {
    let upstream = fake_upstream()?;
    let grace = Duration::from_secs(1);
    let dir = TestDir::new("lifecycle")?;
    // The upstream timeout (30 s) is far longer than the grace period: only the grace can end the wait.
    let config = dir.write(
        "portvakt.toml",
        serve_config(
            upstream.local_addr()?,
            "shutdown_grace = \"1s\"",
            "timeout = \"30s\"\nretries = 0",
        ),
    )?;
    let mut served = Served::start(&dir, &config, "info")?;
    let nas = nas_socket(Duration::from_secs(1))?;
    nas.send_to(&bob_request()?.0, served.auth())?;
    let mut buf = [0u8; 4096];
    upstream
        .recv_from(&mut buf)
        .context("the request never reached the upstream")?;

    let (status, took) = served.terminate(grace + Duration::from_secs(1))?;

    assert!(
        status.success(),
        "exit {status} after {took:?}:\n{}",
        served.stderr_text()
    );
    assert!(took <= grace + Duration::from_secs(1), "took {took:?}");
    let messages = served.messages()?;
    assert!(
        messages
            .iter()
            .any(|m| m.contains("requests still in progress after 1s: 1;")),
        "the daemon says it gave up on the stuck request:\n{messages:#?}"
    );
    assert_eq!(
        pending_datagram(&nas)?,
        None,
        "no reply for the abandoned request"
    );
    eprintln!("SIGTERM to exit with a stuck request: {took:?} (grace {grace:?})");
    Ok(())
}

#[test]
fn a_request_in_flight_at_sigterm_still_gets_its_reply() -> Result<()> {
    let upstream = fake_upstream()?;
    let dir = TestDir::new("lifecycle")?;
    let config = dir.write(
        "portvakt.toml",
        serve_config(
            upstream.local_addr()?,
            "shutdown_grace = \"10s\"",
            "timeout = \"30s\"\nretries = 0",
        ),
    )?;
    let mut served = Served::start(&dir, &config, "info")?;
    let nas = nas_socket(Duration::from_secs(5))?;
    let (request, nas_authenticator) = bob_request()?;
    nas.send_to(&request, served.auth())?;
    let mut buf = [0u8; 4096];
    let (n, proxy_side) = upstream
        .recv_from(&mut buf)
        .context("the request never reached the upstream")?;
    let forwarded = Packet::decode(&buf[..n])?;

    served.sigterm()?;
    served.wait_for_message("SIGTERM received", Duration::from_secs(5))?;
    // Only now does the directory answer: an Accept signed for portvakt's request.
    let mut accept = Packet::new(Code::AccessAccept, forwarded.identifier, [0; 16]);
    accept.set_message_authenticator_first();
    accept.push(attr::REPLY_MESSAGE, &b"late but fine"[..]);
    let bytes = radius::encode_response(
        &accept,
        &forwarded.authenticator,
        UPSTREAM_SECRET.as_bytes(),
    )?;
    upstream.send_to(&bytes, proxy_side)?;
    let replied_at = Instant::now();

    let (n, _) = nas
        .recv_from(&mut buf)
        .context("no reply for the request in flight")?;
    radius::verify_response(&buf[..n], &nas_authenticator, NAS_SECRET.as_bytes())?;
    let reply = Packet::decode(&buf[..n])?;
    assert_eq!(reply.code, Code::AccessAccept);
    assert_eq!(reply.attr(attr::REPLY_MESSAGE), Some(&b"late but fine"[..]));
    // With nothing left in flight the drain ends at once, long before the 10 s grace.
    let status = served
        .wait(Duration::from_secs(2))?
        .context("still running 2 s after its last request finished")?;
    assert!(status.success(), "exit {status}");
    eprintln!("exit {:?} after the last reply", replied_at.elapsed());
    Ok(())
}

/// portvakt in-process with a configuration the test writes whole (the `[server]` table is ours to set).
struct InProcess {
    auth: SocketAddr,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<()>>,
    _dir: TestDir,
}

impl InProcess {
    fn start(config: &str) -> Result<Self> {
        let dir = TestDir::new("lifecycle-inproc")?;
        let path = dir.write("portvakt.toml", config)?;
        let settings = Settings::load(&path)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let daemon = {
            let _guard = runtime.enter();
            Daemon::bind(settings)?
        };
        let auth = daemon.local_addrs(Listener::Auth)[0];
        let ctx = daemon.context();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let thread = std::thread::spawn(move || runtime.block_on(daemon.run(token)));
        Ok(Self {
            auth,
            ctx,
            shutdown,
            thread: Some(thread),
            _dir: dir,
        })
    }

    /// Waits up to `limit` for `condition` on the daemon's context.
    fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        condition: impl Fn(&Context) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + limit;
        while !condition(&self.ctx) {
            ensure!(Instant::now() < deadline, "{what}: not within {limit:?}");
            std::thread::sleep(POLL_INTERVAL);
        }
        Ok(())
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn overload_drops_new_logins_silently_but_still_answers_status_server() -> Result<()> {
    // A port nobody answers on: the two admitted requests wait out the 2 s timeout.
    let dead = SocketAddr::new(LOCALHOST, crate::support::free_udp_port(LOCALHOST)?);
    let config = serve_config(dead, "max_in_flight = 2", "timeout = \"2s\"\nretries = 0")
        .replace("acct_listen = []", "acct_listen = [\"127.0.0.1:0\"]");
    let proxy = InProcess::start(&config)?;
    let stats = &proxy.ctx.stats;

    let sockets = (0..10)
        .map(|_| nas_socket(Duration::from_millis(100)))
        .collect::<Result<Vec<_>>>()?;
    for socket in &sockets {
        socket.send_to(&bob_request()?.0, proxy.auth)?;
    }
    // Sent last, so received last, while the daemon is saturated: Status-Server uses the reserve (RFC 5080
    // §2.2.3 — new logins are dropped first), so a NAS does not take portvakt for dead.
    let status_socket = nas_socket(Duration::from_secs(2))?;
    status_socket.send_to(&status_server_request()?, proxy.auth)?;
    proxy.wait_for(Duration::from_secs(5), "11 datagrams received", |c| {
        c.stats.received.load(Ordering::Relaxed) == 11
    })?;
    assert_eq!(
        stats.overload.load(Ordering::Relaxed),
        8,
        "8 Access-Requests over the limit of 2"
    );
    assert!(
        pending_datagram(&status_socket)?.is_some(),
        "Status-Server answered under overload"
    );

    // The two admitted requests end with the upstream timeout: dropped too (the NAS retransmits), never rejected.
    proxy.wait_for(Duration::from_secs(10), "2 upstream timeouts", |c| {
        c.stats.dropped("upstream_timeout") == 2
    })?;
    for (i, socket) in sockets.iter().enumerate() {
        assert_eq!(
            pending_datagram(socket)?,
            None,
            "socket {i} got a reply under overload"
        );
    }
    assert_eq!(
        stats.replies.load(Ordering::Relaxed),
        1,
        "only the Status-Server answer"
    );
    Ok(())
}
