//! portvakt — a RADIUS multi-factor proxy.
//!
//! VPN and remote-desktop gateways (RADIUS clients, "NAS") send their logins to
//! portvakt instead of the directory (NPS, FreeRADIUS). portvakt relays each login to
//! the directory and back, and — for logins from off-site — asks for a second factor.
//!
//! # Layout
//!
//! A request's way, in the order it meets these modules (see [`pipeline`]):
//!
//! - [`daemon`]: binds the UDP listeners, runs the receive loops, drains on shutdown;
//!   owns the shared [`daemon::Context`] (read-only but for a few documented stores).
//! - [`pipeline`]: one request top to bottom: client, authenticity, duplicates,
//!   then Status-Server, access or accounting. Drops are values with a reason.
//! - [`clients`]: the NAS table (source address → client and secret).
//! - [`replay`]: duplicate detection and the reply cache (RFC 5080 §2.2.2).
//! - [`limits`]: rates, lockouts and the password-spray shield, checked before the
//!   directory is asked.
//! - [`relay`]: turning a NAS request into an upstream one and a reply back,
//!   re-hiding passwords and re-encrypting keys on the way.
//! - [`upstream`]: the directory servers: Identifier pools, verification, failover,
//!   Status-Server probes.
//! - [`outbox`]: replies queued by the request tasks, sent a scheduler turn at a time
//!   with one `sendmmsg(2)`.
//! - [`radius`]: the sans-IO RADIUS codec — bytes in, values out; no sockets, no clock.
//! - [`config`]: TOML → typed [`config::Settings`], validated before any socket is bound.
//! - [`secret`]: the `Secret` type: cannot be printed, compared in constant time.
//! - [`audit`]: escaping for log lines.
//! - [`logfmt`]: the text and JSON log formats, with the per-request audit line written directly.
//! - [`logsink`]: log lines buffered in memory and written by their own thread.
//! - [`journal`]: log events as journald entries, sent in batches by the log thread.
//! - [`challenge`]: pending second-factor challenges (our State → the waiting login).
//! - [`mfa`]: checking second-factor codes against the store (off the async threads).
//! - [`login`]: a challenge-aware RADIUS client (`portvakt login`, tests, tools).
//! - [`username`]: user-name normalisation (case, realm stripping).
//! - [`factor`]: second factors; [`factor::totp`] verifies RFC 6238 codes, [`factor::sms`]
//!   and [`factor::push`] reach the user's phone through HTTP providers.
//! - [`approval`]: pending push approvals and the approval API phones answer.
//! - [`store`]: the user store (SQLite), TOTP secrets sealed with XChaCha20-Poly1305.
//! - [`cli`]: the `portvakt user …` administration commands.
//! - [`origin`]: where a login comes from — the user's real address, read from the request.
//! - [`sites`]: named address ranges with a policy (longest prefix wins), the exception list.
//! - [`policy`]: the pure decision — pass through, second factor, or reject — and `explain`.
//! - [`swap`]: the NAS table and the sites, replaced whole when SIGHUP reloads them.
#![forbid(unsafe_code)]

pub mod approval;
pub mod audit;
pub mod challenge;
pub mod cli;
pub mod clients;
pub mod config;
pub mod daemon;
pub mod factor;
pub mod journal;
pub mod limits;
pub mod logfmt;
pub mod login;
pub mod logsink;
pub mod mfa;
pub mod origin;
pub mod outbox;
pub mod pipeline;
pub mod policy;
pub mod radius;
pub mod relay;
pub mod replay;
pub mod secret;
pub mod sites;
pub mod store;
pub mod swap;
pub mod upstream;
pub mod username;
