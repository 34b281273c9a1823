//! An Access-Request's way: our challenge, or policy → directory → second factor.
//!
//! 0. Limits: rates, lockouts, the spray shield ([`crate::limits`]); over a limit is a
//!    Reject with a generic message, and the directory is not asked.
//! 1. A State of ours: the user answers a challenge → [`answer_challenge`]. Other
//!    States (EAP rounds, the directory's own challenges) go the normal way.
//! 2. Who and from where: normalise the user, find the origin, decide by policy.
//!    `Reject` (a deny site) never reaches the directory.
//! 3. Append mode with a second factor due: check the code *first*; a wrong code never
//!    reaches the directory, so a sprayed password cannot lock anyone out of AD.
//! 4. Ask the directory. Relay its Reject or Challenge (EAP). On Accept, decide again
//!    with the groups it names; pass through, or hold the Accept for the second factor:
//!    our challenge (push, SMS or TOTP), or hold mode's push ([`super::push`]).

use std::net::SocketAddr;

use zeroize::Zeroizing;

use super::{Answer, Drop, Handled, push, relay_reply};
use crate::challenge::{Asked, Binding, Challenges, Granted, Taken};
use crate::config::{ClientSettings, DirectoryMode, SecondFactorMode};
use crate::daemon::Context;
use crate::limits::{Attempt, REJECT_MESSAGE, Verdict};
use crate::mfa::{self, CodeCheck};
use crate::origin::find_origin;
use crate::policy::{
    Action, Decision, PolicyInput, SitePolicy, decide_after_accept, decide_before_directory,
    groups_from,
};
use crate::radius::{Code, Keying, Packet, attr};
use crate::relay;
use crate::sites::SiteConfig;
use crate::upstream::{Port, Reply};

/// Handles an Access-Request from `client`.
pub(super) async fn handle(
    ctx: &Context,
    client: &ClientSettings,
    src: SocketAddr,
    request: &Packet,
) -> Handled {
    let nas = Keying {
        secret: client.secret.expose(),
        authenticator: &request.authenticator,
    };
    let typed = relay::password(request, nas).map_err(|_| Drop::Malformed)?;
    let user = request.user_name().and_then(|u| ctx.normalize_user(u));
    let origin = find_origin(&client.origin, request, src.ip());
    let user_text = user.clone().unwrap_or_default();
    let input = PolicyInput {
        client_policy: client.policy,
        origin: &origin,
        user: &user_text,
    };
    let sites = ctx.sites.load();
    let before = decide_before_directory(&sites, &input);
    let trusted = client.policy == Some(SitePolicy::Trusted)
        || before
            .site
            .as_ref()
            .is_some_and(|s| s.policy == SitePolicy::Trusted);
    let attempt = Attempt {
        client: &client.name,
        user: request.user_name().unwrap_or_default(),
        origin: origin.ip(),
        trusted,
        continuation: request.state().is_some(),
    };
    if let Some(reason) = admit(ctx, &attempt).await {
        return Ok(limited(request, reason));
    }
    let login = Login {
        client,
        src,
        request,
        nas,
        user,
        input: &input,
        sites: &sites,
        before,
    };
    let answer = decide(ctx, login, typed).await?;
    note_outcome(ctx, &attempt, &answer);
    Ok(answer)
}

/// One login, as far as it is known before the directory answers.
struct Login<'a> {
    client: &'a ClientSettings,
    src: SocketAddr,
    request: &'a Packet,
    nas: Keying<'a>,
    user: Option<String>,
    input: &'a PolicyInput<'a>,
    /// The sites in force when the request arrived (a reload does not change them midway).
    sites: &'a SiteConfig,
    before: Decision,
}

/// The limits step: `None` to go on, or the reason for a generic Reject.
async fn admit(ctx: &Context, attempt: &Attempt<'_>) -> Option<&'static str> {
    let mut verdict = ctx.limiter.admit(attempt);
    // A lockout that `portvakt user unlock` may have lifted: the store has the last word
    // (read on the store's reader thread, not a blocking-pool thread per attempt: a spray
    // against locked accounts asks this on every try; on any error the user stays locked).
    if let (
        Verdict::Locked {
            ask_store: true, ..
        },
        Some(store),
    ) = (&verdict, &ctx.store)
    {
        let (store, name) = (
            store.clone(),
            String::from_utf8_lossy(attempt.user).into_owned(),
        );
        let row = store.read(move |s| s.lockout(&name)).await;
        if let Ok(row) = row
            && !ctx.limiter.confirm_lockout(attempt.user, row.as_ref())
        {
            verdict = ctx.limiter.admit(attempt);
        }
    }
    (!verdict.is_allow()).then(|| verdict.reason_code())
}

/// Tells the limiter how the login went, so failures lock and successes reset. Driven by
/// the answer's reason, so every path through [`decide`] is counted in one place.
fn note_outcome(ctx: &Context, attempt: &Attempt<'_>, answer: &Answer) {
    let limiter = &ctx.limiter;
    let persist = match (answer.reply.code, answer.reason) {
        (Code::AccessAccept, _) => limiter.note_success(attempt.user),
        (Code::AccessReject, "directory_reject") => limiter.note_directory_reject(attempt),
        (
            Code::AccessReject,
            "otp_bad" | "otp_replay" | "otp_missing" | "state_invalid" | "push_denied" | "sms_bad"
            | "sms_invalid",
        )
        | (Code::AccessChallenge, "otp_bad" | "sms_bad") => {
            limiter.note_second_factor_failure(attempt.user, attempt.trusted)
        }
        (Code::AccessChallenge, "challenge") => {
            limiter.note_directory_accept(attempt.user);
            None
        }
        _ => None,
    };
    if let (Some(persist), Some(store)) = (persist, ctx.store.clone()) {
        tokio::task::spawn_blocking(move || {
            if let Err(e) = persist.apply(&store) {
                tracing::error!("cannot record a lockout in the store: {e}");
            }
        });
    }
}

/// Our challenge, or policy → directory → second factor.
async fn decide(ctx: &Context, login: Login<'_>, typed: Option<Zeroizing<Vec<u8>>>) -> Handled {
    let Login {
        client,
        src,
        request,
        nas,
        user,
        input,
        sites,
        before,
    } = login;
    // Built only where a challenge needs it: a pass-through login never does, and these
    // are four allocations on every request.
    let bind = |user: &String| Binding {
        user: user.clone(),
        client: client.name.clone(),
        nas: src.ip(),
        station: request.attr(attr::CALLING_STATION_ID).map(<[u8]>::to_vec),
        site: before.site.as_ref().map(|s| s.name.clone()),
    };

    // Our State: the answer to our challenge. Anyone else's State (an EAP round, the
    // directory's own challenge) is decided like any other request below, so the final
    // Accept of such a conversation still needs the second factor.
    if let Some(state) = request.state().filter(|s| Challenges::is_ours(s)) {
        let Some(binding) = user.as_ref().map(bind) else {
            return Ok(reject(request, "state_invalid"));
        };
        return match ctx.challenges.take(state, &binding) {
            Taken::Found(pending) => {
                Box::pin(answer_challenge(ctx, request, nas, typed, *pending)).await
            }
            Taken::Refused | Taken::NotOurs => Ok(reject(request, "state_invalid")),
        };
    }

    let origin = input.origin;
    let described = format!("origin {origin}; {before}");
    // Each way out below uses it once: moved, not copied.
    let explained = move |mut a: Answer| {
        a.decision = Some(described);
        a
    };
    if before.action == Action::Reject {
        return Ok(explained(reject(request, "policy_deny")));
    }
    if before.action == Action::PassThrough && !before.groups_pending {
        let name = user.as_deref().unwrap_or_default();
        return forward(ctx, request, nas, typed, name, "pass_through")
            .await
            .map(explained);
    }
    let Some(user) = user else {
        // No usable User-Name, yet a second factor is due: nothing to check it against.
        return Ok(explained(reject(request, "bad_user_name")));
    };
    let binding = bind(&user);

    if let SecondFactorMode::Append { separator } = &client.second_factor
        && before.action == Action::SecondFactor
    {
        return Box::pin(appended(ctx, request, nas, typed, &user, separator))
            .await
            .map(explained);
    }

    let answer = ask_directory(ctx, request, typed, &user).await?;
    let Directory::Accepted(granted) = answer else {
        return answer.relay(ctx, request, nas).map(explained);
    };
    let after = match (&granted, before.groups_pending) {
        (Granted::Upstream(reply), true) => {
            decide_after_accept(sites, input, &groups_from(&reply.packet, sites.groups_from))
        }
        _ => before,
    };
    let explained = |mut a: Answer| {
        a.decision = Some(format!("origin {origin}; {after}"));
        a
    };
    match after.action {
        Action::Reject => Ok(explained(reject(request, "policy_deny"))),
        Action::PassThrough => release(ctx, request, nas, granted, "pass_through").map(explained),
        Action::SecondFactor => challenge(ctx, client, request, nas, granted, binding, &after)
            .await
            .map(explained),
    }
}

/// An Access-Reject for a limit, with the generic Reply-Message and no hint of which.
fn limited(request: &Packet, reason: &'static str) -> Answer {
    let message = crate::radius::Attribute {
        typ: attr::REPLY_MESSAGE,
        value: REJECT_MESSAGE.as_bytes().to_vec(),
    };
    Answer::local(
        relay::reply(request, Code::AccessReject, vec![message]),
        reason,
    )
}

/// The directory's answer to a password.
enum Directory {
    /// Yes: kept until the second factor is given.
    Accepted(Granted),
    /// A reply to relay as it is (Reject, or an upstream Challenge such as EAP).
    Relay(Reply),
    /// The built-in directory said no.
    LocalReject,
    /// The ceiling on requests to the directory is reached: not asked.
    Limited,
}

impl Directory {
    fn relay(self, ctx: &Context, request: &Packet, nas: Keying<'_>) -> Handled {
        match self {
            Self::Relay(reply) => {
                let reason = if reply.packet.code == Code::AccessReject {
                    "directory_reject"
                } else {
                    "upstream_round"
                };
                relay_reply(ctx, &reply, request, nas, reason)
            }
            Self::LocalReject => Ok(reject(request, "directory_reject")),
            Self::Limited => Ok(limited(request, "directory_limited")),
            Self::Accepted(_) => Err(Drop::BadUpstreamReply),
        }
    }
}

async fn ask_directory(
    ctx: &Context,
    request: &Packet,
    password: Option<Zeroizing<Vec<u8>>>,
    user: &str,
) -> Result<Directory, Drop> {
    if !ctx.limiter.check_directory().is_allow() {
        return Ok(Directory::Limited);
    }
    match ctx.settings.directory {
        DirectoryMode::Radius => {
            let out = relay::outgoing(request, password);
            let reply = ctx
                .upstreams
                .send(&out, Port::Auth, request.state())
                .await
                .map_err(Drop::Upstream)?;
            Ok(match reply.packet.code {
                Code::AccessAccept => Directory::Accepted(Granted::Upstream(reply)),
                _ => Directory::Relay(reply),
            })
        }
        DirectoryMode::Local => {
            let (Some(store), Some(password)) = (ctx.store.as_ref(), password) else {
                return Ok(Directory::LocalReject);
            };
            match mfa::check_local_password(store, user, password).await {
                Some(true) => Ok(Directory::Accepted(Granted::Local)),
                Some(false) => Ok(Directory::LocalReject),
                None => Err(Drop::StoreFailed),
            }
        }
    }
}

/// Forwards without a second factor (or for an upstream's own rounds) and relays the reply.
async fn forward(
    ctx: &Context,
    request: &Packet,
    nas: Keying<'_>,
    password: Option<Zeroizing<Vec<u8>>>,
    user: &str,
    reason: &'static str,
) -> Handled {
    match ask_directory(ctx, request, password, user).await? {
        Directory::Accepted(granted) => release(ctx, request, nas, granted, reason),
        other => other.relay(ctx, request, nas),
    }
}

/// Append mode: the code is checked before the directory sees the password.
async fn appended(
    ctx: &Context,
    request: &Packet,
    nas: Keying<'_>,
    typed: Option<Zeroizing<Vec<u8>>>,
    user: &str,
    separator: &str,
) -> Handled {
    let Some(store) = ctx.store.as_ref() else {
        return Ok(reject(request, "no_store"));
    };
    let Some((password, code)) = typed
        .as_deref()
        .and_then(|t| mfa::split_appended(t, separator, 6))
    else {
        return Ok(reject(request, "otp_missing"));
    };
    let check = mfa::check_code(store, user, code, ctx.settings.mfa.totp_skew).await;
    if check != CodeCheck::Accepted {
        return Ok(reject(request, check.as_str()));
    }
    match ask_directory(ctx, request, Some(password), user).await? {
        Directory::Accepted(granted) => release(ctx, request, nas, granted, "otp_ok"),
        other => other.relay(ctx, request, nas),
    }
}

/// Holds the directory's Accept and asks for the code.
async fn challenge(
    ctx: &Context,
    client: &ClientSettings,
    request: &Packet,
    nas: Keying<'_>,
    granted: Granted,
    binding: Binding,
    decision: &Decision,
) -> Handled {
    // An Accept whose hidden attributes cannot be carried to the NAS is dropped now, before
    // the user is asked for anything (a pass-through Accept is checked once, when relayed).
    if let Granted::Upstream(reply) = &granted {
        relay::reply_attributes(reply, nas, &ctx.settings.dictionary)
            .map_err(|_| Drop::BadUpstreamReply)?;
    }
    if let SecondFactorMode::Hold { timeout } = client.second_factor {
        let login = push::Login::new(ctx, client, request, nas, &binding, decision);
        // Boxed, here and at the other push and SMS steps: their futures (an HTTP call
        // to the provider) are large, and unboxed they would size every request's task,
        // pass-through included (see `pipeline::tests::request_task_stays_small`).
        return Box::pin(push::hold(&login, granted, timeout)).await;
    }
    // Only a PAP login can answer a code prompt: the answer comes back in User-Password.
    // EAP, MS-CHAP and CHAP gateways cannot (an Access-Challenge would break EAP, and
    // MS-CHAPv2 never shows the password): they need hold mode.
    let pap = request.has(attr::USER_PASSWORD) && !request.has(attr::EAP_MESSAGE);
    if !pap || client.second_factor != SecondFactorMode::Challenge {
        return Ok(reject(request, "second_factor_unsupported"));
    }
    let login = push::Login::new(ctx, client, request, nas, &binding, decision);
    Box::pin(push::first_challenge(&login, granted)).await
}

/// Sends an Access-Challenge with `prompt` and keeps the login under its new State.
pub(super) fn issue_challenge(
    ctx: &Context,
    request: &Packet,
    binding: Binding,
    granted: Granted,
    attempts: u32,
    asked: Asked,
    prompt: &str,
) -> Handled {
    let Some(state) = ctx
        .challenges
        .insert_asking(binding, granted, attempts, asked)
    else {
        return Ok(reject(request, "too_many_challenges"));
    };
    let mut attributes = Vec::with_capacity(3);
    for chunk in prompt
        .as_bytes()
        .chunks(crate::radius::packet::MAX_VALUE_LEN)
    {
        attributes.push(crate::radius::Attribute {
            typ: attr::REPLY_MESSAGE,
            value: chunk.to_vec(),
        });
    }
    attributes.push(crate::radius::Attribute {
        typ: attr::STATE,
        value: state.to_vec(),
    });
    // The limiter counts second-factor failures by these reasons (see `note_outcome`).
    let reason = match (attempts, asked) {
        (0, _) => "challenge",
        (_, Asked::Code) => "otp_bad",
        (_, Asked::Sms) => "sms_bad",
        // Enter before the phone answered: no failure (a wrong code says so itself).
        (_, Asked::Push(_)) => "push_pending",
    };
    Ok(Answer::local(
        relay::reply(request, Code::AccessChallenge, attributes),
        reason,
    ))
}

/// The user answered our challenge: check the code, then release the held Accept.
async fn answer_challenge(
    ctx: &Context,
    request: &Packet,
    nas: Keying<'_>,
    typed: Option<Zeroizing<Vec<u8>>>,
    pending: crate::challenge::Pending,
) -> Handled {
    if pending.asked != Asked::Code {
        return Box::pin(push::answer(ctx, request, nas, typed, pending)).await;
    }
    let Some(store) = ctx.store.as_ref() else {
        return Ok(reject(request, "no_store"));
    };
    let code = typed
        .map(|t| Zeroizing::new(String::from_utf8_lossy(&t).into_owned()))
        .unwrap_or_default();
    let check = mfa::check_code(
        store,
        &pending.binding.user,
        code,
        ctx.settings.mfa.totp_skew,
    )
    .await;
    match check {
        CodeCheck::Accepted => release(ctx, request, nas, pending.accept, "otp_ok"),
        CodeCheck::Wrong if pending.attempts + 1 < ctx.settings.mfa.max_attempts => {
            let prompt = ctx.settings.mfa.retry_prompt.clone();
            issue_challenge(
                ctx,
                request,
                pending.binding,
                pending.accept,
                pending.attempts + 1,
                Asked::Code,
                &prompt,
            )
        }
        // A replayed code is refused outright: it was seen before, so someone may be
        // reusing an observed code.
        other => Ok(reject(request, other.as_str())),
    }
}

/// Sends the held Accept, re-encrypted for the request being answered now (after a
/// challenge, the second one: its authenticator keys the MPPE keys and Tunnel-Password).
pub(super) fn release(
    ctx: &Context,
    request: &Packet,
    nas: Keying<'_>,
    granted: Granted,
    reason: &'static str,
) -> Handled {
    match granted {
        Granted::Upstream(reply) => relay_reply(ctx, &reply, request, nas, reason),
        Granted::Local => Ok(Answer::local(
            relay::reply(request, Code::AccessAccept, Vec::new()),
            reason,
        )),
    }
}

/// An Access-Reject with no reason on the wire (the reason goes to the log only).
pub(super) fn reject(request: &Packet, reason: &'static str) -> Answer {
    Answer::local(
        relay::reply(request, Code::AccessReject, Vec::new()),
        reason,
    )
}
