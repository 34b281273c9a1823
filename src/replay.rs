//! Duplicate detection (RFC 5080 §2.2.2).
//!
//! A NAS retransmits a request with the same source address and port, Identifier and
//! Request Authenticator. While the first copy is in progress, copies are dropped (so
//! the directory sees one request, and a user gets one push). Once answered, the exact
//! reply bytes are kept for `window` and sent again for a copy, without reprocessing —
//! a retransmitted one-time code must get the same Accept, not a replay Reject.
//! The same (address, port, Identifier) with a new authenticator is a new request.
//! Only authenticated packets reach this cache (the pipeline checks first).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

type Key = (SocketAddr, u8);

#[derive(Debug)]
struct Entry {
    authenticator: [u8; 16],
    /// `None` while in progress; the reply bytes and when they were sent once done.
    done: Option<(Arc<[u8]>, Instant)>,
}

/// The duplicate cache. A std mutex: each use is a lookup or insert, never held
/// across `.await`.
#[derive(Debug)]
pub struct Replay {
    window: Duration,
    entries: Mutex<HashMap<Key, Entry>>,
}

/// What the cache says about an incoming request.
#[derive(Debug)]
pub enum Seen<'a> {
    /// A new request: process it, then [`Ticket::finish`] with the reply.
    New(Ticket<'a>),
    /// A copy of a request still in progress: drop it.
    InProgress,
    /// A copy of an answered request: send these bytes again.
    Answered(Arc<[u8]>),
}

/// The right to answer a new request. Dropped unfinished (the request was dropped),
/// it forgets the request, so a retransmission is processed afresh.
#[derive(Debug)]
pub struct Ticket<'a> {
    replay: &'a Replay,
    key: Key,
    authenticator: [u8; 16],
    finished: bool,
}

impl Replay {
    /// A cache that keeps replies for `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        // A panic while holding the lock cannot leave the map inconsistent (every
        // critical section is a single insert/remove), so poisoning is ignored.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks up a request.
    pub fn begin(&self, src: SocketAddr, identifier: u8, authenticator: [u8; 16]) -> Seen<'_> {
        let key = (src, identifier);
        let mut entries = self.lock();
        if let Some(e) = entries.get(&key)
            && e.authenticator == authenticator
        {
            match &e.done {
                None => return Seen::InProgress,
                Some((bytes, at)) if at.elapsed() < self.window => {
                    return Seen::Answered(bytes.clone());
                }
                // Answered too long ago: treat as a new request.
                Some(_) => {}
            }
        }
        entries.insert(
            key,
            Entry {
                authenticator,
                done: None,
            },
        );
        Seen::New(Ticket {
            replay: self,
            key,
            authenticator,
            finished: false,
        })
    }

    /// Forgets replies older than the window. Called periodically.
    pub fn purge(&self) {
        let window = self.window;
        self.lock()
            .retain(|_, e| e.done.as_ref().is_none_or(|(_, at)| at.elapsed() < window));
    }

    /// Entries held (in progress and answered).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Ticket<'_> {
    /// Records the reply sent for this request.
    pub fn finish(mut self, reply: Arc<[u8]>) {
        self.finished = true;
        let mut entries = self.replay.lock();
        if let Some(e) = entries.get_mut(&self.key)
            && e.authenticator == self.authenticator
        {
            e.done = Some((reply, Instant::now()));
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut entries = self.replay.lock();
        if entries
            .get(&self.key)
            .is_some_and(|e| e.authenticator == self.authenticator && e.done.is_none())
        {
            entries.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> SocketAddr {
        "127.0.0.1:4000".parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn in_progress_then_answered_then_expired() {
        let r = Replay::new(Duration::from_secs(30));
        let Seen::New(t) = r.begin(src(), 1, [1; 16]) else {
            panic!("new")
        };
        assert!(matches!(r.begin(src(), 1, [1; 16]), Seen::InProgress));
        t.finish(Arc::from(&b"reply"[..]));
        let Seen::Answered(b) = r.begin(src(), 1, [1; 16]) else {
            panic!("answered")
        };
        assert_eq!(&*b, b"reply");
        tokio::time::advance(Duration::from_secs(31)).await;
        r.purge();
        assert!(r.is_empty());
        assert!(matches!(r.begin(src(), 1, [1; 16]), Seen::New(_)));
    }

    #[test]
    fn new_authenticator_is_a_new_request() {
        let r = Replay::new(Duration::from_secs(30));
        let Seen::New(t) = r.begin(src(), 1, [1; 16]) else {
            panic!()
        };
        t.finish(Arc::from(&b"a"[..]));
        assert!(matches!(r.begin(src(), 1, [2; 16]), Seen::New(_)));
        // Other port, same id: independent.
        assert!(matches!(
            r.begin("127.0.0.1:4001".parse().unwrap(), 1, [1; 16]),
            Seen::New(_)
        ));
    }

    #[test]
    fn dropped_ticket_forgets() {
        let r = Replay::new(Duration::from_secs(30));
        let Seen::New(t) = r.begin(src(), 1, [1; 16]) else {
            panic!()
        };
        drop(t);
        assert!(matches!(r.begin(src(), 1, [1; 16]), Seen::New(_)));
    }
}
