//! Second factors: how a user proves possession after the password.
//!
//! - [`totp`]: RFC 6238 time-based codes (authenticator apps).
//!
//! SMS and push arrive with later issues. Each factor module is pure where it can be; state
//! such as the last accepted TOTP step lives in the store.

pub mod totp;
