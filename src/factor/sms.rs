//! SMS: the generic HTTP gateway (`[sms]`), one-time codes, and the send limits.
//!
//! **Gateway.** One request per message to a configured URL: method, headers, a body
//! template in JSON or form encoding, basic or bearer auth, rustls. Templates may use
//! `{to}` (`+4790000000`), `{to_digits}` (`4790000000`) and `{message}`; each is escaped
//! for where it stands — percent-encoded in the URL and in form bodies, JSON-escaped in
//! JSON bodies — so a message can never break out of its field. Every other `{…}` is
//! literal text (JSON bodies are full of braces). Any 2xx answer is success. Calls have a
//! timeout of at most 5 s and go through a [`Breaker`]. `docs/sms-providers.md` shows two
//! real providers configured this way.
//!
//! **Codes.** [`generate_code`] draws 6 (configurable) uniformly random digits from the OS
//! CSPRNG. The store keeps only an HMAC of each code (see `store/sms.rs`), valid 5 minutes,
//! single use, at most 3 attempts; a new code replaces the previous one.
//!
//! **Limits** (T-08), checked and recorded in the store in one transaction, so a restart
//! does not reset them: a cooldown per user and per number; at most `burst` messages per
//! user per `burst_window`, then an exponential backoff (1 → 32 min, with jitter); daily
//! caps per user, per number and in total. [`check_limits`] is the pure rule.
//!
//! Nothing here logs a number, a code or a message.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method as HttpMethod;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::breaker::Breaker;
use super::phone::Phone;
use super::provider::{self, Common, ProviderError};
use crate::config::ConfigError;
use crate::secret::Secret;
use crate::store::{CodeCheck, CodePurpose, Store, StoreError};

/// Why an SMS could not be sent through the gateway.
pub type SmsError = ProviderError;

/// `[sms]` as written in the configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSms {
    /// The gateway's URL. May contain `{to}`, `{to_digits}` and `{message}` (percent-encoded),
    /// for gateways that take GET query parameters. `https://`, or `http://` to loopback only.
    pub url: String,
    /// HTTP method: `POST` (default), `PUT` or `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// `json` or `form`: how `body` is escaped and the Content-Type sent. Required with `body`.
    pub body_format: Option<String>,
    /// The request body template, e.g. `{"to": "{to}", "text": "{message}"}`.
    pub body: Option<String>,
    /// Extra headers, e.g. `{ name = "X-Api-Key", value_file = "/run/credentials/…" }`.
    #[serde(default)]
    pub headers: Vec<RawHeader>,
    /// Authentication: `basic` or `bearer`.
    pub auth: Option<RawAuth>,
    /// Per-call timeout, at most 5 s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// A PEM file of extra CA certificates to trust (a gateway with a private CA).
    pub ca_file: Option<PathBuf>,
    /// `[sms.codes]`: the one-time codes.
    #[serde(default)]
    pub codes: RawCodes,
    /// `[sms.limits]`: cooldowns and caps.
    #[serde(default)]
    pub limits: RawLimits,
    /// What a login gets while the gateway is unreachable: `closed` (Reject, the
    /// default) or `open` (Accept without the second factor; every use is logged).
    #[serde(default)]
    pub fail_mode: super::FailMode,
}

/// One extra header. Header values count as secrets (API keys often travel here).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeader {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: Option<String>,
    /// A file holding the header value.
    pub value_file: Option<PathBuf>,
}

/// `[sms.auth]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// `basic` (username and password) or `bearer` (token).
    #[serde(rename = "type")]
    pub kind: String,
    /// Basic: the user name.
    pub username: Option<String>,
    /// Basic: the password. Prefer `password_file`.
    pub password: Option<String>,
    /// Basic: a file holding the password.
    pub password_file: Option<PathBuf>,
    /// Bearer: the token. Prefer `token_file`.
    pub token: Option<String>,
    /// Bearer: a file holding the token.
    pub token_file: Option<PathBuf>,
}

/// `[sms.codes]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCodes {
    /// Digits per code, 6 to 10.
    #[serde(default = "default_digits")]
    pub digits: u32,
    /// How long a code is valid, at most 5 minutes.
    #[serde(default = "default_code_ttl", with = "humantime_serde")]
    pub ttl: Duration,
    /// Wrong entries before a code is destroyed, 1 to 3.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// The text message; `{code}` and `{minutes}` are filled in.
    #[serde(default = "default_message")]
    pub message: String,
}

impl Default for RawCodes {
    fn default() -> Self {
        Self {
            digits: default_digits(),
            ttl: default_code_ttl(),
            max_attempts: default_attempts(),
            message: default_message(),
        }
    }
}

/// `[sms.limits]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Least time between two messages to one user, and to one number.
    #[serde(default = "default_cooldown", with = "humantime_serde")]
    pub cooldown: Duration,
    /// Messages per user within `burst_window` before the backoff starts.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// The window `burst` is counted in.
    #[serde(default = "default_burst_window", with = "humantime_serde")]
    pub burst_window: Duration,
    /// The first backoff wait; each further message doubles it.
    #[serde(default = "default_backoff_base", with = "humantime_serde")]
    pub backoff_base: Duration,
    /// The longest backoff wait.
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Messages per user per 24 h.
    #[serde(default = "default_daily")]
    pub daily_per_user: u32,
    /// Messages per number per 24 h (numbers may be shared by several users).
    #[serde(default = "default_daily")]
    pub daily_per_number: u32,
    /// Messages in total per 24 h (a toll-fraud budget); unset: no total cap.
    pub daily_total: Option<u32>,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            cooldown: default_cooldown(),
            burst: default_burst(),
            burst_window: default_burst_window(),
            backoff_base: default_backoff_base(),
            backoff_max: default_backoff_max(),
            daily_per_user: default_daily(),
            daily_per_number: default_daily(),
            daily_total: None,
        }
    }
}

fn default_method() -> String {
    "POST".into()
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_digits() -> u32 {
    6
}
fn default_code_ttl() -> Duration {
    Duration::from_secs(300)
}
fn default_attempts() -> u32 {
    3
}
fn default_message() -> String {
    "Engangskoden din er {code}. Den gjelder i {minutes} minutter.".into()
}
fn default_cooldown() -> Duration {
    Duration::from_secs(60)
}
fn default_burst() -> u32 {
    3
}
fn default_burst_window() -> Duration {
    Duration::from_secs(600)
}
fn default_backoff_base() -> Duration {
    Duration::from_secs(60)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(32 * 60)
}
fn default_daily() -> u32 {
    10
}

/// The longest a code may live (T-08).
pub const MAX_CODE_TTL: Duration = Duration::from_secs(300);
/// The most wrong entries a code may take (T-08).
pub const MAX_ATTEMPTS: u32 = 3;

/// Validated `[sms]`: the gateway, the code rules and the limits.
#[derive(Debug)]
pub struct SmsSettings {
    /// Where messages go.
    pub gateway: SmsGateway,
    /// One-time code rules.
    pub codes: CodeSettings,
    /// Send limits.
    pub limits: SmsLimits,
}

/// One-time code rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSettings {
    /// Digits per code.
    pub digits: u32,
    /// Lifetime.
    pub ttl: Duration,
    /// Wrong entries before the code is destroyed.
    pub max_attempts: u32,
    /// The message template (`{code}`, `{minutes}`).
    pub message: String,
}

impl Default for CodeSettings {
    fn default() -> Self {
        let raw = RawCodes::default();
        Self {
            digits: raw.digits,
            ttl: raw.ttl,
            max_attempts: raw.max_attempts,
            message: raw.message,
        }
    }
}

impl CodeSettings {
    /// The text message carrying `code`.
    pub fn message_for(&self, code: &str) -> Zeroizing<String> {
        let minutes = self.ttl.as_secs().div_ceil(60).to_string();
        Zeroizing::new(
            self.message
                .replace("{minutes}", &minutes)
                .replace("{code}", code),
        )
    }
}

/// Send limits (see the module header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsLimits {
    /// Least time between two messages to one user or one number.
    pub cooldown: Duration,
    /// Messages per user in `burst_window` before the backoff.
    pub burst: u32,
    /// The burst window.
    pub burst_window: Duration,
    /// First backoff wait.
    pub backoff_base: Duration,
    /// Longest backoff wait.
    pub backoff_max: Duration,
    /// Per user per 24 h.
    pub daily_per_user: u32,
    /// Per number per 24 h.
    pub daily_per_number: u32,
    /// In total per 24 h.
    pub daily_total: Option<u32>,
}

impl Default for SmsLimits {
    fn default() -> Self {
        let raw = RawLimits::default();
        Self {
            cooldown: raw.cooldown,
            burst: raw.burst,
            burst_window: raw.burst_window,
            backoff_base: raw.backoff_base,
            backoff_max: raw.backoff_max,
            daily_per_user: raw.daily_per_user,
            daily_per_number: raw.daily_per_number,
            daily_total: raw.daily_total,
        }
    }
}

impl SmsSettings {
    /// Validates `[sms]`; relative paths are resolved against `base`. Errors name the key
    /// under `sms.`.
    pub fn from_raw(raw: RawSms, base: &Path) -> Result<Self, ConfigError> {
        let codes = codes(&raw.codes)?;
        let limits = limits(&raw.limits)?;
        let gateway = SmsGateway::from_raw(raw, base)?;
        Ok(Self {
            gateway,
            codes,
            limits,
        })
    }
}

fn codes(raw: &RawCodes) -> Result<CodeSettings, ConfigError> {
    if !(6..=10).contains(&raw.digits) {
        return Err(ConfigError::new("sms.codes.digits", "must be 6 to 10"));
    }
    if raw.ttl.is_zero() || raw.ttl > MAX_CODE_TTL {
        return Err(ConfigError::new(
            "sms.codes.ttl",
            "must be more than 0 and at most 5 minutes",
        ));
    }
    if !(1..=MAX_ATTEMPTS).contains(&raw.max_attempts) {
        return Err(ConfigError::new("sms.codes.max_attempts", "must be 1 to 3"));
    }
    if !raw.message.contains("{code}") {
        return Err(ConfigError::new("sms.codes.message", "must contain {code}"));
    }
    Ok(CodeSettings {
        digits: raw.digits,
        ttl: raw.ttl,
        max_attempts: raw.max_attempts,
        message: raw.message.clone(),
    })
}

fn limits(raw: &RawLimits) -> Result<SmsLimits, ConfigError> {
    let checks = [
        (raw.burst == 0, "sms.limits.burst", "must be at least 1"),
        (
            raw.daily_per_user == 0,
            "sms.limits.daily_per_user",
            "must be at least 1",
        ),
        (
            raw.daily_per_number == 0,
            "sms.limits.daily_per_number",
            "must be at least 1",
        ),
        (
            raw.backoff_max < raw.backoff_base,
            "sms.limits.backoff_max",
            "must not be less than backoff_base",
        ),
        (
            raw.burst_window.is_zero(),
            "sms.limits.burst_window",
            "must be more than 0",
        ),
    ];
    if let Some((_, key, message)) = checks.into_iter().find(|(bad, ..)| *bad) {
        return Err(ConfigError::new(key, message));
    }
    Ok(SmsLimits {
        cooldown: raw.cooldown,
        burst: raw.burst,
        burst_window: raw.burst_window,
        backoff_base: raw.backoff_base,
        backoff_max: raw.backoff_max,
        daily_per_user: raw.daily_per_user,
        daily_per_number: raw.daily_per_number,
        daily_total: raw.daily_total,
    })
}

/// How placeholders are escaped in one template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Percent-encoding (URLs, form bodies).
    Percent,
    /// JSON string content (without the quotes: the template has them).
    Json,
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    To,
    ToDigits,
    Message,
}

/// A template split into literal text and placeholders at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template {
    pieces: Vec<Piece>,
    escape: Escape,
}

impl Template {
    fn parse(text: &str, escape: Escape) -> Self {
        const NAMES: [(&str, Piece); 3] = [
            ("{to}", Piece::To),
            ("{to_digits}", Piece::ToDigits),
            ("{message}", Piece::Message),
        ];
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some((name, piece)) = NAMES.iter().find(|(name, _)| rest.starts_with(name)) {
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(piece.clone());
                rest = &rest[name.len()..];
            } else {
                // Not a placeholder: one character of literal text. `rest` is non-empty.
                let c = rest.chars().next().unwrap_or_default();
                literal.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Self { pieces, escape }
    }

    fn render(&self, to: &Phone, message: &str) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        for piece in &self.pieces {
            let value = match piece {
                Piece::Text(text) => {
                    out.push_str(text);
                    continue;
                }
                Piece::To => to.e164(),
                Piece::ToDigits => to.digits(),
                Piece::Message => message,
            };
            match self.escape {
                Escape::Percent => percent_encode(value, &mut out),
                Escape::Json => json_escape(value, &mut out),
            }
        }
        out
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters. `%20` for a space is
/// valid both in URLs and in `application/x-www-form-urlencoded` bodies.
fn percent_encode(value: &str, out: &mut String) {
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Appends `value` as the content of a JSON string.
fn json_escape(value: &str, out: &mut String) {
    // serde_json writes a complete, correctly escaped string literal; drop its quotes.
    let quoted = serde_json::Value::from(value).to_string();
    out.push_str(&quoted[1..quoted.len() - 1]);
}

/// The request body: template, escaping and the Content-Type it goes with.
#[derive(Debug, Clone)]
struct Body {
    template: Template,
    content_type: &'static str,
}

/// How the gateway is authenticated.
#[derive(Clone)]
enum Auth {
    None,
    Basic { username: String, password: Secret },
    Bearer(Secret),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { username, .. } => write!(f, "Basic({username:?}, <redacted>)"),
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// The SMS gateway: where and how one message is sent. Cheap to share by reference.
pub struct SmsGateway {
    url: Template,
    method: HttpMethod,
    body: Option<Body>,
    /// Values are marked sensitive, so `Debug` of the map never shows them.
    headers: HeaderMap,
    auth: Auth,
    client: reqwest::Client,
    breaker: Breaker,
}

impl fmt::Debug for SmsGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsGateway")
            .field("method", &self.method)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("auth", &self.auth)
            .field("breaker", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

impl SmsGateway {
    /// Builds the gateway from `[sms]` (codes and limits are ignored here).
    pub fn from_raw(raw: RawSms, base: &Path) -> Result<Self, ConfigError> {
        let common = Common::parse(raw.timeout, raw.ca_file.as_deref(), base, "sms")?;
        let url = url_template(&raw.url)?;
        let method = match raw.method.to_ascii_uppercase().as_str() {
            "POST" => HttpMethod::POST,
            "PUT" => HttpMethod::PUT,
            "GET" => HttpMethod::GET,
            _ => return Err(ConfigError::new("sms.method", "must be POST, PUT or GET")),
        };
        let body = body(raw.body_format.as_deref(), raw.body.as_deref())?;
        if body.is_some() && method == HttpMethod::GET {
            return Err(ConfigError::new("sms.body", "a GET request has no body"));
        }
        let headers = headers(raw.headers, base)?;
        let auth = auth(raw.auth, base)?;
        Ok(Self {
            url,
            method,
            body,
            headers,
            auth,
            client: common.client("sms")?,
            breaker: Breaker::new(common.breaker),
        })
    }

    /// Sends `message` to `to`. Fails fast while the breaker is open; never logs either.
    pub async fn send(&self, to: &Phone, message: &str) -> Result<(), SmsError> {
        let url = self.url.render(to, message);
        // The template was checked at load time with sample values; a real number and
        // message only add percent-encoded text, which cannot make the URL invalid.
        let url = reqwest::Url::parse(&url).map_err(|_| ProviderError::Other)?;
        let mut request = self
            .client
            .request(self.method.clone(), url)
            .headers(self.headers.clone());
        if let Some(body) = &self.body {
            let rendered = body.template.render(to, message);
            request = request
                .header(CONTENT_TYPE, body.content_type)
                .body(rendered.as_bytes().to_vec());
        }
        request = match &self.auth {
            Auth::None => request,
            Auth::Basic { username, password } => {
                request.basic_auth(username, Some(provider::secret_text(password)))
            }
            Auth::Bearer(token) => request.bearer_auth(provider::secret_text(token)),
        };
        provider::call(&self.breaker, request).await
    }

    /// The gateway's circuit breaker (for metrics and health).
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }
}

/// Sample values used to check templates at load time.
fn sample() -> (Phone, &'static str) {
    // A valid constant: parse cannot fail on it.
    let phone = Phone::parse("+4790000000").unwrap_or_else(|_| unreachable!());
    (phone, "Sample \"message\" & {braces} æøå\n")
}

fn url_template(text: &str) -> Result<Template, ConfigError> {
    let template = Template::parse(text, Escape::Percent);
    let (phone, message) = sample();
    let rendered = provider::parse_url(&template.render(&phone, message), "sms.url")?;
    // Placeholders belong in the path or query: the host must not depend on them.
    let other = Phone::parse("+1555000111").unwrap_or_else(|_| unreachable!());
    let rendered_other = provider::parse_url(&template.render(&other, "x"), "sms.url")?;
    if rendered.origin() != rendered_other.origin() {
        return Err(ConfigError::new(
            "sms.url",
            "placeholders may appear only in the path or query, not in the host",
        ));
    }
    Ok(template)
}

fn body(format: Option<&str>, text: Option<&str>) -> Result<Option<Body>, ConfigError> {
    let (format, text) = match (format, text) {
        (None, None) => return Ok(None),
        (Some(f), Some(t)) => (f, t),
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "sms.body_format",
                "say how the body is encoded: \"json\" or \"form\"",
            ));
        }
        (Some(_), None) => return Err(ConfigError::new("sms.body", "body_format needs a body")),
    };
    let (escape, content_type) = match format {
        "json" => (Escape::Json, "application/json"),
        "form" => (Escape::Percent, "application/x-www-form-urlencoded"),
        _ => {
            return Err(ConfigError::new(
                "sms.body_format",
                "must be \"json\" or \"form\"",
            ));
        }
    };
    let template = Template::parse(text, escape);
    if !template.pieces.contains(&Piece::Message) {
        return Err(ConfigError::new("sms.body", "must contain {message}"));
    }
    if escape == Escape::Json {
        let (phone, message) = sample();
        let rendered = template.render(&phone, message);
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&rendered) {
            return Err(ConfigError::new(
                "sms.body",
                format!(
                    "is not valid JSON once filled in (are the placeholders inside quotes?): {e}"
                ),
            ));
        }
    }
    Ok(Some(Body {
        template,
        content_type,
    }))
}

fn headers(raw: Vec<RawHeader>, base: &Path) -> Result<HeaderMap, ConfigError> {
    let mut map = HeaderMap::new();
    for (i, h) in raw.into_iter().enumerate() {
        let key = format!("sms.headers[{i}]");
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| ConfigError::new(format!("{key}.name"), "not a valid header name"))?;
        let value =
            provider::secret(h.value, h.value_file, base, &key, "value")?.ok_or_else(|| {
                ConfigError::new(format!("{key}.value"), "a value or value_file is required")
            })?;
        let mut value = HeaderValue::from_bytes(value.expose())
            .map_err(|_| ConfigError::new(format!("{key}.value"), "not a valid header value"))?;
        value.set_sensitive(true);
        map.append(name, value);
    }
    Ok(map)
}

fn auth(raw: Option<RawAuth>, base: &Path) -> Result<Auth, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Auth::None);
    };
    match raw.kind.as_str() {
        "basic" => {
            let username = raw.username.ok_or_else(|| {
                ConfigError::new("sms.auth.username", "basic auth needs a username")
            })?;
            let password = provider::secret(
                raw.password,
                raw.password_file,
                base,
                "sms.auth",
                "password",
            )?
            .ok_or_else(|| {
                ConfigError::new(
                    "sms.auth.password",
                    "basic auth needs a password or password_file",
                )
            })?;
            Ok(Auth::Basic { username, password })
        }
        "bearer" => {
            let token = provider::secret(raw.token, raw.token_file, base, "sms.auth", "token")?
                .ok_or_else(|| {
                    ConfigError::new("sms.auth.token", "bearer auth needs a token or token_file")
                })?;
            Ok(Auth::Bearer(token))
        }
        _ => Err(ConfigError::new(
            "sms.auth.type",
            "must be \"basic\" or \"bearer\"",
        )),
    }
}

/// A code recorded in the store and the text message that carries it, ready to deliver.
pub struct IssuedSms {
    /// Where it goes.
    pub phone: Phone,
    message: Zeroizing<String>,
}

impl fmt::Debug for IssuedSms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedSms")
            .field("phone", &self.phone)
            .finish_non_exhaustive()
    }
}

/// Why a code could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendCodeError {
    /// The user has no number for this (a verified one for logins, a pending one for enrolment).
    #[error("no phone number to send a code to")]
    NoPhone,
    /// The send limits refuse it now.
    #[error("SMS limit reached ({0:?})")]
    Limited(Limited),
    /// The gateway failed; the code is recorded but did not go out.
    #[error(transparent)]
    Provider(SmsError),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// The OS random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
}

impl SendCodeError {
    /// Whether the SMS provider is unreachable — where `fail_mode` applies. A limit, a
    /// missing number or a store failure never fails open.
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Provider(e) if e.is_outage())
    }
}

impl SmsSettings {
    /// Makes a code for `user`, records it with the send in the store if the limits allow,
    /// and returns it ready to deliver. **Blocks** (SQLite): from async code use
    /// [`SmsSettings::send_code`].
    pub fn issue(
        &self,
        store: &Store,
        user: &str,
        purpose: CodePurpose,
    ) -> Result<IssuedSms, SendCodeError> {
        self.issuer().issue_with(store, user, purpose)
    }

    /// Sends an issued code through the gateway.
    pub async fn deliver(&self, issued: &IssuedSms) -> Result<(), SmsError> {
        self.gateway.send(&issued.phone, &issued.message).await
    }

    /// [`SmsSettings::issue`] on the blocking pool, then [`SmsSettings::deliver`]. Returns
    /// the number it went to (show it masked: "code sent to +47 ••• •• 123").
    pub async fn send_code(
        &self,
        store: &Store,
        user: &str,
        purpose: CodePurpose,
    ) -> Result<Phone, SendCodeError> {
        let (store, user, settings) = (store.clone(), user.to_owned(), self.issuer());
        // A blocking task that panicked or was cancelled counts as the store being
        // unavailable (PoolTimeout): the caller fails closed.
        let issued =
            tokio::task::spawn_blocking(move || settings.issue_with(&store, &user, purpose))
                .await
                .map_err(|_| SendCodeError::Store(StoreError::PoolTimeout))??;
        self.deliver(&issued)
            .await
            .map_err(SendCodeError::Provider)?;
        Ok(issued.phone)
    }

    /// Checks a typed code on the blocking pool (see [`Store::check_sms_code`]).
    pub async fn check_code(
        store: &Store,
        user: &str,
        purpose: CodePurpose,
        typed: &str,
    ) -> Result<CodeCheck, StoreError> {
        let (store, user) = (store.clone(), user.to_owned());
        let typed = Zeroizing::new(typed.to_owned());
        // A panicked or cancelled blocking task counts as the store being unavailable.
        tokio::task::spawn_blocking(move || store.check_sms_code(&user, purpose, &typed))
            .await
            .map_err(|_| StoreError::PoolTimeout)?
    }

    fn issuer(&self) -> Issuer {
        Issuer {
            codes: self.codes.clone(),
            limits: self.limits.clone(),
        }
    }
}

/// The owned part of the settings `issue` needs, for the blocking pool.
struct Issuer {
    codes: CodeSettings,
    limits: SmsLimits,
}

impl Issuer {
    fn issue_with(
        &self,
        store: &Store,
        user: &str,
        purpose: CodePurpose,
    ) -> Result<IssuedSms, SendCodeError> {
        let code = generate_code(self.codes.digits).map_err(|_| SendCodeError::Random)?;
        let issued = store
            .issue_sms_code(user, purpose, &code, &self.codes, &self.limits)
            .map_err(|e| match e {
                StoreError::NoPhone(_) => SendCodeError::NoPhone,
                e => SendCodeError::Store(e),
            })?
            .map_err(SendCodeError::Limited)?;
        Ok(IssuedSms {
            phone: issued.phone,
            message: self.codes.message_for(&code),
        })
    }
}

/// A fresh one-time code of `digits` decimal digits (6–10), uniformly distributed, from the
/// OS CSPRNG.
pub fn generate_code(digits: u32) -> Result<Zeroizing<String>, getrandom::Error> {
    let digits = digits.clamp(6, 10);
    let modulus = 10u64.pow(digits);
    // Rejection sampling: values at or above the largest multiple of `modulus` would make
    // low codes slightly likelier.
    let limit = u64::MAX - u64::MAX % modulus;
    loop {
        let mut bytes = Zeroizing::new([0u8; 8]);
        getrandom::fill(&mut *bytes)?;
        let value = u64::from_le_bytes(*bytes);
        if value < limit {
            let width = digits as usize;
            return Ok(Zeroizing::new(format!("{:0width$}", value % modulus)));
        }
    }
}

/// Whether the text a user typed at a challenge asks for a code by SMS (`sms`, any case,
/// surrounding spaces ignored).
pub fn is_sms_request(reply: &str) -> bool {
    reply.trim().eq_ignore_ascii_case("sms")
}

/// Why the limits refuse a message now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// The last message to this user or number was less than `cooldown` ago.
    Cooldown {
        /// When a message would be allowed.
        retry_after: Duration,
    },
    /// More than `burst` messages in the window: backing off.
    Backoff {
        /// When a message would be allowed.
        retry_after: Duration,
    },
    /// The user's or number's daily cap is reached.
    DailyCap,
    /// The daily total is reached (toll-fraud budget).
    TotalCap,
}

/// Past sends, as Unix seconds, oldest first, all within the last 24 hours.
#[derive(Debug, Clone, Copy)]
pub struct SendHistory<'a> {
    /// Sends to this user.
    pub user: &'a [i64],
    /// Sends to this number (any user).
    pub number: &'a [i64],
    /// Sends in total.
    pub total: u64,
}

/// Seconds in a day: the daily caps count a rolling 24 hours.
pub const DAY_SECS: i64 = 24 * 60 * 60;

/// The limit rule: may another message go out at `now`? `jitter` (any value, e.g. a hash
/// of the user and the last send) spreads the backoff by up to +25 % so that retries do
/// not line up.
pub fn check_limits(
    limits: &SmsLimits,
    history: SendHistory<'_>,
    now: i64,
    jitter: u64,
) -> Result<(), Limited> {
    let since = |t: i64| Duration::from_secs(u64::try_from(now - t).unwrap_or(0));
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    if limits
        .daily_total
        .is_some_and(|cap| history.total >= u64::from(cap))
    {
        return Err(Limited::TotalCap);
    }
    if history.user.len() >= limits.daily_per_user as usize
        || history.number.len() >= limits.daily_per_number as usize
    {
        return Err(Limited::DailyCap);
    }
    let last = history.user.iter().chain(history.number).copied().max();
    if let Some(last) = last
        && since(last) < limits.cooldown
    {
        return Err(Limited::Cooldown {
            retry_after: limits.cooldown - since(last),
        });
    }
    let in_window = |t: i64| {
        history
            .user
            .iter()
            .filter(|&&s| s < t && t - s < secs(limits.burst_window))
            .count()
    };
    // Over the burst, a streak begins: its k-th message waits base·2^(k−1) after the one
    // before, capped at `backoff_max`, plus jitter. The streak ends only after twice
    // `backoff_max` without a message, so waiting out the window does not reset it.
    let quiet = secs(limits.backoff_max).saturating_mul(2);
    let mut run = 0u32;
    for pair in history.user.windows(2) {
        if pair[1] - pair[0] >= quiet {
            run = 0;
        }
        if run > 0 || in_window(pair[1]) >= limits.burst as usize {
            run += 1;
        }
    }
    let Some(&last_user) = history.user.last() else {
        return Ok(());
    };
    let streak = run > 0 && now - last_user < quiet;
    if !streak {
        if in_window(now + 1) < limits.burst as usize {
            return Ok(());
        }
        run = 0;
    }
    let wait = limits
        .backoff_base
        .saturating_mul(1 << run.min(20))
        .min(limits.backoff_max);
    let wait = wait + wait.mul_f64((jitter % 1000) as f64 / 4000.0);
    if since(last_user) < wait {
        return Err(Limited::Backoff {
            retry_after: wait - since(last_user),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone() -> Phone {
        Phone::parse("+4790000123").unwrap()
    }

    #[test]
    fn templates_escape_for_where_they_stand() {
        let msg = "Kode \"12\" & 34\næ";
        let json = Template::parse(
            r#"{"to":"{to}","n":"{to_digits}","text":"{message}","x":{}}"#,
            Escape::Json,
        );
        let out = json.render(&phone(), msg);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["to"], "+4790000123");
        assert_eq!(v["n"], "4790000123");
        assert_eq!(v["text"], msg);
        assert_eq!(v["x"], serde_json::json!({}));

        let form = Template::parse("from=Kommune&to={to}&text={message}", Escape::Percent);
        let out = form.render(&phone(), "a b&c=d+æ");
        assert_eq!(
            out.as_str(),
            "from=Kommune&to=%2B4790000123&text=a%20b%26c%3Dd%2B%C3%A6"
        );
    }

    #[test]
    fn unknown_braces_are_literal() {
        let t = Template::parse("{x}{to}{to_digit}{message", Escape::Percent);
        assert_eq!(
            t.render(&phone(), "m").as_str(),
            "{x}%2B4790000123{to_digit}{message"
        );
    }

    fn raw(url: &str) -> RawSms {
        RawSms {
            url: url.into(),
            method: "POST".into(),
            body_format: Some("json".into()),
            body: Some(r#"{"to":"{to}","text":"{message}"}"#.into()),
            headers: vec![],
            auth: None,
            timeout: Duration::from_secs(5),
            ca_file: None,
            codes: RawCodes::default(),
            limits: RawLimits::default(),
            fail_mode: Default::default(),
        }
    }

    fn gateway_err(raw: RawSms) -> ConfigError {
        super::super::provider::install_crypto_provider();
        SmsGateway::from_raw(raw, Path::new(".")).unwrap_err()
    }

    #[test]
    fn bad_gateway_configs_name_their_key() {
        assert_eq!(gateway_err(raw("http://sms.example.no/")).key, "sms.url");
        assert_eq!(gateway_err(raw("https://{to}.example.no/")).key, "sms.url");
        let mut r = raw("https://sms.example.no/");
        r.body = Some(r#"{"to":{to},"text":{message}}"#.into());
        assert_eq!(gateway_err(r).key, "sms.body", "unquoted placeholders");
        let mut r = raw("https://sms.example.no/");
        r.body_format = None;
        assert_eq!(gateway_err(r).key, "sms.body_format");
        let mut r = raw("https://sms.example.no/");
        r.body = Some(r#"{"to":"{to}"}"#.into());
        assert_eq!(gateway_err(r).key, "sms.body", "no {{message}}");
        let mut r = raw("https://sms.example.no/");
        r.method = "DELETE".into();
        assert_eq!(gateway_err(r).key, "sms.method");
        let mut r = raw("https://sms.example.no/");
        r.auth = Some(RawAuth {
            kind: "bearer".into(),
            username: None,
            password: None,
            password_file: None,
            token: None,
            token_file: None,
        });
        assert_eq!(gateway_err(r).key, "sms.auth.token");
        let mut r = raw("https://sms.example.no/");
        r.headers = vec![RawHeader {
            name: "bad header".into(),
            value: Some("v".into()),
            value_file: None,
        }];
        assert_eq!(gateway_err(r).key, "sms.headers[0].name");
        let mut r = raw("https://sms.example.no/");
        r.timeout = Duration::from_secs(6);
        assert_eq!(gateway_err(r).key, "sms.timeout");
    }

    #[test]
    fn debug_shows_no_secret() {
        super::super::provider::install_crypto_provider();
        let mut r = raw("https://sms.example.no/");
        r.auth = Some(RawAuth {
            kind: "basic".into(),
            username: Some("kommune".into()),
            password: Some("pw-canary-4711".into()),
            password_file: None,
            token: None,
            token_file: None,
        });
        r.headers = vec![RawHeader {
            name: "X-Api-Key".into(),
            value: Some("key-canary-0815".into()),
            value_file: None,
        }];
        let g = SmsGateway::from_raw(r, Path::new(".")).unwrap();
        let shown = format!("{g:?}");
        assert!(shown.contains("kommune"), "{shown}");
        assert!(!shown.contains("canary"), "{shown}");
    }

    #[test]
    fn code_settings_are_bounded() {
        let ok = RawCodes::default();
        assert_eq!(codes(&ok).unwrap(), CodeSettings::default());
        for (change, key) in [
            (
                RawCodes {
                    digits: 5,
                    ..RawCodes::default()
                },
                "sms.codes.digits",
            ),
            (
                RawCodes {
                    ttl: Duration::from_secs(301),
                    ..RawCodes::default()
                },
                "sms.codes.ttl",
            ),
            (
                RawCodes {
                    max_attempts: 4,
                    ..RawCodes::default()
                },
                "sms.codes.max_attempts",
            ),
            (
                RawCodes {
                    message: "no code".into(),
                    ..RawCodes::default()
                },
                "sms.codes.message",
            ),
        ] {
            assert_eq!(codes(&change).unwrap_err().key, key);
        }
        let message = CodeSettings::default().message_for("123456");
        assert!(
            message.contains("123456") && message.contains("5 minutter"),
            "{}",
            *message
        );
    }

    #[test]
    fn codes_have_the_right_length_and_spread() {
        let mut first_digits = [0u32; 10];
        for _ in 0..2000 {
            let code = generate_code(6).unwrap();
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
            first_digits[usize::from(code.as_bytes()[0] - b'0')] += 1;
        }
        // Each leading digit ~200 times; a stuck generator or a bias toward 0 fails this.
        assert!(
            first_digits.iter().all(|&n| (100..320).contains(&n)),
            "{first_digits:?}"
        );
        assert_eq!(generate_code(8).unwrap().len(), 8);
        assert_ne!(*generate_code(10).unwrap(), *generate_code(10).unwrap());
    }

    #[test]
    fn sms_keyword() {
        assert!(is_sms_request(" SMS "));
        assert!(is_sms_request("sms"));
        assert!(!is_sms_request("123456"));
        assert!(!is_sms_request(""));
    }

    const NOW: i64 = 1_800_000_000;

    fn check(user: &[i64], number: &[i64], total: u64) -> Result<(), Limited> {
        check_limits(
            &SmsLimits::default(),
            SendHistory {
                user,
                number,
                total,
            },
            NOW,
            0,
        )
    }

    #[test]
    fn cooldown_per_user_and_per_number() {
        assert_eq!(check(&[], &[], 0), Ok(()));
        assert_eq!(
            check(&[NOW - 20], &[], 0),
            Err(Limited::Cooldown {
                retry_after: Duration::from_secs(40)
            })
        );
        assert!(
            matches!(check(&[], &[NOW - 59], 0), Err(Limited::Cooldown { .. })),
            "shared number"
        );
        assert_eq!(check(&[NOW - 60], &[NOW - 60], 0), Ok(()));
    }

    #[test]
    fn burst_then_exponential_backoff_up_to_32_minutes() {
        let min = 60;
        // Three in ten minutes: the fourth waits 1 min after the last, the fifth 2, ...
        let three = [NOW - 9 * min, NOW - 5 * min, NOW - 61];
        assert_eq!(
            check(&three, &[], 0),
            Ok(()),
            "61 s after the third: 1 min backoff done"
        );
        let three = [NOW - 9 * min, NOW - 5 * min, NOW - 30];
        assert!(matches!(
            check(&three, &[], 0),
            Err(Limited::Cooldown { .. })
        ));
        let four = [NOW - 9 * min, NOW - 8 * min, NOW - 7 * min, NOW - 90];
        assert_eq!(
            check(&four, &[], 0),
            Err(Limited::Backoff {
                retry_after: Duration::from_secs(30)
            }),
            "the 5th waits 2 min"
        );
        // Jitter adds at most a quarter.
        let jittered = check_limits(
            &SmsLimits::default(),
            SendHistory {
                user: &four,
                number: &[],
                total: 0,
            },
            NOW + 30,
            999,
        );
        assert!(
            matches!(jittered, Err(Limited::Backoff { retry_after }) if retry_after > Duration::ZERO && retry_after <= Duration::from_secs(30))
        );
        // Ten quiet minutes end the backoff.
        let old = [NOW - 700, NOW - 690, NOW - 680, NOW - 670];
        assert_eq!(check(&old, &[], 0), Ok(()));
    }

    #[test]
    fn a_persistent_sender_backs_off_doubling_up_to_32_minutes() {
        // Send whenever allowed, checking every 10 s for 8 hours: the gaps after the
        // burst double from 1 minute and stop at 32.
        let limits = SmsLimits {
            daily_per_user: 1000,
            ..SmsLimits::default()
        };
        let mut sent: Vec<i64> = Vec::new();
        for step in 0..(8 * 360) {
            let now = NOW + step * 10;
            let history = SendHistory {
                user: &sent,
                number: &[],
                total: 0,
            };
            if check_limits(&limits, history, now, 0).is_ok() {
                sent.push(now);
            }
        }
        let gaps: Vec<i64> = sent.windows(2).map(|w| (w[1] - w[0]) / 60).collect();
        assert_eq!(&gaps[..8], [1, 1, 1, 2, 4, 8, 16, 32], "{gaps:?}");
        assert!(gaps[8..].iter().all(|&g| g == 32), "{gaps:?}");
    }

    #[test]
    fn daily_caps() {
        let ten: Vec<i64> = (0..10).map(|i| NOW - 80_000 + i * 3600).collect();
        assert_eq!(check(&ten, &[], 0), Err(Limited::DailyCap));
        assert_eq!(check(&[], &ten, 0), Err(Limited::DailyCap), "per number");
        let limits = SmsLimits {
            daily_total: Some(500),
            ..SmsLimits::default()
        };
        let empty = SendHistory {
            user: &[],
            number: &[],
            total: 500,
        };
        assert_eq!(check_limits(&limits, empty, NOW, 0), Err(Limited::TotalCap));
    }
}
