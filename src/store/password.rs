//! The built-in local directory: user passwords as Argon2id hashes (PHC strings).
//!
//! For sites without an upstream directory. Parameters are argon2's defaults, which follow
//! OWASP's recommendation (Argon2id, 19 MiB, 2 passes, 1 lane); each hash records its own
//! parameters, so raising them later keeps old hashes verifiable. Hashing runs outside any
//! database connection: it takes tens of milliseconds of CPU and must not hold one.

use super::pool::Cached;
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, now};

impl Store {
    /// Sets (or replaces) a user's password in the built-in directory.
    pub fn set_password(&self, name: &str, password: &[u8]) -> Result<(), StoreError> {
        let name = self.normalize(name)?;
        let hash = hash(password)?;
        self.write(|tx| {
            match tx.exec(
                "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE name = ?1",
                params![name, hash, now()],
            )? {
                0 => Err(StoreError::NotFound(name.clone())),
                _ => Ok(()),
            }
        })
    }

    /// Checks a password against the built-in directory. `false` for a wrong password, an
    /// unknown user, a user without a password, and a disabled user.
    ///
    /// The comparison is argon2's (constant-time). When there is no hash to check against,
    /// a dummy hash is verified instead, so the time taken does not reveal whether the user
    /// exists or has a password.
    pub fn verify_password(&self, name: &str, password: &[u8]) -> Result<bool, StoreError> {
        // Made before the lookup, so the one-time cost of making it falls on whichever call
        // comes first, whether or not that user exists.
        let dummy = self.dummy_hash()?;
        let stored: Option<(Option<String>, bool)> = match self.normalize(name) {
            Ok(name) => {
                let conn = self.inner.pool.get()?;
                conn.row(
                    "SELECT password_hash, enabled FROM users WHERE name = ?1",
                    [&name],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?
            }
            Err(_) => None,
        };
        match stored {
            Some((Some(hash), enabled)) => Ok(verify(password, &hash)? && enabled),
            _ => {
                // The result is irrelevant: only the time spent matters.
                let _ = verify(password, dummy);
                Ok(false)
            }
        }
    }

    /// A hash of a random password with the current parameters, made once.
    fn dummy_hash(&self) -> Result<&str, StoreError> {
        if let Some(hash) = self.inner.dummy_hash.get() {
            return Ok(hash);
        }
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).map_err(StoreError::Random)?;
        let hash = hash(&random)?;
        // Two threads may race to make one; either hash serves equally well.
        Ok(self.inner.dummy_hash.get_or_init(|| hash))
    }
}

/// Argon2id with a fresh random salt, as a PHC string.
fn hash(password: &[u8]) -> Result<String, StoreError> {
    Argon2::default()
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|e| StoreError::Crypto(format!("password hashing failed: {e}")))
}

/// Verifies `password` against a PHC string. A malformed stored hash is an error, not `false`,
/// so that it gets noticed.
fn verify(password: &[u8], phc: &str) -> Result<bool, StoreError> {
    match Argon2::default().verify_password(password, phc) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(StoreError::Corrupt(format!("password hash: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::*;

    #[test]
    fn passwords_verify_and_fail_closed() {
        let (_dir, store) = temp_store();
        store.add_user("alice").unwrap();
        store.add_user("bob").unwrap();
        assert!(
            !store.verify_password("alice", b"").unwrap(),
            "no password set"
        );
        store.set_password("Alice", b"correct horse").unwrap();
        assert!(store.user("alice").unwrap().unwrap().has_password);
        assert!(store.verify_password("alice", b"correct horse").unwrap());
        assert!(!store.verify_password("alice", b"correct hors").unwrap());
        assert!(!store.verify_password("nobody", b"correct horse").unwrap());
        assert!(!store.verify_password("\n", b"correct horse").unwrap());
        store.set_enabled("alice", false).unwrap();
        assert!(
            !store.verify_password("alice", b"correct horse").unwrap(),
            "disabled"
        );
        assert!(matches!(
            store.set_password("nobody", b"x"),
            Err(StoreError::NotFound(_))
        ));
        let hash: String = store
            .inner
            .pool
            .get()
            .unwrap()
            .query_row(
                "SELECT password_hash FROM users WHERE name = 'alice'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
    }
}
