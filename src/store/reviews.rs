//! The daily review's reads and writes: decisions by id (and the latest of a ticket, for an
//! agent's override), the day's samples, and the verdicts with their history.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::StoreError;
#[allow(clippy::wildcard_imports)]
use super::backend::*;
use crate::domain::{Decision, Severity, Source, Tier};

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

    /// Ids of the decisions logged in `[from, to)` (from `source`, if given) that were never
    /// offered for review, in id order (so a seeded draw over them is reproducible).
    async fn review_candidates(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        source: Option<Source>,
    ) -> Result<Vec<String>, StoreError>;

    /// Records `ids` as offered in the sample of `day` / `sample_source` (positions from
    /// `first_position` on). A decision already offered anywhere is left as it was.
    async fn add_to_sample(
        &self,
        day: &str,
        sample_source: &str,
        seed: u64,
        first_position: i32,
        ids: &[String],
    ) -> Result<(), StoreError>;

    /// The sample of `day` / `sample_source`, in order, with tickets and latest verdicts.
    async fn sample_items(
        &self,
        day: &str,
        sample_source: &str,
    ) -> Result<Vec<crate::domain::review::ReviewItem>, StoreError>;

    /// One decision with its ticket and latest sampled-review verdict.
    async fn review_item(
        &self,
        decision_id: &str,
    ) -> Result<Option<crate::domain::review::ReviewItem>, StoreError>;

    /// Marks a sampled decision skipped: it is not offered again.
    async fn skip_sampled(&self, decision_id: &str) -> Result<(), StoreError>;

    /// Stores a verdict; `None` when its `external_key` was stored before (a redelivery).
    async fn insert_review(
        &self,
        review: &crate::domain::review::NewReview,
    ) -> Result<Option<crate::domain::review::Review>, StoreError>;

    /// Every verdict on a decision, oldest first (the last one counts).
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

    /// Last verdicts of the decisions logged in `[from, to)`: sampled reviews and overrides
    /// counted apart.
    async fn review_tally(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<crate::domain::review::Tally, StoreError>;
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
                    labels: crate::domain::review::LabelVerdict {
                        topic: row.try_get("topic").map_err(corrupt)?,
                        sentiment: sentiment(row.try_get("sentiment").map_err(corrupt)?)?,
                        shadow: shadow(row.try_get("shadow").map_err(corrupt)?)?,
                    },
                })
            }

            /// A decision row joined with its ticket (`t_*`) and sample (`s_skipped_at`), and
            /// its last sampled-review verdict.
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
                let sql = concat!(
                    "SELECT ",
                    review_columns!(),
                    " FROM reviews r WHERE r.decision_id = $1 AND r.origin <> 'override' \
                     ORDER BY r.id DESC LIMIT 1"
                );
                let latest = fetch_optional!(&self.pool, Self::review_from_row, sql, &decision.id)?;
                Ok(crate::domain::review::ReviewItem {
                    latest,
                    decision,
                    ticket,
                    skipped: skipped.is_some(),
                })
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
            ) -> Result<Vec<String>, StoreError> {
                let ids: Vec<String> = sqlx::query_scalar(
                    "SELECT d.id FROM decisions d WHERE d.created_at >= $1 AND d.created_at < $2 \
                     AND ($3 = '' OR d.source = $3) \
                     AND NOT EXISTS (SELECT 1 FROM review_samples s WHERE s.decision_id = d.id) \
                     ORDER BY d.id",
                )
                .bind(from)
                .bind(to)
                .bind(source.map_or("", Source::as_str))
                .fetch_all(&self.pool)
                .await?;
                Ok(ids)
            }

            async fn add_to_sample(
                &self, day: &str, sample_source: &str, seed: u64, first_position: i32, ids: &[String],
            ) -> Result<(), StoreError> {
                let now = Utc::now();
                // The seed's bits, as the column is a signed 64-bit integer.
                let seed = i64::from_ne_bytes(seed.to_ne_bytes());
                let mut tx = self.pool.begin().await?;
                for (i, id) in ids.iter().enumerate() {
                    let position = first_position.saturating_add(i32::try_from(i).unwrap_or(i32::MAX));
                    execute!(
                        &mut *tx,
                        "INSERT INTO review_samples (decision_id, sample_day, sample_source, position, \
                         seed, offered_at) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (decision_id) DO NOTHING",
                        id, day, sample_source, position, seed, now
                    );
                }
                tx.commit().await?;
                Ok(())
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
            ) -> Result<Option<crate::domain::review::Review>, StoreError> {
                let severity = r.verdict.corrected_severity();
                fetch_optional!(
                    &self.pool,
                    Self::review_from_row,
                    "INSERT INTO reviews (decision_id, reviewer, reviewed_at, verdict, \
                     corrected_severity, corrected_route, why, origin, external_key, topic, \
                     sentiment, shadow) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (external_key) DO NOTHING \
                     RETURNING id, decision_id, reviewer, reviewed_at, verdict, corrected_severity, why, \
                     origin, topic, sentiment, shadow",
                    &r.decision_id, &r.reviewer, Utc::now(), r.verdict.as_str(),
                    severity.map(Severity::as_str), severity.map(|s| s.route().as_str()), &r.why,
                    r.origin.as_str(), &r.external_key, &r.labels.topic,
                    r.labels.sentiment.map(crate::domain::Sentiment::as_str),
                    crate::taxonomy::shadow_to_json(&r.labels.shadow)
                )
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

            async fn review_tally(
                &self, from: DateTime<Utc>, to: DateTime<Utc>,
            ) -> Result<crate::domain::review::Tally, StoreError> {
                // The last verdict per decision within each group: a sampled review and an
                // agent's override of the same decision both count, each in its own column.
                let rows = statement!(
                    "SELECT CASE WHEN r.origin = 'override' THEN 'override' ELSE 'review' END AS grp, \
                     r.verdict AS verdict, COUNT(*) AS n FROM reviews r \
                     JOIN decisions d ON d.id = r.decision_id \
                     WHERE d.created_at >= $1 AND d.created_at < $2 AND r.id = ( \
                       SELECT MAX(r2.id) FROM reviews r2 WHERE r2.decision_id = r.decision_id \
                       AND (CASE WHEN r2.origin = 'override' THEN 1 ELSE 0 END) = \
                           (CASE WHEN r.origin = 'override' THEN 1 ELSE 0 END)) \
                     GROUP BY 1, 2",
                    from, to
                )
                .fetch_all(&self.pool)
                .await?;
                let mut t = crate::domain::review::Tally::default();
                for row in &rows {
                    let grp: String = row.try_get("grp").map_err(corrupt)?;
                    let verdict: String = row.try_get("verdict").map_err(corrupt)?;
                    let n: i64 = row.try_get("n").map_err(corrupt)?;
                    let n = u64::try_from(n).unwrap_or(0);
                    match (grp.as_str(), verdict.as_str()) {
                        ("override", _) => t.overrides += n,
                        (_, "correct") => t.reviewed_correct += n,
                        _ => t.reviewed_corrected += n,
                    }
                }
                Ok(t)
            }
        }
    };
}

for_both_backends!(impl_reviews);
