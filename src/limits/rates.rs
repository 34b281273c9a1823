//! The rates, on governor: keyed limiters (per client, origin, user) and the direct one for
//! the directory ceiling, plus the key cap that governor lacks.
//!
//! governor never forgets a key by itself, so a flood of new keys (spoofed origins, made-up
//! user names) would grow its table without bound. [`KeyedRate::maintain`] drops keys
//! whose state is the same as a fresh one (`retain_recent`) and gives the memory back
//! (`shrink_to_fit`). Between two maintenance runs a table may reach the cap; a check then
//! forces one cleanup (at most once a second), and if the table is still full the check
//! is skipped: the per-client and directory limits still hold, and lockouts do not depend
//! on these tables at all.

use std::sync::atomic::{AtomicU64, Ordering};

use governor::RateLimiter;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};

use super::settings::Rate;

/// What a rate check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    /// Within the rate.
    Pass,
    /// Over the rate.
    Limited,
    /// The table is full of other keys: not checked.
    OverCap,
}

type Keyed<C> = RateLimiter<u64, DashMapStateStore<u64>, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A keyed rate (keys are 64-bit hashes: fixed size, no allocation per check).
pub(super) struct KeyedRate<C: Clock> {
    limiter: Keyed<C>,
    max_keys: usize,
    /// The Unix second of the last cleanup forced by the cap.
    forced_at: AtomicU64,
}

impl<C: Clock> KeyedRate<C> {
    pub(super) fn new(rate: Rate, clock: C, max_keys: usize) -> Self {
        Self {
            limiter: RateLimiter::new(rate.quota(), DashMapStateStore::default(), clock),
            max_keys,
            forced_at: AtomicU64::new(0),
        }
    }

    /// Counts one event for `key` at `now` (Unix seconds, for the forced cleanup only).
    pub(super) fn check(&self, key: u64, now: u64) -> Check {
        if self.limiter.len() >= self.max_keys {
            if self.forced_at.swap(now, Ordering::Relaxed) != now {
                self.limiter.retain_recent();
            }
            if self.limiter.len() >= self.max_keys {
                return Check::OverCap;
            }
        }
        match self.limiter.check_key(&key) {
            Ok(()) => Check::Pass,
            Err(_) => Check::Limited,
        }
    }

    /// Forgets keys that are as good as new and returns the memory.
    pub(super) fn maintain(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Keys held.
    pub(super) fn len(&self) -> usize {
        self.limiter.len()
    }
}

/// A single, global rate.
pub(super) struct DirectRate<C: Clock> {
    limiter: Direct<C>,
}

impl<C: Clock> DirectRate<C> {
    pub(super) fn new(rate: Rate, clock: C) -> Self {
        Self {
            limiter: RateLimiter::direct_with_clock(rate.quota(), clock),
        }
    }

    pub(super) fn check(&self) -> Check {
        match self.limiter.check() {
            Ok(()) => Check::Pass,
            Err(_) => Check::Limited,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    fn rate(count: u32, secs: u64) -> Rate {
        Rate {
            count: NonZeroU32::new(count).unwrap(),
            per: Duration::from_secs(secs),
        }
    }

    #[test]
    fn a_keyed_rate_bursts_then_refills_per_key() {
        let clock = FakeRelativeClock::default();
        let r = KeyedRate::new(rate(3, 60), clock.clone(), 100);
        for _ in 0..3 {
            assert_eq!(r.check(1, 0), Check::Pass);
        }
        assert_eq!(r.check(1, 0), Check::Limited);
        assert_eq!(r.check(2, 0), Check::Pass, "another key has its own budget");
        clock.advance(Duration::from_secs(19));
        assert_eq!(r.check(1, 0), Check::Limited);
        clock.advance(Duration::from_secs(1));
        assert_eq!(r.check(1, 0), Check::Pass, "one back every 20 s");
        assert_eq!(r.check(1, 0), Check::Limited);
    }

    #[test]
    fn maintenance_forgets_quiet_keys() {
        let clock = FakeRelativeClock::default();
        let r = KeyedRate::new(rate(3, 60), clock.clone(), 1000);
        for key in 0..500 {
            r.check(key, 0);
        }
        r.check(7, 0);
        assert_eq!(r.len(), 500);
        r.maintain();
        assert_eq!(r.len(), 500, "all still differ from a fresh state");
        // governor keeps a key one refill interval (20 s) beyond the point where it is as
        // good as new: a single use is forgotten after 40 s, two uses after 60 s.
        clock.advance(Duration::from_secs(39));
        r.maintain();
        assert_eq!(r.len(), 500);
        clock.advance(Duration::from_secs(1));
        r.maintain();
        assert_eq!(r.len(), 1, "only the key used twice is still recent");
        clock.advance(Duration::from_secs(20));
        r.maintain();
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn at_the_cap_new_keys_are_not_checked_until_a_cleanup_makes_room() {
        let clock = FakeRelativeClock::default();
        let r = KeyedRate::new(rate(1, 60), clock.clone(), 100);
        for key in 0..100 {
            assert_eq!(r.check(key, 0), Check::Pass);
        }
        assert_eq!(r.check(1000, 0), Check::OverCap);
        assert_eq!(r.check(1, 0), Check::OverCap, "the whole table is skipped");
        assert_eq!(r.len(), 100, "the table does not grow");
        // Once the old keys are as good as new, the forced cleanup (next second) clears them.
        clock.advance(Duration::from_secs(120));
        assert_eq!(
            r.check(1000, 0),
            Check::OverCap,
            "at most one forced cleanup a second"
        );
        assert_eq!(r.check(1000, 1), Check::Pass);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn the_direct_rate_is_global() {
        let clock = FakeRelativeClock::default();
        let r = DirectRate::new(rate(2, 1), clock.clone());
        assert_eq!(r.check(), Check::Pass);
        assert_eq!(r.check(), Check::Pass);
        assert_eq!(r.check(), Check::Limited);
        clock.advance(Duration::from_millis(500));
        assert_eq!(r.check(), Check::Pass);
    }
}
