//! Lease-based leader election against the real API server.

mod support;

use std::time::Duration;

use campus_operator::leader::LeaderElector;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use support::*;

#[tokio::test]
async fn one_leader_at_a_time_and_takeover_after_release_or_expiry() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-lease").await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let a = LeaderElector::new(
        leases.clone(),
        "campus-operator",
        "a",
        Duration::from_secs(2),
    );
    let b = LeaderElector::new(
        leases.clone(),
        "campus-operator",
        "b",
        Duration::from_secs(2),
    );

    assert!(
        a.try_acquire_or_renew().await.unwrap(),
        "a takes the free Lease"
    );
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "b waits while a holds it"
    );
    assert!(a.try_acquire_or_renew().await.unwrap(), "a renews");
    let lease = leases.get("campus-operator").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("a"));
    assert_eq!(lease.lease_duration_seconds, Some(2));

    a.release().await.unwrap();
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "b takes over at once after a releases"
    );
    assert!(!a.try_acquire_or_renew().await.unwrap());

    // b stops renewing (crashed): a takes over once the Lease expired, not before.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert!(
        a.try_acquire_or_renew().await.unwrap(),
        "a takes over the expired Lease"
    );
    let lease = leases.get("campus-operator").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("a"));
    assert_eq!(lease.lease_transitions, Some(2));
}

#[tokio::test]
async fn the_campaign_loop_publishes_leadership_and_releases_on_shutdown() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-lease-run").await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let a = LeaderElector::new(leases.clone(), "op", "a", Duration::from_secs(3));
    let b = LeaderElector::new(leases.clone(), "op", "b", Duration::from_secs(3));
    let (a_tx, mut a_rx) = tokio::sync::watch::channel(false);
    let (b_tx, b_rx) = tokio::sync::watch::channel(false);
    let stop_a = tokio_util::sync::CancellationToken::new();
    let stop_b = tokio_util::sync::CancellationToken::new();
    let task_a = tokio::spawn(a.run(a_tx, stop_a.clone()));
    tokio::time::timeout(Duration::from_secs(10), a_rx.wait_for(|l| *l))
        .await
        .expect("a leads")
        .unwrap();
    let task_b = tokio::spawn(b.run(b_tx, stop_b.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!*b_rx.borrow(), "b must not lead while a renews");
    stop_a.cancel();
    task_a.await.unwrap();
    let mut b_rx = b_rx;
    tokio::time::timeout(Duration::from_secs(10), b_rx.wait_for(|l| *l))
        .await
        .expect("b leads after a released the Lease")
        .unwrap();
    stop_b.cancel();
    task_b.await.unwrap();
    let lease = leases.get("op").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity, None, "released on shutdown");
}

/// Expiry is judged by how long the Lease has gone unchanged on the candidate's own clock, so a
/// clock an hour off neither steals a Lease that is renewed nor waits an hour for one that is not.
#[tokio::test]
async fn a_skewed_clock_neither_steals_a_live_lease_nor_waits_past_a_dead_ones_expiry() {
    use k8s_openapi::jiff::SignedDuration;
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-lease-skew").await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let hour = SignedDuration::from_hours(1);
    let lease =
        |name: &str, id: &str| LeaderElector::new(leases.clone(), name, id, Duration::from_secs(2));

    // The candidate's clock is an hour ahead: the holder's renewTime looks an hour old to it.
    let holder = lease("ahead", "holder");
    let ahead = lease("ahead", "ahead").with_clock_skew(hour);
    assert!(holder.try_acquire_or_renew().await.unwrap());
    for _ in 0..6 {
        assert!(
            !ahead.try_acquire_or_renew().await.unwrap(),
            "a clock an hour ahead must not take a Lease that is being renewed"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            holder.try_acquire_or_renew().await.unwrap(),
            "the holder renews"
        );
    }

    // The holder's clock is an hour behind, and it stops renewing: the candidate takes over after
    // the Lease's duration of its own watching — not at once, not after an hour.
    let behind = lease("behind", "behind").with_clock_skew(-hour);
    let candidate = lease("behind", "candidate");
    assert!(behind.try_acquire_or_renew().await.unwrap());
    let watched = std::time::Instant::now();
    assert!(
        !candidate.try_acquire_or_renew().await.unwrap(),
        "a renewTime an hour in the past is no sign of a dead holder"
    );
    while !candidate.try_acquire_or_renew().await.unwrap() {
        assert!(
            watched.elapsed() < Duration::from_secs(10),
            "the dead holder's Lease was never taken over"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        watched.elapsed() >= Duration::from_secs(2),
        "taken over after {:?}, before its duration of 2 s",
        watched.elapsed()
    );
    let spec = leases.get("behind").await.unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("candidate"));
}
