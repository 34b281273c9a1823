//! A minimal Status-Server probe (RFC 5997), written here from the RFCs so it shares no code with portvakt.
//!
//! It answers one question: "does a RADIUS server with this secret answer on this address yet?" — used to wait
//! for a freshly started server without sleeping blindly. It signs its request with Message-Authenticator
//! (RFC 3579 §3.2; required on Status-Server) and accepts only a reply with our Identifier and a valid Response
//! Authenticator (RFC 2865 §3), so a reply proves both the server and the secret.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};

use super::{Error, POLL_INTERVAL, Result};

const STATUS_SERVER: u8 = 12;
const ACCESS_ACCEPT: u8 = 2;
const ACCOUNTING_RESPONSE: u8 = 5;
const MESSAGE_AUTHENTICATOR: u8 = 80;
const HEADER_LEN: usize = 20;
/// Header plus one Message-Authenticator attribute (type, length, 16 octets).
const REQUEST_LEN: usize = HEADER_LEN + 18;

/// Sends one Status-Server to `addr` and waits up to `timeout` for a valid answer.
///
/// `Ok(false)` means no valid answer in time (nothing listening, wrong secret, or still starting up).
pub fn status_server(addr: SocketAddr, secret: &str, timeout: Duration) -> Result<bool> {
    let socket = bind_loopback_like(addr)?;
    socket
        .connect(addr)
        .map_err(|e| Error::io(format!("connecting a UDP socket to {addr}"), e))?;
    let request = status_request(secret)?;
    if socket.send(&request).is_err() {
        // ECONNREFUSED from an earlier ICMP error, for instance: nobody is listening yet.
        return Ok(false);
    }
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
    {
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| Error::io("setting a UDP read timeout", e))?;
        match socket.recv(&mut buf) {
            Ok(len) if is_valid_reply(&buf[..len], &request, secret) => return Ok(true),
            Ok(_) => continue, // a stray or forged datagram: keep waiting for ours
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ok(false);
            }
            // Port unreachable: the server has not bound its socket yet.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Ok(false),
            Err(e) => return Err(Error::io(format!("receiving from {addr}"), e)),
        }
    }
    Ok(false)
}

/// Probes `addr` until it answers or `limit` passes. Before each probe `still_alive` is asked, so a server that
/// exits during start-up fails at once instead of at the deadline. Returns whether the server answered.
pub fn wait_until_answering(
    addr: SocketAddr,
    secret: &str,
    limit: Duration,
    mut still_alive: impl FnMut() -> Result<()>,
) -> Result<bool> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        still_alive()?;
        let attempt_started = Instant::now();
        if status_server(addr, secret, Duration::from_millis(100))? {
            return Ok(true);
        }
        // An immediate "refused" returns at once: pace the probes instead of spinning.
        if attempt_started.elapsed() < POLL_INTERVAL {
            thread::sleep(POLL_INTERVAL);
        }
    }
    Ok(false)
}

fn bind_loopback_like(addr: SocketAddr) -> Result<UdpSocket> {
    let local: IpAddr = match addr {
        SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
        SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
    };
    UdpSocket::bind(SocketAddr::new(local, 0))
        .map_err(|e| Error::io(format!("binding {local}:0"), e))
}

fn status_request(secret: &str) -> Result<[u8; REQUEST_LEN]> {
    let mut packet = [0u8; REQUEST_LEN];
    // Identifier and Request Authenticator are random (RFC 2865 §3).
    getrandom::fill(&mut packet[1..HEADER_LEN])
        .map_err(|e| Error::io("reading random bytes", std::io::Error::other(e.to_string())))?;
    packet[0] = STATUS_SERVER;
    packet[2..4].copy_from_slice(&(REQUEST_LEN as u16).to_be_bytes());
    packet[HEADER_LEN] = MESSAGE_AUTHENTICATOR;
    packet[HEADER_LEN + 1] = 18;
    // HMAC-MD5 over the whole packet with the Message-Authenticator value zeroed (RFC 3579 §3.2).
    let mac = hmac_md5(secret.as_bytes(), &packet);
    packet[HEADER_LEN + 2..].copy_from_slice(&mac);
    Ok(packet)
}

fn is_valid_reply(reply: &[u8], request: &[u8; REQUEST_LEN], secret: &str) -> bool {
    if reply.len() < HEADER_LEN || reply[1] != request[1] {
        return false;
    }
    if reply[0] != ACCESS_ACCEPT && reply[0] != ACCOUNTING_RESPONSE {
        return false;
    }
    let length = usize::from(u16::from_be_bytes([reply[2], reply[3]]));
    if length < HEADER_LEN || length > reply.len() {
        return false;
    }
    // Response Authenticator = MD5(Code+ID+Length+RequestAuth+Attributes+Secret) (RFC 2865 §3).
    let mut md5 = Md5::new();
    md5.update(&reply[..4]);
    md5.update(&request[4..HEADER_LEN]);
    md5.update(&reply[HEADER_LEN..length]);
    md5.update(secret.as_bytes());
    md5.finalize().as_slice() == &reply[4..HEADER_LEN]
}

fn hmac_md5(key: &[u8], data: &[u8]) -> [u8; 16] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Md5> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}
