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
///
/// Step 2 (issue 6: SMS and push):
/// - `users.default_method`: the method a login asks for first (`push` as the seed says);
///   the others are fallbacks.
/// - `phones`: at most one verified and one pending number per user, sealed like TOTP
///   secrets (a phone number is personal data). `number_key` is an HMAC of the number under
///   a store-derived key: it lets the per-number SMS limits count without the number.
/// - `push_devices`: ntfy topics, sealed (whoever knows a topic can read its messages).
/// - `sms_codes`: at most one live code per user — a new code replaces the old one — as an
///   HMAC with a random nonce, bound to the number it was sent to.
/// - `sms_sends`: when each SMS went to which user and number key, for cooldowns and caps
///   that survive a restart. Rows older than a day are deleted as new ones are written.
/// - `lockouts` (step 3): the latest lockout of each account name (see `lockouts.rs`), kept after
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
ALTER TABLE users ADD COLUMN default_method TEXT NOT NULL DEFAULT 'push'
    CHECK (default_method IN ('push', 'totp', 'sms'));

CREATE TABLE phones (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    verified   INTEGER NOT NULL CHECK (verified IN (0, 1)),
    key_id     INTEGER NOT NULL REFERENCES store_keys (key_id),
    nonce      BLOB    NOT NULL,
    sealed     BLOB    NOT NULL,
    number_key BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, verified)
) STRICT;

CREATE TABLE push_devices (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL CHECK (kind IN ('ntfy')),
    label      TEXT    NOT NULL,
    key_id     INTEGER NOT NULL REFERENCES store_keys (key_id),
    nonce      BLOB    NOT NULL,
    sealed     BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX push_devices_user ON push_devices (user_id);

CREATE TABLE sms_codes (
    user_id       INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    purpose       TEXT    NOT NULL CHECK (purpose IN ('login', 'enrol')),
    number_key    BLOB    NOT NULL,
    nonce         BLOB    NOT NULL,
    mac           BLOB    NOT NULL,
    expires_at    INTEGER NOT NULL,
    attempts_left INTEGER NOT NULL CHECK (attempts_left >= 0)
) STRICT;

CREATE TABLE sms_sends (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    number_key BLOB    NOT NULL,
    sent_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX sms_sends_user ON sms_sends (user_id, sent_at);
CREATE INDEX sms_sends_number ON sms_sends (number_key, sent_at);
CREATE INDEX sms_sends_time ON sms_sends (sent_at);
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
        assert_eq!(
            tables,
            [
                "lockouts",
                "phones",
                "push_devices",
                "sms_codes",
                "sms_sends",
                "store_keys",
                "totp",
                "users"
            ]
        );
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn), current_version());
    }

    #[test]
    fn a_version_one_store_gains_the_new_tables_and_keeps_its_users() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO users (name, created_at, updated_at) VALUES ('alice', 1, 1)",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let method: String = conn
            .query_row(
                "SELECT default_method FROM users WHERE name = 'alice'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(method, "push");
        let bad = conn.execute("UPDATE users SET default_method = 'call'", []);
        assert!(bad.is_err(), "the CHECK constraint holds");
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
