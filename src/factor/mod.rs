//! Second factors: how a user proves possession after the password.
//!
//! - [`totp`]: RFC 6238 time-based codes (authenticator apps).
//! - [`sms`]: one-time codes by text message through a generic HTTP gateway.
//! - [`push`]: approval requests to the user's phone (ntfy, or a JSON webhook); the
//!   answers arrive through [`crate::approval`].
//! - [`phone`]: E.164 phone numbers and their masked form.
//! - [`breaker`]: the circuit breaker the SMS and push providers share.
//! - [`provider`]: what those providers share besides (HTTPS client, error classes).
//!
//! Each factor module is pure where it can be; state such as the last accepted TOTP step,
//! SMS codes and send counters lives in the store.

pub mod breaker;
pub mod phone;
pub mod provider;
pub mod push;
pub mod sms;
pub mod totp;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use provider::install_crypto_provider;

/// A second-factor method a user can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Approve a notification on the phone (the seed's default).
    Push,
    /// A code from an authenticator app.
    Totp,
    /// A code sent by text message.
    Sms,
}

impl Method {
    /// All methods, in the fallback order used when the default is not enrolled.
    pub const ALL: [Self; 3] = [Self::Push, Self::Totp, Self::Sms];

    /// `push`, `totp` or `sms`: the name in the store, the CLI and the config.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Totp => "totp",
            Self::Sms => "sms",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that names no method.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown method {0:?} (expected push, totp or sms)")]
pub struct UnknownMethod(pub String);

impl FromStr for Method {
    type Err = UnknownMethod;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "push" => Ok(Self::Push),
            "totp" => Ok(Self::Totp),
            "sms" => Ok(Self::Sms),
            _ => Err(UnknownMethod(s.to_owned())),
        }
    }
}

/// What a login gets when a method's provider is unreachable (breaker open, timeout,
/// 5xx). Per site and per method; TOTP needs no provider and is never affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Reject the login (the default).
    #[default]
    Closed,
    /// Accept without the second factor — only where an admin chose it; every use must
    /// be logged as a warning with the site, method and user.
    Open,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip() {
        for m in Method::ALL {
            assert_eq!(m.as_str().parse::<Method>().unwrap(), m);
            assert_eq!(m.to_string().to_uppercase().parse::<Method>().unwrap(), m);
        }
        assert!("call".parse::<Method>().is_err());
    }
}
