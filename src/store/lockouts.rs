//! Lockouts in the store: which account names are locked, why, until when, and how many
//! lockouts in a row they have had (so a repeat lockout lasts longer).
//!
//! The daemon decides lockouts in memory (`crate::limits`) and writes each new one here, so a
//! restart does not lift it; `portvakt lockouts` lists the rows. A row stays after its lockout
//! ends, because its `level` is what makes the next lockout grow; [`Store::purge_lockouts`]
//! removes rows whose history no longer counts.
//!
//! `portvakt user unlock` does not delete the row: it sets `unlocked_at` (and forgets the
//! history). A running daemon that still holds the lockout in memory reads the row at the
//! user's next attempt and lifts it only on that mark. A missing row tells it nothing (its
//! own write may still be on the way, or may have failed), so it keeps the lockout: fail closed.
//!
//! Names are account names as [`lockout_name`] spells them: the store's normalisation with the
//! realm always stripped. `KOMMUNE\alice`, `alice@kommune.no` and `Alice` reach the same
//! directory account, and the directory counts their failures together, so they share one
//! lockout whatever the store's own realm setting is.

use super::pool::Cached;
use std::fmt;
use std::str::FromStr;

use rusqlite::{OptionalExtension, Row, params};
use serde::{Serialize, Serializer};

use super::users::format_time;
use super::{Store, StoreError, now};

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
    /// 0 once an administrator has unlocked the account.
    pub level: u32,
    /// When an administrator lifted the lockout (`portvakt user unlock`), if one did.
    #[serde(serialize_with = "rfc3339_opt")]
    pub unlocked_at: Option<u64>,
}

impl LockoutRow {
    /// Whether the lockout is still in force at `now` (Unix seconds).
    pub fn is_active(&self, now: u64) -> bool {
        self.unlocked_at.is_none() && now < self.locked_until
    }
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

/// The account name a lockout is kept under: trimmed, lowercased, realm stripped
/// (`KOMMUNE\Alice` → `alice`). `None` for a name that cannot be a user name.
pub fn lockout_name(raw: &[u8]) -> Option<String> {
    crate::username::normalize(raw, true)
}

fn lockout_name_or_err(raw: &str) -> Result<String, StoreError> {
    lockout_name(raw.as_bytes()).ok_or_else(|| StoreError::InvalidName(raw.to_owned()))
}

const COLUMNS: &str = "name, reason, locked_at, locked_until, level, unlocked_at";

/// One row's columns, before they are checked.
struct RawRow {
    name: String,
    reason: String,
    locked_at: i64,
    locked_until: i64,
    level: i64,
    unlocked_at: Option<i64>,
}

fn row_from(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        name: row.get(0)?,
        reason: row.get(1)?,
        locked_at: row.get(2)?,
        locked_until: row.get(3)?,
        level: row.get(4)?,
        unlocked_at: row.get(5)?,
    })
}

fn checked(raw: RawRow) -> Result<LockoutRow, StoreError> {
    fn number<T: TryFrom<i64>>(value: i64, what: &str) -> Result<T, StoreError> {
        T::try_from(value).map_err(|_| StoreError::Corrupt(format!("lockouts.{what} = {value}")))
    }
    Ok(LockoutRow {
        reason: raw.reason.parse()?,
        locked_at: number(raw.locked_at, "locked_at")?,
        locked_until: number(raw.locked_until, "locked_until")?,
        level: number(raw.level, "level")?,
        unlocked_at: raw
            .unlocked_at
            .map(|v| number(v, "unlocked_at"))
            .transpose()?,
        name: raw.name,
    })
}

/// A Unix time or level as SQLite's signed integer (saturating: far future stays far future).
fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Store {
    /// Records a lockout, replacing the account's previous row (and any unlock mark). The
    /// name is spelled with [`lockout_name`] first.
    pub fn lock_user(&self, lockout: &LockoutRow) -> Result<(), StoreError> {
        let name = lockout_name_or_err(&lockout.name)?;
        let conn = self.inner.pool.get()?;
        conn.exec(
            "INSERT INTO lockouts (name, reason, locked_at, locked_until, level, unlocked_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, NULL) \
             ON CONFLICT (name) DO UPDATE SET reason = ?2, locked_at = ?3, locked_until = ?4, \
             level = ?5, unlocked_at = NULL",
            params![
                name,
                lockout.reason.as_str(),
                signed(lockout.locked_at),
                signed(lockout.locked_until),
                lockout.level,
            ],
        )?;
        Ok(())
    }

    /// Lifts an account's lockout (the administrator's unlock): marks the row unlocked now
    /// and forgets its history, so the next lockout is a first one again. Returns the row as
    /// it was, if there was one not already unlocked; its [`LockoutRow::is_active`] tells
    /// whether a lockout was in force.
    pub fn unlock_user(&self, name: &str) -> Result<Option<LockoutRow>, StoreError> {
        let name = lockout_name_or_err(name)?;
        self.write(|tx| {
            let raw = tx
                .row(
                    &format!(
                        "SELECT {COLUMNS} FROM lockouts WHERE name = ?1 AND unlocked_at IS NULL"
                    ),
                    [&name],
                    row_from,
                )
                .optional()?;
            let Some(raw) = raw else { return Ok(None) };
            tx.exec(
                "UPDATE lockouts SET unlocked_at = ?2, level = 0 WHERE name = ?1",
                params![name, now()],
            )?;
            checked(raw).map(Some)
        })
    }

    /// Forgets an account's lockout history after a successful login, so its next lockout is
    /// a first one. A lockout still in force is left alone. Returns whether a row went.
    pub fn forget_lockout(&self, name: &str) -> Result<bool, StoreError> {
        let name = lockout_name_or_err(name)?;
        let conn = self.inner.pool.get()?;
        let removed = conn.exec(
            "DELETE FROM lockouts WHERE name = ?1 AND (locked_until <= ?2 OR unlocked_at IS NOT NULL)",
            params![name, now()],
        )?;
        Ok(removed > 0)
    }

    /// An account's latest lockout (active or ended), if any.
    pub fn lockout(&self, name: &str) -> Result<Option<LockoutRow>, StoreError> {
        let name = lockout_name_or_err(name)?;
        let conn = self.inner.pool.get()?;
        let raw = conn
            .row(
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

    /// Removes rows whose lockout ended, and whose unlock (if any) happened, before
    /// `ended_before` (Unix seconds): their history no longer makes a lockout grow, and no
    /// daemon can still hold their lockout. Returns how many were removed.
    pub fn purge_lockouts(&self, ended_before: u64) -> Result<usize, StoreError> {
        let conn = self.inner.pool.get()?;
        let removed = conn.exec(
            "DELETE FROM lockouts WHERE locked_until < ?1 AND coalesce(unlocked_at, 0) < ?1",
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
            unlocked_at: None,
        }
    }

    #[test]
    fn a_lockout_is_stored_replaced_listed_and_lifted() {
        let (_dir, store) = temp_store();
        assert!(store.lockouts().unwrap().is_empty());
        store.lock_user(&row(r"KOMMUNE\Alice", 10_000, 1)).unwrap();
        store.lock_user(&row("bob", 20_000, 1)).unwrap();
        let alice = store.lockout("alice@kommune.no").unwrap().unwrap();
        assert_eq!(
            alice,
            row("alice", 10_000, 1),
            "stored under the account name"
        );

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
        assert_eq!((lifted.locked_until, lifted.level), (30_000, 2));
        let marked = store.lockout("alice").unwrap().unwrap();
        assert!(marked.unlocked_at.is_some(), "marked, not deleted");
        assert_eq!(marked.level, 0, "history forgotten");
        assert!(!marked.is_active(0));
        assert!(
            store.unlock_user("alice").unwrap().is_none(),
            "already unlocked"
        );
        assert!(store.unlock_user("nobody").unwrap().is_none());
        assert!(store.lockout("nobody").unwrap().is_none(), "no row made up");
        assert!(matches!(
            store.unlock_user("a\nb"),
            Err(StoreError::InvalidName(_))
        ));
        // A new lockout clears the mark.
        store.lock_user(&row("alice", 40_000, 1)).unwrap();
        assert_eq!(store.lockout("alice").unwrap().unwrap().unlocked_at, None);
    }

    #[test]
    fn lockouts_need_no_user_row_and_survive_reopening() {
        let (dir, store) = temp_store();
        // An account only the directory knows.
        store.lock_user(&row("carol", 50_000, 3)).unwrap();
        assert!(store.user("carol").unwrap().is_none());
        drop(store);
        let store = Store::open(&dir.path().join("users.db"), &key(1)).unwrap();
        assert_eq!(
            store.lockout("carol").unwrap(),
            Some(row("carol", 50_000, 3))
        );
    }

    #[test]
    fn forgetting_history_leaves_a_lockout_in_force_alone() {
        let (_dir, store) = temp_store();
        store.lock_user(&row("ended", 1_000, 3)).unwrap();
        store.lock_user(&row("active", u64::MAX / 4, 1)).unwrap();
        assert!(store.forget_lockout("Ended").unwrap());
        assert!(!store.forget_lockout("active").unwrap());
        assert!(!store.forget_lockout("nobody").unwrap());
        let names: Vec<String> = store
            .lockouts()
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["active"]);
    }

    #[test]
    fn purge_removes_only_long_ended_rows() {
        let (_dir, store) = temp_store();
        store.lock_user(&row("old", 1_000, 1)).unwrap();
        store.lock_user(&row("recent", 5_000, 1)).unwrap();
        // Unlocked just now, though its lockout would have ended long ago: kept for a while.
        store.lock_user(&row("unlocked", 1_000, 1)).unwrap();
        store.unlock_user("unlocked").unwrap();
        assert_eq!(store.purge_lockouts(5_000).unwrap(), 1);
        let names: Vec<String> = store
            .lockouts()
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["recent", "unlocked"]);
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
        assert!(json["unlocked_at"].is_null());
        let unlocked = LockoutRow {
            unlocked_at: Some(1_999_999_000),
            ..r
        };
        assert!(!unlocked.is_active(1_999_999_999));
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
