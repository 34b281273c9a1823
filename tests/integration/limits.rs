//! Rate limits, lockouts and the spray shield in the running daemon, against a directory that counts what it
//! receives (FreeRADIUS with its request log) and radclient as the NAS.
//!
//! Configuration these tests rely on (besides `[limits]`, see `portvakt::limits::RawLimits`):
//! - `[store] path` and `[store] key_file`: the store holding lockouts (and alice's TOTP secret);
//! - client `policy = "trusted"`: a trusted login that passes through without a second factor;
//! - the origin read from Calling-Station-Id (the default origin source) and no `[[sites]]`: off-site.
//!
//! Origins are loopback addresses in Calling-Station-Id; nothing is ever sent to them.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail, ensure};
use portvakt::cli::CliIo;
use portvakt::cli::user::{self, UserCommand};
use portvakt::factor::totp::{self, Algorithm, TotpSecret};
use portvakt::limits::REJECT_MESSAGE;
use portvakt::store::{Store, StoreKey};

use crate::pass_through::directory;
use crate::support::TestDir;
use crate::support::freeradius::{ALICE, BOB, FreeRadius};
use crate::support::proxy::{NAS_SECRET, Proxy, ProxyBuilder};
use crate::support::radclient::{Kind, RadclientOutcome, Reply, radclient};

/// The store the daemon keeps its lockouts in, outside the proxy's own directory so that a second proxy (a
/// restart) finds it.
struct StoreFiles {
    dir: TestDir,
}

impl StoreFiles {
    fn new() -> Result<Self> {
        let dir = TestDir::new("limits-store")?;
        StoreKey::generate()?.write_new_file(&dir.join("store.key"))?;
        Ok(Self { dir })
    }

    fn toml(&self) -> String {
        format!(
            "[store]\npath = \"{}\"\nkey_file = \"{}\"\n",
            self.dir.join("users.db").display(),
            self.dir.join("store.key").display()
        )
    }

    fn open(&self) -> Result<Store> {
        let key = StoreKey::from_file(&self.dir.join("store.key"))?;
        Ok(Store::open(&self.dir.join("users.db"), &key)?)
    }
}

/// portvakt in front of `upstream` with the store and extra `[limits]` lines; `trusted` makes the test NAS's
/// logins trusted (no second factor).
fn proxy(upstream: &FreeRadius, store: &StoreFiles, limits: &str, trusted: bool) -> Result<Proxy> {
    let mut builder: ProxyBuilder = Proxy::builder().upstream(upstream);
    if trusted {
        builder = builder.client("policy = \"trusted\"");
    }
    Ok(builder
        .toml(&store.toml())
        .toml(&format!("[limits]\n{limits}"))
        .start()?)
}

/// One PAP login from `origin` (a loopback address in Calling-Station-Id).
fn login(proxy: &Proxy, user: &str, password: &str, origin: &str) -> Result<RadclientOutcome> {
    Ok(radclient(
        proxy.auth(),
        NAS_SECRET,
        Kind::Auth,
        &[
            ("User-Name", user),
            ("User-Password", password),
            ("Calling-Station-Id", origin),
        ],
    )?)
}

/// A reject a limit caused: Access-Reject whose Reply-Message, if any, is the generic one.
fn assert_generic_reject(reply: &RadclientOutcome) -> Result<()> {
    ensure!(reply.code == Reply::Reject, "{}", reply.output);
    for message in reply.values("Reply-Message") {
        ensure!(
            message == REJECT_MESSAGE,
            "a hint in the reply: {message:?}"
        );
        let lower = message.to_lowercase();
        for word in ["lock", "rate", "limit", "block", "spray", "many"] {
            ensure!(!lower.contains(word), "{message:?} says why ({word})");
        }
    }
    Ok(())
}

/// Logs in until `ok` holds for the reply, for at most `limit` (the daemon reads an unlock back from the
/// store at most once a second per user). A bounded poll of a condition, not a sleep.
fn login_until(
    proxy: &Proxy,
    user: &str,
    password: &str,
    limit: Duration,
    ok: impl Fn(&RadclientOutcome) -> bool,
) -> Result<RadclientOutcome> {
    let deadline = Instant::now() + limit;
    loop {
        let reply = login(proxy, user, password, "127.0.0.10")?;
        if ok(&reply) || Instant::now() >= deadline {
            return Ok(reply);
        }
    }
}

#[test]
fn twenty_wrong_passwords_lock_the_user_and_the_directory_sees_only_three() -> Result<()> {
    let upstream = directory()?;
    let store = StoreFiles::new()?;
    let proxy = proxy(&upstream, &store, "", true)?;
    let mut replies = Vec::new();
    for _ in 0..20 {
        replies.push(login(&proxy, ALICE.name, "wrong", "127.0.0.10")?);
    }
    ensure!(replies.iter().all(|r| r.code == Reply::Reject));
    let seen = upstream.access_requests_for(ALICE.name)?;
    ensure!(seen <= 3, "the directory saw {seen} guesses");
    // Locked: the right password is refused too, without asking the directory.
    let right = login(&proxy, ALICE.name, ALICE.password, "127.0.0.10")?;
    assert_generic_reject(&right)?;
    ensure!(upstream.access_requests_for(ALICE.name)? == seen);
    // Another user is not affected.
    let bob = login(&proxy, BOB.name, BOB.password, "127.0.0.10")?;
    ensure!(bob.code == Reply::Accept, "{}", bob.output);
    let row = store
        .open()?
        .lockout(ALICE.name)?
        .context("the lockout is stored")?;
    ensure!(row.is_active(unix_now()), "{row:?}");
    Ok(())
}

#[test]
fn unlock_restores_access_while_the_daemon_runs() -> Result<()> {
    let upstream = directory()?;
    let store = StoreFiles::new()?;
    let proxy = proxy(&upstream, &store, "", true)?;
    for _ in 0..3 {
        login(&proxy, ALICE.name, "wrong", "127.0.0.10")?;
    }
    assert_generic_reject(&login(&proxy, ALICE.name, ALICE.password, "127.0.0.10")?)?;

    let mut out = Vec::new();
    user::run(
        &store.open()?,
        UserCommand::Unlock {
            user: ALICE.name.to_owned(),
        },
        &mut CliIo::new(&b""[..], &mut out),
    )?;
    let printed = String::from_utf8(out)?;
    ensure!(printed.contains("lifted"), "{printed}");

    let reply = login_until(
        &proxy,
        ALICE.name,
        ALICE.password,
        Duration::from_secs(5),
        |r| r.code == Reply::Accept,
    )?;
    ensure!(
        reply.code == Reply::Accept,
        "still locked: {}",
        reply.output
    );
    Ok(())
}

#[test]
fn a_locked_user_stays_locked_after_a_restart() -> Result<()> {
    let upstream = directory()?;
    let store = StoreFiles::new()?;
    let mut first = proxy(&upstream, &store, "", true)?;
    for _ in 0..3 {
        login(&first, ALICE.name, "wrong", "127.0.0.10")?;
    }
    first.stop();
    drop(first);
    let seen = upstream.access_requests_for(ALICE.name)?;

    let second = proxy(&upstream, &store, "", true)?;
    assert_generic_reject(&login(&second, ALICE.name, ALICE.password, "127.0.0.10")?)?;
    ensure!(
        upstream.access_requests_for(ALICE.name)? == seen,
        "the restarted daemon asked the directory"
    );
    Ok(())
}

#[test]
fn a_spray_blocks_its_origin_while_another_origin_logs_in() -> Result<()> {
    let upstream = directory()?;
    let store = StoreFiles::new()?;
    // The test NAS is trusted (no second factor in the way), so the shield is told to watch trusted logins.
    let proxy = proxy(&upstream, &store, "spray_on_trusted = true", true)?;
    let before = upstream.access_requests()?;
    for i in 0..50 {
        let reply = login(
            &proxy,
            &format!("sprayed{i:02}"),
            "Winter2026!",
            "127.0.0.66",
        )?;
        ensure!(reply.code == Reply::Reject, "{}", reply.output);
    }
    let reached = upstream.access_requests()? - before;
    ensure!(reached == 10, "the directory saw {reached} of the spray");
    assert_generic_reject(&login(&proxy, ALICE.name, ALICE.password, "127.0.0.66")?)?;
    let elsewhere = login(&proxy, ALICE.name, ALICE.password, "127.0.0.67")?;
    ensure!(elsewhere.code == Reply::Accept, "{}", elsewhere.output);
    Ok(())
}

#[test]
fn over_the_user_rate_the_reject_says_nothing_and_the_directory_is_spared() -> Result<()> {
    let upstream = directory()?;
    let store = StoreFiles::new()?;
    let proxy = proxy(&upstream, &store, "per_user = \"2/min\"", true)?;
    for _ in 0..2 {
        let ok = login(&proxy, BOB.name, BOB.password, "127.0.0.10")?;
        ensure!(ok.code == Reply::Accept, "{}", ok.output);
    }
    assert_generic_reject(&login(&proxy, BOB.name, BOB.password, "127.0.0.10")?)?;
    ensure!(upstream.access_requests_for(BOB.name)? == 2);
    Ok(())
}

#[test]
fn five_wrong_codes_lock_the_user() -> Result<()> {
    let upstream = directory()?;
    let store = StoreFiles::new()?;
    let secret =
        TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 6, 30, Algorithm::Sha1)?;
    {
        let s = store.open()?;
        s.add_user(ALICE.name)?;
        s.set_totp(ALICE.name, &secret, true)?;
    }
    // Off-site (no sites, the NAS not trusted): alice needs a second factor.
    let proxy = proxy(&upstream, &store, "", false)?;
    let wrong = wrong_code(&secret);
    let mut sent = 0;
    while sent < 5 {
        let first = login(&proxy, ALICE.name, ALICE.password, "127.0.0.10")?;
        ensure!(first.code == Reply::Challenge, "{}", first.output);
        let mut state = first.state().context("State in the challenge")?.to_owned();
        while sent < 5 {
            let reply = radclient(
                proxy.auth(),
                NAS_SECRET,
                Kind::Auth,
                &[
                    ("User-Name", ALICE.name),
                    ("User-Password", &wrong),
                    ("State", &state),
                    ("Calling-Station-Id", "127.0.0.10"),
                ],
            )?;
            sent += 1;
            match (&reply.code, reply.state()) {
                (Reply::Challenge, Some(next)) => state = next.to_owned(),
                (Reply::Reject, _) => break,
                _ => bail!("unexpected answer to a wrong code: {}", reply.output),
            }
        }
    }
    let seen = upstream.access_requests_for(ALICE.name)?;
    assert_generic_reject(&login(&proxy, ALICE.name, ALICE.password, "127.0.0.10")?)?;
    ensure!(
        upstream.access_requests_for(ALICE.name)? == seen,
        "locked, yet the directory was asked"
    );
    let row = store.open()?.lockout(ALICE.name)?.context("stored")?;
    ensure!(
        row.reason == portvakt::limits::LockReason::SecondFactor,
        "{row:?}"
    );
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A six-digit code that no time step near now produces.
fn wrong_code(secret: &TotpSecret) -> String {
    let now = unix_now();
    let near: Vec<String> = (0..=8)
        .map(|i| totp::current_code(secret, (now + 120).saturating_sub(i * 30)))
        .collect();
    (0..10u32)
        .map(|d| d.to_string().repeat(6))
        .find(|c| !near.contains(c))
        .unwrap_or_else(|| "123457".to_owned())
}
