//! The daily review's reads and writes: decisions by id (and the latest of a ticket, for an
//! agent's override), the day's samples with their draws and inclusion probabilities, and the
//! verdicts with their history and pass.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::StoreError;
#[allow(clippy::wildcard_imports)]
use super::backend::*;
use crate::domain::{Decision, Severity, Source, Tier};

/// A draw to record: the day's sample it tops up, its seed and time, and what it picked.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDraw<'a> {
    /// The day, `YYYY-MM-DD` in the review time zone.
    pub day: &'a str,
    /// The source filter (`None`: all sources).
    pub source: Option<Source>,
    /// The seed of the draw.
    pub seed: u64,
    /// When it was drawn (a decision logged later was not in its frame).
    pub drawn_at: DateTime<Utc>,
    /// The position of its first pick in the day's sample.
    pub first_position: i32,
    /// The picks and the strata.
    pub draw: &'a crate::domain::sample::Draw,
}

/// The daily review: samples, verdicts, and the decisions they judge.
#[async_trait]
pub trait Reviews: Send + Sync {
    /// The decision with this id.
    async fn decision_by_id(&self, id: &str) -> Result<Option<Decision>, StoreError>;

    /// The most recent decision logged for a ticket (any version), for an agent's override.
    async fn latest_decision(
        &self,
        source: Source,
        ticket_id: &str,
    ) -> Result<Option<Decision>, StoreError>;

    /// The decisions logged in `[from, to)` (from `source`, if given) that were never offered
    /// for review, in id order (so a seeded draw over them is reproducible), with what the
    /// sample design reads of each.
    async fn review_candidates(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        source: Option<Source>,
    ) -> Result<Vec<crate::domain::sample::Candidate>, StoreError>;

    /// Records a draw of the day's sample: the draw with its strata (each stratum's drawn
    /// count being the picks actually recorded), its picks (a decision already offered
    /// anywhere is left as it was), and every sampled decision of that day's inclusion
    /// probability computed again over all its draws, in one transaction (on PostgreSQL under
    /// a lock per day, so draws of one day never interleave). Returns the picks recorded.
    async fn add_draw(&self, draw: &NewDraw<'_>) -> Result<usize, StoreError>;

    /// The sample of `day` / `sample_source`, in order, with tickets and verdicts by pass.
    async fn sample_items(
        &self,
        day: &str,
        sample_source: &str,
    ) -> Result<Vec<crate::domain::review::ReviewItem>, StoreError>;

    /// One decision with its ticket, its place in the sample and its verdicts by pass.
    async fn review_item(
        &self,
        decision_id: &str,
    ) -> Result<Option<crate::domain::review::ReviewItem>, StoreError>;

    /// Marks a sampled decision skipped: it is not offered again.
    async fn skip_sampled(&self, decision_id: &str) -> Result<(), StoreError>;

    /// Stores a verdict and, in the same transaction, the Langfuse scores it makes (written
    /// as by [`super::ScoreQueue::upsert_score`]): both are stored or neither is. `None` when
    /// its `external_key` was stored before (a redelivery): nothing is written.
    async fn insert_review(
        &self,
        review: &crate::domain::review::NewReview,
        scores: &[crate::domain::work::ScoreRow],
    ) -> Result<Option<crate::domain::review::Review>, StoreError>;

    /// Every verdict on a decision, oldest first (the last one of each pass counts).
    async fn reviews(
        &self,
        decision_id: &str,
    ) -> Result<Vec<crate::domain::review::Review>, StoreError>;

    /// The last verdict of every decision whose last verdict was given at or after `since`,
    /// oldest first.
    async fn latest_reviews_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<crate::domain::review::Review>, StoreError>;
}

macro_rules! impl_reviews {
    ($store:ident, $pool:ty, $row:ty, $backend:literal, $skip_locked:literal) => {
        impl $store {
            fn review_from_row(row: &$row) -> Result<crate::domain::review::Review, StoreError> {
                let verdict: String = row.try_get("verdict").map_err(corrupt)?;
                let severity: Option<String> = row.try_get("corrected_severity").map_err(corrupt)?;
                let origin: String = row.try_get("origin").map_err(corrupt)?;
                Ok(crate::domain::review::Review {
                    id: row.try_get("id").map_err(corrupt)?,
                    decision_id: row.try_get("decision_id").map_err(corrupt)?,
                    reviewer: row.try_get("reviewer").map_err(corrupt)?,
                    reviewed_at: row.try_get("reviewed_at").map_err(corrupt)?,
                    verdict: crate::domain::review::ReviewVerdict::parse(&verdict, severity.as_deref()).map_err(corrupt)?,
                    why: row.try_get("why").map_err(corrupt)?,
                    origin: crate::domain::review::Origin::parse(&origin).map_err(corrupt)?,
                    pass: crate::domain::review::Pass::parse("pass", &row.try_get::<String, _>("pass").map_err(corrupt)?)
                        .map_err(corrupt)?,
                    labels: crate::domain::review::LabelVerdict {
                        topic: row.try_get("topic").map_err(corrupt)?,
                        sentiment: sentiment(row.try_get("sentiment").map_err(corrupt)?)?,
                        shadow: shadow(row.try_get("shadow").map_err(corrupt)?)?,
                    },
                })
            }

            /// A decision row joined with its ticket (`t_*`) and sample (`s_*`), and its last
            /// verdict of each pass.
            async fn item_from_row(&self, row: &$row) -> Result<crate::domain::review::ReviewItem, StoreError> {
                let decision = Self::decision_from_row(row)?;
                let subject: Option<String> = row.try_get("t_subject").map_err(corrupt)?;
                let ticket = match subject {
                    Some(subject) => {
                        let tier: String = row.try_get("t_tier").map_err(corrupt)?;
                        Some(crate::domain::review::TicketText {
                            subject,
                            body: row.try_get("t_body").map_err(corrupt)?,
                            tier: Tier::parse("tier", &tier)
                                .map_err(corrupt)?,
                            arr_usd: row.try_get("t_arr_usd").map_err(corrupt)?,
                        })
                    }
                    None => None,
                };
                let skipped: Option<DateTime<Utc>> = row.try_get("s_skipped_at").map_err(corrupt)?;
                let sample = Self::sample_mark(row)?;
                let sql = concat!(
                    "SELECT ",
                    review_columns!(),
                    " FROM reviews r WHERE r.decision_id = $1 AND r.origin <> 'override' ORDER BY r.id"
                );
                let history = fetch_all!(&self.pool, Self::review_from_row, sql, &decision.id)?;
                let last = |pass: crate::domain::review::Pass| {
                    history.iter().rev().find(|r| r.pass == pass).cloned()
                };
                Ok(crate::domain::review::ReviewItem {
                    latest: last(crate::domain::review::Pass::First),
                    second: last(crate::domain::review::Pass::Second),
                    adjudication: last(crate::domain::review::Pass::Adjudication),
                    decision,
                    ticket,
                    skipped: skipped.is_some(),
                    sample,
                })
            }

            /// The sample columns (`s_*`) of a row joined with `review_samples`; `None` when
            /// the decision was never offered.
            pub(super) fn sample_mark(row: &$row) -> Result<Option<crate::domain::review::SampleMark>, StoreError> {
                let day: Option<String> = row.try_get("s_day").map_err(corrupt)?;
                let Some(day) = day else { return Ok(None) };
                let stratum: Option<String> = row.try_get("s_stratum").map_err(corrupt)?;
                let double: Option<bool> = row.try_get("s_double").map_err(corrupt)?;
                Ok(Some(crate::domain::review::SampleMark {
                    day,
                    source: row.try_get("s_source").map_err(corrupt)?,
                    stratum: crate::domain::sample::Stratum::parse_stored(stratum.as_deref()).map_err(corrupt)?,
                    inclusion_probability: row.try_get("s_pi").map_err(corrupt)?,
                    double_review: double.unwrap_or(false),
                }))
            }
        }

        #[async_trait]
        impl Reviews for $store {
            async fn decision_by_id(&self, id: &str) -> Result<Option<Decision>, StoreError> {
                let sql = concat!("SELECT ", decision_columns!(), " FROM decisions WHERE id = $1");
                fetch_optional!(&self.pool, Self::decision_from_row, sql, id)
            }

            async fn latest_decision(
                &self, source: Source, ticket_id: &str,
            ) -> Result<Option<Decision>, StoreError> {
                let sql = concat!(
                    "SELECT ",
                    decision_columns!(),
                    " FROM decisions WHERE source = $1 AND ticket_id = $2 \
                     ORDER BY created_at DESC, id DESC LIMIT 1"
                );
                fetch_optional!(&self.pool, Self::decision_from_row, sql, source.as_str(), ticket_id)
            }

            async fn review_candidates(
                &self, from: DateTime<Utc>, to: DateTime<Utc>, source: Option<Source>,
            ) -> Result<Vec<crate::domain::sample::Candidate>, StoreError> {
                let sql = "SELECT d.id, d.source, d.created_at, d.severity, d.fallback, d.confidence, \
                     d.tier, EXISTS (SELECT 1 FROM reviews r WHERE r.decision_id = d.id \
                       AND r.origin = 'override') AS overridden \
                     FROM decisions d WHERE d.created_at >= $1 AND d.created_at < $2 \
                     AND ($3 = '' OR d.source = $3) \
                     AND NOT EXISTS (SELECT 1 FROM review_samples s WHERE s.decision_id = d.id) \
                     ORDER BY d.id";
                fetch_all!(
                    &self.pool,
                    |row| {
                        let text = |col: &str| row.try_get::<String, _>(col).map_err(corrupt);
                        Ok(crate::domain::sample::Candidate {
                            id: text("id")?,
                            source: Source::parse("source", &text("source")?).map_err(corrupt)?,
                            created_at: row.try_get("created_at").map_err(corrupt)?,
                            severity: Severity::parse("severity", &text("severity")?).map_err(corrupt)?,
                            fallback: row.try_get("fallback").map_err(corrupt)?,
                            confidence: row.try_get::<f32, _>("confidence").map_err(corrupt)?,
                            tier: Tier::parse("tier", &text("tier")?).map_err(corrupt)?,
                            overridden: row.try_get("overridden").map_err(corrupt)?,
                        })
                    },
                    sql, from, to, source.map_or("", Source::as_str)
                )
            }

            async fn add_draw(&self, new: &NewDraw<'_>) -> Result<usize, StoreError> {
                use crate::domain::sample::{DrawRecord, Sampled, Stratum};
                let key = new.source.map_or("all", Source::as_str);
                // The seed's bits, as the column is a signed 64-bit integer.
                let seed = i64::from_ne_bytes(new.seed.to_ne_bytes());
                let now = Utc::now();
                let mut tx = self.pool.begin().await?;
                if $backend == "postgres" {
                    // Draws of one day never interleave (two replicas serving /review at once).
                    statement!("SELECT pg_advisory_xact_lock(hashtext($1))", format!("review_samples {}", new.day))
                        .execute(&mut *tx)
                        .await?;
                }
                let draw_id: i64 = statement!(
                    "INSERT INTO review_draws (sample_day, sample_source, seed, drawn_at) \
                     VALUES ($1, $2, $3, $4) RETURNING id",
                    new.day, key, seed, new.drawn_at
                )
                .fetch_one(&mut *tx)
                .await?
                .try_get("id")
                .map_err(corrupt)?;
                let mut recorded: std::collections::BTreeMap<Stratum, usize> = std::collections::BTreeMap::new();
                for (i, pick) in new.draw.picks.iter().enumerate() {
                    let position = new.first_position.saturating_add(i32::try_from(i).unwrap_or(i32::MAX));
                    let added = execute!(
                        &mut *tx,
                        "INSERT INTO review_samples (decision_id, sample_day, sample_source, position, \
                         seed, offered_at, draw_id, stratum, double_review) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                         ON CONFLICT (decision_id) DO NOTHING",
                        &pick.id, new.day, key, position, seed, now, draw_id, pick.stratum.as_str(),
                        pick.double_review
                    );
                    *recorded.entry(pick.stratum).or_default() += usize::try_from(added).unwrap_or(0);
                }
                for st in new.draw.strata.iter().filter(|st| st.frame > 0) {
                    let drawn = recorded.get(&st.stratum).copied().unwrap_or(0).min(st.frame);
                    execute!(
                        &mut *tx,
                        "INSERT INTO review_draw_strata (draw_id, stratum, frame_size, drawn) \
                         VALUES ($1, $2, $3, $4)",
                        draw_id, st.stratum.as_str(),
                        i32::try_from(st.frame).unwrap_or(i32::MAX),
                        i32::try_from(drawn).unwrap_or(i32::MAX)
                    );
                }
                // Every sampled decision of the day, over every draw of the day.
                let mut draws: Vec<DrawRecord> = fetch_all!(
                    &mut *tx,
                    |row| {
                        let source: String = row.try_get("sample_source").map_err(corrupt)?;
                        Ok(DrawRecord {
                            id: row.try_get("id").map_err(corrupt)?,
                            source: match source.as_str() {
                                "all" => None,
                                s => Some(Source::parse("sample_source", s).map_err(corrupt)?),
                            },
                            drawn_at: row.try_get("drawn_at").map_err(corrupt)?,
                            strata: std::collections::BTreeMap::new(),
                        })
                    },
                    "SELECT id, sample_source, drawn_at FROM review_draws WHERE sample_day = $1 ORDER BY id",
                    new.day
                )?;
                let strata = statement!(
                    "SELECT st.draw_id, st.stratum, st.frame_size, st.drawn FROM review_draw_strata st \
                     JOIN review_draws w ON w.id = st.draw_id WHERE w.sample_day = $1",
                    new.day
                )
                .fetch_all(&mut *tx)
                .await?;
                for row in &strata {
                    let id: i64 = row.try_get("draw_id").map_err(corrupt)?;
                    let stratum: String = row.try_get("stratum").map_err(corrupt)?;
                    let frame: i32 = row.try_get("frame_size").map_err(corrupt)?;
                    let drawn: i32 = row.try_get("drawn").map_err(corrupt)?;
                    if let Some(w) = draws.iter_mut().find(|w| w.id == id) {
                        w.strata.insert(
                            Stratum::parse("stratum", &stratum).map_err(corrupt)?,
                            (usize::try_from(frame).unwrap_or(0), usize::try_from(drawn).unwrap_or(0)),
                        );
                    }
                }
                let sampled: Vec<Sampled> = fetch_all!(
                    &mut *tx,
                    |row| {
                        let source: String = row.try_get("source").map_err(corrupt)?;
                        let stratum: String = row.try_get("stratum").map_err(corrupt)?;
                        Ok(Sampled {
                            decision_id: row.try_get("decision_id").map_err(corrupt)?,
                            source: Source::parse("source", &source).map_err(corrupt)?,
                            created_at: row.try_get("created_at").map_err(corrupt)?,
                            stratum: Stratum::parse("stratum", &stratum).map_err(corrupt)?,
                            draw_id: row.try_get("draw_id").map_err(corrupt)?,
                        })
                    },
                    "SELECT s.decision_id, d.source, d.created_at, s.stratum, s.draw_id \
                     FROM review_samples s JOIN decisions d ON d.id = s.decision_id \
                     WHERE s.sample_day = $1 AND s.draw_id IS NOT NULL AND s.stratum IS NOT NULL",
                    new.day
                )?;
                for (id, pi) in crate::domain::sample::inclusion_probabilities(&draws, &sampled) {
                    if pi > 0.0 {
                        execute!(
                            &mut *tx,
                            "UPDATE review_samples SET inclusion_probability = $1 WHERE decision_id = $2",
                            pi, &id
                        );
                    }
                }
                tx.commit().await?;
                Ok(recorded.values().sum())
            }

            async fn sample_items(
                &self, day: &str, sample_source: &str,
            ) -> Result<Vec<crate::domain::review::ReviewItem>, StoreError> {
                let sql = concat!(
                    "SELECT ",
                    review_item_columns!(),
                    " FROM review_samples s JOIN decisions d ON d.id = s.decision_id \
                     LEFT JOIN tickets t ON t.source = d.source AND t.ticket_id = d.ticket_id \
                       AND t.version = d.ticket_version \
                     WHERE s.sample_day = $1 AND s.sample_source = $2 ORDER BY s.position, d.id"
                );
                let rows = statement!(sql, day, sample_source).fetch_all(&self.pool).await?;
                let mut items = Vec::with_capacity(rows.len());
                for row in &rows {
                    items.push(self.item_from_row(row).await?);
                }
                Ok(items)
            }

            async fn review_item(
                &self,
                decision_id: &str,
            ) -> Result<Option<crate::domain::review::ReviewItem>, StoreError> {
                let sql = concat!(
                    "SELECT ",
                    review_item_columns!(),
                    " FROM decisions d LEFT JOIN review_samples s ON s.decision_id = d.id \
                     LEFT JOIN tickets t ON t.source = d.source AND t.ticket_id = d.ticket_id \
                       AND t.version = d.ticket_version \
                     WHERE d.id = $1"
                );
                let row = statement!(sql, decision_id).fetch_optional(&self.pool).await?;
                match row {
                    Some(row) => Ok(Some(self.item_from_row(&row).await?)),
                    None => Ok(None),
                }
            }

            async fn skip_sampled(&self, decision_id: &str) -> Result<(), StoreError> {
                let sql = "UPDATE review_samples SET skipped_at = $1 WHERE decision_id = $2 AND skipped_at IS NULL";
                execute!(&self.pool, sql, Utc::now(), decision_id);
                Ok(())
            }

            async fn insert_review(
                &self,
                r: &crate::domain::review::NewReview,
                scores: &[crate::domain::work::ScoreRow],
            ) -> Result<Option<crate::domain::review::Review>, StoreError> {
                let severity = r.verdict.corrected_severity();
                let mut tx = self.pool.begin().await?;
                let stored = fetch_optional!(
                    &mut *tx,
                    Self::review_from_row,
                    "INSERT INTO reviews (decision_id, reviewer, reviewed_at, verdict, \
                     corrected_severity, corrected_route, why, origin, external_key, topic, \
                     sentiment, shadow, pass) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                     ON CONFLICT (external_key) DO NOTHING \
                     RETURNING id, decision_id, reviewer, reviewed_at, verdict, corrected_severity, why, \
                     origin, topic, sentiment, shadow, pass",
                    &r.decision_id, &r.reviewer, Utc::now(), r.verdict.as_str(),
                    severity.map(Severity::as_str), severity.map(|s| s.route().as_str()), &r.why,
                    r.origin.as_str(), &r.external_key, &r.labels.topic,
                    r.labels.sentiment.map(crate::domain::Sentiment::as_str),
                    crate::taxonomy::shadow_to_json(&r.labels.shadow), r.pass.as_str()
                )?;
                // A redelivery: the transaction ends unused (rolled back), nothing written.
                let Some(stored) = stored else { return Ok(None) };
                for score in scores {
                    Self::write_score(&mut *tx, score).await?;
                }
                tx.commit().await?;
                Ok(Some(stored))
            }

            async fn reviews(&self, decision_id: &str) -> Result<Vec<crate::domain::review::Review>, StoreError> {
                let sql = concat!("SELECT ", review_columns!(), " FROM reviews r WHERE r.decision_id = $1 ORDER BY r.id");
                fetch_all!(&self.pool, Self::review_from_row, sql, decision_id)
            }

            async fn latest_reviews_since(
                &self,
                since: DateTime<Utc>,
            ) -> Result<Vec<crate::domain::review::Review>, StoreError> {
                let sql = concat!(
                    "SELECT ",
                    review_columns!(),
                    " FROM reviews r WHERE r.reviewed_at >= $1 AND r.id = \
                     (SELECT MAX(r2.id) FROM reviews r2 WHERE r2.decision_id = r.decision_id) \
                     ORDER BY r.id"
                );
                fetch_all!(&self.pool, Self::review_from_row, sql, since)
            }
        }
    };
}

for_both_backends!(impl_reviews);
