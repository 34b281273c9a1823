//! A user's failure streak and lockout, as plain data with the rules on it. No clock and no
//! locking here: every method takes `now` (Unix seconds) and the [`Limits`].
//!
//! Failures are counted the way AD counts bad passwords: **in a row**, a failure more than
//! the window after the user's previous one starts the count again. That is stricter than
//! "N within any window": a patient guesser who stays just under N per window is still
//! caught, as AD would catch him, so portvakt locks first. Two counts, kept apart so that
//! bad passwords alone say nothing about the second factor and the other way round:
//! directory rejects and second-factor failures. They share the time of the last failure.
//!
//! A [`Failures`] value is 8 bytes: an attack with a million user names fills a million
//! entries, so the common case is kept small. Lockouts ([`Lock`]) are rare and live in a
//! table of their own.

use crate::store::{LockReason, LockoutRow};

use super::settings::{Limits, Threshold};

/// Unix seconds in 32 bits: half the size, and enough until 2106.
pub(super) fn secs32(unix: u64) -> u32 {
    u32::try_from(unix).unwrap_or(u32::MAX)
}

/// A user's current failure streaks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Failures {
    /// The time of the user's latest failure of either kind.
    last: u32,
    /// Directory rejects in a row.
    rejects: u8,
    /// Second-factor failures in a row.
    failures: u8,
}

impl Failures {
    /// Counts a failure at `now`; true if it completes the threshold. That count then
    /// starts again from zero: after the lockout the user has the full allowance, and only
    /// the growing lockout period answers repeated guessing.
    pub(super) fn record(&mut self, reason: LockReason, now: u64, limits: &Limits) -> bool {
        self.expire(now, limits);
        let threshold = threshold(reason, limits);
        let count = match reason {
            LockReason::DirectoryRejects => &mut self.rejects,
            LockReason::SecondFactor => &mut self.failures,
        };
        *count = count.saturating_add(1);
        let reached = u32::from(*count) >= threshold.count;
        if reached {
            *count = 0;
        }
        self.last = secs32(now);
        reached
    }

    /// The password was right: directory rejects so far no longer count.
    pub(super) fn clear_rejects(&mut self) {
        self.rejects = 0;
    }

    /// Ends the streaks whose window has passed since the last failure; true if nothing is
    /// left to remember.
    pub(super) fn expire(&mut self, now: u64, limits: &Limits) -> bool {
        let quiet = u64::from(secs32(now).saturating_sub(self.last));
        if quiet >= limits.directory_rejects.window.as_secs() {
            self.rejects = 0;
        }
        if quiet >= limits.second_factor.window.as_secs() {
            self.failures = 0;
        }
        self.rejects == 0 && self.failures == 0
    }
}

fn threshold(reason: LockReason, limits: &Limits) -> Threshold {
    match reason {
        LockReason::DirectoryRejects => limits.directory_rejects,
        LockReason::SecondFactor => limits.second_factor,
    }
}

/// Longest doubling: 2³⁰ × the first period is beyond any `lockout_max`.
const MAX_DOUBLINGS: u32 = 30;

/// A user's latest lockout, kept after it ends while it still makes the next one grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Lock {
    pub(super) reason: LockReason,
    /// When it began (Unix seconds).
    pub(super) at: u64,
    /// When it ends.
    pub(super) until: u64,
    /// Lockouts in a row, this one included.
    pub(super) level: u32,
    /// When the daemon last asked the store whether it still stands.
    pub(super) asked_store: u64,
}

impl Lock {
    /// A lockout beginning `now`. A repeat within `lockout_memory` of the end of `previous`
    /// lasts twice as long as that one, up to `lockout_max`.
    pub(super) fn begin(
        previous: Option<&Self>,
        reason: LockReason,
        now: u64,
        limits: &Limits,
    ) -> Self {
        let level = match previous {
            Some(p) if p.remembered(now, limits) => p.level.saturating_add(1),
            _ => 1,
        };
        let doublings = (level - 1).min(MAX_DOUBLINGS);
        let period = limits
            .lockout
            .as_secs()
            .saturating_mul(1 << doublings)
            .min(limits.lockout_max.as_secs());
        Self {
            reason,
            at: now,
            until: now.saturating_add(period),
            level,
            asked_store: now,
        }
    }

    /// The lockout a store row describes (its history, if it has ended).
    pub(super) fn from_row(row: &LockoutRow, now: u64) -> Self {
        Self {
            reason: row.reason,
            at: row.locked_at,
            until: row.locked_until,
            level: row.level.max(1),
            asked_store: now,
        }
    }

    /// In force at `now`.
    pub(super) fn is_active(&self, now: u64) -> bool {
        now < self.until
    }

    /// Still counts as history for the next lockout at `now`.
    pub(super) fn remembered(&self, now: u64, limits: &Limits) -> bool {
        now < self.until.saturating_add(limits.lockout_memory.as_secs())
    }

    /// The store row for the account `name`.
    pub(super) fn row(&self, name: &str) -> LockoutRow {
        LockoutRow {
            name: name.to_owned(),
            reason: self.reason,
            locked_at: self.at,
            locked_until: self.until,
            level: self.level,
            unlocked_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000;
    const MIN: u64 = 60;

    /// Failures at the given minutes; the minute at which the threshold was reached.
    fn streak(reason: LockReason, minutes: &[u64]) -> Vec<u64> {
        let l = Limits::default();
        let mut f = Failures::default();
        minutes
            .iter()
            .filter(|&&m| f.record(reason, T0 + m * MIN, &l))
            .copied()
            .collect()
    }

    #[test]
    fn an_entry_is_eight_bytes() {
        assert_eq!(std::mem::size_of::<Failures>(), 8);
    }

    #[test]
    fn rejects_lock_at_three_in_a_row_each_within_ten_minutes() {
        let r = LockReason::DirectoryRejects;
        assert_eq!(streak(r, &[0, 1, 2]), [2]);
        // 9 minutes apart: still in a row (a sliding "3 in 10 min" would never lock here).
        assert_eq!(streak(r, &[0, 9, 18, 27, 36, 45]), [18, 45]);
        // A 10-minute pause starts again.
        assert_eq!(streak(r, &[0, 1, 11, 12, 22, 23]), Vec::<u64>::new());
    }

    #[test]
    fn second_factor_failures_lock_at_five_within_fifteen_minutes() {
        let f = LockReason::SecondFactor;
        assert_eq!(streak(f, &[0, 1, 2, 3, 4]), [4]);
        assert_eq!(streak(f, &[0, 14, 28, 42, 56]), [56]);
        assert_eq!(streak(f, &[0, 1, 2, 3, 18, 19, 20, 21]), Vec::<u64>::new());
    }

    #[test]
    fn the_counts_are_apart_and_an_accept_clears_rejects() {
        let l = Limits::default();
        let mut f = Failures::default();
        assert!(!f.record(LockReason::DirectoryRejects, T0, &l));
        assert!(!f.record(LockReason::DirectoryRejects, T0, &l));
        for _ in 0..4 {
            assert!(!f.record(LockReason::SecondFactor, T0, &l));
        }
        f.clear_rejects();
        assert!(!f.record(LockReason::DirectoryRejects, T0, &l));
        assert!(!f.record(LockReason::DirectoryRejects, T0, &l));
        assert!(f.record(LockReason::SecondFactor, T0, &l));
        assert!(f.record(LockReason::DirectoryRejects, T0, &l));
        assert!(f.expire(T0, &l), "both counts started again");
    }

    #[test]
    fn expire_forgets_each_count_after_its_window() {
        let l = Limits::default();
        let mut f = Failures::default();
        f.record(LockReason::DirectoryRejects, T0, &l);
        f.record(LockReason::SecondFactor, T0, &l);
        assert!(
            !f.expire(T0 + 10 * MIN, &l),
            "second-factor window is 15 min"
        );
        assert!(f.expire(T0 + 15 * MIN, &l));
    }

    #[test]
    fn repeats_double_up_to_the_maximum_and_are_forgotten_later() {
        let l = Limits::default(); // 15 min, max 24 h, memory 24 h
        let mut lock: Option<Lock> = None;
        let mut now = T0;
        let mut periods = Vec::new();
        for _ in 0..10 {
            let next = Lock::begin(lock.as_ref(), LockReason::SecondFactor, now, &l);
            periods.push((next.until - next.at) / MIN);
            now = next.until;
            lock = Some(next);
        }
        assert_eq!(periods, [15, 30, 60, 120, 240, 480, 960, 1440, 1440, 1440]);
        let last = lock.unwrap();
        assert!(last.remembered(last.until + 24 * 3600 - 1, &l));
        let fresh = Lock::begin(
            Some(&last),
            LockReason::SecondFactor,
            last.until + 24 * 3600,
            &l,
        );
        assert_eq!((fresh.level, fresh.until - fresh.at), (1, 15 * MIN));
    }

    #[test]
    fn a_row_round_trips_and_its_history_counts() {
        let l = Limits::default();
        let row = LockoutRow {
            name: "alice".into(),
            reason: LockReason::SecondFactor,
            locked_at: T0,
            locked_until: T0 + 30 * MIN,
            level: 2,
            unlocked_at: None,
        };
        let lock = Lock::from_row(&row, T0 + MIN);
        assert_eq!(lock.row("alice"), row);
        assert!(lock.is_active(T0 + MIN) && !lock.is_active(T0 + 30 * MIN));
        let next = Lock::begin(Some(&lock), LockReason::DirectoryRejects, T0 + 40 * MIN, &l);
        assert_eq!((next.level, next.until - next.at), (3, 60 * MIN));
    }
}
