//! Packets: the header, the attribute list, and the length rules of RFC 2865 §3.
//!
//! Attributes are kept **in wire order and raw**, so anything we do not understand
//! (unknown attributes, vendor attributes, RFC 6929 extended attributes) passes
//! through byte for byte. Typed access exists only for the attributes we act on.

use super::attr;
use super::code::Code;
use super::random;

/// The size of the fixed header: code, identifier, length, authenticator.
pub const HEADER_LEN: usize = 20;
/// The largest packet RFC 2865 §3 allows.
pub const MAX_PACKET_LEN: usize = 4096;
/// The largest attribute value (an attribute is at most 255 octets with its 2-octet header).
pub const MAX_VALUE_LEN: usize = 253;
/// More attributes than this is an attack, not a login (FreeRADIUS `max_attributes = 200`).
pub const MAX_ATTRIBUTES: usize = 200;

/// Why a datagram is not a RADIUS packet. Every such datagram is silently discarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer octets than a header.
    #[error("datagram of {0} octets is shorter than the 20-octet header")]
    TooShort(usize),
    /// The Length field is outside 20..=4096.
    #[error("Length field {0} is outside 20..=4096")]
    BadLength(usize),
    /// The datagram ends before the Length field says the packet does.
    #[error("datagram of {actual} octets is shorter than its Length field ({length})")]
    Truncated {
        /// The Length field.
        length: usize,
        /// The octets received.
        actual: usize,
    },
    /// A code we do not speak.
    #[error("unknown code {0}")]
    UnknownCode(u8),
    /// An attribute with type 0, which is reserved.
    #[error("attribute type 0 at offset {0}")]
    ReservedType(usize),
    /// An attribute whose length octet is below 2.
    #[error("attribute at offset {offset} has length {length}")]
    BadAttributeLength {
        /// Where the attribute starts.
        offset: usize,
        /// Its length octet.
        length: usize,
    },
    /// An attribute that runs past the end of the packet.
    #[error("attribute at offset {0} runs past the end of the packet")]
    AttributeOverflow(usize),
    /// More than [`MAX_ATTRIBUTES`] attributes.
    #[error("more than {MAX_ATTRIBUTES} attributes")]
    TooManyAttributes,
    /// An attribute that may appear once appears again ("attribute smuggling").
    #[error("attribute {0} appears more than once")]
    Duplicate(u8),
    /// A Message-Authenticator whose value is not 16 octets.
    #[error("Message-Authenticator of {0} octets, not 16")]
    BadMessageAuthenticator(usize),
}

/// Why a packet cannot be encoded.
///
/// Encoding refuses everything decoding refuses, so that every packet we send is one
/// we would accept ourselves, and `decode(encode(p)) == p` for every encodable `p`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoded packet would exceed 4096 octets.
    #[error("packet of {0} octets exceeds the 4096-octet limit")]
    TooLong(usize),
    /// An attribute value over 253 octets.
    #[error("attribute {typ} has a value of {len} octets, more than 253")]
    ValueTooLong {
        /// The attribute type.
        typ: u8,
        /// The value's length.
        len: usize,
    },
    /// An attribute with type 0, which is reserved.
    #[error("attribute type 0 is reserved")]
    ReservedType,
    /// More than [`MAX_ATTRIBUTES`] attributes.
    #[error("{0} attributes, more than {MAX_ATTRIBUTES}")]
    TooManyAttributes(usize),
    /// A second copy of an attribute that may appear once.
    #[error("attribute {0} appears more than once")]
    Duplicate(u8),
    /// A Message-Authenticator whose value is not 16 octets.
    #[error("Message-Authenticator of {0} octets, not 16")]
    BadMessageAuthenticator(usize),
}

/// One attribute, raw: its type octet and value octets.
#[derive(Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The type octet.
    pub typ: u8,
    /// The value octets (0..=253 of them).
    pub value: Vec<u8>,
}

impl std::fmt::Debug for Attribute {
    /// Values are never printed here: they may be hidden passwords or keys.
    /// Use `radius::display` for dictionary-aware, redacting output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Attribute({}, {} octets)", self.typ, self.value.len())
    }
}

/// A decoded (or to-be-encoded) RADIUS packet.
///
/// The packet never holds a shared secret: signing and verifying take the secret
/// as an argument (see [`super::auth`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The packet code.
    pub code: Code,
    /// The Identifier octet that matches replies to requests.
    pub identifier: u8,
    /// The Authenticator field as received, or as it will be sent.
    pub authenticator: [u8; 16],
    /// The attributes, in wire order.
    pub attributes: Vec<Attribute>,
}

/// Attributes that may appear at most once in a packet (RFC 2865 §5.44, RFC 3579 §3.2).
/// Decoding refuses a second copy so that no two parsers can read different values.
const SINGLETONS: [u8; 5] = [
    attr::USER_NAME,
    attr::USER_PASSWORD,
    attr::CHAP_PASSWORD,
    attr::STATE,
    attr::MESSAGE_AUTHENTICATOR,
];

/// For a singleton type: `Some(true)` the first time it is seen, `Some(false)` after.
/// `None` for types that may repeat.
fn first_sighting(seen: &mut [bool; SINGLETONS.len()], typ: u8) -> Option<bool> {
    let i = SINGLETONS.iter().position(|t| *t == typ)?;
    Some(!std::mem::replace(&mut seen[i], true))
}

impl Packet {
    /// A packet with no attributes.
    pub fn new(code: Code, identifier: u8, authenticator: [u8; 16]) -> Self {
        Self {
            code,
            identifier,
            authenticator,
            attributes: Vec::new(),
        }
    }

    /// A request with a fresh Request Authenticator from the operating system's CSPRNG
    /// (RFC 2865 §3: unpredictable and unique over the lifetime of the secret).
    ///
    /// For Accounting, CoA and Disconnect requests the authenticator is computed when
    /// the packet is encoded ([`super::auth::encode_request`]), replacing this value.
    pub fn new_request(code: Code, identifier: u8) -> Self {
        Self::new(code, identifier, random::bytes16())
    }

    /// Decodes a datagram. Octets past the Length field are padding and ignored.
    pub fn decode(datagram: &[u8]) -> Result<Self, DecodeError> {
        let raw = packet_bytes(datagram)?;
        let code = Code::from_u8(raw[0]).ok_or(DecodeError::UnknownCode(raw[0]))?;
        let mut attributes = Vec::with_capacity(16);
        let mut rules = AttrRules::default();
        for item in AttrIter::new(raw) {
            let (offset, typ, value) = item?;
            rules.check(offset, typ, value)?;
            attributes.push(Attribute {
                typ,
                value: value.to_vec(),
            });
        }
        let mut authenticator = [0; 16];
        authenticator.copy_from_slice(&raw[4..HEADER_LEN]);
        Ok(Self {
            code,
            identifier: raw[1],
            authenticator,
            attributes,
        })
    }

    /// The length of the encoded packet.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            + self
                .attributes
                .iter()
                .map(|a| 2 + a.value.len())
                .sum::<usize>()
    }

    /// Encodes the packet with its Authenticator field as it stands.
    ///
    /// Signing (Response Authenticator, Message-Authenticator) is done on these bytes by
    /// [`super::auth`]. Never truncates: too long a packet or value is an error, and so
    /// is anything [`Packet::decode`] would refuse.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        self.check_encodable()?;
        let len = self.encoded_len();
        if len > MAX_PACKET_LEN {
            return Err(EncodeError::TooLong(len));
        }
        let mut out = Vec::with_capacity(len);
        out.push(self.code as u8);
        out.push(self.identifier);
        // Cannot truncate: len <= 4096 was checked above.
        out.extend_from_slice(&(len as u16).to_be_bytes());
        out.extend_from_slice(&self.authenticator);
        for a in &self.attributes {
            out.push(a.typ);
            // Cannot truncate: check_encodable bounded every value to 253 octets.
            out.push((a.value.len() + 2) as u8);
            out.extend_from_slice(&a.value);
        }
        Ok(out)
    }

    /// The attribute rules of [`Packet::decode`], applied before encoding.
    fn check_encodable(&self) -> Result<(), EncodeError> {
        if self.attributes.len() > MAX_ATTRIBUTES {
            return Err(EncodeError::TooManyAttributes(self.attributes.len()));
        }
        let mut seen = [false; SINGLETONS.len()];
        for a in &self.attributes {
            let len = a.value.len();
            if len > MAX_VALUE_LEN {
                return Err(EncodeError::ValueTooLong { typ: a.typ, len });
            }
            if a.typ == 0 {
                return Err(EncodeError::ReservedType);
            }
            if first_sighting(&mut seen, a.typ) == Some(false) {
                return Err(EncodeError::Duplicate(a.typ));
            }
            if a.typ == attr::MESSAGE_AUTHENTICATOR && len != 16 {
                return Err(EncodeError::BadMessageAuthenticator(len));
            }
        }
        Ok(())
    }

    /// The value of the first attribute of this type.
    pub fn attr(&self, typ: u8) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|a| a.typ == typ)
            .map(|a| a.value.as_slice())
    }

    /// The values of every attribute of this type, in order.
    pub fn attrs(&self, typ: u8) -> impl Iterator<Item = &[u8]> {
        self.attributes
            .iter()
            .filter(move |a| a.typ == typ)
            .map(|a| a.value.as_slice())
    }

    /// Whether an attribute of this type is present.
    pub fn has(&self, typ: u8) -> bool {
        self.attributes.iter().any(|a| a.typ == typ)
    }

    /// Appends an attribute.
    pub fn push(&mut self, typ: u8, value: impl Into<Vec<u8>>) {
        self.attributes.push(Attribute {
            typ,
            value: value.into(),
        });
    }

    /// Appends a string as one or more attributes of at most 253 octets each
    /// (RFC 2865 §5.18: a long Reply-Message is split, the NAS concatenates).
    pub fn push_split(&mut self, typ: u8, value: &[u8]) {
        for chunk in value.chunks(MAX_VALUE_LEN) {
            self.push(typ, chunk);
        }
    }

    /// Removes every attribute of this type.
    pub fn remove(&mut self, typ: u8) {
        self.attributes.retain(|a| a.typ != typ);
    }

    /// Puts a zeroed Message-Authenticator first, removing any other copy. Signing fills
    /// it in. First, because BlastRADIUS hardening (CVE-2024-3596) wants the MAC to
    /// precede any attacker-influenced attribute.
    pub fn set_message_authenticator_first(&mut self) {
        // Keep the first copy (and its allocation: this runs for every packet we sign),
        // drop any other, then move the kept one to the front.
        let mut kept = false;
        self.attributes.retain(|a| {
            a.typ != attr::MESSAGE_AUTHENTICATOR || !std::mem::replace(&mut kept, true)
        });
        let at = self
            .attributes
            .iter()
            .position(|a| a.typ == attr::MESSAGE_AUTHENTICATOR);
        match at {
            Some(at) => self.attributes[..=at].rotate_right(1),
            None => self.attributes.insert(
                0,
                Attribute {
                    typ: attr::MESSAGE_AUTHENTICATOR,
                    value: Vec::new(),
                },
            ),
        }
        let value = &mut self.attributes[0].value;
        value.clear();
        value.resize(16, 0);
    }

    /// User-Name, if present.
    pub fn user_name(&self) -> Option<&[u8]> {
        self.attr(attr::USER_NAME)
    }

    /// State, if present.
    pub fn state(&self) -> Option<&[u8]> {
        self.attr(attr::STATE)
    }

    /// The Proxy-State attributes, in order.
    pub fn proxy_states(&self) -> impl Iterator<Item = &[u8]> {
        self.attrs(attr::PROXY_STATE)
    }

    /// Values of a vendor's sub-attribute (`format=1,1`) across all Vendor-Specific attributes.
    pub fn vendor_attrs(&self, vendor: u32, vendor_type: u8) -> impl Iterator<Item = &[u8]> {
        self.attrs(attr::VENDOR_SPECIFIC)
            .filter_map(move |v| attr::split_vsa(v).filter(|(id, _)| *id == vendor))
            .flat_map(|(_, subs)| subs.into_iter())
            .filter(move |s| s.vendor_type == vendor_type)
            .map(|s| s.value)
    }
}

/// The octets of the packet in a datagram (the first Length octets), after checking
/// the length rules of RFC 2865 §3.
pub fn packet_bytes(datagram: &[u8]) -> Result<&[u8], DecodeError> {
    if datagram.len() < HEADER_LEN {
        return Err(DecodeError::TooShort(datagram.len()));
    }
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&length) {
        return Err(DecodeError::BadLength(length));
    }
    datagram.get(..length).ok_or(DecodeError::Truncated {
        length,
        actual: datagram.len(),
    })
}

/// The per-attribute rules of decoding, shared with the verifiers in [`super::auth`] so
/// that a packet verifies only if it also decodes.
#[derive(Default)]
pub(crate) struct AttrRules {
    count: usize,
    seen: [bool; SINGLETONS.len()],
}

impl AttrRules {
    /// Checks the next attribute: type 0 is reserved, at most [`MAX_ATTRIBUTES`], no
    /// second copy of a singleton, a Message-Authenticator of exactly 16 octets.
    pub(crate) fn check(
        &mut self,
        offset: usize,
        typ: u8,
        value: &[u8],
    ) -> Result<(), DecodeError> {
        if typ == 0 {
            return Err(DecodeError::ReservedType(offset));
        }
        if self.count == MAX_ATTRIBUTES {
            return Err(DecodeError::TooManyAttributes);
        }
        self.count += 1;
        if first_sighting(&mut self.seen, typ) == Some(false) {
            return Err(DecodeError::Duplicate(typ));
        }
        if typ == attr::MESSAGE_AUTHENTICATOR && value.len() != 16 {
            return Err(DecodeError::BadMessageAuthenticator(value.len()));
        }
        Ok(())
    }
}

/// The attribute types of a packet's octets (as returned by [`packet_bytes`]), in
/// order, stopping quietly at the first malformed attribute. For cheap triage before
/// a full decode.
pub fn attribute_types(raw: &[u8]) -> impl Iterator<Item = u8> + '_ {
    AttrIter::new(raw)
        .map_while(Result::ok)
        .map(|(_, typ, _)| typ)
}

/// Walks the attributes of a packet's octets: yields (offset, type, value).
/// Stops with an error at the first malformed attribute.
pub(crate) struct AttrIter<'a> {
    raw: &'a [u8],
    offset: usize,
}

impl<'a> AttrIter<'a> {
    /// Walks `raw`, whose first 20 octets are the header.
    pub(crate) fn new(raw: &'a [u8]) -> Self {
        Self {
            raw,
            offset: HEADER_LEN,
        }
    }
}

impl<'a> Iterator for AttrIter<'a> {
    type Item = Result<(usize, u8, &'a [u8]), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let offset = self.offset;
        let rest = self.raw.get(offset..).filter(|r| !r.is_empty())?;
        let result = match *rest {
            [_] => Err(DecodeError::AttributeOverflow(offset)),
            [_, len, ..] if len < 2 => Err(DecodeError::BadAttributeLength {
                offset,
                length: usize::from(len),
            }),
            [typ, len, ..] => match rest.get(2..usize::from(len)) {
                Some(value) => {
                    self.offset += usize::from(len);
                    return Some(Ok((offset, typ, value)));
                }
                None => Err(DecodeError::AttributeOverflow(offset)),
            },
            [] => return None,
        };
        self.offset = self.raw.len();
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(code: u8, len: u16) -> Vec<u8> {
        let mut v = vec![code, 7];
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(&[0xAB; 16]);
        v
    }

    #[test]
    fn length_rules() {
        assert_eq!(Packet::decode(&[1; 19]), Err(DecodeError::TooShort(19)));
        assert_eq!(
            Packet::decode(&header(1, 19)),
            Err(DecodeError::BadLength(19))
        );
        assert_eq!(
            Packet::decode(&header(1, 4097)),
            Err(DecodeError::BadLength(4097))
        );
        assert_eq!(
            Packet::decode(&header(1, 26)),
            Err(DecodeError::Truncated {
                length: 26,
                actual: 20
            })
        );
        // Octets past Length are padding.
        let mut p = header(1, 20);
        p.extend_from_slice(&[1, 2, 3]);
        assert!(Packet::decode(&p).unwrap().attributes.is_empty());
    }

    #[test]
    fn unknown_codes_are_refused() {
        for code in [0u8, 6, 53, 255] {
            assert_eq!(
                Packet::decode(&header(code, 20)),
                Err(DecodeError::UnknownCode(code))
            );
        }
    }

    #[test]
    fn attribute_rules() {
        let cases: &[(&[u8], DecodeError)] = &[
            (
                &[1, 0],
                DecodeError::BadAttributeLength {
                    offset: 20,
                    length: 0,
                },
            ),
            (
                &[1, 1],
                DecodeError::BadAttributeLength {
                    offset: 20,
                    length: 1,
                },
            ),
            (&[1, 5, 0], DecodeError::AttributeOverflow(20)),
            (&[1], DecodeError::AttributeOverflow(20)),
            (&[0, 2], DecodeError::ReservedType(20)),
            (&[1, 3, b'a', 1, 3, b'b'], DecodeError::Duplicate(1)),
            (&[80, 4, 0, 0], DecodeError::BadMessageAuthenticator(2)),
            (&[18, 2, 1, 255, 0], DecodeError::AttributeOverflow(22)),
        ];
        for (attrs, want) in cases {
            let mut p = header(1, (20 + attrs.len()) as u16);
            p.extend_from_slice(attrs);
            assert_eq!(Packet::decode(&p).as_ref(), Err(want), "{attrs:?}");
        }
    }

    #[test]
    fn too_many_attributes() {
        let mut p = header(1, 0);
        for _ in 0..=MAX_ATTRIBUTES {
            p.extend_from_slice(&[18, 2]);
        }
        let len = p.len() as u16;
        p[2..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(Packet::decode(&p), Err(DecodeError::TooManyAttributes));
    }

    #[test]
    fn encode_refuses_oversize() {
        let mut p = Packet::new(Code::AccessAccept, 1, [0; 16]);
        p.push(18, vec![b'x'; 254]);
        assert_eq!(
            p.encode(),
            Err(EncodeError::ValueTooLong { typ: 18, len: 254 })
        );
        let mut p = Packet::new(Code::AccessAccept, 1, [0; 16]);
        for _ in 0..17 {
            p.push(18, vec![b'x'; 253]);
        }
        assert_eq!(p.encode(), Err(EncodeError::TooLong(20 + 17 * 255)));
    }

    #[test]
    fn round_trip_keeps_order_and_unknown_attributes() {
        let mut p = Packet::new(Code::AccessRequest, 9, [3; 16]);
        p.push(1, &b"alice"[..]);
        p.push(241, vec![1, 2, 3]);
        p.push(33, &b"ps1"[..]);
        p.push(26, attr::build_vsa(311, 16, &[9; 34]).unwrap());
        p.push(33, &b"ps2"[..]);
        let bytes = p.encode().unwrap();
        let q = Packet::decode(&bytes).unwrap();
        assert_eq!(p, q);
        assert_eq!(
            q.proxy_states().collect::<Vec<_>>(),
            vec![&b"ps1"[..], &b"ps2"[..]]
        );
        assert_eq!(q.vendor_attrs(311, 16).next(), Some(&[9u8; 34][..]));
    }

    #[test]
    fn push_split_splits_long_messages() {
        let mut p = Packet::new(Code::AccessChallenge, 1, [0; 16]);
        p.push_split(18, &[b'a'; 300]);
        assert_eq!(
            p.attrs(18).map(<[u8]>::len).collect::<Vec<_>>(),
            vec![253, 47]
        );
    }

    #[test]
    fn message_authenticator_goes_first() {
        let mut p = Packet::new(Code::AccessAccept, 1, [0; 16]);
        p.push(18, &b"x"[..]);
        p.push(80, vec![1; 16]);
        p.set_message_authenticator_first();
        assert_eq!(p.attributes[0].typ, 80);
        assert_eq!(p.attributes.iter().filter(|a| a.typ == 80).count(), 1);
        assert_eq!(p.attributes[0].value, [0; 16]);
    }

    #[test]
    fn message_authenticator_first_keeps_the_other_attributes_in_order() {
        let typs = |p: &Packet| p.attributes.iter().map(|a| a.typ).collect::<Vec<_>>();
        let mut p = Packet::new(Code::AccessAccept, 1, [0; 16]);
        for (typ, value) in [
            (33, vec![1]),
            (80, vec![7; 16]),
            (33, vec![2]),
            (80, vec![9; 3]),
            (18, vec![]),
        ] {
            p.push(typ, value);
        }
        p.set_message_authenticator_first();
        assert_eq!(typs(&p), [80, 33, 33, 18]);
        assert_eq!(p.proxy_states().collect::<Vec<_>>(), [[1], [2]]);
        assert_eq!(p.attributes[0].value, [0; 16]);
        // Already first: zeroed in place.
        p.attributes[0].value = vec![5; 16];
        p.set_message_authenticator_first();
        assert_eq!(
            (typs(&p), p.attributes[0].value.clone()),
            (vec![80, 33, 33, 18], vec![0; 16])
        );
        // Absent: inserted.
        let mut q = Packet::new(Code::AccessReject, 1, [0; 16]);
        q.set_message_authenticator_first();
        assert_eq!(
            (typs(&q), q.attributes[0].value.clone()),
            (vec![80], vec![0; 16])
        );
    }
}
