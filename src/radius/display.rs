//! Human-readable attribute values for logs and tools, with secrets redacted.
//!
//! Everything printed here may come from an attacker, so strings are escaped (no raw
//! control characters, terminal escapes or line breaks reach a log) and hidden or
//! password-equivalent attributes are shown as `<redacted>`. Which attributes count as
//! sensitive is decided by [`is_sensitive`], whose core list is hard-coded: a missing or
//! edited dictionary must never make User-Password printable.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::attr::{
    self, CHAP_PASSWORD, EAP_MESSAGE, MS_CHAP_CHALLENGE, MS_CHAP_RESPONSE, MS_CHAP2_RESPONSE,
    MS_CHAP2_SUCCESS, MS_MPPE_RECV_KEY, MS_MPPE_SEND_KEY, TUNNEL_PASSWORD, USER_PASSWORD,
    VENDOR_MICROSOFT, VENDOR_SPECIFIC,
};
use super::dictionary::{AttrDef, AttrType, Dictionary, Encrypt, civil_from_days};

/// What a sensitive value is printed as.
const REDACTED: &str = "<redacted>";

/// Standard attributes that carry a password or a password-equivalent.
const SENSITIVE_STANDARD: &[u8] = &[
    USER_PASSWORD,
    CHAP_PASSWORD,
    TUNNEL_PASSWORD,
    70,  // ARAP-Password (RFC 2869 §5.4): the user's DES response.
    84,  // ARAP-Challenge-Response (RFC 2869 §5.15).
    102, // Digest-Response (RFC 5090): allows an offline dictionary attack.
    120, // Digest-HA1 (RFC 5090): password-equivalent.
];

/// Microsoft (RFC 2548) attributes: every MS-CHAP and MS-CHAP2 field, the MPPE keys and
/// the ARAP passwords.
const SENSITIVE_MICROSOFT: &[u8] = &[
    MS_CHAP_RESPONSE,
    2, // MS-CHAP-Error: carries a challenge for the retry.
    3, // MS-CHAP-CPW-1
    4, // MS-CHAP-CPW-2
    5, // MS-CHAP-LM-Enc-PW
    6, // MS-CHAP-NT-Enc-PW
    MS_CHAP_CHALLENGE,
    12, // MS-CHAP-MPPE-Keys
    MS_MPPE_SEND_KEY,
    MS_MPPE_RECV_KEY,
    19, // MS-Old-ARAP-Password
    20, // MS-New-ARAP-Password
    MS_CHAP2_RESPONSE,
    MS_CHAP2_SUCCESS, // the authenticator response proves knowledge of the NT hash
    27,               // MS-CHAP2-CPW
];

/// Aruba's enterprise number: its auth-survivability attribute carries an NT hash.
const VENDOR_ARUBA: u32 = 14823;
/// Aruba-AS-Credential-Hash: the user's NT password hash, sent by ClearPass.
const ARUBA_AS_CREDENTIAL_HASH: u8 = 30;

/// Whether an attribute's value must never be printed.
///
/// True for a hard-coded list (User-Password, CHAP-Password, Tunnel-Password, the ARAP and
/// Digest password fields, all MS-CHAP/MS-CHAP2 fields, the MPPE keys, Aruba's NT-hash
/// attribute), which holds even
/// with an empty dictionary, and for any attribute whose dictionary entry has `encrypt=`.
pub fn is_sensitive(dict: &Dictionary, vendor: u32, number: u32) -> bool {
    let listed = match (vendor, u8::try_from(number)) {
        (0, Ok(n)) => SENSITIVE_STANDARD.contains(&n),
        (VENDOR_MICROSOFT, Ok(n)) => SENSITIVE_MICROSOFT.contains(&n),
        (VENDOR_ARUBA, Ok(n)) => n == ARUBA_AS_CREDENTIAL_HASH,
        _ => false,
    };
    listed
        || dict
            .attr(vendor, number)
            .is_some_and(|d| d.encrypt != Encrypt::None)
}

/// Whether a definition is sensitive (covers extended attributes, which have no
/// `(vendor, number)` identity of their own).
fn def_is_sensitive(dict: &Dictionary, def: &AttrDef) -> bool {
    def.encrypt != Encrypt::None
        || (def.extended.is_none() && is_sensitive(dict, def.vendor, def.number))
}

/// Whether a vendor has sensitive attributes, so a VSA of it that cannot be split into
/// sub-attributes must be hidden whole.
fn vendor_is_sensitive(dict: &Dictionary, vendor: u32) -> bool {
    matches!(vendor, VENDOR_MICROSOFT | VENDOR_ARUBA) || dict.vendor_has_encrypted(vendor)
}

/// "Name = value" for one top-level attribute (type, raw value).
///
/// Vendor-Specific (26) is split into its sub-attributes when the vendor's format is 1,1,
/// each printed as "Vendor-Attr = value" and joined with ", "; otherwise it prints as
/// `Vendor-Specific = 0x...`. A vendor missing from the dictionary is tried as 1,1 (the
/// layout RFC 2865 §5.26 suggests) so its sensitive sub-attributes can still be found.
/// Unknown attributes print as `Attr-<n> = 0x<hex>`; tagged ones as `Name:tag = value`.
pub fn format_attribute(dict: &Dictionary, ty: u8, value: &[u8]) -> String {
    let number = u32::from(ty);
    if ty == VENDOR_SPECIFIC {
        return format_vsa(dict, value);
    }
    if (241..=246).contains(&ty) {
        return format_extended(dict, ty, value);
    }
    let def = dict.attr(0, number);
    let name = def.map_or_else(|| format!("Attr-{number}"), |d| d.name.clone());
    if is_sensitive(dict, 0, number) {
        return format!("{name} = {REDACTED}");
    }
    if ty == EAP_MESSAGE {
        return format!("{name} = <{} octets>", value.len());
    }
    match def {
        Some(def) => named_line(dict, def, value),
        None => format!("{name} = {}", hex(value)),
    }
}

/// Format one value by its attribute's type. `None` (an unknown attribute) prints hex.
///
/// Strings are quoted and escaped (`\"`, `\\`, `\xNN` for control characters, invalid
/// UTF-8 and invisible or direction-changing Unicode); octets print as `0x` hex; integers
/// by VALUE name if there is one; dates in RFC 3339 UTC; tagged values as `value:tag`.
/// Values of the wrong length print as `0x` hex. Sensitive attributes print as
/// `<redacted>` and EAP-Message as `<N octets>`.
///
/// With `None` this cannot know whether the value is secret: prefer [`format_attribute`]
/// for values straight off the wire.
pub fn format_value(dict: &Dictionary, attr: Option<&AttrDef>, value: &[u8]) -> String {
    let Some(def) = attr else { return hex(value) };
    if def_is_sensitive(dict, def) {
        return REDACTED.to_owned();
    }
    if is_eap_message(def) {
        return format!("<{} octets>", value.len());
    }
    let (tag, text) = render(dict, def, value);
    match tag {
        Some(tag) => format!("{text}:{tag}"),
        None => text,
    }
}

fn is_eap_message(def: &AttrDef) -> bool {
    def.vendor == 0 && def.extended.is_none() && def.number == u32::from(EAP_MESSAGE)
}

/// "Name = value" or "Name:tag = value" for a known, non-sensitive attribute.
fn named_line(dict: &Dictionary, def: &AttrDef, value: &[u8]) -> String {
    if def_is_sensitive(dict, def) {
        return format!("{} = {REDACTED}", def.name);
    }
    if is_eap_message(def) {
        return format!("{} = <{} octets>", def.name, value.len());
    }
    match render(dict, def, value) {
        (Some(tag), text) => format!("{}:{tag} = {text}", def.name),
        (None, text) => format!("{} = {text}", def.name),
    }
}

/// Splits off the tag (if the attribute has one and it is present) and formats the rest.
fn render(dict: &Dictionary, def: &AttrDef, value: &[u8]) -> (Option<u8>, String) {
    if !def.has_tag {
        return (None, typed(dict, def, value));
    }
    match (def.ty, value) {
        // A tagged integer's first octet is the tag; the value is the other 24 bits.
        (AttrType::Integer, [tag, a, b, c]) => {
            let n = u32::from_be_bytes([0, *a, *b, *c]);
            let text = dict
                .value_name(def, n)
                .map_or_else(|| n.to_string(), str::to_owned);
            ((*tag != 0).then_some(*tag), text)
        }
        (AttrType::Integer, _) => (None, hex(value)),
        // RFC 2868 §3.3: a first octet of 0x01..=0x1F is a tag, 0x00 an unused tag,
        // anything larger is already data.
        (_, [first, rest @ ..]) if *first <= 0x1F => {
            ((*first != 0).then_some(*first), typed(dict, def, rest))
        }
        _ => (None, typed(dict, def, value)),
    }
}

/// Formats a value by type, without tag handling; malformed lengths fall back to hex.
fn typed(dict: &Dictionary, def: &AttrDef, value: &[u8]) -> String {
    let named = |n: u32| {
        dict.value_name(def, n)
            .map_or_else(|| n.to_string(), str::to_owned)
    };
    let formatted = match def.ty {
        AttrType::String => Some(quote(value)),
        AttrType::IpAddr => <[u8; 4]>::try_from(value)
            .ok()
            .map(|a| Ipv4Addr::from(a).to_string()),
        AttrType::Ipv6Addr => <[u8; 16]>::try_from(value)
            .ok()
            .map(|a| Ipv6Addr::from(a).to_string()),
        AttrType::ComboIp => match value.len() {
            4 | 16 => combo_ip(value),
            _ => None,
        },
        AttrType::Ipv4Prefix => ipv4_prefix(value),
        AttrType::Ipv6Prefix => ipv6_prefix(value),
        AttrType::Integer => <[u8; 4]>::try_from(value)
            .ok()
            .map(|b| named(u32::from_be_bytes(b))),
        AttrType::Short => <[u8; 2]>::try_from(value)
            .ok()
            .map(|b| named(u32::from(u16::from_be_bytes(b)))),
        AttrType::Byte => <[u8; 1]>::try_from(value)
            .ok()
            .map(|b| named(u32::from(b[0]))),
        AttrType::Signed => <[u8; 4]>::try_from(value).ok().map(|b| {
            let n = i32::from_be_bytes(b);
            dict.value_name(def, n.cast_unsigned())
                .map_or_else(|| n.to_string(), str::to_owned)
        }),
        AttrType::Integer64 => <[u8; 8]>::try_from(value)
            .ok()
            .map(|b| u64::from_be_bytes(b).to_string()),
        AttrType::Date => <[u8; 4]>::try_from(value)
            .ok()
            .map(|b| format_date(u32::from_be_bytes(b))),
        AttrType::Ifid => <[u8; 8]>::try_from(value).ok().map(|b| format_ifid(&b)),
        AttrType::Ether => <[u8; 6]>::try_from(value).ok().map(|b| format_ether(&b)),
        AttrType::Octets
        | AttrType::Abinary
        | AttrType::Tlv
        | AttrType::Vsa
        | AttrType::Extended
        | AttrType::LongExtended
        | AttrType::Evs => None,
    };
    formatted.unwrap_or_else(|| hex(value))
}

/// Vendor-Specific: one "Vendor-Attr = value" per sub-attribute, or the whole value as hex.
fn format_vsa(dict: &Dictionary, value: &[u8]) -> String {
    let name = dict
        .attr(0, u32::from(VENDOR_SPECIFIC))
        .map_or("Vendor-Specific", |d| d.name.as_str());
    let Some(vendor) = value.first_chunk::<4>().map(|id| u32::from_be_bytes(*id)) else {
        return format!("{name} = {}", hex(value));
    };
    let one_one = dict
        .vendor(vendor)
        .is_none_or(|v| v.type_len == 1 && v.len_len == 1);
    let subs = if one_one {
        attr::split_vsa(value)
    } else {
        None
    };
    let Some((_, subs)) = subs else {
        let shown = if vendor_is_sensitive(dict, vendor) {
            REDACTED.to_owned()
        } else {
            hex(value)
        };
        return format!("{name} = {shown}");
    };
    let lines: Vec<String> = subs
        .iter()
        .map(|sub| {
            let number = u32::from(sub.vendor_type);
            match dict.attr(vendor, number) {
                _ if is_sensitive(dict, vendor, number) => {
                    let sub_name = dict
                        .attr(vendor, number)
                        .map_or_else(|| format!("Attr-26.{vendor}.{number}"), |d| d.name.clone());
                    format!("{sub_name} = {REDACTED}")
                }
                Some(def) => named_line(dict, def, sub.value),
                None => format!("Attr-26.{vendor}.{number} = {}", hex(sub.value)),
            }
        })
        .collect();
    lines.join(", ")
}

/// RFC 6929 extended attributes: `Name = value` via the extended type in the first octet.
/// Long-extended fragments (More flag set) and malformed values print as hex.
fn format_extended(dict: &Dictionary, ty: u8, value: &[u8]) -> String {
    let long = ty >= 245;
    let parsed = match value {
        [ext, flags, data @ ..] if long && flags & 0x80 == 0 => Some((*ext, data)),
        [ext, data @ ..] if !long => Some((*ext, data)),
        _ => None,
    };
    let Some((ext, data)) = parsed else {
        let name = dict
            .attr(0, u32::from(ty))
            .map_or_else(|| format!("Attr-{ty}"), |d| d.name.clone());
        return format!("{name} = {}", hex(value));
    };
    match dict.attr_extended(ty, u32::from(ext)) {
        Some(def) => named_line(dict, def, data),
        None => format!("Attr-{ty}.{ext} = {}", hex(data)),
    }
}

/// `0x` followed by lower-case hex.
fn hex(value: &[u8]) -> String {
    format!("0x{}", hex::encode(value))
}

/// A double-quoted, escaped string: printable UTF-8 is kept (names such as "Åse Ødegård"
/// stay readable); `"` and `\` are escaped; control characters, invalid UTF-8 and
/// invisible or bidirectional-override characters become `\xNN` per octet, so the output
/// is one line of inert text and [`Dictionary::parse_value`] can restore the exact octets.
fn quote(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for chunk in value.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if is_unsafe_char(c) => {
                    escape_bytes(&mut out, c.encode_utf8(&mut [0; 4]).as_bytes())
                }
                c => out.push(c),
            }
        }
        escape_bytes(&mut out, chunk.invalid());
    }
    out.push('"');
    out
}

/// Characters that could hide or rearrange log text: C0/C1 controls and DEL, zero-width
/// and direction-changing characters ("Trojan Source"), line and paragraph separators.
fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
        )
}

fn escape_bytes(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "\\x{b:02x}");
    }
}

fn combo_ip(value: &[u8]) -> Option<String> {
    match value.len() {
        4 => <[u8; 4]>::try_from(value)
            .ok()
            .map(|a| Ipv4Addr::from(a).to_string()),
        _ => <[u8; 16]>::try_from(value)
            .ok()
            .map(|a| Ipv6Addr::from(a).to_string()),
    }
}

/// RFC 6572: reserved, prefix length (≤ 32), 4 prefix octets.
fn ipv4_prefix(value: &[u8]) -> Option<String> {
    let [_, len, a, b, c, d] = *value else {
        return None;
    };
    (len <= 32).then(|| format!("{}/{len}", Ipv4Addr::new(a, b, c, d)))
}

/// RFC 3162 §2.3: reserved, prefix length (≤ 128), the prefix octets (zero-padded here).
fn ipv6_prefix(value: &[u8]) -> Option<String> {
    let [_, len, prefix @ ..] = value else {
        return None;
    };
    let needed = usize::from(*len).div_ceil(8);
    if *len > 128 || prefix.len() > 16 || prefix.len() < needed {
        return None;
    }
    let mut octets = [0u8; 16];
    octets[..prefix.len()].copy_from_slice(prefix);
    Some(format!("{}/{len}", Ipv6Addr::from(octets)))
}

/// RFC 3339 in UTC, e.g. `2024-05-01T12:00:00Z`.
fn format_date(secs: u32) -> String {
    let secs = i64::from(secs);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn format_ifid(b: &[u8; 8]) -> String {
    format!(
        "{:02x}{:02x}:{:02x}{:02x}:{:02x}{:02x}:{:02x}{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
    )
}

fn format_ether(b: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5]
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::radius::attr::build_vsa;
    use crate::radius::dictionary::shipped;

    fn def(name: &str) -> &'static AttrDef {
        shipped()
            .attr_by_name(name)
            .unwrap_or_else(|| panic!("{name} not in dictionaries"))
    }

    fn value(name: &str, raw: &[u8]) -> String {
        format_value(shipped(), Some(def(name)), raw)
    }

    #[test]
    fn strings_are_quoted_and_escaped() {
        let dict = shipped();
        let line = |raw: &[u8]| format_attribute(dict, attr::USER_NAME, raw);
        assert_eq!(line(b"alice"), r#"User-Name = "alice""#);
        assert_eq!(
            line(b"bob\nUser-Name = \"admin\""),
            r#"User-Name = "bob\x0aUser-Name = \"admin\"""#
        );
        assert_eq!(
            line(b"\x1b[31mred\x1b[0m"),
            r#"User-Name = "\x1b[31mred\x1b[0m""#
        );
        assert_eq!(
            line(b"nul\0byte\r\t\x7f"),
            r#"User-Name = "nul\x00byte\x0d\x09\x7f""#
        );
        assert_eq!(line(b"bad\xff\xfeutf8"), r#"User-Name = "bad\xff\xfeutf8""#);
        assert_eq!(line(b"back\\slash"), r#"User-Name = "back\\slash""#);
        // Norwegian names stay readable; C1 controls and bidi overrides do not pass through.
        assert_eq!(
            line("Åse Ødegård".as_bytes()),
            r#"User-Name = "Åse Ødegård""#
        );
        assert_eq!(
            line("a\u{202E}b\u{85}c".as_bytes()),
            r#"User-Name = "a\xe2\x80\xaeb\xc2\x85c""#
        );
    }

    #[test]
    fn sensitive_attributes_are_redacted() {
        let dict = shipped();
        let secret = b"hunter2-hunter2!";
        for ty in [
            attr::USER_PASSWORD,
            attr::CHAP_PASSWORD,
            attr::TUNNEL_PASSWORD,
            70,
            84,
            102,
            120,
        ] {
            let line = format_attribute(dict, ty, secret);
            assert!(line.ends_with(" = <redacted>"), "{line}");
            assert!(
                !line.contains("hunter") && !line.contains("68756e"),
                "{line}"
            );
        }
        assert_eq!(
            format_attribute(dict, attr::USER_PASSWORD, secret),
            "User-Password = <redacted>"
        );
        assert_eq!(
            format_attribute(dict, attr::TUNNEL_PASSWORD, secret),
            "Tunnel-Password = <redacted>"
        );
        let microsoft = [1u8, 2, 3, 4, 5, 6, 11, 12, 16, 17, 19, 20, 25, 26, 27];
        for number in microsoft {
            let vsa = build_vsa(VENDOR_MICROSOFT, number, secret).unwrap();
            let line = format_attribute(dict, attr::VENDOR_SPECIFIC, &vsa);
            assert!(
                line.starts_with("MS-") && line.ends_with(" = <redacted>"),
                "{line}"
            );
            assert!(is_sensitive(dict, VENDOR_MICROSOFT, u32::from(number)));
        }
        let aruba_hash = build_vsa(VENDOR_ARUBA, ARUBA_AS_CREDENTIAL_HASH, secret).unwrap();
        assert_eq!(
            format_attribute(dict, attr::VENDOR_SPECIFIC, &aruba_hash),
            "Aruba-AS-Credential-Hash = <redacted>"
        );
        for name in [
            "User-Password",
            "Tunnel-Password",
            "MS-MPPE-Send-Key",
            "MS-CHAP2-Response",
            "MS-CHAP-NT-Enc-PW",
        ] {
            assert_eq!(value(name, secret), "<redacted>", "{name}");
        }
        assert!(!is_sensitive(dict, 0, u32::from(attr::USER_NAME)));
        assert!(!is_sensitive(dict, VENDOR_MICROSOFT, 28));
    }

    #[test]
    fn redaction_does_not_depend_on_the_dictionary() {
        let empty = Dictionary::default();
        assert_eq!(
            format_attribute(&empty, attr::USER_PASSWORD, b"pw"),
            "Attr-2 = <redacted>"
        );
        assert_eq!(
            format_attribute(&empty, attr::CHAP_PASSWORD, b"\x01pw"),
            "Attr-3 = <redacted>"
        );
        assert_eq!(
            format_attribute(&empty, attr::TUNNEL_PASSWORD, b"\x01\x80\x01pw"),
            "Attr-69 = <redacted>"
        );
        let key = build_vsa(VENDOR_MICROSOFT, attr::MS_MPPE_RECV_KEY, &[0x80; 34]).unwrap();
        assert_eq!(
            format_attribute(&empty, attr::VENDOR_SPECIFIC, &key),
            "Attr-26.311.17 = <redacted>"
        );
        // A Microsoft VSA that cannot be split is hidden whole.
        let mut broken = key.clone();
        broken[5] = 200;
        assert_eq!(
            format_attribute(&empty, attr::VENDOR_SPECIFIC, &broken),
            "Vendor-Specific = <redacted>"
        );
        // A dictionary that renames User-Password and drops encrypt= does not un-redact it.
        let renamed = Dictionary::parse_str("ATTRIBUTE Not-Secret 2 string\n", "local").unwrap();
        assert_eq!(
            format_attribute(&renamed, attr::USER_PASSWORD, b"pw"),
            "Not-Secret = <redacted>"
        );
        assert_eq!(
            format_value(&renamed, renamed.attr(0, 2), b"pw"),
            "<redacted>"
        );
    }

    #[test]
    fn encrypt_flag_in_any_dictionary_entry_redacts() {
        let text = "VENDOR Acme 4242\nBEGIN-VENDOR Acme\nATTRIBUTE Acme-Secret 9 octets encrypt=2\n\
                    ATTRIBUTE Acme-Plain 10 string\nEND-VENDOR Acme\nATTRIBUTE Local-Secret 250 string encrypt=1\n\
                    ATTRIBUTE Ext-Secret 241.7 string encrypt=1\n";
        let dict = Dictionary::parse_str(text, "local").unwrap();
        assert!(is_sensitive(&dict, 4242, 9));
        assert!(!is_sensitive(&dict, 4242, 10));
        let mut vsa = build_vsa(4242, 9, b"key").unwrap();
        vsa.extend_from_slice(&[10, 5, b'a', b'b', b'c']);
        assert_eq!(
            format_attribute(&dict, attr::VENDOR_SPECIFIC, &vsa),
            r#"Acme-Secret = <redacted>, Acme-Plain = "abc""#
        );
        assert_eq!(
            format_attribute(&dict, 250, b"pw"),
            "Local-Secret = <redacted>"
        );
        assert_eq!(
            format_attribute(&dict, 241, b"\x07pw"),
            "Ext-Secret = <redacted>"
        );
    }

    #[test]
    fn eap_message_shows_only_its_length() {
        let dict = shipped();
        let eap = [2u8, 7, 0, 10, 6, b'p', b'a', b's', b's', b'!'];
        assert_eq!(
            format_attribute(dict, attr::EAP_MESSAGE, &eap),
            "EAP-Message = <10 octets>"
        );
        assert_eq!(value("EAP-Message", &eap), "<10 octets>");
        assert_eq!(
            format_attribute(&Dictionary::default(), attr::EAP_MESSAGE, &eap),
            "Attr-79 = <10 octets>"
        );
    }

    #[test]
    fn vendor_specific_is_split_into_sub_attributes() {
        let dict = shipped();
        let group = build_vsa(12356, 1, b"vpn-users").unwrap();
        assert_eq!(
            format_attribute(dict, attr::VENDOR_SPECIFIC, &group),
            r#"Fortinet-Group-Name = "vpn-users""#
        );
        let client_ip = build_vsa(12356, 2, &[203, 0, 113, 5]).unwrap();
        assert_eq!(
            format_attribute(dict, attr::VENDOR_SPECIFIC, &client_ip),
            "Fortinet-Client-IP-Address = 203.0.113.5"
        );
        let mut two = build_vsa(
            attr::VENDOR_CISCO,
            attr::CISCO_AVPAIR,
            b"ip:source-ip=203.0.113.5",
        )
        .unwrap();
        two.extend_from_slice(&[2, 6, b'T', b't', b'y', b'1']);
        assert_eq!(
            format_attribute(dict, attr::VENDOR_SPECIFIC, &two),
            r#"Cisco-AVPair = "ip:source-ip=203.0.113.5", Cisco-NAS-Port = "Tty1""#
        );
        let unknown_sub = build_vsa(12356, 99, &[1, 2]).unwrap();
        assert_eq!(
            format_attribute(dict, attr::VENDOR_SPECIFIC, &unknown_sub),
            "Attr-26.12356.99 = 0x0102"
        );
        let unknown_vendor = build_vsa(54321, 1, b"x").unwrap();
        assert_eq!(
            format_attribute(dict, attr::VENDOR_SPECIFIC, &unknown_vendor),
            "Attr-26.54321.1 = 0x78"
        );
        let malformed = [0, 0, 0x30, 0x39, 1, 9, b'x'];
        assert_eq!(
            format_attribute(dict, attr::VENDOR_SPECIFIC, &malformed),
            "Vendor-Specific = 0x00003039010978"
        );
        assert_eq!(
            format_attribute(dict, attr::VENDOR_SPECIFIC, &[0, 0, 1]),
            "Vendor-Specific = 0x000001"
        );
    }

    #[test]
    fn vendors_with_other_formats_print_as_hex() {
        let dict = Dictionary::parse_str("VENDOR Wide 777 format=2,2\n", "local").unwrap();
        let vsa = [0, 0, 3, 9, 0, 1, 0, 5, b'x'];
        assert_eq!(
            format_attribute(&dict, attr::VENDOR_SPECIFIC, &vsa),
            "Vendor-Specific = 0x000003090001000578"
        );
    }

    #[test]
    fn values_are_formatted_by_type() {
        let dict = shipped();
        assert_eq!(
            format_attribute(dict, attr::NAS_IP_ADDRESS, &[192, 168, 1, 16]),
            "NAS-IP-Address = 192.168.1.16"
        );
        assert_eq!(
            format_attribute(dict, attr::SERVICE_TYPE, &[0, 0, 0, 2]),
            "Service-Type = Framed-User"
        );
        assert_eq!(
            format_attribute(dict, attr::SERVICE_TYPE, &[0, 0, 0, 99]),
            "Service-Type = 99"
        );
        assert_eq!(
            format_attribute(dict, attr::SESSION_TIMEOUT, &[0, 0, 0x0e, 0x10]),
            "Session-Timeout = 3600"
        );
        let v6 = "2001:db8::7".parse::<Ipv6Addr>().unwrap().octets();
        assert_eq!(value("NAS-IPv6-Address", &v6), "2001:db8::7");
        assert_eq!(
            value("Framed-IPv6-Prefix", &[0, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 0]),
            "2001:db8::/48"
        );
        assert_eq!(
            value("Framed-IPv6-Prefix", &[0, 64, 0x20, 0x01]),
            "0x00402001",
            "too short for /64"
        );
        assert_eq!(
            value("Event-Timestamp", &1_709_210_096u32.to_be_bytes()),
            "2024-02-29T12:34:56Z"
        );
        assert_eq!(
            value("Event-Timestamp", &u32::MAX.to_be_bytes()),
            "2106-02-07T06:28:15Z"
        );
        assert_eq!(
            value(
                "Framed-Interface-Id",
                &[0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]
            ),
            "0011:2233:4455:6677"
        );
        assert_eq!(value("Tunnel-Type", &[1, 0, 0, 3]), "L2TP:1");
        assert_eq!(
            format_attribute(dict, attr::TUNNEL_TYPE, &[1, 0, 0, 3]),
            "Tunnel-Type:1 = L2TP"
        );
        assert_eq!(
            format_attribute(dict, attr::TUNNEL_TYPE, &[0, 0, 0, 13]),
            "Tunnel-Type = VLAN"
        );
        assert_eq!(
            format_attribute(dict, 81, b"\x0242"),
            r#"Tunnel-Private-Group-Id:2 = "42""#
        );
        assert_eq!(
            format_attribute(dict, 81, b"42"),
            r#"Tunnel-Private-Group-Id = "42""#
        );
        assert_eq!(
            format_attribute(dict, attr::STATE, &[0xde, 0xad]),
            "State = 0xdead"
        );
        assert_eq!(format_attribute(dict, 17, &[1, 2]), "Attr-17 = 0x0102");
        assert_eq!(
            format_attribute(dict, 241, &[3, 0, 0, 0x10, 0]),
            "Response-Length = 4096"
        );
        assert_eq!(format_attribute(dict, 241, &[99, 1]), "Attr-241.99 = 0x01");
        assert_eq!(
            format_attribute(dict, 245, &[26, 0x80, 1]),
            "Extended-Attribute-5 = 0x1a8001"
        );
        assert_eq!(format_value(dict, None, &[0xab]), "0xab");
    }

    #[test]
    fn wrong_lengths_fall_back_to_hex() {
        let dict = shipped();
        assert_eq!(
            format_attribute(dict, attr::NAS_IP_ADDRESS, &[10, 0, 0]),
            "NAS-IP-Address = 0x0a0000"
        );
        assert_eq!(
            format_attribute(dict, attr::SERVICE_TYPE, &[0, 2]),
            "Service-Type = 0x0002"
        );
        assert_eq!(
            format_attribute(dict, attr::TUNNEL_TYPE, &[1, 3]),
            "Tunnel-Type = 0x0103"
        );
        assert_eq!(value("Event-Timestamp", &[1, 2, 3, 4, 5]), "0x0102030405");
        assert_eq!(value("Framed-IPv6-Prefix", &[0, 200, 1]), "0x00c801");
        assert_eq!(
            format_attribute(dict, attr::USER_NAME, &[]),
            r#"User-Name = """#
        );
    }

    #[test]
    fn parse_value_inverts_format_value() {
        let dict = shipped();
        let cases: &[(&str, &[u8])] = &[
            ("Framed-IP-Address", &[203, 0, 113, 7]),
            ("Service-Type", &[0, 0, 0, 2]),
            ("Service-Type", &[0, 0, 0, 250]),
            ("Reply-Message", b"Enter the 6-digit code"),
            (
                "Reply-Message",
                b"quote\" back\\ nl\n esc\x1b nul\0 bad\xff \xc2\x85",
            ),
            ("Reply-Message", "Skriv inn koden på 6 sifre".as_bytes()),
            ("Reply-Message", b""),
            ("Tunnel-Type", &[1, 0, 0, 3]),
            ("Tunnel-Private-Group-Id", b"\x05vlan"),
            ("Framed-IPv6-Prefix", &[0, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 0]),
            ("Event-Timestamp", &[0x65, 0xe0, 0x79, 0xf0]),
            ("Framed-Interface-Id", &[1, 2, 3, 4, 5, 6, 7, 8]),
            ("Class", &[0, 1, 2, 0xff]),
        ];
        for (name, raw) in cases {
            let text = value(name, raw);
            assert_eq!(
                dict.parse_value(def(name), &text).as_deref(),
                Ok(*raw),
                "{name}: {text}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_string_round_trips_and_stays_on_one_printable_line(raw in proptest::collection::vec(any::<u8>(), 0..=253)) {
            let dict = shipped();
            let text = value("Reply-Message", &raw);
            prop_assert!(!text.chars().any(|c| c.is_control() || is_unsafe_char(c)), "{}", text);
            prop_assert_eq!(dict.parse_value(def("Reply-Message"), &text), Ok(raw));
        }

        #[test]
        fn any_attribute_formats_without_panicking(ty in any::<u8>(), raw in proptest::collection::vec(any::<u8>(), 0..=253)) {
            let line = format_attribute(shipped(), ty, &raw);
            prop_assert!(!line.chars().any(char::is_control), "{}", line);
        }
    }
}
