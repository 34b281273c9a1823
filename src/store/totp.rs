//! TOTP secrets in the store: sealed on write, opened on read, activated after the first
//! valid code, the replay guard (`last_step`), and bulk import.

use super::pool::Cached;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use subtle::ConstantTimeEq;

use super::seal::{TotpParams, totp_aad};
use super::worker::record_step;
use super::{Store, StoreError, now, user_id};
use crate::factor::totp::{Algorithm, TotpSecret};

/// One secret to import, with the input line it came from (for error messages).
#[derive(Debug)]
pub struct TotpImport {
    /// Line number in the input (1-based), or any label the caller wants reported.
    pub line: usize,
    /// User name as given (normalised by the store).
    pub name: String,
    /// The secret and its parameters.
    pub secret: TotpSecret,
}

/// What [`Store::check_totp`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpCheck {
    /// The code is right and its step is now recorded (durably): the login may go on.
    Accepted,
    /// Not a valid code for now.
    Wrong,
    /// A valid code whose step was already used: a replay.
    Replayed,
    /// No such user, or no active TOTP secret.
    NotEnrolled,
    /// The user is disabled.
    Disabled,
}

/// What [`Store::import_totp`] does when some rows cannot be imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// Import nothing if any row is refused.
    AllOrNothing,
    /// Import the good rows and report the refused ones.
    SkipInvalid,
    /// Check every row as an import would, then roll back: nothing is written.
    DryRun,
}

/// A row [`Store::import_totp`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRejection {
    /// The row's line.
    pub line: usize,
    /// The name as given.
    pub name: String,
    /// Why it was refused.
    pub reason: String,
}

/// The outcome of [`Store::import_totp`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportSummary {
    /// Secrets written (0 unless `committed`).
    pub imported: usize,
    /// Users created because they did not exist (0 unless `committed`).
    pub created_users: usize,
    /// Refused rows.
    pub rejected: Vec<ImportRejection>,
    /// Whether the transaction was committed.
    pub committed: bool,
}

/// The sealed TOTP columns of one row.
struct SealedRow {
    key_id: u32,
    nonce: Vec<u8>,
    sealed: Vec<u8>,
    digits: u32,
    period: i64,
    algorithm: String,
}

const SEALED_COLUMNS: &str = "t.key_id, t.nonce, t.sealed, t.digits, t.period, t.algorithm";

impl Store {
    /// Stores a TOTP secret for an existing user, sealed under the store key, replacing any
    /// previous one. With `active = false` it waits for [`Store::activate_totp`].
    ///
    /// The last accepted step is kept when the period is unchanged (time steps only move
    /// forward, whatever the secret), so re-importing a secret cannot re-open a used code;
    /// with a different period the old step means nothing and is cleared.
    pub fn set_totp(
        &self,
        name: &str,
        secret: &TotpSecret,
        active: bool,
    ) -> Result<(), StoreError> {
        let name = self.normalize(name)?;
        self.write(|tx| {
            let id = user_id(tx, &name)?;
            self.put_totp(tx, id, &name, secret, active)
        })
    }

    /// Activates the pending TOTP secret once the user has typed a valid code for it, and
    /// records that code's `step` so it cannot be replayed for a login.
    ///
    /// `secret` is the one the code was checked against; if the stored secret is no longer
    /// that one (a second enrolment started meanwhile), this fails with
    /// [`StoreError::TotpChanged`] and activates nothing. Returns `false` if `step` is not
    /// newer than the last accepted step.
    pub fn activate_totp(
        &self,
        name: &str,
        secret: &TotpSecret,
        step: u64,
    ) -> Result<bool, StoreError> {
        let name = self.normalize(name)?;
        let Ok(step) = i64::try_from(step) else {
            return Ok(false);
        };
        self.write(|tx| {
            let stored = self
                .sealed_row(tx, &name, false)?
                .ok_or_else(|| StoreError::NoTotp(name.clone()))?;
            let stored = self.unseal(&name, &stored)?;
            if !same_secret(&stored, secret) {
                return Err(StoreError::TotpChanged(name.clone()));
            }
            let changed = tx.exec(
                "UPDATE totp SET active = 1, last_step = ?2 \
                 WHERE user_id = (SELECT id FROM users WHERE name = ?1) \
                   AND (last_step IS NULL OR last_step < ?2)",
                params![name, step],
            )?;
            Ok(changed == 1)
        })
    }

    /// The user's **active** TOTP secret, decrypted; `None` if there is none (or it is still
    /// pending). A row that fails authentication (altered, or copied from another user) is
    /// [`StoreError::Tampered`].
    pub fn totp_secret(&self, name: &str) -> Result<Option<TotpSecret>, StoreError> {
        let name = self.normalize(name)?;
        let conn = self.inner.pool.get()?;
        match self.sealed_row(&conn, &name, true)? {
            Some(row) => self.unseal(&name, &row).map(Some),
            None => Ok(None),
        }
    }

    /// The replay guard: records `step` as the user's last accepted TOTP step if, and only
    /// if, it is newer than the one recorded, and the secret is active. Returns whether it
    /// was recorded; `false` means the code must be refused.
    ///
    /// One conditional `UPDATE`, so concurrent submissions of the same code give exactly one
    /// `true`, and the step is on disk (synchronous = FULL) before the caller answers.
    ///
    /// Group commit: callers that arrive while a write is in progress queue up, and the next
    /// one to find the writer free commits the whole queue in one transaction — one fsync
    /// for many logins, each still answered only once its step is durable.
    ///
    /// Blocks until the step is durable: for the CLI and blocking code. A login's code goes
    /// through [`Store::check_totp`] instead, which records the step in the same writer job
    /// that checks the code (see `worker`).
    pub fn accept_totp_step(&self, name: &str, step: u64) -> Result<bool, StoreError> {
        let name = self.normalize(name)?;
        let Ok(step) = i64::try_from(step) else {
            return Ok(false);
        };
        self.inner
            .workers
            .write_blocking(move |conn| record_step(conn, &name, step))
    }

    /// A login's code check in one go: the user's active secret is read and the code
    /// verified (`verify` returns the time step the code is valid for) and, if right, its
    /// step recorded by the replay guard — all in one transaction of the store's writer
    /// thread, answered once durable. One hop and no window between the check and the
    /// record, where a read on the reader thread and then a step write took two.
    pub async fn check_totp(
        &self,
        name: &str,
        verify: impl FnOnce(&TotpSecret) -> Option<u64> + Send + 'static,
    ) -> Result<TotpCheck, StoreError> {
        let name = self.normalize(name)?;
        let store = self.clone();
        self.inner
            .workers
            .write(move |conn| store.check_totp_in(conn, &name, verify))
            .await
    }

    fn check_totp_in(
        &self,
        conn: &Connection,
        name: &str,
        verify: impl FnOnce(&TotpSecret) -> Option<u64>,
    ) -> Result<TotpCheck, StoreError> {
        let enabled = conn
            .row("SELECT enabled FROM users WHERE name = ?1", [name], |r| {
                r.get::<_, bool>(0)
            })
            .optional()?;
        match enabled {
            None => return Ok(TotpCheck::NotEnrolled),
            Some(false) => return Ok(TotpCheck::Disabled),
            Some(true) => {}
        }
        let Some(row) = self.sealed_row(conn, name, true)? else {
            return Ok(TotpCheck::NotEnrolled);
        };
        let secret = self.unseal(name, &row)?;
        let Some(step) = verify(&secret).and_then(|s| i64::try_from(s).ok()) else {
            return Ok(TotpCheck::Wrong);
        };
        Ok(if record_step(conn, name, step)? {
            TotpCheck::Accepted
        } else {
            TotpCheck::Replayed
        })
    }

    /// Imports TOTP secrets (migration from another system) in one transaction, as active.
    ///
    /// Missing users are created. A row is refused if its name is invalid or the user
    /// already has a TOTP secret (reset it first: an import never replaces a secret, and a
    /// name twice in one import is refused the second time). With
    /// [`ImportMode::AllOrNothing`] any refusal rolls the whole import back; with
    /// [`ImportMode::DryRun`] it is always rolled back (the summary says what would happen,
    /// except that `imported` and `created_users` are 0).
    pub fn import_totp(
        &self,
        rows: &[TotpImport],
        mode: ImportMode,
    ) -> Result<ImportSummary, StoreError> {
        let mut conn = self.inner.pool.get()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut summary = ImportSummary::default();
        for row in rows {
            match self.import_one(&tx, row)? {
                Ok(created) => {
                    summary.imported += 1;
                    summary.created_users += usize::from(created);
                }
                Err(reason) => summary.rejected.push(ImportRejection {
                    line: row.line,
                    name: row.name.clone(),
                    reason,
                }),
            }
        }
        let refused = mode == ImportMode::AllOrNothing && !summary.rejected.is_empty();
        if refused || mode == ImportMode::DryRun {
            // Dropping the transaction rolls it back.
            summary.imported = 0;
            summary.created_users = 0;
            return Ok(summary);
        }
        tx.commit()?;
        summary.committed = true;
        Ok(summary)
    }

    /// Imports one row: `Ok(Ok(created_user))`, `Ok(Err(reason))` if refused.
    fn import_one(
        &self,
        tx: &Transaction<'_>,
        row: &TotpImport,
    ) -> Result<Result<bool, String>, StoreError> {
        let Ok(name) = self.normalize(&row.name) else {
            return Ok(Err("invalid user name".to_owned()));
        };
        let (id, created) = match user_id(tx, &name) {
            Ok(id) => (id, false),
            Err(StoreError::NotFound(_)) => {
                tx.exec(
                    "INSERT INTO users (name, created_at, updated_at) VALUES (?1, ?2, ?2)",
                    params![name, now()],
                )?;
                (tx.last_insert_rowid(), true)
            }
            Err(e) => return Err(e),
        };
        let has_totp: bool = tx.row(
            "SELECT EXISTS (SELECT 1 FROM totp WHERE user_id = ?1)",
            [id],
            |r| r.get(0),
        )?;
        if has_totp {
            return Ok(Err(format!(
                "user {name:?} already has a TOTP secret (reset it first)"
            )));
        }
        self.put_totp(tx, id, &name, &row.secret, true)?;
        Ok(Ok(created))
    }

    /// Seals and writes the secret for user row `id` (named `name`).
    fn put_totp(
        &self,
        tx: &Transaction<'_>,
        id: i64,
        name: &str,
        secret: &TotpSecret,
        active: bool,
    ) -> Result<(), StoreError> {
        let params = params_of(secret);
        let sealed = self
            .inner
            .sealer
            .seal(secret.bytes(), &totp_aad(name, self.inner.key_id, params))?;
        let period =
            i64::try_from(params.period).map_err(|_| StoreError::Corrupt("period".to_owned()))?;
        let now = now();
        tx.exec(
            "INSERT INTO totp (user_id, key_id, nonce, sealed, digits, period, algorithm, active, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (user_id) DO UPDATE SET \
               key_id = excluded.key_id, nonce = excluded.nonce, sealed = excluded.sealed, \
               digits = excluded.digits, algorithm = excluded.algorithm, active = excluded.active, \
               created_at = excluded.created_at, period = excluded.period, \
               last_step = CASE WHEN totp.period = excluded.period THEN totp.last_step ELSE NULL END",
            params![
                id,
                self.inner.key_id,
                &sealed.nonce[..],
                sealed.ciphertext,
                params.digits,
                period,
                params.algorithm.as_str(),
                active,
                now
            ],
        )?;
        tx.exec(
            "UPDATE users SET updated_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
        Ok(())
    }

    /// Reads the sealed columns of a user's TOTP row (only an active one if `active_only`).
    fn sealed_row(
        &self,
        conn: &Connection,
        name: &str,
        active_only: bool,
    ) -> Result<Option<SealedRow>, StoreError> {
        let sql = format!(
            "SELECT {SEALED_COLUMNS} FROM totp t JOIN users u ON u.id = t.user_id \
             WHERE u.name = +?1 AND (t.active = 1 OR +?2 = 0)"
        );
        let row = conn
            .row(&sql, params![name, active_only], |row| {
                Ok(SealedRow {
                    key_id: row.get(0)?,
                    nonce: row.get(1)?,
                    sealed: row.get(2)?,
                    digits: row.get(3)?,
                    period: row.get(4)?,
                    algorithm: row.get(5)?,
                })
            })
            .optional()?;
        Ok(row)
    }

    /// Opens a sealed row for user `name`. Any mismatch (key id, AAD, ciphertext, stored
    /// parameters) is [`StoreError::Tampered`]: the key itself was verified at open.
    fn unseal(&self, name: &str, row: &SealedRow) -> Result<TotpSecret, StoreError> {
        let tampered = || StoreError::Tampered {
            user: name.to_owned(),
        };
        let algorithm: Algorithm = row.algorithm.parse().map_err(|_| tampered())?;
        let period = u64::try_from(row.period).map_err(|_| tampered())?;
        let params = TotpParams {
            digits: row.digits,
            period,
            algorithm,
        };
        if row.key_id != self.inner.key_id {
            return Err(tampered());
        }
        let aad = totp_aad(name, row.key_id, params);
        let bytes = self
            .inner
            .sealer
            .open(&row.nonce, &row.sealed, &aad)
            .ok_or_else(tampered)?;
        TotpSecret::new(bytes, row.digits, period, algorithm).map_err(|_| tampered())
    }
}

fn params_of(secret: &TotpSecret) -> TotpParams {
    TotpParams {
        digits: secret.digits(),
        period: secret.period(),
        algorithm: secret.algorithm(),
    }
}

/// Same bytes (compared in constant time) and same parameters.
fn same_secret(a: &TotpSecret, b: &TotpSecret) -> bool {
    let bytes_equal: bool = a.bytes().ct_eq(b.bytes()).into();
    bytes_equal && params_of(a) == params_of(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factor::totp;
    use crate::store::StoreError;
    use crate::store::test_support::*;
    use zeroize::Zeroizing;

    #[test]
    fn pending_totp_is_not_usable_until_activated() {
        let (_dir, store) = temp_store();
        store.add_user("alice").unwrap();
        let s = secret(7);
        store.set_totp("alice", &s, false).unwrap();
        let info = store.user("alice").unwrap().unwrap().totp.unwrap();
        assert!(!info.active);
        assert_eq!(
            (info.digits, info.period, info.algorithm),
            (6, 30, Algorithm::Sha1)
        );
        assert!(
            store.totp_secret("alice").unwrap().is_none(),
            "pending secrets are not for logins"
        );
        assert!(
            !store.accept_totp_step("alice", 100).unwrap(),
            "no replay slot for a pending secret"
        );

        // Activation checks it is still the secret the code was verified against.
        assert!(matches!(
            store.activate_totp("alice", &secret(8), 100),
            Err(StoreError::TotpChanged(_))
        ));
        assert!(store.activate_totp("alice", &s, 100).unwrap());
        let info = store.user("alice").unwrap().unwrap().totp.unwrap();
        assert!(info.active);
        assert_eq!(info.last_step, Some(100));
        assert_eq!(info.last_used_at(), Some(3000));
        assert_eq!(
            store.totp_secret("alice").unwrap().unwrap().bytes(),
            s.bytes()
        );

        // The enrolment code's step is used up.
        assert!(!store.accept_totp_step("alice", 100).unwrap());
        assert!(store.accept_totp_step("alice", 101).unwrap());
        assert!(matches!(
            store.activate_totp("bob", &s, 1),
            Err(StoreError::NotFound(_)) | Err(StoreError::NoTotp(_))
        ));
    }

    #[test]
    fn replay_guard_only_moves_forward() {
        let (_dir, store) = temp_store();
        store.add_user("alice").unwrap();
        store.set_totp("alice", &secret(1), true).unwrap();
        assert!(store.accept_totp_step("alice", 50).unwrap());
        assert!(!store.accept_totp_step("alice", 50).unwrap(), "same step");
        assert!(!store.accept_totp_step("alice", 49).unwrap(), "older step");
        assert!(store.accept_totp_step("alice", 51).unwrap());
        assert!(
            !store.accept_totp_step("alice", u64::MAX).unwrap(),
            "out of range is refused"
        );
        assert!(!store.accept_totp_step("nobody", 52).unwrap());
        assert_eq!(
            store
                .user("alice")
                .unwrap()
                .unwrap()
                .totp
                .unwrap()
                .last_step,
            Some(51)
        );
    }

    /// The writer thread's group commit keeps the replay guard's promise: of many concurrent
    /// checks of one step exactly one is accepted (the rest are replays), while other users'
    /// steps in the same batches all are; and every answer comes only after the step is on
    /// disk. (`verify` stands in for a code valid at `step`; the real codes are checked in
    /// `check_totp_reads_verifies_and_records_in_one_go`.)
    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_checks_accept_each_step_once() {
        let (_dir, store) = temp_store();
        for name in ["alice", "bob", "carol", "dave"] {
            store.add_user(name).unwrap();
            store.set_totp(name, &secret(1), true).unwrap();
        }
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..64 {
            let store = store.clone();
            // alice submits step 700 32 times; the others step 700 + i once each.
            let (name, step) = match i % 2 {
                0 => ("alice", 700),
                _ => (["bob", "carol", "dave"][i % 3], 700 + i as u64),
            };
            tasks.spawn(async move {
                let checked = store.check_totp(name, move |_| Some(step)).await;
                (name, step, checked)
            });
        }
        let mut accepted = std::collections::HashMap::<&str, Vec<u64>>::new();
        while let Some(joined) = tasks.join_next().await {
            let (name, step, checked) = joined.unwrap();
            match checked.unwrap() {
                TotpCheck::Accepted => accepted.entry(name).or_default().push(step),
                TotpCheck::Replayed => {}
                other => panic!("{name} step {step}: {other:?}"),
            }
        }
        assert_eq!(accepted["alice"], [700], "one of 32 identical submissions");
        // Within one user, a later step accepted before an earlier one refuses the earlier:
        // what counts is that nothing was accepted twice and the store holds the highest.
        for name in ["bob", "carol", "dave"] {
            let steps = &accepted[name];
            let last = store.user(name).unwrap().unwrap().totp.unwrap().last_step;
            assert_eq!(last, steps.iter().max().copied(), "{name}: {steps:?}");
        }
        // Durable: a new handle on the same file sees the steps.
        let reopened = Store::open(store.path(), &key(1)).unwrap();
        assert!(!reopened.accept_totp_step("alice", 700).unwrap());
    }

    #[test]
    fn replacing_a_secret_keeps_the_step_unless_the_period_changes() {
        let (_dir, store) = temp_store();
        store.add_user("alice").unwrap();
        store.set_totp("alice", &secret(1), true).unwrap();
        assert!(store.accept_totp_step("alice", 500).unwrap());
        store.set_totp("alice", &secret(1), true).unwrap();
        assert!(
            !store.accept_totp_step("alice", 500).unwrap(),
            "re-import must not re-open step 500"
        );
        let sixty = TotpSecret::new(Zeroizing::new(vec![1; 20]), 6, 60, Algorithm::Sha1).unwrap();
        store.set_totp("alice", &sixty, true).unwrap();
        assert_eq!(
            store
                .user("alice")
                .unwrap()
                .unwrap()
                .totp
                .unwrap()
                .last_step,
            None
        );
        assert!(store.accept_totp_step("alice", 250).unwrap());
    }

    #[test]
    fn editing_stored_parameters_is_detected() {
        let (_dir, store) = temp_store();
        store.add_user("alice").unwrap();
        store.set_totp("alice", &secret(1), true).unwrap();
        for sql in [
            "UPDATE totp SET digits = 8",
            "UPDATE totp SET period = 60, digits = 6",
            "UPDATE totp SET period = 30, algorithm = 'SHA256'",
            "INSERT INTO store_keys SELECT 2, nonce, sealed, created_at FROM store_keys WHERE key_id = 1; \
             UPDATE totp SET algorithm = 'SHA1', key_id = 2",
        ] {
            store.inner.pool.get().unwrap().execute_batch(sql).unwrap();
            let err = store.totp_secret("alice").unwrap_err();
            assert!(
                matches!(&err, StoreError::Tampered { user } if user == "alice"),
                "{sql}: {err}"
            );
        }
    }

    #[test]
    fn no_secret_appears_in_the_files() {
        let (dir, store) = temp_store();
        store.add_user("alice").unwrap();
        let canary = TotpSecret::new(
            Zeroizing::new(b"CANARY-totp-seed-0001".to_vec()),
            6,
            30,
            Algorithm::Sha1,
        )
        .unwrap();
        store.set_totp("alice", &canary, true).unwrap();
        store
            .set_password("alice", b"CANARY-password-0001")
            .unwrap();
        let mut bytes = Vec::new();
        for suffix in ["", "-wal"] {
            bytes.extend(std::fs::read(dir.path().join(format!("users.db{suffix}"))).unwrap());
        }
        assert!(
            bytes.windows(9).any(|w| w == b"$argon2id"),
            "the hash is there"
        );
        for needle in [&b"CANARY"[..], b"totp-seed", b"password-0001"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{:?} found",
                String::from_utf8_lossy(needle)
            );
        }
    }

    fn import_row(line: usize, name: &str, fill: u8) -> crate::store::TotpImport {
        crate::store::TotpImport {
            line,
            name: name.to_owned(),
            secret: secret(fill),
        }
    }

    #[test]
    fn import_is_all_or_nothing_unless_told_otherwise() {
        let (_dir, store) = temp_store();
        store.add_user("carol").unwrap();
        store.set_totp("carol", &secret(9), true).unwrap();
        let rows = [
            import_row(2, "alice", 1),
            import_row(3, "bob\u{7}", 2),
            import_row(4, "carol", 3),
            import_row(5, "Dave", 4),
            import_row(6, "dave", 5),
        ];
        let summary = store.import_totp(&rows, ImportMode::AllOrNothing).unwrap();
        assert!(!summary.committed);
        assert_eq!((summary.imported, summary.created_users), (0, 0));
        let lines: Vec<usize> = summary.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 4, 6]);
        assert!(store.user("alice").unwrap().is_none(), "rolled back");

        let dry = store.import_totp(&rows, ImportMode::DryRun).unwrap();
        assert_eq!(dry.rejected, summary.rejected);
        assert!(!dry.committed);
        assert!(
            store.user("alice").unwrap().is_none(),
            "a dry run writes nothing"
        );

        let summary = store.import_totp(&rows, ImportMode::SkipInvalid).unwrap();
        assert!(summary.committed);
        assert_eq!((summary.imported, summary.created_users), (2, 2));
        assert_eq!(summary.rejected.len(), 3);
        assert_eq!(
            store.totp_secret("alice").unwrap().unwrap().bytes(),
            secret(1).bytes()
        );
        assert_eq!(
            store.totp_secret("dave").unwrap().unwrap().bytes(),
            secret(4).bytes()
        );
        assert_eq!(
            store.totp_secret("carol").unwrap().unwrap().bytes(),
            secret(9).bytes(),
            "not replaced"
        );
    }

    /// The blocking pair the CLI and tools use: a verified step is taken once.
    #[test]
    fn verify_then_accept_refuses_a_replay() {
        let (_dir, store) = temp_store();
        store.add_user("alice").unwrap();
        let s = totp::generate_secret().unwrap();
        store.set_totp("alice", &s, true).unwrap();
        let now = 1_800_000_000;
        let code = totp::current_code(&s, now);
        let stored = store.totp_secret("alice").unwrap().unwrap();
        let step = totp::verify(&stored, &code, now, 1).unwrap();
        assert!(store.accept_totp_step("alice", step).unwrap());
        let again = totp::verify(&stored, &code, now + 5, 1).unwrap();
        assert!(!store.accept_totp_step("alice", again).unwrap(), "replay");
    }

    /// A code that two neighbouring steps share (`factor::totp::twins`) is spent for both:
    /// replayed a minute later, when only the second step is still in the window, it is
    /// refused. Recording the earliest matching step (totp-rs's `check`) let that replay in.
    #[tokio::test(flavor = "current_thread")]
    async fn a_code_two_steps_share_is_spent_for_both() {
        let (_dir, store) = temp_store();
        store.add_user("alice").unwrap();
        use totp::twins;
        store.set_totp("alice", &twins::seed(), true).unwrap();
        let twin = twins::STEP;
        let check = |code: &'static str, now: u64| {
            let store = store.clone();
            async move {
                store
                    .check_totp("alice", move |secret| totp::verify(secret, code, now, 1))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(check(twins::CODE, twin * 30 + 5).await, TotpCheck::Accepted);
        assert_eq!(
            check(twins::CODE, (twin + 2) * 30 + 5).await,
            TotpCheck::Replayed,
            "the same code a minute later"
        );
        // The next step's own code still works.
        assert_eq!(
            check(twins::NEXT_CODE, (twin + 2) * 30 + 5).await,
            TotpCheck::Accepted
        );
    }

    /// The login path's one-hop check: every outcome, each from its own cause.
    #[tokio::test(flavor = "current_thread")]
    async fn check_totp_reads_verifies_and_records_in_one_go() {
        let (_dir, store) = temp_store();
        let s = totp::generate_secret().unwrap();
        for name in ["alice", "bob", "carol"] {
            store.add_user(name).unwrap();
        }
        store.set_totp("alice", &s, true).unwrap();
        store.set_totp("bob", &s, false).unwrap(); // enrolment not confirmed yet
        store.set_totp("carol", &s, true).unwrap();
        store.set_enabled("carol", false).unwrap();
        let now = 1_800_000_000;
        let code = totp::current_code(&s, now);
        let check = |name: &'static str, code: String| {
            let store = store.clone();
            async move {
                store
                    .check_totp(name, move |secret| totp::verify(secret, &code, now, 1))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(check("alice", "000000".into()).await, TotpCheck::Wrong);
        assert_eq!(check("alice", code.clone()).await, TotpCheck::Accepted);
        assert_eq!(check("alice", code.clone()).await, TotpCheck::Replayed);
        assert_eq!(
            check("ALICE", code.clone()).await,
            TotpCheck::Replayed,
            "names are normalised"
        );
        assert_eq!(check("bob", code.clone()).await, TotpCheck::NotEnrolled);
        assert_eq!(check("nobody", code.clone()).await, TotpCheck::NotEnrolled);
        assert_eq!(check("carol", code.clone()).await, TotpCheck::Disabled);
        let last = store
            .user("alice")
            .unwrap()
            .unwrap()
            .totp
            .unwrap()
            .last_step;
        assert_eq!(last, Some(now / 30), "the step is recorded");
        // A sealed row moved to another user does not open: an error, never a pass.
        let conn = rusqlite::Connection::open(store.path()).unwrap();
        conn.execute(
            "UPDATE totp SET sealed = (SELECT sealed FROM totp t JOIN users u ON u.id = t.user_id \
               WHERE u.name = 'alice') \
             WHERE user_id = (SELECT id FROM users WHERE name = 'carol')",
            [],
        )
        .unwrap();
        store.set_enabled("carol", true).unwrap();
        let tampered = store
            .check_totp("carol", move |secret| totp::verify(secret, &code, now, 1))
            .await;
        assert!(
            matches!(tampered, Err(StoreError::Tampered { .. })),
            "{tampered:?}"
        );
    }
}
