//! The weekly audit's reads: every decision of a window with its last verdicts, the deliveries
//! received and the webhooks refused.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::StoreError;
#[allow(clippy::wildcard_imports)]
use super::backend::*;
use crate::domain::{Severity, Source, Tier};

/// The weekly audit's reads.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Every decision logged in `[from, to)`, oldest first, with its place in the review
    /// sample, its last verdict of each pass and the one it counts with, its last override and
    /// the version of the delivery it came from.
    async fn audit_decisions(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<crate::domain::audit::AuditRow>, StoreError>;

    /// Every webhook delivery received in `[from, to)`, oldest first.
    async fn audit_deliveries(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<crate::domain::audit::DeliveryRow>, StoreError>;

    /// Every signed webhook the parse refused in `[from, to)`, oldest first.
    async fn audit_rejections(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<crate::domain::audit::RejectionRow>, StoreError>;
}

macro_rules! impl_audit {
    ($store:ident, $pool:ty, $row:ty, $backend:literal, $skip_locked:literal) => {
        #[async_trait]
        impl AuditLog for $store {
            async fn audit_decisions(
                &self, from: DateTime<Utc>, to: DateTime<Utc>,
            ) -> Result<Vec<crate::domain::audit::AuditRow>, StoreError> {
                // The last verdict of each pass (`rf` first, `rs` second, `ra` adjudication),
                // the one the decision counts with (`rc`: the adjudication, else the first,
                // else the second; its labels are the review's), and the last override.
                let rows = statement!(
                    "SELECT d.id, d.source, d.ticket_id, d.severity, d.confidence, d.prompt_version, \
                     d.model, d.fallback, d.fallback_reason, d.tier, d.request_id, d.input_tokens, d.output_tokens, \
                     d.cache_read_tokens, d.cache_write_tokens, d.cost_usd, d.model_latency_ms, \
                     d.model_retries, d.created_at, \
                     rf.verdict AS rf_verdict, rf.corrected_severity AS rf_severity, rf.reviewer AS rf_reviewer, \
                     rs.verdict AS rs_verdict, rs.corrected_severity AS rs_severity, rs.reviewer AS rs_reviewer, \
                     ra.verdict AS ra_verdict, ra.corrected_severity AS ra_severity, ra.reviewer AS ra_reviewer, \
                     rc.verdict AS rc_verdict, rc.corrected_severity AS rc_severity, \
                     ov.verdict AS ov_verdict, \
                     ov.corrected_severity AS ov_severity, dl.webhook_version, dl.missing_fields, \
                     d.model_severity, d.weighting_rule, d.enrichment_failed, \
                     d.topic, d.sentiment, d.shadow, d.caller, rc.topic AS rv_topic, \
                     rc.sentiment AS rv_sentiment, rc.shadow AS rv_shadow, \
                     s.sample_day AS s_day, s.sample_source AS s_source, s.stratum AS s_stratum, \
                     s.inclusion_probability AS s_pi, s.double_review AS s_double, \
                     CASE WHEN d.supersedes IS NULL THEN NULL \
                       WHEN EXISTS (SELECT 1 FROM actions a WHERE a.decision_id = d.id \
                         AND a.kind NOT IN ('plain.note', 'pylon.note')) THEN 'raised' \
                       WHEN EXISTS (SELECT 1 FROM actions a WHERE a.decision_id = d.id) THEN 'note_only' \
                       ELSE 'unchanged' END AS follow_up \
                     FROM decisions d \
                     LEFT JOIN review_samples s ON s.decision_id = d.id \
                     LEFT JOIN reviews rf ON rf.id = (SELECT MAX(r.id) FROM reviews r \
                       WHERE r.decision_id = d.id AND r.origin <> 'override' AND r.pass = 'first') \
                     LEFT JOIN reviews rs ON rs.id = (SELECT MAX(r.id) FROM reviews r \
                       WHERE r.decision_id = d.id AND r.origin <> 'override' AND r.pass = 'second') \
                     LEFT JOIN reviews ra ON ra.id = (SELECT MAX(r.id) FROM reviews r \
                       WHERE r.decision_id = d.id AND r.origin <> 'override' AND r.pass = 'adjudication') \
                     LEFT JOIN reviews rc ON rc.id = COALESCE(ra.id, rf.id, rs.id) \
                     LEFT JOIN reviews ov ON ov.id = (SELECT MAX(r.id) FROM reviews r \
                       WHERE r.decision_id = d.id AND r.origin = 'override') \
                     LEFT JOIN deliveries dl ON dl.source = d.source AND dl.ticket_id = d.ticket_id \
                       AND dl.version = d.ticket_version \
                     WHERE d.created_at >= $1 AND d.created_at < $2 ORDER BY d.created_at, d.id",
                    from, to
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let text = |col: &str| row.try_get::<String, _>(col).map_err(corrupt);
                        let verdict = |v: &str, s: &str| -> Result<Option<crate::domain::review::ReviewVerdict>, StoreError> {
                            let v: Option<String> = row.try_get(v).map_err(corrupt)?;
                            let s: Option<String> = row.try_get(s).map_err(corrupt)?;
                            v.map(|v| crate::domain::review::ReviewVerdict::parse(&v, s.as_deref()).map_err(corrupt))
                                .transpose()
                        };
                        let judged = |p: &str| -> Result<Option<crate::domain::review::Judged>, StoreError> {
                            let v = verdict(&format!("{p}_verdict"), &format!("{p}_severity"))?;
                            let who: Option<String> = row.try_get(format!("{p}_reviewer").as_str()).map_err(corrupt)?;
                            Ok(v.map(|verdict| crate::domain::review::Judged {
                                verdict,
                                reviewer: who.unwrap_or_default(),
                            }))
                        };
                        let missing: Option<String> = row.try_get("missing_fields").map_err(corrupt)?;
                        let sample = Self::sample_mark(row)?;
                        let counted = verdict("rc_verdict", "rc_severity")?;
                        let labels = crate::domain::review::LabelVerdict {
                            topic: row.try_get("rv_topic").map_err(corrupt)?,
                            sentiment: sentiment(row.try_get("rv_sentiment").map_err(corrupt)?)?,
                            shadow: shadow(row.try_get("rv_shadow").map_err(corrupt)?)?,
                        };
                        Ok(crate::domain::audit::AuditRow {
                            decision_id: text("id")?,
                            source: Source::parse("source", &text("source")?).map_err(corrupt)?,
                            ticket_id: text("ticket_id")?,
                            created_at: row.try_get("created_at").map_err(corrupt)?,
                            severity: Severity::parse("severity", &text("severity")?).map_err(corrupt)?,
                            confidence: row.try_get::<f32, _>("confidence").map_err(corrupt)?,
                            prompt_version: text("prompt_version")?,
                            model: text("model")?,
                            fallback: row.try_get("fallback").map_err(corrupt)?,
                            fallback_reason: row.try_get("fallback_reason").map_err(corrupt)?,
                            tier: Tier::parse("tier", &text("tier")?).map_err(corrupt)?,
                            usage: Self::usage_from_row(row)?,
                            review: if sample.is_some() { counted } else { None },
                            unsampled: if sample.is_some() { None } else { counted },
                            passes: crate::domain::review::Passes {
                                first: judged("rf")?,
                                second: judged("rs")?,
                                adjudication: judged("ra")?,
                            },
                            overridden: verdict("ov_verdict", "ov_severity")?,
                            webhook_version: row.try_get("webhook_version").map_err(corrupt)?,
                            missing_fields: crate::domain::audit::split_fields(missing.as_deref()),
                            model_severity: match row.try_get::<Option<String>, _>("model_severity").map_err(corrupt)? {
                                Some(s) => Severity::parse("model_severity", &s).map_err(corrupt)?,
                                None => Severity::parse("severity", &text("severity")?).map_err(corrupt)?,
                            },
                            weighting_rule: row.try_get("weighting_rule").map_err(corrupt)?,
                            enrichment_failed: row.try_get("enrichment_failed").map_err(corrupt)?,
                            topic: row.try_get("topic").map_err(corrupt)?,
                            sentiment: sentiment(row.try_get("sentiment").map_err(corrupt)?)?,
                            shadow: shadow(row.try_get("shadow").map_err(corrupt)?)?,
                            review_labels: labels,
                            caller: row.try_get("caller").map_err(corrupt)?,
                            follow_up: match row
                                .try_get::<Option<String>, _>("follow_up")
                                .map_err(corrupt)?
                                .as_deref()
                            {
                                None => None,
                                Some("raised") => Some(crate::domain::audit::FollowUpMark::Raised),
                                Some("note_only") => Some(crate::domain::audit::FollowUpMark::NoteOnly),
                                Some(_) => Some(crate::domain::audit::FollowUpMark::Unchanged),
                            },
                            sample,
                        })
                    })
                    .collect()
            }

            async fn audit_deliveries(
                &self, from: DateTime<Utc>, to: DateTime<Utc>,
            ) -> Result<Vec<crate::domain::audit::DeliveryRow>, StoreError> {
                let sql = "SELECT source, received_at, webhook_version, missing_fields, duplicates \
                     FROM deliveries WHERE received_at >= $1 AND received_at < $2 \
                     ORDER BY received_at, ticket_id";
                fetch_all!(
                    &self.pool,
                    |row| {
                        let source: String = row.try_get("source").map_err(corrupt)?;
                        let missing: Option<String> = row.try_get("missing_fields").map_err(corrupt)?;
                        let duplicates: i32 = row.try_get("duplicates").map_err(corrupt)?;
                        Ok(crate::domain::audit::DeliveryRow {
                            source: Source::parse("source", &source).map_err(corrupt)?,
                            received_at: row.try_get("received_at").map_err(corrupt)?,
                            webhook_version: row.try_get("webhook_version").map_err(corrupt)?,
                            missing_fields: crate::domain::audit::split_fields(missing.as_deref()),
                            duplicates: i64::from(duplicates),
                        })
                    },
                    sql, from, to
                )
            }

            async fn audit_rejections(
                &self, from: DateTime<Utc>, to: DateTime<Utc>,
            ) -> Result<Vec<crate::domain::audit::RejectionRow>, StoreError> {
                let sql = "SELECT source, received_at, webhook_version, reason FROM webhook_rejections \
                     WHERE received_at >= $1 AND received_at < $2 ORDER BY received_at, id";
                fetch_all!(
                    &self.pool,
                    |row| {
                        let source: String = row.try_get("source").map_err(corrupt)?;
                        Ok(crate::domain::audit::RejectionRow {
                            source: Source::parse("source", &source).map_err(corrupt)?,
                            received_at: row.try_get("received_at").map_err(corrupt)?,
                            webhook_version: row.try_get("webhook_version").map_err(corrupt)?,
                            reason: row.try_get("reason").map_err(corrupt)?,
                        })
                    },
                    sql, from, to
                )
            }
        }
    };
}

for_both_backends!(impl_audit);
