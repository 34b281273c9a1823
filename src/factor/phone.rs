//! Phone numbers in E.164 form (`+4790000000`), and their masked form for logs and screens.
//!
//! A number is personal data (GDPR): it is sealed in the store, never logged in full, and
//! its `Debug` and `Display` show only the masked form (`+47 ••• •• 000`). The full number
//! is handed out by [`Phone::e164`] to the one place that needs it, the SMS gateway.

use std::fmt;
use std::str::FromStr;

/// Fewest digits (country code included) accepted. Real numbers go down to 7 digits
/// (small countries); anything shorter is a typo or a short code.
const MIN_DIGITS: usize = 7;
/// E.164 allows at most 15 digits (ITU-T E.164 §6.1).
const MAX_DIGITS: usize = 15;

/// A phone number in E.164 form: `+`, a country code not starting with 0, 7–15 digits.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

/// Why a text is not a phone number. Never repeats the input (it may be personal data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// No leading `+` or `00`: the country code is unknown.
    #[error("give the number in international form with its country code, e.g. +47 900 00 000")]
    NoCountryCode,
    /// Something other than digits, spaces, `-`, `.`, `(` and `)`.
    #[error("a phone number may contain only digits, spaces, '-', '.', '(' and ')'")]
    BadCharacter,
    /// Too few or too many digits, or a country code starting with 0.
    #[error("not a valid E.164 number (7 to 15 digits, country code not starting with 0)")]
    BadLength,
}

impl Phone {
    /// Parses a number as people write it: `+47 900 00 000`, `0047 90000000`,
    /// `+47 (900) 00-000`. The result is the bare E.164 form.
    pub fn parse(text: &str) -> Result<Self, PhoneError> {
        let text = text.trim();
        let rest = if let Some(rest) = text.strip_prefix('+') {
            rest
        } else if let Some(rest) = text.strip_prefix("00") {
            rest
        } else {
            return Err(PhoneError::NoCountryCode);
        };
        let mut digits = String::with_capacity(MAX_DIGITS + 1);
        digits.push('+');
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(PhoneError::BadCharacter),
            }
        }
        let count = digits.len() - 1;
        if !(MIN_DIGITS..=MAX_DIGITS).contains(&count) || digits.as_bytes()[1] == b'0' {
            return Err(PhoneError::BadLength);
        }
        Ok(Self(digits))
    }

    /// The full number, `+4790000000`. Only for the SMS gateway.
    pub fn e164(&self) -> &str {
        &self.0
    }

    /// The digits without `+` (`4790000000`), for gateways that want an MSISDN.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// For logs and screens: `+47 ••• •• 123` — the first two digits (most country codes,
    /// or enough to tell them apart) and the last three.
    pub fn masked(&self) -> String {
        let digits = self.digits();
        let (head, tail) = (&digits[..2], &digits[digits.len() - 3..]);
        format!("+{head} ••• •• {tail}")
    }
}

impl FromStr for Phone {
    type Err = PhoneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_forms_parse_to_e164() {
        for text in [
            "+4790000123",
            " +47 900 00 123 ",
            "004790000123",
            "+47 (900) 00-123",
            "+47.900.00.123",
        ] {
            assert_eq!(Phone::parse(text).unwrap().e164(), "+4790000123", "{text}");
        }
        assert_eq!(Phone::parse("+4790000123").unwrap().digits(), "4790000123");
        assert_eq!(Phone::parse("+6831234").unwrap().e164(), "+6831234");
    }

    #[test]
    fn bad_numbers_are_refused_without_echoing_them() {
        for (text, err) in [
            ("90000123", PhoneError::NoCountryCode),
            ("+47 900x0123", PhoneError::BadCharacter),
            ("+47 900\n00123", PhoneError::BadCharacter),
            ("+4790", PhoneError::BadLength),
            ("+1234567890123456", PhoneError::BadLength),
            ("+0479000012", PhoneError::BadLength),
            ("+", PhoneError::BadLength),
            ("+٤٧٩٠٠٠٠٠١٢٣", PhoneError::BadCharacter),
        ] {
            let e = Phone::parse(text).unwrap_err();
            assert_eq!(e, err, "{text}");
            if text.len() > 4 {
                assert!(!e.to_string().contains(text.trim()), "{e}");
            }
        }
    }

    #[test]
    fn only_the_masked_form_is_printed() {
        let p = Phone::parse("+4790000123").unwrap();
        assert_eq!(p.masked(), "+47 ••• •• 123");
        assert_eq!(p.to_string(), "+47 ••• •• 123");
        assert!(!format!("{p:?}").contains("90000"));
    }
}
