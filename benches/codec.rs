//! Codec benchmarks: the per-packet work of forwarding a NAS Access-Request upstream,
//! and its parts. Target: the full path at most 2 µs per packet.
//!
//! Run with `cargo bench --bench codec`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use portvakt::radius::attr;
use portvakt::radius::crypt::{Keying, hide_password, reencrypt_password};
use portvakt::radius::{Code, Packet, encode_request, encode_response, random, verify_request};
use portvakt::radius::{PreparedSecret, SigningSecret};

const NAS_SECRET: &[u8] = b"nas-shared-secret-0123";
const UPSTREAM_SECRET: &[u8] = b"upstream-secret-abcdef";

/// A typical VPN-gateway Access-Request of about 200 octets, signed for `NAS_SECRET`.
fn nas_request() -> Vec<u8> {
    let mut p = Packet::new(Code::AccessRequest, 42, random::bytes16());
    let keying = Keying {
        secret: NAS_SECRET,
        authenticator: &p.authenticator,
    };
    let hidden = hide_password(b"correct horse battery", keying).expect("password fits");
    p.set_message_authenticator_first();
    p.push(attr::USER_NAME, &b"alice@kommune.example"[..]);
    p.push(attr::USER_PASSWORD, hidden);
    p.push(attr::NAS_IP_ADDRESS, vec![127, 0, 0, 1]);
    p.push(attr::NAS_PORT, 1234u32.to_be_bytes().to_vec());
    p.push(attr::CALLING_STATION_ID, &b"203.0.113.5"[..]);
    p.push(attr::CALLED_STATION_ID, &b"00-11-22-33-44-55:vpn"[..]);
    p.push(attr::NAS_IDENTIFIER, &b"asa-edge-1"[..]);
    let avpair = attr::build_vsa(
        attr::VENDOR_CISCO,
        attr::CISCO_AVPAIR,
        b"ip:source-ip=203.0.113.5",
    );
    p.push(attr::VENDOR_SPECIFIC, avpair.expect("VSA fits"));
    let fortinet = attr::build_vsa(12356, 2, &[203, 0, 113, 5]).expect("VSA fits");
    p.push(attr::VENDOR_SPECIFIC, fortinet);
    encode_request(&p, NAS_SECRET).expect("request encodes")
}

/// What the proxy does to each NAS request it forwards: verify the Message-Authenticator,
/// decode, draw a fresh Request Authenticator, re-hide User-Password for the upstream,
/// put a fresh Message-Authenticator first and sign.
fn forward(
    datagram: &[u8],
    nas: &(impl SigningSecret + ?Sized),
    upstream: &(impl SigningSecret + ?Sized),
) -> Vec<u8> {
    let verified = verify_request(datagram, nas).expect("NAS request verifies");
    assert!(verified.message_authenticator);
    let mut packet = Packet::decode(datagram).expect("NAS request decodes");
    let nas_auth = packet.authenticator;
    packet.authenticator = random::bytes16();
    let from = Keying {
        secret: nas.octets(),
        authenticator: &nas_auth,
    };
    let to = Keying {
        secret: upstream.octets(),
        authenticator: &packet.authenticator,
    };
    for a in packet
        .attributes
        .iter_mut()
        .filter(|a| a.typ == attr::USER_PASSWORD)
    {
        a.value = reencrypt_password(&a.value, from, to).expect("password re-hides");
    }
    packet.set_message_authenticator_first();
    encode_request(&packet, upstream).expect("upstream request encodes")
}

/// An Access-Accept as the proxy sends it to the NAS: MA first, a Reply-Message,
/// Class and the NAS's Proxy-State.
fn accept() -> Packet {
    let mut p = Packet::new(Code::AccessAccept, 42, [0; 16]);
    p.set_message_authenticator_first();
    p.push(attr::REPLY_MESSAGE, &b"Welcome, alice"[..]);
    p.push(attr::CLASS, &b"nps-class-0123456789abcdef"[..]);
    p.push(attr::SESSION_TIMEOUT, 28_800u32.to_be_bytes().to_vec());
    p.push(attr::PROXY_STATE, &b"proxy-state-from-nas"[..]);
    p
}

fn benches(c: &mut Criterion) {
    let datagram = nas_request();
    assert!(
        (180..=230).contains(&datagram.len()),
        "{} octets",
        datagram.len()
    );
    let (nas, upstream) = (
        PreparedSecret::new(NAS_SECRET),
        PreparedSecret::new(UPSTREAM_SECRET),
    );
    c.bench_function(
        "forward (prepared secrets): verify MA + decode + re-hide + sign",
        |b| b.iter(|| forward(black_box(&datagram), &nas, &upstream)),
    );
    c.bench_function(
        "forward (raw secrets): verify MA + decode + re-hide + sign",
        |b| b.iter(|| forward(black_box(&datagram), NAS_SECRET, UPSTREAM_SECRET)),
    );
    c.bench_function("decode", |b| {
        b.iter(|| Packet::decode(black_box(&datagram)))
    });
    c.bench_function("verify_request (MA)", |b| {
        b.iter(|| verify_request(black_box(&datagram), NAS_SECRET))
    });
    let reply = accept();
    let request_auth = [0x5a; 16];
    c.bench_function("encode_response (MA first, prepared secret)", |b| {
        b.iter(|| encode_response(black_box(&reply), &request_auth, &nas))
    });
    c.bench_function("encode_response (MA first, raw secret)", |b| {
        b.iter(|| encode_response(black_box(&reply), &request_auth, NAS_SECRET))
    });
    c.bench_function("random::bytes16 (pooled)", |b| b.iter(random::bytes16));
    c.bench_function("getrandom 16 octets (one system call)", |b| {
        b.iter(|| {
            let mut buf = [0u8; 16];
            getrandom::fill(&mut buf).expect("CSPRNG works");
            buf
        })
    });
}

criterion_group!(codec, benches);
criterion_main!(codec);
