//! The login path's way into the store: two long-lived threads fed by channels, so that an
//! async task can await a store answer without a blocking-pool thread per request.
//!
//! - The **reader** runs short read jobs (a user's record, a sealed secret) one after the
//!   other. While logins keep it busy it takes the next job without sleeping; only an idle
//!   reader needs a wake-up. `spawn_blocking` instead hands every job to a pool thread and
//!   wakes one per job, and on a small machine those context switches cost more CPU than
//!   the queries (measured in the MFA benchmark: README, "Performance").
//! - The **step writer** is the replay guard's group commit: it takes every replay step
//!   queued while it wrote the last batch and writes them in one transaction, so one fsync
//!   makes many logins durable; each caller hears back only once its step is on disk.
//!
//! Neither thread holds the store: jobs carry what they need, so the threads end when the
//! last [`Store`](super::Store) handle (which owns the channels' senders) is dropped.
//! Slow work (Argon2) stays on `spawn_blocking`: it would hold up every read behind it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};

use super::StoreError;
use super::pool::{Cached, configure};

/// Most replay steps written in one transaction.
const MAX_BATCH: usize = 1024;

/// A read job; it sends its own answer.
type Job = Box<dyn FnOnce() + Send>;

/// One replay step to record, with the way back to its caller.
struct StepJob {
    name: String,
    step: i64,
    done: Reply,
}

/// Where a step's result goes: an awaiting task, or a blocked thread (CLI, tests).
enum Reply {
    Async(tokio::sync::oneshot::Sender<Result<bool, StoreError>>),
    Blocking(mpsc::SyncSender<Result<bool, StoreError>>),
}

impl Reply {
    fn send(self, result: Result<bool, StoreError>) {
        // A caller that went away (its login was dropped) needs no answer.
        let _ = match self {
            Self::Async(tx) => tx.send(result).map_err(drop),
            Self::Blocking(tx) => tx.send(result).map_err(drop),
        };
    }
}

/// The two threads, started on first use (a CLI command that never logs anyone in starts
/// neither).
pub(crate) struct Workers {
    path: PathBuf,
    busy_timeout: Duration,
    reader: OnceLock<Sender<Job>>,
    writer: OnceLock<Sender<StepJob>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("reader", &self.reader.get().is_some())
            .field("writer", &self.writer.get().is_some())
            .finish()
    }
}

impl Workers {
    pub(crate) fn new(path: &Path, busy_timeout: Duration) -> Self {
        Self {
            path: path.to_owned(),
            busy_timeout,
            reader: OnceLock::new(),
            writer: OnceLock::new(),
        }
    }

    /// Runs `job` on the reader thread and awaits its result.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let boxed: Job = Box::new(move || {
            let _ = tx.send(job());
        });
        let sent = self.reader_sender().send(boxed).is_ok();
        match rx.await {
            Ok(result) => result,
            // The thread is gone (it cannot be, while this handle lives, unless it panicked).
            Err(_) => Err(StoreError::WorkerGone(if sent {
                "panicked"
            } else {
                "stopped"
            })),
        }
    }

    /// Queues a replay step and awaits its durable result.
    pub(crate) async fn accept_step(&self, name: String, step: i64) -> Result<bool, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue_step(name, step, Reply::Async(tx));
        rx.await.unwrap_or(Err(StoreError::WorkerGone("stopped")))
    }

    /// Queues a replay step and blocks until it is durable (never call from async code).
    pub(crate) fn accept_step_blocking(&self, name: String, step: i64) -> Result<bool, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.queue_step(name, step, Reply::Blocking(tx));
        rx.recv().unwrap_or(Err(StoreError::WorkerGone("stopped")))
    }

    fn queue_step(&self, name: String, step: i64, done: Reply) {
        let job = StepJob { name, step, done };
        if let Err(mpsc::SendError(job)) = self.writer_sender().send(job) {
            job.done.send(Err(StoreError::WorkerGone("stopped")));
        }
    }

    fn reader_sender(&self) -> &Sender<Job> {
        self.reader.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            spawn("portvakt-store-read", move || {
                // One job at a time; a job that panics loses only its own answer.
                while let Ok(job) = rx.recv() {
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
            tx
        })
    }

    fn writer_sender(&self) -> &Sender<StepJob> {
        self.writer.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<StepJob>();
            let (path, busy_timeout) = (self.path.clone(), self.busy_timeout);
            spawn("portvakt-store-write", move || {
                write_steps_loop(&path, busy_timeout, &rx)
            });
            tx
        })
    }
}

/// Starts a named worker thread. If the OS refuses a thread, the receiver is dropped with
/// the closure, so every caller gets [`StoreError::WorkerGone`] instead of hanging.
fn spawn(name: &str, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new().name(name.to_owned()).spawn(f) {
        tracing::error!("cannot start the store thread {name}: {e}");
    }
}

/// The step writer: batches of queued steps, one transaction each, until the store closes.
fn write_steps_loop(path: &Path, busy_timeout: Duration, jobs: &Receiver<StepJob>) {
    let mut conn = None;
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results = match connection(&mut conn, path, busy_timeout) {
            Ok(c) => write_steps(c, &batch),
            Err(e) => fail_all(batch.len(), &e),
        };
        if results.iter().any(Result::is_err) {
            // Start the next batch on a fresh connection.
            conn = None;
        }
        for (job, result) in batch.into_iter().zip(results) {
            job.done.send(result);
        }
    }
}

/// The writer's own connection, opened (again) when needed.
fn connection<'c>(
    conn: &'c mut Option<Connection>,
    path: &Path,
    busy_timeout: Duration,
) -> Result<&'c mut Connection, StoreError> {
    if conn.is_none() {
        // The file exists: `Store::open` created it (a vanished file must be an error).
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let c = Connection::open_with_flags(path, flags)?;
        configure(&c, busy_timeout)?;
        *conn = Some(c);
    }
    conn.as_mut()
        .ok_or_else(|| StoreError::Corrupt("store writer connection".into()))
}

/// One transaction for a batch of step updates; a result per update. A step is accepted
/// only if it is newer than the user's last accepted one (the replay guard).
fn write_steps(conn: &mut Connection, batch: &[StepJob]) -> Vec<Result<bool, StoreError>> {
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(batch.len(), &e),
    };
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let changed = tx.exec(
            "UPDATE totp SET last_step = ?2 \
             WHERE user_id = (SELECT id FROM users WHERE name = ?1) AND active = 1 \
               AND (last_step IS NULL OR last_step < ?2)",
            params![job.name, job.step],
        );
        results.push(changed.map(|n| n == 1).map_err(StoreError::from));
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => fail_all(batch.len(), &e),
    }
}

fn fail_all(n: usize, e: &dyn std::fmt::Display) -> Vec<Result<bool, StoreError>> {
    (0..n)
        .map(|_| {
            Err(StoreError::Corrupt(format!(
                "replay guard write failed: {e}"
            )))
        })
        .collect()
}
