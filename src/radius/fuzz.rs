//! The body of the `decode` fuzz target (`fuzz/fuzz_targets/decode.rs`), as a plain
//! function so that stable unit tests run it over the seed corpus too.
//!
//! It feeds arbitrary octets to every routine that reads untrusted input, and for
//! packets that decode it checks the invariants the proxy relies on: re-encoding gives
//! back the same octets, what we sign we verify, a flipped bit fails verification, and
//! hidden values survive a round trip. A broken invariant is returned as a
//! [`Violation`]; the fuzz target turns it into a panic, which is what libFuzzer reports.

use super::attr::{self, VendorAttr};
use super::auth::{self, AuthError};
use super::crypt::{self, Keying};
use super::packet::{EncodeError, Packet, packet_bytes};

/// The shared secret the target signs and verifies with (that of the RFC examples, so the
/// RFC vectors in the corpus verify and the fuzzer starts from authentic packets).
pub const SECRET: &[u8] = b"xyzzy5461";

/// An invariant of the codec that an input broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// A decoded packet does not encode at all.
    #[error("decoded packet does not encode: {0}")]
    Encode(EncodeError),
    /// A decoded packet encodes to other octets than it was decoded from.
    #[error("re-encoding differs from the decoded octets")]
    RoundTrip,
    /// A packet we signed does not verify.
    #[error("a packet we signed does not verify: {0}")]
    Signed(AuthError),
    /// A packet we signed still verifies after one bit was flipped.
    #[error("a flipped bit in a signed packet went unnoticed")]
    TamperUndetected,
    /// A revealed User-Password does not hide back to the same octets.
    #[error("User-Password does not survive unhide and hide")]
    Password,
    /// A revealed salted value does not survive encryption and decryption.
    #[error("salted value does not survive decrypt, encrypt, decrypt")]
    Salted,
    /// A split Vendor-Specific value does not rebuild to the same octets.
    #[error("Vendor-Specific value does not survive split and rebuild")]
    Vendor,
}

/// Runs the fuzz body on one input. `Ok` means no invariant broke.
pub fn decode_target(data: &[u8]) -> Result<(), Violation> {
    let authenticator = data.first_chunk::<16>().copied().unwrap_or_default();
    let keying = Keying {
        secret: SECRET,
        authenticator: &authenticator,
    };
    // Arbitrary octets through every reader of untrusted input: none may panic. Their
    // verdicts on random input do not matter.
    let _ = auth::verify_request(data, SECRET);
    let _ = auth::verify_response(data, &authenticator, SECRET);
    let _ = crypt::unhide_password(data, keying);
    let _ = crypt::salt_decrypt(data, keying);
    let _ = crypt::tunnel_password_decrypt(data, keying);
    let _ = attr::split_vsa(data);
    let Ok(packet) = Packet::decode(data) else {
        return Ok(());
    };
    let raw = packet_bytes(data).map_err(|_| Violation::RoundTrip)?;
    if packet.encode().map_err(Violation::Encode)? != raw {
        return Err(Violation::RoundTrip);
    }
    for a in &packet.attributes {
        check_value(a.typ, &a.value, keying)?;
    }
    check_signing(&packet, &authenticator)
}

/// Value-level round trips for the attributes with structure.
fn check_value(typ: u8, value: &[u8], keying: Keying<'_>) -> Result<(), Violation> {
    match typ {
        attr::USER_PASSWORD => check_password(value, keying),
        attr::TUNNEL_PASSWORD => value
            .split_first()
            .map_or(Ok(()), |(_, v)| check_salted(v, keying)),
        attr::VENDOR_SPECIFIC => check_vendor(value, keying),
        _ => Ok(()),
    }
}

/// `hide(unhide(h))` is a prefix of `h`: the same key stream, minus any all-NUL tail
/// blocks that unhiding strips.
fn check_password(hidden: &[u8], keying: Keying<'_>) -> Result<(), Violation> {
    let Ok(plain) = crypt::unhide_password(hidden, keying) else {
        return Ok(());
    };
    let again = crypt::hide_password(&plain, keying).map_err(|_| Violation::Password)?;
    if hidden.starts_with(&again) {
        Ok(())
    } else {
        Err(Violation::Password)
    }
}

/// `decrypt(encrypt(decrypt(v)))` equals `decrypt(v)`, with the old salt and a new one.
fn check_salted(value: &[u8], keying: Keying<'_>) -> Result<(), Violation> {
    let Ok(plain) = crypt::salt_decrypt(value, keying) else {
        return Ok(());
    };
    let mut salts = crypt::Salts::new();
    let moved = crypt::reencrypt_salted(value, keying, keying, &mut salts)
        .map_err(|_| Violation::Salted)?;
    let back = crypt::salt_decrypt(&moved, keying).map_err(|_| Violation::Salted)?;
    if back == plain && moved[..2] != value[..2] {
        Ok(())
    } else {
        Err(Violation::Salted)
    }
}

/// A Vendor-Specific value that splits rebuilds to the same octets, and the salted
/// Microsoft keys inside survive a round trip.
fn check_vendor(value: &[u8], keying: Keying<'_>) -> Result<(), Violation> {
    let Some((vendor, subs)) = attr::split_vsa(value) else {
        return Ok(());
    };
    let mut rebuilt = vendor.to_be_bytes().to_vec();
    for VendorAttr {
        vendor_type, value, ..
    } in &subs
    {
        rebuilt.push(*vendor_type);
        rebuilt.push(u8::try_from(value.len() + 2).map_err(|_| Violation::Vendor)?);
        rebuilt.extend_from_slice(value);
        let key = *vendor_type == attr::MS_MPPE_SEND_KEY || *vendor_type == attr::MS_MPPE_RECV_KEY;
        if vendor == attr::VENDOR_MICROSOFT && key {
            check_salted(value, keying)?;
        }
    }
    if rebuilt == value {
        Ok(())
    } else {
        Err(Violation::Vendor)
    }
}

/// Signs the packet (with a Message-Authenticator first) as a request and as a
/// response; each must verify, and must stop verifying when any one bit changes.
fn check_signing(packet: &Packet, request_auth: &[u8; 16]) -> Result<(), Violation> {
    let mut packet = packet.clone();
    packet.set_message_authenticator_first();
    // Adding the Message-Authenticator can push a legal packet over 4096 octets or 200
    // attributes; such a packet cannot be signed, which is not a violation.
    let Ok(request) = auth::encode_request(&packet, SECRET) else {
        return Ok(());
    };
    let verified = auth::verify_request(&request, SECRET).map_err(Violation::Signed)?;
    if !verified.message_authenticator {
        return Err(Violation::Signed(AuthError::MissingMessageAuthenticator));
    }
    let response =
        auth::encode_response(&packet, request_auth, SECRET).map_err(Violation::Encode)?;
    auth::verify_response(&response, request_auth, SECRET).map_err(Violation::Signed)?;
    // Flip one bit, chosen by the input, anywhere in the signed octets.
    let mut tampered = response;
    let at = usize::from(request_auth[0]) % tampered.len();
    tampered[at] ^= 1 << (request_auth[1] & 7);
    match auth::verify_response(&tampered, request_auth, SECRET) {
        Ok(_) => Err(Violation::TamperUndetected),
        Err(_) => Ok(()),
    }
}
