//! The daemon: binds the listeners, owns the shared [`Context`], runs the receive
//! loops, and drains on shutdown.
//!
//! State: one read-only `Arc<Context>`. Its mutable parts are few and each documents
//! its own locking: the duplicate cache ([`Replay`]), the upstream Identifier pools
//! and health ([`Upstreams`]), pending challenges, the limiter, the NAS table and the
//! sites (each a [`Swap`], replaced whole by a reload), and counters (atomics).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::approval::{self, Approvals, DenyReason, Resolved};
use crate::challenge::Challenges;
use crate::clients::Clients;
use crate::config::{KeySource, Settings};
use crate::limits::Limiter;
use crate::outbox::Outbox;
use crate::pipeline::{self, Outcome};
use crate::replay::Replay;
use crate::sites::SiteConfig;
use crate::store::{Store, StoreKey, StoreOptions};
use crate::swap::Swap;
use crate::upstream::Upstreams;

/// The kernel receive buffer we ask for: bursts of thousands of logins must not be
/// dropped by the socket before we see them.
const RECV_BUFFER: usize = 4 << 20;

/// Errors that stop the daemon from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The user store could not be opened (missing or wrong key, unreadable file).
    #[error("user store: {0}")]
    Store(String),
}

/// Which listener a datagram arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Authentication (Access-Request, Status-Server).
    Auth,
    /// Accounting (Accounting-Request, Status-Server).
    Acct,
}

/// Counters, readable while the daemon runs.
#[derive(Debug, Default)]
pub struct Stats {
    /// Datagrams received.
    pub received: AtomicU64,
    /// Replies the kernel took (including cached resends).
    pub replies: AtomicU64,
    /// Cached replies sent again for retransmissions.
    pub resent: AtomicU64,
    /// Datagrams dropped because too many requests were in progress.
    pub overload: AtomicU64,
    /// Datagrams dropped, by reason.
    drops: Mutex<HashMap<&'static str, u64>>,
}

impl Stats {
    /// How many datagrams were dropped for `reason` (see [`pipeline::Drop::as_str`]).
    pub fn dropped(&self, reason: &str) -> u64 {
        self.drops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(reason)
            .copied()
            .unwrap_or(0)
    }

    fn count_drop(&self, reason: &'static str) {
        *self
            .drops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_default() += 1;
    }
}

/// Everything a request needs, shared read-only by all request tasks.
#[derive(Debug)]
pub struct Context {
    /// The validated configuration, as loaded at start. The NAS table and the sites in force
    /// are [`Context::clients`] and [`Context::sites`]: a reload (SIGHUP) replaces those.
    pub settings: Settings,
    /// The NAS table; replaced whole by [`Context::reload`].
    pub clients: Swap<Clients>,
    /// Sites, exceptions and where groups are read; replaced whole by [`Context::reload`].
    pub sites: Swap<SiteConfig>,
    /// The directory servers.
    pub upstreams: Upstreams,
    /// The duplicate cache.
    pub replay: Replay,
    /// Pending second-factor challenges.
    pub challenges: Challenges,
    /// The user store, if configured.
    pub store: Option<Store>,
    /// Pending push approvals, if `[approval]` is configured.
    pub approvals: Option<Arc<Approvals>>,
    /// Rate limits, lockouts and the spray shield (internally synchronised).
    pub limiter: Limiter,
    /// Counters.
    pub stats: Stats,
    /// When each unknown source was last logged, so a flood logs once a minute per
    /// address. A std mutex: lookup and insert only, never held across `.await`.
    unknown_logged: Mutex<HashMap<IpAddr, Instant>>,
}

impl Context {
    /// Builds the context from settings and an opened store.
    pub fn new(settings: Settings, store: Option<Store>) -> Self {
        Self {
            clients: Swap::new(Clients::new(settings.clients.clone())),
            sites: Swap::new(settings.sites.clone()),
            upstreams: Upstreams::new(settings.upstreams.clone()),
            replay: Replay::new(settings.duplicate_window),
            challenges: Challenges::new(settings.mfa.challenge_ttl, settings.mfa.max_pending),
            approvals: settings
                .approval
                .as_ref()
                .map(|a| Arc::new(Approvals::new(a.policy.clone()))),
            limiter: Limiter::new(settings.limits.clone()),
            store,
            stats: Stats::default(),
            unknown_logged: Mutex::new(HashMap::new()),
            settings,
        }
    }

    /// Applies the reloadable part of `settings`, a fresh load of the configuration file:
    /// the NAS table (addresses, secrets, per-client policy, origin and second-factor mode)
    /// and the sites, exceptions and groups. Requests in progress finish with the tables they
    /// started with; pending challenges and push approvals are kept. Everything else
    /// (listeners, upstreams, store, limits, providers) is read at start only.
    pub fn reload(&self, settings: &Settings) {
        self.clients.store(Clients::new(settings.clients.clone()));
        self.sites.store(settings.sites.clone());
    }

    /// A User-Name as the store and the policy see it (see [`crate::username::normalize`]).
    pub fn normalize_user(&self, raw: &[u8]) -> Option<String> {
        let strip = self.settings.store.as_ref().is_some_and(|s| s.strip_realm);
        crate::username::normalize(raw, strip)
    }

    fn log_unknown(&self, ip: IpAddr) {
        let mut seen = self
            .unknown_logged
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if seen.len() > 10_000 {
            seen.retain(|_, at| at.elapsed() < Duration::from_secs(60));
        }
        let due = seen
            .get(&ip)
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(60));
        if due {
            seen.insert(ip, Instant::now());
            tracing::debug!(source = %ip, "dropping requests from an address that is no client");
        }
    }
}

/// A daemon with its sockets bound, ready to run.
#[derive(Debug)]
pub struct Daemon {
    ctx: Arc<Context>,
    sockets: Vec<(Listener, Arc<UdpSocket>)>,
    /// The approval API's listener, if `[approval]` is configured.
    approval: Option<std::net::TcpListener>,
}

impl Daemon {
    /// Opens the store and binds every listener. Nothing is received until [`Daemon::run`].
    /// A missing or wrong store key stops here: there is no plaintext fallback.
    pub fn bind(settings: Settings) -> Result<Self, Error> {
        let store = open_store(&settings)?;
        let lockouts = match &store {
            Some(store) => store.lockouts().map_err(|e| Error::Store(e.to_string()))?,
            None => {
                tracing::warn!(
                    "no [store] configured: logins that need a second factor are rejected, \
                     and lockouts last only until a restart"
                );
                Vec::new()
            }
        };
        let mut sockets = Vec::new();
        for (listener, addrs) in [
            (Listener::Auth, &settings.auth_listen),
            (Listener::Acct, &settings.acct_listen),
        ] {
            for addr in addrs {
                let socket = bind_udp(*addr).map_err(|source| Error::Bind {
                    addr: *addr,
                    source,
                })?;
                sockets.push((listener, Arc::new(socket)));
            }
        }
        let approval = settings
            .approval
            .as_ref()
            .map(|a| bind_tcp(a.listen))
            .transpose()?;
        let ctx = Context::new(settings, store);
        let loaded = ctx.limiter.load_lockouts(lockouts);
        if loaded > 0 {
            tracing::info!("{loaded} lockouts still in force from before the restart");
        }
        Ok(Self {
            ctx: Arc::new(ctx),
            sockets,
            approval,
        })
    }

    /// The approval API's bound address (with the kernel's port for port 0), if any.
    pub fn approval_addr(&self) -> Option<SocketAddr> {
        self.approval.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound addresses of a listener kind (with the kernel's port for port 0).
    pub fn local_addrs(&self, listener: Listener) -> Vec<SocketAddr> {
        self.sockets
            .iter()
            .filter(|(l, _)| *l == listener)
            .filter_map(|(_, s)| s.local_addr().ok())
            .collect()
    }

    /// The shared context (for counters in tests and tools).
    pub fn context(&self) -> Arc<Context> {
        self.ctx.clone()
    }

    /// Serves until `shutdown` is cancelled, then lets requests in progress finish
    /// within the grace period.
    pub async fn run(self, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        let permits = Arc::new(Permits::new(self.ctx.settings.max_in_flight));
        let mut loops = Vec::new();
        // The outboxes outlive the receive loops: requests that finish during the drain
        // still get their replies out.
        let flush_stop = CancellationToken::new();
        let mut flushers = Vec::new();
        for (listener, socket) in &self.sockets {
            let outbox = Arc::new(Outbox::new());
            flushers.push(tokio::spawn({
                let (ctx, outbox, socket, stop) = (
                    self.ctx.clone(),
                    outbox.clone(),
                    socket.clone(),
                    flush_stop.clone(),
                );
                async move { outbox.run(&socket, &ctx.stats.replies, stop).await }
            }));
            let ctx = self.ctx.clone();
            let (socket, tracker, permits, shutdown) = (
                socket.clone(),
                tracker.clone(),
                permits.clone(),
                shutdown.clone(),
            );
            loops.push(tokio::spawn(receive(
                ctx, *listener, socket, outbox, tracker, permits, shutdown,
            )));
        }
        let purge = tokio::spawn(purge(self.ctx.clone(), shutdown.clone()));
        // The approval API outlives the receive loops: logins held at shutdown can still be
        // approved within the grace period.
        let api_stop = CancellationToken::new();
        let api = self
            .approval
            .and_then(|l| serve_approvals(&self.ctx, l, api_stop.clone()));
        shutdown.cancelled().await;
        for l in loops {
            let _ = l.await;
        }
        purge.abort();
        tracker.close();
        let grace = self.ctx.settings.shutdown_grace;
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(
                "requests still in progress after {grace:?}: {}; stopping anyway",
                tracker.len()
            );
        }
        flush_stop.cancel();
        for f in flushers {
            let _ = f.await;
        }
        api_stop.cancel();
        if let Some(mut api) = api {
            // A phone's connection that stays open must not stop the shutdown.
            if tokio::time::timeout(grace, &mut api).await.is_err() {
                api.abort();
            }
        }
    }
}

/// Opens the user store named in the settings, if any.
pub fn open_store(settings: &Settings) -> Result<Option<Store>, Error> {
    let Some(s) = &settings.store else {
        return Ok(None);
    };
    let key = match &s.key {
        KeySource::File(path) => StoreKey::from_file(path),
        KeySource::Credential(name) => StoreKey::from_credential(name),
    }
    .map_err(|e| Error::Store(e.to_string()))?;
    let options = StoreOptions {
        strip_realm: s.strip_realm,
        ..StoreOptions::default()
    };
    Store::open_with(&s.path, &key, &options)
        .map(Some)
        .map_err(|e| Error::Store(e.to_string()))
}

/// The bound on requests in progress (`server.max_in_flight`), plus a reserve of one
/// eighth more for requests that finish work already begun or tell a NAS we are alive:
/// under overload, new logins are dropped first (RFC 5080 §2.2.3), while answers to a
/// challenge (they carry a State) and Status-Server still get through.
#[derive(Debug)]
struct Permits {
    normal: Arc<Semaphore>,
    reserve: Arc<Semaphore>,
}

impl Permits {
    fn new(max: usize) -> Self {
        Self {
            normal: Arc::new(Semaphore::new(max)),
            reserve: Arc::new(Semaphore::new(max / 8 + 1)),
        }
    }

    fn take(&self, datagram: &[u8]) -> Option<OwnedSemaphorePermit> {
        self.normal.clone().try_acquire_owned().ok().or_else(|| {
            is_priority(datagram)
                .then(|| self.reserve.clone().try_acquire_owned().ok())
                .flatten()
        })
    }
}

/// Status-Server, or an Access-Request carrying a State — read from the raw octets
/// without decoding (this runs before any other check, on every datagram under load).
fn is_priority(datagram: &[u8]) -> bool {
    use crate::radius::{Code, attr};
    match datagram.first().copied().and_then(Code::from_u8) {
        Some(Code::StatusServer) => true,
        Some(Code::AccessRequest) => crate::radius::packet::packet_bytes(datagram)
            .is_ok_and(|raw| crate::radius::packet::attribute_types(raw).any(|t| t == attr::STATE)),
        _ => false,
    }
}

/// Binds the approval API's listener (non-blocking, for tokio) before any request is served.
fn bind_tcp(addr: SocketAddr) -> Result<std::net::TcpListener, Error> {
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| Error::Bind { addr, source })?;
    Ok(listener)
}

/// Serves the approval API until shutdown. `None` (logged) if the listener cannot be
/// handed to the runtime.
fn serve_approvals(
    ctx: &Arc<Context>,
    listener: std::net::TcpListener,
    shutdown: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let approvals = ctx.approvals.clone()?;
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("approval API: {e}");
            return None;
        }
    };
    let router = approval::http::router(approvals, on_resolved(ctx.store.clone()));
    Some(tokio::spawn(async move {
        if let Err(e) = approval::http::serve(listener, router, shutdown).await {
            tracing::error!("approval API stopped: {e}");
        }
    }))
}

/// What the daemon does with a phone's answer: a deny or a wrong number counts as a
/// second-factor failure; "this wasn't me" locks the user and warns the administrators.
/// Store work goes to the blocking pool (the callback runs on the request task).
fn on_resolved(store: Option<Store>) -> approval::http::OnResolved {
    Arc::new(move |resolved: &Resolved| {
        let Resolved::Denied(login, reason) = resolved else {
            return;
        };
        let user = crate::audit::escape(login.user.as_bytes());
        if *reason == DenyReason::NotMe {
            tracing::warn!(user = %user, nas = %login.nas,
                "push denied with \"this wasn't me\": user locked, check for a stolen password");
        }
        let Some(store) = store.clone() else {
            return;
        };
        let (name, reason) = (login.user.clone(), *reason);
        tokio::task::spawn_blocking(move || {
            let done = match reason {
                DenyReason::NotMe => store.report_not_me(&name),
                DenyReason::Denied | DenyReason::WrongNumber => store.record_failure(&name),
            };
            if let Err(e) = done {
                tracing::error!("user store: cannot record a denied push: {e}");
            }
        });
    })
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // So that `[::]:1812` and `0.0.0.0:1812` can both be bound.
        socket.set_only_v6(true)?;
    }
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

async fn receive(
    ctx: Arc<Context>,
    listener: Listener,
    socket: Arc<UdpSocket>,
    outbox: Arc<Outbox>,
    tracker: TaskTracker,
    permits: Arc<Permits>,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; crate::radius::packet::MAX_PACKET_LEN];
    loop {
        let (n, src) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!("receive error: {e}");
                    continue;
                }
            },
        };
        ctx.stats.received.fetch_add(1, Ordering::Relaxed);
        let Some(permit) = permits.take(&buf[..n]) else {
            ctx.stats.overload.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let datagram = buf[..n].to_vec();
        let (ctx, outbox) = (ctx.clone(), outbox.clone());
        tracker.spawn(async move {
            let started = Instant::now();
            let outcome = pipeline::handle(&ctx, listener, src, &datagram).await;
            respond(&ctx, &outbox, src, outcome, started);
            drop(permit);
        });
    }
}

/// Logs the outcome and queues the reply, if any (sent by the listener's [`Outbox`]).
fn respond(ctx: &Context, outbox: &Outbox, src: SocketAddr, outcome: Outcome, started: Instant) {
    let bytes = match outcome {
        Outcome::Reply(bytes, audit) => {
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            tracing::info!(
                target: crate::audit::TARGET,
                client = %audit.client,
                user = audit.user.as_deref().unwrap_or("-"),
                nas = audit.nas.as_deref().unwrap_or("-"),
                station = audit.station.as_deref().unwrap_or("-"),
                result = audit.result,
                reason = audit.reason,
                decision = audit.decision.as_deref().unwrap_or("-"),
                upstream = audit.upstream.as_deref().unwrap_or("-"),
                duration_ms = format_args!("{ms:.2}"),
                "request finished"
            );
            bytes
        }
        Outcome::Resend(bytes) => {
            ctx.stats.resent.fetch_add(1, Ordering::Relaxed);
            bytes
        }
        Outcome::Drop(reason) => {
            ctx.stats.count_drop(reason.as_str());
            if reason == pipeline::Drop::UnknownClient {
                ctx.log_unknown(src.ip());
            } else {
                tracing::debug!(source = %src, reason = reason.as_str(), "request dropped");
            }
            return;
        }
    };
    outbox.push(src, bytes);
}

/// Housekeeping: forgets old replies and expired challenges once a second, and lets the
/// limiter forget quiet keys (and return their memory) every 30 seconds.
async fn purge(ctx: Arc<Context>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {
                ctx.replay.purge();
                ctx.challenges.purge();
                if let Some(a) = &ctx.approvals {
                    a.purge();
                }
                ticks += 1;
                if ticks.is_multiple_of(30) {
                    ctx.limiter.maintain();
                }
            }
        }
    }
}
