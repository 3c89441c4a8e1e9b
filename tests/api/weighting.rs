//! Tier weighting end to end, on PostgreSQL and SQLite: a rule that changes an outcome says so
//! in the stored row (the classifier's severity beside the final one, the rule, tier, ARR and
//! its source) and in the gRPC answer (its route, and the model's severity, rule, tier and tier
//! source beside the final severity); the ARR threshold raises a tier; the stored
//! tier source survives recovery; the weekly audit counts each rule's changes per week.

use std::{collections::BTreeMap, io::Write as _, time::Duration};

use escalator::{
    audit,
    classifier::OfflineClassifier,
    config::Settings,
    domain::{
        Decision, IdempotencyKey, RawTicket, Severity, Source, Ticket, TicketContext, Tier,
        TierSource,
    },
    grpc::pb::{self, ClassifyRequest},
    store::Recorded,
};

use crate::{
    both_backends,
    fakes::{FakeClaude, MODEL_KEY},
    harness::{TestApp, ticket},
};

/// Settings with `toml` as the `ESCALATOR_CONFIG` file (kept alive by the returned file).
fn settings_with(toml: &str) -> (Settings, tempfile::NamedTempFile) {
    settings_with_env(toml, &[])
}

/// [`settings_with`], with `env` set besides.
fn settings_with_env(toml: &str, env: &[(&str, &str)]) -> (Settings, tempfile::NamedTempFile) {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(toml.as_bytes()).unwrap();
    let path = f.path().to_str().unwrap().to_owned();
    let mut vars = BTreeMap::from([
        ("ESCALATOR_GRPC_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_HTTP_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_CONFIG", path.as_str()),
    ]);
    vars.extend(env.iter().copied());
    let s = Settings::load(&vars).unwrap();
    (s, f)
}

const PRO_FLOOR: &str = "[tiers.pro]\nfloor = \"urgent\"\n";

fn api_key(id: &str) -> IdempotencyKey {
    IdempotencyKey::new(Source::Api, id, "v1")
}

fn weighed(
    id: &str,
    at: chrono::DateTime<chrono::Utc>,
    rule: Option<&str>,
    failed: bool,
) -> Decision {
    let t = Ticket::parse(
        Source::Api,
        RawTicket {
            id: id.into(),
            version: "1".into(),
            body: "How do I export a CSV?".into(),
            tier: Some(Tier::Enterprise),
            arr_usd: Some(90_000.0),
            ..RawTicket::default()
        },
        "",
    )
    .unwrap()
    .with_tier_source(TierSource::PlainCompany, failed);
    let ctx = TicketContext {
        ticket: t,
        repeat_count_24h: 0,
    };
    let c = OfflineClassifier::new(&[], "classifier@test").decide(&ctx);
    let mut d = Decision::new(&ctx, c, None);
    d.created_at = at;
    match rule {
        Some(r) => d.weighed(Severity::OnFire, Some(r.to_owned())),
        None => d,
    }
}

both_backends! {
    async fn a_floor_changes_the_outcome_and_the_row_says_so(store) {
        let (s, file) = settings_with(PRO_FLOOR);
        let mut app = TestApp::with_store(s, store, Some(file)).await;
        let resp = app
            .grpc
            .classify(ClassifyRequest {
                ticket: Some(ticket("W-1", "Export", "How do I export a CSV of our dashboards?", "pro")),
            })
            .await
            .unwrap()
            .into_inner();
        let d = resp.decision.unwrap();
        assert_eq!(d.severity(), pb::Severity::Urgent);
        assert_eq!(d.route(), pb::Route::Human, "the route follows the final severity");
        let row = app.store.decision(&api_key("W-1")).await.unwrap().unwrap();
        assert_eq!(row.model_severity, Severity::Routine, "the offline classifier said routine");
        assert_eq!(row.severity, Severity::Urgent);
        assert_eq!(row.route.as_str(), "human");
        assert_eq!(row.weighting_rule.as_deref(), Some("tiers.pro"));
        assert_eq!(row.tier, Tier::Pro);
        assert_eq!(row.tier_source, Some(TierSource::Request));
        assert!(!row.enrichment_failed);

        // Free has no floor: the classifier's routine stands, no rule is recorded.
        app.grpc
            .classify(ClassifyRequest {
                ticket: Some(ticket("W-2", "Export", "How do I export a CSV of our dashboards?", "free")),
            })
            .await
            .unwrap();
        let row = app.store.decision(&api_key("W-2")).await.unwrap().unwrap();
        assert_eq!((row.model_severity, row.severity), (Severity::Routine, Severity::Routine));
        assert_eq!(row.weighting_rule, None);
        app.stop().await;
    }

    async fn the_grpc_decision_carries_the_classifiers_severity_the_rule_and_the_tier(store) {
        // The default rules (enterprise is at least urgent) after a Messages API that calls
        // every ticket without "down" in it routine (the offline path shows the same rule, see
        // `a_floor_changes_the_outcome_and_the_row_says_so`).
        let claude = FakeClaude::start().await;
        let (s, file) = settings_with_env("", &[("ANTHROPIC_API_KEY", MODEL_KEY), ("ANTHROPIC_BASE_URL", &claude.url)]);
        let mut app = TestApp::with_store(s, store, Some(file)).await;
        let t = ticket("W-G1", "Export", "How do I export a CSV of our dashboards?", "enterprise");
        let first = app.grpc.classify(ClassifyRequest { ticket: Some(t.clone()) }).await.unwrap().into_inner();
        let d = first.decision.unwrap();
        assert_eq!((d.model.as_str(), d.fallback), ("claude-sonnet-4-6", false));
        assert_eq!((d.severity(), d.route()), (pb::Severity::Urgent, pb::Route::Human));
        assert_eq!(d.model_severity(), pb::Severity::Routine, "the model said routine");
        assert_eq!(d.weighting_rule, "tiers.enterprise");
        assert_eq!((d.tier.as_str(), d.tier_source.as_str()), ("enterprise", "request"));
        assert_eq!(claude.calls(), 1);
        // A repeat answers the logged decision, read back from the store: the same fields.
        let again = app.grpc.classify(ClassifyRequest { ticket: Some(t) }).await.unwrap().into_inner();
        assert!(again.duplicate);
        assert_eq!(again.decision.unwrap(), d);
        assert_eq!(claude.calls(), 1, "not classified again");

        // Free (an empty tier) has no floor: the classifier's severity stands, no rule.
        let t = ticket("W-G2", "Export", "How do I export a CSV of our dashboards?", "");
        let d = app.grpc.classify(ClassifyRequest { ticket: Some(t) }).await.unwrap().into_inner().decision.unwrap();
        assert_eq!((d.severity(), d.model_severity()), (pb::Severity::Routine, pb::Severity::Routine));
        assert_eq!(d.weighting_rule, "");
        assert_eq!((d.tier.as_str(), d.tier_source.as_str()), ("free", "default"));

        // An ARR at the enterprise threshold raises a pro ticket's tier, and so its severity.
        let mut t = ticket("W-G3", "Export", "How do I export a CSV of our dashboards?", "pro");
        t.arr_usd = Some(50_000.0);
        let d = app.grpc.classify(ClassifyRequest { ticket: Some(t) }).await.unwrap().into_inner().decision.unwrap();
        assert_eq!((d.severity(), d.model_severity()), (pb::Severity::Urgent, pb::Severity::Routine));
        assert_eq!(d.weighting_rule, "tiers.enterprise");
        assert_eq!((d.tier.as_str(), d.tier_source.as_str()), ("enterprise", "arr_usd"));
        app.stop().await;
    }

    async fn arr_at_the_threshold_raises_the_tier_and_an_empty_tier_is_the_default(store) {
        let (s, file) = settings_with("");
        let mut app = TestApp::with_store(s, store, Some(file)).await;
        let mut t = ticket("W-3", "Export", "How do I export a CSV of our dashboards?", "pro");
        t.arr_usd = Some(50_000.0);
        app.grpc.classify(ClassifyRequest { ticket: Some(t) }).await.unwrap();
        let row = app.store.decision(&api_key("W-3")).await.unwrap().unwrap();
        assert_eq!(row.tier, Tier::Enterprise);
        assert_eq!(row.tier_source, Some(TierSource::ArrUsd));
        assert_eq!(row.arr_usd, Some(50_000.0));
        assert_eq!(row.severity, Severity::Urgent, "enterprise is never routine");

        let mut t = ticket("W-4", "Export", "How do I export a CSV of our dashboards?", "");
        t.arr_usd = Some(49_999.0);
        app.grpc.classify(ClassifyRequest { ticket: Some(t) }).await.unwrap();
        let row = app.store.decision(&api_key("W-4")).await.unwrap().unwrap();
        assert_eq!((row.tier, row.tier_source), (Tier::Free, Some(TierSource::Default)));
        assert_eq!(row.severity, Severity::Routine);
        app.stop().await;
    }

    async fn the_weighting_fields_round_trip_and_survive_recovery(store) {
        let at = chrono::Utc::now();
        let d = weighed("W-5", at, Some("tiers.enterprise"), true);
        let t = Ticket::parse(
            Source::Api,
            RawTicket { id: "W-5".into(), version: "1".into(), body: "b".into(), tier: Some(Tier::Pro), ..RawTicket::default() },
            "",
        )
        .unwrap()
        .with_tier_source(TierSource::PylonAccount, true);
        store.claim(&t, Duration::ZERO).await.unwrap();
        // Not decided yet and its claim expired: the worker recovers it with its tier source.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let undecided = store.undecided_tickets(Source::Api, 10).await.unwrap();
        let u = undecided.iter().find(|u| u.ticket.key().ticket_id == "W-5").unwrap();
        assert_eq!(u.ticket.tier_source(), TierSource::PylonAccount);
        assert!(u.ticket.enrichment_failed());

        assert_eq!(store.record(&d, &[]).await.unwrap(), Recorded::New);
        let row = store.decision(&d.key()).await.unwrap().unwrap();
        assert_eq!(row.model_severity, d.model_severity);
        assert_eq!(row.severity, Severity::OnFire);
        assert_eq!(row.route.as_str(), "engineering");
        assert_eq!(row.weighting_rule.as_deref(), Some("tiers.enterprise"));
        assert_eq!(row.arr_usd, Some(90_000.0));
        assert_eq!(row.tier_source, Some(TierSource::PlainCompany));
        assert!(row.enrichment_failed);
        let by_id = store.decision_by_id(&d.id).await.unwrap().unwrap();
        assert_eq!(by_id, row);
    }

    async fn the_audit_counts_each_rules_changes_per_week(store) {
        let w47 = audit::weeks::IsoWeek::parse("2026-W47").unwrap();
        let w48 = audit::weeks::IsoWeek::parse("2026-W48").unwrap();
        let at = |w: audit::weeks::IsoWeek, h: i64| w.bounds(chrono_tz::UTC).0 + chrono::Duration::hours(h);
        for (i, (w, rule, failed)) in [
            (w47, Some("tiers.enterprise"), false),
            (w47, None, false),
            (w48, Some("tiers.enterprise"), false),
            (w48, Some("tiers.enterprise"), true),
            (w48, Some("tiers.repeat"), false),
            (w48, None, true),
        ]
        .into_iter()
        .enumerate()
        {
            let d = weighed(&format!("A-{i}"), at(w, i64::try_from(i).unwrap() + 1), rule, failed);
            store.record(&d, &[]).await.unwrap();
        }
        let req = audit::AuditRequest {
            last_week: w48,
            weeks: 2,
            min_accuracy: 0.9,
            min_verdicts: 30,
            time_zone: chrono_tz::UTC,
            labels_urgent_share: None,
        };
        let r = audit::build(store.as_ref(), &req).await.unwrap();
        let first = &r.weeks[0].weighting;
        assert_eq!(first.changed_by_rule, BTreeMap::from([("tiers.enterprise".to_owned(), 1)]));
        assert_eq!((first.changed.k, first.changed.n), (1, 2));
        let last = &r.weeks[1].weighting;
        assert_eq!(
            last.changed_by_rule,
            BTreeMap::from([("tiers.enterprise".to_owned(), 2), ("tiers.repeat".to_owned(), 1)])
        );
        assert_eq!((last.changed.k, last.changed.n), (3, 4));
        assert_eq!(last.enrichment_failed, 2);
        let text = r.to_string();
        assert!(text.contains("weighting rules: decisions whose severity a rule raised"), "{text}");
        let line = text.lines().find(|l| l.trim_start().starts_with("2026-W48") && l.contains("75.0%")).unwrap_or_else(|| panic!("{text}"));
        let cells: Vec<&str> = line.split_whitespace().collect();
        // week, "3", "(75.0%)", tiers.enterprise, tiers.repeat, enrichment failed
        assert_eq!(cells, ["2026-W48", "3", "(75.0%)", "2", "1", "2"], "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["weeks"][1]["weighting"]["changed_by_rule"]["tiers.repeat"], 1);
        assert_eq!(json["weeks"][1]["weighting"]["enrichment_failed"], 2);
    }
}
