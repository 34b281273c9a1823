//! The fuzz target's body over its seed corpus (`fuzz/corpus/decode/`), on stable: the
//! corpus files are valid packets, and the target finds no violation in them.

use std::path::PathBuf;

use crate::radius::fuzz::decode_target;
use crate::radius::packet::Packet;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode")
}

#[test]
fn seed_corpus_decodes_and_keeps_invariants() {
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("fuzz/corpus/decode exists")
        .map(|e| e.expect("readable entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 20, "seed corpus has {} files", files.len());
    for path in &files {
        let raw = std::fs::read(path).expect("readable seed");
        Packet::decode(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(decode_target(&raw), Ok(()), "{}", path.display());
    }
}

#[test]
fn seed_corpus_holds_the_rfc_vectors() {
    for (i, raw) in super::vectors::all().iter().enumerate() {
        let name = corpus_dir().join(format!("rfc-{i:02}"));
        let seed = std::fs::read(&name).unwrap_or_else(|e| panic!("{}: {e}", name.display()));
        assert_eq!(&seed, raw, "{}", name.display());
    }
}

/// The Request Authenticator `make_corpus.py` signs its generated replies for.
const GEN_RA: [u8; 16] = [
    0x6a, 0x2b, 0x9e, 0x0c, 0x55, 0xd4, 0x1f, 0x88, 0x73, 0xa0, 0xc2, 0xe1, 0x9b, 0x4d, 0x7f, 0x30,
];

#[test]
fn generated_seeds_verify_and_reveal_their_secrets() {
    use crate::radius::attr;
    use crate::radius::auth::{verify_request, verify_response};
    use crate::radius::crypt::{Keying, salt_decrypt, tunnel_password_decrypt, unhide_password};

    // Signed by Python's hashlib/hmac, not by us: an independent check of verification.
    let mut count = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("gen-")
        {
            continue;
        }
        let raw = std::fs::read(&path).unwrap();
        let p = Packet::decode(&raw).unwrap();
        let verdict = if p.code.is_request() {
            verify_request(&raw, super::SECRET)
        } else {
            verify_response(&raw, &GEN_RA, super::SECRET)
        };
        assert!(verdict.is_ok(), "{}: {verdict:?}", path.display());
        count += 1;
    }
    assert!(count >= 10);

    let keying = Keying {
        secret: super::SECRET,
        authenticator: &GEN_RA,
    };
    let req = Packet::decode(
        &std::fs::read(corpus_dir().join("gen-access-request-vsa-proxy-state")).unwrap(),
    )
    .unwrap();
    let pw = unhide_password(req.attr(attr::USER_PASSWORD).unwrap(), keying).unwrap();
    assert_eq!(pw.as_slice(), b"correct horse");
    let acc = Packet::decode(&std::fs::read(corpus_dir().join("gen-accept-tunnel-mppe")).unwrap())
        .unwrap();
    let tunnel: Vec<_> = acc.attrs(attr::TUNNEL_PASSWORD).collect();
    assert_eq!(
        tunnel_password_decrypt(tunnel[0], keying)
            .unwrap()
            .1
            .as_slice(),
        b"tunnel secret"
    );
    assert_eq!(
        tunnel_password_decrypt(tunnel[1], keying)
            .unwrap()
            .1
            .as_slice(),
        &[b'x'; 100]
    );
    let send = acc
        .vendor_attrs(attr::VENDOR_MICROSOFT, attr::MS_MPPE_SEND_KEY)
        .next()
        .unwrap();
    let want: Vec<u8> = (0..32).collect();
    assert_eq!(salt_decrypt(send, keying).unwrap().as_slice(), &want[..]);
}
