//! Push: sending an approval request to the user's phone.
//!
//! Two providers, one enum (no trait: these are the only two):
//! - **ntfy** — the publish API of a (self-hostable) ntfy server: one JSON message per
//!   device topic, naming the user, the gateway and where the login comes from, with
//!   `http` action buttons that POST to our approval API. With number matching the three
//!   buttons are the three numbers (ntfy shows at most three), and a tap on the notification
//!   opens a page with Deny and "this wasn't me"; without it, the buttons are Approve,
//!   Deny and "this wasn't me".
//! - **webhook** — one JSON POST with the user, gateway, origin, site, the approve/deny
//!   links and the offered numbers, for an integration of the operator's own.
//!
//! A topic is effectively a password: whoever subscribes to it sees the approve links.
//! Topics are therefore random by default (`portvakt user add-push` draws 128 bits),
//! sealed in the store, and a self-hosted ntfy should require authentication.
//!
//! Calls have a timeout of at most 5 s and go through one [`Breaker`] per provider.
//! Nothing here logs a topic, a link or a token.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::breaker::Breaker;
use super::provider::{self, Common, ProviderError};
use crate::approval::Links;
use crate::config::ConfigError;
use crate::secret::Secret;

/// Why a push could not be sent.
pub type PushError = ProviderError;

/// `[push]` as written in the configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPush {
    /// `ntfy` or `webhook`.
    pub provider: String,
    /// ntfy: the server's base URL (`https://ntfy.kommune.no`). Webhook: the URL to POST to.
    pub url: String,
    /// A bearer token (ntfy access token `tk_…`, or the webhook's). Prefer `token_file`.
    pub token: Option<String>,
    /// A file holding the token.
    pub token_file: Option<PathBuf>,
    /// Per-call timeout, at most 5 s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// A PEM file of extra CA certificates to trust (a self-hosted server with a private CA).
    pub ca_file: Option<PathBuf>,
    /// ntfy message priority, 1 (min) to 5 (max).
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// Language of the notification text: `nb` (Norwegian bokmål) or `en`.
    #[serde(default = "default_language")]
    pub language: String,
    /// What a login gets while the provider is unreachable: `closed` (Reject, the
    /// default) or `open` (Accept without the second factor; every use is logged).
    #[serde(default)]
    pub fail_mode: super::FailMode,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_priority() -> u8 {
    4
}
fn default_language() -> String {
    "nb".into()
}

/// The wording of notifications and prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    /// Norwegian bokmål (the default: the users' language).
    #[default]
    Nb,
    /// English.
    En,
}

struct Texts {
    title: &'static str,
    body: &'static str,
    pick_number: &'static str,
    approve_only: &'static str,
    approve: &'static str,
    deny: &'static str,
    not_me: &'static str,
    prompt_number: &'static str,
    prompt: &'static str,
}

const NB: Texts = Texts {
    title: "Innlogging: {gateway}",
    body: "{user} logger inn på {gateway} fra {origin}.",
    pick_number: "Trykk på tallet som vises på skjermen. Var det ikke deg? Trykk på varselet.",
    approve_only: "Godkjenn bare hvis det er du som logger inn nå.",
    approve: "Godkjenn",
    deny: "Avvis",
    not_me: "Ikke meg",
    prompt_number: "Trykk {number} i varselet på telefonen, og trykk Enter – eller skriv inn en kode.",
    prompt: "Godkjenn varselet på telefonen, og trykk Enter – eller skriv inn en kode.",
};

const EN: Texts = Texts {
    title: "Sign-in: {gateway}",
    body: "{user} is signing in to {gateway} from {origin}.",
    pick_number: "Tap the number shown on your screen. Not you? Tap the notification.",
    approve_only: "Approve only if you are signing in right now.",
    approve: "Approve",
    deny: "Deny",
    not_me: "Not me",
    prompt_number: "Tap {number} in the notification on your phone, then press Enter - or type a code.",
    prompt: "Approve the notification on your phone, then press Enter - or type a code.",
};

impl Language {
    fn texts(self) -> &'static Texts {
        match self {
            Self::Nb => &NB,
            Self::En => &EN,
        }
    }

    /// The Access-Challenge Reply-Message for a push: "approve on your phone, then press
    /// Enter — or type a code", naming the number with number matching.
    pub fn challenge_prompt(self, number: Option<u8>) -> String {
        let t = self.texts();
        match number {
            Some(n) => t.prompt_number.replace("{number}", &n.to_string()),
            None => t.prompt.to_owned(),
        }
    }
}

/// An ntfy topic: 1–64 of `A–Z a–z 0–9 _ -` (ntfy's rule).
#[derive(Clone, PartialEq, Eq)]
pub struct Topic(String);

/// A text that is not an ntfy topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an ntfy topic is 1 to 64 letters, digits, '_' or '-'")]
pub struct BadTopic;

impl Topic {
    /// Shortest topic `add-push` accepts without `--allow-short-topic`-style overrides:
    /// a topic is a password, and 20 random characters of this alphabet are ~119 bits.
    pub const RECOMMENDED_LEN: usize = 20;

    /// Checks ntfy's topic rule.
    pub fn parse(text: &str) -> Result<Self, BadTopic> {
        let ok = (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(BadTopic)
        }
    }

    /// A new random topic: `pv-` and 22 characters from 64 symbols (132 bits).
    pub fn generate() -> Self {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut bytes = [0u8; 22];
        crate::radius::random::fill(&mut bytes);
        let mut topic = String::from("pv-");
        // 64 symbols: the low 6 bits of each byte pick one uniformly.
        topic.extend(
            bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(b & 63)])),
        );
        Self(topic)
    }

    /// The topic text (for the subscription on the phone, and the publish call).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Topic(<redacted>)")
    }
}

/// What a push says and where its answers go. The caller fills it from the login.
#[derive(Debug)]
pub struct PushRequest<'a> {
    /// The user signing in.
    pub user: &'a str,
    /// The gateway (NAS client name) the login goes through.
    pub gateway: &'a str,
    /// Where the login comes from, as shown to the user (e.g. the user's IP address).
    pub origin: &'a str,
    /// The site the origin matched, if any.
    pub site: Option<&'a str>,
    /// The approve/deny links (from `ApprovalSettings::links`).
    pub links: &'a Links,
    /// How long the push can be answered.
    pub expires_in: Duration,
}

/// Validated `[push]`: a provider. Cheap to share by reference.
pub struct PushProvider {
    kind: Kind,
    url: reqwest::Url,
    token: Option<Secret>,
    client: reqwest::Client,
    breaker: Arc<Breaker>,
    priority: u8,
    language: Language,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ntfy,
    Webhook,
}

impl fmt::Debug for PushProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushProvider")
            .field("kind", &self.kind)
            .field("url", &self.url.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("breaker", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

impl PushProvider {
    /// Validates `[push]`; relative paths are resolved against `base`.
    pub fn from_raw(raw: RawPush, base: &Path) -> Result<Self, ConfigError> {
        let kind = match raw.provider.as_str() {
            "ntfy" => Kind::Ntfy,
            "webhook" => Kind::Webhook,
            _ => {
                return Err(ConfigError::new(
                    "push.provider",
                    "must be \"ntfy\" or \"webhook\"",
                ));
            }
        };
        let common = Common::parse(raw.timeout, raw.ca_file.as_deref(), base, "push")?;
        let url = provider::parse_url(&raw.url, "push.url")?;
        if !(1..=5).contains(&raw.priority) {
            return Err(ConfigError::new("push.priority", "must be 1 to 5"));
        }
        let language = match raw.language.as_str() {
            "nb" => Language::Nb,
            "en" => Language::En,
            _ => {
                return Err(ConfigError::new(
                    "push.language",
                    "must be \"nb\" or \"en\"",
                ));
            }
        };
        Ok(Self {
            kind,
            url,
            token: provider::secret(raw.token, raw.token_file, base, "push", "token")?,
            client: common.client("push")?,
            breaker: Arc::new(Breaker::new(common.breaker)),
            priority: raw.priority,
            language,
        })
    }

    /// Whether users need a push device (an ntfy topic) for this provider. A webhook
    /// integration finds the user's phone itself, by user name.
    pub fn needs_device(&self) -> bool {
        self.kind == Kind::Ntfy
    }

    /// The notification language (also for the challenge prompt).
    pub fn language(&self) -> Language {
        self.language
    }

    /// The provider's circuit breaker (for metrics and health).
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Sends the push: to each of `topics` with ntfy (at once; success if any device got
    /// it), or once to the webhook (`topics` unused). Fails fast while the breaker is open.
    pub async fn send(
        &self,
        request: &PushRequest<'_>,
        topics: &[super::push::Topic],
    ) -> Result<(), PushError> {
        match self.kind {
            Kind::Webhook => {
                let body = webhook_body(request);
                provider::call(&self.breaker, self.post(&self.url, &body)).await
            }
            Kind::Ntfy => self.send_ntfy(request, topics).await,
        }
    }

    async fn send_ntfy(
        &self,
        request: &PushRequest<'_>,
        topics: &[Topic],
    ) -> Result<(), PushError> {
        let mut calls = tokio::task::JoinSet::new();
        for topic in topics {
            let body = ntfy_body(request, topic, self.priority, self.language);
            let call = self.post(&self.url, &body);
            let breaker = self.breaker.clone();
            calls.spawn(async move { provider::call(&breaker, call).await });
        }
        let mut first_error = None;
        let mut delivered = false;
        while let Some(joined) = calls.join_next().await {
            match joined {
                Ok(Ok(())) => delivered = true,
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(ProviderError::Other);
                }
            }
        }
        match (delivered, first_error) {
            (true, _) => Ok(()),
            (false, Some(e)) => Err(e),
            // No topics: nothing could be delivered. Not an outage: fail-open must not apply.
            (false, None) => Err(ProviderError::Status(404)),
        }
    }

    fn post(&self, url: &reqwest::Url, body: &Value) -> reqwest::RequestBuilder {
        let request = self.client.post(url.clone()).json(body);
        match &self.token {
            Some(token) => request.bearer_auth(provider::secret_text(token)),
            None => request,
        }
    }
}

fn fill(template: &str, request: &PushRequest<'_>) -> String {
    template
        .replace("{gateway}", request.gateway)
        .replace("{origin}", request.origin)
        .replace("{user}", request.user)
}

/// The ntfy publish-as-JSON body for one topic.
fn ntfy_body(request: &PushRequest<'_>, topic: &Topic, priority: u8, language: Language) -> Value {
    let t = language.texts();
    let numbered = request.links.approve.iter().any(|(n, _)| n.is_some());
    let http = |label: &str, url: &str| json!({ "action": "http", "label": label, "url": url, "method": "POST", "clear": true });
    let actions: Vec<Value> = if numbered {
        request
            .links
            .approve
            .iter()
            .map(|(n, url)| http(&n.map(|n| n.to_string()).unwrap_or_default(), url))
            .collect()
    } else {
        let approve = request
            .links
            .approve
            .first()
            .map_or("", |(_, url)| url.as_str());
        vec![
            http(t.approve, approve),
            http(t.deny, &request.links.deny),
            http(t.not_me, &request.links.not_me),
        ]
    };
    let mut message = fill(t.body, request);
    if let Some(site) = request.site {
        message.push_str(&format!(" ({site})"));
    }
    message.push('\n');
    message.push_str(if numbered {
        t.pick_number
    } else {
        t.approve_only
    });
    json!({
        "topic": topic.as_str(),
        "title": fill(t.title, request),
        "message": message,
        "priority": priority,
        "tags": ["lock"],
        "click": request.links.page,
        "actions": actions,
    })
}

/// The webhook body.
fn webhook_body(request: &PushRequest<'_>) -> Value {
    let numbers: Vec<u8> = request
        .links
        .approve
        .iter()
        .filter_map(|(n, _)| *n)
        .collect();
    let approve: Vec<Value> = request
        .links
        .approve
        .iter()
        .map(|(n, url)| json!({ "number": n, "url": url }))
        .collect();
    json!({
        "type": "portvakt.approval.v1",
        "user": request.user,
        "gateway": request.gateway,
        "origin": request.origin,
        "site": request.site,
        "number_matching": !numbers.is_empty(),
        "numbers": numbers,
        "approve": approve,
        "deny_url": request.links.deny,
        "not_me_url": request.links.not_me,
        "expires_in": request.expires_in.as_secs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::{
        ApprovalPolicy, ApprovalSettings, Approvals, Begin, LoginKey, RawApproval,
    };

    fn settings(number_matching: bool) -> ApprovalSettings {
        ApprovalSettings::from_raw(RawApproval {
            listen: "127.0.0.1:0".into(),
            public_url: "https://mfa.kommune.no/".into(),
            ttl: Duration::from_secs(60),
            number_matching,
            remember_approved: Duration::from_secs(30),
            max_pushes: 3,
            push_window: Duration::from_secs(600),
            push_lockout: Duration::from_secs(1800),
            max_pending: 10,
        })
        .unwrap()
    }

    fn links(number_matching: bool) -> (Links, Option<u8>) {
        let s = settings(number_matching);
        let approvals = Approvals::new(ApprovalPolicy {
            number_matching,
            ..s.policy.clone()
        });
        let login = LoginKey {
            user: "alice".into(),
            nas: "127.0.0.1".parse().unwrap(),
            station: None,
        };
        let Ok(Begin::New(started)) = approvals.begin(login) else {
            panic!("new approval expected")
        };
        (s.links(&started), started.number)
    }

    fn request(links: &Links) -> PushRequest<'_> {
        PushRequest {
            user: "alice",
            gateway: "vpn1",
            origin: "203.0.113.7",
            site: Some("hjemmekontor"),
            links,
            expires_in: Duration::from_secs(60),
        }
    }

    #[test]
    fn ntfy_with_number_matching_offers_three_numbers() {
        let (links, number) = links(true);
        let topic = Topic::parse("pv-topic").unwrap();
        let body = ntfy_body(&request(&links), &topic, 4, Language::Nb);
        assert_eq!(body["topic"], "pv-topic");
        assert_eq!(body["priority"], 4);
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("alice")
                && message.contains("vpn1")
                && message.contains("203.0.113.7")
        );
        assert!(message.contains("hjemmekontor"));
        let actions = body["actions"].as_array().unwrap();
        assert_eq!(actions.len(), 3, "ntfy allows at most three actions");
        let labels: Vec<&str> = actions
            .iter()
            .map(|a| a["label"].as_str().unwrap())
            .collect();
        assert!(labels.contains(&number.unwrap().to_string().as_str()));
        for a in actions {
            assert_eq!(a["action"], "http");
            assert_eq!(a["method"], "POST");
            let url = a["url"].as_str().unwrap();
            assert!(
                url.starts_with("https://mfa.kommune.no/v1/approvals/"),
                "{url}"
            );
            assert!(url.ends_with(&format!("/approve?number={}", a["label"].as_str().unwrap())));
        }
        assert_eq!(body["click"].as_str().unwrap(), links.page);
    }

    #[test]
    fn ntfy_without_number_matching_has_approve_deny_not_me() {
        let (links, number) = links(false);
        assert_eq!(number, None);
        let topic = Topic::parse("pv-topic").unwrap();
        let body = ntfy_body(&request(&links), &topic, 3, Language::En);
        let actions = body["actions"].as_array().unwrap();
        let labels: Vec<&str> = actions
            .iter()
            .map(|a| a["label"].as_str().unwrap())
            .collect();
        assert_eq!(labels, ["Approve", "Deny", "Not me"]);
        assert!(actions[0]["url"].as_str().unwrap().ends_with("/approve"));
        assert!(
            actions[2]["url"]
                .as_str()
                .unwrap()
                .ends_with("/deny?reason=not-me")
        );
    }

    #[test]
    fn webhook_carries_links_and_numbers() {
        let (links, number) = links(true);
        let body = webhook_body(&request(&links));
        assert_eq!(body["user"], "alice");
        assert_eq!(body["gateway"], "vpn1");
        assert_eq!(body["site"], "hjemmekontor");
        let numbers = body["numbers"].as_array().unwrap();
        assert_eq!(numbers.len(), 3);
        assert!(numbers.contains(&json!(number.unwrap())));
        assert!(body["deny_url"].as_str().unwrap().ends_with("/deny"));
    }

    #[test]
    fn topics_follow_ntfy_rules_and_generated_ones_are_random() {
        assert!(Topic::parse("alice_phone-1").is_ok());
        for bad in ["", "has space", "æøå", "a/b", &"x".repeat(65)] {
            assert_eq!(Topic::parse(bad), Err(BadTopic), "{bad:?}");
        }
        let a = Topic::generate();
        assert_eq!(a.as_str().len(), 25);
        assert!(Topic::parse(a.as_str()).is_ok());
        assert_ne!(a, Topic::generate());
        assert!(!format!("{a:?}").contains(a.as_str()));
    }

    #[test]
    fn prompts_name_the_number() {
        assert!(Language::Nb.challenge_prompt(Some(42)).contains("42"));
        assert!(Language::En.challenge_prompt(None).contains("press Enter"));
    }

    #[test]
    fn bad_push_configs_name_their_key() {
        super::super::provider::install_crypto_provider();
        let raw = |provider: &str, url: &str| RawPush {
            provider: provider.into(),
            url: url.into(),
            token: None,
            token_file: None,
            timeout: Duration::from_secs(5),
            ca_file: None,
            priority: 4,
            language: "nb".into(),
            fail_mode: Default::default(),
        };
        let err = |r| PushProvider::from_raw(r, Path::new(".")).unwrap_err().key;
        assert_eq!(err(raw("apns", "https://x.example/")), "push.provider");
        assert_eq!(err(raw("ntfy", "http://ntfy.example/")), "push.url");
        assert_eq!(
            err(RawPush {
                priority: 6,
                ..raw("ntfy", "https://ntfy.example/")
            }),
            "push.priority"
        );
        assert_eq!(
            err(RawPush {
                language: "de".into(),
                ..raw("ntfy", "https://ntfy.example/")
            }),
            "push.language"
        );
        let ok = PushProvider::from_raw(
            RawPush {
                token: Some("tk_canary".into()),
                ..raw("ntfy", "https://ntfy.example/")
            },
            Path::new("."),
        )
        .unwrap();
        assert!(!format!("{ok:?}").contains("canary"));
        assert!(ok.needs_device());
    }
}
