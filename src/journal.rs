//! The journal: log events in journald's native protocol, sent by the log thread.
//!
//! Under systemd the daemon logs to the journal, with each event's fields as journal
//! fields (`F_USER=alice`, `F_RESULT=Access-Reject`, … beside `MESSAGE`, `PRIORITY`,
//! `TARGET`, `CODE_FILE`, `CODE_LINE` and `SYSLOG_IDENTIFIER`, the names tracing-journald
//! uses), so `journalctl -u portvakt F_USER=alice` finds a user's logins.
//!
//! A request thread only encodes its entry into memory: [`Layer`] hands it to a
//! [`logsink`](crate::logsink) sink, whose thread sends what has gathered (a few
//! entries, see [`SEND_AT`]) to journald's socket in one `sendmmsg(2)` ([`Socket`]).
//! Sending each entry from the request thread, as tracing-journald does, costs a system
//! call and a wake-up of journald per request, and stops every request while journald
//! is slow to read (the kernel queues `net.unix.max_dgram_qlen` datagrams, 512 under
//! systemd: a few milliseconds of a login storm). Measured against a real journald on
//! a 2-core loopback benchmark (README, "Performance"): p99 at 16 requests in flight
//! about halved; CPU per request and p99 at 5,000 requests/s about the same. Entries are never dropped: the sink
//! makes a logging thread wait once 4 MB are waiting, as a full pipe would.
//!
//! Span fields are not written (the daemon's events carry their own fields), and an
//! entry too large for one datagram (hundreds of kilobytes; no event of ours comes near)
//! is skipped, where tracing-journald would pass it in a memfd.

use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use rustix::net::{SendFlags, SocketAddrAny, SocketAddrUnix};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;

use crate::logsink::Sink;
use crate::outbox::send_each;

/// journald's socket for the native protocol.
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// Entries per `sendmmsg(2)` at most.
const MAX_BATCH: usize = 64;

/// Octets of the length that frames each entry inside the sink's buffer.
const FRAME: usize = 4;

/// How long an entry waits for the log thread at most.
pub const SEND_EVERY: Duration = Duration::from_millis(10);
/// Gathered octets that wake the log thread before [`SEND_EVERY`]: two or three audit
/// entries. journald does real work per entry (tens of microseconds); sent in small
/// batches it takes a core briefly and often rather than for milliseconds at a time
/// (with 4 KB batches, p99 latency at 5,000 requests/s was 0.1 ms worse than sending
/// each entry at once; with 64 KB, 1.4 ms worse).
pub const SEND_AT: usize = 1 << 10;

/// A tracing layer writing each event as one journal entry into a log sink.
pub struct Layer {
    sink: Sink,
    /// `SYSLOG_IDENTIFIER=…\n`, encoded once.
    identifier: Vec<u8>,
}

impl Layer {
    /// Entries go to `sink`, whose output should be a [`Socket`]. `identifier` is the
    /// journal's `SYSLOG_IDENTIFIER` (the program name).
    pub fn new(sink: Sink, identifier: &str) -> Self {
        let mut line = Vec::new();
        put(&mut line, "SYSLOG_IDENTIFIER", identifier.as_bytes());
        Self {
            sink,
            identifier: line,
        }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for Layer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut entry = Vec::with_capacity(512);
        entry.extend_from_slice(&[0; FRAME]);
        put(&mut entry, "PRIORITY", priority(*meta.level()));
        put(&mut entry, "TARGET", meta.target().as_bytes());
        if let Some(file) = meta.file() {
            put(&mut entry, "CODE_FILE", file.as_bytes());
        }
        if let Some(line) = meta.line() {
            // A number has no newline: the simple form.
            let _ = writeln!(entry, "CODE_LINE={line}");
        }
        entry.extend_from_slice(&self.identifier);
        event.record(&mut Fields { entry: &mut entry });
        let Ok(len) = u32::try_from(entry.len() - FRAME) else {
            return; // Four gigabytes: not an event of ours.
        };
        entry[..FRAME].copy_from_slice(&len.to_le_bytes());
        // The sink takes each write whole; a failure has nowhere to be reported.
        let _ = self.sink.make_writer().write_all(&entry);
    }
}

/// journald's priorities, as tracing-journald maps them.
fn priority(level: Level) -> &'static [u8] {
    match level {
        Level::ERROR => b"3",
        Level::WARN => b"4",
        Level::INFO => b"5",
        Level::DEBUG => b"6",
        Level::TRACE => b"7",
    }
}

/// Appends one field. A value without a newline takes the `NAME=value` form; any other
/// takes the binary form, `NAME`, newline, its length as 64-bit little-endian, the value
/// and a newline, so a value can never end its field early or add one.
fn put(entry: &mut Vec<u8>, name: &str, value: &[u8]) {
    entry.extend_from_slice(name.as_bytes());
    if value.contains(&b'\n') {
        entry.push(b'\n');
        entry.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        entry.push(b'=');
    }
    entry.extend_from_slice(value);
    entry.push(b'\n');
}

/// Appends a tracing field's journal name: `message` is `MESSAGE`; any other is `F_` and
/// the name upper-cased, with `.` as `_` and the characters journald refuses left out.
fn put_name(entry: &mut Vec<u8>, name: &str) {
    if name == "message" {
        entry.extend_from_slice(b"MESSAGE");
        return;
    }
    entry.extend_from_slice(b"F_");
    entry.extend(
        name.bytes()
            .map(|c| if c == b'.' { b'_' } else { c })
            .filter(|c| c.is_ascii_alphanumeric() || *c == b'_')
            .map(|c| c.to_ascii_uppercase()),
    );
}

/// Writes an event's fields into its entry.
struct Fields<'a> {
    entry: &'a mut Vec<u8>,
}

impl Fields<'_> {
    /// Appends one field, its value written in place by `value`; moved into the binary
    /// form (see [`put`]) only if it turns out to hold a newline.
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Vec<u8>)) {
        put_name(self.entry, field.name());
        let name_end = self.entry.len();
        self.entry.push(b'=');
        let value_start = self.entry.len();
        value(self.entry);
        if self.entry[value_start..].contains(&b'\n') {
            let value = self.entry.split_off(value_start);
            self.entry.truncate(name_end);
            self.entry.push(b'\n');
            self.entry
                .extend_from_slice(&(value.len() as u64).to_le_bytes());
            self.entry.extend_from_slice(&value);
        }
        self.entry.push(b'\n');
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |e| e.extend_from_slice(value.as_bytes()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // Numbers, booleans and `%value` fields arrive here too (Display for the last).
        self.field(field, |e| {
            let _ = write!(e, "{value:?}");
        });
    }
}

/// journald's socket, as the log thread's output: takes the sink's batches of framed
/// entries and sends each entry as one datagram, many per system call.
pub struct Socket {
    socket: UnixDatagram,
    to: SocketAddrAny,
}

impl Socket {
    /// Opens a socket toward journald at `path` and checks that it listens, with an
    /// empty datagram (which journald ignores).
    pub fn connect(path: &Path) -> io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        socket.send_to(&[], path)?;
        Ok(Self {
            socket,
            to: SocketAddrUnix::new(path)?.into(),
        })
    }

    /// Sends `entries` (at most [`MAX_BATCH`]) in one `sendmmsg(2)`; how many went.
    fn send(&self, entries: &[&[u8]]) -> io::Result<usize> {
        let datagrams: Vec<(&SocketAddrAny, &[u8])> =
            entries.iter().map(|e| (&self.to, *e)).collect();
        loop {
            match send_each(&self.socket, &datagrams, SendFlags::empty()) {
                Err(rustix::io::Errno::INTR) => continue,
                r => return Ok(r?),
            }
        }
    }
}

/// Splits a batch of framed entries. A truncated frame (never written by [`Layer`])
/// ends the batch.
fn entries(mut batch: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while batch.len() >= FRAME {
        let mut len = [0; FRAME];
        len.copy_from_slice(&batch[..FRAME]);
        let len = u32::from_le_bytes(len) as usize;
        let Some(entry) = batch.get(FRAME..FRAME + len) else {
            break;
        };
        out.push(entry);
        batch = &batch[FRAME + len..];
    }
    out
}

impl Write for Socket {
    /// Sends every entry of `batch`. The socket blocks while journald's queue is full,
    /// so nothing is dropped for being fast; an entry journald refuses (too large, or
    /// journald gone) is skipped and the rest still go.
    fn write(&mut self, batch: &[u8]) -> io::Result<usize> {
        let all = entries(batch);
        let mut done = 0;
        while done < all.len() {
            let chunk = &all[done..all.len().min(done + MAX_BATCH)];
            match self.send(chunk) {
                Ok(n) => done += n.max(1),
                Err(_) => done += 1,
            }
        }
        Ok(batch.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tracing_subscriber::prelude::*;

    /// Parses one native-protocol entry back into its fields (both forms).
    fn parse(mut entry: &[u8]) -> BTreeMap<String, Vec<u8>> {
        let mut fields = BTreeMap::new();
        while !entry.is_empty() {
            let end = entry.iter().position(|&b| b == b'\n').unwrap();
            let line = &entry[..end];
            if let Some(eq) = line.iter().position(|&b| b == b'=') {
                let name = String::from_utf8(line[..eq].to_vec()).unwrap();
                fields.insert(name, line[eq + 1..].to_vec());
                entry = &entry[end + 1..];
            } else {
                let name = String::from_utf8(line.to_vec()).unwrap();
                let rest = &entry[end + 1..];
                let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
                fields.insert(name, rest[8..8 + len].to_vec());
                assert_eq!(rest[8 + len], b'\n');
                entry = &rest[8 + len + 1..];
            }
        }
        fields
    }

    /// A journald stand-in: a datagram socket in a fresh directory.
    fn listener() -> (tempfile::TempDir, UnixDatagram, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (dir, socket, path)
    }

    fn receive(socket: &UnixDatagram) -> Vec<u8> {
        let mut buf = vec![0; 1 << 16];
        loop {
            let n = socket.recv(&mut buf).unwrap();
            if n > 0 {
                return buf[..n].to_vec(); // not the empty probe
            }
        }
    }

    #[test]
    fn an_event_arrives_as_one_entry_with_its_fields_and_hostile_values_intact() {
        let (_dir, journald, path) = listener();
        let (sink, guard) = crate::logsink::spawn(Socket::connect(&path).unwrap());
        let subscriber = tracing_subscriber::registry().with(Layer::new(sink, "portvakt"));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                target: "portvakt::audit",
                user = "eve\nMESSAGE=forged",
                client = %"vpn1",
                attempts = 3u64,
                "request finished"
            );
            tracing::warn!(note = true, "second");
        });
        drop(guard); // sends what is buffered
        let first = parse(&receive(&journald));
        assert_eq!(first["MESSAGE"], b"request finished");
        assert_eq!(first["PRIORITY"], b"5");
        assert_eq!(first["TARGET"], b"portvakt::audit");
        assert_eq!(first["SYSLOG_IDENTIFIER"], b"portvakt");
        assert_eq!(first["F_USER"], b"eve\nMESSAGE=forged");
        assert_eq!(first["F_CLIENT"], b"vpn1");
        assert_eq!(first["F_ATTEMPTS"], b"3");
        assert!(first.contains_key("CODE_FILE") && first.contains_key("CODE_LINE"));
        let second = parse(&receive(&journald));
        assert_eq!(second["MESSAGE"], b"second");
        assert_eq!(second["PRIORITY"], b"4");
        assert_eq!(second["F_NOTE"], b"true");
    }

    #[test]
    fn a_batch_larger_than_one_system_call_arrives_whole_and_in_order() {
        let (_dir, journald, path) = listener();
        let mut socket = Socket::connect(&path).unwrap();
        let mut batch = Vec::new();
        let n = MAX_BATCH * 2 + 5;
        for i in 0..n {
            let payload = format!("MESSAGE={i}\n");
            batch.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_le_bytes());
            batch.extend_from_slice(payload.as_bytes());
        }
        // The kernel queues few datagrams (net.unix.max_dgram_qlen): read while writing.
        let reader = std::thread::spawn(move || (0..n).map(|_| receive(&journald)).collect());
        assert_eq!(socket.write(&batch).unwrap(), batch.len());
        let got: Vec<Vec<u8>> = reader.join().unwrap();
        for (i, entry) in got.iter().enumerate() {
            assert_eq!(entry, &format!("MESSAGE={i}\n").into_bytes());
        }
    }

    #[test]
    fn no_journal_listening_is_an_error_at_connect() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Socket::connect(&dir.path().join("socket")).is_err());
    }

    #[test]
    fn field_names_are_what_journald_accepts() {
        for (field, journal) in [
            ("message", "MESSAGE"),
            ("duration_ms", "F_DURATION_MS"),
            ("log.target", "F_LOG_TARGET"),
            ("r#type-ö", "F_RTYPE"),
        ] {
            let mut name = Vec::new();
            put_name(&mut name, field);
            assert_eq!(String::from_utf8(name).unwrap(), journal);
        }
    }

    #[test]
    fn a_truncated_frame_ends_the_batch() {
        let mut batch = vec![3, 0, 0, 0, b'a', b'b', b'c'];
        batch.extend_from_slice(&[9, 0, 0, 0, b'x']);
        assert_eq!(entries(&batch), vec![&b"abc"[..]]);
    }
}
