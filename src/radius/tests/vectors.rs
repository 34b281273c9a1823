//! The RFC 2865 §7 and RFC 5997 §6 example packets (protocol.md §3), secret `xyzzy5461`.

use super::{SECRET, authenticator, hex};
use crate::radius::attr;
use crate::radius::auth::{AuthError, verify_request, verify_response};
use crate::radius::code::Code;
use crate::radius::crypt::{Keying, unhide_password};
use crate::radius::packet::{DecodeError, Packet};

const REQ_7_1: &str = "01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb 98 f4 22 7a 01 06 6e 65 6d 6f \
    02 12 0d be 70 8d 93 d4 13 ce 31 96 e4 3f 78 2a 0a ee 04 06 c0 a8 01 10 05 06 00 00 00 03";
const ACC_7_1: &str = "02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf 9b 55 e0 b2 06 06 00 00 00 01 \
    0f 06 00 00 00 00 0e 06 c0 a8 01 03";
const REQ_7_2: &str = "01 01 00 47 2a ee 86 f0 8d 0d 55 96 9c a5 97 8e 0d 33 67 a2 01 08 66 6c 6f 70 \
    73 79 03 13 16 e9 75 57 c3 16 18 58 95 f2 93 ff 63 44 07 72 75 04 06 c0 a8 01 10 05 06 00 00 00 14 \
    06 06 00 00 00 02 07 06 00 00 00 01";
const ACC_7_2: &str = "02 01 00 38 15 ef bc 7d ab 26 cf a3 dc 34 d9 c0 3c 86 01 a4 06 06 00 00 00 02 \
    07 06 00 00 00 01 08 06 ff ff ff fe 0a 06 00 00 00 02 0d 06 00 00 00 01 0c 06 00 00 05 dc";
const REQ1_7_3: &str = "01 02 00 39 f3 a4 7a 1f 6a 6d 76 71 0b 94 7a b9 30 41 a0 39 01 07 6d 6f 70 73 \
    79 02 12 33 65 75 73 77 82 89 b5 70 88 5e 15 08 48 25 c5 04 06 c0 a8 01 10 05 06 00 00 00 07";
const CHAL_7_3: &str = "0b 02 00 4e 36 f3 c8 76 4a e8 c7 11 57 40 3c 0c 71 ff 9c 45 12 30 43 68 61 6c \
    6c 65 6e 67 65 20 33 32 37 36 39 34 33 30 2e 20 20 45 6e 74 65 72 20 72 65 73 70 6f 6e 73 65 20 61 \
    74 20 70 72 6f 6d 70 74 2e 18 0a 33 32 37 36 39 34 33 30";
/// As printed in the RFC: the State length octet says 0x10 but 8 value octets follow.
const REQ2_7_3_PRINTED: &str = "01 03 00 43 b1 22 55 6d 42 8a 13 d0 d6 25 38 07 c4 57 ec f0 01 07 6d \
    6f 70 73 79 02 12 69 2c 1f 20 5f c0 81 b9 19 b9 51 95 f5 61 a5 81 04 06 c0 a8 01 10 05 06 00 00 00 \
    07 18 10 33 32 37 36 39 34 33 30";
const REJ_7_3: &str = "03 03 00 14 a4 2f 4f ca 45 91 6c 4e 09 c8 34 0f 9e 74 6a a0";
const STATUS_6_1: &str = "0c da 00 26 8a 54 f4 68 6f b3 94 c5 28 66 e3 02 18 5d 06 23 50 12 5a 66 \
    5e 2e 1e 84 11 f3 e2 43 82 20 97 c8 4f a3";
const STATUS_ACC_6_1: &str = "02 da 00 14 ef 0d 55 2a 4b f2 d6 93 ec 2b 6f e8 b5 41 1d 66";

/// req2 of §7.3 with the State length octet corrected to 0x0a.
fn req2_corrected() -> Vec<u8> {
    let mut raw = hex(REQ2_7_3_PRINTED);
    let at = raw.len() - 9;
    assert_eq!(raw[at - 1..at + 1], [0x18, 0x10], "State attribute header");
    raw[at] = 0x0a;
    raw
}

/// Decodes, checks that re-encoding gives the same octets, and returns the packet.
fn decode_exact(raw: &[u8]) -> Packet {
    let packet = Packet::decode(raw).expect("vector decodes");
    assert_eq!(packet.encode().expect("vector re-encodes"), raw);
    packet
}

fn password(req: &Packet) -> Vec<u8> {
    let keying = Keying {
        secret: SECRET,
        authenticator: &req.authenticator,
    };
    let hidden = req
        .attr(attr::USER_PASSWORD)
        .expect("User-Password present");
    unhide_password(hidden, keying).expect("unhides").to_vec()
}

#[test]
fn rfc2865_7_1_pap() {
    let (req_raw, acc_raw) = (hex(REQ_7_1), hex(ACC_7_1));
    let req = decode_exact(&req_raw);
    assert_eq!((req.code, req.identifier), (Code::AccessRequest, 0));
    assert_eq!(req.user_name(), Some(&b"nemo"[..]));
    assert_eq!(req.attr(attr::NAS_IP_ADDRESS), Some(&[192, 168, 1, 16][..]));
    assert_eq!(req.attr(attr::NAS_PORT), Some(&[0, 0, 0, 3][..]));
    assert_eq!(password(&req), b"arctangent");
    assert!(
        !verify_request(&req_raw, SECRET)
            .unwrap()
            .message_authenticator
    );

    let acc = decode_exact(&acc_raw);
    assert_eq!(acc.code, Code::AccessAccept);
    assert_eq!(acc.attr(attr::SERVICE_TYPE), Some(&[0, 0, 0, 1][..]));
    assert_eq!(acc.attr(14), Some(&[192, 168, 1, 3][..]), "Login-IP-Host");
    let verified = verify_response(&acc_raw, &req.authenticator, SECRET).unwrap();
    assert!(!verified.message_authenticator);
    assert_eq!(
        verify_response(&acc_raw, &req.authenticator, b"xyzzy5462"),
        Err(AuthError::BadAuthenticator)
    );
}

#[test]
fn rfc2865_7_2_chap() {
    let (req_raw, acc_raw) = (hex(REQ_7_2), hex(ACC_7_2));
    let req = decode_exact(&req_raw);
    assert_eq!(req.user_name(), Some(&b"flopsy"[..]));
    let chap = req.attr(attr::CHAP_PASSWORD).unwrap();
    assert_eq!((chap[0], chap.len()), (0x16, 17), "CHAP ident and response");
    let acc = decode_exact(&acc_raw);
    assert_eq!(
        acc.attr(attr::FRAMED_IP_ADDRESS),
        Some(&[255, 255, 255, 254][..])
    );
    assert_eq!(
        acc.attr(12),
        Some(&[0, 0, 0x05, 0xdc][..]),
        "Framed-MTU 1500"
    );
    verify_response(&acc_raw, &req.authenticator, SECRET).unwrap();
    // The Response Authenticator is bound to its request.
    let other = authenticator(&hex(REQ_7_1));
    assert_eq!(
        verify_response(&acc_raw, &other, SECRET),
        Err(AuthError::BadAuthenticator)
    );
}

#[test]
fn rfc2865_7_3_challenge() {
    let req1 = decode_exact(&hex(REQ1_7_3));
    assert_eq!(password(&req1), b"challenge");
    let chal_raw = hex(CHAL_7_3);
    let chal = decode_exact(&chal_raw);
    assert_eq!(chal.code, Code::AccessChallenge);
    assert_eq!(chal.state(), Some(&b"32769430"[..]));
    assert_eq!(
        chal.attr(attr::REPLY_MESSAGE),
        Some(&b"Challenge 32769430.  Enter response at prompt."[..])
    );
    verify_response(&chal_raw, &req1.authenticator, SECRET).unwrap();

    // The printed req2 has a State that overflows the packet: a strict parser drops it.
    let printed = hex(REQ2_7_3_PRINTED);
    assert_eq!(
        Packet::decode(&printed),
        Err(DecodeError::AttributeOverflow(57))
    );
    assert!(verify_request(&printed, SECRET).is_err());

    let req2 = decode_exact(&req2_corrected());
    assert_eq!(req2.state(), chal.state(), "State is echoed unmodified");
    assert_eq!(password(&req2), b"99101462");
    // The Reject verifies either way: its authenticator covers only the request's
    // authenticator, not the request's attributes.
    let rej_raw = hex(REJ_7_3);
    assert_eq!(decode_exact(&rej_raw).code, Code::AccessReject);
    verify_response(&rej_raw, &authenticator(&printed), SECRET).unwrap();
    verify_response(&rej_raw, &req2.authenticator, SECRET).unwrap();
}

#[test]
fn rfc5997_6_1_status_server() {
    let (req_raw, acc_raw) = (hex(STATUS_6_1), hex(STATUS_ACC_6_1));
    let req = decode_exact(&req_raw);
    assert_eq!((req.code, req.identifier), (Code::StatusServer, 0xda));
    assert_eq!(
        req.attr(attr::MESSAGE_AUTHENTICATOR),
        Some(&hex("5a665e2e1e8411f3e243822097c84fa3")[..])
    );
    assert!(
        verify_request(&req_raw, SECRET)
            .unwrap()
            .message_authenticator
    );
    assert_eq!(
        verify_request(&req_raw, b"xyzzy546"),
        Err(AuthError::BadMessageAuthenticator)
    );
    assert_eq!(decode_exact(&acc_raw).code, Code::AccessAccept);
    verify_response(&acc_raw, &req.authenticator, SECRET).unwrap();
}

#[test]
fn padding_after_length_is_ignored_by_decode_and_verify() {
    let mut req_raw = hex(STATUS_6_1);
    let mut acc_raw = hex(ACC_7_1);
    req_raw.extend_from_slice(&[0xff; 7]);
    acc_raw.extend_from_slice(&[0; 30]);
    assert_eq!(
        Packet::decode(&req_raw).unwrap(),
        Packet::decode(&hex(STATUS_6_1)).unwrap()
    );
    assert!(
        verify_request(&req_raw, SECRET)
            .unwrap()
            .message_authenticator
    );
    verify_response(&acc_raw, &authenticator(&hex(REQ_7_1)), SECRET).unwrap();
}

/// The vectors, for the fuzz seed corpus check.
pub(super) fn all() -> Vec<Vec<u8>> {
    [
        REQ_7_1,
        ACC_7_1,
        REQ_7_2,
        ACC_7_2,
        REQ1_7_3,
        CHAL_7_3,
        REJ_7_3,
        STATUS_6_1,
        STATUS_ACC_6_1,
    ]
    .into_iter()
    .map(hex)
    .chain([req2_corrected()])
    .collect()
}
