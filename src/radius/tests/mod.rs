//! Tests of the codec as a whole: public vectors, known answers computed elsewhere,
//! the negative corpus, properties, and a cross-check against the `radius` crate.

mod corpus;
mod crosscheck;
mod negative;
mod props;
mod salted;
mod signing;
mod vectors;

/// The shared secret of every RFC 2865/5997 example.
const SECRET: &[u8] = b"xyzzy5461";

/// Octets from hex written with or without spaces.
fn hex(text: &str) -> Vec<u8> {
    let compact: String = text.split_whitespace().collect();
    hex::decode(compact).expect("test vector is valid hex")
}

/// The header authenticator of a packet's octets.
fn authenticator(raw: &[u8]) -> [u8; 16] {
    raw[4..20]
        .try_into()
        .expect("a packet has a 20-octet header")
}
