//! Audit and log helpers: one line per finished request, and escaping for
//! attacker-controlled bytes (a User-Name may hold newlines or terminal escapes).

use std::fmt::Write;

/// Renders bytes for a log line: printable UTF-8 as is, anything else (control
/// characters, invalid UTF-8) as `\xNN`, so one value can never become two lines.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' {
                for b in c.to_string().bytes() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_control_and_invalid_bytes() {
        assert_eq!(escape(b"alice"), "alice");
        assert_eq!(escape("bjørn".as_bytes()), "bjørn");
        assert_eq!(escape(b"a\nb\x1b[31m\0"), "a\\x0ab\\x1b[31m\\x00");
        assert_eq!(escape(b"\xff\\"), "\\xff\\x5c");
    }
}
