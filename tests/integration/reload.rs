//! SIGHUP: `portvakt serve` (the binary, as systemd runs it) reads its configuration file again and applies the
//! NAS table and the sites (here from a separate `policy.sites_file`, as a network team would own it), keeps the
//! logins waiting for a code, and keeps what is in force when the new file is broken. The directory is a real
//! FreeRADIUS; codes come from oathtool.

use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use portvakt::factor::totp::{Algorithm, TotpSecret};
use portvakt::login::RadiusClient;
use portvakt::radius::{Attribute, Code, attr};
use portvakt::secret::Secret;
use portvakt::store::{Store, StoreKey};

use crate::lifecycle::{Served, bob_request};
use crate::pass_through::directory;
use crate::support::TestDir;
use crate::support::freeradius::{ALICE, BOB, FreeRadius};
use crate::support::proxy::{NAS_SECRET, Proxy};
use crate::totp::{ALICE_SECRET, oathtool};

/// The second NAS, added by the reload.
const NAS2_SECRET: &str = "second-nas-secret-98765";
/// Inside the town hall's range.
const OFFICE: &str = "10.10.1.5";
/// Off-site.
const HOME: &str = "203.0.113.7";
/// How long a log line may take to appear after the event that causes it.
const LOG_LIMIT: Duration = Duration::from_secs(10);

/// The town hall's range with `policy`.
fn sites(policy: &str) -> String {
    format!("[[sites]]\nname = \"radhus\"\nnetworks = [\"10.10.0.0/16\"]\npolicy = \"{policy}\"\n")
}

/// portvakt's configuration: the test NAS at 127.0.0.1, sites in `sites.toml`, and `extra`.
fn config(upstream: &FreeRadius, extra: &str) -> String {
    Proxy::builder()
        .upstream(upstream)
        .with_store()
        .client_address("127.0.0.1")
        .toml("[mfa]\nlanguage = \"en\"\n")
        .toml("[policy]\nsites_file = \"sites.toml\"\n")
        .toml(extra)
        .config_text()
}

/// The second NAS, trusted by its own client policy (no second factor for its logins).
fn second_nas() -> String {
    format!(
        "[[clients]]\nname = \"vpn2\"\naddress = \"127.0.0.2\"\nsecret = \"{NAS2_SECRET}\"\npolicy = \"trusted\"\n"
    )
}

fn sighup(served: &Served) -> Result<()> {
    let status = std::process::Command::new("sh")
        .args(["-c", "kill -HUP \"$1\"", "sh", &served.pid().to_string()])
        .status()
        .context("running sh to send SIGHUP")?;
    ensure!(status.success(), "kill -HUP {} failed", served.pid());
    Ok(())
}

/// How many log messages start with `prefix`.
fn count(served: &Served, prefix: &str) -> Result<usize> {
    Ok(served
        .messages()?
        .iter()
        .filter(|m| m.starts_with(prefix))
        .count())
}

/// Waits for the `n`th log message starting with `prefix` and returns it.
fn nth_message(served: &Served, prefix: &str, n: usize) -> Result<String> {
    let deadline = std::time::Instant::now() + LOG_LIMIT;
    loop {
        let found: Vec<String> = served
            .messages()?
            .into_iter()
            .filter(|m| m.starts_with(prefix))
            .collect();
        if let Some(m) = found.get(n - 1) {
            return Ok(m.clone());
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no log message #{n} starting with {prefix:?} within {LOG_LIMIT:?}: {:?}",
            served.messages()?
        );
        std::thread::sleep(crate::support::POLL_INTERVAL);
    }
}

fn station(address: &str) -> Attribute {
    Attribute {
        typ: attr::CALLING_STATION_ID,
        value: address.into(),
    }
}

fn user(name: &str) -> Attribute {
    Attribute {
        typ: attr::USER_NAME,
        value: name.into(),
    }
}

/// alice's login from the town hall, through the test NAS: the reply's code.
async fn alice_at_the_office(nas: &mut RadiusClient) -> Result<Code> {
    let reply = nas
        .access(
            &[user(ALICE.name), station(OFFICE)],
            Some(ALICE.password.as_bytes()),
        )
        .await?;
    Ok(reply.code)
}

/// bob's login through the second NAS: the reply's code.
async fn bob_through_the_second_nas(nas2: &mut RadiusClient) -> Result<Code> {
    let reply = nas2
        .access(&[user(BOB.name)], Some(BOB.password.as_bytes()))
        .await?;
    Ok(reply.code)
}

fn enrol_alice(dir: &Path) -> Result<()> {
    let key = StoreKey::from_file(&dir.join("store.key"))?;
    let store = Store::open(&dir.join("portvakt.db"), &key)?;
    store.add_user(ALICE.name)?;
    store.set_totp(
        ALICE.name,
        &TotpSecret::from_base32(ALICE_SECRET, 6, 30, Algorithm::Sha1)?,
        true,
    )?;
    Ok(())
}

#[test]
fn sighup_reloads_clients_and_sites_keeps_pending_logins_and_survives_a_broken_file() -> Result<()>
{
    let upstream = directory()?;
    let dir = TestDir::new("portvakt-reload")?;
    StoreKey::generate()?.write_new_file(&dir.join("store.key"))?;
    enrol_alice(dir.path())?;
    dir.write("sites.toml", sites("trusted"))?;
    let config = dir.write("portvakt.toml", config(&upstream, ""))?;
    let served = Served::start(&dir, &config, "info,portvakt=debug")?;
    let server = served.auth();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut nas =
            RadiusClient::bind("127.0.0.1:0".parse()?, server, Secret::new(NAS_SECRET)).await?;
        let password = Some(ALICE.password.as_bytes());

        // Before: the town hall is trusted; off-site is challenged; 127.0.0.2 is no client.
        assert_eq!(
            alice_at_the_office(&mut nas).await?,
            Code::AccessAccept,
            "trusted site before the reload"
        );
        let pending = nas
            .access(&[user("alice"), station(HOME)], password)
            .await?;
        assert_eq!(pending.code, Code::AccessChallenge);
        let state = pending.state().context("State")?.to_vec();
        let stranger = UdpSocket::bind("127.0.0.2:0")?;
        stranger.send_to(&bob_request()?.0, server)?;
        nth_message(
            &served,
            "dropping requests from an address that is no client",
            1,
        )?;

        // The network team makes the town hall challenged too, and a second NAS is added.
        dir.write("sites.toml", sites("mfa"))?;
        dir.write("portvakt.toml", self::config(&upstream, &second_nas()))?;
        sighup(&served)?;
        let line = nth_message(&served, "SIGHUP: reloaded", 1)?;
        ensure!(
            line.starts_with("SIGHUP: reloaded 2 client(s), 1 site(s) and 0 exception(s)"),
            "{line}"
        );

        assert_eq!(
            alice_at_the_office(&mut nas).await?,
            Code::AccessChallenge,
            "the reloaded site needs a second factor"
        );
        let code = oathtool(ALICE_SECRET, 0)?;
        let state_attr = Attribute {
            typ: attr::STATE,
            value: state,
        };
        let answered = nas
            .access(
                &[user("alice"), station(HOME), state_attr],
                Some(code.as_bytes()),
            )
            .await?;
        assert_eq!(
            answered.code,
            Code::AccessAccept,
            "a login waiting for its code across the reload still completes"
        );
        let mut nas2 =
            RadiusClient::bind("127.0.0.2:0".parse()?, server, Secret::new(NAS2_SECRET)).await?;
        assert_eq!(
            bob_through_the_second_nas(&mut nas2).await?,
            Code::AccessAccept,
            "the new NAS, trusted by its client policy"
        );

        // A broken sites file: not applied, the key is named, the daemon goes on with what it had.
        dir.write("sites.toml", sites("open"))?;
        sighup(&served)?;
        let error = nth_message(&served, "SIGHUP: not reloaded", 1)?;
        ensure!(
            error.contains("sites[0].policy"),
            "the bad key is named: {error}"
        );
        ensure!(
            count(&served, "SIGHUP: reloaded")? == 1,
            "nothing else was applied"
        );
        assert_eq!(
            alice_at_the_office(&mut nas).await?,
            Code::AccessChallenge,
            "the sites in force are kept"
        );
        assert_eq!(
            bob_through_the_second_nas(&mut nas2).await?,
            Code::AccessAccept,
            "and so is the NAS table"
        );
        anyhow::Ok(())
    })?;
    let mut served = served;
    let (status, _) = served.terminate(Duration::from_secs(10))?;
    ensure!(status.success(), "portvakt exited with {status}");
    Ok(())
}
