//! `Classify` and `Route` over a real socket with the generated tonic client.

use escalator::grpc::pb::{self, ClassifyRequest, RouteRequest};
use tonic::Code;

use crate::{
    both_backends,
    harness::{spawn_app, ticket},
};

both_backends! {
    async fn classify_logs_the_decision_and_returns_it(store) {
        let mut app = spawn_app(store).await;
        let req = ClassifyRequest {
            ticket: Some(ticket("T-100", "API down", "Every request to your API returns HTTP 500 since noon.", "pro")),
        };
        let resp = app.grpc.classify(req).await.unwrap().into_inner();
        assert!(!resp.duplicate);
        let d = resp.decision.unwrap();
        assert_eq!(d.severity(), pb::Severity::OnFire);
        assert_eq!(d.route(), pb::Route::Engineering);
        assert_eq!(d.model, "offline");
        assert!(!d.fallback);
        assert!(d.prompt_version.starts_with("classifier@"));
        assert!(d.reasoning.contains("Production down"), "{}", d.reasoning);
        // Production down is a negative tone, as the labels files have it.
        assert_eq!((d.topic.as_str(), d.sentiment.as_str()), ("outage", "negative"));
        // No weighting rule raised it: the classifier's own severity is the final one.
        assert_eq!((d.model_severity(), d.weighting_rule.as_str()), (pb::Severity::OnFire, ""));
        assert_eq!((d.tier.as_str(), d.tier_source.as_str()), ("pro", "request"));
        assert_eq!((d.source.as_str(), d.ticket_id.as_str(), d.ticket_version.as_str()), ("api", "T-100", "v1"));
        // It is in the routing log, under its idempotency key.
        let key = escalator::domain::IdempotencyKey::new(escalator::domain::Source::Api, "T-100", "v1");
        let logged = app.store.decision(&key).await.unwrap().expect("decision in the routing log");
        assert_eq!(logged.id, d.decision_id);
        assert_eq!((logged.topic.as_deref(), logged.sentiment), (Some("outage"), Some(escalator::domain::Sentiment::Negative)));
        assert_eq!(logged.severity.as_str(), "on_fire");
        app.stop().await;
    }

    async fn a_repeat_returns_the_stored_decision_without_classifying_again(store) {
        let mut app = spawn_app(store).await;
        let t = ticket("T-101", "Docs", "Where is the webhook documentation?", "free");
        let first = app.grpc.classify(ClassifyRequest { ticket: Some(t.clone()) }).await.unwrap().into_inner();
        // Same key, different text: a re-delivery must not be re-classified.
        let mut changed = t.clone();
        changed.body = "Production is down for everyone!".into();
        let again = app.grpc.classify(ClassifyRequest { ticket: Some(changed) }).await.unwrap().into_inner();
        assert!(again.duplicate);
        assert_eq!(again.decision, first.decision);
        app.stop().await;
    }

    async fn concurrent_duplicates_make_one_decision(store) {
        let app = spawn_app(store).await;
        let t = ticket("T-102", "Refund", "We were charged twice, please refund.", "pro");
        let calls = (0..20).map(|_| {
            let mut c = app.grpc.clone();
            let t = t.clone();
            tokio::spawn(async move { c.classify(ClassifyRequest { ticket: Some(t) }).await.unwrap().into_inner() })
        });
        let results: Vec<_> = futures_join(calls).await;
        let ids: std::collections::BTreeSet<_> =
            results.iter().map(|r| r.decision.as_ref().unwrap().decision_id.clone()).collect();
        assert_eq!(ids.len(), 1, "one decision for one key");
        assert_eq!(results.iter().filter(|r| !r.duplicate).count(), 1);
        app.stop().await;
    }

    async fn invalid_tickets_are_rejected_naming_the_field_and_not_logged(store) {
        let mut app = spawn_app(store).await;
        let cases = [
            (None, "invalid ticket: is required"),
            (Some(ticket("T-103", "s", "   ", "pro")), "invalid ticket.body: must not be empty"),
            (Some(ticket("", "s", "b", "pro")), "invalid ticket.id: must not be empty"),
            (Some(ticket("T-103", "s", "b", "gold")), "invalid ticket.tier: \"gold\" is not one of free, pro, enterprise"),
            (Some(ticket("T-103", "s", &"x".repeat(32_769), "pro")), "invalid ticket.body: is 32769 characters, the limit is 32768"),
            (Some(pb::Ticket { arr_usd: Some(f64::NAN), ..ticket("T-103", "s", "b", "pro") }), "invalid ticket.arr_usd: NaN is not a finite amount >= 0"),
        ];
        for (t, message) in cases {
            let e = app.grpc.classify(ClassifyRequest { ticket: t }).await.unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument);
            assert_eq!(e.message(), message);
        }
        let key = escalator::domain::IdempotencyKey::new(escalator::domain::Source::Api, "T-103", "v1");
        assert!(app.store.decision(&key).await.unwrap().is_none());
        app.stop().await;
    }

    async fn a_repeat_customer_within_a_day_is_urgent(store) {
        let mut app = spawn_app(store).await;
        let mut first = ticket("T-104", "Export", "How do I export a dashboard to CSV?", "free");
        first.customer_id = "cust-9".into();
        let d1 = app.grpc.classify(ClassifyRequest { ticket: Some(first) }).await.unwrap().into_inner();
        assert_eq!(d1.decision.unwrap().severity(), pb::Severity::Routine);
        let mut second = ticket("T-105", "Invite", "How do I invite a teammate?", "free");
        second.customer_id = "cust-9".into();
        let d2 = app.grpc.classify(ClassifyRequest { ticket: Some(second) }).await.unwrap().into_inner();
        let d2 = d2.decision.unwrap();
        assert_eq!(d2.severity(), pb::Severity::Urgent);
        // The offline classifier judged the words; the repeat rule raised it, and says so.
        assert_eq!(d2.model_severity(), pb::Severity::Routine);
        assert_eq!(d2.weighting_rule, "tiers.repeat");
        app.stop().await;
    }

    async fn route_logs_and_dry_run_does_not(store) {
        let mut app = spawn_app(store).await;
        let t = ticket("T-106", "Lawyer", "Our lawyer will contact you about breach of contract.", "pro");
        let dry = app.grpc.route(RouteRequest { ticket: Some(t.clone()), dry_run: true }).await.unwrap().into_inner();
        assert!(!dry.duplicate);
        assert_eq!(dry.decision.as_ref().unwrap().severity(), pb::Severity::OnFire);
        let key = escalator::domain::IdempotencyKey::new(escalator::domain::Source::Api, "T-106", "v1");
        assert!(app.store.decision(&key).await.unwrap().is_none(), "a dry run writes nothing");
        let real = app.grpc.route(RouteRequest { ticket: Some(t.clone()), dry_run: false }).await.unwrap().into_inner();
        assert!(!real.duplicate);
        let again = app.grpc.route(RouteRequest { ticket: Some(t), dry_run: false }).await.unwrap().into_inner();
        assert!(again.duplicate);
        assert_eq!(again.decision, real.decision);
        assert!(app.store.decision(&key).await.unwrap().is_some());
        app.stop().await;
    }

    async fn a_dead_database_answers_unavailable(store) {
        let mut app = spawn_app(store).await;
        assert_eq!(app.get("/readyz").await, (200, "ready\n".to_owned()));
        app.store.close().await;
        let e = app.grpc.classify(ClassifyRequest { ticket: Some(ticket("T-107", "s", "hello", "pro")) }).await.unwrap_err();
        assert_eq!(e.code(), Code::Unavailable);
        assert_eq!(e.message(), "the routing log is unavailable; retry later");
        assert_eq!(app.get("/readyz").await, (503, "database unavailable\n".to_owned()));
        assert_eq!(app.get("/healthz").await, (200, "ok\n".to_owned()));
        app.stop().await;
    }

    async fn health_and_reflection_are_served(store) {
        let app = spawn_app(store).await;
        let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
        let status = health
            .check(tonic_health::pb::HealthCheckRequest { service: "escalator.v1.Escalator".into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status.status(), tonic_health::pb::health_check_response::ServingStatus::Serving);

        use tonic_reflection::pb::v1::{
            server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
            server_reflection_response::MessageResponse, ServerReflectionRequest,
        };
        let mut reflection = ServerReflectionClient::new(app.channel.clone());
        let req = ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) };
        let mut stream = reflection.server_reflection_info(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
        let resp = stream.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else { panic!("no service list") };
        let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
        assert!(names.contains(&"escalator.v1.Escalator".to_owned()), "{names:?}");
        assert!(names.contains(&"grpc.health.v1.Health".to_owned()), "{names:?}");
        app.stop().await;
    }
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

fn message(author: pb::Author, minutes: i64, text: &str) -> pb::Message {
    pb::Message {
        author: author.into(),
        sent_at: (chrono::DateTime::<chrono::Utc>::from_timestamp(1_790_000_000, 0).unwrap()
            + chrono::Duration::minutes(minutes))
        .to_rfc3339(),
        text: text.into(),
        id: String::new(),
    }
}

mod conversations {
    use super::*;

    both_backends! {
        async fn a_conversation_is_decided_and_supersedes_the_tickets_earlier_decision(store) {
            let mut app = spawn_app(store).await;
            let first = app.grpc.classify(ClassifyRequest {
                ticket: Some(ticket("T-200", "Exporting dashboards", "How do I export a CSV of my dashboards?", "free")),
            }).await.unwrap().into_inner().decision.unwrap();
            assert_eq!((first.severity(), first.supersedes.as_str()), (pb::Severity::Routine, ""));
            let mut again = ticket("T-200", "Exporting dashboards", "How do I export a CSV of my dashboards?", "free");
            again.version = "v2".into();
            again.conversation = vec![
                message(pb::Author::Customer, 30, "The export deleted half of our records. We lost customer data in production!"),
                message(pb::Author::Agent, 10, "Settings, then Export."),
            ];
            let d = app.grpc.route(RouteRequest { ticket: Some(again), dry_run: false })
                .await.unwrap().into_inner().decision.unwrap();
            assert_eq!(d.severity(), pb::Severity::OnFire);
            assert_eq!(d.supersedes, first.decision_id);
            // The request's messages are the caller's: only the thread's first ticket is kept as
            // its first message (no message delivery was stored).
            let logged = app.store.thread_messages(escalator::domain::Source::Api, "T-200").await.unwrap();
            assert_eq!(logged.len(), 1, "the first ticket's body is the thread's first message");
            app.stop().await;
        }

        async fn a_conversation_message_without_author_or_time_is_refused_naming_it(store) {
            let mut app = spawn_app(store).await;
            let mut t = ticket("T-201", "s", "", "free");
            t.conversation = vec![message(pb::Author::Unspecified, 0, "hello")];
            let e = app.grpc.classify(ClassifyRequest { ticket: Some(t.clone()) }).await.unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument);
            assert_eq!(e.message(), "invalid ticket.conversation[0].author: must be CUSTOMER or AGENT");
            t.conversation = vec![pb::Message { sent_at: "yesterday".into(), ..message(pb::Author::Customer, 0, "hi") }];
            let e = app.grpc.classify(ClassifyRequest { ticket: Some(t) }).await.unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument);
            assert!(e.message().starts_with("invalid ticket.conversation[0].sent_at: is not RFC 3339"), "{}", e.message());
            app.stop().await;
        }
    }
}
