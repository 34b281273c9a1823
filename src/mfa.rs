//! The second factor on the RADIUS side: checking a code against the user store.
//!
//! The store is SQLite and blocking, so its work runs on the store's own threads: a slow
//! disk delays one login, never the receive loop. A code is accepted only if its time
//! step is newer than the user's last accepted step, and that step is on disk before the
//! Accept is sent (RFC 6238 §5.2: one code, one login — also across restarts).

use std::time::{SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use crate::factor::totp;
use crate::store::{Store, TotpCheck};

/// What a code check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    /// Right, and now used.
    Accepted,
    /// Not a valid code for now.
    Wrong,
    /// A valid code whose step was already used: a replay.
    Replayed,
    /// The user has no active method (or is unknown).
    NotEnrolled,
    /// The user is disabled.
    Disabled,
    /// The store failed (locked, corrupt, key mismatch): fail closed.
    StoreFailed,
}

impl CodeCheck {
    /// The reason code for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "otp_ok",
            Self::Wrong => "otp_bad",
            Self::Replayed => "otp_replay",
            Self::NotEnrolled => "unenrolled",
            Self::Disabled => "user_disabled",
            Self::StoreFailed => "store_failed",
        }
    }
}

/// Checks `code` for `user` and, if right, records its step before returning.
///
/// Secret, check and step in one transaction of the store's writer thread (group commit),
/// so no thread waits for the fsync and the login waits for one hop.
pub async fn check_code(store: &Store, user: &str, code: Zeroizing<String>, skew: u8) -> CodeCheck {
    let at = now();
    let checked = store
        .check_totp(user, move |secret| totp::verify(secret, &code, at, skew))
        .await;
    match checked {
        Ok(TotpCheck::Accepted) => CodeCheck::Accepted,
        Ok(TotpCheck::Wrong) => CodeCheck::Wrong,
        Ok(TotpCheck::Replayed) => CodeCheck::Replayed,
        Ok(TotpCheck::NotEnrolled) => CodeCheck::NotEnrolled,
        Ok(TotpCheck::Disabled) => CodeCheck::Disabled,
        Err(e) => {
            tracing::error!("user store: {e}");
            CodeCheck::StoreFailed
        }
    }
}

/// Checks a password against the built-in directory.
pub async fn check_local_password(
    store: &Store,
    user: &str,
    password: Zeroizing<Vec<u8>>,
) -> Option<bool> {
    let (store, user) = (store.clone(), user.to_owned());
    match tokio::task::spawn_blocking(move || store.verify_password(&user, &password)).await {
        Ok(Ok(ok)) => Some(ok),
        Ok(Err(e)) => {
            tracing::error!("user store: {e}");
            None
        }
        Err(_) => None,
    }
}

/// Splits `password,123456` (or `password123456` with an empty separator) into the
/// password and the code. The code is the digits after the last separator; with an
/// empty separator, the last 6 to 8 digits (tried longest first by the caller is not
/// needed: TOTP codes here have the user's configured length, 6 by default).
pub fn split_appended(
    typed: &[u8],
    separator: &str,
    digits: usize,
) -> Option<(Zeroizing<Vec<u8>>, Zeroizing<String>)> {
    let (password, code) = if separator.is_empty() {
        let at = typed.len().checked_sub(digits)?;
        typed.split_at(at)
    } else {
        let sep = separator.as_bytes();
        let at = typed.windows(sep.len()).rposition(|w| w == sep)?;
        (&typed[..at], &typed[at + sep.len()..])
    };
    let code = std::str::from_utf8(code).ok()?;
    if code.len() < 6 || code.len() > 8 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((
        Zeroizing::new(password.to_vec()),
        Zeroizing::new(code.to_owned()),
    ))
}

/// The wall clock in Unix seconds, for TOTP (which is defined on it).
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::split_appended;

    #[test]
    fn appended_codes() {
        let (pw, code) = split_appended(b"hemmelig,123456", ",", 6).unwrap();
        assert_eq!((&pw[..], code.as_str()), (&b"hemmelig"[..], "123456"));
        let (pw, code) = split_appended(b"a,b,c,654321", ",", 6).unwrap();
        assert_eq!((&pw[..], code.as_str()), (&b"a,b,c"[..], "654321"));
        let (pw, code) = split_appended(b"hemmelig123456", "", 6).unwrap();
        assert_eq!((&pw[..], code.as_str()), (&b"hemmelig"[..], "123456"));
        assert!(split_appended(b"hemmelig", ",", 6).is_none());
        assert!(split_appended(b"hemmelig,12a456", ",", 6).is_none());
        assert!(split_appended(b"hemmelig,12345", ",", 6).is_none());
        assert!(split_appended(b"12345", "", 6).is_none());
    }
}
