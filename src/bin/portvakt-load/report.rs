//! The report of a run: rates, counts, latency percentiles and CPU per request, as text for
//! people and as JSON for the harness (`scripts/bench`).

use std::fmt::Write as _;

use serde::Serialize;

use crate::engine::{Load, Measured, Plan};
use crate::procfs::Watched;
use crate::stats::{Percentiles, Tally};
use crate::workload::Mode;

/// The CPU cost of one watched process over the measured window.
#[derive(Debug, Serialize)]
pub(crate) struct Process {
    /// The name given with `--watch-pid` (`generator` for this process).
    pub(crate) name: String,
    /// The pid (`null` for this process).
    pub(crate) pid: Option<u32>,
    /// CPU seconds (user + system, all threads).
    pub(crate) cpu_s: f64,
    /// CPU use as a share of one core over the window, in percent.
    pub(crate) cpu_percent: f64,
    /// CPU microseconds per valid reply.
    pub(crate) cpu_us_per_request: f64,
    /// CPU microseconds per completed login (differs from the above for challenge logins).
    pub(crate) cpu_us_per_flow: f64,
    /// Resident set size when counting started and at the end, KiB.
    pub(crate) rss_kib_start: u64,
    /// See `rss_kib_start`.
    pub(crate) rss_kib_end: u64,
    /// Resident set size when the last login started (see `in_flight_at_stop`), KiB.
    pub(crate) rss_kib_at_stop: u64,
    /// Resident set size half-way through the window (see `in_flight_at_half`), KiB.
    pub(crate) rss_kib_at_half: u64,
}

/// Everything a run reports.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// The target address.
    pub(crate) target: String,
    /// The login kind.
    pub(crate) mode: Mode,
    /// `closed` or `open`.
    pub(crate) load: &'static str,
    /// Closed loop: logins in flight.
    pub(crate) concurrency: Option<usize>,
    /// Open loop: the offered rate, logins per second.
    pub(crate) offered_rate: Option<f64>,
    /// Sockets used.
    pub(crate) sockets: usize,
    /// Seconds from the end of the warm-up to the last counted reply.
    pub(crate) window_s: f64,
    /// Valid replies per second.
    pub(crate) req_per_s: f64,
    /// Logins completed as expected per second.
    pub(crate) flows_per_s: f64,
    /// The counts.
    #[serde(flatten)]
    pub(crate) tally: Tally,
    /// Per-request latency, send to verified reply.
    pub(crate) latency: Percentiles,
    /// Per-login latency, first send to final reply.
    pub(crate) flow_latency: Percentiles,
    /// Open loop: how late sends left against the schedule.
    pub(crate) send_lag: Option<Percentiles>,
    /// Requests in flight when the last login started: with a server that holds logins
    /// (push approvals), `(rss_kib_at_stop - rss_kib_start) / in_flight_at_stop` is the
    /// memory per pending login.
    pub(crate) in_flight_at_stop: usize,
    /// Requests in flight half-way through the window: `(rss_kib_at_stop - rss_kib_at_half)
    /// / (in_flight_at_stop - in_flight_at_half)` is the memory per pending login without
    /// what the server allocates only once.
    pub(crate) in_flight_at_half: usize,
    /// CPU and memory per watched process, the generator last.
    pub(crate) processes: Vec<Process>,
    /// No timeouts, invalid or unexpected replies, stalls or socket errors.
    pub(crate) clean: bool,
}

impl Report {
    /// Summarises a run.
    pub(crate) fn new(plan: &Plan, mode: Mode, m: &Measured, watched: &[Watched]) -> Self {
        let secs = m.window.as_secs_f64();
        let per_s = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let answered = m.tally.answered();
        let per = |us: f64, n: u64| if n > 0 { us / n as f64 } else { 0.0 };
        let processes = watched
            .iter()
            .zip(&m.samples)
            .zip(m.at_stop.iter().zip(&m.at_half))
            .map(|((w, (a, b)), (stop, half))| {
                let us = b.cpu_us.saturating_sub(a.cpu_us) as f64;
                Process {
                    name: w.name.clone(),
                    pid: w.pid,
                    cpu_s: us / 1e6,
                    cpu_percent: if secs > 0.0 { us / 1e4 / secs } else { 0.0 },
                    cpu_us_per_request: per(us, answered),
                    cpu_us_per_flow: per(us, m.tally.flows_ok),
                    rss_kib_start: a.rss_kib,
                    rss_kib_end: b.rss_kib,
                    rss_kib_at_stop: stop.rss_kib,
                    rss_kib_at_half: half.rss_kib,
                }
            })
            .collect();
        let (load, concurrency, offered_rate) = match plan.load {
            Load::Closed { concurrency } => ("closed", Some(concurrency), None),
            Load::Open { rate, .. } => ("open", None, Some(rate)),
        };
        Self {
            target: plan.target.to_string(),
            mode,
            load,
            concurrency,
            offered_rate,
            sockets: plan.lanes,
            window_s: secs,
            req_per_s: per_s(answered),
            flows_per_s: per_s(m.tally.flows_ok),
            clean: m.tally.clean(),
            tally: m.tally.clone(),
            latency: m.latency.summary(),
            flow_latency: m.flow_latency.summary(),
            send_lag: (m.lag.len() > 0).then(|| m.lag.summary()),
            in_flight_at_stop: m.in_flight_at_stop,
            in_flight_at_half: m.in_flight_at_half,
            processes,
        }
    }

    /// One JSON object.
    pub(crate) fn json(&self) -> String {
        // A struct of numbers and strings always serialises.
        serde_json::to_string_pretty(self).expect("the report serialises")
    }

    /// Lines for people.
    pub(crate) fn text(&self) -> String {
        let t = &self.tally;
        let mut s = String::new();
        let load = match (self.concurrency, self.offered_rate) {
            (Some(c), _) => format!("closed loop, {c} in flight"),
            (_, Some(r)) => format!("open loop, {r:.0}/s offered"),
            _ => String::new(),
        };
        let mode = format!("{:?}", self.mode).to_lowercase();
        let _ = writeln!(
            s,
            "{} {mode}, {load}, {} socket(s), {:.2} s",
            self.target, self.sockets, self.window_s
        );
        let _ = writeln!(
            s,
            "  sent {}  accepted {}  rejected {}  challenged {}  acct {}  timeouts {}  invalid {}  late {}  unexpected {}  stale codes {}  stalled {}  socket errors {}",
            t.sent,
            t.accepted,
            t.rejected,
            t.challenged,
            t.acct_responses,
            t.timeouts,
            t.invalid,
            t.late,
            t.unexpected,
            t.stale_code,
            t.stalled,
            t.socket_errors
        );
        let _ = writeln!(
            s,
            "  {:.0} req/s, {:.0} logins/s",
            self.req_per_s, self.flows_per_s
        );
        let l = &self.latency;
        let _ = writeln!(
            s,
            "  latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
        );
        if self.mode == Mode::Challenge {
            let f = &self.flow_latency;
            let _ = writeln!(
                s,
                "  login ms:   p50 {:.3}  p99 {:.3}  p99.9 {:.3}",
                f.p50_ms, f.p99_ms, f.p999_ms
            );
        }
        let _ = writeln!(
            s,
            "  in flight half-way: {}; when the last login started: {}",
            self.in_flight_at_half, self.in_flight_at_stop
        );
        if let Some(g) = &self.send_lag {
            let _ = writeln!(
                s,
                "  send lag ms: p50 {:.3}  p99 {:.3}  max {:.3}",
                g.p50_ms, g.p99_ms, g.max_ms
            );
        }
        for p in &self.processes {
            let _ = writeln!(
                s,
                "  cpu {:<12} {:7.2} s  {:5.1} %  {:7.1} µs/request  rss {} → {} → {} → {} KiB",
                p.name,
                p.cpu_s,
                p.cpu_percent,
                p.cpu_us_per_request,
                p.rss_kib_start,
                p.rss_kib_at_half,
                p.rss_kib_at_stop,
                p.rss_kib_end
            );
        }
        let _ = writeln!(
            s,
            "  {}",
            if self.clean {
                "clean"
            } else {
                "NOT CLEAN: see the counts above"
            }
        );
        s
    }
}
