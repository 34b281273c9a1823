//! Off-site logins challenged for a TOTP code: sites and exceptions, the challenge flow, append mode, replay,
//! the store across restarts. The directory is a real FreeRADIUS; codes come from oathtool, an independent TOTP
//! implementation; the NAS is radclient (or portvakt's own client where a second NAS address is needed).

use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use portvakt::factor::totp::{Algorithm, TotpSecret};
use portvakt::login::RadiusClient;
use portvakt::radius::{Attribute, Code, attr};
use portvakt::secret::Secret;

use crate::pass_through::directory;
use crate::support::freeradius::*;
use crate::support::proxy::{NAS_SECRET, Proxy, ProxyBuilder};
use crate::support::radclient::{Kind, RadclientOutcome, Reply, radclient};

/// Base32 TOTP secrets (160 bits) for the test users.
pub(crate) const ALICE_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const BOB_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// The town hall's range is trusted; the doctor's office inside it is not.
const SITES: &str = r#"
[[sites]]
name = "radhus"
networks = ["10.10.0.0/16", "2001:db8:10::/48"]
policy = "trusted"

[[sites]]
name = "legekontor"
networks = ["10.10.20.0/24"]
policy = "mfa"
"#;

fn builder(upstream: &FreeRadius) -> ProxyBuilder {
    Proxy::builder()
        .upstream(upstream)
        .with_store()
        .toml("[mfa]\nlanguage = \"en\"")
        .toml(SITES)
}

/// Enrols alice and bob with known secrets (as `portvakt user import-totp` does).
fn enrol(proxy: &Proxy) -> Result<()> {
    let store = proxy.store();
    for (user, secret) in [("alice", ALICE_SECRET), ("bob", BOB_SECRET)] {
        store.add_user(user)?;
        store.set_totp(
            user,
            &TotpSecret::from_base32(secret, 6, 30, Algorithm::Sha1)?,
            true,
        )?;
    }
    Ok(())
}

/// The current code from oathtool, with `offset` steps added.
pub(crate) fn oathtool(secret: &str, offset: i64) -> Result<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let out = Command::new(crate::support::peer_binary("oathtool")?)
        .args([
            "--totp",
            "-b",
            secret,
            "-N",
            &format!("@{}", now + 30 * offset),
        ])
        .output()?;
    ensure!(
        out.status.success(),
        "oathtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

fn login(proxy: &Proxy, user: User, station: &str) -> Result<RadclientOutcome> {
    Ok(radclient(
        proxy.auth(),
        NAS_SECRET,
        Kind::Auth,
        &[
            ("User-Name", user.name),
            ("User-Password", user.password),
            ("Calling-Station-Id", station),
        ],
    )?)
}

fn answer(
    proxy: &Proxy,
    user: &str,
    station: &str,
    state: &str,
    code: &str,
) -> Result<RadclientOutcome> {
    Ok(radclient(
        proxy.auth(),
        NAS_SECRET,
        Kind::Auth,
        &[
            ("User-Name", user),
            ("User-Password", code),
            ("State", state),
            ("Calling-Station-Id", station),
        ],
    )?)
}

const HOME: &str = "203.0.113.7";

#[test]
fn inside_a_trusted_site_passes_straight_through() -> Result<()> {
    let upstream = directory()?;
    let proxy = builder(&upstream).start()?;
    enrol(&proxy)?;
    let reply = login(&proxy, ALICE, "10.10.1.5")?;
    assert_eq!(reply.code, Reply::Accept, "{}", reply.output);
    assert_eq!(
        reply.octets("MS-MPPE-Send-Key"),
        Some(ALICE_MPPE_SEND_KEY.to_vec())
    );
    Ok(())
}

#[test]
fn off_site_is_challenged_and_the_right_code_releases_the_directorys_accept() -> Result<()> {
    let upstream = directory()?;
    let proxy = builder(&upstream).start()?;
    enrol(&proxy)?;
    let first = login(&proxy, ALICE, HOME)?;
    assert_eq!(first.code, Reply::Challenge, "{}", first.output);
    assert_eq!(
        first.value("Reply-Message"),
        Some("Enter the code from your authenticator app.")
    );
    let state = first.state().context("State")?.to_owned();
    ensure!(
        state.len() >= 2 + 2 * 16,
        "State of at least 16 octets: {state}"
    );

    let second = answer(&proxy, "alice", HOME, &state, &oathtool(ALICE_SECRET, 0)?)?;
    assert_eq!(second.code, Reply::Accept, "{}", second.output);
    // The directory's attributes, hidden ones re-encrypted for the *second* request.
    assert_eq!(
        second.octets("Class"),
        Some(ALICE_CLASS.as_bytes().to_vec())
    );
    assert_eq!(
        second.value("Tunnel-Password:1"),
        Some(ALICE_TUNNEL_PASSWORD),
        "{}",
        second.output
    );
    assert_eq!(
        second.octets("MS-MPPE-Send-Key"),
        Some(ALICE_MPPE_SEND_KEY.to_vec()),
        "{}",
        second.output
    );
    assert_eq!(
        second.octets("MS-MPPE-Recv-Key"),
        Some(ALICE_MPPE_RECV_KEY.to_vec())
    );
    assert_eq!(
        upstream.access_requests_for("alice")?,
        1,
        "the password went to the directory once"
    );
    Ok(())
}

#[test]
fn the_doctors_office_inside_the_town_hall_is_challenged() -> Result<()> {
    let upstream = directory()?;
    let proxy = builder(&upstream).start()?;
    enrol(&proxy)?;
    assert_eq!(login(&proxy, BOB, "10.10.20.9")?.code, Reply::Challenge);
    assert_eq!(login(&proxy, BOB, "10.10.21.9")?.code, Reply::Accept);
    Ok(())
}

#[test]
fn unknown_origins_are_challenged() -> Result<()> {
    let upstream = directory()?;
    let proxy = builder(&upstream).start()?;
    enrol(&proxy)?;
    for station in ["90-E7-C4-32-D3-D6", "", "vpn.example", "-"] {
        let r = login(&proxy, BOB, station)?;
        assert_eq!(r.code, Reply::Challenge, "{station:?}: {}", r.output);
    }
    let no_station = radclient(proxy.auth(), NAS_SECRET, Kind::Auth, &BOB.pap())?;
    assert_eq!(no_station.code, Reply::Challenge, "{}", no_station.output);
    Ok(())
}

#[test]
fn the_same_code_twice_is_refused_the_second_time() -> Result<()> {
    let upstream = directory()?;
    let proxy = builder(&upstream).start()?;
    enrol(&proxy)?;
    let code = oathtool(BOB_SECRET, 0)?;
    let s1 = login(&proxy, BOB, HOME)?
        .state()
        .context("State")?
        .to_owned();
    assert_eq!(answer(&proxy, "bob", HOME, &s1, &code)?.code, Reply::Accept);
    let s2 = login(&proxy, BOB, HOME)?
        .state()
        .context("State")?
        .to_owned();
    let again = answer(&proxy, "bob", HOME, &s2, &code)?;
    assert_eq!(again.code, Reply::Reject, "{}", again.output);
    assert!(
        !again.has("Reply-Message"),
        "no reason on the wire: {}",
        again.output
    );
    Ok(())
}

#[test]
fn three_wrong_codes_are_rejected() -> Result<()> {
    let upstream = directory()?;
    let proxy = builder(&upstream).start()?;
    enrol(&proxy)?;
    let mut state = login(&proxy, BOB, HOME)?
        .state()
        .context("State")?
        .to_owned();
    for attempt in 1..=3 {
        let r = answer(&proxy, "bob", HOME, &state, "000000")?;
        if attempt < 3 {
            assert_eq!(r.code, Reply::Challenge, "attempt {attempt}: {}", r.output);
            assert_eq!(r.value("Reply-Message"), Some("Wrong code. Try again."));
            state = r.state().context("new State")?.to_owned();
        } else {
            assert_eq!(r.code, Reply::Reject, "{}", r.output);
        }
    }
    Ok(())
}

#[test]
fn a_state_is_bound_to_its_user_and_station_and_used_once() -> Result<()> {
    let upstream = directory()?;
    let proxy = builder(&upstream).start()?;
    enrol(&proxy)?;
    let code = oathtool(BOB_SECRET, 0)?;
    // Another user presenting bob's State.
    let state = login(&proxy, BOB, HOME)?
        .state()
        .context("State")?
        .to_owned();
    assert_eq!(
        answer(&proxy, "alice", HOME, &state, &code)?.code,
        Reply::Reject
    );
    assert_eq!(
        answer(&proxy, "bob", HOME, &state, &code)?.code,
        Reply::Reject,
        "destroyed by the misuse"
    );
    // Another station.
    let state = login(&proxy, BOB, HOME)?
        .state()
        .context("State")?
        .to_owned();
    assert_eq!(
        answer(&proxy, "bob", "198.51.100.99", &state, &code)?.code,
        Reply::Reject
    );
    // A forged State with our tag.
    let forged = format!("0x{}", hex::encode(b"pvk1-0000000000000000000000000000"));
    assert_eq!(
        answer(&proxy, "bob", HOME, &forged, &code)?.code,
        Reply::Reject
    );
    Ok(())
}

#[test]
fn a_state_from_another_nas_is_refused() -> Result<()> {
    let upstream = directory()?;
    let proxy = builder(&upstream).start()?;
    enrol(&proxy)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let server = proxy.auth();
    rt.block_on(async move {
        let mut nas1 =
            RadiusClient::bind("127.0.0.1:0".parse()?, server, Secret::new(NAS_SECRET)).await?;
        let mut nas2 =
            RadiusClient::bind("127.0.0.2:0".parse()?, server, Secret::new(NAS_SECRET)).await?;
        let station = Attribute {
            typ: attr::CALLING_STATION_ID,
            value: HOME.into(),
        };
        let user = Attribute {
            typ: attr::USER_NAME,
            value: b"bob".to_vec(),
        };
        let first = nas1
            .access(
                &[user.clone(), station.clone()],
                Some(BOB.password.as_bytes()),
            )
            .await?;
        assert_eq!(first.code, Code::AccessChallenge);
        let state = Attribute {
            typ: attr::STATE,
            value: first.state().context("State")?.to_vec(),
        };
        let code = oathtool(BOB_SECRET, 0)?;
        let other = nas2
            .access(&[user, station, state], Some(code.as_bytes()))
            .await?;
        assert_eq!(
            other.code,
            Code::AccessReject,
            "a State is bound to the NAS that got it"
        );
        anyhow::Ok(())
    })
}

#[test]
fn an_expired_challenge_is_refused() -> Result<()> {
    let upstream = directory()?;
    let proxy = Proxy::builder()
        .upstream(&upstream)
        .with_store()
        .toml("[mfa]\nlanguage = \"en\"\nchallenge_ttl = \"1s\"")
        .toml(SITES)
        .start()?;
    enrol(&proxy)?;
    let state = login(&proxy, BOB, HOME)?
        .state()
        .context("State")?
        .to_owned();
    // Waiting for the clock to pass the lifetime is the point of this test.
    std::thread::sleep(Duration::from_millis(1_300));
    assert_eq!(
        answer(&proxy, "bob", HOME, &state, &oathtool(BOB_SECRET, 0)?)?.code,
        Reply::Reject
    );
    Ok(())
}

#[test]
fn append_mode_checks_the_code_before_the_directory() -> Result<()> {
    let upstream = directory()?;
    let proxy = builder(&upstream)
        .client("second_factor = \"append\"")
        .start()?;
    enrol(&proxy)?;
    let wrong = radclient(
        proxy.auth(),
        NAS_SECRET,
        Kind::Auth,
        &[
            ("User-Name", "alice"),
            ("User-Password", "alice-password,000000"),
            ("Calling-Station-Id", HOME),
        ],
    )?;
    assert_eq!(wrong.code, Reply::Reject, "{}", wrong.output);
    let missing = radclient(
        proxy.auth(),
        NAS_SECRET,
        Kind::Auth,
        &[
            ("User-Name", "alice"),
            ("User-Password", "alice-password"),
            ("Calling-Station-Id", HOME),
        ],
    )?;
    assert_eq!(missing.code, Reply::Reject, "{}", missing.output);
    assert_eq!(
        upstream.access_requests_for("alice")?,
        0,
        "a wrong code never reaches the directory"
    );

    let typed = format!("alice-password,{}", oathtool(ALICE_SECRET, 0)?);
    let right = radclient(
        proxy.auth(),
        NAS_SECRET,
        Kind::Auth,
        &[
            ("User-Name", "alice"),
            ("User-Password", &typed),
            ("Calling-Station-Id", HOME),
        ],
    )?;
    assert_eq!(right.code, Reply::Accept, "{}", right.output);
    assert_eq!(
        right.octets("MS-MPPE-Recv-Key"),
        Some(ALICE_MPPE_RECV_KEY.to_vec())
    );
    assert_eq!(upstream.access_requests_for("alice")?, 1);
    // Inside the town hall no code is needed, and the password goes through whole.
    let inside = login(&proxy, ALICE, "10.10.1.5")?;
    assert_eq!(inside.code, Reply::Accept, "{}", inside.output);
    Ok(())
}

#[test]
fn a_directory_reject_is_relayed_before_any_challenge() -> Result<()> {
    let upstream = directory()?;
    let proxy = builder(&upstream).start()?;
    enrol(&proxy)?;
    let r = radclient(
        proxy.auth(),
        NAS_SECRET,
        Kind::Auth,
        &[
            ("User-Name", "bob"),
            ("User-Password", "wrong"),
            ("Calling-Station-Id", HOME),
        ],
    )?;
    assert_eq!(r.code, Reply::Reject, "{}", r.output);
    Ok(())
}

#[test]
fn unenrolled_users_are_rejected_off_site_by_default() -> Result<()> {
    let upstream = directory()?;
    let proxy = builder(&upstream).start()?;
    // Nobody enrolled.
    assert_eq!(login(&proxy, BOB, HOME)?.code, Reply::Reject);
    assert_eq!(
        login(&proxy, BOB, "10.10.1.5")?.code,
        Reply::Accept,
        "inside needs no enrolment"
    );
    Ok(())
}

#[test]
fn restart_keeps_users_and_replay_steps() -> Result<()> {
    let upstream = directory()?;
    let proxy = builder(&upstream).start()?;
    enrol(&proxy)?;
    let code = oathtool(BOB_SECRET, 0)?;
    let state = login(&proxy, BOB, HOME)?
        .state()
        .context("State")?
        .to_owned();
    assert_eq!(
        answer(&proxy, "bob", HOME, &state, &code)?.code,
        Reply::Accept
    );

    let proxy = proxy.restart()?;
    let state = login(&proxy, BOB, HOME)?
        .state()
        .context("State after restart")?
        .to_owned();
    assert_eq!(
        answer(&proxy, "bob", HOME, &state, &code)?.code,
        Reply::Reject,
        "replay refused after restart"
    );
    Ok(())
}

#[test]
fn a_missing_or_wrong_store_key_stops_the_daemon_at_start() -> Result<()> {
    let upstream = directory()?;
    let proxy = builder(&upstream).start()?;
    enrol(&proxy)?;
    let config = proxy.config_path();
    let dir = config.parent().context("dir")?.to_owned();
    drop_proxy_keep_files(proxy);

    let serve = |config: &std::path::Path| -> Result<(Option<i32>, String)> {
        let out = Command::new(env!("CARGO_BIN_EXE_portvakt"))
            .args(["serve", "--config"])
            .arg(config)
            .env("PORTVAKT__SERVER__AUTH_LISTEN", "127.0.0.1:0")
            .output()?;
        Ok((
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    // A wrong key: another valid key file.
    let other = tempfile::tempdir()?;
    let wrong = other.path().join("other.key");
    portvakt::store::StoreKey::generate()?.write_new_file(&wrong)?;
    let text = std::fs::read_to_string(&config)?.replace(
        "key_file = \"store.key\"",
        &format!("key_file = \"{}\"", wrong.display()),
    );
    let wrong_config = dir.join("wrong.toml");
    std::fs::write(&wrong_config, text)?;
    let (code, err) = serve(&wrong_config)?;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.to_lowercase().contains("key"),
        "names the key problem: {err}"
    );

    std::fs::remove_file(dir.join("store.key"))?;
    let (code, err) = serve(&config)?;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("store.key"), "names the missing file: {err}");
    // Kept past the proxy for the checks above; a failed test leaves it for a look.
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Stops the proxy but leaves its directory for the test to inspect.
fn drop_proxy_keep_files(mut proxy: Proxy) {
    proxy.stop();
    proxy.keep_dir();
}

#[test]
fn explain_shows_origin_site_rule_and_decision() -> Result<()> {
    let upstream = directory()?;
    let proxy = builder(&upstream)
        .toml("[[exceptions]]\nusers = [\"svc-backup\"]\naction = \"exempt\"\nreason = \"backup agent\"")
        .start()?;
    let explain = |user: &str, station: &str| -> Result<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_portvakt"))
            .args(["explain", "--config"])
            .arg(proxy.config_path())
            .args([
                "--nas",
                "test-nas",
                "--user",
                user,
                "--attr",
                &format!("Calling-Station-Id={station}"),
            ])
            .output()?;
        ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    };
    let home = explain("alice", HOME)?;
    assert!(home.contains("203.0.113.7"), "{home}");
    assert!(home.contains("off-site"), "{home}");
    assert!(home.to_lowercase().contains("second factor"), "{home}");
    let office = explain("alice", "10.10.20.9")?;
    assert!(
        office.contains("legekontor") && office.contains("10.10.20.0/24"),
        "{office}"
    );
    let hall = explain("alice", "10.10.1.5")?;
    assert!(
        hall.contains("radhus") && hall.to_lowercase().contains("pass"),
        "{hall}"
    );
    let mac = explain("alice", "90-E7-C4-32-D3-D6")?;
    assert!(mac.to_lowercase().contains("unknown"), "{mac}");
    let svc = explain("svc-backup", HOME)?;
    assert!(svc.contains("backup agent"), "{svc}");
    Ok(())
}

#[test]
fn the_cli_enrols_on_the_store_the_daemon_uses() -> Result<()> {
    let upstream = directory()?;
    let proxy = builder(&upstream).start()?;
    let cli = |args: &[&str]| -> Result<std::process::Output> {
        Ok(Command::new(env!("CARGO_BIN_EXE_portvakt"))
            .arg("user")
            .arg("--config")
            .arg(proxy.config_path())
            .args(args)
            .output()?)
    };
    ensure!(cli(&["add", "bob"])?.status.success());
    let import = cli(&["import-totp", "bob", BOB_SECRET])?;
    ensure!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let show = cli(&["show", "bob", "--json"])?;
    let text = String::from_utf8(show.stdout)?;
    assert!(
        text.contains("\"bob\"") && !text.contains(BOB_SECRET),
        "{text}"
    );
    // The running daemon sees the enrolment at once.
    let state = login(&proxy, BOB, HOME)?
        .state()
        .context("State")?
        .to_owned();
    assert_eq!(
        answer(&proxy, "bob", HOME, &state, &oathtool(BOB_SECRET, 0)?)?.code,
        Reply::Accept
    );
    Ok(())
}

#[test]
fn a_group_exception_read_from_the_directorys_class_challenges_inside_a_trusted_site() -> Result<()>
{
    let upstream = directory()?;
    let proxy = builder(&upstream)
        .toml(&format!(
            "[[exceptions]]\ngroups = [\"{ALICE_CLASS}\"]\naction = \"mfa\""
        ))
        .start()?;
    enrol(&proxy)?;
    // alice's Accept carries Class = ALICE_CLASS: the group exception applies after the directory answered.
    let first = login(&proxy, ALICE, "10.10.1.5")?;
    assert_eq!(first.code, Reply::Challenge, "{}", first.output);
    let state = first.state().context("State")?.to_owned();
    let second = answer(
        &proxy,
        "alice",
        "10.10.1.5",
        &state,
        &oathtool(ALICE_SECRET, 0)?,
    )?;
    assert_eq!(second.code, Reply::Accept, "{}", second.output);
    // bob is not in the group: straight through.
    assert_eq!(login(&proxy, BOB, "10.10.1.5")?.code, Reply::Accept);
    Ok(())
}

#[test]
fn the_directorys_own_challenge_does_not_replace_ours() -> Result<()> {
    let upstream = directory()?;
    let proxy = builder(&upstream).start()?;
    let store = proxy.store();
    store.add_user("carol")?;
    store.set_totp(
        "carol",
        &TotpSecret::from_base32(BOB_SECRET, 6, 30, Algorithm::Sha1)?,
        true,
    )?;
    // Round 1: the directory's challenge, relayed.
    let first = login(&proxy, CAROL, HOME)?;
    assert_eq!(first.code, Reply::Challenge, "{}", first.output);
    assert_eq!(first.value("Reply-Message"), Some(CAROL_CHALLENGE_MESSAGE));
    let upstream_state = first.state().context("State")?.to_owned();
    // Round 2: the directory accepts carol's token code — but she is off-site, so portvakt now asks for TOTP.
    let second = answer(&proxy, "carol", HOME, &upstream_state, CAROL_CODE)?;
    assert_eq!(
        second.code,
        Reply::Challenge,
        "no Accept before our second factor: {}",
        second.output
    );
    let ours = second.state().context("our State")?.to_owned();
    let third = answer(&proxy, "carol", HOME, &ours, &oathtool(BOB_SECRET, 0)?)?;
    assert_eq!(third.code, Reply::Accept, "{}", third.output);
    assert_eq!(third.value("Reply-Message"), Some(CAROL_WELCOME_MESSAGE));
    Ok(())
}

#[test]
fn eap_from_off_site_fails_closed_until_push_can_cover_it() -> Result<()> {
    use crate::support::eapol::{EapMethod, eapol_test};
    let upstream = directory()?;
    let proxy = builder(&upstream).start()?;
    enrol(&proxy)?;
    // eapol_test's Calling-Station-Id is a MAC: origin unknown, so off-site. The EAP conversation runs, but its
    // final Accept is not released: a gateway doing EAP cannot show a code prompt.
    let outcome = eapol_test(
        proxy.auth(),
        NAS_SECRET,
        EAP_USER.name,
        EAP_USER.password,
        EapMethod::PeapMschapV2,
    )?;
    assert!(
        !outcome.success,
        "an off-site EAP login must not pass without a second factor:\n{}",
        outcome.output
    );
    Ok(())
}
