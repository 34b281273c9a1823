//! Fuzzes everything that reads untrusted RADIUS octets: `Packet::decode`, the
//! verifiers, User-Password and salted-attribute decryption, VSA splitting, and the
//! round trips on packets that decode. The body lives in the library
//! (`portvakt::radius::fuzz::decode_target`) so stable unit tests run it over the
//! seed corpus too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = portvakt::radius::fuzz::decode_target(data) {
        panic!("codec invariant broken: {violation}");
    }
});
