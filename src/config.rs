//! Configuration: TOML (plus `PORTVAKT__SECTION__KEY` environment overrides) parsed
//! once, before any socket is bound, into typed [`Settings`].
//!
//! Two layers: `Raw*` structs mirror the file (`deny_unknown_fields`, so a typo is an
//! error, and every field's `///` is its documentation), and `Settings` holds real
//! types (`SocketAddr`, `IpNet`, `Duration`, [`Secret`]). Every error names the key
//! it is about, e.g. `clients[1].secret`, so `portvakt check-config` can point at it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::approval::{ApprovalSettings, RawApproval};
use crate::factor::push::{PushProvider, RawPush};
use crate::factor::sms::{RawSms, SmsSettings};
use crate::factor::{FailMode, Method};
use crate::limits::{Limits, RawLimits};
use crate::origin::{OriginSource, parse_sources};
use crate::policy::SitePolicy;
use crate::radius::dictionary::Dictionary;
use crate::secret::Secret;
use crate::sites::{ConfigIssue, RawException, RawSite, RawSitesFile, SiteConfig};

/// The shortest shared secret accepted. Short secrets make the MD5-based hiding of
/// User-Password and the authenticators guessable offline.
pub const MIN_SECRET_LEN: usize = 16;

/// A configuration problem, with the key it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The offending key, e.g. `upstreams[0].auth`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The configuration file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Listeners and daemon-wide settings.
    #[serde(default)]
    pub server: RawServer,
    /// RADIUS clients (NAS): VPN gateways, RD gateways.
    #[serde(default)]
    pub clients: Vec<RawClient>,
    /// The directory: NPS or FreeRADIUS servers that check passwords.
    #[serde(default)]
    pub upstreams: Vec<RawUpstream>,
    /// Where passwords are checked: the upstreams, or portvakt's own user store.
    #[serde(default)]
    pub directory: RawDirectory,
    /// The user store: enrolled second factors, replay steps, local passwords.
    pub store: Option<RawStore>,
    /// The second-factor challenge: prompts, lifetimes, tries.
    #[serde(default)]
    pub mfa: RawMfa,
    /// Where the sites and exceptions live, and where groups are read.
    #[serde(default)]
    pub policy: RawPolicy,
    /// Named sites inside the municipal network (or in `policy.sites_file`).
    #[serde(default)]
    pub sites: Vec<RawSite>,
    /// Users and groups that always or never need a second factor (or in `policy.sites_file`).
    #[serde(default)]
    pub exceptions: Vec<RawException>,
    /// The push provider (ntfy or a webhook).
    pub push: Option<RawPush>,
    /// The SMS gateway and its one-time codes.
    pub sms: Option<RawSms>,
    /// The approval API phones answer pushes at, and the push rules.
    pub approval: Option<RawApproval>,
    /// Rate limits, lockouts and the password-spray shield.
    #[serde(default)]
    pub limits: RawLimits,
}

/// `[directory]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirectory {
    /// `"radius"` (default): passwords go to the `[[upstreams]]`. `"local"`: portvakt checks
    /// them against Argon2id hashes in its own store (`portvakt user passwd`), so it runs with
    /// no NPS at all; only PAP logins work then.
    pub mode: Option<String>,
}

/// `[store]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// The SQLite database (created 0600 if missing).
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// A file with the 32-byte store key as 64 hex characters, mode 0600 or stricter
    /// (`portvakt store keygen FILE` writes one).
    pub key_file: Option<PathBuf>,
    /// The name of a systemd credential holding the key (`LoadCredentialEncrypted=NAME:…`),
    /// read from `$CREDENTIALS_DIRECTORY/NAME`.
    pub key_credential: Option<String>,
    /// Strip `DOMAIN\` and `@realm` from user names before looking them up.
    #[serde(default)]
    pub strip_realm: bool,
}

fn default_store_path() -> PathBuf {
    PathBuf::from("/var/lib/portvakt/portvakt.db")
}

/// `[mfa]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMfa {
    /// Language of the prompts: `"nb"` (Norwegian bokmål, default) or `"en"`.
    #[serde(default = "default_language")]
    pub language: String,
    /// The challenge prompt, replacing the built-in text of `language`.
    pub prompt: Option<String>,
    /// The prompt after a wrong code, replacing the built-in text.
    pub retry_prompt: Option<String>,
    /// How long a challenge waits for its code.
    #[serde(default = "default_challenge_ttl", with = "humantime_serde")]
    pub challenge_ttl: Duration,
    /// Codes a user may try per challenge before the login is rejected.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// TOTP time steps accepted either side of now (RFC 6238 §5.2); 0..=3.
    #[serde(default = "default_totp_skew")]
    pub totp_skew: u8,
    /// A user with no enrolled method logging in from off-site: `"reject"` (default) or `"allow"`.
    #[serde(default = "default_unenrolled")]
    pub unenrolled: String,
    /// Challenges pending at most (memory bound under attack).
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
}

impl Default for RawMfa {
    fn default() -> Self {
        Self {
            language: default_language(),
            prompt: None,
            retry_prompt: None,
            challenge_ttl: default_challenge_ttl(),
            max_attempts: default_max_attempts(),
            totp_skew: default_totp_skew(),
            unenrolled: default_unenrolled(),
            max_pending: default_max_pending(),
        }
    }
}

fn default_language() -> String {
    "nb".into()
}
fn default_challenge_ttl() -> Duration {
    Duration::from_secs(120)
}
fn default_max_attempts() -> u32 {
    3
}
fn default_totp_skew() -> u8 {
    1
}
fn default_unenrolled() -> String {
    "reject".into()
}
fn default_max_pending() -> usize {
    100_000
}

/// `[policy]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// A separate TOML file with `[[sites]]`, `[[exceptions]]` and `groups_from`, so network
    /// admins can own it; relative to this file's folder. Excludes inline sites and exceptions.
    pub sites_file: Option<PathBuf>,
    /// Where the directory's Accept names the user's groups: `"Class"` (default),
    /// `"Filter-Id"` or `"vendor:<id>:<type>"`.
    pub groups_from: Option<String>,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Addresses for Access-Request and Status-Server (UDP).
    #[serde(default = "default_auth_listen")]
    pub auth_listen: Vec<String>,
    /// Addresses for Accounting-Request (UDP). Empty: no accounting listener.
    #[serde(default = "default_acct_listen")]
    pub acct_listen: Vec<String>,
    /// Folder holding the root `dictionary` file (FreeRADIUS v3 format), relative to the
    /// config file's folder. Unset: the dictionaries built into portvakt.
    pub dictionaries: Option<PathBuf>,
    /// How long a finished request's reply is kept to answer retransmissions (RFC 5080 §2.2.2).
    #[serde(default = "default_duplicate_window", with = "humantime_serde")]
    pub duplicate_window: Duration,
    /// Requests in progress at most; beyond it new requests are dropped (not rejected).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// On SIGTERM/SIGINT, how long requests in progress may take to finish.
    #[serde(default = "default_shutdown_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Threads that run requests: 1 runs everything on one thread (no hand-offs
    /// between threads), more runs a work-stealing pool of that many.
    #[serde(default = "default_workers")]
    pub workers: usize,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            auth_listen: default_auth_listen(),
            acct_listen: default_acct_listen(),
            dictionaries: None,
            duplicate_window: default_duplicate_window(),
            max_in_flight: default_max_in_flight(),
            shutdown_grace: default_shutdown_grace(),
            workers: default_workers(),
        }
    }
}

fn default_auth_listen() -> Vec<String> {
    vec!["0.0.0.0:1812".into(), "[::]:1812".into()]
}
fn default_acct_listen() -> Vec<String> {
    vec!["0.0.0.0:1813".into(), "[::]:1813".into()]
}
fn default_duplicate_window() -> Duration {
    Duration::from_secs(30)
}
fn default_max_in_flight() -> usize {
    16_384
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(5)
}
/// One thread: measured on two cores (PAP, 16 in flight, interleaved rounds), a
/// pass-through request cost 22.3 µs of CPU on one thread against 25.0 µs on two, and
/// one thread carried about 29,000 requests a second against 26,000 on two.
fn default_workers() -> usize {
    1
}
/// More request threads than this is a typo, not a machine.
const MAX_WORKERS: usize = 256;
fn yes() -> bool {
    true
}

/// One `[[clients]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    /// A name for logs and `explain`, unique.
    pub name: String,
    /// The NAS's address or prefix, IPv4 or IPv6 (`192.0.2.10`, `192.0.2.0/28`).
    pub address: String,
    /// The shared secret (at least 16 characters). Prefer `secret_file`.
    pub secret: Option<String>,
    /// A file holding the shared secret (trailing newline ignored).
    pub secret_file: Option<PathBuf>,
    /// Drop Access-Requests without a valid Message-Authenticator (BlastRADIUS).
    #[serde(default = "yes")]
    pub require_message_authenticator: bool,
    /// Drop Access-Requests with Proxy-State but no Message-Authenticator.
    #[serde(default = "yes")]
    pub limit_proxy_state: bool,
    /// Overrides the site policy for every login through this NAS: `trusted`,
    /// `mfa` or `deny` (e.g. `trusted` for a NAS that only serves inside users).
    pub policy: Option<String>,
    /// Where to read the user's real address, tried in order: `Calling-Station-Id`
    /// (default), `Tunnel-Client-Endpoint`, `Cisco-AVPair:ip:source-ip`,
    /// `PaloAlto-Client-Source-IP`, `Fortinet-Client-IP-Address`, `vendor:<id>:<type>`,
    /// or `packet-source` (the NAS's own address; for a NAS that only serves inside users).
    pub origin: Option<Vec<String>>,
    /// How the second factor is asked: `"challenge"` (Access-Challenge with a prompt; the
    /// default), `"append"` (the user types the code after the password, for gateways that
    /// cannot show a prompt; the code is checked before the directory is asked) or `"hold"`
    /// (the directory's Accept is held until a push is approved; for EAP, MS-CHAP and RD
    /// Gateway logins, which cannot answer a prompt).
    pub second_factor: Option<String>,
    /// In hold mode, how long the directory's Accept is held waiting for the push to be
    /// approved (default 25 s; below the NAS's own timeout and `approval.ttl`).
    #[serde(default, with = "humantime_serde")]
    pub hold_timeout: Option<Duration>,
    /// In append mode, what separates password and code (`"password,123456"`). Empty:
    /// the code is the last digits (`"password123456"`).
    #[serde(default = "default_separator")]
    pub append_separator: String,
}

fn default_separator() -> String {
    ",".into()
}

/// One `[[upstreams]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// A name for logs, unique.
    pub name: String,
    /// Authentication address, `host:port` (IP literal).
    pub auth: String,
    /// Accounting address; without it, accounting is not sent to this server.
    pub acct: Option<String>,
    /// The shared secret (at least 16 characters). Prefer `secret_file`.
    pub secret: Option<String>,
    /// A file holding the shared secret.
    pub secret_file: Option<PathBuf>,
    /// Lower is tried first; equal priorities share the load.
    #[serde(default = "default_priority")]
    pub priority: u32,
    /// Drop replies without a valid Message-Authenticator (false only for old servers).
    #[serde(default = "yes")]
    pub require_message_authenticator: bool,
    /// How long to wait for a reply before retrying.
    #[serde(default = "default_upstream_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Retransmissions of a request to this server before trying the next one.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Consecutive timed-out requests after which the server is marked dead.
    #[serde(default = "default_dead_after")]
    pub dead_after: u32,
    /// How often a dead server is probed with Status-Server (RFC 5997).
    #[serde(default = "default_probe_interval", with = "humantime_serde")]
    pub probe_interval: Duration,
    /// Consecutive probe answers that bring a dead server back.
    #[serde(default = "default_answers_to_alive")]
    pub answers_to_alive: u32,
    /// Probe dead servers with Status-Server. If false (a server that does not answer
    /// it), a dead server is tried again after `revive_after`.
    #[serde(default = "yes")]
    pub status_server: bool,
    /// With `status_server = false`: how long a dead server rests before it is tried again.
    #[serde(default = "default_revive_after", with = "humantime_serde")]
    pub revive_after: Duration,
}

fn default_priority() -> u32 {
    1
}
fn default_upstream_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_retries() -> u32 {
    1
}
fn default_dead_after() -> u32 {
    3
}
fn default_probe_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_answers_to_alive() -> u32 {
    3
}
fn default_revive_after() -> Duration {
    Duration::from_secs(60)
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the settings came from (for messages).
    pub source: PathBuf,
    /// The files read, with their SHA-256: the configuration, then the sites file if any
    /// (logged at start and at each reload, so an audit can tell which files were in force).
    pub files: Vec<FileDigest>,
    /// Authentication listeners.
    pub auth_listen: Vec<SocketAddr>,
    /// Accounting listeners.
    pub acct_listen: Vec<SocketAddr>,
    /// Attribute names and types (for logs and tools, and which attributes are hidden).
    pub dictionary: Arc<Dictionary>,
    /// Reply cache lifetime for retransmissions.
    pub duplicate_window: Duration,
    /// Requests in progress at most.
    pub max_in_flight: usize,
    /// Shutdown grace period.
    pub shutdown_grace: Duration,
    /// Threads that run requests (1: a single-threaded runtime).
    pub workers: usize,
    /// RADIUS clients.
    pub clients: Vec<ClientSettings>,
    /// Upstream servers, sorted by priority.
    pub upstreams: Vec<UpstreamSettings>,
    /// Where passwords are checked.
    pub directory: DirectoryMode,
    /// The user store, if configured.
    pub store: Option<StoreSettings>,
    /// The second-factor challenge.
    pub mfa: MfaSettings,
    /// Sites, exceptions, groups.
    pub sites: SiteConfig,
    /// The push provider, if configured.
    pub push: Option<Arc<PushProvider>>,
    /// The SMS gateway and codes, if configured.
    pub sms: Option<Arc<SmsSettings>>,
    /// The approval API and push rules, if configured (required by push).
    pub approval: Option<Arc<ApprovalSettings>>,
    /// What push and SMS logins get while their provider is unreachable.
    pub fail_modes: FailModes,
    /// Rate limits, lockouts, the spray shield.
    pub limits: Limits,
}

/// `fail_mode` per method (`[push] fail_mode`, `[sms] fail_mode`). TOTP needs no provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailModes {
    /// While the push provider is unreachable.
    pub push: FailMode,
    /// While the SMS gateway is unreachable.
    pub sms: FailMode,
}

impl Settings {
    /// The `fail_mode` for `method` at the login's site (`None`: off-site or unknown
    /// origin): the site's own setting if it has one, else the method's global one. TOTP
    /// needs no provider, so it is always `Closed` (never a reason to skip a factor).
    pub fn fail_mode(&self, method: Method, site: Option<&str>) -> FailMode {
        let global = match method {
            Method::Push => self.fail_modes.push,
            Method::Sms => self.fail_modes.sms,
            Method::Totp => return FailMode::Closed,
        };
        site.and_then(|name| self.sites.sites.named(name))
            .and_then(|s| s.fail_mode.of(method))
            .unwrap_or(global)
    }
}

/// Where passwords are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryMode {
    /// The `[[upstreams]]`.
    Radius,
    /// portvakt's own store.
    Local,
}

/// Where the store key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A key file.
    File(PathBuf),
    /// A systemd credential name.
    Credential(String),
}

/// The user store.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// The database file.
    pub path: PathBuf,
    /// The key.
    pub key: KeySource,
    /// Strip realms from user names.
    pub strip_realm: bool,
}

/// Prompt language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Norwegian bokmål.
    Nb,
    /// English.
    En,
}

/// What to do with a user who has no enrolled method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unenrolled {
    /// Reject the login.
    Reject,
    /// Let it through (e.g. during roll-out); logged every time.
    Allow,
}

/// The second-factor challenge.
#[derive(Debug, Clone)]
pub struct MfaSettings {
    /// The prompts' language (also for the SMS prompt).
    pub language: Language,
    /// The challenge prompt.
    pub prompt: String,
    /// The prompt after a wrong code.
    pub retry_prompt: String,
    /// Challenge lifetime.
    pub challenge_ttl: Duration,
    /// Tries per challenge.
    pub max_attempts: u32,
    /// TOTP skew in steps.
    pub totp_skew: u8,
    /// Unenrolled users.
    pub unenrolled: Unenrolled,
    /// Pending challenges at most.
    pub max_pending: usize,
}

/// How a client's users give their second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondFactorMode {
    /// Access-Challenge with a prompt.
    Challenge,
    /// Code appended to the password, after `separator` (empty: the last digits).
    Append {
        /// The separator.
        separator: String,
    },
    /// The directory's Accept is held until a push is approved, denied, or `timeout` passes.
    Hold {
        /// How long to hold.
        timeout: Duration,
    },
}

/// The default `hold_timeout`: below the 30 s many NAS wait for an answer.
pub const DEFAULT_HOLD_TIMEOUT: Duration = Duration::from_secs(25);

/// A RADIUS client.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Its name.
    pub name: String,
    /// The addresses it sends from.
    pub network: IpNet,
    /// The shared secret.
    pub secret: Secret,
    /// Require a valid Message-Authenticator on Access-Requests.
    pub require_message_authenticator: bool,
    /// Drop Access-Requests with Proxy-State and no Message-Authenticator.
    pub limit_proxy_state: bool,
    /// Policy override for every login through this NAS.
    pub policy: Option<SitePolicy>,
    /// Where the user's address is read.
    pub origin: Vec<OriginSource>,
    /// How the second factor is asked.
    pub second_factor: SecondFactorMode,
}

/// An upstream server.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Its name.
    pub name: String,
    /// Authentication address.
    pub auth: SocketAddr,
    /// Accounting address.
    pub acct: Option<SocketAddr>,
    /// The shared secret.
    pub secret: Secret,
    /// Priority: lower first.
    pub priority: u32,
    /// Require a valid Message-Authenticator in replies.
    pub require_message_authenticator: bool,
    /// Per-try timeout.
    pub timeout: Duration,
    /// Retransmissions per request.
    pub retries: u32,
    /// Consecutive timeouts that mark the server dead.
    pub dead_after: u32,
    /// Probe interval while dead.
    pub probe_interval: Duration,
    /// Probe answers needed to revive.
    pub answers_to_alive: u32,
    /// Whether to probe with Status-Server.
    pub status_server: bool,
    /// Rest period when not probing.
    pub revive_after: Duration,
}

impl Settings {
    /// Loads `path` (TOML) with `PORTVAKT__*` environment overrides, and validates it.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        // Read once: what is parsed is what is hashed.
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path.display().to_string(), e.to_string()))?;
        let built = config::Config::builder()
            .add_source(config::File::from_str(&text, config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("PORTVAKT")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("server.auth_listen")
                    .with_list_parse_key("server.acct_listen"),
            )
            .build()
            .map_err(|e| ConfigError::new(path.display().to_string(), e.to_string()))?;
        let raw: RawConfig = serde_path_to_error::deserialize(built).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." {
                path.display().to_string()
            } else {
                key
            };
            ConfigError::new(key, e.into_inner().to_string())
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut settings = Self::from_raw(raw, path, base)?;
        settings
            .files
            .insert(0, FileDigest::of(path, text.as_bytes()));
        Ok(settings)
    }

    /// Validates raw settings; relative paths are resolved against `base`.
    pub fn from_raw(raw: RawConfig, source: &Path, base: &Path) -> Result<Self, ConfigError> {
        let server = raw.server;
        let auth_listen = listen_addrs(&server.auth_listen, "server.auth_listen")?;
        let acct_listen = listen_addrs(&server.acct_listen, "server.acct_listen")?;
        if auth_listen.is_empty() {
            return Err(ConfigError::new(
                "server.auth_listen",
                "at least one address is needed",
            ));
        }
        if server.max_in_flight == 0 {
            return Err(ConfigError::new(
                "server.max_in_flight",
                "must be at least 1",
            ));
        }
        if !(1..=MAX_WORKERS).contains(&server.workers) {
            return Err(ConfigError::new(
                "server.workers",
                format!("must be from 1 to {MAX_WORKERS}"),
            ));
        }
        let dictionary = Arc::new(match &server.dictionaries {
            None => Dictionary::builtin(),
            Some(dir) => Dictionary::load(&base.join(dir).join("dictionary"))
                .map_err(|e| ConfigError::new("server.dictionaries", e.to_string()))?,
        });
        let clients = clients(raw.clients, base)?;
        let directory = match raw.directory.mode.as_deref() {
            None | Some("radius") => DirectoryMode::Radius,
            Some("local") => DirectoryMode::Local,
            Some(other) => {
                return Err(ConfigError::new(
                    "directory.mode",
                    format!("`{other}`: expected \"radius\" or \"local\""),
                ));
            }
        };
        let upstreams = match directory {
            DirectoryMode::Radius => upstreams(raw.upstreams, base)?,
            DirectoryMode::Local if raw.upstreams.is_empty() => Vec::new(),
            DirectoryMode::Local => {
                return Err(ConfigError::new(
                    "upstreams",
                    "directory.mode = \"local\" uses no upstreams",
                ));
            }
        };
        let store = raw.store.map(|s| store_settings(s, base)).transpose()?;
        if directory == DirectoryMode::Local && store.is_none() {
            return Err(ConfigError::new(
                "store",
                "directory.mode = \"local\" needs a [store]",
            ));
        }
        let mfa = mfa_settings(raw.mfa)?;
        let (sites, sites_file) = site_config(raw.policy, raw.sites, raw.exceptions, base)?;
        let fail_modes = FailModes {
            push: raw.push.as_ref().map(|p| p.fail_mode).unwrap_or_default(),
            sms: raw.sms.as_ref().map(|s| s.fail_mode).unwrap_or_default(),
        };
        let approval = raw
            .approval
            .map(ApprovalSettings::from_raw)
            .transpose()?
            .map(Arc::new);
        let push = raw
            .push
            .map(|p| PushProvider::from_raw(p, base))
            .transpose()?
            .map(Arc::new);
        if push.is_some() && approval.is_none() {
            return Err(ConfigError::new(
                "approval",
                "[push] needs an [approval] section (where phones answer)",
            ));
        }
        let sms = raw
            .sms
            .map(|s| SmsSettings::from_raw(s, base))
            .transpose()?
            .map(Arc::new);
        check_hold(&clients, push.is_some(), approval.as_deref())?;
        let limits = Limits::from_raw(&raw.limits, "").map_err(first_issue)?;
        Ok(Self {
            source: source.to_path_buf(),
            files: sites_file.into_iter().collect(),
            auth_listen,
            acct_listen,
            dictionary,
            duplicate_window: server.duplicate_window,
            max_in_flight: server.max_in_flight,
            shutdown_grace: server.shutdown_grace,
            workers: server.workers,
            clients,
            upstreams,
            directory,
            store,
            mfa,
            sites,
            push,
            sms,
            approval,
            fail_modes,
            limits,
        })
    }
}

/// Hold mode needs push, and must give up before the push it waits for expires.
fn check_hold(
    clients: &[ClientSettings],
    push: bool,
    approval: Option<&ApprovalSettings>,
) -> Result<(), ConfigError> {
    for (i, c) in clients.iter().enumerate() {
        let SecondFactorMode::Hold { timeout } = c.second_factor else {
            continue;
        };
        let key = format!("clients[{i}]");
        let Some(approval) = approval.filter(|_| push) else {
            return Err(ConfigError::new(
                format!("{key}.second_factor"),
                "\"hold\" needs [push] and [approval]",
            ));
        };
        if timeout >= approval.policy.ttl {
            return Err(ConfigError::new(
                format!("{key}.hold_timeout"),
                format!(
                    "must be below approval.ttl ({})",
                    humantime::format_duration(approval.policy.ttl)
                ),
            ));
        }
    }
    Ok(())
}

fn first_issue(issues: Vec<ConfigIssue>) -> ConfigError {
    issues
        .into_iter()
        .next()
        .map(|i| ConfigError::new(i.key, i.message))
        .unwrap_or_else(|| ConfigError::new("sites", "invalid"))
}

fn store_settings(raw: RawStore, base: &Path) -> Result<StoreSettings, ConfigError> {
    let key = match (raw.key_file, raw.key_credential) {
        (Some(f), None) => KeySource::File(base.join(f)),
        (None, Some(c)) => KeySource::Credential(c),
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "store.key_file",
                "give key_file or key_credential, not both",
            ));
        }
        (None, None) => {
            return Err(ConfigError::new(
                "store.key_file",
                "a key_file or key_credential is required",
            ));
        }
    };
    Ok(StoreSettings {
        path: base.join(raw.path),
        key,
        strip_realm: raw.strip_realm,
    })
}

fn mfa_settings(raw: RawMfa) -> Result<MfaSettings, ConfigError> {
    let language = match raw.language.as_str() {
        "nb" | "no" => Language::Nb,
        "en" => Language::En,
        other => {
            return Err(ConfigError::new(
                "mfa.language",
                format!("`{other}`: expected \"nb\" or \"en\""),
            ));
        }
    };
    let (prompt, retry) = match language {
        Language::Nb => (
            "Skriv inn koden fra autentiseringsappen.",
            "Feil kode. Prøv igjen.",
        ),
        Language::En => (
            "Enter the code from your authenticator app.",
            "Wrong code. Try again.",
        ),
    };
    let unenrolled = match raw.unenrolled.as_str() {
        "reject" => Unenrolled::Reject,
        "allow" => Unenrolled::Allow,
        other => {
            return Err(ConfigError::new(
                "mfa.unenrolled",
                format!("`{other}`: expected \"reject\" or \"allow\""),
            ));
        }
    };
    if raw.max_attempts == 0 {
        return Err(ConfigError::new("mfa.max_attempts", "must be at least 1"));
    }
    if raw.totp_skew > 3 {
        return Err(ConfigError::new(
            "mfa.totp_skew",
            "at most 3 steps either side",
        ));
    }
    if raw.challenge_ttl < Duration::from_secs(1) || raw.challenge_ttl > Duration::from_secs(600) {
        return Err(ConfigError::new(
            "mfa.challenge_ttl",
            "must be between 1s and 10m",
        ));
    }
    if raw.max_pending == 0 {
        return Err(ConfigError::new("mfa.max_pending", "must be at least 1"));
    }
    Ok(MfaSettings {
        language,
        prompt: raw.prompt.unwrap_or_else(|| prompt.to_owned()),
        retry_prompt: raw.retry_prompt.unwrap_or_else(|| retry.to_owned()),
        challenge_ttl: raw.challenge_ttl,
        max_attempts: raw.max_attempts,
        totp_skew: raw.totp_skew,
        unenrolled,
        max_pending: raw.max_pending,
    })
}

fn site_config(
    policy: RawPolicy,
    sites: Vec<RawSite>,
    exceptions: Vec<RawException>,
    base: &Path,
) -> Result<(SiteConfig, Option<FileDigest>), ConfigError> {
    let Some(file) = policy.sites_file else {
        let raw = RawSitesFile {
            sites,
            exceptions,
            groups_from: policy.groups_from,
        };
        return Ok((SiteConfig::from_raw(&raw, "").map_err(first_issue)?, None));
    };
    if !sites.is_empty() || !exceptions.is_empty() {
        return Err(ConfigError::new(
            "policy.sites_file",
            "sites and exceptions go either inline or in sites_file, not both",
        ));
    }
    let path = base.join(&file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ConfigError::new("policy.sites_file", format!("{}: {e}", path.display())))?;
    let mut raw = RawSitesFile::from_toml(&text).map_err(|e| {
        ConfigError::new(
            format!("policy.sites_file({})", path.display()),
            e.to_string(),
        )
    })?;
    if raw.groups_from.is_none() {
        raw.groups_from = policy.groups_from;
    }
    let sites = SiteConfig::from_raw(&raw, &format!("policy.sites_file({}) ", path.display()))
        .map_err(first_issue)?;
    Ok((sites, Some(FileDigest::of(&path, text.as_bytes()))))
}

/// A configuration file and the SHA-256 of what was read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// The file.
    pub path: PathBuf,
    /// SHA-256 of its contents.
    pub sha256: [u8; 32],
}

impl FileDigest {
    fn of(path: &Path, contents: &[u8]) -> Self {
        use sha2::Digest;
        Self {
            path: path.to_path_buf(),
            sha256: sha2::Sha256::digest(contents).into(),
        }
    }
}

impl std::fmt::Display for FileDigest {
    /// `PATH (sha256 0123456789ab)`: the first 12 hex digits, as `sha256sum PATH` prints them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (sha256 {})",
            self.path.display(),
            hex::encode(&self.sha256[..6])
        )
    }
}

fn listen_addrs(list: &[String], key: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            s.trim().parse().map_err(|_| {
                ConfigError::new(
                    format!("{key}[{i}]"),
                    format!("`{s}` is not an ip:port address"),
                )
            })
        })
        .collect()
}

fn clients(raw: Vec<RawClient>, base: &Path) -> Result<Vec<ClientSettings>, ConfigError> {
    let mut out: Vec<ClientSettings> = Vec::with_capacity(raw.len());
    for (i, c) in raw.into_iter().enumerate() {
        let key = format!("clients[{i}]");
        unique_name(&c.name, out.iter().map(|o| o.name.as_str()), &key)?;
        let network = parse_net(&c.address).ok_or_else(|| {
            ConfigError::new(
                format!("{key}.address"),
                format!("`{}` is not an address or prefix", c.address),
            )
        })?;
        if let Some(other) = out.iter().find(|o| o.network == network) {
            return Err(ConfigError::new(
                format!("{key}.address"),
                format!("{network} is already client `{}`", other.name),
            ));
        }
        let secret = secret(c.secret, c.secret_file, base, &key)?;
        if !c.require_message_authenticator && !c.limit_proxy_state {
            return Err(ConfigError::new(
                format!("{key}.limit_proxy_state"),
                "with require_message_authenticator = false, limit_proxy_state must stay true (BlastRADIUS)",
            ));
        }
        let policy = c
            .policy
            .as_deref()
            .map(|p| {
                p.parse::<SitePolicy>()
                    .map_err(|e| ConfigError::new(format!("{key}.policy"), e.to_string()))
            })
            .transpose()?;
        let origin = match &c.origin {
            None => OriginSource::default_list(),
            Some(list) => parse_sources(&format!("{key}.origin"), list).map_err(first_issue)?,
        };
        let second_factor = match c.second_factor.as_deref() {
            None | Some("challenge") => SecondFactorMode::Challenge,
            Some("append") => SecondFactorMode::Append {
                separator: c.append_separator,
            },
            Some("hold") => SecondFactorMode::Hold {
                timeout: c.hold_timeout.unwrap_or(DEFAULT_HOLD_TIMEOUT),
            },
            Some(other) => {
                return Err(ConfigError::new(
                    format!("{key}.second_factor"),
                    format!("`{other}`: expected \"challenge\", \"append\" or \"hold\""),
                ));
            }
        };
        if c.hold_timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new(
                format!("{key}.hold_timeout"),
                "must be more than 0",
            ));
        }
        out.push(ClientSettings {
            name: c.name,
            network,
            secret,
            require_message_authenticator: c.require_message_authenticator,
            limit_proxy_state: c.limit_proxy_state,
            policy,
            origin,
            second_factor,
        });
    }
    Ok(out)
}

fn upstreams(raw: Vec<RawUpstream>, base: &Path) -> Result<Vec<UpstreamSettings>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::new(
            "upstreams",
            "at least one upstream server is needed",
        ));
    }
    let mut out: Vec<UpstreamSettings> = Vec::with_capacity(raw.len());
    for (i, u) in raw.into_iter().enumerate() {
        let key = format!("upstreams[{i}]");
        unique_name(&u.name, out.iter().map(|o| o.name.as_str()), &key)?;
        let addr = |s: &str, field: &str| {
            s.trim().parse::<SocketAddr>().map_err(|_| {
                ConfigError::new(
                    format!("{key}.{field}"),
                    format!("`{s}` is not an ip:port address"),
                )
            })
        };
        let auth = addr(&u.auth, "auth")?;
        let acct = u.acct.as_deref().map(|a| addr(a, "acct")).transpose()?;
        let secret = secret(u.secret, u.secret_file, base, &key)?;
        if u.timeout.is_zero() {
            return Err(ConfigError::new(
                format!("{key}.timeout"),
                "must be more than zero",
            ));
        }
        if u.dead_after == 0 || u.answers_to_alive == 0 {
            let field = if u.dead_after == 0 {
                "dead_after"
            } else {
                "answers_to_alive"
            };
            return Err(ConfigError::new(
                format!("{key}.{field}"),
                "must be at least 1",
            ));
        }
        if u.probe_interval.is_zero() {
            return Err(ConfigError::new(
                format!("{key}.probe_interval"),
                "must be more than zero",
            ));
        }
        out.push(UpstreamSettings {
            name: u.name,
            auth,
            acct,
            secret,
            priority: u.priority,
            require_message_authenticator: u.require_message_authenticator,
            timeout: u.timeout,
            retries: u.retries,
            dead_after: u.dead_after,
            probe_interval: u.probe_interval,
            answers_to_alive: u.answers_to_alive,
            status_server: u.status_server,
            revive_after: u.revive_after,
        });
    }
    // Stable: equal priorities keep file order.
    out.sort_by_key(|u| u.priority);
    Ok(out)
}

fn unique_name<'a>(
    name: &str,
    mut seen: impl Iterator<Item = &'a str>,
    key: &str,
) -> Result<(), ConfigError> {
    if name.trim().is_empty() {
        return Err(ConfigError::new(format!("{key}.name"), "must not be empty"));
    }
    if seen.any(|s| s == name) {
        return Err(ConfigError::new(
            format!("{key}.name"),
            format!("`{name}` is used twice"),
        ));
    }
    Ok(())
}

/// Parses `192.0.2.10`, `192.0.2.0/24`, `2001:db8::/32`. Host bits must be clear, and
/// `/0` is refused: "every address on the Internet" is never a client or a site.
pub fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    let net = match s.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(s.parse::<IpAddr>().ok()?.to_canonical()),
    };
    (net.prefix_len() > 0 && net.trunc() == net).then_some(net)
}

fn secret(
    inline: Option<String>,
    file: Option<PathBuf>,
    base: &Path,
    key: &str,
) -> Result<Secret, ConfigError> {
    let (value, field) = match (inline, file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                format!("{key}.secret"),
                "give secret or secret_file, not both",
            ));
        }
        (None, None) => {
            return Err(ConfigError::new(
                format!("{key}.secret"),
                "a secret or secret_file is required",
            ));
        }
        (Some(s), None) => (s, "secret"),
        (None, Some(path)) => {
            let path = base.join(path);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::new(
                    format!("{key}.secret_file"),
                    format!("{}: {e}", path.display()),
                )
            })?;
            (
                text.trim_end_matches(['\r', '\n']).to_owned(),
                "secret_file",
            )
        }
    };
    if value.len() < MIN_SECRET_LEN {
        return Err(ConfigError::new(
            format!("{key}.{field}"),
            format!("a shared secret needs at least {MIN_SECRET_LEN} characters"),
        ));
    }
    Ok(Secret::new(value))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sites::SiteFailModes;

    /// Settings from TOML text, through a file as the daemon reads them (other modules' tests use it too).
    pub(crate) fn load_str(text: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portvakt.toml");
        std::fs::write(&path, text).unwrap();
        Settings::load(&path)
    }

    /// A small valid configuration.
    pub(crate) const GOOD: &str = r#"
[server]
auth_listen = ["127.0.0.1:0"]
[[clients]]
name = "vpn1"
address = "192.0.2.10"
secret = "0123456789abcdef"
[[upstreams]]
name = "nps2"
auth = "127.0.0.1:1812"
secret = "0123456789abcdef"
priority = 2
[[upstreams]]
name = "nps1"
auth = "127.0.0.1:1812"
secret = "0123456789abcdef"
"#;

    #[test]
    fn good_config_loads() {
        let s = load_str(GOOD).unwrap();
        assert_eq!(s.clients[0].network.to_string(), "192.0.2.10/32");
        assert_eq!(s.upstreams[0].name, "nps1", "sorted by priority");
        assert!(s.clients[0].require_message_authenticator);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                GOOD.replace("name = \"vpn1\"", "name = \"vpn1\"\nbogus = 1"),
                "clients[0].bogus",
            ),
            (
                GOOD.replace("192.0.2.10", "192.0.2.300"),
                "clients[0].address",
            ),
            (
                GOOD.replace("192.0.2.10", "0.0.0.0/0"),
                "clients[0].address",
            ),
            (
                GOOD.replacen("0123456789abcdef", "short", 1),
                "clients[0].secret",
            ),
            (
                GOOD.replace("127.0.0.1:0", "localhost"),
                "server.auth_listen[0]",
            ),
            (
                GOOD.replace("priority = 2", "priority = \"x\""),
                "upstreams[0].priority",
            ),
        ];
        for (text, key) in cases {
            let err = load_str(&text).unwrap_err();
            assert_eq!(err.key, key, "{err}");
        }
    }

    const PUSH: &str = r#"
[push]
provider = "ntfy"
url = "https://ntfy.example"
fail_mode = "open"
[approval]
public_url = "https://mfa.example"
ttl = "60s"
"#;

    const SITE_FAIL_MODES: &str = r#"
[[sites]]
name = "radhus"
networks = ["10.10.0.0/16"]
policy = "mfa"
fail_mode = { push = "open" }
[[sites]]
name = "legekontor"
networks = ["10.10.20.0/24"]
policy = "mfa"
fail_mode = { sms = "open", push = "closed" }
[[sites]]
name = "lab"
networks = ["10.30.0.0/16"]
policy = "mfa"
"#;

    #[test]
    fn sites_parse_their_fail_modes() {
        let s = load_str(&format!("{GOOD}{SITE_FAIL_MODES}")).unwrap();
        let modes: Vec<_> = s.sites.sites.iter().map(|site| site.fail_mode).collect();
        let (open, closed) = (Some(FailMode::Open), Some(FailMode::Closed));
        assert_eq!(
            modes,
            [
                SiteFailModes {
                    push: open,
                    sms: None
                },
                SiteFailModes {
                    push: closed,
                    sms: open
                },
                SiteFailModes::default(),
            ]
        );
        let cases = [
            ("fail_mode = { push = \"ajar\" }", "sites[0].fail_mode.push"),
            ("fail_mode = { sms = \"Open\" }", "sites[0].fail_mode.sms"),
            ("fail_mode = { voice = \"open\" }", "sites[0].fail_mode"),
            ("fail_mode = \"open\"", "sites[0].fail_mode"),
        ];
        for (line, key) in cases {
            let text = format!(
                "{GOOD}{}",
                SITE_FAIL_MODES.replacen("fail_mode = { push = \"open\" }", line, 1)
            );
            let err = load_str(&text).unwrap_err();
            assert!(err.key.starts_with(key), "{line}: {err}");
            assert!(!err.key.starts_with("sites[1]"), "{line}: {err}");
        }
    }

    #[test]
    fn the_site_fail_mode_wins_over_the_global_one() {
        crate::factor::install_crypto_provider();
        // Global: push open (from PUSH), SMS closed (the default).
        let s = load_str(&format!("{GOOD}{PUSH}{SITE_FAIL_MODES}")).unwrap();
        let (open, closed) = (FailMode::Open, FailMode::Closed);
        for (site, push, sms) in [
            (Some("radhus"), open, closed),
            (Some("legekontor"), closed, open),
            (Some("lab"), open, closed),
            (None, open, closed),
            (Some("no-such-site"), open, closed),
        ] {
            assert_eq!(s.fail_mode(Method::Push, site), push, "{site:?}");
            assert_eq!(s.fail_mode(Method::Sms, site), sms, "{site:?}");
            assert_eq!(s.fail_mode(Method::Totp, site), closed, "{site:?}");
        }
        // Without [push]: the global push mode is closed, a site's own "open" still applies.
        let s = load_str(&format!("{GOOD}{SITE_FAIL_MODES}")).unwrap();
        assert_eq!(s.fail_mode(Method::Push, Some("radhus")), open);
        assert_eq!(s.fail_mode(Method::Push, Some("lab")), closed);
        assert_eq!(s.fail_mode(Method::Push, None), closed);
    }

    fn hold(lines: &str, tail: &str) -> String {
        GOOD.replace(
            "name = \"vpn1\"",
            &format!("name = \"vpn1\"\nsecond_factor = \"hold\"\n{lines}"),
        ) + tail
    }

    #[test]
    fn hold_mode_needs_push_and_a_timeout_below_the_approval_ttl() {
        crate::factor::install_crypto_provider();
        let s = load_str(&hold("", PUSH)).unwrap();
        assert_eq!(
            s.clients[0].second_factor,
            SecondFactorMode::Hold {
                timeout: DEFAULT_HOLD_TIMEOUT
            }
        );
        assert_eq!(s.fail_modes.push, FailMode::Open);
        assert_eq!(s.fail_modes.sms, FailMode::Closed);
        let s = load_str(&hold("hold_timeout = \"5s\"", PUSH)).unwrap();
        assert_eq!(
            s.clients[0].second_factor,
            SecondFactorMode::Hold {
                timeout: Duration::from_secs(5)
            }
        );
        let cases = [
            (hold("", ""), "clients[0].second_factor"),
            (
                hold("hold_timeout = \"60s\"", PUSH),
                "clients[0].hold_timeout",
            ),
            (
                hold("hold_timeout = \"0s\"", PUSH),
                "clients[0].hold_timeout",
            ),
            (
                GOOD.to_owned() + &PUSH[..PUSH.find("[approval]").unwrap()],
                "approval",
            ),
        ];
        for (text, key) in cases {
            let err = load_str(&text).unwrap_err();
            assert_eq!(err.key, key, "{err}");
        }
    }
}
