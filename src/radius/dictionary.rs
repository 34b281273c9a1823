//! RADIUS dictionaries in the FreeRADIUS v3 text format: attribute names, types, flags,
//! vendor layouts and value names.
//!
//! A [`Dictionary`] gives names to numbers for configuration and logs, and turns textual
//! values from the configuration into wire octets ([`Dictionary::parse_value`]). It never
//! decides anything security-relevant: the numbers the proxy depends on (User-Password,
//! State, Message-Authenticator, the salted attributes, ...) are constants in
//! [`super::attr`], so a missing or edited dictionary cannot switch off a check.
//!
//! Reading files is the only I/O here (`std::fs`, at start-up); everything else is pure.
//! Later definitions override earlier ones, so an operator's `dictionary.local`, included
//! last, can rename an attribute or a value.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

mod error;
mod parse;
mod value;

pub use error::{DictionaryError, Location, ValueError};
pub(super) use value::civil_from_days;

/// The data type of an attribute, as named in the dictionary.
///
/// FreeRADIUS v4 aliases (`uint32`, `ipv4addr`, ...) map to the same variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttrType {
    /// UTF-8 text (not guaranteed: printed with escapes).
    String,
    /// Opaque octets.
    Octets,
    /// An IPv4 address, 4 octets.
    IpAddr,
    /// An IPv6 address, 16 octets.
    Ipv6Addr,
    /// An IPv6 prefix (RFC 3162 §2.3): reserved, length, up to 16 prefix octets.
    Ipv6Prefix,
    /// An IPv4 prefix (RFC 6572): reserved, length, 4 prefix octets.
    Ipv4Prefix,
    /// An unsigned 32-bit integer, often with VALUE names.
    Integer,
    /// An unsigned 64-bit integer.
    Integer64,
    /// An unsigned 16-bit integer.
    Short,
    /// An unsigned 8-bit integer.
    Byte,
    /// A signed 32-bit integer.
    Signed,
    /// Seconds since 1970-01-01 UTC, 32 bits.
    Date,
    /// An IPv6 interface identifier, 8 octets.
    Ifid,
    /// An Ethernet MAC address, 6 octets.
    Ether,
    /// Ascend binary filter (carried as octets).
    Abinary,
    /// Type-length-value container.
    Tlv,
    /// Vendor-Specific container (attribute 26).
    Vsa,
    /// RFC 6929 Extended-Type container (241–244).
    Extended,
    /// RFC 6929 Long-Extended-Type container (245–246).
    LongExtended,
    /// RFC 6929 Extended-Vendor-Specific container.
    Evs,
    /// An IPv4 or IPv6 address, told apart by length.
    ComboIp,
}

impl AttrType {
    /// Maps a dictionary type keyword (v3 names and v4 aliases, any case) to a type.
    fn from_keyword(word: &str) -> Option<Self> {
        let ty = match word.to_ascii_lowercase().as_str() {
            "string" => Self::String,
            "octets" => Self::Octets,
            "ipaddr" | "ipv4addr" => Self::IpAddr,
            "ipv6addr" => Self::Ipv6Addr,
            "ipv6prefix" => Self::Ipv6Prefix,
            "ipv4prefix" => Self::Ipv4Prefix,
            "integer" | "uint32" => Self::Integer,
            "integer64" | "uint64" => Self::Integer64,
            "short" | "uint16" => Self::Short,
            "byte" | "uint8" => Self::Byte,
            "signed" | "int32" => Self::Signed,
            "date" => Self::Date,
            "ifid" => Self::Ifid,
            "ether" => Self::Ether,
            "abinary" => Self::Abinary,
            "tlv" => Self::Tlv,
            "vsa" => Self::Vsa,
            "extended" => Self::Extended,
            "long-extended" => Self::LongExtended,
            "evs" => Self::Evs,
            "combo-ip" => Self::ComboIp,
            _ => return None,
        };
        Some(ty)
    }

    /// The FreeRADIUS v3 keyword for this type.
    pub fn keyword(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Octets => "octets",
            Self::IpAddr => "ipaddr",
            Self::Ipv6Addr => "ipv6addr",
            Self::Ipv6Prefix => "ipv6prefix",
            Self::Ipv4Prefix => "ipv4prefix",
            Self::Integer => "integer",
            Self::Integer64 => "integer64",
            Self::Short => "short",
            Self::Byte => "byte",
            Self::Signed => "signed",
            Self::Date => "date",
            Self::Ifid => "ifid",
            Self::Ether => "ether",
            Self::Abinary => "abinary",
            Self::Tlv => "tlv",
            Self::Vsa => "vsa",
            Self::Extended => "extended",
            Self::LongExtended => "long-extended",
            Self::Evs => "evs",
            Self::ComboIp => "combo-ip",
        }
    }

    /// Whether VALUE names can be attached to this type.
    fn takes_value_names(self) -> bool {
        matches!(
            self,
            Self::Integer | Self::Short | Self::Byte | Self::Signed
        )
    }
}

impl fmt::Display for AttrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// How an attribute's value is hidden on the wire (the dictionary's `encrypt=` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Encrypt {
    /// Sent in the clear.
    #[default]
    None,
    /// `encrypt=1`: the User-Password method (RFC 2865 §5.2).
    UserPassword,
    /// `encrypt=2`: the salted Tunnel-Password method (RFC 2868 §3.5, RFC 2548 §2.4.2).
    TunnelPassword,
    /// `encrypt=3`: Ascend's proprietary method.
    Ascend,
}

/// One attribute definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrDef {
    /// The attribute's name as written in the dictionary (lookups ignore case).
    pub name: String,
    /// The vendor's SMI enterprise number; 0 for standard attributes.
    pub vendor: u32,
    /// The attribute number; for an RFC 6929 extended attribute, the extended type.
    pub number: u32,
    /// The data type.
    pub ty: AttrType,
    /// How the value is hidden on the wire.
    pub encrypt: Encrypt,
    /// Whether the value starts with an RFC 2868 tag octet.
    pub has_tag: bool,
    /// Whether long values are split across several attributes of this type (EAP-Message).
    pub concat: bool,
    /// Whether one attribute carries several values of the type (`array`).
    pub array: bool,
    /// Whether the attribute is internal to a server and never sent (`virtual`).
    pub is_virtual: bool,
    /// For RFC 6929 extended attributes (dotted numbers such as `241.1`), the top-level
    /// type 241–246 they live under. `None` for ordinary and vendor attributes.
    pub extended: Option<u8>,
}

/// One vendor definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorDef {
    /// The vendor's name as written in the dictionary (lookups ignore case).
    pub name: String,
    /// The SMI enterprise number.
    pub id: u32,
    /// Octets in a sub-attribute's type field: 1, 2 or 4.
    pub type_len: u8,
    /// Octets in a sub-attribute's length field: 0, 1 or 2.
    pub len_len: u8,
}

/// Identity of an attribute definition: vendor, extended parent (0 = none), number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct AttrKey {
    vendor: u32,
    extended: u8,
    number: u32,
}

impl AttrKey {
    fn of(def: &AttrDef) -> Self {
        Self {
            vendor: def.vendor,
            extended: def.extended.unwrap_or(0),
            number: def.number,
        }
    }
}

/// The VALUE names of one attribute, both ways.
#[derive(Debug, Clone, Default)]
struct ValueNames {
    by_number: HashMap<u32, String>,
    /// Keyed by lower-case name.
    by_name: HashMap<String, u32>,
}

/// A loaded set of dictionaries. Immutable once built; `Send + Sync`, share it in an `Arc`.
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    attrs: HashMap<AttrKey, AttrDef>,
    /// Lower-case attribute name to definition.
    attr_names: HashMap<String, AttrKey>,
    values: HashMap<AttrKey, ValueNames>,
    vendors: HashMap<u32, VendorDef>,
    /// Lower-case vendor name to id.
    vendor_names: HashMap<String, u32>,
}

impl Dictionary {
    /// Loads a root dictionary file and everything it includes (e.g. `dictionaries/dictionary`).
    pub fn load(root_file: &Path) -> Result<Self, DictionaryError> {
        let display = root_file.display().to_string();
        let read_err = |source| DictionaryError::Read {
            path: display.clone(),
            source,
        };
        let canonical = std::fs::canonicalize(root_file).map_err(read_err)?;
        let text = std::fs::read_to_string(root_file).map_err(read_err)?;
        let mut dict = Self::default();
        let mut parser = parse::Parser {
            dict: &mut dict,
            open_files: vec![canonical],
        };
        parser.parse(&text, &display, root_file.parent())?;
        Ok(dict)
    }

    /// Parses dictionary text with no `$INCLUDE` support; `name` is used in error messages.
    pub fn parse_str(text: &str, name: &str) -> Result<Self, DictionaryError> {
        let mut dict = Self::default();
        parse::Parser {
            dict: &mut dict,
            open_files: Vec::new(),
        }
        .parse(text, name, None)?;
        Ok(dict)
    }

    /// The dictionaries shipped in `dictionaries/`, built into the binary: what portvakt
    /// uses when no `server.dictionaries` folder is configured.
    pub fn builtin() -> Self {
        let mut dict = Self::default();
        for (name, text) in BUILTIN {
            let mut parser = parse::Parser {
                dict: &mut dict,
                open_files: Vec::new(),
            };
            // The shipped files are parsed by a unit test, so this cannot fail at run time;
            // if it ever did, the names would be missing, never a security check.
            if let Err(e) = parser.parse(text, name, None) {
                tracing::error!("built-in dictionary {name}: {e}");
            }
        }
        dict
    }

    /// The attribute with this number (vendor 0 for standard attributes). Extended
    /// attributes are found with [`Dictionary::attr_extended`].
    pub fn attr(&self, vendor: u32, number: u32) -> Option<&AttrDef> {
        self.attrs.get(&AttrKey {
            vendor,
            extended: 0,
            number,
        })
    }

    /// The RFC 6929 extended attribute `parent.number` (e.g. 241, 1).
    pub fn attr_extended(&self, parent: u8, number: u32) -> Option<&AttrDef> {
        self.attrs.get(&AttrKey {
            vendor: 0,
            extended: parent,
            number,
        })
    }

    /// The attribute with this name, ignoring ASCII case.
    pub fn attr_by_name(&self, name: &str) -> Option<&AttrDef> {
        let key = self.attr_names.get(&name.to_ascii_lowercase())?;
        self.attrs.get(key)
    }

    /// The attribute named by its dotted number: `31`, `241.1` (extended) or `26.311.16`
    /// (vendor 311, attribute 16).
    pub fn attr_by_oid(&self, oid: &str) -> Option<&AttrDef> {
        let parts: Vec<u32> = oid
            .split('.')
            .map(value::parse_u32)
            .collect::<Option<_>>()?;
        match parts[..] {
            [number] => self.attr(0, number),
            [26, vendor, number] => self.attr(vendor, number),
            [parent, number] => self.attr_extended(u8::try_from(parent).ok()?, number),
            _ => None,
        }
    }

    /// All attribute definitions, in no particular order.
    pub fn attributes(&self) -> impl Iterator<Item = &AttrDef> {
        self.attrs.values()
    }

    /// The vendor with this SMI enterprise number.
    pub fn vendor(&self, id: u32) -> Option<&VendorDef> {
        self.vendors.get(&id)
    }

    /// The vendor with this name, ignoring ASCII case.
    pub fn vendor_by_name(&self, name: &str) -> Option<&VendorDef> {
        self.vendors
            .get(self.vendor_names.get(&name.to_ascii_lowercase())?)
    }

    /// Whether any attribute of this vendor is hidden on the wire (`encrypt=` set).
    pub fn vendor_has_encrypted(&self, id: u32) -> bool {
        self.attrs
            .values()
            .any(|d| d.vendor == id && d.encrypt != Encrypt::None)
    }

    /// The VALUE name for `value` of this attribute. When several names share a number,
    /// the one defined last is returned.
    pub fn value_name(&self, attr: &AttrDef, value: u32) -> Option<&str> {
        let names = self.values.get(&AttrKey::of(attr))?;
        names.by_number.get(&value).map(String::as_str)
    }

    /// The number of the VALUE `name` of this attribute, ignoring ASCII case.
    pub fn value_by_name(&self, attr: &AttrDef, name: &str) -> Option<u32> {
        let names = self.values.get(&AttrKey::of(attr))?;
        names.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    /// Adds or replaces an attribute definition. A replaced definition's name stops
    /// resolving (a rename); VALUE names stay unless the type changed.
    fn insert_attr(&mut self, def: AttrDef) {
        let key = AttrKey::of(&def);
        if let Some(old) = self.attrs.get(&key) {
            let old_name = old.name.to_ascii_lowercase();
            if self.attr_names.get(&old_name) == Some(&key) {
                self.attr_names.remove(&old_name);
            }
            if old.ty != def.ty {
                self.values.remove(&key);
            }
        }
        self.attr_names.insert(def.name.to_ascii_lowercase(), key);
        self.attrs.insert(key, def);
    }

    /// Adds or replaces a vendor. A vendor id defined again under a new name is renamed.
    fn insert_vendor(&mut self, def: VendorDef) {
        if let Some(old) = self.vendors.get(&def.id) {
            let old_name = old.name.to_ascii_lowercase();
            if self.vendor_names.get(&old_name) == Some(&def.id) {
                self.vendor_names.remove(&old_name);
            }
        }
        self.vendor_names
            .insert(def.name.to_ascii_lowercase(), def.id);
        self.vendors.insert(def.id, def);
    }
}

/// The shipped dictionaries, loaded once for all tests of the crate.
#[cfg(test)]
pub(crate) fn shipped() -> &'static Dictionary {
    static DICT: std::sync::OnceLock<Dictionary> = std::sync::OnceLock::new();
    DICT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("dictionaries/dictionary");
        Dictionary::load(&root).expect("shipped dictionaries load")
    })
}

/// The shipped dictionary files, in the root file's `$INCLUDE` order (`dictionary.local`
/// is the operator's and not built in).
const BUILTIN: &[(&str, &str)] = &[
    (
        "dictionary.rfc2865",
        include_str!("../../dictionaries/dictionary.rfc2865"),
    ),
    (
        "dictionary.rfc2866",
        include_str!("../../dictionaries/dictionary.rfc2866"),
    ),
    (
        "dictionary.rfc2867",
        include_str!("../../dictionaries/dictionary.rfc2867"),
    ),
    (
        "dictionary.rfc2868",
        include_str!("../../dictionaries/dictionary.rfc2868"),
    ),
    (
        "dictionary.rfc2869",
        include_str!("../../dictionaries/dictionary.rfc2869"),
    ),
    (
        "dictionary.rfc3162",
        include_str!("../../dictionaries/dictionary.rfc3162"),
    ),
    (
        "dictionary.rfc4372",
        include_str!("../../dictionaries/dictionary.rfc4372"),
    ),
    (
        "dictionary.rfc4675",
        include_str!("../../dictionaries/dictionary.rfc4675"),
    ),
    (
        "dictionary.rfc4818",
        include_str!("../../dictionaries/dictionary.rfc4818"),
    ),
    (
        "dictionary.rfc5090",
        include_str!("../../dictionaries/dictionary.rfc5090"),
    ),
    (
        "dictionary.rfc5176",
        include_str!("../../dictionaries/dictionary.rfc5176"),
    ),
    (
        "dictionary.rfc6911",
        include_str!("../../dictionaries/dictionary.rfc6911"),
    ),
    (
        "dictionary.rfc6929",
        include_str!("../../dictionaries/dictionary.rfc6929"),
    ),
    (
        "dictionary.rfc7268",
        include_str!("../../dictionaries/dictionary.rfc7268"),
    ),
    (
        "dictionary.rfc7499",
        include_str!("../../dictionaries/dictionary.rfc7499"),
    ),
    (
        "dictionary.rfc7930",
        include_str!("../../dictionaries/dictionary.rfc7930"),
    ),
    (
        "dictionary.hp",
        include_str!("../../dictionaries/dictionary.hp"),
    ),
    (
        "dictionary.cisco",
        include_str!("../../dictionaries/dictionary.cisco"),
    ),
    (
        "dictionary.microsoft",
        include_str!("../../dictionaries/dictionary.microsoft"),
    ),
    (
        "dictionary.checkpoint",
        include_str!("../../dictionaries/dictionary.checkpoint"),
    ),
    (
        "dictionary.juniper",
        include_str!("../../dictionaries/dictionary.juniper"),
    ),
    (
        "dictionary.watchguard",
        include_str!("../../dictionaries/dictionary.watchguard"),
    ),
    (
        "dictionary.cisco.asa",
        include_str!("../../dictionaries/dictionary.cisco.asa"),
    ),
    (
        "dictionary.citrix",
        include_str!("../../dictionaries/dictionary.citrix"),
    ),
    (
        "dictionary.sonicwall",
        include_str!("../../dictionaries/dictionary.sonicwall"),
    ),
    (
        "dictionary.fortinet",
        include_str!("../../dictionaries/dictionary.fortinet"),
    ),
    (
        "dictionary.aruba",
        include_str!("../../dictionaries/dictionary.aruba"),
    ),
    (
        "dictionary.paloalto",
        include_str!("../../dictionaries/dictionary.paloalto"),
    ),
];

#[cfg(test)]
mod tests {
    #[test]
    fn builtin_matches_the_shipped_files() {
        let mut dict = Dictionary::default();
        for (name, text) in super::BUILTIN {
            let mut parser = parse::Parser {
                dict: &mut dict,
                open_files: Vec::new(),
            };
            parser
                .parse(text, name, None)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dictionaries/dictionary");
        let loaded = Dictionary::load(&root).unwrap();
        assert_eq!(
            Dictionary::builtin().attributes().count(),
            loaded.attributes().count()
        );
        assert!(
            Dictionary::builtin()
                .attr_by_name("MS-MPPE-Send-Key")
                .is_some()
        );
    }

    use std::collections::BTreeSet;
    use std::fs;
    use std::path::PathBuf;

    use super::*;
    use crate::radius::attr;

    fn dictionaries_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("dictionaries")
    }

    #[test]
    fn shipped_dictionaries_load_and_every_file_is_included() {
        let dict = shipped();
        assert!(
            dict.attributes().count() > 250,
            "only {} attributes",
            dict.attributes().count()
        );

        let root = fs::read_to_string(dictionaries_dir().join("dictionary")).unwrap();
        let included: BTreeSet<String> = root
            .lines()
            .filter_map(|l| l.strip_prefix("$INCLUDE"))
            .map(|rest| rest.trim().to_owned())
            .collect();
        let on_disk: BTreeSet<String> = fs::read_dir(dictionaries_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("dictionary.") && !n.ends_with('~'))
            .collect();
        assert_eq!(included, on_disk, "root $INCLUDEs and files on disk differ");
        let last_include = root.lines().rfind(|l| l.starts_with("$INCLUDE")).unwrap();
        assert_eq!(last_include.trim(), "$INCLUDE dictionary.local");
    }

    #[test]
    fn attr_constants_agree_with_dictionaries() {
        let standard: &[(&str, u8)] = &[
            ("User-Name", attr::USER_NAME),
            ("User-Password", attr::USER_PASSWORD),
            ("CHAP-Password", attr::CHAP_PASSWORD),
            ("NAS-IP-Address", attr::NAS_IP_ADDRESS),
            ("NAS-Port", attr::NAS_PORT),
            ("Service-Type", attr::SERVICE_TYPE),
            ("Framed-IP-Address", attr::FRAMED_IP_ADDRESS),
            ("Filter-Id", attr::FILTER_ID),
            ("Reply-Message", attr::REPLY_MESSAGE),
            ("State", attr::STATE),
            ("Class", attr::CLASS),
            ("Vendor-Specific", attr::VENDOR_SPECIFIC),
            ("Session-Timeout", attr::SESSION_TIMEOUT),
            ("Called-Station-Id", attr::CALLED_STATION_ID),
            ("Calling-Station-Id", attr::CALLING_STATION_ID),
            ("NAS-Identifier", attr::NAS_IDENTIFIER),
            ("Proxy-State", attr::PROXY_STATE),
            ("Acct-Status-Type", attr::ACCT_STATUS_TYPE),
            ("CHAP-Challenge", attr::CHAP_CHALLENGE),
            ("Tunnel-Type", attr::TUNNEL_TYPE),
            ("Tunnel-Medium-Type", attr::TUNNEL_MEDIUM_TYPE),
            ("Tunnel-Client-Endpoint", attr::TUNNEL_CLIENT_ENDPOINT),
            ("Tunnel-Password", attr::TUNNEL_PASSWORD),
            ("EAP-Message", attr::EAP_MESSAGE),
            ("Message-Authenticator", attr::MESSAGE_AUTHENTICATOR),
            ("NAS-IPv6-Address", attr::NAS_IPV6_ADDRESS),
        ];
        let vendor: &[(&str, u32, u8)] = &[
            (
                "MS-CHAP-Response",
                attr::VENDOR_MICROSOFT,
                attr::MS_CHAP_RESPONSE,
            ),
            (
                "MS-CHAP-Challenge",
                attr::VENDOR_MICROSOFT,
                attr::MS_CHAP_CHALLENGE,
            ),
            (
                "MS-MPPE-Send-Key",
                attr::VENDOR_MICROSOFT,
                attr::MS_MPPE_SEND_KEY,
            ),
            (
                "MS-MPPE-Recv-Key",
                attr::VENDOR_MICROSOFT,
                attr::MS_MPPE_RECV_KEY,
            ),
            (
                "MS-CHAP2-Response",
                attr::VENDOR_MICROSOFT,
                attr::MS_CHAP2_RESPONSE,
            ),
            (
                "MS-CHAP2-Success",
                attr::VENDOR_MICROSOFT,
                attr::MS_CHAP2_SUCCESS,
            ),
            ("Cisco-AVPair", attr::VENDOR_CISCO, attr::CISCO_AVPAIR),
        ];
        let dict = shipped();
        let rows = standard
            .iter()
            .map(|(n, num)| (*n, 0, *num))
            .chain(vendor.iter().copied());
        for (name, vendor, number) in rows {
            let def = dict
                .attr_by_name(name)
                .unwrap_or_else(|| panic!("{name} missing from dictionaries"));
            assert_eq!(
                (def.vendor, def.number, def.extended),
                (vendor, u32::from(number), None),
                "{name}"
            );
            assert_eq!(
                dict.attr(vendor, u32::from(number))
                    .map(|d| d.name.as_str()),
                Some(name)
            );
        }
        assert_eq!(
            dict.vendor_by_name("Microsoft").map(|v| v.id),
            Some(attr::VENDOR_MICROSOFT)
        );
        assert_eq!(
            dict.vendor_by_name("Cisco").map(|v| v.id),
            Some(attr::VENDOR_CISCO)
        );
    }

    #[test]
    fn hidden_and_tagged_attributes_carry_their_flags() {
        let dict = shipped();
        let user_password = dict.attr_by_name("User-Password").unwrap();
        assert_eq!(
            (user_password.encrypt, user_password.has_tag),
            (Encrypt::UserPassword, false)
        );
        let tunnel_password = dict.attr_by_name("Tunnel-Password").unwrap();
        assert_eq!(
            (tunnel_password.encrypt, tunnel_password.has_tag),
            (Encrypt::TunnelPassword, true)
        );
        for name in ["MS-MPPE-Send-Key", "MS-MPPE-Recv-Key"] {
            assert_eq!(
                dict.attr_by_name(name).unwrap().encrypt,
                Encrypt::TunnelPassword,
                "{name}"
            );
        }
        for name in [
            "Tunnel-Type",
            "Tunnel-Medium-Type",
            "Tunnel-Client-Endpoint",
            "Tunnel-Server-Endpoint",
            "Tunnel-Private-Group-Id",
            "Tunnel-Assignment-Id",
            "Tunnel-Preference",
            "Tunnel-Client-Auth-Id",
            "Tunnel-Server-Auth-Id",
        ] {
            let def = dict.attr_by_name(name).unwrap();
            assert!(def.has_tag && def.encrypt == Encrypt::None, "{name}");
        }
        assert!(dict.attr_by_name("EAP-Message").unwrap().concat);
        // Nothing else is flagged as hidden by accident.
        let mut hidden: Vec<&str> = dict
            .attributes()
            .filter(|d| d.encrypt != Encrypt::None)
            .map(|d| d.name.as_str())
            .collect();
        hidden.sort_unstable();
        assert_eq!(
            hidden,
            [
                "MS-CHAP-MPPE-Keys",
                "MS-MPPE-Recv-Key",
                "MS-MPPE-Send-Key",
                "Tunnel-Password",
                "User-Password"
            ]
        );
    }

    #[test]
    fn lookups_ignore_case_and_find_values() {
        let dict = shipped();
        let service_type = dict.attr_by_name("service-TYPE").unwrap();
        assert_eq!(service_type.number, 6);
        assert_eq!(dict.value_name(service_type, 2), Some("Framed-User"));
        assert_eq!(dict.value_by_name(service_type, "framed-user"), Some(2));
        assert_eq!(dict.value_name(service_type, 17), Some("Authorize-Only"));
        assert_eq!(dict.value_name(service_type, 9999), None);
        let fortinet = dict.vendor_by_name("FORTINET").unwrap();
        assert_eq!(
            (fortinet.id, fortinet.type_len, fortinet.len_len),
            (12356, 1, 1)
        );
        assert_eq!(
            dict.attr(12356, 2).unwrap().name,
            "Fortinet-Client-IP-Address"
        );
        assert_eq!(
            dict.attr(25461, 7).unwrap().name,
            "PaloAlto-Client-Source-IP"
        );
    }

    #[test]
    fn extended_attributes_are_found_by_dotted_number() {
        let dict = shipped();
        let frag = dict.attr_by_oid("241.1").unwrap();
        assert_eq!(
            (frag.name.as_str(), frag.extended, frag.number),
            ("Frag-Status", Some(241), 1)
        );
        assert_eq!(dict.attr_extended(241, 1), Some(frag));
        assert_eq!(dict.attr_by_name("frag-status"), Some(frag));
        // The extended attribute does not shadow standard attribute 1.
        assert_eq!(dict.attr(0, 1).unwrap().name, "User-Name");
        assert_eq!(dict.attr_by_oid("246.26").unwrap().ty, AttrType::Evs);
        assert_eq!(dict.attr_by_oid("241").unwrap().ty, AttrType::Extended);
        assert_eq!(
            dict.attr_by_oid("26.311.16").unwrap().name,
            "MS-MPPE-Send-Key"
        );
        assert_eq!(dict.attr_by_oid("31").unwrap().name, "Calling-Station-Id");
        assert!(dict.attr_by_oid("241.x").is_none());
    }

    #[test]
    fn every_type_keyword_round_trips() {
        let all = [
            AttrType::String,
            AttrType::Octets,
            AttrType::IpAddr,
            AttrType::Ipv6Addr,
            AttrType::Ipv6Prefix,
            AttrType::Ipv4Prefix,
            AttrType::Integer,
            AttrType::Integer64,
            AttrType::Short,
            AttrType::Byte,
            AttrType::Signed,
            AttrType::Date,
            AttrType::Ifid,
            AttrType::Ether,
            AttrType::Abinary,
            AttrType::Tlv,
            AttrType::Vsa,
            AttrType::Extended,
            AttrType::LongExtended,
            AttrType::Evs,
            AttrType::ComboIp,
        ];
        for ty in all {
            assert_eq!(AttrType::from_keyword(ty.keyword()), Some(ty));
        }
        for (alias, ty) in [
            ("uint8", AttrType::Byte),
            ("uint16", AttrType::Short),
            ("uint64", AttrType::Integer64),
        ] {
            assert_eq!(AttrType::from_keyword(alias), Some(ty));
        }
    }

    #[test]
    fn dictionary_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Dictionary>();
        assert_send_sync::<DictionaryError>();
    }
}
