//! One EAP conversation through `eapol_test` (wpa_supplicant 2.10), an independent EAP peer and RADIUS client.
//!
//! Its strongest check is `MPPE keys OK: 1`: the MS-MPPE keys in the Access-Accept, decrypted with the shared
//! secret, equal the keys eapol_test derived from the EAP method itself. Through a proxy that proves the keys
//! were re-encrypted correctly.
//!
//! ```ignore
//! let eap = eapol_test(upstream.auth(), upstream.secret(), EAP_USER.name, EAP_USER.password, EapMethod::PeapMschapV2)?;
//! assert!(eap.success && eap.mppe_keys_ok, "{}", eap.output);
//! ```

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::Duration;

use super::{Error, Result, TestDir, run_peer};

/// The EAP method eapol_test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EapMethod {
    /// PEAPv0 with MSCHAPv2 inside (the Windows default). Yields MPPE keys.
    #[default]
    PeapMschapV2,
    /// EAP-TTLS with PAP inside. Yields MPPE keys.
    TtlsPap,
    /// EAP-MSCHAPv2 without a tunnel. Yields MPPE keys.
    EapMschapV2,
    /// EAP-MD5. Yields no keys, so eapol_test runs with `-n` and `mppe_keys_ok` stays false.
    Md5,
}

impl EapMethod {
    /// The method's lines of the wpa_supplicant network block.
    fn network_lines(self) -> &'static str {
        match self {
            Self::PeapMschapV2 => {
                "\teap=PEAP\n\tphase1=\"peapver=0\"\n\tphase2=\"auth=MSCHAPV2\"\n"
            }
            Self::TtlsPap => "\teap=TTLS\n\tphase2=\"auth=PAP\"\n",
            Self::EapMschapV2 => "\teap=MSCHAPV2\n",
            Self::Md5 => "\teap=MD5\n",
        }
    }

    fn yields_keys(self) -> bool {
        self != Self::Md5
    }
}

/// What one eapol_test run produced.
#[derive(Debug)]
pub struct EapolOutcome {
    /// eapol_test's exit status (0 on success; 252 on an EAP failure or timeout).
    pub status: ExitStatus,
    /// Whether it printed `SUCCESS` (the EAP conversation ended in Access-Accept and EAP-Success).
    pub success: bool,
    /// Whether it printed `MPPE keys OK: 1` (the Accept's MS-MPPE keys match the EAP-derived keys).
    pub mppe_keys_ok: bool,
    /// Its whole output, for assertion messages.
    pub output: String,
}

/// Runs one EAP conversation with the defaults (15 s limit).
pub fn eapol_test(
    addr: SocketAddr,
    secret: &str,
    identity: &str,
    password: &str,
    method: EapMethod,
) -> Result<EapolOutcome> {
    EapolTest::new(addr, secret)
        .method(method)
        .run(identity, password)
}

/// An eapol_test invocation with options; [`eapol_test`] is the shorthand.
#[derive(Debug, Clone)]
pub struct EapolTest {
    addr: SocketAddr,
    secret: String,
    method: EapMethod,
    timeout: Duration,
}

impl EapolTest {
    /// Conversations with the RADIUS server at `addr` (IPv4 or IPv6 loopback) using `secret`.
    pub fn new(addr: SocketAddr, secret: &str) -> Self {
        Self {
            addr,
            secret: secret.to_owned(),
            method: EapMethod::default(),
            timeout: Duration::from_secs(15),
        }
    }

    /// The EAP method (default PEAP/MSCHAPv2).
    pub fn method(mut self, method: EapMethod) -> Self {
        self.method = method;
        self
    }

    /// eapol_test's overall limit (`-t`, whole seconds, rounded up); also how long a "no reply" run takes.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Authenticates `identity` with `password`.
    pub fn run(&self, identity: &str, password: &str) -> Result<EapolOutcome> {
        let dir = TestDir::new("eapol")?;
        let conf = dir.write("eapol.conf", self.network_block(identity, password)?)?;
        let seconds = self.timeout.as_secs() + u64::from(self.timeout.subsec_nanos() > 0);
        let mut args: Vec<String> = [
            ("-c", conf.display().to_string()),
            ("-a", self.addr.ip().to_string()),
            ("-p", self.addr.port().to_string()),
            ("-s", self.secret.clone()),
            ("-t", seconds.to_string()),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_owned(), value])
        .collect();
        if !self.method.yields_keys() {
            args.push("-n".to_owned()); // no MPPE keys expected
        }
        let run = run_peer("eapol_test", &args, "", Duration::from_secs(seconds + 10))?;
        Ok(EapolOutcome {
            status: run.status,
            success: run.output.lines().any(|line| line == "SUCCESS"),
            mppe_keys_ok: run.output.contains("MPPE keys OK: 1"),
            output: run.output,
        })
    }

    fn network_block(&self, identity: &str, password: &str) -> Result<String> {
        // wpa_supplicant's quoted strings have no escapes.
        if [identity, password]
            .iter()
            .any(|s| s.contains(['"', '\n', '\r']))
        {
            return Err(Error::Unsupported(
                "eapol_test identities and passwords cannot contain quotes or newlines".into(),
            ));
        }
        Ok(format!(
            "network={{\n\tkey_mgmt=WPA-EAP\n{}\tidentity=\"{identity}\"\n\tpassword=\"{password}\"\n}}\n",
            self.method.network_lines()
        ))
    }
}
