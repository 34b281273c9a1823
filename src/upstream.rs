//! The directory side: sending requests to NPS/FreeRADIUS and getting verified replies.
//!
//! Each upstream has a small pool of connected UDP sockets. Each socket owns the
//! 256 Identifiers of its (source port, server) pair and hands them out FIFO — the
//! Identifier just freed is reused last, which FreeRADIUS needs (test-peers.md,
//! gotcha 5). When every socket is full, the pool grows a socket, so more than 256
//! requests can be in flight and no Identifier is reused before its reply or timeout.
//!
//! A reply is accepted only if it matches a pending request's Identifier, its
//! Response Authenticator verifies against that request, and (by default) it carries a
//! valid Message-Authenticator. Anything else is dropped and counted.
//!
//! Health: consecutive timeouts mark a server dead; traffic moves to the next
//! priority; a dead server is probed with Status-Server (RFC 5997) and revived after
//! `answers_to_alive` answers in a row.

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout};
use zeroize::Zeroizing;

use crate::config::UpstreamSettings;
use crate::radius::{self, Code, Keying, Packet, attr, crypt, random};

/// Sockets per pool at most: 64 × 256 requests in flight per server and port.
const MAX_SOCKETS: usize = 64;
/// Request Authenticators drawn from the CSPRNG per system call (16 octets each).
const AUTHENTICATOR_BATCH: usize = 256;
/// How long an upstream State is remembered, to send the next round to the same server.
const STICKY_TTL: Duration = Duration::from_secs(120);

/// Why a request got no usable reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No server answered in time.
    Timeout,
    /// No server is configured for this kind of request (e.g. no `acct` address).
    NoServer,
    /// The request could not be built (e.g. too long once re-signed).
    Unencodable,
    /// Too many requests in flight to every server.
    Exhausted,
}

impl Failure {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "upstream_timeout",
            Self::NoServer => "no_upstream",
            Self::Unencodable => "unencodable",
            Self::Exhausted => "upstream_exhausted",
        }
    }
}

/// A verified reply from a server.
#[derive(Debug)]
pub struct Reply {
    /// The decoded reply.
    pub packet: Packet,
    /// The server that answered.
    pub server: Arc<Server>,
    /// The Request Authenticator we sent, which keys the reply's hidden attributes.
    pub request_authenticator: [u8; 16],
}

impl Reply {
    /// The keying of hidden attributes in this reply.
    pub fn keying(&self) -> Keying<'_> {
        Keying {
            secret: self.server.settings.secret.expose(),
            authenticator: &self.request_authenticator,
        }
    }
}

/// An outgoing request, before it is signed for a particular server.
#[derive(Debug)]
pub struct Outgoing {
    /// Access-Request, Accounting-Request or Status-Server.
    pub code: Code,
    /// Attributes to send, without Message-Authenticator and without User-Password.
    pub attributes: Vec<radius::Attribute>,
    /// The user's password in clear, hidden afresh for each server.
    pub password: Option<Zeroizing<Vec<u8>>>,
}

/// Which port of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// Authentication (Access-Request, Status-Server).
    Auth,
    /// Accounting.
    Acct,
}

/// Counters for the upstream side.
#[derive(Debug, Default)]
pub struct Stats {
    /// Replies dropped: unknown Identifier, bad authenticator, missing or bad MA.
    pub invalid_replies: AtomicU64,
    /// Attempts that timed out.
    pub timeouts: AtomicU64,
}

/// All upstream servers.
#[derive(Debug)]
pub struct Upstreams {
    servers: Vec<Arc<Server>>,
    next: AtomicUsize,
    /// Upstream State → server index, so the next round of an EAP conversation or an
    /// upstream challenge goes to the server that holds its state. A std mutex: held
    /// only for a lookup or insert, never across `.await`.
    sticky: Mutex<HashMap<Vec<u8>, (usize, Instant)>>,
    /// Counters.
    pub stats: Arc<Stats>,
}

/// One upstream server.
#[derive(Debug)]
pub struct Server {
    /// Its settings.
    pub settings: UpstreamSettings,
    auth: Pool,
    acct: Option<Pool>,
    dead: AtomicBool,
    timeouts_in_row: AtomicU32,
}

impl Upstreams {
    /// Creates the servers; sockets are opened lazily on first use.
    pub fn new(settings: Vec<UpstreamSettings>) -> Self {
        let stats = Arc::new(Stats::default());
        let servers = settings
            .into_iter()
            .map(|s| {
                let auth = Pool::new(s.auth, s.clone(), stats.clone());
                let acct = s.acct.map(|a| Pool::new(a, s.clone(), stats.clone()));
                Arc::new(Server {
                    settings: s,
                    auth,
                    acct,
                    dead: AtomicBool::new(false),
                    timeouts_in_row: AtomicU32::new(0),
                })
            })
            .collect();
        Self {
            servers,
            next: AtomicUsize::new(0),
            sticky: Mutex::new(HashMap::new()),
            stats,
        }
    }

    /// The servers, in priority order.
    pub fn servers(&self) -> &[Arc<Server>] {
        &self.servers
    }

    /// Sends `out` to the best server for `port` and waits for a verified reply, moving
    /// to the next server when one times out. `state` (an upstream State the NAS sent
    /// back) pins the request to the server that issued it.
    pub async fn send(
        &self,
        out: &Outgoing,
        port: Port,
        state: Option<&[u8]>,
    ) -> Result<Reply, Failure> {
        let order = self.order(port, state);
        if order.is_empty() {
            return Err(Failure::NoServer);
        }
        let mut failure = Failure::Timeout;
        for server in order {
            match server.exchange(out, port).await {
                Ok((packet, request_authenticator)) => {
                    let reply = Reply {
                        packet,
                        server: server.clone(),
                        request_authenticator,
                    };
                    if reply.packet.code == Code::AccessChallenge {
                        self.remember_state(&reply);
                    }
                    return Ok(reply);
                }
                Err(Failure::Timeout) => self.note_timeout(&server),
                Err(e) => failure = e,
            }
        }
        Err(failure)
    }

    /// Candidate servers: the pinned one first; then live servers by priority, rotating
    /// among equal priorities; dead servers only when none is alive.
    fn order(&self, port: Port, state: Option<&[u8]>) -> Vec<Arc<Server>> {
        let usable = |s: &&Arc<Server>| port == Port::Auth || s.acct.is_some();
        // One server (the common case) has one order, pinned or not, dead or alive: no
        // lookup, no rotation, and one allocation instead of four on every request.
        if let [only] = self.servers.as_slice() {
            return std::iter::once(only).filter(usable).cloned().collect();
        }
        let mut order: Vec<Arc<Server>> = Vec::with_capacity(self.servers.len());
        if let Some(i) = state.and_then(|st| self.pinned(st)) {
            order.push(self.servers[i].clone());
        }
        let alive: Vec<&Arc<Server>> = self
            .servers
            .iter()
            .filter(usable)
            .filter(|s| !s.dead.load(Ordering::Relaxed))
            .collect();
        let pool: Vec<&Arc<Server>> = if alive.is_empty() {
            self.servers.iter().filter(usable).collect()
        } else {
            alive
        };
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let mut i = 0;
        while i < pool.len() {
            let prio = pool[i].settings.priority;
            let group: Vec<&Arc<Server>> = pool[i..]
                .iter()
                .take_while(|s| s.settings.priority == prio)
                .copied()
                .collect();
            for k in 0..group.len() {
                let s = group[(turn + k) % group.len()];
                if !order.iter().any(|o| Arc::ptr_eq(o, s)) {
                    order.push(s.clone());
                }
            }
            i += group.len();
        }
        order
    }

    fn pinned(&self, state: &[u8]) -> Option<usize> {
        let map = self.sticky.lock().unwrap_or_else(|p| p.into_inner());
        map.get(state)
            .filter(|(_, at)| at.elapsed() < STICKY_TTL)
            .map(|(i, _)| *i)
    }

    fn remember_state(&self, reply: &Reply) {
        let Some(state) = reply.packet.state() else {
            return;
        };
        let Some(i) = self
            .servers
            .iter()
            .position(|s| Arc::ptr_eq(s, &reply.server))
        else {
            return;
        };
        let mut map = self.sticky.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (_, at)| at.elapsed() < STICKY_TTL);
        }
        map.insert(state.to_vec(), (i, Instant::now()));
    }

    fn note_timeout(&self, server: &Arc<Server>) {
        let n = server.timeouts_in_row.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= server.settings.dead_after && !server.dead.swap(true, Ordering::Relaxed) {
            tracing::warn!(upstream = %server.settings.name, "upstream marked dead after {n} timeouts in a row");
            tokio::spawn(revive(server.clone()));
        }
    }
}

impl Server {
    /// Whether the server is currently marked dead.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }

    /// One request to this server, with its retransmissions.
    async fn exchange(&self, out: &Outgoing, port: Port) -> Result<(Packet, [u8; 16]), Failure> {
        let pool = match port {
            Port::Auth => &self.auth,
            Port::Acct => self.acct.as_ref().ok_or(Failure::NoServer)?,
        };
        let (packet, slot, rx) = pool.prepare(out)?;
        let mut rx = rx;
        for _ in 0..=self.settings.retries {
            // A send error (e.g. ICMP unreachable reported on a connected socket) is the
            // same as a lost packet: wait out the timeout and retry.
            let _ = slot.socket.socket.send(&packet).await;
            match timeout(self.settings.timeout, &mut rx).await {
                Ok(Ok(reply)) => {
                    self.timeouts_in_row.store(0, Ordering::Relaxed);
                    return Ok((reply, slot.authenticator));
                }
                Ok(Err(_)) => break,
                Err(_) => pool.stats.timeouts.fetch_add(1, Ordering::Relaxed),
            };
        }
        Err(Failure::Timeout)
    }
}

/// Probes a dead server until it answers `answers_to_alive` times in a row.
async fn revive(server: Arc<Server>) {
    let s = &server.settings;
    let mut answers = 0;
    loop {
        tokio::time::sleep(if s.status_server {
            s.probe_interval
        } else {
            s.revive_after
        })
        .await;
        if !s.status_server {
            break;
        }
        if server.auth.probe().await {
            answers += 1;
            if answers >= s.answers_to_alive {
                break;
            }
        } else {
            answers = 0;
        }
    }
    server.timeouts_in_row.store(0, Ordering::Relaxed);
    server.dead.store(false, Ordering::Relaxed);
    tracing::info!(upstream = %s.name, "upstream alive again");
}

/// The sockets toward one address of one server.
#[derive(Debug)]
struct Pool {
    target: SocketAddr,
    settings: UpstreamSettings,
    stats: Arc<Stats>,
    /// The sockets. A std mutex: held to pick or add a socket, never across `.await`.
    sockets: Mutex<Vec<Arc<PoolSocket>>>,
    /// Fresh Request Authenticators.
    authenticators: Authenticators,
}

/// Request Authenticators from the operating system's CSPRNG, drawn [`AUTHENTICATOR_BATCH`]
/// at a time: one `getrandom` system call per batch instead of one per request, which costs
/// more than the hop's whole MD5 work. The octets are the same CSPRNG output either way;
/// each authenticator is handed out once and wiped from the batch.
struct Authenticators {
    /// A std mutex: held to copy 16 octets or to refill, never across `.await`.
    batch: Mutex<Batch>,
}

struct Batch {
    octets: Box<[u8; AUTHENTICATOR_BATCH * 16]>,
    /// Offset of the next unused authenticator; `octets.len()` when the batch is spent.
    next: usize,
}

impl Authenticators {
    fn new() -> Self {
        Self {
            batch: Mutex::new(Batch {
                octets: Box::new([0; AUTHENTICATOR_BATCH * 16]),
                next: AUTHENTICATOR_BATCH * 16,
            }),
        }
    }

    fn next(&self) -> [u8; 16] {
        let mut b = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        if b.next == b.octets.len() {
            random::fill(&mut b.octets[..]);
            b.next = 0;
        }
        let at = b.next;
        let mut out = [0; 16];
        out.copy_from_slice(&b.octets[at..at + 16]);
        b.octets[at..at + 16].fill(0);
        b.next = at + 16;
        out
    }
}

impl std::fmt::Debug for Authenticators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticators(<unprinted>)")
    }
}

#[derive(Debug)]
struct PoolSocket {
    socket: UdpSocket,
    /// Identifier slots. A std mutex: held only to take or free a slot, or to hand a
    /// reply to its waiter; never across `.await`.
    slots: Mutex<Slots>,
}

#[derive(Debug)]
struct Slots {
    free: VecDeque<u8>,
    pending: HashMap<u8, Waiter>,
}

#[derive(Debug)]
struct Waiter {
    authenticator: [u8; 16],
    /// Whether the reply must carry a valid Message-Authenticator: for Access-Request
    /// when the server is configured so. Not for a probe (it only tells us the server
    /// is alive; FreeRADIUS 3.2.1 does not sign Status-Server replies), nor for
    /// accounting (BlastRADIUS forges Access-Accepts; many servers do not sign
    /// Accounting-Response).
    needs_ma: bool,
    tx: oneshot::Sender<Packet>,
}

/// An Identifier taken on a socket; freed (to the back of the queue) on drop.
struct Slot {
    socket: Arc<PoolSocket>,
    id: u8,
    authenticator: [u8; 16],
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut slots = self.socket.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.pending.remove(&self.id);
        slots.free.push_back(self.id);
    }
}

impl Pool {
    fn new(target: SocketAddr, settings: UpstreamSettings, stats: Arc<Stats>) -> Self {
        Self {
            target,
            settings,
            stats,
            sockets: Mutex::new(Vec::new()),
            authenticators: Authenticators::new(),
        }
    }

    /// Takes a slot and builds the signed packet for it.
    fn prepare(
        &self,
        out: &Outgoing,
    ) -> Result<(Vec<u8>, Slot, oneshot::Receiver<Packet>), Failure> {
        let authenticator = self.authenticators.next();
        let needs_ma =
            self.settings.require_message_authenticator && out.code == Code::AccessRequest;
        let (slot, rx) = self.take_slot(authenticator, needs_ma)?;
        let mut packet = Packet::new(out.code, slot.id, authenticator);
        packet.attributes.reserve(out.attributes.len() + 2);
        // Always signed: BlastRADIUS hardening on our side of the hop costs nothing.
        packet.set_message_authenticator_first();
        let secret = self.settings.secret.expose();
        if let Some(pw) = &out.password {
            let hidden = crypt::hide_password(
                pw,
                Keying {
                    secret,
                    authenticator: &authenticator,
                },
            )
            .map_err(|_| Failure::Unencodable)?;
            packet.push(attr::USER_PASSWORD, hidden);
        }
        packet.attributes.extend(out.attributes.iter().cloned());
        let bytes = radius::encode_request(&packet, self.settings.secret.signing())
            .map_err(|_| Failure::Unencodable)?;
        let mut slot = slot;
        if out.code.has_computed_request_authenticator() {
            // Accounting: the authenticator was computed from the packet, and the
            // reply's Response Authenticator is keyed on it.
            slot.authenticator.copy_from_slice(&bytes[4..20]);
            slot.socket.rekey(slot.id, slot.authenticator);
        }
        Ok((bytes, slot, rx))
    }

    fn take_slot(
        &self,
        authenticator: [u8; 16],
        needs_ma: bool,
    ) -> Result<(Slot, oneshot::Receiver<Packet>), Failure> {
        let (tx, rx) = oneshot::channel();
        let mut waiter = Some(Waiter {
            authenticator,
            needs_ma,
            tx,
        });
        let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        for socket in sockets.iter() {
            if let Some(id) = socket.try_take(&mut waiter) {
                return Ok((
                    Slot {
                        socket: socket.clone(),
                        id,
                        authenticator,
                    },
                    rx,
                ));
            }
        }
        if sockets.len() >= MAX_SOCKETS {
            return Err(Failure::Exhausted);
        }
        let socket = self.open().map_err(|e| {
            tracing::error!(upstream = %self.settings.name, "cannot open a socket toward {}: {e}", self.target);
            Failure::Exhausted
        })?;
        let id = socket.try_take(&mut waiter).ok_or(Failure::Exhausted)?;
        sockets.push(socket.clone());
        Ok((
            Slot {
                socket,
                id,
                authenticator,
            },
            rx,
        ))
    }

    fn open(&self) -> std::io::Result<Arc<PoolSocket>> {
        let local: SocketAddr = if self.target.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .expect("literal");
        let std = StdUdpSocket::bind(local)?;
        std.connect(self.target)?;
        std.set_nonblocking(true)?;
        let socket = Arc::new(PoolSocket {
            socket: UdpSocket::from_std(std)?,
            slots: Mutex::new(Slots {
                free: (0..=255).collect(),
                pending: HashMap::new(),
            }),
        });
        tokio::spawn(receive(
            socket.clone(),
            self.settings.clone(),
            self.stats.clone(),
        ));
        Ok(socket)
    }

    /// One Status-Server probe; true if a verified answer came back in time.
    async fn probe(&self) -> bool {
        let out = Outgoing {
            code: Code::StatusServer,
            attributes: Vec::new(),
            password: None,
        };
        let Ok((bytes, slot, rx)) = self.prepare(&out) else {
            return false;
        };
        if slot.socket.socket.send(&bytes).await.is_err() {
            return false;
        }
        let answered = matches!(timeout(self.settings.timeout, rx).await, Ok(Ok(_)));
        drop(slot);
        answered
    }
}

impl PoolSocket {
    fn rekey(&self, id: u8, authenticator: [u8; 16]) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = slots.pending.get_mut(&id) {
            w.authenticator = authenticator;
        }
    }

    fn try_take(&self, waiter: &mut Option<Waiter>) -> Option<u8> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let id = slots.free.pop_front()?;
        // `waiter` is Some on entry: it is only taken here, once, on success.
        slots.pending.insert(id, waiter.take()?);
        Some(id)
    }
}

/// Reads replies on one pool socket and hands each verified one to its waiter.
async fn receive(socket: Arc<PoolSocket>, settings: UpstreamSettings, stats: Arc<Stats>) {
    let mut buf = vec![0u8; radius::packet::MAX_PACKET_LEN];
    loop {
        // Connected UDP sockets report ICMP errors here; the waiter times out.
        let Ok(n) = socket.socket.recv(&mut buf).await else {
            continue;
        };
        if Arc::strong_count(&socket) == 1 {
            return;
        }
        if !deliver(&socket, &settings, &buf[..n]) {
            stats.invalid_replies.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn deliver(socket: &PoolSocket, settings: &UpstreamSettings, datagram: &[u8]) -> bool {
    let Some(&id) = datagram.get(1) else {
        return false;
    };
    let mut slots = socket.slots.lock().unwrap_or_else(|p| p.into_inner());
    let Some(waiter) = slots.pending.get(&id) else {
        return false;
    };
    let secret = settings.secret.signing();
    let Ok(verified) = radius::verify_response(datagram, &waiter.authenticator, secret) else {
        return false;
    };
    if waiter.needs_ma && !verified.message_authenticator {
        return false;
    }
    let Ok(packet) = Packet::decode(datagram) else {
        return false;
    };
    if let Some(waiter) = slots.pending.remove(&id) {
        let _ = waiter.tx.send(packet);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authenticators_are_distinct_across_batches_and_wiped_once_taken() {
        let a = Authenticators::new();
        let drawn: Vec<[u8; 16]> = (0..AUTHENTICATOR_BATCH * 3 + 1).map(|_| a.next()).collect();
        let unique: std::collections::HashSet<&[u8; 16]> = drawn.iter().collect();
        assert_eq!(
            unique.len(),
            drawn.len(),
            "an authenticator was handed out twice"
        );
        assert!(drawn.iter().all(|d| d != &[0; 16]));
        let b = a.batch.lock().unwrap();
        assert_eq!(b.next, 16);
        assert_eq!(
            &b.octets[..16],
            &[0; 16],
            "a taken authenticator stays in memory"
        );
    }
}
