//! A small pool of SQLite connections, so readers never queue behind a writer.
//!
//! In WAL mode SQLite lets any number of readers run beside one writer, but only across
//! separate connections: one shared connection would serialise every login. The pool opens
//! connections lazily up to a maximum and hands each to one thread at a time. Writers still
//! take turns inside SQLite (`busy_timeout` makes them wait instead of failing), and every
//! write is a single short statement or transaction.
//!
//! The pool's mutex guards only the list of idle connections; it is never held while a
//! query runs.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::StoreError;

/// Idle connections and how many exist in total (idle or lent out).
struct State {
    idle: Vec<Connection>,
    open: usize,
}

/// The pool. Connections are opened with [`configure`] applied.
pub(crate) struct Pool {
    path: PathBuf,
    state: Mutex<State>,
    returned: Condvar,
    max: usize,
    busy_timeout: Duration,
}

/// A connection lent from the pool; it goes back when dropped.
pub(crate) struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<Connection>,
}

impl Pool {
    /// A pool of at most `max` connections (at least 1) to the database at `path`.
    pub(crate) fn new(path: &Path, max: usize, busy_timeout: Duration) -> Self {
        Self {
            path: path.to_owned(),
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
            max: max.max(1),
            busy_timeout,
        }
    }

    /// Borrows a connection: an idle one, a new one if under the maximum, or the next one
    /// returned. Waits at most `busy_timeout`, then fails (the caller fails closed).
    pub(crate) fn get(&self) -> Result<Lease<'_>, StoreError> {
        let deadline = Instant::now() + self.busy_timeout;
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(Lease {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if state.open < self.max {
                // Count it before opening so that concurrent callers respect `max`;
                // opening happens outside the lock.
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(conn) => Ok(Lease {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::PoolTimeout);
            }
            state = self
                .returned
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        // No SQLITE_OPEN_CREATE: the file was created (with mode 0600) by `Store::open`,
        // and a vanished file must be an error, not a fresh empty store.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        configure(&conn, self.busy_timeout)?;
        Ok(conn)
    }

    /// The pool state; a panic elsewhere cannot leave the list inconsistent (every change is
    /// one push, pop or counter step), so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Per-connection settings (these do not persist in the file, unlike `journal_mode`).
///
/// - `busy_timeout`: the CLI and the daemon write to the same file; a writer waits for the
///   other instead of failing with SQLITE_BUSY.
/// - `synchronous = FULL`: in WAL mode this syncs the WAL on every commit, so an enrolment
///   or an accepted TOTP step that was acknowledged survives a power cut. NORMAL would be
///   faster but may lose the last commits on power loss, which could re-open a used code
///   (security.md R-14). A login writes one small row, so the cost is one fsync per login.
/// - `foreign_keys = ON`: removing a user removes its methods (ON DELETE CASCADE).
/// - A statement cache large enough for every statement the store runs (see [`Cached`]).
pub(crate) fn configure(conn: &Connection, busy_timeout: Duration) -> Result<(), StoreError> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

impl Deref for Lease<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        // `conn` is `Some` from creation until `drop` takes it.
        self.conn
            .as_ref()
            .unwrap_or_else(|| unreachable!("lease used after drop"))
    }
}

impl DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn
            .as_mut()
            .unwrap_or_else(|| unreachable!("lease used after drop"))
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.lock().idle.push(conn);
            self.pool.returned.notify_one();
        }
    }
}

/// Statements cached per connection: more than the store has (about 60), so that none is
/// evicted and parsed again.
const STATEMENT_CACHE: usize = 128;

/// `execute` and `query_row` through the connection's statement cache.
///
/// rusqlite's own `Connection::execute` and `query_row` parse the SQL on every call; on the
/// login path (user, secret, replay step: thousands of times a second) parsing and planning
/// cost several times more than running the statement (seen in a profile of the MFA bench:
/// most of portvakt's CPU was `sqlite3RunParser` and friends). A transaction derefs to its
/// connection, so `tx.exec(…)` works the same.
///
/// One more SQLite trap for cached statements: in a query that joins tables, a bare
/// parameter compared in `WHERE` (`u.name = ?1`) makes SQLite (built with STAT4, as the
/// bundled one is) recompile the statement whenever that parameter is bound to a new value,
/// which on the login path is every time. Joins here therefore write `+?1`: the same value
/// and the same index search, but no recompilation (`a_cached_join_is_not_recompiled`).
pub(crate) trait Cached {
    /// Runs a statement that returns no rows; the number of rows changed.
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;

    /// Runs a query and maps its first row (`QueryReturnedNoRows` if there is none).
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(max: usize, wait: Duration) -> (tempfile::TempDir, Pool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        std::fs::File::create(&path).unwrap();
        let pool = Pool::new(&path, max, wait);
        (dir, pool)
    }

    #[test]
    fn opens_lazily_and_reuses() {
        let (_dir, pool) = pool(2, Duration::from_secs(5));
        assert_eq!(pool.lock().open, 0);
        let a = pool.get().unwrap();
        let b = pool.get().unwrap();
        assert_eq!(pool.lock().open, 2);
        drop(a);
        drop(b);
        let _c = pool.get().unwrap();
        assert_eq!(pool.lock().open, 2);
        assert_eq!(pool.lock().idle.len(), 1);
    }

    #[test]
    fn waits_for_a_returned_connection_then_times_out() {
        let (_dir, pool) = pool(1, Duration::from_millis(500));
        let held = pool.get().unwrap();
        assert!(matches!(pool.get(), Err(StoreError::PoolTimeout)));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| pool.get().map(|_| ()));
            drop(held);
            // The waiter gets the connection whether it started waiting before or after
            // the drop; a lost wake-up would show up as PoolTimeout.
            assert!(waiter.join().unwrap().is_ok());
        });
    }

    #[test]
    fn connections_have_the_pragmas() {
        let (_dir, pool) = pool(1, Duration::from_secs(5));
        let conn = pool.get().unwrap();
        let fk: i64 = conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!((fk, sync), (1, 2)); // synchronous FULL = 2
    }

    #[test]
    fn a_missing_file_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.db");
        let pool = Pool::new(&path, 1, Duration::from_secs(1));
        assert!(pool.get().is_err());
        assert!(!path.exists());
        assert_eq!(pool.lock().open, 0);
    }
}
