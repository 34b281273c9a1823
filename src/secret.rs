//! Secrets that cannot be printed and are compared in constant time.
//!
//! RADIUS shared secrets and API keys live in a [`Secret`]: its `Debug` and `Display`
//! print `<redacted>`, its memory is wiped on drop, and equality is constant-time, so
//! neither a log line nor a timing difference gives it away.

use std::fmt;

use subtle::ConstantTimeEq;

use crate::radius::{PreparedSecret, SigningSecret};

/// A secret byte string. It also carries its HMAC-MD5 key schedule, computed once, so a
/// RADIUS shared secret signs and verifies Message-Authenticators without redoing it for
/// every packet.
#[derive(Clone)]
pub struct Secret(PreparedSecret);

impl Secret {
    /// Wraps secret bytes (the copy is wiped on drop).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        let bytes = zeroize::Zeroizing::new(bytes.into());
        Self(PreparedSecret::new(&bytes))
    }

    /// The secret bytes, for the one place that needs them (hashing, signing).
    pub fn expose(&self) -> &[u8] {
        self.0.octets()
    }

    /// The form the codec signs and verifies with.
    pub fn signing(&self) -> &PreparedSecret {
        &self.0
    }

    /// Its length in octets.
    pub fn len(&self) -> usize {
        self.expose().len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose().ct_eq(other.expose()).into()
    }
}

impl Eq for Secret {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2-hunter2-hunter2");
        assert_eq!(format!("{s}"), "<redacted>");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{:?}", Some(&s)).contains("hunter2"));
    }

    #[test]
    fn equality() {
        assert_eq!(Secret::new("abc"), Secret::new("abc"));
        assert_ne!(Secret::new("abc"), Secret::new("abd"));
        assert_ne!(Secret::new("abc"), Secret::new("abcd"));
    }
}
