//! The RADIUS wire codec: bytes in, values out.
//!
//! Nothing here touches a socket, a clock or tokio. Randomness comes from one
//! function, [`random::fill`], so tests can see every place that draws it.

pub mod attr;
pub mod dictionary;
pub mod display;
