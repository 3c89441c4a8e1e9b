//! The inbox (deliveries) and outbox (actions) methods of the store, on both backends
//! ([`both_backends!`]: a fresh migrated PostgreSQL and SQLite database per test).

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use escalator::{
    domain::work::{ActionKind, NewAction, NewDelivery},
    domain::{Decision, IdempotencyKey, RawTicket, Severity, Source, Ticket, Tier, Usage},
    store::{ClaimOptions, PgStore, SqliteStore, Store, Undecided},
};
use serde_json::json;

use crate::both_backends;

fn key(id: &str) -> IdempotencyKey {
    IdempotencyKey::new(Source::Plain, id, "v1")
}

fn delivery(id: &str) -> NewDelivery {
    NewDelivery {
        key: key(id),
        event_type: "thread.thread_created".into(),
        payload: json!({"thread_id": id}),
        webhook_version: Some("2026-02-27".into()),
        missing_fields: Vec::new(),
        trace_context: None,
    }
}

async fn decided_with_actions(store: &Arc<dyn Store>, id: &str, kinds: &[&str]) -> Decision {
    decided_as(store, id, Severity::Urgent, kinds).await
}

async fn decided_as(
    store: &Arc<dyn Store>,
    id: &str,
    severity: Severity,
    kinds: &[&str],
) -> Decision {
    let ticket = Ticket::parse(
        Source::Plain,
        RawTicket {
            id: id.into(),
            version: "v1".into(),
            body: "hello".into(),
            ..RawTicket::default()
        },
        "",
    )
    .unwrap();
    store.claim(&ticket, Duration::from_secs(60)).await.unwrap();
    let d = Decision {
        id: uuid::Uuid::now_v7().to_string(),
        source: Source::Plain,
        ticket_id: id.into(),
        ticket_version: "v1".into(),
        severity,
        route: severity.route(),
        confidence: 0.8,
        reasoning: "Because.".into(),
        prompt_version: "p@1".into(),
        model: "offline".into(),
        fallback: false,
        fallback_reason: None,
        notes: None,
        tier: Tier::Free,
        usage: Usage::default(),
        trace_id: None,
        observation_id: None,
        created_at: Utc::now(),
        model_severity: severity,
        weighting_rule: None,
        arr_usd: None,
        tier_source: None,
        enrichment_failed: false,
        topic: None,
        sentiment: None,
        shadow: Default::default(),
        caller: None,
        supersedes: None,
    };
    let actions: Vec<NewAction> = kinds
        .iter()
        .map(|k| NewAction {
            kind: ActionKind::parse("kind", k).unwrap(),
            payload: json!({"thread_id": id}),
        })
        .collect();
    store.record(&d, &actions).await.unwrap();
    d
}

both_backends! {
    async fn under_a_backlog_the_worst_tickets_act_first_and_the_oldest_are_decided_first(store) {
        decided_as(&store, "th_routine", Severity::Routine, &["plain.label"]).await;
        decided_as(&store, "th_urgent", Severity::Urgent, &["plain.label"]).await;
        decided_as(&store, "th_fire", Severity::OnFire, &["plain.label", "plain.note"]).await;
        let lease = Duration::from_secs(60);
        let mut seen = Vec::new();
        for n in [2, 1, 1] {
            for a in store.lease_actions(lease, n).await.unwrap() {
                seen.push(a.ticket_id);
            }
        }
        assert_eq!(seen, ["th_fire", "th_fire", "th_urgent", "th_routine"]);

        for id in ["th_a", "th_b", "th_c"] {
            assert!(store.accept_delivery(&delivery(id)).await.unwrap());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let first = store.lease_deliveries(lease, 2).await.unwrap();
        let mut keys: Vec<&str> = first.iter().map(|d| d.key.ticket_id.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["th_a", "th_b"], "oldest first");
    }

    async fn deliveries_are_stored_once_and_leased_exclusively(store) {
        assert!(store.accept_delivery(&delivery("th_1")).await.unwrap());
        assert!(!store.accept_delivery(&delivery("th_1")).await.unwrap());
        assert!(store.accept_delivery(&delivery("th_2")).await.unwrap());

        let lease = Duration::from_secs(60);
        let first = store.lease_deliveries(lease, 1).await.unwrap();
        assert_eq!(first.len(), 1, "the limit is respected");
        assert_eq!(first[0].attempts, 1);
        assert_eq!(first[0].payload["thread_id"], first[0].key.ticket_id);
        let second = store.lease_deliveries(lease, 10).await.unwrap();
        assert_eq!(second.len(), 1, "a leased delivery is not leased again");
        assert_ne!(first[0].key, second[0].key);
        assert!(store.lease_deliveries(lease, 10).await.unwrap().is_empty());

        // Released for later: not due yet; released for now: leased again with its attempt counted.
        let later = Utc::now() + chrono::Duration::hours(1);
        store
            .retry_delivery(&first[0].key, "tool down", later)
            .await
            .unwrap();
        assert!(store.lease_deliveries(lease, 10).await.unwrap().is_empty());
        store
            .retry_delivery(&first[0].key, "tool down", Utc::now())
            .await
            .unwrap();
        let again = store.lease_deliveries(lease, 10).await.unwrap();
        assert_eq!((again.len(), again[0].attempts), (1, 2));

        store.finish_delivery(&first[0].key).await.unwrap();
        store.fail_delivery(&second[0].key, "gone").await.unwrap();
        store
            .retry_delivery(&second[0].key, "late", Utc::now())
            .await
            .unwrap();
        assert!(
            store.lease_deliveries(lease, 10).await.unwrap().is_empty(),
            "finished and failed deliveries stay finished"
        );
    }

    async fn an_expired_delivery_lease_is_taken_over(store) {
        store.accept_delivery(&delivery("th_1")).await.unwrap();
        let short = Duration::from_millis(1);
        assert_eq!(store.lease_deliveries(short, 10).await.unwrap().len(), 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let taken = store
            .lease_deliveries(Duration::from_secs(60), 10)
            .await
            .unwrap();
        assert_eq!((taken.len(), taken[0].attempts), (1, 2));
    }

    async fn actions_are_leased_exclusively_and_finished_once(store) {
        let d = decided_with_actions(
            &store,
            "th_1",
            &["plain.label", "plain.note", "plain.priority"],
        )
        .await;
        let lease = Duration::from_secs(60);
        let a = store.lease_actions(lease, 2).await.unwrap();
        assert_eq!(
            a.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(),
            ["plain.label", "plain.note"]
        );
        assert!(a.iter().all(|a| a.attempts == 1 && a.decision_id == d.id));
        let b = store.lease_actions(lease, 10).await.unwrap();
        assert_eq!(b.len(), 1);
        assert!(store.lease_actions(lease, 10).await.unwrap().is_empty());

        assert!(store.complete_action(a[0].id).await.unwrap());
        assert!(
            !store.complete_action(a[0].id).await.unwrap(),
            "done is recorded once"
        );
        store
            .retry_action(a[1].id, "HTTP 500", Utc::now())
            .await
            .unwrap();
        store.fail_action(b[0].id, "validation").await.unwrap();
        let again = store.lease_actions(lease, 10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(
            (
                again[0].id,
                again[0].attempts,
                again[0].last_error.as_deref()
            ),
            (a[1].id, 2, Some("HTTP 500"))
        );
        assert!(store.complete_action(again[0].id).await.unwrap());

        let all = store.actions(&d.id).await.unwrap();
        let summary: Vec<(&str, &str, u32, Option<&str>)> = all
            .iter()
            .map(|a| {
                (
                    a.kind.as_str(),
                    a.status.as_str(),
                    a.attempts,
                    a.last_error.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("plain.label", "done", 1, None),
                ("plain.note", "done", 2, None),
                ("plain.priority", "failed", 1, Some("validation")),
            ]
        );
    }

    async fn concurrent_workers_never_share_an_action(store) {
        for i in 0..10 {
            decided_with_actions(&store, &format!("th_{i}"), &["plain.label", "plain.note"]).await;
        }
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let store = store.clone();
            set.spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = store
                        .lease_actions(Duration::from_secs(60), 3)
                        .await
                        .unwrap();
                    if got.is_empty() {
                        break;
                    }
                    mine.extend(got.into_iter().map(|a| a.id));
                }
                mine
            });
        }
        let mut ids: Vec<i64> = set.join_all().await.into_iter().flatten().collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!((before, ids.len()), (20, 20));
    }

    async fn tickets_whose_claim_ran_out_undecided_are_listed(store) {
        let ticket = |id: &str, source: Source| {
            Ticket::parse(
                source,
                RawTicket {
                    id: id.into(),
                    version: "v1".into(),
                    subject: "s".into(),
                    body: "hello".into(),
                    tier: Some(Tier::Pro),
                    arr_usd: Some(5.0),
                    customer_id: "c_1".into(),
                },
                "",
            )
            .unwrap()
        };
        let short = Duration::from_millis(1);
        store.claim(&ticket("a", Source::Api), short).await.unwrap();
        // A `Classify` claim: decided later without actions.
        let log_only = ClaimOptions { acts: false, ..ClaimOptions::default() };
        tokio::time::sleep(Duration::from_millis(2)).await;
        store.claim_counting(&ticket("c", Source::Api), short, &log_only).await.unwrap();
        store
            .claim(&ticket("live", Source::Api), Duration::from_secs(60))
            .await
            .unwrap();
        store
            .claim(&ticket("p", Source::Plain), short)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let found = store.undecided_tickets(Source::Api, 10).await.unwrap();
        assert_eq!(
            found,
            [
                Undecided { ticket: ticket("a", Source::Api), acts: true },
                Undecided { ticket: ticket("c", Source::Api), acts: false },
            ],
            "same tickets back with their mode, live claims excluded"
        );
        assert_eq!(
            store
                .undecided_tickets(Source::Plain, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        // Once decided it is not listed any more.
        let d = decided_with_actions(&store, "x", &[]).await;
        assert_eq!(d.ticket_id, "x");
        let mut decision = d.clone();
        decision.id = uuid::Uuid::now_v7().to_string();
        decision.source = Source::Api;
        decision.ticket_id = "a".into();
        store.record(&decision, &[]).await.unwrap();
        decision.id = uuid::Uuid::now_v7().to_string();
        decision.ticket_id = "c".into();
        store.record(&decision, &[]).await.unwrap();
        assert!(
            store
                .undecided_tickets(Source::Api, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

/// Two processes on one database: a holder's leases and claims are its own while its heartbeat
/// is fresh, taken over by the other once it is stale, and at once after it retires.
async fn a_dead_holders_work_is_taken_over(alive: Arc<dyn Store>, other: Arc<dyn Store>) {
    let lease = Duration::from_secs(600);
    alive.heartbeat().await.unwrap();
    other.heartbeat().await.unwrap();
    assert!(alive.accept_delivery(&delivery("th_d1")).await.unwrap());
    assert!(alive.accept_delivery(&delivery("th_d2")).await.unwrap());
    decided_with_actions(&alive, "th_a1", &["plain.label"]).await;
    assert_eq!(alive.lease_deliveries(lease, 1).await.unwrap().len(), 1);
    assert_eq!(alive.lease_actions(lease, 10).await.unwrap().len(), 1);
    let ticket = Ticket::parse(
        Source::Api,
        RawTicket {
            id: "T-claimed".into(),
            body: "hello".into(),
            ..RawTicket::default()
        },
        "",
    )
    .unwrap();
    assert_eq!(
        alive.claim(&ticket, lease).await.unwrap(),
        escalator::store::Claim::New
    );
    // Alive: the other process leaves its work alone (it gets the one free delivery only).
    assert_eq!(other.lease_deliveries(lease, 10).await.unwrap().len(), 1);
    assert!(other.lease_actions(lease, 10).await.unwrap().is_empty());
    assert_eq!(
        other.claim(&ticket, lease).await.unwrap(),
        escalator::store::Claim::InFlight
    );
    // Silent for longer than `stale_after` (300 ms for `other`): taken over, long before the
    // 600 s lease runs out.
    tokio::time::sleep(Duration::from_millis(400)).await;
    other.heartbeat().await.unwrap();
    let taken = other.lease_deliveries(lease, 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].attempts, 2);
    assert_eq!(other.lease_actions(lease, 10).await.unwrap().len(), 1);
    assert_eq!(
        other.claim(&ticket, lease).await.unwrap(),
        escalator::store::Claim::New
    );
    // A retired holder's work is free at once, whatever the threshold.
    alive.heartbeat().await.unwrap();
    decided_with_actions(&alive, "th_a2", &["plain.label"]).await;
    assert_eq!(alive.lease_actions(lease, 10).await.unwrap().len(), 1);
    alive.retire().await.unwrap();
    assert_eq!(other.lease_actions(lease, 10).await.unwrap().len(), 1);
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_dead_holders_work_is_taken_over_on_postgres(pool: sqlx::PgPool) {
    a_dead_holders_work_is_taken_over(
        Arc::new(PgStore::new(pool.clone())),
        Arc::new(PgStore::new(pool).stale_after(Duration::from_millis(300))),
    )
    .await;
}

#[sqlx::test(migrations = "migrations/sqlite")]
async fn a_dead_holders_work_is_taken_over_on_sqlite(pool: sqlx::SqlitePool) {
    a_dead_holders_work_is_taken_over(
        Arc::new(SqliteStore::new(pool.clone())),
        Arc::new(SqliteStore::new(pool).stale_after(Duration::from_millis(300))),
    )
    .await;
}

/// The queue rows come back typed: a delivery's trace context from its column, or from the
/// payload of a row an older release stored (taken out of the payload); an action row of a kind
/// this release does not know is given up with the reason while the others still run. `sql`
/// runs a statement on the backend's own pool; the time literal is one both accept.
async fn queue_rows_are_read_typed<F, Fut>(store: Arc<dyn Store>, sql: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let lease = Duration::from_secs(60);
    let traced = NewDelivery {
        trace_context: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        ..delivery("th_traced")
    };
    assert!(store.accept_delivery(&traced).await.unwrap());
    sql(
        "INSERT INTO deliveries (source, ticket_id, version, event_type, payload, status, \
         attempts, next_attempt_at, received_at) VALUES ('plain', 'th_older', 'v1', \
         'thread.thread_created', '{\"thread_id\":\"th_older\",\"_traceparent\":\"00-older-01\"}', \
         'pending', 0, '2020-01-01T00:00:00+00:00', '2020-01-01T00:00:00+00:00')"
            .to_owned(),
    )
    .await;
    let mut leased = store.lease_deliveries(lease, 10).await.unwrap();
    leased.sort_by(|a, b| a.key.ticket_id.cmp(&b.key.ticket_id));
    let contexts: Vec<(&str, Option<&str>)> = leased
        .iter()
        .map(|d| (d.key.ticket_id.as_str(), d.trace_context.as_deref()))
        .collect();
    assert_eq!(
        contexts,
        [
            ("th_older", Some("00-older-01")),
            ("th_traced", traced.trace_context.as_deref()),
        ]
    );
    assert_eq!(leased[0].payload, json!({"thread_id": "th_older"}));

    let odd = decided_with_actions(&store, "th_odd", &["plain.label"]).await;
    decided_with_actions(&store, "th_fine", &["plain.note"]).await;
    sql(format!(
        "UPDATE actions SET kind = 'slack.post' WHERE decision_id = '{}'",
        odd.id
    ))
    .await;
    let runnable = store.lease_actions(lease, 10).await.unwrap();
    let kinds: Vec<(&str, ActionKind)> = runnable
        .iter()
        .map(|a| (a.ticket_id.as_str(), a.kind))
        .collect();
    assert_eq!(kinds, [("th_fine", ActionKind::PlainNote)]);
    assert!(store.lease_actions(lease, 10).await.unwrap().is_empty());
    assert_eq!(
        store.backlog().await.unwrap().actions_failed,
        1,
        "the unreadable action is failed"
    );
}

/// A statement runner on `pool`, whichever backend it is.
macro_rules! raw_sql {
    ($pool:expr) => {{
        let pool = $pool.clone();
        move |q: String| {
            let pool = pool.clone();
            async move {
                sqlx::raw_sql(sqlx::AssertSqlSafe(q))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        }
    }};
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn queue_rows_are_read_typed_on_postgres(pool: sqlx::PgPool) {
    let sql = raw_sql!(pool);
    queue_rows_are_read_typed(Arc::new(PgStore::new(pool)), sql).await;
}

#[sqlx::test(migrations = "migrations/sqlite")]
async fn queue_rows_are_read_typed_on_sqlite(pool: sqlx::SqlitePool) {
    let sql = raw_sql!(pool);
    queue_rows_are_read_typed(Arc::new(SqliteStore::new(pool)), sql).await;
}

/// A note (no idempotency key in either tool) leased by a holder that died is taken over only
/// after whatever that holder could still have in flight has landed or died: `stale_after` plus
/// the clients' request timeout (`in_flight_grace`, 1 s here) after its last heartbeat, and an
/// expired lease of one only that long after it ran out. An idempotent action (a label) is
/// taken over as soon as the holder is stale. Only the current holder's outcome counts.
async fn a_dead_holders_note_waits_for_its_requests_in_flight(
    dead: Arc<dyn Store>,
    other: Arc<dyn Store>,
) {
    let lease = Duration::from_secs(600);
    dead.heartbeat().await.unwrap();
    other.heartbeat().await.unwrap();
    let d = decided_with_actions(&dead, "th_n", &["plain.label", "plain.note"]).await;
    let held = dead.lease_actions(lease, 10).await.unwrap();
    assert_eq!(held.len(), 2);
    let (label, note) = (held[0].id, held[1].id);
    assert_eq!(held[1].kind.as_str(), "plain.note");

    // Stale (300 ms) but within the grace: the label is taken over, the note is not.
    tokio::time::sleep(Duration::from_millis(400)).await;
    other.heartbeat().await.unwrap();
    let taken = other.lease_actions(lease, 10).await.unwrap();
    assert_eq!(
        taken.iter().map(|a| a.id).collect::<Vec<_>>(),
        [label],
        "only the idempotent action is taken at once"
    );
    // The old holder's late outcomes count for nothing; the new holder's does.
    assert!(!dead.complete_action(label).await.unwrap());
    assert!(other.complete_action(label).await.unwrap());

    // Past stale_after + the grace: the note is taken over, its second attempt.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    other.heartbeat().await.unwrap();
    let taken = other.lease_actions(lease, 10).await.unwrap();
    assert_eq!(
        taken.iter().map(|a| (a.id, a.attempts)).collect::<Vec<_>>(),
        [(note, 2)]
    );
    dead.retry_action(note, "late", chrono::Utc::now())
        .await
        .unwrap();
    let now = other.actions(&d.id).await.unwrap();
    assert_eq!(
        now[1].last_error, None,
        "the old holder's late retry changed nothing"
    );
    assert!(
        other.lease_actions(lease, 10).await.unwrap().is_empty(),
        "still leased"
    );
    assert!(other.complete_action(note).await.unwrap());
    let statuses: Vec<&str> = other
        .actions(&d.id)
        .await
        .unwrap()
        .iter()
        .map(|a| a.status.as_str())
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    assert_eq!(statuses, ["done", "done"]);

    // A live holder's expired note lease also waits out the grace before another takes it.
    let e = decided_with_actions(&dead, "th_m", &["plain.note"]).await;
    dead.heartbeat().await.unwrap();
    other.heartbeat().await.unwrap();
    let short = dead
        .lease_actions(Duration::from_millis(100), 10)
        .await
        .unwrap();
    assert_eq!(short.len(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    dead.heartbeat().await.unwrap();
    assert!(other.lease_actions(lease, 10).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    dead.heartbeat().await.unwrap();
    let taken = other.lease_actions(lease, 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].decision_id, e.id);
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_dead_holders_note_waits_for_its_requests_in_flight_on_postgres(pool: sqlx::PgPool) {
    a_dead_holders_note_waits_for_its_requests_in_flight(
        Arc::new(PgStore::new(pool.clone())),
        Arc::new(
            PgStore::new(pool)
                .stale_after(Duration::from_millis(300))
                .in_flight_grace(Duration::from_secs(1)),
        ),
    )
    .await;
}

#[sqlx::test(migrations = "migrations/sqlite")]
async fn a_dead_holders_note_waits_for_its_requests_in_flight_on_sqlite(pool: sqlx::SqlitePool) {
    a_dead_holders_note_waits_for_its_requests_in_flight(
        Arc::new(SqliteStore::new(pool.clone())),
        Arc::new(
            SqliteStore::new(pool)
                .stale_after(Duration::from_millis(300))
                .in_flight_grace(Duration::from_secs(1)),
        ),
    )
    .await;
}

/// A live holder's leases on what it still works on are extended (the lease keeper's
/// statement), so they never run out under it; an item it does not extend runs out and is
/// taken; completing, retrying or extending counts only for the holder of the lease.
async fn extended_leases_stay_with_their_holder(holder: Arc<dyn Store>, other: Arc<dyn Store>) {
    holder.heartbeat().await.unwrap();
    other.heartbeat().await.unwrap();
    decided_with_actions(&holder, "th_x", &["plain.label", "plain.priority"]).await;
    let short = Duration::from_millis(300);
    let held = holder.lease_actions(short, 10).await.unwrap();
    let (label, priority) = (held[0].id, held[1].id);
    assert_eq!(
        holder
            .extend_actions(&[label], Duration::from_secs(60))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        other
            .extend_actions(&[priority], Duration::from_secs(60))
            .await
            .unwrap(),
        0,
        "nobody extends a lease it does not hold"
    );
    assert!(holder.accept_delivery(&delivery("th_dx")).await.unwrap());
    let d = holder.lease_deliveries(short, 10).await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(
        holder
            .extend_deliveries(&[d[0].key.clone()], Duration::from_secs(60))
            .await
            .unwrap(),
        1
    );

    tokio::time::sleep(Duration::from_millis(400)).await;
    holder.heartbeat().await.unwrap();
    other.heartbeat().await.unwrap();
    let taken = other
        .lease_actions(Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(
        taken.iter().map(|a| a.id).collect::<Vec<_>>(),
        [priority],
        "the extended lease holds; the other one ran out"
    );
    assert!(
        other
            .lease_deliveries(Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !holder.complete_action(priority).await.unwrap(),
        "no longer its lease"
    );
    assert!(holder.complete_action(label).await.unwrap());
    assert!(other.complete_action(priority).await.unwrap());
    // The other process's retry of the delivery it does not hold changes nothing.
    other
        .retry_delivery(&d[0].key, "not mine", Utc::now())
        .await
        .unwrap();
    assert!(
        other
            .lease_deliveries(Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty()
    );
    holder
        .retry_delivery(&d[0].key, "mine", Utc::now())
        .await
        .unwrap();
    // The keeper's next round, just after the attempt released the delivery, does not take it
    // back (it would sit leased with nobody working on it).
    assert_eq!(
        holder
            .extend_deliveries(&[d[0].key.clone()], Duration::from_secs(60))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        other
            .lease_deliveries(Duration::from_secs(60), 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn extended_leases_stay_with_their_holder_on_postgres(pool: sqlx::PgPool) {
    extended_leases_stay_with_their_holder(
        Arc::new(PgStore::new(pool.clone())),
        Arc::new(PgStore::new(pool)),
    )
    .await;
}

#[sqlx::test(migrations = "migrations/sqlite")]
async fn extended_leases_stay_with_their_holder_on_sqlite(pool: sqlx::SqlitePool) {
    extended_leases_stay_with_their_holder(
        Arc::new(SqliteStore::new(pool.clone())),
        Arc::new(SqliteStore::new(pool)),
    )
    .await;
}

/// Stores `n` new deliveries: a backlog the queue's statistics do not know yet.
async fn accept_backlog(store: &Arc<dyn escalator::store::Store>, n: usize) {
    for i in 0..n {
        assert!(
            store
                .accept_delivery(&delivery(&format!("th_{i}")))
                .await
                .unwrap()
        );
    }
}

/// A backlog that grew since the queue tables were last analysed is analysed by the next
/// heartbeat's `refresh_queue_statistics`, so the planner's row counts follow the backlog
/// (on statistics that said "nothing pending" it read and sorted every pending row per lease).
#[sqlx::test(migrations = "migrations/postgres")]
async fn a_grown_backlog_is_analysed_for_the_planner_on_postgres(pool: sqlx::PgPool) {
    let store = crate::harness::pg(pool.clone());
    let reltuples = || async {
        sqlx::query_scalar::<_, f32>("SELECT reltuples FROM pg_class WHERE relname = 'deliveries'")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert!(reltuples().await < 1.0, "a new table has no row count yet");
    accept_backlog(&store, 1_500).await;
    // The statistics system's counters reach the catalog views within about a second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let analysed = loop {
        let tables = store.refresh_queue_statistics().await.unwrap();
        if !tables.is_empty() || tokio::time::Instant::now() > deadline {
            break tables;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(analysed, ["deliveries"], "only the table that changed");
    assert!(
        reltuples().await >= 1_500.0,
        "the planner counts the backlog"
    );
}

/// A role that does not own the queue tables (a deployment whose migrations run as another
/// role) is never made to analyse them: PostgreSQL would skip each with a WARNING on every
/// heartbeat. Their owner still does.
#[sqlx::test(migrations = "migrations/postgres")]
async fn a_role_that_may_not_analyse_the_queue_leaves_it_to_autovacuum_on_postgres(
    pool: sqlx::PgPool,
) {
    let owner = crate::harness::pg(pool.clone());
    accept_backlog(&owner, 1_500).await;
    // The counters reach the catalog views within about a second.
    let drifted = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'deliveries'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
            > 1_000
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !drifted().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the statistics never counted the backlog"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Roles belong to the whole server: this one is dropped before anything is asserted.
    let role = format!("escalator_not_owner_{}", uuid::Uuid::now_v7().simple());
    for sql in [
        format!("CREATE ROLE {role} NOLOGIN"),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
    }
    let options = pool.connect_options().as_ref().clone();
    let set_role = format!("SET ROLE {role}");
    let limited = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .after_connect(move |conn, _| {
            let set_role = set_role.clone();
            Box::pin(async move {
                sqlx::Executor::execute(conn, sqlx::AssertSqlSafe(set_role)).await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .unwrap();
    let current = sqlx::query_scalar::<_, String>("SELECT current_user::text")
        .fetch_one(&limited)
        .await;
    let not_owner = crate::harness::pg(limited.clone())
        .refresh_queue_statistics()
        .await;
    limited.close().await;
    for sql in [format!("DROP OWNED BY {role}"), format!("DROP ROLE {role}")] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
    }
    assert_eq!(
        current.unwrap(),
        role,
        "the second pool works as the other role"
    );
    assert!(
        not_owner.unwrap().is_empty(),
        "nothing analysed by a role that may not"
    );
    assert_eq!(
        owner.refresh_queue_statistics().await.unwrap(),
        ["deliveries"]
    );
}

#[sqlx::test(migrations = "migrations/sqlite")]
async fn sqlite_has_no_queue_statistics_to_refresh(pool: sqlx::SqlitePool) {
    let store = crate::harness::lite(pool);
    assert!(store.accept_delivery(&delivery("th_1")).await.unwrap());
    assert!(store.refresh_queue_statistics().await.unwrap().is_empty());
}
