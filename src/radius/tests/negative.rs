//! The negative corpus (protocol.md §3): every case is refused, by decode and by the
//! verifiers, without a panic. Cases are from FreeRADIUS's `errors.txt` and layeh/radius
//! (the cases, not the code) plus our own.

use super::SECRET;
use crate::radius::attr;
use crate::radius::auth::{AuthError, verify_request, verify_response};
use crate::radius::code::Code;
use crate::radius::crypt::{CryptError, Keying, unhide_password};
use crate::radius::packet::{DecodeError, EncodeError, MAX_ATTRIBUTES, Packet};

/// A datagram: header with `code` and Length `length`, then `attrs` as given.
fn datagram(code: u8, length: usize, attrs: &[u8]) -> Vec<u8> {
    let mut v = vec![code, 0x42];
    v.extend_from_slice(&u16::try_from(length).unwrap().to_be_bytes());
    v.extend_from_slice(&[0x11; 16]);
    v.extend_from_slice(attrs);
    v
}

/// A datagram whose Length matches its attributes.
fn packet(code: u8, attrs: &[u8]) -> Vec<u8> {
    datagram(code, 20 + attrs.len(), attrs)
}

/// The decode verdict, after checking that both verifiers refuse the same octets.
fn refused(raw: &[u8]) -> DecodeError {
    let err = Packet::decode(raw).expect_err("must not decode");
    assert!(
        matches!(verify_request(raw, SECRET), Err(AuthError::Malformed(_))),
        "{err}"
    );
    assert!(
        matches!(
            verify_response(raw, &[0; 16], SECRET),
            Err(AuthError::Malformed(_))
        ),
        "{err}"
    );
    err
}

const MA_ZERO: [u8; 18] = [80, 18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

#[test]
fn short_datagrams() {
    assert_eq!(refused(&[1; 19]), DecodeError::TooShort(19));
    assert_eq!(refused(&[1; 10]), DecodeError::TooShort(10));
    assert_eq!(refused(&[]), DecodeError::TooShort(0));
}

#[test]
fn unknown_codes() {
    for code in [0, 53, 255] {
        assert_eq!(refused(&packet(code, &[])), DecodeError::UnknownCode(code));
    }
}

#[test]
fn header_length_outside_the_datagram() {
    assert_eq!(refused(&datagram(1, 19, &[])), DecodeError::BadLength(19));
    assert_eq!(refused(&datagram(1, 0, &[])), DecodeError::BadLength(0));
    assert_eq!(
        refused(&datagram(1, 4097, &[0; 4077])),
        DecodeError::BadLength(4097)
    );
    assert_eq!(
        refused(&datagram(1, 27, &[1, 6, b'n', b'e', b'm', b'o'])),
        DecodeError::Truncated {
            length: 27,
            actual: 26
        }
    );
}

#[test]
fn attribute_headers() {
    // Header overflow: one octet where a type and a length are needed.
    assert_eq!(
        refused(&packet(1, &[1])),
        DecodeError::AttributeOverflow(20)
    );
    assert_eq!(refused(&packet(1, &[0, 2])), DecodeError::ReservedType(20));
    for len in [0, 1] {
        let want = DecodeError::BadAttributeLength {
            offset: 20,
            length: usize::from(len),
        };
        assert_eq!(refused(&packet(1, &[1, len, b'x', b'y'])), want);
    }
    // The length runs past the packet: 255 claimed with 3 octets present.
    assert_eq!(
        refused(&packet(1, &[18, 255, b'x'])),
        DecodeError::AttributeOverflow(20)
    );
    assert_eq!(
        refused(&packet(1, &[18, 4, b'x'])),
        DecodeError::AttributeOverflow(20)
    );
}

#[test]
fn attribute_overflowing_length_into_padding() {
    // The attribute fits in the datagram but not in the Length: padding is not packet.
    let mut raw = datagram(1, 23, &[18, 5, b'a', b'b', b'c']);
    assert_eq!(refused(&raw), DecodeError::AttributeOverflow(20));
    raw[3] = 25;
    Packet::decode(&raw).unwrap();
}

#[test]
fn a_bad_attribute_after_a_good_one() {
    let raw = packet(1, &[1, 6, b'n', b'e', b'm', b'o', 18, 1]);
    assert_eq!(
        refused(&raw),
        DecodeError::BadAttributeLength {
            offset: 26,
            length: 1
        }
    );
    let raw = packet(1, &[1, 6, b'n', b'e', b'm', b'o', 0, 3, b'x']);
    assert_eq!(refused(&raw), DecodeError::ReservedType(26));
}

#[test]
fn message_authenticator_length_must_be_18() {
    for len in [2usize, 17, 19, 34] {
        let mut attrs = vec![80, u8::try_from(len).unwrap()];
        attrs.resize(len, 0);
        assert_eq!(
            refused(&packet(1, &attrs)),
            DecodeError::BadMessageAuthenticator(len - 2)
        );
    }
}

#[test]
fn duplicate_singletons() {
    for typ in [
        attr::USER_NAME,
        attr::USER_PASSWORD,
        attr::CHAP_PASSWORD,
        attr::STATE,
    ] {
        let raw = packet(1, &[typ, 3, b'a', 18, 3, b'm', typ, 3, b'b']);
        assert_eq!(refused(&raw), DecodeError::Duplicate(typ));
    }
    let mut attrs = MA_ZERO.to_vec();
    attrs.extend_from_slice(&MA_ZERO);
    assert_eq!(
        refused(&packet(1, &attrs)),
        DecodeError::Duplicate(attr::MESSAGE_AUTHENTICATOR)
    );
    // Repeatable attributes may repeat.
    let raw = packet(1, &[33, 3, b'a', 33, 3, b'b', 18, 2, 18, 2]);
    assert_eq!(Packet::decode(&raw).unwrap().proxy_states().count(), 2);
}

#[test]
fn status_server_and_eap_message_without_message_authenticator() {
    assert_eq!(
        verify_request(&packet(12, &[]), SECRET),
        Err(AuthError::MissingMessageAuthenticator)
    );
    let eap = packet(1, &[79, 6, 2, 0, 0, 4]);
    assert_eq!(
        verify_request(&eap, SECRET),
        Err(AuthError::MissingMessageAuthenticator)
    );
}

#[test]
fn password_lengths_that_cannot_be_hidden_values() {
    let keying = Keying {
        secret: SECRET,
        authenticator: &[0x11; 16],
    };
    for len in [0usize, 15, 17, 144] {
        let mut attrs = vec![2, u8::try_from(len + 2).unwrap()];
        attrs.resize(len + 2, 0x5a);
        // The packet itself is well formed; the password inside is not.
        let p = Packet::decode(&packet(1, &attrs)).unwrap();
        let hidden = p.attr(attr::USER_PASSWORD).unwrap();
        assert_eq!(
            unhide_password(hidden, keying),
            Err(CryptError::BadHiddenLength(len))
        );
    }
}

#[test]
fn length_4096_is_the_limit() {
    // 4096 octets exactly: 15 attributes of 255 octets and one of 251.
    let mut attrs = Vec::new();
    for _ in 0..15 {
        attrs.extend_from_slice(&[26, 255]);
        attrs.extend_from_slice(&[0; 253]);
    }
    attrs.extend_from_slice(&[26, 251]);
    attrs.resize(4076, 0);
    let raw = packet(2, &attrs);
    assert_eq!(raw.len(), 4096);
    assert_eq!(Packet::decode(&raw).unwrap().encode().unwrap(), raw);
    // One more octet of packet is refused; one more octet of padding is not.
    let mut longer = raw.clone();
    longer.push(0);
    assert!(Packet::decode(&longer).is_ok());
    longer[2..4].copy_from_slice(&4097u16.to_be_bytes());
    assert_eq!(refused(&longer), DecodeError::BadLength(4097));
}

#[test]
fn trailing_padding_is_ignored_not_decoded() {
    let mut raw = packet(2, &[18, 4, b'o', b'k']);
    raw.extend_from_slice(&[0, 7, 1, 255, 255]);
    let p = Packet::decode(&raw).unwrap();
    assert_eq!(p.attributes.len(), 1);
    assert_eq!(p.encode().unwrap(), raw[..24]);
}

#[test]
fn more_than_200_attributes() {
    let exactly: Vec<u8> = [18, 2].repeat(MAX_ATTRIBUTES);
    assert_eq!(
        Packet::decode(&packet(2, &exactly))
            .unwrap()
            .attributes
            .len(),
        200
    );
    let over: Vec<u8> = [18, 2].repeat(MAX_ATTRIBUTES + 1);
    assert_eq!(
        Packet::decode(&packet(2, &over)),
        Err(DecodeError::TooManyAttributes)
    );
}

#[test]
fn encode_refuses_what_decode_refuses() {
    let encode = |attrs: &[(u8, Vec<u8>)]| {
        let mut p = Packet::new(Code::AccessRequest, 1, [0; 16]);
        for (typ, value) in attrs {
            p.push(*typ, value.clone());
        }
        p.encode()
    };
    // layeh/radius: an attribute value over 253 octets must not encode (no truncation).
    assert_eq!(
        encode(&[(18, vec![0; 254])]),
        Err(EncodeError::ValueTooLong { typ: 18, len: 254 })
    );
    assert_eq!(encode(&[(0, vec![])]), Err(EncodeError::ReservedType));
    assert_eq!(
        encode(&[(1, vec![1]), (1, vec![2])]),
        Err(EncodeError::Duplicate(1))
    );
    assert_eq!(
        encode(&[(80, vec![0; 15])]),
        Err(EncodeError::BadMessageAuthenticator(15))
    );
    let many = vec![(18, vec![]); 201];
    assert_eq!(encode(&many), Err(EncodeError::TooManyAttributes(201)));
    // 4097 octets: refused, never truncated.
    let mut big = vec![(26, vec![0; 253]); 15];
    big.push((26, vec![0; 250]));
    assert_eq!(encode(&big), Err(EncodeError::TooLong(4097)));
    big.last_mut().unwrap().1.pop();
    assert_eq!(encode(&big).unwrap().len(), 4096);
}
