//! portvakt — a RADIUS multi-factor proxy.
//!
//! # Layout
//!
//! - [`radius`]: the sans-IO RADIUS codec — bytes in, values out; no sockets, no clock.
//! - [`secret`]: the `Secret` type: cannot be printed, compared in constant time.
//! - [`origin`]: where a login comes from — the user's real address, read from the request.
//! - [`sites`]: named address ranges with a policy (longest prefix wins), the exception list.
//! - [`policy`]: the pure decision — pass through, second factor, or reject — and `explain`.
#![forbid(unsafe_code)]

pub mod origin;
pub mod policy;
pub mod radius;
pub mod secret;
pub mod sites;
