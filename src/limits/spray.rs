//! The password-spray shield's state for one origin: which distinct user names the
//! directory rejected from it lately, and whether it is blocked. Plain data; every method
//! takes `now` (Unix seconds).
//!
//! Only directory rejects count, not every login: many legitimate users can share one
//! address (carrier-grade NAT, a hotel), and they log in successfully. A sprayer's guesses
//! fail. Users are remembered by their key hash only (8 bytes each), at most
//! `spray_users` of them per origin, so the state of one origin stays small.

use std::time::Duration;

use super::settings::Threshold;

/// One origin's recent rejected users and its block.
#[derive(Debug, Default)]
pub(super) struct OriginState {
    /// (user key hash, time of its latest reject), oldest first; each user once.
    rejected: Vec<(u64, u64)>,
    /// The end of the block; 0 if never blocked.
    blocked_until: u64,
}

impl OriginState {
    /// The end of the block in force at `now`, if any.
    pub(super) fn blocked(&self, now: u64) -> Option<u64> {
        (now < self.blocked_until).then_some(self.blocked_until)
    }

    /// Counts a directory reject of `user`; returns the end of a block that this reject
    /// starts. While blocked nothing is counted (nothing reaches the directory then).
    pub(super) fn record(
        &mut self,
        user: u64,
        now: u64,
        threshold: Threshold,
        block: Duration,
    ) -> Option<u64> {
        if self.blocked(now).is_some() {
            return None;
        }
        self.prune(now, threshold.window);
        self.rejected.retain(|(u, _)| *u != user);
        self.rejected.push((user, now));
        if self.rejected.len() < threshold.count as usize {
            return None;
        }
        self.rejected = Vec::new();
        self.blocked_until = now.saturating_add(block.as_secs());
        Some(self.blocked_until)
    }

    fn prune(&mut self, now: u64, window: Duration) {
        let window = window.as_secs();
        self.rejected
            .retain(|(_, at)| now.saturating_sub(*at) < window);
    }

    /// Drops what no longer counts; true if nothing is left to remember.
    pub(super) fn expire(&mut self, now: u64, window: Duration) -> bool {
        self.prune(now, window);
        if self.rejected.is_empty() {
            self.rejected = Vec::new(); // give the allocation back
        }
        self.blocked(now).is_none() && self.rejected.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000;

    fn shield() -> (Threshold, Duration) {
        let t = Threshold {
            count: 10,
            window: Duration::from_secs(300),
        };
        (t, Duration::from_secs(1800))
    }

    #[test]
    fn ten_distinct_users_within_the_window_block_the_origin() {
        let (t, block) = shield();
        let mut o = OriginState::default();
        for user in 0..9 {
            assert_eq!(o.record(user, T0 + user, t, block), None);
        }
        // The same users again do not make a spray.
        for user in 0..9 {
            assert_eq!(o.record(user, T0 + 20, t, block), None);
        }
        assert_eq!(o.record(99, T0 + 30, t, block), Some(T0 + 30 + 1800));
        assert_eq!(o.blocked(T0 + 31), Some(T0 + 1830));
        assert_eq!(o.blocked(T0 + 1830), None);
        assert_eq!(
            o.record(100, T0 + 40, t, block),
            None,
            "not counted while blocked"
        );
    }

    #[test]
    fn the_window_slides() {
        let (t, block) = shield();
        let mut o = OriginState::default();
        // One new user every 34 s: ten of them span 306 s, so never ten in one window.
        for i in 0..100u64 {
            assert_eq!(o.record(i, T0 + i * 34, t, block), None, "user {i}");
        }
        // Every 33 s: the tenth (at 297 s) is still inside the first one's window.
        let mut o = OriginState::default();
        let blocked = (0..10u64).find_map(|i| o.record(i, T0 + i * 33, t, block));
        assert_eq!(blocked, Some(T0 + 297 + 1800));
    }

    #[test]
    fn expire_forgets_old_rejects_and_ended_blocks() {
        let (t, block) = shield();
        let mut o = OriginState::default();
        o.record(1, T0, t, block);
        assert!(!o.expire(T0 + 299, t.window));
        assert!(o.expire(T0 + 300, t.window));
        let until = (0..10)
            .find_map(|u| o.record(u, T0 + 400, t, block))
            .unwrap();
        assert!(!o.expire(until - 1, t.window));
        assert!(o.expire(until, t.window));
    }
}
