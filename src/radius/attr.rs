//! Attribute numbers the code depends on, and the Vendor-Specific layout.
//!
//! Security-critical numbers are constants here, never looked up in a dictionary:
//! a missing or edited dictionary file must not switch off Message-Authenticator
//! checks or re-encryption. A test checks that they agree with `dictionaries/`.

/// User-Name (RFC 2865 §5.1).
pub const USER_NAME: u8 = 1;
/// User-Password (RFC 2865 §5.2), hidden with the shared secret.
pub const USER_PASSWORD: u8 = 2;
/// CHAP-Password (RFC 2865 §5.3).
pub const CHAP_PASSWORD: u8 = 3;
/// NAS-IP-Address (RFC 2865 §5.4).
pub const NAS_IP_ADDRESS: u8 = 4;
/// NAS-Port (RFC 2865 §5.5).
pub const NAS_PORT: u8 = 5;
/// Service-Type (RFC 2865 §5.6).
pub const SERVICE_TYPE: u8 = 6;
/// Framed-IP-Address (RFC 2865 §5.8). Never an origin: it is the tunnel's inner address.
pub const FRAMED_IP_ADDRESS: u8 = 8;
/// Filter-Id (RFC 2865 §5.11).
pub const FILTER_ID: u8 = 11;
/// Reply-Message (RFC 2865 §5.18).
pub const REPLY_MESSAGE: u8 = 18;
/// State (RFC 2865 §5.24).
pub const STATE: u8 = 24;
/// Class (RFC 2865 §5.25).
pub const CLASS: u8 = 25;
/// Vendor-Specific (RFC 2865 §5.26).
pub const VENDOR_SPECIFIC: u8 = 26;
/// Session-Timeout (RFC 2865 §5.27).
pub const SESSION_TIMEOUT: u8 = 27;
/// Called-Station-Id (RFC 2865 §5.30).
pub const CALLED_STATION_ID: u8 = 30;
/// Calling-Station-Id (RFC 2865 §5.31): where most gateways put the user's address.
pub const CALLING_STATION_ID: u8 = 31;
/// NAS-Identifier (RFC 2865 §5.32).
pub const NAS_IDENTIFIER: u8 = 32;
/// Proxy-State (RFC 2865 §5.33): echoed unchanged and in order in every reply.
pub const PROXY_STATE: u8 = 33;
/// Acct-Status-Type (RFC 2866 §5.1).
pub const ACCT_STATUS_TYPE: u8 = 40;
/// CHAP-Challenge (RFC 2865 §5.40).
pub const CHAP_CHALLENGE: u8 = 60;
/// Tunnel-Type (RFC 2868 §3.1), tagged.
pub const TUNNEL_TYPE: u8 = 64;
/// Tunnel-Medium-Type (RFC 2868 §3.2), tagged.
pub const TUNNEL_MEDIUM_TYPE: u8 = 65;
/// Tunnel-Client-Endpoint (RFC 2868 §3.3), tagged.
pub const TUNNEL_CLIENT_ENDPOINT: u8 = 66;
/// Tunnel-Password (RFC 2868 §3.5): tagged and salt-encrypted.
pub const TUNNEL_PASSWORD: u8 = 69;
/// EAP-Message (RFC 3579 §3.1): requires a Message-Authenticator.
pub const EAP_MESSAGE: u8 = 79;
/// Message-Authenticator (RFC 3579 §3.2): HMAC-MD5 over the packet.
pub const MESSAGE_AUTHENTICATOR: u8 = 80;
/// NAS-IPv6-Address (RFC 3162 §2.1).
pub const NAS_IPV6_ADDRESS: u8 = 95;

/// Microsoft's SMI enterprise number (RFC 2548).
pub const VENDOR_MICROSOFT: u32 = 311;
/// MS-CHAP-Response (RFC 2548 §2.1.2).
pub const MS_CHAP_RESPONSE: u8 = 1;
/// MS-CHAP-Challenge (RFC 2548 §2.1.3).
pub const MS_CHAP_CHALLENGE: u8 = 11;
/// MS-MPPE-Send-Key (RFC 2548 §2.4.2): salt-encrypted.
pub const MS_MPPE_SEND_KEY: u8 = 16;
/// MS-MPPE-Recv-Key (RFC 2548 §2.4.3): salt-encrypted.
pub const MS_MPPE_RECV_KEY: u8 = 17;
/// MS-CHAP2-Response (RFC 2548 §2.3.2).
pub const MS_CHAP2_RESPONSE: u8 = 25;
/// MS-CHAP2-Success (RFC 2548 §2.3.3).
pub const MS_CHAP2_SUCCESS: u8 = 26;

/// Cisco's SMI enterprise number.
pub const VENDOR_CISCO: u32 = 9;
/// Cisco-AVPair: `key=value` strings, e.g. `ip:source-ip=203.0.113.5`.
pub const CISCO_AVPAIR: u8 = 1;

/// One sub-attribute of a Vendor-Specific attribute in the common `format=1,1` layout
/// (RFC 2865 §5.26: one octet type, one octet length that counts both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorAttr<'a> {
    /// The vendor's SMI enterprise number.
    pub vendor: u32,
    /// The vendor's attribute number.
    pub vendor_type: u8,
    /// The value octets.
    pub value: &'a [u8],
}

/// Splits the value of a Vendor-Specific attribute laid out as `format=1,1`.
///
/// Returns `None` if the value is not a well-formed sequence of 1,1 sub-attributes
/// (some vendors use other layouts; such values are carried opaque).
pub fn split_vsa(value: &[u8]) -> Option<(u32, Vec<VendorAttr<'_>>)> {
    let (id, mut rest) = value.split_first_chunk::<4>()?;
    let vendor = u32::from_be_bytes(*id);
    let mut subs = Vec::new();
    while !rest.is_empty() {
        let [ty, len, ..] = *rest else { return None };
        let len = usize::from(len);
        if len < 2 || len > rest.len() {
            return None;
        }
        subs.push(VendorAttr {
            vendor,
            vendor_type: ty,
            value: &rest[2..len],
        });
        rest = &rest[len..];
    }
    (!subs.is_empty()).then_some((vendor, subs))
}

/// Builds the value of a Vendor-Specific attribute holding one `format=1,1` sub-attribute.
///
/// Returns `None` if the sub-value is too long to fit (more than 247 octets).
pub fn build_vsa(vendor: u32, vendor_type: u8, value: &[u8]) -> Option<Vec<u8>> {
    let sub_len = u8::try_from(value.len() + 2).ok().filter(|l| *l <= 249)?;
    let mut out = Vec::with_capacity(6 + value.len());
    out.extend_from_slice(&vendor.to_be_bytes());
    out.push(vendor_type);
    out.push(sub_len);
    out.extend_from_slice(value);
    Some(out)
}
