//! The sending and receiving: lanes (one connected UDP socket each, with its Identifier
//! pool), the closed loop (N logins in flight) and the open loop (a paced thread sends at a
//! fixed rate while the lanes receive).
//!
//! Identifiers are handed out FIFO with at most 128 in flight per socket, as a NAS does: an
//! Identifier is reused only after at least 128 others, because FreeRADIUS mishandles an
//! Identifier reused at once from the same port (test-peers.md, gotcha 5). Requests are never
//! retransmitted: a request without a valid reply within the timeout counts as a timeout.
//!
//! Everything async runs on one current-thread tokio runtime, so the lanes' locks are
//! uncontended except against the open-loop pacer thread.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::procfs::{Sample, Watched};
use crate::stats::{Histogram, Invalid, Tally};
use crate::workload::{Flow, Next, Workload, unix_now};

/// Requests in flight per socket at most, as a NAS keeps them (RFC 5080 §2.2.1 leaves the
/// Identifier space to the client; half of it keeps every reuse far from the last use).
pub(crate) const MAX_PER_LANE: usize = 128;
/// How often lanes look for timed-out requests (and the closed loop refills after errors).
const SCAN_EVERY: Duration = Duration::from_millis(10);
/// Socket buffers: a burst of replies must not be dropped by our own socket.
const RECV_BUFFER: usize = 4 << 20;
const SEND_BUFFER: usize = 1 << 20;

/// How load is offered.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Load {
    /// `concurrency` logins in flight; each finished one starts the next.
    Closed {
        /// Logins in flight.
        concurrency: usize,
    },
    /// Logins start at `rate` per second whatever the replies do, up to `in_flight`.
    Open {
        /// Logins per second.
        rate: f64,
        /// Requests in flight at most (beyond it a start is skipped and counted as stalled).
        in_flight: usize,
    },
}

/// A run's shape.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Where requests go (loopback only; checked by the caller).
    pub(crate) target: SocketAddr,
    /// Sockets.
    pub(crate) lanes: usize,
    /// Closed or open loop.
    pub(crate) load: Load,
    /// Load before counting starts.
    pub(crate) warmup: Duration,
    /// How long logins are started after the warm-up.
    pub(crate) duration: Duration,
    /// At most this many counted logins.
    pub(crate) requests: Option<u64>,
    /// How long to wait for each reply.
    pub(crate) timeout: Duration,
}

/// What a run measured.
#[derive(Debug)]
pub(crate) struct Measured {
    /// Counts (counted logins only).
    pub(crate) tally: Tally,
    /// Per-request latency.
    pub(crate) latency: Histogram,
    /// Per-login latency, first request to final reply.
    pub(crate) flow_latency: Histogram,
    /// Open loop: how late the pacer sent against its schedule.
    pub(crate) lag: Histogram,
    /// From the end of the warm-up to the last counted reply or timeout.
    pub(crate) window: Duration,
    /// Each watched process: (at the end of the warm-up, at the end).
    pub(crate) samples: Vec<(Sample, Sample)>,
    /// Each watched process when the last login started, when the most are in flight if the
    /// server holds them (pending push approvals): memory per pending login.
    pub(crate) at_stop: Vec<Sample>,
    /// Requests in flight when the last login started.
    pub(crate) in_flight_at_stop: usize,
    /// Each watched process half-way through the measured window, and the requests in
    /// flight then: with `at_stop`, the memory per pending login as a slope, without what
    /// the server allocates once (its allocator's first pages, its task table's growth).
    pub(crate) at_half: Vec<Sample>,
    /// See `at_half`.
    pub(crate) in_flight_at_half: usize,
}

struct Pending {
    flow: Flow,
    authenticator: [u8; 16],
    sent_at: Instant,
}

/// How a lane's socket is driven.
enum Io {
    /// Closed loop: readiness-driven on the runtime, draining every waiting datagram per wake-up.
    Async(tokio::net::UdpSocket),
    /// Open loop: the pacer thread sends and a receiver thread blocks in `recv`, which costs
    /// one system call per reply instead of three (`epoll_wait`, `recv`, `recv` → EAGAIN) at
    /// rates where every reply arrives alone.
    Blocking(std::net::UdpSocket),
}

/// One socket and its Identifier space.
struct Lane {
    io: Io,
    /// Requests in flight at most on this socket.
    cap: usize,
    /// A std mutex: held for an Identifier, a build or a reply check, never across `.await`.
    state: Mutex<LaneState>,
}

struct LaneState {
    free: VecDeque<u8>,
    pending: Vec<Option<Pending>>,
    /// The authenticator of the last request on each Identifier that timed out, to tell a
    /// late reply from an invalid one.
    retired: Vec<Option<[u8; 16]>>,
    in_flight: usize,
    /// The closed loop found no more logins to start.
    exhausted: bool,
    tally: Tally,
    latency: Histogram,
    flow_latency: Histogram,
    last_event: Option<Instant>,
}

/// State shared by the lanes and the pacer.
struct Run {
    workload: Workload,
    timeout: Duration,
    measure_from: Instant,
    stop_at: Instant,
    limit: Option<u64>,
    counted: AtomicU64,
    numbers: AtomicU64,
    pacer_done: AtomicBool,
}

impl Run {
    /// The next login to start at `at`, unless the run is over.
    fn claim(&self, at: Instant, now: Instant) -> Option<Flow> {
        if at >= self.stop_at {
            return None;
        }
        let measured = at >= self.measure_from;
        if measured
            && let Some(limit) = self.limit
            && self.counted.fetch_add(1, Ordering::Relaxed) >= limit
        {
            return None;
        }
        let number = self.numbers.fetch_add(1, Ordering::Relaxed);
        Some(self.workload.flow(number, now, measured))
    }
}

impl Lane {
    fn open(target: SocketAddr, cap: usize, blocking: bool) -> std::io::Result<Self> {
        let socket = Socket::new(
            Domain::for_address(target),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        // Best effort: the kernel caps both at net.core.{r,w}mem_max.
        let _ = socket.set_recv_buffer_size(RECV_BUFFER);
        let _ = socket.set_send_buffer_size(SEND_BUFFER);
        let local: SocketAddr = if target.is_ipv4() {
            (std::net::Ipv4Addr::LOCALHOST, 0).into()
        } else {
            (std::net::Ipv6Addr::LOCALHOST, 0).into()
        };
        socket.bind(&local.into())?;
        // Connected: the kernel drops datagrams from anyone but the target.
        socket.connect(&target.into())?;
        let io = if blocking {
            // The receiver wakes at least this often to time out requests and to notice the end.
            socket.set_read_timeout(Some(SCAN_EVERY))?;
            Io::Blocking(socket.into())
        } else {
            socket.set_nonblocking(true)?;
            Io::Async(tokio::net::UdpSocket::from_std(socket.into())?)
        };
        Ok(Self {
            io,
            cap,
            state: Mutex::new(LaneState {
                free: (0..=255).collect(),
                pending: (0..256).map(|_| None).collect(),
                retired: vec![None; 256],
                in_flight: 0,
                exhausted: false,
                tally: Tally::default(),
                latency: Histogram::default(),
                flow_latency: Histogram::default(),
                last_event: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends without waiting (a full send buffer is an error, counted by the caller).
    fn send(&self, bytes: &[u8]) -> std::io::Result<usize> {
        match &self.io {
            Io::Async(s) => s.try_send(bytes),
            Io::Blocking(s) => s.send(bytes),
        }
    }

    /// Sends a request on `id`; on failure forgets it as never sent (a socket error).
    fn send_or_abort(&self, id: u8, bytes: &[u8]) -> bool {
        if self.send(bytes).is_ok() {
            return true;
        }
        self.lock().abort(id);
        false
    }
}

/// Why a request could not go out.
enum Launch {
    /// Sent on Identifier `id`; these are its bytes.
    Ready(u8, Vec<u8>),
    /// Every Identifier is in flight.
    NoId,
    /// The request could not be built.
    Unbuildable,
}

impl LaneState {
    /// Takes an Identifier, builds `flow`'s next request (the first, or the answer to
    /// `state`) and records it as pending from `now`.
    fn launch(
        &mut self,
        run: &Run,
        cap: usize,
        mut flow: Flow,
        state: Option<&[u8]>,
        now: Instant,
    ) -> Launch {
        if self.in_flight >= cap {
            return Launch::NoId;
        }
        let Some(id) = self.free.pop_front() else {
            return Launch::NoId;
        };
        let built = match state {
            None => run.workload.first(&mut flow, id),
            Some(s) => run.workload.second(&mut flow, id, s),
        };
        let Ok(built) = built else {
            self.free.push_back(id);
            return Launch::Unbuildable;
        };
        if flow.measured {
            self.tally.sent += 1;
        }
        self.pending[usize::from(id)] = Some(Pending {
            flow,
            authenticator: built.authenticator,
            sent_at: now,
        });
        self.in_flight += 1;
        Launch::Ready(id, built.bytes)
    }

    /// Frees Identifier `id` (to the back of the queue) and returns its request.
    fn release(&mut self, id: u8) -> Option<Pending> {
        let p = self.pending[usize::from(id)].take()?;
        self.free.push_back(id);
        self.in_flight -= 1;
        Some(p)
    }

    /// A send failed: forget the request as if never sent.
    fn abort(&mut self, id: u8) {
        if let Some(p) = self.release(id)
            && p.flow.measured
        {
            self.tally.socket_errors += 1;
            self.tally.sent -= 1;
        }
    }

    /// Handles one datagram. Returns the flow's second request to send, if any, and
    /// whether a login ended (so the closed loop starts another).
    fn reply(
        &mut self,
        run: &Run,
        cap: usize,
        data: &[u8],
        now: Instant,
    ) -> (Option<(u8, Vec<u8>)>, bool) {
        let Some(&id) = data.get(1) else {
            self.tally.count_invalid(Invalid::Malformed);
            return (None, false);
        };
        let slot = usize::from(id);
        let Some(p) = &self.pending[slot] else {
            self.unmatched(run, slot, data);
            return (None, false);
        };
        let checked = run.workload.check(&p.flow, &p.authenticator, data);
        let reply = match checked {
            Ok(r) => r,
            Err(Invalid::BadAuthenticator) if self.is_late(run, slot, data) => {
                self.tally.late += 1;
                return (None, false);
            }
            Err(why) => {
                // Ignored, as a NAS ignores it: the request still waits for a valid reply.
                self.tally.count_invalid(why);
                return (None, false);
            }
        };
        let Some(p) = self.release(id) else {
            return (None, false);
        };
        let measured = p.flow.measured;
        if measured {
            self.latency.record(now - p.sent_at);
            self.last_event = Some(now);
            match &reply {
                crate::workload::Reply::Accept => self.tally.accepted += 1,
                crate::workload::Reply::Reject => self.tally.rejected += 1,
                crate::workload::Reply::Challenge(_) => self.tally.challenged += 1,
                crate::workload::Reply::AcctResponse => self.tally.acct_responses += 1,
            }
        }
        match run.workload.judge(&p.flow, reply, unix_now()) {
            Next::Answer(state) => match self.launch(run, cap, p.flow, Some(&state), now) {
                Launch::Ready(id, bytes) => (Some((id, bytes)), false),
                Launch::NoId | Launch::Unbuildable => {
                    if measured {
                        self.tally.unexpected += 1;
                    }
                    (None, true)
                }
            },
            Next::Done { expected, stale } => {
                if measured {
                    if expected {
                        self.tally.flows_ok += 1;
                        self.flow_latency.record(now - p.flow.started);
                    } else if stale {
                        self.tally.stale_code += 1;
                    } else {
                        self.tally.unexpected += 1;
                    }
                }
                (None, true)
            }
        }
    }

    fn is_late(&self, run: &Run, slot: usize, data: &[u8]) -> bool {
        self.retired[slot].is_some_and(|a| run.workload.authentic(data, &a).is_ok())
    }

    fn unmatched(&mut self, run: &Run, slot: usize, data: &[u8]) {
        if self.is_late(run, slot, data) {
            self.tally.late += 1;
        } else {
            self.tally.count_invalid(Invalid::Unmatched);
        }
    }

    /// Times out requests older than the timeout; returns how many logins ended.
    fn expire(&mut self, timeout: Duration, now: Instant) -> usize {
        let mut ended = 0;
        for slot in 0..self.pending.len() {
            let due = self.pending[slot]
                .as_ref()
                .is_some_and(|p| now.duration_since(p.sent_at) >= timeout);
            if !due {
                continue;
            }
            let id = slot as u8; // slot < 256
            if let Some(p) = self.release(id) {
                self.retired[slot] = Some(p.authenticator);
                if p.flow.measured {
                    self.tally.timeouts += 1;
                    self.last_event = Some(now);
                }
                ended += 1;
            }
        }
        ended
    }
}

/// Runs `plan` and measures it. `watched` processes are sampled when the warm-up ends and
/// when the last lane is done.
pub(crate) fn run(
    plan: &Plan,
    workload: Workload,
    watched: &[Watched],
) -> Result<Measured, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(run_async(plan, workload, watched))
}

fn per_lane(total: usize, lanes: usize, i: usize) -> usize {
    total / lanes + usize::from(i < total % lanes)
}

async fn run_async(
    plan: &Plan,
    workload: Workload,
    watched: &[Watched],
) -> Result<Measured, String> {
    let (total, open) = match plan.load {
        Load::Closed { concurrency } => (concurrency, false),
        Load::Open { in_flight, .. } => (in_flight, true),
    };
    let lanes: Vec<Arc<Lane>> = (0..plan.lanes)
        .map(|i| Lane::open(plan.target, per_lane(total, plan.lanes, i), open).map(Arc::new))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot open a socket toward {}: {e}", plan.target))?;
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let run = Arc::new(Run {
        workload,
        timeout: plan.timeout,
        measure_from,
        stop_at: measure_from + plan.duration,
        limit: plan.requests,
        counted: AtomicU64::new(0),
        numbers: AtomicU64::new(0),
        pacer_done: AtomicBool::new(!open),
    });
    let pacer = match plan.load {
        Load::Open { rate, .. } => {
            let (run, lanes) = (run.clone(), lanes.clone());
            Some(
                std::thread::Builder::new()
                    .name("pacer".into())
                    .spawn(move || pace(&run, &lanes, rate, start))
                    .map_err(|e| format!("cannot start the pacer: {e}"))?,
            )
        }
        Load::Closed { .. } => None,
    };
    // Its own thread, so that busy lanes cannot delay the readings.
    let sampler = {
        let (watched, lanes, stop_at) = (watched.to_vec(), lanes.clone(), run.stop_at);
        std::thread::Builder::new()
            .name("sampler".into())
            .spawn(move || {
                let in_flight = || lanes.iter().map(|l| l.lock().in_flight).sum::<usize>();
                std::thread::sleep(measure_from.saturating_duration_since(Instant::now()));
                let first = sample_all(&watched)?;
                let half = measure_from + stop_at.saturating_duration_since(measure_from) / 2;
                std::thread::sleep(half.saturating_duration_since(Instant::now()));
                let at_half = (sample_all(&watched)?, in_flight());
                std::thread::sleep(stop_at.saturating_duration_since(Instant::now()));
                let at_stop = (sample_all(&watched)?, in_flight());
                Ok::<_, String>((first, at_half, at_stop))
            })
            .map_err(|e| format!("cannot start the sampler: {e}"))?
    };
    let mut tasks = Vec::new();
    let mut receivers = Vec::new();
    for lane in &lanes {
        if open {
            let (run, lane) = (run.clone(), lane.clone());
            receivers.push(
                std::thread::Builder::new()
                    .name("receiver".into())
                    .spawn(move || receive_blocking(&run, &lane))
                    .map_err(|e| format!("cannot start a receiver: {e}"))?,
            );
        } else {
            tasks.push(tokio::spawn(drive(run.clone(), lane.clone())));
        }
    }
    for t in tasks {
        t.await.map_err(|e| format!("a lane failed: {e}"))?;
    }
    for r in receivers {
        r.join()
            .map_err(|_| "a receiver thread panicked".to_owned())?;
    }
    let after = sample_all(watched)?;
    let (before, (at_half, in_flight_at_half), (at_stop, in_flight_at_stop)) = sampler
        .join()
        .map_err(|_| "the sampler thread panicked".to_owned())??;
    let lag = match pacer {
        Some(p) => p
            .join()
            .map_err(|_| "the pacer thread panicked".to_owned())?,
        None => Histogram::default(),
    };
    let mut m = Measured {
        tally: Tally::default(),
        latency: Histogram::default(),
        flow_latency: Histogram::default(),
        lag,
        window: Duration::ZERO,
        samples: before.into_iter().zip(after).collect(),
        at_stop,
        in_flight_at_stop,
        at_half,
        in_flight_at_half,
    };
    let mut last = measure_from;
    for lane in &lanes {
        let st = lane.lock();
        m.tally.merge(&st.tally);
        m.latency.merge(&st.latency);
        m.flow_latency.merge(&st.flow_latency);
        last = last.max(st.last_event.unwrap_or(measure_from));
    }
    m.window = last - measure_from;
    Ok(m)
}

fn sample_all(watched: &[Watched]) -> Result<Vec<Sample>, String> {
    watched
        .iter()
        .map(|w| {
            w.sample()
                .map_err(|e| format!("cannot read /proc for {}: {e}", w.name))
        })
        .collect()
}

/// Closed loop: keeps the lane's share of logins in flight, receiving on the runtime, until
/// the run is over and nothing is in flight.
async fn drive(run: Arc<Run>, lane: Arc<Lane>) {
    let Io::Async(socket) = &lane.io else {
        return;
    };
    // tokio learns that a new socket is writable from its first poll; until then `try_send`
    // reports WouldBlock.
    if socket.writable().await.is_err() {
        return;
    }
    let mut buf = vec![0u8; portvakt::radius::packet::MAX_PACKET_LEN];
    let mut tick = tokio::time::interval(SCAN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut next_scan = Instant::now() + SCAN_EVERY;
    refill(&run, &lane);
    loop {
        tokio::select! {
            r = socket.readable() => {
                if r.is_ok() {
                    receive_all(&run, &lane, socket, &mut buf);
                }
            }
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        if now >= next_scan {
            next_scan = now + SCAN_EVERY;
            lane.lock().expire(run.timeout, now);
            refill(&run, &lane);
        }
        let st = lane.lock();
        if (st.exhausted || now >= run.stop_at) && st.in_flight == 0 {
            return;
        }
    }
}

/// Open loop: receives on one lane (blocking, with a short read timeout) until the pacer is
/// done and nothing is in flight.
fn receive_blocking(run: &Run, lane: &Lane) {
    let Io::Blocking(socket) = &lane.io else {
        return;
    };
    let mut buf = vec![0u8; portvakt::radius::packet::MAX_PACKET_LEN];
    let mut next_scan = Instant::now() + SCAN_EVERY;
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let now = Instant::now();
                let (second, _) = lane.lock().reply(run, lane.cap, &buf[..n], now);
                if let Some((id, bytes)) = second {
                    lane.send_or_abort(id, &bytes);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // E.g. ICMP port unreachable on the connected socket: the requests time out.
            Err(_) => lane.lock().tally.socket_errors += 1,
        }
        let now = Instant::now();
        if now >= next_scan {
            next_scan = now + SCAN_EVERY;
            lane.lock().expire(run.timeout, now);
        }
        if run.pacer_done.load(Ordering::Acquire) && lane.lock().in_flight == 0 {
            return;
        }
    }
}

/// Reads every datagram waiting on the lane's socket.
fn receive_all(run: &Run, lane: &Lane, socket: &tokio::net::UdpSocket, buf: &mut [u8]) {
    loop {
        let n = match socket.try_recv(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(_) => {
                // E.g. ICMP port unreachable on the connected socket: the requests time out.
                lane.lock().tally.socket_errors += 1;
                return;
            }
        };
        let now = Instant::now();
        let (second, ended) = lane.lock().reply(run, lane.cap, &buf[..n], now);
        if let Some((id, bytes)) = second {
            lane.send_or_abort(id, &bytes);
        }
        if ended {
            refill(run, lane);
        }
    }
}

/// Closed loop: starts logins until the lane has its share in flight. Stops at the first
/// failure, so a dead target is retried once per scan instead of in a tight loop.
fn refill(run: &Run, lane: &Lane) {
    loop {
        let now = Instant::now();
        let launched = {
            let mut st = lane.lock();
            if st.in_flight >= lane.cap || st.exhausted {
                return;
            }
            let Some(flow) = run.claim(now, now) else {
                st.exhausted = true;
                return;
            };
            st.launch(run, lane.cap, flow, None, now)
        };
        match launched {
            Launch::Ready(id, bytes) => {
                if !lane.send_or_abort(id, &bytes) {
                    return;
                }
            }
            Launch::NoId | Launch::Unbuildable => return,
        }
    }
}

/// Open loop: starts logins on schedule (login `k` is due at `start + k/rate`) from its own
/// thread, which sleeps between sends; the lanes receive. Returns how late sends were.
fn pace(run: &Run, lanes: &[Arc<Lane>], rate: f64, start: Instant) -> Histogram {
    let mut lag = Histogram::default();
    let mut k: u64 = 0;
    loop {
        let due = start + Duration::from_secs_f64(k as f64 / rate);
        k += 1;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let now = Instant::now();
        let Some(flow) = run.claim(due, now) else {
            break;
        };
        let measured = flow.measured;
        // The next lane with a free Identifier, round-robin.
        let mut flow = Some(flow);
        let mut sent = false;
        for i in 0..lanes.len() {
            let lane = &lanes[(k as usize + i) % lanes.len()];
            let Some(f) = flow.take() else { break };
            let launched = lane.lock().launch(run, lane.cap, f.clone(), None, now);
            match launched {
                Launch::Ready(id, bytes) => {
                    // A failed send is counted as a socket error by `send_or_abort`.
                    lane.send_or_abort(id, &bytes);
                    sent = true;
                    break;
                }
                Launch::NoId => flow = Some(f),
                Launch::Unbuildable => break,
            }
        }
        if measured {
            if sent {
                lag.record(now.saturating_duration_since(due));
            } else if let Some(lane) = lanes.first() {
                lane.lock().tally.stalled += 1;
            }
        }
    }
    run.pacer_done.store(true, Ordering::Release);
    lag
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Mode, Users, WorkloadOptions};
    use zeroize::Zeroizing;

    fn run_for_tests() -> Run {
        let now = Instant::now();
        Run {
            workload: Workload::new(WorkloadOptions {
                mode: Mode::Pap,
                users: Users {
                    first: 0,
                    count: 10,
                    name_prefix: "user".into(),
                    password_prefix: "pw-".into(),
                    class_prefix: None,
                },
                secret: Zeroizing::new(b"bench-secret-0123456789".to_vec()),
                reject_every: 0,
                require_ma: true,
                calling_station_id: None,
                totp_seed: None,
                acct_ma: true,
            })
            .unwrap(),
            timeout: Duration::from_secs(1),
            measure_from: now,
            stop_at: now + Duration::from_secs(60),
            limit: None,
            counted: AtomicU64::new(0),
            numbers: AtomicU64::new(0),
            pacer_done: AtomicBool::new(false),
        }
    }

    /// A lane toward a kernel-chosen loopback port (nothing is sent in these tests).
    fn lane() -> (Lane, std::net::UdpSocket) {
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let lane = Lane::open(peer.local_addr().unwrap(), MAX_PER_LANE, false).unwrap();
        (lane, peer)
    }

    #[tokio::test]
    async fn identifiers_are_fifo_capped_and_never_reused_at_once() {
        let run = run_for_tests();
        let (lane, _peer) = lane();
        let mut st = lane.lock();
        let now = Instant::now();
        let mut ids = Vec::new();
        for _ in 0..MAX_PER_LANE {
            let flow = run.claim(now, now).unwrap();
            match st.launch(&run, lane.cap, flow, None, now) {
                Launch::Ready(id, _) => ids.push(id),
                _ => panic!("an Identifier should be free"),
            }
        }
        assert_eq!(ids, (0..128).collect::<Vec<u8>>());
        let flow = run.claim(now, now).unwrap();
        assert!(matches!(
            st.launch(&run, lane.cap, flow, None, now),
            Launch::NoId
        ));
        // Freeing Identifier 5 puts it behind the 128 never-used ones.
        st.release(5);
        let mut next = Vec::new();
        for _ in 0..129 {
            let flow = run.claim(now, now).unwrap();
            if let Launch::Ready(id, _) = st.launch(&run, 256, flow, None, now) {
                next.push(id);
            }
        }
        assert_eq!(next.first(), Some(&128));
        assert_eq!(next.last(), Some(&5));
        assert_eq!(next.len(), 129);
    }

    #[tokio::test]
    async fn timeouts_free_identifiers_and_late_replies_are_told_apart() {
        let run = run_for_tests();
        let (lane, _peer) = lane();
        let mut st = lane.lock();
        let t0 = Instant::now();
        let flow = run.claim(t0, t0).unwrap();
        let Launch::Ready(id, request) = st.launch(&run, lane.cap, flow, None, t0) else {
            panic!("free")
        };
        assert_eq!(st.expire(run.timeout, t0 + Duration::from_millis(999)), 0);
        assert_eq!(st.expire(run.timeout, t0 + Duration::from_secs(1)), 1);
        assert_eq!((st.in_flight, st.tally.timeouts), (0, 1));
        // The server's reply arrives after all.
        let req = portvakt::radius::Packet::decode(&request).unwrap();
        let mut p =
            portvakt::radius::Packet::new(portvakt::radius::Code::AccessAccept, id, [0; 16]);
        p.set_message_authenticator_first();
        let late =
            portvakt::radius::encode_response(&p, &req.authenticator, b"bench-secret-0123456789")
                .unwrap();
        let (second, ended) = st.reply(&run, lane.cap, &late, t0 + Duration::from_secs(2));
        assert!(second.is_none() && !ended);
        assert_eq!(
            (st.tally.late, st.tally.invalid, st.tally.accepted),
            (1, 0, 0)
        );
        // Garbage on a free Identifier is invalid, not late.
        let mut forged = late.clone();
        forged[1] = id.wrapping_add(1);
        st.reply(&run, lane.cap, &forged, t0 + Duration::from_secs(2));
        assert_eq!(st.tally.invalid_unmatched, 1);
    }

    #[test]
    fn the_request_limit_counts_only_measured_logins() {
        let mut run = run_for_tests();
        let now = Instant::now();
        run.measure_from = now + Duration::from_secs(1);
        run.limit = Some(2);
        assert!(!run.claim(now, now).unwrap().measured);
        let later = now + Duration::from_secs(1);
        assert!(run.claim(later, now).unwrap().measured);
        assert!(run.claim(later, now).is_some());
        assert!(run.claim(later, now).is_none());
        assert!(run.claim(now + Duration::from_secs(61), now).is_none());
    }

    #[test]
    fn lanes_share_the_load() {
        assert_eq!(
            (0..3).map(|i| per_lane(256, 3, i)).collect::<Vec<_>>(),
            vec![86, 85, 85]
        );
        assert_eq!(per_lane(16, 1, 0), 16);
    }
}
