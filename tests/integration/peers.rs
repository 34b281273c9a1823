//! Smoke tests of the harness itself: radclient and eapol_test against a private FreeRADIUS, no portvakt involved.
//!
//! If these fail, the peers or the harness are broken, not portvakt. A missing peer binary fails every test here
//! with a message naming `scripts/install-test-peers`.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use anyhow::Result;

use crate::support::eapol::{EapMethod, EapolTest, eapol_test};
use crate::support::freeradius::*;
use crate::support::radclient::{Kind, Radclient, RadclientOutcome, Reply, radclient};
use crate::support::{self, Error, INSTALL_SCRIPT, LOCALHOST, free_udp_port, peer_binary};

/// One Access-Request to the directory's auth port.
fn access(upstream: &FreeRadius, attrs: &[(&str, &str)]) -> support::Result<RadclientOutcome> {
    radclient(upstream.auth(), upstream.secret(), Kind::Auth, attrs)
}

/// One Accounting-Request to the directory's acct port.
fn accounting(upstream: &FreeRadius, attrs: &[(&str, &str)]) -> support::Result<RadclientOutcome> {
    radclient(upstream.acct(), upstream.secret(), Kind::Acct, attrs)
}

#[test]
fn alice_gets_accept_with_her_reply_attributes() -> Result<()> {
    let upstream = FreeRadius::start_default()?;

    let reply = access(&upstream, &ALICE.pap())?;

    assert_eq!(reply.code, Reply::Accept, "{}", reply.output);
    assert_eq!(reply.octets("Class"), Some(ALICE_CLASS.as_bytes().to_vec()));
    let session_timeout = ALICE_SESSION_TIMEOUT.to_string();
    assert_eq!(
        reply.value("Session-Timeout"),
        Some(session_timeout.as_str())
    );
    let framed_ip = ALICE_FRAMED_IP.to_string();
    assert_eq!(reply.value("Framed-IP-Address"), Some(framed_ip.as_str()));
    assert_eq!(reply.value("Tunnel-Type:1"), Some(ALICE_TUNNEL_TYPE));
    assert_eq!(
        reply.value("Tunnel-Medium-Type:1"),
        Some(ALICE_TUNNEL_MEDIUM_TYPE)
    );
    // Salt-encrypted on the wire; radclient decrypts them with the secret and its request authenticator.
    assert_eq!(
        reply.value("Tunnel-Password:1"),
        Some(ALICE_TUNNEL_PASSWORD)
    );
    assert_eq!(
        reply.octets("MS-MPPE-Send-Key"),
        Some(ALICE_MPPE_SEND_KEY.to_vec())
    );
    assert_eq!(
        reply.octets("MS-MPPE-Recv-Key"),
        Some(ALICE_MPPE_RECV_KEY.to_vec())
    );
    Ok(())
}

#[test]
fn wrong_password_gets_reject() -> Result<()> {
    let upstream = FreeRadius::start_default()?;

    let reply = access(
        &upstream,
        &[
            ("User-Name", ALICE.name),
            ("User-Password", "not-her-password"),
        ],
    )?;

    assert_eq!(reply.code, Reply::Reject, "{}", reply.output);
    Ok(())
}

#[test]
fn chap_works_for_alice_and_bob() -> Result<()> {
    let upstream = FreeRadius::start_default()?;

    let alice = access(&upstream, &ALICE.chap())?;
    let bob = access(&upstream, &BOB.chap())?;
    let wrong = access(
        &upstream,
        &[("User-Name", BOB.name), ("CHAP-Password", ALICE.password)],
    )?;

    assert_eq!(alice.code, Reply::Accept, "{}", alice.output);
    assert!(
        alice.output.contains("CHAP-Password = 0x"),
        "radclient sent a CHAP response:\n{}",
        alice.output
    );
    assert_eq!(bob.code, Reply::Accept, "{}", bob.output);
    assert_eq!(bob.value("Reply-Message"), Some(BOB_REPLY_MESSAGE));
    assert_eq!(wrong.code, Reply::Reject, "{}", wrong.output);
    Ok(())
}

#[test]
fn ms_chap_v1_from_radclient_works() -> Result<()> {
    let upstream = FreeRadius::start_default()?;

    // radclient turns MS-CHAP-Password into an MS-CHAP (v1) challenge and response.
    let right = access(
        &upstream,
        &[("User-Name", BOB.name), ("MS-CHAP-Password", BOB.password)],
    )?;
    let wrong = access(
        &upstream,
        &[("User-Name", BOB.name), ("MS-CHAP-Password", "wrong")],
    )?;

    assert_eq!(right.code, Reply::Accept, "{}", right.output);
    assert!(right.has("MS-CHAP-MPPE-Keys"), "{}", right.output);
    assert_eq!(wrong.code, Reply::Reject, "{}", wrong.output);
    Ok(())
}

#[test]
fn status_server_gets_accept_and_is_not_counted() -> Result<()> {
    let upstream = FreeRadius::start_default()?;

    let reply = radclient(upstream.auth(), upstream.secret(), Kind::Status, &[])?;

    assert_eq!(reply.code, Reply::Accept, "{}", reply.output);
    assert_eq!(upstream.access_requests()?, 0);
    Ok(())
}

#[test]
fn accounting_gets_a_response_and_is_counted() -> Result<()> {
    let upstream = FreeRadius::start_default()?;

    let reply = accounting(
        &upstream,
        &[
            ("User-Name", BOB.name),
            ("Acct-Status-Type", "Start"),
            ("Acct-Session-Id", "session 1"),
        ],
    )?;

    assert_eq!(reply.code, Reply::AccountingResponse, "{}", reply.output);
    assert_eq!(upstream.accounting_requests()?, 1);
    assert_eq!(upstream.access_requests()?, 0);
    Ok(())
}

#[test]
fn carol_is_challenged_by_the_directory_and_accepted_with_the_code() -> Result<()> {
    let upstream = FreeRadius::start_default()?;

    let challenge = access(&upstream, &CAROL.pap())?;
    assert_eq!(challenge.code, Reply::Challenge, "{}", challenge.output);
    assert_eq!(
        challenge.value("Reply-Message"),
        Some(CAROL_CHALLENGE_MESSAGE)
    );
    let state = challenge
        .state()
        .expect("an Access-Challenge carries State");
    let accept = access(
        &upstream,
        &[
            ("User-Name", CAROL.name),
            ("User-Password", CAROL_CODE),
            ("State", state),
        ],
    )?;

    assert_eq!(accept.code, Reply::Accept, "{}", accept.output);
    assert_eq!(accept.value("Reply-Message"), Some(CAROL_WELCOME_MESSAGE));
    Ok(())
}

#[test]
fn carol_is_rejected_with_a_wrong_code_or_without_the_state() -> Result<()> {
    let upstream = FreeRadius::start_default()?;
    let challenge = access(&upstream, &CAROL.pap())?;
    let state = challenge
        .state()
        .expect("an Access-Challenge carries State");

    let wrong_code = access(
        &upstream,
        &[
            ("User-Name", CAROL.name),
            ("User-Password", "0000"),
            ("State", state),
        ],
    )?;
    let no_state = access(
        &upstream,
        &[("User-Name", CAROL.name), ("User-Password", CAROL_CODE)],
    )?;
    // The wrong code used the State up.
    let reused = access(
        &upstream,
        &[
            ("User-Name", CAROL.name),
            ("User-Password", CAROL_CODE),
            ("State", state),
        ],
    )?;

    assert_eq!(wrong_code.code, Reply::Reject, "{}", wrong_code.output);
    assert_eq!(no_state.code, Reply::Reject, "{}", no_state.output);
    assert_eq!(reused.code, Reply::Reject, "{}", reused.output);
    Ok(())
}

#[test]
fn the_request_counter_counts_each_access_request_per_user() -> Result<()> {
    let upstream = FreeRadius::start_default()?;

    for user in [ALICE, BOB, BOB] {
        access(&upstream, &user.pap())?;
    }

    assert_eq!(upstream.access_requests()?, 3);
    assert_eq!(upstream.access_requests_for(BOB.name)?, 2);
    assert_eq!(upstream.access_requests_for(CAROL.name)?, 0);
    Ok(())
}

#[test]
fn stop_and_start_again_on_the_same_ports() -> Result<()> {
    let mut upstream = FreeRadius::start_default()?;
    let (auth, first_pid) = (upstream.auth(), upstream.pid());
    // Short only where no reply is expected: on a loaded machine a real answer may take longer.
    let quick = Radclient::new(auth, upstream.secret()).timeout(Duration::from_millis(500));

    upstream.stop()?;
    let while_stopped = quick.send(Kind::Auth, &BOB.pap())?;
    upstream.start()?;
    let after_restart = access(&upstream, &BOB.pap())?;

    assert_eq!(
        while_stopped.code,
        Reply::NoReply,
        "{}",
        while_stopped.output
    );
    assert_eq!(
        after_restart.code,
        Reply::Accept,
        "{}",
        after_restart.output
    );
    assert_eq!(upstream.auth(), auth);
    assert!(upstream.is_running()?);
    assert_ne!(upstream.pid(), first_pid, "a new process");
    Ok(())
}

#[test]
fn starting_again_reports_a_port_taken_meanwhile() -> Result<()> {
    let mut upstream = FreeRadius::start_default()?;
    upstream.stop()?;
    let squatter = UdpSocket::bind(upstream.auth())?;

    let error = upstream.start().expect_err("the auth port is taken");

    assert!(matches!(error, Error::PortInUse { .. }), "{error}");
    drop(squatter);
    upstream.start()?;
    assert!(upstream.is_running()?);
    Ok(())
}

#[test]
fn peap_mschapv2_succeeds_with_matching_mppe_keys() -> Result<()> {
    let upstream = FreeRadius::start_default()?;

    let eap = eapol_test(
        upstream.auth(),
        upstream.secret(),
        EAP_USER.name,
        EAP_USER.password,
        EapMethod::PeapMschapV2,
    )?;

    assert!(eap.success, "{}", eap.output);
    assert!(eap.mppe_keys_ok, "{}", eap.output);
    assert!(eap.status.success(), "{}", eap.output);
    Ok(())
}

#[test]
fn peap_with_a_wrong_password_fails() -> Result<()> {
    let upstream = FreeRadius::start_default()?;

    let eap = eapol_test(
        upstream.auth(),
        upstream.secret(),
        EAP_USER.name,
        "wrong",
        EapMethod::PeapMschapV2,
    )?;

    assert!(!eap.success, "{}", eap.output);
    assert_eq!(eap.status.code(), Some(252), "{}", eap.output);
    Ok(())
}

#[test]
fn ttls_pap_eap_mschapv2_and_md5_succeed() -> Result<()> {
    let upstream = FreeRadius::start_default()?;
    let eap = |method| {
        EapolTest::new(upstream.auth(), upstream.secret())
            .method(method)
            .run(BOB.name, BOB.password)
    };

    // EAP-MSCHAPv2 drives FreeRADIUS's mschap module with MS-CHAPv2, which radclient cannot send.
    for method in [EapMethod::TtlsPap, EapMethod::EapMschapV2] {
        let outcome = eap(method)?;
        assert!(
            outcome.success && outcome.mppe_keys_ok,
            "{method:?}:\n{}",
            outcome.output
        );
    }
    let md5 = eap(EapMethod::Md5)?;
    assert!(md5.success && !md5.mppe_keys_ok, "{}", md5.output);
    Ok(())
}

#[test]
fn required_message_authenticator_drops_requests_without_it() -> Result<()> {
    let upstream = FreeRadius::builder()
        .require_message_authenticator(true)
        .start()?;
    let client_without_ma = Radclient::new(upstream.auth(), upstream.secret())
        .without_message_authenticator()
        .timeout(Duration::from_secs(1));

    let without = client_without_ma.send(Kind::Auth, &BOB.pap())?;
    let with = access(&upstream, &BOB.pap())?;

    assert_eq!(
        without.code,
        Reply::NoReply,
        "dropped silently, not rejected:\n{}",
        without.output
    );
    assert_eq!(with.code, Reply::Accept, "{}", with.output);
    assert_eq!(
        upstream.access_requests()?,
        1,
        "the dropped request never reached authorize"
    );
    Ok(())
}

#[test]
fn a_wrong_secret_is_dropped_or_answered_unverifiably() -> Result<()> {
    let upstream = FreeRadius::start_default()?;
    let client = Radclient::new(upstream.auth(), "not-the-secret").timeout(Duration::from_secs(1));

    let with_ma = client.send(Kind::Auth, &BOB.pap())?;
    let without_ma = client
        .clone()
        .without_message_authenticator()
        .send(Kind::Auth, &BOB.pap())?;

    // FreeRADIUS drops a request whose Message-Authenticator fails, silently.
    assert_eq!(with_ma.code, Reply::NoReply, "{}", with_ma.output);
    // Without one it rejects the garbled password, signed with its own secret, which radclient refuses.
    assert_eq!(
        without_ma.code,
        Reply::InvalidReply,
        "{}",
        without_ma.output
    );
    Ok(())
}

/// Accept, Reject, Challenge and the Status-Server answer, each with whether it carried Message-Authenticator.
fn message_authenticator_per_reply(upstream: &FreeRadius) -> Result<Vec<(Reply, bool)>> {
    let replies = [
        access(upstream, &BOB.pap())?,
        access(
            upstream,
            &[("User-Name", BOB.name), ("User-Password", "wrong")],
        )?,
        access(upstream, &CAROL.pap())?,
        radclient(upstream.auth(), upstream.secret(), Kind::Status, &[])?,
    ];
    Ok(replies
        .iter()
        .map(|reply| (reply.code.clone(), reply.has("Message-Authenticator")))
        .collect())
}

#[test]
fn sign_replies_puts_message_authenticator_in_every_reply() -> Result<()> {
    let signed = FreeRadius::builder().sign_replies(true).start()?;
    let unsigned = FreeRadius::start_default()?;
    let codes = [
        Reply::Accept,
        Reply::Reject,
        Reply::Challenge,
        Reply::Accept,
    ];

    let with: Vec<_> = codes.iter().map(|code| (code.clone(), true)).collect();
    let without: Vec<_> = codes.iter().map(|code| (code.clone(), false)).collect();

    assert_eq!(message_authenticator_per_reply(&signed)?, with);
    // 3.2.1 on its own signs none of these (it predates BlastRADIUS).
    assert_eq!(message_authenticator_per_reply(&unsigned)?, without);
    Ok(())
}

#[test]
fn numbered_users_are_accepted_with_their_own_class() -> Result<()> {
    let upstream = FreeRadius::builder().users(3).start()?;
    let (last, beyond) = (numbered_user(2), numbered_user(3));

    let accept = access(&upstream, &last.pap())?;
    let reject = access(&upstream, &beyond.pap())?;

    assert_eq!(accept.code, Reply::Accept, "{}", accept.output);
    assert_eq!(accept.octets("Class"), Some(last.class.into_bytes()));
    assert_eq!(reject.code, Reply::Reject, "{}", reject.output);
    Ok(())
}

#[test]
fn the_ipv6_listeners_answer_radclient_and_eapol_test() -> Result<()> {
    let upstream = FreeRadius::builder().ipv6(true).start()?;
    let auth = upstream.auth_v6().expect("built with ipv6");
    let acct = upstream.acct_v6().expect("built with ipv6");
    assert!(auth.is_ipv6() && acct.is_ipv6(), "{auth} {acct}");

    let access = radclient(auth, upstream.secret(), Kind::Auth, &BOB.pap())?;
    let accounting = radclient(
        acct,
        upstream.secret(),
        Kind::Acct,
        &[("User-Name", BOB.name)],
    )?;
    let eap = eapol_test(
        auth,
        upstream.secret(),
        EAP_USER.name,
        EAP_USER.password,
        EapMethod::PeapMschapV2,
    )?;

    assert_eq!(access.code, Reply::Accept, "{}", access.output);
    assert_eq!(
        accounting.code,
        Reply::AccountingResponse,
        "{}",
        accounting.output
    );
    assert!(eap.success && eap.mppe_keys_ok, "{}", eap.output);
    Ok(())
}

#[test]
fn a_missing_peer_names_the_install_script() {
    let error = peer_binary("portvakt-no-such-peer").expect_err("no such binary");

    assert!(matches!(error, Error::MissingPeer(_)));
    assert!(error.to_string().contains(INSTALL_SCRIPT), "{error}");
}

#[test]
fn radclient_to_a_closed_port_reports_no_reply() -> Result<()> {
    let closed = SocketAddr::new(LOCALHOST, free_udp_port(LOCALHOST)?);
    let client = Radclient::new(closed, DEFAULT_SECRET).timeout(Duration::from_millis(300));

    let reply = client.send(Kind::Auth, &BOB.pap())?;

    assert_eq!(reply.code, Reply::NoReply, "{}", reply.output);
    Ok(())
}
