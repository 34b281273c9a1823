//! portvakt — a RADIUS multi-factor proxy.
//!
//! # Layout
//!
//! - [`radius`]: the sans-IO RADIUS codec — bytes in, values out; no sockets, no clock.
//! - [`secret`]: the `Secret` type: cannot be printed, compared in constant time.
#![forbid(unsafe_code)]

pub mod radius;
pub mod secret;
