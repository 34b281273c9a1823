//! Textual values to wire octets, by attribute type: the inverse of
//! [`crate::radius::display::format_value`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{AttrDef, AttrType, Dictionary, Encrypt, ValueError};

/// Largest value of an ordinary attribute: 255 octets minus type and length (RFC 2865 §5).
const MAX_ATTR_VALUE: usize = 253;

impl Dictionary {
    /// Encodes a textual value by the attribute's type: `"203.0.113.7"`, `"Framed-User"`,
    /// `"0x0102"`, `"42"`, `"2001:db8::/48"`, `"2024-05-01T12:00:00Z"`.
    ///
    /// Strings are taken literally unless they start with `"`; a quoted string may use the
    /// escapes `\"`, `\\`, `\n`, `\r`, `\t` and `\xNN` (the form
    /// [`crate::radius::display::format_value`] prints). Tagged attributes accept a `:tag` suffix
    /// (`L2TP:1`, `"vpn.example":2`; strings only when quoted). For attributes with
    /// `encrypt=` set this returns the plaintext only: hiding it is the codec's job.
    pub fn parse_value(&self, attr: &AttrDef, text: &str) -> Result<Vec<u8>, ValueError> {
        let tagged = attr.has_tag && attr.encrypt == Encrypt::None;
        let (body, tag) = if tagged {
            split_tag(attr, text)?
        } else {
            (text, None)
        };
        let mut out = self.encode_untagged(attr, body, tagged)?;
        if tagged {
            out = apply_tag(attr, out, tag)?;
        }
        if let Some(max) = self.max_value_len(attr)
            && out.len() > max
        {
            return Err(ValueError::TooLong {
                attr: attr.name.clone(),
                len: out.len(),
                max,
            });
        }
        Ok(out)
    }

    /// Encodes a value without its tag octet.
    fn encode_untagged(
        &self,
        attr: &AttrDef,
        text: &str,
        tagged: bool,
    ) -> Result<Vec<u8>, ValueError> {
        let bad = |expected| ValueError::Malformed {
            attr: attr.name.clone(),
            expected,
        };
        let range = || ValueError::OutOfRange {
            attr: attr.name.clone(),
            ty: attr.ty,
        };
        let bytes = match attr.ty {
            AttrType::String => match text.strip_prefix('"') {
                Some(quoted) => unquote(quoted)
                    .ok_or_else(|| bad("a string, or a quoted string with valid escapes"))?,
                None => text.as_bytes().to_vec(),
            },
            AttrType::IpAddr => text
                .parse::<Ipv4Addr>()
                .map_err(|_| bad("an IPv4 address"))?
                .octets()
                .to_vec(),
            AttrType::Ipv6Addr => text
                .parse::<Ipv6Addr>()
                .map_err(|_| bad("an IPv6 address"))?
                .octets()
                .to_vec(),
            AttrType::ComboIp => match text.parse::<IpAddr>().map_err(|_| bad("an IP address"))? {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            },
            AttrType::Ipv4Prefix => encode_ipv4_prefix(text)
                .ok_or_else(|| bad("an IPv4 prefix a.b.c.d/len, host bits zero"))?,
            AttrType::Ipv6Prefix => encode_ipv6_prefix(text)
                .ok_or_else(|| bad("an IPv6 prefix addr/len, host bits zero"))?,
            AttrType::Integer | AttrType::Short | AttrType::Byte => {
                let n = match self.value_by_name(attr, text) {
                    Some(n) => u64::from(n),
                    None => parse_u64(text).ok_or_else(|| bad("a number or a VALUE name"))?,
                };
                encode_unsigned(attr.ty, n, tagged).ok_or_else(range)?
            }
            AttrType::Integer64 => parse_u64(text)
                .ok_or_else(|| bad("a number"))?
                .to_be_bytes()
                .to_vec(),
            AttrType::Signed => {
                let n = match self.value_by_name(attr, text) {
                    // VALUE numbers are stored as the 32-bit pattern.
                    Some(n) => n.cast_signed(),
                    None => text
                        .parse::<i32>()
                        .map_err(|_| bad("a signed 32-bit number"))?,
                };
                n.to_be_bytes().to_vec()
            }
            AttrType::Date => parse_date(text)
                .ok_or_else(|| bad("seconds since 1970 or YYYY-MM-DDTHH:MM:SSZ"))?
                .to_be_bytes()
                .to_vec(),
            AttrType::Ifid => parse_ifid(text)
                .ok_or_else(|| bad("an interface id xxxx:xxxx:xxxx:xxxx"))?
                .to_vec(),
            AttrType::Ether => parse_ether(text)
                .ok_or_else(|| bad("a MAC address aa:bb:cc:dd:ee:ff"))?
                .to_vec(),
            AttrType::Octets
            | AttrType::Abinary
            | AttrType::Tlv
            | AttrType::Vsa
            | AttrType::Extended
            | AttrType::LongExtended
            | AttrType::Evs => parse_hex(text).ok_or_else(|| bad("hex octets 0x..."))?,
        };
        Ok(bytes)
    }

    /// The longest value that fits in one attribute of this kind, or `None` when the
    /// value may be split over several (concat, long-extended).
    fn max_value_len(&self, attr: &AttrDef) -> Option<usize> {
        if attr.concat
            || attr.ty == AttrType::LongExtended
            || matches!(attr.extended, Some(245 | 246))
        {
            return None;
        }
        let header = match (attr.extended, attr.vendor) {
            (Some(_), _) => 1,
            (None, 0) => 0,
            (None, id) => {
                let (t, l) = self.vendor(id).map_or((1, 1), |v| (v.type_len, v.len_len));
                4 + usize::from(t) + usize::from(l)
            }
        };
        Some(MAX_ATTR_VALUE - header)
    }
}

/// Decimal or `0x` hex, digits only (no sign, no `+`, no separators).
pub(super) fn parse_u64(text: &str) -> Option<u64> {
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    let valid = !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix));
    if valid {
        u64::from_str_radix(digits, radix).ok()
    } else {
        None
    }
}

/// [`parse_u64`] narrowed to 32 bits.
pub(super) fn parse_u32(text: &str) -> Option<u32> {
    parse_u64(text).and_then(|n| u32::try_from(n).ok())
}

/// Big-endian octets of an unsigned number for the type; a tagged integer has 24 bits
/// because its first octet is the tag. `None` if it does not fit.
pub(super) fn encode_unsigned(ty: AttrType, n: u64, tagged: bool) -> Option<Vec<u8>> {
    match ty {
        AttrType::Byte => Some(vec![u8::try_from(n).ok()?]),
        AttrType::Short => Some(u16::try_from(n).ok()?.to_be_bytes().to_vec()),
        AttrType::Integer if tagged => (n <= 0xFF_FFFF)
            .then(|| u32::try_from(n).ok())
            .flatten()
            .map(|v| v.to_be_bytes().to_vec()),
        AttrType::Integer => Some(u32::try_from(n).ok()?.to_be_bytes().to_vec()),
        _ => None,
    }
}

/// Splits an optional `:tag` suffix off a tagged attribute's text.
fn split_tag<'t>(attr: &AttrDef, text: &'t str) -> Result<(&'t str, Option<u8>), ValueError> {
    let bad_tag = || ValueError::BadTag {
        attr: attr.name.clone(),
    };
    // A bare string may contain ':' (an IPv6 endpoint); only a quoted one can carry a tag.
    let split_at = match attr.ty {
        AttrType::String if text.starts_with('"') => closing_quote(text).map(|end| end + 1),
        AttrType::String => None,
        _ => text.rfind(':'),
    };
    let Some(pos) = split_at.filter(|&p| p < text.len()) else {
        return Ok((text, None));
    };
    let suffix = text[pos..].strip_prefix(':').ok_or_else(bad_tag)?;
    let tag = parse_u32(suffix)
        .and_then(|t| u8::try_from(t).ok())
        .filter(|t| (1..=0x1F).contains(t));
    Ok((&text[..pos], Some(tag.ok_or_else(bad_tag)?)))
}

/// Byte index of the quote that closes the quoted string starting at `text[0]`.
fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, b) in text.bytes().enumerate().skip(1) {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// Puts the RFC 2868 tag octet in front of (string) or into (integer) an encoded value.
fn apply_tag(attr: &AttrDef, mut value: Vec<u8>, tag: Option<u8>) -> Result<Vec<u8>, ValueError> {
    if attr.ty == AttrType::Integer {
        // The integer was encoded in 24 bits, so the first octet is free for the tag.
        if let Some(first) = value.first_mut() {
            *first = tag.unwrap_or(0);
        }
        return Ok(value);
    }
    // Untagged strings need a zero tag only if their first octet would read as a tag.
    let needs_zero = value.first().is_none_or(|&b| b <= 0x1F);
    match tag {
        Some(t) => value.insert(0, t),
        None if needs_zero => value.insert(0, 0),
        None => {}
    }
    Ok(value)
}

/// Undoes the escapes of a quoted string (`rest` is the text after the opening quote).
fn unquote(rest: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(rest.len());
    let mut bytes = rest.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'"' => return bytes.next().is_none().then_some(out),
            b'\\' => out.push(match bytes.next()? {
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'x' => {
                    let hi = char::from(bytes.next()?).to_digit(16)?;
                    let lo = char::from(bytes.next()?).to_digit(16)?;
                    u8::try_from(hi * 16 + lo).ok()?
                }
                c @ (b'"' | b'\\') => c,
                _ => return None,
            }),
            _ => out.push(b),
        }
    }
    None
}

/// `0x` followed by an even number of hex digits (possibly none).
fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))?;
    hex::decode(digits).ok()
}

/// `a.b.c.d/len` to RFC 6572 form: reserved, length, 4 prefix octets.
fn encode_ipv4_prefix(text: &str) -> Option<Vec<u8>> {
    let (addr, len) = text.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let len = u8::try_from(parse_u32(len)?).ok().filter(|l| *l <= 32)?;
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    if u32::from(addr) & !mask != 0 {
        return None;
    }
    let mut out = vec![0, len];
    out.extend_from_slice(&addr.octets());
    Some(out)
}

/// `addr/len` to RFC 3162 §2.3 form: reserved, length, the prefix octets that hold `len` bits.
fn encode_ipv6_prefix(text: &str) -> Option<Vec<u8>> {
    let (addr, len) = text.split_once('/')?;
    let addr: Ipv6Addr = addr.parse().ok()?;
    let len = u8::try_from(parse_u32(len)?).ok().filter(|l| *l <= 128)?;
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    if u128::from(addr) & !mask != 0 {
        return None;
    }
    let mut out = vec![0, len];
    out.extend_from_slice(&addr.octets()[..usize::from(len).div_ceil(8)]);
    Some(out)
}

/// Seconds since 1970 as a number, or `YYYY-MM-DDTHH:MM:SSZ` (UTC), within 32 bits.
fn parse_date(text: &str) -> Option<u32> {
    if let Some(n) = parse_u32(text) {
        return Some(n);
    }
    let b = text.as_bytes();
    let shape = b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z';
    if !shape {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let s = &text[range];
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    // Reject impossible days such as February 30th: they would not survive the round trip.
    if civil_from_days(days) != (i64::from(year), month, day) {
        return None;
    }
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    u32::try_from(secs).ok()
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `days` after 1970-01-01, as (year, month, day). Inverse of [`days_from_civil`].
pub(in crate::radius) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both are small and positive by construction (day 1..=31, month 1..=12).
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `xxxx:xxxx:xxxx:xxxx` (1–4 hex digits per group) to 8 octets.
fn parse_ifid(text: &str) -> Option<[u8; 8]> {
    let mut out = [0u8; 8];
    let mut groups = text.split(':');
    for pair in out.chunks_exact_mut(2) {
        let group = groups.next().filter(|g| (1..=4).contains(&g.len()))?;
        let value = u16::from_str_radix(group, 16)
            .ok()
            .filter(|_| group.chars().all(|c| c.is_ascii_hexdigit()))?;
        pair.copy_from_slice(&value.to_be_bytes());
    }
    groups.next().is_none().then_some(out)
}

/// `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` to 6 octets.
fn parse_ether(text: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut groups = text.split([':', '-']);
    for octet in &mut out {
        let group = groups.next().filter(|g| g.len() == 2)?;
        *octet = u8::from_str_radix(group, 16)
            .ok()
            .filter(|_| group.chars().all(|c| c.is_ascii_hexdigit()))?;
    }
    groups.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::super::shipped;
    use super::*;

    #[test]
    fn parse_value_encodes_by_type() {
        let dict = shipped();
        let enc = |name: &str, text: &str| dict.parse_value(dict.attr_by_name(name).unwrap(), text);
        assert_eq!(
            enc("Framed-IP-Address", "203.0.113.7").unwrap(),
            [203, 0, 113, 7]
        );
        assert_eq!(enc("Service-Type", "Framed-User").unwrap(), [0, 0, 0, 2]);
        assert_eq!(enc("Service-Type", "42").unwrap(), [0, 0, 0, 42]);
        assert_eq!(enc("Service-Type", "0x0102").unwrap(), [0, 0, 1, 2]);
        assert_eq!(enc("Class", "0x0102").unwrap(), [1, 2]);
        assert_eq!(enc("Class", "0x").unwrap(), [0u8; 0]);
        assert_eq!(enc("Reply-Message", "Enter code").unwrap(), b"Enter code");
        assert_eq!(
            enc("Reply-Message", r#""a\"b\\c\x00\n""#).unwrap(),
            b"a\"b\\c\0\n"
        );
        assert_eq!(
            enc("Framed-IPv6-Prefix", "2001:db8::/48").unwrap(),
            [0, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 0]
        );
        assert_eq!(enc("Framed-IPv6-Prefix", "::/0").unwrap(), [0, 0]);
        assert_eq!(enc("NAS-IPv6-Address", "::1").unwrap()[15], 1);
        assert_eq!(
            enc("Event-Timestamp", "1970-01-01T00:00:00Z").unwrap(),
            [0, 0, 0, 0]
        );
        assert_eq!(
            enc("Event-Timestamp", "2024-02-29T12:34:56Z").unwrap(),
            1_709_210_096u32.to_be_bytes()
        );
        assert_eq!(
            enc("Event-Timestamp", "1709210096").unwrap(),
            1_709_210_096u32.to_be_bytes()
        );
        assert_eq!(
            enc("Framed-Interface-Id", "0011:2233:4455:6677").unwrap(),
            [0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]
        );
        assert_eq!(
            enc("Frag-Status", "More-Data-Pending").unwrap(),
            [0, 0, 0, 2]
        );
    }

    #[test]
    fn parse_value_handles_tags() {
        let dict = shipped();
        let enc = |name: &str, text: &str| dict.parse_value(dict.attr_by_name(name).unwrap(), text);
        assert_eq!(enc("Tunnel-Type", "L2TP").unwrap(), [0, 0, 0, 3]);
        assert_eq!(enc("Tunnel-Type", "L2TP:1").unwrap(), [1, 0, 0, 3]);
        assert_eq!(
            enc("Tunnel-Private-Group-Id", "\"42\":2").unwrap(),
            [2, b'4', b'2']
        );
        // Untagged: data starting above 0x1F needs no tag octet; data that would read as a tag does.
        assert_eq!(enc("Tunnel-Private-Group-Id", "42").unwrap(), b"42");
        assert_eq!(
            enc("Tunnel-Private-Group-Id", r#""\x01x""#).unwrap(),
            [0, 1, b'x']
        );
        // A bare string keeps its colons: an IPv6 endpoint is not a tag.
        assert_eq!(
            enc("Tunnel-Client-Endpoint", "2001:db8::1").unwrap(),
            b"2001:db8::1"
        );
        assert!(matches!(
            enc("Tunnel-Type", "L2TP:32"),
            Err(ValueError::BadTag { .. })
        ));
        assert!(matches!(
            enc("Tunnel-Type", "0x1000000"),
            Err(ValueError::OutOfRange { .. })
        ));
        // Encrypted attributes yield the plaintext; hiding (and the tag) is the codec's job.
        assert_eq!(enc("Tunnel-Password", "hunter2:1").unwrap(), b"hunter2:1");
    }

    #[test]
    fn parse_value_rejects_bad_text_without_echoing_it() {
        let dict = shipped();
        let enc = |name: &str, text: &str| dict.parse_value(dict.attr_by_name(name).unwrap(), text);
        let bad = [
            ("Framed-IP-Address", "203.0.113.300"),
            ("Framed-IP-Address", "2001:db8::1"),
            ("Service-Type", "Framed-Usr"),
            ("Service-Type", "-1"),
            ("Service-Type", "4294967296"),
            ("Class", "0102"),
            ("Class", "0x123"),
            ("Framed-IPv6-Prefix", "2001:db8::1/48"),
            ("Framed-IPv6-Prefix", "2001:db8::/129"),
            ("Event-Timestamp", "2023-02-29T00:00:00Z"),
            ("Event-Timestamp", "2024-01-01 00:00:00"),
            ("Event-Timestamp", "2106-02-07T06:28:16Z"),
            ("Framed-Interface-Id", "0011:2233:4455"),
            ("Reply-Message", r#""unterminated"#),
            ("Reply-Message", r#""bad \q escape""#),
        ];
        for (name, text) in bad {
            let err = enc(name, text).expect_err(text).to_string();
            assert!(
                err.starts_with(name) && !err.contains(text),
                "{name} {text}: {err}"
            );
        }
        let long = "x".repeat(254);
        let err = enc("User-Password", &long).unwrap_err();
        assert_eq!(
            err,
            ValueError::TooLong {
                attr: "User-Password".into(),
                len: 254,
                max: 253
            }
        );
        let vsa_max = "x".repeat(248);
        assert!(matches!(
            enc("Fortinet-Group-Name", &vsa_max),
            Err(ValueError::TooLong { max: 247, .. })
        ));
        assert!(
            enc("EAP-Message", &format!("0x{}", "00".repeat(400))).is_ok(),
            "concat attributes may be long"
        );
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-1, 0, 59, 365, 11_016, 19_782, 49_710, 1_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
