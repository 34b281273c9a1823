//! The log sink: where the daemon's text and JSON log lines go on their way to stderr,
//! and its journal entries on their way to journald ([`crate::journal`]).
//!
//! A request's audit line costs its request a copy into a memory buffer, not a
//! write(2): a dedicated thread writes what has gathered at least every
//! [`FLUSH_EVERY`] (sooner when much has gathered), in one system call per batch.
//! No line is ever dropped: when the destination cannot keep up (a full pipe), a
//! logging thread waits for room instead, exactly as it waited in write(2) before.
//! Closing the sink ([`SinkGuard`], dropped at exit and after the SIGTERM drain)
//! writes everything still buffered; lines logged after that go straight through.
//!
//! Each [`io::Write::write`] call appends its octets whole, and the fmt layer (like the
//! journal layer) writes one event with one call, so lines from different threads never
//! interleave.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line waits in the buffer at most before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Buffered octets that wake the writer thread before its period is up, so that a
/// busy daemon writes in chunks of about this size.
const WAKE_AT: usize = 64 << 10;
/// Buffered octets beyond which a logging thread waits for the writer thread.
const LIMIT: usize = 4 << 20;

/// Where the writer thread writes.
type Output = Box<dyn Write + Send>;

/// A log destination for [`mod@tracing_subscriber::fmt`]: cheap to clone, one per layer.
#[derive(Clone)]
pub struct Sink {
    shared: Arc<Shared>,
}

/// Closes the sink when dropped: waits for the writer thread to write every buffered
/// line. Keep it alive as long as anything may log.
pub struct SinkGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// The writer of one log event (see [`MakeWriter`]).
pub struct SinkWriter<'a> {
    shared: &'a Shared,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer thread early: the buffer passed `wake_at`, or the sink closes.
    wake: Condvar,
    /// Wakes logging threads that wait for the buffer to drop below `limit`.
    room: Condvar,
    /// The destination. Lock order: `state` before `out`, so batches reach it in order.
    out: Mutex<Output>,
    wake_at: usize,
    limit: usize,
}

struct State {
    buf: Vec<u8>,
    /// Logging threads waiting for room (so the writer thread signals only when needed).
    waiting: usize,
    closed: bool,
}

/// Starts the writer thread for `out` (usually stderr). If no thread can be started,
/// the sink starts closed: every line is written directly, as before there was a sink.
pub fn spawn(out: impl Write + Send + 'static) -> (Sink, SinkGuard) {
    spawn_with(Box::new(out), FLUSH_EVERY, WAKE_AT, LIMIT)
}

/// Like [`spawn`], for a destination that does work per line as it reads (journald):
/// the writer thread wakes every `every` or once `wake_at` octets have gathered, so
/// that the destination gets small, frequent batches rather than bursts that would
/// take a core from the requests for a while.
pub fn spawn_eager(
    out: impl Write + Send + 'static,
    every: Duration,
    wake_at: usize,
) -> (Sink, SinkGuard) {
    spawn_with(Box::new(out), every, wake_at, LIMIT)
}

fn spawn_with(out: Output, every: Duration, wake_at: usize, limit: usize) -> (Sink, SinkGuard) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            buf: Vec::with_capacity(wake_at * 2),
            waiting: 0,
            closed: false,
        }),
        wake: Condvar::new(),
        room: Condvar::new(),
        out: Mutex::new(out),
        wake_at,
        limit,
    });
    let worker = shared.clone();
    let thread = std::thread::Builder::new()
        .name("portvakt-log".into())
        .spawn(move || drain(&worker, every))
        .ok();
    if thread.is_none() {
        lock(&shared.state).closed = true;
    }
    let sink = Sink {
        shared: shared.clone(),
    };
    (sink, SinkGuard { shared, thread })
}

/// A poisoned lock only means another thread panicked while logging; the buffer is
/// still a valid byte vector, and losing log lines over it would be worse.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The writer thread: swaps the buffer out and writes it, until the sink closes.
fn drain(shared: &Shared, every: Duration) {
    let mut batch = Vec::with_capacity(shared.wake_at * 2);
    loop {
        let mut state = lock(&shared.state);
        if !state.closed && state.buf.len() < shared.wake_at {
            state = shared
                .wake
                .wait_timeout(state, every)
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
        let closing = state.closed;
        std::mem::swap(&mut state.buf, &mut batch);
        if state.waiting > 0 {
            shared.room.notify_all();
        }
        // Taken before `state` is released: a later batch (or, once closed, a direct
        // write) cannot overtake this one.
        let mut out = lock(&shared.out);
        drop(state);
        if !batch.is_empty() {
            // Nowhere to report a failing stderr; the fmt layer ignored it too.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
        }
        drop(out);
        if closing {
            return;
        }
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = SinkWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        SinkWriter {
            shared: &self.shared,
        }
    }
}

impl Write for SinkWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let shared = self.shared;
        let mut state = lock(&shared.state);
        while !state.closed && state.buf.len() >= shared.limit {
            state.waiting += 1;
            shared.wake.notify_one();
            state = shared
                .room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiting -= 1;
        }
        if state.closed {
            // Still holding `state`: see the lock order on `Shared::out`.
            let mut out = lock(&shared.out);
            out.write_all(data)?;
            out.flush()?;
            return Ok(data.len());
        }
        let before = state.buf.len();
        state.buf.extend_from_slice(data);
        // Only on crossing the mark: a notify is a system call, not to be paid per line.
        if before < shared.wake_at && state.buf.len() >= shared.wake_at {
            shared.wake.notify_one();
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Lines are flushed by the writer thread within FLUSH_EVERY, and on close.
        Ok(())
    }
}

impl Drop for SinkGuard {
    fn drop(&mut self) {
        lock(&self.shared.state).closed = true;
        self.shared.wake.notify_one();
        self.shared.room.notify_all();
        if let Some(thread) = self.thread.take() {
            // A panicked writer thread has nothing left to write.
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sink")
    }
}

impl std::fmt::Debug for SinkGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SinkGuard")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A destination that hands every write to the test.
    struct Channel(mpsc::Sender<Vec<u8>>);

    impl Write for Channel {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            let _ = self.0.send(data.to_vec());
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn collect(rx: &mpsc::Receiver<Vec<u8>>) -> String {
        String::from_utf8(rx.try_iter().flatten().collect()).unwrap()
    }

    #[test]
    fn a_line_is_written_within_the_period_without_closing() {
        let (tx, rx) = mpsc::channel();
        let (sink, _guard) = spawn_with(
            Box::new(Channel(tx)),
            Duration::from_millis(20),
            1 << 20,
            1 << 22,
        );
        sink.make_writer().write_all(b"one line\n").unwrap();
        // Far above the 20 ms period; without the timer the line would wait for close.
        let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(got, b"one line\n");
    }

    #[test]
    fn every_line_arrives_whole_and_in_order_from_many_threads_under_pressure() {
        let (tx, rx) = mpsc::channel();
        // A limit a few lines long, so loggers must wait for the writer thread again and again.
        let (sink, guard) = spawn_with(Box::new(Channel(tx)), Duration::from_secs(3600), 64, 256);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        let line = format!("thread {t} line {i:04} {}\n", "x".repeat(i % 50));
                        sink.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = collect(&rx);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8000);
        for t in 0..4 {
            let prefix = format!("thread {t} line ");
            let mine: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with(&prefix))
                .collect();
            assert_eq!(mine.len(), 2000);
            for (i, l) in mine.iter().enumerate() {
                assert_eq!(*l, format!("{prefix}{i:04} {}", "x".repeat(i % 50)));
            }
        }
    }

    #[test]
    fn closing_writes_what_is_buffered_and_later_lines_go_straight_through() {
        let (tx, rx) = mpsc::channel();
        // A period no test waits for: only the close can write the first line.
        let (sink, guard) = spawn_with(
            Box::new(Channel(tx)),
            Duration::from_secs(3600),
            1 << 20,
            1 << 22,
        );
        sink.make_writer().write_all(b"before\n").unwrap();
        drop(guard);
        assert_eq!(collect(&rx), "before\n");
        sink.make_writer().write_all(b"after\n").unwrap();
        assert_eq!(collect(&rx), "after\n");
    }
}
