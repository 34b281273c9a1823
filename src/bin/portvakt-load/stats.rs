//! Counting: the per-lane tally of outcomes, and a latency histogram with bounded
//! relative error (log-linear buckets, as HdrHistogram does) so percentiles cost O(buckets)
//! and recording costs one index computation.

use std::time::Duration;

use serde::Serialize;

/// Sub-buckets per power of two: 2^7 = 128, so a reported value is within 1/128 (< 0.8 %)
/// of the true one.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
const HALF: u64 = SUB / 2;
/// Enough buckets for every u64: the exact range below `SUB`, then `HALF` per octave above.
const BUCKETS: usize = (SUB + (64 - SUB_BITS as u64) * HALF) as usize;

/// A histogram of durations in nanoseconds.
#[derive(Clone)]
pub(crate) struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    sum_ns: u128,
    max_ns: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Histogram({} values)", self.total)
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            sum_ns: 0,
            max_ns: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize; // < 128
    }
    let exp = u64::from(63 - v.leading_zeros()); // ≥ SUB_BITS
    let shift = exp - u64::from(SUB_BITS - 1);
    let top = v >> shift; // in HALF..SUB
    (SUB + (exp - u64::from(SUB_BITS)) * HALF + (top - HALF)) as usize
}

/// The range of values that land in bucket `i`: (lowest, width).
fn bucket_range(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        return (i, 1);
    }
    let octave = (i - SUB) / HALF;
    let top = HALF + (i - SUB) % HALF;
    let shift = octave + 1;
    (top << shift, 1 << shift)
}

impl Histogram {
    /// Records one duration.
    pub(crate) fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[index(ns)] += 1;
        self.total += 1;
        self.sum_ns += u128::from(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// Adds another histogram's values.
    pub(crate) fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.sum_ns += other.sum_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// How many values were recorded.
    pub(crate) fn len(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0..=1), in nanoseconds: the middle of the bucket holding
    /// the ⌈q·n⌉-th smallest value, capped at the largest value seen.
    pub(crate) fn quantile_ns(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, width) = bucket_range(i);
                return (low + width / 2).min(self.max_ns);
            }
        }
        self.max_ns
    }

    /// The summary that goes into a report, in milliseconds.
    pub(crate) fn summary(&self) -> Percentiles {
        let ms = |ns: u64| ns as f64 / 1e6;
        let mean = if self.total == 0 {
            0.0
        } else {
            (self.sum_ns / u128::from(self.total)) as f64 / 1e6
        };
        Percentiles {
            count: self.total,
            mean_ms: mean,
            p50_ms: ms(self.quantile_ns(0.50)),
            p90_ms: ms(self.quantile_ns(0.90)),
            p99_ms: ms(self.quantile_ns(0.99)),
            p999_ms: ms(self.quantile_ns(0.999)),
            max_ms: ms(self.max_ns),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Percentiles {
    /// How many values.
    pub(crate) count: u64,
    /// The mean.
    pub(crate) mean_ms: f64,
    /// Median.
    pub(crate) p50_ms: f64,
    /// 90th percentile.
    pub(crate) p90_ms: f64,
    /// 99th percentile.
    pub(crate) p99_ms: f64,
    /// 99.9th percentile.
    pub(crate) p999_ms: f64,
    /// The largest value.
    pub(crate) max_ms: f64,
}

/// Why a reply was not counted as an answer. Every such reply is ignored, as a NAS would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// Not a RADIUS packet (length rules, attributes).
    Malformed,
    /// The Response Authenticator or the Message-Authenticator does not verify.
    BadAuthenticator,
    /// No Message-Authenticator where one is required.
    NoMessageAuthenticator,
    /// An Identifier with no request waiting for it, and no recently timed-out one either.
    Unmatched,
    /// A code that cannot answer the request (e.g. Accounting-Response to an Access-Request).
    WrongCode,
    /// An Access-Accept whose Class is not the user's: the proxy mixed up replies.
    ClassMismatch,
    /// An Access-Challenge without State.
    NoState,
}

/// Counts of what happened, for the measured part of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Tally {
    /// Requests sent (a challenge login sends two).
    pub(crate) sent: u64,
    /// Access-Accepts.
    pub(crate) accepted: u64,
    /// Access-Rejects.
    pub(crate) rejected: u64,
    /// Access-Challenges.
    pub(crate) challenged: u64,
    /// Accounting-Responses.
    pub(crate) acct_responses: u64,
    /// Requests that got no valid reply within the timeout (never retransmitted).
    pub(crate) timeouts: u64,
    /// Replies ignored because they failed verification (see the `invalid_*` fields).
    pub(crate) invalid: u64,
    /// ... of which: malformed.
    pub(crate) invalid_malformed: u64,
    /// ... of which: bad Response Authenticator or Message-Authenticator.
    pub(crate) invalid_authenticator: u64,
    /// ... of which: Message-Authenticator missing.
    pub(crate) invalid_no_ma: u64,
    /// ... of which: no request waiting on that Identifier.
    pub(crate) invalid_unmatched: u64,
    /// ... of which: a reply code that does not answer the request.
    pub(crate) invalid_code: u64,
    /// ... of which: the wrong user's Class.
    pub(crate) invalid_class: u64,
    /// ... of which: Access-Challenge without State.
    pub(crate) invalid_no_state: u64,
    /// Valid replies that came after their request had timed out.
    pub(crate) late: u64,
    /// Authentic replies with a code other than the one expected (e.g. Reject for a good password).
    pub(crate) unexpected: u64,
    /// Rejects of a TOTP code sent across or within a second of a time-step boundary (the
    /// server's clock reads a little differently), or of a code equal to the user's previous
    /// one (a replay guard rightly holds it as used): the clock's or chance's, not errors.
    pub(crate) stale_code: u64,
    /// Logins (transactions) completed with the expected final reply.
    pub(crate) flows_ok: u64,
    /// Open loop: sends skipped because every Identifier of the lane was in flight.
    pub(crate) stalled: u64,
    /// Send or receive errors from the socket (e.g. ICMP port unreachable).
    pub(crate) socket_errors: u64,
}

impl Tally {
    /// Counts an ignored reply under its reason.
    pub(crate) fn count_invalid(&mut self, why: Invalid) {
        self.invalid += 1;
        let field = match why {
            Invalid::Malformed => &mut self.invalid_malformed,
            Invalid::BadAuthenticator => &mut self.invalid_authenticator,
            Invalid::NoMessageAuthenticator => &mut self.invalid_no_ma,
            Invalid::Unmatched => &mut self.invalid_unmatched,
            Invalid::WrongCode => &mut self.invalid_code,
            Invalid::ClassMismatch => &mut self.invalid_class,
            Invalid::NoState => &mut self.invalid_no_state,
        };
        *field += 1;
    }

    /// Adds another lane's counts.
    pub(crate) fn merge(&mut self, o: &Self) {
        self.sent += o.sent;
        self.accepted += o.accepted;
        self.rejected += o.rejected;
        self.challenged += o.challenged;
        self.acct_responses += o.acct_responses;
        self.timeouts += o.timeouts;
        self.invalid += o.invalid;
        self.invalid_malformed += o.invalid_malformed;
        self.invalid_authenticator += o.invalid_authenticator;
        self.invalid_no_ma += o.invalid_no_ma;
        self.invalid_unmatched += o.invalid_unmatched;
        self.invalid_code += o.invalid_code;
        self.invalid_class += o.invalid_class;
        self.invalid_no_state += o.invalid_no_state;
        self.late += o.late;
        self.unexpected += o.unexpected;
        self.stale_code += o.stale_code;
        self.flows_ok += o.flows_ok;
        self.stalled += o.stalled;
        self.socket_errors += o.socket_errors;
    }

    /// Valid replies of any code.
    pub(crate) fn answered(&self) -> u64 {
        self.accepted + self.rejected + self.challenged + self.acct_responses
    }

    /// Whether the run was clean: something answered, and no timeouts, nothing invalid or
    /// unexpected, no stalls.
    pub(crate) fn clean(&self) -> bool {
        self.answered() > 0
            && self.timeouts == 0
            && self.invalid == 0
            && self.unexpected == 0
            && self.stalled == 0
            && self.socket_errors == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let i = index(v);
            assert!(i < BUCKETS, "{v}");
            assert!(i >= last, "index goes backwards at {v}");
            last = i;
            let (low, width) = bucket_range(i);
            assert!(
                low <= v && v - low < width,
                "{v} not in bucket {i} = {low}+{width}"
            );
        }
    }

    #[test]
    fn quantiles_match_exact_ranks_within_the_error_bound() {
        // A skewed spread of values, as latencies are: many small, a long tail.
        let mut values: Vec<u64> = (1..=20_000u64).map(|i| i * i % 7_919 * 1_000 + i).collect();
        let mut h = Histogram::default();
        for v in &values {
            h.record(Duration::from_nanos(*v));
        }
        values.sort_unstable();
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            let exact = values[((q * values.len() as f64).ceil() as usize).max(1) - 1];
            let got = h.quantile_ns(q);
            let err = (got as f64 - exact as f64).abs() / exact as f64;
            assert!(err <= 1.0 / 128.0, "q={q}: {got} vs {exact}");
        }
        assert_eq!(h.len(), 20_000);
    }

    #[test]
    fn merge_adds_up() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        a.record(Duration::from_micros(100));
        b.record(Duration::from_micros(300));
        b.record(Duration::from_micros(300));
        a.merge(&b);
        assert_eq!(a.len(), 3);
        assert!((a.summary().p50_ms - 0.3).abs() < 0.003);
        assert!((a.summary().max_ms - 0.3).abs() < 1e-9);
        assert_eq!(Histogram::default().quantile_ns(0.99), 0);
    }
}
