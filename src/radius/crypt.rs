//! Attribute hiding: User-Password (RFC 2865 §5.2) and the salted scheme shared by
//! Tunnel-Password (RFC 2868 §3.5) and MS-MPPE-Send/Recv-Key (RFC 2548 §2.4.2–3).
//!
//! A proxy moves hidden values between two keyings — (NAS secret, NAS request
//! authenticator) and (upstream secret, upstream request authenticator) — so every
//! scheme has a `reencrypt` that decrypts under one [`Keying`] and encrypts under the
//! other, with a fresh salt where the scheme has one.

use md5::{Digest, Md5};
use zeroize::Zeroizing;

use super::attr;
use super::packet::Packet;
use super::random;

/// The longest User-Password RFC 2865 §5.2 allows.
pub const MAX_PASSWORD_LEN: usize = 128;
/// The longest salted plaintext: (253 − 2 salt − 1 tag) rounded down to 16, less the length octet.
pub const MAX_SALTED_LEN: usize = 239;

/// Why a value cannot be hidden or revealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptError {
    /// A password longer than 128 octets.
    #[error("password of {0} octets is longer than 128")]
    PasswordTooLong(usize),
    /// A hidden value whose length is not a non-zero multiple of 16 within limits.
    #[error("hidden value of {0} octets is not a multiple of 16 within limits")]
    BadHiddenLength(usize),
    /// A salted plaintext longer than [`MAX_SALTED_LEN`].
    #[error("value of {0} octets is too long to salt-encrypt")]
    TooLong(usize),
    /// A salted value too short to hold a salt and one block, or without the salt's high bit.
    #[error("salted value is malformed")]
    BadSalt,
    /// The decrypted length octet exceeds the data (wrong secret or authenticator).
    #[error("decrypted length octet does not fit: wrong secret or authenticator")]
    BadInnerLength,
    /// A Microsoft Vendor-Specific attribute that is not a sequence of sub-attributes.
    #[error("Microsoft Vendor-Specific attribute is malformed")]
    MalformedVendorSpecific,
}

/// The key material one side of a proxy uses for hidden attributes.
#[derive(Clone, Copy)]
pub struct Keying<'a> {
    /// The shared secret.
    pub secret: &'a [u8],
    /// The Request Authenticator of the request this value belongs to (or answers).
    pub authenticator: &'a [u8; 16],
}

impl std::fmt::Debug for Keying<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keying(<redacted>)")
    }
}

fn md5_pair(a: &[u8], b: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(a);
    h.update(b);
    h.finalize().into()
}

/// XORs `data` (a multiple of 16 octets) with the RFC 2865 §5.2 key stream that
/// starts from `first` and chains on the *ciphertext* blocks.
fn stream(data: &mut [u8], secret: &[u8], first: [u8; 16], encrypt: bool) {
    let mut key = first;
    for block in data.chunks_mut(16) {
        let mut cipher = [0; 16];
        for (i, byte) in block.iter_mut().enumerate() {
            let c = if encrypt { *byte ^ key[i] } else { *byte };
            *byte ^= key[i];
            cipher[i] = c;
        }
        key = md5_pair(secret, &cipher);
    }
}

/// Hides a User-Password (RFC 2865 §5.2): padded with NULs to a multiple of 16.
pub fn hide_password(password: &[u8], keying: Keying<'_>) -> Result<Vec<u8>, CryptError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(CryptError::PasswordTooLong(password.len()));
    }
    let padded = password.len().div_ceil(16).max(1) * 16;
    let mut out = password.to_vec();
    out.resize(padded, 0);
    stream(
        &mut out,
        keying.secret,
        md5_pair(keying.secret, keying.authenticator),
        true,
    );
    Ok(out)
}

/// Reveals a hidden User-Password. Trailing NUL padding is removed.
pub fn unhide_password(
    hidden: &[u8],
    keying: Keying<'_>,
) -> Result<Zeroizing<Vec<u8>>, CryptError> {
    check_hidden_len(hidden.len())?;
    let mut out = Zeroizing::new(hidden.to_vec());
    stream(
        &mut out,
        keying.secret,
        md5_pair(keying.secret, keying.authenticator),
        false,
    );
    let end = out.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    out.truncate(end);
    Ok(out)
}

/// A hidden User-Password is 16..=128 octets, a multiple of 16 (RFC 2865 §5.2).
fn check_hidden_len(len: usize) -> Result<(), CryptError> {
    if len == 0 || !len.is_multiple_of(16) || len > MAX_PASSWORD_LEN {
        return Err(CryptError::BadHiddenLength(len));
    }
    Ok(())
}

/// Moves a hidden User-Password from one keying to another.
///
/// The value is decrypted and re-encrypted in one buffer, block for block with its
/// padding, so the receiver reveals exactly what the sender hid and no separate copy
/// of the password is made (this runs for every forwarded request).
pub fn reencrypt_password(
    hidden: &[u8],
    from: Keying<'_>,
    to: Keying<'_>,
) -> Result<Vec<u8>, CryptError> {
    check_hidden_len(hidden.len())?;
    let mut out = hidden.to_vec();
    stream(
        &mut out,
        from.secret,
        md5_pair(from.secret, from.authenticator),
        false,
    );
    stream(
        &mut out,
        to.secret,
        md5_pair(to.secret, to.authenticator),
        true,
    );
    Ok(out)
}

/// Unique salts for the salted attributes of one packet: RFC 2868 §3.5 wants the
/// salt's high bit set and every salt in a packet unique.
#[derive(Debug)]
pub struct Salts(u16);

impl Salts {
    /// A random starting point.
    pub fn new() -> Self {
        let mut b = [0; 2];
        random::fill(&mut b);
        Self(u16::from_be_bytes(b))
    }

    /// The next salt: distinct from the previous 32,767 and with the high bit set.
    pub fn next_salt(&mut self) -> [u8; 2] {
        self.0 = self.0.wrapping_add(1);
        (self.0 | 0x8000).to_be_bytes()
    }

    /// The next salt that is not `old`, so a re-encrypted value never keeps the salt it
    /// arrived with. Two consecutive salts always differ, so one skip is enough.
    fn next_salt_except(&mut self, old: &[u8; 2]) -> [u8; 2] {
        let salt = self.next_salt();
        if salt == *old { self.next_salt() } else { salt }
    }
}

impl Default for Salts {
    fn default() -> Self {
        Self::new()
    }
}

/// Salt-encrypts `plain`: returns `salt ‖ E(len ‖ plain ‖ padding)`.
pub fn salt_encrypt(
    plain: &[u8],
    keying: Keying<'_>,
    salt: [u8; 2],
) -> Result<Vec<u8>, CryptError> {
    if plain.len() > MAX_SALTED_LEN {
        return Err(CryptError::TooLong(plain.len()));
    }
    let mut data = Zeroizing::new(Vec::with_capacity(2 + (plain.len() + 1).div_ceil(16) * 16));
    data.push(plain.len() as u8); // ≤ 239, checked above
    data.extend_from_slice(plain);
    let padded = data.len().div_ceil(16) * 16;
    data.resize(padded, 0);
    let mut first = Md5::new();
    first.update(keying.secret);
    first.update(keying.authenticator);
    first.update(salt);
    stream(&mut data, keying.secret, first.finalize().into(), true);
    let mut out = Vec::with_capacity(2 + data.len());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&data);
    Ok(out)
}

/// Reveals a salt-encrypted value (`salt ‖ ciphertext`).
pub fn salt_decrypt(value: &[u8], keying: Keying<'_>) -> Result<Zeroizing<Vec<u8>>, CryptError> {
    let Some((salt, cipher)) = value.split_first_chunk::<2>() else {
        return Err(CryptError::BadSalt);
    };
    if salt[0] & 0x80 == 0 || cipher.is_empty() || !cipher.len().is_multiple_of(16) {
        return Err(CryptError::BadSalt);
    }
    let mut data = Zeroizing::new(cipher.to_vec());
    let mut first = Md5::new();
    first.update(keying.secret);
    first.update(keying.authenticator);
    first.update(salt);
    stream(&mut data, keying.secret, first.finalize().into(), false);
    let len = usize::from(data[0]);
    if len + 1 > data.len() {
        return Err(CryptError::BadInnerLength);
    }
    Ok(Zeroizing::new(data[1..=len].to_vec()))
}

/// Moves a salt-encrypted value (`salt ‖ ciphertext`) to another keying, with a fresh
/// salt from `salts` that differs from the value's old salt.
///
/// Use one [`Salts`] per outgoing packet so that every salt in it is unique.
pub fn reencrypt_salted(
    value: &[u8],
    from: Keying<'_>,
    to: Keying<'_>,
    salts: &mut Salts,
) -> Result<Vec<u8>, CryptError> {
    let plain = salt_decrypt(value, from)?;
    let old = value.first_chunk::<2>().ok_or(CryptError::BadSalt)?;
    salt_encrypt(&plain, to, salts.next_salt_except(old))
}

/// Encrypts a Tunnel-Password value: `tag ‖ salt ‖ E(len ‖ password ‖ padding)`.
pub fn tunnel_password_encrypt(
    tag: u8,
    password: &[u8],
    keying: Keying<'_>,
    salt: [u8; 2],
) -> Result<Vec<u8>, CryptError> {
    let mut out = vec![tag];
    out.extend_from_slice(&salt_encrypt(password, keying, salt)?);
    Ok(out)
}

/// Decrypts a Tunnel-Password value into (tag, password).
pub fn tunnel_password_decrypt(
    value: &[u8],
    keying: Keying<'_>,
) -> Result<(u8, Zeroizing<Vec<u8>>), CryptError> {
    let (tag, rest) = value.split_first().ok_or(CryptError::BadSalt)?;
    Ok((*tag, salt_decrypt(rest, keying)?))
}

/// Moves a Tunnel-Password value to another keying, keeping its tag, with a fresh salt
/// from `salts` that differs from the old one.
pub fn reencrypt_tunnel_password(
    value: &[u8],
    from: Keying<'_>,
    to: Keying<'_>,
    salts: &mut Salts,
) -> Result<Vec<u8>, CryptError> {
    let (tag, rest) = value.split_first().ok_or(CryptError::BadSalt)?;
    let mut out = vec![*tag];
    out.extend_from_slice(&reencrypt_salted(rest, from, to, salts)?);
    Ok(out)
}

/// Re-encrypts every salted attribute of a reply from one keying to another:
/// Tunnel-Password (69) and the Microsoft MS-MPPE-Send-Key/Recv-Key (26/311/16–17),
/// each with a salt unique within the packet. Returns how many values were moved.
///
/// A proxy must do this to every Accept it relays (RFC 2868 §3.5, RFC 2548 §2.4.2–3):
/// the keying is (upstream secret, upstream Request Authenticator) on the way in and
/// (NAS secret, Request Authenticator of the NAS request being answered) on the way out.
/// On error the packet is left unchanged, and should be dropped.
pub fn reencrypt_salted_attributes(
    packet: &mut Packet,
    from: Keying<'_>,
    to: Keying<'_>,
) -> Result<usize, CryptError> {
    let mut salts = Salts::new();
    let mut updates = Vec::new();
    for (i, a) in packet.attributes.iter().enumerate() {
        let value = match a.typ {
            attr::TUNNEL_PASSWORD => reencrypt_tunnel_password(&a.value, from, to, &mut salts)?,
            attr::VENDOR_SPECIFIC => match reencrypt_mppe_keys(&a.value, from, to, &mut salts)? {
                Some(value) => value,
                None => continue,
            },
            _ => continue,
        };
        updates.push((i, value));
    }
    let count = updates.len();
    for (i, value) in updates {
        packet.attributes[i].value = value;
    }
    Ok(count)
}

/// The value of a Vendor-Specific attribute with its MS-MPPE keys re-encrypted, or
/// `None` if it holds none. A Microsoft VSA that does not split is refused: its keys
/// could not be re-encrypted, and passing them on would break the VPN's encryption.
fn reencrypt_mppe_keys(
    vsa: &[u8],
    from: Keying<'_>,
    to: Keying<'_>,
    salts: &mut Salts,
) -> Result<Option<Vec<u8>>, CryptError> {
    if vsa.first_chunk::<4>() != Some(&attr::VENDOR_MICROSOFT.to_be_bytes()) {
        return Ok(None);
    }
    let (vendor, subs) = attr::split_vsa(vsa).ok_or(CryptError::MalformedVendorSpecific)?;
    let is_key = |t| t == attr::MS_MPPE_SEND_KEY || t == attr::MS_MPPE_RECV_KEY;
    if !subs.iter().any(|s| is_key(s.vendor_type)) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(vsa.len());
    out.extend_from_slice(&vendor.to_be_bytes());
    for sub in subs {
        let moved;
        let value = if is_key(sub.vendor_type) {
            moved = reencrypt_salted(sub.value, from, to, salts)?;
            &moved[..]
        } else {
            sub.value
        };
        out.push(sub.vendor_type);
        // Cannot truncate: a re-encrypted value is never longer than the original (its
        // padding is minimal), and the original fitted in the sub-attribute.
        out.push((value.len() + 2) as u8);
        out.extend_from_slice(value);
    }
    Ok(Some(out))
}
