//! A challenge-aware RADIUS client: `portvakt login`, a radtest that answers
//! Access-Challenge, and the NAS side of our own tests and tools.
//!
//! Every request carries a Message-Authenticator (first); every reply must carry a
//! valid one and a valid Response Authenticator, or it is ignored.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::timeout;

use crate::radius::{self, Attribute, Code, Keying, Packet, attr, crypt, random};
use crate::secret::Secret;

/// Why a login attempt got no answer.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Socket trouble.
    #[error("network")]
    Io(#[from] std::io::Error),
    /// No valid reply within the timeout, after all retries.
    #[error("no valid reply from {0}")]
    NoReply(SocketAddr),
    /// The request could not be built (a password over 128 octets, too many attributes).
    #[error("cannot build the request: {0}")]
    Build(String),
}

/// A RADIUS client bound to one server.
#[derive(Debug)]
pub struct RadiusClient {
    socket: UdpSocket,
    server: SocketAddr,
    secret: Secret,
    /// How long to wait for each try.
    pub timeout: Duration,
    /// Retransmissions (same Identifier and authenticator) after the first try.
    pub retries: u32,
    next_id: u8,
}

impl RadiusClient {
    /// A client for `server` on an ephemeral local port.
    pub async fn new(server: SocketAddr, secret: Secret) -> Result<Self, LoginError> {
        let local: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .expect("literal");
        Self::bind(local, server, secret).await
    }

    /// A client for `server` sending from `local` (e.g. `127.0.0.2:0`, to play a second NAS).
    pub async fn bind(
        local: SocketAddr,
        server: SocketAddr,
        secret: Secret,
    ) -> Result<Self, LoginError> {
        let socket = UdpSocket::bind(local).await?;
        socket.connect(server).await?;
        let mut id = [0u8; 1];
        random::fill(&mut id);
        Ok(Self {
            socket,
            server,
            secret,
            timeout: Duration::from_secs(3),
            retries: 2,
            next_id: id[0],
        })
    }

    /// Sends an Access-Request with `attributes` (and User-Password hidden from
    /// `password`), and returns the verified reply.
    pub async fn access(
        &mut self,
        attributes: &[Attribute],
        password: Option<&[u8]>,
    ) -> Result<Packet, LoginError> {
        self.next_id = self.next_id.wrapping_add(1);
        let authenticator = random::bytes16();
        let mut request = Packet::new(Code::AccessRequest, self.next_id, authenticator);
        request.set_message_authenticator_first();
        if let Some(pw) = password {
            let keying = Keying {
                secret: self.secret.expose(),
                authenticator: &authenticator,
            };
            let hidden =
                crypt::hide_password(pw, keying).map_err(|e| LoginError::Build(e.to_string()))?;
            request.push(attr::USER_PASSWORD, hidden);
        }
        request.attributes.extend(attributes.iter().cloned());
        let bytes = radius::encode_request(&request, self.secret.signing())
            .map_err(|e| LoginError::Build(e.to_string()))?;
        self.exchange(&bytes, &authenticator, request.identifier)
            .await
    }

    /// Sends pre-built request bytes (and retransmits them) until a verified reply comes.
    pub async fn exchange(
        &self,
        bytes: &[u8],
        authenticator: &[u8; 16],
        id: u8,
    ) -> Result<Packet, LoginError> {
        let mut buf = vec![0u8; radius::packet::MAX_PACKET_LEN];
        for _ in 0..=self.retries {
            self.socket.send(bytes).await?;
            let deadline = tokio::time::Instant::now() + self.timeout;
            while let Ok(received) = timeout(
                deadline.saturating_duration_since(tokio::time::Instant::now()),
                self.socket.recv(&mut buf),
            )
            .await
            {
                let n = received?;
                let reply = &buf[..n];
                if reply.get(1) != Some(&id) {
                    continue;
                }
                let Ok(v) = radius::verify_response(reply, authenticator, self.secret.signing())
                else {
                    continue;
                };
                if !v.message_authenticator {
                    continue;
                }
                if let Ok(p) = Packet::decode(reply) {
                    return Ok(p);
                }
            }
        }
        Err(LoginError::NoReply(self.server))
    }
}

/// The Reply-Message attributes of a packet, joined (RFC 2865 §5.18: the NAS
/// concatenates them).
pub fn reply_message(packet: &Packet) -> String {
    let bytes: Vec<u8> = packet
        .attrs(attr::REPLY_MESSAGE)
        .flatten()
        .copied()
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Builds an attribute from `Name=value` text with the dictionary (`--attr` of
/// `portvakt login`): standard and vendor attributes, values by their type.
pub fn attribute_from_text(
    dict: &crate::radius::dictionary::Dictionary,
    text: &str,
) -> Result<Attribute, String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected Name=value"))?;
    let def = dict
        .attr_by_name(name.trim())
        .ok_or_else(|| format!("`{name}`: no such attribute in the dictionary"))?;
    let bytes = dict
        .parse_value(def, value.trim())
        .map_err(|e| format!("`{name}`: {e}"))?;
    if def.extended.is_some() {
        return Err(format!(
            "`{name}`: extended attributes cannot be given here"
        ));
    }
    let number = u8::try_from(def.number).map_err(|_| format!("`{name}`: number out of range"))?;
    if def.vendor == 0 {
        return Ok(Attribute {
            typ: number,
            value: bytes,
        });
    }
    let value = attr::build_vsa(def.vendor, number, &bytes)
        .ok_or_else(|| format!("`{name}`: value too long"))?;
    Ok(Attribute {
        typ: attr::VENDOR_SPECIFIC,
        value,
    })
}
