//! Push and SMS on the RADIUS side: starting (or joining) a login's push, hold mode, and
//! challenge mode's choice of method (push, SMS or TOTP) and its answers.
//!
//! Hold mode (per client `second_factor = "hold"`) is for logins that cannot answer a
//! prompt (EAP, MS-CHAPv2, RD Gateway): the directory's Accept is held while the request
//! task awaits the approval — an `await` on the registry, never a thread. A NAS retry of
//! the same login (same user, NAS and station; a new Identifier) joins the pending push
//! instead of sending another; exact retransmissions never get here (the duplicate
//! cache drops them while the first copy is in progress).

use std::time::Duration;

use tokio::time::Instant;

use zeroize::Zeroizing;

use super::access::{issue_challenge, reject, release};
use super::{Answer, Handled};
use crate::approval::{ApprovalId, Begin, LoginKey, Refusal, Status};
use crate::challenge::{Asked, Binding, Granted, Pending};
use crate::config::{Language, Unenrolled};
use crate::daemon::Context;
use crate::factor::push::{PushRequest, Topic};
use crate::factor::sms::{SmsSettings, is_sms_request};
use crate::factor::{FailMode, Method};
use crate::mfa::{self, CodeCheck};
use crate::origin::find_origin;
use crate::policy::Decision;
use crate::radius::{Keying, Packet};
use crate::store::{CodeCheck as SmsCheck, CodePurpose};
use crate::store::{Store, User};

/// How long an empty answer to a push challenge (the user pressed Enter) waits for the
/// approval before the prompt is shown again.
pub(super) const ENTER_WAIT: Duration = Duration::from_secs(3);

/// One login that passed the directory and needs its second factor.
pub(super) struct Login<'a> {
    /// The daemon's shared state.
    pub(super) ctx: &'a Context,
    /// The NAS client's name: the gateway the push names.
    pub(super) client_name: &'a str,
    /// The Access-Request being answered.
    pub(super) request: &'a Packet,
    /// The NAS's keying for this request (to re-encrypt the held Accept).
    pub(super) nas: Keying<'a>,
    /// Who, through which NAS, from which station.
    pub(super) binding: &'a Binding,
    /// The policy's decision (its site is named in logs and the push).
    pub(super) decision: &'a Decision,
    /// The origin as the push shows it: the user's address, or `unknown`.
    pub(super) origin: String,
}

impl<'a> Login<'a> {
    /// The login's details; the origin is read again from the request (as the policy did).
    pub(super) fn new(
        ctx: &'a Context,
        client: &'a crate::config::ClientSettings,
        request: &'a Packet,
        nas: Keying<'a>,
        binding: &'a Binding,
        decision: &'a Decision,
    ) -> Self {
        let origin = find_origin(&client.origin, request, binding.nas)
            .ip()
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        Self {
            ctx,
            client_name: &client.name,
            request,
            nas,
            binding,
            decision,
            origin,
        }
    }

    fn user_text(&self) -> String {
        crate::audit::escape(self.binding.user.as_bytes())
    }
}

/// A login's push: pending (sent now, or joined), or settled without one.
pub(super) enum Push {
    /// Wait on this approval; `number` is the one the prompt shows (number matching).
    Pending {
        /// The approval.
        id: ApprovalId,
        /// The number to show, if number matching is on.
        number: Option<u8>,
    },
    /// A remembered answer to this same login: approved (`true`) or denied.
    Remembered(bool),
    /// No push could be sent: Reject for `reason`, or let the login through when the
    /// provider is down and `fail_mode = "open"`.
    Failed {
        /// The reason code.
        reason: &'static str,
        /// Fail open (already logged).
        open: bool,
    },
}

/// Whether push can reach `user` with the configured provider: ntfy needs a device, a
/// webhook integration finds the user's phone itself.
pub(super) fn can_push(ctx: &Context, user: &User) -> bool {
    match (&ctx.settings.push, &ctx.approvals) {
        (Some(push), Some(_)) => !push.needs_device() || user.has_method(Method::Push),
        _ => false,
    }
}

/// The store failed (logged where it happened): fail closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StoreFailed;

/// The user's record, read on the store's reader thread.
pub(super) async fn lookup(store: &Store, user: &str) -> Result<Option<User>, StoreFailed> {
    let user = user.to_owned();
    store.read(move |s| s.user(&user)).await.map_err(|e| {
        tracing::error!("user store: {e}");
        StoreFailed
    })
}

/// Starts the login's push, or joins the one already pending for it. `prompt`: the
/// login shows a prompt (challenge mode), so number matching can apply.
pub(super) async fn start(login: &Login<'_>, prompt: bool) -> Push {
    let (Some(approvals), Some(push), Some(api), Some(store)) = (
        login.ctx.approvals.as_ref(),
        login.ctx.settings.push.as_ref(),
        login.ctx.settings.approval.as_ref(),
        login.ctx.store.as_ref(),
    ) else {
        return Push::Failed {
            reason: "push_unavailable",
            open: false,
        };
    };
    let key = LoginKey::from(login.binding);
    let begun = if prompt {
        approvals.begin(key)
    } else {
        approvals.begin_without_number(key)
    };
    let started = match begun {
        Ok(Begin::New(started)) => started,
        Ok(Begin::Joined(id)) => {
            let number = approvals.number(id);
            return Push::Pending { id, number };
        }
        Ok(Begin::Approved) => return Push::Remembered(true),
        Ok(Begin::Denied) => return Push::Remembered(false),
        Err(Refusal::Capped { alert, .. }) => {
            if alert {
                tracing::warn!(user = %login.user_text(),
                    "push cap reached: push disabled for this user for a while (push fatigue?)");
            }
            return Push::Failed {
                reason: "push_capped",
                open: false,
            };
        }
        Err(Refusal::Full) => {
            return Push::Failed {
                reason: "approvals_full",
                open: false,
            };
        }
    };
    let user = login.binding.user.clone();
    // On the store's reader thread, like every other read on the login path: a burst of
    // held logins must not start a blocking-pool thread each.
    let topics = match store.read(move |s| s.push_topics(&user)).await {
        Ok(devices) => devices.into_iter().map(|(_, t)| t).collect::<Vec<Topic>>(),
        Err(e) => {
            tracing::error!("user store: {e}");
            approvals.finish(started.id);
            return Push::Failed {
                reason: "store_failed",
                open: false,
            };
        }
    };
    let links = api.links(&started);
    let request = PushRequest {
        user: &login.binding.user,
        gateway: login.client_name,
        origin: &login.origin,
        site: login.decision.site.as_ref().map(|s| s.name.as_str()),
        links: &links,
        expires_in: started.expires_in,
    };
    match push.send(&request, &topics).await {
        Ok(()) => Push::Pending {
            id: started.id,
            number: started.number,
        },
        Err(e) => {
            approvals.finish(started.id);
            let site = login.binding.site.as_deref();
            let open =
                e.is_outage() && login.ctx.settings.fail_mode(Method::Push, site) == FailMode::Open;
            if open {
                tracing::warn!(user = %login.user_text(), method = "push",
                    site = site.unwrap_or("-"),
                    "push provider unreachable ({e}): login let through without a second factor (fail_mode = \"open\")");
            } else {
                tracing::warn!(user = %login.user_text(), "push not sent: {e}");
            }
            Push::Failed {
                reason: if open {
                    "push_fail_open"
                } else {
                    "push_unavailable"
                },
                open,
            }
        }
    }
}

/// Hold mode: push, and hold the directory's Accept until the phone answers or `timeout`
/// passes. A pending push is left pending at the timeout: the NAS's retry joins it, and
/// an approval that comes late is remembered for that retry.
pub(super) async fn hold(login: &Login<'_>, granted: Granted, timeout: Duration) -> Handled {
    let (ctx, request, nas) = (login.ctx, login.request, login.nas);
    let Some(store) = ctx.store.as_ref() else {
        return Ok(reject(request, "no_store"));
    };
    let user = match lookup(store, &login.binding.user).await {
        Ok(Some(u)) if !u.enabled => return Ok(reject(request, "user_disabled")),
        Ok(Some(u)) => u,
        Ok(None) => return unenrolled(login, granted),
        Err(StoreFailed) => return Ok(reject(request, "store_failed")),
    };
    if !can_push(ctx, &user) {
        return if user.preferred_method().is_none() {
            unenrolled(login, granted)
        } else {
            // TOTP or SMS only: a login that cannot show a prompt cannot use them.
            Ok(reject(request, "second_factor_unsupported"))
        };
    }
    // Boxed: the push's HTTP call is done before the wait begins, and its space must not
    // stay part of every held login for the whole hold.
    let id = match Box::pin(start(login, false)).await {
        Push::Pending { id, .. } => id,
        Push::Remembered(true) => return release(ctx, request, nas, granted, "push_remembered"),
        // Counted once, when the phone denied: not again for each retry.
        Push::Remembered(false) => return Ok(reject(request, "push_denied_before")),
        Push::Failed { open: true, reason } => return release(ctx, request, nas, granted, reason),
        Push::Failed { reason, .. } => return Ok(reject(request, reason)),
    };
    let Some(approvals) = ctx.approvals.as_ref() else {
        return Ok(reject(request, "push_unavailable"));
    };
    match approvals.wait(id, Instant::now() + timeout).await {
        Status::Approved => release(ctx, request, nas, granted, "push_approved"),
        Status::Denied(_) => Ok(reject(request, "push_denied")),
        Status::Pending => Ok(reject(request, "push_timeout")),
        Status::Expired => Ok(reject(request, "push_expired")),
    }
}

/// A user with no second factor at all: `mfa.unenrolled` decides.
pub(super) fn unenrolled(login: &Login<'_>, granted: Granted) -> Handled {
    let ctx = login.ctx;
    if ctx.settings.mfa.unenrolled == Unenrolled::Allow {
        tracing::warn!(user = %login.user_text(), rule = %login.decision.rule_text(),
            "unenrolled user let through without a second factor (mfa.unenrolled = \"allow\")");
        return release(ctx, login.request, login.nas, granted, "unenrolled_allowed");
    }
    Ok(reject(login.request, "unenrolled"))
}

/// Whether `method` can be used for this user now, with what is configured.
fn usable(ctx: &Context, user: &User, method: Method) -> bool {
    match method {
        Method::Push => can_push(ctx, user),
        Method::Sms => ctx.settings.sms.is_some() && user.has_method(Method::Sms),
        Method::Totp => user.has_method(Method::Totp),
    }
}

/// Challenge mode, first round: ask for the user's preferred usable method (push, SMS or
/// TOTP). When push or SMS cannot be sent, a TOTP app still works; without one, the
/// provider's `fail_mode` decides.
pub(super) async fn first_challenge(login: &Login<'_>, granted: Granted) -> Handled {
    let (ctx, request) = (login.ctx, login.request);
    let Some(store) = ctx.store.as_ref() else {
        return Ok(reject(request, "no_store"));
    };
    let user = match lookup(store, &login.binding.user).await {
        Ok(Some(u)) if !u.enabled => return Ok(reject(request, "user_disabled")),
        Ok(Some(u)) => u,
        Ok(None) => return unenrolled(login, granted),
        Err(StoreFailed) => return Ok(reject(request, "store_failed")),
    };
    let totp = usable(ctx, &user, Method::Totp);
    let method = std::iter::once(user.default_method)
        .chain(Method::ALL)
        .find(|&m| usable(ctx, &user, m));
    let binding = login.binding.clone();
    let failed = match method {
        // No method at all: `mfa.unenrolled` decides. Methods, but none configured here
        // (e.g. only a phone and no [sms]): never a reason to let the login through.
        None if user.preferred_method().is_none() => return unenrolled(login, granted),
        None => return Ok(reject(request, "second_factor_unavailable")),
        Some(Method::Totp) => return totp_challenge(ctx, request, binding, granted, 0),
        Some(Method::Push) => match start(login, true).await {
            Push::Pending { id, number } => {
                let prompt = push_prompt(ctx, number);
                return issue_challenge(
                    ctx,
                    request,
                    binding,
                    granted,
                    0,
                    Asked::Push(id),
                    &prompt,
                );
            }
            Push::Remembered(true) => {
                return release(ctx, request, login.nas, granted, "push_remembered");
            }
            // Counted once, when the phone denied: not again for each retry.
            Push::Remembered(false) => return Ok(reject(request, "push_denied_before")),
            Push::Failed { open, reason } => (open, reason),
        },
        Some(Method::Sms) => match send_sms(ctx, store, login.binding).await {
            Ok(prompt) => {
                return issue_challenge(ctx, request, binding, granted, 0, Asked::Sms, &prompt);
            }
            Err(failed) => failed,
        },
    };
    match failed {
        // TOTP needs no provider: offer it before failing open or closed.
        _ if totp => totp_challenge(ctx, request, binding, granted, 0),
        (true, reason) => release(ctx, request, login.nas, granted, reason),
        (false, reason) => Ok(reject(request, reason)),
    }
}

fn totp_challenge(
    ctx: &Context,
    request: &Packet,
    binding: Binding,
    granted: Granted,
    attempts: u32,
) -> Handled {
    let prompt = ctx.settings.mfa.prompt.clone();
    issue_challenge(
        ctx,
        request,
        binding,
        granted,
        attempts,
        Asked::Code,
        &prompt,
    )
}

fn push_prompt(ctx: &Context, number: Option<u8>) -> String {
    let language = ctx
        .settings
        .push
        .as_ref()
        .map_or(crate::factor::push::Language::En, |p| p.language());
    language.challenge_prompt(number)
}

/// Sends a login code by SMS to the bound user. `Ok`: the prompt naming the (masked)
/// number. `Err`: fail open (`true`, logged) or closed, with the reason; the login's site
/// (carried in the binding, also for an answer to a challenge) picks the `fail_mode`.
async fn send_sms(
    ctx: &Context,
    store: &Store,
    binding: &Binding,
) -> Result<String, (bool, &'static str)> {
    let user = binding.user.as_str();
    let Some(sms) = ctx.settings.sms.as_ref() else {
        return Err((false, "sms_unavailable"));
    };
    match sms.send_code(store, user, CodePurpose::Login).await {
        Ok(phone) => Ok(match ctx.settings.mfa.language {
            Language::Nb => format!("Koden er sendt til {}. Skriv den inn.", phone.masked()),
            Language::En => format!("A code was sent to {}. Enter it.", phone.masked()),
        }),
        Err(e) => {
            let site = binding.site.as_deref();
            let open = e.is_outage() && ctx.settings.fail_mode(Method::Sms, site) == FailMode::Open;
            let who = crate::audit::escape(user.as_bytes());
            if open {
                tracing::warn!(user = %who, method = "sms", site = site.unwrap_or("-"),
                    "SMS gateway unreachable ({e}): login let through without a second factor (fail_mode = \"open\")");
                Err((true, "sms_fail_open"))
            } else {
                tracing::warn!(user = %who, "SMS code not sent: {e}");
                Err((false, "sms_unavailable"))
            }
        }
    }
}

/// The answer to a push or SMS challenge.
///
/// Push: Enter (an empty answer) waits up to [`ENTER_WAIT`] for the phone; `sms` sends a
/// code instead; anything else is checked as a TOTP code. SMS: the code sent.
pub(super) async fn answer(
    ctx: &Context,
    request: &Packet,
    nas: Keying<'_>,
    typed: Option<Zeroizing<Vec<u8>>>,
    pending: Pending,
) -> Handled {
    let Some(store) = ctx.store.as_ref() else {
        return Ok(reject(request, "no_store"));
    };
    let typed = typed
        .map(|t| Zeroizing::new(String::from_utf8_lossy(&t).trim().to_owned()))
        .unwrap_or_default();
    match pending.asked {
        Asked::Push(id) if typed.is_empty() => enter(ctx, request, nas, id, pending).await,
        Asked::Push(id) if is_sms_request(&typed) => {
            if let Some(a) = &ctx.approvals {
                a.finish(id);
            }
            match send_sms(ctx, store, &pending.binding).await {
                // A new challenge: the SMS code's own attempts bound it.
                Ok(prompt) => issue_challenge(
                    ctx,
                    request,
                    pending.binding,
                    pending.accept,
                    0,
                    Asked::Sms,
                    &prompt,
                ),
                Err((true, reason)) => release(ctx, request, nas, pending.accept, reason),
                Err((false, reason)) => Ok(reject(request, reason)),
            }
        }
        Asked::Push(id) => {
            let check = mfa::check_code(
                store,
                &pending.binding.user,
                typed,
                ctx.settings.mfa.totp_skew,
            )
            .await;
            match check {
                CodeCheck::Accepted => {
                    if let Some(a) = &ctx.approvals {
                        a.finish(id);
                    }
                    release(ctx, request, nas, pending.accept, "otp_ok")
                }
                CodeCheck::Wrong => again(ctx, request, pending, "otp_bad"),
                other => Ok(reject(request, other.as_str())),
            }
        }
        Asked::Sms => sms_answer(ctx, request, nas, store, &typed, pending).await,
        Asked::Code => Ok(reject(request, "state_invalid")),
    }
}

/// Enter pressed on a push challenge: wait a little for the phone.
async fn enter(
    ctx: &Context,
    request: &Packet,
    nas: Keying<'_>,
    id: ApprovalId,
    pending: Pending,
) -> Handled {
    let Some(approvals) = ctx.approvals.as_ref() else {
        return Ok(reject(request, "push_unavailable"));
    };
    match approvals.wait(id, Instant::now() + ENTER_WAIT).await {
        Status::Approved => {
            // Delivered now: it must not let a later login through.
            approvals.finish(id);
            release(ctx, request, nas, pending.accept, "push_approved")
        }
        Status::Denied(_) => {
            approvals.finish(id);
            Ok(reject(request, "push_denied"))
        }
        Status::Pending => again(ctx, request, pending, "push_timeout"),
        Status::Expired => Ok(reject(request, "push_expired")),
    }
}

/// The same push challenge once more (a wrong code, or not approved yet), within
/// `mfa.max_attempts`; then Reject for `reason`.
fn again(ctx: &Context, request: &Packet, pending: Pending, reason: &'static str) -> Handled {
    let Asked::Push(id) = pending.asked else {
        return Ok(reject(request, reason));
    };
    if pending.attempts + 1 >= ctx.settings.mfa.max_attempts {
        if let Some(a) = &ctx.approvals {
            a.finish(id);
        }
        return Ok(reject(request, reason));
    }
    let number = ctx.approvals.as_ref().and_then(|a| a.number(id));
    let prompt = push_prompt(ctx, number);
    let asked = issue_challenge(
        ctx,
        request,
        pending.binding,
        pending.accept,
        pending.attempts + 1,
        pending.asked,
        &prompt,
    )?;
    // A wrong code is a failure for the limiter; Enter before the phone answered is not.
    Ok(match reason {
        "otp_bad" => Answer { reason, ..asked },
        _ => asked,
    })
}

async fn sms_answer(
    ctx: &Context,
    request: &Packet,
    nas: Keying<'_>,
    store: &Store,
    typed: &str,
    pending: Pending,
) -> Handled {
    let check =
        SmsSettings::check_code(store, &pending.binding.user, CodePurpose::Login, typed).await;
    match check {
        Ok(SmsCheck::Accepted) => release(ctx, request, nas, pending.accept, "sms_ok"),
        Ok(SmsCheck::Wrong { attempts_left }) if attempts_left > 0 => {
            let prompt = ctx.settings.mfa.retry_prompt.clone();
            issue_challenge(
                ctx,
                request,
                pending.binding,
                pending.accept,
                pending.attempts + 1,
                Asked::Sms,
                &prompt,
            )
        }
        Ok(SmsCheck::Wrong { .. }) => Ok(reject(request, "sms_bad")),
        Ok(SmsCheck::Invalid) => Ok(reject(request, "sms_invalid")),
        Err(e) => {
            tracing::error!("user store: {e}");
            Ok(reject(request, "store_failed"))
        }
    }
}
