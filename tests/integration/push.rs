//! Push approval through the whole daemon: hold mode for EAP (eapol_test, PEAP/MSCHAPv2) and PAP, push in
//! challenge mode. The directory is a real FreeRADIUS; pushes go to a test ntfy receiver over real HTTP; the
//! test plays the phone: it reads the notification, takes the action's URL and POSTs it to the approval API.
//!
//! eapol_test's Calling-Station-Id is a MAC address, so the origin is unknown → off-site: a second factor is due.

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use portvakt::factor::Method;
use portvakt::factor::phone::Phone;
use portvakt::factor::push::Topic;
use portvakt::factor::totp::{Algorithm, TotpSecret};
use portvakt::login::RadiusClient;
use portvakt::radius::{Attribute, Code, Keying, Packet, attr, crypt};
use portvakt::secret::Secret;
use serde_json::Value;

use crate::mschap;
use crate::pass_through::directory;
use crate::support::eapol::{EapMethod, EapolOutcome, EapolTest};
use crate::support::freeradius::*;
use crate::support::mschap::Mschapv2;
use crate::support::ntfy::{PUBLIC_URL, Receiver, action};
use crate::support::proxy::{NAS_SECRET, Proxy, ProxyBuilder};
use crate::totp::{ALICE_SECRET, oathtool};

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

/// The NAS gives up on a held login and retries it with a new Identifier while the push is pending: the retry
/// joins (one push; both time out). The user approves late: the NAS's next retry is let through without a push,
/// once — the one after that needs a new push.
#[test]
fn hold_mode_retries_join_and_a_late_approval_serves_one_retry() -> Result<()> {
    let upstream = directory()?;
    let ntfy = Receiver::ntfy()?;
    let proxy = builder(
        &upstream,
        &ntfy,
        "second_factor = \"hold\"\nhold_timeout = \"3s\"",
        "",
    )
    .start()?;
    enrol_push(&proxy, ALICE.name)?;
    let auth = proxy.auth();
    let first = thread::spawn(move || pap_now(auth, ALICE, "198.51.100.7"));
    let message = ntfy.next(PUSH_ARRIVES).context("no push arrived")?;
    let retry = thread::spawn(move || pap_now(auth, ALICE, "198.51.100.7"));
    for h in [first, retry] {
        let reply = h
            .join()
            .map_err(|_| anyhow::anyhow!("login thread panicked"))??;
        assert_eq!(
            reply.code,
            Code::AccessReject,
            "not approved within hold_timeout"
        );
    }
    assert_eq!(ntfy.seen().len(), 1, "the retry joined the pending push");

    assert_eq!(
        tap(&ntfy, &proxy, &message, "Approve")?,
        (200, "approved".into())
    );
    let late = pap_now(auth, ALICE, "198.51.100.7")?;
    assert_eq!(
        late.code,
        Code::AccessAccept,
        "the remembered approval serves the retry"
    );
    assert_eq!(ntfy.seen().len(), 1, "without a new push");

    let again = pap_now(auth, ALICE, "198.51.100.7")?;
    assert_eq!(again.code, Code::AccessReject, "the approval is used up");
    assert_eq!(ntfy.seen().len(), 2, "a new login, a new push");
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
fn a_site_fail_mode_open_overrides_the_global_closed_one_for_that_site_only() -> Result<()> {
    let upstream = directory()?;
    let ntfy = Receiver::ntfy()?;
    ntfy.answer_with(503);
    let proxy = builder(
        &upstream,
        &ntfy,
        "second_factor = \"hold\"\nhold_timeout = \"5s\"",
        "fail_mode = \"closed\"",
    )
    .toml(
        "[[sites]]\nname = \"radhus\"\nnetworks = [\"10.10.0.0/16\"]\npolicy = \"mfa\"\n\
         fail_mode = { push = \"open\" }\n",
    )
    .start()?;
    enrol_push(&proxy, ALICE.name)?;
    // Alice has a phone and nothing else, so push is due from both places (the site's
    // policy is `mfa`); only the provider being down decides.
    let off_site = pap_now(proxy.auth(), ALICE, "198.51.100.7")?;
    assert_eq!(
        off_site.code,
        Code::AccessReject,
        "off-site: the global closed"
    );
    let inside = pap_now(proxy.auth(), ALICE, "10.10.20.5")?;
    assert_eq!(
        inside.code,
        Code::AccessAccept,
        "inside radhus: the site's open"
    );
    let off_site = pap_now(proxy.auth(), ALICE, "198.51.100.8")?;
    assert_eq!(off_site.code, Code::AccessReject, "still closed off-site");
    assert!(ntfy.seen().is_empty(), "no push got through");
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

// ------------------------------------------------------------------ challenge mode

/// alice, whose gateway shows prompts: push (number matching), with a TOTP app and a verified phone as fallbacks.
fn challenge_proxy(
    upstream: &FreeRadius,
    ntfy: &Receiver,
    sms: &Receiver,
    extra: &str,
) -> Result<Proxy> {
    let proxy = builder(upstream, ntfy, "", extra)
        .toml(&format!(
            "[sms]\nurl = \"{}\"\nbody_format = \"json\"\nbody = '{{\"to\": \"{{to}}\", \"text\": \"{{message}}\"}}'\n\
             timeout = \"2s\"\n\n[sms.codes]\nmessage = \"code {{code}}\"\n\n[sms.limits]\ncooldown = \"0s\"\n",
            sms.url()
        ))
        .start()?;
    enrol_push(&proxy, ALICE.name)?;
    let store = proxy.store();
    store.set_totp(
        ALICE.name,
        &TotpSecret::from_base32(ALICE_SECRET, 6, 30, Algorithm::Sha1)?,
        true,
    )?;
    store.set_verified_phone(ALICE.name, &Phone::parse("+4790000123")?)?;
    Ok(proxy)
}

/// A NAS conversation: the login, then answers carrying the last State.
struct Nas {
    rt: tokio::runtime::Runtime,
    client: RadiusClient,
    state: Option<Vec<u8>>,
    /// The Calling-Station-Id sent: off-site unless [`Nas::at_station`] says otherwise.
    station: &'static str,
}

impl Nas {
    fn new(proxy: &Proxy) -> Result<Self> {
        let rt = runtime()?;
        let mut client = rt.block_on(RadiusClient::new(proxy.auth(), Secret::new(NAS_SECRET)))?;
        client.timeout = Duration::from_secs(10);
        client.retries = 0;
        Ok(Self {
            rt,
            client,
            state: None,
            station: "198.51.100.7",
        })
    }

    /// The same conversation, from `station` instead.
    fn at_station(self, station: &'static str) -> Self {
        Self { station, ..self }
    }

    /// Sends `password` for alice from its station (with the State of the last challenge, if any).
    fn send(&mut self, password: &str) -> Result<Packet> {
        let mut attributes = vec![
            Attribute {
                typ: attr::USER_NAME,
                value: ALICE.name.as_bytes().to_vec(),
            },
            Attribute {
                typ: attr::CALLING_STATION_ID,
                value: self.station.as_bytes().to_vec(),
            },
        ];
        if let Some(state) = self.state.take() {
            attributes.push(Attribute {
                typ: attr::STATE,
                value: state,
            });
        }
        let reply = self
            .rt
            .block_on(self.client.access(&attributes, Some(password.as_bytes())))?;
        self.state = reply.state().map(<[u8]>::to_vec);
        Ok(reply)
    }
}

fn prompt(reply: &Packet) -> String {
    portvakt::login::reply_message(reply)
}

/// The number in "Tap NN in the notification …".
fn number_in(prompt: &str) -> Result<String> {
    prompt
        .split_whitespace()
        .find(|w| w.len() == 2 && w.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_owned)
        .with_context(|| format!("no number in {prompt:?}"))
}

#[test]
fn challenge_mode_push_with_number_matching_then_enter() -> Result<()> {
    let upstream = directory()?;
    let (ntfy, sms) = (Receiver::ntfy()?, Receiver::sms_gateway()?);
    let proxy = challenge_proxy(&upstream, &ntfy, &sms, "")?;
    let mut nas = Nas::new(&proxy)?;
    let first = nas.send(ALICE.password)?;
    assert_eq!(first.code, Code::AccessChallenge);
    let number = number_in(&prompt(&first))?;
    let message = ntfy.next(PUSH_ARRIVES).context("no push")?;
    assert_eq!(
        tap(&ntfy, &proxy, &message, &number)?,
        (200, "approved".into())
    );
    let second = nas.send("")?;
    assert_eq!(second.code, Code::AccessAccept, "{}", prompt(&second));
    assert_eq!(
        second.attr(attr::CLASS).map(<[u8]>::to_vec),
        Some(ALICE_CLASS.as_bytes().to_vec()),
        "the directory's Accept, released"
    );
    Ok(())
}

#[test]
fn challenge_mode_enter_before_approval_asks_again_and_a_wrong_number_rejects() -> Result<()> {
    let upstream = directory()?;
    let (ntfy, sms) = (Receiver::ntfy()?, Receiver::sms_gateway()?);
    let proxy = challenge_proxy(&upstream, &ntfy, &sms, "")?;
    let mut nas = Nas::new(&proxy)?;
    let first = nas.send(ALICE.password)?;
    let number = number_in(&prompt(&first))?;
    let message = ntfy.next(PUSH_ARRIVES).context("no push")?;
    // Enter with nothing approved: after a short wait, the same prompt again.
    let again = nas.send("")?;
    assert_eq!(again.code, Code::AccessChallenge);
    assert_eq!(number_in(&prompt(&again))?, number, "the same number");
    let wrong = message["actions"]
        .as_array()
        .context("actions")?
        .iter()
        .filter_map(|a| a["label"].as_str())
        .find(|l| *l != number)
        .context("another number")?
        .to_owned();
    assert_eq!(tap(&ntfy, &proxy, &message, &wrong)?.0, 200);
    let after = nas.send("")?;
    assert_eq!(after.code, Code::AccessReject);
    // The phone's wrong answer is recorded off the request path (a blocking task after the
    // HTTP reply), so wait for it, bounded, instead of racing it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let user = proxy.store().user(ALICE.name)?.context("alice")?;
        if user.failures == 1 {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "a wrong number counts as a failure: {}",
            user.failures
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

#[test]
fn challenge_mode_push_accepts_a_typed_totp_code() -> Result<()> {
    let upstream = directory()?;
    let (ntfy, sms) = (Receiver::ntfy()?, Receiver::sms_gateway()?);
    let proxy = challenge_proxy(&upstream, &ntfy, &sms, "")?;
    let mut nas = Nas::new(&proxy)?;
    assert_eq!(nas.send(ALICE.password)?.code, Code::AccessChallenge);
    let reply = nas.send(&oathtool(ALICE_SECRET, 0)?)?;
    assert_eq!(reply.code, Code::AccessAccept, "{}", prompt(&reply));
    Ok(())
}

#[test]
fn challenge_mode_sms_on_request_and_a_used_code_is_refused() -> Result<()> {
    let upstream = directory()?;
    let (ntfy, sms) = (Receiver::ntfy()?, Receiver::sms_gateway()?);
    let proxy = challenge_proxy(&upstream, &ntfy, &sms, "")?;
    let mut nas = Nas::new(&proxy)?;
    assert_eq!(nas.send(ALICE.password)?.code, Code::AccessChallenge);
    let sent = nas.send("sms")?;
    assert_eq!(sent.code, Code::AccessChallenge);
    let text = prompt(&sent);
    assert!(
        text.contains("123") && !text.contains("90000123"),
        "masked number: {text}"
    );
    let message = sms.next(PUSH_ARRIVES).context("no SMS")?;
    assert_eq!(message["to"], "+4790000123");
    let code = message["text"]
        .as_str()
        .and_then(|t| t.strip_prefix("code "))
        .context("code")?
        .to_owned();
    assert_eq!(nas.send(&code)?.code, Code::AccessAccept);

    // The next login: a new code is sent; the used one does not work.
    assert_eq!(nas.send(ALICE.password)?.code, Code::AccessChallenge);
    assert_eq!(nas.send("sms")?.code, Code::AccessChallenge);
    sms.next(PUSH_ARRIVES).context("no second SMS")?;
    let reused = nas.send(&code)?;
    assert_ne!(
        reused.code,
        Code::AccessAccept,
        "a used code never works again"
    );
    Ok(())
}

#[test]
fn typing_sms_with_the_gateway_down_uses_the_fail_mode_of_the_login_site() -> Result<()> {
    let upstream = directory()?;
    let (ntfy, sms) = (Receiver::ntfy()?, Receiver::sms_gateway()?);
    sms.answer_with(503);
    // Global [sms] fail_mode is the default, closed; radhus chose open for SMS.
    let site = "\n[[sites]]\nname = \"radhus\"\nnetworks = [\"10.10.0.0/16\"]\npolicy = \"mfa\"\n\
                fail_mode = { sms = \"open\" }\n";
    let proxy = challenge_proxy(&upstream, &ntfy, &sms, site)?;
    for (station, expect) in [
        ("198.51.100.7", Code::AccessReject),
        ("10.10.20.5", Code::AccessAccept),
    ] {
        let mut nas = Nas::new(&proxy)?.at_station(station);
        let first = nas.send(ALICE.password)?;
        assert_eq!(
            first.code,
            Code::AccessChallenge,
            "push first, from {station}"
        );
        ntfy.next(PUSH_ARRIVES).context("no push")?;
        // The answer to the challenge carries no policy decision: the site comes with it.
        assert_eq!(nas.send("sms")?.code, expect, "from {station}");
    }
    assert!(sms.seen().is_empty(), "no SMS got through");
    Ok(())
}

#[test]
fn challenge_mode_push_down_falls_back_to_totp_and_fails_open_only_where_configured() -> Result<()>
{
    let upstream = directory()?;
    let (ntfy, sms) = (Receiver::ntfy()?, Receiver::sms_gateway()?);
    ntfy.answer_with(503);
    let proxy = challenge_proxy(&upstream, &ntfy, &sms, "")?;
    let mut nas = Nas::new(&proxy)?;
    let first = nas.send(ALICE.password)?;
    assert_eq!(first.code, Code::AccessChallenge);
    assert_eq!(
        prompt(&first),
        "Enter the code from your authenticator app.",
        "TOTP keeps working while push is down"
    );

    // Without a TOTP app or phone: fail closed, or open where configured.
    for (mode, expect) in [("closed", Code::AccessReject), ("open", Code::AccessAccept)] {
        let proxy = builder(&upstream, &ntfy, "", &format!("fail_mode = \"{mode}\"")).start()?;
        enrol_push(&proxy, ALICE.name)?;
        let mut nas = Nas::new(&proxy)?;
        assert_eq!(nas.send(ALICE.password)?.code, expect, "fail_mode = {mode}");
    }
    Ok(())
}

#[test]
fn hold_mode_native_mschapv2_keeps_its_success_and_mppe_keys() -> Result<()> {
    let upstream = directory()?;
    let ntfy = Receiver::ntfy()?;
    let proxy = builder(
        &upstream,
        &ntfy,
        "second_factor = \"hold\"\nhold_timeout = \"5s\"",
        "",
    )
    .start()?;
    enrol_push(&proxy, BOB.name)?;
    let auth = proxy.auth();
    let login = Mschapv2::new(BOB.name, BOB.password);
    let held = {
        let login = login.clone();
        thread::spawn(move || mschap::send(auth, &login, &[]))
    };
    let message = ntfy.next(PUSH_ARRIVES).context("no push arrived")?;
    // "Not me" from the notification: the login fails and the user is locked.
    assert_eq!(
        tap(&ntfy, &proxy, &message, "Not me")?,
        (200, "denied".into())
    );
    let denied = held
        .join()
        .map_err(|_| anyhow::anyhow!("login thread panicked"))??;
    assert_eq!(denied.reply.code, Code::AccessReject);
    let bob = proxy.store().user(BOB.name)?.context("bob")?;
    assert!(!bob.enabled, "\"not me\" disables the user");

    // A denied login is remembered for the approval's lifetime (its retries are refused without a push), so the
    // next login comes from another station.
    proxy.store().set_enabled(BOB.name, true)?;
    let held = {
        let login = login.clone();
        let station = Attribute {
            typ: attr::CALLING_STATION_ID,
            value: b"198.51.100.9".to_vec(),
        };
        thread::spawn(move || mschap::send(auth, &login, &[station]))
    };
    let message = ntfy.next(PUSH_ARRIVES).context("no second push")?;
    assert_eq!(
        tap(&ntfy, &proxy, &message, "Approve")?,
        (200, "approved".into())
    );
    let sent = held
        .join()
        .map_err(|_| anyhow::anyhow!("login thread panicked"))??;
    assert_eq!(sent.reply.code, Code::AccessAccept);
    let success = mschap::microsoft(&sent.reply, attr::MS_CHAP2_SUCCESS, "MS-CHAP2-Success")?;
    assert!(
        login.verify_success(success),
        "MS-CHAP2-Success proves bob's password"
    );
    let nas = Keying {
        secret: NAS_SECRET.as_bytes(),
        authenticator: &sent.authenticator,
    };
    let send_key = crypt::salt_decrypt(
        mschap::microsoft(&sent.reply, attr::MS_MPPE_SEND_KEY, "MS-MPPE-Send-Key")?,
        nas,
    )
    .context("MS-MPPE-Send-Key does not decrypt for the NAS")?;
    assert_eq!(
        send_key.as_slice(),
        login.expected_mppe_keys(BOB.password).0
    );
    Ok(())
}

#[test]
fn challenge_mode_sms_as_the_default_method_sends_the_code_at_once() -> Result<()> {
    let upstream = directory()?;
    let (ntfy, sms) = (Receiver::ntfy()?, Receiver::sms_gateway()?);
    let proxy = challenge_proxy(&upstream, &ntfy, &sms, "")?;
    proxy.store().set_default_method(ALICE.name, Method::Sms)?;
    let mut nas = Nas::new(&proxy)?;
    let first = nas.send(ALICE.password)?;
    assert_eq!(first.code, Code::AccessChallenge);
    assert!(
        prompt(&first).starts_with("A code was sent to"),
        "{}",
        prompt(&first)
    );
    let message = sms.next(PUSH_ARRIVES).context("no SMS")?;
    let code = message["text"]
        .as_str()
        .and_then(|t| t.strip_prefix("code "))
        .context("code")?;
    // A wrong code asks again; the right one then works.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(nas.send(wrong)?.code, Code::AccessChallenge);
    assert_eq!(nas.send(code)?.code, Code::AccessAccept);
    assert!(ntfy.seen().is_empty(), "no push for an SMS user");
    Ok(())
}

/// A webhook integration finds the user's phone itself: no device in the store, and the approve link comes in the
/// JSON it is posted.
#[test]
fn hold_mode_through_a_webhook_for_a_user_without_a_device() -> Result<()> {
    let upstream = directory()?;
    let hook = Receiver::sms_gateway()?;
    let proxy = Proxy::builder()
        .upstream(&upstream)
        .with_store()
        .client("second_factor = \"hold\"\nhold_timeout = \"8s\"")
        .toml(&format!(
            "[push]\nprovider = \"webhook\"\nurl = \"{}\"\n\n[approval]\nlisten = \"127.0.0.1:0\"\n\
             public_url = \"{PUBLIC_URL}\"\n",
            hook.url()
        ))
        .start()?;
    proxy.store().add_user(ALICE.name)?;
    let auth = proxy.auth();
    let held = thread::spawn(move || pap_now(auth, ALICE, "198.51.100.7"));
    let posted = hook.next(PUSH_ARRIVES).context("the webhook got nothing")?;
    assert_eq!(posted["user"], ALICE.name);
    assert_eq!(posted["gateway"], "test-nas");
    assert_eq!(posted["origin"], "198.51.100.7");
    assert_eq!(
        posted["number_matching"], false,
        "hold mode shows no number"
    );
    let approve = &posted["approve"][0];
    let (status, body) = hook.tap(approve, proxy.approval())?;
    assert_eq!((status, body["result"].as_str()), (200, Some("approved")));
    let reply = held
        .join()
        .map_err(|_| anyhow::anyhow!("login thread panicked"))??;
    assert_eq!(reply.code, Code::AccessAccept);
    Ok(())
}
