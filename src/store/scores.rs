//! The score outbox: reviews on their way to Langfuse, with back-off per score.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::StoreError;
#[allow(clippy::wildcard_imports)]
use super::backend::*;
use crate::domain::work::{ScoreRow, ScoreValue};

/// The score outbox.
#[async_trait]
pub trait ScoreQueue: Send + Sync {
    /// Writes a score to the outbox as pending; a score with the same id is replaced (a
    /// correction of a review wins) and sent again.
    async fn upsert_score(&self, score: &ScoreRow) -> Result<(), StoreError>;

    /// Pending scores whose next attempt is due, oldest first.
    async fn due_scores(&self, now: DateTime<Utc>, limit: i64)
    -> Result<Vec<ScoreRow>, StoreError>;

    /// Marks a score sent.
    async fn score_sent(&self, id: &str) -> Result<(), StoreError>;

    /// Records a failed send and when to try again.
    async fn score_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

macro_rules! impl_scores {
    ($store:ident, $pool:ty, $row:ty, $backend:literal, $skip_locked:literal) => {
        impl $store {
            /// Writes `sc` as pending on `ex` (the pool, or a transaction a verdict is stored
            /// in): a score with the same id is replaced and sent again.
            pub(super) async fn write_score<'e, E>(ex: E, sc: &ScoreRow) -> Result<(), StoreError>
            where
                E: sqlx::Executor<'e, Database = <$row as sqlx::Row>::Database>,
            {
                let now = Utc::now();
                // `value` for a BOOLEAN score, `string_value` for a CATEGORICAL one.
                let (value, string_value) = match &sc.value {
                    ScoreValue::Boolean(b) => (Some(i32::from(*b)), None),
                    ScoreValue::Categorical(v) => (None, Some(v.as_str())),
                };
                execute!(
                    ex,
                    "INSERT INTO scores (id, decision_id, trace_id, observation_id, session_id, name, \
                     value, comment, metadata, status, attempts, next_attempt_at, created_at, \
                     data_type, string_value) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', 0, $10, $10, $11, $12) \
                     ON CONFLICT (id) DO UPDATE SET value = excluded.value, \
                     data_type = excluded.data_type, string_value = excluded.string_value, \
                     comment = excluded.comment, metadata = excluded.metadata, status = 'pending', \
                     attempts = 0, next_attempt_at = excluded.next_attempt_at, last_error = NULL, \
                     sent_at = NULL",
                    &sc.id, &sc.decision_id, &sc.trace_id, &sc.observation_id, &sc.session_id,
                    &sc.name, value, &sc.comment, &sc.metadata, now, sc.value.data_type(), string_value
                );
                Ok(())
            }
        }

        #[async_trait]
        impl ScoreQueue for $store {
            async fn upsert_score(&self, sc: &ScoreRow) -> Result<(), StoreError> {
                Self::write_score(&self.pool, sc).await
            }

            async fn due_scores(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<ScoreRow>, StoreError> {
                let sql = "SELECT id, decision_id, trace_id, observation_id, session_id, name, value, \
                     comment, metadata, attempts, data_type, string_value FROM scores \
                     WHERE status = 'pending' AND next_attempt_at <= $1 \
                     ORDER BY next_attempt_at, id LIMIT $2";
                fetch_all!(
                    &self.pool,
                    |r| {
                        let data_type: String = r.try_get("data_type").map_err(corrupt)?;
                        let value = match data_type.as_str() {
                            "BOOLEAN" => ScoreValue::Boolean(
                                r.try_get::<Option<i32>, _>("value").map_err(corrupt)? == Some(1),
                            ),
                            "CATEGORICAL" => ScoreValue::Categorical(
                                r.try_get::<Option<String>, _>("string_value")
                                    .map_err(corrupt)?
                                    .unwrap_or_default(),
                            ),
                            other => {
                                return Err(StoreError::Corrupt(format!(
                                    "scores.data_type {other:?}"
                                )));
                            }
                        };
                        Ok(from_columns!(r, ScoreRow {
                            id, decision_id, trace_id, observation_id, session_id, name, comment,
                            metadata, attempts,
                        }; value: value))
                    },
                    sql, now, limit
                )
            }

            async fn score_sent(&self, id: &str) -> Result<(), StoreError> {
                let sql = "UPDATE scores SET status = 'sent', sent_at = $1, last_error = NULL WHERE id = $2";
                execute!(&self.pool, sql, Utc::now(), id);
                Ok(())
            }

            async fn score_failed(&self, id: &str, error: &str, next_attempt_at: DateTime<Utc>) -> Result<(), StoreError> {
                let sql = "UPDATE scores SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 \
                     WHERE id = $3";
                execute!(&self.pool, sql, error, next_attempt_at, id);
                Ok(())
            }
        }
    };
}

for_both_backends!(impl_scores);
