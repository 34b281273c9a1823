//! The user store: users, their second-factor methods, and the built-in password directory,
//! in one SQLite file (`[store] path`).
//!
//! - [`key`]: the store key ([`StoreKey`]) from a 0600 file or a systemd credential.
//! - `seal`: XChaCha20-Poly1305 sealing of TOTP secrets, bound to the user by AAD.
//! - `schema`: tables and migrations (`PRAGMA user_version`).
//! - `pool`: a few connections, so readers never wait for a writer.
//! - `users`, `totp`, `password`: the operations, as methods on [`Store`].
//! - `methods`: phone numbers (sealed), push devices (topics sealed), the default method.
//! - `sms`: SMS one-time codes (stored as HMACs) and the send log behind the SMS limits.
//! - `lockouts`: locked account names ([`LockoutRow`]), written by the daemon's limits and
//!   read by `portvakt user unlock` and `portvakt lockouts`.
//!
//! - `worker`: the login path's reader and writer (group commit) threads.
//!
//! [`Store`] is a cheap, cloneable, `Send + Sync` handle. **Every method blocks** (SQLite
//! I/O, and Argon2 for passwords), except the `async` ones: from async code call short
//! reads through [`Store::read`] (the store's reader thread), a login's TOTP code through
//! [`Store::check_totp`] (the writer thread), and anything slow (passwords) through
//! `tokio::task::spawn_blocking`. The CLI and the daemon may use the same file at the same
//! time: WAL mode lets readers run beside a writer, and `busy_timeout` makes writers take
//! turns instead of failing.
//!
//! Opening verifies the key against a key-check row and fails with
//! [`StoreError::WrongKey`] if it does not match. There is no plaintext fallback.

mod lockouts;
mod methods;
mod password;
mod pool;
mod schema;
mod seal;
mod sms;
mod totp;
mod users;
mod worker;

pub mod key;

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

pub use key::{KeyError, StoreKey};
pub use lockouts::{LockReason, LockoutRow, lockout_name};
pub use methods::PushDevice;
pub use sms::{CodeCheck, CodePurpose, IssuedCode};
pub use totp::{ImportMode, ImportRejection, ImportSummary, TotpCheck, TotpImport};
pub use users::{TotpInfo, User, format_time};

use pool::{Cached, Pool};
use seal::{KEY_CHECK_PLAINTEXT, SealError, Sealer, key_check_aad};

/// Errors from the store. None of them carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store file or its directory could not be prepared.
    #[error("store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// SQLite failed (locked beyond the busy timeout, disk full, corrupt file, …).
    #[error("store database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database did not switch to WAL mode (e.g. a file system without shared memory).
    #[error(
        "store could not use WAL journal mode (got {0:?}); put the store on a local file system"
    )]
    NotWal(String),
    /// The file was written by a newer portvakt.
    #[error(
        "store schema version {found} is newer than this portvakt supports ({supported}); refusing to open it"
    )]
    SchemaTooNew {
        /// Version in the file.
        found: u32,
        /// Highest version this build knows.
        supported: u32,
    },
    /// The key does not open this store's key-check row.
    #[error(
        "the store key does not match the store {path}: it is not the key this store was \
         created with; refusing to start (secrets are never read without their key)"
    )]
    WrongKey {
        /// The store file.
        path: PathBuf,
    },
    /// A sealed secret failed authentication: the row was altered or moved to another user.
    #[error(
        "the TOTP secret of user {user:?} fails authentication: the row was altered or copied from another user"
    )]
    Tampered {
        /// Whose secret.
        user: String,
    },
    /// A user name that normalisation refuses (empty, control characters, too long).
    #[error("invalid user name {0:?}")]
    InvalidName(String),
    /// `add_user` for a name that exists.
    #[error("user {0:?} already exists")]
    AlreadyExists(String),
    /// No such user.
    #[error("no such user {0:?}")]
    NotFound(String),
    /// The user has no TOTP secret (or no pending one, for activation).
    #[error("user {0:?} has no TOTP secret")]
    NoTotp(String),
    /// The pending TOTP secret was replaced while the user was confirming it.
    #[error("the pending TOTP secret of user {0:?} was replaced during enrolment; start again")]
    TotpChanged(String),
    /// The OS random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
    /// Encryption or password hashing failed.
    #[error("{0}")]
    Crypto(String),
    /// A stored value is not one this code writes.
    #[error("store holds an invalid value: {0}")]
    Corrupt(String),
    /// A store thread is gone (it panicked, or the OS refused to start it).
    #[error("store worker thread {0}")]
    WorkerGone(&'static str),
    /// No connection became free within the busy timeout.
    #[error("store busy: no database connection became free in time")]
    PoolTimeout,
    /// The user has no (verified, or pending, as the operation needs) phone number.
    #[error("user {0:?} has no phone number for this")]
    NoPhone(String),
    /// The method is not enrolled, so it cannot be the default.
    #[error("user {user:?} has no {method} method enrolled")]
    NotEnrolled {
        /// The user.
        user: String,
        /// The method.
        method: crate::factor::Method,
    },
    /// No push device with that id for that user.
    #[error("user {user:?} has no push device {id}")]
    NoPushDevice {
        /// The user.
        user: String,
        /// The device id asked for.
        id: i64,
    },
}

impl From<SealError> for StoreError {
    fn from(e: SealError) -> Self {
        match e {
            SealError::Random(e) => Self::Random(e),
            SealError::Encrypt => Self::Crypto(e.to_string()),
        }
    }
}

/// How to open a store. `Default` gives the recommended values.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most connections open at once (at least 1). Four covers a 2–4 core host: more
    /// readers than that would only queue on the CPU.
    pub max_connections: usize,
    /// How long a writer waits for another writer (SQLite `busy_timeout`), and how long a
    /// caller waits for a free connection.
    pub busy_timeout: Duration,
    /// Strip `DOMAIN\` and `@domain` from every name given to the store
    /// (see [`crate::username::normalize`]).
    pub strip_realm: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 4,
            busy_timeout: Duration::from_secs(5),
            strip_realm: false,
        }
    }
}

/// A handle on the user store. Clone it freely; all clones share one pool.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("key_id", &self.inner.key_id)
            .field("strip_realm", &self.inner.strip_realm)
            .finish_non_exhaustive()
    }
}

struct Inner {
    path: PathBuf,
    pool: Pool,
    sealer: Sealer,
    /// The id of the store key in `store_keys`, bound into every TOTP AAD.
    key_id: u32,
    /// Derived from the store key: the HMAC key for SMS codes and phone-number lookup keys.
    mac_key: seal::MacKey,
    strip_realm: bool,
    /// An Argon2id hash of a random password, verified against when a user has no password,
    /// so that timing does not tell which users exist. Made on first use.
    dummy_hash: OnceLock<String>,
    /// The login path's reader and replay-step writer threads (see `worker`).
    workers: worker::Workers,
}

impl Store {
    /// Opens (or creates) the store at `path` with default options. See [`Store::open_with`].
    pub fn open(path: &Path, key: &StoreKey) -> Result<Self, StoreError> {
        Self::open_with(path, key, &StoreOptions::default())
    }

    /// Opens (or creates) the store at `path`, migrates its schema and verifies `key`.
    ///
    /// A new file is created with mode 0600; SQLite gives its `-wal` and `-shm` files the
    /// same mode. An existing file (or WAL/SHM file) readable by group or others is
    /// tightened to 0600, with a warning. On a new store the key is recorded (as a key-check
    /// ciphertext); on an existing one a different key fails with [`StoreError::WrongKey`].
    pub fn open_with(
        path: &Path,
        key: &StoreKey,
        options: &StoreOptions,
    ) -> Result<Self, StoreError> {
        prepare_files(path)?;
        let pool = Pool::new(path, options.max_connections, options.busy_timeout);
        let sealer = Sealer::new(key);
        let mac_key = seal::MacKey::derive(key);
        let key_id = {
            let mut conn = pool.get()?;
            enable_wal(&conn, options.busy_timeout)?;
            schema::migrate(&mut conn)?;
            check_key(&mut conn, &sealer, path)?
        };
        let inner = Inner {
            path: path.to_owned(),
            pool,
            sealer,
            key_id,
            mac_key,
            strip_realm: options.strip_realm,
            dummy_hash: OnceLock::new(),
            workers: worker::Workers::new(path, options.busy_timeout),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Runs a short blocking read (`f` gets this store) on the store's reader thread and
    /// awaits it: the login path's way to look a user or a secret up without a
    /// blocking-pool thread per request. Nothing slow here (no Argon2): it would hold up
    /// every login's read behind it.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        self.inner.workers.read(move || f(&store)).await
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Normalises a user name with this store's rules (case always; realm if configured).
    pub fn normalize(&self, raw: &str) -> Result<String, StoreError> {
        crate::username::normalize(raw.as_bytes(), self.inner.strip_realm)
            .ok_or_else(|| StoreError::InvalidName(raw.to_owned()))
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction and commits if it succeeds.
    ///
    /// IMMEDIATE takes the write lock up front. A deferred transaction that reads and then
    /// writes can fail at once with SQLITE_BUSY when another connection wrote in between;
    /// `busy_timeout` cannot help there, but it does help an IMMEDIATE begin.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.inner.pool.get()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }
}

/// Seconds since the Unix epoch (0 if the clock is before 1970).
fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// Creates the store file with mode 0600 if it is missing; tightens an existing store file and
/// its WAL/SHM files to 0600 if group or others could read them.
fn prepare_files(path: &Path) -> Result<(), StoreError> {
    let io_err = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(e)),
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        tighten(Path::new(&name))?;
    }
    Ok(())
}

fn tighten(path: &Path) -> Result<(), StoreError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{mode:04o}"), "store file was readable by group or others; setting mode 0600");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| StoreError::Io {
                path: path.to_owned(),
                source,
            },
        )?;
    }
    Ok(())
}

/// Switches the file to WAL (a persistent setting; a no-op once set).
///
/// The switch takes an exclusive lock without SQLite's busy handler, so two processes
/// opening a new store at once (the daemon and `portvakt user`, or two helpdesk
/// commands) could fail with "database is locked" (seen 7 times in 300 such races).
/// A busy switch is retried here, every few milliseconds, for up to `busy_timeout`.
fn enable_wal(conn: &rusqlite::Connection, busy_timeout: Duration) -> Result<(), StoreError> {
    let deadline = std::time::Instant::now() + busy_timeout;
    let mode: String = loop {
        match conn.row("PRAGMA journal_mode = WAL", [], |row| row.get(0)) {
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            r => break r?,
        }
    };
    if mode.eq_ignore_ascii_case("wal") {
        Ok(())
    } else {
        Err(StoreError::NotWal(mode))
    }
}

/// Finds the key id this key opens, or records it if the store has no key yet.
fn check_key(
    conn: &mut rusqlite::Connection,
    sealer: &Sealer,
    path: &Path,
) -> Result<u32, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let rows: Vec<(u32, Vec<u8>, Vec<u8>)> = tx
        .prepare("SELECT key_id, nonce, sealed FROM store_keys ORDER BY key_id")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    if rows.is_empty() {
        const FIRST: u32 = 1;
        let sealed = sealer.seal(KEY_CHECK_PLAINTEXT, &key_check_aad(FIRST))?;
        tx.exec(
            "INSERT INTO store_keys (key_id, nonce, sealed, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![FIRST, &sealed.nonce[..], sealed.ciphertext, now()],
        )?;
        tx.commit()?;
        return Ok(FIRST);
    }
    rows.iter()
        .find(|(id, nonce, ct)| {
            sealer
                .open(nonce, ct, &key_check_aad(*id))
                .is_some_and(|plain| plain.as_slice() == KEY_CHECK_PLAINTEXT)
        })
        .map(|(id, ..)| *id)
        .ok_or_else(|| StoreError::WrongKey {
            path: path.to_owned(),
        })
}

/// Looks up a user's row id.
fn user_id(tx: &rusqlite::Connection, name: &str) -> Result<i64, StoreError> {
    tx.row("SELECT id FROM users WHERE name = ?1", [name], |row| {
        row.get(0)
    })
    .optional()?
    .ok_or_else(|| StoreError::NotFound(name.to_owned()))
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers shared by the store's unit tests.
    use super::{Store, StoreKey};
    use crate::factor::totp::{Algorithm, TotpSecret};
    use zeroize::Zeroizing;

    /// A key filled with `byte`.
    pub(crate) fn key(byte: u8) -> StoreKey {
        StoreKey::from_bytes([byte; 32])
    }

    /// A new store `users.db` in a fresh temporary directory, under `key(1)`.
    pub(crate) fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("users.db"), &key(1)).unwrap();
        (dir, store)
    }

    /// A 160-bit SHA1/6/30 secret filled with `fill`.
    pub(crate) fn secret(fill: u8) -> TotpSecret {
        TotpSecret::new(Zeroizing::new(vec![fill; 20]), 6, 30, Algorithm::Sha1).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn store_is_send_sync_and_clone() {
        fn check<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
        check::<Store>();
        let (_dir, store) = temp_store();
        let shown = format!("{store:?}");
        assert!(
            shown.contains("users.db") && !shown.contains("sealer"),
            "{shown}"
        );
    }

    #[test]
    fn switching_a_new_file_to_wal_waits_for_another_connections_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("race.db");
        // Another process's connection holds the write lock of the still rollback-mode file.
        let mut other = rusqlite::Connection::open(&path).unwrap();
        let tx = other
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        tx.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let (started_tx, started) = std::sync::mpsc::channel();
        let opener = std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&path).unwrap();
            started_tx.send(()).unwrap();
            enable_wal(&conn, Duration::from_secs(30))
        });
        started.recv().unwrap();
        // Not for synchronisation: the switch succeeds whenever the lock goes. Holding it a
        // moment makes the switch meet it, where SQLite alone fails at once.
        std::thread::sleep(Duration::from_millis(100));
        tx.commit().unwrap();
        opener.join().unwrap().unwrap();
    }

    #[test]
    fn a_lock_held_past_the_busy_timeout_is_still_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("held.db");
        let mut other = rusqlite::Connection::open(&path).unwrap();
        let _tx = other
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        let err = enable_wal(&conn, Duration::from_millis(50)).unwrap_err();
        assert!(err.to_string().contains("locked"), "{err}");
    }

    #[test]
    fn new_store_files_are_0600_and_in_wal_mode() {
        let (dir, store) = temp_store();
        store.add_user("alice").unwrap();
        let db = dir.path().join("users.db");
        assert_eq!(mode(&db), 0o600);
        for suffix in ["-wal", "-shm"] {
            let path = dir.path().join(format!("users.db{suffix}"));
            assert!(path.exists(), "{suffix} exists while the store is open");
            assert_eq!(mode(&path), 0o600, "{suffix}");
        }
        let conn = store.inner.pool.get().unwrap();
        let journal: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
    }

    #[test]
    fn a_loose_existing_store_is_tightened() {
        let (dir, store) = temp_store();
        drop(store);
        let db = dir.path().join("users.db");
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        Store::open(&db, &key(1)).unwrap();
        assert_eq!(mode(&db), 0o600);
    }

    #[test]
    fn the_wrong_key_is_refused_and_the_right_one_reopens() {
        let (dir, store) = temp_store();
        store.add_user("alice").unwrap();
        drop(store);
        let db = dir.path().join("users.db");
        let err = Store::open(&db, &key(2)).err().unwrap();
        assert!(matches!(err, StoreError::WrongKey { .. }), "{err}");
        assert!(err.to_string().contains("users.db"), "{err}");
        let store = Store::open(&db, &key(1)).unwrap();
        assert!(store.user("alice").unwrap().is_some());
    }

    #[test]
    fn a_newer_schema_is_refused_at_open() {
        let (dir, store) = temp_store();
        store
            .inner
            .pool
            .get()
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        drop(store);
        let err = Store::open(&dir.path().join("users.db"), &key(1))
            .err()
            .unwrap();
        assert!(
            matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
            "{err}"
        );
    }
}

#[cfg(test)]
mod statement_cache_tests {
    use super::test_support::*;
    use super::*;
    use rusqlite::StatementStatus;

    /// The login path's lookups by name are joins: they must run from the statement cache
    /// without being compiled again for each new user (see [`pool::Cached`]).
    #[test]
    fn a_cached_join_is_not_recompiled() {
        let (_dir, store) = temp_store();
        for i in 0..20 {
            store.add_user(&format!("u{i}")).unwrap();
        }
        for i in 0..20 {
            store.user(&format!("u{i}")).unwrap().unwrap();
            store.totp_secret(&format!("u{i}")).unwrap();
        }
        let conn = store.inner.pool.get().unwrap();
        let user = format!(
            "SELECT {} FROM users u LEFT JOIN totp t ON t.user_id = u.id WHERE u.name = +?1",
            users::USER_COLUMNS
        );
        let stmt = conn.prepare_cached(&user).unwrap();
        // add_user reads the new user back: 20 + 20 lookups.
        assert_eq!(
            stmt.get_status(StatementStatus::Run),
            40,
            "the cached statement ran"
        );
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
        drop(stmt);
        // The same query with a bare parameter is recompiled on every new binding: the trap.
        let bare = user.replace("+?1", "?1");
        for i in 0..5 {
            conn.row(&bare, [format!("u{i}")], |_| Ok(())).unwrap();
        }
        let stmt = conn.prepare_cached(&bare).unwrap();
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 4);
    }
}
