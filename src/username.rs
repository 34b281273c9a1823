//! User-name normalisation: one spelling per person, wherever the name comes from.
//!
//! A name arrives as RADIUS User-Name bytes (from any NAS), from the command line, or from a
//! CSV import. All of them pass through [`normalize`] before they touch the store, so that
//! `Alice`, ` alice ` and (with realm stripping) `KOMMUNE\alice` and `alice@kommune.no` are
//! the same user. The rules are deliberately few: valid UTF-8, no control characters, trimmed,
//! Unicode lowercase.
//!
//! Not done: Unicode normalisation (NFC). A name typed as `a` + combining ring and one typed as
//! `å` stay different; the standard library has no NFC and no current directory needs it.

/// Longest normalised name we accept, in bytes. RADIUS User-Name carries at most 253 octets
/// (RFC 2865 §5.1), so a longer name could never log in anyway.
pub const MAX_NAME_BYTES: usize = 253;

/// Normalises a raw user name, or returns `None` if it cannot be a user name.
///
/// The name must be valid UTF-8 without control characters (nor the Unicode line and
/// paragraph separators, which some log viewers treat as newlines). It is trimmed and
/// lowercased with Unicode rules (`Æ` → `æ`). With `strip_realm`, `DOMAIN\user` and
/// `user@domain` both become `user` (and so does `DOMAIN\user@domain`). An empty result or
/// one longer than [`MAX_NAME_BYTES`] is refused.
///
/// The function is idempotent: a normalised name normalises to itself, so the store may
/// normalise again whatever it is given.
pub fn normalize(raw: &[u8], strip_realm: bool) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    // Nearly every name is ASCII: byte-wise checks and lowercasing give the same result
    // as the Unicode ones there, at a fraction of their cost (it runs for every login).
    let ascii = text.is_ascii();
    let forbidden = if ascii {
        text.bytes().any(|b| b.is_ascii_control())
    } else {
        text.chars().any(is_forbidden)
    };
    if forbidden {
        return None;
    }
    let mut name = text.trim();
    if strip_realm {
        name = without_realm(name).trim();
    }
    let name = if ascii {
        name.to_ascii_lowercase()
    } else {
        name.to_lowercase()
    };
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return None;
    }
    Some(name)
}

/// Drops a `DOMAIN\` prefix (up to the last backslash) and an `@domain` suffix (from the first
/// `@`), the two realm spellings Windows and VPN clients send.
fn without_realm(name: &str) -> &str {
    let name = name.rsplit_once('\\').map_or(name, |(_, user)| user);
    name.split_once('@').map_or(name, |(user, _)| user)
}

/// Characters that never belong in a user name: they break log lines or terminals.
fn is_forbidden(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn norm(raw: &str, strip: bool) -> Option<String> {
        normalize(raw.as_bytes(), strip)
    }

    #[test]
    fn lowercases_and_trims() {
        assert_eq!(norm("  Alice ", false).as_deref(), Some("alice"));
        assert_eq!(norm("ALICE", true).as_deref(), Some("alice"));
    }

    #[test]
    fn norwegian_letters_are_lowercased() {
        assert_eq!(
            norm("ÆRLIG.ØSTBY.ÅS", false).as_deref(),
            Some("ærlig.østby.ås")
        );
        assert_eq!(norm("Bjørn", false).as_deref(), Some("bjørn"));
    }

    #[test]
    fn realm_is_stripped_only_when_asked() {
        assert_eq!(norm(r"KOMMUNE\Alice", true).as_deref(), Some("alice"));
        assert_eq!(norm("alice@kommune.no", true).as_deref(), Some("alice"));
        assert_eq!(
            norm(r"KOMMUNE\Alice@Kommune.no", true).as_deref(),
            Some("alice")
        );
        assert_eq!(norm(r"A\B\Carl", true).as_deref(), Some("carl"));
        assert_eq!(
            norm(r"KOMMUNE\Alice", false).as_deref(),
            Some(r"kommune\alice")
        );
        assert_eq!(
            norm("alice@kommune.no", false).as_deref(),
            Some("alice@kommune.no")
        );
    }

    #[test]
    fn empty_names_are_refused() {
        for raw in ["", "   ", "@kommune.no", r"KOMMUNE\", r"KOMMUNE\ @x"] {
            assert_eq!(norm(raw, true), None, "{raw:?}");
        }
        assert_eq!(norm("", false), None);
    }

    #[test]
    fn control_characters_and_bad_utf8_are_refused() {
        for raw in [
            "ali\nce",
            "alice\0",
            "\talice",
            "ali\u{1b}[31mce",
            "a\u{2028}b",
            "a\u{85}b",
        ] {
            assert_eq!(norm(raw, false), None, "{raw:?}");
        }
        assert_eq!(normalize(b"al\xffice", false), None);
        assert_eq!(normalize(b"\xc3", false), None);
    }

    #[test]
    fn length_is_capped() {
        let max = "a".repeat(MAX_NAME_BYTES);
        assert_eq!(norm(&max, false).as_deref(), Some(max.as_str()));
        assert_eq!(norm(&format!("{max}a"), false), None);
        // 127 × 'Ø' is 254 bytes: over the cap even though it is only 127 characters.
        assert_eq!(norm(&"Ø".repeat(127), false), None);
    }

    /// The rules written the Unicode way only, as before the ASCII short cut.
    fn reference(raw: &str, strip: bool) -> Option<String> {
        if raw.chars().any(is_forbidden) {
            return None;
        }
        let mut name = raw.trim();
        if strip {
            name = without_realm(name).trim();
        }
        let name = name.to_lowercase();
        (!name.is_empty() && name.len() <= MAX_NAME_BYTES).then_some(name)
    }

    proptest! {
        #[test]
        fn the_ascii_short_cut_agrees_with_the_unicode_rules(
            raw in "[\\x00-\\x7f]{0,40}|[ A-Za-z@\\\\.\\t\\x7f]{0,300}",
            strip in any::<bool>(),
        ) {
            prop_assert_eq!(normalize(raw.as_bytes(), strip), reference(&raw, strip));
        }

        #[test]
        fn normalize_is_idempotent(raw in any::<String>(), strip in any::<bool>()) {
            if let Some(once) = normalize(raw.as_bytes(), strip) {
                prop_assert_eq!(normalize(once.as_bytes(), strip), Some(once.clone()));
                // A name normalised with realm stripping is also stable without it,
                // which is what the store relies on.
                if strip {
                    prop_assert_eq!(normalize(once.as_bytes(), false), Some(once));
                }
            }
        }

        #[test]
        fn normalize_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = normalize(&raw, true);
            let _ = normalize(&raw, false);
        }
    }
}
