//! The FreeRADIUS v3 dictionary text format: one directive per line, `$INCLUDE`s
//! followed relative to the including file, every error tied to a file and line.

use std::path::{Path, PathBuf};

use super::value::{encode_unsigned, parse_u32, parse_u64};
use super::{AttrDef, AttrType, Dictionary, DictionaryError, Encrypt, Location, VendorDef};

/// Deepest `$INCLUDE` nesting accepted. Loops are caught by path, this only bounds the
/// recursion if the file system plays tricks (e.g. ever-new bind mounts).
pub(super) const MAX_INCLUDE_DEPTH: usize = 32;

/// Reads dictionary text line by line into a [`Dictionary`].
pub(super) struct Parser<'d> {
    pub(super) dict: &'d mut Dictionary,
    /// Canonical paths of the files being read, outermost first (for loop detection).
    /// Empty for [`Dictionary::parse_str`], which allows no includes.
    pub(super) open_files: Vec<PathBuf>,
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
    pub(super) fn parse(
        &mut self,
        text: &str,
        name: &str,
        dir: Option<&Path>,
    ) -> Result<(), DictionaryError> {
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

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    /// Parses text that must fail and returns the error message.
    fn error_of(text: &str) -> String {
        Dictionary::parse_str(text, "test.dict")
            .expect_err("must be rejected")
            .to_string()
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
}
