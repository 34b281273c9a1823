//! User-Password, Tunnel-Password and MS-MPPE keys: known answers from `kat.py`
//! (Python's hashlib, not our code), format details, and re-encryption.

use std::collections::HashSet;

use super::hex;
use crate::radius::attr;
use crate::radius::code::Code;
use crate::radius::crypt::{
    CryptError, Keying, Salts, hide_password, reencrypt_password, reencrypt_salted,
    reencrypt_salted_attributes, reencrypt_tunnel_password, salt_decrypt, salt_encrypt,
    tunnel_password_decrypt, tunnel_password_encrypt, unhide_password,
};
use crate::radius::packet::Packet;

const RA: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const KAT_TUNNEL_PASSWORD: &str = "01812373a996ca2c86b32157dccb4733cdf67e";
const KAT_MPPE_RECV_KEY: &str = "8456ad9762de3c0797fb5f80c0744ae9183babbd3a005e22d456df9528125a299f2f\
    001f8b12ebe2057305a8efcda313c35b";

fn keying_a() -> Keying<'static> {
    Keying {
        secret: b"xyzzy5461",
        authenticator: &RA,
    }
}

fn keying_b() -> Keying<'static> {
    Keying {
        secret: b"another secret",
        authenticator: &[0xb0; 16],
    }
}

fn mppe_key() -> Vec<u8> {
    (1..=32).collect()
}

#[test]
fn tunnel_password_known_answer() {
    let value = tunnel_password_encrypt(1, b"hunter2", keying_a(), [0x81, 0x23]).unwrap();
    assert_eq!(value, hex(KAT_TUNNEL_PASSWORD));
    // tag ‖ salt (high bit set) ‖ one block, whose first octet decrypts to the length.
    assert_eq!(value.len(), 1 + 2 + 16);
    assert_eq!(value[0], 1);
    assert_eq!(value[1] & 0x80, 0x80);
    let (tag, plain) = tunnel_password_decrypt(&value, keying_a()).unwrap();
    assert_eq!((tag, plain.as_slice()), (1, &b"hunter2"[..]));
}

#[test]
fn mppe_key_known_answer() {
    let value = salt_encrypt(&mppe_key(), keying_a(), [0x84, 0x56]).unwrap();
    assert_eq!(value, hex(KAT_MPPE_RECV_KEY));
    // A 32-octet key plus its length octet takes three blocks.
    assert_eq!(value.len(), 2 + 48);
    assert_eq!(
        salt_decrypt(&value, keying_a()).unwrap().as_slice(),
        &mppe_key()[..]
    );
}

#[test]
fn salted_values_keep_the_length_octet() {
    for len in [0usize, 1, 14, 15, 16, 31, 32, 238, 239] {
        let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let value = salt_encrypt(&plain, keying_a(), [0x80, 0x01]).unwrap();
        assert_eq!(value.len(), 2 + (len + 1).div_ceil(16) * 16, "length {len}");
        assert_eq!(
            salt_decrypt(&value, keying_a()).unwrap().as_slice(),
            &plain[..]
        );
    }
    assert_eq!(
        salt_encrypt(&[0; 240], keying_a(), [0x80, 1]),
        Err(CryptError::TooLong(240))
    );
}

#[test]
fn salted_values_refuse_bad_salts_and_keys() {
    let value = hex(KAT_MPPE_RECV_KEY);
    let mut low_salt = value.clone();
    low_salt[0] &= 0x7f;
    assert_eq!(
        salt_decrypt(&low_salt, keying_a()),
        Err(CryptError::BadSalt)
    );
    assert_eq!(
        salt_decrypt(&value[..2], keying_a()),
        Err(CryptError::BadSalt)
    );
    assert_eq!(
        salt_decrypt(&value[..20], keying_a()),
        Err(CryptError::BadSalt)
    );
    assert_eq!(
        tunnel_password_decrypt(&[], keying_a()),
        Err(CryptError::BadSalt)
    );
    // Under the wrong keying the length octet is noise; here (checked) it does not fit.
    assert_eq!(
        salt_decrypt(&value, keying_b()),
        Err(CryptError::BadInnerLength)
    );
}

#[test]
fn reencrypt_salted_moves_keying_and_salt() {
    let old = hex(KAT_MPPE_RECV_KEY);
    let mut salts = Salts::new();
    let moved = reencrypt_salted(&old, keying_a(), keying_b(), &mut salts).unwrap();
    assert_ne!(moved[..2], old[..2], "a fresh salt");
    assert_eq!(moved[0] & 0x80, 0x80);
    assert_eq!(
        salt_decrypt(&moved, keying_b()).unwrap().as_slice(),
        &mppe_key()[..]
    );
    assert!(salt_decrypt(&moved, keying_a()).map_or(true, |p| p.as_slice() != mppe_key()));

    let tunnel = hex(KAT_TUNNEL_PASSWORD);
    let moved = reencrypt_tunnel_password(&tunnel, keying_a(), keying_b(), &mut salts).unwrap();
    assert_ne!(moved[1..3], tunnel[1..3]);
    let (tag, plain) = tunnel_password_decrypt(&moved, keying_b()).unwrap();
    assert_eq!((tag, plain.as_slice()), (1, &b"hunter2"[..]));
}

#[test]
fn reencrypt_never_keeps_the_old_salt() {
    // Salts counts upwards, so every salt value comes round; the old one must be skipped.
    let old = salt_encrypt(b"k", keying_a(), [0x80, 0x00]).unwrap();
    let mut salts = Salts::new();
    for _ in 0..=0x8000 {
        let moved = reencrypt_salted(&old, keying_a(), keying_a(), &mut salts).unwrap();
        assert_ne!(moved[..2], old[..2]);
    }
}

#[test]
fn salts_are_unique_within_a_packet() {
    let mut salts = Salts::new();
    let mut seen = HashSet::new();
    for _ in 0..0x8000 {
        let salt = salts.next_salt();
        assert_eq!(salt[0] & 0x80, 0x80);
        assert!(seen.insert(salt));
    }
}

/// An upstream Access-Accept with two Tunnel-Passwords and both MPPE keys (in one VSA,
/// next to another Microsoft attribute), keyed for the upstream.
fn upstream_accept() -> Packet {
    let mut p = Packet::new(Code::AccessAccept, 4, [0; 16]);
    let tp1 = tunnel_password_encrypt(1, b"hunter2", keying_a(), [0x81, 0x23]).unwrap();
    let tp2 = tunnel_password_encrypt(2, b"tunnel two", keying_a(), [0x81, 0x24]).unwrap();
    let send = salt_encrypt(&mppe_key(), keying_a(), [0x84, 0x56]).unwrap();
    let recv = salt_encrypt(&[0x77; 32], keying_a(), [0x84, 0x57]).unwrap();
    let mut vsa = attr::VENDOR_MICROSOFT.to_be_bytes().to_vec();
    for (ty, v) in [
        (attr::MS_MPPE_SEND_KEY, &send[..]),
        (7, &[0, 0, 0, 1][..]),
        (attr::MS_MPPE_RECV_KEY, &recv[..]),
    ] {
        vsa.push(ty);
        vsa.push(u8::try_from(v.len() + 2).unwrap());
        vsa.extend_from_slice(v);
    }
    p.push(attr::TUNNEL_PASSWORD, tp1);
    p.push(attr::VENDOR_SPECIFIC, vsa);
    p.push(
        attr::VENDOR_SPECIFIC,
        attr::build_vsa(9, 1, b"ip:source-ip=192.0.2.1").unwrap(),
    );
    p.push(attr::TUNNEL_PASSWORD, tp2);
    p
}

#[test]
fn reencrypt_salted_attributes_moves_every_key_with_unique_salts() {
    let before = upstream_accept();
    let mut after = before.clone();
    assert_eq!(
        reencrypt_salted_attributes(&mut after, keying_a(), keying_b()),
        Ok(3)
    );
    assert_eq!(
        after.attributes[2], before.attributes[2],
        "other vendors untouched"
    );

    let tunnel: Vec<_> = after.attrs(attr::TUNNEL_PASSWORD).collect();
    let send = after
        .vendor_attrs(attr::VENDOR_MICROSOFT, attr::MS_MPPE_SEND_KEY)
        .next()
        .unwrap();
    let recv = after
        .vendor_attrs(attr::VENDOR_MICROSOFT, attr::MS_MPPE_RECV_KEY)
        .next()
        .unwrap();
    let policy = after
        .vendor_attrs(attr::VENDOR_MICROSOFT, 7)
        .next()
        .unwrap();
    assert_eq!(policy, [0, 0, 0, 1]);
    let salts: HashSet<_> = [&tunnel[0][1..3], &tunnel[1][1..3], &send[..2], &recv[..2]]
        .into_iter()
        .collect();
    assert_eq!(salts.len(), 4, "four salted values, four salts");
    assert_eq!(
        tunnel_password_decrypt(tunnel[0], keying_b())
            .unwrap()
            .1
            .as_slice(),
        b"hunter2"
    );
    assert_eq!(
        tunnel_password_decrypt(tunnel[1], keying_b())
            .unwrap()
            .1
            .as_slice(),
        b"tunnel two"
    );
    assert_eq!(
        salt_decrypt(send, keying_b()).unwrap().as_slice(),
        &mppe_key()[..]
    );
    assert_eq!(
        salt_decrypt(recv, keying_b()).unwrap().as_slice(),
        &[0x77; 32]
    );
    after.encode().unwrap();
}

#[test]
fn reencrypt_salted_attributes_is_all_or_nothing() {
    let mut p = upstream_accept();
    // A third Tunnel-Password that does not decrypt under the upstream keying.
    p.push(
        attr::TUNNEL_PASSWORD,
        tunnel_password_encrypt(3, b"x", keying_b(), [0x80, 9]).unwrap(),
    );
    let before = p.clone();
    assert!(reencrypt_salted_attributes(&mut p, keying_a(), keying_b()).is_err());
    assert_eq!(p, before);

    let mut broken = Packet::new(Code::AccessAccept, 4, [0; 16]);
    broken.push(attr::VENDOR_SPECIFIC, vec![0, 0, 1, 55, 16, 40, 1, 2]);
    assert_eq!(
        reencrypt_salted_attributes(&mut broken, keying_a(), keying_b()),
        Err(CryptError::MalformedVendorSpecific)
    );
}

#[test]
fn user_password_round_trips_and_moves() {
    for len in [1usize, 15, 16, 17, 100, 128] {
        let pw: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        let hidden = hide_password(&pw, keying_a()).unwrap();
        assert_eq!(hidden.len(), len.div_ceil(16) * 16);
        let moved = reencrypt_password(&hidden, keying_a(), keying_b()).unwrap();
        assert_eq!(
            unhide_password(&moved, keying_b()).unwrap().as_slice(),
            &pw[..]
        );
    }
    assert_eq!(
        hide_password(&[b'x'; 129], keying_a()),
        Err(CryptError::PasswordTooLong(129))
    );
    // The empty password is one block of padding.
    assert_eq!(hide_password(b"", keying_a()).unwrap().len(), 16);
}

#[test]
fn unhide_refuses_bad_lengths() {
    for len in [0, 15, 17, 144, 129, 160] {
        assert_eq!(
            unhide_password(&vec![0x42; len], keying_a()),
            Err(CryptError::BadHiddenLength(len)),
            "length {len}"
        );
    }
}
