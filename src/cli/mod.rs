//! Administration commands run from a shell: `portvakt user …`, `portvakt lockouts` and
//! `portvakt store keygen`.
//!
//! `main.rs` parses the command line with clap and calls [`user::run`], [`lockouts::run`] or
//! [`store_run`] with a [`CliIo`] over stdin/stdout. The commands never touch the terminal
//! directly, so tests drive them with in-memory buffers or pipes. They work on the same store
//! file as a running daemon (see [`crate::store`]).

pub mod lockouts;
pub mod user;

use std::io::{self, BufRead, Write};
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::factor::totp::TotpError;
use crate::store::{KeyError, StoreError, StoreKey};

/// Reads answers and writes results for a command.
///
/// Secrets (passwords, an imported TOTP secret given as `-`) are read through
/// [`CliIo::read_secret`], which `main` can route to a no-echo terminal prompt
/// (`rpassword`) with [`CliIo::with_secret_prompt`]; without one they are read as lines.
pub struct CliIo<'a> {
    input: Box<dyn BufRead + 'a>,
    output: Box<dyn Write + 'a>,
    secret_prompt: Option<SecretPrompt<'a>>,
}

/// Reads a secret after showing a prompt, without echo.
pub type SecretPrompt<'a> = Box<dyn FnMut(&str) -> io::Result<String> + 'a>;

impl<'a> CliIo<'a> {
    /// Commands read answers from `input` and write to `output`.
    pub fn new(input: impl BufRead + 'a, output: impl Write + 'a) -> Self {
        Self {
            input: Box::new(input),
            output: Box::new(output),
            secret_prompt: None,
        }
    }

    /// Reads secrets with `prompt` (e.g. `rpassword::prompt_password`) instead of from `input`.
    pub fn with_secret_prompt(
        mut self,
        prompt: impl FnMut(&str) -> io::Result<String> + 'a,
    ) -> Self {
        self.secret_prompt = Some(Box::new(prompt));
        self
    }

    /// Where results go.
    pub fn out(&mut self) -> &mut dyn Write {
        &mut self.output
    }

    /// Shows `prompt` (flushed) and reads one line without its line ending; `None` at end of input.
    pub fn read_line(&mut self, prompt: &str) -> Result<Option<String>, CliError> {
        self.output.write_all(prompt.as_bytes())?;
        self.output.flush()?;
        let mut line = String::new();
        if self.input.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        trim_newline(&mut line);
        Ok(Some(line))
    }

    /// Reads a secret: through the secret prompt if there is one, else as a line of input
    /// (the prompt is shown, the answer never is). `None` at end of input.
    pub fn read_secret(&mut self, prompt: &str) -> Result<Option<Zeroizing<String>>, CliError> {
        if let Some(ask) = self.secret_prompt.as_mut() {
            return Ok(Some(Zeroizing::new(ask(prompt)?)));
        }
        self.output.write_all(prompt.as_bytes())?;
        self.output.flush()?;
        let mut line = Zeroizing::new(String::new());
        if self.input.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        trim_newline(&mut line);
        // The terminal did not move to a new line for us if input was not echoed.
        self.output.write_all(b"\n")?;
        Ok(Some(line))
    }

    /// Reads the rest of the input (a CSV file given as `-`).
    pub fn read_all(&mut self) -> Result<Zeroizing<String>, CliError> {
        let mut text = Zeroizing::new(String::new());
        self.input.read_to_string(&mut text)?;
        Ok(text)
    }
}

fn trim_newline(line: &mut String) {
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
}

/// Why a command failed. Messages are for the operator and never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading input or writing output failed.
    #[error("input/output error: {0}")]
    Io(#[from] io::Error),
    /// A TOTP secret or its parameters are invalid.
    #[error(transparent)]
    Totp(#[from] TotpError),
    /// The store key could not be made or written.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// An input file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The command does not apply in the user's current state.
    #[error("{0}")]
    Refused(String),
    /// Input ended before the command had its answer.
    #[error("input ended; nothing was changed")]
    Aborted,
    /// Three wrong codes at enrolment; the secret stays inactive.
    #[error("no valid code after {0} attempts; TOTP was not activated (run enroll-totp again)")]
    EnrolmentFailed(u32),
    /// The two password entries differ.
    #[error("the passwords do not match; nothing was changed")]
    PasswordMismatch,
    /// A CSV import had refused rows and imported nothing.
    #[error("{0} line(s) refused; nothing was imported (fix them, or use --skip-invalid)")]
    ImportRefused(usize),
    /// The CSV input cannot be read at all (bad header, bad quoting).
    #[error("CSV line {line}: {message}")]
    Csv {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl CliError {
    /// A `sysexits.h` exit status for `main`.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Store(StoreError::NotFound(_)) => 67, // EX_NOUSER
            Self::Store(StoreError::WrongKey { .. } | StoreError::SchemaTooNew { .. })
            | Self::Key(_) => 78, // EX_CONFIG
            Self::Store(StoreError::PoolTimeout) => 75, // EX_TEMPFAIL
            Self::Store(
                StoreError::AlreadyExists(_)
                | StoreError::InvalidName(_)
                | StoreError::NoTotp(_)
                | StoreError::TotpChanged(_)
                | StoreError::NoPhone(_)
                | StoreError::NotEnrolled { .. }
                | StoreError::NoPushDevice { .. },
            ) => 65, // EX_DATAERR
            Self::Store(_) => 70,                       // EX_SOFTWARE
            Self::Io(_) => 74,                          // EX_IOERR
            Self::ReadFile { .. } => 66,                // EX_NOINPUT
            Self::Totp(_)
            | Self::Refused(_)
            | Self::Aborted
            | Self::EnrolmentFailed(_)
            | Self::PasswordMismatch
            | Self::ImportRefused(_)
            | Self::Csv { .. } => 65, // EX_DATAERR
        }
    }
}

/// `portvakt store …` commands.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum StoreCommand {
    /// Write a new random store key (64 hex characters) to a new file with mode 0600.
    ///
    /// The key is never printed. Keep a copy somewhere safe: without it the TOTP secrets in
    /// the store cannot be read. An existing file is never overwritten.
    Keygen {
        /// Where to write the key, e.g. /etc/portvakt/store.key.
        path: PathBuf,
    },
}

/// Runs a `portvakt store …` command.
pub fn store_run(cmd: StoreCommand, io: &mut CliIo<'_>) -> Result<(), CliError> {
    match cmd {
        StoreCommand::Keygen { path } => {
            StoreKey::generate()?.write_new_file(&path)?;
            writeln!(
                io.out(),
                "Wrote a new store key to {} (mode 0600).",
                path.display()
            )?;
            writeln!(
                io.out(),
                "Back it up: the store's TOTP secrets cannot be read without it."
            )?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_secrets_are_read_without_line_endings() {
        let mut out = Vec::new();
        {
            let mut io = CliIo::new(&b"first\r\nsecret\nlast"[..], &mut out);
            assert_eq!(io.read_line("Q1: ").unwrap().as_deref(), Some("first"));
            assert_eq!(
                io.read_secret("Password: ").unwrap().unwrap().as_str(),
                "secret"
            );
            assert_eq!(io.read_line("Q3: ").unwrap().as_deref(), Some("last"));
            assert_eq!(io.read_line("Q4: ").unwrap(), None);
        }
        let shown = String::from_utf8(out).unwrap();
        assert_eq!(shown, "Q1: Password: \nQ3: Q4: ");
        assert!(!shown.contains("secret"));
    }

    #[test]
    fn secret_prompt_replaces_input() {
        let mut asked = Vec::new();
        let mut out = Vec::new();
        {
            let mut io = CliIo::new(&b"line\n"[..], &mut out).with_secret_prompt(|p| {
                asked.push(p.to_owned());
                Ok("typed".to_owned())
            });
            assert_eq!(
                io.read_secret("Password: ").unwrap().unwrap().as_str(),
                "typed"
            );
            assert_eq!(io.read_line("").unwrap().as_deref(), Some("line"));
        }
        assert_eq!(asked, ["Password: "]);
        assert!(out.is_empty());
    }

    #[test]
    fn keygen_writes_a_usable_0600_key_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.key");
        let mut out = Vec::new();
        let mut io = CliIo::new(io::empty(), &mut out);
        store_run(StoreCommand::Keygen { path: path.clone() }, &mut io).unwrap();
        let err = store_run(StoreCommand::Keygen { path: path.clone() }, &mut io).unwrap_err();
        assert_eq!(err.exit_code(), 78);
        drop(io);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let key = StoreKey::from_file(&path).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(
            !String::from_utf8(out).unwrap().contains(written.trim()),
            "key not printed"
        );
        assert_eq!(key.to_hex().as_str(), written.trim());
    }
}
