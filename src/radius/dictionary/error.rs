//! Errors of dictionary loading and of value encoding.

use std::fmt;

use super::AttrType;
use super::parse::MAX_INCLUDE_DEPTH;

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
    /// `$INCLUDE` in text given to [`super::Dictionary::parse_str`], which has no directory.
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
