//! The RADIUS wire codec: bytes in, values out.
//!
//! Nothing here touches a socket, a clock or tokio. Randomness comes from one
//! function, [`random::fill`], so tests can see every place that draws it.

pub mod attr;
pub mod auth;
pub mod code;
pub mod crypt;
pub mod dictionary;
pub mod display;
pub mod fuzz;
pub mod packet;
pub mod random;

pub use auth::{
    AuthError, PreparedSecret, SigningSecret, Verified, encode_request, encode_response,
    verify_request, verify_response,
};
pub use code::Code;
pub use crypt::{CryptError, Keying, Salts};
pub use packet::{Attribute, DecodeError, EncodeError, Packet};

#[cfg(test)]
mod tests;
