//! What the SMS and push providers share: the HTTPS client, error classes, the call
//! through the circuit breaker, and config helpers (URLs, secrets, timeouts).
//!
//! TLS is rustls with the *ring* provider only (no aws-lc-rs, no C toolchain):
//! [`install_crypto_provider`] must run once before the first client is built — `main`
//! calls it at start-up, tests call it too (it is idempotent). Server certificates are
//! checked against the system's roots, plus an optional private CA (`ca_file`) for a
//! self-hosted ntfy or gateway.
//!
//! Nothing here logs a request: URLs, bodies and headers may carry phone numbers, codes,
//! tokens and API keys. Errors are classified without their URL.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::breaker::{Breaker, BreakerSettings};
use crate::config::ConfigError;
use crate::secret::Secret;

/// The longest a provider call may take: a login must not wait longer on a
/// provider that hangs.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(5);

/// Installs rustls's *ring* crypto provider as the process default. Call once in `main`
/// before any TLS config or HTTP client is built; later calls do nothing.
pub fn install_crypto_provider() {
    // `Err` means a provider is installed already (by an earlier call): nothing to do.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Why a provider call failed. No variant carries a URL, body, number or code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The circuit breaker is open: the provider failed repeatedly and is not called.
    #[error("provider circuit open (failed repeatedly)")]
    CircuitOpen,
    /// No answer within the timeout.
    #[error("provider timed out")]
    Timeout,
    /// No connection (refused, DNS, TLS handshake).
    #[error("cannot reach the provider")]
    Connect,
    /// The provider answered with a non-success status.
    #[error("provider answered HTTP {0}")]
    Status(u16),
    /// Anything else on the way (body, protocol).
    #[error("provider request failed")]
    Other,
}

impl ProviderError {
    /// Whether this means "the provider is unreachable or unwell" — where a site's
    /// `fail_mode = "open"` may apply — rather than "the provider refused this request"
    /// (a 4xx: a configuration or number problem, which never fails open).
    pub fn is_outage(&self) -> bool {
        match self {
            Self::CircuitOpen | Self::Timeout | Self::Connect | Self::Other => true,
            Self::Status(code) => *code >= 500 || *code == 429,
        }
    }

    fn from_reqwest(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            Self::Timeout
        } else if e.is_connect() {
            Self::Connect
        } else {
            Self::Other
        }
    }
}

/// Sends `request` through `breaker`: fails fast while the breaker is open; a success
/// status closes it, an outage counts against it. A 4xx answer counts as the provider
/// being up (it answered), but is still an error for the caller.
pub(crate) async fn call(
    breaker: &Breaker,
    request: reqwest::RequestBuilder,
) -> Result<(), ProviderError> {
    let attempt = breaker.try_call().map_err(|_| ProviderError::CircuitOpen)?;
    let result = match request.send().await {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(ProviderError::Status(response.status().as_u16())),
        Err(e) => Err(ProviderError::from_reqwest(&e)),
    };
    match &result {
        Err(e) if e.is_outage() => attempt.failed(),
        _ => attempt.succeeded(),
    }
    result
}

/// An HTTPS client with `timeout` for the whole call, no redirects (a redirect could carry
/// credentials elsewhere) and, if given, a private CA added to the system roots.
pub(crate) fn client(timeout: Duration, ca: Option<&[u8]>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("portvakt/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| e.to_string())
}

/// Settings every provider has: timeout, breaker, private CA.
#[derive(Debug, Clone)]
pub(crate) struct Common {
    pub(crate) timeout: Duration,
    pub(crate) breaker: BreakerSettings,
    pub(crate) ca_pem: Option<Vec<u8>>,
}

impl Common {
    /// Validates the shared keys of a provider section named `key`.
    pub(crate) fn parse(
        timeout: Duration,
        ca_file: Option<&Path>,
        base: &Path,
        key: &str,
    ) -> Result<Self, ConfigError> {
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            return Err(ConfigError::new(
                format!("{key}.timeout"),
                format!("must be more than 0 and at most {MAX_TIMEOUT:?}"),
            ));
        }
        let ca_pem = match ca_file {
            None => None,
            Some(path) => {
                let path = base.join(path);
                let pem = std::fs::read(&path).map_err(|e| {
                    ConfigError::new(format!("{key}.ca_file"), format!("{}: {e}", path.display()))
                })?;
                Some(pem)
            }
        };
        Ok(Self {
            timeout,
            breaker: BreakerSettings::default(),
            ca_pem,
        })
    }

    /// Builds the HTTP client, naming `key` if the CA bundle is unusable.
    pub(crate) fn client(&self, key: &str) -> Result<reqwest::Client, ConfigError> {
        client(self.timeout, self.ca_pem.as_deref())
            .map_err(|e| ConfigError::new(format!("{key}.ca_file"), e))
    }
}

/// Parses a provider URL: `https://…`, or `http://` only to a loopback address (a
/// gateway or test receiver on the same host). Anything else would send codes, numbers
/// and API keys in clear text.
pub(crate) fn parse_url(text: &str, key: &str) -> Result<reqwest::Url, ConfigError> {
    let url =
        reqwest::Url::parse(text).map_err(|e| ConfigError::new(key, format!("not a URL: {e}")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(ConfigError::new(
            key,
            "plain http is allowed only to a loopback address; use https",
        )),
        other => Err(ConfigError::new(
            key,
            format!("scheme {other:?} is not supported; use https"),
        )),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    // IPv6 hosts come bracketed: `[::1]`.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.to_canonical().is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// A secret given inline (`{field}`) or in a file (`{field}_file`, trailing newline
/// ignored). `None` if neither is given; an error if both are.
pub(crate) fn secret(
    inline: Option<String>,
    file: Option<PathBuf>,
    base: &Path,
    key: &str,
    field: &str,
) -> Result<Option<Secret>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            format!("{key}.{field}"),
            format!("give {field} or {field}_file, not both"),
        )),
        (None, None) => Ok(None),
        (Some(value), None) => non_empty(value, key, field),
        (None, Some(path)) => {
            let path = base.join(path);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::new(
                    format!("{key}.{field}_file"),
                    format!("{}: {e}", path.display()),
                )
            })?;
            non_empty(text.trim_end_matches(['\r', '\n']).to_owned(), key, field)
        }
    }
}

fn non_empty(value: String, key: &str, field: &str) -> Result<Option<Secret>, ConfigError> {
    if value.is_empty() {
        return Err(ConfigError::new(format!("{key}.{field}"), "is empty"));
    }
    Ok(Some(Secret::new(value)))
}

/// The text of a secret for an HTTP header. Secrets come from config files, which are
/// UTF-8 text, so this cannot fail in practice; a non-UTF-8 secret yields "".
pub(crate) fn secret_text(secret: &Secret) -> &str {
    std::str::from_utf8(secret.expose()).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_unless_loopback() {
        for ok in [
            "https://sms.example.no/send",
            "http://127.0.0.1:8080/sms",
            "http://[::1]:9/x",
            "http://localhost/x",
        ] {
            assert!(parse_url(ok, "sms.url").is_ok(), "{ok}");
        }
        for bad in [
            "http://sms.example.no/send",
            "http://10.0.0.1/",
            "ftp://127.0.0.1/",
            "sms.example.no",
        ] {
            let err = parse_url(bad, "sms.url").unwrap_err();
            assert_eq!(err.key, "sms.url", "{bad}");
        }
    }

    #[test]
    fn timeouts_are_capped_at_five_seconds() {
        let base = Path::new(".");
        assert!(Common::parse(Duration::from_secs(5), None, base, "sms").is_ok());
        for bad in [Duration::ZERO, Duration::from_millis(5001)] {
            let err = Common::parse(bad, None, base, "sms").unwrap_err();
            assert_eq!(err.key, "sms.timeout");
        }
    }

    #[test]
    fn secrets_inline_or_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "tk_abc\n").unwrap();
        let from_file = secret(None, Some("token".into()), dir.path(), "push", "token").unwrap();
        assert_eq!(from_file.unwrap().expose(), b"tk_abc");
        assert!(
            secret(None, None, dir.path(), "push", "token")
                .unwrap()
                .is_none()
        );
        let both = secret(
            Some("x".into()),
            Some("token".into()),
            dir.path(),
            "push",
            "token",
        );
        assert_eq!(both.unwrap_err().key, "push.token");
        let missing = secret(None, Some("nope".into()), dir.path(), "push", "token");
        assert_eq!(missing.unwrap_err().key, "push.token_file");
    }

    #[test]
    fn outages_are_told_from_refusals() {
        for (e, outage) in [
            (ProviderError::CircuitOpen, true),
            (ProviderError::Timeout, true),
            (ProviderError::Connect, true),
            (ProviderError::Status(503), true),
            (ProviderError::Status(429), true),
            (ProviderError::Status(400), false),
            (ProviderError::Status(401), false),
        ] {
            assert_eq!(e.is_outage(), outage, "{e}");
        }
    }
}
