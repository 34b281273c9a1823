//! The text and JSON log formats, with a short way for the one line logged per request.
//!
//! Every finished request logs an audit line (target [`crate::audit::TARGET`]). Through
//! tracing-subscriber's standard text formatter that line cost about a twentieth of
//! portvakt's CPU on the pass-through path: each field goes through `Debug` and the
//! ANSI-styling wrappers even when colours are off. [`Text`] and [`Json`] write the audit
//! line themselves — byte for byte what the standard formatters write (the tests compare
//! them) — and hand every other event, and any event when colours are on or a span is
//! entered, to the standard formatter.
//!
//! The short way knows the fields the audit line has: strings, `Display` values and
//! `format_args!`. A field of another kind is still written as the standard formatter
//! would write it, except an error value's source chain in text, which the audit line
//! never carries.

use std::fmt::{self, Write as _};
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The text format: tracing-subscriber's `Full` format, with the audit line written directly.
#[derive(Debug, Default)]
pub struct Text {
    standard: Format<Full>,
}

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if meta.target() != crate::audit::TARGET
            || writer.has_ansi_escapes()
            || ctx.event_scope().is_some()
        {
            return self.standard.format_event(ctx, writer, event);
        }
        write_timestamp(&mut writer, SystemTime::now())?;
        writer.write_char(' ')?;
        writer.write_str(level(*meta.level()))?;
        writer.write_char(' ')?;
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        let sanitize = writer.sanitizes_ansi_escapes();
        let mut fields = Fields {
            writer: writer.by_ref(),
            first: true,
            sanitize,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// The JSON format: tracing-subscriber's `Json` format with flattened fields (one object
/// per line: timestamp, level, the fields, target), with the audit line written directly.
#[derive(Debug)]
pub struct Json {
    standard: Format<format::Json>,
}

impl Default for Json {
    fn default() -> Self {
        Self {
            standard: tracing_subscriber::fmt::format().json().flatten_event(true),
        }
    }
}

impl<S, N> FormatEvent<S, N> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if meta.target() != crate::audit::TARGET
            || event.parent().is_some()
            || ctx.lookup_current().is_some()
        {
            return self.standard.format_event(ctx, writer, event);
        }
        // Digits and separators only: nothing in it needs JSON escaping.
        writer.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut writer, SystemTime::now())?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(meta.level().as_str())?;
        writer.write_char('"')?;
        let mut fields = JsonFields {
            writer: writer.by_ref(),
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        json_str(&mut writer, meta.target())?;
        writer.write_str("}\n")
    }
}

/// The audit line's fields as `,"name":value`, valued as tracing-serde's map visitor values
/// them: strings and `Debug` text as JSON strings, numbers and booleans as themselves.
struct JsonFields<'a> {
    writer: Writer<'a>,
    result: fmt::Result,
}

impl JsonFields<'_> {
    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self
                .writer
                .write_char(',')
                .and_then(|()| json_str(&mut self.writer, field.name()))
                .and_then(|()| self.writer.write_char(':'))
                .and_then(|()| value(&mut self.writer));
        }
    }
}

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |w| json_str(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |w| json_value(w, &format_args!("{value:?}")));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |w| json_value(w, &value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |w| json_value(w, &value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.entry(field, |w| json_value(w, &value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |w| json_value(w, &value));
    }
}

/// A JSON string, escaped as serde_json escapes it; most values need only the quotes.
fn json_str(writer: &mut Writer<'_>, value: &str) -> fmt::Result {
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        writer.write_char('"')?;
        writer.write_str(value)?;
        writer.write_char('"')
    } else {
        json_value(writer, &value)
    }
}

/// Any value through serde_json, into the log line.
fn json_value(writer: &mut Writer<'_>, value: &impl serde::Serialize) -> fmt::Result {
    serde_json::to_writer(Utf8(writer), value).map_err(|_| fmt::Error)
}

/// serde_json writes whole UTF-8 pieces (it splits strings only at ASCII escapes), so
/// each write is text.
struct Utf8<'a, 'b>(&'a mut Writer<'b>);

impl io::Write for Utf8<'_, '_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let text = std::str::from_utf8(data).map_err(io::Error::other)?;
        self.0.write_str(text).map_err(io::Error::other)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The level as the standard formatter pads it.
fn level(level: Level) -> &'static str {
    match level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

/// RFC 3339 in UTC with microseconds, as tracing-subscriber's `SystemTime` timer writes
/// it (`2026-12-06T00:37:38.872582Z`).
fn write_timestamp(writer: &mut impl fmt::Write, now: SystemTime) -> fmt::Result {
    let Ok(since) = now.duration_since(UNIX_EPOCH) else {
        // Before 1970: a clock that wrong is not worth a fast path.
        return writer.write_str("<unknown time>");
    };
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    if year > 9999 {
        return writer.write_str("<unknown time>");
    }
    let of_day = secs % 86_400;
    let micros = since.subsec_micros();
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    put(&mut out[0..4], year);
    put(&mut out[5..7], month);
    put(&mut out[8..10], day);
    put(&mut out[11..13], of_day / 3600);
    put(&mut out[14..16], of_day / 60 % 60);
    put(&mut out[17..19], of_day % 60);
    put(&mut out[20..26], u64::from(micros));
    // Only ASCII digits were written into an ASCII template.
    writer.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
}

/// Writes `value`'s last `digits.len()` decimal digits into `digits`, zero-padded.
fn put(digits: &mut [u8], mut value: u64) {
    for d in digits.iter_mut().rev() {
        *d = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (H. Hinnant's
/// `civil_from_days`, for days ≥ 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The audit line's fields, written as tracing-subscriber's `DefaultVisitor` writes them
/// without colours: `name=value` separated by spaces, strings quoted as `Debug` quotes them,
/// the message first and bare (with terminal escapes sanitized when the writer asks for it).
struct Fields<'a> {
    writer: Writer<'a>,
    first: bool,
    sanitize: bool,
    result: fmt::Result,
}

impl Fields<'_> {
    /// The separator before every field but the first.
    fn pad(&mut self) -> fmt::Result {
        if self.first {
            self.first = false;
            Ok(())
        } else {
            self.writer.write_char(' ')
        }
    }

    fn name(&mut self, field: &Field) -> fmt::Result {
        let name = field.name();
        self.writer
            .write_str(name.strip_prefix("r#").unwrap_or(name))?;
        self.writer.write_char('=')
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            return self.record_debug(field, &format_args!("{value}"));
        }
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        // `Debug` of a str escapes quotes, backslashes, control and some Unicode
        // characters; plain printable ASCII it only quotes.
        let plain = value
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
        self.result = self.pad().and_then(|()| self.name(field)).and_then(|()| {
            if plain {
                self.writer.write_char('"')?;
                self.writer.write_str(value)?;
                self.writer.write_char('"')
            } else {
                write!(self.writer, "{value:?}")
            }
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        self.result = self.pad().and_then(|()| {
            if field.name() == "message" {
                if self.sanitize {
                    write!(Sanitizing(&mut self.writer), "{value:?}")
                } else {
                    write!(self.writer, "{value:?}")
                }
            } else {
                self.name(field)?;
                write!(self.writer, "{value:?}")
            }
        });
    }
}

/// Escapes what could drive a terminal (C0 escapes, DEL, C1 controls), exactly as
/// tracing-subscriber does for messages.
struct Sanitizing<'a, 'b>(&'a mut Writer<'b>);

impl fmt::Write for Sanitizing<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // C1 controls are U+0080..U+009F, encoded as 0xC2 0x80..0x9F.
        if !s
            .bytes()
            .any(|b| matches!(b, 0x07 | 0x08 | 0x0c | 0x1b | 0x7f | 0xc2))
        {
            return self.0.write_str(s);
        }
        for ch in s.chars() {
            match ch {
                '\x1b' => self.0.write_str("\\x1b")?,
                '\x07' => self.0.write_str("\\x07")?,
                '\x08' => self.0.write_str("\\x08")?,
                '\x0c' => self.0.write_str("\\x0c")?,
                '\x7f' => self.0.write_str("\\x7f")?,
                c if ('\u{80}'..='\u{9f}').contains(&c) => write!(self.0, "\\u{{{:x}}}", c as u32)?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A writer whose lines the test reads back.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// Lines logged by `events` through tracing-subscriber's standard text format and
    /// through [`Text`], timestamps cut off (checked separately below).
    fn both(events: impl Fn()) -> (Vec<String>, Vec<String>) {
        let standard = Buffer::default();
        let ours = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .with_writer(standard.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, &events);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .event_format(Text::default())
            .with_writer(ours.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, &events);
        let lines = |b: &Buffer| {
            let text = String::from_utf8(b.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|l| {
                    assert!(l.len() > 28 && l.as_bytes()[26] == b'Z', "{l}");
                    l[28..].to_owned()
                })
                .collect::<Vec<_>>()
        };
        (lines(&standard), lines(&ours))
    }

    /// Audit lines with every kind of value (hostile strings, printable ASCII that needs
    /// escaping, numbers, `Display`, `format_args!`), odd messages, and lines the short way
    /// must leave to the standard formatter: another target, and an audit line in a span.
    fn events() {
        let hostile = "mallory\"\\ \u{1b}[31m\n\u{85}ø😀\u{7f}\u{2028}";
        for (user, nas, ms) in [
            ("alice", "vpn-1", 0.25),
            (hostile, "-", 12.5),
            // Printable ASCII that `Debug` and JSON still escape.
            ("DOMAIN\\bob", "say \"hi\"", 3.0),
        ] {
            tracing::info!(
                target: crate::audit::TARGET,
                client = %"town hall \"vpn\"",
                user,
                nas,
                station = "203.0.113.7",
                result = "Access-Accept",
                decision = "origin 10.0.0.1 from Calling-Station-Id; pass: site \"rådhus\"",
                count = 3u64,
                signed = -4i64,
                ratio = 0.1f64,
                flag = true,
                r#type = "raw",
                duration_ms = format_args!("{ms:.2}"),
                "request finished"
            );
        }
        tracing::warn!(target: crate::audit::TARGET, user = "a", "odd \u{1b}[2J \"message\" {}", 7);
        tracing::error!(target: crate::audit::TARGET, "only a message");
        tracing::debug!(target: crate::audit::TARGET, k = "v");
        tracing::trace!(target: crate::audit::TARGET, message = "as a field \u{1b}");
        tracing::info!(user = "alice", "listening");
        let span = tracing::info_span!("outer", id = 7);
        let _entered = span.enter();
        tracing::info!(target: crate::audit::TARGET, user = "bob", "request finished");
    }

    #[test]
    fn the_audit_line_is_written_as_the_standard_formatter_writes_it() {
        let (standard, ours) = both(events);
        assert_eq!(standard.len(), 9);
        assert_eq!(ours, standard);
        assert!(
            ours[1].contains(r#"user="mallory\"\\ \u{1b}[31m\n\u{85}ø😀\u{7f}\u{2028}""#),
            "{}",
            ours[1]
        );
        assert!(
            ours[2].contains(r#"user="DOMAIN\\bob" nas="say \"hi\"""#),
            "{}",
            ours[2]
        );
        assert!(
            ours[3].contains(r#"odd \x1b[2J "message" 7"#),
            "{}",
            ours[3]
        );
    }

    /// The same for JSON: lines from the standard JSON format (flattened) and from [`Json`],
    /// the timestamp's value cut out.
    fn both_json(events: impl Fn()) -> (Vec<String>, Vec<String>) {
        let standard = Buffer::default();
        let ours = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_max_level(Level::TRACE)
            .with_writer(standard.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, &events);
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(Level::TRACE)
            .event_format(Json::default())
            .with_writer(ours.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, &events);
        let lines = |b: &Buffer| {
            let text = String::from_utf8(b.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|l| {
                    let value: serde_json::Value = serde_json::from_str(l).unwrap();
                    let stamp = value["timestamp"].as_str().unwrap().to_owned();
                    assert_eq!(stamp.len(), 27, "{l}");
                    l.replacen(&stamp, "T", 1)
                })
                .collect::<Vec<_>>()
        };
        (lines(&standard), lines(&ours))
    }

    #[test]
    fn the_json_audit_line_is_written_as_the_standard_formatter_writes_it() {
        let (standard, ours) = both_json(events);
        assert_eq!(standard.len(), 9);
        assert_eq!(ours, standard);
        assert!(
            ours[0].starts_with(
                r#"{"timestamp":"T","level":"INFO","message":"request finished","client":"town hall \"vpn\"","user":"alice""#
            ),
            "{}",
            ours[0]
        );
        assert!(
            ours[2].contains(r#""user":"DOMAIN\\bob","nas":"say \"hi\"""#),
            "{}",
            ours[2]
        );
        assert!(ours[8].contains(r#""span":{"#), "{}", ours[8]);
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let at = |secs: u64, micros: u32| {
            let mut s = String::new();
            let t = UNIX_EPOCH + Duration::new(secs, micros * 1000 + 999);
            write_timestamp(&mut s, t).unwrap();
            s
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00.000000Z");
        assert_eq!(at(951_868_799, 999_999), "2000-02-29T23:59:59.999999Z");
        assert_eq!(at(1_798_588_799, 500_000), "2026-12-29T23:59:59.500000Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
        assert_eq!(at(253_402_300_799, 0), "9999-12-31T23:59:59.000000Z");
        assert_eq!(at(253_402_300_800, 0), "<unknown time>");
        // Every day of four centuries against a day-by-day count.
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        for days in 0..146_097 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            d += 1;
            if d > len[(m - 1) as usize] {
                (d, m) = (1, m + 1);
                if m > 12 {
                    (m, y) = (1, y + 1);
                }
            }
        }
    }

    #[test]
    fn a_live_timestamp_matches_the_standard_formatters() {
        let (standard, ours) = (Buffer::default(), Buffer::default());
        for (buffer, text) in [(&standard, false), (&ours, true)] {
            let builder = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(buffer.clone());
            let emit = || tracing::info!(target: crate::audit::TARGET, "request finished");
            if text {
                tracing::subscriber::with_default(
                    builder.event_format(Text::default()).finish(),
                    emit,
                );
            } else {
                tracing::subscriber::with_default(builder.finish(), emit);
            }
        }
        let read = |b: &Buffer| String::from_utf8(b.0.lock().unwrap().clone()).unwrap();
        let (standard, ours) = (read(&standard), read(&ours));
        // The same shape, and the same minute unless the two straddle one.
        let shape = |l: &str| -> String {
            l[..28]
                .chars()
                .map(|c| if c.is_ascii_digit() { '9' } else { c })
                .collect()
        };
        assert_eq!(shape(&ours), shape(&standard), "{ours} / {standard}");
        assert_eq!(shape(&ours), "9999-99-99T99:99:99.999999Z ");
        if &standard[17..19] != "59" {
            assert_eq!(&ours[..16], &standard[..16], "{ours} / {standard}");
        }
        assert_eq!(&ours[26..], &standard[26..]);
    }
}
