//! Topic, sentiment and shadow categories on PostgreSQL and SQLite: every label stored on the
//! decision and read back, a review correcting them stored with its Langfuse scores, the CSV
//! round trip, the audit's figures, and the promotion gate at 89% and 90% on seeded verdicts;
//! and `escalator promote` on the binary, rewriting a config file.

use std::{collections::BTreeMap, time::Duration};

use chrono::Utc;
use escalator::{
    audit::labels,
    domain::work::ScoreValue,
    domain::{Decision, RawTicket, Sentiment, Severity, Source, Ticket, Tier, Usage},
    promote,
    review::{self, LabelVerdict, NewReview, Origin, Pass, ReviewVerdict},
    store::Store,
    taxonomy::Taxonomy,
};

use crate::{
    both_backends,
    review::{day, offer_all, seed},
};

/// Logs a decision for `ticket_id` with labels, at noon of the review day plus `i` seconds.
async fn seed_labelled(
    store: &dyn Store,
    ticket_id: &str,
    i: i64,
    topic: &str,
    sentiment: Sentiment,
    shadow: &[(&str, bool)],
) -> Decision {
    let ticket = Ticket::parse(
        Source::Plain,
        RawTicket {
            id: ticket_id.into(),
            version: "1".into(),
            subject: "We may leave".into(),
            body: format!(
                "Charged twice again on invoice {ticket_id}; we are looking at other tools."
            ),
            tier: Some(Tier::Pro),
            ..RawTicket::default()
        },
        "",
    )
    .unwrap();
    store.claim(&ticket, Duration::from_secs(60)).await.unwrap();
    let at = day().and_hms_opt(12, 0, 0).unwrap().and_utc() + chrono::Duration::seconds(i);
    let d = Decision {
        id: format!("dec-{ticket_id}"),
        source: Source::Plain,
        ticket_id: ticket_id.into(),
        ticket_version: "1".into(),
        severity: Severity::Urgent,
        route: Severity::Urgent.route(),
        confidence: 0.8,
        reasoning: "Billing dispute.".into(),
        prompt_version: "classifier@test".into(),
        model: "claude-sonnet-4-6".into(),
        fallback: false,
        fallback_reason: None,
        notes: None,
        tier: Tier::Pro,
        usage: Usage::default(),
        trace_id: Some(format!("{:032x}", i + 1)),
        observation_id: None,
        created_at: at,
        model_severity: Severity::Urgent,
        weighting_rule: None,
        arr_usd: None,
        tier_source: None,
        enrichment_failed: false,
        topic: Some(topic.into()),
        sentiment: Some(sentiment),
        shadow: shadow.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        caller: None,
        supersedes: None,
    };
    store.record(&d, &[]).await.unwrap();
    d
}

fn judged(
    topic: Option<&str>,
    sentiment: Option<Sentiment>,
    shadow: &[(&str, bool)],
) -> LabelVerdict {
    LabelVerdict {
        topic: topic.map(str::to_owned),
        sentiment,
        shadow: shadow.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
    }
}

async fn judge(store: &dyn Store, d: &Decision, labels: LabelVerdict) {
    review::record(
        store,
        d,
        NewReview {
            decision_id: d.id.clone(),
            reviewer: "ann".into(),
            verdict: ReviewVerdict::Correct,
            why: None,
            origin: Origin::Cli,
            external_key: None,
            labels,
            pass: Pass::First,
        },
    )
    .await
    .unwrap();
}

both_backends! {
    async fn every_label_is_stored_reviewed_scored_and_audited(store) {
        let d = seed_labelled(store.as_ref(), "T-lab-1", 0, "billing", Sentiment::Negative, &[("churn_risk", true), ("vip", false)]).await;
        let stored = store.decision_by_id(&d.id).await.unwrap().unwrap();
        assert_eq!(stored.topic.as_deref(), Some("billing"));
        assert_eq!(stored.sentiment, Some(Sentiment::Negative));
        assert_eq!(stored.shadow, BTreeMap::from([("churn_risk".to_owned(), true), ("vip".to_owned(), false)]));
        // A decision logged without labels reads back without them.
        let plain = seed(store.as_ref(), Source::Api, "T-lab-old", "s", "b", Severity::Routine, false, Utc::now()).await;
        let old = store.decision_by_id(&plain.id).await.unwrap().unwrap();
        assert_eq!((old.topic, old.sentiment, old.shadow.is_empty()), (None, None, true));
        offer_all(store.as_ref()).await;

        // The reviewer corrects the topic, confirms the sentiment, says churn risk applies.
        judge(store.as_ref(), &stored, judged(Some("bug"), Some(Sentiment::Negative), &[("churn_risk", true)])).await;
        let reviews = store.reviews(&d.id).await.unwrap();
        assert_eq!(reviews[0].labels, judged(Some("bug"), Some(Sentiment::Negative), &[("churn_risk", true)]));
        let scores: BTreeMap<String, ScoreValue> = store
            .due_scores(Utc::now() + chrono::Duration::minutes(1), 20)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.name, s.value))
            .collect();
        assert_eq!(scores.get("routing_correct"), Some(&ScoreValue::Boolean(true)));
        assert_eq!(scores.get("topic_correct"), Some(&ScoreValue::Boolean(false)));
        assert_eq!(scores.get("sentiment_correct"), Some(&ScoreValue::Boolean(true)));

        // The audit counts each label on its own.
        let rows = store.audit_decisions(chrono::DateTime::<Utc>::UNIX_EPOCH, Utc::now()).await.unwrap();
        let rows: Vec<_> = rows.iter().collect();
        let f = labels::figures(&rows);
        assert_eq!((f.topic.k, f.topic.n), (0, 1));
        assert_eq!((f.sentiment.k, f.sentiment.n), (1, 1));
        assert_eq!(f.shadow.len(), 1, "vip was not judged: {:?}", f.shadow);
        assert_eq!((f.shadow[0].category.as_str(), f.shadow[0].true_positive, f.shadow[0].judged()), ("churn_risk", 1, 1));
    }

    async fn the_csv_carries_the_labels_and_a_correction_of_each(store) {
        let d = seed_labelled(store.as_ref(), "T-lab-csv", 0, "billing", Sentiment::Neutral, &[("churn_risk", false)]).await;
        let item = store.review_item(&d.id).await.unwrap().unwrap();
        let mut out = Vec::new();
        review::csv::export(&[&item], Pass::First, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().nth(1).unwrap().ends_with(",billing,neutral,churn_risk=no,,,,first"), "{text}");
        let filled = text.replacen(",billing,neutral,churn_risk=no,,,,first", ",billing,neutral,churn_risk=no,how_to,negative,churn_risk=yes,first", 1)
            .replacen(",false,,,,,", ",false,,correct,,,", 1);
        let t = Taxonomy::default();
        let parsed = review::csv::parse(store.as_ref(), "s.csv", &filled, "ann", &t).await.unwrap();
        assert_eq!(parsed.rows[0].review.labels, judged(Some("how_to"), Some(Sentiment::Negative), &[("churn_risk", true)]));
        // Blank corrections confirm the decision's labels; a bad one names its cell.
        let confirmed = text.replacen(",false,,,,,", ",false,,correct,,,", 1);
        let parsed = review::csv::parse(store.as_ref(), "s.csv", &confirmed, "ann", &t).await.unwrap();
        assert_eq!(parsed.rows[0].review.labels, judged(Some("billing"), Some(Sentiment::Neutral), &[]));
        let bad = filled.replacen(",how_to,negative,churn_risk=yes", ",dashboards,furious,vip=yes", 1);
        let problems: Vec<String> = review::csv::parse(store.as_ref(), "s.csv", &bad, "ann", &t).await.unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(problems, [
            "s.csv:2:24: right_topic \"dashboards\" is not one of billing, bug, outage, account_access, how_to, feature_request, security, legal, other",
            "s.csv:2:25: invalid right_sentiment: \"furious\" is not one of negative, neutral, positive",
            "s.csv:2:26: shadow_applies \"vip=yes\" must be <category>=yes|no for a category the decision was asked about (churn_risk)",
        ]);
    }

    async fn the_terminal_asks_for_each_label_and_stores_the_corrections(store) {
        let d = seed_labelled(store.as_ref(), "T-lab-tty", 0, "billing", Sentiment::Negative, &[("churn_risk", false)]).await;
        let sample = review::sample(store.as_ref(), chrono_tz::UTC, &review::SampleRequest { day: day(), n: 1, seed: Some(1), source: None, design: Default::default() }).await.unwrap();
        let handle = tokio::runtime::Handle::current();
        // correct, no why; a typo, then topic bug (sentiment kept); churn risk: a typo, then yes.
        let input = "c

dashboards
bug
maybe
y
";
        let shown = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                let o = review::terminal::run(&handle, store.as_ref(), &sample, &review::terminal::Judge { reviewer: "tess", pass: Pass::First, taxonomy: &Taxonomy::default() }, &mut review::terminal::Lines(&mut input.as_bytes()), &mut out).unwrap();
                assert_eq!(o.judged, 1);
                String::from_utf8(out).unwrap()
            })
            .await
            .unwrap()
        };
        assert!(shown.contains("Labels:     topic billing, sentiment negative"), "{shown}");
        assert!(shown.contains("Shadow:     churn_risk: the model says it does not apply"), "{shown}");
        assert!(shown.contains("\"dashboards\" is neither a topic"), "{shown}");
        assert!(shown.contains("Type y, n, or Enter."), "{shown}");
        let r = store.reviews(&d.id).await.unwrap();
        assert_eq!(r[0].labels, judged(Some("bug"), Some(Sentiment::Negative), &[("churn_risk", true)]));
        let rows = store.audit_decisions(chrono::DateTime::<Utc>::UNIX_EPOCH, Utc::now()).await.unwrap();
        let rows: Vec<_> = rows.iter().collect();
        let f = labels::figures(&rows);
        assert_eq!((f.shadow[0].false_negative, f.shadow[0].recall.n), (1, 1));
        let mut text = String::new();
        escalator::audit::render::labels(&f, &mut text);
        assert!(text.contains("topic accuracy:     0.0% [0.0–79.3] (0/1)"), "{text}");
        assert!(text.contains("shadow churn_risk: accuracy 0.0%"), "{text}");
    }

    async fn the_promotion_gate_refuses_at_89_percent_and_accepts_at_90(store) {
        // 100 reviewed decisions, the classifier saying both categories apply to each; the
        // reviewers agree on churn_risk for 89 and on vip for 90.
        for i in 0..100 {
            let d = seed_labelled(store.as_ref(), &format!("T-gate-{i:03}"), i, "billing", Sentiment::Negative, &[("churn_risk", true), ("vip", true)]).await;
            judge(store.as_ref(), &d, judged(None, None, &[("churn_risk", i < 89), ("vip", i < 90)])).await;
        }
        offer_all(store.as_ref()).await;
        // Verdicts on decisions the draw never offered do not move the gate: ten more that
        // say vip is wrong, logged after the day's sample was drawn.
        for i in 100..110 {
            let d = seed_labelled(store.as_ref(), &format!("T-gate-{i:03}"), i, "billing", Sentiment::Negative, &[("churn_risk", true), ("vip", true)]).await;
            judge(store.as_ref(), &d, judged(None, None, &[("vip", false)])).await;
        }
        let utc = chrono_tz::UTC;
        let g = promote::gate(store.as_ref(), "churn_risk", 30, utc).await.unwrap();
        assert!(!g.passed, "{}", g.message());
        assert_eq!((g.figures.accuracy.k, g.figures.accuracy.n, g.figures.false_positive), (89, 100, 11));
        assert!(g.message().contains("89 of 100 sampled verdicts right (89.0%;"), "{}", g.message());
        assert!(g.message().ends_with("not promoted: accuracy is below 90%"), "{}", g.message());
        let g = promote::gate(store.as_ref(), "vip", 30, utc).await.unwrap();
        assert!(g.passed, "{}", g.message());
        assert_eq!((g.figures.accuracy.k, g.figures.precision.k, g.figures.precision.n), (90, 90, 100));
        // The same 90% over fewer reviewed tickets than configured is refused.
        let g = promote::gate(store.as_ref(), "vip", 101, utc).await.unwrap();
        assert!(!g.passed);
        assert!(g.message().contains("100 reviewed tickets, at least 101 are needed"), "{}", g.message());
    }
}

/// `escalator promote` as an operator runs it: refused with the figures (exit 1) for the
/// category below the gate; for the one past it, the config file gets `mode = "live"` with
/// every other line kept, and the new prompt version (the category in the topic enum) is
/// printed.
#[tokio::test]
async fn promote_rewrites_the_config_file_and_prints_the_new_prompt_version() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("promote.db").display());
    let store = escalator::store::connect(&escalator::store::StoreSettings {
        url: url.clone(),
        max_connections: 2,
        accept_connections: 0,
        acquire_timeout: Duration::from_secs(5),
        stale_after: escalator::store::DEFAULT_STALE_AFTER,
        in_flight_grace: Duration::from_secs(15),
    })
    .await
    .unwrap();
    for i in 0..10 {
        let d = seed_labelled(
            store.as_ref(),
            &format!("T-p-{i}"),
            i,
            "billing",
            Sentiment::Negative,
            &[("churn_risk", true), ("vip", true)],
        )
        .await;
        judge(
            store.as_ref(),
            &d,
            judged(None, None, &[("churn_risk", i < 8), ("vip", i < 9)]),
        )
        .await;
    }
    offer_all(store.as_ref()).await;
    store.close().await;
    let config = dir.path().join("escalator.toml");
    let text = "# escalator config\n[labels]\ntopics = [\"billing\", \"bug\", \"other\"]\npromote_min_reviewed = 10\n\n\
                [labels.categories.churn_risk]\nkind = \"topic\"\nmode = \"shadow\" # on trial\ndefinition = \"The customer may leave.\"\n\n\
                [labels.categories.vip]\nkind = \"topic\"\nmode = \"shadow\"\ndefinition = \"A customer named as a VIP.\"\n";
    std::fs::write(&config, text).unwrap();
    let load = || {
        let loaded = escalator::config::Settings::load(&std::collections::BTreeMap::from([(
            "ESCALATOR_CONFIG",
            config.to_str().unwrap(),
        )]))
        .unwrap();
        let version = loaded.load_prompt().unwrap().0.version().to_owned();
        (loaded, version)
    };
    let (_, before) = load();
    let run = |category: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_escalator"))
            .args(["promote", category])
            .env("DATABASE_URL", &url)
            .env("ESCALATOR_CONFIG", &config)
            .env_remove("ANTHROPIC_API_KEY")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run("churn_risk");
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains("churn_risk: 8 of 10 sampled verdicts right (80.0%"),
        "{out}"
    );
    assert!(out.contains("not promoted: accuracy is below 90%"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        text,
        "a refusal writes nothing"
    );
    let (code, out, err) = run("vip");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("vip: 9 of 10 sampled verdicts right (90.0%"),
        "{out}"
    );
    assert!(out.contains("vip is live (a topic)"), "{out}");
    let rewritten = std::fs::read_to_string(&config).unwrap();
    assert_eq!(
        rewritten,
        text.replacen(
            "[labels.categories.vip]\nkind = \"topic\"\nmode = \"shadow\"",
            "[labels.categories.vip]\nkind = \"topic\"\nmode = \"live\"",
            1
        )
    );
    // The printed version is the one the service now loads: vip in the topic enum.
    let (loaded, after) = load();
    assert_eq!(
        loaded.labels.taxonomy.topics(),
        ["billing", "bug", "vip", "other"]
    );
    assert_ne!(before, after);
    assert!(
        out.contains(&format!("prompt version: {before} -> {after}\n")),
        "{out}"
    );
    let (code, out, _) = run("vip");
    assert_eq!(
        (code, out.trim()),
        (Some(0), "vip is already live; nothing to do.")
    );
}

/// The `/review` page over plain HTTP: a labelled decision's card has a topic and a sentiment
/// select preset to its labels and a select per shadow category; the posted corrections are
/// stored; a topic that is not configured is refused.
#[sqlx::test(migrations = "migrations/sqlite")]
async fn the_review_page_shows_and_takes_each_label(pool: sqlx::SqlitePool) {
    use crate::review_web::{TOKEN, csrf_of, form, set_cookie, start};
    let lf = crate::collector::Collector::start();
    let store = crate::harness::lite(pool);
    let d = seed_labelled(
        store.as_ref(),
        "T-lab-web",
        0,
        "billing",
        Sentiment::Negative,
        &[("churn_risk", false)],
    )
    .await;
    let app = start(store.clone(), &lf).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(format!("{}/review", app.base))
        .send()
        .await
        .unwrap();
    let nonce = set_cookie(&page);
    let csrf = csrf_of(&page.text().await.unwrap());
    let ok = http
        .post(format!("{}/review/login", app.base))
        .header("cookie", nonce)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("token", TOKEN),
            ("name", "Ben"),
            ("csrf", csrf.as_str()),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    let session = set_cookie(&ok);
    let html = http
        .get(format!("{}/review?date=2026-11-24", app.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("<p class=\"labels\">topic billing · sentiment negative</p>"),
        "{html}"
    );
    assert!(html.contains("<select id=\"topic-0\" name=\"topic\"><option value=\"billing\" selected>billing</option><option value=\"bug\">bug</option>"), "{html}");
    assert!(
        html.contains("<option value=\"negative\" selected>negative</option>"),
        "{html}"
    );
    assert!(html.contains("name=\"shadow.churn_risk\""), "{html}");
    assert!(
        html.contains("(the model says it does not apply). Does it apply?"),
        "{html}"
    );
    let csrf = csrf_of(&html);
    let post = |topic: &'static str| {
        http.post(format!("{}/review/verdict", app.base))
            .header("cookie", &session)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("csrf", csrf.as_str()),
                ("decision_id", d.id.as_str()),
                ("date", "2026-11-24"),
                ("verdict", "correct"),
                ("topic", topic),
                ("sentiment", "negative"),
                ("shadow.churn_risk", "yes"),
            ]))
            .send()
    };
    assert_eq!(post("dashboards").await.unwrap().status(), 400);
    assert!(app.store.reviews(&d.id).await.unwrap().is_empty());
    assert_eq!(post("bug").await.unwrap().status(), 303);
    let r = app.store.reviews(&d.id).await.unwrap();
    assert_eq!(
        r[0].labels,
        judged(
            Some("bug"),
            Some(Sentiment::Negative),
            &[("churn_risk", true)]
        )
    );
    app.shutdown.cancel();
    app.task.await.unwrap().unwrap();
}

/// Promoting a severity clause also adds, to the labels file the prompt is built from, the
/// reviewed tickets the reviewers said it fits, labelled at least the clause's severity.
#[tokio::test]
async fn promoting_a_severity_clause_adds_its_reviewed_tickets_to_the_labels_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("clause.db").display());
    let store = escalator::store::connect(&escalator::store::StoreSettings {
        url: url.clone(),
        max_connections: 2,
        accept_connections: 0,
        acquire_timeout: Duration::from_secs(5),
        stale_after: escalator::store::DEFAULT_STALE_AFTER,
        in_flight_grace: Duration::from_secs(15),
    })
    .await
    .unwrap();
    for i in 0..10 {
        let d = seed_labelled(
            store.as_ref(),
            &format!("T-vip-{i}"),
            i,
            "billing",
            Sentiment::Negative,
            &[("vip", i < 9)],
        )
        .await;
        judge(store.as_ref(), &d, judged(None, None, &[("vip", i < 9)])).await;
    }
    offer_all(store.as_ref()).await;
    store.close().await;
    let labels_file = dir.path().join("labels.csv");
    std::fs::write(&labels_file, escalator::examples::EMBEDDED_LABELS).unwrap();
    let config = dir.path().join("escalator.toml");
    std::fs::write(
        &config,
        format!(
            "[prompt]\nlabels_file = {:?}\n[labels]\npromote_min_reviewed = 10\n\
             [labels.categories.vip]\nkind = \"severity\"\nseverity = \"on_fire\"\nmode = \"shadow\"\ndefinition = \"A customer named as a VIP.\"\n",
            labels_file.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_escalator"))
        .args(["promote", "vip"])
        .env("DATABASE_URL", &url)
        .env("ESCALATOR_CONFIG", &config)
        .env_remove("ANTHROPIC_API_KEY")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("vip: 10 of 10 sampled verdicts right"),
        "{text}"
    );
    assert!(text.contains("9 examples added"), "{text}");
    assert!(
        text.contains("vip is live (a clause for on_fire)"),
        "{text}"
    );
    let rows = escalator::examples::load(&labels_file).unwrap();
    let added: Vec<_> = rows
        .iter()
        .filter(|e| e.ticket_id.starts_with("T-vip-"))
        .collect();
    assert_eq!(added.len(), 9);
    assert!(
        added
            .iter()
            .all(|e| e.severity == Severity::OnFire && e.why == "vip: A customer named as a VIP.")
    );
    assert!(
        !added.iter().any(|e| e.ticket_id == "T-vip-9"),
        "the one it does not fit is not added"
    );
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("mode = \"live\"")
    );
}
