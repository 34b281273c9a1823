//! The journal as under systemd: the real `portvakt --log-format journald serve` logs to a real systemd-journald,
//! started by this test in a private mount namespace (so that its `/run/systemd/journal` is ours alone, on tmpfs,
//! and the machine's journal, if any, is untouched). A login through portvakt to a real FreeRADIUS must reach the
//! journal as one entry with its fields (`F_USER`, `F_RESULT`, …), a hostile User-Name still one field of one
//! entry, and the entries must arrive in order, none lost, across many batches. The logins are sent while journald
//! is stopped (SIGSTOP): a daemon that sent its entries from the request thread would stop answering once the
//! socket's queue is full (`net.unix.max_dgram_qlen`: 10, or 512 under systemd); portvakt must answer every one
//! and deliver every entry once journald goes on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use portvakt::login::RadiusClient;
use portvakt::radius::{Code, attr};
use portvakt::secret::Secret;
use serde_json::Value;

use crate::logs::{attribute, attrs};
use crate::pass_through::directory;
use crate::support::freeradius::BOB;
use crate::support::probe::wait_until_answering;
use crate::support::proxy::{NAS_SECRET, Proxy};
use crate::support::{
    Error, LOCALHOST, POLL_INTERVAL, STOP_GRACE, TestDir, free_udp_ports, stop_child, wait_for_exit,
};

const JOURNALD: &str = "/lib/systemd/systemd-journald";

/// Logins sent while journald is stopped: more than its socket queues, far less than the log sink holds (4 MB).
const LOGINS: usize = 600;

/// In the new mount namespace: tmpfs over the journal's directories, journald, then portvakt in the foreground;
/// when portvakt has stopped, the journal's portvakt entries as JSON into `journal.json`, and journald stopped.
const SCRIPT: &str = r#"
set -eu
dir="$1"; portvakt="$2"
mkdir -p /run/systemd /run/log
mount -t tmpfs -o mode=0755 tmpfs /run/systemd
mount -t tmpfs -o mode=0755 tmpfs /run/log
if [ -d /var/log/journal ]; then mount -t tmpfs -o mode=0755 tmpfs /var/log/journal; fi
mkdir -p /run/systemd/journal
/lib/systemd/systemd-journald > "$dir/journald.log" 2>&1 &
journald=$!
echo "$journald" > "$dir/journald.pid"
tries=0
until [ -S /run/systemd/journal/socket ]; do
    tries=$((tries + 1)); [ "$tries" -lt 1000 ] || { echo "journald did not start" >&2; kill "$journald"; exit 1; }
    sleep 0.01
done
PORTVAKT_LOG=info "$portvakt" --log-format journald serve --config "$dir/portvakt.toml" &
echo $! > "$dir/portvakt.pid"
status=0; wait $! || status=$?
# Returns once every entry sent before it is in the journal's files.
journalctl --sync
journalctl --no-pager -o json SYSLOG_IDENTIFIER=portvakt > "$dir/journal.json"
kill "$journald"; wait "$journald" || true
exit "$status"
"#;

#[test]
fn audit_entries_reach_a_real_journald_whole_with_their_fields() -> Result<()> {
    if !Path::new(JOURNALD).exists() {
        bail!("{JOURNALD} not found: run scripts/install-test-peers (package systemd)");
    }
    let upstream = directory()?;
    let dir = TestDir::new("journal")?;
    let port = free_udp_ports(LOCALHOST, 2)?;
    let auth = SocketAddr::new(LOCALHOST, port[0]);
    let config = Proxy::builder()
        .upstream(&upstream)
        .client("policy = \"trusted\"")
        // One user logs in hundreds of times a second here; the limits would (rightly) stop it.
        .toml("[limits]\nper_user = \"off\"\nper_origin = \"off\"\nper_client = \"off\"\ndirectory = \"off\"\n")
        .config_text()
        .replace(
            "auth_listen = [\"127.0.0.1:0\"]\nacct_listen = [\"127.0.0.1:0\"]",
            &format!(
                "auth_listen = [\"{auth}\"]\nacct_listen = [\"127.0.0.1:{}\"]",
                port[1]
            ),
        );
    dir.write("portvakt.toml", config)?;

    let mut namespace = Namespace::start(&dir)?;
    let answering = wait_until_answering(auth, NAS_SECRET, Duration::from_secs(20), || {
        namespace.still_running().map_err(|e| Error::Start {
            peer: "portvakt in its namespace",
            reason: e.to_string(),
            details: String::new(),
        })
    })?;
    ensure!(
        answering,
        "portvakt did not answer in its namespace:\n{}",
        namespace.logs(&dir)
    );

    namespace.signal_journald("STOP")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sent = runtime.block_on(async {
        let mut nas =
            RadiusClient::bind("127.0.0.1:0".parse()?, auth, Secret::new(NAS_SECRET)).await?;
        for i in 0..LOGINS {
            let station = format!("station-{i:04}");
            let attributes = attrs(BOB.name.as_bytes(), &station, None);
            let reply = nas
                .access(&attributes, Some(BOB.password.as_bytes()))
                .await
                .with_context(|| format!("login {i}, journald stopped"))?;
            ensure!(
                reply.code == Code::AccessAccept,
                "login {i}: {:?}",
                reply.code
            );
        }
        namespace.signal_journald("CONT")?;
        // A User-Name that tries to add a field and a second entry.
        let hostile = [attribute(
            attr::USER_NAME,
            b"eve\nMESSAGE=forged\n\nF_USER=root",
        )];
        let reply = nas.access(&hostile, Some(b"wrong")).await?;
        ensure!(
            reply.code == Code::AccessReject,
            "hostile login: {:?}",
            reply.code
        );
        anyhow::Ok(())
    });
    // Whatever happened, journald goes on (a stopped journald would never stop).
    namespace.signal_journald("CONT")?;
    sent?;

    let journal = namespace.stop(&dir)?;
    let audit: Vec<&Value> = journal
        .iter()
        // Not the Status-Server probes that found the daemon ready (no user).
        .filter(|e| e["TARGET"] == "portvakt::audit" && e["F_USER"] != "-")
        .collect();
    ensure!(
        audit.len() == LOGINS + 1,
        "{} audit entries in the journal for {} requests",
        audit.len(),
        LOGINS + 1
    );
    for (i, entry) in audit[..LOGINS].iter().enumerate() {
        let field = |name: &str| entry[name].as_str().unwrap_or("(missing)").to_string();
        ensure!(
            field("F_STATION") == format!("station-{i:04}"),
            "entry {i} out of order or damaged: {entry}"
        );
        for (name, want) in [
            ("MESSAGE", "request finished"),
            ("PRIORITY", "5"),
            ("SYSLOG_IDENTIFIER", "portvakt"),
            ("F_USER", BOB.name),
            ("F_CLIENT", "test-nas"),
            ("F_RESULT", "Access-Accept"),
            ("F_REASON", "pass_through"),
        ] {
            ensure!(
                field(name) == want,
                "entry {i}: {name} = {:?}, not {want:?}",
                field(name)
            );
        }
    }
    let last = audit[LOGINS];
    ensure!(
        last["F_USER"] == "eve\\x0aMESSAGE=forged\\x0a\\x0aF_USER=root"
            && last["MESSAGE"] == "request finished",
        "the hostile User-Name escaped, in one field of one entry: {last}"
    );
    ensure!(
        !journal
            .iter()
            .any(|e| e["MESSAGE"] == "forged" || e["F_USER"] == "root"),
        "a forged entry or field reached the journal"
    );
    Ok(())
}

/// `unshare --mount` running [`SCRIPT`]; stopped by portvakt's own pid (SIGTERM), then waited for.
struct Namespace {
    child: Child,
    /// Where the script writes portvakt's pid.
    pid_file: PathBuf,
    /// Where the script writes journald's pid.
    journald_pid_file: PathBuf,
}

impl Namespace {
    fn start(dir: &TestDir) -> Result<Self> {
        let child = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                SCRIPT,
                "sh",
            ])
            .arg(dir.path())
            .arg(env!("CARGO_BIN_EXE_portvakt"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("namespace.log"))?)
            .stderr(std::fs::File::create(dir.join("namespace.err"))?)
            .spawn()
            .context("spawning unshare (util-linux) for a private mount namespace")?;
        Ok(Self {
            child,
            pid_file: dir.join("portvakt.pid"),
            journald_pid_file: dir.join("journald.pid"),
        })
    }

    fn still_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("the namespace's script ended with {status}");
        }
        Ok(())
    }

    fn logs(&self, dir: &TestDir) -> String {
        ["namespace.err", "journald.log"]
            .iter()
            .map(|f| {
                format!(
                    "{f}: {}",
                    std::fs::read_to_string(dir.join(f)).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// SIGTERM to portvakt, by its own pid.
    fn terminate_portvakt(&self) -> Result<()> {
        signal(&self.pid_file, "TERM")
    }

    /// `kill -NAME` (STOP, CONT) to journald, by its own pid.
    fn signal_journald(&self, name: &str) -> Result<()> {
        signal(&self.journald_pid_file, name)
    }

    /// Stops portvakt; once the script has written the journal out, its entries.
    fn stop(mut self, dir: &TestDir) -> Result<Vec<Value>> {
        self.terminate_portvakt()?;
        let deadline = Instant::now() + STOP_GRACE * 4;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = stop_child(&mut self.child, STOP_GRACE);
                bail!("the namespace's script did not end:\n{}", self.logs(dir));
            }
            std::thread::sleep(POLL_INTERVAL);
        };
        ensure!(
            status.success(),
            "portvakt in the namespace ended with {status}:\n{}",
            self.logs(dir)
        );
        std::fs::read_to_string(dir.join("journal.json"))?
            .lines()
            .map(|l| serde_json::from_str(l).with_context(|| format!("journal line {l:?}")))
            .collect()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // portvakt first, so that the script stops journald and ends by itself.
            let _ = self.signal_journald("CONT");
            let _ = self.terminate_portvakt();
            if !matches!(wait_for_exit(&mut self.child, STOP_GRACE * 2), Ok(Some(_))) {
                let _ = stop_child(&mut self.child, STOP_GRACE);
            }
        }
    }
}

/// `kill -NAME` to the pid written in `pid_file`.
fn signal(pid_file: &Path, name: &str) -> Result<()> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .with_context(|| format!("reading {}", pid_file.display()))?
        .trim()
        .parse()?;
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()?;
    ensure!(status.success(), "kill -{name} {pid}");
    Ok(())
}
