//! What the audit line (one per finished request) costs to format: tracing-subscriber's
//! standard text and JSON formatters against `portvakt::logfmt`'s, which write the same
//! bytes. Lines go to `io::sink()`, so this is the formatting alone, not the log thread's
//! write(2).
//!
//! `cargo bench --bench logfmt`; `-- --test` runs each once.

use std::hint::black_box;

use criterion::Criterion;
use portvakt::logfmt;
use tracing::Dispatch;

/// The daemon's audit event (daemon.rs `respond`), with the values of a PAP pass-through.
fn audit_line(user: &str) {
    let ms = 0.41_f64;
    tracing::info!(
        target: portvakt::audit::TARGET,
        client = %"vpn-gateway",
        user,
        nas = "vpn1.kommune.no",
        station = "203.0.113.7",
        result = "Access-Accept",
        reason = "pass_through",
        decision = "origin 10.10.1.5 from Calling-Station-Id; pass: site \"rådhus\"",
        upstream = "nps-1",
        duration_ms = format_args!("{ms:.2}"),
        "request finished"
    );
}

fn run(c: &mut Criterion, name: &str, dispatch: Dispatch) {
    tracing::dispatcher::with_default(&dispatch, || {
        c.bench_function(name, |b| b.iter(|| audit_line(black_box("kari.nordmann"))));
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let text = || {
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(std::io::sink)
    };
    run(
        &mut c,
        "audit line, text: tracing-subscriber",
        Dispatch::new(text().finish()),
    );
    run(
        &mut c,
        "audit line, text: logfmt::Text",
        Dispatch::new(text().event_format(logfmt::Text::default()).finish()),
    );
    let json = || {
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(std::io::sink)
    };
    run(
        &mut c,
        "audit line, JSON: tracing-subscriber",
        Dispatch::new(json().finish()),
    );
    run(
        &mut c,
        "audit line, JSON: logfmt::Json",
        Dispatch::new(json().event_format(logfmt::Json::default()).finish()),
    );
    c.final_summary();
}
