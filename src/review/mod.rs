//! The daily review: a person reads a few of yesterday's decisions each morning and says whether
//! each was right. Without verdicts no accuracy figure exists; with them the labels and the
//! Langfuse dashboards learn from the misses.
//!
//! - [`sample`] draws N decisions from one day (in the configured time zone) by the stratified
//!   design of `crate::domain::sample` (the costly strata taken whole, low confidence and
//!   enterprise oversampled, the rest uniform), reproducibly for a `--seed`, and records them
//!   with their strata and inclusion probabilities, so a decision is never offered twice and
//!   each verdict can be weighted; a share of each draw is offered to a second reviewer too.
//! - [`record`] stores a verdict of a pass (history kept, the last of each pass counts) and
//!   writes the Langfuse scores to the outbox: `routing_correct` (BOOLEAN), and
//!   `corrected_severity` (CATEGORICAL) for a correction.
//! - [`judged`] reads a window's decisions with the verdict each counts with and its weight,
//!   as the audit, the promotion gate and the day's [`Tally`] read them.
//! - [`terminal`] is `escalator review`, [`csv`] its spreadsheet export and import,
//!   [`labels`] `escalator labels add-from-reviews`, [`overrides`] the agents' changes in Plain
//!   and Pylon taken as verdicts; `crate::web` serves the same sample as a page.

pub mod cli;
pub mod csv;
pub mod labels;
pub mod overrides;
pub mod settings;
pub mod terminal;

use std::fmt;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone as _, Utc};

pub use crate::domain::review::{
    LabelVerdict, NewReview, Origin, Pass, Passes, Review, ReviewItem, ReviewVerdict, TicketText,
};
pub use crate::domain::sample::{Design, Stratum};
pub use settings::ReviewSettings;

use crate::{
    domain::{Decision, Source, audit::AuditRow, work::ScoreRow},
    stats::{Rate, Weighted},
    store::{AuditLog, NewDraw, Reviews, StoreError},
    telemetry::scores,
};

/// Longest why kept, in characters (it becomes a labels row's `why_this_label`).
pub const MAX_WHY_CHARS: usize = 300;

/// Which decisions to sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRequest {
    /// The day, in the review time zone.
    pub day: NaiveDate,
    /// How many decisions the day's sample should hold.
    pub n: usize,
    /// The seed of the draw; `None` picks one (printed, so the draw can be repeated).
    pub seed: Option<u64>,
    /// Only decisions of this source.
    pub source: Option<Source>,
    /// The sample design (`[review]`).
    pub design: Design,
}

/// A day's sample: every decision offered for it, judged or not, in the order drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The day.
    pub day: NaiveDate,
    /// The source filter.
    pub source: Option<Source>,
    /// The seed of this call's draw (when nothing was drawn, the one it would have used).
    pub seed: u64,
    /// Decisions drawn by this call (the rest were offered before).
    pub drawn: usize,
    /// The sample.
    pub items: Vec<ReviewItem>,
}

impl Sample {
    /// Items still waiting for a first-pass verdict.
    pub fn open(&self) -> impl Iterator<Item = (usize, &ReviewItem)> {
        self.items.iter().enumerate().filter(|(_, i)| i.open())
    }

    /// The items `pass` shows (with their position in the sample): every item for the first
    /// pass, those offered for a double review for the second, the disputed ones for
    /// adjudication.
    pub fn of_pass(&self, pass: Pass) -> impl Iterator<Item = (usize, &ReviewItem)> {
        self.items
            .iter()
            .enumerate()
            .filter(move |(_, i)| match pass {
                Pass::First => true,
                Pass::Second => i.double_review(),
                Pass::Adjudication => i.disputed(),
            })
    }

    /// The items `reviewer` still has to judge in `pass`.
    pub fn open_for<'a>(
        &'a self,
        pass: Pass,
        reviewer: &'a str,
    ) -> impl Iterator<Item = (usize, &'a ReviewItem)> {
        self.items
            .iter()
            .enumerate()
            .filter(move |(_, i)| i.open_for(pass, reviewer))
    }
}

/// The stored name of a source filter.
pub fn source_key(source: Option<Source>) -> &'static str {
    source.map_or("all", Source::as_str)
}

/// Yesterday in `tz`.
pub fn yesterday(tz: chrono_tz::Tz) -> NaiveDate {
    let today = Utc::now().with_timezone(&tz).date_naive();
    today.pred_opt().unwrap_or(today)
}

/// The first instant of `day` in `tz`, in UTC. A day whose midnight falls in a DST gap starts
/// at the first local time that exists.
fn day_start(day: NaiveDate, tz: chrono_tz::Tz) -> DateTime<Utc> {
    let mut t = day.and_time(NaiveTime::MIN);
    for _ in 0..48 {
        if let Some(local) = tz.from_local_datetime(&t).earliest() {
            return local.with_timezone(&Utc);
        }
        t += Duration::minutes(30);
    }
    Utc.from_utc_datetime(&day.and_time(NaiveTime::MIN))
}

/// `[start, end)` of `day` in `tz`, in UTC (23, 24 or 25 hours).
pub fn day_bounds(day: NaiveDate, tz: chrono_tz::Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let next = day.succ_opt().unwrap_or(day);
    (day_start(day, tz), day_start(next, tz))
}

/// The day's sample for `req`: the decisions offered for that day and source before, topped up
/// to `req.n` with a stratified draw from the decisions of that day never offered (fallbacks
/// included), which is recorded with its strata, and every sampled decision's inclusion
/// probability updated, before it is returned.
///
/// # Errors
/// When the store cannot be read or written.
pub async fn sample<S: Reviews + ?Sized>(
    store: &S,
    tz: chrono_tz::Tz,
    req: &SampleRequest,
) -> Result<Sample, StoreError> {
    let day = req.day.format("%Y-%m-%d").to_string();
    let key = source_key(req.source);
    let seed = req.seed.unwrap_or_else(rand::random);
    let existing = store.sample_items(&day, key).await?;
    let mut drawn = 0;
    if existing.len() < req.n {
        let (from, to) = day_bounds(req.day, tz);
        let candidates = store.review_candidates(from, to, req.source).await?;
        let draw =
            crate::domain::sample::draw(&candidates, req.n - existing.len(), seed, &req.design);
        if !draw.picks.is_empty() {
            drawn = store
                .add_draw(&NewDraw {
                    day: &day,
                    source: req.source,
                    seed,
                    drawn_at: Utc::now(),
                    first_position: i32::try_from(existing.len()).unwrap_or(i32::MAX),
                    draw: &draw,
                })
                .await?;
        }
    }
    let items = if drawn > 0 {
        store.sample_items(&day, key).await?
    } else {
        existing
    };
    Ok(Sample {
        day: req.day,
        source: req.source,
        seed,
        drawn,
        items,
    })
}

/// Why a verdict could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The decision id is not in the routing log.
    #[error("no decision {0} in the routing log")]
    UnknownDecision(String),
    /// The verdict does not fit the decision's passes (a second verdict on a decision not
    /// offered for one, or from the first reviewer; an adjudication with nothing to settle).
    #[error("{0}")]
    Refused(String),
    /// The store failed; nothing or only part was written (recording again is safe).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The why as stored: one line, at most [`MAX_WHY_CHARS`], `None` when blank.
pub fn clean_why(why: Option<&str>) -> Option<String> {
    let w = crate::text::excerpt(why.unwrap_or(""), MAX_WHY_CHARS);
    (!w.is_empty()).then_some(w)
}

/// Stores a verdict on `decision` (after [`ReviewItem::check`]: the pass must fit) and, when it
/// is the verdict the decision now counts with ([`Passes::counted`]; a second verdict beside a
/// first is not) or an agent's override, writes its Langfuse scores to the outbox:
/// `routing_correct` (1 correct, 0 corrected) and, for a correction, `corrected_severity`; and
/// `topic_correct` / `sentiment_correct` for each label the reviewer judged on a labelled
/// decision. A
/// correction to the decision's own severity counts as correct. When a decision corrected
/// before is now judged correct, `corrected_severity` is updated to the decision's severity, so
/// Langfuse agrees with the last verdict. `None` when the review's `external_key` was stored
/// before (a redelivered override): nothing else is written.
///
/// # Errors
/// [`ReviewError::Refused`] when the pass does not fit; store errors (recording again is
/// safe: scores are idempotent).
pub async fn record<S: Reviews + ?Sized>(
    store: &S,
    decision: &Decision,
    mut review: NewReview,
) -> Result<Option<Review>, ReviewError> {
    review.verdict = review.verdict.normalised(decision);
    review.why = clean_why(review.why.as_deref());
    if review.origin != Origin::Override {
        let item = store.review_item(&decision.id).await?;
        if let Some(item) = item {
            item.check(&review).map_err(ReviewError::Refused)?;
        }
    }
    let earlier = store.reviews(&decision.id).await?;
    let scores = scores_of(decision, &earlier, &review);
    // The verdict and its scores in one transaction: the answer ("stored" or "not stored")
    // is true of both.
    Ok(store.insert_review(&review, &scores).await?)
}

/// The Langfuse scores `review` makes on `decision` after `earlier` verdicts (see [`record`]):
/// none when it is not the verdict the decision now counts with.
fn scores_of(decision: &Decision, earlier: &[Review], review: &NewReview) -> Vec<ScoreRow> {
    // Langfuse carries the verdict the decision counts with: a second verdict beside a first
    // one changes nothing there (a disagreement waits for its adjudication); an adjudication
    // does. An agent's override is scored as before. The new verdict counts as the last one
    // of its pass (it gets the highest id when stored).
    let mut history = earlier.to_vec();
    history.push(Review {
        id: i64::MAX,
        decision_id: review.decision_id.clone(),
        reviewer: review.reviewer.clone(),
        reviewed_at: Utc::now(),
        verdict: review.verdict,
        why: review.why.clone(),
        origin: review.origin,
        labels: review.labels.clone(),
        pass: review.pass,
    });
    if review.origin != Origin::Override && Passes::of(&history).counted_pass() != Some(review.pass)
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    let comment = format!(
        "{} ({}{}, {}){}",
        review.verdict,
        review.origin.as_str(),
        match review.pass {
            Pass::First => "",
            Pass::Second => ", second review",
            Pass::Adjudication => ", adjudication",
        },
        review.reviewer,
        review
            .why
            .as_deref()
            .map(|w| format!(": {w}"))
            .unwrap_or_default()
    );
    let comment = crate::text::excerpt(&comment, 500);
    let correct = review.verdict == ReviewVerdict::Correct;
    out.push(scores::review_score(decision, correct, Some(&comment)));
    let was_corrected = earlier
        .iter()
        .any(|r| matches!(r.verdict, ReviewVerdict::Corrected(_)));
    if !correct || was_corrected {
        let right = review.verdict.right_severity(decision);
        out.push(scores::corrected_severity_score(
            decision,
            right,
            Some(&comment),
        ));
    }
    let l = &review.labels;
    let who = format!("({}, {})", review.origin.as_str(), review.reviewer);
    if let (Some(c), Some(decided), Some(right)) = (
        l.topic_correct(decision.topic.as_deref()),
        decision.topic.as_deref(),
        l.topic.as_deref(),
    ) {
        let comment = format!("topic {decided} -> {right} {who}");
        out.push(scores::label_score(
            decision,
            scores::TOPIC_CORRECT,
            c,
            Some(&comment),
        ));
    }
    if let (Some(c), Some(decided), Some(right)) = (
        l.sentiment_correct(decision.sentiment),
        decision.sentiment,
        l.sentiment,
    ) {
        let comment = format!("sentiment {decided} -> {right} {who}");
        out.push(scores::label_score(
            decision,
            scores::SENTIMENT_CORRECT,
            c,
            Some(&comment),
        ));
    }
    out
}

/// [`record`] by decision id.
///
/// # Errors
/// [`ReviewError::UnknownDecision`] when the id is not logged; store errors.
pub async fn record_by_id<S: Reviews + ?Sized>(
    store: &S,
    review: NewReview,
) -> Result<Option<Review>, ReviewError> {
    let decision = store
        .decision_by_id(&review.decision_id)
        .await?
        .ok_or_else(|| ReviewError::UnknownDecision(review.decision_id.clone()))?;
    record(store, &decision, review).await
}

/// The decisions logged in `[from, to)` with the verdict each counts with and its weight:
/// [`AuditLog::audit_decisions`], with the rows sampled before strata existed given the
/// inclusion probability of their uniform draw (their days in `tz`). Read whole days.
///
/// # Errors
/// When the store cannot be read.
pub async fn judged<S: AuditLog + ?Sized>(
    store: &S,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> Result<Vec<AuditRow>, StoreError> {
    let mut rows = store.audit_decisions(from, to).await?;
    crate::domain::audit::fill_uniform_probabilities(&mut rows, |t| {
        t.with_timezone(&tz).date_naive()
    });
    Ok(rows)
}

/// A day's verdicts at a glance: the sampled ones (a double review once, weighted by the
/// design), the ones on decisions the draw never offered and the agents' overrides, each apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tally {
    /// Sampled decisions with a verdict: the weighted estimate.
    pub sampled: Rate,
    /// Verdicts on decisions never sampled (a reviewer's own choice): never in the accuracy.
    pub unsampled: Rate,
    /// Decisions an agent overrode in the tool.
    pub overrides: u64,
    /// Double reviews whose two verdicts differ and wait for an adjudication.
    pub awaiting_adjudication: u64,
}

impl Tally {
    /// The tally of `rows`.
    pub fn of(rows: &[AuditRow]) -> Self {
        let (mut sampled, mut unsampled) = (Weighted::default(), Weighted::default());
        let (mut overrides, mut awaiting) = (0, 0);
        for r in rows {
            if let Some(c) = r.correct() {
                sampled.add(r.weight(), c);
            }
            if let Some(v) = r.unsampled {
                unsampled.add(1.0, v == ReviewVerdict::Correct);
            }
            overrides += u64::from(r.overridden.is_some());
            awaiting += u64::from(r.sample.is_some() && r.passes.awaiting_adjudication());
        }
        Self {
            sampled: sampled.rate(),
            unsampled: unsampled.rate(),
            overrides,
            awaiting_adjudication: awaiting,
        }
    }

    /// Sampled decisions with a verdict.
    pub fn reviewed(&self) -> u64 {
        self.sampled.n
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sampled.n == 0 {
            write!(f, "sampled verdicts: none yet")?;
        } else {
            write!(f, "sampled verdicts: {}", self.sampled)?;
        }
        if self.awaiting_adjudication > 0 {
            write!(
                f,
                " ({} disagreement(s) await adjudication, counted with the first verdict)",
                self.awaiting_adjudication
            )?;
        }
        if self.unsampled.n > 0 {
            write!(
                f,
                "; unsampled verdicts (not in the accuracy): {}, accuracy {}",
                self.unsampled.n, self.unsampled
            )?;
        }
        write!(
            f,
            "; agents' overrides (misses only, counted apart): {}",
            self.overrides
        )
    }
}

/// The [`Tally`] of `day`'s decisions (in `tz`).
///
/// # Errors
/// When the store cannot be read.
pub async fn tally<S: AuditLog + ?Sized>(
    store: &S,
    tz: chrono_tz::Tz,
    day: NaiveDate,
) -> Result<Tally, StoreError> {
    let (from, to) = day_bounds(day, tz);
    Ok(Tally::of(&judged(store, from, to, tz).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_a_day_in_the_time_zone() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let (from, to) = day_bounds(day, chrono_tz::UTC);
        assert_eq!(from.to_rfc3339(), "2026-11-25T00:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-11-26T00:00:00+00:00");
        let (from, to) = day_bounds(day, chrono_tz::America::New_York);
        assert_eq!(from.to_rfc3339(), "2026-11-25T05:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-11-26T05:00:00+00:00");
        // The day clocks go forward is 23 hours long.
        let dst = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        let (from, to) = day_bounds(dst, chrono_tz::Europe::Berlin);
        assert_eq!((to - from).num_hours(), 23);
        // Midnight does not exist in Santiago on the day clocks go forward (2026-09-06).
        let gap = NaiveDate::from_ymd_opt(2026, 9, 6).unwrap();
        let (from, to) = day_bounds(gap, chrono_tz::America::Santiago);
        assert!(from < to);
    }

    #[test]
    fn whys_are_one_bounded_line() {
        assert_eq!(clean_why(Some("  ")), None);
        assert_eq!(
            clean_why(Some("prod\ndown  now")).as_deref(),
            Some("prod down now")
        );
        let long = "é".repeat(400);
        assert!(clean_why(Some(&long)).unwrap().chars().count() <= MAX_WHY_CHARS);
    }
}
