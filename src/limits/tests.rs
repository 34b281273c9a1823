//! The limiter's rules, end to end through its public API, on governor's fake clock.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::FakeRelativeClock;

use super::*;

const T0: u64 = 1_800_000_000;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A limiter on a fake clock starting at `T0`.
fn limiter(limits: Limits) -> (Limiter<FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    (Limiter::with_clock(limits, clock.clone(), T0), clock)
}

/// The defaults with every rate off, to look at one rule alone.
fn no_rates() -> Limits {
    Limits {
        per_client: None,
        per_origin: None,
        per_user: None,
        directory: None,
        ..Limits::default()
    }
}

fn rate(text: &str) -> Option<Rate> {
    Rate::parse(text).unwrap()
}

/// A first request from an off-site origin.
fn attempt<'a>(user: &'a str, origin: &str) -> Attempt<'a> {
    Attempt {
        client: "vpn1",
        user: user.as_bytes(),
        origin: Some(ip(origin)),
        trusted: false,
        continuation: false,
    }
}

fn locked(v: Verdict) -> bool {
    matches!(v, Verdict::Locked { .. })
}

/// What a daemon does with a login that the directory rejects: admit, and if allowed,
/// ask the directory (here: count) and note the reject. Returns whether it asked.
fn wrong_password(l: &Limiter<FakeRelativeClock>, a: &Attempt<'_>, asked: &mut u32) -> Verdict {
    let verdict = l.admit(a);
    if verdict.is_allow() && l.check_directory().is_allow() {
        *asked += 1;
        l.note_directory_reject(a);
    }
    verdict
}

#[test]
fn the_limiter_is_send_sync_and_debug() {
    fn check<T: Send + Sync + fmt::Debug>() {}
    check::<Limiter>();
    check::<Limiter<FakeRelativeClock>>();
    let shown = format!("{:?}", limiter(no_rates()).0);
    assert!(
        shown.contains("Limiter") && shown.contains("keys"),
        "{shown}"
    );
}

#[test]
fn the_clock_gives_unix_time() {
    let (l, clock) = limiter(no_rates());
    assert_eq!(l.unix_now(), T0);
    clock.advance(Duration::from_millis(2500));
    assert_eq!(l.unix_now(), T0 + 2);
}

// ------------------------------------------------------------------ rates

#[test]
fn per_client_rate_bursts_then_refills() {
    let (l, clock) = limiter(Limits {
        per_client: rate("5/s"),
        ..no_rates()
    });
    let a = attempt("alice", "203.0.113.7");
    for _ in 0..5 {
        assert_eq!(l.admit(&a), Verdict::Allow);
    }
    let over = Verdict::RateLimited {
        which: Limit::Client,
    };
    assert_eq!(l.admit(&a), over);
    assert_eq!(l.check_client("vpn1"), over);
    assert_eq!(
        l.check_client("vpn2"),
        Verdict::Allow,
        "each client its own"
    );
    clock.advance(Duration::from_millis(200));
    assert_eq!(l.admit(&a), Verdict::Allow);
    assert_eq!(l.stats().client_limited, 2);
}

#[test]
fn per_user_rate_shares_one_budget_across_spellings() {
    let (l, _clock) = limiter(Limits {
        per_user: rate("3/min"),
        ..no_rates()
    });
    for name in ["alice", "ALICE", r"KOMMUNE\Alice"] {
        assert_eq!(l.admit(&attempt(name, "203.0.113.7")), Verdict::Allow);
    }
    let over = Verdict::RateLimited { which: Limit::User };
    assert_eq!(l.admit(&attempt("alice@kommune.no", "198.51.100.1")), over);
    assert_eq!(l.check_user("Alice", false), over);
    assert_eq!(l.admit(&attempt("bob", "203.0.113.7")), Verdict::Allow);
}

#[test]
fn per_origin_rate_counts_off_site_logins_per_address_and_ipv6_prefix() {
    let (l, _clock) = limiter(Limits {
        per_origin: rate("2/min"),
        ..no_rates()
    });
    assert!(l.admit(&attempt("a", "203.0.113.7")).is_allow());
    assert!(
        l.admit(&attempt("b", "::ffff:203.0.113.7")).is_allow(),
        "mapped IPv4 is IPv4"
    );
    let over = Verdict::RateLimited {
        which: Limit::Origin,
    };
    assert_eq!(l.admit(&attempt("c", "203.0.113.7")), over);
    assert_eq!(l.check_origin(ip("203.0.113.7"), false), over);
    assert!(l.admit(&attempt("c", "203.0.113.8")).is_allow());
    // One /64 is one origin: a subscriber can pick any address in it.
    assert!(l.admit(&attempt("a", "2001:db8:1:2::1")).is_allow());
    assert!(l.admit(&attempt("b", "2001:db8:1:2:ffff::9")).is_allow());
    assert_eq!(l.admit(&attempt("c", "2001:db8:1:2::abcd")), over);
    assert!(l.admit(&attempt("c", "2001:db8:1:3::1")).is_allow());
    // Trusted sites are not counted by default.
    let inside = Attempt {
        trusted: true,
        ..attempt("d", "203.0.113.7")
    };
    assert!(l.admit(&inside).is_allow());
    assert!(l.check_origin(ip("203.0.113.7"), true).is_allow());
}

#[test]
fn later_rounds_of_a_login_are_not_rated_but_still_locked() {
    let (l, _clock) = limiter(Limits {
        per_user: rate("1/min"),
        per_origin: rate("1/min"),
        ..no_rates()
    });
    let first = attempt("eve", "203.0.113.7");
    assert!(l.admit(&first).is_allow());
    // Eight EAP rounds of the same login.
    let round = Attempt {
        continuation: true,
        ..first
    };
    for _ in 0..8 {
        assert!(l.admit(&round).is_allow());
    }
    assert!(
        !l.admit(&first).is_allow(),
        "a second login is over the rate"
    );
    for _ in 0..5 {
        l.note_second_factor_failure("eve", false);
    }
    assert!(locked(l.admit(&round)), "a lockout stops later rounds too");
}

#[test]
fn the_directory_ceiling_is_global() {
    let (l, clock) = limiter(Limits {
        directory: rate("3/s"),
        ..no_rates()
    });
    for _ in 0..3 {
        assert!(l.check_directory().is_allow());
    }
    assert_eq!(
        l.check_directory(),
        Verdict::RateLimited {
            which: Limit::Directory
        }
    );
    clock.advance(Duration::from_secs(1));
    assert!(l.check_directory().is_allow());
    assert_eq!(l.stats().directory_limited, 1);
}

#[test]
fn rates_can_be_switched_off() {
    let (l, _clock) = limiter(no_rates());
    for _ in 0..10_000 {
        assert!(l.admit(&attempt("alice", "203.0.113.7")).is_allow());
        assert!(l.check_directory().is_allow());
    }
    assert_eq!(l.keys().total(), 0, "no rate, no keys");
}

// ------------------------------------------------------------------ lockouts

#[test]
fn twenty_wrong_passwords_reach_the_directory_three_times_then_lock() {
    let (l, _clock) = limiter(Limits::default());
    let a = attempt("alice", "203.0.113.7");
    let mut asked = 0;
    let verdicts: Vec<Verdict> = (0..20)
        .map(|_| wrong_password(&l, &a, &mut asked))
        .collect();
    assert_eq!(asked, 3, "the directory saw exactly the threshold");
    assert!(verdicts[..3].iter().all(Verdict::is_allow));
    let until = T0 + 15 * 60;
    for v in &verdicts[3..] {
        assert!(
            matches!(v, Verdict::Locked { until: u, reason: LockReason::DirectoryRejects, .. } if *u == until),
            "{v:?}"
        );
    }
    let row = l.is_locked("Alice").unwrap();
    assert_eq!((row.locked_until, row.level), (until, 1));
    assert_eq!(l.stats().lockouts, 1);
    assert_eq!(l.stats().locked_rejects, 17);
}

#[test]
fn the_reject_that_locks_returns_the_row_to_persist() {
    let (l, _clock) = limiter(Limits::default());
    let a = attempt(r"KOMMUNE\Alice", "203.0.113.7");
    assert_eq!(l.note_directory_reject(&a), None);
    assert_eq!(l.note_directory_reject(&a), None);
    let Some(Persist::Lock(row)) = l.note_directory_reject(&a) else {
        panic!("third reject locks");
    };
    assert_eq!(row.name, "alice", "the account name, realm stripped");
    assert_eq!(row.reason, LockReason::DirectoryRejects);
    assert_eq!((row.locked_at, row.locked_until), (T0, T0 + 900));
}

#[test]
fn lockouts_end_and_grow_on_repeat() {
    let (l, clock) = limiter(no_rates());
    let a = attempt("alice", "203.0.113.7");
    let mut periods = Vec::new();
    for _ in 0..4 {
        let row = (0..3)
            .find_map(|_| match l.note_directory_reject(&a) {
                Some(Persist::Lock(row)) => Some(row),
                _ => None,
            })
            .unwrap();
        periods.push((row.locked_until - row.locked_at) / 60);
        clock.advance(Duration::from_secs(row.locked_until - row.locked_at - 1));
        assert!(
            locked(l.admit(&a)),
            "still locked one second before the end"
        );
        clock.advance(Duration::from_secs(1));
        assert!(l.admit(&a).is_allow(), "open at the end");
    }
    assert_eq!(periods, [15, 30, 60, 120]);
}

#[test]
fn five_second_factor_failures_lock() {
    let (l, _clock) = limiter(no_rates());
    for i in 0..4 {
        assert_eq!(
            l.note_second_factor_failure("bob", false),
            None,
            "failure {i}"
        );
    }
    assert!(matches!(
        l.note_second_factor_failure("bob", false),
        Some(Persist::Lock(LockoutRow {
            reason: LockReason::SecondFactor,
            ..
        }))
    ));
    assert!(matches!(
        l.admit(&attempt("bob", "203.0.113.7")),
        Verdict::Locked {
            reason: LockReason::SecondFactor,
            ..
        }
    ));
}

#[test]
fn failures_count_in_a_row_as_ad_counts_them() {
    let (l, clock) = limiter(no_rates());
    // A pause of the whole window between failures starts the count again.
    for _ in 0..20 {
        assert_eq!(l.note_second_factor_failure("bob", false), None);
        clock.advance(Duration::from_secs(15 * 60));
    }
    let a = attempt("carol", "203.0.113.7");
    for _ in 0..10 {
        assert_eq!(l.note_directory_reject(&a), None);
        clock.advance(Duration::from_secs(10 * 60));
    }
    // A guess every 9 minutes is never three in ten minutes, but AD would count every one
    // of them: so does portvakt.
    let dave = attempt("dave", "203.0.113.7");
    assert_eq!(l.note_directory_reject(&dave), None);
    clock.advance(Duration::from_secs(9 * 60));
    assert_eq!(l.note_directory_reject(&dave), None);
    clock.advance(Duration::from_secs(9 * 60));
    assert!(matches!(
        l.note_directory_reject(&dave),
        Some(Persist::Lock(_))
    ));
}

#[test]
fn a_right_password_clears_rejects_and_success_clears_everything() {
    let (l, clock) = limiter(no_rates());
    let a = attempt("alice", "203.0.113.7");
    l.note_directory_reject(&a);
    l.note_directory_reject(&a);
    l.note_directory_accept("alice");
    assert_eq!(l.note_directory_reject(&a), None, "counting starts again");
    for _ in 0..4 {
        l.note_second_factor_failure("alice", false);
    }
    assert_eq!(l.note_success("alice"), None, "no history to forget");
    assert_eq!(l.note_second_factor_failure("alice", false), None);
    assert_eq!(l.keys().user_states, 1);

    // Four more make five: locked. After the lockout has ended, success forgets the
    // history, here and in the store.
    for _ in 0..4 {
        l.note_second_factor_failure("alice", false);
    }
    clock.advance(Duration::from_secs(15 * 60));
    assert_eq!(
        l.note_success("Alice"),
        Some(Persist::Forget("alice".into()))
    );
    assert_eq!((l.keys().user_states, l.keys().locks), (0, 0));
}

#[test]
fn a_success_from_where_the_lockout_does_not_apply_keeps_it() {
    let (l, _clock) = limiter(Limits {
        lockout_on_trusted: false,
        ..no_rates()
    });
    let outside = attempt("alice", "203.0.113.7");
    for _ in 0..3 {
        l.note_directory_reject(&outside);
    }
    let inside = Attempt {
        trusted: true,
        ..attempt("alice", "10.0.0.5")
    };
    assert!(l.admit(&inside).is_allow(), "not applied inside");
    assert_eq!(l.note_success("alice"), None);
    assert!(locked(l.admit(&outside)), "still locked outside");
    // Inside failures do not count either.
    let bob_inside = Attempt {
        trusted: true,
        ..attempt("bob", "10.0.0.5")
    };
    for _ in 0..10 {
        assert_eq!(l.note_directory_reject(&bob_inside), None);
        assert_eq!(l.note_second_factor_failure("bob", true), None);
    }
}

#[test]
fn by_default_lockouts_apply_on_trusted_sites_too() {
    let (l, _clock) = limiter(no_rates());
    let inside = Attempt {
        trusted: true,
        ..attempt("alice", "10.0.0.5")
    };
    for _ in 0..3 {
        l.note_directory_reject(&inside);
    }
    assert!(locked(l.admit(&inside)));
    assert!(locked(l.check_user("alice", true)));
    assert!(locked(l.admit(&attempt("alice", "203.0.113.7"))));
}

#[test]
fn names_that_are_no_user_names_are_limited_but_never_persisted() {
    let (l, _clock) = limiter(no_rates());
    let a = Attempt {
        user: b"al\nice\xff",
        ..attempt("x", "203.0.113.7")
    };
    for _ in 0..3 {
        assert_eq!(
            l.note_directory_reject(&a),
            None,
            "nothing the store could hold"
        );
    }
    assert!(matches!(
        l.admit(&a),
        Verdict::Locked {
            ask_store: false,
            ..
        }
    ));
    assert!(l.admit(&attempt("alice", "203.0.113.7")).is_allow());
    assert_eq!(l.stats().lockouts, 1);
}

// ------------------------------------------------------------------ spray shield

#[test]
fn a_spray_blocks_its_origin_and_no_other() {
    let (l, clock) = limiter(Limits::default());
    let names: Vec<String> = (0..50).map(|i| format!("user{i}")).collect();
    let mut asked = 0;
    let verdicts: Vec<Verdict> = names
        .iter()
        .map(|n| wrong_password(&l, &attempt(n, "198.51.100.66"), &mut asked))
        .collect();
    assert_eq!(asked, 10, "blocked at the tenth distinct user");
    let until = T0 + 30 * 60;
    assert!(
        verdicts[10..]
            .iter()
            .all(|v| *v == Verdict::OriginBlocked { until }),
        "{verdicts:?}"
    );
    assert_eq!(l.stats().spray_blocks, 1);
    // Another origin is unaffected, and so are the sprayed users elsewhere.
    assert!(l.admit(&attempt("alice", "198.51.100.67")).is_allow());
    assert!(l.admit(&attempt("user3", "198.51.100.67")).is_allow());
    assert_eq!(
        l.check_origin(ip("198.51.100.66"), false),
        Verdict::OriginBlocked { until }
    );
    clock.advance(Duration::from_secs(30 * 60));
    assert!(
        l.admit(&attempt("alice", "198.51.100.66")).is_allow(),
        "the block ends"
    );
}

#[test]
fn only_distinct_users_make_a_spray() {
    let (l, clock) = limiter(no_rates());
    let blocked = |l: &Limiter<FakeRelativeClock>| {
        matches!(
            l.check_origin(ip("198.51.100.9"), false),
            Verdict::OriginBlocked { .. }
        )
    };
    // Nine users behind one address, each mistyping three times, interleaved.
    for _ in 0..3 {
        for i in 0..9 {
            l.note_directory_reject(&attempt(&format!("user{i}"), "198.51.100.9"));
        }
    }
    assert!(!blocked(&l));
    // Spellings of one account are one user.
    l.note_directory_reject(&attempt(r"KOMMUNE\User0", "198.51.100.9"));
    assert!(!blocked(&l));
    // A tenth user makes ten.
    l.note_directory_reject(&attempt("user9", "198.51.100.9"));
    assert!(blocked(&l));
    // The block ends; a user seen more than a window ago counts as new again.
    clock.advance(Duration::from_secs(30 * 60));
    assert!(!blocked(&l));
    assert_eq!(l.maintain().spray_pairs, 0);
}

#[test]
fn the_spray_shield_ignores_trusted_sites_unless_told() {
    for (on_trusted, blocked) in [(false, false), (true, true)] {
        let (l, _clock) = limiter(Limits {
            spray_on_trusted: on_trusted,
            ..no_rates()
        });
        for i in 0..20 {
            let name = format!("user{i}");
            let a = Attempt {
                trusted: true,
                ..attempt(&name, "10.1.2.3")
            };
            l.note_directory_reject(&a);
        }
        let next = Attempt {
            trusted: true,
            ..attempt("alice", "10.1.2.3")
        };
        assert_eq!(
            matches!(l.admit(&next), Verdict::OriginBlocked { .. }),
            blocked,
            "spray_on_trusted = {on_trusted}"
        );
        // An off-site login from that address would be blocked either way once blocked.
        assert_eq!(
            matches!(
                l.admit(&attempt("alice", "10.1.2.3")),
                Verdict::OriginBlocked { .. }
            ),
            blocked
        );
    }
}

#[test]
fn logins_with_an_unknown_origin_skip_origin_limits_only() {
    let (l, _clock) = limiter(Limits {
        per_origin: rate("1/min"),
        ..no_rates()
    });
    let a = Attempt {
        origin: None,
        ..attempt("alice", "203.0.113.7")
    };
    for _ in 0..3 {
        assert!(l.admit(&a).is_allow());
        l.note_directory_reject(&a);
    }
    assert!(locked(l.admit(&a)), "the lockout still applies");
    assert_eq!(l.keys().spray_origins, 0);
}

// ------------------------------------------------------------------ persistence

#[test]
fn a_lockout_survives_a_restart_through_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let key = crate::store::StoreKey::from_bytes([7; 32]);
    let store = Store::open(&dir.path().join("users.db"), &key).unwrap();
    let (l, _clock) = limiter(no_rates());
    let a = attempt("alice", "203.0.113.7");
    let persist = (0..3).find_map(|_| l.note_directory_reject(&a)).unwrap();
    persist.apply(&store).unwrap();
    drop(l);

    // A new process, a minute later.
    let clock = FakeRelativeClock::default();
    let l = Limiter::with_clock(Limits::default(), clock.clone(), T0 + 60);
    assert_eq!(l.load_lockouts(store.lockouts().unwrap()), 1);
    assert!(matches!(
        l.admit(&a),
        Verdict::Locked { until, .. } if until == T0 + 900
    ));
    clock.advance(Duration::from_secs(840));
    assert!(l.admit(&a).is_allow(), "and it ends when it should");
    // The history came along: the next lockout is a repeat (30 min).
    let Some(Persist::Lock(row)) = (0..3).find_map(|_| l.note_directory_reject(&a)) else {
        panic!("locks again");
    };
    assert_eq!((row.level, row.locked_until - row.locked_at), (2, 1800));
}

#[test]
fn loading_skips_unlocked_and_long_ended_rows() {
    let row = |name: &str, until: u64, unlocked_at: Option<u64>| LockoutRow {
        name: name.into(),
        reason: LockReason::SecondFactor,
        locked_at: until.saturating_sub(900),
        locked_until: until,
        level: 1,
        unlocked_at,
    };
    let (l, _clock) = limiter(no_rates());
    let loaded = l.load_lockouts([
        row("active", T0 + 100, None),
        row("unlocked", T0 + 100, Some(T0 - 10)),
        row("ended", T0 - 100, None),
        row("ancient", T0 - 2 * 86_400, None),
    ]);
    assert_eq!(loaded, 1);
    assert!(l.is_locked("active").is_some());
    assert!(l.is_locked("unlocked").is_none());
    assert_eq!(l.keys().locks, 2, "active, and ended (its history)");
}

#[test]
fn an_administrators_unlock_in_the_store_reaches_the_running_limiter() {
    let (l, clock) = limiter(no_rates());
    let a = attempt("alice", "203.0.113.7");
    let Some(Persist::Lock(row)) = (0..3).find_map(|_| l.note_directory_reject(&a)) else {
        panic!("locks");
    };
    // Within the first second the store is not asked again.
    assert!(matches!(
        l.admit(&a),
        Verdict::Locked {
            ask_store: false,
            ..
        }
    ));
    clock.advance(Duration::from_secs(1));
    assert!(matches!(
        l.admit(&a),
        Verdict::Locked {
            ask_store: true,
            ..
        }
    ));
    assert!(
        matches!(
            l.admit(&a),
            Verdict::Locked {
                ask_store: false,
                ..
            }
        ),
        "once a second"
    );
    // No row (the write is still on its way, or failed): stays locked.
    assert!(l.confirm_lockout("alice", None));
    // The row as written: stays locked.
    assert!(l.confirm_lockout("alice", Some(&row)));
    // Marked unlocked by `portvakt user unlock`: lifted, with the history.
    let unlocked = LockoutRow {
        unlocked_at: Some(T0 + 1),
        level: 0,
        ..row.clone()
    };
    assert!(!l.confirm_lockout("alice", Some(&unlocked)));
    assert!(l.admit(&a).is_allow());
    assert_eq!((l.keys().user_states, l.keys().locks), (0, 0));
}

#[test]
fn an_old_unlock_mark_does_not_lift_a_newer_lockout() {
    let (l, clock) = limiter(no_rates());
    let a = attempt("alice", "203.0.113.7");
    let old = LockoutRow {
        name: "alice".into(),
        reason: LockReason::DirectoryRejects,
        locked_at: T0 - 3600,
        locked_until: T0 - 2700,
        level: 0,
        unlocked_at: Some(T0 - 3000),
    };
    clock.advance(Duration::from_secs(5));
    for _ in 0..3 {
        let _ = l.note_directory_reject(&a);
    }
    assert!(l.confirm_lockout("alice", Some(&old)));
    // A longer lockout in the store (another node) is adopted.
    let longer = LockoutRow {
        locked_at: T0,
        locked_until: T0 + 7200,
        level: 3,
        unlocked_at: None,
        ..old
    };
    assert!(l.confirm_lockout("alice", Some(&longer)));
    assert_eq!(l.is_locked("alice").unwrap().locked_until, T0 + 7200);
}

#[test]
fn unlock_lifts_here() {
    let (l, _clock) = limiter(no_rates());
    for _ in 0..5 {
        l.note_second_factor_failure("alice", false);
    }
    assert!(l.unlock("ALICE"));
    assert!(!l.unlock("alice"));
    assert!(l.admit(&attempt("alice", "203.0.113.7")).is_allow());
}

// ------------------------------------------------------------------ memory

#[test]
fn maintenance_shrinks_every_table_back_after_an_attack() {
    let (l, clock) = limiter(Limits {
        per_origin: rate("30/min"),
        per_user: rate("10/min"),
        ..no_rates()
    });
    for i in 0..20_000u32 {
        let name = format!("user{i}");
        let origin = IpAddr::V4(Ipv4Addr::from(0x7F00_0000 + i));
        let a = Attempt {
            origin: Some(origin),
            ..attempt(&name, "0.0.0.0")
        };
        if l.admit(&a).is_allow() {
            l.note_directory_reject(&a);
        }
    }
    let busy = l.maintain();
    assert_eq!((busy.users, busy.origins), (20_000, 20_000));
    assert_eq!((busy.user_states, busy.spray_origins), (20_000, 20_000));
    assert_eq!(busy.spray_pairs, 20_000);
    // Quiet for the longest window (10 min) plus governor's slack.
    clock.advance(Duration::from_secs(11 * 60));
    let quiet = l.maintain();
    assert_eq!(quiet, Keys::default(), "{quiet:?}");
}

#[test]
fn tables_stop_at_the_cap_and_the_rest_still_holds() {
    let (l, _clock) = limiter(Limits {
        max_keys: 100,
        per_user: rate("1/min"),
        ..no_rates()
    });
    for i in 0..300 {
        let name = format!("user{i}");
        let a = attempt(&name, "203.0.113.7");
        l.admit(&a);
        l.note_second_factor_failure(&name, false);
    }
    let keys = l.keys();
    assert!(keys.users <= 100 && keys.user_states <= 100, "{keys:?}");
    assert!(l.stats().over_cap >= 400, "{:?}", l.stats());
    // A user already in the table is still locked out when due.
    for _ in 0..4 {
        l.note_second_factor_failure("user0", false);
    }
    assert!(locked(l.admit(&attempt("user0", "203.0.113.7"))));
}

// ------------------------------------------------------------------ logging and wording

/// Collects formatted log lines.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let value = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    (value, text)
}

#[test]
fn a_flood_is_logged_once_per_key_per_minute_and_counted_exactly() {
    let (l, clock) = limiter(Limits {
        per_user: rate("1/min"),
        ..no_rates()
    });
    let ((), text) = logged(|| {
        for round in 0..3 {
            for _ in 0..1000 {
                l.admit(&attempt("alice", "203.0.113.7"));
                l.admit(&attempt("bob", "203.0.113.7"));
            }
            if round == 0 {
                clock.advance(Duration::from_secs(59));
            } else {
                clock.advance(Duration::from_secs(1));
            }
        }
    });
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("rate_limited"))
        .collect();
    // Round 0 logs alice and bob; round 1 (59 s later) is quiet; round 2 (60 s) logs again.
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines.iter().filter(|l| l.contains("alice")).count(), 2);
    // Round 0 and round 2 let one through per user (the rate refilled); the rest counted.
    assert_eq!(l.stats().user_limited, 6000 - 4);
}

#[test]
fn lockouts_and_blocks_are_logged_with_escaped_names() {
    let (l, _clock) = limiter(no_rates());
    let ((), text) = logged(|| {
        let a = Attempt {
            user: b"mallory\n2026-01-01 fake line",
            ..attempt("x", "203.0.113.9")
        };
        for _ in 0..3 {
            l.note_directory_reject(&a);
        }
        for i in 0..10 {
            l.note_directory_reject(&attempt(&format!("u{i}"), "198.51.100.1"));
        }
    });
    assert!(text.contains("user locked"), "{text}");
    assert!(text.contains("mallory\\x0a2026"), "{text}");
    assert!(!text.contains("\n2026-01-01 fake"), "{text}");
    assert!(
        text.contains("origin blocked") && text.contains("198.51.100.1"),
        "{text}"
    );
}

#[test]
fn the_reply_message_names_no_reason() {
    let lower = REJECT_MESSAGE.to_lowercase();
    for word in [
        "lock", "rate", "limit", "block", "spray", "many", "password", "user",
    ] {
        assert!(!lower.contains(word), "{REJECT_MESSAGE:?} hints at {word}");
    }
}
