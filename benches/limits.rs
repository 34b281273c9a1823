//! The limiter's cost per check (target: under 1 µs) and its memory with 1,000,000 distinct
//! keys (target: under 200 MB, and back down once they go quiet).
//!
//! `cargo bench --bench limits` prints the memory figures first (RSS from /proc/self/status),
//! then runs the criterion benches. `cargo bench --bench limits -- --test` runs everything
//! once, quickly, without the memory run.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use criterion::Criterion;
use governor::clock::FakeRelativeClock;
use portvakt::limits::{Attempt, Limiter, Limits, Rate};

fn rate(text: &str) -> Option<Rate> {
    Rate::parse(text).expect("a valid rate")
}

/// Rates so high that every check passes: the cost of the whole allowed path.
fn roomy() -> Limits {
    Limits {
        per_client: rate("1000000/s"),
        per_origin: rate("1000000/s"),
        per_user: rate("1000000/s"),
        directory: rate("1000000/s"),
        ..Limits::default()
    }
}

const KEYS: usize = 1024;

fn names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("user{i:07}")).collect()
}

fn origin(i: usize) -> IpAddr {
    // Loopback addresses as keys (127/8 holds 16.7 M); nothing is ever sent anywhere.
    let n = u32::try_from(i).expect("fewer than 2^24 keys");
    IpAddr::V4(Ipv4Addr::from(0x7F00_0000 | n))
}

fn attempts(names: &[String]) -> Vec<Attempt<'_>> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| Attempt {
            client: "vpn1",
            user: name.as_bytes(),
            origin: Some(origin(i)),
            trusted: false,
            continuation: false,
        })
        .collect()
}

fn checks(c: &mut Criterion) {
    let names = names(KEYS);
    let attempts = attempts(&names);
    let mut group = c.benchmark_group("limits");

    let open = Limiter::new(roomy());
    let mut i = 0;
    group.bench_function("admit_allowed_1024_users", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(open.admit(black_box(&attempts[i])))
        });
    });

    let flooded = Limiter::new(Limits::default());
    group.bench_function("admit_rate_limited_one_user", |b| {
        b.iter(|| black_box(flooded.admit(black_box(&attempts[0]))));
    });

    let locked = Limiter::new(roomy());
    for _ in 0..3 {
        let _ = locked.note_directory_reject(&attempts[1]);
    }
    group.bench_function("admit_locked_user", |b| {
        b.iter(|| black_box(locked.admit(black_box(&attempts[1]))));
    });

    group.bench_function("check_directory", |b| {
        b.iter(|| black_box(open.check_directory()));
    });

    let ipv6 = Attempt {
        origin: Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 3, 4, 5, 6))),
        ..attempts[2]
    };
    group.bench_function("admit_allowed_ipv6_origin", |b| {
        b.iter(|| black_box(open.admit(black_box(&ipv6))));
    });

    let noted = Limiter::new(roomy());
    let mut j = 0;
    group.bench_function("note_directory_reject_1024_users", |b| {
        b.iter(|| {
            j = (j + 1) % KEYS;
            black_box(noted.note_directory_reject(black_box(&attempts[j])))
        });
    });
    group.finish();
}

/// Resident memory in MiB, from /proc/self/status.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}

/// 1,000,000 distinct users from 1,000,000 distinct origins, every one rejected by the
/// directory: the worst case, with all four tables full. Then quiet, and `maintain`.
fn memory() {
    const N: usize = 1_000_000;
    let names = names(N);
    let attempts = attempts(&names);
    let base = rss_mib();
    let clock = FakeRelativeClock::default();
    let limiter = Limiter::with_clock(
        Limits {
            max_keys: 2 * N,
            // One client sends them all, on a clock that stands still: its rate would stop
            // the run after the first 1000.
            per_client: None,
            ..Limits::default()
        },
        clock.clone(),
        1_800_000_000,
    );
    let started = Instant::now();
    for a in &attempts {
        assert!(limiter.admit(a).is_allow());
    }
    let admit_secs = started.elapsed().as_secs_f64();
    let after_admit = rss_mib();
    let keys_admit = limiter.keys();
    let started = Instant::now();
    for a in &attempts {
        let _ = limiter.note_directory_reject(a);
    }
    let note_secs = started.elapsed().as_secs_f64();
    let after_rejects = rss_mib();
    let keys_full = limiter.keys();

    clock.advance(Duration::from_secs(11 * 60));
    let started = Instant::now();
    let keys_quiet = limiter.maintain();
    let maintain_secs = started.elapsed().as_secs_f64();
    let after_quiet = rss_mib();

    println!("memory: {N} distinct users from {N} distinct origins (RSS, MiB above the start)");
    println!(
        "  admitted (rates: per-origin + per-user tables): {:7.1} MiB  {keys_admit:?}  ({admit_secs:.2} s)",
        after_admit - base
    );
    println!(
        "  + every one rejected (lockout + spray tables):  {:7.1} MiB  {keys_full:?}  ({note_secs:.2} s)",
        after_rejects - base
    );
    println!(
        "  quiet 11 min, then maintain():                   {:7.1} MiB  {keys_quiet:?}  ({maintain_secs:.2} s)",
        after_quiet - base
    );
    drop(limiter);
    println!(
        "  limiter dropped:                                {:7.1} MiB",
        rss_mib() - base
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    if !quick {
        memory();
    }
    let mut c = Criterion::default().configure_from_args();
    checks(&mut c);
    c.final_summary();
}
