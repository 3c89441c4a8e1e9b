//! The weekly audit on a seeded month (ISO weeks 2026-W45 to W48) with known answers, on
//! PostgreSQL and SQLite: accuracy and its Wilson intervals per week, the splits, overrides
//! beside the accuracy, calibration per model, each of the five symptoms firing on a last week
//! built to show it and silent on a steady one, the bar (exit 1 below it, "not enough
//! verdicts" with too few); the webhook versions, refusals and duplicates recorded per
//! delivery; and `escalator audit` as a user runs it.
//!
//! Over 700 lines: most of it is the seeded month with its known answers, which every test of
//! the audit reads; the tests themselves are short.

use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use escalator::{
    audit::{self, AuditRequest, Outcome, Report, weeks::IsoWeek},
    domain::sample::{Draw, Pick, StratumDraw},
    domain::work::NewDelivery,
    domain::{Decision, IdempotencyKey, RawTicket, Severity, Source, Ticket, Tier, Usage},
    review::{NewReview, Origin, Pass, ReviewVerdict, Stratum},
    store::{NewDraw, Store},
};
use serde_json::json;

/// A database with its pool, so a test can back-date rows the store stamps with "now".
pub enum Db {
    Pg(sqlx::PgPool),
    Lite(sqlx::SqlitePool),
}

impl Db {
    pub fn store(&self) -> std::sync::Arc<dyn Store> {
        match self {
            Db::Pg(p) => crate::harness::pg(p.clone()),
            Db::Lite(p) => crate::harness::lite(p.clone()),
        }
    }

    async fn exec(&self, sql: &str, at: DateTime<Utc>, key: &str) {
        match self {
            Db::Pg(p) => {
                sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .bind(at)
                    .bind(key)
                    .execute(p)
                    .await
                    .unwrap();
            }
            Db::Lite(p) => {
                sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .bind(at)
                    .bind(key)
                    .execute(p)
                    .await
                    .unwrap();
            }
        }
    }
}

/// How a seeded week behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 100 decisions, 50 reviewed, 47 correct; nothing wrong.
    Steady,
    /// 100 decisions, 50 reviewed, 40 correct, and every symptom present.
    Bad,
    /// 20 decisions, 10 reviewed, 5 correct: too few verdicts to judge.
    Thin,
}

pub const MODEL: &str = "claude-sonnet-4-6";
pub const OLD_VERSION: &str = "2026-02-27";
pub const NEW_VERSION: &str = "2026-11-20";

pub fn week(s: &str) -> IsoWeek {
    IsoWeek::parse(s).unwrap()
}

/// One decision of a seeded week: (severity, tier, truth of the sampled review, override).
fn spec(kind: Kind, i: usize) -> (Severity, Tier, Option<Severity>, Option<Severity>) {
    use Severity::{OnFire, Routine, Urgent};
    let reviewed = i.is_multiple_of(2);
    match kind {
        Kind::Steady => {
            let sev = if i < 40 {
                Routine
            } else if i < 80 {
                Urgent
            } else {
                OnFire
            };
            let tier = if (40..50).contains(&i) {
                Tier::Enterprise
            } else {
                Tier::Pro
            };
            let truth = reviewed.then_some(match i {
                0 => Urgent,
                60 => OnFire,
                80 => Urgent,
                _ => sev,
            });
            let ov = match i {
                1 => Some(Urgent),
                41 => Some(Routine),
                _ => None,
            };
            (sev, tier, truth, ov)
        }
        Kind::Bad => {
            let sev = if i < 20 {
                Routine
            } else if i < 80 {
                Urgent
            } else {
                OnFire
            };
            let tier = if (20..30).contains(&i) || i == 2 || i == 4 {
                Tier::Enterprise
            } else {
                Tier::Pro
            };
            let truth = reviewed.then_some(match i {
                2 | 4 => Urgent,
                30..46 => Routine,
                _ => sev,
            });
            let ov = match i {
                1 => Some(Urgent),
                21 => Some(OnFire),
                _ => None,
            };
            (sev, tier, truth, ov)
        }
        Kind::Thin => {
            let sev = if i < 10 { Routine } else { Urgent };
            let truth = reviewed.then(|| if i.is_multiple_of(4) { sev } else { OnFire });
            (sev, Tier::Pro, truth, None)
        }
    }
}

/// Seeds one week of `kind` and returns its decisions.
/// A first message of its own for each seeded ticket (words drawn by the index), so no two
/// seeded tickets read alike to the labels check's near-duplicate test, with typographic quotes,
/// a dash, an accent and an emoji in every one.
pub fn seeded_body(id: &str, i: usize) -> String {
    const WORDS: [&str; 24] = [
        "invoice",
        "dashboard",
        "webhook",
        "password",
        "export",
        "calendar",
        "pipeline",
        "workspace",
        "billing",
        "report",
        "upload",
        "integration",
        "mobile",
        "permissions",
        "search",
        "filters",
        "timezone",
        "archive",
        "signature",
        "templates",
        "audit",
        "sync",
        "onboarding",
        "analytics",
    ];
    let w = |k: usize| WORDS[(i * 7 + k * 11) % WORDS.len()];
    format!(
        "{id}: our {} and {} broke after the {} change; “the {}” fails — café ☕",
        w(0),
        w(1),
        w(2),
        w(3)
    )
}

pub async fn seed_week(db: &Db, w: IsoWeek, kind: Kind) -> Vec<Decision> {
    let store = db.store();
    let n = if kind == Kind::Thin { 20 } else { 100 };
    let bad = kind == Kind::Bad;
    let mut out = Vec::new();
    let mut picks = Vec::new();
    for i in 0..n {
        let (severity, tier, truth, ov) = spec(kind, i);
        let day = w.monday() + chrono::Duration::days(i64::try_from(i % 7).unwrap());
        let at = Utc.from_utc_datetime(
            &day.and_hms_opt(
                8 + u32::try_from((i / 7) % 10).unwrap(),
                u32::try_from(i % 60).unwrap(),
                0,
            )
            .unwrap(),
        );
        let fallback = i == 97 || i == 99;
        let source = if i % 2 == 0 {
            Source::Plain
        } else {
            Source::Api
        };
        let id = format!("{w}-{i:03}");
        let ticket = Ticket::parse(
            source,
            RawTicket {
                id: id.clone(),
                version: "1".into(),
                subject: format!("Seeded ticket {id}"),
                body: seeded_body(&id, i),
                tier: Some(tier),
                arr_usd: None,
                customer_id: String::new(),
            },
            "",
        )
        .unwrap();
        store.claim(&ticket, Duration::from_secs(60)).await.unwrap();
        let correct = truth.map(|t| t == severity);
        let li = i64::try_from(i).unwrap();
        let usage = if fallback {
            Usage {
                model_latency_ms: Some(8_000),
                model_retries: 2,
                ..Usage::default()
            }
        } else if bad {
            Usage {
                input_tokens: 300,
                output_tokens: 20,
                cache_write_tokens: if i % 2 == 0 { 4_000 } else { 0 },
                cost_usd: 0.004,
                model_latency_ms: Some(3_000 + 20 * li),
                model_retries: i32::from(i % 3 == 0),
                ..Usage::default()
            }
        } else {
            let writes = i % 14 == 0;
            Usage {
                input_tokens: 300,
                output_tokens: 20,
                cache_read_tokens: if writes { 0 } else { 4_000 },
                cache_write_tokens: if writes { 4_000 } else { 0 },
                cost_usd: 0.002,
                model_latency_ms: Some(500 + 10 * li),
                ..Usage::default()
            }
        };
        let d = Decision {
            id: format!("dec-{id}"),
            source,
            ticket_id: id.clone(),
            ticket_version: "1".into(),
            severity,
            route: severity.route(),
            confidence: match correct {
                Some(true) => 0.95,
                Some(false) => 0.55,
                None => 0.8,
            },
            reasoning: format!("Seeded reasoning <{id}>."),
            prompt_version: "classifier@seeded".into(),
            model: if fallback { "offline" } else { MODEL }.into(),
            fallback,
            fallback_reason: fallback.then(|| "timeout".to_owned()),
            notes: None,
            tier,
            usage,
            trace_id: None,
            observation_id: None,
            created_at: at,
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
        store.record(&d, &[]).await.unwrap();
        if source == Source::Plain {
            let version = if bad { NEW_VERSION } else { OLD_VERSION };
            let delivery = NewDelivery {
                key: IdempotencyKey::new(Source::Plain, &id, "1"),
                event_type: "thread.thread_created".into(),
                payload: json!({"thread_id": id}),
                webhook_version: Some(version.into()),
                missing_fields: if bad && i % 4 == 0 {
                    vec!["payload.thread.previewText".into()]
                } else {
                    Vec::new()
                },
                trace_context: None,
            };
            assert!(store.accept_delivery(&delivery).await.unwrap());
            if i == 0 || (bad && i < 6) {
                assert!(!store.accept_delivery(&delivery).await.unwrap());
            }
            db.exec(
                "UPDATE deliveries SET received_at = $1 WHERE ticket_id = $2",
                at,
                &id,
            )
            .await;
        }
        if truth.is_some() {
            picks.push(Pick {
                id: d.id.clone(),
                stratum: Stratum::Rest,
                double_review: false,
            });
        }
        // A reviewer's own pick, never drawn: shown apart, never in the accuracy.
        if bad && i % 10 == 5 {
            store
                .insert_review(
                    &NewReview {
                        decision_id: d.id.clone(),
                        reviewer: "Bo".into(),
                        verdict: ReviewVerdict::Correct,
                        why: None,
                        origin: Origin::Import,
                        external_key: None,
                        labels: Default::default(),
                        pass: Pass::First,
                    },
                    &[],
                )
                .await
                .unwrap();
        }
        if let Some(t) = truth {
            let verdict = if t == severity {
                ReviewVerdict::Correct
            } else {
                ReviewVerdict::Corrected(t)
            };
            store
                .insert_review(
                    &NewReview {
                        decision_id: d.id.clone(),
                        reviewer: "Ada".into(),
                        verdict,
                        why: (t != severity).then(|| format!("Reviewer: {id} is {t}")),
                        origin: Origin::Web,
                        external_key: None,
                        labels: Default::default(),
                        pass: Pass::First,
                    },
                    &[],
                )
                .await
                .unwrap();
        }
        if let Some(o) = ov {
            store
                .insert_review(
                    &NewReview {
                        decision_id: d.id.clone(),
                        reviewer: "agent_1".into(),
                        verdict: ReviewVerdict::Corrected(o),
                        why: None,
                        origin: Origin::Override,
                        external_key: Some(format!("plain:pEv_{id}")),
                        labels: Default::default(),
                        pass: Pass::First,
                    },
                    &[],
                )
                .await
                .unwrap();
        }
        out.push(d);
    }
    // The reviewed half was the week's sample: one stratum, each decision drawn with
    // probability one half (a uniform draw). A thin week's sample is one drawn before strata
    // existed: daily rows with neither draw nor probability, as an older release wrote them.
    let (_, end) = w.bounds(chrono_tz::UTC);
    let drawn = picks.len();
    if kind == Kind::Thin {
        for (p, d) in picks
            .iter()
            .zip(out.iter().filter(|d| picks.iter().any(|p| p.id == d.id)))
        {
            assert_eq!(p.id, d.id);
            let sql = format!(
                "INSERT INTO review_samples (decision_id, sample_day, sample_source, position, \
                 seed, offered_at) VALUES ($2, '{}', 'all', 0, 0, $1)",
                d.created_at.format("%Y-%m-%d")
            );
            db.exec(&sql, d.created_at, &d.id).await;
        }
        return out;
    }
    store
        .add_draw(&NewDraw {
            day: &w.monday().format("%Y-%m-%d").to_string(),
            source: None,
            seed: 1,
            drawn_at: end,
            first_position: 0,
            draw: &Draw {
                picks,
                strata: vec![StratumDraw {
                    stratum: Stratum::Rest,
                    frame: n,
                    drawn,
                }],
            },
        })
        .await
        .unwrap();
    if bad {
        for k in 0..6 {
            store
                .record_rejection(
                    Source::Plain,
                    Some(NEW_VERSION),
                    &format!("missing or invalid field `payload.thread.title` ({k})"),
                )
                .await
                .unwrap();
        }
        let (from, _) = w.bounds(chrono_tz::UTC);
        db.exec(
            "UPDATE webhook_rejections SET received_at = $1 WHERE webhook_version <> $2",
            from + chrono::Duration::hours(30),
            "none",
        )
        .await;
    }
    out
}

/// W45–W47 steady and W48 of `last`.
pub async fn seed_month(db: &Db, last: Kind) {
    for w in ["2026-W45", "2026-W46", "2026-W47"] {
        seed_week(db, week(w), Kind::Steady).await;
    }
    seed_week(db, week("2026-W48"), last).await;
}

pub fn request() -> AuditRequest {
    AuditRequest {
        last_week: week("2026-W48"),
        weeks: 4,
        min_accuracy: 0.90,
        min_verdicts: 30,
        time_zone: chrono_tz::UTC,
        labels_urgent_share: Some(19.0 / 58.0),
    }
}

fn firing(r: &Report) -> Vec<&'static str> {
    r.symptoms
        .iter()
        .filter(|s| s.firing)
        .map(|s| s.id)
        .collect()
}

async fn a_bad_week_fires_every_symptom_and_fails_the_bar(db: Db) {
    seed_month(&db, Kind::Bad).await;
    let store = db.store();
    let r = audit::build(store.as_ref(), &request()).await.unwrap();
    assert_eq!(r.weeks.len(), 4);
    // The headline, with its interval.
    let steady = &r.weeks[0];
    assert_eq!(steady.week.to_string(), "2026-W45");
    assert_eq!(
        (steady.decisions, steady.accuracy.k, steady.accuracy.n),
        (100, 47, 50)
    );
    assert_eq!(steady.accuracy.to_string(), "94.0% [83.8–97.9] (47/50)");
    let last = r.last().unwrap();
    assert_eq!(last.accuracy.to_string(), "80.0% [67.0–88.8] (40/50)");
    assert!((last.accuracy.plus_minus_points() - 10.9).abs() < 0.1);
    // One stratum, one inclusion probability: the weighted estimate is exactly k/n with its
    // Wilson interval, as before strata.
    assert_eq!(last.accuracy, escalator::stats::Rate::of(40, 50));
    assert_eq!(steady.accuracy, escalator::stats::Rate::of(47, 50));
    assert_eq!(last.sample.strata.len(), 1);
    let rest = &last.sample.strata[0];
    assert_eq!((rest.stratum.as_str(), rest.offered), ("rest", 50));
    assert_eq!(rest.accuracy, last.accuracy);
    assert!(
        (rest.weight_share - 1.0).abs() < 1e-12
            && (rest.mean_inclusion_probability - 0.5).abs() < 1e-12
    );
    // The reviewer's own ten picks are shown apart and move nothing.
    assert_eq!((last.sample.unsampled.k, last.sample.unsampled.n), (10, 10));
    assert_eq!(steady.sample.unsampled.n, 0);
    // Overrides beside, never in: two per week, one raising an enterprise ticket.
    assert_eq!(last.overrides.count, 2);
    assert_eq!((last.overrides.raised, last.overrides.lowered), (2, 0));
    assert_eq!(steady.overrides.count, 2);
    assert_eq!((steady.overrides.raised, steady.overrides.lowered), (1, 1));
    // Splits: recall by the reviewer's severity, precision by the decided one.
    assert_eq!(
        last.by_true_severity[&Severity::Routine]
            .to_string()
            .split(' ')
            .next_back(),
        Some("(8/16)")
    );
    assert_eq!(last.by_true_severity[&Severity::Urgent].k, 22);
    assert_eq!(last.by_true_severity[&Severity::Urgent].n, 24);
    assert_eq!(
        (
            last.by_decided_severity[&Severity::Urgent].k,
            last.by_decided_severity[&Severity::Urgent].n
        ),
        (22, 30)
    );
    assert_eq!(
        (
            last.by_decided_severity[&Severity::Routine].k,
            last.by_decided_severity[&Severity::Routine].n
        ),
        (8, 10)
    );
    assert_eq!(
        (
            last.by_tier[&Tier::Enterprise].k,
            last.by_tier[&Tier::Enterprise].n
        ),
        (5, 7)
    );
    assert_eq!(
        (last.by_source["plain"].k, last.by_source["plain"].n),
        (40, 50)
    );
    assert_eq!(last.by_model[MODEL].n, 50);
    assert_eq!(last.by_prompt_version["classifier@seeded"].n, 50);
    // Calibration: 181 verdicts at 0.95 all right, 19 at 0.55 all wrong.
    assert_eq!(r.calibration.len(), 1);
    let c = &r.calibration[0];
    assert_eq!((c.model.as_str(), c.verdicts), (MODEL, 200));
    assert_eq!(c.bands.len(), 2);
    assert_eq!(
        (
            c.bands[0].from,
            c.bands[0].accuracy.k,
            c.bands[0].accuracy.n
        ),
        (0.5, 0, 19)
    );
    assert_eq!(
        (
            c.bands[1].from,
            c.bands[1].accuracy.k,
            c.bands[1].accuracy.n
        ),
        (0.9, 181, 181)
    );
    assert!((c.ece - 0.0975).abs() < 1e-4, "{}", c.ece);
    // Each symptom with its number.
    assert_eq!(
        firing(&r),
        [
            "too_many_urgent",
            "enterprise_missed",
            "tool_update",
            "latency",
            "cost"
        ]
    );
    assert!((last.urgent_share.share - 0.60).abs() < 1e-9);
    assert!((last.truth_urgent_share.share - 0.48).abs() < 1e-9);
    assert_eq!(last.urgent_corrected_down, 8);
    assert_eq!(
        (
            last.enterprise.corrected_up,
            last.enterprise.recall.k,
            last.enterprise.recall.n
        ),
        (2, 5, 7)
    );
    assert_eq!(last.enterprise.overridden_up, 1);
    assert_eq!(steady.latency.p95_ms, Some(1_440));
    assert_eq!(steady.latency.p50_ms, Some(990));
    assert_eq!(last.latency.p95_ms, Some(4_880));
    assert!((steady.latency.retries_per_decision - 0.04).abs() < 1e-9);
    assert!((steady.cost.per_decision_usd - 0.00196).abs() < 1e-9);
    assert!((last.cost.per_decision_usd - 0.00392).abs() < 1e-9);
    assert_eq!(last.cost.cache_hit_share, 0.0);
    assert_eq!(
        (last.cost.fallback_share.k, last.cost.fallback_share.n),
        (2, 100)
    );
    assert_eq!(last.cost.duplicate_deliveries, 3);
    assert_eq!(steady.cost.duplicate_deliveries, 1);
    let hook = last
        .webhooks
        .iter()
        .find(|h| h.version == NEW_VERSION)
        .unwrap();
    assert_eq!(
        (hook.deliveries, hook.parse_failures, hook.missing_fields),
        (50, 6, 25)
    );
    let urgent = &r.symptoms[0];
    assert_eq!(urgent.number, 1);
    assert!(
        urgent.summary.starts_with(
            "60.0% of decisions urgent; labels 32.8%, reviewed truth 48.0%; 8 corrected"
        ),
        "{}",
        urgent.summary
    );
    assert_eq!(urgent.trend.len(), 4);
    assert_eq!(urgent.trend[0].value, Some(0.40));
    assert!(
        r.symptoms[2]
            .summary
            .starts_with(&format!("plain: {OLD_VERSION} → {NEW_VERSION}")),
        "{}",
        r.symptoms[2].summary
    );
    assert!(r.symptoms.iter().all(|s| !s.fix.is_empty()));
    // The bar and the misses (sampled corrections, then the overrides).
    assert_eq!(r.gate.outcome, Outcome::Below);
    assert_eq!(r.misses.len(), 12);
    let m = r
        .misses
        .iter()
        .find(|m| m.ticket_id == "2026-W48-002")
        .unwrap();
    assert_eq!(
        (m.ticket_id.as_str(), m.model_said, m.reviewer_said),
        ("2026-W48-002", Severity::Routine, Severity::Urgent)
    );
    assert_eq!(m.why.as_deref(), Some("Reviewer: 2026-W48-002 is urgent"));
    assert_eq!(m.origin, "sampled review");
    assert!(m.excerpt.chars().count() <= 200 && m.excerpt.contains("café ☕"));
    assert_eq!(m.reasoning, "Seeded reasoning <2026-W48-002>.");
    assert_eq!(r.misses[10].origin, "agent override");
    // The text report says all of it.
    let text = r.to_string();
    assert!(text.contains("2026-W48: 40/50 correct = 80.0%, 95% interval 67.0–88.8% (±10.9 points with 50 verdicts)"), "{text}");
    assert!(text.contains("[FIRING] 4. latency climbed"), "{text}");
    assert!(
        text.contains("unsampled verdicts in 2026-W48: 10, accuracy 100.0% [72.2–100.0] (10/10)"),
        "{text}"
    );
    assert!(
        text.contains("  rest               50 offered  80.0% [67.0–88.8] (40/50)"),
        "{text}"
    );
    assert!(text.contains("(exit 1)"), "{text}");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["gate"]["outcome"], "below");
    assert_eq!(json["weeks"][3]["accuracy"]["k"], 40);
    assert!(
        json["misses"][0].get("body").is_none(),
        "ticket text stays out of the JSON"
    );
}

async fn a_steady_week_fires_nothing_and_passes(db: Db) {
    seed_month(&db, Kind::Steady).await;
    let r = audit::build(db.store().as_ref(), &request()).await.unwrap();
    assert_eq!(firing(&r), Vec::<&str>::new());
    assert_eq!(r.gate.outcome, Outcome::Pass);
    assert_eq!(
        r.symptoms[2].summary,
        "no change of webhook version in the window"
    );
    assert!(
        r.gate.message().contains("meets 0.90"),
        "{}",
        r.gate.message()
    );
}

async fn a_thin_week_has_not_enough_verdicts(db: Db) {
    seed_month(&db, Kind::Thin).await;
    let r = audit::build(db.store().as_ref(), &request()).await.unwrap();
    assert_eq!(r.gate.outcome, Outcome::NotEnoughVerdicts);
    assert_eq!((r.gate.accuracy.k, r.gate.accuracy.n), (5, 10));
    // Drawn before strata: each day's verdicts weigh the day's decisions over its sampled ones
    // (3/2, 3/1 or 2/1), so the estimate is 10.5 of 20 decisions, n_eff 20²/44.5.
    let a = &r.gate.accuracy;
    assert!((a.share - 0.525).abs() < 1e-12, "{a:?}");
    assert!(
        (a.effective_n.unwrap() - 400.0 / 44.5).abs() < 1e-9,
        "{a:?}"
    );
    let last = r.last().unwrap();
    assert_eq!(last.sample.strata.len(), 1);
    assert_eq!(
        (
            last.sample.strata[0].stratum.as_str(),
            last.sample.strata[0].offered
        ),
        ("uniform", 10)
    );
    assert!(
        r.gate
            .message()
            .contains("not enough verdicts (10 of the 30 needed)"),
        "{}",
        r.gate.message()
    );
}

/// The README's worked example as the last week: one day (Monday 2026-11-23) of 200
/// decisions (1 fallback, 4 on_fire, 20 with low confidence, 15 enterprise, 160 others), its
/// sample of ten drawn by the design (fallback 1 of 1, on_fire 3 of 4, low confidence 2 of 20,
/// enterprise 1 of 15, rest 3 of 160), eight verdicts correct: the headline is the weighted
/// estimate 94.3% with the Wilson interval on n_eff 4.5, each stratum beside it, and a
/// reviewer's own pick outside the sample apart.
async fn a_stratified_week_is_weighted_and_shown_per_stratum(db: Db) {
    use crate::review::seed_with;
    let store = db.store();
    let monday = week("2026-W48").monday();
    let at = |i: usize| {
        Utc.from_utc_datetime(&monday.and_hms_opt(8, 0, 0).unwrap())
            + chrono::Duration::seconds(i64::try_from(i).unwrap() * 60)
    };
    for i in 0..200 {
        let stratum = match i {
            0 => Stratum::Fallback,
            1..5 => Stratum::OnFire,
            5..25 => Stratum::LowConfidence,
            25..40 => Stratum::Enterprise,
            _ => Stratum::Rest,
        };
        seed_with(
            store.as_ref(),
            Source::Api,
            &format!("S-{i:03}"),
            "Subject",
            &seeded_body("S", i),
            Severity::Urgent,
            stratum == Stratum::Fallback,
            at(i),
            |d| {
                d.tier = if stratum == Stratum::Enterprise {
                    Tier::Enterprise
                } else {
                    Tier::Pro
                };
                d.confidence = if stratum == Stratum::LowConfidence {
                    0.4
                } else {
                    0.9
                };
                if stratum == Stratum::OnFire {
                    d.severity = Severity::OnFire;
                    d.route = Severity::OnFire.route();
                    d.model_severity = Severity::OnFire;
                }
            },
        )
        .await;
    }
    let sample = escalator::review::sample(
        store.as_ref(),
        chrono_tz::UTC,
        &escalator::review::SampleRequest {
            day: monday,
            n: 10,
            seed: Some(23),
            source: None,
            design: escalator::review::Design::default(),
        },
    )
    .await
    .unwrap();
    let mut by: std::collections::BTreeMap<Stratum, Vec<Decision>> = Default::default();
    for i in &sample.items {
        by.entry(i.sample.as_ref().unwrap().stratum.unwrap())
            .or_default()
            .push(i.decision.clone());
    }
    let sizes: Vec<(Stratum, usize)> = by.iter().map(|(s, d)| (*s, d.len())).collect();
    assert_eq!(
        sizes,
        [
            (Stratum::Fallback, 1),
            (Stratum::OnFire, 3),
            (Stratum::LowConfidence, 2),
            (Stratum::Enterprise, 1),
            (Stratum::Rest, 3)
        ]
    );
    let judge = |d: &Decision, correct: bool| NewReview {
        decision_id: d.id.clone(),
        reviewer: "Ada".into(),
        verdict: if correct {
            ReviewVerdict::Correct
        } else {
            ReviewVerdict::Corrected(Severity::Routine)
        },
        why: (!correct).then(|| "A how-to.".to_owned()),
        origin: Origin::Web,
        external_key: None,
        labels: Default::default(),
        pass: Pass::First,
    };
    for (stratum, decisions) in &by {
        for (k, d) in decisions.iter().enumerate() {
            let wrong = matches!(
                (stratum, k),
                (Stratum::OnFire, 2) | (Stratum::LowConfidence, 1)
            );
            escalator::review::record(store.as_ref(), d, judge(d, !wrong))
                .await
                .unwrap();
        }
    }
    // A reviewer's own pick outside the sample: apart, and still a miss to learn from.
    let sampled: std::collections::BTreeSet<String> =
        sample.items.iter().map(|i| i.decision.id.clone()).collect();
    let own = store
        .decision_by_id(
            &(40..200)
                .map(|i| format!("dec-S-{i:03}"))
                .find(|id| !sampled.contains(id))
                .unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    escalator::review::record(store.as_ref(), &own, judge(&own, false))
        .await
        .unwrap();

    let r = audit::build(store.as_ref(), &request()).await.unwrap();
    let last = r.last().unwrap();
    let a = &last.accuracy;
    assert_eq!((a.k, a.n), (8, 10));
    assert!((a.share - 0.943_333).abs() < 1e-6, "{a:?}");
    assert!((a.effective_n.unwrap() - 4.461_96).abs() < 1e-4, "{a:?}");
    assert_eq!(a.to_string(), "94.3% [48.0–99.7] (8/10, n_eff 4.5)");
    let strata: Vec<(String, u64, String, String)> = last
        .sample
        .strata
        .iter()
        .map(|f| {
            (
                f.stratum.clone(),
                f.offered,
                f.accuracy.to_string(),
                format!("{:.3}", f.weight_share),
            )
        })
        .collect();
    assert_eq!(
        strata,
        [
            (
                "fallback".into(),
                1,
                "100.0% [20.7–100.0] (1/1)".into(),
                "0.005".into()
            ),
            (
                "on_fire".into(),
                3,
                "66.7% [20.8–93.9] (2/3)".into(),
                "0.020".into()
            ),
            (
                "low_confidence".into(),
                2,
                "50.0% [9.5–90.5] (1/2)".into(),
                "0.100".into()
            ),
            (
                "enterprise".into(),
                1,
                "100.0% [20.7–100.0] (1/1)".into(),
                "0.075".into()
            ),
            (
                "rest".into(),
                3,
                "100.0% [43.9–100.0] (3/3)".into(),
                "0.800".into()
            ),
        ]
    );
    let on_fire = last
        .sample
        .strata
        .iter()
        .find(|f| f.stratum == "on_fire")
        .unwrap();
    assert!((on_fire.mean_inclusion_probability - 0.75).abs() < 1e-12);
    assert_eq!(
        (
            last.sample.unsampled.k,
            last.sample.unsampled.n,
            last.sample.unsampled_corrected
        ),
        (0, 1, 1)
    );
    assert_eq!(r.gate.outcome, Outcome::NotEnoughVerdicts);
    assert!(
        r.misses
            .iter()
            .any(|m| m.decision_id == own.id && m.origin == "unsampled review")
    );
    let text = r.to_string();
    assert!(
        text.contains("2026-W48: weighted accuracy 94.3% (8/10 verdicts correct, unweighted), 95% interval 48.0–99.7% (±25.8 points, effective sample size 4.5 of 10 verdicts)"),
        "{text}"
    );
    assert!(
        text.contains("  on_fire             3 offered  66.7% [20.8–93.9] (2/3)"),
        "{text}"
    );
    assert!(
        text.contains(
            "unsampled verdicts in 2026-W48: 1, accuracy 0.0% [0.0–79.3] (0/1) (1 corrected"
        ),
        "{text}"
    );
    let json = serde_json::to_value(&r).unwrap();
    assert!(
        (json["weeks"][3]["accuracy"]["effective_n"]
            .as_f64()
            .unwrap()
            - 4.462)
            .abs()
            < 1e-3
    );
}

macro_rules! on_both {
    ($($name:ident),+) => {
        mod on_postgres {
            $(
                #[sqlx::test(migrations = "migrations/postgres")]
                async fn $name(pool: sqlx::PgPool) {
                    super::$name(super::Db::Pg(pool)).await;
                }
            )+
        }
        mod on_sqlite {
            $(
                #[sqlx::test(migrations = "migrations/sqlite")]
                async fn $name(pool: sqlx::SqlitePool) {
                    super::$name(super::Db::Lite(pool)).await;
                }
            )+
        }
    };
}

on_both!(
    a_bad_week_fires_every_symptom_and_fails_the_bar,
    a_stratified_week_is_weighted_and_shown_per_stratum,
    a_steady_week_fires_nothing_and_passes,
    a_thin_week_has_not_enough_verdicts
);

/// A migrated SQLite file for the binary to read.
async fn sqlite_file(dir: &tempfile::TempDir) -> (String, sqlx::SqlitePool) {
    let url = format!("sqlite://{}/audit.db?mode=rwc", dir.path().display());
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect(&url)
        .await
        .unwrap();
    sqlx::migrate!("./migrations/sqlite")
        .run(&pool)
        .await
        .unwrap();
    (url, pool)
}

fn audit_binary(url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_escalator"))
        .arg("audit")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("DATABASE_URL", url)
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ESCALATOR_CONFIG")
        .env_remove("GITHUB_TOKEN")
        .env_remove("GITHUB_REPOSITORY")
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_command_exits_1_below_the_bar_and_0_without_enough_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let (url, pool) = sqlite_file(&dir).await;
    seed_month(&Db::Lite(pool.clone()), Kind::Bad).await;
    let out = audit_binary(&url, &["--week", "2026-W48", "--weeks", "4"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("2026-W45"), "{stdout}");
    assert!(
        stdout.contains("80.0%") && stdout.contains("67.0–88.8%"),
        "{stdout}"
    );
    assert!(stdout.contains("true severity (recall)"), "{stdout}");
    assert!(
        stdout.contains("expected calibration error 0.09"),
        "{stdout}"
    );
    assert!(stdout.contains("[FIRING] 1. too many urgent"), "{stdout}");
    assert!(
        stderr.contains(
            "2026-W48: accuracy 80.0% [67.0–88.8] (40/50) is below 0.90 with 50 verdicts"
        ),
        "{stderr}"
    );
    let out = audit_binary(&url, &["--week", "2026-W48", "--weeks", "4", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["gate"]["outcome"], "below");
    assert_eq!(v["symptoms"].as_array().unwrap().len(), 5);
    // A lower bar passes; a higher verdict count makes it "not enough verdicts", exit 0.
    let out = audit_binary(&url, &["--week", "2026-W48", "--min-accuracy", "0.75"]);
    assert_eq!(out.status.code(), Some(0));
    let out = audit_binary(&url, &["--week", "2026-W48", "--min-verdicts", "60"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not enough verdicts (50 of the 60 needed)")
    );
    // --open-pr needs the GitHub variables; bad arguments are usage errors.
    let out = audit_binary(&url, &["--week", "2026-W48", "--open-pr"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("GITHUB_TOKEN and GITHUB_REPOSITORY"));
    let out = audit_binary(&url, &["--week", "last week"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an ISO week like 2026-W48"));
}

#[sqlx::test(migrations = "migrations/sqlite")]
async fn webhook_versions_refusals_and_duplicates_are_recorded_per_delivery(
    pool: sqlx::SqlitePool,
) {
    use crate::harness::{PLAIN_SECRET, TestApp};
    let settings = escalator::config::Settings::load(&std::collections::BTreeMap::from([
        ("ESCALATOR_GRPC_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_HTTP_ADDR", "127.0.0.1:0"),
        ("PLAIN_WEBHOOK_SECRET", PLAIN_SECRET),
    ]))
    .unwrap();
    let store = crate::harness::lite(pool);
    let app = TestApp::with_store(settings, store.clone(), None).await;
    let now = Utc::now().to_rfc3339();
    let body = |thread: &str, version: Option<&str>, title: Option<&str>, preview: bool| {
        let mut thread_v = json!({"id": thread, "customer": {"id": "c_1"}, "updatedAt": now});
        if let Some(t) = title {
            thread_v["title"] = json!(t);
        }
        if preview {
            thread_v["previewText"] = json!("The export fails — “every time”");
        }
        let mut meta = json!({"webhookDeliveryAttemptTimestamp": now});
        if let Some(v) = version {
            meta["webhookTargetVersion"] = json!(v);
        }
        serde_json::to_vec(&json!({
            "id": format!("pEv_{thread}"), "type": "thread.thread_created",
            "payload": {"eventType": "thread.thread_created", "thread": thread_v},
            "webhookMetadata": meta,
        }))
        .unwrap()
    };
    let first = body("th_a", Some(OLD_VERSION), Some("Export fails"), true);
    assert_eq!(app.plain(first.clone()).await.0, 202);
    assert_eq!(app.plain(first.clone()).await.0, 200, "a duplicate");
    assert_eq!(app.plain(first).await.0, 200, "a duplicate");
    assert_eq!(
        app.plain(body("th_b", None, Some("No preview"), false))
            .await
            .0,
        202
    );
    let (status, _) = app.plain(body("th_c", Some(NEW_VERSION), None, true)).await;
    assert_eq!(status, 400, "no title");
    let (from, to) = (
        Utc::now() - chrono::Duration::hours(1),
        Utc::now() + chrono::Duration::hours(1),
    );
    let deliveries = store.audit_deliveries(from, to).await.unwrap();
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[0].webhook_version.as_deref(), Some(OLD_VERSION));
    assert_eq!(deliveries[0].duplicates, 2);
    assert!(deliveries[0].missing_fields.is_empty());
    assert_eq!(deliveries[1].webhook_version, None);
    assert_eq!(
        deliveries[1].missing_fields,
        [
            "webhookMetadata.webhookTargetVersion",
            "payload.thread.previewText"
        ]
    );
    let refused = store.audit_rejections(from, to).await.unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].webhook_version.as_deref(), Some(NEW_VERSION));
    assert_eq!(
        refused[0].reason,
        "missing or invalid field `payload.thread.title`"
    );
    app.stop().await;
}

#[sqlx::test(migrations = "migrations/sqlite")]
async fn a_pylon_trigger_without_version_is_recorded_as_missing_it(pool: sqlx::SqlitePool) {
    use crate::harness::{PYLON_SECRET, TestApp};
    // No Pylon API here: the worker's issue fetch fails on a closed local port, never the
    // internet; only what accept records is asserted.
    let settings = escalator::config::Settings::load(&std::collections::BTreeMap::from([
        ("ESCALATOR_GRPC_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_HTTP_ADDR", "127.0.0.1:0"),
        ("PYLON_WEBHOOK_SECRET", PYLON_SECRET),
        ("PYLON_API_TOKEN", "pylon-token"),
        ("PYLON_API_URL", "http://127.0.0.1:1"),
    ]))
    .unwrap();
    let store = crate::harness::lite(pool);
    let app = TestApp::with_store(settings, store.clone(), None).await;
    let with = serde_json::to_vec(
        &json!({"issue_id": "iss_1", "event": "issue.created", "version": "2026-12-01T10:00:00Z"}),
    )
    .unwrap();
    let without =
        serde_json::to_vec(&json!({"issue_id": "iss_2", "event": "issue.created"})).unwrap();
    assert_eq!(app.pylon(with).await.0, 202);
    assert_eq!(app.pylon(without).await.0, 202);
    let (from, to) = (
        Utc::now() - chrono::Duration::hours(1),
        Utc::now() + chrono::Duration::hours(1),
    );
    let deliveries = store.audit_deliveries(from, to).await.unwrap();
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    let by_shape = |shape: &str| {
        deliveries
            .iter()
            .find(|d| d.webhook_version.as_deref() == Some(shape))
            .unwrap_or_else(|| panic!("no delivery of shape {shape}: {deliveries:?}"))
    };
    assert!(
        by_shape("keys:event,issue_id,version")
            .missing_fields
            .is_empty()
    );
    assert_eq!(by_shape("keys:event,issue_id").missing_fields, ["version"]);
    app.stop().await;
}
