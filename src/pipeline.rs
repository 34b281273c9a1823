//! One request's whole way through portvakt, top to bottom.
//!
//! Each step returns a value; a drop is [`Outcome::Drop`] with a named [`Drop`]
//! reason (sent nowhere, counted and logged), never an error.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::ClientSettings;
use crate::daemon::{Context, Listener};
use crate::radius::{self, Code, Keying, Packet, attr};
use crate::relay;
use crate::replay::Seen;
use crate::upstream::{Port, Reply};

mod access;
mod push;

/// What becomes of a datagram.
#[derive(Debug)]
pub enum Outcome {
    /// Send these bytes back to the source.
    Reply(Arc<[u8]>, Audit),
    /// A retransmission of an answered request: send the cached bytes again.
    Resend(Arc<[u8]>),
    /// Send nothing.
    Drop(Drop),
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// The source address is not a configured client.
    UnknownClient,
    /// Not a RADIUS packet, or a code that does not belong on this port.
    Malformed,
    /// The authenticator or Message-Authenticator does not verify (wrong secret?).
    BadAuthenticator,
    /// No Message-Authenticator where one is required.
    NoMessageAuthenticator,
    /// Proxy-State without Message-Authenticator (`limit_proxy_state`).
    ProxyStateWithoutMa,
    /// A copy of a request still in progress.
    InProgress,
    /// No upstream answered in time (the NAS will retransmit).
    Upstream(crate::upstream::Failure),
    /// An upstream reply that could not be carried to the NAS.
    BadUpstreamReply,
    /// A reply that could not be encoded (too long).
    Unencodable,
    /// The user store failed while checking a local password; the NAS will retry.
    StoreFailed,
}

impl Drop {
    /// The reason code used in logs and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownClient => "unknown_client",
            Self::Malformed => "malformed",
            Self::BadAuthenticator => "bad_authenticator",
            Self::NoMessageAuthenticator => "no_ma",
            Self::ProxyStateWithoutMa => "proxy_state_without_ma",
            Self::InProgress => "duplicate_in_progress",
            Self::Upstream(f) => f.as_str(),
            Self::BadUpstreamReply => "bad_upstream_reply",
            Self::Unencodable => "unencodable",
            Self::StoreFailed => "store_failed",
        }
    }
}

/// What the audit line of a finished request says.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// The client's name.
    pub client: String,
    /// The User-Name, escaped for logs.
    pub user: Option<String>,
    /// The NAS as it names itself: NAS-Identifier, else NAS-IP-Address or NAS-IPv6-Address
    /// (escaped; to match the line with the gateway's own log).
    pub nas: Option<String>,
    /// Calling-Station-Id as sent (escaped): the user's address or device, as the NAS saw it.
    pub station: Option<String>,
    /// The reply code sent.
    pub result: &'static str,
    /// Why (e.g. `pass_through`, `otp_ok`, `otp_bad`, `policy_deny`).
    pub reason: &'static str,
    /// Where the login came from and the site and rule that decided, for logs.
    pub decision: Option<String>,
    /// The upstream that answered, if any.
    pub upstream: Option<String>,
}

/// Handles one datagram from `src` on a listener.
pub async fn handle(
    ctx: &Context,
    listener: Listener,
    src: SocketAddr,
    datagram: &[u8],
) -> Outcome {
    let clients = ctx.clients.load();
    let Some(client) = clients.find(src.ip()) else {
        return Outcome::Drop(Drop::UnknownClient);
    };
    let Ok(request) = Packet::decode(datagram) else {
        return Outcome::Drop(Drop::Malformed);
    };
    let Ok(verified) = radius::verify_request(datagram, client.secret.signing()) else {
        return Outcome::Drop(Drop::BadAuthenticator);
    };
    if let Err(drop) = blast_radius_checks(client, &request, verified.message_authenticator) {
        return Outcome::Drop(drop);
    }
    let ticket = match ctx
        .replay
        .begin(src, request.identifier, request.authenticator)
    {
        Seen::New(ticket) => ticket,
        Seen::InProgress => return Outcome::Drop(Drop::InProgress),
        Seen::Answered(bytes) => return Outcome::Resend(bytes),
    };
    let result = match (listener, request.code) {
        (_, Code::StatusServer) => Ok(status_reply(listener, &request)),
        (Listener::Auth, Code::AccessRequest) => access::handle(ctx, client, src, &request).await,
        (Listener::Acct, Code::AccountingRequest) => accounting(ctx, client, &request).await,
        _ => Err(Drop::Malformed),
    };
    let answer = match result {
        Ok(answer) => answer,
        Err(drop) => return Outcome::Drop(drop),
    };
    let Ok(bytes) = relay::encode(&answer.reply, &request, &client.secret) else {
        return Outcome::Drop(Drop::Unencodable);
    };
    let bytes: Arc<[u8]> = bytes.into();
    ticket.finish(bytes.clone());
    let audit = Audit {
        client: client.name.clone(),
        user: request.user_name().map(crate::audit::escape),
        nas: crate::audit::nas(&request),
        station: request
            .attr(attr::CALLING_STATION_ID)
            .map(crate::audit::escape),
        result: answer.reply.code.name(),
        reason: answer.reason,
        decision: answer.decision,
        upstream: answer.upstream,
    };
    Outcome::Reply(bytes, audit)
}

/// The BlastRADIUS rules (CVE-2024-3596) for requests from a NAS.
fn blast_radius_checks(
    client: &ClientSettings,
    request: &Packet,
    has_ma: bool,
) -> Result<(), Drop> {
    // RFC 5997 §3 and RFC 3579 §3.2: Status-Server and EAP always need it.
    let required = client.require_message_authenticator
        || request.code == Code::StatusServer
        || request.has(attr::EAP_MESSAGE);
    if request.code == Code::AccessRequest || request.code == Code::StatusServer {
        if required && !has_ma {
            return Err(Drop::NoMessageAuthenticator);
        }
        if client.limit_proxy_state && !has_ma && request.has(attr::PROXY_STATE) {
            return Err(Drop::ProxyStateWithoutMa);
        }
    }
    Ok(())
}

/// A reply to send, with what the audit line says about it.
#[derive(Debug)]
pub struct Answer {
    /// The reply (signed by the caller).
    pub reply: Packet,
    /// The reason code.
    pub reason: &'static str,
    /// Origin, site and rule, when a policy decided.
    pub decision: Option<String>,
    /// The upstream that answered.
    pub upstream: Option<String>,
}

impl Answer {
    /// A reply made by portvakt itself.
    pub fn local(reply: Packet, reason: &'static str) -> Self {
        Self {
            reply,
            reason,
            decision: None,
            upstream: None,
        }
    }
}

/// A step's result: an answer, or a drop.
pub type Handled = Result<Answer, Drop>;

/// Status-Server is answered here, never forwarded (RFC 5997 §4).
fn status_reply(listener: Listener, request: &Packet) -> Answer {
    let code = match listener {
        Listener::Auth => Code::AccessAccept,
        Listener::Acct => Code::AccountingResponse,
    };
    Answer::local(relay::reply(request, code, Vec::new()), "status_server")
}

/// An Accounting-Request: forwarded, and answered only once the upstream has answered
/// (RFC 2866 §4.1: never acknowledge on the server's behalf).
async fn accounting(ctx: &Context, client: &ClientSettings, request: &Packet) -> Handled {
    let outgoing = relay::outgoing(request, None);
    let reply = ctx
        .upstreams
        .send(&outgoing, Port::Acct, None)
        .await
        .map_err(Drop::Upstream)?;
    let nas = Keying {
        secret: client.secret.expose(),
        authenticator: &request.authenticator,
    };
    relay_reply(ctx, &reply, request, nas, "accounting")
}

/// The directory's reply, carried to the NAS.
pub fn relay_reply(
    ctx: &Context,
    reply: &Reply,
    request: &Packet,
    nas: Keying<'_>,
    reason: &'static str,
) -> Handled {
    let expected = match request.code {
        Code::AccountingRequest => matches!(reply.packet.code, Code::AccountingResponse),
        _ => matches!(
            reply.packet.code,
            Code::AccessAccept | Code::AccessReject | Code::AccessChallenge
        ),
    };
    if !expected {
        return Err(Drop::BadUpstreamReply);
    }
    let attributes = relay::reply_attributes(reply, nas, &ctx.settings.dictionary)
        .map_err(|_| Drop::BadUpstreamReply)?;
    let packet = relay::reply(request, reply.packet.code, attributes);
    Ok(Answer {
        reply: packet,
        reason,
        decision: None,
        upstream: Some(reply.server.settings.name.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every datagram is a task whose size is this future's: it is allocated and moved
    /// for each request and kept for as long as a login is held for a push. The push and
    /// SMS steps are boxed so that their HTTP calls do not size it (3,576 bytes before,
    /// 2,232 after, Rust 1.95); this fails if a new step makes it grow a lot again.
    #[test]
    fn request_task_stays_small() {
        let settings = crate::config::tests::load_str(crate::config::tests::GOOD).unwrap();
        let ctx = Context::new(settings, None);
        let src = "192.0.2.10:4000".parse().unwrap();
        let task = handle(&ctx, Listener::Auth, src, &[]);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 2_560, "the request future grew to {size} bytes");
    }
}
