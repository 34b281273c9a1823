//! `portvakt lockouts` and `portvakt user unlock` end to end: the limiter locks an account the
//! way the daemon does (its `Persist` written to a real store file), the CLI lists and lifts
//! it through its own entry points, and a running limiter lets the user in again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use governor::clock::FakeRelativeClock;
use portvakt::cli::lockouts::{self, LockoutsCommand};
use portvakt::cli::user::{self, UserCommand};
use portvakt::cli::{CliError, CliIo};
use portvakt::limits::{Attempt, Limiter, Limits, LockReason, Persist, Verdict};
use portvakt::store::{Store, StoreKey};

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn open(&self) -> Store {
        Store::open(
            &self.dir.path().join("users.db"),
            &StoreKey::from_bytes([3; 32]),
        )
        .unwrap()
    }
}

#[derive(Parser)]
struct LockoutsCli {
    #[command(flatten)]
    cmd: LockoutsCommand,
}

#[derive(Parser)]
struct UserCli {
    #[command(subcommand)]
    cmd: UserCommand,
}

fn lockouts(store: &Store, args: &[&str]) -> String {
    let cmd = LockoutsCli::try_parse_from(std::iter::once("lockouts").chain(args.iter().copied()))
        .unwrap()
        .cmd;
    let mut out = Vec::new();
    lockouts::run(store, cmd, &mut CliIo::new(&b""[..], &mut out)).unwrap();
    String::from_utf8(out).unwrap()
}

fn user(store: &Store, args: &[&str]) -> (Result<(), CliError>, String) {
    let cmd = UserCli::try_parse_from(std::iter::once("user").chain(args.iter().copied()))
        .unwrap()
        .cmd;
    let mut out = Vec::new();
    let result = user::run(store, cmd, &mut CliIo::new(&b""[..], &mut out));
    (result, String::from_utf8(out).unwrap())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A limiter as the daemon runs it, on a fake clock that starts at the real time.
fn limiter() -> (Limiter<FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    let l = Limiter::with_clock(Limits::default(), clock.clone(), unix_now());
    (l, clock)
}

fn attempt(name: &str) -> Attempt<'_> {
    Attempt {
        client: "vpn1",
        user: name.as_bytes(),
        origin: Some("203.0.113.7".parse().unwrap()),
        trusted: false,
        continuation: false,
    }
}

/// Three wrong passwords, and the lockout written to the store as the daemon writes it.
fn lock_by_rejects(l: &Limiter<FakeRelativeClock>, store: &Store, name: &str) {
    let persist = (0..3)
        .find_map(|_| l.note_directory_reject(&attempt(name)))
        .expect("the third reject locks");
    assert!(matches!(persist, Persist::Lock(_)));
    persist.apply(store).unwrap();
}

#[test]
fn an_empty_store_has_no_lockouts() {
    let fx = Fixture::new();
    let store = fx.open();
    assert_eq!(lockouts(&store, &[]), "No account is locked.\n");
    assert_eq!(lockouts(&store, &["--all"]), "No lockouts recorded.\n");
    assert_eq!(lockouts(&store, &["--json"]).trim(), "[]");
}

#[test]
fn a_lockout_is_listed_with_reason_and_expiry() {
    let fx = Fixture::new();
    let store = fx.open();
    let (l, _clock) = limiter();
    lock_by_rejects(&l, &store, r"KOMMUNE\Alice");
    for _ in 0..5 {
        if let Some(p) = l.note_second_factor_failure("bob", false) {
            p.apply(&store).unwrap();
        }
    }

    let text = lockouts(&store, &[]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("USER") && lines[0].contains("REASON") && lines[0].contains("UNTIL")
    );
    assert!(
        lines[1].starts_with("alice ") && lines[1].contains("password rejects"),
        "{text}"
    );
    assert!(lines[1].contains("locked, 15m left"), "{text}");
    assert!(
        lines[2].starts_with("bob ") && lines[2].contains("second-factor failures"),
        "{text}"
    );
    assert_eq!(lines[3], "2 account(s) locked.");

    let json: serde_json::Value = serde_json::from_str(&lockouts(&store, &["--json"])).unwrap();
    let alice = &json[0];
    assert_eq!(alice["user"], "alice");
    assert_eq!(alice["reason"], "directory_rejects");
    assert_eq!(alice["level"], 1);
    assert_eq!(alice["active"], true);
    let left = alice["remaining_secs"].as_u64().unwrap();
    assert!((890..=900).contains(&left), "{left}");
    assert!(alice["locked_until"].as_str().unwrap().ends_with('Z'));
    assert!(alice["unlocked_at"].is_null());
}

#[test]
fn unlock_restores_access_in_a_running_limiter() {
    let fx = Fixture::new();
    let store = fx.open();
    let (l, clock) = limiter();
    lock_by_rejects(&l, &store, "alice");
    assert!(matches!(
        l.admit(&attempt("alice")),
        Verdict::Locked {
            reason: LockReason::DirectoryRejects,
            ..
        }
    ));

    // alice is only a directory account: no user row in the store.
    let (result, out) = user(&store, &["unlock", "Alice"]);
    result.unwrap();
    assert!(
        out.starts_with("Lockout of alice lifted (password rejects, was until "),
        "{out}"
    );
    assert_eq!(lockouts(&store, &[]), "No account is locked.\n");
    let all = lockouts(&store, &["--all"]);
    assert!(all.contains("unlocked 20"), "{all}");

    // The daemon's path: a Locked verdict that asks the store, then confirm_lockout.
    clock.advance(Duration::from_secs(1));
    let Verdict::Locked {
        ask_store: true, ..
    } = l.admit(&attempt("alice"))
    else {
        panic!("a locked verdict that asks the store");
    };
    let stored = store.lockout("alice").unwrap();
    assert!(!l.confirm_lockout("alice", stored.as_ref()), "lifted");
    assert_eq!(l.admit(&attempt("alice")), Verdict::Allow);

    // A second unlock finds nothing to lift; an unknown name is an error.
    let (result, _) = user(&store, &["unlock", "alice"]);
    assert_eq!(result.unwrap_err().exit_code(), 67);
}

#[test]
fn unlock_of_a_store_user_clears_lockout_and_failure_counter() {
    let fx = Fixture::new();
    let store = fx.open();
    store.add_user("bob").unwrap();
    store.record_failure("bob").unwrap();
    let (l, _clock) = limiter();
    for _ in 0..5 {
        if let Some(p) = l.note_second_factor_failure("bob", false) {
            p.apply(&store).unwrap();
        }
    }
    let (result, out) = user(&store, &["unlock", "bob"]);
    result.unwrap();
    assert!(
        out.contains("Lockout of bob lifted (second-factor failures"),
        "{out}"
    );
    assert!(
        out.contains("User bob unlocked: failure counter cleared."),
        "{out}"
    );
    assert_eq!(store.user("bob").unwrap().unwrap().failures, 0);

    // A user with nothing to lift is still fine to unlock.
    store.add_user("carol").unwrap();
    let (result, out) = user(&store, &["unlock", "carol"]);
    result.unwrap();
    assert!(out.starts_with("carol had no lockout."), "{out}");
}

#[test]
fn a_locked_user_stays_locked_after_a_restart() {
    let fx = Fixture::new();
    let store = fx.open();
    let (l, _clock) = limiter();
    lock_by_rejects(&l, &store, "alice");
    drop(l);
    drop(store);

    let store = fx.open();
    let (l, clock) = limiter();
    assert_eq!(l.load_lockouts(store.lockouts().unwrap()), 1);
    assert!(matches!(l.admit(&attempt("alice")), Verdict::Locked { .. }));
    assert!(l.admit(&attempt("bob")).is_allow());
    assert!(lockouts(&store, &[]).contains("1 account(s) locked."));
    clock.advance(Duration::from_secs(15 * 60));
    assert!(l.admit(&attempt("alice")).is_allow(), "until it ends");
}
