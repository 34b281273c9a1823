//! `portvakt check-config` on the example configurations: valid ones exit 0, invalid
//! ones exit 64 and name the offending key (given in each file's `# expect:` line).

use std::path::{Path, PathBuf};
use std::process::Command;

fn check(path: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portvakt"))
        .args(["check-config", "--config"])
        .arg(path)
        .env_remove("PORTVAKT_LOG")
        .output()
        .expect("run portvakt");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no fixtures in {}", dir.display());
    v
}

#[test]
fn valid_configs_pass() {
    let mut all = files("tests/fixtures/config/valid");
    all.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/portvakt.toml"));
    for path in all {
        let (code, text) = check(&path);
        assert_eq!(code, 0, "{}: {text}", path.display());
        // It names the file with its digest, as the daemon logs it and as `sha256sum` prints it.
        let digest = {
            use sha2::Digest;
            hex::encode(&sha2::Sha256::digest(std::fs::read(&path).unwrap())[..6])
        };
        let named = format!("configuration OK: {} (sha256 {digest})", path.display());
        assert!(text.starts_with(&named), "want {named:?}, got: {text}");
    }
}

#[test]
fn invalid_configs_exit_64_and_name_the_key() {
    for path in files("tests/fixtures/config/invalid") {
        let text = std::fs::read_to_string(&path).unwrap();
        let key = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .expect("# expect: line");
        let (code, out) = check(&path);
        assert_eq!(code, 64, "{}: {out}", path.display());
        assert!(
            out.contains(&format!("Invalid configuration: {key}:")),
            "{}: want key {key}, got: {out}",
            path.display()
        );
    }
}

#[test]
fn environment_overrides_the_file() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/valid/minimal.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_portvakt"))
        .args(["check-config", "--config"])
        .arg(&path)
        .env("PORTVAKT__SERVER__DUPLICATE_WINDOW", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.duplicate_window"));
}

#[test]
fn missing_file_is_a_usage_error() {
    let (code, out) = check(Path::new("/nonexistent/portvakt.toml"));
    assert_eq!(code, 64, "{out}");
}
