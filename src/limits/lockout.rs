//! One user's failures and lockout, as plain data with the rules on it. No clock and no
//! locking here: every method takes `now` (Unix seconds) and the [`Limits`].
//!
//! Two counters, kept apart so that bad passwords alone say nothing about the second factor
//! (and the other way round): directory rejects and second-factor failures, each a sliding
//! window of event times. When one reaches its threshold the user is locked; that counter
//! starts again from zero, so after the lockout the user has the full allowance again and
//! only the growing period answers repeated guessing.

use std::time::Duration;

use crate::store::{LockReason, LockoutRow};

use super::settings::{Limits, Threshold};

/// What a lockout says about itself.
#[derive(Debug, Clone)]
pub(super) struct Lock {
    /// The account name for logs and the store (escaped, if it was no valid name).
    pub(super) name: Box<str>,
    pub(super) reason: LockReason,
    pub(super) at: u64,
    pub(super) until: u64,
    /// When the daemon last asked the store whether the lockout still stands.
    pub(super) asked_store: u64,
}

/// A user's state. Absent from the table = nothing to remember.
#[derive(Debug, Default)]
pub(super) struct UserState {
    /// Times of directory rejects within the window, oldest first.
    rejects: Vec<u64>,
    /// Times of second-factor failures within the window, oldest first.
    failures: Vec<u64>,
    /// Lockouts in a row; 0 before the first.
    level: u32,
    /// When the latest lockout ends or ended.
    last_end: u64,
    /// The latest lockout, until maintenance drops it after it ends. Boxed: most users in
    /// the table have none.
    lock: Option<Box<Lock>>,
}

/// Longest doubling: 2³⁰ × the first period is beyond any `lockout_max`.
const MAX_DOUBLINGS: u32 = 30;

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

/// Drops event times that left the window.
fn prune(times: &mut Vec<u64>, now: u64, window: Duration) {
    let keep_from = times.partition_point(|&t| now.saturating_sub(t) >= secs(window));
    times.drain(..keep_from);
}

impl UserState {
    /// The lockout in force at `now`, if any.
    pub(super) fn active_lock(&self, now: u64) -> Option<&Lock> {
        self.lock.as_deref().filter(|l| now < l.until)
    }

    /// The lockout in force at `now`, mutable (to note a store check).
    pub(super) fn active_lock_mut(&mut self, now: u64) -> Option<&mut Lock> {
        self.lock.as_deref_mut().filter(|l| now < l.until)
    }

    /// Lockouts in a row so far.
    pub(super) fn level(&self) -> u32 {
        self.level
    }

    /// Counts a failure; returns the new lockout if this one completes a threshold.
    /// Failures while locked are not counted: nothing reaches the directory then, and a
    /// late second-factor answer must not stretch the lockout.
    pub(super) fn record(
        &mut self,
        reason: LockReason,
        name: &str,
        now: u64,
        limits: &Limits,
    ) -> Option<LockoutRow> {
        if self.active_lock(now).is_some() {
            return None;
        }
        let threshold = threshold(reason, limits);
        let times = self.times(reason);
        prune(times, now, threshold.window);
        times.push(now);
        if times.len() < threshold.count as usize {
            return None;
        }
        times.clear();
        Some(self.lock(reason, name, now, limits))
    }

    fn times(&mut self, reason: LockReason) -> &mut Vec<u64> {
        match reason {
            LockReason::DirectoryRejects => &mut self.rejects,
            LockReason::SecondFactor => &mut self.failures,
        }
    }

    /// Locks the user now: a repeat within `lockout_memory` of the previous end doubles
    /// the period, up to `lockout_max`.
    fn lock(&mut self, reason: LockReason, name: &str, now: u64, limits: &Limits) -> LockoutRow {
        let repeat =
            self.level > 0 && now < self.last_end.saturating_add(secs(limits.lockout_memory));
        self.level = if repeat {
            self.level.saturating_add(1)
        } else {
            1
        };
        let doublings = (self.level - 1).min(MAX_DOUBLINGS);
        let period = secs(limits.lockout)
            .saturating_mul(1 << doublings)
            .min(secs(limits.lockout_max));
        let until = now.saturating_add(period);
        self.last_end = until;
        self.lock = Some(Box::new(Lock {
            name: name.into(),
            reason,
            at: now,
            until,
            asked_store: now,
        }));
        LockoutRow {
            name: name.to_owned(),
            reason,
            locked_at: now,
            locked_until: until,
            level: self.level,
            unlocked_at: None,
        }
    }

    /// The password was right: directory rejects so far no longer count.
    pub(super) fn clear_rejects(&mut self) {
        self.rejects.clear();
    }

    /// Takes over a lockout from the store (at startup, or when the store differs).
    /// A row that has ended keeps only its history.
    pub(super) fn adopt(&mut self, row: &LockoutRow, now: u64) {
        self.level = row.level.max(1);
        self.last_end = row.locked_until;
        self.lock = row.is_active(now).then(|| {
            Box::new(Lock {
                name: row.name.as_str().into(),
                reason: row.reason,
                at: row.locked_at,
                until: row.locked_until,
                asked_store: now,
            })
        });
    }

    /// Drops what no longer counts at `now`; true if nothing is left to remember.
    pub(super) fn expire(&mut self, now: u64, limits: &Limits) -> bool {
        prune(&mut self.rejects, now, limits.directory_rejects.window);
        prune(&mut self.failures, now, limits.second_factor.window);
        if self.active_lock(now).is_none() {
            self.lock = None;
        }
        let remembered =
            self.level > 0 && now < self.last_end.saturating_add(secs(limits.lockout_memory));
        if !remembered {
            self.level = 0;
        }
        self.lock.is_none() && self.rejects.is_empty() && self.failures.is_empty() && !remembered
    }
}

fn threshold(reason: LockReason, limits: &Limits) -> Threshold {
    match reason {
        LockReason::DirectoryRejects => limits.directory_rejects,
        LockReason::SecondFactor => limits.second_factor,
    }
}

impl Lock {
    /// The lockout as a store row.
    pub(super) fn row(&self, level: u32) -> LockoutRow {
        LockoutRow {
            name: self.name.to_string(),
            reason: self.reason,
            locked_at: self.at,
            locked_until: self.until,
            level,
            unlocked_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000;
    const MIN: u64 = 60;

    fn fail(s: &mut UserState, reason: LockReason, at: u64, l: &Limits) -> Option<LockoutRow> {
        s.record(reason, "alice", at, l)
    }

    #[test]
    fn rejects_lock_at_the_threshold_within_a_sliding_window() {
        let l = Limits::default(); // 3 within 10 min
        let mut s = UserState::default();
        assert!(fail(&mut s, LockReason::DirectoryRejects, T0, &l).is_none());
        assert!(fail(&mut s, LockReason::DirectoryRejects, T0 + 9 * MIN, &l).is_none());
        // The first has left the window: two remain.
        assert!(fail(&mut s, LockReason::DirectoryRejects, T0 + 10 * MIN, &l).is_none());
        let row = fail(&mut s, LockReason::DirectoryRejects, T0 + 11 * MIN, &l).unwrap();
        assert_eq!(row.reason, LockReason::DirectoryRejects);
        assert_eq!(row.locked_at, T0 + 11 * MIN);
        assert_eq!(row.locked_until, T0 + 26 * MIN, "15 minutes");
        assert_eq!(row.level, 1);
        assert!(s.active_lock(T0 + 26 * MIN - 1).is_some());
        assert!(s.active_lock(T0 + 26 * MIN).is_none());
    }

    #[test]
    fn repeats_double_up_to_the_maximum_and_are_forgotten_later() {
        let l = Limits::default(); // 15 min, max 24 h, memory 24 h
        let mut s = UserState::default();
        let mut now = T0;
        let mut periods = Vec::new();
        for _ in 0..10 {
            let row = (0..5)
                .find_map(|_| fail(&mut s, LockReason::SecondFactor, now, &l))
                .unwrap();
            periods.push((row.locked_until - row.locked_at) / MIN);
            now = row.locked_until;
        }
        assert_eq!(periods, [15, 30, 60, 120, 240, 480, 960, 1440, 1440, 1440]);
        // A day after the last one ended, the history is gone.
        now += 24 * 3600;
        let row = (0..5)
            .find_map(|_| fail(&mut s, LockReason::SecondFactor, now, &l))
            .unwrap();
        assert_eq!((row.level, row.locked_until - now), (1, 15 * MIN));
    }

    #[test]
    fn failures_while_locked_do_not_count_or_extend() {
        let l = Limits::default();
        let mut s = UserState::default();
        let row = (0..3)
            .find_map(|_| fail(&mut s, LockReason::DirectoryRejects, T0, &l))
            .unwrap();
        for _ in 0..10 {
            assert!(fail(&mut s, LockReason::SecondFactor, T0 + 1, &l).is_none());
        }
        assert_eq!(s.active_lock(T0 + 1).unwrap().until, row.locked_until);
        // After the lockout the second-factor count starts from zero.
        for i in 0..4 {
            assert!(fail(&mut s, LockReason::SecondFactor, row.locked_until + i, &l).is_none());
        }
    }

    #[test]
    fn the_two_counters_are_apart_and_an_accept_clears_rejects() {
        let l = Limits::default();
        let mut s = UserState::default();
        fail(&mut s, LockReason::DirectoryRejects, T0, &l);
        fail(&mut s, LockReason::DirectoryRejects, T0, &l);
        for _ in 0..4 {
            assert!(fail(&mut s, LockReason::SecondFactor, T0, &l).is_none());
        }
        s.clear_rejects();
        assert!(fail(&mut s, LockReason::DirectoryRejects, T0, &l).is_none());
        assert!(fail(&mut s, LockReason::DirectoryRejects, T0, &l).is_none());
        let row = fail(&mut s, LockReason::SecondFactor, T0, &l).unwrap();
        assert_eq!(row.reason, LockReason::SecondFactor);
    }

    #[test]
    fn adopting_a_row_restores_the_lock_or_only_its_history() {
        let l = Limits::default();
        let row = LockoutRow {
            name: "alice".into(),
            reason: LockReason::SecondFactor,
            locked_at: T0,
            locked_until: T0 + 30 * MIN,
            level: 2,
            unlocked_at: None,
        };
        let mut s = UserState::default();
        s.adopt(&row, T0 + MIN);
        assert_eq!(s.active_lock(T0 + MIN).unwrap().row(s.level()), row);
        let mut ended = UserState::default();
        ended.adopt(&row, T0 + 31 * MIN);
        assert!(ended.active_lock(T0 + 31 * MIN).is_none());
        let next = (0..3)
            .find_map(|_| fail(&mut ended, LockReason::DirectoryRejects, T0 + 40 * MIN, &l))
            .unwrap();
        assert_eq!(
            (next.level, next.locked_until - next.locked_at),
            (3, 60 * MIN)
        );
    }

    #[test]
    fn expire_forgets_in_stages() {
        let l = Limits::default();
        let mut s = UserState::default();
        fail(&mut s, LockReason::DirectoryRejects, T0, &l);
        assert!(!s.expire(T0 + 9 * MIN, &l), "a recent reject is remembered");
        assert!(s.expire(T0 + 10 * MIN, &l), "gone after the window");

        let row = (0..3)
            .find_map(|_| fail(&mut s, LockReason::DirectoryRejects, T0, &l))
            .unwrap();
        assert!(
            !s.expire(row.locked_until, &l),
            "history is kept after the lockout"
        );
        assert!(s.lock.is_none(), "the ended lockout itself is dropped");
        assert_eq!(s.level(), 1);
        assert!(s.expire(row.locked_until + 24 * 3600, &l));
        assert_eq!(s.level(), 0);
    }
}
