//! Cross-checks against the `radius` 0.4 crate, only where it is right (crates.md §1):
//! User-Password hiding and the Response Authenticator. Never for Message-Authenticator,
//! Tunnel-Password or VSAs, which it gets wrong or lacks.

use proptest::collection::vec;
use proptest::prelude::*;
use radius::core::code::Code as TheirCode;
use radius::core::packet::Packet as TheirPacket;
use radius::core::rfc2865;

use crate::radius::attr;
use crate::radius::auth::{encode_request, encode_response, verify_response};
use crate::radius::code::Code;
use crate::radius::crypt::{Keying, hide_password, unhide_password};
use crate::radius::packet::Packet;

/// Passwords the other crate can carry: it truncates at the first NUL when unhiding.
fn password() -> impl Strategy<Value = Vec<u8>> {
    vec(1u8..=255, 1..=128)
}

fn secret() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 1..40)
}

/// Our Access-Request with a hidden password, as octets.
fn our_request(user: &[u8], pw: &[u8], secret: &[u8], id: u8) -> Vec<u8> {
    let mut req = Packet::new_request(Code::AccessRequest, id);
    let keying = Keying {
        secret,
        authenticator: &req.authenticator,
    };
    let hidden = hide_password(pw, keying).unwrap();
    req.push(attr::USER_NAME, user);
    req.push(attr::USER_PASSWORD, hidden);
    encode_request(&req, secret).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn they_unhide_our_password(pw in password(), secret in secret(), id in any::<u8>()) {
        let raw = our_request(b"alice", &pw, &secret, id);
        let theirs = TheirPacket::decode(&raw, &secret).unwrap();
        prop_assert_eq!(theirs.get_identifier(), id);
        prop_assert_eq!(rfc2865::lookup_user_name(&theirs).unwrap().unwrap(), "alice");
        prop_assert_eq!(rfc2865::lookup_user_password(&theirs).unwrap().unwrap(), pw);
    }

    #[test]
    fn we_unhide_their_password(pw in password(), secret in secret(), id in any::<u8>()) {
        let mut theirs = TheirPacket::new_with_identifier(TheirCode::AccessRequest, &secret, id);
        rfc2865::add_user_name(&mut theirs, "bob");
        rfc2865::add_user_password(&mut theirs, &pw).unwrap();
        let raw = theirs.encode().unwrap();
        let ours = Packet::decode(&raw).unwrap();
        prop_assert_eq!(ours.user_name(), Some(&b"bob"[..]));
        let keying = Keying { secret: &secret, authenticator: &ours.authenticator };
        let hidden = ours.attr(attr::USER_PASSWORD).unwrap();
        let plain = unhide_password(hidden, keying).unwrap();
        prop_assert_eq!(plain.as_slice(), &pw[..]);
    }

    #[test]
    fn response_authenticators_agree(secret in secret(), msg in "[ -~]{1,200}", id in any::<u8>()) {
        // Theirs → ours: an Accept they sign for their request verifies with us.
        let mut req = TheirPacket::new_with_identifier(TheirCode::AccessRequest, &secret, id);
        rfc2865::add_user_name(&mut req, "carol");
        let req_raw = req.encode().unwrap();
        let mut acc = req.make_response_packet(TheirCode::AccessAccept);
        rfc2865::add_reply_message(&mut acc, &msg);
        let acc_raw = acc.encode().unwrap();
        let ra: [u8; 16] = req_raw[4..20].try_into().unwrap();
        verify_response(&acc_raw, &ra, &secret).unwrap();

        // Ours → theirs: a Reject we sign for that request verifies with them, and is
        // byte-identical to theirs when the attributes are the same.
        let mut rej = Packet::new(Code::AccessReject, id, [0; 16]);
        rej.push(attr::REPLY_MESSAGE, msg.as_bytes());
        let rej_raw = encode_response(&rej, &ra, &secret).unwrap();
        prop_assert!(TheirPacket::is_authentic_response(&rej_raw, &req_raw, &secret));
        let ours_accept = Packet::decode(&acc_raw).unwrap();
        prop_assert_eq!(encode_response(&ours_accept, &ra, &secret).unwrap(), acc_raw);
    }
}
