//! Sealing secrets at rest: XChaCha20-Poly1305 with a random 24-byte nonce per write.
//!
//! The associated data (AAD) binds each ciphertext to where it belongs: for a TOTP secret,
//! the user's normalised name, the key id and the secret's parameters. A sealed row copied to
//! another user, or a row whose digits, period or algorithm were edited, fails to open.
//! A 24-byte random nonce is large enough that collisions need no bookkeeping (2^96 writes
//! before the birthday bound bites), which is why XChaCha and not ChaCha or AES-GCM.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use super::key::StoreKey;
use crate::factor::totp::Algorithm;

/// Nonce length of XChaCha20-Poly1305.
pub(crate) const NONCE_BYTES: usize = 24;

/// Plaintext of the key-check row: a fixed label, so that opening it proves the key.
pub(crate) const KEY_CHECK_PLAINTEXT: &[u8] = b"portvakt store key check v1";

/// A ciphertext and the nonce it was sealed with.
pub(crate) struct Sealed {
    /// Random per seal.
    pub(crate) nonce: [u8; NONCE_BYTES],
    /// Ciphertext followed by the 16-byte Poly1305 tag.
    pub(crate) ciphertext: Vec<u8>,
}

/// Why sealing failed. Opening failures are `None` instead: the AEAD does not say why, and
/// callers turn it into `WrongKey` or `Tampered` depending on what they opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SealError {
    /// No nonce could be drawn.
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
    /// The AEAD refused the input (only possible for absurd lengths).
    #[error("encryption failed")]
    Encrypt,
}

/// The cipher under the store key. Built once per [`super::Store`], so the expanded key
/// exists in one place for the life of the store.
pub(crate) struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl Sealer {
    /// A sealer for `key`.
    pub(crate) fn new(key: &StoreKey) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.as_bytes().into()),
        }
    }

    /// Encrypts `plaintext` under a fresh random nonce, authenticating `aad` with it.
    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, SealError> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(SealError::Random)?;
        let ciphertext = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| SealError::Encrypt)?;
        Ok(Sealed { nonce, ciphertext })
    }

    /// Decrypts and authenticates; `None` if the key, the AAD, the nonce or the
    /// ciphertext is not what was sealed.
    pub(crate) fn open(
        &self,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().ok()?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

/// AAD of the key-check row: `"portvakt/key-check/v1" ‖ 0 ‖ key id (u32 BE)`.
pub(crate) fn key_check_aad(key_id: u32) -> Vec<u8> {
    let mut aad = b"portvakt/key-check/v1\0".to_vec();
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad
}

/// The parameters stored beside a sealed TOTP secret, bound into its AAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TotpParams {
    pub(crate) digits: u32,
    pub(crate) period: u64,
    pub(crate) algorithm: Algorithm,
}

/// AAD of a TOTP secret:
/// `"portvakt/totp/v1" ‖ 0 ‖ user ‖ 0 ‖ key id (u32 BE) ‖ algorithm ‖ 0 ‖ digits (u32 BE) ‖ period (u64 BE)`.
///
/// A normalised user name never contains NUL (control characters are refused), so the
/// separators make the encoding unambiguous.
pub(crate) fn totp_aad(user: &str, key_id: u32, params: TotpParams) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64 + user.len());
    aad.extend_from_slice(b"portvakt/totp/v1\0");
    aad.extend_from_slice(user.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad.extend_from_slice(params.algorithm.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(&params.digits.to_be_bytes());
    aad.extend_from_slice(&params.period.to_be_bytes());
    aad
}

/// AAD of a sealed personal field (a phone number, a push topic):
/// `"portvakt/" ‖ label ‖ "/v1" ‖ 0 ‖ user ‖ 0 ‖ key id (u32 BE)`.
///
/// The label keeps a phone number from being swapped into a topic column and back.
pub(crate) fn field_aad(label: &str, user: &str, key_id: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + label.len() + user.len());
    aad.extend_from_slice(b"portvakt/");
    aad.extend_from_slice(label.as_bytes());
    aad.extend_from_slice(b"/v1\0");
    aad.extend_from_slice(user.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// An HMAC-SHA256 key derived from the store key, for values that must be compared or
/// looked up but never read back: SMS codes and phone-number lookup keys.
///
/// Why HMAC under a store-derived key rather than a salted hash or Argon2: a 6-digit code
/// has only 10^6 values, so a salted SHA-256 falls to brute force in milliseconds for anyone
/// who can read the database file; Argon2 would slow every login for little gain, since the
/// code dies after 5 minutes and 3 attempts anyway. An HMAC under a key the file does not
/// hold cannot be brute-forced from the file at all, costs microseconds, and — unlike a
/// per-process key — stays valid across restarts and for the CLI and the daemon alike.
pub(crate) struct MacKey(zeroize::Zeroizing<[u8; 32]>);

impl MacKey {
    /// `HMAC-SHA256(store key, "portvakt/mac-key/v1")`: a key separate from the sealing key.
    pub(crate) fn derive(key: &StoreKey) -> Self {
        use hmac::{KeyInit, Mac};
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(key.as_bytes()).unwrap_or_else(|_| unreachable!());
        mac.update(b"portvakt/mac-key/v1");
        Self(zeroize::Zeroizing::new(mac.finalize().into_bytes().into()))
    }

    /// HMAC-SHA256 over `parts`, each preceded by its length (u32 BE) so that part
    /// boundaries are unambiguous.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        use hmac::{KeyInit, Mac};
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&*self.0).unwrap_or_else(|_| unreachable!());
        for part in parts {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            mac.update(&len.to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: TotpParams = TotpParams {
        digits: 6,
        period: 30,
        algorithm: Algorithm::Sha1,
    };

    fn sealer(byte: u8) -> Sealer {
        Sealer::new(&StoreKey::from_bytes([byte; 32]))
    }

    #[test]
    fn round_trip_with_matching_aad() {
        let s = sealer(1);
        let aad = totp_aad("alice", 1, PARAMS);
        let sealed = s.seal(b"secret bytes", &aad).unwrap();
        assert_eq!(sealed.ciphertext.len(), b"secret bytes".len() + 16);
        assert_ne!(&sealed.ciphertext[..12], b"secret bytes");
        assert_eq!(
            s.open(&sealed.nonce, &sealed.ciphertext, &aad)
                .unwrap()
                .as_slice(),
            b"secret bytes"
        );
    }

    #[test]
    fn anything_changed_fails_to_open() {
        let s = sealer(1);
        let aad = totp_aad("alice", 1, PARAMS);
        let sealed = s.seal(b"secret bytes", &aad).unwrap();
        let open =
            |s: &Sealer, nonce: &[u8], ct: &[u8], aad: &[u8]| s.open(nonce, ct, aad).is_some();

        assert!(
            !open(&sealer(2), &sealed.nonce, &sealed.ciphertext, &aad),
            "other key"
        );
        assert!(
            !open(
                &s,
                &sealed.nonce,
                &sealed.ciphertext,
                &totp_aad("bob", 1, PARAMS)
            ),
            "other user"
        );
        assert!(
            !open(
                &s,
                &sealed.nonce,
                &sealed.ciphertext,
                &totp_aad("alice", 2, PARAMS)
            ),
            "other key id"
        );
        for params in [
            TotpParams {
                digits: 8,
                ..PARAMS
            },
            TotpParams {
                period: 60,
                ..PARAMS
            },
            TotpParams {
                algorithm: Algorithm::Sha256,
                ..PARAMS
            },
        ] {
            assert!(
                !open(
                    &s,
                    &sealed.nonce,
                    &sealed.ciphertext,
                    &totp_aad("alice", 1, params)
                ),
                "{params:?}"
            );
        }
        let mut nonce = sealed.nonce;
        nonce[23] ^= 1;
        assert!(!open(&s, &nonce, &sealed.ciphertext, &aad), "flipped nonce");
        assert!(
            !open(&s, &sealed.nonce[..23], &sealed.ciphertext, &aad),
            "short nonce"
        );
        for i in 0..sealed.ciphertext.len() {
            let mut ct = sealed.ciphertext.clone();
            ct[i] ^= 0x80;
            assert!(!open(&s, &sealed.nonce, &ct, &aad), "flipped byte {i}");
        }
    }

    #[test]
    fn nonces_are_fresh() {
        let s = sealer(1);
        let a = s.seal(b"x", b"").unwrap();
        let b = s.seal(b"x", b"").unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn mac_keys_depend_on_the_store_key_and_separate_parts() {
        let a = MacKey::derive(&StoreKey::from_bytes([1; 32]));
        let b = MacKey::derive(&StoreKey::from_bytes([2; 32]));
        assert_ne!(a.mac(&[b"x"]), b.mac(&[b"x"]));
        assert_eq!(a.mac(&[b"x"]), a.mac(&[b"x"]));
        assert_ne!(a.mac(&[b"ab", b"c"]), a.mac(&[b"a", b"bc"]));
        assert_ne!(
            field_aad("phone", "alice", 1),
            field_aad("push-topic", "alice", 1)
        );
    }

    #[test]
    fn aad_separates_user_from_key_id() {
        // "ab" + key id 0x00… must not collide with "a" + something: the NUL after the name
        // and the fixed-width fields make each AAD parse one way only.
        assert_ne!(totp_aad("ab", 1, PARAMS), totp_aad("a", 1, PARAMS));
        assert_ne!(key_check_aad(1), key_check_aad(2));
    }
}
