//! A user's SMS and push methods: the phone number (pending until confirmed by a code,
//! then verified), push devices (ntfy topics), and the default method.
//!
//! Numbers and topics are personal data and, for topics, a secret (whoever knows a topic
//! can read its notifications), so both are sealed like TOTP secrets, bound to the user by
//! their AAD. A number also gets a `number_key` (an HMAC, see `seal::MacKey`) so the SMS
//! limits can count per number without reading it.

use super::pool::Cached;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use zeroize::Zeroizing;

use super::seal::field_aad;
use super::{Store, StoreError, now, user_id};
use crate::factor::Method;
use crate::factor::phone::Phone;
use crate::factor::push::Topic;

/// AAD labels: a sealed value opens only in the column it was written for.
const PHONE: &str = "phone";
const TOPIC: &str = "push-topic";

/// A push device as listed, without its topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushDevice {
    /// Its id (for `remove-push`).
    pub id: i64,
    /// The provider: `ntfy`.
    pub kind: String,
    /// A name for people ("Alice's work phone").
    pub label: String,
    /// When it was added (Unix seconds).
    pub created_at: u64,
}

/// One sealed row: key id, nonce, ciphertext.
type SealedRow = (u32, Vec<u8>, Vec<u8>);

impl Store {
    /// The lookup key of a number: HMAC of the E.164 form under the store's MAC key.
    pub(crate) fn number_key(&self, phone: &Phone) -> [u8; 32] {
        self.inner
            .mac_key
            .mac(&[b"portvakt/number/v1", phone.e164().as_bytes()])
    }

    fn seal_field(&self, label: &str, user: &str, plain: &[u8]) -> Result<SealedRow, StoreError> {
        let key_id = self.inner.key_id;
        let sealed = self
            .inner
            .sealer
            .seal(plain, &field_aad(label, user, key_id))?;
        Ok((key_id, sealed.nonce.to_vec(), sealed.ciphertext))
    }

    fn open_field(
        &self,
        label: &str,
        user: &str,
        row: &SealedRow,
    ) -> Result<Zeroizing<String>, StoreError> {
        let (key_id, nonce, sealed) = row;
        let tampered = || {
            StoreError::Corrupt(format!(
                "sealed {label} of user {user:?} fails authentication"
            ))
        };
        let plain = self
            .inner
            .sealer
            .open(nonce, sealed, &field_aad(label, user, *key_id))
            .ok_or_else(tampered)?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| tampered())?;
        Ok(Zeroizing::new(text))
    }

    /// Records `phone` as the user's **pending** number, replacing an earlier pending one.
    /// A verified number stays in use until the pending one is confirmed with an enrolment
    /// code (see [`Store::check_sms_code`]).
    pub fn set_pending_phone(&self, name: &str, phone: &Phone) -> Result<(), StoreError> {
        self.put_phone(name, phone, false)
    }

    /// Records `phone` as verified without a code: the administrator vouches for it
    /// (bulk provisioning from HR data). Replaces the verified and any pending number.
    pub fn set_verified_phone(&self, name: &str, phone: &Phone) -> Result<(), StoreError> {
        self.put_phone(name, phone, true)
    }

    fn put_phone(&self, name: &str, phone: &Phone, verified: bool) -> Result<(), StoreError> {
        let name = self.normalize(name)?;
        let (key_id, nonce, sealed) = self.seal_field(PHONE, &name, phone.e164().as_bytes())?;
        let number_key = self.number_key(phone);
        self.write(|tx| {
            let id = user_id(tx, &name)?;
            if verified {
                tx.exec("DELETE FROM phones WHERE user_id = ?1", [id])?;
            }
            tx.exec(
                "INSERT OR REPLACE INTO phones \
                 (user_id, verified, key_id, nonce, sealed, number_key, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![id, verified, key_id, nonce, sealed, &number_key[..], now()],
            )?;
            Ok(())
        })
    }

    /// The user's verified number, if any.
    pub fn phone(&self, name: &str) -> Result<Option<Phone>, StoreError> {
        self.read_phone(name, true)
    }

    /// The user's pending (unconfirmed) number, if any.
    pub fn pending_phone(&self, name: &str) -> Result<Option<Phone>, StoreError> {
        self.read_phone(name, false)
    }

    fn read_phone(&self, name: &str, verified: bool) -> Result<Option<Phone>, StoreError> {
        let name = self.normalize(name)?;
        let conn = self.inner.pool.get()?;
        self.phone_row(&conn, &name, verified)
            .map(|row| row.map(|(phone, _)| phone))
    }

    /// The user's number (verified or pending) and its number key, opened.
    pub(crate) fn phone_row(
        &self,
        conn: &Connection,
        name: &str,
        verified: bool,
    ) -> Result<Option<(Phone, Vec<u8>)>, StoreError> {
        let row: Option<(SealedRow, Vec<u8>)> = conn
            .row(
                "SELECT p.key_id, p.nonce, p.sealed, p.number_key FROM phones p \
                 JOIN users u ON u.id = p.user_id WHERE u.name = +?1 AND p.verified = +?2",
                params![name, verified],
                |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?)),
            )
            .optional()?;
        let Some((sealed, number_key)) = row else {
            return Ok(None);
        };
        let text = self.open_field(PHONE, name, &sealed)?;
        let phone = Phone::parse(&text)
            .map_err(|_| StoreError::Corrupt(format!("phone of user {name:?} is not E.164")))?;
        Ok(Some((phone, number_key)))
    }

    /// Removes the user's numbers (verified and pending) and any live SMS code. If SMS was
    /// the default method, the default goes back to push. Returns whether there was one.
    pub fn remove_phone(&self, name: &str) -> Result<bool, StoreError> {
        let name = self.normalize(name)?;
        self.write(|tx| {
            let id = user_id(tx, &name)?;
            let removed = tx.exec("DELETE FROM phones WHERE user_id = ?1", [id])?;
            tx.exec("DELETE FROM sms_codes WHERE user_id = ?1", [id])?;
            tx.exec(
                "UPDATE users SET default_method = 'push', updated_at = ?2 \
                 WHERE id = ?1 AND default_method = 'sms'",
                params![id, now()],
            )?;
            Ok(removed > 0)
        })
    }

    /// Adds an ntfy push device and returns its id.
    pub fn add_push_device(
        &self,
        name: &str,
        topic: &Topic,
        label: &str,
    ) -> Result<i64, StoreError> {
        let name = self.normalize(name)?;
        let (key_id, nonce, sealed) = self.seal_field(TOPIC, &name, topic.as_str().as_bytes())?;
        self.write(|tx| {
            let id = user_id(tx, &name)?;
            tx.exec(
                "INSERT INTO push_devices (user_id, kind, label, key_id, nonce, sealed, created_at) \
                 VALUES (?1, 'ntfy', ?2, ?3, ?4, ?5, ?6)",
                params![id, label, key_id, nonce, sealed, now()],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// The user's push devices, without topics, oldest first.
    pub fn push_devices(&self, name: &str) -> Result<Vec<PushDevice>, StoreError> {
        Ok(self
            .push_rows(name)?
            .into_iter()
            .map(|(device, _)| device)
            .collect())
    }

    /// The user's push devices with their topics opened — for sending a push only.
    pub fn push_topics(&self, name: &str) -> Result<Vec<(PushDevice, Topic)>, StoreError> {
        let name = self.normalize(name)?;
        self.push_rows(&name)?
            .into_iter()
            .map(|(device, sealed)| {
                let text = self.open_field(TOPIC, &name, &sealed)?;
                let topic = Topic::parse(&text).map_err(|_| {
                    StoreError::Corrupt(format!("push topic of user {name:?} is invalid"))
                })?;
                Ok((device, topic))
            })
            .collect()
    }

    fn push_rows(&self, name: &str) -> Result<Vec<(PushDevice, SealedRow)>, StoreError> {
        let name = self.normalize(name)?;
        let conn = self.inner.pool.get()?;
        user_id(&conn, &name)?;
        let mut stmt = conn.prepare_cached(
            "SELECT d.id, d.kind, d.label, d.created_at, d.key_id, d.nonce, d.sealed \
             FROM push_devices d JOIN users u ON u.id = d.user_id \
             WHERE u.name = +?1 ORDER BY d.id",
        )?;
        let rows = stmt
            .query_map([&name], |r| {
                let created_at: i64 = r.get(3)?;
                Ok((
                    PushDevice {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        label: r.get(2)?,
                        created_at: u64::try_from(created_at).unwrap_or(0),
                    },
                    (r.get(4)?, r.get(5)?, r.get(6)?),
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Removes one push device. If it was the last and push was the default, the default
    /// stays `push` (the seed's default): logins then fall back to the next method.
    pub fn remove_push_device(&self, name: &str, id: i64) -> Result<(), StoreError> {
        let name = self.normalize(name)?;
        self.write(|tx| {
            let user = user_id(tx, &name)?;
            match tx.exec(
                "DELETE FROM push_devices WHERE id = ?1 AND user_id = ?2",
                params![id, user],
            )? {
                0 => Err(StoreError::NoPushDevice {
                    user: name.clone(),
                    id,
                }),
                _ => Ok(()),
            }
        })
    }

    /// Sets the method a login asks for first. Refuses a method the user does not have
    /// (active TOTP, a verified number, at least one push device).
    pub fn set_default_method(&self, name: &str, method: Method) -> Result<(), StoreError> {
        let name = self.normalize(name)?;
        self.write(|tx| {
            let id = user_id(tx, &name)?;
            let sql = match method {
                Method::Totp => {
                    "SELECT EXISTS (SELECT 1 FROM totp WHERE user_id = ?1 AND active = 1)"
                }
                Method::Sms => {
                    "SELECT EXISTS (SELECT 1 FROM phones WHERE user_id = ?1 AND verified = 1)"
                }
                Method::Push => "SELECT EXISTS (SELECT 1 FROM push_devices WHERE user_id = ?1)",
            };
            let enrolled: bool = tx.row(sql, [id], |r| r.get(0))?;
            if !enrolled {
                return Err(StoreError::NotEnrolled {
                    user: name.clone(),
                    method,
                });
            }
            tx.exec(
                "UPDATE users SET default_method = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, method.as_str(), now()],
            )?;
            Ok(())
        })
    }

    /// The user answered a push with "this wasn't me": the password is known to someone
    /// else. Disables the user (an administrator re-enables with `portvakt user enable`
    /// once the password is changed) and counts a second-factor failure. Returns the new
    /// failure count. The caller logs the warning for the administrators.
    pub fn report_not_me(&self, name: &str) -> Result<u32, StoreError> {
        let name = self.normalize(name)?;
        self.write(|tx| {
            let count: Option<i64> = tx
                .row(
                    "UPDATE users SET enabled = 0, failures = failures + 1, \
                     last_failure_at = ?2, updated_at = ?2 WHERE name = ?1 RETURNING failures",
                    params![name, now()],
                    |row| row.get(0),
                )
                .optional()?;
            let count = count.ok_or_else(|| StoreError::NotFound(name.clone()))?;
            Ok(u32::try_from(count).unwrap_or(u32::MAX))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::*;

    fn phone(text: &str) -> Phone {
        Phone::parse(text).unwrap()
    }

    #[test]
    fn pending_and_verified_numbers() {
        let (_dir, store) = temp_store();
        store.add_user("alice").unwrap();
        assert_eq!(store.phone("alice").unwrap(), None);
        store
            .set_pending_phone("alice", &phone("+4790000001"))
            .unwrap();
        assert_eq!(
            store.phone("alice").unwrap(),
            None,
            "pending is not verified"
        );
        assert_eq!(
            store.pending_phone("alice").unwrap(),
            Some(phone("+4790000001"))
        );
        store
            .set_pending_phone("alice", &phone("+4790000002"))
            .unwrap();
        assert_eq!(
            store.pending_phone("alice").unwrap(),
            Some(phone("+4790000002")),
            "replaced"
        );

        store
            .set_verified_phone("ALICE", &phone("+4790000003"))
            .unwrap();
        assert_eq!(store.phone("alice").unwrap(), Some(phone("+4790000003")));
        assert_eq!(
            store.pending_phone("alice").unwrap(),
            None,
            "admin override clears pending"
        );

        assert!(store.remove_phone("alice").unwrap());
        assert!(!store.remove_phone("alice").unwrap());
        assert!(matches!(
            store.set_pending_phone("nobody", &phone("+4790000001")),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn numbers_and_topics_are_sealed_and_bound_to_the_user() {
        let (dir, store) = temp_store();
        store.add_user("alice").unwrap();
        store.add_user("bob").unwrap();
        store
            .set_verified_phone("alice", &phone("+4791234567"))
            .unwrap();
        store
            .set_verified_phone("bob", &phone("+4799999999"))
            .unwrap();
        let topic = Topic::parse("canarytopic-Zq9xK2mW7vB4nR1t").unwrap();
        store
            .add_push_device("alice", &topic, "work phone")
            .unwrap();
        drop(store);
        let db = std::fs::read(dir.path().join("users.db")).unwrap();
        let wal = std::fs::read(dir.path().join("users.db-wal")).unwrap_or_default();
        for bytes in [&db, &wal] {
            let hay = String::from_utf8_lossy(bytes);
            assert!(!hay.contains("91234567") && !hay.contains("canarytopic"));
        }
        // Bob's sealed number copied onto Alice's row does not open.
        let store = crate::store::Store::open(&dir.path().join("users.db"), &key(1)).unwrap();
        let conn = store.inner.pool.get().unwrap();
        conn.execute_batch(
            "UPDATE phones SET nonce = (SELECT nonce FROM phones WHERE user_id = 2), \
             sealed = (SELECT sealed FROM phones WHERE user_id = 2) WHERE user_id = 1",
        )
        .unwrap();
        drop(conn);
        assert!(matches!(store.phone("alice"), Err(StoreError::Corrupt(_))));
        assert_eq!(store.push_topics("alice").unwrap()[0].1, topic);
    }

    #[test]
    fn push_devices_are_listed_without_topics_and_removed_by_id() {
        let (_dir, store) = temp_store();
        store.add_user("alice").unwrap();
        let t1 = Topic::parse("pv-aaaaaaaaaaaaaaaaaaaaaa").unwrap();
        let t2 = Topic::parse("pv-bbbbbbbbbbbbbbbbbbbbbb").unwrap();
        let first = store.add_push_device("alice", &t1, "phone").unwrap();
        let second = store.add_push_device("alice", &t2, "tablet").unwrap();
        let listed = store.push_devices("alice").unwrap();
        assert_eq!(
            listed.iter().map(|d| d.id).collect::<Vec<_>>(),
            [first, second]
        );
        assert_eq!(listed[1].label, "tablet");
        assert!(!serde_json::to_string(&listed).unwrap().contains("pv-"));
        let topics: Vec<Topic> = store
            .push_topics("alice")
            .unwrap()
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        assert_eq!(topics, [t1, t2.clone()]);
        store.remove_push_device("alice", first).unwrap();
        assert!(matches!(
            store.remove_push_device("alice", first),
            Err(StoreError::NoPushDevice { .. })
        ));
        store.add_user("bob").unwrap();
        assert!(
            store.remove_push_device("bob", second).is_err(),
            "bob cannot remove alice's device"
        );
        assert_eq!(store.push_topics("alice").unwrap()[0].1, t2);
    }

    #[test]
    fn the_default_method_must_be_enrolled() {
        let (_dir, store) = temp_store();
        store.add_user("alice").unwrap();
        assert_eq!(
            store.user("alice").unwrap().unwrap().default_method,
            Method::Push
        );
        for m in Method::ALL {
            assert!(matches!(
                store.set_default_method("alice", m),
                Err(StoreError::NotEnrolled { method, .. }) if method == m
            ));
        }
        store.set_totp("alice", &secret(1), true).unwrap();
        store.set_default_method("alice", Method::Totp).unwrap();
        store
            .set_pending_phone("alice", &phone("+4790000001"))
            .unwrap();
        assert!(
            store.set_default_method("alice", Method::Sms).is_err(),
            "pending is not enough"
        );
        store
            .set_verified_phone("alice", &phone("+4790000001"))
            .unwrap();
        store.set_default_method("alice", Method::Sms).unwrap();
        assert_eq!(
            store.user("alice").unwrap().unwrap().default_method,
            Method::Sms
        );
        store.remove_phone("alice").unwrap();
        assert_eq!(
            store.user("alice").unwrap().unwrap().default_method,
            Method::Push,
            "removing the number drops SMS as default"
        );
    }

    #[test]
    fn not_me_disables_and_counts() {
        let (_dir, store) = temp_store();
        store.add_user("alice").unwrap();
        assert_eq!(store.report_not_me("alice").unwrap(), 1);
        let alice = store.user("alice").unwrap().unwrap();
        assert!(!alice.enabled);
        assert_eq!(alice.failures, 1);
        assert!(matches!(
            store.report_not_me("nobody"),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn reset_removes_phone_and_push_too() {
        let (_dir, store) = temp_store();
        store.add_user("alice").unwrap();
        store
            .set_verified_phone("alice", &phone("+4790000001"))
            .unwrap();
        store
            .add_push_device(
                "alice",
                &Topic::parse("pv-cccccccccccccccccccccc").unwrap(),
                "p",
            )
            .unwrap();
        store.set_default_method("alice", Method::Sms).unwrap();
        store.reset_methods("alice").unwrap();
        assert_eq!(store.phone("alice").unwrap(), None);
        assert!(store.push_devices("alice").unwrap().is_empty());
        assert_eq!(
            store.user("alice").unwrap().unwrap().default_method,
            Method::Push
        );
    }
}
