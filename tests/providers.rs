//! SMS and push providers and the approval API over real HTTP on loopback.
//!
//! The test receivers speak the ntfy publish API and the SMS gateway contract, and record
//! what they were sent; approvals are driven over HTTP the way a phone's ntfy app does:
//! it reads the actions out of the notification and POSTs the one the user taps.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use portvakt::approval::http::{OnResolved, router, serve};
use portvakt::approval::{
    ApprovalSettings, Approvals, Begin, DenyReason, LoginKey, RawApproval, Resolved, Started,
    Status,
};
use portvakt::factor::install_crypto_provider;
use portvakt::factor::phone::Phone;
use portvakt::factor::provider::ProviderError;
use portvakt::factor::push::{PushProvider, PushRequest, RawPush, Topic};
use portvakt::factor::sms::{RawSms, SmsGateway, SmsSettings};
use portvakt::store::{CodeCheck, CodePurpose, Store, StoreKey};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

// ------------------------------------------------------------------ test receivers

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    /// Path and query, as sent.
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }
}

#[derive(Clone)]
struct Behaviour {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Status to answer with.
    status: Arc<AtomicU16>,
    /// Never answer (a provider that hangs).
    hang: Arc<AtomicBool>,
    /// Speak ntfy: only `POST /` with a JSON `topic` is a message.
    ntfy: bool,
    /// Every request also goes here (for a waiting CLI).
    tap: Option<std::sync::mpsc::Sender<Seen>>,
}

/// A receiver on 127.0.0.1, port chosen by the kernel; stopped when dropped.
struct Receiver {
    addr: SocketAddr,
    behaviour: Behaviour,
    stop: CancellationToken,
}

impl Receiver {
    async fn start(ntfy: bool, tap: Option<std::sync::mpsc::Sender<Seen>>) -> Self {
        let behaviour = Behaviour {
            seen: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            hang: Arc::default(),
            ntfy,
            tap,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .fallback(receive)
            .with_state(behaviour.clone());
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, app, stop.clone()));
        Self {
            addr,
            behaviour,
            stop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.behaviour.seen.lock().unwrap().clone()
    }

    fn answer_with(&self, status: u16) {
        self.behaviour.status.store(status, Ordering::SeqCst);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn receive(State(b): State<Behaviour>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024).await.unwrap();
    let seen = Seen {
        method: parts.method.clone(),
        uri: parts.uri.to_string(),
        headers: parts.headers.clone(),
        body,
    };
    b.seen.lock().unwrap().push(seen.clone());
    if let Some(tap) = &b.tap {
        let _ = tap.send(seen.clone());
    }
    if b.hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    let status = StatusCode::from_u16(b.status.load(Ordering::SeqCst)).unwrap();
    if !b.ntfy || !status.is_success() {
        return status.into_response();
    }
    // The ntfy publish API: POST to the root with a JSON message that names its topic.
    let topic = serde_json::from_slice::<Value>(&seen.body)
        .ok()
        .and_then(|v| v["topic"].as_str().map(str::to_owned));
    match (seen.method == Method::POST && seen.uri == "/", topic) {
        (true, Some(topic)) => axum::Json(serde_json::json!({
            "id": "fake1", "time": 1, "event": "message", "topic": topic
        }))
        .into_response(),
        _ => StatusCode::BAD_REQUEST.into_response(),
    }
}

// ------------------------------------------------------------------ the approval API

/// The approval API on 127.0.0.1 with a registry; records what the hook was told.
struct Api {
    settings: ApprovalSettings,
    approvals: Arc<Approvals>,
    resolved: Arc<Mutex<Vec<Resolved>>>,
    stop: CancellationToken,
}

impl Api {
    async fn start(number_matching: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let settings = ApprovalSettings::from_raw(RawApproval {
            listen: addr.to_string(),
            public_url: format!("http://{addr}"),
            ttl: Duration::from_secs(60),
            number_matching,
            remember_approved: Duration::from_secs(30),
            max_pushes: 3,
            push_window: Duration::from_secs(600),
            push_lockout: Duration::from_secs(1800),
            max_pending: 200_000,
        })
        .unwrap();
        let approvals = Arc::new(Approvals::new(settings.policy.clone()));
        let resolved: Arc<Mutex<Vec<Resolved>>> = Arc::default();
        let hook: OnResolved = {
            let resolved = resolved.clone();
            Arc::new(move |r: &Resolved| resolved.lock().unwrap().push(r.clone()))
        };
        let stop = CancellationToken::new();
        tokio::spawn(serve(
            listener,
            router(approvals.clone(), hook),
            stop.clone(),
        ));
        Self {
            settings,
            approvals,
            resolved,
            stop,
        }
    }

    fn base(&self) -> &str {
        &self.settings.public_url
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn login(user: &str) -> LoginKey {
    LoginKey {
        user: user.into(),
        nas: "127.0.0.1".parse().unwrap(),
        station: Some(b"203.0.113.7".to_vec()),
    }
}

fn new_approval(api: &Api, user: &str) -> Started {
    match api.approvals.begin(login(user)) {
        Ok(Begin::New(started)) => started,
        other => panic!("expected a new approval: {other:?}"),
    }
}

fn ntfy(url: &str) -> PushProvider {
    install_crypto_provider();
    PushProvider::from_raw(
        RawPush {
            provider: "ntfy".into(),
            url: url.into(),
            token: Some("tk_push_canary".into()),
            token_file: None,
            timeout: Duration::from_millis(500),
            ca_file: None,
            priority: 4,
            language: "nb".into(),
            fail_mode: Default::default(),
        },
        Path::new("."),
    )
    .unwrap()
}

/// Sends the push for `started` through `provider` to `topics`.
async fn push(
    api: &Api,
    provider: &PushProvider,
    started: &Started,
    topics: &[Topic],
) -> Result<(), ProviderError> {
    let links = api.settings.links(started);
    let request = PushRequest {
        user: "alice",
        gateway: "vpn1",
        origin: "203.0.113.7",
        site: Some("hjemmekontor"),
        links: &links,
        expires_in: started.expires_in,
    };
    provider.send(&request, topics).await
}

fn http() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The phone taps an action: POST its URL, as the ntfy app does.
async fn tap(action: &Value) -> (u16, Value) {
    assert_eq!(action["action"], "http");
    assert_eq!(action["method"], "POST");
    let response = http()
        .post(action["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn action<'a>(message: &'a Value, label: &str) -> &'a Value {
    message["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["label"] == label)
        .unwrap_or_else(|| panic!("no action {label:?} in {message}"))
}

// ------------------------------------------------------------------ push + approval

#[tokio::test]
async fn phone_approves_with_the_number_from_the_prompt() {
    let api = Api::start(true).await;
    let server = Receiver::start(true, None).await;
    let provider = ntfy(&server.url("/"));
    let topic = Topic::generate();
    let started = new_approval(&api, "alice");
    let number = started.number.unwrap();

    // The held login waits for the phone; no thread is held.
    let waiter = {
        let approvals = api.approvals.clone();
        let id = started.id;
        tokio::spawn(async move {
            approvals
                .wait(id, Instant::now() + Duration::from_secs(25))
                .await
        })
    };
    push(&api, &provider, &started, std::slice::from_ref(&topic))
        .await
        .unwrap();

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!(seen[0].header("authorization"), "Bearer tk_push_canary");
    assert_eq!(seen[0].header("content-type"), "application/json");
    let message = seen[0].json();
    assert_eq!(message["topic"], topic.as_str());
    assert!(message["message"].as_str().unwrap().contains("vpn1"));
    assert_eq!(message["actions"].as_array().unwrap().len(), 3);

    let (status, body) = tap(action(&message, &number.to_string())).await;
    assert_eq!(
        (status, body["result"].as_str().unwrap()),
        (200, "approved")
    );
    assert_eq!(waiter.await.unwrap(), Status::Approved);
    assert_eq!(
        *api.resolved.lock().unwrap(),
        [Resolved::Approved(login("alice"))]
    );

    // The same tap again: the token is used up.
    let (status, body) = tap(action(&message, &number.to_string())).await;
    assert_eq!((status, body["result"].as_str().unwrap()), (410, "gone"));
}

#[tokio::test]
async fn a_wrong_number_rejects_the_login() {
    let api = Api::start(true).await;
    let server = Receiver::start(true, None).await;
    let started = new_approval(&api, "alice");
    push(
        &api,
        &ntfy(&server.url("/")),
        &started,
        &[Topic::generate()],
    )
    .await
    .unwrap();
    let message = server.seen()[0].json();
    let right = started.number.unwrap().to_string();
    let wrong = message["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["label"] != right.as_str())
        .unwrap();
    let (status, body) = tap(wrong).await;
    assert_eq!((status, body["result"].as_str().unwrap()), (200, "denied"));
    assert_eq!(
        api.approvals.wait(started.id, Instant::now()).await,
        Status::Denied(DenyReason::WrongNumber)
    );
    let (status, _) = tap(action(&message, &right)).await;
    assert_eq!(
        status, 410,
        "the right number after a wrong one is too late"
    );
    assert_eq!(
        *api.resolved.lock().unwrap(),
        [Resolved::Denied(login("alice"), DenyReason::WrongNumber)]
    );
}

#[tokio::test]
async fn this_was_not_me_from_the_notification_page() {
    let api = Api::start(true).await;
    let server = Receiver::start(true, None).await;
    let started = new_approval(&api, "alice");
    push(
        &api,
        &ntfy(&server.url("/")),
        &started,
        &[Topic::generate()],
    )
    .await
    .unwrap();
    let message = server.seen()[0].json();
    // A tap on the notification opens the page; its second form reports "not me".
    let page_url = message["click"].as_str().unwrap();
    let page = http().get(page_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    let token = page_url.rsplit('/').next().unwrap();
    let form = format!("action=\"{token}/deny?reason=not-me\"");
    assert!(html.contains(&form), "{html}");
    let response = http()
        .post(format!("{page_url}/deny?reason=not-me"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        *api.resolved.lock().unwrap(),
        [Resolved::Denied(login("alice"), DenyReason::NotMe)]
    );
}

#[tokio::test]
async fn without_number_matching_the_push_has_approve_deny_not_me() {
    let api = Api::start(false).await;
    let server = Receiver::start(true, None).await;
    let started = new_approval(&api, "alice");
    assert_eq!(started.number, None);
    push(
        &api,
        &ntfy(&server.url("/")),
        &started,
        &[Topic::generate()],
    )
    .await
    .unwrap();
    let message = server.seen()[0].json();
    let (status, _) = tap(action(&message, "Avvis")).await;
    assert_eq!(status, 200);
    assert_eq!(
        api.approvals.status(started.id),
        Status::Denied(DenyReason::Denied)
    );
    let (status, _) = tap(action(&message, "Godkjenn")).await;
    assert_eq!(status, 410);
}

#[tokio::test]
async fn the_api_answers_neutrally() {
    let api = Api::start(true).await;
    let client = http();
    let health = client
        .get(format!("{}/healthz", api.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "ok\n");
    let started = new_approval(&api, "alice");
    let links = api.settings.links(&started);
    let approve = links.approve[0].1.split('?').next().unwrap().to_owned();
    for (url, want) in [
        (approve.clone(), (400, "number_required")),
        (format!("{approve}?number=7"), (400, "bad_request")),
        (format!("{approve}?number=abc"), (400, "bad_request")),
        (
            format!(
                "{}/v1/approvals/{}/approve?number=42",
                api.base(),
                "0".repeat(64)
            ),
            (410, "gone"),
        ),
        (
            format!("{}/v1/approvals/nothex/approve?number=42", api.base()),
            (410, "gone"),
        ),
        (format!("{}?reason=bogus", links.deny), (400, "bad_request")),
    ] {
        let response = client.post(&url).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!((status, body["result"].as_str().unwrap()), want, "{url}");
    }
    assert_eq!(
        api.approvals.status(started.id),
        Status::Pending,
        "nothing above changed it"
    );
    let page = client
        .get(format!("{}/v1/approvals/<script>", api.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.status(),
        410,
        "a malformed token is never echoed into the page"
    );
}

#[tokio::test]
async fn pushes_go_to_every_device_and_one_answer_settles_it() {
    let api = Api::start(true).await;
    let server = Receiver::start(true, None).await;
    let started = new_approval(&api, "alice");
    let topics = [Topic::generate(), Topic::generate()];
    push(&api, &ntfy(&server.url("/")), &started, &topics)
        .await
        .unwrap();
    let seen = server.seen();
    let got: HashSet<String> = seen
        .iter()
        .map(|s| s.json()["topic"].as_str().unwrap().to_owned())
        .collect();
    let want: HashSet<String> = topics.iter().map(|t| t.as_str().to_owned()).collect();
    assert_eq!(got, want);
    let number = started.number.unwrap().to_string();
    assert_eq!(tap(action(&seen[0].json(), &number)).await.0, 200);
    assert_eq!(tap(action(&seen[1].json(), &number)).await.0, 410);
}

#[tokio::test]
async fn webhook_gets_the_links_and_its_token() {
    install_crypto_provider();
    let api = Api::start(true).await;
    let hook = Receiver::start(false, None).await;
    let provider = PushProvider::from_raw(
        RawPush {
            provider: "webhook".into(),
            url: hook.url("/portvakt/push"),
            token: Some("hook-canary".into()),
            token_file: None,
            timeout: Duration::from_millis(500),
            ca_file: None,
            priority: 4,
            language: "en".into(),
            fail_mode: Default::default(),
        },
        Path::new("."),
    )
    .unwrap();
    assert!(!provider.needs_device());
    let started = new_approval(&api, "alice");
    push(&api, &provider, &started, &[]).await.unwrap();
    let seen = hook.seen();
    assert_eq!(seen[0].uri, "/portvakt/push");
    assert_eq!(seen[0].header("authorization"), "Bearer hook-canary");
    let body = seen[0].json();
    assert_eq!(body["user"], "alice");
    assert_eq!(body["numbers"].as_array().unwrap().len(), 3);
    let right = body["approve"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["number"] == started.number.unwrap())
        .unwrap();
    let response = http()
        .post(right["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(api.approvals.status(started.id), Status::Approved);
}

// ------------------------------------------------------------------ provider failures

#[tokio::test]
async fn provider_errors_are_outages_and_the_breaker_opens_after_five() {
    let api = Api::start(true).await;
    let server = Receiver::start(true, None).await;
    server.answer_with(503);
    let provider = ntfy(&server.url("/"));
    let started = new_approval(&api, "alice");
    let topic = [Topic::generate()];
    for _ in 0..5 {
        let e = push(&api, &provider, &started, &topic).await.unwrap_err();
        assert_eq!(e, ProviderError::Status(503));
        assert!(e.is_outage(), "fail_mode applies");
    }
    let e = push(&api, &provider, &started, &topic).await.unwrap_err();
    assert_eq!(e, ProviderError::CircuitOpen);
    assert_eq!(server.seen().len(), 5, "an open breaker sends nothing");

    // A 4xx is the provider refusing us, not an outage: no fail-open for it.
    let server = Receiver::start(true, None).await;
    server.answer_with(403);
    let e = push(&api, &ntfy(&server.url("/")), &started, &topic)
        .await
        .unwrap_err();
    assert_eq!(e, ProviderError::Status(403));
    assert!(!e.is_outage());
}

#[tokio::test]
async fn unreachable_and_hanging_providers_fail_within_the_timeout() {
    let api = Api::start(true).await;
    let started = new_approval(&api, "alice");
    // A port that was free a moment ago: connection refused.
    let free = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let e = push(
        &api,
        &ntfy(&format!("http://{free}/")),
        &started,
        &[Topic::generate()],
    )
    .await
    .unwrap_err();
    assert_eq!(e, ProviderError::Connect);
    assert!(e.is_outage());

    let server = Receiver::start(true, None).await;
    server.behaviour.hang.store(true, Ordering::SeqCst);
    let began = std::time::Instant::now();
    let e = push(
        &api,
        &ntfy(&server.url("/")),
        &started,
        &[Topic::generate()],
    )
    .await
    .unwrap_err();
    assert_eq!(e, ProviderError::Timeout);
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
}

// ------------------------------------------------------------------ SMS gateway

/// A `RawSms` as serde fills it from a minimal `[sms]` (defaults for the rest).
fn sms_raw(url: String, body_format: Option<&str>, body: Option<&str>) -> RawSms {
    let mut raw: RawSms = serde_json::from_value(serde_json::json!({ "url": url })).unwrap();
    raw.body_format = body_format.map(str::to_owned);
    raw.body = body.map(str::to_owned);
    raw.timeout = Duration::from_millis(500);
    raw
}

fn phone() -> Phone {
    Phone::parse("+4790000123").unwrap()
}

#[tokio::test]
async fn sms_json_gateway_with_bearer_token() {
    install_crypto_provider();
    let gw = Receiver::start(false, None).await;
    let mut raw = sms_raw(
        gw.url("/v1/sms"),
        Some("json"),
        Some(
            r#"{"sender":"Kommune","recipients":[{"msisdn":"{to_digits}"}],"message":"{message}"}"#,
        ),
    );
    raw.auth = serde_json::from_value(serde_json::json!({"type": "bearer", "token": "sms-canary"}))
        .unwrap();
    let gateway = SmsGateway::from_raw(raw, Path::new(".")).unwrap();
    let text = "Koden er 123456 \"æøå\" & {x}\n";
    gateway.send(&phone(), text).await.unwrap();
    let seen = &gw.seen()[0];
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.uri, "/v1/sms");
    assert_eq!(seen.header("authorization"), "Bearer sms-canary");
    assert_eq!(seen.header("content-type"), "application/json");
    let body = seen.json();
    assert_eq!(body["recipients"][0]["msisdn"], "4790000123");
    assert_eq!(body["message"], text, "escaped, and nothing else changed");
}

#[tokio::test]
async fn sms_form_gateway_with_basic_auth_and_header() {
    install_crypto_provider();
    let gw = Receiver::start(false, None).await;
    let mut raw = sms_raw(
        gw.url("/send"),
        Some("form"),
        Some("from=Kommune&to={to}&text={message}"),
    );
    raw.auth = serde_json::from_value(
        serde_json::json!({"type": "basic", "username": "kommune", "password": "pw-canary"}),
    )
    .unwrap();
    raw.headers =
        serde_json::from_value(serde_json::json!([{"name": "X-Api-Key", "value": "key-canary"}]))
            .unwrap();
    let gateway = SmsGateway::from_raw(raw, Path::new(".")).unwrap();
    gateway.send(&phone(), "a&b=c d+æ").await.unwrap();
    let seen = &gw.seen()[0];
    assert_eq!(
        seen.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    // base64("kommune:pw-canary")
    assert_eq!(
        seen.header("authorization"),
        "Basic a29tbXVuZTpwdy1jYW5hcnk="
    );
    assert_eq!(seen.header("x-api-key"), "key-canary");
    let fields: Vec<(String, String)> = url_decode_pairs(&seen.body);
    assert_eq!(
        fields,
        [
            ("from".to_owned(), "Kommune".to_owned()),
            ("to".to_owned(), "+4790000123".to_owned()),
            ("text".to_owned(), "a&b=c d+æ".to_owned())
        ]
    );
}

#[tokio::test]
async fn sms_get_gateway_with_query_parameters() {
    install_crypto_provider();
    let gw = Receiver::start(false, None).await;
    let mut raw = sms_raw(gw.url("/api?to={to}&msg={message}"), None, None);
    raw.method = "GET".into();
    let gateway = SmsGateway::from_raw(raw, Path::new(".")).unwrap();
    gateway.send(&phone(), "kode 1&2").await.unwrap();
    assert_eq!(gw.seen()[0].uri, "/api?to=%2B4790000123&msg=kode%201%262");
}

#[tokio::test]
async fn sms_gateway_outage_opens_its_breaker() {
    install_crypto_provider();
    let gw = Receiver::start(false, None).await;
    gw.answer_with(500);
    let gateway = SmsGateway::from_raw(
        sms_raw(gw.url("/"), Some("json"), Some(r#"{"m":"{message}"}"#)),
        Path::new("."),
    )
    .unwrap();
    for _ in 0..5 {
        assert_eq!(
            gateway.send(&phone(), "x").await,
            Err(ProviderError::Status(500))
        );
    }
    assert_eq!(
        gateway.send(&phone(), "x").await,
        Err(ProviderError::CircuitOpen)
    );
    assert_eq!(gw.seen().len(), 5);
}

/// Splits an `application/x-www-form-urlencoded` body (test-side decoder).
fn url_decode_pairs(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let mut out = Vec::new();
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).unwrap()
    };
    std::str::from_utf8(body)
        .unwrap()
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (decode(k), decode(v))
        })
        .collect()
}

// ------------------------------------------------------------------ SMS codes end to end

struct StoreFixture {
    _dir: tempfile::TempDir,
    store: Store,
}

fn store_with_alice() -> StoreFixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("users.db"), &StoreKey::from_bytes([7; 32])).unwrap();
    store.add_user("alice").unwrap();
    store.set_verified_phone("alice", &phone()).unwrap();
    StoreFixture { _dir: dir, store }
}

fn sms_settings(gw: &Receiver) -> SmsSettings {
    install_crypto_provider();
    let raw = sms_raw(
        gw.url("/sms"),
        Some("json"),
        Some(r#"{"to":"{to}","text":"{message}"}"#),
    );
    SmsSettings::from_raw(raw, Path::new(".")).unwrap()
}

/// The 6-digit code in a received message.
fn code_in(seen: &Seen) -> String {
    let text = seen.json()["text"].as_str().unwrap().to_owned();
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in {text:?}"))
        .to_owned()
}

#[tokio::test]
async fn sms_login_code_is_single_use_and_limited() {
    let fx = store_with_alice();
    let gw = Receiver::start(false, None).await;
    let sms = sms_settings(&gw);
    let to = sms
        .send_code(&fx.store, "alice", CodePurpose::Login)
        .await
        .unwrap();
    assert_eq!(to, phone());
    let seen = gw.seen();
    assert_eq!(seen[0].json()["to"], "+4790000123");
    let code = code_in(&seen[0]);
    let check = SmsSettings::check_code(&fx.store, "alice", CodePurpose::Login, &code);
    assert_eq!(check.await.unwrap(), CodeCheck::Accepted);
    let again = SmsSettings::check_code(&fx.store, "alice", CodePurpose::Login, &code);
    assert_eq!(
        again.await.unwrap(),
        CodeCheck::Invalid,
        "reuse is rejected"
    );

    // A second code at once: the per-user cooldown refuses it, and nothing is sent.
    let e = sms
        .send_code(&fx.store, "alice", CodePurpose::Login)
        .await
        .unwrap_err();
    assert!(!e.is_outage(), "{e}");
    assert!(
        matches!(e, portvakt::factor::sms::SendCodeError::Limited(_)),
        "{e}"
    );
    assert_eq!(gw.seen().len(), 1);
}

#[tokio::test]
async fn sms_code_with_the_gateway_down_is_an_outage() {
    let fx = store_with_alice();
    let gw = Receiver::start(false, None).await;
    gw.answer_with(502);
    let sms = sms_settings(&gw);
    let e = sms
        .send_code(&fx.store, "alice", CodePurpose::Login)
        .await
        .unwrap_err();
    assert!(e.is_outage(), "{e}");
}

// ------------------------------------------------------------------ scale

/// Threads of this process (Linux).
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_pending_approvals_hold_no_threads() {
    const N: usize = 10_000;
    let approvals = Arc::new(Approvals::new(portvakt::approval::ApprovalPolicy {
        max_pending: N,
        number_matching: false,
        ..Default::default()
    }));
    let threads_before = threads();
    let began = std::time::Instant::now();
    let mut waiters = tokio::task::JoinSet::new();
    let mut tokens = Vec::with_capacity(N);
    let settings = ApprovalSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        public_url: "http://127.0.0.1".into(),
        policy: approvals.policy().clone(),
    };
    for i in 0..N {
        let Ok(Begin::New(started)) = approvals.begin(login(&format!("user{i}"))) else {
            panic!("begin {i}")
        };
        let links = settings.links(&started);
        tokens.push(links.deny.rsplit('/').nth(1).unwrap().to_owned());
        let a = approvals.clone();
        let id = started.id;
        waiters.spawn(async move { a.wait(id, Instant::now() + Duration::from_secs(60)).await });
    }
    // Let every waiter park.
    tokio::task::yield_now().await;
    assert_eq!(approvals.len(), N);
    assert!(
        threads() <= threads_before + 2,
        "{} threads before, {} now",
        threads_before,
        threads()
    );
    for token in &tokens {
        assert!(matches!(
            approvals.resolve(token, portvakt::approval::Action::Approve { number: None }),
            Resolved::Approved(_)
        ));
    }
    let mut approved = 0;
    let all = async {
        while let Some(status) = waiters.join_next().await {
            approved += usize::from(status.unwrap() == Status::Approved);
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .unwrap();
    assert_eq!(approved, N);
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "{:?}",
        began.elapsed()
    );
}

// ------------------------------------------------------------------ CLI set-phone

/// Input for the CLI that answers the code prompt with the code from the SMS the
/// receiver got (waiting for it), then `extra` lines.
struct CodeFromSms {
    sms: std::sync::mpsc::Receiver<Seen>,
    wrong_first: bool,
    pending: Vec<u8>,
}

impl std::io::Read for CodeFromSms {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pending.is_empty() {
            let Ok(seen) = self.sms.recv_timeout(Duration::from_secs(10)) else {
                return Ok(0);
            };
            let code = code_in(&seen);
            let wrong = if self.wrong_first { "000000\n" } else { "" };
            self.pending = format!("{wrong}{code}\n").into_bytes();
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

#[test]
fn cli_set_phone_verifies_the_number_with_the_code_sent_to_it() {
    use portvakt::cli::CliIo;
    use portvakt::cli::user::{Factors, UserCommand, run_with};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let gw = runtime.block_on(Receiver::start(false, Some(tx)));
    let sms = sms_settings(&gw);
    let fx = store_with_alice();
    let store = &fx.store;
    store.add_user("bob").unwrap();

    let mut out = Vec::new();
    let input = CodeFromSms {
        sms: rx,
        wrong_first: true,
        pending: Vec::new(),
    };
    let mut io = CliIo::new(std::io::BufReader::new(input), &mut out);
    let cmd = UserCommand::SetPhone {
        user: "bob".into(),
        number: "+47 912 34 567".into(),
        verified: false,
    };
    run_with(store, cmd, &mut io, Factors { sms: Some(&sms) }).unwrap();
    drop(io);
    let shown = String::from_utf8(out).unwrap();
    assert!(
        shown.contains("A code was sent to +47 ••• •• 567."),
        "{shown}"
    );
    assert!(shown.contains("That code is not right."), "{shown}");
    assert!(
        !shown.contains("91234567"),
        "the full number is never printed: {shown}"
    );
    assert_eq!(
        store.phone("bob").unwrap(),
        Some(Phone::parse("+4791234567").unwrap())
    );
    assert_eq!(gw.seen()[0].json()["to"], "+4791234567");
    assert!(store.user("bob").unwrap().unwrap().phone_verified);
    drop(gw);
    runtime.shutdown_timeout(Duration::from_secs(5));
}
