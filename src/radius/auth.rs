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

use super::attr::MESSAGE_AUTHENTICATOR;
use super::code::Code;
use super::packet::{AttrIter, DecodeError, EncodeError, HEADER_LEN, Packet, packet_bytes};

/// Why a packet failed authentication. Every such packet is silently discarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The octets are not a packet.
    #[error(transparent)]
    Malformed(#[from] DecodeError),
    /// The Message-Authenticator does not verify (wrong secret or tampering).
    #[error("Message-Authenticator does not verify")]
    BadMessageAuthenticator,
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

/// Offset of the Message-Authenticator's value in `raw`, if there is one.
fn ma_value_offset(raw: &[u8]) -> Result<Option<usize>, DecodeError> {
    for item in AttrIter::new(raw) {
        let (offset, typ, value) = item?;
        if typ == MESSAGE_AUTHENTICATOR {
            if value.len() != 16 {
                return Err(DecodeError::BadMessageAuthenticator(value.len()));
            }
            return Ok(Some(offset + 2));
        }
    }
    Ok(None)
}

/// HMAC-MD5 over `raw` with the header authenticator replaced by `header_auth` and the
/// 16 octets at `ma_at` taken as zero. Streams the pieces: no copy of the packet.
fn compute_ma(raw: &[u8], header_auth: &[u8; 16], ma_at: usize, secret: &[u8]) -> [u8; 16] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacMd5::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&raw[..4]);
    mac.update(header_auth);
    mac.update(&raw[HEADER_LEN..ma_at]);
    mac.update(&[0; 16]);
    mac.update(&raw[ma_at + 16..]);
    mac.finalize().into_bytes().into()
}

/// MD5 over `raw` with the header authenticator replaced by `header_auth`, then the secret.
fn compute_md5_auth(raw: &[u8], header_auth: &[u8; 16], secret: &[u8]) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update(&raw[..4]);
    md5.update(header_auth);
    md5.update(&raw[HEADER_LEN..]);
    md5.update(secret);
    md5.finalize().into()
}

fn header_auth(raw: &[u8]) -> [u8; 16] {
    let mut a = [0; 16];
    a.copy_from_slice(&raw[4..HEADER_LEN]);
    a
}

/// Checks the Message-Authenticator of `raw`, if present, computed with `header` in the
/// Authenticator field.
fn check_ma(raw: &[u8], header: &[u8; 16], secret: &[u8]) -> Result<bool, AuthError> {
    let Some(at) = ma_value_offset(raw)? else {
        return Ok(false);
    };
    let want = compute_ma(raw, header, at, secret);
    if bool::from(want.ct_eq(&raw[at..at + 16])) {
        Ok(true)
    } else {
        Err(AuthError::BadMessageAuthenticator)
    }
}

/// Verifies a request received from a client.
///
/// Access-Request and Status-Server have a random authenticator, so only the
/// Message-Authenticator (if present) can be checked; whether it was required is the
/// caller's policy. Accounting, CoA and Disconnect requests must carry the computed
/// Request Authenticator.
pub fn verify_request(datagram: &[u8], secret: &[u8]) -> Result<Verified, AuthError> {
    let raw = packet_bytes(datagram)?;
    let code = Code::from_u8(raw[0]).ok_or(DecodeError::UnknownCode(raw[0]))?;
    if code.has_computed_request_authenticator() {
        let want = compute_md5_auth(raw, &[0; 16], secret);
        if !bool::from(want.ct_eq(&raw[4..HEADER_LEN])) {
            return Err(AuthError::BadAuthenticator);
        }
        let message_authenticator = check_ma(raw, &[0; 16], secret)?;
        return Ok(Verified {
            message_authenticator,
        });
    }
    let message_authenticator = check_ma(raw, &header_auth(raw), secret)?;
    Ok(Verified {
        message_authenticator,
    })
}

/// Verifies a reply to a request we sent with `request_authenticator`: the Response
/// Authenticator, and the Message-Authenticator if present.
pub fn verify_response(
    datagram: &[u8],
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> Result<Verified, AuthError> {
    let raw = packet_bytes(datagram)?;
    let want = compute_md5_auth(raw, request_authenticator, secret);
    if !bool::from(want.ct_eq(&raw[4..HEADER_LEN])) {
        return Err(AuthError::BadAuthenticator);
    }
    let message_authenticator = check_ma(raw, request_authenticator, secret)?;
    Ok(Verified {
        message_authenticator,
    })
}

/// Encodes a request we send, signed for `secret`.
///
/// For Access-Request and Status-Server the packet's authenticator must already be
/// fresh and random (see [`super::random::bytes16`]); a Message-Authenticator attribute,
/// if present, is filled in. For Accounting, CoA and Disconnect the Request
/// Authenticator is computed (after the Message-Authenticator, which it covers).
pub fn encode_request(packet: &Packet, secret: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let mut raw = packet.encode()?;
    let computed = packet.code.has_computed_request_authenticator();
    let header = if computed {
        [0; 16]
    } else {
        packet.authenticator
    };
    fill_ma(&mut raw, &header, secret);
    if computed {
        let auth = compute_md5_auth(&raw, &[0; 16], secret);
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
    secret: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    let mut raw = packet.encode()?;
    fill_ma(&mut raw, request_authenticator, secret);
    let auth = compute_md5_auth(&raw, request_authenticator, secret);
    raw[4..HEADER_LEN].copy_from_slice(&auth);
    Ok(raw)
}

fn fill_ma(raw: &mut [u8], header: &[u8; 16], secret: &[u8]) {
    // `raw` came from `Packet::encode`, so it walks cleanly; a Message-Authenticator of the
    // wrong length is left alone (and will fail verification at the peer).
    if let Ok(Some(at)) = ma_value_offset(raw) {
        let ma = compute_ma(raw, header, at, secret);
        raw[at..at + 16].copy_from_slice(&ma);
    }
}
