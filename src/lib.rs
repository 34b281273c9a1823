//! portvakt — a RADIUS multi-factor proxy.
//!
//! # Layout
//!
//! - [`radius`]: the sans-IO RADIUS codec — bytes in, values out; no sockets, no clock.
//! - [`secret`]: the `Secret` type: cannot be printed, compared in constant time.
//! - [`username`]: user-name normalisation (case, realm stripping).
//! - [`factor`]: second factors; [`factor::totp`] verifies RFC 6238 codes.
//! - [`store`]: the user store (SQLite), TOTP secrets sealed with XChaCha20-Poly1305.
//! - [`cli`]: the `portvakt user …` administration commands.
#![forbid(unsafe_code)]

pub mod cli;
pub mod factor;
pub mod radius;
pub mod secret;
pub mod store;
pub mod username;
