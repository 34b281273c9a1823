//! The password-spray shield's count for one origin: how many distinct users the directory
//! rejected from it lately. Plain data; every method takes `now` (Unix seconds).
//!
//! Only directory rejects count, not every login: many legitimate users can share one
//! address (carrier-grade NAT, a hotel), and they log in successfully; a sprayer's guesses
//! fail. Whether a user is new for the origin is the limiter's business (a table of
//! origin–user pairs seen within the window); this count only adds them up.
//!
//! The count is the usual two-window estimate of a sliding window: the current fixed
//! window's count plus the previous window's, weighted by how much of it still overlaps
//! the sliding one. It is exact while the origin's rejects fit in one fixed window and
//! never off by more than the previous window's share otherwise, in 8 bytes per origin:
//! a botnet brings a million origins.

use std::time::Duration;

use super::lockout::secs32;
use super::settings::Threshold;

/// One origin's recent distinct rejected users.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct OriginCount {
    /// Start of the current fixed window (Unix seconds).
    start: u32,
    /// Distinct users in the previous window.
    previous: u8,
    /// Distinct users in the current window.
    current: u8,
}

impl OriginCount {
    /// Counts one more distinct user at `now`; true if the estimate reaches the threshold
    /// (the count then starts again: the origin is blocked meanwhile).
    pub(super) fn record(&mut self, now: u64, threshold: Threshold) -> bool {
        self.roll(now, threshold.window);
        self.current = self.current.saturating_add(1);
        if self.reaches(now, threshold) {
            *self = Self::default();
            return true;
        }
        false
    }

    /// Moves the fixed windows forward to `now`.
    fn roll(&mut self, now: u64, window: Duration) {
        let now = secs32(now);
        let window = secs32(window.as_secs()).max(1);
        let elapsed = now.saturating_sub(self.start);
        if (self.previous == 0 && self.current == 0) || elapsed >= 2 * window {
            *self = Self {
                start: now,
                previous: 0,
                current: 0,
            };
        } else if elapsed >= window {
            self.previous = self.current;
            self.current = 0;
            self.start += window;
        }
    }

    /// Whether `previous × (part of it still in the sliding window) + current` reaches the
    /// threshold, in whole numbers: × window on both sides.
    fn reaches(&self, now: u64, threshold: Threshold) -> bool {
        let window = u64::from(secs32(threshold.window.as_secs()).max(1));
        let elapsed = u64::from(secs32(now).saturating_sub(self.start)).min(window);
        let weighted =
            u64::from(self.previous) * (window - elapsed) + u64::from(self.current) * window;
        weighted >= u64::from(threshold.count) * window
    }

    /// Rolls to `now`; true if nothing is left to remember.
    pub(super) fn expire(&mut self, now: u64, window: Duration) -> bool {
        self.roll(now, window);
        self.previous == 0 && self.current == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000;

    fn shield() -> Threshold {
        Threshold {
            count: 10,
            window: Duration::from_secs(300),
        }
    }

    /// Distinct users at the given seconds; the second at which the origin is blocked.
    fn blocked_at(seconds: impl IntoIterator<Item = u64>) -> Option<u64> {
        let mut c = OriginCount::default();
        seconds.into_iter().find(|s| c.record(T0 + s, shield()))
    }

    #[test]
    fn an_entry_is_eight_bytes() {
        assert_eq!(std::mem::size_of::<OriginCount>(), 8);
    }

    #[test]
    fn ten_users_within_the_window_block() {
        assert_eq!(blocked_at(0..20), Some(9));
        // One every 33 s: the tenth (297 s) is inside the first one's window.
        assert_eq!(blocked_at((0..20).map(|i| i * 33)), Some(297));
        // Across a fixed-window edge: the estimate still sees them together.
        assert_eq!(blocked_at((0..20).map(|i| 250 + i * 10)), Some(340));
    }

    #[test]
    fn a_slow_trickle_is_not_a_spray() {
        // One every 34 s: never ten in a 300 s window.
        assert_eq!(blocked_at((0..500).map(|i| i * 34)), None);
        assert_eq!(blocked_at((0..500).map(|i| i * 60)), None);
    }

    #[test]
    fn expire_forgets_after_two_windows() {
        let mut c = OriginCount::default();
        c.record(T0, shield());
        assert!(!c.expire(T0 + 599, shield().window));
        assert!(c.expire(T0 + 600, shield().window));
    }
}
