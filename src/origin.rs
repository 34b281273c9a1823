//! Where a login comes from: the user's real address, read from the request.
//!
//! Each `[[clients]]` entry names an ordered list of [`OriginSource`]s. [`find_origin`]
//! tries them in order and returns an [`Origin`]: an address and the source it came
//! from, or [`Origin::Unknown`] with the reason. Unknown is treated as off-site by
//! `policy` (fail safe: a second factor is required).
//!
//! Rules, and why:
//! - A source whose attribute is **absent or empty** passes to the next source: it says
//!   nothing (RD Gateway sends an empty Calling-Station-Id).
//! - A source whose attribute is **present but unusable** (a MAC, a hostname, `-`,
//!   garbage) or **repeated** stops the search with `Unknown`. Falling through to a
//!   later, usually weaker source (e.g. `packet-source`) would let a value that
//!   failed to parse buy a cheaper route.
//! - Framed-IP-Address is never an origin: it is the tunnel's inner address.
//! - Addresses are canonicalised (`::ffff:10.0.0.1` is `10.0.0.1`), so IPv4 sites match
//!   IPv4-mapped IPv6. The unspecified address (`0.0.0.0`, `::`) is what a NAS sends
//!   when it does not know, so it is unusable too.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::radius::{Packet, attr};
use crate::sites::ConfigIssue;

/// Where to read the user's real address from. Written in configuration as a string
/// (see [`FromStr`](#impl-FromStr-for-OriginSource)).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum OriginSource {
    /// Calling-Station-Id (31): `"Calling-Station-Id"`. The default.
    CallingStationId,
    /// Tunnel-Client-Endpoint (66), tag skipped (RFC 2868 §3.3): `"Tunnel-Client-Endpoint"`.
    TunnelClientEndpoint,
    /// A vendor attribute, e.g. `"Cisco-AVPair:ip:source-ip"`, `"PaloAlto-Client-Source-IP"`,
    /// `"Fortinet-Client-IP-Address"` or `"vendor:25461:7"`.
    Vendor(VendorSource),
    /// The UDP source address of the request: `"packet-source"`. Only for a NAS that serves
    /// inside users alone (e.g. a Wi-Fi controller, whose Calling-Station-Id is a MAC).
    PacketSource,
}

/// A vendor sub-attribute (`format=1,1`) that carries the user's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VendorSource {
    /// The vendor's SMI enterprise number.
    pub vendor: u32,
    /// The vendor's attribute number.
    pub vendor_type: u8,
    /// How the value holds the address.
    pub encoding: VendorEncoding,
}

/// How a vendor attribute holds an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VendorEncoding {
    /// The whole value is the address as text.
    Text,
    /// Only values of the form `key=address` count (Cisco-AVPair); the key matches
    /// case-insensitively and other keys are ignored. Holds the key without `=`.
    KeyValue(String),
    /// RADIUS `ipaddr` (4 octets) or `ipv6addr` (16 octets), in network order.
    Binary,
}

/// Vendor attributes with a name of their own: (name, vendor, type, binary?).
///
/// Facts: Fortinet-Client-IP-Address is 12356/2 `ipaddr` and Fortinet-Client-IPv6-Address
/// is 12356/4 (16 octets); PaloAlto-Client-Source-IP is 25461/7, a string (protocol.md §2;
/// the number is unverified against a device).
const NAMED_VENDOR: [(&str, u32, u8, bool); 3] = [
    ("PaloAlto-Client-Source-IP", 25461, 7, false),
    ("Fortinet-Client-IP-Address", 12356, 2, true),
    ("Fortinet-Client-IPv6-Address", 12356, 4, true),
];

/// Cisco's vendor number and the Cisco-AVPair attribute.
const CISCO_AVPAIR: (u32, u8) = (attr::VENDOR_CISCO, attr::CISCO_AVPAIR);

/// A source name in configuration that is not one we know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceParseError(String);

impl OriginSource {
    /// The list used when a client names none.
    pub fn default_list() -> Vec<Self> {
        vec![Self::CallingStationId]
    }
}

impl FromStr for OriginSource {
    type Err = SourceParseError;

    /// Names match case-insensitively. Accepted forms: `Calling-Station-Id`,
    /// `Tunnel-Client-Endpoint`, `packet-source`, `Cisco-AVPair:<key>` (e.g.
    /// `Cisco-AVPair:ip:source-ip`), the named vendor attributes, and
    /// `vendor:<id>:<type>` (text), `vendor:<id>:<type>:binary`, `vendor:<id>:<type>:<key>=`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let simple = [
            ("Calling-Station-Id", Self::CallingStationId),
            ("Tunnel-Client-Endpoint", Self::TunnelClientEndpoint),
            ("packet-source", Self::PacketSource),
        ];
        if let Some((_, source)) = simple.into_iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
            return Ok(source);
        }
        if let Some((_, vendor, vendor_type, binary)) = NAMED_VENDOR
            .iter()
            .find(|(n, ..)| n.eq_ignore_ascii_case(s))
        {
            let encoding = if *binary {
                VendorEncoding::Binary
            } else {
                VendorEncoding::Text
            };
            return Ok(Self::Vendor(VendorSource {
                vendor: *vendor,
                vendor_type: *vendor_type,
                encoding,
            }));
        }
        if let Some(key) = strip_prefix_ci(s, "Cisco-AVPair:") {
            let (vendor, vendor_type) = CISCO_AVPAIR;
            let encoding = key_encoding(key)?;
            return Ok(Self::Vendor(VendorSource {
                vendor,
                vendor_type,
                encoding,
            }));
        }
        if let Some(rest) = strip_prefix_ci(s, "vendor:") {
            return parse_vendor(rest).map(Self::Vendor);
        }
        Err(SourceParseError(format!(
            "unknown origin source {s:?}; expected Calling-Station-Id, Tunnel-Client-Endpoint, \
             packet-source, Cisco-AVPair:<key>, PaloAlto-Client-Source-IP, \
             Fortinet-Client-IP-Address, Fortinet-Client-IPv6-Address or vendor:<id>:<type>[:binary|:<key>=]"
        )))
    }
}

impl TryFrom<String> for OriginSource {
    type Error = SourceParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// The part of `s` after `prefix`, if `s` starts with it ignoring ASCII case.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// A `KeyValue` encoding for `key`, which must be non-empty and free of `=`.
fn key_encoding(key: &str) -> Result<VendorEncoding, SourceParseError> {
    if key.is_empty() || key.contains('=') || key.contains(char::is_whitespace) {
        return Err(SourceParseError(format!(
            "bad attribute key {key:?}: expected e.g. Cisco-AVPair:ip:source-ip"
        )));
    }
    Ok(VendorEncoding::KeyValue(key.to_owned()))
}

/// Parses `<id>:<type>`, `<id>:<type>:binary` or `<id>:<type>:<key>=`.
fn parse_vendor(rest: &str) -> Result<VendorSource, SourceParseError> {
    let bad = || {
        SourceParseError(format!(
            "bad vendor source \"vendor:{rest}\": expected vendor:<id>:<type>[:binary|:<key>=]"
        ))
    };
    let mut parts = rest.splitn(3, ':');
    let vendor = parts
        .next()
        .and_then(|p| p.parse::<u32>().ok())
        .ok_or_else(bad)?;
    let vendor_type = parts
        .next()
        .and_then(|p| p.parse::<u8>().ok())
        .ok_or_else(bad)?;
    if vendor == 0 || vendor_type == 0 {
        return Err(bad());
    }
    let encoding = match parts.next() {
        None => VendorEncoding::Text,
        Some(p) if p.eq_ignore_ascii_case("binary") => VendorEncoding::Binary,
        Some(p) => key_encoding(p.strip_suffix('=').ok_or_else(bad)?)?,
    };
    Ok(VendorSource {
        vendor,
        vendor_type,
        encoding,
    })
}

impl fmt::Display for OriginSource {
    /// The canonical configuration form; it parses back to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CallingStationId => f.write_str("Calling-Station-Id"),
            Self::TunnelClientEndpoint => f.write_str("Tunnel-Client-Endpoint"),
            Self::PacketSource => f.write_str("packet-source"),
            Self::Vendor(v) => v.fmt(f),
        }
    }
}

impl fmt::Display for VendorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (vendor, vendor_type) = (self.vendor, self.vendor_type);
        let binary = match &self.encoding {
            VendorEncoding::KeyValue(key) if (vendor, vendor_type) == CISCO_AVPAIR => {
                return write!(f, "Cisco-AVPair:{key}");
            }
            VendorEncoding::KeyValue(key) => {
                return write!(f, "vendor:{vendor}:{vendor_type}:{key}=");
            }
            VendorEncoding::Text => false,
            VendorEncoding::Binary => true,
        };
        let named = NAMED_VENDOR
            .iter()
            .find(|(_, v, t, b)| (*v, *t, *b) == (vendor, vendor_type, binary));
        match named {
            Some((name, ..)) => f.write_str(name),
            None if binary => write!(f, "vendor:{vendor}:{vendor_type}:binary"),
            None => write!(f, "vendor:{vendor}:{vendor_type}"),
        }
    }
}

/// Checks a client's `origin` list at load time. `key` names it, e.g. `clients[2].origin`.
///
/// Refuses an empty list, unknown names, duplicates, and sources after `packet-source`
/// (which always yields an address, so they would never be consulted).
pub fn parse_sources(key: &str, raw: &[String]) -> Result<Vec<OriginSource>, Vec<ConfigIssue>> {
    if raw.is_empty() {
        return Err(vec![ConfigIssue::new(
            key,
            "must name at least one origin source",
        )]);
    }
    let mut sources = Vec::with_capacity(raw.len());
    let mut issues = Vec::new();
    for (i, text) in raw.iter().enumerate() {
        let item_key = format!("{key}[{i}]");
        match text.parse::<OriginSource>() {
            Ok(s) if sources.contains(&s) => {
                issues.push(ConfigIssue::new(item_key, format!("{s} is listed twice")));
            }
            Ok(s) => sources.push(s),
            Err(e) => issues.push(ConfigIssue::new(item_key, e.to_string())),
        }
    }
    let packet_source = sources
        .iter()
        .position(|s| *s == OriginSource::PacketSource);
    if packet_source.is_some_and(|pos| pos + 1 < sources.len()) {
        let message = "packet-source always yields an address, so it must come last";
        issues.push(ConfigIssue::new(key, message));
    }
    if issues.is_empty() {
        Ok(sources)
    } else {
        Err(issues)
    }
}

/// Adds `Name=value` to `packet` as the gateway would send it, for `portvakt explain
/// --attr`. `Name` is any origin source but `packet-source`; the value is split at the
/// last `=`, so `Cisco-AVPair:ip:source-ip=203.0.113.7` works. Values are not checked:
/// explaining a MAC or garbage is the point.
pub fn push_attribute(packet: &mut Packet, arg: &str) -> Result<(), SourceParseError> {
    let bad = |why: &str| SourceParseError(format!("--attr {arg:?}: {why}"));
    let (name, value) = arg
        .rsplit_once('=')
        .ok_or_else(|| bad("expected Name=value"))?;
    let source: OriginSource = name.parse()?;
    let (typ, bytes) = match &source {
        OriginSource::CallingStationId => (attr::CALLING_STATION_ID, value.as_bytes().to_vec()),
        OriginSource::TunnelClientEndpoint => {
            (attr::TUNNEL_CLIENT_ENDPOINT, value.as_bytes().to_vec())
        }
        OriginSource::PacketSource => {
            return Err(bad(
                "packet-source is the client's address, not an attribute",
            ));
        }
        OriginSource::Vendor(v) => {
            let inner = match &v.encoding {
                VendorEncoding::Text => value.as_bytes().to_vec(),
                VendorEncoding::KeyValue(key) => format!("{key}={value}").into_bytes(),
                VendorEncoding::Binary => match parse_address(value.as_bytes()) {
                    Some(IpAddr::V4(ip)) => ip.octets().to_vec(),
                    Some(IpAddr::V6(ip)) => ip.octets().to_vec(),
                    None => return Err(bad("a binary address attribute needs an IP address")),
                },
            };
            let vsa = attr::build_vsa(v.vendor, v.vendor_type, &inner)
                .ok_or_else(|| bad("value too long"))?;
            (attr::VENDOR_SPECIFIC, vsa)
        }
    };
    if bytes.len() > crate::radius::packet::MAX_VALUE_LEN {
        return Err(bad("value too long"));
    }
    packet.push(typ, bytes);
    Ok(())
}

/// Where a login comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The user's address, canonicalised, and the source it was read from.
    Address {
        /// The address (IPv4-mapped IPv6 is already IPv4).
        ip: IpAddr,
        /// The source that yielded it.
        source: OriginSource,
    },
    /// No usable address: treated as off-site.
    Unknown {
        /// Why, for the log and `portvakt explain`.
        reason: UnknownReason,
    },
}

/// Why the origin of a login is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnknownReason {
    /// None of the configured attributes is present (or the list is empty).
    Missing,
    /// The configured attributes are present but empty (RD Gateway's Calling-Station-Id).
    Empty {
        /// The first source found empty.
        source: OriginSource,
    },
    /// The value is not an IP address: a MAC, a hostname, `-`, garbage.
    NotAnAddress {
        /// The source whose value failed.
        source: OriginSource,
        /// The value, escaped for logging and cut to 64 octets: it is NAS-supplied,
        /// possibly user-influenced, so never printed raw.
        value: String,
    },
    /// The attribute appears more than once: which copy is true cannot be known.
    Repeated {
        /// The repeated source.
        source: OriginSource,
        /// How many copies.
        count: usize,
    },
}

impl Origin {
    /// The address, if known.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::Address { ip, .. } => Some(*ip),
            Self::Unknown { .. } => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address { ip, source } => write!(f, "{ip} from {source}"),
            Self::Unknown { reason } => write!(f, "unknown ({reason}), treated as off-site"),
        }
    }
}

impl fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("no configured origin attribute is present"),
            Self::Empty { source } => write!(f, "{source} is empty"),
            Self::NotAnAddress { source, value } => {
                write!(f, "{source} \"{value}\" is not an IP address")
            }
            Self::Repeated { source, count } => write!(f, "{source} appears {count} times"),
        }
    }
}

/// What one source says about a request.
enum Reading {
    /// Nothing: absent or empty. Try the next source.
    Nothing { empty: bool },
    /// An address.
    Found(IpAddr),
    /// Present but unusable: stop.
    Unusable(UnknownReason),
}

/// Reads the user's address from `packet`, trying `sources` in order (see the module
/// docs for the rules). `packet_source` is the request's UDP source address.
pub fn find_origin(sources: &[OriginSource], packet: &Packet, packet_source: IpAddr) -> Origin {
    let mut first_empty = None;
    for source in sources {
        match read(source, packet, packet_source) {
            Reading::Found(ip) => {
                return Origin::Address {
                    ip,
                    source: source.clone(),
                };
            }
            Reading::Unusable(reason) => return Origin::Unknown { reason },
            Reading::Nothing { empty: true } if first_empty.is_none() => first_empty = Some(source),
            Reading::Nothing { .. } => {}
        }
    }
    let reason = match first_empty {
        Some(source) => UnknownReason::Empty {
            source: source.clone(),
        },
        None => UnknownReason::Missing,
    };
    Origin::Unknown { reason }
}

/// What `source` says about `packet`.
fn read(source: &OriginSource, packet: &Packet, packet_source: IpAddr) -> Reading {
    let values: Vec<&[u8]> = match source {
        OriginSource::PacketSource => return Reading::Found(packet_source.to_canonical()),
        OriginSource::CallingStationId => packet.attrs(attr::CALLING_STATION_ID).collect(),
        OriginSource::TunnelClientEndpoint => packet
            .attrs(attr::TUNNEL_CLIENT_ENDPOINT)
            .map(strip_tunnel_tag)
            .collect(),
        OriginSource::Vendor(v) => vendor_values(v, packet),
    };
    let value = match values.as_slice() {
        [] => return Reading::Nothing { empty: false },
        [one] => *one,
        many => {
            let reason = UnknownReason::Repeated {
                source: source.clone(),
                count: many.len(),
            };
            return Reading::Unusable(reason);
        }
    };
    if value.trim_ascii().is_empty() {
        return Reading::Nothing { empty: true };
    }
    let binary = matches!(source, OriginSource::Vendor(v) if v.encoding == VendorEncoding::Binary);
    let parsed = if binary {
        parse_binary(value)
    } else {
        parse_address(value)
    };
    match parsed {
        Some(ip) => Reading::Found(ip),
        None => Reading::Unusable(UnknownReason::NotAnAddress {
            source: source.clone(),
            value: printable(value),
        }),
    }
}

/// The values of a vendor source; for `KeyValue`, only those with the key, key stripped.
fn vendor_values<'p>(v: &VendorSource, packet: &'p Packet) -> Vec<&'p [u8]> {
    let values = packet.vendor_attrs(v.vendor, v.vendor_type);
    match &v.encoding {
        VendorEncoding::KeyValue(key) => values.filter_map(|val| strip_key(val, key)).collect(),
        VendorEncoding::Text | VendorEncoding::Binary => values.collect(),
    }
}

/// `value` after `key=`, if it starts so (key compared ignoring ASCII case).
fn strip_key<'v>(value: &'v [u8], key: &str) -> Option<&'v [u8]> {
    let (head, rest) = value.split_at_checked(key.len())?;
    let rest = rest.strip_prefix(b"=")?;
    head.eq_ignore_ascii_case(key.as_bytes()).then_some(rest)
}

/// Skips the tag of a tagged string attribute (RFC 2868 §3.3): a first octet 0x01–0x1F
/// is a tag; anything above 0x1F is already the first character of the value.
fn strip_tunnel_tag(value: &[u8]) -> &[u8] {
    match value.split_first() {
        Some((tag, rest)) if (0x01..=0x1F).contains(tag) => rest,
        _ => value,
    }
}

/// Parses an address as gateways write it: plain IPv4 or IPv6, `ip[port]` (strongSwan),
/// `ip:port`, `[v6]:port` or `[v6]`, with surrounding whitespace (and trailing NULs, which
/// some NASes leave on C strings). Returns it canonicalised (`::ffff:10.0.0.1` is
/// `10.0.0.1`). Refuses MACs, hostnames, `-`, the empty string and the unspecified address.
pub fn parse_address(raw: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(raw).ok()?;
    let text = text.trim_end_matches(|c: char| c.is_ascii_whitespace() || c == '\0');
    let text = text.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let ip = parse_text(text)?.to_canonical();
    (!ip.is_unspecified()).then_some(ip)
}

/// The address forms, without trimming or canonicalising.
fn parse_text(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        // `[v6]` or `[v6]:port`.
        let (inner, after) = rest.split_once(']')?;
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return port_ok.then(|| inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6))?;
    }
    if let Some(body) = s.strip_suffix(']') {
        // `ip[port]`, IPv4 or IPv6.
        let (ip, port) = body.split_once('[')?;
        return is_port(port).then(|| ip.parse::<IpAddr>().ok())?;
    }
    // `ip:port`, IPv4 only. A bare IPv6 address has at least two colons, so what follows
    // its first colon is never all digits: it cannot be misread as a port.
    let (ip, port) = s.split_once(':')?;
    is_port(port).then(|| ip.parse::<Ipv4Addr>().ok().map(IpAddr::V4))?
}

/// A decimal port: 1–5 ASCII digits (no sign, which `u16::from_str` would allow), ≤ 65535.
fn is_port(s: &str) -> bool {
    (1..=5).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u16>().is_ok()
}

/// A RADIUS `ipaddr` (4 octets) or `ipv6addr` (16 octets), canonicalised; not unspecified.
fn parse_binary(value: &[u8]) -> Option<IpAddr> {
    let ip = if let Ok(v4) = <[u8; 4]>::try_from(value) {
        IpAddr::from(v4)
    } else {
        IpAddr::from(<[u8; 16]>::try_from(value).ok()?)
    };
    let ip = ip.to_canonical();
    (!ip.is_unspecified()).then_some(ip)
}

/// At most this many octets of an unusable value are kept for the log.
const PRINTABLE_MAX: usize = 64;

/// `value` escaped to printable ASCII (`\n`, `\x1b`, `\"`…) and cut to [`PRINTABLE_MAX`]
/// octets, so a NAS-supplied value can never break a log line (security.md T-13).
pub(crate) fn printable(value: &[u8]) -> String {
    let cut = &value[..value.len().min(PRINTABLE_MAX)];
    let mut out = cut.escape_ascii().to_string();
    if value.len() > PRINTABLE_MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::Code;

    fn v4(s: &str) -> Option<IpAddr> {
        Some(IpAddr::V4(s.parse().unwrap()))
    }

    fn v6(s: &str) -> Option<IpAddr> {
        Some(IpAddr::V6(s.parse().unwrap()))
    }

    #[test]
    fn parses_every_form_gateways_send() {
        let cases: &[(&[u8], Option<IpAddr>)] = &[
            (b"203.0.113.5", v4("203.0.113.5")),
            (b"  203.0.113.5\t\r\n", v4("203.0.113.5")),
            (b"203.0.113.5\0", v4("203.0.113.5")),
            (b"198.51.100.7:51234", v4("198.51.100.7")),
            (b"192.0.2.10[4500]", v4("192.0.2.10")),
            (b"2001:db8::7", v6("2001:db8::7")),
            (b"2001:DB8::7", v6("2001:db8::7")),
            // Two groups that look like ip:port must stay a bare IPv6 address.
            (b"2001:db8::1", v6("2001:db8::1")),
            (b"2001:db8::1:4500", v6("2001:db8::1:4500")),
            (b"2001:db8::1[4500]", v6("2001:db8::1")),
            (b"[2001:db8::1]:4500", v6("2001:db8::1")),
            (b"[2001:db8::1]", v6("2001:db8::1")),
            // IPv4-mapped IPv6 becomes IPv4, in every spelling.
            (b"::ffff:10.0.0.1", v4("10.0.0.1")),
            (b"::FFFF:a00:1", v4("10.0.0.1")),
            (b"[::ffff:10.0.0.1]:443", v4("10.0.0.1")),
            (b"::ffff:10.0.0.1[4500]", v4("10.0.0.1")),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_address(raw), *want, "{}", raw.escape_ascii());
        }
    }

    #[test]
    fn refuses_everything_else() {
        let cases: &[&[u8]] = &[
            // MACs as FortiGate Wi-Fi, Cisco and others write them.
            b"90-E7-C4-32-D3-D6",
            b"90:e7:c4:32:d3:d6",
            b"90e7.c432.d3d6",
            b"90E7C432D3D6",
            // Hostnames, placeholders, nothing.
            b"vpn.example.no",
            b"laptop-42:443",
            b"-",
            b"",
            b"   ",
            b"\0",
            b"\x00203.0.113.5",
            // Unspecified: "I do not know".
            b"0.0.0.0",
            b"::",
            b"::ffff:0.0.0.0",
            // Ambiguous or malformed.
            b"010.0.0.1",
            b"10.0.0",
            b"10.0.0.1.",
            b"10.0.0.1:",
            b"10.0.0.1:65536",
            b"10.0.0.1:+1",
            b"10.0.0.1:80:80",
            b"10.0.0.1 80",
            b"10.0.0.1/24",
            b"10.0.0.1[]",
            b"10.0.0.1[80",
            b"10.0.0.1[80]x",
            b"[10.0.0.1]:80",
            b"[2001:db8::1]x",
            b"[2001:db8::1]:",
            b"[2001:db8::1",
            b"2001:db8::1:",
            b"fe80::1%eth0",
            b"203.0.113.5\n198.51.100.1",
            b"203.0\0.113.5",
            b"\xff203.0.113.5",
        ];
        for raw in cases {
            assert_eq!(parse_address(raw), None, "{}", raw.escape_ascii());
        }
    }

    fn request(attrs: &[(u8, &[u8])]) -> Packet {
        let mut p = Packet::new(Code::AccessRequest, 1, [0; 16]);
        for (typ, value) in attrs {
            p.push(*typ, *value);
        }
        p
    }

    fn vsa(vendor: u32, vendor_type: u8, value: &[u8]) -> (u8, Vec<u8>) {
        (
            attr::VENDOR_SPECIFIC,
            attr::build_vsa(vendor, vendor_type, value).unwrap(),
        )
    }

    fn sources(list: &[&str]) -> Vec<OriginSource> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    const NAS: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn found(ip: &str, source: &str) -> Origin {
        Origin::Address {
            ip: ip.parse().unwrap(),
            source: source.parse().unwrap(),
        }
    }

    fn unknown(reason: UnknownReason) -> Origin {
        Origin::Unknown { reason }
    }

    #[test]
    fn first_source_with_an_address_wins() {
        let both = sources(&["Calling-Station-Id", "Tunnel-Client-Endpoint"]);
        let p = request(&[(31, b"203.0.113.7"), (66, b"198.51.100.1")]);
        assert_eq!(
            find_origin(&both, &p, NAS),
            found("203.0.113.7", "Calling-Station-Id")
        );
        // Absent passes to the next source; the tag octet is skipped.
        let p = request(&[(66, b"\x01198.51.100.1")]);
        assert_eq!(
            find_origin(&both, &p, NAS),
            found("198.51.100.1", "Tunnel-Client-Endpoint")
        );
        // A first octet above 0x1F is data, not a tag.
        let p = request(&[(66, b"198.51.100.1")]);
        assert_eq!(
            find_origin(&both, &p, NAS),
            found("198.51.100.1", "Tunnel-Client-Endpoint")
        );
        // Tag 0 is no tag (RFC 2868 §3.3 tags are 0x01–0x1F), so the value is garbage.
        let p = request(&[(66, b"\x00198.51.100.1")]);
        let want = UnknownReason::NotAnAddress {
            source: OriginSource::TunnelClientEndpoint,
            value: "\\x00198.51.100.1".into(),
        };
        assert_eq!(find_origin(&both, &p, NAS), unknown(want));
        // Empty (RD Gateway) passes too.
        let p = request(&[(31, b""), (66, b"\x05[2001:db8::5]:443")]);
        assert_eq!(
            find_origin(&both, &p, NAS),
            found("2001:db8::5", "Tunnel-Client-Endpoint")
        );
    }

    #[test]
    fn garbage_or_repeats_stop_the_search() {
        let list = sources(&[
            "Calling-Station-Id",
            "Tunnel-Client-Endpoint",
            "packet-source",
        ]);
        let csi = OriginSource::CallingStationId;
        let p = request(&[(31, b"90-E7-C4-32-D3-D6"), (66, b"198.51.100.1")]);
        let want = UnknownReason::NotAnAddress {
            source: csi.clone(),
            value: "90-E7-C4-32-D3-D6".into(),
        };
        assert_eq!(find_origin(&list, &p, NAS), unknown(want));
        let p = request(&[(31, b"203.0.113.7"), (31, b"10.0.0.1")]);
        let want = UnknownReason::Repeated {
            source: csi.clone(),
            count: 2,
        };
        assert_eq!(find_origin(&list, &p, NAS), unknown(want));
        // Identical copies are still repeats: a NAS never sends two.
        let p = request(&[(31, b"10.0.0.1"), (31, b"10.0.0.1")]);
        let want = UnknownReason::Repeated {
            source: csi,
            count: 2,
        };
        assert_eq!(find_origin(&list, &p, NAS), unknown(want));
    }

    #[test]
    fn missing_or_empty_is_unknown() {
        let csi = sources(&["Calling-Station-Id"]);
        // Framed-IP-Address is the tunnel's inner address, never an origin.
        let p = request(&[(attr::FRAMED_IP_ADDRESS, &[10, 0, 0, 1])]);
        assert_eq!(find_origin(&csi, &p, NAS), unknown(UnknownReason::Missing));
        let p = request(&[(31, b"  ")]);
        let want = UnknownReason::Empty {
            source: OriginSource::CallingStationId,
        };
        assert_eq!(find_origin(&csi, &p, NAS), unknown(want));
        assert_eq!(find_origin(&[], &p, NAS), unknown(UnknownReason::Missing));
    }

    #[test]
    fn packet_source_is_canonicalised() {
        let list = sources(&["Calling-Station-Id", "packet-source"]);
        let p = request(&[]);
        let mapped: IpAddr = "::ffff:127.0.0.9".parse().unwrap();
        assert_eq!(
            find_origin(&list, &p, mapped),
            found("127.0.0.9", "packet-source")
        );
    }

    #[test]
    fn cisco_avpair_reads_only_its_key() {
        let list = sources(&["Cisco-AVPair:ip:source-ip"]);
        let (t1, other) = vsa(9, 1, b"audit-session-id=ac1f0a0b00001");
        let (t2, good) = vsa(9, 1, b"IP:Source-IP=203.0.113.5");
        let p = request(&[(t1, &other), (t2, &good)]);
        assert_eq!(
            find_origin(&list, &p, NAS),
            found("203.0.113.5", "Cisco-AVPair:ip:source-ip")
        );
        // A key that merely starts like ours is another key.
        let (t, longer) = vsa(9, 1, b"ip:source-ipv6=2001:db8::1");
        let p = request(&[(t, &longer)]);
        assert_eq!(find_origin(&list, &p, NAS), unknown(UnknownReason::Missing));
        let (t3, again) = vsa(9, 1, b"ip:source-ip=198.51.100.1");
        let p = request(&[(t2, &good), (t3, &again)]);
        let want = UnknownReason::Repeated {
            source: list[0].clone(),
            count: 2,
        };
        assert_eq!(find_origin(&list, &p, NAS), unknown(want));
    }

    #[test]
    fn vendor_text_and_binary() {
        let palo = sources(&["PaloAlto-Client-Source-IP"]);
        let (t, v) = vsa(25461, 7, b"198.51.100.23");
        assert_eq!(
            find_origin(&palo, &request(&[(t, &v)]), NAS),
            found("198.51.100.23", "vendor:25461:7")
        );
        let forti = sources(&["Fortinet-Client-IP-Address", "Fortinet-Client-IPv6-Address"]);
        let (t, v) = vsa(12356, 2, &[192, 0, 2, 44]);
        let p = request(&[(t, &v)]);
        assert_eq!(
            find_origin(&forti, &p, NAS),
            found("192.0.2.44", "Fortinet-Client-IP-Address")
        );
        let six: Ipv6Addr = "2001:db8::44".parse().unwrap();
        let (t, v) = vsa(12356, 4, &six.octets());
        let p = request(&[(t, &v)]);
        assert_eq!(
            find_origin(&forti, &p, NAS),
            found("2001:db8::44", "vendor:12356:4:binary")
        );
        let (t, v) = vsa(12356, 2, b"1.2.3.4");
        let want = UnknownReason::NotAnAddress {
            source: forti[0].clone(),
            value: "1.2.3.4".into(),
        };
        assert_eq!(
            find_origin(&forti, &request(&[(t, &v)]), NAS),
            unknown(want)
        );
        let (t, v) = vsa(12356, 2, &[0, 0, 0, 0]);
        assert!(matches!(
            find_origin(&forti, &request(&[(t, &v)]), NAS),
            Origin::Unknown { .. }
        ));
    }

    #[test]
    fn source_names_round_trip() {
        let cases = [
            ("Calling-Station-Id", "Calling-Station-Id"),
            ("calling-station-id", "Calling-Station-Id"),
            (" Tunnel-Client-Endpoint ", "Tunnel-Client-Endpoint"),
            ("PACKET-SOURCE", "packet-source"),
            ("Cisco-AVPair:ip:source-ip", "Cisco-AVPair:ip:source-ip"),
            ("vendor:9:1:ip:source-ip=", "Cisco-AVPair:ip:source-ip"),
            ("vendor:25461:7", "PaloAlto-Client-Source-IP"),
            ("fortinet-client-ip-address", "Fortinet-Client-IP-Address"),
            ("vendor:12356:2:binary", "Fortinet-Client-IP-Address"),
            ("vendor:12356:2", "vendor:12356:2"),
            ("vendor:311:99:BINARY", "vendor:311:99:binary"),
            ("vendor:311:99:client=", "vendor:311:99:client="),
        ];
        for (text, canonical) in cases {
            let source: OriginSource = text.parse().unwrap();
            assert_eq!(source.to_string(), canonical, "{text}");
            assert_eq!(
                canonical.parse::<OriginSource>().unwrap(),
                source,
                "{canonical}"
            );
        }
        for bad in [
            "Calling-Station",
            "Framed-IP-Address",
            "Cisco-AVPair:",
            "Cisco-AVPair:ip:source-ip=",
            "vendor:9",
            "vendor:0:1",
            "vendor:9:0",
            "vendor:9:256",
            "vendor:x:1",
            "vendor:9:1:text",
            "vendor:9:1:=",
        ] {
            assert!(bad.parse::<OriginSource>().is_err(), "{bad}");
        }
    }

    #[test]
    fn source_lists_are_checked_at_load() {
        let strings = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let key = "clients[0].origin";
        let ok =
            parse_sources(key, &strings(&["Tunnel-Client-Endpoint", "packet-source"])).unwrap();
        assert_eq!(
            ok,
            vec![
                OriginSource::TunnelClientEndpoint,
                OriginSource::PacketSource
            ]
        );
        let err = |l: &[&str]| {
            let issues = parse_sources(key, &strings(l)).unwrap_err();
            issues.iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        assert_eq!(
            err(&[]),
            ["clients[0].origin: must name at least one origin source"]
        );
        let e = err(&["Calling-Station-Id", "Framed-IP-Address"]);
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("clients[0].origin[1]: unknown origin source \"Framed-IP-Address\"")
        );
        let e = err(&["Calling-Station-Id", "calling-station-id"]);
        assert_eq!(
            e,
            ["clients[0].origin[1]: Calling-Station-Id is listed twice"]
        );
        let e = err(&["packet-source", "Calling-Station-Id"]);
        assert_eq!(
            e,
            ["clients[0].origin: packet-source always yields an address, so it must come last"]
        );
    }

    #[test]
    fn explain_arguments_become_attributes() {
        let mut p = request(&[]);
        for arg in [
            "Calling-Station-Id=90-E7-C4-32-D3-D6",
            "Tunnel-Client-Endpoint=198.51.100.1",
            "Cisco-AVPair:ip:source-ip=203.0.113.5",
            "Fortinet-Client-IP-Address=192.0.2.44",
            "Fortinet-Client-IPv6-Address=2001:db8::44",
            "vendor:25461:7=198.51.100.23",
        ] {
            push_attribute(&mut p, arg).unwrap();
        }
        assert_eq!(p.attr(31), Some(&b"90-E7-C4-32-D3-D6"[..]));
        assert_eq!(p.attr(66), Some(&b"198.51.100.1"[..]));
        assert_eq!(
            p.vendor_attrs(9, 1).next(),
            Some(&b"ip:source-ip=203.0.113.5"[..])
        );
        assert_eq!(p.vendor_attrs(12356, 2).next(), Some(&[192, 0, 2, 44][..]));
        let six: Ipv6Addr = "2001:db8::44".parse().unwrap();
        assert_eq!(p.vendor_attrs(12356, 4).next(), Some(&six.octets()[..]));
        assert_eq!(p.vendor_attrs(25461, 7).next(), Some(&b"198.51.100.23"[..]));
        for bad in [
            "Calling-Station-Id",
            "packet-source=127.0.0.1",
            "Fortinet-Client-IP-Address=host",
            "Framed-IP-Address=10.0.0.1",
        ] {
            assert!(push_attribute(&mut p, bad).is_err(), "{bad}");
        }
        let long = format!("Calling-Station-Id={}", "x".repeat(254));
        assert!(push_attribute(&mut p, &long).is_err());
    }

    #[test]
    fn unusable_values_are_escaped_for_the_log() {
        assert_eq!(printable(b"a\nb\x1b[31m\"\xff"), "a\\nb\\x1b[31m\\\"\\xff");
        let long = printable(&[b'x'; 100]);
        assert_eq!(long.len(), PRINTABLE_MAX + '…'.len_utf8());
        let list = sources(&["Calling-Station-Id"]);
        let origin = find_origin(&list, &request(&[(31, b"evil\r\nuser=root")]), NAS);
        assert_eq!(
            origin.to_string(),
            "unknown (Calling-Station-Id \"evil\\r\\nuser=root\" is not an IP address), treated as off-site"
        );
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn usable(ip: IpAddr) -> bool {
            !ip.to_canonical().is_unspecified()
        }

        proptest! {
            #[test]
            fn every_written_form_parses_back(ip in any::<IpAddr>(), port in any::<u16>()) {
                prop_assume!(usable(ip));
                let want = Some(ip.to_canonical());
                prop_assert_eq!(parse_address(ip.to_string().as_bytes()), want);
                prop_assert_eq!(parse_address(format!(" {ip}[{port}]\t").as_bytes()), want);
                match ip {
                    IpAddr::V4(_) => {
                        prop_assert_eq!(parse_address(format!("{ip}:{port}").as_bytes()), want);
                    }
                    IpAddr::V6(_) => {
                        prop_assert_eq!(parse_address(format!("[{ip}]:{port}").as_bytes()), want);
                    }
                }
            }

            #[test]
            fn a_mapped_address_is_its_ipv4(v4 in any::<Ipv4Addr>()) {
                prop_assume!(!v4.is_unspecified());
                let mapped = IpAddr::V6(v4.to_ipv6_mapped());
                prop_assert_eq!(parse_address(mapped.to_string().as_bytes()), Some(IpAddr::V4(v4)));
            }

            #[test]
            fn a_mac_is_never_an_address(mac in any::<[u8; 6]>(), sep in prop::sample::select(vec!["-", ":", ""])) {
                let hex: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
                prop_assert_eq!(parse_address(hex.join(sep).as_bytes()), None);
                prop_assert_eq!(parse_address(hex.join(sep).to_uppercase().as_bytes()), None);
                let dotted = format!("{}{}.{}{}.{}{}", hex[0], hex[1], hex[2], hex[3], hex[4], hex[5]);
                prop_assert_eq!(parse_address(dotted.as_bytes()), None);
            }

            #[test]
            fn any_octets_are_safe(values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..4)) {
                let mut p = Packet::new(crate::radius::Code::AccessRequest, 0, [0; 16]);
                for v in &values {
                    p.push(attr::CALLING_STATION_ID, v.clone());
                    p.push(attr::TUNNEL_CLIENT_ENDPOINT, v.clone());
                    p.push(attr::VENDOR_SPECIFIC, v.clone());
                }
                let sources = [OriginSource::CallingStationId, OriginSource::TunnelClientEndpoint];
                let origin = find_origin(&sources, &p, IpAddr::V4(Ipv4Addr::LOCALHOST));
                // Whatever the octets, the log form stays on one line.
                prop_assert!(!origin.to_string().contains(['\n', '\r', '\x1b']));
                if values.len() > 1 {
                    prop_assert!(origin.ip().is_none(), "repeated attributes gave {origin}");
                }
            }
        }
    }
}
