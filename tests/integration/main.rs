//! portvakt's integration tests: one test binary, so the peers start once per run and the harness is shared.
//!
//! `support` starts the real peers (FreeRADIUS, radclient, eapol_test); the other modules are the tests.
//! This file only declares modules.

// `pub` so the harness's public items count as reachable (the crate denies `unreachable_pub`).
pub mod support;

mod journal;
mod lifecycle;
mod limits;
mod logs;
mod mschap;
mod pass_through;
mod peers;
mod push;
mod reload;
mod totp;
