//! The login path's way into the store: two long-lived threads fed by channels, so that an
//! async task can await a store answer without a blocking-pool thread per request.
//!
//! - The **reader** runs short read jobs (a user's record, a sealed secret) one after the
//!   other. While logins keep it busy it takes the next job without sleeping; only an idle
//!   reader needs a wake-up. `spawn_blocking` instead hands every job to a pool thread and
//!   wakes one per job, and on a small machine those context switches cost more CPU than
//!   the queries (measured in the MFA benchmark: README, "Performance").
//! - The **writer** is the replay guard's group commit: it takes every job queued
//!   while it wrote the last batch and runs them in one transaction, so one fsync makes
//!   many logins durable; each caller hears back only once its work is on disk. A job is
//!   a replay step to record, or a whole code check (read the secret, verify the code,
//!   record its step): one hop and one transaction for what took a read on the reader and
//!   then a write here.
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
type ReadJob = Box<dyn FnOnce() + Send>;

/// Work for the writer thread, run inside a batch's transaction.
trait WriteJob: Send {
    /// Runs the job on the writer's connection, inside the batch's open transaction.
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Ran>;
    /// The writer has no connection: the job cannot run.
    fn refuse(self: Box<Self>, why: &str);
}

/// A job that has run and waits for its batch's commit before its caller hears of it.
trait Ran: Send {
    /// Whether the job's own statements failed (the writer reconnects for the next batch).
    fn failed(&self) -> bool;
    /// Answers the caller: the job's result if the batch committed, else the commit error.
    fn finish(self: Box<Self>, committed: Result<(), &str>);
}

/// A job as a closure, with the way back to its caller.
struct Job<F, T> {
    work: F,
    reply: Reply<T>,
}

/// A job's result, held until its batch is durable.
struct Done<T> {
    result: Result<T, StoreError>,
    reply: Reply<T>,
}

impl<F, T> WriteJob for Job<F, T>
where
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Ran> {
        Box::new(Done {
            result: (self.work)(conn),
            reply: self.reply,
        })
    }

    fn refuse(self: Box<Self>, why: &str) {
        self.reply.send(Err(write_failed(why)));
    }
}

impl<T: Send + 'static> Ran for Done<T> {
    fn failed(&self) -> bool {
        self.result.is_err()
    }

    fn finish(self: Box<Self>, committed: Result<(), &str>) {
        let result = match committed {
            Ok(()) => self.result,
            Err(why) => Err(write_failed(why)),
        };
        self.reply.send(result);
    }
}

/// Where a job's result goes: an awaiting task, or a blocked thread (CLI, tests).
enum Reply<T> {
    Async(tokio::sync::oneshot::Sender<Result<T, StoreError>>),
    Blocking(mpsc::SyncSender<Result<T, StoreError>>),
}

impl<T> Reply<T> {
    fn send(self, result: Result<T, StoreError>) {
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
    reader: OnceLock<Sender<ReadJob>>,
    writer: OnceLock<Sender<Box<dyn WriteJob>>>,
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
        let boxed: ReadJob = Box::new(move || {
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

    /// Runs `work` in the writer's next batch transaction and awaits its result, which
    /// comes only once that transaction is durable. `work` must be short: the batch waits.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue(Box::new(Job {
            work,
            reply: Reply::Async(tx),
        }));
        rx.await.unwrap_or(Err(StoreError::WorkerGone("stopped")))
    }

    /// [`Workers::write`] for blocking code: blocks until the work is durable (never call
    /// from async code).
    pub(crate) fn write_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.queue(Box::new(Job {
            work,
            reply: Reply::Blocking(tx),
        }));
        rx.recv().unwrap_or(Err(StoreError::WorkerGone("stopped")))
    }

    fn queue(&self, job: Box<dyn WriteJob>) {
        if let Err(mpsc::SendError(job)) = self.writer_sender().send(job) {
            job.refuse("the writer thread stopped");
        }
    }

    fn reader_sender(&self) -> &Sender<ReadJob> {
        self.reader.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<ReadJob>();
            spawn("portvakt-store-read", move || {
                // One job at a time; a job that panics loses only its own answer.
                while let Ok(job) = rx.recv() {
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
            tx
        })
    }

    fn writer_sender(&self) -> &Sender<Box<dyn WriteJob>> {
        self.writer.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Box<dyn WriteJob>>();
            let (path, busy_timeout) = (self.path.clone(), self.busy_timeout);
            spawn("portvakt-store-write", move || {
                write_loop(&path, busy_timeout, &rx)
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

/// The writer: batches of queued jobs, one transaction each, until the store closes.
fn write_loop(path: &Path, busy_timeout: Duration, jobs: &Receiver<Box<dyn WriteJob>>) {
    let mut conn = None;
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let c = match connection(&mut conn, path, busy_timeout) {
            Ok(c) => c,
            Err(e) => {
                let why = e.to_string();
                batch.into_iter().for_each(|job| job.refuse(&why));
                continue;
            }
        };
        if !run_batch(c, batch) {
            // Start the next batch on a fresh connection.
            conn = None;
        }
    }
}

/// Runs a batch in one transaction and answers each job once it is committed (or not).
/// False if anything failed.
fn run_batch(conn: &mut Connection, batch: Vec<Box<dyn WriteJob>>) -> bool {
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let why = e.to_string();
            batch.into_iter().for_each(|job| job.refuse(&why));
            return false;
        }
    };
    let ran: Vec<Box<dyn Ran>> = batch.into_iter().map(|job| job.run(&tx)).collect();
    let failed = ran.iter().any(|r| r.failed());
    match tx.commit() {
        Ok(()) => {
            ran.into_iter().for_each(|r| r.finish(Ok(())));
            !failed
        }
        Err(e) => {
            let why = e.to_string();
            ran.into_iter().for_each(|r| r.finish(Err(&why)));
            false
        }
    }
}

/// A replay step: recorded only if it is newer than the user's last accepted one and the
/// secret is active (the replay guard). Whether it was recorded.
pub(crate) fn record_step(conn: &Connection, name: &str, step: i64) -> Result<bool, StoreError> {
    let changed = conn.exec(
        "UPDATE totp SET last_step = ?2 \
         WHERE user_id = (SELECT id FROM users WHERE name = ?1) AND active = 1 \
           AND (last_step IS NULL OR last_step < ?2)",
        params![name, step],
    )?;
    Ok(changed == 1)
}

fn write_failed(why: &str) -> StoreError {
    StoreError::Corrupt(format!("store write failed: {why}"))
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
