//! `portvakt user …`: enrolment and helpdesk commands on the user store.
//!
//! Secrets are shown exactly once, by `enroll-totp` (the `otpauth://` URI and its QR code);
//! `list` and `show` never print one. A new TOTP secret becomes active only after the user
//! has typed one valid code, and that code's time step is recorded so it cannot be replayed
//! for a login.
//!
//! Phone numbers and push devices (issue 6): `set-phone` sends a code through the SMS
//! gateway and verifies the number once the user reads it back (`--verified` lets an
//! administrator vouch for a number instead); `add-push` registers an ntfy topic (a random
//! one unless given); `set-default` picks the method a login asks for first.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use super::{CliError, CliIo};
use crate::factor::Method;
use crate::factor::phone::Phone;
use crate::factor::push::Topic;
use crate::factor::sms::{SendCodeError, SmsSettings};
use crate::factor::totp::{self, Algorithm, TotpSecret};
use crate::store::{
    CodeCheck, CodePurpose, ImportMode, ImportRejection, Store, TotpImport, User, format_time,
};

/// Attempts the user gets to type a valid code at enrolment.
const ENROL_ATTEMPTS: u32 = 3;

/// Steps either side of now accepted at enrolment (phones drift; ±30 s is usual).
const ENROL_SKEW: u8 = 1;

/// Shortest password the built-in directory accepts (NIST SP 800-63B §5.1.1.2).
const MIN_PASSWORD_CHARS: usize = 8;

/// `portvakt user …` subcommands.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum UserCommand {
    /// Add a user, enabled, with no second factor yet.
    Add {
        /// User name (normalised: lowercase, and realm-stripped if configured).
        user: String,
    },
    /// Enrol TOTP: show a new secret as a QR code and URI, then activate it once the user
    /// types a valid code from the app.
    EnrollTotp {
        /// User name.
        user: String,
        /// Issuer shown in the authenticator app.
        #[arg(long, default_value = "portvakt")]
        issuer: String,
    },
    /// Import an existing TOTP secret (migration); active at once.
    ImportTotp {
        /// User name.
        user: String,
        /// The secret in base32. Give `-` to type it at a prompt instead, which keeps it out
        /// of the shell history and the process list.
        secret: String,
        /// Code length: 6, 7 or 8.
        #[arg(long, default_value_t = 6)]
        digits: u32,
        /// Time step in seconds.
        #[arg(long, default_value_t = 30)]
        period: u64,
        /// HMAC hash: sha1, sha256 or sha512.
        #[arg(long, default_value = "sha1", value_parser = parse_algorithm)]
        algorithm: Algorithm,
    },
    /// Import TOTP secrets from CSV with the header `user,secret[,digits,period,algorithm]`.
    ///
    /// One transaction: if any line is refused nothing is imported, unless --skip-invalid.
    /// Missing users are created; users who already have TOTP are refused.
    Import {
        /// CSV file, or `-` for standard input.
        file: PathBuf,
        /// Import the valid lines and report the others.
        #[arg(long)]
        skip_invalid: bool,
    },
    /// List users.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one user.
    Show {
        /// User name.
        user: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: logins are rejected; methods are kept.
    Disable {
        /// User name.
        user: String,
    },
    /// Enable a disabled user.
    Enable {
        /// User name.
        user: String,
    },
    /// Remove all second-factor methods of a user (lost phone); the user must enrol again.
    Reset {
        /// User name.
        user: String,
    },
    /// Lift a user's lockout (see `portvakt lockouts`) and clear the second-factor failure
    /// counter. Works for directory accounts that are not in the store too. A running
    /// portvakt lets the user in from their next login.
    Unlock {
        /// User name.
        user: String,
    },
    /// Remove a user and all of its methods.
    Remove {
        /// User name.
        user: String,
    },
    /// Set a user's password in the built-in directory (asked twice, never echoed).
    Passwd {
        /// User name.
        user: String,
    },
    /// Set a user's phone number for SMS: sends a code to it and verifies the number once
    /// the code is typed back. Until then the old number (if any) stays in use.
    SetPhone {
        /// User name.
        user: String,
        /// The number with its country code, e.g. +4790000000.
        number: String,
        /// Record the number as verified without sending a code (the administrator vouches
        /// for it, e.g. from HR records).
        #[arg(long)]
        verified: bool,
    },
    /// Remove a user's phone number.
    RemovePhone {
        /// User name.
        user: String,
    },
    /// Add a push device: an ntfy topic the user's phone subscribes to.
    AddPush {
        /// User name.
        user: String,
        /// The topic. Without it a random one is made (recommended: a topic is a password).
        #[arg(long)]
        topic: Option<String>,
        /// A name for the device.
        #[arg(long, default_value = "phone")]
        label: String,
        /// Accept a topic shorter than 20 characters (guessable topics let others approve).
        #[arg(long)]
        allow_short_topic: bool,
    },
    /// Remove a push device by its id (see `show`).
    RemovePush {
        /// User name.
        user: String,
        /// The device id.
        id: i64,
    },
    /// Set the method a login asks for first; the others remain as fallback.
    SetDefault {
        /// User name.
        user: String,
        /// push, totp or sms.
        #[arg(value_parser = parse_method)]
        method: Method,
    },
}

fn parse_method(text: &str) -> Result<Method, String> {
    text.parse()
        .map_err(|e: crate::factor::UnknownMethod| e.to_string())
}

/// What the commands need besides the store: the SMS gateway for `set-phone`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Factors<'a> {
    /// `[sms]`, if configured.
    pub sms: Option<&'a SmsSettings>,
}

fn parse_algorithm(text: &str) -> Result<Algorithm, String> {
    text.parse().map_err(|e: totp::TotpError| e.to_string())
}

/// Runs one `portvakt user …` command against `store`, without an SMS gateway
/// (`set-phone` then needs `--verified`).
pub fn run(store: &Store, cmd: UserCommand, io: &mut CliIo<'_>) -> Result<(), CliError> {
    run_with(store, cmd, io, Factors::default())
}

/// Runs one `portvakt user …` command against `store`, with the configured providers.
///
/// `set-phone` sends its code on a current-thread tokio runtime of its own, so call this
/// outside any runtime (as `main` does for CLI commands).
pub fn run_with(
    store: &Store,
    cmd: UserCommand,
    io: &mut CliIo<'_>,
    factors: Factors<'_>,
) -> Result<(), CliError> {
    match cmd {
        UserCommand::Add { user } => {
            let user = store.add_user(&user)?;
            writeln!(io.out(), "Added user {}.", user.name)?;
        }
        UserCommand::EnrollTotp { user, issuer } => enroll_totp(store, &user, &issuer, io)?,
        UserCommand::ImportTotp {
            user,
            secret,
            digits,
            period,
            algorithm,
        } => {
            let params = Params {
                digits,
                period,
                algorithm,
            };
            import_totp(store, &user, &secret, params, io)?;
        }
        UserCommand::Import { file, skip_invalid } => import_csv(store, &file, skip_invalid, io)?,
        UserCommand::List { json } => list(store, json, io)?,
        UserCommand::Show { user, json } => show(store, &user, json, io)?,
        UserCommand::Disable { user } => {
            store.set_enabled(&user, false)?;
            done(io, store, &user, "disabled")?;
        }
        UserCommand::Enable { user } => {
            store.set_enabled(&user, true)?;
            done(io, store, &user, "enabled")?;
        }
        UserCommand::Reset { user } => {
            store.reset_methods(&user)?;
            done(io, store, &user, "reset: all second-factor methods removed")?;
        }
        UserCommand::Unlock { user } => unlock(store, &user, io)?,
        UserCommand::Remove { user } => {
            store.remove_user(&user)?;
            done(io, store, &user, "removed")?;
        }
        UserCommand::Passwd { user } => passwd(store, &user, io)?,
        UserCommand::SetPhone {
            user,
            number,
            verified,
        } => set_phone(store, &user, &number, verified, factors.sms, io)?,
        UserCommand::RemovePhone { user } => {
            if !store.remove_phone(&user)? {
                return Err(CliError::Refused(format!(
                    "user {user} has no phone number"
                )));
            }
            done(io, store, &user, "has no phone number now")?;
        }
        UserCommand::AddPush {
            user,
            topic,
            label,
            allow_short_topic,
        } => add_push(
            store,
            &user,
            topic.as_deref(),
            &label,
            allow_short_topic,
            io,
        )?,
        UserCommand::RemovePush { user, id } => {
            store.remove_push_device(&user, id)?;
            done(io, store, &user, &format!("push device {id} removed"))?;
        }
        UserCommand::SetDefault { user, method } => {
            store.set_default_method(&user, method)?;
            done(io, store, &user, &format!("default method is {method}"))?;
        }
    }
    Ok(())
}

fn set_phone(
    store: &Store,
    name: &str,
    number: &str,
    verified: bool,
    sms: Option<&SmsSettings>,
    io: &mut CliIo<'_>,
) -> Result<(), CliError> {
    let user = existing(store, name)?;
    let phone = Phone::parse(number).map_err(|e| CliError::Refused(e.to_string()))?;
    if verified {
        store.set_verified_phone(&user.name, &phone)?;
        writeln!(
            io.out(),
            "Phone {phone} is verified for {} (vouched for by an administrator).",
            user.name
        )?;
        return Ok(());
    }
    let Some(sms) = sms else {
        return Err(CliError::Refused(
            "no [sms] gateway is configured to send a verification code; \
             configure one, or use --verified if you vouch for the number"
                .to_owned(),
        ));
    };
    store.set_pending_phone(&user.name, &phone)?;
    send_enrolment_code(store, &user.name, sms)?;
    writeln!(io.out(), "A code was sent to {phone}.")?;
    let attempts = sms.codes.max_attempts;
    for attempt in 1..=attempts {
        let prompt = format!("Code from the text message ({attempt} of {attempts}): ");
        let code = Zeroizing::new(io.read_line(&prompt)?.ok_or(CliError::Aborted)?);
        match store.check_sms_code(&user.name, CodePurpose::Enrol, &code)? {
            CodeCheck::Accepted => {
                writeln!(io.out(), "Phone {phone} is verified for {}.", user.name)?;
                return Ok(());
            }
            CodeCheck::Wrong { attempts_left } if attempts_left > 0 => {
                writeln!(io.out(), "That code is not right.")?;
            }
            CodeCheck::Wrong { .. } | CodeCheck::Invalid => break,
        }
    }
    Err(CliError::Refused(format!(
        "no valid code; {phone} was not verified (run set-phone again)"
    )))
}

/// Issues an enrolment code and sends it, on a runtime of its own (the CLI is synchronous).
fn send_enrolment_code(store: &Store, user: &str, sms: &SmsSettings) -> Result<(), CliError> {
    let issued = sms
        .issue(store, user, CodePurpose::Enrol)
        .map_err(send_error)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(sms.deliver(&issued))
        .map_err(|e| send_error(SendCodeError::Provider(e)))
}

fn send_error(e: SendCodeError) -> CliError {
    match e {
        SendCodeError::Store(e) => CliError::Store(e),
        SendCodeError::Limited(limited) => CliError::Refused(format!(
            "SMS limit for this user or number reached ({limited:?}); try again later"
        )),
        e => CliError::Refused(format!("the code could not be sent: {e}")),
    }
}

fn add_push(
    store: &Store,
    name: &str,
    topic: Option<&str>,
    label: &str,
    allow_short: bool,
    io: &mut CliIo<'_>,
) -> Result<(), CliError> {
    let user = existing(store, name)?;
    let topic = match topic {
        None => Topic::generate(),
        Some(text) => {
            let topic = Topic::parse(text).map_err(|e| CliError::Refused(e.to_string()))?;
            if topic.as_str().len() < Topic::RECOMMENDED_LEN && !allow_short {
                return Err(CliError::Refused(format!(
                    "a topic shorter than {} characters can be guessed, and whoever subscribes \
                     to it can approve logins; leave --topic out for a random one, or add \
                     --allow-short-topic on a server that requires authentication",
                    Topic::RECOMMENDED_LEN
                )));
            }
            topic
        }
    };
    let id = store.add_push_device(&user.name, &topic, label)?;
    let out = io.out();
    writeln!(out, "Added push device {id} ({label}) for {}.", user.name)?;
    writeln!(
        out,
        "Subscribe to this topic in the ntfy app on the phone (it is shown only now):"
    )?;
    writeln!(out, "{}", topic.as_str())?;
    Ok(())
}

fn done(io: &mut CliIo<'_>, store: &Store, user: &str, what: &str) -> Result<(), CliError> {
    let name = store.normalize(user)?;
    writeln!(io.out(), "User {name} {what}.")?;
    Ok(())
}

/// Lifts the stored lockout (the daemon reads the mark at the user's next login) and clears
/// the store's failure counter. Either may be missing: a directory account has no user row,
/// and most users have no lockout. With neither, the name is unknown.
fn unlock(store: &Store, name: &str, io: &mut CliIo<'_>) -> Result<(), CliError> {
    let lifted = store.unlock_user(name)?;
    let has_user = match store.clear_failures(name) {
        Ok(()) => true,
        Err(crate::store::StoreError::NotFound(_)) => false,
        Err(e) => return Err(e.into()),
    };
    let account = crate::store::lockout_name(name.as_bytes()).unwrap_or_default();
    let out = io.out();
    match &lifted {
        Some(row) if row.is_active(unix_now()) => writeln!(
            out,
            "Lockout of {account} lifted ({}, was until {}, lockout {} in a row); history cleared.",
            row.reason.describe(),
            format_time(row.locked_until),
            row.level
        )?,
        Some(_) => writeln!(
            out,
            "{account} had no lockout in force; lockout history cleared."
        )?,
        None if has_user => writeln!(out, "{account} had no lockout.")?,
        None => {
            return Err(CliError::Store(crate::store::StoreError::NotFound(account)));
        }
    }
    if has_user {
        done(io, store, name, "unlocked: failure counter cleared")?;
    }
    Ok(())
}

/// The user, or [`crate::store::StoreError::NotFound`].
fn existing(store: &Store, name: &str) -> Result<User, CliError> {
    let name = store.normalize(name)?;
    store
        .user(&name)?
        .ok_or(CliError::Store(crate::store::StoreError::NotFound(name)))
}

fn refuse_if_active(user: &User) -> Result<(), CliError> {
    if user.totp.as_ref().is_some_and(|t| t.active) {
        return Err(CliError::Refused(format!(
            "user {} already has active TOTP; run `portvakt user reset {}` first",
            user.name, user.name
        )));
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn enroll_totp(
    store: &Store,
    name: &str,
    issuer: &str,
    io: &mut CliIo<'_>,
) -> Result<(), CliError> {
    let user = existing(store, name)?;
    refuse_if_active(&user)?;
    let secret = totp::generate_secret()?;
    let uri = Zeroizing::new(totp::otpauth_uri(&secret, issuer, &user.name)?);
    let qr = Zeroizing::new(totp::qr_terminal(&uri)?);
    store.set_totp(&user.name, &secret, false)?;

    let out = io.out();
    writeln!(
        out,
        "Scan this QR code with the authenticator app on {}'s phone:",
        user.name
    )?;
    writeln!(out)?;
    writeln!(out, "{}", qr.as_str())?;
    writeln!(out)?;
    writeln!(out, "Or add this URI by hand (it is shown only now):")?;
    writeln!(out, "{}", uri.as_str())?;
    writeln!(out)?;

    for attempt in 1..=ENROL_ATTEMPTS {
        let prompt = format!("Code from the app ({attempt} of {ENROL_ATTEMPTS}): ");
        let code = Zeroizing::new(io.read_line(&prompt)?.ok_or(CliError::Aborted)?);
        let Some(step) = totp::verify(&secret, &code, unix_now(), ENROL_SKEW) else {
            writeln!(
                io.out(),
                "That code is not valid. Check the phone's clock and try again."
            )?;
            continue;
        };
        if store.activate_totp(&user.name, &secret, step)? {
            writeln!(io.out(), "TOTP is active for {}.", user.name)?;
            return Ok(());
        }
        writeln!(
            io.out(),
            "That code was already used. Wait for the next one."
        )?;
    }
    Err(CliError::EnrolmentFailed(ENROL_ATTEMPTS))
}

/// TOTP parameters from the command line or a CSV row.
#[derive(Debug, Clone, Copy)]
struct Params {
    digits: u32,
    period: u64,
    algorithm: Algorithm,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            digits: 6,
            period: 30,
            algorithm: Algorithm::Sha1,
        }
    }
}

fn import_totp(
    store: &Store,
    name: &str,
    text: &str,
    params: Params,
    io: &mut CliIo<'_>,
) -> Result<(), CliError> {
    let user = existing(store, name)?;
    refuse_if_active(&user)?;
    let text = if text == "-" {
        io.read_secret("TOTP secret (base32): ")?
            .ok_or(CliError::Aborted)?
    } else {
        Zeroizing::new(text.to_owned())
    };
    let secret = TotpSecret::from_base32(&text, params.digits, params.period, params.algorithm)?;
    store.set_totp(&user.name, &secret, true)?;
    writeln!(
        io.out(),
        "Imported TOTP for {} ({} digits, {} s, {}); it is active.",
        user.name,
        params.digits,
        params.period,
        params.algorithm
    )?;
    Ok(())
}

fn import_csv(
    store: &Store,
    file: &std::path::Path,
    skip_invalid: bool,
    io: &mut CliIo<'_>,
) -> Result<(), CliError> {
    let text = if file.as_os_str() == "-" {
        io.read_all()?
    } else {
        let text = std::fs::read_to_string(file).map_err(|source| CliError::ReadFile {
            path: file.to_owned(),
            source,
        })?;
        Zeroizing::new(text)
    };
    let (rows, mut rejected) = parse_csv(&text)?;
    // With lines already refused and no --skip-invalid, nothing may be written, but a dry
    // run still reports the store's refusals (users who already have TOTP) in one go.
    let mode = match (skip_invalid, rejected.is_empty()) {
        (true, _) => ImportMode::SkipInvalid,
        (false, true) => ImportMode::AllOrNothing,
        (false, false) => ImportMode::DryRun,
    };
    let summary = store.import_totp(&rows, mode)?;
    rejected.extend(summary.rejected);
    rejected.sort_by_key(|r| r.line);
    for r in &rejected {
        writeln!(io.out(), "line {}: {}: {}", r.line, r.name, r.reason)?;
    }
    if !summary.committed {
        return Err(CliError::ImportRefused(rejected.len()));
    }
    writeln!(
        io.out(),
        "Imported {} TOTP secret(s); created {} user(s); skipped {} line(s).",
        summary.imported,
        summary.created_users,
        rejected.len()
    )?;
    Ok(())
}

/// Column positions from the CSV header.
struct Columns {
    count: usize,
    user: usize,
    secret: usize,
    digits: Option<usize>,
    period: Option<usize>,
    algorithm: Option<usize>,
}

/// Parses the import CSV into rows to import and rows refused (with line numbers).
/// A bad header or broken quoting stops the whole import.
fn parse_csv(text: &str) -> Result<(Vec<TotpImport>, Vec<ImportRejection>), CliError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text); // spreadsheet BOM
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line))
        .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'));
    let Some((header_line, header)) = lines.next() else {
        return Err(CliError::Csv {
            line: 1,
            message: "no header line".to_owned(),
        });
    };
    let columns = parse_header(header_line, header)?;
    let mut rows = Vec::new();
    let mut rejected = Vec::new();
    for (line, text) in lines {
        let fields = split_fields(text).map_err(|message| CliError::Csv { line, message })?;
        match parse_row(&columns, &fields) {
            Ok(secret) => rows.push(TotpImport {
                line,
                name: fields[columns.user].clone(),
                secret,
            }),
            Err(reason) => rejected.push(ImportRejection {
                line,
                name: fields.get(columns.user).cloned().unwrap_or_default(),
                reason,
            }),
        }
    }
    Ok((rows, rejected))
}

fn parse_header(line: usize, header: &str) -> Result<Columns, CliError> {
    let csv_err = |message: String| CliError::Csv { line, message };
    let names: Vec<String> = split_fields(header)
        .map_err(csv_err)?
        .iter()
        .map(|f| f.trim().to_ascii_lowercase())
        .collect();
    let find = |wanted: &str| names.iter().position(|n| n == wanted);
    for (i, name) in names.iter().enumerate() {
        let known = ["user", "secret", "digits", "period", "algorithm"].contains(&name.as_str());
        if !known || find(name) != Some(i) {
            return Err(csv_err(format!(
                "unknown or repeated column {name:?} (expected user,secret[,digits,period,algorithm])"
            )));
        }
    }
    let (Some(user), Some(secret)) = (find("user"), find("secret")) else {
        return Err(csv_err(
            "the header must name the columns user and secret".to_owned(),
        ));
    };
    Ok(Columns {
        count: names.len(),
        user,
        secret,
        digits: find("digits"),
        period: find("period"),
        algorithm: find("algorithm"),
    })
}

/// One data row to a secret; the error never contains the secret.
fn parse_row(columns: &Columns, fields: &[String]) -> Result<TotpSecret, String> {
    if fields.len() != columns.count {
        return Err(format!(
            "expected {} fields, found {}",
            columns.count,
            fields.len()
        ));
    }
    let field = |i: Option<usize>| i.map(|i| fields[i].trim()).filter(|f| !f.is_empty());
    let defaults = Params::default();
    let digits = match field(columns.digits) {
        Some(text) => text
            .parse()
            .map_err(|_| format!("digits {text:?} is not a number"))?,
        None => defaults.digits,
    };
    let period = match field(columns.period) {
        Some(text) => text
            .parse()
            .map_err(|_| format!("period {text:?} is not a number"))?,
        None => defaults.period,
    };
    let algorithm = match field(columns.algorithm) {
        Some(text) => text.parse().map_err(|e: totp::TotpError| e.to_string())?,
        None => defaults.algorithm,
    };
    TotpSecret::from_base32(&fields[columns.secret], digits, period, algorithm)
        .map_err(|e| e.to_string())
}

/// Splits one CSV line (RFC 4180 quoting, no line breaks inside quotes).
fn split_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (_, c) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".to_owned());
    }
    fields.push(field);
    Ok(fields)
}

fn list(store: &Store, json: bool, io: &mut CliIo<'_>) -> Result<(), CliError> {
    let users = store.list_users()?;
    let out = io.out();
    if json {
        serde_json::to_writer_pretty(&mut *out, &users).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    let width = users
        .iter()
        .map(|u| u.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    writeln!(
        out,
        "{:width$}  ENABLED  TOTP     FAILURES  PASSWORD  METHODS          UPDATED",
        "USER"
    )?;
    for u in &users {
        writeln!(
            out,
            "{:width$}  {:7}  {:7}  {:8}  {:8}  {:15}  {}",
            u.name,
            yes_no(u.enabled),
            totp_state(u),
            u.failures,
            yes_no(u.has_password),
            methods_text(u),
            format_time(u.updated_at)
        )?;
    }
    writeln!(out, "{} user(s).", users.len())?;
    Ok(())
}

fn show(store: &Store, name: &str, json: bool, io: &mut CliIo<'_>) -> Result<(), CliError> {
    let user = existing(store, name)?;
    let out = io.out();
    if json {
        serde_json::to_writer_pretty(&mut *out, &user).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "user:      {}", user.name)?;
    writeln!(out, "enabled:   {}", yes_no(user.enabled))?;
    writeln!(out, "created:   {}", format_time(user.created_at))?;
    writeln!(out, "updated:   {}", format_time(user.updated_at))?;
    match &user.totp {
        None => writeln!(out, "totp:      none")?,
        Some(t) => {
            let used = t
                .last_used_at()
                .map_or_else(|| "never".to_owned(), format_time);
            writeln!(
                out,
                "totp:      {} ({}, {} digits, {} s), enrolled {}, last used {}",
                totp_state(&user),
                t.algorithm,
                t.digits,
                t.period,
                format_time(t.enrolled_at),
                used
            )?;
        }
    }
    let last = user
        .last_failure_at
        .map_or_else(String::new, |t| format!(" (last {})", format_time(t)));
    writeln!(out, "failures:  {}{last}", user.failures)?;
    writeln!(
        out,
        "password:  {}",
        if user.has_password { "set" } else { "not set" }
    )?;
    let phone = match (store.phone(&user.name)?, store.pending_phone(&user.name)?) {
        (None, None) => "none".to_owned(),
        (Some(p), None) => format!("{p} (verified)"),
        (None, Some(p)) => format!("{p} (waiting for its code)"),
        (Some(p), Some(q)) => format!("{p} (verified); {q} waiting for its code"),
    };
    writeln!(out, "phone:     {phone}")?;
    let devices = store.push_devices(&user.name)?;
    if devices.is_empty() {
        writeln!(out, "push:      none")?;
    }
    for d in &devices {
        writeln!(
            out,
            "push:      device {} ({}, {}), added {}",
            d.id,
            d.label,
            d.kind,
            format_time(d.created_at)
        )?;
    }
    writeln!(
        out,
        "default:   {} (usable: {})",
        user.default_method,
        methods_text(&user)
    )?;
    Ok(())
}

/// The usable methods, default first: `push, totp`, or `none`.
fn methods_text(user: &User) -> String {
    let methods: Vec<&str> = user.methods().iter().map(|m| m.as_str()).collect();
    if methods.is_empty() {
        "none".to_owned()
    } else {
        methods.join(", ")
    }
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

fn totp_state(user: &User) -> &'static str {
    match &user.totp {
        None => "none",
        Some(t) if t.active => "active",
        Some(_) => "pending",
    }
}

fn passwd(store: &Store, name: &str, io: &mut CliIo<'_>) -> Result<(), CliError> {
    let user = existing(store, name)?;
    let first = io.read_secret("New password: ")?.ok_or(CliError::Aborted)?;
    let second = io
        .read_secret("Repeat password: ")?
        .ok_or(CliError::Aborted)?;
    if first.as_bytes() != second.as_bytes() {
        return Err(CliError::PasswordMismatch);
    }
    if first.chars().count() < MIN_PASSWORD_CHARS {
        return Err(CliError::Refused(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    store.set_password(&user.name, first.as_bytes())?;
    writeln!(io.out(), "Password set for {}.", user.name)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_split_with_quotes() {
        assert_eq!(split_fields("a,b,,c").unwrap(), ["a", "b", "", "c"]);
        assert_eq!(
            split_fields(r#""KOMMUNE\alice","AB,CD""#).unwrap(),
            [r"KOMMUNE\alice", "AB,CD"]
        );
        assert_eq!(
            split_fields(r#""say ""hi""",x"#).unwrap(),
            [r#"say "hi""#, "x"]
        );
        assert_eq!(split_fields(r#" "a" ,b"#).unwrap(), ["a ", "b"]);
        assert!(split_fields(r#""open,b"#).is_err());
    }

    #[test]
    fn csv_header_is_checked() {
        for (header, ok) in [
            ("user,secret", true),
            ("User, Secret ,Digits", true),
            ("secret,user,algorithm,period,digits", true),
            ("user", false),
            ("user,secret,colour", false),
            ("user,secret,user", false),
        ] {
            assert_eq!(parse_header(1, header).is_ok(), ok, "{header}");
        }
        assert!(matches!(
            parse_csv("\n# only a comment\n"),
            Err(CliError::Csv { .. })
        ));
    }

    #[test]
    fn csv_rows_default_and_report_without_secrets() {
        let text = "\u{feff}user,secret,digits,period,algorithm\n\
                    # migrated from the old system\n\
                    alice,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,,,\n\
                    bob,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,8,60,sha256\n\
                    \n\
                    carol,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1,,,\n\
                    dave,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,9,,\n\
                    erin,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,6\n";
        let (rows, rejected) = parse_csv(text).unwrap();
        let good: Vec<(usize, &str, u32, u64, Algorithm)> = rows
            .iter()
            .map(|r| {
                (
                    r.line,
                    r.name.as_str(),
                    r.secret.digits(),
                    r.secret.period(),
                    r.secret.algorithm(),
                )
            })
            .collect();
        assert_eq!(
            good,
            [
                (3, "alice", 6, 30, Algorithm::Sha1),
                (4, "bob", 8, 60, Algorithm::Sha256)
            ]
        );
        let bad: Vec<(usize, &str)> = rejected.iter().map(|r| (r.line, r.name.as_str())).collect();
        assert_eq!(bad, [(6, "carol"), (7, "dave"), (8, "erin")]);
        assert!(
            rejected.iter().all(|r| !r.reason.contains("GEZD")),
            "{rejected:?}"
        );
    }
}
