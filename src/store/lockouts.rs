//! Lockouts in the store: which account names are locked, why, until when, and how many
//! lockouts in a row they have had (so a repeat lockout lasts longer).
//!
//! The daemon decides lockouts in memory (`crate::limits`) and writes each new one here, so a
//! restart does not lift it; `portvakt user unlock` deletes the row and `portvakt lockouts`
//! lists the rows. A row stays after its lockout ends, because its `level` is what makes the
//! next lockout grow; [`Store::purge_lockouts`] removes rows whose history no longer counts.
//!
//! Names are account names as [`lockout_name`] spells them: the store's normalisation with the
//! realm always stripped. `KOMMUNE\alice`, `alice@kommune.no` and `Alice` reach the same
//! directory account, and the directory counts their failures together, so they share one
//! lockout whatever the store's own realm setting is.

use std::fmt;
use std::str::FromStr;

use rusqlite::{OptionalExtension, Row, params};
use serde::{Serialize, Serializer};

use super::users::format_time;
use super::{Store, StoreError};

/// Why an account was locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockReason {
    /// Too many second-factor failures: wrong codes, denied pushes, expired challenges.
    SecondFactor,
    /// Too many password rejects from the directory within the window.
    DirectoryRejects,
}

impl LockReason {
    /// The stored and logged spelling: `second_factor` or `directory_rejects`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecondFactor => "second_factor",
            Self::DirectoryRejects => "directory_rejects",
        }
    }

    /// Words for people (the `portvakt lockouts` table).
    pub fn describe(self) -> &'static str {
        match self {
            Self::SecondFactor => "second-factor failures",
            Self::DirectoryRejects => "password rejects",
        }
    }
}

impl fmt::Display for LockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LockReason {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "second_factor" => Ok(Self::SecondFactor),
            "directory_rejects" => Ok(Self::DirectoryRejects),
            other => Err(StoreError::Corrupt(format!("lockouts.reason = {other:?}"))),
        }
    }
}

impl Serialize for LockReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One account's latest lockout. Times are Unix seconds; JSON shows them as RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockoutRow {
    /// The account name ([`lockout_name`] spelling).
    #[serde(rename = "user")]
    pub name: String,
    /// Why.
    pub reason: LockReason,
    /// When the lockout began.
    #[serde(serialize_with = "rfc3339")]
    pub locked_at: u64,
    /// When it ends (the account may log in again from this second on).
    #[serde(serialize_with = "rfc3339")]
    pub locked_until: u64,
    /// Lockouts in a row, this one included (1 for a first lockout); each doubles the period.
    pub level: u32,
}

impl LockoutRow {
    /// Whether the lockout is still in force at `now` (Unix seconds).
    pub fn is_active(&self, now: u64) -> bool {
        now < self.locked_until
    }
}

fn rfc3339<S: Serializer>(secs: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(*secs))
}

/// The account name a lockout is kept under: trimmed, lowercased, realm stripped
/// (`KOMMUNE\Alice` → `alice`). `None` for a name that cannot be a user name.
pub fn lockout_name(raw: &[u8]) -> Option<String> {
    crate::username::normalize(raw, true)
}

fn lockout_name_or_err(raw: &str) -> Result<String, StoreError> {
    lockout_name(raw.as_bytes()).ok_or_else(|| StoreError::InvalidName(raw.to_owned()))
}

const COLUMNS: &str = "name, reason, locked_at, locked_until, level";

fn row_from(row: &Row<'_>) -> rusqlite::Result<(String, String, i64, i64, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
}

fn checked(raw: (String, String, i64, i64, i64)) -> Result<LockoutRow, StoreError> {
    let (name, reason, locked_at, locked_until, level) = raw;
    let number = |value: i64, what: &str| {
        u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("lockouts.{what} = {value}")))
    };
    Ok(LockoutRow {
        reason: reason.parse()?,
        locked_at: number(locked_at, "locked_at")?,
        locked_until: number(locked_until, "locked_until")?,
        level: u32::try_from(level)
            .map_err(|_| StoreError::Corrupt(format!("lockouts.level = {level}")))?,
        name,
    })
}

/// A Unix time or level as SQLite's signed integer (saturating: far future stays far future).
fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Store {
    /// Records a lockout, replacing the account's previous row. The name is spelled with
    /// [`lockout_name`] first.
    pub fn lock_user(&self, lockout: &LockoutRow) -> Result<(), StoreError> {
        let name = lockout_name_or_err(&lockout.name)?;
        let conn = self.inner.pool.get()?;
        conn.execute(
            "INSERT INTO lockouts (name, reason, locked_at, locked_until, level) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (name) DO UPDATE SET reason = ?2, locked_at = ?3, locked_until = ?4, level = ?5",
            params![
                name,
                lockout.reason.as_str(),
                signed(lockout.locked_at),
                signed(lockout.locked_until),
                lockout.level.max(1),
            ],
        )?;
        Ok(())
    }

    /// Lifts an account's lockout and forgets its history (the next lockout is a first one
    /// again). Returns the row that was removed, if there was one.
    pub fn unlock_user(&self, name: &str) -> Result<Option<LockoutRow>, StoreError> {
        let name = lockout_name_or_err(name)?;
        let conn = self.inner.pool.get()?;
        let raw = conn
            .query_row(
                &format!("DELETE FROM lockouts WHERE name = ?1 RETURNING {COLUMNS}"),
                [&name],
                row_from,
            )
            .optional()?;
        raw.map(checked).transpose()
    }

    /// An account's latest lockout (active or ended), if any.
    pub fn lockout(&self, name: &str) -> Result<Option<LockoutRow>, StoreError> {
        let name = lockout_name_or_err(name)?;
        let conn = self.inner.pool.get()?;
        let raw = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM lockouts WHERE name = ?1"),
                [&name],
                row_from,
            )
            .optional()?;
        raw.map(checked).transpose()
    }

    /// Every lockout row (active or ended), sorted by name.
    pub fn lockouts(&self) -> Result<Vec<LockoutRow>, StoreError> {
        let conn = self.inner.pool.get()?;
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM lockouts ORDER BY name"))?;
        let raws = stmt
            .query_map([], row_from)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(checked).collect()
    }

    /// Removes rows whose lockout ended before `ended_before` (Unix seconds): their history no
    /// longer makes a lockout grow. Returns how many were removed.
    pub fn purge_lockouts(&self, ended_before: u64) -> Result<usize, StoreError> {
        let conn = self.inner.pool.get()?;
        let removed = conn.execute(
            "DELETE FROM lockouts WHERE locked_until < ?1",
            [signed(ended_before)],
        )?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::*;

    fn row(name: &str, until: u64, level: u32) -> LockoutRow {
        LockoutRow {
            name: name.to_owned(),
            reason: LockReason::DirectoryRejects,
            locked_at: until - 900,
            locked_until: until,
            level,
        }
    }

    #[test]
    fn a_lockout_is_stored_replaced_listed_and_lifted() {
        let (_dir, store) = temp_store();
        assert!(store.lockouts().unwrap().is_empty());
        store.lock_user(&row(r"KOMMUNE\Alice", 10_000, 1)).unwrap();
        store.lock_user(&row("bob", 20_000, 1)).unwrap();
        let alice = store.lockout("alice@kommune.no").unwrap().unwrap();
        assert_eq!(alice, row("alice", 10_000, 1), "stored under the account name");

        let mut again = row("ALICE", 30_000, 2);
        again.reason = LockReason::SecondFactor;
        store.lock_user(&again).unwrap();
        let names: Vec<(String, u64, u32, LockReason)> = store
            .lockouts()
            .unwrap()
            .into_iter()
            .map(|r| (r.name, r.locked_until, r.level, r.reason))
            .collect();
        assert_eq!(
            names,
            [
                ("alice".into(), 30_000, 2, LockReason::SecondFactor),
                ("bob".into(), 20_000, 1, LockReason::DirectoryRejects)
            ]
        );

        let lifted = store.unlock_user("Alice").unwrap().unwrap();
        assert_eq!(lifted.locked_until, 30_000);
        assert!(store.lockout("alice").unwrap().is_none());
        assert!(store.unlock_user("alice").unwrap().is_none(), "nothing left");
        assert!(matches!(
            store.unlock_user("a\nb"),
            Err(StoreError::InvalidName(_))
        ));
    }

    #[test]
    fn lockouts_need_no_user_row_and_survive_reopening() {
        let (dir, store) = temp_store();
        // An account only the directory knows.
        store.lock_user(&row("carol", 50_000, 3)).unwrap();
        assert!(store.user("carol").unwrap().is_none());
        drop(store);
        let store = Store::open(&dir.path().join("users.db"), &key(1)).unwrap();
        assert_eq!(store.lockout("carol").unwrap(), Some(row("carol", 50_000, 3)));
    }

    #[test]
    fn purge_removes_only_long_ended_rows() {
        let (_dir, store) = temp_store();
        store.lock_user(&row("old", 1_000, 1)).unwrap();
        store.lock_user(&row("recent", 5_000, 1)).unwrap();
        assert_eq!(store.purge_lockouts(5_000).unwrap(), 1);
        let names: Vec<String> = store.lockouts().unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["recent"]);
    }

    #[test]
    fn activity_and_json() {
        let r = row("alice", 2_000_000_000, 2);
        assert!(r.is_active(1_999_999_999));
        assert!(!r.is_active(2_000_000_000));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["user"], "alice");
        assert_eq!(json["reason"], "directory_rejects");
        assert_eq!(json["locked_until"], "2033-05-18T03:33:20Z");
        assert_eq!(json["level"], 2);
    }

    #[test]
    fn an_unknown_reason_is_corrupt_not_guessed() {
        let (_dir, store) = temp_store();
        store.lock_user(&row("alice", 10_000, 1)).unwrap();
        store
            .inner
            .pool
            .get()
            .unwrap()
            .execute("UPDATE lockouts SET reason = 'bogus'", [])
            .unwrap();
        assert!(matches!(store.lockouts(), Err(StoreError::Corrupt(_))));
    }
}
