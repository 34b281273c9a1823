//! The approval API: where phones answer pushes (axum, its own listener).
//!
//! - `POST /v1/approvals/{token}/approve[?number=NN]` — approve (with number matching, the
//!   number the user picked);
//! - `POST /v1/approvals/{token}/deny[?reason=not-me]` — deny, or report "this wasn't me";
//! - `GET /v1/approvals/{token}` — a tiny page with Deny / "this wasn't me" buttons, for a
//!   tap on the notification (ntfy shows at most three action buttons, which number
//!   matching fills with numbers);
//! - `GET /healthz` — `ok`.
//!
//! Answers are neutral JSON (`{"result": "approved" | "denied" | "gone" | …}`). Whether a
//! token never existed, expired, was used or is malformed, the answer is the same 410
//! "gone". Nothing here logs a token or a URL. Serve it on loopback behind a reverse proxy
//! that terminates TLS (`[approval] public_url` is the proxy's address).

use std::io;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Action, Approvals, Resolved};

/// Called with every answer that changed an approval (approved or denied), after the
/// waiters were woken: the daemon counts failures, locks a "not me" user and logs.
/// It runs on the request task, so it must not block: spawn store work.
pub type OnResolved = Arc<dyn Fn(&Resolved) + Send + Sync>;

#[derive(Clone)]
struct AppState {
    approvals: Arc<Approvals>,
    on_resolved: OnResolved,
}

/// The router. The handlers read no request body (everything is in the path and query);
/// the 1 KiB body limit guards any extractor added later.
pub fn router(approvals: Arc<Approvals>, on_resolved: OnResolved) -> Router {
    let state = AppState {
        approvals,
        on_resolved,
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/v1/approvals/{token}", get(page))
        .route("/v1/approvals/{token}/approve", post(approve))
        .route("/v1/approvals/{token}/deny", post(deny))
        .layer(axum::middleware::map_response(private_headers))
        .layer(DefaultBodyLimit::max(1024))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets requests in
/// progress finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Headers on every answer: never cache (links are bearer tokens), never send a referrer.
async fn private_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[derive(Debug, Deserialize)]
struct ApproveQuery {
    number: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DenyQuery {
    reason: Option<String>,
}

async fn approve(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(query): Query<ApproveQuery>,
) -> Response {
    let number = match query.number {
        None => None,
        Some(text) => match text.trim().parse::<u8>() {
            Ok(n) if (10..=99).contains(&n) => Some(n),
            _ => return answer(StatusCode::BAD_REQUEST, "bad_request"),
        },
    };
    settle(&state, &token, Action::Approve { number })
}

async fn deny(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(query): Query<DenyQuery>,
) -> Response {
    let not_me = match query.reason.as_deref() {
        None => false,
        Some("not-me") => true,
        Some(_) => return answer(StatusCode::BAD_REQUEST, "bad_request"),
    };
    settle(&state, &token, Action::Deny { not_me })
}

fn settle(state: &AppState, token: &str, action: Action) -> Response {
    let resolved = state.approvals.resolve(token, action);
    match &resolved {
        Resolved::Approved(_) => {
            (state.on_resolved)(&resolved);
            answer(StatusCode::OK, "approved")
        }
        Resolved::Denied(..) => {
            (state.on_resolved)(&resolved);
            answer(StatusCode::OK, "denied")
        }
        Resolved::NumberRequired => answer(StatusCode::BAD_REQUEST, "number_required"),
        Resolved::Gone => answer(StatusCode::GONE, "gone"),
    }
}

fn answer(status: StatusCode, result: &'static str) -> Response {
    (status, Json(json!({ "result": result }))).into_response()
}

/// The page behind a notification tap. It looks nothing up (so it reveals nothing), and
/// embeds the token only if it is well-formed hex (so nothing can be injected).
async fn page(Path(token): Path<String>) -> Response {
    let well_formed = token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return answer(StatusCode::GONE, "gone");
    }
    let html = format!(
        r#"<!doctype html>
<html lang="nb"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>portvakt</title></head>
<body>
<h1>Innlogging / Sign-in</h1>
<p>Godkjenn ved å trykke på tallet i varselet. / Approve by tapping the number in the notification.</p>
<form method="post" action="{token}/deny"><button type="submit">Avvis / Deny</button></form>
<form method="post" action="{token}/deny?reason=not-me"><button type="submit">Dette var ikke meg / This wasn't me</button></form>
</body></html>
"#
    );
    let mut response = Html(html).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; form-action 'self'"),
    );
    response
}
