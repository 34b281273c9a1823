//! The one place the codec draws randomness: the operating system's CSPRNG.

/// Fills `buf` from the operating system's CSPRNG.
///
/// # Panics
/// Only if the kernel's CSPRNG fails, which on Linux cannot happen once the pool is
/// initialised. Going on with predictable authenticators or States would be worse than
/// stopping, so this is the one deliberate panic in the codec.
pub fn fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system CSPRNG failed");
}

/// Sixteen fresh random octets: a Request Authenticator, a State, a salt source.
pub fn bytes16() -> [u8; 16] {
    let mut b = [0; 16];
    fill(&mut b);
    b
}
