//! Unit tests of the approval registry (paused time; no HTTP here — see
//! `tests/providers.rs` for the API driven over real HTTP).

use super::*;

fn login(user: &str) -> LoginKey {
    LoginKey {
        user: user.into(),
        nas: "127.0.0.1".parse().unwrap(),
        station: Some(b"203.0.113.7".to_vec()),
    }
}

fn registry(number_matching: bool) -> Approvals {
    Approvals::new(ApprovalPolicy {
        number_matching,
        ..ApprovalPolicy::default()
    })
}

fn start(a: &Approvals, user: &str) -> Started {
    match a.begin(login(user)) {
        Ok(Begin::New(s)) => s,
        other => panic!("expected a new approval, got {other:?}"),
    }
}

fn token(s: &Started) -> String {
    s.token.text().to_string()
}

#[tokio::test(start_paused = true)]
async fn approve_wakes_the_waiter() {
    let a = Arc::new(registry(false));
    let s = start(&a, "alice");
    let waiter = {
        let a = a.clone();
        tokio::spawn(async move { a.wait(s.id, Instant::now() + Duration::from_secs(25)).await })
    };
    tokio::task::yield_now().await;
    let resolved = a.resolve(&token(&s), Action::Approve { number: None });
    assert_eq!(resolved, Resolved::Approved(login("alice")));
    assert_eq!(waiter.await.unwrap(), Status::Approved);
}

#[tokio::test(start_paused = true)]
async fn tokens_are_single_use() {
    let a = registry(false);
    let s = start(&a, "alice");
    assert!(matches!(
        a.resolve(&token(&s), Action::Deny { not_me: false }),
        Resolved::Denied(_, DenyReason::Denied)
    ));
    assert_eq!(
        a.resolve(&token(&s), Action::Approve { number: None }),
        Resolved::Gone
    );
    assert_eq!(
        a.status(s.id),
        Status::Denied(DenyReason::Denied),
        "the first answer stands"
    );
}

#[tokio::test(start_paused = true)]
async fn forged_and_malformed_tokens_are_gone() {
    let a = registry(false);
    let s = start(&a, "alice");
    let mut forged = token(&s);
    // Right id, wrong verifier: the constant-time half.
    let last = if forged.ends_with('0') { "1" } else { "0" };
    forged.replace_range(63.., last);
    assert_eq!(
        a.resolve(&forged, Action::Approve { number: None }),
        Resolved::Gone
    );
    for bad in ["", "zz", &"0".repeat(64), &token(&s)[..63]] {
        assert_eq!(
            a.resolve(bad, Action::Approve { number: None }),
            Resolved::Gone,
            "{bad}"
        );
    }
    assert_eq!(a.status(s.id), Status::Pending, "forgeries change nothing");
    assert!(matches!(
        a.resolve(&token(&s), Action::Approve { number: None }),
        Resolved::Approved(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn tokens_expire_with_the_login() {
    let a = registry(false);
    let s = start(&a, "alice");
    let waited = a
        .wait(s.id, Instant::now() + Duration::from_secs(600))
        .await;
    assert_eq!(
        waited,
        Status::Expired,
        "the wait ends at the TTL, not the deadline"
    );
    assert_eq!(
        a.resolve(&token(&s), Action::Approve { number: None }),
        Resolved::Gone
    );
}

#[tokio::test(start_paused = true)]
async fn wait_returns_pending_at_the_deadline() {
    let a = registry(false);
    let s = start(&a, "alice");
    let status = a.wait(s.id, Instant::now() + Duration::from_secs(3)).await;
    assert_eq!(status, Status::Pending);
    assert!(matches!(
        a.resolve(&token(&s), Action::Approve { number: None }),
        Resolved::Approved(_)
    ));
    assert_eq!(
        a.wait(s.id, Instant::now()).await,
        Status::Approved,
        "an answer already given returns at once"
    );
}

#[tokio::test(start_paused = true)]
async fn number_matching_only_the_right_number_approves() {
    let a = registry(true);
    let s = start(&a, "alice");
    let right = s.number.unwrap();
    assert!((10..=99).contains(&right));
    assert_eq!(s.offered.len(), 3);
    assert!(s.offered.contains(&right));
    let mut sorted = s.offered.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 3, "distinct numbers");
    assert_eq!(
        a.resolve(&token(&s), Action::Approve { number: None }),
        Resolved::NumberRequired
    );
    let wrong = *s.offered.iter().find(|&&n| n != right).unwrap();
    assert_eq!(
        a.resolve(
            &token(&s),
            Action::Approve {
                number: Some(wrong)
            }
        ),
        Resolved::Denied(login("alice"), DenyReason::WrongNumber)
    );
    assert_eq!(
        a.resolve(
            &token(&s),
            Action::Approve {
                number: Some(right)
            }
        ),
        Resolved::Gone,
        "a wrong guess used the token up"
    );

    let s = start(&a, "bob");
    assert!(matches!(
        a.resolve(&token(&s), Action::Approve { number: s.number }),
        Resolved::Approved(_)
    ));
}

#[test]
fn the_right_number_sits_anywhere_among_the_three() {
    let mut positions = [0u32; 3];
    for _ in 0..600 {
        let (right, offered) = numbers();
        positions[offered.iter().position(|&n| n == right).unwrap()] += 1;
    }
    assert!(positions.iter().all(|&p| p > 120), "{positions:?}");
}

#[tokio::test(start_paused = true)]
async fn retries_of_a_pending_login_join_it_without_a_new_push() {
    let a = registry(false);
    let s = start(&a, "alice");
    for _ in 0..5 {
        assert!(matches!(a.begin(login("alice")), Ok(Begin::Joined(id)) if id == s.id));
    }
    assert_eq!(a.len(), 1);
    let mut other_station = login("alice");
    other_station.station = Some(b"198.51.100.9".to_vec());
    assert!(
        matches!(a.begin(other_station), Ok(Begin::New(_))),
        "another station is another login"
    );
}

#[tokio::test(start_paused = true)]
async fn an_approval_after_the_nas_gave_up_serves_one_retry() {
    let a = registry(false);
    let s = start(&a, "alice");
    // The held request timed out; nobody waits. Then the phone approves.
    assert_eq!(
        a.wait(s.id, Instant::now() + Duration::from_secs(25)).await,
        Status::Pending
    );
    assert!(matches!(
        a.resolve(&token(&s), Action::Approve { number: None }),
        Resolved::Approved(_)
    ));
    tokio::time::advance(Duration::from_secs(20)).await;
    assert!(
        matches!(a.begin(login("alice")), Ok(Begin::Approved)),
        "the retry succeeds without a push"
    );
    assert!(
        matches!(a.begin(login("alice")), Ok(Begin::New(_))),
        "only once"
    );
}

#[tokio::test(start_paused = true)]
async fn a_remembered_approval_expires() {
    let a = registry(false);
    let s = start(&a, "alice");
    tokio::time::advance(Duration::from_secs(50)).await;
    assert!(matches!(
        a.resolve(&token(&s), Action::Approve { number: None }),
        Resolved::Approved(_)
    ));
    // Approved at 50 s: kept until 50 + 30 = 80 s, beyond the 60 s TTL.
    tokio::time::advance(Duration::from_secs(25)).await;
    assert_eq!(a.status(s.id), Status::Approved);
    tokio::time::advance(Duration::from_secs(6)).await;
    assert!(matches!(a.begin(login("alice")), Ok(Begin::New(_))));
}

#[tokio::test(start_paused = true)]
async fn a_denied_login_is_not_pushed_again_until_it_expires() {
    let a = registry(false);
    let s = start(&a, "alice");
    a.resolve(&token(&s), Action::Deny { not_me: true });
    assert!(matches!(a.begin(login("alice")), Ok(Begin::Denied)));
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(matches!(a.begin(login("alice")), Ok(Begin::New(_))));
}

#[tokio::test(start_paused = true)]
async fn finish_forgets_the_approval() {
    let a = registry(false);
    let s = start(&a, "alice");
    a.resolve(&token(&s), Action::Approve { number: None });
    a.finish(s.id);
    assert_eq!(a.status(s.id), Status::Expired);
    assert!(
        matches!(a.begin(login("alice")), Ok(Begin::New(_))),
        "no free pass after finish"
    );
}

#[tokio::test(start_paused = true)]
async fn push_cap_three_per_ten_minutes_then_thirty_minutes_off() {
    let a = registry(false);
    for i in 0..3 {
        let mut l = login("alice");
        l.station = Some(vec![i]);
        assert!(matches!(a.begin(l), Ok(Begin::New(_))));
    }
    let mut fourth = login("alice");
    fourth.station = Some(vec![9]);
    assert!(matches!(
        a.begin(fourth.clone()),
        Err(Refusal::Capped { alert: true, .. })
    ));
    assert!(
        matches!(
            a.begin(fourth.clone()),
            Err(Refusal::Capped { alert: false, .. })
        ),
        "alert once"
    );
    assert!(
        matches!(a.begin(login("bob")), Ok(Begin::New(_))),
        "per user"
    );
    tokio::time::advance(Duration::from_secs(29 * 60)).await;
    assert!(a.begin(fourth.clone()).is_err());
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(matches!(a.begin(fourth), Ok(Begin::New(_))));
}

#[tokio::test(start_paused = true)]
async fn the_table_is_bounded_and_purged() {
    let a = Approvals::new(ApprovalPolicy {
        max_pending: 2,
        number_matching: false,
        ..ApprovalPolicy::default()
    });
    start(&a, "a");
    start(&a, "b");
    for _ in 0..5 {
        assert!(matches!(a.begin(login("c")), Err(Refusal::Full)));
    }
    tokio::time::advance(Duration::from_secs(61)).await;
    start(&a, "c");
    assert_eq!(a.len(), 1, "expired entries made room");
    // The refusals while full did not count against c's push cap.
    tokio::time::advance(Duration::from_secs(61)).await;
    start(&a, "c");
    tokio::time::advance(Duration::from_secs(61)).await;
    a.purge();
    assert!(a.is_empty());
}

#[tokio::test(start_paused = true)]
async fn purge_wakes_waiters_of_expired_entries() {
    let a = Arc::new(registry(false));
    let s = start(&a, "alice");
    let waiter = {
        let a = a.clone();
        tokio::spawn(async move {
            a.wait(s.id, Instant::now() + Duration::from_secs(600))
                .await
        })
    };
    tokio::time::advance(Duration::from_secs(61)).await;
    a.purge();
    assert_eq!(waiter.await.unwrap(), Status::Expired);
}

#[test]
fn settings_validate_and_build_links() {
    let raw = |url: &str| RawApproval {
        listen: "127.0.0.1:8443".into(),
        public_url: url.into(),
        ttl: Duration::from_secs(60),
        number_matching: true,
        remember_approved: Duration::from_secs(30),
        max_pushes: 3,
        push_window: Duration::from_secs(600),
        push_lockout: Duration::from_secs(1800),
        max_pending: 100,
    };
    let s = ApprovalSettings::from_raw(raw("https://mfa.kommune.no/")).unwrap();
    assert_eq!(s.public_url, "https://mfa.kommune.no");
    assert_eq!(
        ApprovalSettings::from_raw(raw("http://mfa.kommune.no"))
            .unwrap_err()
            .key,
        "approval.public_url"
    );
    assert_eq!(
        ApprovalSettings::from_raw(raw("https://x.no/?a=b"))
            .unwrap_err()
            .key,
        "approval.public_url"
    );
    let mut bad = raw("https://x.no");
    bad.listen = "nope".into();
    assert_eq!(
        ApprovalSettings::from_raw(bad).unwrap_err().key,
        "approval.listen"
    );

    let a = Approvals::new(s.policy.clone());
    let Ok(Begin::New(started)) = a.begin(login("alice")) else {
        panic!()
    };
    let links = s.links(&started);
    let t = token(&started);
    assert_eq!(
        links.deny,
        format!("https://mfa.kommune.no/v1/approvals/{t}/deny")
    );
    assert_eq!(links.approve.len(), 3);
    assert!(!format!("{links:?}").contains(&t));
    assert!(!format!("{started:?}").contains(&t[32..]));
}
