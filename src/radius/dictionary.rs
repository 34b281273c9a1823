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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// Deepest `$INCLUDE` nesting accepted. Loops are caught by path, this only bounds the
/// recursion if the file system plays tricks (e.g. ever-new bind mounts).
const MAX_INCLUDE_DEPTH: usize = 32;

/// Largest value of an ordinary attribute: 255 octets minus type and length (RFC 2865 §5).
const MAX_ATTR_VALUE: usize = 253;

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

/// Where in the dictionary files something was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file as it was named (the root path, or the include path joined to its directory).
    pub file: String,
    /// 1-based line number.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Why a dictionary could not be loaded. Every variant but [`DictionaryError::Read`]
/// names the file and line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DictionaryError {
    /// The root dictionary file could not be read.
    #[error("{path}: cannot read dictionary: {source}")]
    Read {
        /// The root file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line starts with a keyword this parser does not know.
    #[error("{at}: unknown keyword `{keyword}`")]
    UnknownKeyword {
        /// Where.
        at: Location,
        /// The keyword.
        keyword: String,
    },
    /// A directive has too few or too many fields.
    #[error("{at}: expected `{usage}`")]
    Fields {
        /// Where.
        at: Location,
        /// The directive's syntax.
        usage: &'static str,
    },
    /// An attribute or value name contains characters that are not allowed.
    #[error("{at}: bad name `{name}`")]
    BadName {
        /// Where.
        at: Location,
        /// The name.
        name: String,
    },
    /// An ATTRIBUTE line names a type this parser does not know.
    #[error("{at}: unknown attribute type `{ty}`")]
    UnknownType {
        /// Where.
        at: Location,
        /// The type keyword.
        ty: String,
    },
    /// A number could not be parsed or is out of range.
    #[error("{at}: bad number `{text}`: {reason}")]
    BadNumber {
        /// Where.
        at: Location,
        /// The text.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An ATTRIBUTE line has a flag this parser does not know.
    #[error("{at}: unknown flag `{flag}`")]
    UnknownFlag {
        /// Where.
        at: Location,
        /// The flag.
        flag: String,
    },
    /// A known flag is used where it makes no sense.
    #[error("{at}: flag `{flag}` {reason}")]
    BadFlag {
        /// Where.
        at: Location,
        /// The flag.
        flag: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A VALUE line names an attribute that has not been defined (yet).
    #[error("{at}: VALUE for unknown attribute `{attr}` (ATTRIBUTE must come first)")]
    UnknownAttribute {
        /// Where.
        at: Location,
        /// The attribute name.
        attr: String,
    },
    /// A VALUE line names an attribute whose type takes no value names.
    #[error(
        "{at}: VALUE for `{attr}` of type {ty}: only integer, short, byte and signed take VALUE names"
    )]
    ValueForType {
        /// Where.
        at: Location,
        /// The attribute name.
        attr: String,
        /// Its type.
        ty: AttrType,
    },
    /// BEGIN-VENDOR names a vendor that has not been defined.
    #[error("{at}: unknown vendor `{vendor}`")]
    UnknownVendor {
        /// Where.
        at: Location,
        /// The vendor name.
        vendor: String,
    },
    /// A VENDOR line has a bad `format=` option.
    #[error("{at}: bad vendor format `{text}`: expected format=T,L with T in 1,2,4 and L in 0,1,2")]
    BadFormat {
        /// Where.
        at: Location,
        /// The option as written.
        text: String,
    },
    /// END-VENDOR does not close the open BEGIN-VENDOR.
    #[error("{at}: END-VENDOR {found} does not match {expected}")]
    VendorMismatch {
        /// Where.
        at: Location,
        /// What was open (`BEGIN-VENDOR x`, or `no BEGIN-VENDOR`).
        expected: String,
        /// The name given to END-VENDOR.
        found: String,
    },
    /// A BEGIN-VENDOR appears inside another.
    #[error("{at}: BEGIN-VENDOR {inner} inside BEGIN-VENDOR {outer}")]
    NestedVendor {
        /// Where.
        at: Location,
        /// The block already open.
        outer: String,
        /// The block being opened.
        inner: String,
    },
    /// A file ends inside a BEGIN-VENDOR block.
    #[error("{at}: BEGIN-VENDOR {vendor} is not closed by END-VENDOR in the same file")]
    UnclosedVendor {
        /// Where the block was opened.
        at: Location,
        /// The vendor name.
        vendor: String,
    },
    /// An included file could not be read.
    #[error("{at}: cannot include {path}: {source}")]
    Include {
        /// The `$INCLUDE` line.
        at: Location,
        /// The file it names.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file includes itself, directly or through others.
    #[error("{at}: include loop: {path} is already being read")]
    IncludeLoop {
        /// The `$INCLUDE` line.
        at: Location,
        /// The file it names.
        path: String,
    },
    /// Includes are nested too deeply.
    #[error("{at}: includes nested deeper than {MAX_INCLUDE_DEPTH}")]
    IncludeTooDeep {
        /// The `$INCLUDE` line.
        at: Location,
    },
    /// `$INCLUDE` in text given to [`Dictionary::parse_str`], which has no directory.
    #[error("{at}: $INCLUDE is not available when parsing a string")]
    IncludeNotAllowed {
        /// The `$INCLUDE` line.
        at: Location,
    },
}

/// Why a textual value could not be turned into octets. The text itself is never
/// repeated: it may be a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The text does not have the form the attribute's type needs.
    #[error("{attr}: expected {expected}")]
    Malformed {
        /// The attribute name.
        attr: String,
        /// What form was expected.
        expected: &'static str,
    },
    /// A number does not fit the attribute's type.
    #[error("{attr}: number out of range for {ty}")]
    OutOfRange {
        /// The attribute name.
        attr: String,
        /// Its type.
        ty: AttrType,
    },
    /// A tag is not in 1..=31.
    #[error("{attr}: tag must be 1 to 31")]
    BadTag {
        /// The attribute name.
        attr: String,
    },
    /// The encoded value does not fit in one attribute.
    #[error("{attr}: value is {len} octets, at most {max} fit")]
    TooLong {
        /// The attribute name.
        attr: String,
        /// Encoded length.
        len: usize,
        /// Largest length that fits.
        max: usize,
    },
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
        let mut parser = Parser {
            dict: &mut dict,
            open_files: vec![canonical],
        };
        parser.parse(&text, &display, root_file.parent())?;
        Ok(dict)
    }

    /// Parses dictionary text with no `$INCLUDE` support; `name` is used in error messages.
    pub fn parse_str(text: &str, name: &str) -> Result<Self, DictionaryError> {
        let mut dict = Self::default();
        Parser {
            dict: &mut dict,
            open_files: Vec::new(),
        }
        .parse(text, name, None)?;
        Ok(dict)
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
        let parts: Vec<u32> = oid.split('.').map(parse_u32).collect::<Option<_>>()?;
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

    /// Encodes a textual value by the attribute's type: `"203.0.113.7"`, `"Framed-User"`,
    /// `"0x0102"`, `"42"`, `"2001:db8::/48"`, `"2024-05-01T12:00:00Z"`.
    ///
    /// Strings are taken literally unless they start with `"`; a quoted string may use the
    /// escapes `\"`, `\\`, `\n`, `\r`, `\t` and `\xNN` (the form
    /// [`super::display::format_value`] prints). Tagged attributes accept a `:tag` suffix
    /// (`L2TP:1`, `"vpn.example":2`; strings only when quoted). For attributes with
    /// `encrypt=` set this returns the plaintext only: hiding it is the codec's job.
    pub fn parse_value(&self, attr: &AttrDef, text: &str) -> Result<Vec<u8>, ValueError> {
        let tagged = attr.has_tag && attr.encrypt == Encrypt::None;
        let (body, tag) = if tagged {
            split_tag(attr, text)?
        } else {
            (text, None)
        };
        let mut out = self.encode_untagged(attr, body, tagged)?;
        if tagged {
            out = apply_tag(attr, out, tag)?;
        }
        if let Some(max) = self.max_value_len(attr)
            && out.len() > max
        {
            return Err(ValueError::TooLong {
                attr: attr.name.clone(),
                len: out.len(),
                max,
            });
        }
        Ok(out)
    }

    /// Encodes a value without its tag octet.
    fn encode_untagged(
        &self,
        attr: &AttrDef,
        text: &str,
        tagged: bool,
    ) -> Result<Vec<u8>, ValueError> {
        let bad = |expected| ValueError::Malformed {
            attr: attr.name.clone(),
            expected,
        };
        let range = || ValueError::OutOfRange {
            attr: attr.name.clone(),
            ty: attr.ty,
        };
        let bytes = match attr.ty {
            AttrType::String => match text.strip_prefix('"') {
                Some(quoted) => unquote(quoted)
                    .ok_or_else(|| bad("a string, or a quoted string with valid escapes"))?,
                None => text.as_bytes().to_vec(),
            },
            AttrType::IpAddr => text
                .parse::<Ipv4Addr>()
                .map_err(|_| bad("an IPv4 address"))?
                .octets()
                .to_vec(),
            AttrType::Ipv6Addr => text
                .parse::<Ipv6Addr>()
                .map_err(|_| bad("an IPv6 address"))?
                .octets()
                .to_vec(),
            AttrType::ComboIp => match text.parse::<IpAddr>().map_err(|_| bad("an IP address"))? {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            },
            AttrType::Ipv4Prefix => encode_ipv4_prefix(text)
                .ok_or_else(|| bad("an IPv4 prefix a.b.c.d/len, host bits zero"))?,
            AttrType::Ipv6Prefix => encode_ipv6_prefix(text)
                .ok_or_else(|| bad("an IPv6 prefix addr/len, host bits zero"))?,
            AttrType::Integer | AttrType::Short | AttrType::Byte => {
                let n = match self.value_by_name(attr, text) {
                    Some(n) => u64::from(n),
                    None => parse_u64(text).ok_or_else(|| bad("a number or a VALUE name"))?,
                };
                encode_unsigned(attr.ty, n, tagged).ok_or_else(range)?
            }
            AttrType::Integer64 => parse_u64(text)
                .ok_or_else(|| bad("a number"))?
                .to_be_bytes()
                .to_vec(),
            AttrType::Signed => {
                let n = match self.value_by_name(attr, text) {
                    // VALUE numbers are stored as the 32-bit pattern.
                    Some(n) => n.cast_signed(),
                    None => text
                        .parse::<i32>()
                        .map_err(|_| bad("a signed 32-bit number"))?,
                };
                n.to_be_bytes().to_vec()
            }
            AttrType::Date => parse_date(text)
                .ok_or_else(|| bad("seconds since 1970 or YYYY-MM-DDTHH:MM:SSZ"))?
                .to_be_bytes()
                .to_vec(),
            AttrType::Ifid => parse_ifid(text)
                .ok_or_else(|| bad("an interface id xxxx:xxxx:xxxx:xxxx"))?
                .to_vec(),
            AttrType::Ether => parse_ether(text)
                .ok_or_else(|| bad("a MAC address aa:bb:cc:dd:ee:ff"))?
                .to_vec(),
            AttrType::Octets
            | AttrType::Abinary
            | AttrType::Tlv
            | AttrType::Vsa
            | AttrType::Extended
            | AttrType::LongExtended
            | AttrType::Evs => parse_hex(text).ok_or_else(|| bad("hex octets 0x..."))?,
        };
        Ok(bytes)
    }

    /// The longest value that fits in one attribute of this kind, or `None` when the
    /// value may be split over several (concat, long-extended).
    fn max_value_len(&self, attr: &AttrDef) -> Option<usize> {
        if attr.concat
            || attr.ty == AttrType::LongExtended
            || matches!(attr.extended, Some(245 | 246))
        {
            return None;
        }
        let header = match (attr.extended, attr.vendor) {
            (Some(_), _) => 1,
            (None, 0) => 0,
            (None, id) => {
                let (t, l) = self.vendor(id).map_or((1, 1), |v| (v.type_len, v.len_len));
                4 + usize::from(t) + usize::from(l)
            }
        };
        Some(MAX_ATTR_VALUE - header)
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

/// Reads dictionary text line by line into a [`Dictionary`].
struct Parser<'d> {
    dict: &'d mut Dictionary,
    /// Canonical paths of the files being read, outermost first (for loop detection).
    /// Empty for [`Dictionary::parse_str`], which allows no includes.
    open_files: Vec<PathBuf>,
}

/// The state of one file being parsed.
struct FileCtx<'a> {
    name: &'a str,
    dir: Option<&'a Path>,
    /// The open BEGIN-VENDOR block: vendor name as written, id, and where it was opened.
    block: Option<(String, u32, usize)>,
}

impl FileCtx<'_> {
    fn at(&self, line: usize) -> Location {
        Location {
            file: self.name.to_owned(),
            line,
        }
    }
}

impl Parser<'_> {
    fn parse(&mut self, text: &str, name: &str, dir: Option<&Path>) -> Result<(), DictionaryError> {
        let mut ctx = FileCtx {
            name,
            dir,
            block: None,
        };
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.split('#').next().unwrap_or_default();
            let fields: Vec<&str> = content.split_whitespace().collect();
            let Some(keyword) = fields.first() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "ATTRIBUTE" => self.attribute(&ctx, line, &fields)?,
                "VALUE" => self.value(&ctx, line, &fields)?,
                "VENDOR" => self.vendor(&ctx, line, &fields)?,
                "BEGIN-VENDOR" => self.begin_vendor(&mut ctx, line, &fields)?,
                "END-VENDOR" => end_vendor(&mut ctx, line, &fields)?,
                "$INCLUDE" => self.include(&ctx, line, &fields, false)?,
                "$INCLUDE-" => self.include(&ctx, line, &fields, true)?,
                _ => {
                    return Err(DictionaryError::UnknownKeyword {
                        at: ctx.at(line),
                        keyword: (*keyword).to_owned(),
                    });
                }
            }
        }
        match ctx.block.take() {
            Some((vendor, _, opened)) => Err(DictionaryError::UnclosedVendor {
                at: ctx.at(opened),
                vendor,
            }),
            None => Ok(()),
        }
    }

    /// `ATTRIBUTE name number type [flags]`
    fn attribute(
        &mut self,
        ctx: &FileCtx<'_>,
        line: usize,
        fields: &[&str],
    ) -> Result<(), DictionaryError> {
        let at = || ctx.at(line);
        let [_, name, number, ty, rest @ ..] = fields else {
            return Err(DictionaryError::Fields {
                at: at(),
                usage: "ATTRIBUTE name number type [flags]",
            });
        };
        if rest.len() > 1 {
            return Err(DictionaryError::Fields {
                at: at(),
                usage: "ATTRIBUTE name number type [flags]",
            });
        }
        check_name(name, at)?;
        let vendor = ctx.block.as_ref().map_or(0, |(_, id, _)| *id);
        let (extended, number) = self.attr_number(number, vendor, at)?;
        let ty = parse_type(ty).ok_or_else(|| DictionaryError::UnknownType {
            at: at(),
            ty: (*ty).to_owned(),
        })?;
        let mut def = AttrDef {
            name: (*name).to_owned(),
            vendor,
            number,
            ty,
            encrypt: Encrypt::None,
            has_tag: false,
            concat: false,
            array: false,
            is_virtual: false,
            extended,
        };
        if let Some(flags) = rest.first() {
            apply_flags(&mut def, flags, at)?;
        }
        self.dict.insert_attr(def);
        Ok(())
    }

    /// Parses an attribute number: decimal, `0x` hex, or dotted `241.N` for RFC 6929.
    fn attr_number(
        &self,
        text: &str,
        vendor: u32,
        at: impl Fn() -> Location,
    ) -> Result<(Option<u8>, u32), DictionaryError> {
        let bad = |reason| DictionaryError::BadNumber {
            at: at(),
            text: text.to_owned(),
            reason,
        };
        if let Some((parent, child)) = text.split_once('.') {
            let parent = parse_u32(parent)
                .and_then(|p| u8::try_from(p).ok())
                .filter(|p| (241..=246).contains(p));
            let (Some(parent), 0) = (parent, vendor) else {
                return Err(bad(
                    "dotted numbers are only for RFC 6929 extended attributes 241.N to 246.N",
                ));
            };
            let child = parse_u32(child)
                .filter(|c| (1..=255).contains(c))
                .ok_or_else(|| bad("extended type must be 1 to 255"))?;
            return Ok((Some(parent), child));
        }
        let number = parse_u32(text).ok_or_else(|| bad("not a decimal or 0x hex number"))?;
        let type_len = match vendor {
            0 => 1,
            id => self.dict.vendor(id).map_or(1, |v| v.type_len),
        };
        let fits = match type_len {
            1 => (1..=255).contains(&number),
            2 => number <= 0xFFFF,
            _ => true,
        };
        if !fits {
            return Err(bad("out of range for the attribute's type field"));
        }
        Ok((None, number))
    }

    /// `VALUE attribute-name value-name number`
    fn value(
        &mut self,
        ctx: &FileCtx<'_>,
        line: usize,
        fields: &[&str],
    ) -> Result<(), DictionaryError> {
        let at = || ctx.at(line);
        let [_, attr_name, value_name, number] = fields else {
            return Err(DictionaryError::Fields {
                at: at(),
                usage: "VALUE attribute-name value-name number",
            });
        };
        let key = *self
            .dict
            .attr_names
            .get(&attr_name.to_ascii_lowercase())
            .ok_or_else(|| DictionaryError::UnknownAttribute {
                at: at(),
                attr: (*attr_name).to_owned(),
            })?;
        let def = &self.dict.attrs[&key];
        if !def.ty.takes_value_names() {
            return Err(DictionaryError::ValueForType {
                at: at(),
                attr: def.name.clone(),
                ty: def.ty,
            });
        }
        if parse_u64(value_name).is_some() || value_name.parse::<i64>().is_ok() {
            return Err(DictionaryError::BadName {
                at: at(),
                name: (*value_name).to_owned(),
            });
        }
        let bad = |reason| DictionaryError::BadNumber {
            at: at(),
            text: (*number).to_owned(),
            reason,
        };
        let n = parse_u32(number).ok_or_else(|| bad("not a decimal or 0x hex number"))?;
        if encode_unsigned(def.ty, u64::from(n), def.has_tag).is_none()
            && def.ty != AttrType::Signed
        {
            return Err(bad("does not fit the attribute's type"));
        }
        let names = self.dict.values.entry(key).or_default();
        names.by_number.insert(n, (*value_name).to_owned());
        names.by_name.insert(value_name.to_ascii_lowercase(), n);
        Ok(())
    }

    /// `VENDOR name number [format=t,l]`
    fn vendor(
        &mut self,
        ctx: &FileCtx<'_>,
        line: usize,
        fields: &[&str],
    ) -> Result<(), DictionaryError> {
        let at = || ctx.at(line);
        let usage = "VENDOR name number [format=t,l]";
        let [_, name, number, rest @ ..] = fields else {
            return Err(DictionaryError::Fields { at: at(), usage });
        };
        if rest.len() > 1 {
            return Err(DictionaryError::Fields { at: at(), usage });
        }
        check_name(name, at)?;
        let bad = |reason| DictionaryError::BadNumber {
            at: at(),
            text: (*number).to_owned(),
            reason,
        };
        let id = parse_u32(number).ok_or_else(|| bad("not a decimal or 0x hex number"))?;
        if id == 0 {
            return Err(bad("vendor 0 is the standard attribute space"));
        }
        let (type_len, len_len) = match rest.first() {
            Some(option) => parse_format(option).ok_or_else(|| DictionaryError::BadFormat {
                at: at(),
                text: (*option).to_owned(),
            })?,
            None => (1, 1),
        };
        self.dict.insert_vendor(VendorDef {
            name: (*name).to_owned(),
            id,
            type_len,
            len_len,
        });
        Ok(())
    }

    /// `BEGIN-VENDOR name`
    fn begin_vendor(
        &mut self,
        ctx: &mut FileCtx<'_>,
        line: usize,
        fields: &[&str],
    ) -> Result<(), DictionaryError> {
        let [_, name] = fields else {
            return Err(DictionaryError::Fields {
                at: ctx.at(line),
                usage: "BEGIN-VENDOR name",
            });
        };
        if let Some((outer, _, _)) = &ctx.block {
            return Err(DictionaryError::NestedVendor {
                at: ctx.at(line),
                outer: outer.clone(),
                inner: (*name).to_owned(),
            });
        }
        let vendor =
            self.dict
                .vendor_by_name(name)
                .ok_or_else(|| DictionaryError::UnknownVendor {
                    at: ctx.at(line),
                    vendor: (*name).to_owned(),
                })?;
        ctx.block = Some(((*name).to_owned(), vendor.id, line));
        Ok(())
    }

    /// `$INCLUDE path` (or `$INCLUDE- path`, which skips a missing file).
    fn include(
        &mut self,
        ctx: &FileCtx<'_>,
        line: usize,
        fields: &[&str],
        optional: bool,
    ) -> Result<(), DictionaryError> {
        let at = || ctx.at(line);
        let [_, target] = fields else {
            return Err(DictionaryError::Fields {
                at: at(),
                usage: "$INCLUDE path",
            });
        };
        let Some(dir) = ctx.dir.filter(|_| !self.open_files.is_empty()) else {
            return Err(DictionaryError::IncludeNotAllowed { at: at() });
        };
        if self.open_files.len() >= MAX_INCLUDE_DEPTH {
            return Err(DictionaryError::IncludeTooDeep { at: at() });
        }
        let path = dir.join(target);
        let shown = path.display().to_string();
        let include_err = |source| DictionaryError::Include {
            at: at(),
            path: shown.clone(),
            source,
        };
        let canonical = match std::fs::canonicalize(&path) {
            Ok(p) => p,
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(include_err(e)),
        };
        if self.open_files.contains(&canonical) {
            return Err(DictionaryError::IncludeLoop {
                at: at(),
                path: shown,
            });
        }
        let text = std::fs::read_to_string(&path).map_err(include_err)?;
        self.open_files.push(canonical);
        let result = self.parse(&text, &shown, path.parent());
        self.open_files.pop();
        result
    }
}

/// `END-VENDOR name`
fn end_vendor(ctx: &mut FileCtx<'_>, line: usize, fields: &[&str]) -> Result<(), DictionaryError> {
    let [_, name] = fields else {
        return Err(DictionaryError::Fields {
            at: ctx.at(line),
            usage: "END-VENDOR name",
        });
    };
    match &ctx.block {
        Some((open, _, _)) if open.eq_ignore_ascii_case(name) => {
            ctx.block = None;
            Ok(())
        }
        open => {
            let expected = open.as_ref().map_or_else(
                || "no BEGIN-VENDOR".to_owned(),
                |(o, _, _)| format!("BEGIN-VENDOR {o}"),
            );
            Err(DictionaryError::VendorMismatch {
                at: ctx.at(line),
                expected,
                found: (*name).to_owned(),
            })
        }
    }
}

/// Attribute, vendor and value names: ASCII letters, digits and `-_./`, not empty.
fn check_name(name: &str, at: impl Fn() -> Location) -> Result<(), DictionaryError> {
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if ok && !name.is_empty() {
        Ok(())
    } else {
        Err(DictionaryError::BadName {
            at: at(),
            name: name.to_owned(),
        })
    }
}

/// A type keyword, also in the v3 fixed-size form `octets[16]` (the size is not enforced).
fn parse_type(word: &str) -> Option<AttrType> {
    if let Some((base, size)) = word.split_once('[') {
        let ty = AttrType::from_keyword(base)?;
        let sized = matches!(ty, AttrType::Octets | AttrType::String);
        return (sized && size.strip_suffix(']').and_then(parse_u32).is_some()).then_some(ty);
    }
    AttrType::from_keyword(word)
}

/// Applies the comma-separated flags of an ATTRIBUTE line.
fn apply_flags(
    def: &mut AttrDef,
    flags: &str,
    at: impl Fn() -> Location,
) -> Result<(), DictionaryError> {
    for flag in flags.split(',') {
        let bad = |reason| DictionaryError::BadFlag {
            at: at(),
            flag: flag.to_owned(),
            reason,
        };
        match flag {
            "has_tag"
                if matches!(
                    def.ty,
                    AttrType::Integer | AttrType::String | AttrType::Octets
                ) =>
            {
                def.has_tag = true
            }
            "has_tag" => return Err(bad("is only for integer, string and octets attributes")),
            "concat" if def.ty == AttrType::Octets => def.concat = true,
            "concat" => return Err(bad("is only for octets attributes")),
            "array" => def.array = true,
            "virtual" => def.is_virtual = true,
            "abinary"
                if matches!(
                    def.ty,
                    AttrType::Octets | AttrType::String | AttrType::Abinary
                ) =>
            {
                def.ty = AttrType::Abinary;
            }
            "abinary" => return Err(bad("is only for octets attributes")),
            _ => match flag.strip_prefix("encrypt=") {
                Some(method) => {
                    def.encrypt = match method {
                        "1" => Encrypt::UserPassword,
                        "2" => Encrypt::TunnelPassword,
                        "3" => Encrypt::Ascend,
                        _ => return Err(bad("must be encrypt=1, 2 or 3")),
                    };
                    if !matches!(def.ty, AttrType::String | AttrType::Octets) {
                        return Err(bad("is only for string and octets attributes"));
                    }
                }
                None => {
                    return Err(DictionaryError::UnknownFlag {
                        at: at(),
                        flag: flag.to_owned(),
                    });
                }
            },
        }
    }
    Ok(())
}

/// `format=T,L` with T in 1, 2, 4 and L in 0, 1, 2.
fn parse_format(option: &str) -> Option<(u8, u8)> {
    let (t, l) = option.strip_prefix("format=")?.split_once(',')?;
    let t = match t {
        "1" => 1,
        "2" => 2,
        "4" => 4,
        _ => return None,
    };
    let l = match l {
        "0" => 0,
        "1" => 1,
        "2" => 2,
        _ => return None,
    };
    Some((t, l))
}

/// Decimal or `0x` hex, digits only (no sign, no `+`, no separators).
fn parse_u64(text: &str) -> Option<u64> {
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    let valid = !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix));
    if valid {
        u64::from_str_radix(digits, radix).ok()
    } else {
        None
    }
}

/// [`parse_u64`] narrowed to 32 bits.
fn parse_u32(text: &str) -> Option<u32> {
    parse_u64(text).and_then(|n| u32::try_from(n).ok())
}

/// Big-endian octets of an unsigned number for the type; a tagged integer has 24 bits
/// because its first octet is the tag. `None` if it does not fit.
fn encode_unsigned(ty: AttrType, n: u64, tagged: bool) -> Option<Vec<u8>> {
    match ty {
        AttrType::Byte => Some(vec![u8::try_from(n).ok()?]),
        AttrType::Short => Some(u16::try_from(n).ok()?.to_be_bytes().to_vec()),
        AttrType::Integer if tagged => (n <= 0xFF_FFFF)
            .then(|| u32::try_from(n).ok())
            .flatten()
            .map(|v| v.to_be_bytes().to_vec()),
        AttrType::Integer => Some(u32::try_from(n).ok()?.to_be_bytes().to_vec()),
        _ => None,
    }
}

/// Splits an optional `:tag` suffix off a tagged attribute's text.
fn split_tag<'t>(attr: &AttrDef, text: &'t str) -> Result<(&'t str, Option<u8>), ValueError> {
    let bad_tag = || ValueError::BadTag {
        attr: attr.name.clone(),
    };
    // A bare string may contain ':' (an IPv6 endpoint); only a quoted one can carry a tag.
    let split_at = match attr.ty {
        AttrType::String if text.starts_with('"') => closing_quote(text).map(|end| end + 1),
        AttrType::String => None,
        _ => text.rfind(':'),
    };
    let Some(pos) = split_at.filter(|&p| p < text.len()) else {
        return Ok((text, None));
    };
    let suffix = text[pos..].strip_prefix(':').ok_or_else(bad_tag)?;
    let tag = parse_u32(suffix)
        .and_then(|t| u8::try_from(t).ok())
        .filter(|t| (1..=0x1F).contains(t));
    Ok((&text[..pos], Some(tag.ok_or_else(bad_tag)?)))
}

/// Byte index of the quote that closes the quoted string starting at `text[0]`.
fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, b) in text.bytes().enumerate().skip(1) {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// Puts the RFC 2868 tag octet in front of (string) or into (integer) an encoded value.
fn apply_tag(attr: &AttrDef, mut value: Vec<u8>, tag: Option<u8>) -> Result<Vec<u8>, ValueError> {
    if attr.ty == AttrType::Integer {
        // The integer was encoded in 24 bits, so the first octet is free for the tag.
        if let Some(first) = value.first_mut() {
            *first = tag.unwrap_or(0);
        }
        return Ok(value);
    }
    // Untagged strings need a zero tag only if their first octet would read as a tag.
    let needs_zero = value.first().is_none_or(|&b| b <= 0x1F);
    match tag {
        Some(t) => value.insert(0, t),
        None if needs_zero => value.insert(0, 0),
        None => {}
    }
    Ok(value)
}

/// Undoes the escapes of a quoted string (`rest` is the text after the opening quote).
fn unquote(rest: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(rest.len());
    let mut bytes = rest.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'"' => return bytes.next().is_none().then_some(out),
            b'\\' => out.push(match bytes.next()? {
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'x' => {
                    let hi = char::from(bytes.next()?).to_digit(16)?;
                    let lo = char::from(bytes.next()?).to_digit(16)?;
                    u8::try_from(hi * 16 + lo).ok()?
                }
                c @ (b'"' | b'\\') => c,
                _ => return None,
            }),
            _ => out.push(b),
        }
    }
    None
}

/// `0x` followed by an even number of hex digits (possibly none).
fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))?;
    hex::decode(digits).ok()
}

/// `a.b.c.d/len` to RFC 6572 form: reserved, length, 4 prefix octets.
fn encode_ipv4_prefix(text: &str) -> Option<Vec<u8>> {
    let (addr, len) = text.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let len = u8::try_from(parse_u32(len)?).ok().filter(|l| *l <= 32)?;
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    if u32::from(addr) & !mask != 0 {
        return None;
    }
    let mut out = vec![0, len];
    out.extend_from_slice(&addr.octets());
    Some(out)
}

/// `addr/len` to RFC 3162 §2.3 form: reserved, length, the prefix octets that hold `len` bits.
fn encode_ipv6_prefix(text: &str) -> Option<Vec<u8>> {
    let (addr, len) = text.split_once('/')?;
    let addr: Ipv6Addr = addr.parse().ok()?;
    let len = u8::try_from(parse_u32(len)?).ok().filter(|l| *l <= 128)?;
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    if u128::from(addr) & !mask != 0 {
        return None;
    }
    let mut out = vec![0, len];
    out.extend_from_slice(&addr.octets()[..usize::from(len).div_ceil(8)]);
    Some(out)
}

/// Seconds since 1970 as a number, or `YYYY-MM-DDTHH:MM:SSZ` (UTC), within 32 bits.
fn parse_date(text: &str) -> Option<u32> {
    if let Some(n) = parse_u32(text) {
        return Some(n);
    }
    let b = text.as_bytes();
    let shape = b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z';
    if !shape {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let s = &text[range];
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    // Reject impossible days such as February 30th: they would not survive the round trip.
    if civil_from_days(days) != (i64::from(year), month, day) {
        return None;
    }
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    u32::try_from(secs).ok()
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `days` after 1970-01-01, as (year, month, day). Inverse of [`days_from_civil`].
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both are small and positive by construction (day 1..=31, month 1..=12).
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `xxxx:xxxx:xxxx:xxxx` (1–4 hex digits per group) to 8 octets.
fn parse_ifid(text: &str) -> Option<[u8; 8]> {
    let mut out = [0u8; 8];
    let mut groups = text.split(':');
    for pair in out.chunks_exact_mut(2) {
        let group = groups.next().filter(|g| (1..=4).contains(&g.len()))?;
        let value = u16::from_str_radix(group, 16)
            .ok()
            .filter(|_| group.chars().all(|c| c.is_ascii_hexdigit()))?;
        pair.copy_from_slice(&value.to_be_bytes());
    }
    groups.next().is_none().then_some(out)
}

/// `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` to 6 octets.
fn parse_ether(text: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut groups = text.split([':', '-']);
    for octet in &mut out {
        let group = groups.next().filter(|g| g.len() == 2)?;
        *octet = u8::from_str_radix(group, 16)
            .ok()
            .filter(|_| group.chars().all(|c| c.is_ascii_hexdigit()))?;
    }
    groups.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::fs;
    use std::sync::OnceLock;

    use super::*;
    use crate::radius::attr;

    fn dictionaries_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("dictionaries")
    }

    /// The shipped dictionaries, loaded once for all tests.
    fn shipped() -> &'static Dictionary {
        static DICT: OnceLock<Dictionary> = OnceLock::new();
        DICT.get_or_init(|| {
            Dictionary::load(&dictionaries_dir().join("dictionary"))
                .expect("shipped dictionaries load")
        })
    }

    /// Parses text that must fail and returns the error message.
    fn error_of(text: &str) -> String {
        Dictionary::parse_str(text, "test.dict")
            .expect_err("must be rejected")
            .to_string()
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
        let last_include = root
            .lines()
            .filter(|l| l.starts_with("$INCLUDE"))
            .next_back()
            .unwrap();
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
    fn syntax_forms_are_accepted() {
        let text = "\
            # comment line\n\
            \n\
            VENDOR Wide 0x7FFF format=2,2 # trailing comment\n\
            VENDOR Narrow 99999 format=4,0\n\
            ATTRIBUTE Hex-Number 0x1f uint32\n\
            ATTRIBUTE Aliased 200 ipv4addr\n\
            ATTRIBUTE Sized 201 octets[16]\n\
            ATTRIBUTE Filter 202 octets abinary\n\
            ATTRIBUTE Many 203 ipaddr array,virtual\n\
            attribute Lower-Keyword 204 STRING\n\
            BEGIN-VENDOR Wide\n\
            ATTRIBUTE Wide-Attr 300 uint16\n\
            END-VENDOR Wide\n\
            BEGIN-VENDOR Narrow\n\
            ATTRIBUTE Narrow-Attr 70000 int32\n\
            END-VENDOR narrow\n\
            VALUE Wide-Attr Big 0xFFFF\n";
        let dict = Dictionary::parse_str(text, "forms").unwrap();
        assert_eq!(dict.attr(0, 31).unwrap().ty, AttrType::Integer);
        assert_eq!(dict.attr(0, 200).unwrap().ty, AttrType::IpAddr);
        assert_eq!(dict.attr(0, 201).unwrap().ty, AttrType::Octets);
        assert_eq!(dict.attr(0, 202).unwrap().ty, AttrType::Abinary);
        let many = dict.attr(0, 203).unwrap();
        assert!(many.array && many.is_virtual);
        assert_eq!(dict.attr(0, 204).unwrap().ty, AttrType::String);
        let wide = dict.vendor(0x7FFF).unwrap();
        assert_eq!((wide.type_len, wide.len_len), (2, 2));
        let wide_attr = dict.attr(0x7FFF, 300).unwrap();
        assert_eq!(wide_attr.ty, AttrType::Short);
        assert_eq!(dict.value_by_name(wide_attr, "big"), Some(0xFFFF));
        assert_eq!(dict.attr(99999, 70000).unwrap().ty, AttrType::Signed);
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
    fn later_definitions_override_earlier_ones() {
        let text = "\
            ATTRIBUTE Calling-Station-Id 31 string\n\
            ATTRIBUTE Service-Type 6 integer\n\
            VALUE Service-Type Framed-User 2\n\
            VENDOR Old-Name 4242\n\
            ATTRIBUTE Client-Address 31 string\n\
            VALUE Service-Type Framed 2\n\
            VENDOR New-Name 4242\n";
        let dict = Dictionary::parse_str(text, "override").unwrap();
        assert_eq!(dict.attr(0, 31).unwrap().name, "Client-Address");
        assert_eq!(dict.attr_by_name("Client-Address").unwrap().number, 31);
        assert!(
            dict.attr_by_name("Calling-Station-Id").is_none(),
            "a renamed attribute's old name must not resolve"
        );
        let service_type = dict.attr_by_name("Service-Type").unwrap();
        assert_eq!(dict.value_name(service_type, 2), Some("Framed"));
        assert_eq!(
            dict.value_by_name(service_type, "Framed-User"),
            Some(2),
            "old value names still parse"
        );
        assert_eq!(dict.vendor(4242).unwrap().name, "New-Name");
        assert!(dict.vendor_by_name("Old-Name").is_none());
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases: &[(&str, &str)] = &[
            (
                "\n\nATTRIBUTE Foo 1 strnig\n",
                "test.dict:3: unknown attribute type `strnig`",
            ),
            (
                "ATTRIBUTE Foo one string\n",
                "test.dict:1: bad number `one`",
            ),
            (
                "ATTRIBUTE Foo 256 string\n",
                "test.dict:1: bad number `256`",
            ),
            ("ATTRIBUTE Foo 0 string\n", "test.dict:1: bad number `0`"),
            (
                "ATTRIBUTE Foo 1.2 string\n",
                "test.dict:1: bad number `1.2`",
            ),
            (
                "ATTRIBUTE Foo 241.0 integer\n",
                "test.dict:1: bad number `241.0`",
            ),
            ("ATTRIBUTE Foo +5 string\n", "test.dict:1: bad number `+5`"),
            (
                "ATTRIBUTE Foo 1 string has_tags\n",
                "test.dict:1: unknown flag `has_tags`",
            ),
            (
                "ATTRIBUTE Foo 1 string encrypt=4\n",
                "test.dict:1: flag `encrypt=4`",
            ),
            (
                "ATTRIBUTE Foo 1 ipaddr encrypt=1\n",
                "test.dict:1: flag `encrypt=1` is only for string",
            ),
            (
                "ATTRIBUTE Foo 1 ipaddr has_tag\n",
                "test.dict:1: flag `has_tag` is only for",
            ),
            (
                "ATTRIBUTE Foo 1 string has_tag, concat\n",
                "test.dict:1: expected `ATTRIBUTE",
            ),
            (
                "ATTRIBUTE Foo 1\n",
                "test.dict:1: expected `ATTRIBUTE name number type [flags]`",
            ),
            ("ATTRIBUTE Fo\"o 1 string\n", "test.dict:1: bad name"),
            (
                "\nVALUE Service-Type Login-User 1\n",
                "test.dict:2: VALUE for unknown attribute `Service-Type`",
            ),
            (
                "ATTRIBUTE Foo 1 string\nVALUE Foo Bar 1\n",
                "test.dict:2: VALUE for `Foo` of type string",
            ),
            (
                "ATTRIBUTE Foo 1 byte\nVALUE Foo Bar 256\n",
                "test.dict:2: bad number `256`",
            ),
            (
                "ATTRIBUTE Foo 1 integer\nVALUE Foo 12 1\n",
                "test.dict:2: bad name `12`",
            ),
            (
                "VENDOR Acme 42 format=3,1\n",
                "test.dict:1: bad vendor format `format=3,1`",
            ),
            (
                "VENDOR Acme 42 format=1,3\n",
                "test.dict:1: bad vendor format",
            ),
            (
                "VENDOR Acme 42 format=1\n",
                "test.dict:1: bad vendor format",
            ),
            ("VENDOR Acme 0\n", "test.dict:1: bad number `0`"),
            (
                "VENDOR Acme 42\nBEGIN-VENDOR Acme\nEND-VENDOR Other\n",
                "test.dict:3: END-VENDOR Other does not match BEGIN-VENDOR Acme",
            ),
            (
                "END-VENDOR Acme\n",
                "test.dict:1: END-VENDOR Acme does not match no BEGIN-VENDOR",
            ),
            (
                "BEGIN-VENDOR Nobody\n",
                "test.dict:1: unknown vendor `Nobody`",
            ),
            (
                "VENDOR A 1\nVENDOR B 2\nBEGIN-VENDOR A\nBEGIN-VENDOR B\n",
                "test.dict:4: BEGIN-VENDOR B inside BEGIN-VENDOR A",
            ),
            (
                "VENDOR Acme 42\n\nBEGIN-VENDOR Acme\nATTRIBUTE X 1 string\n",
                "test.dict:3: BEGIN-VENDOR Acme is not closed",
            ),
            (
                "VENDOR Acme 42 format=1,1\nBEGIN-VENDOR Acme\nATTRIBUTE X 256 string\n",
                "test.dict:3: bad number `256`",
            ),
            (
                "VENDOR Acme 42\nBEGIN-VENDOR Acme\nATTRIBUTE X 241.1 string\n",
                "test.dict:3: bad number `241.1`",
            ),
            (
                "PROTOCOL RADIUS 1\n",
                "test.dict:1: unknown keyword `PROTOCOL`",
            ),
            (
                "$INCLUDE dictionary.rfc2865\n",
                "test.dict:1: $INCLUDE is not available",
            ),
        ];
        for (text, expected) in cases {
            let message = error_of(text);
            assert!(
                message.starts_with(expected),
                "for {text:?}:\n  got      {message}\n  expected {expected}..."
            );
        }
    }

    #[test]
    fn include_is_relative_to_the_including_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("sub/deeper")).unwrap();
        fs::write(
            dir.path().join("root"),
            "$INCLUDE sub/one\n$INCLUDE- sub/absent\n",
        )
        .unwrap();
        // Relative to sub/, not to the root's directory or the process's working directory.
        fs::write(
            dir.path().join("sub/one"),
            "ATTRIBUTE One 1 string\n$INCLUDE deeper/two\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("sub/deeper/two"),
            "ATTRIBUTE Two 2 integer\nVALUE Two Second 2\n",
        )
        .unwrap();
        let dict = Dictionary::load(&dir.path().join("root")).unwrap();
        assert_eq!(dict.attr(0, 1).unwrap().name, "One");
        let two = dict.attr_by_name("Two").unwrap();
        assert_eq!(dict.value_name(two, 2), Some("Second"));
    }

    #[test]
    fn same_file_may_be_included_twice_without_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("root"),
            "$INCLUDE common\n$INCLUDE common\n",
        )
        .unwrap();
        fs::write(dir.path().join("common"), "ATTRIBUTE Common 1 string\n").unwrap();
        assert!(Dictionary::load(&dir.path().join("root")).is_ok());
    }

    #[test]
    fn include_loop_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("root"), "# a\n$INCLUDE sub/a\n").unwrap();
        fs::write(
            dir.path().join("sub/a"),
            "ATTRIBUTE A 1 string\n\n$INCLUDE ../root\n",
        )
        .unwrap();
        let message = Dictionary::load(&dir.path().join("root"))
            .unwrap_err()
            .to_string();
        let expected = format!("{}:3: include loop", dir.path().join("sub/a").display());
        assert!(message.starts_with(&expected), "{message}");
    }

    #[test]
    fn missing_include_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("root"),
            "ATTRIBUTE A 1 string\n$INCLUDE nowhere\n",
        )
        .unwrap();
        let message = Dictionary::load(&dir.path().join("root"))
            .unwrap_err()
            .to_string();
        let expected = format!(
            "{}:2: cannot include {}",
            dir.path().join("root").display(),
            dir.path().join("nowhere").display()
        );
        assert!(message.starts_with(&expected), "{message}");
        let missing_root = Dictionary::load(&dir.path().join("absent")).unwrap_err();
        assert!(
            matches!(missing_root, DictionaryError::Read { .. }),
            "{missing_root}"
        );
    }

    #[test]
    fn errors_in_included_files_name_that_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("root"), "$INCLUDE child\n").unwrap();
        fs::write(dir.path().join("child"), "\n\n\nATTRIBUTE Bad 1 nonsense\n").unwrap();
        let message = Dictionary::load(&dir.path().join("root"))
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with(&format!(
                "{}:4: unknown attribute type",
                dir.path().join("child").display()
            )),
            "{message}"
        );
    }

    #[test]
    fn parse_value_encodes_by_type() {
        let dict = shipped();
        let enc = |name: &str, text: &str| dict.parse_value(dict.attr_by_name(name).unwrap(), text);
        assert_eq!(
            enc("Framed-IP-Address", "203.0.113.7").unwrap(),
            [203, 0, 113, 7]
        );
        assert_eq!(enc("Service-Type", "Framed-User").unwrap(), [0, 0, 0, 2]);
        assert_eq!(enc("Service-Type", "42").unwrap(), [0, 0, 0, 42]);
        assert_eq!(enc("Service-Type", "0x0102").unwrap(), [0, 0, 1, 2]);
        assert_eq!(enc("Class", "0x0102").unwrap(), [1, 2]);
        assert_eq!(enc("Class", "0x").unwrap(), [0u8; 0]);
        assert_eq!(enc("Reply-Message", "Enter code").unwrap(), b"Enter code");
        assert_eq!(
            enc("Reply-Message", r#""a\"b\\c\x00\n""#).unwrap(),
            b"a\"b\\c\0\n"
        );
        assert_eq!(
            enc("Framed-IPv6-Prefix", "2001:db8::/48").unwrap(),
            [0, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 0]
        );
        assert_eq!(enc("Framed-IPv6-Prefix", "::/0").unwrap(), [0, 0]);
        assert_eq!(enc("NAS-IPv6-Address", "::1").unwrap()[15], 1);
        assert_eq!(
            enc("Event-Timestamp", "1970-01-01T00:00:00Z").unwrap(),
            [0, 0, 0, 0]
        );
        assert_eq!(
            enc("Event-Timestamp", "2024-02-29T12:34:56Z").unwrap(),
            1_709_210_096u32.to_be_bytes()
        );
        assert_eq!(
            enc("Event-Timestamp", "1709210096").unwrap(),
            1_709_210_096u32.to_be_bytes()
        );
        assert_eq!(
            enc("Framed-Interface-Id", "0011:2233:4455:6677").unwrap(),
            [0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]
        );
        assert_eq!(
            enc("Frag-Status", "More-Data-Pending").unwrap(),
            [0, 0, 0, 2]
        );
    }

    #[test]
    fn parse_value_handles_tags() {
        let dict = shipped();
        let enc = |name: &str, text: &str| dict.parse_value(dict.attr_by_name(name).unwrap(), text);
        assert_eq!(enc("Tunnel-Type", "L2TP").unwrap(), [0, 0, 0, 3]);
        assert_eq!(enc("Tunnel-Type", "L2TP:1").unwrap(), [1, 0, 0, 3]);
        assert_eq!(
            enc("Tunnel-Private-Group-Id", "\"42\":2").unwrap(),
            [2, b'4', b'2']
        );
        // Untagged: data starting above 0x1F needs no tag octet; data that would read as a tag does.
        assert_eq!(enc("Tunnel-Private-Group-Id", "42").unwrap(), b"42");
        assert_eq!(
            enc("Tunnel-Private-Group-Id", r#""\x01x""#).unwrap(),
            [0, 1, b'x']
        );
        // A bare string keeps its colons: an IPv6 endpoint is not a tag.
        assert_eq!(
            enc("Tunnel-Client-Endpoint", "2001:db8::1").unwrap(),
            b"2001:db8::1"
        );
        assert!(matches!(
            enc("Tunnel-Type", "L2TP:32"),
            Err(ValueError::BadTag { .. })
        ));
        assert!(matches!(
            enc("Tunnel-Type", "0x1000000"),
            Err(ValueError::OutOfRange { .. })
        ));
        // Encrypted attributes yield the plaintext; hiding (and the tag) is the codec's job.
        assert_eq!(enc("Tunnel-Password", "hunter2:1").unwrap(), b"hunter2:1");
    }

    #[test]
    fn parse_value_rejects_bad_text_without_echoing_it() {
        let dict = shipped();
        let enc = |name: &str, text: &str| dict.parse_value(dict.attr_by_name(name).unwrap(), text);
        let bad = [
            ("Framed-IP-Address", "203.0.113.300"),
            ("Framed-IP-Address", "2001:db8::1"),
            ("Service-Type", "Framed-Usr"),
            ("Service-Type", "-1"),
            ("Service-Type", "4294967296"),
            ("Class", "0102"),
            ("Class", "0x123"),
            ("Framed-IPv6-Prefix", "2001:db8::1/48"),
            ("Framed-IPv6-Prefix", "2001:db8::/129"),
            ("Event-Timestamp", "2023-02-29T00:00:00Z"),
            ("Event-Timestamp", "2024-01-01 00:00:00"),
            ("Event-Timestamp", "2106-02-07T06:28:16Z"),
            ("Framed-Interface-Id", "0011:2233:4455"),
            ("Reply-Message", r#""unterminated"#),
            ("Reply-Message", r#""bad \q escape""#),
        ];
        for (name, text) in bad {
            let err = enc(name, text).expect_err(text).to_string();
            assert!(
                err.starts_with(name) && !err.contains(text),
                "{name} {text}: {err}"
            );
        }
        let long = "x".repeat(254);
        let err = enc("User-Password", &long).unwrap_err();
        assert_eq!(
            err,
            ValueError::TooLong {
                attr: "User-Password".into(),
                len: 254,
                max: 253
            }
        );
        let vsa_max = "x".repeat(248);
        assert!(matches!(
            enc("Fortinet-Group-Name", &vsa_max),
            Err(ValueError::TooLong { max: 247, .. })
        ));
        assert!(
            enc("EAP-Message", &format!("0x{}", "00".repeat(400))).is_ok(),
            "concat attributes may be long"
        );
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-1, 0, 59, 365, 11_016, 19_782, 49_710, 1_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn dictionary_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Dictionary>();
        assert_send_sync::<DictionaryError>();
    }
}
