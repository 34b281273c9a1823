//! Pending push approvals: a login waiting for the user's phone, and the phone's answer.
//!
//! [`Approvals::begin`] registers a login (bound to user, NAS address and station) and returns a bearer token for the phone's approve/deny links and, with
//! number matching, the 2-digit number the VPN prompt shows plus the three numbers the
//! push offers. [`Approvals::resolve`] is what the approval API (see [`http`]) calls when
//! the phone answers; [`Approvals::wait`] is what the RADIUS side awaits. Waiting is a
//! `tokio::sync::Notify` per entry, so a pending login holds no thread: 100,000 pending
//! logins are 100,000 small table entries and parked tasks.
//!
//! **Tokens** are 32 random octets: a 16-octet id, used to find the entry, and a 16-octet
//! verifier compared in constant time, so lookup timing says nothing about the secret
//! half. A token is single use (its first answer settles the entry), expires with the
//! entry, and every failure looks the same to the phone: "gone".
//!
//! **Retransmissions and retries.** `begin` for a login that already has a live entry
//! sends no new push: a pending entry is [`Begin::Joined`], a denied one stays denied
//! until it expires, and an approved one — the phone answered after the NAS gave up — is
//! [`Begin::Approved`] once, for the NAS's automatic retry, within `remember_approved`.
//!
//! **Fatigue (T-07).** At most `max_pushes` new pushes per user per `push_window`; the
//! next one disables push for that user for `push_lockout` ([`Refusal::Capped`]).
//!
//! All state sits behind one std mutex, held for a hash-map operation at a time and
//! never across `.await`. Time is `tokio::time::Instant` (paused-time tests).

pub mod http;

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::sync::Notify;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::config::ConfigError;
use crate::radius::random;

/// `[approval]` as written in the configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApproval {
    /// Where the approval API listens (HTTP; put TLS in a reverse proxy in front).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The API's public base URL as phones reach it, e.g. `https://mfa.kommune.no`; the
    /// approve/deny links are built from it.
    pub public_url: String,
    /// How long a push can be answered.
    #[serde(default = "default_ttl", with = "humantime_serde")]
    pub ttl: Duration,
    /// Show a 2-digit number in the VPN prompt; the push offers three, only the right one approves.
    #[serde(default = "default_true")]
    pub number_matching: bool,
    /// How long an approval that no waiting login took is kept for the NAS's retry.
    #[serde(default = "default_remember", with = "humantime_serde")]
    pub remember_approved: Duration,
    /// New pushes per user within `push_window` (T-07: 3 per 10 min).
    #[serde(default = "default_max_pushes")]
    pub max_pushes: u32,
    /// The window `max_pushes` is counted in.
    #[serde(default = "default_push_window", with = "humantime_serde")]
    pub push_window: Duration,
    /// How long push stays disabled for a user who hit the cap.
    #[serde(default = "default_push_lockout", with = "humantime_serde")]
    pub push_lockout: Duration,
    /// Pending approvals at most (memory bound; beyond it new pushes are refused).
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
}

fn default_listen() -> String {
    "127.0.0.1:8443".into()
}
fn default_ttl() -> Duration {
    Duration::from_secs(60)
}
fn default_true() -> bool {
    true
}
fn default_remember() -> Duration {
    Duration::from_secs(30)
}
fn default_max_pushes() -> u32 {
    3
}
fn default_push_window() -> Duration {
    Duration::from_secs(600)
}
fn default_push_lockout() -> Duration {
    Duration::from_secs(1800)
}
fn default_max_pending() -> usize {
    100_000
}

/// Validated `[approval]`.
#[derive(Debug, Clone)]
pub struct ApprovalSettings {
    /// Listener address.
    pub listen: SocketAddr,
    /// Public base URL, without a trailing slash.
    pub public_url: String,
    /// The rules the registry applies.
    pub policy: ApprovalPolicy,
}

/// The registry's rules (the part of [`ApprovalSettings`] [`Approvals`] needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalPolicy {
    /// Lifetime of a push.
    pub ttl: Duration,
    /// Number matching on or off.
    pub number_matching: bool,
    /// How long an unclaimed approval is remembered.
    pub remember_approved: Duration,
    /// Pushes per user per window.
    pub max_pushes: u32,
    /// The cap's window.
    pub push_window: Duration,
    /// Push disabled this long after the cap.
    pub push_lockout: Duration,
    /// Pending entries at most.
    pub max_pending: usize,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        Self {
            ttl: default_ttl(),
            number_matching: true,
            remember_approved: default_remember(),
            max_pushes: default_max_pushes(),
            push_window: default_push_window(),
            push_lockout: default_push_lockout(),
            max_pending: default_max_pending(),
        }
    }
}

impl ApprovalSettings {
    /// Validates `[approval]`. Errors name the key under `approval.`.
    pub fn from_raw(raw: RawApproval) -> Result<Self, ConfigError> {
        let listen = raw
            .listen
            .parse()
            .map_err(|_| ConfigError::new("approval.listen", "expected ip:port"))?;
        let url = crate::factor::provider::parse_url(&raw.public_url, "approval.public_url")?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::new(
                "approval.public_url",
                "must not have a query or fragment",
            ));
        }
        if raw.ttl.is_zero() || raw.ttl > Duration::from_secs(600) {
            return Err(ConfigError::new(
                "approval.ttl",
                "must be more than 0 and at most 10 minutes",
            ));
        }
        if raw.max_pushes == 0 || raw.max_pending == 0 {
            let key = if raw.max_pushes == 0 {
                "max_pushes"
            } else {
                "max_pending"
            };
            return Err(ConfigError::new(
                format!("approval.{key}"),
                "must be at least 1",
            ));
        }
        Ok(Self {
            listen,
            public_url: url.as_str().trim_end_matches('/').to_owned(),
            policy: ApprovalPolicy {
                ttl: raw.ttl,
                number_matching: raw.number_matching,
                remember_approved: raw.remember_approved,
                max_pushes: raw.max_pushes,
                push_window: raw.push_window,
                push_lockout: raw.push_lockout,
                max_pending: raw.max_pending,
            },
        })
    }

    /// The phone's links for a new approval.
    pub fn links(&self, started: &Started) -> Links {
        Links::new(&self.public_url, started)
    }
}

/// What binds an approval to one login: a retry of the same login joins it.
///
/// The NAS's address stands for its client too (one address belongs to one client), so
/// the client's name is not repeated here: 100,000 pending logins, 100,000 fewer strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LoginKey {
    /// The normalised user name.
    pub user: String,
    /// The NAS's source address.
    pub nas: IpAddr,
    /// Calling-Station-Id as sent, if any.
    pub station: Option<Vec<u8>>,
}

impl From<&crate::challenge::Binding> for LoginKey {
    fn from(b: &crate::challenge::Binding) -> Self {
        Self {
            user: b.user.clone(),
            nas: b.nas,
            station: b.station.clone(),
        }
    }
}

/// Identifies a pending approval on the RADIUS side (the token's public half). Safe to
/// keep in a challenge; it cannot approve anything.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApprovalId([u8; 16]);

impl fmt::Debug for ApprovalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to correlate log lines.
        write!(f, "ApprovalId({}…)", hex::encode(&self.0[..4]))
    }
}

/// The bearer token in the phone's links: id ‖ verifier, 64 hex characters.
#[derive(Clone)]
struct Token {
    id: [u8; 16],
    verifier: [u8; 16],
}

impl Token {
    fn generate() -> Self {
        let mut bytes = [0u8; 32];
        random::fill(&mut bytes);
        let (id, verifier) = bytes.split_at(16);
        // Both halves are exactly 16 bytes by construction.
        Self {
            id: id.try_into().unwrap_or_default(),
            verifier: verifier.try_into().unwrap_or_default(),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text, &mut *bytes).ok()?;
        let (id, verifier) = bytes.split_at(16);
        Some(Self {
            id: id.try_into().ok()?,
            verifier: verifier.try_into().ok()?,
        })
    }

    fn text(&self) -> Zeroizing<String> {
        let mut text = hex::encode(self.id);
        text.push_str(&hex::encode(self.verifier));
        Zeroizing::new(text)
    }
}

/// A new approval: what the push and the prompt need.
pub struct Started {
    /// The approval, for [`Approvals::wait`].
    pub id: ApprovalId,
    token: Token,
    /// With number matching: the number the VPN prompt shows (10–99).
    pub number: Option<u8>,
    /// With number matching: the three numbers the push offers, shuffled (one is `number`).
    pub offered: Vec<u8>,
    /// How long the push can be answered.
    pub expires_in: Duration,
}

impl fmt::Debug for Started {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Started")
            .field("id", &self.id)
            .field("number", &self.number)
            .field("offered", &self.offered)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// The phone's links for one approval. They carry the bearer token: never log them.
pub struct Links {
    /// Approve links: one per offered number with number matching, else one with `None`.
    pub approve: Vec<(Option<u8>, String)>,
    /// Deny.
    pub deny: String,
    /// Deny, and report that the login was not the user's.
    pub not_me: String,
    /// A small page (GET) with Deny and "this wasn't me" buttons, for notification taps.
    pub page: String,
}

impl fmt::Debug for Links {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Links(<redacted>)")
    }
}

impl Links {
    fn new(public_url: &str, started: &Started) -> Self {
        let base = format!(
            "{public_url}/v1/approvals/{}",
            started.token.text().as_str()
        );
        let approve = if started.offered.is_empty() {
            vec![(None, format!("{base}/approve"))]
        } else {
            started
                .offered
                .iter()
                .map(|&n| (Some(n), format!("{base}/approve?number={n}")))
                .collect()
        };
        Self {
            approve,
            deny: format!("{base}/deny"),
            not_me: format!("{base}/deny?reason=not-me"),
            page: base,
        }
    }
}

/// What [`Approvals::begin`] found for a login.
#[derive(Debug)]
pub enum Begin {
    /// No live approval: send a push with these details.
    New(Started),
    /// A push for this login is already pending: wait on it; send nothing.
    Joined(ApprovalId),
    /// The phone approved this login after the NAS gave up: accept without a push. Used up.
    Approved,
    /// The phone denied this login moments ago: reject without a push.
    Denied,
}

/// Why no push may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The user's push cap is reached; push is disabled until `until`. `alert` is true the
    /// first time (raise an alert once, not on every try).
    Capped {
        /// When push is allowed again.
        until: Instant,
        /// First refusal of this lockout.
        alert: bool,
    },
    /// Too many approvals pending (memory bound).
    Full,
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// No answer yet.
    Pending,
    /// Approved on the phone.
    Approved,
    /// Denied, or a wrong number chosen.
    Denied(DenyReason),
    /// Unknown, expired or finished.
    Expired,
}

/// Why an approval was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// The user pressed Deny.
    Denied,
    /// The user reported that the login was not theirs.
    NotMe,
    /// A number other than the one in the prompt was chosen.
    WrongNumber,
}

/// The phone's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Approve, with the chosen number if number matching is on.
    Approve {
        /// The number chosen.
        number: Option<u8>,
    },
    /// Deny.
    Deny {
        /// "This wasn't me".
        not_me: bool,
    },
}

/// What an answer did, for the API's reply and the caller's follow-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// The login may proceed.
    Approved(LoginKey),
    /// The login is refused for `reason`. Count a second-factor failure; for
    /// [`DenyReason::NotMe`] lock the user and warn the administrators.
    Denied(LoginKey, DenyReason),
    /// Number matching is on and no number was given: nothing changed.
    NumberRequired,
    /// Unknown, expired, already answered, or malformed.
    Gone,
}

/// One pending (or recently settled) approval.
struct Entry {
    verifier: [u8; 16],
    login: Arc<LoginKey>,
    number: Option<u8>,
    expires: Instant,
    status: Status,
    /// An approval handed to a later login by `begin`: it serves no further login, but
    /// stays (until it expires) so that waiters woken by it still read `Approved`.
    claimed: bool,
    notify: Arc<Notify>,
}

/// Recent pushes of one user, for the cap. Times are whole seconds since the table's
/// `epoch`, to keep 100,000 users small.
#[derive(Default)]
struct UserPushes {
    /// When each push in the window went out, oldest first (at most `max_pushes`).
    sent: Vec<u32>,
    /// Push is disabled until then (0: not disabled).
    disabled_until: u32,
}

struct Table {
    entries: HashMap<[u8; 16], Entry>,
    /// Live entry per login. `Arc` so the key is stored once for both maps.
    by_login: HashMap<Arc<LoginKey>, [u8; 16]>,
    /// Keyed by a hash of the user name under a random key (`hasher`): a collision between
    /// two of 100,000 names is a 1-in-10^9 event and would only share a push cap, while
    /// storing the names again would cost ~50 bytes a user.
    users: HashMap<u64, UserPushes>,
    hasher: RandomState,
    /// The zero of `UserPushes` times.
    epoch: Instant,
}

impl Default for Table {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            by_login: HashMap::new(),
            users: HashMap::new(),
            hasher: RandomState::new(),
            epoch: Instant::now(),
        }
    }
}

/// The registry. `Send + Sync`; share it in an `Arc` between the RADIUS side and the API.
pub struct Approvals {
    policy: ApprovalPolicy,
    /// A std mutex: each use is a few hash-map operations, never held across `.await`.
    table: Mutex<Table>,
}

impl fmt::Debug for Approvals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Approvals")
            .field("policy", &self.policy)
            .field("pending", &self.len())
            .finish()
    }
}

impl Approvals {
    /// An empty registry with these rules.
    pub fn new(policy: ApprovalPolicy) -> Self {
        Self {
            policy,
            table: Mutex::new(Table::default()),
        }
    }

    /// The rules.
    pub fn policy(&self) -> &ApprovalPolicy {
        &self.policy
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every critical section leaves the maps consistent, so a poisoned lock is usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts an approval for `login`, or finds the one it already has. See [`Begin`].
    /// With number matching on, the push offers numbers and the prompt must show one.
    pub fn begin(&self, login: LoginKey) -> Result<Begin, Refusal> {
        self.begin_with(login, self.policy.number_matching)
    }

    /// [`Approvals::begin`] for a login that shows no prompt (hold mode: EAP, MS-CHAPv2):
    /// there is no number to match, so the push offers plain Approve / Deny.
    pub fn begin_without_number(&self, login: LoginKey) -> Result<Begin, Refusal> {
        self.begin_with(login, false)
    }

    fn begin_with(&self, login: LoginKey, number_matching: bool) -> Result<Begin, Refusal> {
        let now = Instant::now();
        let mut table = self.lock();
        if let Some(found) = table.existing(&login, now) {
            return Ok(found);
        }
        if table.entries.len() >= self.policy.max_pending {
            table.purge(now, self.policy.push_window);
            if table.entries.len() >= self.policy.max_pending {
                return Err(Refusal::Full);
            }
        }
        table.admit(&login.user, &self.policy, now)?;
        let token = Token::generate();
        let (number, offered) = if number_matching {
            let (n, offered) = numbers();
            (Some(n), offered)
        } else {
            (None, Vec::new())
        };
        let login = Arc::new(login);
        table.by_login.insert(login.clone(), token.id);
        table.entries.insert(
            token.id,
            Entry {
                verifier: token.verifier,
                login,
                number,
                expires: now + self.policy.ttl,
                status: Status::Pending,
                claimed: false,
                notify: Arc::new(Notify::new()),
            },
        );
        Ok(Begin::New(Started {
            id: ApprovalId(token.id),
            token,
            number,
            offered,
            expires_in: self.policy.ttl,
        }))
    }

    /// The phone's answer to the token in its link. Single use: the first answer settles
    /// the approval and wakes every waiter.
    pub fn resolve(&self, token: &str, action: Action) -> Resolved {
        let Some(token) = Token::parse(token) else {
            return Resolved::Gone;
        };
        let now = Instant::now();
        let remember = self.policy.remember_approved;
        let mut table = self.lock();
        let Some(entry) = table.entries.get_mut(&token.id) else {
            return Resolved::Gone;
        };
        let genuine: bool = entry.verifier.ct_eq(&token.verifier).into();
        if !genuine || entry.expires <= now || entry.status != Status::Pending {
            return Resolved::Gone;
        }
        let status = match action {
            Action::Approve { number } => match (entry.number, number) {
                (Some(_), None) => return Resolved::NumberRequired,
                (Some(right), Some(chosen)) if right != chosen => {
                    Status::Denied(DenyReason::WrongNumber)
                }
                _ => Status::Approved,
            },
            Action::Deny { not_me: true } => Status::Denied(DenyReason::NotMe),
            Action::Deny { not_me: false } => Status::Denied(DenyReason::Denied),
        };
        entry.status = status;
        if status == Status::Approved {
            entry.expires = entry.expires.max(now + remember);
        }
        entry.notify.notify_waiters();
        let login = (*entry.login).clone();
        match status {
            Status::Denied(reason) => Resolved::Denied(login, reason),
            _ => Resolved::Approved(login),
        }
    }

    /// Waits until the approval is answered, expires, or `deadline` passes, and returns
    /// where it stands then ([`Status::Pending`] at the deadline). Holds no thread and no
    /// lock while waiting. Does not use the approval up (see [`Approvals::finish`]).
    pub async fn wait(&self, id: ApprovalId, deadline: Instant) -> Status {
        let Some((notify, expires)) = self.lookup(id, |e| (e.notify.clone(), e.expires)) else {
            return Status::Expired;
        };
        let notified = notify.notified();
        tokio::pin!(notified);
        // Register before looking at the status, so an answer in between is not missed.
        notified.as_mut().enable();
        let status = self.status(id);
        if status != Status::Pending {
            return status;
        }
        let _ = tokio::time::timeout_at(deadline.min(expires), notified).await;
        self.status(id)
    }

    /// Where the approval stands now.
    pub fn status(&self, id: ApprovalId) -> Status {
        let now = Instant::now();
        self.lookup(id, |e| {
            if e.expires <= now {
                Status::Expired
            } else {
                e.status
            }
        })
        .unwrap_or(Status::Expired)
    }

    /// The number the login's prompt shows (number matching), while the approval lives.
    /// A retry that joins a pending push shows the same number.
    pub fn number(&self, id: ApprovalId) -> Option<u8> {
        self.lookup(id, |e| e.number).flatten()
    }

    /// Forgets the approval: the login's answer has been delivered and must not serve a
    /// later login (challenge mode calls this; hold mode leaves an approval for the NAS's
    /// retry, and `begin` uses it up).
    pub fn finish(&self, id: ApprovalId) {
        let mut table = self.lock();
        if let Some(entry) = table.entries.remove(&id.0) {
            table.unlink(&entry.login, id.0);
        }
    }

    fn lookup<T>(&self, id: ApprovalId, f: impl FnOnce(&Entry) -> T) -> Option<T> {
        self.lock().entries.get(&id.0).map(f)
    }

    /// Forgets expired approvals and users whose push window has passed. Call periodically
    /// (every few seconds).
    pub fn purge(&self) {
        self.lock().purge(Instant::now(), self.policy.push_window);
    }

    /// Approvals in the table (pending, or settled and not yet expired).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Table {
    /// A live entry for `login`, as a [`Begin`]; expired ones are dropped on the way.
    fn existing(&mut self, login: &LoginKey, now: Instant) -> Option<Begin> {
        let id = *self.by_login.get(login)?;
        let Some(entry) = self.entries.get_mut(&id) else {
            self.by_login.remove(login);
            return None;
        };
        if entry.expires <= now {
            self.remove(id);
            return None;
        }
        match entry.status {
            Status::Pending => Some(Begin::Joined(ApprovalId(id))),
            // Used up: a new approval for this login replaces it in `by_login`.
            Status::Approved if entry.claimed => None,
            Status::Approved => {
                entry.claimed = true;
                Some(Begin::Approved)
            }
            Status::Denied(_) => Some(Begin::Denied),
            Status::Expired => {
                self.remove(id);
                None
            }
        }
    }

    /// Applies the per-user push cap and, if allowed, counts a push.
    fn admit(&mut self, user: &str, policy: &ApprovalPolicy, now: Instant) -> Result<(), Refusal> {
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        // +1 so that 0 can mean "never" in `disabled_until`.
        let now_s = secs(now.duration_since(self.epoch)).saturating_add(1);
        let key = self.hasher.hash_one(user);
        let pushes = self.users.entry(key).or_default();
        if pushes.disabled_until != 0 {
            if now_s < pushes.disabled_until {
                let left = pushes.disabled_until - now_s;
                let until = now + Duration::from_secs(u64::from(left));
                return Err(Refusal::Capped {
                    until,
                    alert: false,
                });
            }
            pushes.disabled_until = 0;
        }
        let window = secs(policy.push_window);
        pushes.sent.retain(|&t| now_s - t < window);
        if pushes.sent.len() >= policy.max_pushes as usize {
            pushes.disabled_until = now_s.saturating_add(secs(policy.push_lockout));
            pushes.sent = Vec::new();
            return Err(Refusal::Capped {
                until: now + policy.push_lockout,
                alert: true,
            });
        }
        if pushes.sent.capacity() == 0 {
            pushes.sent.reserve_exact(policy.max_pushes as usize);
        }
        pushes.sent.push(now_s);
        Ok(())
    }

    fn remove(&mut self, id: [u8; 16]) {
        if let Some(entry) = self.entries.remove(&id) {
            self.unlink(&entry.login, id);
        }
    }

    /// Drops the login's index entry if it still points at `id`.
    fn unlink(&mut self, login: &LoginKey, id: [u8; 16]) {
        if self.by_login.get(login) == Some(&id) {
            self.by_login.remove(login);
        }
    }

    fn purge(&mut self, now: Instant, window: Duration) {
        let expired: Vec<[u8; 16]> = self
            .entries
            .iter()
            .filter(|(_, e)| e.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(entry) = self.entries.remove(&id) {
                // Wake anyone still waiting so they see the expiry now.
                entry.notify.notify_waiters();
                self.unlink(&entry.login, id);
            }
        }
        let now_s = u32::try_from(now.duration_since(self.epoch).as_secs())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let window = u32::try_from(window.as_secs()).unwrap_or(u32::MAX);
        self.users.retain(|_, p| {
            let active = p.sent.last().is_some_and(|&t| now_s - t < window);
            active || now_s < p.disabled_until
        });
    }
}

/// The number to show (10–99) and the three to offer, shuffled, all distinct.
fn numbers() -> (u8, Vec<u8>) {
    let mut offered: Vec<u8> = Vec::with_capacity(3);
    // Each draw is a fresh uniform number; a repeat is drawn again. Three distinct values
    // out of 90 need about 3 draws; 64 bounds the loop far beyond any plausible need.
    for _ in 0..64 {
        let n = uniform_below(90) + 10;
        if !offered.contains(&n) {
            offered.push(n);
            if offered.len() == 3 {
                break;
            }
        }
    }
    let right = offered[0];
    // Fisher–Yates, so the right number's position says nothing.
    for i in (1..offered.len()).rev() {
        let j = usize::from(uniform_below(i as u8 + 1));
        offered.swap(i, j);
    }
    (right, offered)
}

/// A uniform random value in `0..bound` (bound ≥ 1), by rejection sampling one byte.
fn uniform_below(bound: u8) -> u8 {
    let limit = 256 - (256 % u16::from(bound));
    loop {
        let mut b = [0u8; 1];
        random::fill(&mut b);
        if u16::from(b[0]) < limit {
            return b[0] % bound;
        }
    }
}

#[cfg(test)]
mod tests;
