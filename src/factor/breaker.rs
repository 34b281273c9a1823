//! A circuit breaker for the SMS and push providers.
//!
//! A provider that is down must not make every login wait for its timeout. After
//! [`BreakerSettings::failures`] failures within [`BreakerSettings::window`] the breaker
//! *opens*: calls fail at once for [`BreakerSettings::open_for`]. Then it is *half-open*:
//! exactly one call (the probe) goes through; its success closes the breaker, its failure
//! opens it again. Callers that find it open treat the provider as unreachable, which is
//! where a site's `fail_mode` decides.
//!
//! Time is `tokio::time::Instant`, so tests drive it with paused time. The state is a std
//! mutex held for a few instructions, never across `.await`.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// When the breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Failures within `window` that open the breaker (at least 1).
    pub failures: u32,
    /// The window failures are counted in.
    pub window: Duration,
    /// How long it stays open before one probe is let through.
    pub open_for: Duration,
}

impl Default for BreakerSettings {
    /// 5 failures in 30 s open it for 30 s (security.md R-11).
    fn default() -> Self {
        Self {
            failures: 5,
            window: Duration::from_secs(30),
            open_for: Duration::from_secs(30),
        }
    }
}

/// What the breaker is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail at once.
    Open,
    /// One probe call is allowed (or in flight).
    HalfOpen,
}

#[derive(Debug)]
enum Phase {
    /// Counting failures since `since`.
    Closed { failures: u32, since: Instant },
    /// Refusing calls until `until`.
    Open { until: Instant },
    /// `probing` while the one probe call is in flight.
    HalfOpen { probing: bool },
}

/// One breaker per provider. `Send + Sync`; share it by reference or `Arc`.
#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    /// A std mutex: every use is a few comparisons, never held across `.await`.
    phase: Mutex<Phase>,
}

/// Permission for one call. Report the result with [`Attempt::succeeded`] or
/// [`Attempt::failed`]; dropping it unreported (a cancelled call) counts nothing, except
/// that a probe's slot is freed so the next call can probe.
#[derive(Debug)]
#[must_use = "report the call's result with succeeded() or failed()"]
pub struct Attempt<'a> {
    breaker: &'a Breaker,
    probe: bool,
    reported: bool,
}

/// The breaker is open: the provider counts as unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit open: the provider failed repeatedly and is not being called")]
pub struct Open;

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        let settings = BreakerSettings {
            failures: settings.failures.max(1),
            ..settings
        };
        Self {
            settings,
            phase: Mutex::new(Phase::Closed {
                failures: 0,
                since: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        // A panic while holding this lock leaves a valid phase behind: take it as it is.
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks to make one call: `Err(Open)` while open, or half-open with a probe in flight.
    pub fn try_call(&self) -> Result<Attempt<'_>, Open> {
        let mut phase = self.lock();
        let now = Instant::now();
        if let Phase::Open { until } = *phase
            && now >= until
        {
            *phase = Phase::HalfOpen { probing: false };
        }
        let probe = match &mut *phase {
            Phase::Closed { .. } => false,
            Phase::Open { .. } | Phase::HalfOpen { probing: true } => return Err(Open),
            Phase::HalfOpen { probing } => {
                *probing = true;
                true
            }
        };
        Ok(Attempt {
            breaker: self,
            probe,
            reported: false,
        })
    }

    /// The current state (for metrics and logs).
    pub fn state(&self) -> BreakerState {
        let phase = self.lock();
        match *phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { until } if Instant::now() < until => BreakerState::Open,
            Phase::Open { .. } | Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn record(&self, probe: bool, ok: bool) {
        let mut phase = self.lock();
        let now = Instant::now();
        let before = state_name(&phase);
        let next = match (&*phase, ok, probe) {
            (_, true, true) | (Phase::Closed { .. }, true, false) => Some(closed(now)),
            (_, false, true) => Some(self.opened(now)),
            (&Phase::Closed { failures, since }, false, false) => {
                let (failures, since) = if now.duration_since(since) > self.settings.window {
                    (1, now)
                } else {
                    (failures + 1, since)
                };
                Some(if failures >= self.settings.failures {
                    self.opened(now)
                } else {
                    Phase::Closed { failures, since }
                })
            }
            // A non-probe call that started before the breaker opened: its result says
            // nothing new.
            (Phase::Open { .. } | Phase::HalfOpen { .. }, _, false) => None,
        };
        if let Some(next) = next {
            *phase = next;
        }
        let after = state_name(&phase);
        if before != after {
            // An admin event (security.md §6): the provider went down or came back.
            tracing::warn!(
                from = before,
                to = after,
                "provider circuit breaker changed"
            );
        }
    }

    fn release_probe(&self) {
        let mut phase = self.lock();
        if let Phase::HalfOpen { probing } = &mut *phase {
            *probing = false;
        }
    }

    fn opened(&self, now: Instant) -> Phase {
        Phase::Open {
            until: now + self.settings.open_for,
        }
    }
}

fn closed(now: Instant) -> Phase {
    Phase::Closed {
        failures: 0,
        since: now,
    }
}

fn state_name(phase: &Phase) -> &'static str {
    match phase {
        Phase::Closed { .. } => "closed",
        Phase::Open { .. } => "open",
        Phase::HalfOpen { .. } => "half-open",
    }
}

impl Attempt<'_> {
    /// The call worked.
    pub fn succeeded(mut self) {
        self.reported = true;
        self.breaker.record(self.probe, true);
    }

    /// The call failed in a way that says the provider is unwell (timeout, connection
    /// refused, 5xx).
    pub fn failed(mut self) {
        self.reported = true;
        self.breaker.record(self.probe, false);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.reported && self.probe {
            self.breaker.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerSettings::default())
    }

    fn fail(b: &Breaker, n: u32) {
        for _ in 0..n {
            b.try_call().unwrap().failed();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_five_failures_in_thirty_seconds() {
        let b = breaker();
        fail(&b, 4);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b, 1);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.try_call().unwrap_err(), Open);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_spread_over_more_than_the_window_do_not_open_it() {
        let b = breaker();
        fail(&b, 4);
        tokio::time::advance(Duration::from_secs(31)).await;
        fail(&b, 4);
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "the old four are forgotten"
        );
        fail(&b, 1);
        assert_eq!(b.state(), BreakerState::Open, "five in the new window");
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count() {
        let b = breaker();
        fail(&b, 4);
        b.try_call().unwrap().succeeded();
        fail(&b, 4);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_exactly_one_probe_through() {
        let b = breaker();
        fail(&b, 5);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.try_call().unwrap();
        assert!(b.try_call().is_err(), "a second call waits for the probe");
        probe.failed();
        assert_eq!(b.state(), BreakerState::Open, "a failed probe reopens");
        tokio::time::advance(Duration::from_secs(30)).await;
        b.try_call().unwrap().succeeded();
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b, 4);
        assert_eq!(b.state(), BreakerState::Closed, "the count started afresh");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_probe_frees_the_slot() {
        let b = breaker();
        fail(&b, 5);
        tokio::time::advance(Duration::from_secs(30)).await;
        drop(b.try_call().unwrap());
        assert!(b.try_call().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn late_results_from_before_opening_change_nothing() {
        let b = breaker();
        let slow = b.try_call().unwrap();
        fail(&b, 5);
        slow.succeeded();
        assert_eq!(b.state(), BreakerState::Open);
    }
}
