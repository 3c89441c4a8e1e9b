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

    // A customer (or an integration) that opens many tickets a day costs each new ticket a
    // bounded read: the count stops at the latest MAX_REPEAT_ROWS rows, in both ways of claiming.
    async fn repeats_are_counted_over_the_customers_latest_rows_only(store) {
        let cap = escalator::domain::MAX_REPEAT_ROWS;
        let lease = Duration::from_secs(60);
        for i in 0..cap + 5 {
            store.claim(&domain_ticket(&format!("M-{i}"), "v1", "cust-many"), lease).await.unwrap();
        }
        for i in 0..3 {
            store.claim(&domain_ticket(&format!("F-{i}"), "v1", "cust-few"), lease).await.unwrap();
        }
        let since = Utc::now() - chrono::Duration::hours(24);
        let src = escalator::domain::Source::Api;
        assert_eq!(store.recent_tickets(src, "cust-many", "Z", since).await.unwrap(), cap);
        assert_eq!(store.recent_tickets(src, "cust-few", "Z", since).await.unwrap(), 3);
        let options = escalator::store::ClaimOptions { repeats_since: Some(since), ..Default::default() };
        let (claim, recent) = store
            .claim_counting(&domain_ticket("M-new", "v1", "cust-many"), lease, &options)
            .await
            .unwrap();
        assert_eq!((claim, recent), (Claim::New, cap));
        let (claim, recent) = store
            .claim_counting(&domain_ticket("F-new", "v1", "cust-few"), lease, &options)
            .await
            .unwrap();
        assert_eq!((claim, recent), (Claim::New, 3));
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

    // Decisions recorded at the same moment (slots freeing together) go to the database
    // together (one statement on PostgreSQL): every one is stored as it was given, with its
    // actions in order and its delivery done; a key decided before, and a key decided twice in
    // the same batch, keep their first decision.
    async fn decisions_recorded_together_are_each_stored_whole(store) {
        use escalator::domain::{IdempotencyKey, TierSource, work::NewDelivery};
        let kinds = [ActionKind::PlainLabel, ActionKind::PlainPriority, ActionKind::PlainNote];
        let actions: Vec<NewAction> = kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| NewAction { kind: *kind, payload: serde_json::json!({"n": i, "text": "Grüße 🚨 <b>"}) })
            .collect();
        let decided_before = domain_ticket("T-batch-before", "v1", "");
        let first = decision_for(&decided_before);
        assert_eq!(store.record(&first, &actions).await.unwrap(), Recorded::New);
        let mut writes = Vec::new();
        for i in 0..30 {
            let t = domain_ticket(&format!("T-batch-{i}"), "v1", "cust-batch");
            store.accept_delivery(&NewDelivery {
                key: IdempotencyKey::new(t.key().source, t.key().ticket_id.clone(), t.key().version.clone()),
                event_type: "thread.thread_created".into(),
                payload: serde_json::json!({"i": i}),
                webhook_version: None,
                missing_fields: Vec::new(),
                trace_context: None,
            }).await.unwrap();
            let mut d = decision_for(&t);
            // Every column set, so a column the batch forgot cannot pass unseen.
            d.usage.request_id = Some(format!("req_{i}"));
            d.usage.input_tokens = 1000 + i;
            d.usage.output_tokens = 40;
            d.usage.cache_read_tokens = 3000;
            d.usage.cache_write_tokens = 7;
            d.usage.cost_usd = 0.001_25 * (i as f64 + 1.0);
            d.usage.model_latency_ms = Some(300 + i);
            d.usage.model_retries = 1;
            d.fallback = i % 2 == 0;
            d.fallback_reason = d.fallback.then(|| "timeout: «délai» 🚨".to_owned());
            d.notes = Some("note with 'quotes' and \"json\"".into());
            d.observation_id = Some(format!("obs-{i}"));
            d.weighting_rule = Some("pro_floor".into());
            d.arr_usd = Some(12_000.5);
            d.tier_source = Some(TierSource::Request);
            d.enrichment_failed = i % 3 == 0;
            d.caller = Some("svc-✓".into());
            d.supersedes = (i % 2 == 1).then(|| format!("dec-earlier-{i}"));
            d.shadow.insert("refund_request".into(), i % 2 == 1);
            writes.push(d);
        }
        // The same key twice in one go, and a key decided before.
        let twin = decision_for(&domain_ticket("T-batch-0", "v1", "cust-batch"));
        let late = decision_for(&decided_before);
        let all: Vec<&Decision> = writes.iter().chain([&twin, &late]).collect();
        let results = futures_util::future::join_all(all.iter().map(|d| store.record(d, &actions))).await;
        // Two decisions of one key in flight at once: one goes in whole, the other answers it.
        // Which one is the store's order (PostgreSQL's batch keeps the first; SQLite's writes
        // race for the database lock), so the test names the winner from the results.
        let (winner, loser) = match (&results[0], &results[30]) {
            (Ok(Recorded::New), Ok(Recorded::Existing(e))) => (&writes[0], e),
            (Ok(Recorded::Existing(e)), Ok(Recorded::New)) => (&twin, e),
            other => panic!("the key twice in the batch is stored once: {other:?}"),
        };
        assert_eq!(loser.id, winner.id, "the loser answers the decision that went in");
        let loser_id = if winner.id == twin.id { &writes[0].id } else { &twin.id };
        assert!(store.actions(loser_id).await.unwrap().is_empty(), "the loser queues no actions");
        let stored_whole = writes[1..].iter().chain([winner]);
        for (d, r) in stored_whole.zip(results[1..30].iter().chain([&Ok(Recorded::New)])) {
            assert_eq!(r.as_ref().unwrap(), &Recorded::New, "{}", d.ticket_id);
            let mut stored = store.decision(&d.key()).await.unwrap().unwrap();
            assert!((stored.created_at - d.created_at).num_milliseconds().abs() < 1);
            stored.created_at = d.created_at;
            assert_eq!(&stored, d);
            let acts = store.actions(&d.id).await.unwrap();
            let got: Vec<ActionKind> = acts.iter().map(|a| a.kind).collect();
            assert_eq!(got, kinds, "actions in their order");
            assert_eq!(acts[2].payload, serde_json::json!({"n": 2, "text": "Grüße 🚨 <b>"}));
        }
        match &results[31] {
            Ok(Recorded::Existing(e)) => assert_eq!(e.id, first.id),
            other => panic!("the late decision: {other:?}"),
        }
        assert!(store.actions(&late.id).await.unwrap().is_empty());
        assert_eq!(store.backlog().await.unwrap().deliveries_pending, 0, "every delivery is done");
    }

    // Tickets claimed at the same moment are stored and claimed together (one statement on
    // PostgreSQL): each new key is claimed once with its customer's earlier tickets counted,
    // a key claimed twice at once is claimed by one caller only, and a decided key answers
    // its decision.
    async fn tickets_claimed_together_are_each_claimed_once_and_counted(store) {
        let lease = Duration::from_secs(60);
        let since = Utc::now() - chrono::Duration::hours(24);
        let options = escalator::store::ClaimOptions { repeats_since: Some(since), ..Default::default() };
        // The customer's earlier tickets, and a ticket decided before.
        for id in ["G-old-1", "G-old-2"] {
            store.claim(&domain_ticket(id, "v1", "cust-group"), lease).await.unwrap();
        }
        let decided = domain_ticket("G-decided", "v1", "cust-group");
        store.claim(&decided, lease).await.unwrap();
        let d = decision_for(&decided);
        assert_eq!(store.record(&d, &[]).await.unwrap(), Recorded::New);
        let mut tickets: Vec<escalator::domain::Ticket> = (0..20)
            .map(|i| domain_ticket(&format!("G-{i}"), "v1", if i % 2 == 0 { "cust-group" } else { "" }))
            .collect();
        tickets.push(domain_ticket("G-0", "v1", "cust-group"));
        tickets.push(decided.clone());
        let results = futures_util::future::join_all(
            tickets.iter().map(|t| store.claim_counting(t, lease, &options)),
        )
        .await;
        let mut twins = Vec::new();
        for (t, r) in tickets.iter().zip(results) {
            let (claim, recent) = r.unwrap();
            match t.key().ticket_id.as_str() {
                "G-decided" => match claim {
                    Claim::Decided(e) => assert_eq!(e.id, d.id),
                    other => panic!("a decided key: {other:?}"),
                },
                "G-0" => twins.push(claim),
                _ => {
                    assert_eq!(claim, Claim::New, "{}", t.key());
                    // A customer's three earlier tickets are counted (the ones claimed at the
                    // same time may be, as they are by concurrent claims); no customer, no count.
                    if t.customer_id().is_some() {
                        assert!((3..=12).contains(&recent), "{}: {recent}", t.key());
                    } else {
                        assert_eq!(recent, 0, "{}", t.key());
                    }
                }
            }
        }
        twins.sort_by_key(|c| format!("{c:?}"));
        assert_eq!(twins, [Claim::InFlight, Claim::New], "one of two claims of one key wins");
    }

    // Webhook deliveries that arrive together are stored together (one statement on
    // PostgreSQL): each key is new exactly once however many times it comes, and each is
    // leased once.
    async fn deliveries_accepted_together_are_each_stored_once(store) {
        use escalator::domain::{IdempotencyKey, Source, work::NewDelivery};
        let delivery = |i: usize| NewDelivery {
            key: IdempotencyKey::new(Source::Plain, format!("th_{}", i % 20), "v1"),
            event_type: "thread.thread_created".into(),
            payload: serde_json::json!({"i": i, "text": "¿Dónde está mi factura? 🧾"}),
            webhook_version: Some("2026-02-27".into()),
            missing_fields: if i.is_multiple_of(3) { vec!["message".into()] } else { Vec::new() },
            trace_context: None,
        };
        // A key stored before the burst is a duplicate in it.
        assert!(store.accept_delivery(&delivery(0)).await.unwrap());
        let all: Vec<NewDelivery> = (1..50).map(delivery).collect();
        let results = futures_util::future::join_all(all.iter().map(|d| store.accept_delivery(d))).await;
        let mut new_per_key = std::collections::BTreeMap::new();
        for (d, r) in all.iter().zip(results) {
            *new_per_key.entry(d.key.ticket_id.clone()).or_insert(0) += u32::from(r.unwrap());
        }
        for (key, new) in &new_per_key {
            let expected = u32::from(key != "th_0");
            assert_eq!(*new, expected, "{key} was new {new} times");
        }
        let leased = store.lease_deliveries(Duration::from_secs(60), 100).await.unwrap();
        let mut keys: Vec<String> = leased.iter().map(|d| d.key.ticket_id.clone()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!((leased.len(), keys.len()), (20, 20), "each key stored and leased once");
        let first = leased.iter().find(|d| d.key.ticket_id == "th_1").unwrap();
        assert_eq!(first.payload["text"], "¿Dónde está mi factura? 🧾");
    }

    async fn a_closed_pool_is_reported_unavailable(store) {
        store.ping().await.unwrap();
        store.close().await;
        let e = store.ping().await.unwrap_err();
        assert!(matches!(e, escalator::store::StoreError::Unavailable(_)), "{e:?}");
    }
}

/// The accept path has connections of its own: with every connection of the worker's pool
/// taken (a backlog the worker is chewing on), a webhook delivery is still stored at once over
/// the accept pool, while the worker's handle would have waited; the waits are on `/metrics`
/// per path.
#[sqlx::test(migrations = "migrations/postgres")]
async fn the_accept_path_is_stored_while_the_worker_pool_is_exhausted(
    _options: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    use escalator::{
        domain::{IdempotencyKey, Source, work::NewDelivery},
        store::{AcceptPath as _, Inbox as _, PgStore},
    };
    let pool = |n: u32| {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(n)
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(connect.clone())
    };
    let (worker_pool, accept_pool) = (pool(2), pool(1));
    let worker = PgStore::new(worker_pool.clone()).with_accept_pool(accept_pool);
    let accepting = worker.accepting();
    let delivery = |id: &str| NewDelivery {
        key: IdempotencyKey::new(Source::Plain, id, "v1"),
        event_type: "thread.thread_created".into(),
        payload: serde_json::json!({"thread_id": id, "text": "Grüße 👋 <b>urgent</b>"}),
        webhook_version: None,
        missing_fields: Vec::new(),
        trace_context: None,
    };
    let waits = |path: &str| -> u64 {
        let text = escalator::telemetry::metrics::metrics().render();
        let series = format!("escalator_db_pool_wait_seconds_count{{path=\"{path}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .map_or(0, |n| n.trim().parse().unwrap())
    };
    let before = [waits("accept"), waits("inbox")];
    // The worker's pool is busy: both its connections are held.
    let held = [
        worker_pool.acquire().await.unwrap(),
        worker_pool.acquire().await.unwrap(),
    ];
    let stored = tokio::time::timeout(
        Duration::from_secs(10),
        accepting.accept_delivery(&delivery("th_accept_1")),
    )
    .await
    .expect("the accept path waited behind the worker's pool");
    assert!(stored.unwrap(), "a new delivery is stored");
    // A repeat is a duplicate, still at once.
    let again = tokio::time::timeout(
        Duration::from_secs(10),
        accepting.accept_delivery(&delivery("th_accept_1")),
    )
    .await
    .expect("the accept path waited behind the worker's pool");
    assert!(!again.unwrap(), "a repeat is a duplicate");
    // The same statement over the worker's handle waits for its pool (this is what the
    // accept pool spares a webhook).
    let waited = tokio::time::timeout(
        Duration::from_millis(300),
        worker.accept_delivery(&delivery("th_accept_2")),
    )
    .await;
    assert!(
        waited.is_err(),
        "the worker's handle did not wait: the pools are not apart"
    );
    drop(held);
    // The write the timeout left still lands (its caller was told nothing; the sender's retry
    // is a duplicate), and the worker's handle stores again once its pool frees.
    assert!(
        worker
            .accept_delivery(&delivery("th_accept_3"))
            .await
            .unwrap()
    );
    let after = [waits("accept"), waits("inbox")];
    // Other tests in this process only add to the counts.
    assert!(
        after[0] >= before[0] + 2,
        "the accept waits are not on /metrics: {before:?} -> {after:?}"
    );
    // (The wait the timeout cut short is not counted: only waits that ended are.)
    assert!(
        after[1] > before[1],
        "the inbox waits are not on /metrics: {before:?} -> {after:?}"
    );
}
