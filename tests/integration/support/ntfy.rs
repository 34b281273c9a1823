//! Test receivers over real HTTP on loopback, as portvakt's providers reach them: an ntfy server (the publish
//! API: `POST /` with a JSON message naming its topic) and an SMS gateway (any request; the message is in the
//! JSON body's `text`). Each records what it got and hands every message to the test through a channel, so a
//! test waits for "the push arrived" instead of sleeping. The phone's side: [`Phone::tap`] POSTs an action's
//! URL, as the ntfy app does when the user taps a button.
//!
//! Each receiver runs on its own small tokio runtime (the integration tests are synchronous) and stops when
//! dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Error, Result};

/// `[approval] public_url` in the tests: the reverse proxy phones reach (see [`Receiver::tap`]).
pub const PUBLIC_URL: &str = "https://mfa.kommune.test";

#[derive(Clone)]
struct Shared {
    seen: Arc<Mutex<Vec<Value>>>,
    status: Arc<AtomicU16>,
    tap: mpsc::Sender<Value>,
    ntfy: bool,
}

/// A receiver on 127.0.0.1 (port from the kernel).
pub struct Receiver {
    addr: SocketAddr,
    shared: Shared,
    messages: Mutex<mpsc::Receiver<Value>>,
    stop: CancellationToken,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Receiver {
    /// An ntfy server.
    pub fn ntfy() -> Result<Self> {
        Self::start(true)
    }

    /// An SMS gateway, or any JSON receiver (a push webhook): answers 200 to every request.
    pub fn sms_gateway() -> Result<Self> {
        Self::start(false)
    }

    fn start(ntfy: bool) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| Error::io("receiver runtime", e))?;
        let (tx, rx) = mpsc::channel();
        let shared = Shared {
            seen: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            tap: tx,
            ntfy,
        };
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| Error::io("binding a receiver", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("receiver address", e))?;
        let app = Router::new().fallback(receive).with_state(shared.clone());
        let stop = CancellationToken::new();
        let token = stop.clone();
        runtime.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await;
        });
        Ok(Self {
            addr,
            shared,
            messages: Mutex::new(rx),
            stop,
            runtime: Some(runtime),
        })
    }

    /// Its base URL (`http://127.0.0.1:port/`).
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Every message received so far (JSON bodies; `null` for a body that is not JSON).
    pub fn seen(&self) -> Vec<Value> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Answers every request with `status` from now on (e.g. 503: the provider is down).
    pub fn answer_with(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Waits (bounded) for the next message not yet taken.
    pub fn next(&self, within: Duration) -> Option<Value> {
        self.messages.lock().unwrap().recv_timeout(within).ok()
    }

    /// The phone taps an action of `message` (an ntfy `http` action): POST its URL. The URL names
    /// [`PUBLIC_URL`], the reverse proxy in front of the approval API; the request goes to the API's bound
    /// address `api` in its place. Returns the API's status code and JSON answer.
    pub fn tap(&self, action: &Value, api: SocketAddr) -> Result<(u16, Value)> {
        let link = action["url"].as_str().unwrap_or_default();
        let path = link
            .strip_prefix(PUBLIC_URL)
            .ok_or_else(|| Error::Unsupported(format!("action not on {PUBLIC_URL}: {action}")))?;
        let url = format!("http://{api}{path}");
        let runtime = self.runtime.as_ref().expect("runtime lives until drop");
        runtime.block_on(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| Error::Unsupported(e.to_string()))?;
            let response = client
                .post(url)
                .send()
                .await
                .map_err(|e| Error::Unsupported(e.to_string()))?;
            let status = response.status().as_u16();
            let body = response.json().await.unwrap_or(Value::Null);
            Ok((status, body))
        })
    }
}

/// The action labelled `label` in an ntfy message.
pub fn action<'a>(message: &'a Value, label: &str) -> Option<&'a Value> {
    message["actions"]
        .as_array()?
        .iter()
        .find(|a| a["label"] == label)
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

async fn receive(State(shared): State<Shared>, request: Request) -> Response {
    let body = axum::body::to_bytes(request.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let status = StatusCode::from_u16(shared.status.load(Ordering::SeqCst))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if !status.is_success() {
        return status.into_response();
    }
    shared.seen.lock().unwrap().push(message.clone());
    let _ = shared.tap.send(message.clone());
    if shared.ntfy {
        let topic = message["topic"].clone();
        return axum::Json(json!({"id": "test1", "time": 1, "event": "message", "topic": topic}))
            .into_response();
    }
    StatusCode::OK.into_response()
}
