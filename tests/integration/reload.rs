//! SIGHUP: `portvakt serve` (the binary, as systemd runs it) reads its configuration file again and applies the
//! NAS table and the sites (here from a separate `policy.sites_file`, as a network team would own it), keeps the
//! logins waiting for a code, and keeps what is in force when the new file is broken. The directory is a real
//! FreeRADIUS; codes come from oathtool.

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use portvakt::factor::totp::{Algorithm, TotpSecret};
use portvakt::login::RadiusClient;
use portvakt::radius::{Code, attr};
use portvakt::secret::Secret;
use portvakt::store::{ImportMode, Store, StoreKey, TotpImport};

use crate::lifecycle::{Served, bob_request};
use crate::logs::{attribute, attrs};
use crate::pass_through::directory;
use crate::support::TestDir;
use crate::support::freeradius::{ALICE, BOB, FreeRadius, numbered_user};
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

/// The first log message starting with `prefix`, once it is there.
fn message(served: &Served, prefix: &str) -> Result<String> {
    served.wait_for_message(prefix, LOG_LIMIT)
}

/// alice's login from the town hall, through the test NAS: the reply's code.
async fn alice_at_the_office(nas: &mut RadiusClient) -> Result<Code> {
    let reply = nas
        .access(
            &attrs(ALICE.name.as_bytes(), OFFICE, None),
            Some(ALICE.password.as_bytes()),
        )
        .await?;
    Ok(reply.code)
}

/// bob's login through the second NAS: the reply's code.
async fn bob_through_the_second_nas(nas2: &mut RadiusClient) -> Result<Code> {
    let reply = nas2
        .access(
            &[attribute(attr::USER_NAME, BOB.name.as_bytes())],
            Some(BOB.password.as_bytes()),
        )
        .await?;
    Ok(reply.code)
}

/// The first 12 hex digits of a file's SHA-256, as `sha256sum` prints them.
fn sha256_prefix(path: &Path) -> Result<String> {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(std::fs::read(path)?);
    Ok(hex::encode(&digest[..6]))
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
            .access(&attrs(ALICE.name.as_bytes(), HOME, None), password)
            .await?;
        assert_eq!(pending.code, Code::AccessChallenge);
        let state = pending.state().context("State")?.to_vec();
        let stranger = UdpSocket::bind("127.0.0.2:0")?;
        stranger.send_to(&bob_request()?.0, server)?;
        message(
            &served,
            "dropping requests from an address that is no client",
        )?;

        // The network team makes the town hall challenged too, and a second NAS is added.
        dir.write("sites.toml", sites("mfa"))?;
        dir.write("portvakt.toml", self::config(&upstream, &second_nas()))?;
        served.signal("HUP")?;
        let line = message(&served, "SIGHUP: reloaded")?;
        ensure!(
            line.starts_with("SIGHUP: reloaded 2 client(s), 1 site(s) and 0 exception(s)"),
            "{line}"
        );
        // Which files were applied, as `sha256sum` names them.
        for file in ["portvakt.toml", "sites.toml"] {
            let digest = sha256_prefix(&dir.join(file))?;
            ensure!(
                line.contains(&format!("{file} (sha256 {digest})")),
                "{file}: {line}"
            );
        }

        assert_eq!(
            alice_at_the_office(&mut nas).await?,
            Code::AccessChallenge,
            "the reloaded site needs a second factor"
        );
        let code = oathtool(ALICE_SECRET, 0)?;
        let answered = nas
            .access(
                &attrs(ALICE.name.as_bytes(), HOME, Some(&state)),
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
        served.signal("HUP")?;
        let error = message(&served, "SIGHUP: not reloaded")?;
        ensure!(
            error.contains("sites[0].policy"),
            "the bad key is named: {error}"
        );
        let reloads = served.messages()?;
        ensure!(
            reloads
                .iter()
                .filter(|m| m.starts_with("SIGHUP: reloaded"))
                .count()
                == 1,
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

/// The test's end of systemd's notify socket (`NOTIFY_SOCKET`): what the daemon tells systemd, one datagram per
/// `sd_notify` call.
struct Notify {
    socket: UnixDatagram,
    path: std::path::PathBuf,
}

impl Notify {
    fn bind(dir: &TestDir) -> Result<Self> {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path)?;
        socket.set_read_timeout(Some(LOG_LIMIT))?;
        Ok(Self { socket, path })
    }

    /// The next datagram (fails after [`LOG_LIMIT`]).
    fn next(&self) -> Result<String> {
        let mut buf = [0u8; 512];
        let n = self
            .socket
            .recv(&mut buf)
            .context("no sd_notify message within the limit")?;
        // One line per state, each ending in a newline.
        Ok(String::from_utf8_lossy(&buf[..n]).trim_end().to_owned())
    }

    /// Waits for READY=1 (the start, or the end of a reload).
    fn ready(&self) -> Result<()> {
        while self.next()? != "READY=1" {}
        Ok(())
    }

    /// Sends SIGHUP and follows the reload as systemd would: RELOADING=1 with the monotonic clock, then READY=1.
    fn reload(&self, served: &Served) -> Result<()> {
        served.signal("HUP")?;
        let reloading = self.next()?;
        let usec = reloading
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .with_context(|| {
                format!("expected RELOADING=1 and MONOTONIC_USEC, got {reloading:?}")
            })?;
        ensure!(usec.parse::<u64>().is_ok(), "MONOTONIC_USEC={usec:?}");
        ensure!(self.next()? == "READY=1", "READY=1 after the reload");
        Ok(())
    }
}

/// The process's resident set size in KiB (VmRSS in /proc/PID/status).
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?)
}

/// Users with a login waiting for its code across the reload.
const PENDING: usize = 1000;
/// Logins in flight at once, each lane its own NAS socket: the store's group commit then writes a batch of code
/// checks per fsync, as in production, instead of one fsync per login.
const LANES: usize = 50;

/// One login step for numbered user `i`, from off-site.
#[derive(Clone)]
enum Step {
    /// The password: expects a challenge; returns its State.
    Password,
    /// The code, with each user's State: expects an Accept.
    Code(String, Arc<Vec<Vec<u8>>>),
}

impl Step {
    async fn run(&self, nas: &mut RadiusClient, i: usize) -> Result<Vec<u8>> {
        let u = numbered_user(i);
        let (password, state, expected) = match self {
            Self::Password => (u.password.as_bytes(), None, Code::AccessChallenge),
            Self::Code(code, states) => (
                code.as_bytes(),
                Some(states[i].as_slice()),
                Code::AccessAccept,
            ),
        };
        let reply = nas
            .access(&attrs(u.name.as_bytes(), HOME, state), Some(password))
            .await
            .with_context(|| format!("{}: no reply", u.name))?;
        ensure!(
            reply.code == expected,
            "{}: {:?}, expected {expected:?}",
            u.name,
            reply.code
        );
        Ok(reply.state().map(<[u8]>::to_vec).unwrap_or_default())
    }
}

/// Runs `step` for every pending user, LANES at a time, with no retransmissions (a lost request fails the test).
/// Returns each user's State.
fn run_all(rt: &tokio::runtime::Runtime, server: SocketAddr, step: &Step) -> Result<Vec<Vec<u8>>> {
    rt.block_on(async {
        let mut lanes = tokio::task::JoinSet::new();
        for lane in 0..LANES {
            let step = step.clone();
            lanes.spawn(async move {
                let mut nas =
                    RadiusClient::bind("127.0.0.1:0".parse()?, server, Secret::new(NAS_SECRET))
                        .await?;
                nas.retries = 0;
                nas.timeout = Duration::from_secs(10);
                let mut states = Vec::new();
                for i in (lane..PENDING).step_by(LANES) {
                    states.push((i, step.run(&mut nas, i).await?));
                }
                anyhow::Ok(states)
            });
        }
        let mut states = vec![Vec::new(); PENDING];
        while let Some(lane) = lanes.join_next().await {
            for (i, state) in lane?? {
                states[i] = state;
            }
        }
        Ok(states)
    })
}

/// security.md R-15: a reload with 1,000 logins waiting for their code, every one of which then completes with no
/// request lost (no retransmissions allowed); then 1,000 reloads in a row, after which the daemon's RSS has grown by
/// less than 5 MB and it still answers.
#[test]
fn a_thousand_pending_challenges_survive_a_reload_and_a_thousand_reloads_keep_memory_flat()
-> Result<()> {
    const RELOADS: usize = 1000;
    let upstream = FreeRadius::builder()
        .require_message_authenticator(true)
        .sign_replies(true)
        .users(PENDING)
        .start()?;
    let dir = TestDir::new("portvakt-reload-r15")?;
    let key = StoreKey::generate()?;
    key.write_new_file(&dir.join("store.key"))?;
    // Every user with the same secret, so one oathtool code answers all (the replay guard is per user).
    let rows = (0..PENDING)
        .map(|i| {
            Ok(TotpImport {
                line: i + 1,
                name: numbered_user(i).name,
                secret: TotpSecret::from_base32(ALICE_SECRET, 6, 30, Algorithm::Sha1)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let imported = Store::open(&dir.join("portvakt.db"), &key)?
        .import_totp(&rows, ImportMode::AllOrNothing)?;
    ensure!(imported.imported == PENDING, "{imported:?}");
    dir.write("sites.toml", sites("trusted"))?;
    // One NAS, one origin, 2,000 logins in a few seconds: the limits would rightly stop that.
    let limits = "[limits]\nper_client = \"off\"\nper_origin = \"off\"\nper_user = \"off\"\ndirectory = \"off\"\n";
    let config = dir.write("portvakt.toml", self::config(&upstream, limits))?;
    let notify = Notify::bind(&dir)?;
    let served = Served::start_with_env(&dir, &config, "info", &[("NOTIFY_SOCKET", &notify.path)])?;
    notify.ready()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let states = run_all(&rt, served.auth(), &Step::Password)?;
    dir.write("sites.toml", sites("mfa"))?;
    notify.reload(&served)?;
    message(&served, "SIGHUP: reloaded")?;
    let code = oathtool(ALICE_SECRET, 0)?;
    run_all(&rt, served.auth(), &Step::Code(code, Arc::new(states)))?;

    // Memory across reloads: a few first (one-time allocations), then 1,000, each awaited.
    for _ in 0..20 {
        notify.reload(&served)?;
    }
    let before = rss_kib(served.pid())?;
    for _ in 0..RELOADS {
        notify.reload(&served)?;
    }
    let after = rss_kib(served.pid())?;
    eprintln!("portvakt's RSS: {before} KiB before {RELOADS} reloads, {after} KiB after");
    ensure!(
        after < before + 5 * 1024,
        "RSS grew from {before} KiB to {after} KiB over {RELOADS} reloads"
    );
    let still = run_all(&rt, served.auth(), &Step::Password);
    ensure!(still.is_ok(), "answering after the reloads: {still:?}");
    let mut served = served;
    let (status, _) = served.terminate(Duration::from_secs(10))?;
    ensure!(status.success(), "portvakt exited with {status}");
    Ok(())
}
