//! Push approval through the whole daemon: hold mode for EAP (eapol_test, PEAP/MSCHAPv2) and PAP, push in
//! challenge mode. The directory is a real FreeRADIUS; pushes go to a test ntfy receiver over real HTTP; the
//! test plays the phone: it reads the notification, takes the action's URL and POSTs it to the approval API.
//!
//! eapol_test's Calling-Station-Id is a MAC address, so the origin is unknown → off-site: a second factor is due.

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use portvakt::factor::push::Topic;
use portvakt::login::RadiusClient;
use portvakt::radius::{Attribute, Code, Packet, attr};
use portvakt::secret::Secret;
use serde_json::Value;

use crate::pass_through::directory;
use crate::support::eapol::{EapMethod, EapolOutcome, EapolTest};
use crate::support::freeradius::*;
use crate::support::ntfy::{PUBLIC_URL, Receiver, action};
use crate::support::proxy::{NAS_SECRET, Proxy, ProxyBuilder};

/// How long a test waits for a push to arrive.
const PUSH_ARRIVES: Duration = Duration::from_secs(10);

/// portvakt with a store, ntfy at `ntfy`, the approval API on a kernel-chosen port, and the test NAS in
/// `mode` with `client_lines` (e.g. `hold_timeout`).
fn builder(
    upstream: &FreeRadius,
    ntfy: &Receiver,
    client_lines: &str,
    extra: &str,
) -> ProxyBuilder {
    Proxy::builder()
        .upstream(upstream)
        .with_store()
        .client(client_lines)
        .toml(&format!(
            "[mfa]\nlanguage = \"en\"\n\n[push]\nprovider = \"ntfy\"\nurl = \"{}\"\nlanguage = \"en\"\ntimeout = \"2s\"\n{extra}\n\n\
             [approval]\nlisten = \"127.0.0.1:0\"\npublic_url = \"{PUBLIC_URL}\"\nttl = \"60s\"\n",
            ntfy.url()
        ))
}

/// Adds `user` to the store with one ntfy device and push as the default method.
fn enrol_push(proxy: &Proxy, user: &str) -> Result<Topic> {
    let store = proxy.store();
    store.add_user(user)?;
    let topic = Topic::generate();
    store.add_push_device(user, &topic, "phone")?;
    Ok(topic)
}

/// Runs eapol_test in a thread (it blocks until its conversation ends).
fn eapol_in_background(
    proxy: &Proxy,
    seconds: u64,
) -> thread::JoinHandle<crate::support::Result<EapolOutcome>> {
    let test = EapolTest::new(proxy.auth(), NAS_SECRET)
        .method(EapMethod::PeapMschapV2)
        .timeout(Duration::from_secs(seconds));
    thread::spawn(move || test.run(EAP_USER.name, EAP_USER.password))
}

/// The phone taps `label` on the notification.
fn tap(ntfy: &Receiver, proxy: &Proxy, message: &Value, label: &str) -> Result<(u16, String)> {
    let a = action(message, label).with_context(|| format!("no {label:?} in {message}"))?;
    let (status, body) = ntfy.tap(a, proxy.approval())?;
    Ok((
        status,
        body["result"].as_str().unwrap_or_default().to_owned(),
    ))
}

fn join(handle: thread::JoinHandle<crate::support::Result<EapolOutcome>>) -> Result<EapolOutcome> {
    match handle.join() {
        Ok(r) => Ok(r?),
        Err(_) => bail!("eapol_test thread panicked"),
    }
}

#[test]
fn hold_mode_peap_is_accepted_with_mppe_keys_once_the_phone_approves() -> Result<()> {
    let upstream = directory()?;
    let ntfy = Receiver::ntfy()?;
    let proxy = builder(
        &upstream,
        &ntfy,
        "second_factor = \"hold\"\nhold_timeout = \"8s\"",
        "",
    )
    .start()?;
    let topic = enrol_push(&proxy, EAP_USER.name)?;

    let eap = eapol_in_background(&proxy, 20);
    let message = ntfy.next(PUSH_ARRIVES).context("no push arrived")?;
    assert_eq!(message["topic"], topic.as_str());
    let text = message["message"].as_str().unwrap_or_default();
    assert!(text.contains("test-nas"), "names the gateway: {text}");
    // No prompt in EAP, so no number to match: plain Approve / Deny / Not me.
    assert_eq!(
        tap(&ntfy, &proxy, &message, "Approve")?,
        (200, "approved".into())
    );

    let outcome = join(eap)?;
    assert!(outcome.success, "{}", outcome.output);
    assert!(
        outcome.mppe_keys_ok,
        "MPPE keys released intact:\n{}",
        outcome.output
    );
    assert_eq!(ntfy.seen().len(), 1, "exactly one push");
    Ok(())
}

#[test]
fn hold_mode_peap_fails_when_the_phone_denies() -> Result<()> {
    let upstream = directory()?;
    let ntfy = Receiver::ntfy()?;
    let proxy = builder(
        &upstream,
        &ntfy,
        "second_factor = \"hold\"\nhold_timeout = \"8s\"",
        "",
    )
    .start()?;
    enrol_push(&proxy, EAP_USER.name)?;

    let eap = eapol_in_background(&proxy, 20);
    let message = ntfy.next(PUSH_ARRIVES).context("no push arrived")?;
    assert_eq!(
        tap(&ntfy, &proxy, &message, "Deny")?,
        (200, "denied".into())
    );
    let outcome = join(eap)?;
    assert!(!outcome.success, "{}", outcome.output);
    let user = proxy.store().user(EAP_USER.name)?.context("user")?;
    assert_eq!(user.failures, 1, "a deny counts as a second-factor failure");
    Ok(())
}

#[test]
fn hold_mode_times_out_with_one_push_despite_retransmissions() -> Result<()> {
    let upstream = directory()?;
    let ntfy = Receiver::ntfy()?;
    // Held 6 s: eapol_test retransmits the held request (its first retry comes after 3 s).
    let proxy = builder(
        &upstream,
        &ntfy,
        "second_factor = \"hold\"\nhold_timeout = \"6s\"",
        "",
    )
    .start()?;
    enrol_push(&proxy, EAP_USER.name)?;

    let outcome = join(eapol_in_background(&proxy, 12))?;
    assert!(!outcome.success, "{}", outcome.output);
    ensure!(ntfy.next(Duration::ZERO).is_some(), "the push was sent");
    let copies = proxy.context().stats.dropped("duplicate_in_progress");
    assert!(copies >= 1, "eapol_test retransmitted the held request");
    assert_eq!(ntfy.seen().len(), 1, "retransmissions never push again");
    Ok(())
}

/// Two copies of one PAP login with different Identifiers (a NAS that gave up and retried): the retry joins the
/// pending push (or, if it comes after the approval, is let through by the remembered approval); either way one
/// push, and both get the directory's Accept.
#[test]
fn hold_mode_retry_with_a_new_identifier_sends_no_second_push() -> Result<()> {
    let upstream = directory()?;
    let ntfy = Receiver::ntfy()?;
    let proxy = builder(
        &upstream,
        &ntfy,
        "second_factor = \"hold\"\nhold_timeout = \"10s\"",
        "",
    )
    .start()?;
    enrol_push(&proxy, ALICE.name)?;
    let auth = proxy.auth();
    let first = thread::spawn(move || pap_now(auth, ALICE, "198.51.100.7"));
    let message = ntfy.next(PUSH_ARRIVES).context("no push arrived")?;
    let second = thread::spawn(move || pap_now(auth, ALICE, "198.51.100.7"));
    assert_eq!(
        tap(&ntfy, &proxy, &message, "Approve")?,
        (200, "approved".into())
    );
    for h in [first, second] {
        let reply = h
            .join()
            .map_err(|_| anyhow::anyhow!("login thread panicked"))??;
        assert_eq!(reply.code, Code::AccessAccept);
    }
    assert_eq!(ntfy.seen().len(), 1, "one push for both copies");
    Ok(())
}

#[test]
fn hold_mode_with_the_provider_down_fails_closed_or_open_where_configured() -> Result<()> {
    let upstream = directory()?;
    for (mode, expect) in [("closed", Code::AccessReject), ("open", Code::AccessAccept)] {
        let ntfy = Receiver::ntfy()?;
        ntfy.answer_with(503);
        let proxy = builder(
            &upstream,
            &ntfy,
            "second_factor = \"hold\"\nhold_timeout = \"5s\"",
            &format!("fail_mode = \"{mode}\""),
        )
        .start()?;
        enrol_push(&proxy, ALICE.name)?;
        let reply = pap_now(proxy.auth(), ALICE, "198.51.100.7")?;
        assert_eq!(reply.code, expect, "fail_mode = {mode}");
    }
    Ok(())
}

#[test]
fn hold_mode_push_cap_rejects_without_a_push() -> Result<()> {
    let upstream = directory()?;
    let ntfy = Receiver::ntfy()?;
    let proxy = builder(
        &upstream,
        &ntfy,
        "second_factor = \"hold\"\nhold_timeout = \"2s\"",
        "",
    )
    .toml("max_pushes = 2")
    .start()?;
    enrol_push(&proxy, ALICE.name)?;
    // Each login from another station is a new login: a new push, until the cap.
    for station in ["198.51.100.1", "198.51.100.2"] {
        let reply = pap_now(proxy.auth(), ALICE, station)?;
        assert_eq!(reply.code, Code::AccessReject, "not approved in time");
    }
    let reply = pap_now(proxy.auth(), ALICE, "198.51.100.3")?;
    assert_eq!(reply.code, Code::AccessReject);
    assert_eq!(ntfy.seen().len(), 2, "no push beyond the cap");
    Ok(())
}

// ------------------------------------------------------------------ helpers

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// One PAP login from `station`, waiting up to 15 s for the (held) answer, without retransmissions.
async fn pap(addr: SocketAddr, user: User, station: &'static str) -> Result<Packet> {
    let mut c = RadiusClient::new(addr, Secret::new(NAS_SECRET)).await?;
    c.timeout = Duration::from_secs(15);
    c.retries = 0;
    let attributes = [
        Attribute {
            typ: attr::USER_NAME,
            value: user.name.as_bytes().to_vec(),
        },
        Attribute {
            typ: attr::CALLING_STATION_ID,
            value: station.as_bytes().to_vec(),
        },
    ];
    Ok(c.access(&attributes, Some(user.password.as_bytes()))
        .await?)
}

fn pap_now(addr: SocketAddr, user: User, station: &'static str) -> Result<Packet> {
    runtime()?.block_on(pap(addr, user, station))
}
