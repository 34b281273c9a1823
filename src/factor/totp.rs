//! TOTP (RFC 6238): the secret type, code verification, and what enrolment shows the user.
//!
//! Everything here is pure: the time is an argument (unix seconds), nothing is stored and
//! nothing is remembered. Replay protection needs memory, so it lives with the caller:
//! [`verify`] returns the matched time step and the store records it
//! (`Store::check_totp` on the login path), refusing a step that is not newer than the last one.
//!
//! The HOTP arithmetic is totp-rs 6. Its comparison is constant-time; it does not trim input,
//! so [`verify`] cleans the code first (spaces and `-` removed, exactly `digits` ASCII digits).

use std::fmt;
use std::str::FromStr;

use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;
use serde::Serialize;
use totp_rs::{Builder, Totp};
use zeroize::Zeroizing;

/// Length of a generated secret: 160 bits, as RFC 4226 §4 (R6) recommends.
pub const GENERATED_SECRET_BYTES: usize = 20;

/// Errors from building or presenting a TOTP secret.
#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    /// `digits` outside 6..=8 (RFC 4226 §5.3 allows no fewer than 6; authenticator apps no more than 8).
    #[error("TOTP digits must be 6, 7 or 8, not {0}")]
    Digits(u32),
    /// The time step is outside [`TotpSecret::PERIODS`].
    #[error("TOTP period must be between 10 and 300 seconds, not {0}")]
    Period(u64),
    /// The secret is too short to be safe or too long to be sane.
    #[error("TOTP secret must be 10 to 128 bytes (80 to 1024 bits), not {0} bytes")]
    SecretLength(usize),
    /// The text is not RFC 4648 base32.
    #[error("the secret is not valid base32 (letters A-Z and digits 2-7)")]
    Base32,
    /// The algorithm name is not one of SHA1, SHA256, SHA512.
    #[error("unknown TOTP algorithm {0:?} (expected sha1, sha256 or sha512)")]
    Algorithm(String),
    /// The OS random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
    /// Issuer or account name cannot go into an `otpauth://` label.
    #[error(
        "{what} {value:?} cannot be used in an otpauth URI (it must be non-empty and contain no ':')"
    )]
    Label {
        /// Which part: "issuer" or "account name".
        what: &'static str,
        /// The offending value (a name, never a secret).
        value: String,
    },
    /// The URI is too long for a QR code.
    #[error("the otpauth URI is too long for a QR code")]
    QrTooLong,
}

/// The HMAC hash behind a TOTP secret (RFC 6238 §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Algorithm {
    /// HMAC-SHA1: the default, and the only one every authenticator app supports.
    #[default]
    #[serde(rename = "SHA1")]
    Sha1,
    /// HMAC-SHA256.
    #[serde(rename = "SHA256")]
    Sha256,
    /// HMAC-SHA512.
    #[serde(rename = "SHA512")]
    Sha512,
}

impl Algorithm {
    /// The name used in `otpauth://` URIs and in the store: `SHA1`, `SHA256`, `SHA512`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    /// The same algorithm in totp-rs terms.
    const fn to_totp_rs(self) -> totp_rs::Algorithm {
        match self {
            Self::Sha1 => totp_rs::Algorithm::SHA1,
            Self::Sha256 => totp_rs::Algorithm::SHA256,
            Self::Sha512 => totp_rs::Algorithm::SHA512,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = TotpError;

    /// Accepts `sha1`, `SHA-256`, `Sha512` and the like.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bare: String = s.chars().filter(|&c| c != '-').collect();
        match bare.to_ascii_uppercase().as_str() {
            "SHA1" => Ok(Self::Sha1),
            "SHA256" => Ok(Self::Sha256),
            "SHA512" => Ok(Self::Sha512),
            _ => Err(TotpError::Algorithm(s.to_owned())),
        }
    }
}

/// A TOTP shared secret with its parameters. The bytes are wiped on drop and never printed.
///
/// Fields are private so that every value is valid: 6–8 digits, a period in
/// [`TotpSecret::PERIODS`], and 10–128 secret bytes.
#[derive(Clone)]
pub struct TotpSecret {
    bytes: Zeroizing<Vec<u8>>,
    /// 6..=8, kept as `u8` because that is what totp-rs takes.
    digits: u8,
    period: u64,
    algorithm: Algorithm,
}

impl TotpSecret {
    /// Allowed secret lengths in bytes. 80 bits is the floor for legacy imports (older
    /// Google Authenticator secrets were 16 base32 characters); new secrets are 160 bits.
    pub const LENGTHS: std::ops::RangeInclusive<usize> = 10..=128;
    /// Allowed time steps in seconds. 30 is standard and 60 is common on hardware tokens;
    /// a longer step would keep a code valid for too long.
    pub const PERIODS: std::ops::RangeInclusive<u64> = 10..=300;

    /// Builds a secret from raw bytes, checking every parameter.
    pub fn new(
        bytes: Zeroizing<Vec<u8>>,
        digits: u32,
        period: u64,
        algorithm: Algorithm,
    ) -> Result<Self, TotpError> {
        let Ok(narrow @ 6..=8) = u8::try_from(digits) else {
            return Err(TotpError::Digits(digits));
        };
        if !Self::PERIODS.contains(&period) {
            return Err(TotpError::Period(period));
        }
        if !Self::LENGTHS.contains(&bytes.len()) {
            return Err(TotpError::SecretLength(bytes.len()));
        }
        Ok(Self {
            bytes,
            digits: narrow,
            period,
            algorithm,
        })
    }

    /// Parses a base32 secret as authenticator apps and other systems export it:
    /// case-insensitive, `=` padding optional, spaces and `-` allowed between groups.
    pub fn from_base32(
        text: &str,
        digits: u32,
        period: u64,
        algorithm: Algorithm,
    ) -> Result<Self, TotpError> {
        let bytes = decode_base32(text)?;
        Self::new(bytes, digits, period, algorithm)
    }

    /// The raw secret bytes (for the HMAC and for sealing; never for display).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of digits in a code (6–8).
    pub fn digits(&self) -> u32 {
        u32::from(self.digits)
    }

    /// Time step in seconds.
    pub const fn period(&self) -> u64 {
        self.period
    }

    /// The HMAC hash.
    pub const fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// A totp-rs builder with this secret's parameters.
    fn builder(&self, skew: u8) -> Builder {
        Builder::new()
            .with_algorithm(self.algorithm.to_totp_rs())
            .with_digits(self.digits)
            .with_step_duration(self.period)
            .with_skew(u16::from(skew))
            .with_secret(self.bytes.as_slice())
    }

    /// A totp-rs generator for this secret, with the given skew.
    fn totp(&self, skew: u8) -> Option<Totp> {
        let builder = self.builder(skew);
        // `build()` insists on 128 bits; shorter secrets exist only as imported legacy
        // secrets, and every other parameter was checked in `new`.
        if self.bytes.len() >= 16 {
            builder.build().ok()
        } else {
            Some(builder.build_noncompliant())
        }
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpSecret")
            .field("bytes", &"<redacted>")
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

/// Decodes RFC 4648 base32 leniently in form and strictly in content.
fn decode_base32(text: &str) -> Result<Zeroizing<Vec<u8>>, TotpError> {
    let mut clean = Zeroizing::new(String::with_capacity(text.len()));
    for c in text.chars().filter(|&c| !matches!(c, ' ' | '-' | '\t')) {
        clean.push(c.to_ascii_uppercase());
    }
    let data = clean.trim_end_matches('=');
    // Unpadded base32 has 0, 2, 4, 5 or 7 characters in its last group; any other length
    // means a character was lost, and the decoder would silently drop bits.
    let valid_tail = matches!(data.len() % 8, 0 | 2 | 4 | 5 | 7);
    let alphabet_ok = data
        .bytes()
        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b));
    if data.is_empty() || !valid_tail || !alphabet_ok {
        return Err(TotpError::Base32);
    }
    base32::decode(base32::Alphabet::Rfc4648 { padding: false }, data)
        .map(Zeroizing::new)
        .ok_or(TotpError::Base32)
}

/// Checks `code` against `secret` at time `now` (unix seconds), allowing `skew` steps either
/// side. Returns the matched time step, or `None`.
///
/// Spaces and `-` are removed first ("123 456" and "123-456" are common ways to type a code);
/// what remains must be exactly `digits` ASCII digits. The caller must still refuse a step that
/// is not newer than the user's last accepted step (RFC 6238 §5.2).
///
/// Two steps of one window can have the same code (for 6 digits, about once in 500,000 logins
/// with `skew` 1). The step returned is then the **newest** that matches, so that recording it
/// spends the code for every step it is valid for. With the earliest match (what totp-rs's own
/// `check` returns), a code used at step T that T+1 shares was recorded as T, and a minute
/// later, with T out of the window, the same code passed again as T+1.
pub fn verify(secret: &TotpSecret, code: &str, now: u64, skew: u8) -> Option<u64> {
    // A code is at most 8 digits; anything far longer is not a code and is not copied.
    if code.len() > 32 {
        return None;
    }
    let clean: Zeroizing<String> =
        Zeroizing::new(code.chars().filter(|&c| c != ' ' && c != '-').collect());
    if clean.len() != usize::from(secret.digits) || !clean.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = secret.totp(0)?;
    let period = secret.period;
    let origin = now / period;
    let window = origin.saturating_sub(u64::from(skew))..=origin.saturating_add(u64::from(skew));
    // Newest first: the first match is the one to record.
    window.rev().find(|&step| {
        step.checked_mul(period)
            .is_some_and(|at| totp.check(&clean, at).is_some())
    })
}

/// The code for `secret` at time `now`: for tests, demos, and cross-checks.
pub fn current_code(secret: &TotpSecret, now: u64) -> String {
    secret
        .totp(0)
        .map(|totp| totp.generate(now).to_string())
        .unwrap_or_default()
}

/// A new 160-bit SHA1, 6-digit, 30-second secret from the operating system's CSPRNG.
pub fn generate_secret() -> Result<TotpSecret, TotpError> {
    let mut bytes = Zeroizing::new(vec![0u8; GENERATED_SECRET_BYTES]);
    getrandom::fill(&mut bytes).map_err(TotpError::Random)?;
    TotpSecret::new(bytes, 6, 30, Algorithm::Sha1)
}

/// The `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…` URI that authenticator apps import.
///
/// The URI contains the secret: show it once, at enrolment, and never log it.
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> Result<String, TotpError> {
    check_label("issuer", issuer)?;
    check_label("account name", account)?;
    // Parameters were checked in `TotpSecret::new` and the labels just above, so
    // `build_noncompliant` skips nothing that matters here except the 128-bit floor,
    // which imported legacy secrets may not meet.
    let totp = secret
        .builder(1)
        .with_issuer(Some(issuer))
        .with_account_name(account)
        .build_noncompliant();
    totp.to_url().map_err(|_| TotpError::Label {
        what: "account name",
        value: account.to_owned(),
    })
}

fn check_label(what: &'static str, value: &str) -> Result<(), TotpError> {
    if value.is_empty() || value.contains(':') {
        return Err(TotpError::Label {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// Renders `uri` as a QR code for a terminal, two modules per character row.
///
/// Light modules and the 4-module quiet zone are drawn as blocks and dark modules as spaces,
/// so the code reads correctly on the usual light-text-on-dark terminal, where a block is
/// light and a space is dark. (On a dark-on-light terminal it appears inverted; phone
/// scanners generally read inverted codes, and the URI is printed as well.)
pub fn qr_terminal(uri: &str) -> Result<String, TotpError> {
    let code = QrCode::new(uri.as_bytes()).map_err(|_| TotpError::QrTooLong)?;
    let text = code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    Ok(text)
}

/// Two neighbouring steps that share a code, for the tests here and the store's.
#[cfg(test)]
pub(crate) mod twins {
    use super::{Algorithm, TotpSecret};
    use zeroize::Zeroizing;

    /// With the RFC 6238 SHA1 seed ([`seed`], 6 digits), steps 57,766,335 and 57,766,336
    /// (2024-11-30 18:07:30 and 18:08:00 UTC) both have the code [`CODE`] (oathtool agrees);
    /// their neighbours have 726238 and [`NEXT_CODE`].
    pub(crate) const STEP: u64 = 57_766_335;
    /// The code of [`STEP`] and of the step after it.
    pub(crate) const CODE: &str = "251166";
    /// The code of `STEP + 2`.
    pub(crate) const NEXT_CODE: &str = "463144";

    /// The RFC 6238 SHA1 seed ("12345678901234567890") with 6 digits and 30 s steps.
    pub(crate) fn seed() -> TotpSecret {
        TotpSecret::new(
            Zeroizing::new(b"12345678901234567890".to_vec()),
            6,
            30,
            Algorithm::Sha1,
        )
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B seeds: ASCII "1234567890" repeated to the hash's length.
    fn rfc_seed(algorithm: Algorithm) -> TotpSecret {
        let len = match algorithm {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        };
        let bytes: Vec<u8> = b"1234567890".iter().copied().cycle().take(len).collect();
        TotpSecret::new(Zeroizing::new(bytes), 8, 30, algorithm).unwrap()
    }

    const RFC6238_VECTORS: [(u64, &str, &str, &str); 6] = [
        (59, "94287082", "46119246", "90693936"),
        (1_111_111_109, "07081804", "68084774", "25091201"),
        (1_111_111_111, "14050471", "67062674", "99943326"),
        (1_234_567_890, "89005924", "91819424", "93441116"),
        (2_000_000_000, "69279037", "90698825", "38618901"),
        (20_000_000_000, "65353130", "77737706", "47863826"),
    ];

    #[test]
    fn rfc6238_appendix_b_vectors() {
        let seeds = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512].map(rfc_seed);
        for (time, sha1, sha256, sha512) in RFC6238_VECTORS {
            for (seed, expected) in seeds.iter().zip([sha1, sha256, sha512]) {
                assert_eq!(
                    current_code(seed, time),
                    expected,
                    "{:?} at {time}",
                    seed.algorithm()
                );
                assert_eq!(verify(seed, expected, time, 0), Some(time / 30));
            }
        }
    }

    #[test]
    fn six_digits_is_the_eight_digit_code_mod_10_pow_6() {
        for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            let eight = rfc_seed(algorithm);
            let six = TotpSecret::new(eight.bytes.clone(), 6, 30, algorithm).unwrap();
            for (time, ..) in RFC6238_VECTORS {
                let long = current_code(&eight, time);
                assert_eq!(current_code(&six, time), long[2..], "{algorithm} at {time}");
                assert_eq!(verify(&six, &long[2..], time, 0), Some(time / 30));
                assert_eq!(
                    verify(&six, &long, time, 0),
                    None,
                    "8 digits for a 6-digit secret"
                );
            }
        }
    }

    #[test]
    fn times_after_2038_work() {
        let seed = rfc_seed(Algorithm::Sha1);
        let time = (1u64 << 31) + 17; // 2038-01-19, past i32::MAX
        let code = current_code(&seed, time);
        assert_eq!(verify(&seed, &code, time, 0), Some(time / 30));
        // The 2^31 boundary itself: the step just before and just after differ.
        assert_ne!(current_code(&seed, (1u64 << 31) - 30), code);
        assert_eq!(current_code(&seed, 20_000_000_000), "65353130");
    }

    #[test]
    fn skew_window_edges() {
        let seed = rfc_seed(Algorithm::Sha1);
        let step = 1_234_567_890 / 30;
        let code_at = |s: u64| current_code(&seed, s * 30);
        // Probe the first and the last second of step T.
        for now in [step * 30, step * 30 + 29] {
            assert_eq!(verify(&seed, &code_at(step), now, 1), Some(step));
            assert_eq!(verify(&seed, &code_at(step - 1), now, 1), Some(step - 1));
            assert_eq!(verify(&seed, &code_at(step + 1), now, 1), Some(step + 1));
            assert_eq!(verify(&seed, &code_at(step - 2), now, 1), None, "T-2");
            assert_eq!(verify(&seed, &code_at(step + 2), now, 1), None, "T+2");
            assert_eq!(
                verify(&seed, &code_at(step - 1), now, 0),
                None,
                "T-1 without skew"
            );
            assert_eq!(verify(&seed, &code_at(step - 2), now, 2), Some(step - 2));
        }
        // One second past the end of step T, T-1 falls out of a ±1 window.
        assert_eq!(verify(&seed, &code_at(step - 1), step * 30 + 30, 1), None);
    }

    #[test]
    fn a_code_valid_for_two_steps_matches_the_newest() {
        use twins::{CODE as TWIN_CODE, STEP as TWIN_STEP};
        let seed = twins::seed();
        for step in [TWIN_STEP, TWIN_STEP + 1] {
            assert_eq!(current_code(&seed, step * 30), TWIN_CODE);
        }
        assert_eq!(current_code(&seed, (TWIN_STEP - 1) * 30), "726238");
        assert_eq!(current_code(&seed, (TWIN_STEP + 2) * 30), twins::NEXT_CODE);
        // At T+1 with ±1 the window holds both twins: the newer is the match.
        for now in [(TWIN_STEP + 1) * 30, (TWIN_STEP + 1) * 30 + 29] {
            assert_eq!(verify(&seed, TWIN_CODE, now, 1), Some(TWIN_STEP + 1));
        }
        // At T the window is T-1..=T+1: T+1 is the newest twin in it.
        assert_eq!(
            verify(&seed, TWIN_CODE, TWIN_STEP * 30, 1),
            Some(TWIN_STEP + 1)
        );
        // At T+2 only T+1 is in the window; without skew only the step itself.
        assert_eq!(
            verify(&seed, TWIN_CODE, (TWIN_STEP + 2) * 30, 1),
            Some(TWIN_STEP + 1)
        );
        assert_eq!(verify(&seed, TWIN_CODE, TWIN_STEP * 30, 0), Some(TWIN_STEP));
        assert_eq!(verify(&seed, TWIN_CODE, (TWIN_STEP + 3) * 30, 1), None);
    }

    #[test]
    fn skew_at_time_zero_does_not_underflow() {
        let seed = rfc_seed(Algorithm::Sha1);
        assert_eq!(verify(&seed, &current_code(&seed, 0), 5, 3), Some(0));
    }

    #[test]
    fn code_formatting_is_cleaned_but_strict() {
        let seed = TotpSecret::new(
            rfc_seed(Algorithm::Sha1).bytes.clone(),
            6,
            30,
            Algorithm::Sha1,
        )
        .unwrap();
        let code = current_code(&seed, 59); // 287082
        assert_eq!(code, "287082");
        for typed in ["287082", "287 082", "287-082", " 287082 ", "2 8 7 0 8 2"] {
            assert_eq!(verify(&seed, typed, 59, 0), Some(1), "{typed:?}");
        }
        for typed in [
            "28708",
            "2870822",
            "+87082",
            "28708a",
            "２８７０８２",
            "",
            "287082\n",
            &"2".repeat(40),
        ] {
            assert_eq!(verify(&seed, typed, 59, 0), None, "{typed:?}");
        }
    }

    #[test]
    fn parameters_are_validated() {
        let bytes = || Zeroizing::new(vec![7u8; 20]);
        assert!(matches!(
            TotpSecret::new(bytes(), 5, 30, Algorithm::Sha1),
            Err(TotpError::Digits(5))
        ));
        assert!(matches!(
            TotpSecret::new(bytes(), 9, 30, Algorithm::Sha1),
            Err(TotpError::Digits(9))
        ));
        assert!(matches!(
            TotpSecret::new(bytes(), 256 + 6, 30, Algorithm::Sha1),
            Err(TotpError::Digits(_))
        ));
        assert!(matches!(
            TotpSecret::new(bytes(), 6, 0, Algorithm::Sha1),
            Err(TotpError::Period(0))
        ));
        assert!(matches!(
            TotpSecret::new(bytes(), 6, 301, Algorithm::Sha1),
            Err(TotpError::Period(301))
        ));
        let short = Zeroizing::new(vec![1u8; 9]);
        assert!(matches!(
            TotpSecret::new(short, 6, 30, Algorithm::Sha1),
            Err(TotpError::SecretLength(9))
        ));
        assert!(TotpSecret::new(bytes(), 7, 60, Algorithm::Sha512).is_ok());
    }

    #[test]
    fn base32_is_lenient_in_form_strict_in_content() {
        let canonical = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"; // "12345678901234567890"
        for text in [
            canonical,
            "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ",
            "gezd-gnbv-gy3t-qojq-gezd-gnbv-gy3t-qojq",
        ] {
            let secret = TotpSecret::from_base32(text, 6, 30, Algorithm::Sha1).unwrap();
            assert_eq!(secret.bytes(), b"12345678901234567890", "{text:?}");
        }
        // 16 bytes: 26 characters unpadded, 32 with padding; both decode.
        let padded = "GEZDGNBVGY3TQOJQGEZDGNBVGY======";
        let a = TotpSecret::from_base32(padded, 6, 30, Algorithm::Sha1).unwrap();
        let b =
            TotpSecret::from_base32(padded.trim_end_matches('='), 6, 30, Algorithm::Sha1).unwrap();
        assert_eq!(a.bytes(), b.bytes());
        assert_eq!(a.bytes().len(), 16);
        for bad in [
            "GEZDGNBVGY3TQOJ1GEZDGNBV",
            "GEZDGNBVGY3TQOJQG",
            "GEZDGNBVGY3TQOJQGEZ",
            "",
            "====",
            "GEZDGNBVGY3TQØJQ",
        ] {
            assert!(
                matches!(
                    TotpSecret::from_base32(bad, 6, 30, Algorithm::Sha1),
                    Err(TotpError::Base32)
                ),
                "{bad:?}"
            );
        }
        // Valid base32 but only 5 bytes: refused for length, not for form.
        assert!(matches!(
            TotpSecret::from_base32("GEZDGNBV", 6, 30, Algorithm::Sha1),
            Err(TotpError::SecretLength(5))
        ));
    }

    #[test]
    fn legacy_80_bit_secrets_verify() {
        // 10 bytes is below totp-rs's compliant floor; `build_noncompliant` must kick in.
        let secret = TotpSecret::new(
            Zeroizing::new(b"1234567890".to_vec()),
            6,
            30,
            Algorithm::Sha1,
        )
        .unwrap();
        let code = current_code(&secret, 1_000_000_000);
        assert_eq!(code.len(), 6);
        assert_eq!(
            verify(&secret, &code, 1_000_000_000, 1),
            Some(1_000_000_000 / 30)
        );
    }

    #[test]
    fn algorithm_names_parse() {
        assert_eq!("sha1".parse::<Algorithm>().unwrap(), Algorithm::Sha1);
        assert_eq!("SHA-256".parse::<Algorithm>().unwrap(), Algorithm::Sha256);
        assert_eq!("Sha512".parse::<Algorithm>().unwrap(), Algorithm::Sha512);
        assert!("md5".parse::<Algorithm>().is_err());
        assert_eq!(Algorithm::Sha256.to_string(), "SHA256");
    }

    #[test]
    fn generated_secrets_are_160_bits_and_distinct() {
        let a = generate_secret().unwrap();
        let b = generate_secret().unwrap();
        assert_eq!(a.bytes().len(), 20);
        assert_ne!(a.bytes(), b.bytes());
        assert_eq!(
            (a.digits(), a.period(), a.algorithm()),
            (6, 30, Algorithm::Sha1)
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret =
            TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 6, 30, Algorithm::Sha1)
                .unwrap();
        let shown = format!("{secret:?}");
        assert!(shown.contains("redacted"));
        assert!(
            !shown.contains("GEZD") && !shown.contains("49") && !shown.contains("[1"),
            "{shown}"
        );
    }

    #[test]
    fn otpauth_uri_carries_the_parameters() {
        let secret =
            TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 8, 60, Algorithm::Sha256)
                .unwrap();
        let uri = otpauth_uri(&secret, "portvakt", "bjørn").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/portvakt:bj%C3%B8rn?"),
            "{uri}"
        );
        for part in [
            "secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "digits=8",
            "period=60",
            "algorithm=SHA256",
            "issuer=portvakt",
        ] {
            assert!(uri.contains(part), "{uri} lacks {part}");
        }
        // totp-rs parses it back to the same generator.
        let parsed = Totp::from_url(&uri).unwrap();
        assert_eq!(
            parsed.generate(1_234_567_890).to_string(),
            current_code(&secret, 1_234_567_890)
        );
        assert!(matches!(
            otpauth_uri(&secret, "a:b", "alice"),
            Err(TotpError::Label { .. })
        ));
        assert!(matches!(
            otpauth_uri(&secret, "portvakt", "x:y"),
            Err(TotpError::Label { .. })
        ));
        assert!(matches!(
            otpauth_uri(&secret, "portvakt", ""),
            Err(TotpError::Label { .. })
        ));
    }

    #[test]
    fn terminal_qr_has_a_light_quiet_zone() {
        let uri =
            "otpauth://totp/portvakt:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=portvakt";
        let qr = qr_terminal(uri).unwrap();
        let width = QrCode::new(uri).unwrap().width() + 8;
        let lines: Vec<&str> = qr.lines().collect();
        assert_eq!(lines.len(), width.div_ceil(2));
        assert!(lines.iter().all(|l| l.chars().count() == width));
        // The top two quiet-zone rows are light: full blocks all the way across.
        assert!(lines[0].chars().all(|c| c == '█'), "{}", lines[0]);
        // Each row starts and ends with 4 light quiet-zone modules.
        for line in &lines[..lines.len() - 1] {
            let row: Vec<char> = line.chars().collect();
            assert!(
                row[..4].iter().chain(&row[width - 4..]).all(|&c| c == '█'),
                "{line}"
            );
        }
        assert!(qr_terminal(&"x".repeat(5000)).is_err());
    }

    /// Cross-checks codes against oathtool (OATH Toolkit), an independent implementation.
    /// Set PORTVAKT_NO_OATHTOOL=1 to skip on a machine without it.
    #[test]
    fn codes_match_oathtool() {
        if std::env::var_os("PORTVAKT_NO_OATHTOOL").is_some() {
            return;
        }
        let cases = [
            (Algorithm::Sha1, 6, 30, 20),
            (Algorithm::Sha1, 8, 30, 20),
            (Algorithm::Sha1, 6, 60, 10),
            (Algorithm::Sha256, 6, 30, 30),
            (Algorithm::Sha256, 8, 30, 40),
            (Algorithm::Sha512, 8, 30, 40),
        ];
        let mut checked = 0;
        for (algorithm, digits, period, len) in cases {
            for round in 0..4u64 {
                let mut bytes = Zeroizing::new(vec![0u8; len]);
                getrandom::fill(&mut bytes).unwrap();
                let secret = TotpSecret::new(bytes, digits, period, algorithm).unwrap();
                let mut t = [0u8; 8];
                getrandom::fill(&mut t).unwrap();
                // Times from 1970 to past 2^33 (year 2242), so both sides of 2^31 are covered.
                let now = u64::from_le_bytes(t) % (1 << 33) + round;
                let expected = oathtool(&secret, now);
                assert_eq!(
                    current_code(&secret, now),
                    expected,
                    "{algorithm} d={digits} p={period} t={now}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 24);
    }

    fn oathtool(secret: &TotpSecret, now: u64) -> String {
        let b32 = base32::encode(base32::Alphabet::Rfc4648 { padding: false }, secret.bytes());
        let totp_mode = format!("--totp={}", secret.algorithm().as_str().to_lowercase());
        let out = std::process::Command::new("oathtool")
            .args([
                totp_mode.as_str(),
                "-b",
                &b32,
                "-d",
                &secret.digits().to_string(),
            ])
            .args([
                "-s",
                &format!("{}s", secret.period()),
                "-N",
                &format!("@{now}"),
            ])
            .output()
            .expect("oathtool must be installed (or set PORTVAKT_NO_OATHTOOL=1)");
        assert!(
            out.status.success(),
            "oathtool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}
