//! Properties over generated input: the readers of untrusted octets never panic, and
//! encoding, hiding and signing round-trip.

use proptest::collection::vec;
use proptest::prelude::*;

use crate::radius::attr;
use crate::radius::auth::{encode_request, encode_response, verify_request, verify_response};
use crate::radius::code::Code;
use crate::radius::crypt::{Keying, hide_password, salt_decrypt, salt_encrypt, unhide_password};
use crate::radius::fuzz::decode_target;
use crate::radius::packet::{MAX_ATTRIBUTES, MAX_PACKET_LEN, Packet};

const CODES: [u8; 14] = [1, 2, 3, 4, 5, 11, 12, 13, 40, 41, 42, 43, 44, 45];
const SINGLETONS: [u8; 5] = [1, 2, 3, 24, 80];

/// Random octets behind a plausible header (known code, Length that fits or nearly
/// does), so that most cases reach the attribute walk instead of failing on the header.
fn plausible_datagram() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(&CODES[..]),
        any::<[u8; 17]>(),
        vec(any::<u8>(), 0..600),
        -3i32..4,
    )
        .prop_map(|(code, head, body, slack)| {
            let len = (20 + body.len() as i32 + slack).clamp(0, 0xffff) as u16;
            let mut raw = vec![code, head[0]];
            raw.extend_from_slice(&len.to_be_bytes());
            raw.extend_from_slice(&head[1..]);
            raw.extend_from_slice(&body);
            raw
        })
}

/// Attributes that may repeat: any non-singleton type, VSAs, RFC 6929 extended ones.
fn repeatable() -> impl Strategy<Value = (u8, Vec<u8>)> {
    let plain = (1u8..=255)
        .prop_filter("not a singleton", |t| !SINGLETONS.contains(t))
        .prop_flat_map(|t| (Just(t), vec(any::<u8>(), 0..=253)));
    let vsa = (any::<u32>(), any::<u8>(), vec(any::<u8>(), 0..=247))
        .prop_map(|(v, t, val)| (attr::VENDOR_SPECIFIC, attr::build_vsa(v, t, &val).unwrap()));
    let extended = (241u8..=246, vec(any::<u8>(), 1..=253));
    let proxy_state = vec(any::<u8>(), 0..=253).prop_map(|v| (attr::PROXY_STATE, v));
    prop_oneof![plain, vsa, extended, proxy_state]
}

/// The singletons, each present or not, each with a position.
fn singletons() -> impl Strategy<Value = Vec<(usize, u8, Vec<u8>)>> {
    let one = |typ: u8, value: BoxedStrategy<Vec<u8>>| {
        proptest::option::of((any::<usize>(), value))
            .prop_map(move |o| o.map(|(at, v)| (at, typ, v)))
    };
    let password = (1usize..=8)
        .prop_flat_map(|blocks| vec(any::<u8>(), blocks * 16))
        .boxed();
    (
        one(attr::USER_NAME, vec(any::<u8>(), 1..=253).boxed()),
        one(attr::USER_PASSWORD, password),
        one(attr::STATE, vec(any::<u8>(), 1..=253).boxed()),
        one(attr::MESSAGE_AUTHENTICATOR, vec(any::<u8>(), 16).boxed()),
    )
        .prop_map(|(a, b, c, d)| [a, b, c, d].into_iter().flatten().collect())
}

/// A valid packet: known code, singletons at most once, at most 200 attributes and
/// 4096 octets.
fn valid_packet() -> impl Strategy<Value = Packet> {
    (
        prop::sample::select(&CODES[..]),
        any::<u8>(),
        any::<[u8; 16]>(),
        vec(repeatable(), 0..40),
        singletons(),
    )
        .prop_map(|(code, id, auth, attrs, singles)| {
            let code = Code::from_u8(code).unwrap();
            let mut p = Packet::new(code, id, auth);
            for (typ, value) in attrs {
                p.push(typ, value);
            }
            for (at, typ, value) in singles {
                let at = at % (p.attributes.len() + 1);
                p.attributes
                    .insert(at, crate::radius::Attribute { typ, value });
            }
            while p.encoded_len() > MAX_PACKET_LEN || p.attributes.len() > MAX_ATTRIBUTES {
                p.attributes.pop();
            }
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_octets_never_panic(raw in vec(any::<u8>(), 0..=4096), auth in any::<[u8; 16]>()) {
        let keying = Keying { secret: b"s", authenticator: &auth };
        let _ = Packet::decode(&raw);
        let _ = verify_request(&raw, b"s");
        let _ = verify_response(&raw, &auth, b"s");
        let _ = salt_decrypt(&raw, keying);
        let _ = unhide_password(&raw, keying);
        prop_assert_eq!(decode_target(&raw), Ok(()));
    }

    #[test]
    fn plausible_datagrams_never_panic_and_keep_invariants(raw in plausible_datagram()) {
        prop_assert_eq!(decode_target(&raw), Ok(()));
        if let Ok(p) = Packet::decode(&raw) {
            prop_assert_eq!(p.encode().unwrap(), &raw[..p.encoded_len()]);
        }
    }

    #[test]
    fn decode_inverts_encode(p in valid_packet()) {
        let raw = p.encode().unwrap();
        prop_assert_eq!(raw.len(), p.encoded_len());
        let q = Packet::decode(&raw).unwrap();
        prop_assert_eq!(&q, &p);
        prop_assert_eq!(q.encode().unwrap(), raw.clone());
        prop_assert_eq!(decode_target(&raw), Ok(()));
    }

    #[test]
    fn signed_packets_verify(mut p in valid_packet(), secret in vec(any::<u8>(), 1..64), ra in any::<[u8; 16]>()) {
        p.set_message_authenticator_first();
        if let Ok(raw) = encode_response(&p, &ra, &secret) {
            prop_assert!(verify_response(&raw, &ra, &secret).unwrap().message_authenticator);
            prop_assert_eq!(raw[20], attr::MESSAGE_AUTHENTICATOR);
        }
        if let Ok(raw) = encode_request(&p, &secret) {
            prop_assert!(verify_request(&raw, &secret).unwrap().message_authenticator);
            // A prepared secret is the same secret: each verifies what the other signed.
            let prepared = crate::radius::PreparedSecret::new(&secret);
            prop_assert!(verify_request(&raw, &prepared).unwrap().message_authenticator);
            prop_assert_eq!(encode_request(&p, &prepared).unwrap(), raw);
        }
    }

    #[test]
    fn hide_then_unhide_is_identity(
        pw in vec(any::<u8>(), 1..=128).prop_filter("no trailing NUL", |p| p.last() != Some(&0)),
        secret in vec(any::<u8>(), 1..64),
        ra in any::<[u8; 16]>(),
    ) {
        let keying = Keying { secret: &secret, authenticator: &ra };
        let hidden = hide_password(&pw, keying).unwrap();
        prop_assert_eq!(hidden.len(), pw.len().div_ceil(16) * 16);
        let plain = unhide_password(&hidden, keying).unwrap();
        prop_assert_eq!(plain.as_slice(), &pw[..]);
    }

    #[test]
    fn salt_encrypt_then_decrypt_is_identity(
        plain in vec(any::<u8>(), 0..=239),
        secret in vec(any::<u8>(), 1..64),
        ra in any::<[u8; 16]>(),
        salt in any::<u16>(),
    ) {
        let keying = Keying { secret: &secret, authenticator: &ra };
        let salt = (salt | 0x8000).to_be_bytes();
        let value = salt_encrypt(&plain, keying, salt).unwrap();
        prop_assert_eq!(&value[..2], &salt[..]);
        let back = salt_decrypt(&value, keying).unwrap();
        prop_assert_eq!(back.as_slice(), &plain[..]);
    }
}
