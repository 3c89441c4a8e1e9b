//! The two [`Store`] implementations, written once by `impl_store!` because PostgreSQL and
//! SQLite accept the same statements here. Timestamps are `TIMESTAMPTZ` on PostgreSQL and
//! RFC 3339 UTC text on SQLite (which sorts lexically, so range queries work on both).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{
    Action, Claim, NewAction, NewDelivery, PendingDelivery, Recorded, ScoreRow, Store, StoreError,
};
use crate::domain::{
    Decision, IdempotencyKey, RawTicket, Route, Severity, Source, Ticket, Tier, Usage,
};

/// The routing log on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: sqlx::PgPool,
}

/// The routing log on SQLite (the embedded default).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
}

macro_rules! decision_columns {
    () => {
        "id, source, ticket_id, ticket_version, severity, route, confidence, \
     reasoning, prompt_version, model, fallback, fallback_reason, notes, tier, request_id, \
     input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, trace_id, \
     observation_id, created_at"
    };
}

macro_rules! action_columns {
    () => {
        "id, decision_id, source, ticket_id, kind, payload, status, attempts, last_error"
    };
}

fn attempts(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn json(col: &str, text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

fn lease_end(lease: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60))
}

macro_rules! impl_store {
    ($store:ident, $pool:ty, $row:ty, $backend:literal, $skip_locked:literal) => {
        impl $store {
            /// A store over an already migrated pool.
            pub fn new(pool: $pool) -> Self {
                Self { pool }
            }

            /// The pool, for tests and the action worker.
            pub fn pool(&self) -> &$pool {
                &self.pool
            }

            fn decision_from_row(row: &$row) -> Result<Decision, StoreError> {
                let corrupt = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
                let text = |col: &str| row.try_get::<String, _>(col).map_err(corrupt);
                let parse = |e: crate::domain::DomainError| StoreError::Corrupt(e.to_string());
                Ok(Decision {
                    id: text("id")?,
                    source: Source::parse("source", &text("source")?).map_err(parse)?,
                    ticket_id: text("ticket_id")?,
                    ticket_version: text("ticket_version")?,
                    severity: Severity::parse("severity", &text("severity")?).map_err(parse)?,
                    route: Route::parse("route", &text("route")?).map_err(parse)?,
                    confidence: row.try_get::<f32, _>("confidence").map_err(corrupt)?,
                    reasoning: text("reasoning")?,
                    prompt_version: text("prompt_version")?,
                    model: text("model")?,
                    fallback: row.try_get::<bool, _>("fallback").map_err(corrupt)?,
                    fallback_reason: row.try_get("fallback_reason").map_err(corrupt)?,
                    notes: row.try_get("notes").map_err(corrupt)?,
                    tier: Tier::parse("tier", &text("tier")?).map_err(parse)?,
                    usage: Usage {
                        request_id: row.try_get("request_id").map_err(corrupt)?,
                        input_tokens: row.try_get("input_tokens").map_err(corrupt)?,
                        output_tokens: row.try_get("output_tokens").map_err(corrupt)?,
                        cache_read_tokens: row.try_get("cache_read_tokens").map_err(corrupt)?,
                        cache_write_tokens: row.try_get("cache_write_tokens").map_err(corrupt)?,
                        cost_usd: row.try_get("cost_usd").map_err(corrupt)?,
                    },
                    trace_id: row.try_get("trace_id").map_err(corrupt)?,
                    observation_id: row.try_get("observation_id").map_err(corrupt)?,
                    created_at: row.try_get("created_at").map_err(corrupt)?,
                })
            }

            fn action_from_row(row: &$row) -> Result<Action, StoreError> {
                let corrupt = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
                let text = |col: &str| row.try_get::<String, _>(col).map_err(corrupt);
                Ok(Action {
                    id: row.try_get("id").map_err(corrupt)?,
                    decision_id: text("decision_id")?,
                    source: Source::parse("source", &text("source")?)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    ticket_id: text("ticket_id")?,
                    kind: text("kind")?,
                    payload: json("payload", &text("payload")?)?,
                    status: text("status")?,
                    attempts: attempts(row.try_get("attempts").map_err(corrupt)?),
                    last_error: row.try_get("last_error").map_err(corrupt)?,
                })
            }

            async fn find<'e, E>(executor: E, key: &IdempotencyKey) -> Result<Option<Decision>, StoreError>
            where
                E: sqlx::Executor<'e, Database = <$pool as PoolDb>::Db>,
            {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    decision_columns!(),
                    " FROM decisions WHERE source = $1 AND ticket_id = $2 AND ticket_version = $3"
                ))
                    .bind(key.source.as_str())
                    .bind(&key.ticket_id)
                    .bind(&key.version)
                    .fetch_optional(executor)
                    .await?;
                row.as_ref().map(Self::decision_from_row).transpose()
            }
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn claim(&self, ticket: &Ticket, lease: Duration) -> Result<Claim, StoreError> {
                let key = ticket.key();
                let now = Utc::now();
                let until = lease_end(lease);
                let inserted = sqlx::query(
                    "INSERT INTO tickets (source, ticket_id, version, subject, body, tier, arr_usd, \
                     customer_id, received_at, claimed_until) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (source, ticket_id, version) DO NOTHING",
                )
                .bind(key.source.as_str())
                .bind(&key.ticket_id)
                .bind(&key.version)
                .bind(ticket.subject())
                .bind(ticket.body())
                .bind(ticket.tier().as_str())
                .bind(ticket.arr_usd())
                .bind(ticket.customer_id())
                .bind(now)
                .bind(until)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if inserted == 1 {
                    return Ok(Claim::New);
                }
                if let Some(d) = Self::find(&self.pool, key).await? {
                    return Ok(Claim::Decided(Box::new(d)));
                }
                // Stored but undecided: take the claim over only if its holder's lease ran out.
                let taken = sqlx::query(
                    "UPDATE tickets SET claimed_until = $1 \
                     WHERE source = $2 AND ticket_id = $3 AND version = $4 AND claimed_until < $5",
                )
                .bind(until)
                .bind(key.source.as_str())
                .bind(&key.ticket_id)
                .bind(&key.version)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(if taken == 1 { Claim::New } else { Claim::InFlight })
            }

            async fn decision(&self, key: &IdempotencyKey) -> Result<Option<Decision>, StoreError> {
                Self::find(&self.pool, key).await
            }

            async fn record(&self, d: &Decision, actions: &[NewAction]) -> Result<Recorded, StoreError> {
                let mut tx = self.pool.begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO decisions (id, source, ticket_id, ticket_version, severity, route, \
                     confidence, reasoning, prompt_version, model, fallback, fallback_reason, notes, \
                     tier, request_id, input_tokens, output_tokens, cache_read_tokens, \
                     cache_write_tokens, cost_usd, trace_id, observation_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                     $17, $18, $19, $20, $21, $22, $23) \
                     ON CONFLICT (source, ticket_id, ticket_version) DO NOTHING",
                )
                .bind(&d.id)
                .bind(d.source.as_str())
                .bind(&d.ticket_id)
                .bind(&d.ticket_version)
                .bind(d.severity.as_str())
                .bind(d.route.as_str())
                .bind(d.confidence)
                .bind(&d.reasoning)
                .bind(&d.prompt_version)
                .bind(&d.model)
                .bind(d.fallback)
                .bind(&d.fallback_reason)
                .bind(&d.notes)
                .bind(d.tier.as_str())
                .bind(&d.usage.request_id)
                .bind(d.usage.input_tokens)
                .bind(d.usage.output_tokens)
                .bind(d.usage.cache_read_tokens)
                .bind(d.usage.cache_write_tokens)
                .bind(d.usage.cost_usd)
                .bind(&d.trace_id)
                .bind(&d.observation_id)
                .bind(d.created_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    let existing = Self::find(&mut *tx, &d.key()).await?.ok_or_else(|| {
                        StoreError::Corrupt(format!("decision for {} conflicted but is not there", d.key()))
                    })?;
                    tx.rollback().await?;
                    return Ok(Recorded::Existing(Box::new(existing)));
                }
                for a in actions {
                    sqlx::query(
                        "INSERT INTO actions (decision_id, source, ticket_id, kind, payload, status, \
                         attempts, next_attempt_at, created_at) \
                         VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)",
                    )
                    .bind(&d.id)
                    .bind(d.source.as_str())
                    .bind(&d.ticket_id)
                    .bind(&a.kind)
                    .bind(a.payload.to_string())
                    .bind(d.created_at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(Recorded::New)
            }

            async fn recent_tickets(
                &self,
                source: Source,
                customer_id: &str,
                exclude_ticket_id: &str,
                since: DateTime<Utc>,
            ) -> Result<u32, StoreError> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(DISTINCT ticket_id) FROM tickets \
                     WHERE source = $1 AND customer_id = $2 AND ticket_id <> $3 AND received_at >= $4",
                )
                .bind(source.as_str())
                .bind(customer_id)
                .bind(exclude_ticket_id)
                .bind(since)
                .fetch_one(&self.pool)
                .await?;
                Ok(u32::try_from(n).unwrap_or(u32::MAX))
            }

            async fn accept_delivery(&self, d: &NewDelivery) -> Result<bool, StoreError> {
                let now = Utc::now();
                let inserted = sqlx::query(
                    "INSERT INTO deliveries (source, ticket_id, version, event_type, payload, status, \
                     attempts, next_attempt_at, received_at) \
                     VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6) \
                     ON CONFLICT (source, ticket_id, version) DO NOTHING",
                )
                .bind(d.key.source.as_str())
                .bind(&d.key.ticket_id)
                .bind(&d.key.version)
                .bind(&d.event_type)
                .bind(d.payload.to_string())
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(inserted == 1)
            }

            async fn lease_deliveries(
                &self,
                lease: Duration,
                limit: u32,
            ) -> Result<Vec<PendingDelivery>, StoreError> {
                let now = Utc::now();
                // The outer WHERE repeats the due/unleased test so that a row another worker
                // leased between the subquery and the update is not taken twice.
                // The pick is a MATERIALIZED CTE so it runs once: as a plain subquery PostgreSQL
                // may re-run it per row and, skipping the rows this very statement updated,
                // lease more than `limit`.
                let rows = sqlx::query(concat!(
                    "WITH picked AS MATERIALIZED ( \
                       SELECT source, ticket_id, version FROM deliveries \
                       WHERE status = 'pending' AND next_attempt_at <= $2 \
                         AND (locked_until IS NULL OR locked_until < $2) \
                       ORDER BY next_attempt_at LIMIT $3 ",
                    $skip_locked,
                    ") UPDATE deliveries SET locked_until = $1, attempts = attempts + 1 \
                     WHERE (source, ticket_id, version) IN (SELECT source, ticket_id, version FROM picked) \
                       AND status = 'pending' AND (locked_until IS NULL OR locked_until < $2) \
                     RETURNING source, ticket_id, version, event_type, payload, attempts"
                ))
                .bind(lease_end(lease))
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let corrupt = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
                        let text = |col: &str| row.try_get::<String, _>(col).map_err(corrupt);
                        Ok(PendingDelivery {
                            key: IdempotencyKey {
                                source: Source::parse("source", &text("source")?)
                                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                                ticket_id: text("ticket_id")?,
                                version: text("version")?,
                            },
                            event_type: text("event_type")?,
                            payload: json("payload", &text("payload")?)?,
                            attempts: attempts(row.try_get("attempts").map_err(corrupt)?),
                        })
                    })
                    .collect()
            }

            async fn finish_delivery(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE deliveries SET status = 'done', done_at = $1, locked_until = NULL, \
                     last_error = NULL \
                     WHERE source = $2 AND ticket_id = $3 AND version = $4 AND status = 'pending'",
                )
                .bind(Utc::now())
                .bind(key.source.as_str())
                .bind(&key.ticket_id)
                .bind(&key.version)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn retry_delivery(
                &self,
                key: &IdempotencyKey,
                error: &str,
                next_attempt_at: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE deliveries SET locked_until = NULL, last_error = $1, next_attempt_at = $2 \
                     WHERE source = $3 AND ticket_id = $4 AND version = $5 AND status = 'pending'",
                )
                .bind(error)
                .bind(next_attempt_at)
                .bind(key.source.as_str())
                .bind(&key.ticket_id)
                .bind(&key.version)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn fail_delivery(&self, key: &IdempotencyKey, error: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE deliveries SET status = 'failed', locked_until = NULL, last_error = $1, \
                     done_at = $2 \
                     WHERE source = $3 AND ticket_id = $4 AND version = $5 AND status = 'pending'",
                )
                .bind(error)
                .bind(Utc::now())
                .bind(key.source.as_str())
                .bind(&key.ticket_id)
                .bind(&key.version)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn lease_actions(&self, lease: Duration, limit: u32) -> Result<Vec<Action>, StoreError> {
                let now = Utc::now();
                // A MATERIALIZED CTE for the same reason as in `lease_deliveries`.
                let rows = sqlx::query(concat!(
                    "WITH picked AS MATERIALIZED ( \
                       SELECT id FROM actions \
                       WHERE status = 'pending' AND next_attempt_at <= $2 \
                         AND (locked_until IS NULL OR locked_until < $2) \
                       ORDER BY next_attempt_at, id LIMIT $3 ",
                    $skip_locked,
                    ") UPDATE actions SET locked_until = $1, attempts = attempts + 1 \
                     WHERE id IN (SELECT id FROM picked) \
                       AND status = 'pending' AND (locked_until IS NULL OR locked_until < $2) \
                     RETURNING ",
                    action_columns!()
                ))
                .bind(lease_end(lease))
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                let mut actions = rows.iter().map(Self::action_from_row).collect::<Result<Vec<_>, _>>()?;
                actions.sort_by_key(|a| a.id);
                Ok(actions)
            }

            async fn complete_action(&self, id: i64) -> Result<bool, StoreError> {
                let n = sqlx::query(
                    "UPDATE actions SET status = 'done', done_at = $1, locked_until = NULL, \
                     last_error = NULL WHERE id = $2 AND status = 'pending'",
                )
                .bind(Utc::now())
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(n == 1)
            }

            async fn retry_action(
                &self,
                id: i64,
                error: &str,
                next_attempt_at: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE actions SET locked_until = NULL, last_error = $1, next_attempt_at = $2 \
                     WHERE id = $3 AND status = 'pending'",
                )
                .bind(error)
                .bind(next_attempt_at)
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn fail_action(&self, id: i64, error: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE actions SET status = 'failed', locked_until = NULL, last_error = $1, \
                     done_at = $2 WHERE id = $3 AND status = 'pending'",
                )
                .bind(error)
                .bind(Utc::now())
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn actions(&self, decision_id: &str) -> Result<Vec<Action>, StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    action_columns!(),
                    " FROM actions WHERE decision_id = $1 ORDER BY id"
                ))
                .bind(decision_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::action_from_row).collect()
            }

            async fn undecided_tickets(
                &self,
                source: Source,
                limit: u32,
            ) -> Result<Vec<Ticket>, StoreError> {
                let rows = sqlx::query(
                    "SELECT t.source, t.ticket_id, t.version, t.subject, t.body, t.tier, t.arr_usd, \
                     t.customer_id FROM tickets t \
                     WHERE t.source = $1 AND t.claimed_until < $2 AND NOT EXISTS ( \
                       SELECT 1 FROM decisions d WHERE d.source = t.source \
                       AND d.ticket_id = t.ticket_id AND d.ticket_version = t.version) \
                     ORDER BY t.received_at LIMIT $3",
                )
                .bind(source.as_str())
                .bind(Utc::now())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let corrupt = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
                        let text = |col: &str| row.try_get::<String, _>(col).map_err(corrupt);
                        Ticket::parse(
                            source,
                            RawTicket {
                                id: text("ticket_id")?,
                                version: text("version")?,
                                subject: text("subject")?,
                                body: text("body")?,
                                tier: text("tier")?,
                                arr_usd: row.try_get("arr_usd").map_err(corrupt)?,
                                customer_id: row
                                    .try_get::<Option<String>, _>("customer_id")
                                    .map_err(corrupt)?
                                    .unwrap_or_default(),
                            },
                            "",
                        )
                        .map_err(|e| StoreError::Corrupt(e.to_string()))
                    })
                    .collect()
            }

            async fn upsert_score(&self, sc: &ScoreRow) -> Result<(), StoreError> {
                let now = Utc::now();
                sqlx::query(
                    "INSERT INTO scores (id, decision_id, trace_id, observation_id, session_id, name, \
                     value, comment, metadata, status, attempts, next_attempt_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', 0, $10, $10) \
                     ON CONFLICT (id) DO UPDATE SET value = excluded.value, \
                     comment = excluded.comment, metadata = excluded.metadata, status = 'pending', \
                     attempts = 0, next_attempt_at = excluded.next_attempt_at, last_error = NULL, \
                     sent_at = NULL",
                )
                .bind(&sc.id)
                .bind(&sc.decision_id)
                .bind(&sc.trace_id)
                .bind(&sc.observation_id)
                .bind(&sc.session_id)
                .bind(&sc.name)
                .bind(sc.value)
                .bind(&sc.comment)
                .bind(&sc.metadata)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn due_scores(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<ScoreRow>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, decision_id, trace_id, observation_id, session_id, name, value, \
                     comment, metadata, attempts FROM scores \
                     WHERE status = 'pending' AND next_attempt_at <= $1 \
                     ORDER BY next_attempt_at, id LIMIT $2",
                )
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let corrupt = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
                rows.iter()
                    .map(|r| {
                        Ok(ScoreRow {
                            id: r.try_get("id").map_err(corrupt)?,
                            decision_id: r.try_get("decision_id").map_err(corrupt)?,
                            trace_id: r.try_get("trace_id").map_err(corrupt)?,
                            observation_id: r.try_get("observation_id").map_err(corrupt)?,
                            session_id: r.try_get("session_id").map_err(corrupt)?,
                            name: r.try_get("name").map_err(corrupt)?,
                            value: r.try_get("value").map_err(corrupt)?,
                            comment: r.try_get("comment").map_err(corrupt)?,
                            metadata: r.try_get("metadata").map_err(corrupt)?,
                            attempts: r.try_get("attempts").map_err(corrupt)?,
                        })
                    })
                    .collect()
            }

            async fn score_sent(&self, id: &str) -> Result<(), StoreError> {
                sqlx::query("UPDATE scores SET status = 'sent', sent_at = $1, last_error = NULL WHERE id = $2")
                    .bind(Utc::now())
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn score_failed(&self, id: &str, error: &str, next_attempt_at: DateTime<Utc>) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE scores SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 \
                     WHERE id = $3",
                )
                .bind(error)
                .bind(next_attempt_at)
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn action_backlog(&self) -> Result<(i64, i64), StoreError> {
                let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM actions WHERE status = 'pending'")
                    .fetch_one(&self.pool)
                    .await?;
                let failed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM actions WHERE status = 'failed'")
                    .fetch_one(&self.pool)
                    .await?;
                Ok((pending, failed))
            }

            async fn close(&self) {
                self.pool.close().await;
            }

            async fn release_claim(&self, key: &IdempotencyKey) -> Result<bool, StoreError> {
                let now = Utc::now();
                // Back-dated, so `claim` (`claimed_until < now`) takes it over at once.
                let released = sqlx::query(
                    "UPDATE tickets SET claimed_until = $1 \
                     WHERE source = $2 AND ticket_id = $3 AND version = $4 AND claimed_until >= $5 \
                     AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.source = tickets.source \
                       AND d.ticket_id = tickets.ticket_id AND d.ticket_version = tickets.version)",
                )
                .bind(now - chrono::Duration::seconds(1))
                .bind(key.source.as_str())
                .bind(&key.ticket_id)
                .bind(&key.version)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(released == 1)
            }
        }
    };
}

/// Maps a pool type to its database, so `impl_store!` can name the executor bound.
pub(super) trait PoolDb {
    /// The sqlx database.
    type Db: sqlx::Database;
}
impl PoolDb for sqlx::PgPool {
    type Db = sqlx::Postgres;
}
impl PoolDb for sqlx::SqlitePool {
    type Db = sqlx::Sqlite;
}

impl_store!(
    PgStore,
    sqlx::PgPool,
    sqlx::postgres::PgRow,
    "postgres",
    "FOR UPDATE SKIP LOCKED"
);
// SQLite has no row locks: writers are serialised, so the UPDATE alone is atomic.
impl_store!(
    SqliteStore,
    sqlx::SqlitePool,
    sqlx::sqlite::SqliteRow,
    "sqlite",
    ""
);
