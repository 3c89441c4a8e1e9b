//! The weighting rules after the Claude classifier: the request carries tier, ARR and the
//! configured sentence; a model answer below the tier's floor is raised by the rule, and the
//! decision keeps the model's own severity and names the rule.

use escalator::{
    domain::Tier,
    ticketing::RoutingPlanner,
    triage::{Triage, TriageSettings},
    weighting::{TierRule, Weighting},
};

use super::*;
use crate::both_backends;

const ROUTINE: &str = r#"{"severity":"routine","route":"bot","confidence":0.81,"reasoning":"A how-to question about exports."}"#;

fn triage(
    store: Arc<dyn escalator::store::Store>,
    server: &MockServer,
    weighting: &Weighting,
) -> Triage {
    let (prompt, examples) = prompt_and_examples();
    let prompt = prompt.with_weighting(weighting);
    let offline = Arc::new(OfflineClassifier::new(&examples, prompt.version()));
    let claude = Arc::new(ClaudeClassifier::new(&settings(server), prompt).unwrap());
    let planner = Arc::new(RoutingPlanner::new(
        &crate::harness::test_settings().ticketing,
    ));
    Triage::new(
        store,
        Decider::new(Some(claude), offline),
        planner,
        TriageSettings {
            weighting: weighting.clone(),
            ..TriageSettings::default()
        },
    )
}

fn enterprise_how_to(id: &str, tier: &str, arr: Option<f64>) -> Ticket {
    Ticket::parse(
        Source::Api,
        RawTicket {
            id: id.into(),
            subject: "Export".into(),
            body: "How do I export a CSV of our dashboards?".into(),
            tier: Tier::parse_given("tier", tier).unwrap(),
            arr_usd: arr,
            ..RawTicket::default()
        },
        "",
    )
    .unwrap()
}

both_backends! {
    async fn a_routine_answer_for_an_enterprise_ticket_is_raised_by_the_rule(store) {
        let server = MockServer::start().await;
        mount(&server, ok(&text_answer(ROUTINE)), 1).await;
        let t = triage(store.clone(), &server, &Weighting::default());
        // Pro by its source, enterprise by its ARR.
        let out = t.decide(enterprise_how_to("C-1", "pro", Some(64_000.0)), None).await.unwrap();
        let d = out.decision;
        assert_eq!(d.model, "claude-sonnet-4-6");
        assert_eq!(d.model_severity, Severity::Routine, "the model's own judgement is kept");
        assert_eq!(d.severity, Severity::Urgent);
        assert_eq!(d.route, Route::Human);
        assert_eq!(d.weighting_rule.as_deref(), Some("tiers.enterprise"));
        assert_eq!(d.tier, Tier::Enterprise);
        assert_eq!(d.tier_source, Some(escalator::domain::TierSource::ArrUsd));
        assert_eq!(d.arr_usd, Some(64_000.0));
        let mut stored = store.decision(&d.key()).await.unwrap().unwrap();
        // PostgreSQL keeps microseconds; everything else comes back as logged.
        assert!((stored.created_at - d.created_at).num_milliseconds().abs() < 1);
        stored.created_at = d.created_at;
        assert_eq!(stored, d);

        // The request carried the raised tier, the ARR and the enterprise sentence.
        let reqs = requests(&server).await;
        let body: Value = reqs[0].body_json().unwrap();
        let user = body["messages"][0]["content"].as_str().unwrap();
        assert!(user.contains("tier: enterprise\narr_usd: 64000\n"), "{user}");
        assert!(
            user.contains("policy: Enterprise lowers the bar for urgent: contractual.\n"),
            "{user}"
        );
        let system = body["system"].to_string();
        assert!(!system.contains("contractual"), "ticket policy stays out of the cached system block");
    }

    async fn configured_sentences_reach_the_request_and_the_prompt_version(store) {
        let server = MockServer::start().await;
        mount(&server, ok(&text_answer(ROUTINE)), 1).await;
        let w = Weighting::default().with_tier(
            Tier::Pro,
            TierRule {
                arr_usd_min: Some(5_000.0),
                floor: None,
                prompt: Some("Pro customers pay for a human answer the same day.".into()),
            },
        );
        let t = triage(store, &server, &w);
        let out = t.decide(enterprise_how_to("C-2", "free", Some(6_000.0)), None).await.unwrap();
        let d = out.decision;
        assert_eq!(d.tier, Tier::Pro, "raised by the configured pro threshold");
        assert_eq!((d.severity, d.weighting_rule.as_deref()), (Severity::Routine, None), "pro has no floor");
        let (default_prompt, _) = prompt_and_examples();
        assert_ne!(d.prompt_version, default_prompt.version(), "the sentences are versioned");
        let reqs = requests(&server).await;
        let body: Value = reqs[0].body_json().unwrap();
        let user = body["messages"][0]["content"].as_str().unwrap();
        assert!(user.contains("tier: pro\narr_usd: 6000\n"), "{user}");
        assert!(user.contains("policy: Pro customers pay for a human answer the same day.\n"), "{user}");
    }
}
