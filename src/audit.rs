//! Audit and log helpers: one line per finished request, and escaping for
//! attacker-controlled bytes (a User-Name may hold newlines or terminal escapes).

use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::radius::{Packet, attr};

/// The target of the audit line (one per finished request); [`crate::logfmt`]
/// writes it without the generic formatter.
pub const TARGET: &str = "portvakt::audit";

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

/// How a request's NAS names itself, for the audit line: NAS-Identifier, else
/// NAS-IP-Address, else NAS-IPv6-Address; `None` if it sends none of them.
pub fn nas(request: &Packet) -> Option<String> {
    if let Some(id) = request.attr(attr::NAS_IDENTIFIER) {
        return Some(escape(id));
    }
    if let Some(v4) = request.attr(attr::NAS_IP_ADDRESS) {
        return Some(match <[u8; 4]>::try_from(v4) {
            Ok(octets) => Ipv4Addr::from(octets).to_string(),
            Err(_) => escape(v4),
        });
    }
    request
        .attr(attr::NAS_IPV6_ADDRESS)
        .map(|v6| match <[u8; 16]>::try_from(v6) {
            Ok(octets) => Ipv6Addr::from(octets).to_string(),
            Err(_) => escape(v6),
        })
}

#[cfg(test)]
mod tests {
    use super::{escape, nas};
    use crate::radius::{Code, Packet, attr};

    #[test]
    fn the_nas_names_itself_by_identifier_then_address() {
        let mut p = Packet::new(Code::AccessRequest, 1, [0; 16]);
        assert_eq!(nas(&p), None);
        p.push(
            attr::NAS_IPV6_ADDRESS,
            vec![0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        );
        assert_eq!(nas(&p).as_deref(), Some("2001:db8::1"));
        p.push(attr::NAS_IP_ADDRESS, vec![192, 0, 2, 10]);
        assert_eq!(nas(&p).as_deref(), Some("192.0.2.10"));
        p.push(attr::NAS_IDENTIFIER, b"vpn1\n".to_vec());
        assert_eq!(nas(&p).as_deref(), Some("vpn1\\x0a"));
    }

    #[test]
    fn escapes_control_and_invalid_bytes() {
        assert_eq!(escape(b"alice"), "alice");
        assert_eq!(escape("bjørn".as_bytes()), "bjørn");
        assert_eq!(escape(b"a\nb\x1b[31m\0"), "a\\x0ab\\x1b[31m\\x00");
        assert_eq!(escape(b"\xff\\"), "\\xff\\x5c");
    }
}
