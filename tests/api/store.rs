//! The store suite, on PostgreSQL and SQLite alike.

use std::time::Duration;

use chrono::Utc;
use escalator::{
    classifier::OfflineClassifier,
    domain::work::{ActionKind, NewAction},
    domain::{Decision, TicketContext},
    store::{Claim, Recorded},
};

use crate::{both_backends, harness::domain_ticket};

fn decision_for(t: &escalator::domain::Ticket) -> Decision {
    let ctx = TicketContext {
        ticket: t.clone(),
        repeat_count_24h: 0,
    };
    let c = OfflineClassifier::new(&[], "classifier@test").decide(&ctx);
    Decision::new(&ctx, c, Some("0af7651916cd43dd8448eb211c80319c".into()))
}

both_backends! {
    async fn a_new_key_is_claimed_once_then_reported_in_flight(store) {
        let t = domain_ticket("T-1", "v1", "");
        assert_eq!(store.claim(&t, Duration::from_secs(60)).await.unwrap(), Claim::New);
        assert_eq!(store.claim(&t, Duration::from_secs(60)).await.unwrap(), Claim::InFlight);
        let other_version = domain_ticket("T-1", "v2", "");
        assert_eq!(store.claim(&other_version, Duration::from_secs(60)).await.unwrap(), Claim::New);
    }

    async fn an_expired_claim_without_decision_is_taken_over(store) {
        let t = domain_ticket("T-2", "v1", "");
        assert_eq!(store.claim(&t, Duration::ZERO).await.unwrap(), Claim::New);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.claim(&t, Duration::from_secs(60)).await.unwrap(), Claim::New);
        assert_eq!(store.claim(&t, Duration::from_secs(60)).await.unwrap(), Claim::InFlight);
    }

    async fn a_decision_round_trips_and_the_key_is_unique(store) {
        let t = domain_ticket("T-3", "v1", "");
        store.claim(&t, Duration::from_secs(60)).await.unwrap();
        let d = decision_for(&t);
        let actions = vec![NewAction { kind: ActionKind::PlainNote, payload: serde_json::json!({"x": 1}) }];
        assert_eq!(store.record(&d, &actions).await.unwrap(), Recorded::New);
        let stored = store.decision(t.key()).await.unwrap().unwrap();
        assert_eq!(stored.id, d.id);
        assert_eq!(stored.severity, d.severity);
        assert_eq!(stored.route, d.route);
        assert_eq!(stored.reasoning, d.reasoning);
        assert_eq!(stored.prompt_version, "classifier@test");
        assert_eq!(stored.model, "offline");
        assert_eq!(stored.trace_id.as_deref(), Some("0af7651916cd43dd8448eb211c80319c"));
        assert!((stored.created_at - d.created_at).num_milliseconds().abs() < 1);
        // The classifier's labels are on the decision and in their own columns.
        assert!(d.topic.is_some() && d.sentiment.is_some());
        assert_eq!((&stored.topic, stored.sentiment, &stored.shadow), (&d.topic, d.sentiment, &d.shadow));
        // A second decision for the same key loses and gets the first one back.
        let second = decision_for(&t);
        match store.record(&second, &actions).await.unwrap() {
            Recorded::Existing(existing) => assert_eq!(existing.id, d.id),
            Recorded::New => panic!("the database let a second decision in for one key"),
        }
        match store.claim(&t, Duration::from_secs(60)).await.unwrap() {
            Claim::Decided(existing) => assert_eq!(existing.id, d.id),
            other => panic!("expected Decided, got {other:?}"),
        }
    }

    async fn recent_tickets_count_other_tickets_of_the_customer(store) {
        for (id, customer) in [("A", "cust-1"), ("B", "cust-1"), ("B", "cust-1"), ("C", "cust-2")] {
            let version = format!("v{}", uuid::Uuid::now_v7());
            store.claim(&domain_ticket(id, &version, customer), Duration::from_secs(60)).await.unwrap();
        }
        let since = Utc::now() - chrono::Duration::hours(24);
        let src = escalator::domain::Source::Api;
        assert_eq!(store.recent_tickets(src, "cust-1", "A", since).await.unwrap(), 1);
        assert_eq!(store.recent_tickets(src, "cust-1", "Z", since).await.unwrap(), 2);
        assert_eq!(store.recent_tickets(src, "cust-2", "C", since).await.unwrap(), 0);
        let future = Utc::now() + chrono::Duration::hours(1);
        assert_eq!(store.recent_tickets(src, "cust-1", "Z", future).await.unwrap(), 0);
    }

    async fn a_released_claim_is_taken_over_at_once_and_a_decided_one_is_kept(store) {
        let t = domain_ticket("T-6", "v1", "");
        let lease = Duration::from_secs(600);
        assert_eq!(store.claim(&t, lease).await.unwrap(), Claim::New);
        assert_eq!(store.claim(&t, lease).await.unwrap(), Claim::InFlight);
        // The holder failed: releasing hands the ticket to the next caller, long before the lease.
        assert!(store.release_claim(t.key()).await.unwrap());
        assert_eq!(store.claim(&t, lease).await.unwrap(), Claim::New);
        // Once decided, release does nothing and the decision stands.
        let d = decision_for(&t);
        assert_eq!(store.record(&d, &[]).await.unwrap(), Recorded::New);
        assert!(!store.release_claim(t.key()).await.unwrap());
        match store.claim(&t, lease).await.unwrap() {
            Claim::Decided(existing) => assert_eq!(existing.id, d.id),
            other => panic!("expected Decided, got {other:?}"),
        }
        // An unknown key, and a claim already released, are left alone.
        let unknown = domain_ticket("T-7", "v1", "");
        assert!(!store.release_claim(unknown.key()).await.unwrap());
        let t8 = domain_ticket("T-8", "v1", "");
        assert_eq!(store.claim(&t8, lease).await.unwrap(), Claim::New);
        assert!(store.release_claim(t8.key()).await.unwrap());
        assert!(!store.release_claim(t8.key()).await.unwrap());
    }

    async fn a_closed_pool_is_reported_unavailable(store) {
        store.ping().await.unwrap();
        store.close().await;
        let e = store.ping().await.unwrap_err();
        assert!(matches!(e, escalator::store::StoreError::Unavailable(_)), "{e:?}");
    }
}
