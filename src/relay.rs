//! Moving packets across the proxy: a NAS request into an upstream request, and an
//! upstream reply (or one of our own) into a reply for the NAS.
//!
//! portvakt terminates each RADIUS transaction and originates a new one, so every
//! hidden attribute is decrypted under one side's keying and encrypted under the
//! other's, and the NAS's Proxy-State attributes are echoed back in order in every
//! reply, including replies portvakt makes itself (RFC 2865 §5.33).

use zeroize::Zeroizing;

use crate::radius::dictionary::{Dictionary, Encrypt};
use crate::radius::{self, Code, EncodeError, Keying, Packet, Salts, attr, crypt};
use crate::secret::Secret;
use crate::upstream::{Outgoing, Reply};

/// Why a packet could not be carried across.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayError {
    /// A User-Password that does not unhide (bad length).
    BadPassword,
    /// A hidden attribute in an upstream reply that does not decrypt.
    BadHiddenAttribute,
}

/// The user's password from an Access-Request, unhidden with the NAS's keying.
pub fn password(
    request: &Packet,
    nas: Keying<'_>,
) -> Result<Option<Zeroizing<Vec<u8>>>, RelayError> {
    request
        .attr(attr::USER_PASSWORD)
        .map(|hidden| crypt::unhide_password(hidden, nas).map_err(|_| RelayError::BadPassword))
        .transpose()
}

/// The upstream form of a NAS request: every attribute but User-Password (carried in
/// clear, to be hidden per server), Message-Authenticator (signed afresh) and
/// Proxy-State (ours to echo, not the directory's).
pub fn outgoing(request: &Packet, password: Option<Zeroizing<Vec<u8>>>) -> Outgoing {
    let skip = [
        attr::USER_PASSWORD,
        attr::MESSAGE_AUTHENTICATOR,
        attr::PROXY_STATE,
    ];
    let mut attributes: Vec<radius::Attribute> = request
        .attributes
        .iter()
        .filter(|a| !skip.contains(&a.typ))
        .cloned()
        .collect();
    // CHAP without CHAP-Challenge uses the Request Authenticator as the challenge
    // (RFC 2865 §2.2). Our upstream request has a fresh authenticator, so the
    // challenge must travel explicitly.
    if request.has(attr::CHAP_PASSWORD) && !request.has(attr::CHAP_CHALLENGE) {
        attributes.push(radius::Attribute {
            typ: attr::CHAP_CHALLENGE,
            value: request.authenticator.to_vec(),
        });
    }
    Outgoing {
        code: request.code,
        attributes,
        password,
    }
}

/// A reply to `request` with the given code and attributes: Message-Authenticator
/// first, the request's Proxy-States echoed last in order.
///
/// An Accounting-Response to an Accounting-Request carries no Message-Authenticator:
/// RFC 3579 defines none for it, and FreeRADIUS computes one over a zeroed header
/// where others use the request's authenticator, so any choice breaks some NAS. Its
/// Response Authenticator already covers it; BlastRADIUS concerns Access-* replies.
pub fn reply(request: &Packet, code: Code, attributes: Vec<radius::Attribute>) -> Packet {
    let mut out = Packet::new(code, request.identifier, [0; 16]);
    out.attributes.reserve(attributes.len() + 2);
    if !(code == Code::AccountingResponse && request.code == Code::AccountingRequest) {
        out.set_message_authenticator_first();
    }
    out.attributes.extend(attributes);
    for ps in request.proxy_states() {
        out.push(attr::PROXY_STATE, ps);
    }
    out
}

/// Encodes a reply for the NAS, signed with its secret.
pub fn encode(
    reply: &Packet,
    request: &Packet,
    nas_secret: &Secret,
) -> Result<Vec<u8>, EncodeError> {
    radius::encode_response(reply, &request.authenticator, nas_secret.signing())
}

/// The attributes of an upstream reply, made fit for the NAS: no Message-Authenticator
/// or Proxy-State of the upstream hop, and every hidden attribute re-encrypted from
/// the upstream's keying to `nas` (the keying of the request being answered — which,
/// after a second-factor challenge, is the *second* request).
///
/// Tunnel-Password and the MS-MPPE keys are known here without a dictionary (a missing
/// dictionary must not break VPN encryption); anything else the dictionary marks
/// `encrypt=1` or `encrypt=2` is re-encrypted too.
pub fn reply_attributes(
    reply: &Reply,
    nas: Keying<'_>,
    dict: &Dictionary,
) -> Result<Vec<radius::Attribute>, RelayError> {
    let from = reply.keying();
    let mut salts = Salts::new();
    let mut out = Vec::with_capacity(reply.packet.attributes.len());
    for a in &reply.packet.attributes {
        let value = match a.typ {
            attr::MESSAGE_AUTHENTICATOR | attr::PROXY_STATE => continue,
            attr::VENDOR_SPECIFIC => reencrypt_vsa(&a.value, from, nas, &mut salts, dict)?,
            attr::TUNNEL_PASSWORD => {
                reencrypt(Hidden::TaggedSalted, &a.value, from, nas, &mut salts)?
            }
            t => match hidden(dict, 0, t) {
                Some(h) => reencrypt(h, &a.value, from, nas, &mut salts)?,
                None => a.value.clone(),
            },
        };
        out.push(radius::Attribute { typ: a.typ, value });
    }
    Ok(out)
}

/// How an attribute's value is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hidden {
    /// RFC 2865 §5.2 (encrypt=1).
    Password,
    /// RFC 2868 §3.5 / RFC 2548 salt scheme (encrypt=2), no tag.
    Salted,
    /// The salt scheme behind a tag octet (Tunnel-Password).
    TaggedSalted,
}

fn hidden(dict: &Dictionary, vendor: u32, number: u8) -> Option<Hidden> {
    if vendor == attr::VENDOR_MICROSOFT
        && matches!(number, attr::MS_MPPE_SEND_KEY | attr::MS_MPPE_RECV_KEY)
    {
        return Some(Hidden::Salted);
    }
    let def = dict.attr(vendor, u32::from(number))?;
    match def.encrypt {
        Encrypt::UserPassword => Some(Hidden::Password),
        Encrypt::TunnelPassword if def.has_tag => Some(Hidden::TaggedSalted),
        Encrypt::TunnelPassword => Some(Hidden::Salted),
        // Ascend's scheme needs the Ascend-specific secret handling; carried as is.
        Encrypt::Ascend | Encrypt::None => None,
    }
}

fn reencrypt(
    how: Hidden,
    value: &[u8],
    from: Keying<'_>,
    to: Keying<'_>,
    salts: &mut Salts,
) -> Result<Vec<u8>, RelayError> {
    let result = match how {
        Hidden::Password => crypt::reencrypt_password(value, from, to),
        Hidden::Salted => crypt::reencrypt_salted(value, from, to, salts),
        Hidden::TaggedSalted => crypt::reencrypt_tunnel_password(value, from, to, salts),
    };
    result.map_err(|_| RelayError::BadHiddenAttribute)
}

/// Re-encrypts the hidden sub-attributes of a Vendor-Specific attribute (`format=1,1`);
/// everything else is copied unchanged.
fn reencrypt_vsa(
    value: &[u8],
    from: Keying<'_>,
    to: Keying<'_>,
    salts: &mut Salts,
    dict: &Dictionary,
) -> Result<Vec<u8>, RelayError> {
    let Some((vendor, subs)) = attr::split_vsa(value) else {
        return Ok(value.to_vec());
    };
    if !subs
        .iter()
        .any(|s| hidden(dict, vendor, s.vendor_type).is_some())
    {
        return Ok(value.to_vec());
    }
    let mut out = Vec::with_capacity(value.len() + 16);
    out.extend_from_slice(&vendor.to_be_bytes());
    for s in subs {
        let v = match hidden(dict, vendor, s.vendor_type) {
            Some(h) => reencrypt(h, s.value, from, to, salts)?,
            None => s.value.to_vec(),
        };
        out.push(s.vendor_type);
        out.push(u8::try_from(v.len() + 2).map_err(|_| RelayError::BadHiddenAttribute)?);
        out.extend_from_slice(&v);
    }
    Ok(out)
}
