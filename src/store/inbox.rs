//! The inbox: webhook deliveries made durable under their idempotency key, leased to one worker
//! at a time and finished, retried or failed; and the signed webhooks the parse refused, counted
//! for the weekly audit.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::StoreError;
#[allow(clippy::wildcard_imports)]
use super::backend::*;
use crate::domain::{
    IdempotencyKey, Source,
    work::{NewDelivery, PendingDelivery},
};

/// The inbox of webhook deliveries.
#[async_trait]
pub trait Inbox: Send + Sync {
    /// Makes a webhook delivery durable; `true` when it is new, `false` for a repeat of its key
    /// (which does nothing else but count the repeat on the stored delivery).
    async fn accept_delivery(&self, delivery: &NewDelivery) -> Result<bool, StoreError>;

    /// Leases up to `limit` pending deliveries that are due and not leased by a live worker, for
    /// `lease`, counting an attempt on each. Atomic across workers and replicas.
    async fn lease_deliveries(
        &self,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<PendingDelivery>, StoreError>;

    /// Marks a delivery processed (its ticket is decided, or deliberately skipped).
    async fn finish_delivery(&self, key: &IdempotencyKey) -> Result<(), StoreError>;

    /// Releases a delivery for another attempt at `next_attempt_at`, recording why this one failed.
    async fn retry_delivery(
        &self,
        key: &IdempotencyKey,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Gives a delivery up for good (the tool says the ticket does not exist or is invalid).
    async fn fail_delivery(&self, key: &IdempotencyKey, error: &str) -> Result<(), StoreError>;

    /// Like [`Inbox::retry_delivery`] for an attempt that panicked or failed unexpectedly:
    /// also counts it in `internal_errors`, which bounds such attempts.
    async fn delivery_crashed(
        &self,
        key: &IdempotencyKey,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Extends, to `lease` from now, the leases this holder still has on `keys` (the deliveries
    /// it is still deciding); returns how many it still held.
    async fn extend_deliveries(
        &self,
        keys: &[IdempotencyKey],
        lease: Duration,
    ) -> Result<u64, StoreError>;

    /// Counts a signed webhook the parse refused (never stored as a delivery), with its
    /// payload version when it could be read.
    async fn record_rejection(
        &self,
        source: Source,
        webhook_version: Option<&str>,
        reason: &str,
    ) -> Result<(), StoreError>;
}

/// Most deliveries stored in one statement.
const ACCEPT_BATCH: usize = 256;

macro_rules! impl_inbox {
    ($store:ident, $pool:ty, $row:ty, $backend:literal, $skip_locked:literal) => {
        impl $store {
            /// Releases the lease of a pending delivery and applies `set`, which binds `$1` (an
            /// error text, or NULL) and `$2` (a time).
            async fn update_delivery(
                &self,
                key: &IdempotencyKey,
                set: &'static str,
                error: Option<&str>,
                at: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                // Only the current holder's outcome counts (see the outbox's `update_action`).
                let sql = sqlx::AssertSqlSafe(format!(
                    "UPDATE deliveries SET locked_until = NULL, {set} \
                     WHERE source = $3 AND ticket_id = $4 AND version = $5 AND status = 'pending' \
                       AND locked_by = $6"
                ));
                let mut conn = self.acquire(Queue::Inbox).await?;
                execute!(&mut *conn, sql, error, at, key.source.as_str(), &key.ticket_id, &key.version, &self.holder);
                Ok(())
            }
        }

        impl $store {
            /// Stores one delivery (a repeat of its key counted): `true` when it is new.
            async fn accept_one(&self, d: &NewDelivery) -> Result<bool, StoreError> {
                let mut conn = self.acquire(Queue::Inbox).await?;
                let now = Utc::now();
                // A repeat of the key changes nothing but its count of repeats (which the audit
                // reports): `duplicates` comes back 0 only from the insert.
                let duplicates: i32 = sqlx::query_scalar(
                    "INSERT INTO deliveries (source, ticket_id, version, event_type, payload, status, \
                     attempts, next_attempt_at, received_at, webhook_version, missing_fields, \
                     trace_context) \
                     VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $7, $8, $9) \
                     ON CONFLICT (source, ticket_id, version) \
                     DO UPDATE SET duplicates = deliveries.duplicates + 1 RETURNING duplicates",
                )
                .bind(d.key.source.as_str())
                .bind(&d.key.ticket_id)
                .bind(&d.key.version)
                .bind(&d.event_type)
                .bind(d.payload.to_string())
                .bind(now)
                .bind(&d.webhook_version)
                .bind((!d.missing_fields.is_empty()).then(|| d.missing_fields.join(",")))
                .bind(&d.trace_context)
                .fetch_one(&mut *conn)
                .await?;
                Ok(duplicates == 0)
            }


            /// Stores the queued deliveries until none is left, each batch in one statement.
            async fn write_accepts(&self) {
                self.accepts
                    .drain(ACCEPT_BATCH, |writes| async move { self.accept_many(&writes).await })
                    .await;
            }

            /// Stores `writes`, each result in order: the first delivery of each key in one
            /// statement, a repeat of a key within the batch after it (a duplicate, counted).
            /// A batch the database refuses as a whole is stored one by one.
            async fn accept_many(&self, writes: &[NewDelivery]) -> Vec<Result<bool, StoreError>> {
                let mut results: Vec<Option<Result<bool, StoreError>>> = writes.iter().map(|_| None).collect();
                let mut seen = std::collections::HashSet::new();
                let firsts: Vec<usize> = (0..writes.len()).filter(|&i| seen.insert(&writes[i].key)).collect();
                if firsts.len() > 1 {
                    let batch: Vec<&NewDelivery> = firsts.iter().map(|&i| &writes[i]).collect();
                    match self.accept_batch(&batch).await {
                        Ok(new) => {
                            for &i in &firsts {
                                results[i] = Some(new.get(&writes[i].key).copied().ok_or_else(|| {
                                    StoreError::Corrupt(format!("delivery {} was not stored", writes[i].key))
                                }));
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, deliveries = batch.len(), "cannot store a batch of deliveries; storing each"),
                    }
                }
                let mut out = Vec::with_capacity(writes.len());
                for (d, result) in writes.iter().zip(results) {
                    out.push(match result {
                        Some(r) => r,
                        None => self.accept_one(d).await,
                    });
                }
                out
            }

            /// PostgreSQL: stores `batch` (distinct keys) in one statement, counting a repeat
            /// of a key stored before; whether each key is new.
            async fn accept_batch(
                &self,
                batch: &[&NewDelivery],
            ) -> Result<std::collections::HashMap<IdempotencyKey, bool>, StoreError> {
                let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
                let rows = serde_json::Value::Array(
                    batch
                        .iter()
                        .map(|d| {
                            serde_json::json!({
                                "source": d.key.source.as_str(),
                                "ticket_id": d.key.ticket_id,
                                "version": d.key.version,
                                "event_type": d.event_type,
                                "payload": d.payload.to_string(),
                                "status": "pending",
                                "attempts": 0,
                                "next_attempt_at": now,
                                "received_at": now,
                                "webhook_version": d.webhook_version,
                                "missing_fields": (!d.missing_fields.is_empty()).then(|| d.missing_fields.join(",")),
                                "trace_context": d.trace_context,
                            })
                        })
                        .collect(),
                )
                .to_string();
                let mut conn = self.acquire(Queue::Inbox).await?;
                let stored = statement!(
                    "INSERT INTO deliveries (source, ticket_id, version, event_type, payload, status, \
                     attempts, next_attempt_at, received_at, webhook_version, missing_fields, \
                     trace_context) \
                     SELECT source, ticket_id, version, event_type, payload, status, attempts, \
                     next_attempt_at, received_at, webhook_version, missing_fields, trace_context \
                     FROM jsonb_populate_recordset(NULL::deliveries, $1::jsonb) \
                     ON CONFLICT (source, ticket_id, version) \
                     DO UPDATE SET duplicates = deliveries.duplicates + 1 \
                     RETURNING source, ticket_id, version, duplicates",
                    rows
                )
                .fetch_all(&mut *conn)
                .await?;
                stored
                    .iter()
                    .map(|row| {
                        let key = key_of_row!(row);
                        let duplicates: i32 = row.try_get("duplicates").map_err(corrupt)?;
                        Ok((key, duplicates == 0))
                    })
                    .collect()
            }

        }

        #[async_trait]
        impl Inbox for $store {
            async fn accept_delivery(&self, d: &NewDelivery) -> Result<bool, StoreError> {
                if $backend != "postgres" {
                    return self.accept_one(d).await;
                }
                // Stored with the deliveries that arrive beside it, in one statement (and one
                // commit): a burst of webhooks is answered at the pace of batches, not rows.
                let (stored, start) = self.accepts.push(d.clone());
                if start {
                    let store = self.clone();
                    tokio::spawn(async move { store.write_accepts().await });
                }
                stored
                    .await
                    .unwrap_or(Err(StoreError::Unavailable(sqlx::Error::WorkerCrashed)))
            }

            async fn lease_deliveries(
                &self, lease: Duration, limit: u32,
            ) -> Result<Vec<PendingDelivery>, StoreError> {
                // Oldest first. The outer WHERE repeats the lease test so that a row another
                // worker leased between the pick and the update is not taken twice. It leaves
                // `status = 'pending'` out (the pick tested it and holds the row locked): with
                // it, PostgreSQL may find the picked rows through the `*_pending` partial index,
                // scanning every pending and leased row per picked row, when the table's
                // statistics are older than its backlog (seen at 0.5 ms per row under load).
                // The pick is a MATERIALIZED CTE so it runs once: as a plain subquery PostgreSQL
                // may re-run it per row and, skipping the rows this very statement updated,
                // lease more than `limit`.
                let sql = concat!(
                    "WITH picked AS MATERIALIZED ( \
                       SELECT source, ticket_id, version FROM deliveries \
                       WHERE status = 'pending' AND next_attempt_at <= $2 AND ",
                    leasable!("deliveries"),
                    " ORDER BY received_at LIMIT $3 ",
                    $skip_locked,
                    ") UPDATE deliveries SET locked_until = $1, locked_by = $5, attempts = attempts + 1 \
                     WHERE (source, ticket_id, version) IN (SELECT source, ticket_id, version FROM picked) \
                       AND ",
                    leasable!("deliveries"),
                    " RETURNING source, ticket_id, version, event_type, payload, attempts, internal_errors, \
                     trace_context"
                );
                let rows = self.lease_rows(Queue::Inbox, sql, lease, limit).await?;
                rows.iter()
                    .map(|row| {
                        let text = |col: &str| row.try_get::<String, _>(col).map_err(corrupt);
                        let mut payload = json("payload", &text("payload")?)?;
                        // A delivery an older release stored during a rolling upgrade carries
                        // its trace context in the payload.
                        let older = payload
                            .as_object_mut()
                            .and_then(|o| o.remove(LEGACY_TRACEPARENT_KEY))
                            .and_then(|v| v.as_str().map(str::to_owned));
                        let trace_context: Option<String> = row.try_get("trace_context").map_err(corrupt)?;
                        Ok(PendingDelivery {
                            key: key_of_row!(row),
                            event_type: text("event_type")?,
                            payload,
                            attempts: attempts(row.try_get("attempts").map_err(corrupt)?),
                            internal_errors: attempts(row.try_get("internal_errors").map_err(corrupt)?),
                            trace_context: trace_context.or(older),
                        })
                    })
                    .collect()
            }

            async fn finish_delivery(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
                self.update_delivery(key, "status = 'done', done_at = $2, last_error = $1", None, Utc::now())
                    .await
            }

            async fn retry_delivery(
                &self, key: &IdempotencyKey, error: &str, next_attempt_at: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                self.update_delivery(key, RETRY, Some(error), next_attempt_at).await
            }

            async fn fail_delivery(&self, key: &IdempotencyKey, error: &str) -> Result<(), StoreError> {
                self.update_delivery(key, FAIL, Some(error), Utc::now()).await
            }

            async fn delivery_crashed(
                &self, key: &IdempotencyKey, error: &str, next_attempt_at: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                self.update_delivery(key, CRASHED, Some(error), next_attempt_at).await
            }

            async fn extend_deliveries(
                &self, keys: &[IdempotencyKey], lease: Duration,
            ) -> Result<u64, StoreError> {
                let mut held = 0;
                for key in keys {
                    held += execute!(
                        &self.pool,
                        "UPDATE deliveries SET locked_until = $1 WHERE source = $2 AND ticket_id = $3 \
                         AND version = $4 AND status = 'pending' AND locked_by = $5 \
                         AND locked_until IS NOT NULL",
                        lease_end(lease), key.source.as_str(), &key.ticket_id, &key.version, &self.holder
                    );
                }
                Ok(held)
            }

            async fn record_rejection(
                &self, source: Source, webhook_version: Option<&str>, reason: &str,
            ) -> Result<(), StoreError> {
                execute!(
                    &self.pool,
                    "INSERT INTO webhook_rejections (source, webhook_version, reason, received_at) \
                     VALUES ($1, $2, $3, $4)",
                    source.as_str(), webhook_version, crate::text::excerpt(reason, 200), Utc::now()
                );
                Ok(())
            }
        }
    };
}

for_both_backends!(impl_inbox);
