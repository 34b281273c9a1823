//! Message-Authenticator and computed authenticators, against values computed
//! independently with Python's hashlib/hmac (`kat.py` in this directory).

use super::{SECRET, authenticator, hex};
use crate::radius::attr;
use crate::radius::auth::{
    AuthError, encode_request, encode_response, verify_request, verify_response,
};
use crate::radius::code::Code;
use crate::radius::packet::Packet;

/// The fixed Request Authenticator `kat.py` uses: 00 01 .. 0f.
const RA: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

const KAT_ACCEPT: &str =
    "022a002ade261c1757b3a0bdd2cf0219d12186ba5012452ebdb05a28942fd9106ecd7c3b74e412046f6b";
const KAT_ACCESS_REQUEST: &str =
    "0107002c000102030405060708090a0b0c0d0e0f01066e656d6f5012cdde4359a8b0ee82504068486d1485fe";
const KAT_ACCOUNTING: &str = "0405003780024af86d56a1476f06019f10a60c6728060000000101066e656d6f2c05616263\
    50128776da5c2875ab2362d29c2b2ada3864";
const KAT_COA: &str =
    "2b09002ca6b9d101c837b49eaed2e58273dcdd8c01066e656d6f501245f1c5ff5aa46a5f17e18a24a07fd3de";
const KAT_DISCONNECT: &str = "280a001a058041f5398ea7164a58c2c724ed1cd301066e656d6f";
const KAT_COA_ACK: &str = "2c0900148b693d40515edcea67707007944ebe3e";

fn flip(raw: &[u8], at: usize, bit: u8) -> Vec<u8> {
    let mut out = raw.to_vec();
    out[at] ^= 1 << bit;
    out
}

#[test]
fn response_with_message_authenticator_first_matches_known_answer() {
    let mut accept = Packet::new(Code::AccessAccept, 0x2a, [0xee; 16]);
    accept.push(attr::REPLY_MESSAGE, &b"ok"[..]);
    accept.set_message_authenticator_first();
    assert_eq!(accept.attributes[0].typ, attr::MESSAGE_AUTHENTICATOR);
    let raw = encode_response(&accept, &RA, SECRET).unwrap();
    assert_eq!(raw, hex(KAT_ACCEPT));
    assert!(
        verify_response(&raw, &RA, SECRET)
            .unwrap()
            .message_authenticator
    );
}

#[test]
fn response_message_authenticator_uses_the_request_authenticator() {
    let raw = hex(KAT_ACCEPT);
    // With the header's own (response) authenticator in place of the request's, the
    // Response Authenticator check fails first; so recompute it to isolate the MA.
    let mut other_ra = RA;
    other_ra[15] ^= 1;
    let mut accept = Packet::decode(&raw).unwrap();
    accept.attributes[0].value = vec![0; 16];
    let signed_for_other = encode_response(&accept, &other_ra, SECRET).unwrap();
    assert_ne!(
        signed_for_other[22..38],
        raw[22..38],
        "MA depends on the request authenticator"
    );
    let mut spliced = signed_for_other.clone();
    spliced[22..38].copy_from_slice(&raw[22..38]);
    let md5 = response_auth(&spliced, &other_ra);
    spliced[4..20].copy_from_slice(&md5);
    assert_eq!(
        verify_response(&spliced, &other_ra, SECRET),
        Err(AuthError::BadMessageAuthenticator)
    );
}

/// The Response Authenticator alone, from the RFC formula, to build a packet whose only
/// defect is its Message-Authenticator.
fn response_auth(raw: &[u8], request_auth: &[u8; 16]) -> [u8; 16] {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    h.update(&raw[..4]);
    h.update(request_auth);
    h.update(&raw[20..]);
    h.update(SECRET);
    h.finalize().into()
}

#[test]
fn access_request_message_authenticator_matches_known_answer() {
    let mut req = Packet::new(Code::AccessRequest, 7, RA);
    req.push(attr::USER_NAME, &b"nemo"[..]);
    req.push(attr::MESSAGE_AUTHENTICATOR, vec![0; 16]);
    let raw = encode_request(&req, SECRET).unwrap();
    assert_eq!(raw, hex(KAT_ACCESS_REQUEST));
    assert!(verify_request(&raw, SECRET).unwrap().message_authenticator);
}

#[test]
fn every_flipped_bit_fails_verification() {
    let req = hex(KAT_ACCESS_REQUEST);
    // Any bit: code, identifier, length, header authenticator, attributes, the MA itself.
    // The one exception is the MA's type octet (26): the packet then has no MA, which
    // verifies as "no Message-Authenticator", for the caller's policy to drop.
    for at in 0..req.len() {
        for bit in 0..8 {
            let verdict = verify_request(&flip(&req, at, bit), SECRET);
            match verdict {
                Ok(v) => assert!(
                    at == 26 && !v.message_authenticator,
                    "bit {bit} of octet {at}"
                ),
                Err(_) => assert_ne!(at, 26, "bit {bit} of octet {at}"),
            }
        }
    }
    let acc = hex(KAT_ACCEPT);
    for at in 0..acc.len() {
        for bit in 0..8 {
            let bad = flip(&acc, at, bit);
            assert!(
                verify_response(&bad, &RA, SECRET).is_err(),
                "response bit {bit} of octet {at}"
            );
        }
    }
}

#[test]
fn wrong_secret_fails_message_authenticator() {
    let req = hex(KAT_ACCESS_REQUEST);
    assert_eq!(
        verify_request(&req, b"xyzzy5460"),
        Err(AuthError::BadMessageAuthenticator)
    );
    assert_eq!(
        verify_request(&req, b""),
        Err(AuthError::BadMessageAuthenticator)
    );
    let acc = hex(KAT_ACCEPT);
    assert_eq!(
        verify_response(&acc, &RA, b"xyzzy5460"),
        Err(AuthError::BadAuthenticator)
    );
}

#[test]
fn accounting_request_authenticator_and_ma_use_zeros() {
    let mut acct = Packet::new(Code::AccountingRequest, 5, [0x55; 16]);
    acct.push(attr::ACCT_STATUS_TYPE, vec![0, 0, 0, 1]);
    acct.push(attr::USER_NAME, &b"nemo"[..]);
    acct.push(44, &b"abc"[..]);
    acct.push(attr::MESSAGE_AUTHENTICATOR, vec![0; 16]);
    let raw = encode_request(&acct, SECRET).unwrap();
    assert_eq!(raw, hex(KAT_ACCOUNTING));
    assert!(verify_request(&raw, SECRET).unwrap().message_authenticator);
    assert_eq!(
        verify_request(&raw, b"wrong"),
        Err(AuthError::BadAuthenticator)
    );
    assert_eq!(
        verify_request(&flip(&raw, 10, 0), SECRET),
        Err(AuthError::BadAuthenticator)
    );
}

#[test]
fn coa_and_disconnect_authenticators() {
    let mut coa = Packet::new(Code::CoaRequest, 9, [0; 16]);
    coa.push(attr::USER_NAME, &b"nemo"[..]);
    coa.push(attr::MESSAGE_AUTHENTICATOR, vec![0; 16]);
    let coa_raw = encode_request(&coa, SECRET).unwrap();
    assert_eq!(coa_raw, hex(KAT_COA));
    assert!(
        verify_request(&coa_raw, SECRET)
            .unwrap()
            .message_authenticator
    );

    let mut dis = Packet::new(Code::DisconnectRequest, 10, [0xaa; 16]);
    dis.push(attr::USER_NAME, &b"nemo"[..]);
    let dis_raw = encode_request(&dis, SECRET).unwrap();
    assert_eq!(dis_raw, hex(KAT_DISCONNECT));
    assert!(
        !verify_request(&dis_raw, SECRET)
            .unwrap()
            .message_authenticator
    );
    assert_eq!(
        verify_request(&flip(&dis_raw, 25, 3), SECRET),
        Err(AuthError::BadAuthenticator)
    );

    // A CoA-ACK is a response: signed over the CoA-Request's (computed) authenticator.
    let ack = Packet::new(Code::CoaAck, 9, [0; 16]);
    let ack_raw = encode_response(&ack, &authenticator(&coa_raw), SECRET).unwrap();
    assert_eq!(ack_raw, hex(KAT_COA_ACK));
    verify_response(&ack_raw, &authenticator(&coa_raw), SECRET).unwrap();
}

#[test]
fn status_server_and_eap_require_message_authenticator() {
    let status = Packet::new(Code::StatusServer, 1, RA);
    let raw = encode_request(&status, SECRET).unwrap();
    assert_eq!(
        verify_request(&raw, SECRET),
        Err(AuthError::MissingMessageAuthenticator)
    );

    let mut eap = Packet::new(Code::AccessRequest, 2, RA);
    eap.push(attr::EAP_MESSAGE, vec![2, 0, 0, 5, 1]);
    let raw = encode_request(&eap, SECRET).unwrap();
    assert_eq!(
        verify_request(&raw, SECRET),
        Err(AuthError::MissingMessageAuthenticator)
    );
    eap.set_message_authenticator_first();
    let raw = encode_request(&eap, SECRET).unwrap();
    assert!(verify_request(&raw, SECRET).unwrap().message_authenticator);

    let mut challenge = Packet::new(Code::AccessChallenge, 2, [0; 16]);
    challenge.push(attr::EAP_MESSAGE, vec![1, 1, 0, 4]);
    let raw = encode_response(&challenge, &RA, SECRET).unwrap();
    assert_eq!(
        verify_response(&raw, &RA, SECRET),
        Err(AuthError::MissingMessageAuthenticator)
    );
}

#[test]
fn message_authenticator_is_found_anywhere_and_only_once() {
    // Placed last instead of first: still computed and verified.
    let mut req = Packet::new(Code::AccessRequest, 3, RA);
    req.push(attr::USER_NAME, &b"nemo"[..]);
    req.push(attr::PROXY_STATE, &b"x"[..]);
    req.push(attr::MESSAGE_AUTHENTICATOR, vec![0; 16]);
    let raw = encode_request(&req, SECRET).unwrap();
    assert!(verify_request(&raw, SECRET).unwrap().message_authenticator);
    // A second MA (valid or not) is refused outright, never "the first one wins".
    let mut twice = raw.clone();
    twice.extend_from_slice(&raw[raw.len() - 18..]);
    let len = u16::try_from(twice.len()).unwrap();
    twice[2..4].copy_from_slice(&len.to_be_bytes());
    assert!(matches!(
        verify_request(&twice, SECRET),
        Err(AuthError::Malformed(_))
    ));
}

#[test]
fn new_request_draws_unique_authenticators() {
    // security.md T-03 asks for 10^6 in the security suite; 10^5 keeps the unit run fast.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..100_000 {
        assert!(seen.insert(Packet::new_request(Code::AccessRequest, 1).authenticator));
    }
    assert!(!seen.contains(&[0; 16]));
}

#[test]
fn prepared_secrets_sign_and_verify_like_raw_ones() {
    use crate::radius::auth::PreparedSecret;
    let prepared = PreparedSecret::new(SECRET);
    assert_eq!(format!("{prepared:?}"), "PreparedSecret(<redacted>)");
    let mut accept = Packet::new(Code::AccessAccept, 0x2a, [0; 16]);
    accept.push(attr::REPLY_MESSAGE, &b"ok"[..]);
    accept.set_message_authenticator_first();
    assert_eq!(
        encode_response(&accept, &RA, &prepared).unwrap(),
        hex(KAT_ACCEPT)
    );
    assert!(
        verify_response(&hex(KAT_ACCEPT), &RA, &prepared)
            .unwrap()
            .message_authenticator
    );
    let req = hex(KAT_ACCESS_REQUEST);
    assert!(
        verify_request(&req, &prepared)
            .unwrap()
            .message_authenticator
    );
    assert_eq!(
        verify_request(&req, &PreparedSecret::new(b"xyzzy5460")),
        Err(AuthError::BadMessageAuthenticator)
    );
    let mut acct = Packet::decode(&hex(KAT_ACCOUNTING)).unwrap();
    acct.attributes[3].value = vec![0; 16];
    assert_eq!(
        encode_request(&acct, &prepared).unwrap(),
        hex(KAT_ACCOUNTING)
    );
}
