//! The peer's side of MS-CHAPv2 (RFC 2759) and the MPPE key derivation (RFC 3079 §3.4), written from the RFCs so
//! a test can play a Windows RRAS or Cisco ASA that sends native (non-EAP) MS-CHAPv2 in RADIUS (RFC 2548).
//!
//! It answers two questions independently of portvakt and FreeRADIUS: "what does a correct MS-CHAP2-Response look
//! like for this password?" and "what MS-CHAP2-Success and MPPE keys must the server send back for it?". The
//! RFC 2759 §9.2 and RFC 3079 §3.5.3 vectors below check the arithmetic.
//!
//! ```ignore
//! let login = Mschapv2::new("bob", "bob-password");
//! // MS-CHAP-Challenge = login.authenticator_challenge, MS-CHAP2-Response = login.response_vsa_value()
//! assert!(login.verify_success(success_value));
//! ```

use des::Des;
use des::cipher::{BlockCipherEncrypt, KeyInit};
use md4::Md4;
use sha1::{Digest, Sha1};

/// RFC 3079 §3.4 "Magic1": mixed into the master key.
const MAGIC_MASTER: &[u8; 27] = b"This is the MPPE Master Key";
/// RFC 3079 §3.4 "Magic2": the client's send key, the server's receive key.
const MAGIC_CLIENT_SEND: &[u8; 84] =
    b"On the client side, this is the send key; on the server side, it is the receive key.";
/// RFC 3079 §3.4 "Magic3": the client's receive key, the server's send key.
const MAGIC_CLIENT_RECEIVE: &[u8; 84] =
    b"On the client side, this is the receive key; on the server side, it is the send key.";
/// RFC 2759 §8.7 "Magic1" of GenerateAuthenticatorResponse.
const MAGIC_SERVER_DIGEST: &[u8; 39] = b"Magic server to client signing constant";
/// RFC 2759 §8.7 "Magic2" of GenerateAuthenticatorResponse.
const MAGIC_SERVER_CHALLENGE: &[u8; 41] = b"Pad to make it do more than one iteration";

/// NtPasswordHash (RFC 2759 §8.3): MD4 over the password in UTF-16 little-endian.
pub fn nt_password_hash(password: &str) -> [u8; 16] {
    let unicode: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    Md4::digest(&unicode).into()
}

/// HashNtPasswordHash (RFC 2759 §8.4): MD4 of the password hash.
pub fn hash_nt_password_hash(password_hash: &[u8; 16]) -> [u8; 16] {
    Md4::digest(password_hash).into()
}

/// ChallengeHash (RFC 2759 §8.2): the first 8 octets of SHA1(PeerChallenge ‖ AuthenticatorChallenge ‖ UserName).
/// UserName is the name without any domain prefix.
pub fn challenge_hash(peer: &[u8; 16], authenticator: &[u8; 16], user_name: &str) -> [u8; 8] {
    let digest = Sha1::new()
        .chain_update(peer)
        .chain_update(authenticator)
        .chain_update(user_name.as_bytes())
        .finalize();
    let mut challenge = [0; 8];
    challenge.copy_from_slice(&digest[..8]);
    challenge
}

/// ChallengeResponse (RFC 2759 §8.5): the 16-octet hash padded with zeros to 21 octets, cut into three 7-octet
/// DES keys, each encrypting the challenge.
pub fn challenge_response(challenge: &[u8; 8], password_hash: &[u8; 16]) -> [u8; 24] {
    let mut padded = [0u8; 21];
    padded[..16].copy_from_slice(password_hash);
    let mut response = [0u8; 24];
    for (key, out) in padded.chunks_exact(7).zip(response.chunks_exact_mut(8)) {
        out.copy_from_slice(&des_encrypt(key, challenge));
    }
    response
}

/// DesEncrypt (RFC 2759 §8.6): a 7-octet key spread over 8 octets (7 bits each; the parity bit, which DES
/// ignores, is left 0), then one DES block.
fn des_encrypt(key7: &[u8], clear: &[u8; 8]) -> [u8; 8] {
    let bits = key7.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let mut key = [0u8; 8];
    for (i, k) in key.iter_mut().enumerate() {
        // Bits 55-7i .. 49-7i of the 56-bit key become the top seven bits of octet i.
        *k = (((bits >> (49 - 7 * i)) & 0x7f) as u8) << 1;
    }
    let cipher = Des::new(&key.into());
    let mut block = (*clear).into();
    cipher.encrypt_block(&mut block);
    block.into()
}

/// GenerateNTResponse (RFC 2759 §8.1).
pub fn generate_nt_response(
    authenticator: &[u8; 16],
    peer: &[u8; 16],
    user_name: &str,
    password: &str,
) -> [u8; 24] {
    let challenge = challenge_hash(peer, authenticator, user_name);
    challenge_response(&challenge, &nt_password_hash(password))
}

/// GenerateAuthenticatorResponse (RFC 2759 §8.7): `S=` and 40 uppercase hex digits, what the server must send in
/// MS-CHAP2-Success to prove it knows the password too.
pub fn authenticator_response(
    password: &str,
    nt_response: &[u8; 24],
    peer: &[u8; 16],
    authenticator: &[u8; 16],
    user_name: &str,
) -> String {
    let hash_hash = hash_nt_password_hash(&nt_password_hash(password));
    let digest = Sha1::new()
        .chain_update(hash_hash)
        .chain_update(nt_response)
        .chain_update(MAGIC_SERVER_DIGEST)
        .finalize();
    let challenge = challenge_hash(peer, authenticator, user_name);
    let digest = Sha1::new()
        .chain_update(digest)
        .chain_update(challenge)
        .chain_update(MAGIC_SERVER_CHALLENGE)
        .finalize();
    format!("S={}", hex::encode_upper(digest))
}

/// GetMasterKey (RFC 3079 §3.4).
pub fn master_key(password_hash_hash: &[u8; 16], nt_response: &[u8; 24]) -> [u8; 16] {
    let digest = Sha1::new()
        .chain_update(password_hash_hash)
        .chain_update(nt_response)
        .chain_update(MAGIC_MASTER)
        .finalize();
    let mut key = [0; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// Which end derives a key, and for which direction (RFC 3079 §3.4 GetAsymmetricStartKey).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// The server's (NAS's) send key: RADIUS MS-MPPE-Send-Key (RFC 2548 §2.4.2).
    ServerSend,
    /// The server's (NAS's) receive key: RADIUS MS-MPPE-Recv-Key (RFC 2548 §2.4.3).
    ServerReceive,
}

/// GetAsymmetricStartKey (RFC 3079 §3.4) for a 128-bit session key: SHA1(MasterKey ‖ 40×0x00 ‖ magic ‖ 40×0xF2).
pub fn asymmetric_start_key(master: &[u8; 16], key_use: KeyUse) -> [u8; 16] {
    let magic: &[u8] = match key_use {
        KeyUse::ServerSend => MAGIC_CLIENT_RECEIVE,
        KeyUse::ServerReceive => MAGIC_CLIENT_SEND,
    };
    let digest = Sha1::new()
        .chain_update(master)
        .chain_update([0u8; 40])
        .chain_update(magic)
        .chain_update([0xf2u8; 40])
        .finalize();
    let mut key = [0; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// One MS-CHAPv2 login attempt as the NAS relays it: the challenge the NAS sent the user, and the user's answer.
#[derive(Debug, Clone)]
pub struct Mschapv2 {
    /// The User-Name (and the name hashed into the challenge).
    pub user_name: String,
    /// The password the *user* typed (may be wrong).
    pub password: String,
    /// The NAS's 16-octet challenge: RADIUS MS-CHAP-Challenge (311/11).
    pub authenticator_challenge: [u8; 16],
    /// The user's 16-octet challenge, inside MS-CHAP2-Response.
    pub peer_challenge: [u8; 16],
    /// The PPP CHAP Identifier, echoed as the first octet of MS-CHAP2-Response, -Success and MS-CHAP-Error.
    pub ident: u8,
    /// The user's NT-Response.
    pub nt_response: [u8; 24],
}

impl Mschapv2 {
    /// An attempt with fresh random challenges.
    pub fn new(user_name: &str, password: &str) -> Self {
        let mut random = [0u8; 33];
        // The kernel CSPRNG does not fail on Linux once booted; a test cannot go on without it anyway.
        getrandom::fill(&mut random).expect("random bytes for the MS-CHAPv2 challenges");
        let mut authenticator_challenge = [0; 16];
        let mut peer_challenge = [0; 16];
        authenticator_challenge.copy_from_slice(&random[..16]);
        peer_challenge.copy_from_slice(&random[16..32]);
        Self::with_challenges(
            user_name,
            password,
            authenticator_challenge,
            peer_challenge,
            random[32],
        )
    }

    /// An attempt with given challenges (for the RFC vectors).
    pub fn with_challenges(
        user_name: &str,
        password: &str,
        authenticator_challenge: [u8; 16],
        peer_challenge: [u8; 16],
        ident: u8,
    ) -> Self {
        let nt_response = generate_nt_response(
            &authenticator_challenge,
            &peer_challenge,
            user_name,
            password,
        );
        Self {
            user_name: user_name.to_owned(),
            password: password.to_owned(),
            authenticator_challenge,
            peer_challenge,
            ident,
            nt_response,
        }
    }

    /// The value of MS-CHAP2-Response (RFC 2548 §2.3.2): Ident, Flags (0), Peer-Challenge, 8 reserved zero octets,
    /// NT-Response — 50 octets.
    pub fn response_value(&self) -> Vec<u8> {
        let mut value = Vec::with_capacity(50);
        value.push(self.ident);
        value.push(0);
        value.extend_from_slice(&self.peer_challenge);
        value.extend_from_slice(&[0; 8]);
        value.extend_from_slice(&self.nt_response);
        value
    }

    /// The MS-CHAP2-Success value a server that knows `password` must send (RFC 2548 §2.3.3): Ident, then
    /// the authenticator response string.
    pub fn expected_success(&self, password: &str) -> Vec<u8> {
        let mut value = vec![self.ident];
        value.extend_from_slice(
            authenticator_response(
                password,
                &self.nt_response,
                &self.peer_challenge,
                &self.authenticator_challenge,
                &self.user_name,
            )
            .as_bytes(),
        );
        value
    }

    /// The check the peer makes (RFC 2759 §8.8 CheckAuthenticatorResponse): does MS-CHAP2-Success prove that
    /// the server knows the password this attempt was made with?
    pub fn verify_success(&self, success: &[u8]) -> bool {
        success == self.expected_success(&self.password).as_slice()
    }

    /// The 16-octet MPPE keys (send, receive) the server's MS-MPPE-Send-Key and MS-MPPE-Recv-Key must hold for
    /// this attempt if `password` is right (RFC 3079 §3.4, 128-bit keys).
    pub fn expected_mppe_keys(&self, password: &str) -> ([u8; 16], [u8; 16]) {
        let hash_hash = hash_nt_password_hash(&nt_password_hash(password));
        let master = master_key(&hash_hash, &self.nt_response);
        (
            asymmetric_start_key(&master, KeyUse::ServerSend),
            asymmetric_start_key(&master, KeyUse::ServerReceive),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<const N: usize>(text: &str) -> [u8; N] {
        let bytes = hex::decode(text.replace(' ', "")).expect("hex literal");
        bytes.try_into().expect("literal of the right length")
    }

    /// RFC 2759 §9.2: user "User", password "clientPass".
    fn rfc2759() -> Mschapv2 {
        Mschapv2::with_challenges(
            "User",
            "clientPass",
            h("5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28"),
            h("21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E"),
            7,
        )
    }

    #[test]
    fn rfc2759_section_9_2_vectors() {
        let v = rfc2759();
        assert_eq!(
            challenge_hash(&v.peer_challenge, &v.authenticator_challenge, "User"),
            h::<8>("D0 2E 43 86 BC E9 12 26")
        );
        assert_eq!(
            nt_password_hash("clientPass"),
            h::<16>("44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE")
        );
        assert_eq!(
            v.nt_response,
            h::<24>("82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF")
        );
        assert_eq!(
            hash_nt_password_hash(&nt_password_hash("clientPass")),
            h::<16>("41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F")
        );
        let mut success = vec![7];
        success.extend_from_slice(b"S=407A5589115FD0D6209F510FE9C04566932CDA56");
        assert!(v.verify_success(&success));
        assert_eq!(v.response_value().len(), 50);
    }

    #[test]
    fn a_wrong_password_or_another_challenge_does_not_verify() {
        let v = rfc2759();
        let right = v.expected_success("clientPass");
        let mut other = v.clone();
        other.password = "clientPasS".to_owned();
        assert!(!other.verify_success(&right));
        let mut flipped = right.clone();
        flipped[10] ^= 1;
        assert!(!v.verify_success(&flipped));
    }

    #[test]
    fn rfc3079_section_3_5_3_vectors() {
        let v = rfc2759();
        let hash_hash = hash_nt_password_hash(&nt_password_hash("clientPass"));
        let master = master_key(&hash_hash, &v.nt_response);
        assert_eq!(
            master,
            h::<16>("FD EC E3 71 7A 8C 83 8C B3 88 E5 27 AE 3C DD 31")
        );
        // The RFC's SendStartKey128 is derived with IsSend and IsServer both true: the server's send key.
        assert_eq!(
            asymmetric_start_key(&master, KeyUse::ServerSend),
            h::<16>("8B 7C DC 14 9B 99 3A 1B A1 18 CB 15 3F 56 DC CB")
        );
        let (send, receive) = v.expected_mppe_keys("clientPass");
        assert_eq!(send, asymmetric_start_key(&master, KeyUse::ServerSend));
        assert_ne!(send, receive);
    }
}
