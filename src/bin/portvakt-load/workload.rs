//! What the generator sends and what it accepts back, without sockets or clocks of its own:
//! the user list, deterministic TOTP secrets, request building per mode, and the check of
//! every reply (Response Authenticator, Message-Authenticator, code, Class, State).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use portvakt::factor::totp::{self, Algorithm, TotpSecret};
use portvakt::radius::{self, AuthError, Code, Keying, Packet, attr, crypt, random};
use zeroize::Zeroizing;

use crate::stats::Invalid;

/// NAS-Port-Type (RFC 2865 §5.41); 5 is Virtual, as VPN gateways send.
const NAS_PORT_TYPE: u8 = 61;
const NAS_PORT_TYPE_VIRTUAL: u32 = 5;
/// Accounting attributes (RFC 2866 §5).
const ACCT_DELAY_TIME: u8 = 41;
const ACCT_SESSION_ID: u8 = 44;
const ACCT_SESSION_TIME: u8 = 46;
const ACCT_START: u32 = 1;
const ACCT_STOP: u32 = 2;
/// TOTP parameters of the generated secrets: the common authenticator-app defaults.
const TOTP_DIGITS: u32 = 6;
const TOTP_PERIOD: u64 = 30;
/// How close to a TOTP step boundary a rejected code counts as the clock's, not the server's,
/// fault (see [`Flow::near_boundary`]).
const BOUNDARY_MS: u64 = 1000;
/// 160-bit secrets (RFC 4226 R6; pyotp refuses fewer than 112 bits).
const TOTP_SECRET_LEN: usize = 20;

/// What a login looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// Access-Request with User-Name and User-Password; expects Access-Accept.
    Pap,
    /// Password first, expects Access-Challenge with State; then the TOTP code with that
    /// State in a new Access-Request; expects Access-Accept.
    Challenge,
    /// Password and TOTP code together in User-Password (`pw-0001` + `123456`).
    Append,
    /// Accounting-Request Start/Stop; expects Accounting-Response.
    Acct,
}

impl Mode {
    fn uses_totp(self) -> bool {
        matches!(self, Self::Challenge | Self::Append)
    }
}

/// The numbered users: `user0000`/`pw-0000`/`class-0000` and so on, as the bench upstream has them.
/// A run may take a slice of a larger population (`first`, `count`): the numbers, and so the
/// names, do not depend on the slice (at least four digits, more only when needed).
#[derive(Debug, Clone)]
pub(crate) struct Users {
    /// The number of the first user of this run.
    pub(crate) first: u32,
    /// How many users; logins go round-robin over them.
    pub(crate) count: u32,
    /// User-Name prefix.
    pub(crate) name_prefix: String,
    /// Password prefix.
    pub(crate) password_prefix: String,
    /// Class prefix; `None` turns the Class check off.
    pub(crate) class_prefix: Option<String>,
}

impl Users {
    /// The user number of the `i`th user of this run.
    fn number(&self, i: u32) -> u64 {
        u64::from(self.first) + u64::from(i)
    }

    /// The `i`th User-Name.
    pub(crate) fn name(&self, i: u32) -> String {
        format!("{}{:04}", self.name_prefix, self.number(i))
    }

    /// The `i`th password.
    pub(crate) fn password(&self, i: u32) -> String {
        format!("{}{:04}", self.password_prefix, self.number(i))
    }

    /// The `i`th user's Class, if checked.
    pub(crate) fn class(&self, i: u32) -> Option<String> {
        let p = self.class_prefix.as_ref()?;
        Some(format!("{p}{:04}", self.number(i)))
    }
}

/// The user's TOTP secret: 160 bits derived from a seed, so that one seed provisions the
/// servers (via `portvakt-load users`) and drives the load. `HMAC-MD5(seed, 1‖user) ‖
/// HMAC-MD5(seed, 2‖user)`, cut to 20 octets. A fixture for benchmarks, not a key scheme.
pub(crate) fn totp_secret(seed: &[u8], user: &str) -> [u8; TOTP_SECRET_LEN] {
    let mut out = [0; TOTP_SECRET_LEN];
    for (block, chunk) in out.chunks_mut(16).enumerate() {
        // HMAC takes keys of any length.
        let mut mac = Hmac::<Md5>::new_from_slice(seed).expect("HMAC takes any key length");
        mac.update(&[block as u8 + 1]);
        mac.update(user.as_bytes());
        let digest = mac.finalize().into_bytes();
        chunk.copy_from_slice(&digest[..chunk.len()]);
    }
    out
}

/// The base32 text (RFC 4648, no padding) that authenticator apps and servers take.
pub(crate) fn base32(bytes: &[u8]) -> String {
    ::base32::encode(::base32::Alphabet::Rfc4648 { padding: false }, bytes)
}

/// The current unix time in seconds.
pub(crate) fn unix_now() -> u64 {
    unix_ms() / 1000
}

/// The current unix time in milliseconds.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// TOTP codes per user, computed once per time step.
struct Codes {
    seed: Vec<u8>,
    /// Per user: (step, code). A std mutex: held for a lookup or one code computation.
    cache: Mutex<Vec<Option<(u64, String)>>>,
}

impl Codes {
    /// The user's code at `now`: (step, code, whether it repeats the user's code of one of
    /// the two steps before; see [`Flow::repeated_code`]).
    fn code(&self, users: &Users, user: u32, now: u64) -> (u64, String, bool) {
        let step = now / TOTP_PERIOD;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let last = cache.get(user as usize).and_then(Option::as_ref);
        if let Some((s, code)) = last
            && *s == step
        {
            return (step, code.clone(), false);
        }
        let bytes = totp_secret(&self.seed, &users.name(user));
        // 20 octets, 6 digits, 30 s are inside every range `TotpSecret::new` checks.
        let secret = TotpSecret::new(
            Zeroizing::new(bytes.to_vec()),
            TOTP_DIGITS,
            TOTP_PERIOD,
            Algorithm::Sha1,
        )
        .expect("fixed, valid TOTP parameters");
        let code = totp::current_code(&secret, now);
        let repeated = repeats(last, step, &code);
        if let Some(slot) = cache.get_mut(user as usize) {
            *slot = Some((step, code.clone()));
        }
        (step, code, repeated)
    }
}

/// Whether `code`, the code of `step`, equals `last` (the code this user was given before)
/// and `last` is from one of the two steps before, so that a server with a one-step window
/// that spends a code for every step it matches still holds it as used.
fn repeats(last: Option<&(u64, String)>, step: u64, code: &str) -> bool {
    last.is_some_and(|(s, c)| *s < step && step - *s <= 2 && c == code)
}

/// Fresh Request Authenticators: MD5 over a random key and a counter. Unique and
/// unpredictable enough for a load test, without a system call per request.
struct Authenticators {
    key: [u8; 16],
    counter: AtomicU64,
}

impl Authenticators {
    fn next(&self) -> [u8; 16] {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut h = Md5::new();
        h.update(self.key);
        h.update(n.to_le_bytes());
        h.finalize().into()
    }
}

/// Which request of a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The first (or only) request.
    First,
    /// The answer to an Access-Challenge.
    Second,
}

/// One login (or one accounting exchange) in progress.
#[derive(Debug, Clone)]
pub(crate) struct Flow {
    /// The user's index.
    pub(crate) user: u32,
    /// The login's sequence number.
    pub(crate) number: u64,
    /// Which request is outstanding.
    pub(crate) stage: Stage,
    /// A deliberately wrong password: expects Access-Reject.
    pub(crate) wrong: bool,
    /// The TOTP step of the code sent, for MFA modes.
    pub(crate) code_step: u64,
    /// The code was computed within [`BOUNDARY_MS`] of a step boundary, where a server whose
    /// clock reading lags (FreeRADIUS stamps requests with its event loop's cached time) or
    /// leads ours by a little checks it against the neighbouring step.
    pub(crate) near_boundary: bool,
    /// The code equals the one this user was given at one of the two steps before (two
    /// steps share a 6-digit code about once in a million): a server that spends a code for
    /// every step it matches, as RFC 6238 §5.2 asks and portvakt does, rightly refuses it as
    /// a replay. Only MFA slices that log a user in again soon after (rounds) meet it.
    pub(crate) repeated_code: bool,
    /// When the login started.
    pub(crate) started: Instant,
    /// Whether it started after the warm-up (only those are counted).
    pub(crate) measured: bool,
}

/// A request ready to send.
#[derive(Debug)]
pub(crate) struct Built {
    /// The datagram.
    pub(crate) bytes: Vec<u8>,
    /// Its Request Authenticator, which keys the reply.
    pub(crate) authenticator: [u8; 16],
}

/// A verified reply.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Access-Accept.
    Accept,
    /// Access-Reject.
    Reject,
    /// Access-Challenge with its State.
    Challenge(Vec<u8>),
    /// Accounting-Response.
    AcctResponse,
}

/// What a verified reply means for its login.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// The login is over: `expected` says whether it ended as it should, `stale` that a
    /// TOTP code was rejected because the step had moved on meanwhile.
    Done {
        /// The final reply is the expected one.
        expected: bool,
        /// Rejected because the code's time step ended in flight.
        stale: bool,
    },
    /// Send the second request with this State.
    Answer(Vec<u8>),
}

/// Everything needed to build requests and check replies.
pub(crate) struct Workload {
    /// The login kind.
    pub(crate) mode: Mode,
    users: Users,
    secret: Zeroizing<Vec<u8>>,
    /// Every `n`th login uses a wrong password (0: never).
    reject_every: u64,
    require_ma: bool,
    acct_ma: bool,
    calling_station_id: Option<String>,
    codes: Option<Codes>,
    authenticators: Authenticators,
}

impl std::fmt::Debug for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workload")
            .field("mode", &self.mode)
            .field("users", &self.users.count)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// How to set up a [`Workload`].
#[derive(Debug)]
pub(crate) struct WorkloadOptions {
    /// The login kind.
    pub(crate) mode: Mode,
    /// The users.
    pub(crate) users: Users,
    /// The shared secret with the target.
    pub(crate) secret: Zeroizing<Vec<u8>>,
    /// Every `n`th login uses a wrong password (0: never).
    pub(crate) reject_every: u64,
    /// Ignore Access-* replies without a valid Message-Authenticator.
    pub(crate) require_ma: bool,
    /// Calling-Station-Id to send (the user's address, for origin policies).
    pub(crate) calling_station_id: Option<String>,
    /// Seed of the TOTP secrets (MFA modes).
    pub(crate) totp_seed: Option<Vec<u8>>,
    /// Sign Accounting-Requests with a Message-Authenticator.
    pub(crate) acct_ma: bool,
}

impl Workload {
    /// Builds the workload; MFA modes need a TOTP seed.
    pub(crate) fn new(o: WorkloadOptions) -> Result<Self, String> {
        if o.users.count == 0 {
            return Err("--users must be at least 1".into());
        }
        let codes = match (o.mode.uses_totp(), o.totp_seed) {
            (true, Some(seed)) => Some(Codes {
                seed,
                cache: Mutex::new(vec![None; o.users.count as usize]),
            }),
            (true, None) => return Err("challenge and append modes need --totp-seed".into()),
            (false, _) => None,
        };
        Ok(Self {
            mode: o.mode,
            users: o.users,
            secret: o.secret,
            reject_every: o.reject_every,
            require_ma: o.require_ma,
            acct_ma: o.acct_ma,
            calling_station_id: o.calling_station_id,
            codes,
            authenticators: Authenticators {
                key: random::bytes16(),
                counter: AtomicU64::new(0),
            },
        })
    }

    /// A new login with sequence number `number`.
    pub(crate) fn flow(&self, number: u64, started: Instant, measured: bool) -> Flow {
        let wrong = self.mode != Mode::Acct
            && self.reject_every > 0
            && number % self.reject_every == self.reject_every - 1;
        Flow {
            user: (number % u64::from(self.users.count)) as u32,
            number,
            stage: Stage::First,
            wrong,
            code_step: 0,
            near_boundary: false,
            repeated_code: false,
            started,
            measured,
        }
    }

    /// The first request of `flow`, with Identifier `id`.
    pub(crate) fn first(&self, flow: &mut Flow, id: u8) -> Result<Built, String> {
        if self.mode == Mode::Acct {
            return self.accounting(flow, id);
        }
        let mut password = if flow.wrong {
            "wrong-password".to_owned()
        } else {
            self.users.password(flow.user)
        };
        if self.mode == Mode::Append {
            password += &self.code(flow);
        }
        self.access(flow, id, password.as_bytes(), None)
    }

    /// The answer to a challenge: the TOTP code as User-Password, with the State.
    pub(crate) fn second(&self, flow: &mut Flow, id: u8, state: &[u8]) -> Result<Built, String> {
        flow.stage = Stage::Second;
        let code = self.code(flow);
        self.access(flow, id, code.as_bytes(), Some(state))
    }

    fn code(&self, flow: &mut Flow) -> String {
        let Some(codes) = &self.codes else {
            return String::new();
        };
        let now_ms = unix_ms();
        let (step, code, repeated) = codes.code(&self.users, flow.user, now_ms / 1000);
        flow.code_step = step;
        flow.repeated_code = repeated;
        let phase = now_ms % (TOTP_PERIOD * 1000);
        flow.near_boundary = !(BOUNDARY_MS..TOTP_PERIOD * 1000 - BOUNDARY_MS).contains(&phase);
        code
    }

    fn access(
        &self,
        flow: &Flow,
        id: u8,
        password: &[u8],
        state: Option<&[u8]>,
    ) -> Result<Built, String> {
        let authenticator = self.authenticators.next();
        let mut p = Packet::new(Code::AccessRequest, id, authenticator);
        p.attributes.reserve(8);
        // Message-Authenticator first on every request (BlastRADIUS hardening).
        p.set_message_authenticator_first();
        p.push(attr::USER_NAME, self.users.name(flow.user));
        let keying = Keying {
            secret: &self.secret,
            authenticator: &authenticator,
        };
        let hidden = crypt::hide_password(password, keying).map_err(|e| e.to_string())?;
        p.push(attr::USER_PASSWORD, hidden);
        self.nas_attributes(&mut p);
        if let Some(state) = state {
            p.push(attr::STATE, state);
        }
        let bytes = radius::encode_request(&p, &self.secret).map_err(|e| e.to_string())?;
        Ok(Built {
            bytes,
            authenticator,
        })
    }

    fn nas_attributes(&self, p: &mut Packet) {
        p.push(attr::NAS_IP_ADDRESS, [127, 0, 0, 1]);
        p.push(attr::NAS_IDENTIFIER, &b"portvakt-load"[..]);
        p.push(NAS_PORT_TYPE, NAS_PORT_TYPE_VIRTUAL.to_be_bytes());
        if let Some(c) = &self.calling_station_id {
            p.push(attr::CALLING_STATION_ID, c.as_bytes());
        }
    }

    fn accounting(&self, flow: &Flow, id: u8) -> Result<Built, String> {
        let mut p = Packet::new(Code::AccountingRequest, id, [0; 16]);
        if self.acct_ma {
            // Computed over a zeroed Request Authenticator, as FreeRADIUS does; radsecproxy
            // 1.9.2 refuses that (it checks against the final one), hence the switch.
            p.set_message_authenticator_first();
        }
        // Each user's sessions alternate Start and Stop, as a NAS's would.
        let start = (flow.number / u64::from(self.users.count)).is_multiple_of(2);
        let status = if start { ACCT_START } else { ACCT_STOP };
        p.push(attr::ACCT_STATUS_TYPE, status.to_be_bytes());
        let session = flow.number / 2 * 2;
        p.push(ACCT_SESSION_ID, format!("{session:016x}"));
        p.push(attr::USER_NAME, self.users.name(flow.user));
        self.nas_attributes(&mut p);
        p.push(ACCT_DELAY_TIME, 0u32.to_be_bytes());
        if !start {
            p.push(ACCT_SESSION_TIME, 60u32.to_be_bytes());
        }
        let bytes = radius::encode_request(&p, &self.secret).map_err(|e| e.to_string())?;
        let mut authenticator = [0; 16];
        authenticator.copy_from_slice(&bytes[4..20]);
        Ok(Built {
            bytes,
            authenticator,
        })
    }

    /// Checks that `datagram` is an authentic reply to the request with `authenticator`.
    pub(crate) fn authentic(
        &self,
        datagram: &[u8],
        authenticator: &[u8; 16],
    ) -> Result<bool, Invalid> {
        match radius::verify_response(datagram, authenticator, &self.secret) {
            Ok(v) => Ok(v.message_authenticator),
            Err(AuthError::Malformed(_)) => Err(Invalid::Malformed),
            Err(_) => Err(Invalid::BadAuthenticator),
        }
    }

    /// Verifies a reply to `flow`'s outstanding request and reads what it says.
    pub(crate) fn check(
        &self,
        flow: &Flow,
        authenticator: &[u8; 16],
        datagram: &[u8],
    ) -> Result<Reply, Invalid> {
        let has_ma = self.authentic(datagram, authenticator)?;
        let packet = Packet::decode(datagram).map_err(|_| Invalid::Malformed)?;
        let acct = self.mode == Mode::Acct;
        let access_reply = matches!(
            packet.code,
            Code::AccessAccept | Code::AccessReject | Code::AccessChallenge
        );
        if access_reply && self.require_ma && !has_ma {
            return Err(Invalid::NoMessageAuthenticator);
        }
        match packet.code {
            Code::AccountingResponse if acct => Ok(Reply::AcctResponse),
            Code::AccessAccept if !acct => {
                let class = self.users.class(flow.user);
                if class.is_some_and(|c| packet.attr(attr::CLASS) != Some(c.as_bytes())) {
                    return Err(Invalid::ClassMismatch);
                }
                Ok(Reply::Accept)
            }
            Code::AccessReject if !acct => Ok(Reply::Reject),
            Code::AccessChallenge if !acct => match packet.state() {
                Some(s) => Ok(Reply::Challenge(s.to_vec())),
                None => Err(Invalid::NoState),
            },
            _ => Err(Invalid::WrongCode),
        }
    }

    /// What a verified reply means for `flow`, at unix time `now`.
    pub(crate) fn judge(&self, flow: &Flow, reply: Reply, now: u64) -> Next {
        let done = |expected| Next::Done {
            expected,
            stale: false,
        };
        match (self.mode, flow.stage, reply) {
            (Mode::Acct, _, r) => done(r == Reply::AcctResponse),
            (_, _, Reply::Reject) if flow.wrong => done(true),
            (_, _, _) if flow.wrong => done(false),
            (Mode::Challenge, Stage::First, Reply::Challenge(state)) => Next::Answer(state),
            (Mode::Challenge, Stage::Second, Reply::Accept) => done(true),
            (Mode::Pap | Mode::Append, _, Reply::Accept) => done(true),
            (Mode::Challenge | Mode::Append, _, Reply::Reject)
                if flow.near_boundary
                    || flow.repeated_code
                    || (flow.code_step != 0 && flow.code_step != now / TOTP_PERIOD) =>
            {
                Next::Done {
                    expected: false,
                    stale: true,
                }
            }
            _ => done(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(mode: Mode, reject_every: u64) -> Workload {
        Workload::new(WorkloadOptions {
            mode,
            users: Users {
                first: 0,
                count: 1000,
                name_prefix: "user".into(),
                password_prefix: "pw-".into(),
                class_prefix: Some("class-".into()),
            },
            secret: Zeroizing::new(b"bench-secret-0123456789".to_vec()),
            reject_every,
            require_ma: true,
            calling_station_id: None,
            totp_seed: Some(b"seed".to_vec()),
            acct_ma: true,
        })
        .unwrap()
    }

    /// A server's answer to `request`, signed with the bench secret (and MA if `ma`).
    fn answer(request: &[u8], code: Code, attrs: &[(u8, &[u8])], ma: bool) -> Vec<u8> {
        let req = Packet::decode(request).unwrap();
        let mut p = Packet::new(code, req.identifier, [0; 16]);
        if ma {
            p.set_message_authenticator_first();
        }
        for (t, v) in attrs {
            p.push(*t, *v);
        }
        radius::encode_response(&p, &req.authenticator, b"bench-secret-0123456789").unwrap()
    }

    #[test]
    fn totp_secret_matches_an_independent_implementation() {
        // Codes from oathtool 2.6.7 for this base32 secret at fixed times:
        // oathtool --totp -b -N @1700000000 $(portvakt-load users --users 1 --totp-seed bench | cut -f4)
        let bytes = totp_secret(b"bench", "user0000");
        let text = base32(&bytes);
        assert_eq!(text.len(), 32);
        let secret = TotpSecret::from_base32(&text, 6, 30, Algorithm::Sha1).unwrap();
        assert_eq!(secret.bytes(), &bytes);
        assert_eq!(text, EXPECTED_BASE32);
        assert_eq!(totp::current_code(&secret, 1_700_000_000), EXPECTED_CODE);
        assert_ne!(totp_secret(b"bench", "user0001"), bytes);
        assert_ne!(totp_secret(b"other", "user0000"), bytes);
    }
    const EXPECTED_BASE32: &str = "DSZOITST7P4ML5YGZIVRUFDLGDTY5GE4";
    const EXPECTED_CODE: &str = "072415";

    #[test]
    fn user_names_depend_on_the_number_not_the_slice() {
        let u = workload(Mode::Pap, 0).users;
        assert_eq!(
            (u.name(7), u.password(7), u.class(7)),
            (
                "user0007".into(),
                "pw-0007".into(),
                Some("class-0007".into())
            )
        );
        let slice = Users {
            first: 123_000,
            count: 100_000,
            ..u.clone()
        };
        assert_eq!(slice.name(7), "user123007");
        assert_eq!(slice.password(0), "pw-123000");
        let wide = Users {
            count: 100_000,
            ..u
        };
        assert_eq!(wide.name(7), "user0007", "the count does not change a name");
    }

    #[test]
    fn pap_request_hides_the_password_and_verifies_its_reply() {
        let w = workload(Mode::Pap, 0);
        let mut flow = w.flow(1_005, Instant::now(), true);
        let built = w.first(&mut flow, 42).unwrap();
        let req = Packet::decode(&built.bytes).unwrap();
        assert_eq!(req.attributes[0].typ, attr::MESSAGE_AUTHENTICATOR);
        assert!(
            radius::verify_request(&built.bytes, b"bench-secret-0123456789")
                .unwrap()
                .message_authenticator
        );
        assert_eq!(req.user_name(), Some(&b"user0005"[..]));
        let keying = Keying {
            secret: b"bench-secret-0123456789",
            authenticator: &built.authenticator,
        };
        let pw = crypt::unhide_password(req.attr(attr::USER_PASSWORD).unwrap(), keying).unwrap();
        assert_eq!(&pw[..], b"pw-0005");

        let good = answer(
            &built.bytes,
            Code::AccessAccept,
            &[(attr::CLASS, b"class-0005")],
            true,
        );
        let reply = w.check(&flow, &built.authenticator, &good).unwrap();
        assert_eq!(
            w.judge(&flow, reply, 0),
            Next::Done {
                expected: true,
                stale: false
            }
        );

        let cases: [(Vec<u8>, Invalid); 4] = [
            (
                answer(
                    &built.bytes,
                    Code::AccessAccept,
                    &[(attr::CLASS, b"class-0006")],
                    true,
                ),
                Invalid::ClassMismatch,
            ),
            (
                answer(
                    &built.bytes,
                    Code::AccessAccept,
                    &[(attr::CLASS, b"class-0005")],
                    false,
                ),
                Invalid::NoMessageAuthenticator,
            ),
            (
                answer(&built.bytes, Code::AccountingResponse, &[], true),
                Invalid::WrongCode,
            ),
            (good[..good.len() - 1].to_vec(), Invalid::Malformed),
        ];
        for (bytes, want) in cases {
            assert_eq!(w.check(&flow, &built.authenticator, &bytes), Err(want));
        }
        let mut forged = good.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(
            w.check(&flow, &built.authenticator, &forged),
            Err(Invalid::BadAuthenticator)
        );
        // The same reply checked against another request's authenticator does not verify.
        assert_eq!(
            w.check(&flow, &[0; 16], &good),
            Err(Invalid::BadAuthenticator)
        );
    }

    #[test]
    fn wrong_passwords_expect_a_reject() {
        let w = workload(Mode::Pap, 10);
        assert!(!w.flow(8, Instant::now(), true).wrong);
        let flow = w.flow(9, Instant::now(), true);
        assert!(flow.wrong);
        assert_eq!(
            w.judge(&flow, Reply::Reject, 0),
            Next::Done {
                expected: true,
                stale: false
            }
        );
        assert_eq!(
            w.judge(&flow, Reply::Accept, 0),
            Next::Done {
                expected: false,
                stale: false
            }
        );
        let good = w.flow(3, Instant::now(), true);
        assert_eq!(
            w.judge(&good, Reply::Reject, 0),
            Next::Done {
                expected: false,
                stale: false
            }
        );
    }

    #[test]
    fn challenge_flow_answers_with_the_code_and_the_state() {
        let w = workload(Mode::Challenge, 0);
        let mut flow = w.flow(0, Instant::now(), true);
        let first = w.first(&mut flow, 1).unwrap();
        let state = [7u8; 16];
        let ch = answer(
            &first.bytes,
            Code::AccessChallenge,
            &[(attr::STATE, &state)],
            true,
        );
        let reply = w.check(&flow, &first.authenticator, &ch).unwrap();
        assert_eq!(w.judge(&flow, reply, 0), Next::Answer(state.to_vec()));
        let no_state = answer(&first.bytes, Code::AccessChallenge, &[], true);
        assert_eq!(
            w.check(&flow, &first.authenticator, &no_state),
            Err(Invalid::NoState)
        );

        let now = unix_now();
        let second = w.second(&mut flow, 2, &state).unwrap();
        let req = Packet::decode(&second.bytes).unwrap();
        assert_eq!(req.state(), Some(&state[..]));
        let keying = Keying {
            secret: b"bench-secret-0123456789",
            authenticator: &second.authenticator,
        };
        let code = crypt::unhide_password(req.attr(attr::USER_PASSWORD).unwrap(), keying).unwrap();
        let secret = TotpSecret::new(
            Zeroizing::new(totp_secret(b"seed", "user0000").to_vec()),
            6,
            30,
            Algorithm::Sha1,
        )
        .unwrap();
        assert!(totp::verify(&secret, std::str::from_utf8(&code).unwrap(), now, 1).is_some());
        assert_eq!(
            w.judge(&flow, Reply::Accept, now),
            Next::Done {
                expected: true,
                stale: false
            }
        );
        // A reject after the step moved on is the server's one-step window, not an error;
        // nor is one of a code sent just after a boundary.
        flow.near_boundary = false;
        let stale = |stale| Next::Done {
            expected: false,
            stale,
        };
        let (step, next) = (flow.code_step * 30, (flow.code_step + 1) * 30);
        assert_eq!(w.judge(&flow, Reply::Reject, next), stale(true));
        assert_eq!(w.judge(&flow, Reply::Reject, step), stale(false));
        flow.near_boundary = true;
        assert_eq!(w.judge(&flow, Reply::Reject, step), stale(true));
        // Nor is the refusal of a code that repeats the user's previous one.
        flow.near_boundary = false;
        flow.repeated_code = true;
        assert_eq!(w.judge(&flow, Reply::Reject, step), stale(true));
    }

    #[test]
    fn a_code_repeats_the_last_only_within_two_steps() {
        let last = (100, "251166".to_owned());
        assert!(repeats(Some(&last), 101, "251166"));
        assert!(repeats(Some(&last), 102, "251166"));
        assert!(!repeats(Some(&last), 103, "251166"), "out of any window");
        assert!(!repeats(Some(&last), 101, "463144"), "another code");
        assert!(!repeats(Some(&last), 100, "251166"), "the same step");
        assert!(!repeats(None, 101, "251166"), "first login");
    }

    #[test]
    fn append_mode_puts_the_code_after_the_password() {
        let w = workload(Mode::Append, 0);
        let mut flow = w.flow(2, Instant::now(), true);
        let built = w.first(&mut flow, 9).unwrap();
        let req = Packet::decode(&built.bytes).unwrap();
        let keying = Keying {
            secret: b"bench-secret-0123456789",
            authenticator: &built.authenticator,
        };
        let pw = crypt::unhide_password(req.attr(attr::USER_PASSWORD).unwrap(), keying).unwrap();
        assert_eq!(pw.len(), "pw-0002".len() + 6);
        assert!(pw.starts_with(b"pw-0002") && pw[7..].iter().all(u8::is_ascii_digit));
    }

    #[test]
    fn accounting_requests_carry_a_computed_authenticator() {
        let w = workload(Mode::Acct, 3);
        let mut flow = w.flow(1, Instant::now(), true);
        assert!(!flow.wrong, "accounting has no passwords to get wrong");
        let built = w.first(&mut flow, 5).unwrap();
        let v = radius::verify_request(&built.bytes, b"bench-secret-0123456789").unwrap();
        assert!(v.message_authenticator);
        let resp = answer(&built.bytes, Code::AccountingResponse, &[], false);
        let reply = w.check(&flow, &built.authenticator, &resp).unwrap();
        assert_eq!(
            w.judge(&flow, reply, 0),
            Next::Done {
                expected: true,
                stale: false
            }
        );
        let accept = answer(&built.bytes, Code::AccessAccept, &[], true);
        assert_eq!(
            w.check(&flow, &built.authenticator, &accept),
            Err(Invalid::WrongCode)
        );
    }

    #[test]
    fn mfa_modes_need_a_seed() {
        for mode in [Mode::Challenge, Mode::Append] {
            let err = Workload::new(WorkloadOptions {
                mode,
                users: workload(Mode::Pap, 0).users,
                secret: Zeroizing::new(b"x".repeat(16)),
                reject_every: 0,
                require_ma: true,
                calling_station_id: None,
                totp_seed: None,
                acct_ma: true,
            });
            assert!(err.is_err());
        }
    }
}
