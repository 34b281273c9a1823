//! Secrets never reach the logs (security.md T-13 and §6): the real `portvakt serve`, logging JSON at debug level,
//! runs logins of every kind in front of a real FreeRADIUS; then everything it wrote is searched for canaries —
//! shared secrets, passwords, OTP codes, TOTP seeds, the store key and our full States. The audit lines must be one
//! JSON object per line, with a hostile User-Name escaped on its own line.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use portvakt::login::RadiusClient;
use portvakt::radius::{Attribute, Code, Packet, attr};
use portvakt::secret::Secret;
use serde_json::Value;

use crate::lifecycle::Served;
use crate::pass_through::directory;
use crate::support::TestDir;
use crate::support::freeradius::{ALICE, BOB};

/// Canary shared secrets, one per NAS (each ≥ 16 characters, as the config requires).
const NAS_SECRET: &str = "Canary-NAS-Secret-7f3a9c";
const APPEND_NAS_SECRET: &str = "Canary-Append-NAS-Secret-51e8";
/// A password no fixture user has.
const WRONG_PASSWORD: &str = "Canary-Wrong-Passw0rd-c41d";
/// 160-bit TOTP seeds whose raw octets are text, so a leak of the raw seed is as visible as one of its base32.
const ALICE_SEED: &[u8; 20] = b"CanarySeedForAlice01";
const BOB_SEED: &[u8; 20] = b"CanarySeedForBob0002";
/// Where the town hall is (trusted) and where the user is at home (a second factor is due).
const TRUSTED_STATION: &str = "10.10.1.5";
const HOME: &str = "203.0.113.7";
/// A User-Name that tries to forge a log line, colour a terminal and break UTF-8 and C strings.
const HOSTILE_USER: &[u8] =
    b"mallory\n{\"level\":\"ERROR\",\"message\":\"forged\"}\x1b[31mred\x1b[0m\xff\xfe\0end";
/// How `audit::escape` must render it: control characters, backslashes and invalid UTF-8 as `\xNN`.
const HOSTILE_USER_ESCAPED: &str = "mallory\\x0a{\"level\":\"ERROR\",\"message\":\"forged\"}\\x1b[31mred\\x1b[0m\\xff\\xfe\\x00end";

/// A Calling-Station-Id that tries the same (some gateways copy it from the user's side of the tunnel).
const HOSTILE_STATION: &[u8] = b"203.0.113.7\n{\"message\":\"forged-station\"}\x1b[2J";
/// How it must appear inside the audit line's decision (`origin.rs` escapes with `escape_ascii`, not `audit::escape`).
const HOSTILE_STATION_ESCAPED: &str = r#"203.0.113.7\n{\"message\":\"forged-station\"}\x1b[2J"#;
/// How it must appear in the audit line's own `station` field (`audit::escape`).
const HOSTILE_STATION_AUDIT: &str = "203.0.113.7\\x0a{\"message\":\"forged-station\"}\\x1b[2J";

fn base32(seed: &[u8]) -> String {
    base32::encode(base32::Alphabet::Rfc4648 { padding: false }, seed)
}

fn config(dir: &TestDir, upstream: SocketAddr, upstream_secret: &str) -> String {
    let d = dir.path().display();
    format!(
        r#"[server]
auth_listen = ["127.0.0.1:0"]
acct_listen = []

[[clients]]
name = "nas-challenge"
address = "127.0.0.1"
secret = "{NAS_SECRET}"

[[clients]]
name = "nas-append"
address = "127.0.0.2"
secret = "{APPEND_NAS_SECRET}"
second_factor = "append"

[[upstreams]]
name = "directory"
auth = "{upstream}"
secret = "{upstream_secret}"

[store]
path = "{d}/portvakt.db"
key_file = "{d}/store.key"

[mfa]
language = "en"

[[sites]]
name = "radhus"
networks = ["10.10.0.0/16"]
policy = "trusted"
"#
    )
}

/// Runs a `portvakt` command (a CLI tool, not the daemon) and returns its stdout and stderr.
fn portvakt_cli(args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new(env!("CARGO_BIN_EXE_portvakt"))
        .args(args)
        .env("PORTVAKT_LOG", "debug")
        .output()?;
    ensure!(
        out.status.success(),
        "portvakt {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok([out.stdout, out.stderr].concat())
}

/// The TOTP code for `seed` at now + `offset` steps, from oathtool (an independent implementation).
fn oathtool(seed: &[u8], offset: i64) -> Result<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let out = Command::new(crate::support::peer_binary("oathtool")?)
        .args(["--totp", "-b", &base32(seed), "-N"])
        .arg(format!("@{}", now + 30 * offset))
        .output()?;
    ensure!(
        out.status.success(),
        "oathtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// A 6-digit code that is wrong for `seed` in every step the daemon accepts (now ± 1).
fn wrong_code(seed: &[u8]) -> Result<String> {
    let valid = [oathtool(seed, -1)?, oathtool(seed, 0)?, oathtool(seed, 1)?];
    let start: u32 = valid[1].parse()?;
    (1..10)
        .map(|k| format!("{:06}", (start + k * 111_111) % 1_000_000))
        .find(|c| !valid.contains(c))
        .context("no wrong code found")
}

pub(crate) fn attribute(typ: u8, value: &[u8]) -> Attribute {
    Attribute {
        typ,
        value: value.to_vec(),
    }
}

/// One login's attributes: User-Name, Calling-Station-Id, and State when answering a challenge.
pub(crate) fn attrs(user: &[u8], station: &str, state: Option<&[u8]>) -> Vec<Attribute> {
    let mut list = vec![
        attribute(attr::USER_NAME, user),
        attribute(attr::CALLING_STATION_ID, station.as_bytes()),
    ];
    if let Some(s) = state {
        list.push(attribute(attr::STATE, s));
    }
    list
}

/// What the logins used that must never be logged.
#[derive(Default)]
struct Canaries {
    /// Secrets searched for as text, hex (both cases) and a Debug byte list.
    secrets: Vec<(String, Vec<u8>)>,
    /// OTP codes, searched for as whole tokens (not inside a longer run of letters or digits).
    codes: BTreeSet<String>,
    /// How many replies the daemon sent (each must have one audit line), by expected reason.
    reasons: Vec<&'static str>,
}

impl Canaries {
    fn secret(&mut self, name: impl Into<String>, bytes: impl AsRef<[u8]>) {
        self.secrets.push((name.into(), bytes.as_ref().to_vec()));
    }
}

/// Runs every kind of login through the daemon and records what it used.
async fn logins(served: SocketAddr, canaries: &mut Canaries) -> Result<()> {
    let mut nas =
        RadiusClient::bind("127.0.0.1:0".parse()?, served, Secret::new(NAS_SECRET)).await?;
    let mut append_nas = RadiusClient::bind(
        "127.0.0.2:0".parse()?,
        served,
        Secret::new(APPEND_NAS_SECRET),
    )
    .await?;
    let expect = |reply: &Packet, code: Code, what: &str| {
        ensure!(
            reply.code == code,
            "{what}: {} instead of {code}",
            reply.code
        );
        Ok(())
    };

    // Inside the town hall: straight through to the directory.
    let r = nas
        .access(
            &attrs(ALICE.name.as_bytes(), TRUSTED_STATION, None),
            Some(ALICE.password.as_bytes()),
        )
        .await?;
    expect(&r, Code::AccessAccept, "pass-through")?;
    canaries.reasons.push("pass_through");

    // From home: challenge, a wrong code (challenged again), then the right code.
    let home = |state: Option<&[u8]>| attrs(BOB.name.as_bytes(), HOME, state);
    let r = nas
        .access(&home(None), Some(BOB.password.as_bytes()))
        .await?;
    expect(&r, Code::AccessChallenge, "challenge")?;
    canaries.reasons.push("challenge");
    let first_state = r.state().context("State")?.to_vec();
    let wrong = wrong_code(BOB_SEED)?;
    let r = nas
        .access(&home(Some(&first_state)), Some(wrong.as_bytes()))
        .await?;
    expect(&r, Code::AccessChallenge, "wrong code")?;
    canaries.reasons.push("otp_bad");
    let second_state = r.state().context("State after a wrong code")?.to_vec();
    let right = oathtool(BOB_SEED, 0)?;
    let r = nas
        .access(&home(Some(&second_state)), Some(right.as_bytes()))
        .await?;
    expect(&r, Code::AccessAccept, "right code")?;
    canaries.reasons.push("otp_ok");
    canaries.secret("bob's first State", &first_state);
    canaries.secret("bob's second State", &second_state);
    // The random part alone too: a log that printed it without the tag would leak the bearer token all the same.
    canaries.secret("bob's first State (random part)", &first_state[4..]);
    canaries.secret("bob's second State (random part)", &second_state[4..]);
    canaries.codes.extend([wrong, right]);

    // A wrong password: the directory's Reject.
    let r = nas
        .access(&home(None), Some(WRONG_PASSWORD.as_bytes()))
        .await?;
    expect(&r, Code::AccessReject, "wrong password")?;
    canaries.reasons.push("directory_reject");

    // Append mode: password,code in User-Password; a wrong code never reaches the directory.
    let wrong = wrong_code(ALICE_SEED)?;
    let r = append_nas
        .access(
            &attrs(ALICE.name.as_bytes(), HOME, None),
            Some(format!("{},{wrong}", ALICE.password).as_bytes()),
        )
        .await?;
    expect(&r, Code::AccessReject, "append, wrong code")?;
    canaries.reasons.push("otp_bad");
    let right = oathtool(ALICE_SEED, 0)?;
    let r = append_nas
        .access(
            &attrs(ALICE.name.as_bytes(), HOME, None),
            Some(format!("{},{right}", ALICE.password).as_bytes()),
        )
        .await?;
    expect(&r, Code::AccessAccept, "append, right code")?;
    canaries.reasons.push("otp_ok");
    canaries.codes.extend([wrong, right]);

    // A hostile User-Name: from a hostile station (no usable name for a second factor, so portvakt rejects) and
    // from inside (so the name goes to the directory).
    let r = nas
        .access(
            &[
                attribute(attr::USER_NAME, HOSTILE_USER),
                attribute(attr::CALLING_STATION_ID, HOSTILE_STATION),
            ],
            Some(BOB.password.as_bytes()),
        )
        .await?;
    expect(&r, Code::AccessReject, "hostile name and station")?;
    canaries.reasons.push("bad_user_name");
    let r = nas
        .access(
            &attrs(HOSTILE_USER, TRUSTED_STATION, None),
            Some(BOB.password.as_bytes()),
        )
        .await?;
    expect(&r, Code::AccessReject, "hostile name from inside")?;
    canaries.reasons.push("directory_reject");

    // Requests that are dropped, and logged at debug level only: a wrong secret, and a source that is no client.
    for (local, secret) in [
        ("127.0.0.1:0", "Canary-Not-The-NAS-Secret-0b"),
        ("127.0.0.3:0", NAS_SECRET),
    ] {
        let mut stranger = RadiusClient::bind(local.parse()?, served, Secret::new(secret)).await?;
        stranger.timeout = Duration::from_millis(300);
        stranger.retries = 0;
        let r = stranger
            .access(&home(None), Some(BOB.password.as_bytes()))
            .await;
        ensure!(r.is_err(), "a reply to a request from {local}: {r:?}");
    }
    Ok(())
}

/// The text forms a leaked secret could take in a log line.
fn forms(bytes: &[u8]) -> Vec<String> {
    let mut forms = vec![
        hex::encode(bytes),
        hex::encode_upper(bytes),
        format!("{:?}", bytes).trim_end_matches(']').to_owned(),
    ];
    if let Ok(text) = std::str::from_utf8(bytes) {
        forms.push(text.to_owned());
    }
    forms
}

/// Every place `needle` occurs in `haystack` as a whole token: not preceded or followed by a letter or digit.
fn token_hits(haystack: &str, needle: &str) -> usize {
    haystack
        .match_indices(needle)
        .filter(|(at, _)| {
            let before = haystack[..*at].chars().next_back();
            let after = haystack[at + needle.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_alphanumeric())
                && !after.is_some_and(|c| c.is_ascii_alphanumeric())
        })
        .count()
}

/// A JSON log line without its timestamp, whose fraction of a second is 6 arbitrary digits.
fn without_timestamp(line: &str) -> String {
    let Some(start) = line.find("\"timestamp\":\"") else {
        return line.to_owned();
    };
    let value = start + "\"timestamp\":\"".len();
    match line[value..].find('"') {
        Some(end) => format!("{}{}", &line[..start], &line[value + end + 1..]),
        None => line.to_owned(),
    }
}

/// The canary hits in `output`, described.
fn leaks(output: &[u8], canaries: &Canaries) -> Vec<String> {
    let text = String::from_utf8_lossy(output);
    let mut found = Vec::new();
    for (name, bytes) in &canaries.secrets {
        for form in forms(bytes) {
            let n = text.matches(form.as_str()).count();
            if n > 0 {
                found.push(format!("{name} as {form:?}: {n}×"));
            }
        }
    }
    let untimed: String = text
        .lines()
        .map(without_timestamp)
        .collect::<Vec<_>>()
        .join("\n");
    for code in &canaries.codes {
        let n = token_hits(&untimed, code);
        if n > 0 {
            found.push(format!("OTP code {code}: {n}×"));
        }
    }
    found
}

fn enrol(config: &Path, dir: &TestDir, cli_output: &mut Vec<u8>) -> Result<()> {
    let config = config.to_str().context("config path")?;
    let key = dir.join("store.key");
    cli_output.extend(portvakt_cli(&[
        "store",
        "keygen",
        key.to_str().context("key path")?,
    ])?);
    for (user, seed) in [(ALICE.name, ALICE_SEED), (BOB.name, BOB_SEED)] {
        cli_output.extend(portvakt_cli(&["user", "--config", config, "add", user])?);
        cli_output.extend(portvakt_cli(&[
            "user",
            "--config",
            config,
            "import-totp",
            user,
            &base32(seed),
        ])?);
    }
    Ok(())
}

#[test]
fn no_secret_reaches_the_logs_and_audit_lines_are_one_json_object_each() -> Result<()> {
    let upstream = directory()?;
    let dir = TestDir::new("logs")?;
    let config = dir.write(
        "portvakt.toml",
        config(&dir, upstream.auth(), upstream.secret()),
    )?;
    let mut cli_output = Vec::new();
    enrol(&config, &dir, &mut cli_output)?;
    let mut served = Served::start(&dir, &config, "debug")?;

    let mut canaries = Canaries::default();
    for (name, secret) in [
        ("the NAS secret", NAS_SECRET),
        ("the append NAS's secret", APPEND_NAS_SECRET),
        ("the upstream secret", upstream.secret()),
        ("alice's password", ALICE.password),
        ("bob's password", BOB.password),
        ("the wrong password", WRONG_PASSWORD),
    ] {
        canaries.secret(name, secret);
    }
    for (name, seed) in [("alice's seed", ALICE_SEED), ("bob's seed", BOB_SEED)] {
        canaries.secret(name, seed);
        canaries.secret(format!("{name} in base32"), base32(seed));
    }
    let store_key = std::fs::read_to_string(dir.join("store.key"))?;
    canaries.secret("the store key", store_key.trim());
    canaries.secret("the store key's octets", hex::decode(store_key.trim())?);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let run = rt.block_on(logins(served.auth(), &mut canaries));
    let (status, _) = served.terminate(crate::support::STOP_GRACE)?;
    run?;
    assert!(status.success(), "portvakt serve exit {status}");

    let stderr = served.stderr_bytes()?;
    let stdout = served.stdout_bytes()?;
    let leaked = leaks(&[&stderr[..], &stdout[..]].concat(), &canaries);
    assert!(
        leaked.is_empty(),
        "secrets in the daemon's output:\n{}\n--- stderr ---\n{}",
        leaked.join("\n"),
        String::from_utf8_lossy(&stderr)
    );
    let leaked = leaks(&cli_output, &canaries);
    assert!(
        leaked.is_empty(),
        "secrets in the CLI's output:\n{}\n---\n{}",
        leaked.join("\n"),
        String::from_utf8_lossy(&cli_output)
    );

    // No raw control bytes or broken UTF-8 anywhere: the hostile name cannot reach a terminal or split a line.
    for (name, output) in [("stderr", &stderr), ("stdout", &stdout)] {
        ensure!(
            !output.iter().any(|b| *b == 0x1b || *b == 0),
            "raw ESC or NUL in {name}"
        );
        std::str::from_utf8(output).with_context(|| format!("{name} is not UTF-8"))?;
    }
    let lines = json_lines(&stderr)?;
    check_audit(&lines, &canaries)?;
    ensure!(
        stdout.is_empty(),
        "the daemon writes nothing to stdout: {}",
        String::from_utf8_lossy(&stdout)
    );
    eprintln!(
        "{} log lines ({} bytes) and {} bytes of CLI output searched for {} secrets in {} forms and {} codes: 0 hits",
        lines.len(),
        stderr.len(),
        cli_output.len(),
        canaries.secrets.len(),
        canaries
            .secrets
            .iter()
            .map(|(_, b)| forms(b).len())
            .sum::<usize>(),
        canaries.codes.len()
    );
    Ok(())
}

/// Every stderr line, parsed: each must be exactly one JSON object.
fn json_lines(stderr: &[u8]) -> Result<Vec<serde_json::Map<String, Value>>> {
    let text = std::str::from_utf8(stderr)?;
    ensure!(text.ends_with('\n'), "the last log line is complete");
    text.lines()
        .enumerate()
        .map(|(i, line)| match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(other) => anyhow::bail!("line {}: not an object: {other}", i + 1),
            Err(e) => anyhow::bail!("line {}: not JSON ({e}): {line}", i + 1),
        })
        .collect()
}

/// One audit line per answered request, with the reason the flow expects; the hostile name escaped in them.
fn check_audit(lines: &[serde_json::Map<String, Value>], canaries: &Canaries) -> Result<()> {
    let field = |line: &serde_json::Map<String, Value>, key: &str| {
        line.get(key).and_then(Value::as_str).map(str::to_owned)
    };
    let audit: Vec<_> = lines
        .iter()
        .filter(|l| field(l, "target").as_deref() == Some("portvakt::audit"))
        .collect();
    let reasons: Vec<String> = audit
        .iter()
        .map(|l| field(l, "reason").unwrap_or_default())
        .collect();
    let mut expected: Vec<String> = canaries.reasons.iter().map(|r| r.to_string()).collect();
    let mut got = reasons.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "one audit line per reply, with its reason");
    for line in &audit {
        for key in [
            "client",
            "user",
            "nas",
            "station",
            "result",
            "reason",
            "duration_ms",
        ] {
            ensure!(line.contains_key(key), "audit line without {key}: {line:?}");
        }
    }
    let hostile: Vec<_> = audit
        .iter()
        .filter_map(|l| field(l, "user"))
        .filter(|u| u.starts_with("mallory"))
        .collect();
    assert_eq!(
        hostile,
        [HOSTILE_USER_ESCAPED, HOSTILE_USER_ESCAPED],
        "the hostile User-Name, escaped, in both of its audit lines"
    );
    ensure!(
        !lines
            .iter()
            .any(|l| field(l, "message").is_some_and(|m| m.starts_with("forged"))),
        "a forged log line became a line of its own"
    );
    let decision = audit
        .iter()
        .find(|l| field(l, "reason").as_deref() == Some("bad_user_name"))
        .and_then(|l| field(l, "decision"))
        .context("no decision in the bad_user_name line")?;
    ensure!(
        decision.contains(HOSTILE_STATION_ESCAPED),
        "the hostile Calling-Station-Id, escaped, in the decision: {decision}"
    );
    let stations: Vec<_> = audit.iter().filter_map(|l| field(l, "station")).collect();
    ensure!(
        stations.iter().any(|s| s == HOSTILE_STATION_AUDIT),
        "the hostile Calling-Station-Id, escaped, as the station: {stations:?}"
    );
    ensure!(
        stations.iter().any(|s| s == HOME),
        "a plain Calling-Station-Id as sent: {stations:?}"
    );
    // The drops were logged (so debug level was on), with no more than their source.
    let messages: Vec<String> = lines.iter().filter_map(|l| field(l, "message")).collect();
    for wanted in [
        "request dropped",
        "dropping requests from an address that is no client",
    ] {
        ensure!(
            messages.iter().any(|m| m == wanted),
            "no {wanted:?} line: {messages:#?}"
        );
    }
    Ok(())
}

/// The detector itself finds what it is meant to find; otherwise the test above could not fail.
#[test]
fn the_canary_search_finds_each_form_and_ignores_timestamps() {
    let mut canaries = Canaries::default();
    canaries.secret("seed", b"Seed\x01\xff");
    canaries.codes.insert("123456".to_owned());
    let line = |rest: &str| format!("{{\"timestamp\":\"2026-01-01T00:00:00.123456Z\",{rest}}}\n");
    assert!(leaks(line("\"a\":1").as_bytes(), &canaries).is_empty());
    for leak in [
        "\"v\":\"5365656401ff\"",
        "\"v\":\"5365656401FF\"",
        "\"v\":\"[83, 101, 101, 100, 1, 255]\"",
        "\"code\":\"123456\"",
        "\"pw\":\"hemmelig,123456\"",
    ] {
        assert_eq!(leaks(line(leak).as_bytes(), &canaries).len(), 1, "{leak}");
    }
    // Inside a longer token (a port, a hex string) a code is no hit.
    assert!(leaks(line("\"n\":\"a1234567\"").as_bytes(), &canaries).is_empty());
}
