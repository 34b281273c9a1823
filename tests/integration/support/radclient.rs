//! One RADIUS request through FreeRADIUS's `radclient` (an independent client), with its reply parsed from `-x`.
//!
//! ```ignore
//! let reply = radclient(upstream.auth(), upstream.secret(), Kind::Auth, &[("User-Name", "bob"), ("User-Password", "bob-password")])?;
//! assert_eq!(reply.code, Reply::Accept, "{}", reply.output);
//! assert_eq!(reply.value("Reply-Message"), Some("hello bob"));
//! ```
//!
//! Requests carry `Message-Authenticator` unless [`Radclient::without_message_authenticator`] says otherwise; radclient
//! fills in the real value. `CHAP-Password` may be given in cleartext: radclient turns it into a CHAP response
//! (and `MS-CHAP-Password` into an MS-CHAP**v1** challenge and response).

use std::net::SocketAddr;
use std::time::Duration;

use super::{Error, Result, run_peer};

/// Which radclient command, and so which packet: Access-Request, Accounting-Request or Status-Server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Access-Request (`auth`).
    Auth,
    /// Accounting-Request (`acct`).
    Acct,
    /// Status-Server (`status`).
    Status,
}

impl Kind {
    fn command(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Acct => "acct",
            Self::Status => "status",
        }
    }
}

/// The code of the reply radclient received, or that none came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Access-Accept.
    Accept,
    /// Access-Reject.
    Reject,
    /// Access-Challenge.
    Challenge,
    /// Accounting-Response.
    AccountingResponse,
    /// No reply within the timeout.
    NoReply,
    /// A reply came but radclient refused it: a wrong Response Authenticator (e.g. another secret) or a wrong
    /// Message-Authenticator. radclient verifies both; `output` has its reason.
    InvalidReply,
    /// Any other code, as radclient names it.
    Other(String),
}

/// What one radclient run produced.
#[derive(Debug, Clone)]
pub struct RadclientOutcome {
    /// The reply code.
    pub code: Reply,
    /// The reply's attributes in order, names as radclient prints them (tagged ones with `:tag`, e.g.
    /// `Tunnel-Password:1`); strings unquoted and unescaped, octets as `0x…` hex, enums by name. Encrypted
    /// attributes (Tunnel-Password, MS-MPPE-*) appear decrypted with the secret.
    pub attributes: Vec<(String, String)>,
    /// radclient's whole output (stdout and stderr), for assertion messages.
    pub output: String,
}

impl RadclientOutcome {
    /// The first value of attribute `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values(name).into_iter().next()
    }

    /// Every value of attribute `name`, in order.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.attributes
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether the reply has attribute `name`.
    pub fn has(&self, name: &str) -> bool {
        self.attributes.iter().any(|(n, _)| n == name)
    }

    /// The first value of an octets attribute (`0x…`), decoded; `None` if absent or not hex.
    pub fn octets(&self, name: &str) -> Option<Vec<u8>> {
        self.value(name)?
            .strip_prefix("0x")
            .and_then(|digits| hex::decode(digits).ok())
    }

    /// The reply's State, in the `0x…` form radclient accepts back as input.
    pub fn state(&self) -> Option<&str> {
        self.value("State")
    }
}

/// Sends one request with the defaults (Message-Authenticator added, [`DEFAULT_TIMEOUT`], one try).
pub fn radclient(
    addr: SocketAddr,
    secret: &str,
    kind: Kind,
    attrs: &[(&str, &str)],
) -> Result<RadclientOutcome> {
    Radclient::new(addr, secret).send(kind, attrs)
}

/// How long radclient waits for a reply by default: long enough for a loaded CI machine, short enough that a
/// "no reply" test takes about 2 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// A radclient invocation with options; [`radclient`] is the shorthand.
#[derive(Debug, Clone)]
pub struct Radclient {
    addr: SocketAddr,
    secret: String,
    timeout: Duration,
    message_authenticator: bool,
}

impl Radclient {
    /// Requests to `addr` with `secret`.
    pub fn new(addr: SocketAddr, secret: &str) -> Self {
        Self {
            addr,
            secret: secret.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            message_authenticator: true,
        }
    }

    /// How long to wait for the reply (radclient `-t`; there are no retries).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends requests without Message-Authenticator (unless the attributes name it).
    pub fn without_message_authenticator(mut self) -> Self {
        self.message_authenticator = false;
        self
    }

    /// Sends one request of `kind` with `attrs` (names as in FreeRADIUS's dictionary; values are quoted for
    /// radclient, and `0x…` values of octets attributes are read as hex).
    pub fn send(&self, kind: Kind, attrs: &[(&str, &str)]) -> Result<RadclientOutcome> {
        let mut input: String = attrs
            .iter()
            .map(|(name, value)| format!("{name} = {}\n", quote(value)))
            .collect();
        if self.message_authenticator
            && !attrs
                .iter()
                .any(|(name, _)| *name == "Message-Authenticator")
        {
            input.push_str("Message-Authenticator = 0x00\n");
        }
        let args = [
            "-x".to_owned(),
            // -r 0 is a usage error: one try is -r 1.
            "-r".to_owned(),
            "1".to_owned(),
            "-t".to_owned(),
            format!("{:.3}", self.timeout.as_secs_f64()),
            self.addr.to_string(),
            kind.command().to_owned(),
            self.secret.clone(),
        ];
        // radclient gives up after the timeout; the extra time only catches a hung process.
        let run = run_peer(
            "radclient",
            &args,
            &input,
            self.timeout + Duration::from_secs(10),
        )?;
        parse(&run.output).ok_or_else(|| Error::Output {
            peer: "radclient",
            reason: format!("neither a reply nor a timeout ({})", run.status),
            output: run.output.clone(),
        })
    }
}

/// Double-quotes a value for radclient's input, escaping what its parser treats specially.
fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Reads the `Received …` block (or the "No reply" line) from radclient's `-x` output.
fn parse(output: &str) -> Option<RadclientOutcome> {
    let mut lines = output
        .lines()
        .skip_while(|line| !line.starts_with("Received "));
    let Some(received) = lines.next() else {
        // radclient reports a refused reply, then (once the timeout passes) that no reply came.
        let code = if output.contains("Reply verification failed") {
            Reply::InvalidReply
        } else if output.contains("No reply from server") {
            Reply::NoReply
        } else {
            return None;
        };
        return Some(RadclientOutcome {
            code,
            attributes: Vec::new(),
            output: output.to_owned(),
        });
    };
    let code = match received.split_whitespace().nth(1)? {
        "Access-Accept" => Reply::Accept,
        "Access-Reject" => Reply::Reject,
        "Access-Challenge" => Reply::Challenge,
        "Accounting-Response" => Reply::AccountingResponse,
        other => Reply::Other(other.to_owned()),
    };
    let attributes = lines
        .take_while(|line| line.starts_with('\t') || line.starts_with(' '))
        .filter_map(|line| line.trim_start().split_once(" = "))
        .map(|(name, value)| (name.to_owned(), unquote(value)))
        .collect();
    Some(RadclientOutcome {
        code,
        attributes,
        output: output.to_owned(),
    })
}

/// Undoes FreeRADIUS's printing of a string value: surrounding quotes, `\"`, `\\`, `\n`, `\r`, `\t` and `\ooo`
/// octal escapes. Unquoted values (numbers, enums, addresses, `0x…`) come back as they are.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut bytes = Vec::with_capacity(inner.len());
    let mut rest = inner.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        if byte != b'\\' {
            bytes.push(byte);
            continue;
        }
        if let [a @ b'0'..=b'3', b @ b'0'..=b'7', c @ b'0'..=b'7', tail @ ..] = rest {
            bytes.push((a - b'0') * 64 + (b - b'0') * 8 + (c - b'0'));
            rest = tail;
            continue;
        }
        let Some((&escaped, tail)) = rest.split_first() else {
            bytes.push(b'\\');
            break;
        };
        rest = tail;
        bytes.push(match escaped {
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            other => other,
        });
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real `radclient -x` output for carol's challenge, with an escaped Reply-Message added.
    const CHALLENGE_OUTPUT: &str = "\
Sent Access-Request Id 228 from 0.0.0.0:56558 to 127.0.0.1:31812 length 45
\tUser-Name = \"carol\"
\tUser-Password = \"carol-password\"
\tCleartext-Password = \"carol-password\"
Received Access-Challenge Id 228 from 127.0.0.1:31812 to 127.0.0.1:56558 length 88
\tMessage-Authenticator = 0xc118a27f8b4067ce42a506de3f51adcf
\tReply-Message = \"say \\\"hi\\\"\\n\"
\tReply-Message = \"second\"
\tState = 0x619d139f1b28c641392f12a8be62aa8d
(0) -: Expected Access-Accept got Access-Challenge
";

    #[test]
    fn only_the_received_block_becomes_attributes() {
        let outcome = parse(CHALLENGE_OUTPUT).expect("a reply");

        assert_eq!(outcome.code, Reply::Challenge);
        assert!(
            !outcome.has("User-Name"),
            "attributes of the sent request are not the reply's"
        );
        assert_eq!(outcome.values("Reply-Message"), ["say \"hi\"\n", "second"]);
        assert_eq!(outcome.state(), Some("0x619d139f1b28c641392f12a8be62aa8d"));
        assert_eq!(
            outcome.octets("Message-Authenticator").map(|mac| mac.len()),
            Some(16)
        );
    }

    #[test]
    fn no_reply_is_an_outcome_and_garbage_is_not() {
        let timeout = "Sent Access-Request Id 209 from 0.0.0.0:41331 to 127.0.0.1:31899 length 45\n\
                       \tUser-Name = \"carol\"\n(0) No reply from server for ID 209 socket 3\n";

        assert_eq!(
            parse(timeout).map(|outcome| outcome.code),
            Some(Reply::NoReply)
        );
        assert!(parse("radclient: Failed parsing attribute\n").is_none());
    }

    #[test]
    fn a_refused_reply_is_not_mistaken_for_silence() {
        // Real output for an Access-Accept whose Message-Authenticator was wrong by one bit.
        let refused = "(0) Reply verification failed: Received packet from 127.0.0.1 with invalid \
                       Message-Authenticator!  (Shared secret is incorrect.)\n\
                       Sent Access-Request Id 71 from 0.0.0.0:51833 to 127.0.0.1:40739 length 59\n\
                       (0) No reply from server for ID 71 socket 3\n";

        assert_eq!(
            parse(refused).map(|outcome| outcome.code),
            Some(Reply::InvalidReply)
        );
    }

    #[test]
    fn quoting_and_unquoting_round_trip() {
        for value in [
            "plain",
            "with space, comma = equals",
            "quote \" and \\ backslash",
            "tab\tline\nend",
        ] {
            assert_eq!(unquote(&quote(value)), value);
        }
        assert_eq!(
            unquote("\"\\101\\302\\251\""),
            "A\u{a9}",
            "octal escapes are bytes, decoded as UTF-8"
        );
        assert_eq!(
            unquote("0x00ff"),
            "0x00ff",
            "unquoted values stay as printed"
        );
    }
}
