//! The store's schema and its migrations.
//!
//! `PRAGMA user_version` records how many steps of [`MIGRATIONS`] have run. Each step runs in
//! its own `BEGIN IMMEDIATE` transaction together with the version bump, so a crash leaves
//! the file either before or after a step, and two processes opening a new store at once
//! cannot both apply it. A store written by a newer portvakt (a higher version) is refused
//! rather than guessed at. Steps are only ever appended; a released step never changes.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// The migration steps, in order. Step *n* brings `user_version` from *n* to *n + 1*.
///
/// Tables are STRICT, so a wrong type is an error rather than silently stored.
/// - `store_keys`: one row per store key: the key-check ciphertext proving which key this
///   store belongs to (a later key rotation adds rows).
/// - `users`: one row per normalised user name. `failures` counts consecutive second-factor
///   failures; `password_hash` is the built-in directory's Argon2id PHC string.
/// - `totp`: at most one TOTP secret per user, sealed (see `seal.rs`). `last_step` is the
///   last accepted time step (replay guard); `active` is 0 until the user has typed one valid
///   code at enrolment.
/// - `lockouts` (step 2): the latest lockout of each account name (see `lockouts.rs`), kept after
///   it ends so that a repeat lockout can grow; not tied to `users`, because the directory's
///   accounts need not be in the store. `level` counts lockouts in a row; `unlocked_at` is set
///   when an administrator lifted the lockout (the running daemon reads it).
pub(crate) const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE store_keys (
    key_id     INTEGER PRIMARY KEY,
    nonce      BLOB    NOT NULL,
    sealed     BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE,
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    failures        INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
    last_failure_at INTEGER,
    password_hash   TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE totp (
    user_id    INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    key_id     INTEGER NOT NULL REFERENCES store_keys (key_id),
    nonce      BLOB    NOT NULL,
    sealed     BLOB    NOT NULL,
    digits     INTEGER NOT NULL,
    period     INTEGER NOT NULL,
    algorithm  TEXT    NOT NULL,
    active     INTEGER NOT NULL CHECK (active IN (0, 1)),
    last_step  INTEGER,
    created_at INTEGER NOT NULL
) STRICT;
",
    r"
CREATE TABLE lockouts (
    name         TEXT    PRIMARY KEY,
    reason       TEXT    NOT NULL,
    locked_at    INTEGER NOT NULL,
    locked_until INTEGER NOT NULL,
    level        INTEGER NOT NULL CHECK (level >= 0),
    unlocked_at  INTEGER
) STRICT;
",
];

/// The schema version this build writes.
pub(crate) fn current_version() -> u32 {
    // A handful of steps: the count always fits.
    u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX)
}

/// Brings the schema up to date, one transaction per step.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let supported = current_version();
    for step in 0..supported {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Read inside the write lock: another process may have migrated meanwhile.
        let found: u32 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if found > supported {
            return Err(StoreError::SchemaTooNew { found, supported });
        }
        if found > step {
            continue; // already applied; the transaction rolls back on drop
        }
        tx.execute_batch(MIGRATIONS[step as usize])?;
        tx.pragma_update(None, "user_version", step + 1)?;
        tx.commit()?;
    }
    // A store already at `supported` runs no step; check it is not newer.
    let found: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> u32 {
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn migrates_a_new_database_and_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn), current_version());
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tables, ["lockouts", "store_keys", "totp", "users"]);
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn), current_version());
    }

    #[test]
    fn a_version_1_store_gains_the_lockouts_table_and_keeps_its_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO users (name, created_at, updated_at) VALUES ('alice', 1, 1)",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn), current_version());
        let users: i64 = conn
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
            .unwrap();
        assert_eq!(users, 1);
        conn.execute(
            "INSERT INTO lockouts (name, reason, locked_at, locked_until, level) \
             VALUES ('alice', 'second_factor', 1, 2, 1)",
            [],
        )
        .unwrap();
        let negative = conn.execute(
            "INSERT INTO lockouts (name, reason, locked_at, locked_until, level) \
             VALUES ('bob', 'second_factor', 1, 2, -1)",
            [],
        );
        assert!(negative.is_err());
    }

    #[test]
    fn refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn.pragma_update(None, "user_version", current_version() + 1)
            .unwrap();
        let err = migrate(&mut conn).unwrap_err();
        assert!(
            matches!(err, StoreError::SchemaTooNew { found, supported } if found == supported + 1),
            "{err}"
        );
    }

    #[test]
    fn strict_tables_reject_wrong_types() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let bad = conn.execute(
            "INSERT INTO users (name, enabled, created_at, updated_at) VALUES ('a', 'yes', 0, 0)",
            [],
        );
        assert!(bad.is_err());
    }
}
