//! `portvakt serve` as a plain proxy between real peers: radclient and eapol_test as the NAS, a private FreeRADIUS
//! 3.2 as the directory. Every login here comes from a client whose policy is `trusted`, so no second factor is asked.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use portvakt::radius::{self, Code, Keying, Packet, attr, crypt};

use crate::support::eapol::{EapMethod, eapol_test};
use crate::support::freeradius::*;
use crate::support::proxy::{NAS_SECRET, Proxy};
use crate::support::radclient::{Kind, Radclient, Reply, radclient};

/// A patched directory: requires Message-Authenticator and signs its replies (as FreeRADIUS ≥ 3.2.5 and NPS
/// after July 2024 do), so portvakt's defaults apply on both hops.
pub(crate) fn directory() -> crate::support::Result<FreeRadius> {
    FreeRadius::builder()
        .require_message_authenticator(true)
        .sign_replies(true)
        .start()
}

/// portvakt in front of `upstream`, trusting the test NAS (no second factor).
pub(crate) fn proxy(upstream: &FreeRadius) -> crate::support::Result<Proxy> {
    Proxy::builder()
        .upstream(upstream)
        .client("policy = \"trusted\"")
        .start()
}

#[test]
fn pap_accept_carries_every_reply_attribute_reencrypted_for_the_nas() -> Result<()> {
    let upstream = directory()?;
    let proxy = proxy(&upstream)?;

    let reply = radclient(proxy.auth(), NAS_SECRET, Kind::Auth, &ALICE.pap())?;

    assert_eq!(reply.code, Reply::Accept, "{}", reply.output);
    assert!(reply.has("Message-Authenticator"), "{}", reply.output);
    assert_eq!(reply.octets("Class"), Some(ALICE_CLASS.as_bytes().to_vec()));
    assert_eq!(
        reply.value("Session-Timeout"),
        Some(ALICE_SESSION_TIMEOUT.to_string().as_str())
    );
    assert_eq!(
        reply.value("Framed-IP-Address"),
        Some(ALICE_FRAMED_IP.to_string().as_str())
    );
    assert_eq!(reply.value("Tunnel-Type:1"), Some(ALICE_TUNNEL_TYPE));
    // radclient decrypts these with the NAS secret and its own request authenticator: they only come out right if
    // portvakt re-encrypted them from the upstream's keying to the NAS's.
    assert_eq!(
        reply.value("Tunnel-Password:1"),
        Some(ALICE_TUNNEL_PASSWORD),
        "{}",
        reply.output
    );
    assert_eq!(
        reply.octets("MS-MPPE-Send-Key"),
        Some(ALICE_MPPE_SEND_KEY.to_vec()),
        "{}",
        reply.output
    );
    assert_eq!(
        reply.octets("MS-MPPE-Recv-Key"),
        Some(ALICE_MPPE_RECV_KEY.to_vec()),
        "{}",
        reply.output
    );
    Ok(())
}

#[test]
fn pap_reject_is_relayed() -> Result<()> {
    let upstream = directory()?;
    let proxy = proxy(&upstream)?;
    let reply = radclient(
        proxy.auth(),
        NAS_SECRET,
        Kind::Auth,
        &[("User-Name", "alice"), ("User-Password", "wrong")],
    )?;
    assert_eq!(reply.code, Reply::Reject, "{}", reply.output);
    assert!(reply.has("Message-Authenticator"), "{}", reply.output);
    Ok(())
}

#[test]
fn chap_works_through_the_proxy() -> Result<()> {
    let upstream = directory()?;
    let proxy = proxy(&upstream)?;
    // radclient turns a cleartext CHAP-Password into a CHAP response keyed on its Request Authenticator; portvakt
    // must send that authenticator upstream as CHAP-Challenge.
    let reply = radclient(proxy.auth(), NAS_SECRET, Kind::Auth, &ALICE.chap())?;
    assert_eq!(reply.code, Reply::Accept, "{}", reply.output);
    let wrong = radclient(
        proxy.auth(),
        NAS_SECRET,
        Kind::Auth,
        &[("User-Name", "bob"), ("CHAP-Password", "nope")],
    )?;
    assert_eq!(wrong.code, Reply::Reject, "{}", wrong.output);
    Ok(())
}

#[test]
fn peap_mschapv2_succeeds_with_mppe_keys() -> Result<()> {
    let upstream = directory()?;
    let proxy = proxy(&upstream)?;
    let outcome = eapol_test(
        proxy.auth(),
        NAS_SECRET,
        EAP_USER.name,
        EAP_USER.password,
        EapMethod::PeapMschapV2,
    )?;
    assert!(outcome.success, "{}", outcome.output);
    assert!(
        outcome.mppe_keys_ok,
        "MPPE keys must survive re-encryption:\n{}",
        outcome.output
    );
    let bad = eapol_test(
        proxy.auth(),
        NAS_SECRET,
        EAP_USER.name,
        "wrong",
        EapMethod::PeapMschapV2,
    )?;
    assert!(!bad.success, "{}", bad.output);
    Ok(())
}

#[test]
fn eap_mschapv2_succeeds_with_mppe_keys() -> Result<()> {
    let upstream = directory()?;
    let proxy = proxy(&upstream)?;
    let outcome = eapol_test(
        proxy.auth(),
        NAS_SECRET,
        EAP_USER.name,
        EAP_USER.password,
        EapMethod::EapMschapV2,
    )?;
    assert!(outcome.success, "{}", outcome.output);
    assert!(outcome.mppe_keys_ok, "{}", outcome.output);
    Ok(())
}

#[test]
fn upstream_challenge_round_trip() -> Result<()> {
    let upstream = directory()?;
    let proxy = proxy(&upstream)?;
    let first = radclient(proxy.auth(), NAS_SECRET, Kind::Auth, &CAROL.pap())?;
    assert_eq!(first.code, Reply::Challenge, "{}", first.output);
    assert_eq!(first.value("Reply-Message"), Some(CAROL_CHALLENGE_MESSAGE));
    let state = first.state().expect("State in the challenge").to_owned();
    let second = radclient(
        proxy.auth(),
        NAS_SECRET,
        Kind::Auth,
        &[
            ("User-Name", CAROL.name),
            ("User-Password", CAROL_CODE),
            ("State", &state),
        ],
    )?;
    assert_eq!(second.code, Reply::Accept, "{}", second.output);
    assert_eq!(second.value("Reply-Message"), Some(CAROL_WELCOME_MESSAGE));
    Ok(())
}

#[test]
fn accounting_is_forwarded_and_answered_after_the_upstream() -> Result<()> {
    let upstream = directory()?;
    let proxy = proxy(&upstream)?;
    let before = upstream.accounting_requests()?;
    let reply = radclient(
        proxy.acct(),
        NAS_SECRET,
        Kind::Acct,
        &[
            ("User-Name", "alice"),
            ("Acct-Status-Type", "Start"),
            ("Acct-Session-Id", "pv-1"),
            ("NAS-IP-Address", "127.0.0.1"),
        ],
    )?;
    let stats = &proxy.context().stats;
    assert_eq!(
        reply.code,
        Reply::AccountingResponse,
        "{}\nreplies {} drops {:?}",
        reply.output,
        stats.replies.load(Ordering::Relaxed),
        [
            "bad_authenticator",
            "malformed",
            "upstream_timeout",
            "bad_upstream_reply"
        ]
        .map(|r| stats.dropped(r))
    );
    assert_eq!(upstream.accounting_requests()?, before + 1);
    Ok(())
}

#[test]
fn accounting_without_an_upstream_answer_gets_no_answer() -> Result<()> {
    let mut upstream = directory()?;
    let proxy = Proxy::builder()
        .upstream(&upstream)
        .client("policy = \"trusted\"")
        .start()?;
    upstream.stop()?;
    let reply = Radclient::new(proxy.acct(), NAS_SECRET)
        .timeout(Duration::from_secs(3))
        .send(
            Kind::Acct,
            &[
                ("User-Name", "alice"),
                ("Acct-Status-Type", "Start"),
                ("Acct-Session-Id", "pv-2"),
            ],
        )?;
    assert_eq!(
        reply.code,
        Reply::NoReply,
        "never acknowledged on the upstream's behalf: {}",
        reply.output
    );
    Ok(())
}

#[test]
fn status_server_is_answered_by_portvakt_not_forwarded() -> Result<()> {
    let upstream = directory()?;
    let proxy = proxy(&upstream)?;
    let before = upstream.access_requests()?;
    let auth = radclient(proxy.auth(), NAS_SECRET, Kind::Status, &[])?;
    assert_eq!(auth.code, Reply::Accept, "{}", auth.output);
    let acct = radclient(proxy.acct(), NAS_SECRET, Kind::Status, &[])?;
    assert_eq!(acct.code, Reply::AccountingResponse, "{}", acct.output);
    assert_eq!(upstream.access_requests()?, before);
    Ok(())
}

#[test]
fn requests_without_or_with_a_wrong_message_authenticator_get_no_answer() -> Result<()> {
    let upstream = directory()?;
    let proxy = proxy(&upstream)?;
    let no_ma = Radclient::new(proxy.auth(), NAS_SECRET)
        .timeout(Duration::from_secs(1))
        .without_message_authenticator()
        .send(Kind::Auth, &BOB.pap())?;
    assert_eq!(no_ma.code, Reply::NoReply, "{}", no_ma.output);
    // A wrong secret makes the Message-Authenticator wrong.
    let wrong = Radclient::new(proxy.auth(), "not-the-nas-secret-000")
        .timeout(Duration::from_secs(1))
        .send(Kind::Auth, &BOB.pap())?;
    assert_eq!(wrong.code, Reply::NoReply, "{}", wrong.output);
    // One bit flipped in an otherwise valid request.
    let mut bytes = signed_request(&[(attr::USER_NAME, b"bob")], Some(b"bob-password"));
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert_eq!(
        raw_exchange(proxy.auth(), &[&bytes], Duration::from_secs(1))?.len(),
        0
    );
    assert_eq!(proxy.context().stats.dropped("no_ma"), 1);
    assert_eq!(proxy.context().stats.dropped("bad_authenticator"), 2);
    assert_eq!(
        upstream.access_requests()?,
        0,
        "the directory saw none of them"
    );
    Ok(())
}

#[test]
fn proxy_state_without_message_authenticator_is_dropped_when_limited() -> Result<()> {
    let upstream = directory()?;
    let proxy = Proxy::builder()
        .upstream(&upstream)
        .client("policy = \"trusted\"\nrequire_message_authenticator = false")
        .start()?;
    let plain = Radclient::new(proxy.auth(), NAS_SECRET)
        .without_message_authenticator()
        .send(Kind::Auth, &BOB.pap())?;
    assert_eq!(
        plain.code,
        Reply::Accept,
        "allowed for this legacy NAS: {}",
        plain.output
    );
    let with_ps = Radclient::new(proxy.auth(), NAS_SECRET)
        .timeout(Duration::from_secs(1))
        .without_message_authenticator()
        .send(
            Kind::Auth,
            &[
                ("User-Name", "bob"),
                ("User-Password", "bob-password"),
                ("Proxy-State", "0x01"),
            ],
        )?;
    assert_eq!(with_ps.code, Reply::NoReply, "{}", with_ps.output);
    Ok(())
}

#[test]
fn unknown_clients_get_no_answer() -> Result<()> {
    let upstream = directory()?;
    // Only 127.0.0.2 is a client; radclient sends from 127.0.0.1.
    let proxy = Proxy::builder()
        .upstream(&upstream)
        .client_address("127.0.0.2")
        .client("policy = \"trusted\"")
        .start()?;
    let reply = Radclient::new(proxy.auth(), NAS_SECRET)
        .timeout(Duration::from_secs(1))
        .send(Kind::Auth, &BOB.pap())?;
    assert_eq!(reply.code, Reply::NoReply, "{}", reply.output);
    assert_eq!(proxy.context().stats.dropped("unknown_client"), 1);
    Ok(())
}

#[test]
fn proxy_states_come_back_in_order() -> Result<()> {
    let upstream = directory()?;
    let proxy = proxy(&upstream)?;
    for count in [0usize, 1, 5] {
        let states: Vec<Vec<u8>> = (0..count).map(|i| format!("ps-{i}").into_bytes()).collect();
        let mut attrs: Vec<(u8, &[u8])> = vec![(attr::USER_NAME, b"bob")];
        attrs.extend(states.iter().map(|s| (attr::PROXY_STATE, s.as_slice())));
        let bytes = signed_request(&attrs, Some(b"bob-password"));
        let replies = raw_exchange(proxy.auth(), &[&bytes], Duration::from_secs(3))?;
        ensure!(replies.len() == 1, "one reply, got {}", replies.len());
        let reply = Packet::decode(&replies[0])?;
        assert_eq!(reply.code, Code::AccessAccept);
        assert_eq!(
            reply.attributes[0].typ,
            attr::MESSAGE_AUTHENTICATOR,
            "Message-Authenticator first"
        );
        assert_eq!(
            reply.proxy_states().map(<[u8]>::to_vec).collect::<Vec<_>>(),
            states
        );
    }
    Ok(())
}

#[test]
fn a_retransmission_reaches_the_directory_once_and_gets_the_same_bytes() -> Result<()> {
    let upstream = directory()?;
    let proxy = proxy(&upstream)?;
    let bytes = signed_request(&[(attr::USER_NAME, b"bob")], Some(b"bob-password"));
    // Three copies back to back from one socket: the first is in progress while the others arrive.
    let replies = raw_exchange(
        proxy.auth(),
        &[&bytes, &bytes, &bytes],
        Duration::from_secs(2),
    )?;
    ensure!(!replies.is_empty(), "no reply");
    // And once more after the answer: from the cache.
    let again = raw_exchange_from(
        &replies.socket,
        proxy.auth(),
        &[&bytes],
        Duration::from_secs(2),
    )?;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0], replies[0], "the cached reply, byte for byte");
    assert_eq!(
        upstream.access_requests_for("bob")?,
        1,
        "the directory saw one request"
    );
    Ok(())
}

#[test]
fn failover_to_the_secondary_and_back() -> Result<()> {
    let mut primary = directory()?;
    let secondary = directory()?;
    let fast = "timeout = \"300ms\"\nretries = 0\ndead_after = 1\nprobe_interval = \"100ms\"\nanswers_to_alive = 2\n";
    let proxy = Proxy::builder()
        .upstream_toml(format!(
            "name = \"primary\"\nauth = \"{}\"\nsecret = \"{}\"\npriority = 1\n{fast}",
            primary.auth(),
            primary.secret()
        ))
        .upstream_toml(format!(
            "name = \"secondary\"\nauth = \"{}\"\nsecret = \"{}\"\npriority = 2\n{fast}",
            secondary.auth(),
            secondary.secret()
        ))
        .client("policy = \"trusted\"")
        .start()?;
    let login = || radclient(proxy.auth(), NAS_SECRET, Kind::Auth, &BOB.pap());
    assert_eq!(login()?.code, Reply::Accept);
    assert_eq!(primary.access_requests_for("bob")?, 1);

    primary.stop()?;
    for _ in 0..5 {
        let r = login()?;
        assert_eq!(r.code, Reply::Accept, "{}", r.output);
    }
    assert_eq!(secondary.access_requests_for("bob")?, 5);
    let servers = proxy.context().upstreams.servers();
    assert!(servers[0].is_dead(), "primary marked dead");

    primary.start()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while servers[0].is_dead() {
        ensure!(Instant::now() < deadline, "primary not revived within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = primary.access_requests_for("bob")?;
    assert_eq!(login()?.code, Reply::Accept);
    assert_eq!(
        primary.access_requests_for("bob")?,
        before + 1,
        "traffic back on the primary"
    );
    Ok(())
}

#[test]
fn more_than_256_requests_in_flight_to_one_upstream() -> Result<()> {
    let upstream = FreeRadius::builder()
        .require_message_authenticator(true)
        .sign_replies(true)
        .users(50)
        .start()?;
    // The limits would (rightly) slow a burst of 12 logins per user and 600 at once to the
    // directory; this test is about Identifiers, so they are off here.
    let proxy = Proxy::builder()
        .upstream(&upstream)
        .client("policy = \"trusted\"")
        .toml("[limits]\nper_user = \"off\"\ndirectory = \"off\"")
        .start()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let server = proxy.auth();
    let accepted = runtime.block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..600usize {
            tasks.spawn(async move {
                let user = numbered_user(i % 50);
                let mut client = portvakt::login::RadiusClient::new(
                    server,
                    portvakt::secret::Secret::new(NAS_SECRET),
                )
                .await?;
                client.timeout = Duration::from_secs(5);
                client.retries = 0;
                let attrs = [radius::Attribute {
                    typ: attr::USER_NAME,
                    value: user.name.clone().into_bytes(),
                }];
                let reply = client
                    .access(&attrs, Some(user.password.as_bytes()))
                    .await?;
                anyhow::Ok(
                    reply.code == Code::AccessAccept
                        && reply.attr(attr::CLASS) == Some(user.class.as_bytes()),
                )
            });
        }
        let mut ok = 0;
        while let Some(r) = tasks.join_next().await {
            if r?? {
                ok += 1;
            }
        }
        anyhow::Ok(ok)
    })?;
    assert_eq!(
        accepted, 600,
        "every login accepted with its own Class (no misrouted replies)"
    );
    assert_eq!(
        proxy
            .context()
            .upstreams
            .stats
            .invalid_replies
            .load(Ordering::Relaxed),
        0
    );
    Ok(())
}

/// An Access-Request signed for the test NAS secret, Message-Authenticator first.
pub(crate) fn signed_request(attrs: &[(u8, &[u8])], password: Option<&[u8]>) -> Vec<u8> {
    let authenticator = radius::random::bytes16();
    let mut p = Packet::new(Code::AccessRequest, 42, authenticator);
    p.set_message_authenticator_first();
    for (t, v) in attrs {
        p.push(*t, *v);
    }
    if let Some(pw) = password {
        let keying = Keying {
            secret: NAS_SECRET.as_bytes(),
            authenticator: &authenticator,
        };
        p.push(
            attr::USER_PASSWORD,
            crypt::hide_password(pw, keying).unwrap(),
        );
    }
    radius::encode_request(&p, NAS_SECRET.as_bytes()).unwrap()
}

/// Replies received on one socket, with the socket kept for more.
pub(crate) struct Replies {
    pub(crate) socket: UdpSocket,
    pub(crate) replies: Vec<Vec<u8>>,
}

impl std::ops::Deref for Replies {
    type Target = Vec<Vec<u8>>;
    fn deref(&self) -> &Vec<Vec<u8>> {
        &self.replies
    }
}

/// Sends datagrams from a fresh socket and collects replies until `quiet` passes without one.
pub(crate) fn raw_exchange(
    to: SocketAddr,
    datagrams: &[&[u8]],
    quiet: Duration,
) -> Result<Replies> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let replies = raw_exchange_from(&socket, to, datagrams, quiet)?;
    Ok(Replies { socket, replies })
}

/// Sends datagrams from `socket` and collects replies until `quiet` passes without one.
pub(crate) fn raw_exchange_from(
    socket: &UdpSocket,
    to: SocketAddr,
    datagrams: &[&[u8]],
    quiet: Duration,
) -> Result<Vec<Vec<u8>>> {
    for d in datagrams {
        socket.send_to(d, to)?;
    }
    socket.set_read_timeout(Some(quiet))?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok((n, _)) = socket.recv_from(&mut buf) {
        out.push(buf[..n].to_vec());
        ensure!(out.len() < 100, "too many replies");
    }
    Ok(out)
}
