//! End-to-end tests of `portvakt user …` and the store underneath it, through the CLI
//! module's own entry point (`cli::user::run`) with in-memory or piped input and output,
//! on a real store file in a temporary directory.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use portvakt::cli::user::{UserCommand, run};
use portvakt::cli::{CliError, CliIo};
use portvakt::factor::totp::{self, Algorithm, TotpSecret};
use portvakt::store::{KeyError, Store, StoreError, StoreKey, StoreOptions};
use qrcode::{Color, QrCode};

/// A store in a temporary directory with its key file, as an operator would set it up.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        StoreKey::generate()
            .unwrap()
            .write_new_file(&dir.path().join("store.key"))
            .unwrap();
        Self { dir }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("users.db")
    }

    fn key(&self) -> StoreKey {
        StoreKey::from_file(&self.dir.path().join("store.key")).unwrap()
    }

    fn open(&self) -> Store {
        Store::open(&self.db(), &self.key()).unwrap()
    }

    /// Raw SQL on the store file, as an attacker with file access (or a test) would.
    fn sql(&self, sql: &str) {
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        conn.execute_batch(sql).unwrap();
    }
}

/// Parses a command line the way `main` will (`portvakt user …`).
#[derive(Parser)]
struct UserCli {
    #[command(subcommand)]
    cmd: UserCommand,
}

fn cmd(args: &[&str]) -> UserCommand {
    UserCli::try_parse_from(std::iter::once("user").chain(args.iter().copied()))
        .unwrap()
        .cmd
}

/// Runs a command with `input`, returning its result and everything it printed.
fn exec(store: &Store, args: &[&str], input: &str) -> (Result<(), CliError>, String) {
    let mut out = Vec::new();
    let result = {
        let mut io = CliIo::new(input.as_bytes(), &mut out);
        run(store, cmd(args), &mut io)
    };
    (result, String::from_utf8(out).unwrap())
}

fn ok(store: &Store, args: &[&str], input: &str) -> String {
    let (result, out) = exec(store, args, input);
    result.unwrap_or_else(|e| panic!("{args:?}: {e}\n{out}"));
    out
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------- QR decoding

/// Decodes the terminal QR (Dense1x2, light modules drawn) back into rows of modules,
/// `true` = dark, including the quiet zone.
fn decode_dense1x2(lines: &[String]) -> Vec<Vec<bool>> {
    let width = lines[0].chars().count();
    let mut rows = Vec::new();
    for line in lines {
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        for c in line.chars() {
            // A drawn half is a light module (the rendering is inverted for dark terminals).
            let (t, b) = match c {
                ' ' => (false, false),
                '▀' => (true, false),
                '▄' => (false, true),
                '█' => (true, true),
                other => panic!("unexpected character {other:?} in the QR"),
            };
            top.push(!t);
            bottom.push(!b);
        }
        assert_eq!(top.len(), width, "ragged QR line");
        rows.push(top);
        rows.push(bottom);
    }
    // A square of odd side leaves the bottom half of the last line unused.
    rows.truncate(width);
    assert_eq!(rows.len(), width, "the QR is square");
    rows
}

/// Checks that `lines` are the QR code of `uri`, module for module, with a light quiet zone.
fn assert_qr_encodes(lines: &[String], uri: &str) {
    let expected = QrCode::new(uri.as_bytes()).unwrap();
    let n = expected.width();
    let modules = decode_dense1x2(lines);
    assert_eq!(modules.len(), n + 8, "4-module quiet zone on each side");
    for (y, row) in modules.iter().enumerate() {
        for (x, &dark) in row.iter().enumerate() {
            let inside = (4..n + 4).contains(&x) && (4..n + 4).contains(&y);
            let want = inside && expected[(x - 4, y - 4)] == Color::Dark;
            assert_eq!(dark, want, "module ({x}, {y})");
        }
    }
}

/// The secret and parameters from an `otpauth://` URI, parsed independently of our writer.
fn secret_from_uri(uri: &str) -> TotpSecret {
    let query = uri.split_once('?').unwrap().1;
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
    };
    let digits = param("digits").map_or(6, |d| d.parse().unwrap());
    let period = param("period").map_or(30, |p| p.parse().unwrap());
    let algorithm: Algorithm = param("algorithm").map_or(Algorithm::Sha1, |a| a.parse().unwrap());
    TotpSecret::from_base32(param("secret").unwrap(), digits, period, algorithm).unwrap()
}

// ---------------------------------------------------------------- enrolment

/// What an interactive enrolment printed before asking for a code.
struct Shown {
    qr: Vec<String>,
    uri: String,
}

/// Runs `enroll-totp` on a thread with piped stdin/stdout, like a terminal session: reads
/// the screen up to the URI, then answers with `answer(secret)` for each prompt.
fn enrol_interactively(
    store: &Store,
    user: &str,
    answers: impl FnOnce(&TotpSecret) -> Vec<String>,
) -> (Result<(), CliError>, Shown, String) {
    let (in_r, mut in_w) = std::io::pipe().unwrap();
    let (out_r, out_w) = std::io::pipe().unwrap();
    std::thread::scope(|s| {
        let cli = s.spawn(move || {
            let mut io = CliIo::new(BufReader::new(in_r), out_w);
            run(store, cmd(&["enroll-totp", user]), &mut io)
        });
        let mut screen = BufReader::new(out_r);
        let mut lines = Vec::new();
        // Bounded by the output: read_line returns 0 at EOF if the command stops early.
        loop {
            let mut line = String::new();
            assert_ne!(
                screen.read_line(&mut line).unwrap(),
                0,
                "output ended before the URI: {lines:?}"
            );
            let line = line.trim_end_matches('\n').to_owned();
            let is_uri = line.starts_with("otpauth://");
            lines.push(line);
            if is_uri {
                break;
            }
        }
        let uri = lines.last().unwrap().clone();
        // The QR is the block between the first two blank lines.
        let start = lines.iter().position(String::is_empty).unwrap() + 1;
        let end = start + lines[start..].iter().position(String::is_empty).unwrap();
        let qr = lines[start..end].to_vec();

        let secret = secret_from_uri(&uri);
        for answer in answers(&secret) {
            writeln!(in_w, "{answer}").unwrap();
        }
        drop(in_w); // end of input after the answers
        let mut rest = String::new();
        screen.read_to_string(&mut rest).unwrap();
        (cli.join().unwrap(), Shown { qr, uri }, rest)
    })
}

#[test]
fn enrolment_prints_a_decodable_qr_activates_and_the_code_cannot_be_replayed() {
    let fx = Fixture::new();
    let store = fx.open();
    ok(&store, &["add", "Alice"], "");
    let mut typed = String::new();
    let (result, shown, rest) = enrol_interactively(&store, "alice", |secret| {
        typed = totp::current_code(secret, unix_now());
        vec![typed.clone()]
    });
    result.unwrap();
    assert!(rest.contains("TOTP is active for alice."), "{rest}");

    // The printed QR carries exactly the printed URI.
    assert_qr_encodes(&shown.qr, &shown.uri);
    assert!(
        shown
            .uri
            .starts_with("otpauth://totp/portvakt:alice?secret="),
        "{}",
        shown.uri
    );

    // The stored secret is the one shown, and the enrolment code is used up.
    let stored = store.totp_secret("alice").unwrap().expect("active");
    assert_eq!(stored.bytes(), secret_from_uri(&shown.uri).bytes());
    assert_eq!(stored.bytes().len(), 20, "160-bit secret");
    let step = totp::verify(&stored, &typed, unix_now(), 1).expect("still within the window");
    assert!(
        !store.accept_totp_step("alice", step).unwrap(),
        "enrolment code replayed for a login"
    );
    let info = store.user("alice").unwrap().unwrap().totp.unwrap();
    assert!(info.active);
    assert_eq!(info.last_step, Some(step));

    // show and list never print the secret.
    let b32 = shown
        .uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    for args in [
        &["show", "alice"][..],
        &["show", "alice", "--json"],
        &["list"],
        &["list", "--json"],
    ] {
        let out = ok(&store, args, "");
        assert!(
            !out.contains(&b32) && !out.contains(&hex_of(stored.bytes())),
            "{args:?} leaked the secret"
        );
    }

    // A second enrolment is refused while TOTP is active.
    let (result, out) = exec(&store, &["enroll-totp", "alice"], "");
    assert!(matches!(result, Err(CliError::Refused(_))), "{out}");
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn enrolment_with_wrong_codes_stays_pending() {
    let fx = Fixture::new();
    let store = fx.open();
    store.add_user("bob").unwrap();
    let (result, _, rest) = enrol_interactively(&store, "bob", |secret| {
        // A valid code with its first digit changed is wrong (unless another step in the
        // window happens to produce it: a one-in-a-million chance per attempt).
        let good = totp::current_code(secret, unix_now());
        let first = (good.as_bytes()[0] - b'0' + 1) % 10;
        let wrong = format!("{first}{}", &good[1..]);
        vec![wrong.clone(), "12345".to_owned(), wrong]
    });
    assert!(
        matches!(result, Err(CliError::EnrolmentFailed(3))),
        "{result:?}"
    );
    assert_eq!(rest.matches("That code is not valid").count(), 3, "{rest}");
    let info = store.user("bob").unwrap().unwrap().totp.unwrap();
    assert!(!info.active);
    assert!(
        store.totp_secret("bob").unwrap().is_none(),
        "a pending secret cannot log in"
    );

    // End of input mid-enrolment aborts, also leaving nothing active.
    let (result, _) = exec(&store, &["enroll-totp", "bob"], "");
    assert!(matches!(result, Err(CliError::Aborted)));
    assert!(store.totp_secret("bob").unwrap().is_none());
    // An unknown user is an error with the "no user" exit code.
    let (result, _) = exec(&store, &["enroll-totp", "nobody"], "");
    assert_eq!(result.unwrap_err().exit_code(), 67);
}

// ---------------------------------------------------------------- import

#[test]
fn import_totp_from_the_command_line_or_a_prompt() {
    let fx = Fixture::new();
    let store = fx.open();
    store.add_user("alice").unwrap();
    store.add_user("bob").unwrap();
    // "12345678901234567890" in base32, typed lowercase with spaces: the RFC 6238 SHA1 seed.
    let out = ok(
        &store,
        &[
            "import-totp",
            "alice",
            "gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
            "--digits",
            "8",
        ],
        "",
    );
    assert!(out.contains("8 digits"), "{out}");
    let alice = store.totp_secret("alice").unwrap().unwrap();
    assert_eq!(totp::current_code(&alice, 59), "94287082");

    // `-` reads the secret from input instead of argv, and never echoes it.
    let out = ok(
        &store,
        &[
            "import-totp",
            "bob",
            "-",
            "--algorithm",
            "SHA-256",
            "--period",
            "60",
        ],
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA====\n",
    );
    assert!(!out.contains("GEZD"), "{out}");
    let bob = store.totp_secret("bob").unwrap().unwrap();
    assert_eq!(
        (bob.algorithm(), bob.period(), bob.bytes().len()),
        (Algorithm::Sha256, 60, 32)
    );

    for (args, what) in [
        (
            &["import-totp", "alice", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"][..],
            "active TOTP",
        ),
        (
            &["import-totp", "nobody", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"],
            "no user",
        ),
    ] {
        let (result, _) = exec(&store, args, "");
        assert!(result.is_err(), "{what}");
    }
    store.add_user("carol").unwrap();
    let (result, _) = exec(&store, &["import-totp", "carol", "GEZDGNBVGY3TQOJ1"], "");
    assert!(matches!(result, Err(CliError::Totp(_))), "bad base32");
    let (result, _) = exec(
        &store,
        &[
            "import-totp",
            "carol",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "--digits",
            "9",
        ],
        "",
    );
    assert!(matches!(result, Err(CliError::Totp(_))), "9 digits");
    assert!(
        UserCli::try_parse_from(["user", "import-totp", "carol", "X", "--algorithm", "md5"])
            .is_err()
    );
}

const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

#[test]
fn csv_import_with_a_bad_line_imports_nothing_and_names_the_lines() {
    let fx = Fixture::new();
    let store = fx.open();
    store.add_user("dave").unwrap();
    store
        .set_totp(
            "dave",
            &TotpSecret::from_base32(SEED, 6, 30, Algorithm::Sha1).unwrap(),
            true,
        )
        .unwrap();
    let csv = format!(
        "user,secret,digits,period,algorithm\n\
         alice,{SEED},6,30,sha1\n\
         bob,NOT-BASE32-1,6,30,sha1\n\
         carol,{SEED},8,60,sha512\n\
         dave,{SEED},,,\n"
    );
    let (result, out) = exec(&store, &["import", "-"], &csv);
    assert!(
        matches!(result, Err(CliError::ImportRefused(2))),
        "{result:?}\n{out}"
    );
    assert!(out.contains("line 3: bob:"), "{out}");
    assert!(
        out.contains("line 5: dave:") && out.contains("already has"),
        "{out}"
    );
    assert!(!out.contains(SEED), "{out}");
    assert!(store.user("alice").unwrap().is_none(), "nothing imported");
    assert_eq!(store.list_users().unwrap().len(), 1);

    // From a file, skipping the bad lines.
    let path = fx.dir.path().join("import.csv");
    std::fs::write(&path, &csv).unwrap();
    let out = ok(
        &store,
        &["import", path.to_str().unwrap(), "--skip-invalid"],
        "",
    );
    assert!(
        out.contains("Imported 2 TOTP secret(s); created 2 user(s); skipped 2 line(s)."),
        "{out}"
    );
    let (result, _) = exec(&store, &["import", "/nonexistent/import.csv"], "");
    let err = result.unwrap_err();
    assert!(err.to_string().contains("/nonexistent/import.csv"), "{err}");
    assert_eq!(err.exit_code(), 66);
    let carol = store.totp_secret("carol").unwrap().unwrap();
    assert_eq!(
        (carol.digits(), carol.period(), carol.algorithm()),
        (8, 60, Algorithm::Sha512)
    );
    assert!(store.user("alice").unwrap().unwrap().totp.unwrap().active);
}

// ---------------------------------------------------------------- helpdesk commands

#[test]
fn helpdesk_commands_and_json() {
    let fx = Fixture::new();
    let store = fx.open();
    assert_eq!(
        ok(&store, &["add", "KOMMUNE\\Erik"], ""),
        "Added user kommune\\erik.\n"
    );
    ok(&store, &["add", "Åse"], "");
    let (result, _) = exec(&store, &["add", "åse"], "");
    assert_eq!(result.unwrap_err().exit_code(), 65, "duplicate");
    ok(&store, &["import-totp", "åse", SEED], "");
    store.record_failure("åse").unwrap();

    let list = ok(&store, &["list"], "");
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("USER"), "{list}");
    assert!(
        lines[1].starts_with("kommune\\erik") && lines[1].contains("none"),
        "{list}"
    );
    assert!(
        lines[2].starts_with("åse") && lines[2].contains("active"),
        "{list}"
    );
    assert_eq!(lines[3], "2 user(s).");

    let json: serde_json::Value =
        serde_json::from_str(&ok(&store, &["show", "ÅSE", "--json"], "")).unwrap();
    assert_eq!(json["name"], "åse");
    assert_eq!(json["enabled"], true);
    assert_eq!(json["failures"], 1);
    assert_eq!(json["totp"]["algorithm"], "SHA1");
    assert_eq!(json["totp"]["digits"], 6);
    assert_eq!(json["totp"]["active"], true);
    assert!(json["created_at"].as_str().unwrap().ends_with('Z'));
    let keys: Vec<&str> = json["totp"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        !keys
            .iter()
            .any(|k| k.contains("secret") || k.contains("sealed")),
        "{keys:?}"
    );

    ok(&store, &["disable", "åse"], "");
    assert!(!store.user("åse").unwrap().unwrap().enabled);
    assert!(ok(&store, &["show", "åse"], "").contains("enabled:   no"));
    ok(&store, &["enable", "åse"], "");
    ok(&store, &["unlock", "åse"], "");
    assert_eq!(store.user("åse").unwrap().unwrap().failures, 0);
    ok(&store, &["reset", "åse"], "");
    assert!(ok(&store, &["show", "åse"], "").contains("totp:      none"));
    ok(&store, &["remove", "åse"], "");
    assert!(store.user("åse").unwrap().is_none());
    let (result, _) = exec(&store, &["remove", "åse"], "");
    assert_eq!(result.unwrap_err().exit_code(), 67);
    let all: serde_json::Value =
        serde_json::from_str(&ok(&store, &["list", "--json"], "")).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1);
}

#[test]
fn passwd_asks_twice_and_never_echoes() {
    let fx = Fixture::new();
    let store = fx.open();
    store.add_user("alice").unwrap();
    let (result, _) = exec(
        &store,
        &["passwd", "alice"],
        "hunter2hunter2\nhunter2hunter3\n",
    );
    assert!(matches!(result, Err(CliError::PasswordMismatch)));
    let (result, _) = exec(&store, &["passwd", "alice"], "short\nshort\n");
    assert!(matches!(result, Err(CliError::Refused(_))));
    let (result, _) = exec(&store, &["passwd", "alice"], "only-one-line\n");
    assert!(matches!(result, Err(CliError::Aborted)));
    assert!(
        !store.user("alice").unwrap().unwrap().has_password,
        "nothing set so far"
    );

    let out = ok(&store, &["passwd", "alice"], "Sommer2026!\nSommer2026!\n");
    assert!(!out.contains("Sommer"), "{out}");
    assert!(store.verify_password("alice", b"Sommer2026!").unwrap());
    assert!(!store.verify_password("alice", b"sommer2026!").unwrap());
}

// ---------------------------------------------------------------- keys and tampering

#[test]
fn swapping_two_users_sealed_rows_is_detected() {
    let fx = Fixture::new();
    let store = fx.open();
    for (name, fill) in [("alice", 1u8), ("bob", 2)] {
        store.add_user(name).unwrap();
        let secret = TotpSecret::new(
            zeroize::Zeroizing::new(vec![fill; 20]),
            6,
            30,
            Algorithm::Sha1,
        )
        .unwrap();
        store.set_totp(name, &secret, true).unwrap();
    }
    fx.sql(
        "CREATE TEMP TABLE saved AS SELECT user_id, nonce, sealed FROM totp; \
         UPDATE totp SET \
           nonce = (SELECT nonce FROM saved WHERE saved.user_id != totp.user_id), \
           sealed = (SELECT sealed FROM saved WHERE saved.user_id != totp.user_id);",
    );
    for name in ["alice", "bob"] {
        let err = store.totp_secret(name).unwrap_err();
        assert!(
            matches!(&err, StoreError::Tampered { user } if user == name),
            "{err}"
        );
    }
    // The login path fails closed; the CLI still shows the user (no secret needed).
    assert!(store.user("alice").unwrap().unwrap().totp.is_some());
}

#[test]
fn the_wrong_key_or_a_readable_key_file_stops_startup() {
    let fx = Fixture::new();
    fx.open().add_user("alice").unwrap();

    let err = Store::open(&fx.db(), &StoreKey::generate().unwrap())
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");

    let key_path = fx.dir.path().join("store.key");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = StoreKey::from_file(&key_path).unwrap_err();
    assert!(
        matches!(err, KeyError::Permissions { mode: 0o644, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("0644") && err.to_string().contains("store.key"),
        "{err}"
    );
}

#[test]
fn reopening_keeps_users_and_the_last_step() {
    let fx = Fixture::new();
    {
        let store = fx.open();
        store.add_user("alice").unwrap();
        store
            .set_totp(
                "alice",
                &TotpSecret::from_base32(SEED, 6, 30, Algorithm::Sha1).unwrap(),
                true,
            )
            .unwrap();
        assert!(store.accept_totp_step("alice", 60_000_000).unwrap());
        store.record_failure("alice").unwrap();
    }
    let store = fx.open();
    let alice = store.user("alice").unwrap().unwrap();
    assert_eq!(alice.totp.unwrap().last_step, Some(60_000_000));
    assert_eq!(alice.failures, 1);
    assert!(
        !store.accept_totp_step("alice", 60_000_000).unwrap(),
        "replay after restart"
    );
    assert!(store.accept_totp_step("alice", 60_000_001).unwrap());
}

// ---------------------------------------------------------------- concurrency

/// The daemon and the CLI each hold a `Store` on the same file; both write from several
/// threads at once. Every write must succeed (busy_timeout, IMMEDIATE transactions), every
/// failure must be counted, and each step accepted exactly once.
#[test]
fn two_handles_write_concurrently() {
    const THREADS: usize = 4;
    const ROUNDS: u64 = 25;
    let fx = Fixture::new();
    let options = StoreOptions {
        max_connections: 3,
        ..StoreOptions::default()
    };
    let daemon = Store::open_with(&fx.db(), &fx.key(), &options).unwrap();
    let cli = Store::open_with(&fx.db(), &fx.key(), &options).unwrap();
    cli.add_user("alice").unwrap();
    cli.set_totp(
        "alice",
        &TotpSecret::from_base32(SEED, 6, 30, Algorithm::Sha1).unwrap(),
        true,
    )
    .unwrap();

    let accepted = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (daemon, cli, accepted) = (&daemon, &cli, &accepted);
            s.spawn(move || {
                for round in 0..ROUNDS {
                    // Every thread submits the same step: exactly one may win it.
                    let handle = if t % 2 == 0 { daemon } else { cli };
                    if handle.accept_totp_step("alice", 1_000 + round).unwrap() {
                        accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    daemon.record_failure("alice").unwrap();
                    cli.add_user(&format!("user-{t}-{round}")).unwrap();
                    daemon.user(&format!("user-{t}-{round}")).unwrap().unwrap();
                    cli.set_enabled("alice", round % 2 == 0).unwrap();
                }
            });
        }
    });
    let alice = daemon.user("alice").unwrap().unwrap();
    assert_eq!(alice.failures as usize, THREADS * ROUNDS as usize);
    assert_eq!(alice.totp.unwrap().last_step, Some(1_000 + ROUNDS - 1));
    // Rounds interleave across threads, so a later step can make an earlier one stale;
    // but no step is ever accepted twice, and the first and last are always taken.
    let accepted = accepted.into_inner();
    assert!((2..=ROUNDS as usize).contains(&accepted), "{accepted}");
    assert_eq!(
        cli.list_users().unwrap().len(),
        1 + THREADS * ROUNDS as usize
    );
}

/// The same valid code submitted concurrently through both handles gives exactly one accept.
#[test]
fn one_code_many_submissions_one_accept() {
    let fx = Fixture::new();
    let a = fx.open();
    let b = fx.open();
    a.add_user("alice").unwrap();
    a.set_totp(
        "alice",
        &TotpSecret::from_base32(SEED, 6, 30, Algorithm::Sha1).unwrap(),
        true,
    )
    .unwrap();
    for step in 1..=20u64 {
        let wins = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..6 {
                let (store, wins) = (if t % 2 == 0 { &a } else { &b }, &wins);
                s.spawn(move || {
                    if store.accept_totp_step("alice", step).unwrap() {
                        wins.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(wins.into_inner(), 1, "step {step}");
    }
}

#[test]
fn store_files_stay_private() {
    let fx = Fixture::new();
    let store = fx.open();
    store.add_user("alice").unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let path: PathBuf = format!("{}{suffix}", fx.db().display()).into();
        assert_eq!(mode_of(&path), 0o600, "{}", path.display());
    }
    assert_eq!(mode_of(&fx.dir.path().join("store.key")), 0o600);
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---------------------------------------------------------------- phone, push, default

#[test]
fn add_push_makes_a_random_topic_and_shows_it_once() {
    let fx = Fixture::new();
    let store = fx.open();
    store.add_user("alice").unwrap();
    let out = ok(&store, &["add-push", "alice", "--label", "work phone"], "");
    let topic = out.lines().last().unwrap().to_owned();
    assert!(topic.starts_with("pv-") && topic.len() == 25, "{out}");
    let topics = store.push_topics("alice").unwrap();
    assert_eq!(topics[0].1.as_str(), topic);
    assert_eq!(topics[0].0.label, "work phone");
    let shown = ok(&store, &["show", "alice"], "");
    assert!(shown.contains("device 1 (work phone, ntfy)"), "{shown}");
    assert!(
        !shown.contains(&topic),
        "show never prints the topic: {shown}"
    );
    assert!(!ok(&store, &["list", "--json"], "").contains(&topic));

    let (result, _) = exec(&store, &["add-push", "alice", "--topic", "alice"], "");
    assert!(
        matches!(result, Err(CliError::Refused(_))),
        "short topics are refused"
    );
    ok(
        &store,
        &[
            "add-push",
            "alice",
            "--topic",
            "alice",
            "--allow-short-topic",
        ],
        "",
    );
    let (result, _) = exec(&store, &["add-push", "alice", "--topic", "a/b"], "");
    assert!(matches!(result, Err(CliError::Refused(_))));
    ok(&store, &["remove-push", "alice", "1"], "");
    let (result, _) = exec(&store, &["remove-push", "alice", "1"], "");
    assert_eq!(result.unwrap_err().exit_code(), 65);
    assert_eq!(store.push_devices("alice").unwrap().len(), 1);
}

#[test]
fn set_phone_needs_a_gateway_or_an_administrators_word() {
    let fx = Fixture::new();
    let store = fx.open();
    store.add_user("alice").unwrap();
    let (result, _) = exec(&store, &["set-phone", "alice", "+4790000123"], "");
    assert!(
        matches!(result, Err(CliError::Refused(ref m)) if m.contains("--verified")),
        "{result:?}"
    );
    assert_eq!(
        store.pending_phone("alice").unwrap(),
        None,
        "nothing stored without a code"
    );
    let (result, _) = exec(
        &store,
        &["set-phone", "alice", "90000123", "--verified"],
        "",
    );
    assert!(
        matches!(result, Err(CliError::Refused(_))),
        "no country code"
    );
    let out = ok(
        &store,
        &["set-phone", "alice", "+47 900 00 123", "--verified"],
        "",
    );
    assert!(
        out.contains("+47 ••• •• 123") && !out.contains("90000123"),
        "{out}"
    );
    let shown = ok(&store, &["show", "alice"], "");
    assert!(
        shown.contains("phone:     +47 ••• •• 123 (verified)"),
        "{shown}"
    );
    ok(&store, &["remove-phone", "alice"], "");
    let (result, _) = exec(&store, &["remove-phone", "alice"], "");
    assert!(matches!(result, Err(CliError::Refused(_))));
}

#[test]
fn set_default_accepts_only_enrolled_methods() {
    let fx = Fixture::new();
    let store = fx.open();
    store.add_user("alice").unwrap();
    let shown = ok(&store, &["show", "alice"], "");
    assert!(shown.contains("default:   push (usable: none)"), "{shown}");
    let (result, _) = exec(&store, &["set-default", "alice", "sms"], "");
    assert!(result.is_err());
    assert!(UserCli::try_parse_from(["user", "set-default", "alice", "call"]).is_err());
    ok(&store, &["import-totp", "alice", SEED], "");
    ok(
        &store,
        &["set-phone", "alice", "+4790000123", "--verified"],
        "",
    );
    ok(&store, &["set-default", "alice", "SMS"], "");
    let alice = store.user("alice").unwrap().unwrap();
    assert_eq!(alice.default_method, portvakt::factor::Method::Sms);
    let shown = ok(&store, &["show", "alice"], "");
    assert!(
        shown.contains("default:   sms (usable: sms, totp)"),
        "{shown}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&store, &["show", "alice", "--json"], "")).unwrap();
    assert_eq!(json["default_method"], "sms");
    assert_eq!(json["phone_verified"], true);
    assert!(ok(&store, &["list"], "").contains("sms, totp"));
}
