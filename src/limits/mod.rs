//! Rate limits, lockouts and the password-spray shield: abuse is stopped before it reaches
//! the directory, where every guess counts towards an AD lockout.
//!
//! # In the pipeline
//!
//! client → decode/verify → duplicates → **limits** → policy → directory → second factor.
//! Retransmissions never get here (the duplicate cache answers them first), so each login
//! counts once. The daemon holds one [`Limiter`] in an `Arc` and:
//!
//! 1. calls [`Limiter::admit`] for every Access-Request; anything but [`Verdict::Allow`]
//!    is an Access-Reject with the generic [`REJECT_MESSAGE`] and no request upstream;
//! 2. calls [`Limiter::check_directory`] right before each request it sends to the directory;
//! 3. reports outcomes: [`Limiter::note_directory_reject`], [`Limiter::note_directory_accept`],
//!    [`Limiter::note_second_factor_failure`], [`Limiter::note_success`]. A note that returns
//!    a [`Persist`] must be written to the store (blocking: `spawn_blocking`);
//! 4. at startup loads the stored lockouts ([`Limiter::load_lockouts`]), and every 30–60 s
//!    calls [`Limiter::maintain`].
//!
//! # What is limited
//!
//! - **Rates** (governor, `rates.rs`): per client, per origin address, per user name, and a
//!   global ceiling on requests to the directory.
//! - **Lockouts** (`lockout.rs`): second-factor failures or directory rejects per user, in a
//!   row as AD counts them, lock the user for a period that doubles on repeats. The reject
//!   threshold sits below AD's, so portvakt absorbs the guessing and AD never locks.
//! - **Spray shield** (`spray.rs`): too many distinct users rejected from one origin within a
//!   window block it.
//!
//! Whether each applies to logins from trusted sites is configured ([`Limits`]); the
//! per-client rate and the directory ceiling always apply (they protect portvakt and the
//! directory, wherever logins come from).
//!
//! # Keys, time, memory
//!
//! Users are keyed by their account name ([`lockout_name`]: case folded, realm stripped),
//! so `Alice`, `KOMMUNE\alice` and `alice@kommune.no` share one budget, as they share one AD
//! account. IPv6 origins are keyed by prefix. Keys are stored as 64-bit hashes under a
//! per-process random key: fixed size, and not collidable from outside.
//!
//! All time comes from one governor clock: the rates read it themselves, and lockouts and
//! blocks are Unix seconds computed as the Unix time at start plus the clock's elapsed
//! time. Tests use `FakeRelativeClock` and are deterministic.
//!
//! Every table of per-key state is capped at `max_keys`; [`Limiter::maintain`] forgets quiet
//! keys and returns the memory. Entries are small and fixed-size (no allocation per key):
//! 16 bytes in the rate tables, 8-byte failure and spray counts, 4-byte "seen" marks. With
//! a million distinct users from a million distinct addresses, all rejected, every table
//! full, the limiter holds about 185 MiB (`benches/limits.rs`). Lockouts and blocks, which
//! are few, live in tables of their own.

mod lockout;
mod quiet;
mod rates;
mod settings;
mod spray;

use std::fmt;
use std::hash::BuildHasher;
use std::hash::RandomState;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use governor::clock::{Clock, DefaultClock, Reference};

pub use settings::{Limits, Rate, RawLimits, Threshold};

pub use crate::store::{LockReason, LockoutRow, lockout_name};
use crate::store::{Store, StoreError};

use lockout::{Failures, Lock, secs32};
use quiet::LogGate;
use rates::{Check, DirectRate, KeyedRate};
use spray::OriginCount;

/// The Reply-Message of every Access-Reject a limit causes. It says nothing about which
/// limit, or whether the user exists: the reason goes to the log only.
pub const REJECT_MESSAGE: &str = "Access denied.";

/// How often, at most, a locked user's row is read back from the store (to notice an
/// administrator's unlock), in seconds.
const ASK_STORE_EVERY: u64 = 1;

/// Which rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Requests per client (NAS).
    Client,
    /// Logins per origin address.
    Origin,
    /// Logins per user name.
    User,
    /// Requests to the directory, in total.
    Directory,
}

impl Limit {
    /// The name used in logs and configuration (`per_client`, …, `directory`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "per_client",
            Self::Origin => "per_origin",
            Self::User => "per_user",
            Self::Directory => "directory",
        }
    }
}

/// The answer to a check. Anything but `Allow` means: Access-Reject with
/// [`REJECT_MESSAGE`], no request to the directory, and not a failure of the user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Allow,
    /// Over a rate.
    RateLimited {
        /// Which one.
        which: Limit,
    },
    /// The user is locked.
    Locked {
        /// When the lockout ends (Unix seconds).
        until: u64,
        /// Why.
        reason: LockReason,
        /// Read the user's row from the store ([`Store::lockout`], blocking) and pass it to
        /// [`Limiter::confirm_lockout`]: an administrator may have unlocked the user since.
        /// Set at most once a second per user.
        ask_store: bool,
    },
    /// The origin address is blocked by the spray shield.
    OriginBlocked {
        /// When the block ends (Unix seconds).
        until: u64,
    },
}

impl Verdict {
    /// Whether the request may go on.
    pub fn is_allow(&self) -> bool {
        matches!(self, Self::Allow)
    }

    /// The reason code for the audit log (security.md §6): `rate_limited`, `locked`,
    /// `origin_blocked`; `allowed` for [`Verdict::Allow`].
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::Allow => "allowed",
            Self::RateLimited { .. } => "rate_limited",
            Self::Locked { .. } => "locked",
            Self::OriginBlocked { .. } => "origin_blocked",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Allow => f.write_str("allowed"),
            Self::RateLimited { which } => write!(f, "over the {} rate", which.as_str()),
            Self::Locked { until, reason, .. } => {
                write!(
                    f,
                    "locked ({reason}) until {}",
                    crate::store::format_time(*until)
                )
            }
            Self::OriginBlocked { until } => {
                write!(
                    f,
                    "origin blocked until {}",
                    crate::store::format_time(*until)
                )
            }
        }
    }
}

/// One Access-Request, as the limits see it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The client's configured name.
    pub client: &'a str,
    /// The User-Name as received (normalised here).
    pub user: &'a [u8],
    /// The user's address (`origin::find_origin`); `None` if unknown. Origin limits need it.
    pub origin: Option<IpAddr>,
    /// The login comes from a site whose policy is `trusted` (or through a client whose
    /// policy is `trusted`).
    pub trusted: bool,
    /// The request carries State: a later round of a login whose first request was counted
    /// (EAP rounds, the second-factor answer). Rates skip it; lockouts and blocks do not.
    pub continuation: bool,
}

/// A store write a note asks for. Blocking: run [`Persist::apply`] with `spawn_blocking`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persist {
    /// A new lockout: [`Store::lock_user`].
    Lock(LockoutRow),
    /// The account's lockout history no longer counts (a successful login):
    /// [`Store::forget_lockout`].
    Forget(String),
}

impl Persist {
    /// Writes it to the store (blocking).
    pub fn apply(&self, store: &Store) -> Result<(), StoreError> {
        match self {
            Self::Lock(row) => store.lock_user(row),
            Self::Forget(name) => store.forget_lockout(name).map(|_| ()),
        }
    }
}

/// Counters since start (for metrics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Requests over the per-client rate.
    pub client_limited: u64,
    /// Logins over the per-origin rate.
    pub origin_limited: u64,
    /// Logins over the per-user rate.
    pub user_limited: u64,
    /// Requests over the directory ceiling.
    pub directory_limited: u64,
    /// Logins rejected because the user is locked.
    pub locked_rejects: u64,
    /// Logins rejected because the origin is blocked.
    pub blocked_rejects: u64,
    /// Lockouts begun.
    pub lockouts: u64,
    /// Origins blocked by the spray shield.
    pub spray_blocks: u64,
    /// Checks skipped or failures not tracked because a table was full.
    pub over_cap: u64,
}

/// Table sizes, after [`Limiter::maintain`] or from [`Limiter::keys`] (export as gauges).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keys {
    /// Keys in the per-client rate.
    pub clients: usize,
    /// Keys in the per-origin rate.
    pub origins: usize,
    /// Keys in the per-user rate.
    pub users: usize,
    /// Users with a failure streak.
    pub user_states: usize,
    /// Users locked, or with a lockout that still counts as history.
    pub locks: usize,
    /// Origins with recent rejects.
    pub spray_origins: usize,
    /// Origin–user pairs rejected within the spray window.
    pub spray_pairs: usize,
    /// Origins blocked by the spray shield.
    pub blocked_origins: usize,
    /// Keys whose log line is being held back.
    pub quiet_logs: usize,
}

impl Keys {
    /// All keys together.
    pub fn total(&self) -> usize {
        self.clients
            + self.origins
            + self.users
            + self.user_states
            + self.locks
            + self.spray_origins
            + self.spray_pairs
            + self.blocked_origins
            + self.quiet_logs
    }
}

#[derive(Debug, Default)]
struct Counters {
    client_limited: AtomicU64,
    origin_limited: AtomicU64,
    user_limited: AtomicU64,
    directory_limited: AtomicU64,
    locked_rejects: AtomicU64,
    blocked_rejects: AtomicU64,
    lockouts: AtomicU64,
    spray_blocks: AtomicU64,
    over_cap: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A user name as the limits key it.
struct UserKey {
    hash: u64,
    /// The account name, or the escaped bytes if they are no valid user name.
    name: String,
    /// Whether `name` is a valid account name (only those go to the store).
    valid: bool,
}

/// An origin as the limits key it: the IPv4 address, or the IPv6 prefix.
struct OriginKey {
    hash: u64,
    /// The address, IPv6 with the host bits cleared.
    net: IpAddr,
    /// The IPv6 prefix length.
    prefix: Option<u8>,
}

impl fmt::Display for OriginKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix {
            Some(len) => write!(f, "{}/{len}", self.net),
            None => write!(f, "{}", self.net),
        }
    }
}

/// The limits. `Send + Sync`; share it in an `Arc`. Every method is short and never blocks
/// on I/O: the only locks are dashmap shards and the log gate's mutex, each held for one
/// lookup or update.
pub struct Limiter<C: Clock = DefaultClock> {
    limits: Limits,
    clock: C,
    start: C::Instant,
    /// The Unix time (seconds) at `start`.
    unix_start: u64,
    hasher: RandomState,
    per_client: Option<KeyedRate<C>>,
    per_origin: Option<KeyedRate<C>>,
    per_user: Option<KeyedRate<C>>,
    directory: Option<DirectRate<C>>,
    /// User key → failure streaks.
    users: DashMap<u64, Failures>,
    /// User key → the latest lockout, while in force or remembered.
    locks: DashMap<u64, Lock>,
    /// Origin key → distinct rejected users lately.
    origins: DashMap<u64, OriginCount>,
    /// (origin, user) key → when that user was last rejected from there (32-bit Unix).
    seen: DashMap<u64, u32>,
    /// Origin key → end of its block (Unix seconds).
    blocks: DashMap<u64, u64>,
    logs: LogGate,
    counters: Counters,
    /// The Unix second of the last cleanup of `users`/`origins` forced by the cap.
    forced_at: AtomicU64,
}

impl<C: Clock> fmt::Debug for Limiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("limits", &self.limits)
            .field("keys", &self.keys())
            .finish_non_exhaustive()
    }
}

impl Limiter<DefaultClock> {
    /// A limiter on the real clock.
    pub fn new(limits: Limits) -> Self {
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self::with_clock(limits, DefaultClock::default(), unix_now)
    }
}

impl<C: Clock + Clone> Limiter<C> {
    /// A limiter on `clock`, whose present moment is `unix_now` (Unix seconds). Tests pass a
    /// `FakeRelativeClock` and a fixed time.
    pub fn with_clock(limits: Limits, clock: C, unix_now: u64) -> Self {
        let keyed =
            |rate: Option<Rate>| rate.map(|r| KeyedRate::new(r, clock.clone(), limits.max_keys));
        Self {
            per_client: keyed(limits.per_client),
            per_origin: keyed(limits.per_origin),
            per_user: keyed(limits.per_user),
            directory: limits.directory.map(|r| DirectRate::new(r, clock.clone())),
            start: clock.now(),
            clock,
            unix_start: unix_now,
            hasher: RandomState::new(),
            users: DashMap::new(),
            locks: DashMap::new(),
            origins: DashMap::new(),
            seen: DashMap::new(),
            blocks: DashMap::new(),
            logs: LogGate::new(limits.max_keys),
            counters: Counters::default(),
            forced_at: AtomicU64::new(0),
            limits,
        }
    }
}

impl<C: Clock> Limiter<C> {
    /// The settings.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Now, in Unix seconds, on this limiter's clock.
    pub fn unix_now(&self) -> u64 {
        let elapsed: Duration = self.clock.now().duration_since(self.start).into();
        self.unix_start.saturating_add(elapsed.as_secs())
    }

    /// All checks for one Access-Request, in order: client rate, origin block, user
    /// lockout, origin rate, user rate. The first that fails decides.
    pub fn admit(&self, attempt: &Attempt<'_>) -> Verdict {
        let now = self.unix_now();
        let verdict = self.client_rate(attempt.client, now);
        if !verdict.is_allow() {
            return verdict;
        }
        let origin = attempt.origin.map(|ip| self.origin_key(ip));
        if let Some(origin) = &origin
            && self.spray_applies(attempt.trusted)
            && let Some(verdict) = self.origin_blocked(origin, now)
        {
            return verdict;
        }
        let user = self.user_key(attempt.user);
        if self.lockout_applies(attempt.trusted)
            && let Some(verdict) = self.user_locked(&user, now)
        {
            return verdict;
        }
        if attempt.continuation {
            return Verdict::Allow;
        }
        if let Some(origin) = &origin
            && self.origin_rate_applies(attempt.trusted)
        {
            let verdict = self.rate(Limit::Origin, origin.hash, origin, now);
            if !verdict.is_allow() {
                return verdict;
            }
        }
        if self.user_rate_applies(attempt.trusted) {
            return self.rate(Limit::User, user.hash, &user.name, now);
        }
        Verdict::Allow
    }

    /// The per-client rate alone (e.g. for accounting, which is never rejected but may be
    /// dropped).
    pub fn check_client(&self, client: &str) -> Verdict {
        self.client_rate(client, self.unix_now())
    }

    /// The origin's spray block, then its rate, as [`Limiter::admit`] applies them.
    pub fn check_origin(&self, origin: IpAddr, trusted: bool) -> Verdict {
        let now = self.unix_now();
        let key = self.origin_key(origin);
        if self.spray_applies(trusted)
            && let Some(verdict) = self.origin_blocked(&key, now)
        {
            return verdict;
        }
        if self.origin_rate_applies(trusted) {
            return self.rate(Limit::Origin, key.hash, &key, now);
        }
        Verdict::Allow
    }

    /// The user's lockout, then their rate, as [`Limiter::admit`] applies them.
    pub fn check_user(&self, user: impl AsRef<[u8]>, trusted: bool) -> Verdict {
        let now = self.unix_now();
        let key = self.user_key(user.as_ref());
        if self.lockout_applies(trusted)
            && let Some(verdict) = self.user_locked(&key, now)
        {
            return verdict;
        }
        if self.user_rate_applies(trusted) {
            return self.rate(Limit::User, key.hash, &key.name, now);
        }
        Verdict::Allow
    }

    /// The directory ceiling: call right before each request sent to the directory.
    pub fn check_directory(&self) -> Verdict {
        let Some(directory) = &self.directory else {
            return Verdict::Allow;
        };
        match directory.check() {
            Check::Limited => {
                let verdict = Verdict::RateLimited {
                    which: Limit::Directory,
                };
                self.denied(verdict, 0, &"directory", self.unix_now())
            }
            Check::Pass | Check::OverCap => Verdict::Allow,
        }
    }

    fn client_rate(&self, client: &str, now: u64) -> Verdict {
        let hash = self.hasher.hash_one((b'c', client));
        self.rate(Limit::Client, hash, &client, now)
    }

    /// A keyed rate (client, origin or user) for `hash`; `shown` names the key in the log.
    fn rate(&self, which: Limit, hash: u64, shown: &dyn fmt::Display, now: u64) -> Verdict {
        let table = match which {
            Limit::Client => self.per_client.as_ref(),
            Limit::Origin => self.per_origin.as_ref(),
            Limit::User => self.per_user.as_ref(),
            // Not keyed: `check_directory` has it.
            Limit::Directory => None,
        };
        let Some(table) = table else {
            return Verdict::Allow;
        };
        match table.check(hash, now) {
            Check::Pass => Verdict::Allow,
            Check::Limited => self.denied(Verdict::RateLimited { which }, hash, shown, now),
            Check::OverCap => {
                self.over_cap(which.as_str(), now);
                Verdict::Allow
            }
        }
    }

    fn origin_blocked(&self, origin: &OriginKey, now: u64) -> Option<Verdict> {
        let until = *self.blocks.get(&origin.hash)?;
        if now >= until {
            return None;
        }
        Some(self.denied(Verdict::OriginBlocked { until }, origin.hash, origin, now))
    }

    /// The lockout in force for `hash`, if any (a copy: no table lock is kept).
    fn active_lock(&self, hash: u64, now: u64) -> Option<Lock> {
        self.locks
            .get(&hash)
            .map(|l| *l)
            .filter(|l| l.is_active(now))
    }

    fn user_locked(&self, user: &UserKey, now: u64) -> Option<Verdict> {
        let lock = self.active_lock(user.hash, now)?;
        let (until, reason) = (lock.until, lock.reason);
        let due = now >= lock.asked_store + ASK_STORE_EVERY;
        let ask_store = due && user.valid && self.note_store_asked(user.hash, now);
        let verdict = Verdict::Locked {
            until,
            reason,
            ask_store,
        };
        Some(self.denied(verdict, user.hash, &user.name, now))
    }

    /// Marks that the store is being asked about a lockout now; false if another request
    /// got there first.
    fn note_store_asked(&self, hash: u64, now: u64) -> bool {
        let Some(mut lock) = self.locks.get_mut(&hash) else {
            return false;
        };
        if lock.is_active(now) && now >= lock.asked_store + ASK_STORE_EVERY {
            lock.asked_store = now;
            return true;
        }
        false
    }

    /// Counts a denial and logs it once per key per window.
    fn denied(&self, verdict: Verdict, hash: u64, shown: &dyn fmt::Display, now: u64) -> Verdict {
        let c = &self.counters;
        let (counter, tag) = match verdict {
            Verdict::Allow => return verdict,
            Verdict::RateLimited { which } => match which {
                Limit::Client => (&c.client_limited, 1u8),
                Limit::Origin => (&c.origin_limited, 2),
                Limit::User => (&c.user_limited, 3),
                Limit::Directory => (&c.directory_limited, 4),
            },
            Verdict::Locked { .. } => (&c.locked_rejects, 5),
            Verdict::OriginBlocked { .. } => (&c.blocked_rejects, 6),
        };
        bump(counter);
        if self.logs.first(self.hasher.hash_one((tag, hash)), now) {
            tracing::info!(
                target: "portvakt::limits",
                key = %shown,
                reason = verdict.reason_code(),
                "rejected without asking the directory: {verdict} (logged once a minute per key)"
            );
        }
        verdict
    }

    fn over_cap(&self, table: &'static str, now: u64) {
        bump(&self.counters.over_cap);
        if self.logs.first(self.hasher.hash_one((0u8, table)), now) {
            tracing::warn!(
                target: "portvakt::limits",
                table,
                max_keys = self.limits.max_keys,
                "limits table full: new keys are not tracked (an attack with many names or addresses?)"
            );
        }
    }

    fn spray_applies(&self, trusted: bool) -> bool {
        !trusted || self.limits.spray_on_trusted
    }

    fn lockout_applies(&self, trusted: bool) -> bool {
        !trusted || self.limits.lockout_on_trusted
    }

    fn origin_rate_applies(&self, trusted: bool) -> bool {
        !trusted || self.limits.per_origin_on_trusted
    }

    fn user_rate_applies(&self, trusted: bool) -> bool {
        !trusted || self.limits.per_user_on_trusted
    }

    fn user_key(&self, raw: &[u8]) -> UserKey {
        match lockout_name(raw) {
            Some(name) => UserKey {
                hash: self.hasher.hash_one((b'u', name.as_str())),
                name,
                valid: true,
            },
            // Not a name the store could hold; still limited, under its exact bytes.
            None => UserKey {
                hash: self.hasher.hash_one((b'r', raw)),
                name: crate::audit::escape(raw),
                valid: false,
            },
        }
    }

    fn origin_key(&self, ip: IpAddr) -> OriginKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => OriginKey {
                hash: self.hasher.hash_one((b'4', v4)),
                net: IpAddr::V4(v4),
                prefix: None,
            },
            IpAddr::V6(v6) => {
                let len = self.limits.origin_ipv6_prefix.min(128);
                // `checked_shl` is `None` for a shift of 128 (a /0 prefix, refused by the
                // settings): then no bits are kept.
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                let net = Ipv6Addr::from(u128::from(v6) & mask);
                OriginKey {
                    hash: self.hasher.hash_one((b'6', net)),
                    net: IpAddr::V6(net),
                    prefix: Some(len),
                }
            }
        }
    }
}

impl<C: Clock> Limiter<C> {
    /// The directory rejected this attempt's password. Counts towards the user's lockout
    /// and the origin's spray shield (each where it applies); returns the lockout to
    /// persist if this reject completed one.
    pub fn note_directory_reject(&self, attempt: &Attempt<'_>) -> Option<Persist> {
        let now = self.unix_now();
        let user = self.user_key(attempt.user);
        if let Some(ip) = attempt.origin
            && self.spray_applies(attempt.trusted)
        {
            self.count_spray(&self.origin_key(ip), &user, now);
        }
        if !self.lockout_applies(attempt.trusted) {
            return None;
        }
        self.count_failure(&user, LockReason::DirectoryRejects, now)
    }

    /// The directory accepted the user's password: earlier rejects no longer count.
    pub fn note_directory_accept(&self, user: impl AsRef<[u8]>) {
        let user = self.user_key(user.as_ref());
        if let Some(mut failures) = self.users.get_mut(&user.hash) {
            failures.clear_rejects();
        }
    }

    /// A second-factor failure: a wrong code, a denied push, an expired challenge. Returns
    /// the lockout to persist if this failure completed one.
    pub fn note_second_factor_failure(
        &self,
        user: impl AsRef<[u8]>,
        trusted: bool,
    ) -> Option<Persist> {
        if !self.lockout_applies(trusted) {
            return None;
        }
        let user = self.user_key(user.as_ref());
        self.count_failure(&user, LockReason::SecondFactor, self.unix_now())
    }

    /// A login succeeded (every factor it needed). Failures are forgotten, and so is the
    /// lockout history, which the store must forget too if a [`Persist`] is returned. A
    /// lockout still in force stays: it can only be here if the login came from where the
    /// lockout does not apply, and the attacker elsewhere must not get a fresh allowance.
    pub fn note_success(&self, user: impl AsRef<[u8]>) -> Option<Persist> {
        let user = self.user_key(user.as_ref());
        let now = self.unix_now();
        self.users.remove(&user.hash);
        let (_, lock) = self.locks.remove_if(&user.hash, |_, l| !l.is_active(now))?;
        (lock.remembered(now, &self.limits) && user.valid).then_some(Persist::Forget(user.name))
    }

    /// Counts a failure; locks the user when it completes a streak. Failures while locked
    /// are not counted: nothing reaches the directory then, and a late second-factor
    /// answer must not stretch the lockout.
    fn count_failure(&self, user: &UserKey, reason: LockReason, now: u64) -> Option<Persist> {
        if self.active_lock(user.hash, now).is_some() {
            return None;
        }
        if !self.has_room(&self.users, user.hash, now) {
            self.over_cap("users", now);
            return None;
        }
        let reached = self
            .users
            .entry(user.hash)
            .or_default()
            .record(reason, now, &self.limits);
        if !reached {
            return None;
        }
        // Lockouts are few (each takes a whole streak) and are never dropped for room.
        let previous = self.locks.get(&user.hash).map(|l| *l);
        let lock = Lock::begin(previous.as_ref(), reason, now, &self.limits);
        self.locks.insert(user.hash, lock);
        let row = lock.row(&user.name);
        bump(&self.counters.lockouts);
        tracing::warn!(
            target: "portvakt::limits",
            user = %user.name,
            reason = reason.as_str(),
            level = row.level,
            until = %crate::store::format_time(row.locked_until),
            "user locked"
        );
        user.valid.then_some(Persist::Lock(row))
    }

    /// Counts a rejected user for the origin's spray count, once per user per window.
    fn count_spray(&self, origin: &OriginKey, user: &UserKey, now: u64) {
        if self
            .blocks
            .get(&origin.hash)
            .is_some_and(|until| now < *until)
        {
            return; // nothing reaches the directory from there meanwhile
        }
        let pair = self.hasher.hash_one((b'p', origin.hash, user.hash));
        if !self.has_room(&self.seen, pair, now) || !self.has_room(&self.origins, origin.hash, now)
        {
            self.over_cap("spray", now);
            return;
        }
        let window = self.limits.spray.window.as_secs();
        let new_user = match self.seen.entry(pair) {
            Entry::Occupied(mut seen) => {
                let fresh = u64::from(secs32(now).saturating_sub(*seen.get())) >= window;
                *seen.get_mut() = secs32(now);
                fresh
            }
            Entry::Vacant(slot) => {
                slot.insert(secs32(now));
                true
            }
        };
        if !new_user {
            return;
        }
        let reached = self
            .origins
            .entry(origin.hash)
            .or_default()
            .record(now, self.limits.spray);
        if !reached {
            return;
        }
        let until = now.saturating_add(self.limits.spray_block.as_secs());
        self.blocks.insert(origin.hash, until);
        bump(&self.counters.spray_blocks);
        tracing::warn!(
            target: "portvakt::limits",
            origin = %origin,
            users = self.limits.spray.count,
            until = %crate::store::format_time(until),
            "origin blocked: password spraying (many users rejected)"
        );
    }

    /// Whether `key` may be added to `table` (or is there already). At the cap, expired
    /// state is cleared once (at most once a second) to make room.
    fn has_room<V>(&self, table: &DashMap<u64, V>, key: u64, now: u64) -> bool {
        if table.len() < self.limits.max_keys || table.contains_key(&key) {
            return true;
        }
        if self.forced_at.swap(now, Ordering::Relaxed) != now {
            self.expire(now);
        }
        table.len() < self.limits.max_keys
    }

    /// Drops every entry that no longer counts at `now`.
    fn expire(&self, now: u64) {
        let limits = &self.limits;
        self.users.retain(|_, f| !f.expire(now, limits));
        self.locks.retain(|_, l| l.remembered(now, limits));
        let window = limits.spray.window;
        self.origins.retain(|_, o| !o.expire(now, window));
        let now32 = secs32(now);
        self.seen
            .retain(|_, at| u64::from(now32.saturating_sub(*at)) < window.as_secs());
        self.blocks.retain(|_, until| now < *until);
    }
}

impl<C: Clock> Limiter<C> {
    /// The user's lockout in force, if any.
    pub fn is_locked(&self, user: impl AsRef<[u8]>) -> Option<LockoutRow> {
        let user = self.user_key(user.as_ref());
        let lock = self.active_lock(user.hash, self.unix_now())?;
        Some(lock.row(&user.name))
    }

    /// Compares a lockout with the user's row in the store (after a [`Verdict::Locked`]
    /// with `ask_store`); returns whether the user is still locked.
    ///
    /// - A row marked unlocked since this lockout began: an administrator lifted it; it
    ///   is lifted here too (with the user's failures and history).
    /// - An active row ending later than ours (another node's, or a restored one): adopted.
    /// - No row, or an older one: kept. Our own write may be on its way or may have
    ///   failed; lifting on it would fail open.
    pub fn confirm_lockout(&self, user: impl AsRef<[u8]>, stored: Option<&LockoutRow>) -> bool {
        let user = self.user_key(user.as_ref());
        let now = self.unix_now();
        let Some(lock) = self.active_lock(user.hash, now) else {
            return false;
        };
        match stored {
            Some(row) if row.unlocked_at.is_some() && row.locked_at >= lock.at => {
                self.users.remove(&user.hash);
                self.locks.remove(&user.hash);
                tracing::info!(
                    target: "portvakt::limits",
                    user = %user.name,
                    "lockout lifted by an administrator"
                );
                false
            }
            Some(row) if row.is_active(now) && row.locked_until > lock.until => {
                self.locks.insert(user.hash, Lock::from_row(row, now));
                true
            }
            _ => true,
        }
    }

    /// Lifts a user's lockout here and forgets their failures and history; returns whether
    /// a lockout was in force. (The store is the caller's: [`Store::unlock_user`].)
    pub fn unlock(&self, user: impl AsRef<[u8]>) -> bool {
        let user = self.user_key(user.as_ref());
        let now = self.unix_now();
        self.users.remove(&user.hash);
        self.locks
            .remove(&user.hash)
            .is_some_and(|(_, l)| l.is_active(now))
    }

    /// Takes over the store's lockouts at startup: active ones lock again, ended ones keep
    /// their history (for growth), unlocked ones are skipped. Returns how many are active.
    pub fn load_lockouts(&self, rows: impl IntoIterator<Item = LockoutRow>) -> usize {
        let now = self.unix_now();
        let mut active = 0;
        for row in rows {
            if row.unlocked_at.is_some() {
                continue;
            }
            let lock = Lock::from_row(&row, now);
            if !lock.remembered(now, &self.limits) {
                continue; // long over: nothing to remember
            }
            active += usize::from(lock.is_active(now));
            self.locks
                .insert(self.user_key(row.name.as_bytes()).hash, lock);
        }
        active
    }

    /// Housekeeping, every 30–60 s: forgets quiet keys in every table, ends expired
    /// lockouts and blocks, and returns the memory. Returns the table sizes after.
    pub fn maintain(&self) -> Keys {
        let now = self.unix_now();
        for table in [&self.per_client, &self.per_origin, &self.per_user]
            .into_iter()
            .flatten()
        {
            table.maintain();
        }
        self.expire(now);
        self.users.shrink_to_fit();
        self.locks.shrink_to_fit();
        self.origins.shrink_to_fit();
        self.seen.shrink_to_fit();
        self.blocks.shrink_to_fit();
        self.logs.maintain(now);
        self.keys()
    }

    /// The table sizes now.
    pub fn keys(&self) -> Keys {
        let len = |t: &Option<KeyedRate<C>>| t.as_ref().map_or(0, KeyedRate::len);
        Keys {
            clients: len(&self.per_client),
            origins: len(&self.per_origin),
            users: len(&self.per_user),
            user_states: self.users.len(),
            locks: self.locks.len(),
            spray_origins: self.origins.len(),
            spray_pairs: self.seen.len(),
            blocked_origins: self.blocks.len(),
            quiet_logs: self.logs.len(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let read = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            client_limited: read(&c.client_limited),
            origin_limited: read(&c.origin_limited),
            user_limited: read(&c.user_limited),
            directory_limited: read(&c.directory_limited),
            locked_rejects: read(&c.locked_rejects),
            blocked_rejects: read(&c.blocked_rejects),
            lockouts: read(&c.lockouts),
            spray_blocks: read(&c.spray_blocks),
            over_cap: read(&c.over_cap),
        }
    }
}

#[cfg(test)]
mod tests;
