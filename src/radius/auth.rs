//! Authenticators and Message-Authenticator: signing what we send, verifying what we get.
//!
//! - Request Authenticator: random for Access-Request and Status-Server (RFC 2865 §3);
//!   `MD5(Code‖ID‖Length‖16×0‖Attributes‖Secret)` for Accounting, CoA and Disconnect
//!   requests (RFC 2866 §3, RFC 5176 §2.3).
//! - Response Authenticator: `MD5(Code‖ID‖Length‖RequestAuth‖Attributes‖Secret)`.
//! - Message-Authenticator: `HMAC-MD5(Secret, packet with MA = 16×0)`, with the request's
//!   authenticator in the header for replies, and 16 zero octets for requests whose
//!   authenticator is computed (RFC 2869 §5.14, RFC 3579 §3.2, RFC 5176 §3.3).
//!
//! Verification works on the received octets (never on a re-encoding), and every
//! comparison is constant-time.

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::attr::{EAP_MESSAGE, MESSAGE_AUTHENTICATOR};
use super::code::Code;
use super::packet::{
    AttrIter, AttrRules, DecodeError, EncodeError, HEADER_LEN, Packet, packet_bytes,
};

/// Why a packet failed authentication. Every such packet is silently discarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The octets are not a packet.
    #[error(transparent)]
    Malformed(#[from] DecodeError),
    /// The Message-Authenticator does not verify (wrong secret or tampering).
    #[error("Message-Authenticator does not verify")]
    BadMessageAuthenticator,
    /// A packet that must carry a Message-Authenticator does not: Status-Server
    /// (RFC 5997 §3) or any packet with an EAP-Message (RFC 3579 §3.3).
    #[error("Message-Authenticator missing where the RFCs require one")]
    MissingMessageAuthenticator,
    /// The Request or Response Authenticator does not verify.
    #[error("authenticator does not verify")]
    BadAuthenticator,
}

/// What verification found, for the caller's policy (e.g. "Message-Authenticator required").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Whether the packet carried a Message-Authenticator (which then verified).
    pub message_authenticator: bool,
}

type HmacMd5 = Hmac<Md5>;

/// A shared secret as signing and verification take it.
///
/// Plain octets work as they are (`&[u8]`, `Vec<u8>`, arrays: anything `AsRef<[u8]>`).
/// A [`PreparedSecret`] also carries the HMAC-MD5 key schedule, computed once instead
/// of for every packet: that saves two of the seven MD5 blocks of a typical
/// Message-Authenticator, so long-lived secrets (per client, per upstream) should be
/// prepared.
pub trait SigningSecret {
    /// The secret's octets.
    fn octets(&self) -> &[u8];

    /// The prepared form, if this is one.
    fn prepared(&self) -> Option<&PreparedSecret> {
        None
    }
}

impl<T: AsRef<[u8]> + ?Sized> SigningSecret for T {
    fn octets(&self) -> &[u8] {
        self.as_ref()
    }
}

/// A shared secret with its HMAC-MD5 key schedule computed once. Cannot be printed.
#[derive(Clone)]
pub struct PreparedSecret {
    octets: Zeroizing<Vec<u8>>,
    hmac: HmacMd5,
}

impl PreparedSecret {
    /// Prepares `secret` for signing and verifying.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            octets: Zeroizing::new(secret.to_vec()),
            hmac: new_hmac(secret),
        }
    }
}

impl SigningSecret for PreparedSecret {
    fn octets(&self) -> &[u8] {
        &self.octets
    }

    fn prepared(&self) -> Option<&PreparedSecret> {
        Some(self)
    }
}

impl std::fmt::Debug for PreparedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreparedSecret(<redacted>)")
    }
}

fn new_hmac(secret: &[u8]) -> HmacMd5 {
    // HMAC accepts keys of any length, so this cannot fail.
    HmacMd5::new_from_slice(secret).expect("HMAC takes any key length")
}

/// What the internals need of a [`SigningSecret`]: its octets, and the HMAC key
/// schedule when it was prepared. `Copy`, so it is resolved once per call.
#[derive(Clone, Copy)]
struct Key<'a> {
    octets: &'a [u8],
    hmac: Option<&'a HmacMd5>,
}

impl<'a> Key<'a> {
    fn of(secret: &'a (impl SigningSecret + ?Sized)) -> Self {
        Self {
            octets: secret.octets(),
            hmac: secret.prepared().map(|p| &p.hmac),
        }
    }

    /// An HMAC-MD5 keyed with the secret, ready for `update`.
    fn hmac(self) -> HmacMd5 {
        self.hmac.cloned().unwrap_or_else(|| new_hmac(self.octets))
    }
}

/// What a walk over a packet's attributes found that authentication depends on.
struct Scan {
    /// Offset of the Message-Authenticator's value in `raw`, if there is one.
    ma_at: Option<usize>,
    /// Whether an EAP-Message is present, which makes a Message-Authenticator mandatory.
    eap: bool,
}

/// Walks every attribute of `raw` under the rules of [`Packet::decode`] (so a packet
/// verifies only if it decodes; in particular a second Message-Authenticator is refused,
/// never "the first one wins") and finds the Message-Authenticator.
fn scan(raw: &[u8]) -> Result<Scan, DecodeError> {
    let mut found = Scan {
        ma_at: None,
        eap: false,
    };
    let mut rules = AttrRules::default();
    for item in AttrIter::new(raw) {
        let (offset, typ, value) = item?;
        rules.check(offset, typ, value)?;
        match typ {
            MESSAGE_AUTHENTICATOR => found.ma_at = Some(offset + 2),
            EAP_MESSAGE => found.eap = true,
            _ => {}
        }
    }
    Ok(found)
}

/// HMAC-MD5 over `raw` with the header authenticator replaced by `header_auth` and the
/// 16 octets at `ma_at` taken as zero. Streams the pieces: no copy of the packet.
fn compute_ma(raw: &[u8], header_auth: &[u8; 16], ma_at: usize, key: Key<'_>) -> [u8; 16] {
    let mut mac = key.hmac();
    mac.update(&raw[..4]);
    mac.update(header_auth);
    mac.update(&raw[HEADER_LEN..ma_at]);
    mac.update(&[0; 16]);
    mac.update(&raw[ma_at + 16..]);
    mac.finalize().into_bytes().into()
}

/// MD5 over `raw` with the header authenticator replaced by `header_auth`, then the secret.
fn compute_md5_auth(raw: &[u8], header_auth: &[u8; 16], key: Key<'_>) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update(&raw[..4]);
    md5.update(header_auth);
    md5.update(&raw[HEADER_LEN..]);
    md5.update(key.octets);
    md5.finalize().into()
}

fn header_auth(raw: &[u8]) -> [u8; 16] {
    let mut a = [0; 16];
    a.copy_from_slice(&raw[4..HEADER_LEN]);
    a
}

/// The packet in `datagram` after the structural checks (length rules, a code we speak,
/// well-formed attributes, at most one Message-Authenticator of 16 octets), with what
/// authentication needs to know about it. Structure is checked before any digest so
/// that malformed input is refused as such, and cheaply.
fn parse(datagram: &[u8]) -> Result<(&[u8], Code, Scan), DecodeError> {
    let raw = packet_bytes(datagram)?;
    let code = Code::from_u8(raw[0]).ok_or(DecodeError::UnknownCode(raw[0]))?;
    Ok((raw, code, scan(raw)?))
}

/// Checks the Message-Authenticator found by `scan`, computed with `header` in the
/// Authenticator field. It must be present if `required`, or if the packet carries an
/// EAP-Message (RFC 3579 §3.3); otherwise its absence is reported, not refused.
fn check_ma(
    raw: &[u8],
    found: &Scan,
    header: &[u8; 16],
    key: Key<'_>,
    required: bool,
) -> Result<Verified, AuthError> {
    let Some(at) = found.ma_at else {
        if required || found.eap {
            return Err(AuthError::MissingMessageAuthenticator);
        }
        return Ok(Verified {
            message_authenticator: false,
        });
    };
    let want = compute_ma(raw, header, at, key);
    if bool::from(want.ct_eq(&raw[at..at + 16])) {
        Ok(Verified {
            message_authenticator: true,
        })
    } else {
        Err(AuthError::BadMessageAuthenticator)
    }
}

/// Checks an MD5 authenticator in the header: `MD5(Code‖ID‖Length‖header‖Attributes‖Secret)`.
fn check_md5_auth(raw: &[u8], header: &[u8; 16], key: Key<'_>) -> Result<(), AuthError> {
    let want = compute_md5_auth(raw, header, key);
    if bool::from(want.ct_eq(&raw[4..HEADER_LEN])) {
        Ok(())
    } else {
        Err(AuthError::BadAuthenticator)
    }
}

/// Verifies a request received from a client.
///
/// Access-Request and Status-Server have a random authenticator, so only the
/// Message-Authenticator can be checked. It is mandatory for Status-Server and with
/// EAP-Message; for other Access-Requests, whether it was required is the caller's
/// policy (see [`Verified`]). Accounting, CoA and Disconnect requests must carry the
/// computed Request Authenticator.
pub fn verify_request(
    datagram: &[u8],
    secret: &(impl SigningSecret + ?Sized),
) -> Result<Verified, AuthError> {
    let key = Key::of(secret);
    let (raw, code, found) = parse(datagram)?;
    if code.has_computed_request_authenticator() {
        check_md5_auth(raw, &[0; 16], key)?;
        return check_ma(raw, &found, &[0; 16], key, false);
    }
    let required = code == Code::StatusServer;
    check_ma(raw, &found, &header_auth(raw), key, required)
}

/// Verifies a reply to a request we sent with `request_authenticator`: the Response
/// Authenticator, and the Message-Authenticator if present (mandatory with EAP-Message).
///
/// Whether a reply without Message-Authenticator is acceptable is the caller's policy
/// (BlastRADIUS: require it from upstreams by default); see [`Verified`]. Matching the
/// Identifier to the request is the caller's too.
pub fn verify_response(
    datagram: &[u8],
    request_authenticator: &[u8; 16],
    secret: &(impl SigningSecret + ?Sized),
) -> Result<Verified, AuthError> {
    let key = Key::of(secret);
    let (raw, _, found) = parse(datagram)?;
    check_md5_auth(raw, request_authenticator, key)?;
    check_ma(raw, &found, request_authenticator, key, false)
}

/// Encodes a request we send, signed for `secret`.
///
/// For Access-Request and Status-Server the packet's authenticator must already be
/// fresh and random (see [`super::random::bytes16`]); a Message-Authenticator attribute,
/// if present, is filled in. For Accounting, CoA and Disconnect the Request
/// Authenticator is computed (after the Message-Authenticator, which it covers).
pub fn encode_request(
    packet: &Packet,
    secret: &(impl SigningSecret + ?Sized),
) -> Result<Vec<u8>, EncodeError> {
    let key = Key::of(secret);
    let mut raw = packet.encode()?;
    let computed = packet.code.has_computed_request_authenticator();
    let header = if computed {
        [0; 16]
    } else {
        packet.authenticator
    };
    fill_ma(&mut raw, &header, key);
    if computed {
        let auth = compute_md5_auth(&raw, &[0; 16], key);
        raw[4..HEADER_LEN].copy_from_slice(&auth);
    }
    Ok(raw)
}

/// Encodes a reply to a request whose authenticator was `request_authenticator`:
/// fills in the Message-Authenticator (if the packet has one; see
/// [`Packet::set_message_authenticator_first`]), then the Response Authenticator.
pub fn encode_response(
    packet: &Packet,
    request_authenticator: &[u8; 16],
    secret: &(impl SigningSecret + ?Sized),
) -> Result<Vec<u8>, EncodeError> {
    let key = Key::of(secret);
    let mut raw = packet.encode()?;
    fill_ma(&mut raw, request_authenticator, key);
    let auth = compute_md5_auth(&raw, request_authenticator, key);
    raw[4..HEADER_LEN].copy_from_slice(&auth);
    Ok(raw)
}

fn fill_ma(raw: &mut [u8], header: &[u8; 16], key: Key<'_>) {
    // `raw` came from `Packet::encode`, which refuses malformed attributes, a second
    // Message-Authenticator and one of the wrong length, so the scan cannot fail here.
    if let Ok(Scan {
        ma_at: Some(at), ..
    }) = scan(raw)
    {
        let ma = compute_ma(raw, header, at, key);
        raw[at..at + 16].copy_from_slice(&ma);
    }
}
