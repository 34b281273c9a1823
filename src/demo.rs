//! `portvakt demo`: a self-contained instance on embedded defaults.
//!
//! Everything lives in a fresh temporary folder (0700): a store key, the store, and a
//! configuration that uses portvakt's built-in directory (`directory.mode = "local"`)
//! so no NPS or FreeRADIUS is needed. No sites are configured, so every login counts as
//! off-site and is asked for a TOTP code. The folder is removed when the demo stops.

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use portvakt::config::Settings;
use portvakt::daemon;
use portvakt::factor::totp;
use portvakt::radius::random;
use portvakt::store::StoreKey;

const USER: &str = "demo";

/// Removes the demo folder however the demo ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    random::fill(&mut b);
    hex::encode(b)
}

pub(crate) fn run(listen: SocketAddr) -> anyhow::Result<ExitCode> {
    let dir = TempDir(std::env::temp_dir().join(format!("portvakt-demo-{}", random_hex(6))));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir.0)
        .context("creating the demo folder")?;
    StoreKey::generate()?.write_new_file(&dir.0.join("store.key"))?;
    let nas_secret = random_hex(12);
    let password = random_hex(6);
    let config = write_config(&dir.0, listen, &nas_secret)?;
    let settings =
        Settings::load(&config).map_err(|e| anyhow::anyhow!("demo configuration: {e}"))?;

    let store = daemon::open_store(&settings)?.context("the demo configuration has a store")?;
    store.add_user(USER)?;
    store.set_password(USER, password.as_bytes())?;
    let secret = totp::generate_secret()?;
    store.set_totp(USER, &secret, true)?;
    drop(store);
    let uri = totp::otpauth_uri(&secret, "portvakt demo", USER)?;
    let qr = totp::qr_terminal(&uri)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);

    let mut text = String::new();
    macro_rules! say {
        () => { text.push('\n') };
        ($($arg:tt)*) => {{ text += &format!($($arg)*); text.push('\n'); }};
    }
    say!(
        "portvakt demo — a self-contained instance in {}",
        dir.0.display()
    );
    say!();
    say!("Scan this QR code with an authenticator app (or enter the URI by hand):");
    say!("{qr}");
    say!("{uri}");
    say!();
    say!(
        "Demo user: {USER}   password: {password}   (current code: {})",
        totp::current_code(&secret, now)
    );
    say!();
    let exe =
        std::env::current_exe().map_or_else(|_| "portvakt".to_owned(), |p| p.display().to_string());
    say!("In another terminal, log in as a VPN gateway would:");
    say!(
        "  {exe} login --server {listen} --secret {nas_secret} --user {USER} --password {password} \
         --attr Calling-Station-Id=203.0.113.7"
    );
    say!("It shows portvakt's challenge and asks for the code from the app.");
    say!("Stop the demo with Ctrl-C.");
    say!();
    // A closed stdout is reported, not a panic.
    std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?;
    Ok(super::serve(settings))
}

fn write_config(dir: &Path, listen: SocketAddr, nas_secret: &str) -> anyhow::Result<PathBuf> {
    let text = format!(
        r#"# Written by `portvakt demo`.
[server]
auth_listen = ["{listen}"]
acct_listen = []

[directory]
mode = "local"

[store]
path = "portvakt.db"
key_file = "store.key"

[mfa]
language = "en"

[[clients]]
name = "demo-nas"
address = "{ip}"
secret = "{nas_secret}"
"#,
        ip = listen.ip()
    );
    let path = dir.join("portvakt.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}
