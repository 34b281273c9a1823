//! The one place the codec draws randomness: the operating system's CSPRNG.
//!
//! Small draws (Request Authenticators, salts, States) are served from a per-thread
//! buffer filled from the kernel 1,024 octets at a time, because a `getrandom` system
//! call per packet was about a tenth of the cost of forwarding one. Every octet still
//! comes straight from the kernel's CSPRNG, is handed out once, and is wiped from the
//! buffer as it is handed out.

use std::cell::RefCell;

use zeroize::Zeroize;

/// Octets fetched from the kernel per refill.
const POOL_LEN: usize = 1024;

/// Unused kernel randomness for this thread: `octets[used..]` has not been handed out.
struct Pool {
    octets: [u8; POOL_LEN],
    used: usize,
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.octets.zeroize();
    }
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { octets: [0; POOL_LEN], used: POOL_LEN }) };
}

/// Fills `buf` straight from the operating system's CSPRNG.
///
/// # Panics
/// Only if the kernel's CSPRNG fails, which on Linux cannot happen once the pool is
/// initialised. Going on with predictable authenticators or States would be worse than
/// stopping, so this is the one deliberate panic in the codec.
fn fill_from_os(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system CSPRNG failed");
}

/// Fills `buf` from the operating system's CSPRNG (through the per-thread buffer for
/// draws of up to 64 octets).
///
/// # Panics
/// Only if the kernel's CSPRNG fails, which on Linux cannot happen once its pool is
/// initialised: going on with predictable values would be worse than stopping.
pub fn fill(buf: &mut [u8]) {
    if buf.len() > POOL_LEN / 4 {
        return fill_from_os(buf);
    }
    POOL.with_borrow_mut(|pool| {
        if POOL_LEN - pool.used < buf.len() {
            fill_from_os(&mut pool.octets);
            pool.used = 0;
        }
        let fresh = &mut pool.octets[pool.used..pool.used + buf.len()];
        buf.copy_from_slice(fresh);
        fresh.zeroize();
        pool.used += buf.len();
    });
}

/// Sixteen fresh random octets: a Request Authenticator, a State, a salt source.
pub fn bytes16() -> [u8; 16] {
    let mut b = [0; 16];
    fill(&mut b);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_of_every_size_are_fresh() {
        // Crosses several refills, and the direct path for large draws.
        let mut seen = std::collections::HashSet::new();
        for len in (1..=64).chain([65, 200, 4096]) {
            for _ in 0..20 {
                let mut buf = vec![0; len];
                fill(&mut buf);
                if len >= 8 {
                    assert!(seen.insert(buf), "repeated draw of {len} octets");
                }
            }
        }
    }

    #[test]
    fn handed_out_octets_are_wiped_from_the_pool() {
        let drawn = bytes16();
        POOL.with_borrow(|pool| {
            assert!(pool.used >= 16);
            assert_eq!(pool.octets[pool.used - 16..pool.used], [0; 16]);
            assert_ne!(drawn, [0; 16]);
        });
    }
}
