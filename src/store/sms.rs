//! SMS one-time codes and the send log.
//!
//! [`Store::issue_sms_code`] is one `BEGIN IMMEDIATE` transaction: it reads the user's
//! number, checks the send limits against the log (`factor::sms::check_limits`), records
//! the send, and replaces the user's code. Two concurrent requests therefore cannot both
//! pass a limit, and the limits survive a restart. The code itself is stored only as
//! `HMAC(mac key, user ‖ purpose ‖ nonce ‖ code)` (see `seal::MacKey` for why), bound to the
//! number it goes to.
//!
//! [`Store::check_sms_code`] is single use: the right code deletes the row; a wrong one
//! uses up an attempt, and the last attempt deletes it; an expired code, or one whose
//! number has changed since, is deleted and refused.

use super::pool::Cached;
use rusqlite::{OptionalExtension, Transaction, params};
use std::hash::{Hash, Hasher};
use subtle::ConstantTimeEq;

use super::{Store, StoreError, now, user_id};
use crate::factor::phone::Phone;
use crate::factor::sms::{CodeSettings, DAY_SECS, Limited, SendHistory, SmsLimits, check_limits};

/// What a code is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    /// A login: sent to the verified number.
    Login,
    /// Confirming a new number: sent to the pending number, which the right code verifies.
    Enrol,
}

impl CodePurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Enrol => "enrol",
        }
    }
}

/// A code recorded and ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCode {
    /// Where to send it.
    pub phone: Phone,
    /// When it stops being valid (Unix seconds).
    pub expires_at: i64,
}

/// The result of checking a typed code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    /// Right, in time, and now used up. For [`CodePurpose::Enrol`] the pending number is
    /// now the verified one.
    Accepted,
    /// Wrong; the code survives for `attempts_left` more tries.
    Wrong {
        /// Tries left (0 means the code is gone).
        attempts_left: u32,
    },
    /// No live code: never sent, already used, expired, out of attempts, or sent to a
    /// number that is no longer the user's.
    Invalid,
}

/// A stored code: purpose, number key, nonce, MAC, expiry, attempts left.
type CodeRow = (String, Vec<u8>, Vec<u8>, Vec<u8>, i64, u32);

/// Nonce bytes mixed into each code's HMAC, so equal codes never give equal rows.
const NONCE_BYTES: usize = 16;

impl Store {
    /// Records a new `code` for the user and the send, if the limits allow, and returns
    /// where to send it. `Ok(Err(limited))` means nothing was recorded and nothing may be
    /// sent. Fails with [`StoreError::NoPhone`] if the user has no number for `purpose`
    /// (a verified one for logins, a pending one for enrolment).
    pub fn issue_sms_code(
        &self,
        name: &str,
        purpose: CodePurpose,
        code: &str,
        codes: &CodeSettings,
        limits: &SmsLimits,
    ) -> Result<Result<IssuedCode, Limited>, StoreError> {
        self.issue_sms_code_at(name, purpose, code, codes, limits, now())
    }

    pub(crate) fn issue_sms_code_at(
        &self,
        name: &str,
        purpose: CodePurpose,
        code: &str,
        codes: &CodeSettings,
        limits: &SmsLimits,
        now: i64,
    ) -> Result<Result<IssuedCode, Limited>, StoreError> {
        let name = self.normalize(name)?;
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(StoreError::Random)?;
        let mac = self.code_mac(&name, purpose, &nonce, code);
        let ttl = i64::try_from(codes.ttl.as_secs()).unwrap_or(i64::MAX);
        self.write(|tx| {
            let id = user_id(tx, &name)?;
            let (phone, number_key) = self
                .phone_row(tx, &name, purpose == CodePurpose::Login)?
                .ok_or_else(|| StoreError::NoPhone(name.clone()))?;
            if let Err(limited) = within_limits(tx, id, &number_key, limits, now)? {
                return Ok(Err(limited));
            }
            tx.exec(
                "INSERT INTO sms_sends (user_id, number_key, sent_at) VALUES (?1, ?2, ?3)",
                params![id, number_key, now],
            )?;
            tx.exec(
                "DELETE FROM sms_sends WHERE sent_at <= ?1",
                [now - DAY_SECS],
            )?;
            let expires_at = now.saturating_add(ttl);
            tx.exec(
                "INSERT OR REPLACE INTO sms_codes \
                 (user_id, purpose, number_key, nonce, mac, expires_at, attempts_left) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    id,
                    purpose.as_str(),
                    number_key,
                    &nonce[..],
                    &mac[..],
                    expires_at,
                    codes.max_attempts
                ],
            )?;
            Ok(Ok(IssuedCode { phone, expires_at }))
        })
    }

    /// Checks a code the user typed (spaces and `-` ignored). See [`CodeCheck`].
    pub fn check_sms_code(
        &self,
        name: &str,
        purpose: CodePurpose,
        typed: &str,
    ) -> Result<CodeCheck, StoreError> {
        self.check_sms_code_at(name, purpose, typed, now())
    }

    pub(crate) fn check_sms_code_at(
        &self,
        name: &str,
        purpose: CodePurpose,
        typed: &str,
        now: i64,
    ) -> Result<CodeCheck, StoreError> {
        let name = self.normalize(name)?;
        let typed: zeroize::Zeroizing<String> =
            zeroize::Zeroizing::new(typed.chars().filter(|c| !matches!(c, ' ' | '-')).collect());
        self.write(|tx| {
            let id = user_id(tx, &name)?;
            let row: Option<CodeRow> = tx
                .row(
                    "SELECT purpose, number_key, nonce, mac, expires_at, attempts_left \
                     FROM sms_codes WHERE user_id = ?1",
                    [id],
                    |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                        ))
                    },
                )
                .optional()?;
            let Some((stored_purpose, number_key, nonce, mac, expires_at, attempts_left)) = row
            else {
                return Ok(CodeCheck::Invalid);
            };
            let current_key = self
                .phone_row(tx, &name, purpose == CodePurpose::Login)?
                .map(|(_, key)| key);
            let live = stored_purpose == purpose.as_str()
                && now < expires_at
                && attempts_left > 0
                && current_key.as_deref() == Some(&number_key[..]);
            if !live {
                delete_code(tx, id)?;
                return Ok(CodeCheck::Invalid);
            }
            let candidate = self.code_mac(&name, purpose, &nonce, &typed);
            if bool::from(candidate.ct_eq(&mac[..])) && !typed.is_empty() {
                delete_code(tx, id)?;
                if purpose == CodePurpose::Enrol {
                    promote_pending_phone(tx, id)?;
                }
                return Ok(CodeCheck::Accepted);
            }
            let left = attempts_left - 1;
            if left == 0 {
                delete_code(tx, id)?;
            } else {
                tx.exec(
                    "UPDATE sms_codes SET attempts_left = ?2 WHERE user_id = ?1",
                    params![id, left],
                )?;
            }
            Ok(CodeCheck::Wrong {
                attempts_left: left,
            })
        })
    }

    fn code_mac(&self, name: &str, purpose: CodePurpose, nonce: &[u8], code: &str) -> [u8; 32] {
        self.inner.mac_key.mac(&[
            b"portvakt/sms-code/v1",
            name.as_bytes(),
            purpose.as_str().as_bytes(),
            nonce,
            code.as_bytes(),
        ])
    }
}

/// Reads the send log and applies the limit rule.
fn within_limits(
    tx: &Transaction<'_>,
    user: i64,
    number_key: &[u8],
    limits: &SmsLimits,
    now: i64,
) -> Result<Result<(), Limited>, StoreError> {
    let since = now - DAY_SECS;
    let times = |sql: &str, key: &dyn rusqlite::ToSql| -> Result<Vec<i64>, StoreError> {
        let mut stmt = tx.prepare_cached(sql)?;
        let rows = stmt
            .query_map(params![key, since], |r| r.get(0))?
            .collect::<Result<Vec<i64>, _>>()?;
        Ok(rows)
    };
    let user_times = times(
        "SELECT sent_at FROM sms_sends WHERE user_id = ?1 AND sent_at > ?2 ORDER BY sent_at",
        &user,
    )?;
    let number_times = times(
        "SELECT sent_at FROM sms_sends WHERE number_key = ?1 AND sent_at > ?2 ORDER BY sent_at",
        &number_key,
    )?;
    let total: i64 = tx.row(
        "SELECT count(*) FROM sms_sends WHERE sent_at > ?1",
        [since],
        |r| r.get(0),
    )?;
    // Jitter from the user and the last send: stable between checks, so retrying does
    // not roll the dice again.
    let mut hasher = std::hash::DefaultHasher::new();
    (user, user_times.last()).hash(&mut hasher);
    let history = SendHistory {
        user: &user_times,
        number: &number_times,
        total: u64::try_from(total).unwrap_or(0),
    };
    Ok(check_limits(limits, history, now, hasher.finish()))
}

fn delete_code(tx: &Transaction<'_>, user: i64) -> Result<(), StoreError> {
    tx.exec("DELETE FROM sms_codes WHERE user_id = ?1", [user])?;
    Ok(())
}

/// The pending number becomes the verified one (the old verified one goes).
fn promote_pending_phone(tx: &Transaction<'_>, user: i64) -> Result<(), StoreError> {
    tx.exec(
        "DELETE FROM phones WHERE user_id = ?1 AND verified = 1",
        [user],
    )?;
    tx.exec(
        "UPDATE phones SET verified = 1 WHERE user_id = ?1 AND verified = 0",
        [user],
    )?;
    tx.exec(
        "UPDATE users SET updated_at = ?2 WHERE id = ?1",
        params![user, now()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::*;

    const T0: i64 = 1_800_000_000;

    fn phone(text: &str) -> Phone {
        Phone::parse(text).unwrap()
    }

    fn setup() -> (tempfile::TempDir, Store) {
        let (dir, store) = temp_store();
        store.add_user("alice").unwrap();
        store
            .set_verified_phone("alice", &phone("+4790000001"))
            .unwrap();
        (dir, store)
    }

    fn issue(store: &Store, code: &str, at: i64) -> Result<IssuedCode, Limited> {
        store
            .issue_sms_code_at(
                "alice",
                CodePurpose::Login,
                code,
                &CodeSettings::default(),
                &SmsLimits::default(),
                at,
            )
            .unwrap()
    }

    fn check(store: &Store, code: &str, at: i64) -> CodeCheck {
        store
            .check_sms_code_at("alice", CodePurpose::Login, code, at)
            .unwrap()
    }

    #[test]
    fn a_code_is_single_use() {
        let (_dir, store) = setup();
        let issued = issue(&store, "123456", T0).unwrap();
        assert_eq!(issued.phone, phone("+4790000001"));
        assert_eq!(issued.expires_at, T0 + 300);
        assert_eq!(check(&store, "123 456", T0 + 10), CodeCheck::Accepted);
        assert_eq!(
            check(&store, "123456", T0 + 11),
            CodeCheck::Invalid,
            "reuse rejected"
        );
    }

    #[test]
    fn codes_expire_after_five_minutes() {
        let (_dir, store) = setup();
        issue(&store, "123456", T0).unwrap();
        assert_eq!(check(&store, "123456", T0 + 300), CodeCheck::Invalid);
        assert_eq!(
            check(&store, "123456", T0 + 1),
            CodeCheck::Invalid,
            "and it is gone"
        );
    }

    #[test]
    fn three_wrong_attempts_destroy_the_code() {
        let (_dir, store) = setup();
        issue(&store, "123456", T0).unwrap();
        assert_eq!(
            check(&store, "000000", T0 + 1),
            CodeCheck::Wrong { attempts_left: 2 }
        );
        assert_eq!(
            check(&store, "", T0 + 2),
            CodeCheck::Wrong { attempts_left: 1 }
        );
        assert_eq!(
            check(&store, "111111", T0 + 3),
            CodeCheck::Wrong { attempts_left: 0 }
        );
        assert_eq!(check(&store, "123456", T0 + 4), CodeCheck::Invalid);
    }

    #[test]
    fn a_new_code_invalidates_the_previous_one() {
        let (_dir, store) = setup();
        issue(&store, "111111", T0).unwrap();
        issue(&store, "222222", T0 + 60).unwrap();
        assert_eq!(
            check(&store, "111111", T0 + 61),
            CodeCheck::Wrong { attempts_left: 2 }
        );
        assert_eq!(check(&store, "222222", T0 + 62), CodeCheck::Accepted);
    }

    #[test]
    fn codes_are_stored_as_macs() {
        let (dir, store) = setup();
        issue(&store, "987654", T0).unwrap();
        let conn = store.inner.pool.get().unwrap();
        let mac: Vec<u8> = conn
            .query_row("SELECT mac FROM sms_codes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mac.len(), 32);
        drop(conn);
        drop(store);
        for file in ["users.db", "users.db-wal"] {
            let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&bytes).contains("987654"),
                "{file}"
            );
        }
    }

    #[test]
    fn limits_are_enforced_and_survive_a_restart() {
        let (dir, store) = setup();
        issue(&store, "111111", T0).unwrap();
        assert!(matches!(
            issue(&store, "222222", T0 + 30),
            Err(Limited::Cooldown { .. })
        ));
        assert_eq!(
            check(&store, "111111", T0 + 31),
            CodeCheck::Accepted,
            "refused send kept the old code"
        );
        issue(&store, "333333", T0 + 60).unwrap();
        issue(&store, "444444", T0 + 120).unwrap();
        drop(store);
        let store = Store::open(&dir.path().join("users.db"), &key(1)).unwrap();
        // Three within ten minutes: the fourth backs off for a minute (+ up to 15 s jitter).
        let limits = SmsLimits {
            cooldown: std::time::Duration::from_secs(10),
            ..SmsLimits::default()
        };
        let settings = CodeSettings::default();
        let at = |t| {
            store
                .issue_sms_code_at("alice", CodePurpose::Login, "555555", &settings, &limits, t)
                .unwrap()
        };
        assert!(matches!(at(T0 + 150), Err(Limited::Backoff { .. })));
        assert!(at(T0 + 120 + 76).is_ok());
    }

    #[test]
    fn per_number_limits_span_users() {
        let (_dir, store) = setup();
        store.add_user("bob").unwrap();
        store
            .set_verified_phone("bob", &phone("+4790000001"))
            .unwrap();
        issue(&store, "111111", T0).unwrap();
        let bob = store
            .issue_sms_code_at(
                "bob",
                CodePurpose::Login,
                "222222",
                &CodeSettings::default(),
                &SmsLimits::default(),
                T0 + 10,
            )
            .unwrap();
        assert!(
            matches!(bob, Err(Limited::Cooldown { .. })),
            "same number, other user"
        );
    }

    #[test]
    fn enrolment_codes_verify_the_pending_number_they_were_sent_to() {
        let (_dir, store) = setup();
        let settings = CodeSettings::default();
        let limits = SmsLimits::default();
        store
            .set_pending_phone("alice", &phone("+4790000002"))
            .unwrap();
        let issued = store
            .issue_sms_code_at(
                "alice",
                CodePurpose::Enrol,
                "111111",
                &settings,
                &limits,
                T0,
            )
            .unwrap()
            .unwrap();
        assert_eq!(issued.phone, phone("+4790000002"));
        // A login code check cannot consume an enrolment code.
        assert_eq!(check(&store, "111111", T0 + 1), CodeCheck::Invalid);
        store
            .issue_sms_code_at(
                "alice",
                CodePurpose::Enrol,
                "222222",
                &settings,
                &limits,
                T0 + 61,
            )
            .unwrap()
            .unwrap();
        // The pending number changes after the code was sent: the code is void.
        store
            .set_pending_phone("alice", &phone("+4790000003"))
            .unwrap();
        let void = store
            .check_sms_code_at("alice", CodePurpose::Enrol, "222222", T0 + 62)
            .unwrap();
        assert_eq!(void, CodeCheck::Invalid);
        assert_eq!(store.phone("alice").unwrap(), Some(phone("+4790000001")));

        store
            .issue_sms_code_at(
                "alice",
                CodePurpose::Enrol,
                "333333",
                &settings,
                &limits,
                T0 + 200,
            )
            .unwrap()
            .unwrap();
        let ok = store
            .check_sms_code_at("alice", CodePurpose::Enrol, "333333", T0 + 201)
            .unwrap();
        assert_eq!(ok, CodeCheck::Accepted);
        assert_eq!(store.phone("alice").unwrap(), Some(phone("+4790000003")));
        assert_eq!(store.pending_phone("alice").unwrap(), None);
    }

    #[test]
    fn no_number_no_code() {
        let (_dir, store) = temp_store();
        store.add_user("bob").unwrap();
        let err = store
            .issue_sms_code_at(
                "bob",
                CodePurpose::Login,
                "1",
                &CodeSettings::default(),
                &SmsLimits::default(),
                T0,
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::NoPhone(_)));
    }

    #[test]
    fn concurrent_checks_accept_once() {
        let (_dir, store) = setup();
        issue(&store, "123456", T0).unwrap();
        let accepted = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| check(&store, "123456", T0 + 5)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|c| *c == CodeCheck::Accepted)
                .count()
        });
        assert_eq!(accepted, 1);
    }
}
