//! Follow-ups (issue 26): the store's part on PostgreSQL and SQLite (the `supersedes` link,
//! the thread's messages, the window and count that bound re-decisions, a person's change
//! since escalator last acted, what escalator's done actions set on a thread).

use std::time::Duration;

use chrono::Utc;
use escalator::{
    classifier::OfflineClassifier,
    domain::{
        Decision, IdempotencyKey, Source, TicketContext,
        conversation::{Author, Message},
        work::{ActionKind, NewAction, NewDelivery},
    },
};

use crate::{both_backends, harness::domain_ticket};

fn decision_for(t: &escalator::domain::Ticket) -> Decision {
    let ctx = TicketContext {
        ticket: t.clone(),
        repeat_count_24h: 0,
    };
    let c = OfflineClassifier::new(&[], "classifier@test").decide(&ctx);
    Decision::new(&ctx, c, None)
}

fn message_delivery(ticket: &str, id: &str, author: Author, text: &str) -> NewDelivery {
    let message = Message {
        id: id.into(),
        author,
        sent_at: Utc::now(),
        text: text.into(),
    };
    NewDelivery {
        key: IdempotencyKey::new(Source::Api, ticket, format!("message:{id}")),
        event_type: "thread.email_received".into(),
        payload: serde_json::json!({ "message": message }),
        webhook_version: None,
        missing_fields: Vec::new(),
        trace_context: None,
    }
}

both_backends! {
    async fn a_redecision_links_the_decision_it_supersedes(store) {
        let first = domain_ticket("F-1", "v1", "");
        store.claim(&first, Duration::from_secs(60)).await.unwrap();
        let d1 = decision_for(&first);
        store.record(&d1, &[]).await.unwrap();
        let again = domain_ticket("F-1", "message:m2", "");
        store.claim(&again, Duration::from_secs(60)).await.unwrap();
        let mut d2 = decision_for(&again);
        d2.supersedes = Some(d1.id.clone());
        store.record(&d2, &[]).await.unwrap();
        let stored = store.decision(again.key()).await.unwrap().unwrap();
        assert_eq!(stored.supersedes.as_deref(), Some(d1.id.as_str()));
        assert_eq!(store.decision(first.key()).await.unwrap().unwrap().supersedes, None);
        let all = store.thread_decisions(Source::Api, "F-1").await.unwrap();
        let ids: Vec<_> = all.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, [d2.id.as_str(), d1.id.as_str()]);
    }

    async fn a_thread_reads_its_first_message_and_every_message_delivery(store) {
        let first = domain_ticket("F-2", "v1", "");
        store.claim(&first, Duration::from_secs(60)).await.unwrap();
        assert!(store.accept_delivery(&message_delivery("F-2", "m1", Author::Agent, "Try this.")).await.unwrap());
        assert!(store.accept_delivery(&message_delivery("F-2", "m2", Author::Customer, "Ça a supprimé 😱")).await.unwrap());
        // A redelivered message is stored once.
        assert!(!store.accept_delivery(&message_delivery("F-2", "m2", Author::Customer, "Ça a supprimé 😱")).await.unwrap());
        let mut msgs = store.thread_messages(Source::Api, "F-2").await.unwrap();
        msgs.sort_by(|a, b| a.id.cmp(&b.id));
        let seen: Vec<_> = msgs.iter().map(|m| (m.id.as_str(), m.author, m.text.as_str())).collect();
        assert_eq!(seen, vec![
            ("first", Author::Customer, "How do I export a dashboard?"),
            ("m1", Author::Agent, "Try this."),
            ("m2", Author::Customer, "Ça a supprimé 😱"),
        ]);
        assert!(store.thread_messages(Source::Api, "nope").await.unwrap().is_empty());
    }

    async fn one_window_per_thread_and_one_delivery_ends_it(store) {
        let t0 = Utc::now();
        let a = store.open_followup_window(Source::Api, "F-3", "message:a", t0, t0).await.unwrap();
        assert_eq!(a.window_opened_by.as_deref(), Some("message:a"));
        assert_eq!(a.redecisions, 0);
        // A second message inside the window joins it.
        let t1 = t0 + chrono::Duration::seconds(5);
        let b = store.open_followup_window(Source::Api, "F-3", "message:b", t1, t1).await.unwrap();
        assert_eq!(b.window_opened_by.as_deref(), Some("message:a"));
        // Only one delivery ends the window, however many try.
        let t2 = t0 + chrono::Duration::seconds(60);
        assert!(store.begin_redecision(Source::Api, "F-3", "message:a", "message:b", t2).await.unwrap());
        assert!(!store.begin_redecision(Source::Api, "F-3", "message:a", "message:a", t2).await.unwrap());
        // A message the re-decision read (received before it began) opens no new window.
        let covered = store.open_followup_window(Source::Api, "F-3", "message:a", t0, t2).await.unwrap();
        assert_eq!(covered.window_opened_by, None);
        assert_eq!(covered.redecisions, 1);
        assert_eq!(covered.last_version.as_deref(), Some("message:b"));
        // A later one does.
        let t3 = t2 + chrono::Duration::seconds(1);
        let c = store.open_followup_window(Source::Api, "F-3", "message:c", t3, t3).await.unwrap();
        assert_eq!(c.window_opened_by.as_deref(), Some("message:c"));
        assert_eq!(c.redecisions, 1);
    }

    async fn a_person_changed_the_routing_only_after_an_override_since_escalator_acted(store) {
        let t = domain_ticket("F-4", "v1", "");
        store.claim(&t, Duration::from_secs(60)).await.unwrap();
        let d = decision_for(&t);
        assert_eq!(store.last_acted_at(Source::Api, "F-4").await.unwrap(), None);
        let actions = vec![
            NewAction { kind: ActionKind::PlainPriority, payload: serde_json::json!({"thread_id": "F-4", "priority": 1}) },
            NewAction { kind: ActionKind::PlainNote, payload: serde_json::json!({}) },
        ];
        store.record(&d, &actions).await.unwrap();
        let acted = store.last_acted_at(Source::Api, "F-4").await.unwrap().unwrap();
        assert!((acted - d.created_at).num_milliseconds().abs() < 1);
        assert!(!store.person_changed_since(Source::Api, "F-4", acted).await.unwrap());
        store.insert_review(&escalator::domain::review::NewReview {
            decision_id: d.id.clone(),
            reviewer: "u_agent".into(),
            verdict: escalator::domain::review::ReviewVerdict::Corrected(escalator::domain::Severity::Routine),
            why: Some("lowered".into()),
            origin: escalator::domain::review::Origin::Override,
            external_key: Some("plain:pEv_x".into()),
            labels: Default::default(),
            pass: escalator::domain::review::Pass::First,
        }, &[]).await.unwrap();
        assert!(store.person_changed_since(Source::Api, "F-4", acted).await.unwrap());
        assert!(!store.person_changed_since(Source::Api, "F-4", Utc::now() + chrono::Duration::seconds(5)).await.unwrap());
    }

    async fn what_escalator_set_is_the_threads_done_routing_actions_oldest_first(store) {
        let first = domain_ticket("F-7", "v1", "");
        store.claim(&first, Duration::from_secs(60)).await.unwrap();
        let d1 = decision_for(&first);
        store.record(&d1, &[
            NewAction { kind: ActionKind::PlainLabel, payload: serde_json::json!({"thread_id": "F-7", "label_type_ids": ["lt_bot"]}) },
            NewAction { kind: ActionKind::PlainPriority, payload: serde_json::json!({"thread_id": "F-7", "priority": 2}) },
            NewAction { kind: ActionKind::PlainNote, payload: serde_json::json!({}) },
        ]).await.unwrap();
        // Nothing done yet: escalator set nothing.
        assert!(store.acted_routing(Source::Api, "F-7").await.unwrap().is_empty());
        let leased = store.lease_actions(Duration::from_secs(60), 10).await.unwrap();
        assert_eq!(leased.len(), 3);
        let ids: Vec<i64> = leased.iter().map(|a| a.id).collect();
        assert_eq!(store.complete_actions(&ids).await.unwrap(), 3);
        // A raise whose priority is still pending.
        let again = domain_ticket("F-7", "message:m1", "");
        store.claim(&again, Duration::from_secs(60)).await.unwrap();
        let d2 = decision_for(&again);
        store.record(&d2, &[
            NewAction { kind: ActionKind::PlainPriority, payload: serde_json::json!({"thread_id": "F-7", "priority": 0}) },
        ]).await.unwrap();
        let acted = store.acted_routing(Source::Api, "F-7").await.unwrap();
        let kinds: Vec<&str> = acted.iter().map(|a| a.kind.as_str()).collect();
        assert_eq!(kinds, ["plain.label", "plain.priority"], "done, oldest first, no note");
        assert_eq!(acted[1].payload["priority"], 2);
        assert!(acted.iter().all(|a| a.decision_id == d1.id));
        // Another thread's actions are not this one's.
        assert!(store.acted_routing(Source::Api, "F-8").await.unwrap().is_empty());
    }

    async fn the_audit_counts_follow_ups_raised_kept_undone_and_note_only(store) {
        let now = Utc::now();
        let acts = |thread: &str| vec![
            NewAction { kind: ActionKind::PlainPriority, payload: serde_json::json!({"thread_id": thread, "priority": 0}) },
            NewAction { kind: ActionKind::PlainNote, payload: serde_json::json!({}) },
        ];
        let note = vec![NewAction { kind: ActionKind::PlainNote, payload: serde_json::json!({}) }];
        let log = |t: &escalator::domain::Ticket, supersedes: Option<&str>| {
            let mut d = decision_for(t);
            d.supersedes = supersedes.map(str::to_owned);
            d
        };
        // F-5: first decision, a raise an agent then undoes, a note-only raise, an equal one.
        let mut ids = Vec::new();
        let mut previous: Option<String> = None;
        for (version, actions) in [("v1", acts("F-5")), ("message:a", acts("F-5")), ("message:b", note.clone()), ("message:c", Vec::new())] {
            let t = domain_ticket("F-5", version, "");
            store.claim(&t, Duration::from_secs(60)).await.unwrap();
            let d = log(&t, previous.as_deref());
            store.record(&d, &actions).await.unwrap();
            previous = Some(d.id.clone());
            ids.push(d.id);
        }
        store.insert_review(&escalator::domain::review::NewReview {
            decision_id: ids[1].clone(),
            reviewer: "u_agent".into(),
            verdict: escalator::domain::review::ReviewVerdict::Corrected(escalator::domain::Severity::Routine),
            why: Some("lowered".into()),
            origin: escalator::domain::review::Origin::Override,
            external_key: Some("plain:pEv_y".into()),
            labels: Default::default(),
            pass: escalator::domain::review::Pass::First,
        }, &[]).await.unwrap();
        // F-6: a raise nobody undid.
        let first = domain_ticket("F-6", "v1", "");
        store.claim(&first, Duration::from_secs(60)).await.unwrap();
        let d1 = log(&first, None);
        store.record(&d1, &acts("F-6")).await.unwrap();
        let again = domain_ticket("F-6", "message:z", "");
        store.claim(&again, Duration::from_secs(60)).await.unwrap();
        store.record(&log(&again, Some(&d1.id)), &acts("F-6")).await.unwrap();

        let rows = store
            .audit_decisions(now - chrono::Duration::hours(1), Utc::now() + chrono::Duration::hours(1))
            .await
            .unwrap();
        let refs: Vec<_> = rows.iter().collect();
        let week = escalator::audit::weeks::IsoWeek::of(now.date_naive());
        let w = escalator::audit::figures::week(week, chrono_tz::UTC, &refs, &[], &[], &mut Default::default());
        let f = w.follow_ups;
        assert_eq!(
            (f.redecisions, f.raised, f.kept, f.undone, f.note_only),
            (4, 2, 1, 1, 1)
        );
        assert_eq!(f.raised_accuracy.n, 0, "nothing sampled, nothing judged");
    }
}
