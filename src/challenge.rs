//! Pending second-factor challenges: our State → the login waiting for its code.
//!
//! A State is a bearer token, so it is 32 octets (a 4-octet tag that says "ours"
//! plus 28 from the CSPRNG), single use ([`Challenges::take`] removes it), short-lived,
//! and bound to the user, the NAS and the user's station: a State presented by another
//! user, through another NAS, or from another Calling-Station-Id is refused (and, being
//! taken, destroyed). The tag carries no user data (RFC 5080 §3); it lets portvakt
//! tell its own expired States from an upstream's (EAP) States, which are forwarded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::approval::ApprovalId;
use crate::radius::random;
use crate::upstream::Reply;

/// Marks a State as portvakt's own.
const TAG: &[u8; 4] = b"pvk1";
/// The length of our States.
pub const STATE_LEN: usize = 32;

/// What binds a challenge to the login that started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The normalised user name.
    pub user: String,
    /// The client (NAS) name.
    pub client: String,
    /// The NAS's source address.
    pub nas: IpAddr,
    /// Calling-Station-Id as sent (the user's station), if any.
    pub station: Option<Vec<u8>>,
    /// The policy's site for the login (`None`: off-site or unknown origin): which
    /// site's `fail_mode` applies if a provider fails while answering the challenge.
    pub site: Option<String>,
}

/// The directory's yes, kept until the second factor is given.
#[derive(Debug)]
pub enum Granted {
    /// An upstream's Access-Accept, still encrypted under the upstream's keying.
    Upstream(Reply),
    /// portvakt's built-in directory accepted the password.
    Local,
}

/// What a challenge asked the user for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Asked {
    /// A TOTP code.
    #[default]
    Code,
    /// Approve this push, then press Enter (or type a TOTP code, or `sms`).
    Push(ApprovalId),
    /// The code just sent by SMS.
    Sms,
}

/// A login that passed the directory and waits for its second factor.
#[derive(Debug)]
pub struct Pending {
    /// What the challenge asked for.
    pub asked: Asked,
    /// Who and where.
    pub binding: Binding,
    /// The directory's Accept, released when the code is right.
    pub accept: Granted,
    /// Wrong codes so far.
    pub attempts: u32,
    /// When the challenge stops being valid.
    pub expires: Instant,
}

/// The result of presenting a State.
#[derive(Debug)]
pub enum Taken {
    /// Ours, valid, and bound to this login.
    Found(Box<Pending>),
    /// Ours, but expired, unknown or bound to another user, NAS or station: Reject.
    Refused,
    /// Not ours (an upstream's EAP or challenge State): forward it.
    NotOurs,
}

/// The pending challenges. A std mutex: every use is one insert, remove or purge,
/// never held across `.await`.
#[derive(Debug)]
pub struct Challenges {
    ttl: Duration,
    max: usize,
    pending: Mutex<HashMap<[u8; STATE_LEN], Pending>>,
}

impl Challenges {
    /// Challenges valid for `ttl`, at most `max` at once.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; STATE_LEN], Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a pending login and returns its new State, or `None` when the table is
    /// full of live challenges (an attack: the login is refused, memory stays bounded).
    pub fn insert(
        &self,
        binding: Binding,
        accept: Granted,
        attempts: u32,
    ) -> Option<[u8; STATE_LEN]> {
        self.insert_asking(binding, accept, attempts, Asked::Code)
    }

    /// [`Challenges::insert`] for a challenge that asked for `asked`.
    pub fn insert_asking(
        &self,
        binding: Binding,
        accept: Granted,
        attempts: u32,
        asked: Asked,
    ) -> Option<[u8; STATE_LEN]> {
        let mut state = [0u8; STATE_LEN];
        state[..4].copy_from_slice(TAG);
        random::fill(&mut state[4..]);
        let mut pending = self.lock();
        if pending.len() >= self.max {
            let now = Instant::now();
            pending.retain(|_, p| p.expires > now);
            if pending.len() >= self.max {
                return None;
            }
        }
        let expires = Instant::now() + self.ttl;
        pending.insert(
            state,
            Pending {
                asked,
                binding,
                accept,
                attempts,
                expires,
            },
        );
        Some(state)
    }

    /// Whether `state` has the form of one of our States (it may still be unknown or expired).
    pub fn is_ours(state: &[u8]) -> bool {
        state.len() == STATE_LEN && state.starts_with(TAG)
    }

    /// Takes the challenge for `state` if it is ours, live and bound to `binding`.
    /// Taking is final: a refused State is destroyed too.
    pub fn take(&self, state: &[u8], binding: &Binding) -> Taken {
        if state.len() != STATE_LEN || !state.starts_with(TAG) {
            return Taken::NotOurs;
        }
        // Length checked above.
        let key: [u8; STATE_LEN] = state.try_into().unwrap_or([0; STATE_LEN]);
        let Some(p) = self.lock().remove(&key) else {
            return Taken::Refused;
        };
        if p.expires <= Instant::now() || &p.binding != binding {
            return Taken::Refused;
        }
        Taken::Found(Box::new(p))
    }

    /// Forgets expired challenges. Called periodically.
    pub fn purge(&self) {
        let now = Instant::now();
        self.lock().retain(|_, p| p.expires > now);
    }

    /// Challenges pending.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(user: &str) -> Binding {
        Binding {
            user: user.into(),
            client: "vpn1".into(),
            nas: "127.0.0.1".parse().unwrap(),
            station: Some(b"203.0.113.7".to_vec()),
            site: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn single_use_bound_and_expiring() {
        let c = Challenges::new(Duration::from_secs(120), 100);
        let s = c.insert(binding("alice"), Granted::Local, 0).unwrap();
        assert!(matches!(c.take(&s, &binding("alice")), Taken::Found(_)));
        assert!(
            matches!(c.take(&s, &binding("alice")), Taken::Refused),
            "single use"
        );

        let s = c.insert(binding("alice"), Granted::Local, 0).unwrap();
        assert!(
            matches!(c.take(&s, &binding("bob")), Taken::Refused),
            "other user"
        );
        assert!(
            matches!(c.take(&s, &binding("alice")), Taken::Refused),
            "destroyed by the refusal"
        );

        let s = c.insert(binding("alice"), Granted::Local, 0).unwrap();
        let mut other_station = binding("alice");
        other_station.station = Some(b"198.51.100.1".to_vec());
        assert!(
            matches!(c.take(&s, &other_station), Taken::Refused),
            "other station"
        );

        let s = c.insert(binding("alice"), Granted::Local, 0).unwrap();
        tokio::time::advance(Duration::from_secs(121)).await;
        assert!(
            matches!(c.take(&s, &binding("alice")), Taken::Refused),
            "expired"
        );
    }

    #[test]
    fn foreign_states_are_not_ours_and_random_ones_are_refused() {
        let c = Challenges::new(Duration::from_secs(120), 100);
        assert!(matches!(
            c.take(b"upstream-eap-state", &binding("a")),
            Taken::NotOurs
        ));
        let mut forged = [7u8; STATE_LEN];
        forged[..4].copy_from_slice(TAG);
        assert!(matches!(c.take(&forged, &binding("a")), Taken::Refused));
    }

    #[test]
    fn bounded() {
        let c = Challenges::new(Duration::from_secs(120), 2);
        assert!(c.insert(binding("a"), Granted::Local, 0).is_some());
        assert!(c.insert(binding("b"), Granted::Local, 0).is_some());
        assert!(c.insert(binding("c"), Granted::Local, 0).is_none());
    }

    #[test]
    fn states_are_unique_and_carry_no_user_data() {
        let c = Challenges::new(Duration::from_secs(120), 10_000);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..5_000 {
            let s = c.insert(binding("alice"), Granted::Local, 0).unwrap();
            assert!(!s.windows(5).any(|w| w == b"alice"));
            assert!(seen.insert(s));
        }
    }
}
