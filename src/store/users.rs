//! Users: the public view of a user ([`User`], [`TotpInfo`]) and the administrative
//! operations on users (add, look up, list, enable/disable, remove, reset methods) plus the
//! failure counter the login path updates.

use super::pool::Cached;
use std::time::{Duration, UNIX_EPOCH};

use rusqlite::{OptionalExtension, Row, params};
use serde::{Serialize, Serializer};

use super::{Store, StoreError, now, user_id};
use crate::factor::Method;
use crate::factor::totp::Algorithm;

/// What the store knows about a user, without any secret: safe to print and to
/// serialise (`portvakt user show --json`).
///
/// Times are Unix seconds; JSON shows them as RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Normalised name.
    pub name: String,
    /// A disabled user cannot log in (the daemon rejects without asking the directory).
    pub enabled: bool,
    /// When the user was added.
    #[serde(serialize_with = "rfc3339")]
    pub created_at: u64,
    /// Last administrative change (enable, methods, password). Logins do not touch it.
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: u64,
    /// The TOTP method, if enrolled (pending or active).
    pub totp: Option<TotpInfo>,
    /// Consecutive second-factor failures since the last success or unlock.
    pub failures: u32,
    /// When the last failure was recorded.
    #[serde(serialize_with = "rfc3339_opt")]
    pub last_failure_at: Option<u64>,
    /// Whether the built-in directory has a password for the user.
    pub has_password: bool,
    /// The method a login asks for first (`push` unless changed); see
    /// [`User::preferred_method`] for what a login actually uses.
    pub default_method: Method,
    /// Whether the user has a verified phone number (SMS).
    pub phone_verified: bool,
    /// Whether a new number waits for its confirmation code.
    pub phone_pending: bool,
    /// How many push devices the user has.
    pub push_devices: u32,
}

impl User {
    /// Whether `method` is usable for a login: active TOTP, a verified number, or at
    /// least one push device.
    pub fn has_method(&self, method: Method) -> bool {
        match method {
            Method::Totp => self.totp.as_ref().is_some_and(|t| t.active),
            Method::Sms => self.phone_verified,
            Method::Push => self.push_devices > 0,
        }
    }

    /// The method a login asks for: the default if enrolled, else the first enrolled of
    /// push, TOTP, SMS; `None` if the user has no method at all.
    pub fn preferred_method(&self) -> Option<Method> {
        std::iter::once(self.default_method)
            .chain(Method::ALL)
            .find(|&m| self.has_method(m))
    }

    /// Every usable method, default first: the default and its fallbacks.
    pub fn methods(&self) -> Vec<Method> {
        let mut all = Vec::with_capacity(Method::ALL.len());
        for m in std::iter::once(self.default_method).chain(Method::ALL) {
            if self.has_method(m) && !all.contains(&m) {
                all.push(m);
            }
        }
        all
    }
}

/// A user's TOTP method, without the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TotpInfo {
    /// Code length.
    pub digits: u32,
    /// Time step in seconds.
    pub period: u64,
    /// HMAC hash.
    pub algorithm: Algorithm,
    /// False while enrolment waits for the first valid code.
    pub active: bool,
    /// The last accepted time step (the replay guard), if any.
    pub last_step: Option<u64>,
    /// When the secret was stored.
    #[serde(serialize_with = "rfc3339")]
    pub enrolled_at: u64,
}

impl TotpInfo {
    /// Start of the last accepted time step (Unix seconds): roughly when it was last used.
    pub fn last_used_at(&self) -> Option<u64> {
        self.last_step.map(|step| step.saturating_mul(self.period))
    }
}

/// Formats Unix seconds as RFC 3339 UTC (`2026-11-25T02:08:55Z`).
pub fn format_time(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

fn rfc3339<S: Serializer>(secs: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(*secs))
}

fn rfc3339_opt<S: Serializer>(secs: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match secs {
        Some(secs) => rfc3339(secs, s),
        None => s.serialize_none(),
    }
}

/// Columns read by [`user_from_row`], in order.
pub(crate) const USER_COLUMNS: &str = "u.name, u.enabled, u.created_at, u.updated_at, u.failures, \
     u.last_failure_at, u.password_hash IS NOT NULL, \
     t.digits, t.period, t.algorithm, t.active, t.last_step, t.created_at, \
     u.default_method, \
     EXISTS (SELECT 1 FROM phones p WHERE p.user_id = u.id AND p.verified = 1), \
     EXISTS (SELECT 1 FROM phones p WHERE p.user_id = u.id AND p.verified = 0), \
     (SELECT count(*) FROM push_devices d WHERE d.user_id = u.id)";

/// Converts a stored integer, refusing values this code never writes.
fn stored<T: TryFrom<i64>>(value: i64, what: &str) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} = {value}")))
}

fn stored_opt<T: TryFrom<i64>>(value: Option<i64>, what: &str) -> Result<Option<T>, StoreError> {
    value.map(|v| stored(v, what)).transpose()
}

/// Raw column values of one user row, before validation.
struct RawUser {
    name: String,
    enabled: bool,
    created_at: i64,
    updated_at: i64,
    failures: i64,
    last_failure_at: Option<i64>,
    has_password: bool,
    totp: Option<(i64, i64, String, bool, Option<i64>, i64)>,
    default_method: String,
    phone_verified: bool,
    phone_pending: bool,
    push_devices: i64,
}

fn raw_user(row: &Row<'_>) -> rusqlite::Result<RawUser> {
    let digits: Option<i64> = row.get(7)?;
    let totp = match digits {
        None => None,
        Some(digits) => Some((
            digits,
            row.get(8)?,
            row.get(9)?,
            row.get(10)?,
            row.get(11)?,
            row.get(12)?,
        )),
    };
    Ok(RawUser {
        name: row.get(0)?,
        enabled: row.get(1)?,
        created_at: row.get(2)?,
        updated_at: row.get(3)?,
        failures: row.get(4)?,
        last_failure_at: row.get(5)?,
        has_password: row.get(6)?,
        totp,
        default_method: row.get(13)?,
        phone_verified: row.get(14)?,
        phone_pending: row.get(15)?,
        push_devices: row.get(16)?,
    })
}

fn user_from_raw(raw: RawUser) -> Result<User, StoreError> {
    let totp = match raw.totp {
        None => None,
        Some((digits, period, algorithm, active, last_step, enrolled_at)) => Some(TotpInfo {
            digits: stored(digits, "totp.digits")?,
            period: stored(period, "totp.period")?,
            algorithm: algorithm
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("totp.algorithm = {algorithm:?}")))?,
            active,
            last_step: stored_opt(last_step, "totp.last_step")?,
            enrolled_at: stored(enrolled_at, "totp.created_at")?,
        }),
    };
    Ok(User {
        name: raw.name,
        enabled: raw.enabled,
        created_at: stored(raw.created_at, "users.created_at")?,
        updated_at: stored(raw.updated_at, "users.updated_at")?,
        totp,
        failures: stored(raw.failures, "users.failures")?,
        last_failure_at: stored_opt(raw.last_failure_at, "users.last_failure_at")?,
        has_password: raw.has_password,
        default_method: raw.default_method.parse().map_err(|_| {
            StoreError::Corrupt(format!("users.default_method = {:?}", raw.default_method))
        })?,
        phone_verified: raw.phone_verified,
        phone_pending: raw.phone_pending,
        push_devices: stored(raw.push_devices, "push_devices")?,
    })
}

impl Store {
    /// Adds a user with no methods, enabled. Fails with [`StoreError::AlreadyExists`].
    pub fn add_user(&self, name: &str) -> Result<User, StoreError> {
        let name = self.normalize(name)?;
        let now = now();
        self.write(|tx| {
            let inserted = tx.exec(
                "INSERT INTO users (name, created_at, updated_at) VALUES (?1, ?2, ?2) \
                 ON CONFLICT (name) DO NOTHING",
                params![name, now],
            )?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists(name.clone()));
            }
            Ok(())
        })?;
        self.user(&name)?.ok_or(StoreError::NotFound(name))
    }

    /// Looks a user up by name (normalised first).
    pub fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        let name = self.normalize(name)?;
        let conn = self.inner.pool.get()?;
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u LEFT JOIN totp t ON t.user_id = u.id WHERE u.name = +?1"
        );
        let raw = conn.row(&sql, [&name], raw_user).optional()?;
        raw.map(user_from_raw).transpose()
    }

    /// All users, sorted by name.
    pub fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let conn = self.inner.pool.get()?;
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u LEFT JOIN totp t ON t.user_id = u.id ORDER BY u.name"
        );
        let mut stmt = conn.prepare(&sql)?;
        let raws = stmt
            .query_map([], raw_user)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(user_from_raw).collect()
    }

    /// Enables or disables a user.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), StoreError> {
        self.update_user(
            name,
            "UPDATE users SET enabled = ?2, updated_at = ?3 WHERE name = ?1",
            enabled,
        )
    }

    /// Removes a user and all of its methods.
    pub fn remove_user(&self, name: &str) -> Result<(), StoreError> {
        let name = self.normalize(name)?;
        self.write(|tx| {
            // `totp` rows go by ON DELETE CASCADE (foreign_keys is on for every connection).
            match tx.exec("DELETE FROM users WHERE name = ?1", [&name])? {
                0 => Err(StoreError::NotFound(name.clone())),
                _ => Ok(()),
            }
        })
    }

    /// Removes every second-factor method of a user (the helpdesk "lost phone" case):
    /// TOTP, phone numbers, push devices and any live SMS code; the default method goes
    /// back to push, and the failure counter is cleared. The user and any password stay.
    pub fn reset_methods(&self, name: &str) -> Result<(), StoreError> {
        let name = self.normalize(name)?;
        self.write(|tx| {
            let id = user_id(tx, &name)?;
            for table in ["totp", "phones", "push_devices", "sms_codes"] {
                tx.exec(&format!("DELETE FROM {table} WHERE user_id = ?1"), [id])?;
            }
            tx.exec(
                "UPDATE users SET failures = 0, last_failure_at = NULL, default_method = 'push', \
                 updated_at = ?2 WHERE id = ?1",
                params![id, now()],
            )?;
            Ok(())
        })
    }

    /// Counts one second-factor failure and returns the new count. One atomic statement, so
    /// concurrent failures are all counted.
    pub fn record_failure(&self, name: &str) -> Result<u32, StoreError> {
        let name = self.normalize(name)?;
        self.write(|tx| {
            let count: Option<i64> = tx
                .row(
                    "UPDATE users SET failures = failures + 1, last_failure_at = ?2 \
                     WHERE name = ?1 RETURNING failures",
                    params![name, now()],
                    |row| row.get(0),
                )
                .optional()?;
            let count = count.ok_or_else(|| StoreError::NotFound(name.clone()))?;
            stored(count, "users.failures")
        })
    }

    /// Resets the failure counter (after a success, or an administrator's unlock).
    pub fn clear_failures(&self, name: &str) -> Result<(), StoreError> {
        let name = self.normalize(name)?;
        let conn = self.inner.pool.get()?;
        // This runs after every successful login. With `failures != 0` in the WHERE clause
        // the usual case changes no row, and SQLite then writes nothing and syncs nothing.
        let changed = conn.exec(
            "UPDATE users SET failures = 0, last_failure_at = NULL WHERE name = ?1 AND failures != 0",
            [&name],
        )?;
        if changed == 0 {
            user_id(&conn, &name)?;
        }
        Ok(())
    }

    /// Runs an `UPDATE … WHERE name = ?1` with `?2 = value` and `?3 = now`, failing with
    /// [`StoreError::NotFound`] if no row matched.
    fn update_user(
        &self,
        name: &str,
        sql: &str,
        value: impl rusqlite::ToSql,
    ) -> Result<(), StoreError> {
        let name = self.normalize(name)?;
        self.write(|tx| match tx.exec(sql, params![name, value, now()])? {
            0 => Err(StoreError::NotFound(name.clone())),
            _ => Ok(()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::*;
    use crate::store::{StoreError, StoreOptions};

    #[test]
    fn users_are_added_once_under_their_normalised_name() {
        let (_dir, store) = temp_store();
        let alice = store.add_user("  Alice ").unwrap();
        assert_eq!(alice.name, "alice");
        assert!(alice.enabled && alice.totp.is_none() && !alice.has_password);
        assert_eq!(alice.failures, 0);
        assert!(
            matches!(store.add_user("ALICE"), Err(StoreError::AlreadyExists(n)) if n == "alice")
        );
        assert!(matches!(
            store.add_user("a\nb"),
            Err(StoreError::InvalidName(_))
        ));
        store.add_user("Ærlig").unwrap();
        store.add_user("bob").unwrap();
        let names: Vec<String> = store
            .list_users()
            .unwrap()
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["alice", "bob", "ærlig"]);
        assert_eq!(store.user("ÆRLIG").unwrap().unwrap().name, "ærlig");
        assert!(store.user("carol").unwrap().is_none());
    }

    #[test]
    fn realm_stripping_is_a_store_option() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            strip_realm: true,
            ..StoreOptions::default()
        };
        let store = Store::open_with(&dir.path().join("u.db"), &key(1), &options).unwrap();
        store.add_user(r"KOMMUNE\Alice").unwrap();
        assert_eq!(
            store.user("alice@kommune.no").unwrap().unwrap().name,
            "alice"
        );
        assert!(matches!(
            store.add_user("alice@other"),
            Err(StoreError::AlreadyExists(_))
        ));
    }

    #[test]
    fn enable_disable_remove_and_reset() {
        let (_dir, store) = temp_store();
        store.add_user("alice").unwrap();
        store.set_totp("alice", &secret(1), true).unwrap();
        store.set_enabled("alice", false).unwrap();
        assert!(!store.user("alice").unwrap().unwrap().enabled);
        store.set_enabled("Alice", true).unwrap();
        assert!(store.user("alice").unwrap().unwrap().enabled);
        assert!(matches!(
            store.set_enabled("nobody", true),
            Err(StoreError::NotFound(_))
        ));

        store.record_failure("alice").unwrap();
        store.reset_methods("alice").unwrap();
        let alice = store.user("alice").unwrap().unwrap();
        assert!(alice.totp.is_none());
        assert_eq!(alice.failures, 0);
        assert!(store.totp_secret("alice").unwrap().is_none());

        store.set_totp("alice", &secret(1), true).unwrap();
        store.remove_user("alice").unwrap();
        assert!(store.user("alice").unwrap().is_none());
        assert!(matches!(
            store.remove_user("alice"),
            Err(StoreError::NotFound(_))
        ));
        // The cascade removed the TOTP row too.
        let conn = store.inner.pool.get().unwrap();
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM totp", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
    }

    #[test]
    fn failures_are_counted_and_cleared() {
        let (_dir, store) = temp_store();
        store.add_user("alice").unwrap();
        assert_eq!(store.record_failure("alice").unwrap(), 1);
        assert_eq!(store.record_failure("ALICE").unwrap(), 2);
        let alice = store.user("alice").unwrap().unwrap();
        assert_eq!(alice.failures, 2);
        assert!(alice.last_failure_at.is_some());
        store.clear_failures("alice").unwrap();
        store.clear_failures("alice").unwrap(); // nothing to clear: still fine
        let alice = store.user("alice").unwrap().unwrap();
        assert_eq!((alice.failures, alice.last_failure_at), (0, None));
        assert!(matches!(
            store.record_failure("nobody"),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.clear_failures("nobody"),
            Err(StoreError::NotFound(_))
        ));
    }
}
