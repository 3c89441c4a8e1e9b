//! The daily review on PostgreSQL and SQLite: sampling (stratified, reproducible, never
//! repeating, topped up with the inclusion probabilities recomputed), verdicts (history kept,
//! the last one counts, scores in the outbox), the second reviewer and the adjudication, the
//! CSV round trip with a malformed row, the terminal flow through its input stream, and
//! `labels add-from-reviews` (unsampled verdicts too, disputed pairs not).

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use escalator::{
    domain::work::ScoreValue,
    domain::{Decision, RawTicket, Route, Severity, Source, Ticket, Tier, Usage},
    review::{self, Design, NewReview, Origin, Pass, ReviewVerdict, SampleRequest, Stratum},
    store::Store,
};

use crate::both_backends;

pub const DAY: (i32, u32, u32) = (2026, 11, 24);

pub fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(DAY.0, DAY.1, DAY.2).unwrap()
}

/// Logs a ticket and its decision, decided at `at`.
#[allow(clippy::too_many_arguments)]
pub async fn seed(
    store: &dyn Store,
    source: Source,
    ticket_id: &str,
    subject: &str,
    body: &str,
    severity: Severity,
    fallback: bool,
    at: DateTime<Utc>,
) -> Decision {
    seed_with(
        store,
        source,
        ticket_id,
        subject,
        body,
        severity,
        fallback,
        at,
        |_| {},
    )
    .await
}

/// [`seed`], with `edit` applied to the decision before it is logged (labels, a weighting
/// rule).
#[allow(clippy::too_many_arguments)]
pub async fn seed_with(
    store: &dyn Store,
    source: Source,
    ticket_id: &str,
    subject: &str,
    body: &str,
    severity: Severity,
    fallback: bool,
    at: DateTime<Utc>,
    edit: impl FnOnce(&mut Decision),
) -> Decision {
    let ticket = Ticket::parse(
        source,
        RawTicket {
            id: ticket_id.into(),
            version: "1".into(),
            subject: subject.into(),
            body: body.into(),
            tier: Some(Tier::Enterprise),
            arr_usd: Some(120_000.0),
            customer_id: String::new(),
        },
        "",
    )
    .unwrap();
    store.claim(&ticket, Duration::from_secs(60)).await.unwrap();
    let mut d = Decision {
        id: format!("dec-{ticket_id}"),
        source,
        ticket_id: ticket_id.into(),
        ticket_version: "1".into(),
        severity,
        route: severity.route(),
        confidence: 0.8,
        reasoning: "Customer reports <b>production</b> down & “urgent”.".into(),
        prompt_version: "classifier@test".into(),
        model: if fallback {
            "offline"
        } else {
            "claude-sonnet-4-6"
        }
        .into(),
        fallback,
        fallback_reason: fallback.then(|| "timeout".to_owned()),
        notes: None,
        tier: Tier::Enterprise,
        usage: Usage::default(),
        trace_id: Some(hex::encode(
            &<sha2::Sha256 as sha2::Digest>::digest(ticket_id)[..16],
        )),
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
    edit(&mut d);
    store.record(&d, &[]).await.unwrap();
    d
}

fn at(day: NaiveDate, hour: u32) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(hour, 0, 0).unwrap())
}

/// `n` decisions on `day` (one every hour from 00:00 UTC), a third of them fallbacks, plus one
/// on each neighbouring day.
async fn seed_day(store: &dyn Store, n: usize) {
    let d = day();
    for i in 0..n {
        let source = if i % 2 == 0 {
            Source::Plain
        } else {
            Source::Pylon
        };
        let hour = u32::try_from(i % 24).unwrap();
        seed(
            store,
            source,
            &format!("T-{i:02}"),
            &format!("Subject {i}"),
            &format!("Body of ticket {i}"),
            Severity::ALL[i % 3],
            i % 3 == 0,
            at(d, hour) + chrono::Duration::minutes(i64::try_from(i).unwrap()),
        )
        .await;
    }
    seed(
        store,
        Source::Plain,
        "T-before",
        "s",
        "b",
        Severity::Routine,
        false,
        at(d, 0) - chrono::Duration::seconds(1),
    )
    .await;
    seed(
        store,
        Source::Plain,
        "T-after",
        "s",
        "b",
        Severity::Routine,
        false,
        at(d.succ_opt().unwrap(), 0),
    )
    .await;
}

fn ids(s: &review::Sample) -> Vec<String> {
    s.items.iter().map(|i| i.decision.id.clone()).collect()
}

fn req(n: usize, seed: Option<u64>, source: Option<Source>) -> SampleRequest {
    SampleRequest {
        day: day(),
        n,
        seed,
        source,
        design: Design::default(),
    }
}

/// Offers every decision of the review day for review (a draw of all of them: each one's
/// inclusion probability 1), so verdicts on them are sampled verdicts.
pub async fn offer_all(store: &dyn Store) {
    review::sample(store, chrono_tz::UTC, &req(1_000, Some(0), None))
        .await
        .unwrap();
}

/// The stratum and inclusion probability recorded for each item.
fn design_of(s: &review::Sample) -> Vec<(String, Stratum, f64)> {
    s.items
        .iter()
        .map(|i| {
            let m = i.sample.as_ref().unwrap();
            (
                i.decision.id.clone(),
                m.stratum.unwrap(),
                m.inclusion_probability.unwrap(),
            )
        })
        .collect()
}

both_backends! {
    async fn sampling_is_stratified_reproducible_never_repeats_and_tops_up(store) {
        // 30 decisions: 10 fallbacks, 10 on_fire, 10 urgent (all enterprise).
        seed_day(store.as_ref(), 30).await;
        let tz = chrono_tz::UTC;
        // The same seed over the same log draws the same sample: a second store with the same
        // rows is simulated by drawing over the candidate list directly.
        let candidates = store
            .review_candidates(review::day_bounds(day(), tz).0, review::day_bounds(day(), tz).1, None)
            .await
            .unwrap();
        assert_eq!(candidates.len(), 30, "only the day's decisions, in id order");
        assert!(candidates.windows(2).all(|w| w[0].id < w[1].id));
        let design = Design::default();
        let expected: Vec<String> = escalator::domain::sample::draw(&candidates, 10, 42, &design)
            .picks
            .into_iter()
            .map(|p| p.id)
            .collect();
        let first = review::sample(store.as_ref(), tz, &req(10, Some(42), None)).await.unwrap();
        assert_eq!(ids(&first), expected);
        assert_eq!((first.seed, first.drawn), (42, 10));
        assert!(first.items.iter().all(|i| i.ticket.as_ref().is_some_and(|t| t.tier == Tier::Enterprise)));
        // Half the draw to the costly strata in turn (3 fallbacks, 2 on_fire), the rest to the
        // enterprise stratum; each recorded with drawn / frame of its stratum.
        let count = |s: &review::Sample, st: Stratum| design_of(s).iter().filter(|d| d.1 == st).count();
        assert_eq!(
            (count(&first, Stratum::Fallback), count(&first, Stratum::OnFire), count(&first, Stratum::Enterprise)),
            (3, 2, 5)
        );
        for (id, stratum, p) in design_of(&first) {
            let want = match stratum {
                Stratum::Fallback => 0.3,
                Stratum::OnFire => 0.2,
                Stratum::Enterprise => 0.5,
                other => panic!("{id} in {other}"),
            };
            assert!((p - want).abs() < 1e-12, "{id} {stratum} {p}");
        }
        // Asking again is the same sample (resumable), drawing nothing.
        let again = review::sample(store.as_ref(), tz, &req(10, Some(7), None)).await.unwrap();
        assert_eq!((ids(&again), again.drawn), (expected.clone(), 0));
        // A top-up to 20 draws 10 more, never one offered, and every sampled decision's
        // probability becomes (drawn before + drawn now) / stratum size: fallbacks 6/10,
        // on_fire 4/10, enterprise 10/10.
        let twenty = review::sample(store.as_ref(), tz, &req(20, Some(1), None)).await.unwrap();
        assert_eq!((twenty.items.len(), twenty.drawn), (20, 10));
        assert_eq!(ids(&twenty)[..10], expected[..]);
        for (id, stratum, p) in design_of(&twenty) {
            let want = match stratum {
                Stratum::Fallback => 0.6,
                Stratum::OnFire => 0.4,
                Stratum::Enterprise => 1.0,
                other => panic!("{id} in {other}"),
            };
            assert!((p - want).abs() < 1e-12, "{id} {stratum} {p}");
        }
        // All 30 eventually, no repeats, nothing from the neighbouring days; every one certain.
        let all = review::sample(store.as_ref(), tz, &req(100, Some(1), None)).await.unwrap();
        assert_eq!(all.items.len(), 30);
        let unique: BTreeSet<String> = ids(&all).into_iter().collect();
        assert_eq!(unique.len(), 30);
        assert_eq!(all.items.iter().filter(|i| i.decision.fallback).count(), 10);
        assert!(!unique.contains("dec-T-before") && !unique.contains("dec-T-after"));
        assert!(design_of(&all).iter().all(|(_, _, p)| (p - 1.0).abs() < 1e-12));
        // A per-source sample of the same day finds nothing left: offered once means once.
        let plain = review::sample(store.as_ref(), tz, &req(10, None, Some(Source::Plain))).await.unwrap();
        assert!(plain.items.is_empty());
    }

    async fn a_share_of_each_draw_goes_to_a_second_reviewer(store) {
        seed_day(store.as_ref(), 30).await;
        let design = Design { second_reviewer_share: 0.2, ..Design::default() };
        let r = SampleRequest { design, ..req(10, Some(5), None) };
        let s = review::sample(store.as_ref(), chrono_tz::UTC, &r).await.unwrap();
        let doubles: Vec<&str> = s.of_pass(Pass::Second).map(|(_, i)| i.decision.id.as_str()).collect();
        assert_eq!(doubles.len(), 2, "20% of 10");
        // A top-up of 5 offers one more (20% of 5).
        let more = review::sample(store.as_ref(), chrono_tz::UTC, &SampleRequest { design, ..req(15, Some(6), None) }).await.unwrap();
        assert_eq!(more.of_pass(Pass::Second).count(), 3);
    }

    async fn per_source_samples_and_time_zones(store) {
        seed_day(store.as_ref(), 12).await;
        let tz = chrono_tz::UTC;
        let plain = review::sample(store.as_ref(), tz, &req(4, Some(3), Some(Source::Plain))).await.unwrap();
        assert_eq!(plain.items.len(), 4);
        assert!(plain.items.iter().all(|i| i.decision.source == Source::Plain));
        let rest = review::sample(store.as_ref(), tz, &req(50, Some(3), None)).await.unwrap();
        assert_eq!(rest.items.len(), 8, "the 4 plain ones were offered already");
        // The plain decisions drawn by both draws have the probability of either: every
        // decision of the day ends up drawn, so every one is certain.
        assert!(design_of(&rest).iter().all(|(_, _, p)| (p - 1.0).abs() < 1e-12));
        let plain = review::sample(store.as_ref(), tz, &req(4, Some(3), Some(Source::Plain))).await.unwrap();
        assert!(design_of(&plain).iter().all(|(_, _, p)| (p - 1.0).abs() < 1e-12));
        // In New York the day starts at 05:00 UTC: T-00..T-04 (00:00-04:04 UTC) belong to the
        // day before, T-after (00:00 UTC next day) to this one.
        let (from, to) = review::day_bounds(day(), chrono_tz::America::New_York);
        let ny: Vec<String> = store.review_candidates(from, to, None).await.unwrap().into_iter().map(|c| c.id).collect();
        assert!(ny.contains(&"dec-T-after".to_owned()));
        assert!(!ny.contains(&"dec-T-00".to_owned()));
    }

    async fn verdicts_round_trip_last_wins_and_scores_are_written(store) {
        let d = seed(store.as_ref(), Source::Plain, "T-1", "Down", "All down", Severity::Urgent, false, at(day(), 9)).await;
        let review = |verdict, why: &str, origin| NewReview {
            decision_id: d.id.clone(),
            reviewer: "zoë".into(),
            verdict,
            why: Some(why.into()),
            origin,
            external_key: None,
            labels: Default::default(),
            pass: Pass::First,
        };
        review::record(store.as_ref(), &d, review(ReviewVerdict::Corrected(Severity::OnFire), "prod\ndown", Origin::Cli)).await.unwrap().unwrap();
        let scores = store.due_scores(Utc::now() + chrono::Duration::minutes(1), 10).await.unwrap();
        let by_name: BTreeMap<String, ScoreValue> = scores.iter().map(|s| (s.name.clone(), s.value.clone())).collect();
        assert_eq!(by_name["routing_correct"], ScoreValue::Boolean(false));
        assert_eq!(by_name["corrected_severity"], ScoreValue::Categorical("on_fire".into()));
        let trace = d.trace_id.clone().unwrap();
        assert!(scores.iter().any(|s| s.id == format!("{trace}-corrected_severity")));
        // Re-judged correct: history kept, the last counts, both scores updated (not duplicated).
        review::record(store.as_ref(), &d, review(ReviewVerdict::Corrected(Severity::Urgent), "", Origin::Web)).await.unwrap().unwrap();
        let history = store.reviews(&d.id).await.unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].verdict, ReviewVerdict::Corrected(Severity::OnFire));
        assert_eq!(history[0].why.as_deref(), Some("prod down"));
        assert_eq!(history[0].reviewer, "zoë");
        assert_eq!(history[1].verdict, ReviewVerdict::Correct, "a correction to its own severity is correct");
        assert_eq!((history[1].origin, history[1].why.clone()), (Origin::Web, None));
        let scores = store.due_scores(Utc::now() + chrono::Duration::minutes(1), 10).await.unwrap();
        assert_eq!(scores.len(), 2);
        let by_name: BTreeMap<String, ScoreValue> = scores.iter().map(|s| (s.name.clone(), s.value.clone())).collect();
        assert_eq!(by_name["routing_correct"], ScoreValue::Boolean(true));
        assert_eq!(by_name["corrected_severity"], ScoreValue::Categorical("urgent".into()));
        let item = store.review_item(&d.id).await.unwrap().unwrap();
        assert_eq!(item.latest.unwrap().id, history[1].id);
        // Overrides: stored once per external key, counted apart.
        let o = NewReview { external_key: Some("plain:pEv_1".into()), ..review(ReviewVerdict::Corrected(Severity::OnFire), "agent", Origin::Override) };
        assert!(review::record(store.as_ref(), &d, o.clone()).await.unwrap().is_some());
        assert!(review::record(store.as_ref(), &d, o).await.unwrap().is_none());
        assert_eq!(store.reviews(&d.id).await.unwrap().len(), 3);
        // Not sampled: the tally counts the verdict apart; once the day is drawn it is sampled.
        let t = review::tally(store.as_ref(), chrono_tz::UTC, day()).await.unwrap();
        assert_eq!((t.sampled.n, t.unsampled.k, t.unsampled.n, t.overrides), (0, 1, 1, 1));
        assert!(t.to_string().starts_with("sampled verdicts: none yet; unsampled verdicts (not in the accuracy): 1, accuracy 100.0%"), "{t}");
        offer_all(store.as_ref()).await;
        let t = review::tally(store.as_ref(), chrono_tz::UTC, day()).await.unwrap();
        assert_eq!((t.sampled.k, t.sampled.n, t.unsampled.n, t.overrides), (1, 1, 0, 1));
        let since = store.latest_reviews_since(at(day(), 0)).await.unwrap();
        assert_eq!(since.len(), 1);
        assert_eq!(since[0].origin, Origin::Override);
    }

    async fn the_csv_round_trip_validates_every_row(store) {
        seed_day(store.as_ref(), 3).await;
        let sample = review::sample(store.as_ref(), chrono_tz::UTC, &req(3, Some(5), None)).await.unwrap();
        let open: Vec<_> = sample.open().map(|(_, i)| i).collect();
        let mut out = Vec::new();
        review::csv::export(&open, Pass::First, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut rows: Vec<Vec<String>> = csv::Reader::from_reader(text.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        assert_eq!(rows.len(), 3);
        let col = |n: &str| review::csv::HEADER.iter().position(|h| *h == n).unwrap();
        assert_eq!(rows[0][col("verdict")], "");
        assert!(rows[0][col("reasoning")].contains("<b>production</b>"));
        // Judge: correct, corrected to on_fire, and one left empty.
        rows[0][col("verdict")] = "correct".into();
        rows[1][col("verdict")] = "corrected".into();
        let fix = if rows[1][col("severity")] == "on_fire" { Severity::Routine } else { Severity::OnFire };
        rows[1][col("corrected_severity")] = fix.as_str().into();
        rows[1][col("why")] = "data loss, “now”".into();
        let write = |rows: &[Vec<String>]| {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(review::csv::HEADER).unwrap();
            for r in rows { w.write_record(r).unwrap(); }
            String::from_utf8(w.into_inner().unwrap()).unwrap()
        };
        // A malformed file stores nothing, and every problem names its line and column.
        let mut bad = rows.clone();
        bad[0][col("verdict")] = "corect".into();
        bad[1][col("corrected_severity")] = "critical".into();
        bad[2][col("decision_id")] = "dec-nope".into();
        bad[2][col("verdict")] = "correct".into();
        let problems = review::csv::parse(store.as_ref(), "s.csv", &write(&bad), "ann", &escalator::taxonomy::Taxonomy::default()).await.unwrap_err();
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems, vec![
            "s.csv:2:17: verdict \"corect\" is not one of correct, corrected".to_owned(),
            "s.csv:3:18: corrected_severity \"critical\" is not one of routine, urgent, on_fire".to_owned(),
            "s.csv:4:1: no decision dec-nope in the routing log".to_owned(),
        ]);
        let short = format!("{}\n{}\n", review::csv::HEADER.join(","), "a,b");
        let p = review::csv::parse(store.as_ref(), "s.csv", &short, "ann", &escalator::taxonomy::Taxonomy::default()).await.unwrap_err();
        assert_eq!(p[0].to_string(), "s.csv:2: has 2 fields, expected 27");
        // The good file: two verdicts, one unjudged row.
        let parsed = review::csv::parse(store.as_ref(), "s.csv", &write(&rows), "ann", &escalator::taxonomy::Taxonomy::default()).await.unwrap();
        assert_eq!((parsed.rows.len(), parsed.unjudged), (2, 1));
        for r in &parsed.rows {
            review::record_by_id(store.as_ref(), r.review.clone()).await.unwrap();
        }
        let h = store.reviews(&rows[1][col("decision_id")]).await.unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!((h[0].verdict, h[0].origin, h[0].reviewer.as_str()), (ReviewVerdict::Corrected(fix), Origin::Import, "ann"));
        assert_eq!(h[0].why.as_deref(), Some("data loss, “now”"));
        // Judged rows are no longer exported.
        let sample = review::sample(store.as_ref(), chrono_tz::UTC, &req(3, None, None)).await.unwrap();
        assert_eq!(sample.open().count(), 1);
    }

    async fn the_terminal_flow_records_as_it_goes_and_quitting_keeps_it(store) {
        seed_day(store.as_ref(), 4).await;
        let sample = review::sample(store.as_ref(), chrono_tz::UTC, &req(4, Some(9), None)).await.unwrap();
        let handle = tokio::runtime::Handle::current();
        // correct; a typo then urgent with a why; skip; quit.
        let input = "c\n\nx\nf\nengineering must look\ns\nq\n";
        let (outcome, shown) = {
            let store = store.clone();
            let sample = sample.clone();
            tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                let o = review::terminal::run(&handle, store.as_ref(), &sample, &review::terminal::Judge { reviewer: "tess", pass: Pass::First, taxonomy: &escalator::taxonomy::Taxonomy::default() }, &mut review::terminal::Lines(&mut input.as_bytes()), &mut out).unwrap();
                (o, String::from_utf8(out).unwrap())
            })
            .await
            .unwrap()
        };
        assert_eq!((outcome.judged, outcome.skipped, outcome.left), (2, 1, 1), "{shown}");
        assert!(shown.contains("── 1/4 "), "{shown}");
        assert!(shown.contains("── 3/4 "), "{shown}");
        assert!(shown.contains("Type one of c, r, u, f, s or q."), "{shown}");
        assert!(shown.contains("Customer:   tier enterprise, ARR $120,000"), "{shown}");
        let ids = ids(&sample);
        let first = store.reviews(&ids[0]).await.unwrap();
        assert_eq!((first.len(), first[0].verdict, first[0].origin), (1, ReviewVerdict::Correct, Origin::Cli));
        let second = store.reviews(&ids[1]).await.unwrap();
        let expect = if sample.items[1].decision.severity == Severity::OnFire { ReviewVerdict::Correct } else { ReviewVerdict::Corrected(Severity::OnFire) };
        assert_eq!(second[0].verdict, expect);
        assert_eq!(second[0].why.as_deref(), Some("engineering must look"));
        // Run again: only the one left open is offered, as 4/4.
        let again = review::sample(store.as_ref(), chrono_tz::UTC, &req(4, None, None)).await.unwrap();
        let open: Vec<usize> = again.open().map(|(i, _)| i).collect();
        assert_eq!(open, vec![3]);
        let handle = tokio::runtime::Handle::current();
        let shown = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                // The input ends without a key: that is a quit, nothing recorded.
                review::terminal::run(&handle, store.as_ref(), &again, &review::terminal::Judge { reviewer: "tess", pass: Pass::First, taxonomy: &escalator::taxonomy::Taxonomy::default() }, &mut review::terminal::Lines(&mut "".as_bytes()), &mut out).unwrap();
                String::from_utf8(out).unwrap()
            })
            .await
            .unwrap()
        };
        assert!(shown.contains("── 4/4 "), "{shown}");
        assert!(shown.contains("0 judged, 0 skipped, 1 left"), "{shown}");
    }

    // Threats: ticket text that drives the reviewer's terminal (escape sequences, CR, bidi
    // overrides), and ticket text that runs as a formula when the export is opened in a
    // spreadsheet. The terminal shows every such character escaped; no exported cell starts a
    // formula; the import reads the neutralised ticket id back exactly and stores the verdict.
    async fn hostile_ticket_text_is_shown_escaped_and_never_runs_in_a_spreadsheet(store) {
        let hostile_subject = "\u{1b}]0;pwned\u{7}\u{1b}]8;;https://evil.example\u{1b}\\Invoice\u{1b}]8;;\u{1b}\\";
        let hostile_body = "=HYPERLINK(\"https://evil.example\")\n\u{1b}[2J\u{1b}[31mAPPROVED\rrefund \u{202E}txt.exe\u{9b}0m";
        let d = seed(store.as_ref(), Source::Api, "-42+cmd", hostile_subject, hostile_body, Severity::Routine, false, at(day(), 9)).await;
        let sample = review::sample(store.as_ref(), chrono_tz::UTC, &req(1, Some(1), None)).await.unwrap();
        assert_eq!(ids(&sample), vec![d.id.clone()]);
        let handle = tokio::runtime::Handle::current();
        let shown = {
            let (store, sample) = (store.clone(), sample.clone());
            tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                review::terminal::run(&handle, store.as_ref(), &sample, &review::terminal::Judge { reviewer: "tess", pass: Pass::First, taxonomy: &escalator::taxonomy::Taxonomy::default() }, &mut review::terminal::Lines(&mut "q\n".as_bytes()), &mut out).unwrap();
                String::from_utf8(out).unwrap()
            })
            .await
            .unwrap()
        };
        for c in ['\u{1b}', '\u{7}', '\r', '\u{202E}', '\u{9b}'] {
            assert!(!shown.contains(c), "{c:?} reached the terminal: {shown:?}");
        }
        assert!(shown.contains("\\u{1b}]0;pwned\\u{7}"), "{shown}");
        assert!(shown.contains("\\u{1b}[31mAPPROVED\\u{d}refund \\u{202e}txt.exe"), "{shown}");
        assert!(shown.contains("Message:    =HYPERLINK"), "{shown}");

        let open: Vec<_> = sample.open().map(|(_, i)| i).collect();
        let mut out = Vec::new();
        review::csv::export(&open, Pass::First, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let col = |n: &str| review::csv::HEADER.iter().position(|h| *h == n).unwrap();
        let mut row: Vec<String> = csv::Reader::from_reader(text.as_bytes())
            .records()
            .next()
            .unwrap()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        for cell in &row {
            assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']), "{cell:?} starts a formula");
        }
        assert_eq!(row[col("ticket_id")], "'-42+cmd");
        assert!(row[col("first_message")].starts_with("'=HYPERLINK"));
        row[col("verdict")] = "correct".into();
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(review::csv::HEADER).unwrap();
        w.write_record(&row).unwrap();
        let filled = String::from_utf8(w.into_inner().unwrap()).unwrap();
        let parsed = review::csv::parse(store.as_ref(), "s.csv", &filled, "ann", &escalator::taxonomy::Taxonomy::default()).await.unwrap();
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rows[0].review.decision_id, d.id);
    }

    async fn a_second_reviewer_judges_blind_and_a_pair_counts_once(store) {
        seed_day(store.as_ref(), 10).await;
        let tz = chrono_tz::UTC;
        let design = Design { second_reviewer_share: 0.5, ..Design::default() };
        let sample = review::sample(store.as_ref(), tz, &SampleRequest { design, ..req(4, Some(11), None) }).await.unwrap();
        let doubles: Vec<Decision> = sample.of_pass(Pass::Second).map(|(_, i)| i.decision.clone()).collect();
        assert_eq!((sample.items.len(), doubles.len()), (4, 2));
        let single = sample.items.iter().find(|i| !i.double_review()).unwrap().decision.clone();
        let verdict = |d: &Decision, who: &str, v: ReviewVerdict, pass: Pass| NewReview {
            decision_id: d.id.clone(),
            reviewer: who.into(),
            verdict: v,
            why: Some(format!("{who} on {}", d.id)),
            origin: Origin::Web,
            external_key: None,
            labels: Default::default(),
            pass,
        };
        // The first reviewer judges the whole sample correct.
        for i in &sample.items {
            review::record(store.as_ref(), &i.decision, verdict(&i.decision, "ann", ReviewVerdict::Correct, Pass::First)).await.unwrap();
        }
        // What is refused: a second verdict from the first reviewer, or on a decision not
        // offered for one; an adjudication with nothing to settle.
        let refused = |r: Result<_, review::ReviewError>| match r {
            Err(review::ReviewError::Refused(why)) => why,
            other => panic!("not refused: {other:?}"),
        };
        let d1 = &doubles[0];
        let d2 = &doubles[1];
        let why = refused(review::record(store.as_ref(), d1, verdict(d1, "ann", ReviewVerdict::Correct, Pass::Second)).await);
        assert!(why.contains("ann gave the first verdict"), "{why}");
        let why = refused(review::record(store.as_ref(), &single, verdict(&single, "bo", ReviewVerdict::Correct, Pass::Second)).await);
        assert!(why.contains("was not offered for a second review"), "{why}");
        let why = refused(review::record(store.as_ref(), d1, verdict(d1, "cy", ReviewVerdict::Correct, Pass::Adjudication)).await);
        assert!(why.contains("no disagreement to adjudicate"), "{why}");
        // The second reviewer in the terminal: only the two doubles, never the first verdict;
        // agrees on the first, disagrees on the second.
        let other = |d: &Decision| if d.severity == Severity::OnFire { "u" } else { "f" };
        let input = format!("c\n\n{}\nsecond look\n", other(d2));
        let (outcome, shown) = {
            let (store, sample) = (store.clone(), sample.clone());
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                let judge = review::terminal::Judge { reviewer: "bo", pass: Pass::Second, taxonomy: &escalator::taxonomy::Taxonomy::default() };
                let o = review::terminal::run(&handle, store.as_ref(), &sample, &judge, &mut review::terminal::Lines(&mut input.as_bytes()), &mut out).unwrap();
                (o, String::from_utf8(out).unwrap())
            })
            .await
            .unwrap()
        };
        assert_eq!(outcome.judged, 2, "{shown}");
        assert!(shown.contains("second review: 2 offered to a second reviewer, 2 to judge"), "{shown}");
        assert!(!shown.contains("ann"), "the first verdict leaked: {shown}");
        let item = store.review_item(&d2.id).await.unwrap().unwrap();
        assert!(item.disputed());
        assert_eq!(item.second.as_ref().unwrap().reviewer, "bo");
        // Langfuse keeps the first verdict of the disputed pair until it is adjudicated.
        let routing = |scores: &[escalator::domain::work::ScoreRow]| {
            scores
                .iter()
                .find(|s| s.name == "routing_correct" && s.decision_id == d2.id)
                .map(|s| s.value.clone())
        };
        let due = store.due_scores(Utc::now() + chrono::Duration::minutes(1), 100).await.unwrap();
        assert_eq!(routing(&due), Some(ScoreValue::Boolean(true)));
        // The pair counts once, with the first verdict while they disagree.
        let t = review::tally(store.as_ref(), tz, day()).await.unwrap();
        assert_eq!((t.sampled.k, t.sampled.n, t.awaiting_adjudication), (4, 4, 1));
        assert!(t.to_string().contains("(1 disagreement(s) await adjudication, counted with the first verdict)"), "{t}");
        let (from, to) = review::day_bounds(day(), tz);
        let rows = review::judged(store.as_ref(), from, to, tz).await.unwrap();
        let refs: Vec<_> = rows.iter().collect();
        let f = escalator::audit::sample::figures(&refs);
        let a = &f.agreement;
        assert_eq!((a.offered, a.kappa.pairs, a.kappa.agreed, a.awaiting_adjudication), (2, 2, 1, 1));
        assert_eq!(a.disagreements.len(), 1);
        assert_eq!(a.disagreements[0].decision_id, d2.id);
        assert_eq!((a.disagreements[0].first.1.as_str(), a.disagreements[0].second.1.as_str()), ("ann", "bo"));
        // A disputed pair does not become a label until it is settled.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("labels.csv");
        std::fs::write(&file, escalator::examples::EMBEDDED_LABELS).unwrap();
        let dry = review::labels::add_from_reviews(store.as_ref(), tz, &file, None, None, true, &escalator::prompt::PromptSpec::default()).await.unwrap();
        assert_eq!((dry.rows.len(), dry.disputed), (0, 1));
        // The adjudication settles it: it is what the decision counts with, and Langfuse too.
        let settled = ReviewVerdict::Corrected(if d2.severity == Severity::OnFire { Severity::Urgent } else { Severity::OnFire });
        review::record(store.as_ref(), d2, verdict(d2, "cy", settled, Pass::Adjudication)).await.unwrap();
        let t = review::tally(store.as_ref(), tz, day()).await.unwrap();
        assert_eq!((t.sampled.k, t.sampled.n, t.awaiting_adjudication), (3, 4, 0));
        let due = store.due_scores(Utc::now() + chrono::Duration::minutes(1), 100).await.unwrap();
        assert_eq!(routing(&due), Some(ScoreValue::Boolean(false)));
        let rows = review::judged(store.as_ref(), from, to, tz).await.unwrap();
        let refs: Vec<_> = rows.iter().collect();
        let f = escalator::audit::sample::figures(&refs);
        assert_eq!(f.agreement.awaiting_adjudication, 0);
        assert_eq!(f.agreement.disagreements[0].adjudicated.as_ref().map(|a| a.1.as_str()), Some("cy"));
        let dry = review::labels::add_from_reviews(store.as_ref(), tz, &file, None, None, true, &escalator::prompt::PromptSpec::default()).await.unwrap();
        assert_eq!((dry.rows.len(), dry.disputed), (1, 0));
        assert_eq!(dry.rows[0].severity, settled.corrected_severity().unwrap());
        // The spreadsheet for the second reviewer: only what is left for them, marked second;
        // the first reviewer cannot import it.
        let again = review::sample(store.as_ref(), tz, &SampleRequest { design, ..req(4, None, None) }).await.unwrap();
        assert_eq!(again.open_for(Pass::Second, "").count(), 0, "both doubles have a second verdict");
        let mut out = Vec::new();
        let items: Vec<_> = again.of_pass(Pass::Second).map(|(_, i)| i).collect();
        review::csv::export(&items, Pass::Second, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().skip(1).all(|l| l.ends_with(",second")), "{text}");
        assert!(!text.contains("ann"), "{text}");
        let filled = text.replacen(",false,,,,,", ",false,,correct,,,ann", 1);
        let problems = review::csv::parse(store.as_ref(), "s.csv", &filled, "x", &escalator::taxonomy::Taxonomy::default()).await.unwrap_err();
        assert!(problems[0].to_string().contains("ann gave the first verdict"), "{problems:?}");
    }

    async fn labels_add_from_reviews_appends_checks_and_skips_what_is_there(store) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("labels.csv");
        std::fs::write(&file, escalator::examples::EMBEDDED_LABELS).unwrap();
        std::fs::write(dir.path().join("holdout.csv"), escalator::examples::EMBEDDED_HOLDOUT).unwrap();
        let a = seed(store.as_ref(), Source::Plain, "th_new", "Invoice charged twice, $4,800", "We were charged twice — refund now or we call our lawyer.", Severity::Urgent, false, at(day(), 8)).await;
        let b = seed(store.as_ref(), Source::Pylon, "L-001", "dup", "already labelled id", Severity::Routine, false, at(day(), 9)).await;
        let c = seed(store.as_ref(), Source::Api, "T-ok", "fine", "was right", Severity::Routine, false, at(day(), 10)).await;
        for (d, v, why) in [(&a, ReviewVerdict::Corrected(Severity::OnFire), "Billing dispute over $1k with legal language."), (&b, ReviewVerdict::Corrected(Severity::Urgent), "x"), (&c, ReviewVerdict::Correct, "")] {
            review::record(store.as_ref(), d, NewReview { decision_id: d.id.clone(), reviewer: "r".into(), verdict: v, why: Some(why.into()), origin: Origin::Cli, external_key: None, labels: Default::default(), pass: Pass::First }).await.unwrap();
        }
        let before = std::fs::read_to_string(&file).unwrap();
        let dry = review::labels::add_from_reviews(store.as_ref(), chrono_tz::UTC, &file, Some(day()), None, true, &escalator::prompt::PromptSpec::default()).await.unwrap();
        assert_eq!(dry.rows.len(), 1);
        assert_eq!(dry.already_there, 1);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), before, "a dry run writes nothing");
        let added = review::labels::add_from_reviews(store.as_ref(), chrono_tz::UTC, &file, None, None, false, &escalator::prompt::PromptSpec::default()).await.unwrap();
        assert_eq!(added.prompt_version, dry.prompt_version);
        let examples = escalator::examples::load(&file).unwrap();
        let row = examples.iter().find(|e| e.ticket_id == "th_new").unwrap();
        assert_eq!((row.severity, row.route, row.tier), (Severity::OnFire, Route::Engineering, Tier::Enterprise));
        assert_eq!(row.why, "Billing dispute over $1k with legal language.");
        assert!(std::fs::read_to_string(&file).unwrap().starts_with(&before));
        let (prompt, _) = {
            let mut s = crate::harness::test_settings();
            s.labels_file = Some(file.clone());
            s.load_prompt().unwrap()
        };
        assert_eq!(prompt.version(), added.prompt_version);
        // Again: the ticket is there now.
        let again = review::labels::add_from_reviews(store.as_ref(), chrono_tz::UTC, &file, None, None, false, &escalator::prompt::PromptSpec::default()).await.unwrap();
        assert_eq!((again.rows.len(), again.already_there), (0, 2));
        // A file that fails the checks is not written: the holdout overlaps the new row.
        let d = seed(store.as_ref(), Source::Plain, "th_dup", "s", escalator::examples::parse("h", escalator::examples::EMBEDDED_HOLDOUT).unwrap()[0].first_message.as_str(), Severity::Routine, false, at(day(), 11)).await;
        review::record(store.as_ref(), &d, NewReview { decision_id: d.id.clone(), reviewer: "r".into(), verdict: ReviewVerdict::Corrected(Severity::Urgent), why: Some("w".into()), origin: Origin::Cli, external_key: None, labels: Default::default(), pass: Pass::First }).await.unwrap();
        let now = std::fs::read_to_string(&file).unwrap();
        let e = review::labels::add_from_reviews(store.as_ref(), chrono_tz::UTC, &file, None, None, false, &escalator::prompt::PromptSpec::default()).await.unwrap_err();
        assert!(e.to_string().contains("overlaps"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), now);
    }
}

/// A verdict whose scores cannot be written is not stored either (one transaction, one
/// answer): the scores table is dropped under the store, the verdict fails, and no review of
/// the decision is left behind. Then, once scores can be written, the same verdict stores both.
async fn a_verdict_is_stored_with_its_scores_or_not_at_all(
    store: std::sync::Arc<dyn Store>,
    break_scores: impl std::future::Future<Output = ()>,
    mend_scores: impl std::future::Future<Output = ()>,
) {
    let d = seed(
        store.as_ref(),
        Source::Plain,
        "T-tx",
        "Down",
        "All down",
        Severity::Urgent,
        false,
        at(day(), 9),
    )
    .await;
    let verdict = NewReview {
        decision_id: d.id.clone(),
        reviewer: "Ada".into(),
        verdict: ReviewVerdict::Corrected(Severity::OnFire),
        why: None,
        origin: Origin::Web,
        external_key: None,
        labels: Default::default(),
        pass: Pass::First,
    };
    break_scores.await;
    let err = review::record(store.as_ref(), &d, verdict.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, review::ReviewError::Store(_)), "{err:?}");
    assert!(
        store.reviews(&d.id).await.unwrap().is_empty(),
        "the verdict was rolled back with its scores"
    );
    mend_scores.await;
    review::record(store.as_ref(), &d, verdict)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.reviews(&d.id).await.unwrap().len(), 1);
    let scores = store
        .due_scores(Utc::now() + chrono::Duration::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(
        scores.len(),
        2,
        "routing_correct and corrected_severity: {scores:?}"
    );
}

mod one_transaction {
    use super::*;

    // The scores table renamed away and back: every write to it fails in between.
    const BREAK: &str = "ALTER TABLE scores RENAME TO scores_away";
    const MEND: &str = "ALTER TABLE scores_away RENAME TO scores";

    #[sqlx::test(migrations = "migrations/postgres")]
    async fn on_postgres(pool: sqlx::PgPool) {
        let run = |sql: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
        };
        a_verdict_is_stored_with_its_scores_or_not_at_all(
            crate::harness::pg(pool.clone()),
            run(BREAK),
            run(MEND),
        )
        .await;
    }

    #[sqlx::test(migrations = "migrations/sqlite")]
    async fn on_sqlite(pool: sqlx::SqlitePool) {
        let run = |sql: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
        };
        a_verdict_is_stored_with_its_scores_or_not_at_all(
            crate::harness::lite(pool.clone()),
            run(BREAK),
            run(MEND),
        )
        .await;
    }
}

/// The binary as a reviewer runs it, on a SQLite file: `review` with keys on stdin, `export`,
/// and `import` of a malformed then a good file.
#[tokio::test]
async fn the_review_commands_run_end_to_end_on_the_binary() {
    use std::{io::Write as _, process::Stdio};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("review.db").display());
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
    for i in 0..2 {
        seed(
            store.as_ref(),
            Source::Api,
            &format!("T-cli-{i}"),
            "Refund?",
            "Charged twice",
            Severity::Routine,
            false,
            at(day(), 8 + i),
        )
        .await;
    }
    store.close().await;
    let run = |args: &[&str], stdin: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_escalator"))
            .args(args)
            .env("DATABASE_URL", &url)
            .env_remove("ESCALATOR_CONFIG")
            .env_remove("ANTHROPIC_API_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(
        &[
            "review",
            "--date",
            "2026-11-24",
            "--seed",
            "3",
            "--reviewer",
            "cli",
        ],
        "u\nvip customer\nq\n",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("2 decisions sampled, 2 to judge (seed 3)"),
        "{out}"
    );
    assert!(out.contains("── 1/2 "), "{out}");
    assert!(out.contains("1 judged, 0 skipped, 1 left"), "{out}");
    assert!(
        out.contains("2026-11-24: sampled verdicts: 0.0% [0.0–79.3] (0/1); agents' overrides"),
        "{out}"
    );
    let (code, csv_text, err) = run(&["review", "export", "--date", "2026-11-24"], "");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        csv_text.lines().count(),
        2,
        "header and the one open row: {csv_text}"
    );
    let bad = csv_text.replacen(",false,,,,,", ",false,,corrected,critical,,", 1);
    assert_ne!(bad, csv_text);
    let file = dir.path().join("sample.csv");
    std::fs::write(&file, &bad).unwrap();
    let path = file.to_str().unwrap();
    let (code, _, err) = run(&["review", "import", path], "");
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!(
            "{path}:2:18: corrected_severity \"critical\" is not one of routine, urgent, on_fire"
        )),
        "{err}"
    );
    assert!(err.contains("nothing was stored"), "{err}");
    std::fs::write(
        &file,
        csv_text.replacen(",false,,,,,", ",false,,correct,,fine,", 1),
    )
    .unwrap();
    let (code, out, err) = run(&["review", "import", path, "--reviewer", "sheet"], "");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("1 verdicts stored (0 corrected), 0 rows left unjudged"),
        "{out}"
    );
    let (code, out, _) = run(&["review", "--date", "2026-11-24"], "");
    assert_eq!(code, Some(0));
    assert!(out.contains("0 to judge"), "{out}");
    // The second pass (no decision of this day was offered for one; and no tally for a second
    // reviewer), and adjudication, which is not a spreadsheet's.
    let (code, out, err) = run(&["review", "--date", "2026-11-24", "--second"], "");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("second review: 0 offered to a second reviewer, 0 to judge"),
        "{out}"
    );
    assert!(!out.contains("sampled verdicts"), "{out}");
    let (code, _, err) = run(
        &["review", "export", "--date", "2026-11-24", "--adjudicate"],
        "",
    );
    assert_eq!(code, Some(64));
    assert!(err.contains("adjudicate in the terminal"), "{err}");
    let (code, _, err) = run(&["review", "--second", "--adjudicate"], "");
    assert_eq!(code, Some(2), "{err}");
}

/// On a real terminal a verdict is one keystroke, no Enter: the binary runs under a
/// pseudo-terminal (`script` from util-linux), is sent `u`, a why line, then `q`, each after a
/// pause so it arrives while the review waits for it.
#[tokio::test]
async fn on_a_terminal_one_keystroke_is_a_verdict() {
    use std::{io::Write as _, process::Stdio};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tty.db").display());
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
    for i in 0..2 {
        seed(
            store.as_ref(),
            Source::Api,
            &format!("T-tty-{i}"),
            "Refund?",
            "Charged twice",
            Severity::Routine,
            false,
            at(day(), 8 + i),
        )
        .await;
    }
    let command = format!(
        "{} review --date 2026-11-24 --seed 3 --reviewer tty",
        env!("CARGO_BIN_EXE_escalator")
    );
    let mut child = std::process::Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("DATABASE_URL", &url)
        .env_remove("ESCALATOR_CONFIG")
        .env_remove("ANTHROPIC_API_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`script` (util-linux) runs the review under a pseudo-terminal");
    let mut stdin = child.stdin.take().unwrap();
    for typed in ["u", "vip customer\r", "q"] {
        std::thread::sleep(Duration::from_millis(1_500));
        stdin.write_all(typed.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("recorded: corrected to urgent"), "{text}");
    assert!(text.contains("1 judged, 0 skipped, 1 left"), "{text}");
    let reviews = store
        .latest_reviews_since(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH)
        .await
        .unwrap();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].why.as_deref(), Some("vip customer"));
    store.close().await;
}
