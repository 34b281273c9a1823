//! "Log once per key per window": a flood of rejects for one key writes one line a
//! window, not one per packet. The counters stay exact; only the log is thinned.

use std::collections::HashMap;
use std::sync::Mutex;

/// How long one key stays quiet after a line.
pub(super) const LOG_WINDOW_SECS: u64 = 60;

/// When each key was last logged. A std mutex: one lookup and insert per denied request,
/// never held across `.await` (there is none in this module).
#[derive(Debug)]
pub(super) struct LogGate {
    logged: Mutex<HashMap<u64, u64>>,
    max_keys: usize,
}

impl LogGate {
    pub(super) fn new(max_keys: usize) -> Self {
        Self {
            logged: Mutex::new(HashMap::new()),
            max_keys,
        }
    }

    /// Whether a line about `key` may be written at `now` (Unix seconds); if so, the key
    /// is quiet for [`LOG_WINDOW_SECS`]. With the table full of recent keys, nothing new
    /// is logged: a flood of distinct keys must not become a flood of lines either.
    pub(super) fn first(&self, key: u64, now: u64) -> bool {
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = logged.get_mut(&key) {
            if now.saturating_sub(*at) < LOG_WINDOW_SECS {
                return false;
            }
            *at = now;
            return true;
        }
        if logged.len() >= self.max_keys {
            logged.retain(|_, at| now.saturating_sub(*at) < LOG_WINDOW_SECS);
            if logged.len() >= self.max_keys {
                return false;
            }
        }
        logged.insert(key, now);
        true
    }

    /// Forgets keys whose window has passed and returns the memory.
    pub(super) fn maintain(&self, now: u64) {
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        logged.retain(|_, at| now.saturating_sub(*at) < LOG_WINDOW_SECS);
        logged.shrink_to_fit();
    }

    /// Keys held.
    pub(super) fn len(&self) -> usize {
        self.logged.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_key_per_window() {
        let gate = LogGate::new(100);
        assert!(gate.first(1, 1000));
        assert!(!gate.first(1, 1001));
        assert!(gate.first(2, 1001), "another key");
        assert!(!gate.first(1, 1059));
        assert!(gate.first(1, 1060));
        gate.maintain(1100);
        assert_eq!(gate.len(), 1, "key 2's window has passed");
    }

    #[test]
    fn a_full_table_logs_nothing_new_until_keys_age_out() {
        let gate = LogGate::new(100);
        for key in 0..100 {
            assert!(gate.first(key, 1000));
        }
        assert!(!gate.first(500, 1000));
        assert!(gate.first(500, 1060), "the old keys have aged out");
        gate.maintain(1060);
        assert_eq!(gate.len(), 1);
    }
}
