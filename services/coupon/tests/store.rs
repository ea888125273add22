//! The Redis scripts on their own: TTLs tied to the event's end, the give-back/claim protocol.

mod support;

use campus_coupon::store::{Claim, Decision, EventWindow, GiveBack};
use chrono::Utc;
use redis::AsyncCommands;
use uuid::Uuid;

use support::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_at_the_events_end_plus_retention() {
    let env = Env::start().await;
    let ends_at = Utc::now() + chrono::Duration::hours(3);
    let event = env
        .create_event_at(10, Utc::now() - chrono::Duration::minutes(1), ends_at)
        .await;
    assert_eq!(env.issue(1, event).await.0, 201);
    // Env uses a retention of 600 s.
    let want = (ends_at - Utc::now()).num_milliseconds() + 600_000;
    let mut c = env.redis.clone();
    for key in [
        env.store.keys().meta(event),
        env.store.keys().holders(event),
    ] {
        let ttl: i64 = c.pttl(&key).await.unwrap();
        assert!(
            (want - ttl).abs() < 60_000,
            "{key}: pttl {ttl} ms, want about {want} ms"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_request_cannot_be_given_back_and_a_given_back_one_cannot_be_claimed() {
    let env = Env::start().await;
    let window = EventWindow {
        limit: 2,
        starts_at: Utc::now() - chrono::Duration::minutes(1),
        ends_at: Utc::now() + chrono::Duration::hours(1),
    };
    let s = &env.store;
    s.put_window(1, &window).await.unwrap();
    let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    assert_eq!(
        s.decide(1, 10, &a, None).await.unwrap(),
        Decision::Issued { issued: 1 }
    );
    assert_eq!(
        s.decide(1, 11, &b, None).await.unwrap(),
        Decision::Issued { issued: 2 }
    );
    assert_eq!(s.decide(1, 12, &c, None).await.unwrap(), Decision::SoldOut);

    // The worker claims a; giving a back is then refused (the coupon stands).
    let claims = s.claim(1, &[(10, a.to_string())]).await.unwrap();
    assert_eq!(claims, vec![Claim::Insert]);
    assert_eq!(s.give_back(1, 10, &a).await.unwrap(), GiveBack::Confirmed);
    // b is given back first; the worker then skips it, and the slot is free for someone else.
    assert_eq!(s.give_back(1, 11, &b).await.unwrap(), GiveBack::Returned);
    assert_eq!(s.give_back(1, 11, &b).await.unwrap(), GiveBack::NotHeld);
    assert_eq!(
        s.claim(1, &[(11, b.to_string())]).await.unwrap(),
        vec![Claim::Skip]
    );
    assert_eq!(
        s.decide(1, 12, &c, None).await.unwrap(),
        Decision::Issued { issued: 2 }
    );
    // A stale request of a user who holds a newer one is skipped too.
    assert_eq!(
        s.claim(1, &[(12, Uuid::now_v7().to_string()), (12, c.to_string())])
            .await
            .unwrap(),
        vec![Claim::Skip, Claim::Insert]
    );
    // No state at all for an event (flushed): unknown, the worker inserts and MySQL decides.
    assert_eq!(
        s.claim(2, &[(10, a.to_string())]).await.unwrap(),
        vec![Claim::Unknown]
    );
    let snapshot = s.snapshot(1).await.unwrap();
    assert_eq!(snapshot.holders.len(), 2);
    assert!(snapshot.holders.values().all(|(_, confirmed)| *confirmed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_restores_the_holders_and_an_ended_event_writes_nothing() {
    use campus_coupon::store::Reload;
    let env = Env::start().await;
    let s = &env.store;
    let open = EventWindow {
        limit: 3,
        starts_at: Utc::now() - chrono::Duration::minutes(1),
        ends_at: Utc::now() + chrono::Duration::hours(1),
    };
    let reload = Reload {
        window: open.clone(),
        holders: vec![
            (1, Uuid::now_v7().to_string()),
            (2, Uuid::now_v7().to_string()),
        ],
        pending: vec![],
    };
    let r = Uuid::now_v7();
    assert_eq!(s.decide(7, 1, &r, None).await.unwrap(), Decision::Missing);
    assert!(env.redis_keys().await.is_empty(), "a miss writes nothing");
    assert_eq!(
        s.decide(7, 1, &r, Some(&reload)).await.unwrap(),
        Decision::AlreadyIssued
    );
    assert_eq!(
        s.decide(7, 3, &r, Some(&reload)).await.unwrap(),
        Decision::Issued { issued: 3 }
    );
    assert_eq!(s.decide(7, 4, &r, None).await.unwrap(), Decision::SoldOut);

    let ended = Reload {
        window: EventWindow {
            starts_at: Utc::now() - chrono::Duration::hours(2),
            ends_at: Utc::now() - chrono::Duration::hours(1),
            ..open
        },
        holders: vec![],
        pending: vec![],
    };
    assert_eq!(
        s.decide(8, 1, &r, Some(&ended)).await.unwrap(),
        Decision::Ended
    );
    let keys = env.redis_keys().await;
    assert!(keys.iter().all(|k| !k.contains("{ev:8}")), "{keys:?}");
}
