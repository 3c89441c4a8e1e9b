//! The routing log: tickets claimed for classification, and each decision recorded with the
//! actions it implies in one transaction; the tickets whose claim ran out undecided.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::StoreError;
#[allow(clippy::wildcard_imports)]
use super::backend::*;
use crate::domain::{
    Decision, IdempotencyKey, MAX_REPEAT_ROWS, RawTicket, Source, Ticket, Tier, TierSource,
    work::NewAction,
};

/// The outcome of claiming a ticket for classification.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This caller stored the ticket (or took over an expired claim) and must decide it.
    New,
    /// The key was decided already: here is the decision; do nothing else.
    Decided(Box<Decision>),
    /// Another worker holds a live claim and is deciding it now.
    InFlight,
}

/// How a ticket is claimed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClaimOptions {
    /// Count the customer's other tickets since then (0 without a customer or this).
    pub repeats_since: Option<DateTime<Utc>>,
    /// A live claim of this very process is stale and may be taken over: the caller knows
    /// nothing in this process is deciding the key now (e.g. an earlier attempt failed while
    /// the database was down and could not release it).
    pub take_own: bool,
    /// Whether the decision implies ticketing actions (gRPC `Classify` only logs), stored with
    /// the claim so whoever decides an abandoned ticket does what its request would have.
    pub acts: bool,
}

impl Default for ClaimOptions {
    fn default() -> Self {
        Self {
            repeats_since: None,
            take_own: false,
            acts: true,
        }
    }
}

/// A ticket whose claim ran out (or whose holder died) without a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Undecided {
    /// The ticket as it was claimed.
    pub ticket: Ticket,
    /// Whether its request would have acted on the decision (see [`ClaimOptions::acts`]).
    pub acts: bool,
}

/// The routing log: claims, decisions and their actions.
#[async_trait]
pub trait RoutingLog: Send + Sync {
    /// Makes the ticket durable under its idempotency key and claims it for `lease`.
    async fn claim(&self, ticket: &Ticket, lease: Duration) -> Result<Claim, StoreError> {
        Ok(self
            .claim_counting(ticket, lease, &ClaimOptions::default())
            .await?
            .0)
    }

    /// [`RoutingLog::claim`], and for a new claim also the number of other tickets (distinct ids)
    /// the same customer opened in the same source since `options.repeats_since` (among its
    /// latest [`MAX_REPEAT_ROWS`] ticket rows there), in the same round trip where the backend
    /// allows.
    async fn claim_counting(
        &self,
        ticket: &Ticket,
        lease: Duration,
        options: &ClaimOptions,
    ) -> Result<(Claim, u32), StoreError>;

    /// Gives up this process's claim on `key` at once (its decision failed unexpectedly), so a
    /// retry is decided without waiting out the claim lease.
    /// `true` when there was such a claim on an undecided ticket.
    async fn release_claim(&self, key: &IdempotencyKey) -> Result<bool, StoreError>;

    /// The decision logged for `key`, if any.
    async fn decision(&self, key: &IdempotencyKey) -> Result<Option<Decision>, StoreError>;

    /// Writes the decision and its actions in one transaction, and marks the delivery of the
    /// same key done (if there is one). Actions get the decision's severity as their priority.
    async fn record(
        &self,
        decision: &Decision,
        actions: &[NewAction],
    ) -> Result<Recorded, StoreError>;

    /// How many other tickets (distinct ids) this customer opened in `source` since `since`,
    /// among its latest [`MAX_REPEAT_ROWS`] ticket rows there.
    async fn recent_tickets(
        &self,
        source: Source,
        customer_id: &str,
        exclude_ticket_id: &str,
        since: DateTime<Utc>,
    ) -> Result<u32, StoreError>;

    /// Tickets from `source` whose claim ran out without a decision (the process deciding them
    /// died), oldest first, for the worker to decide.
    async fn undecided_tickets(
        &self,
        source: Source,
        limit: u32,
    ) -> Result<Vec<Undecided>, StoreError>;
}

/// Most decisions written in one statement.
const RECORD_BATCH: usize = 64;

/// A decision as a row of `decisions` (keys are its columns), with its actions and their
/// priority, for the batch statement's `jsonb_populate_recordset`.
fn decision_row(d: &Decision, actions: &[NewAction]) -> serde_json::Value {
    let actions: serde_json::Value =
        serde_json::from_str(&actions_json(actions)).unwrap_or_default();
    serde_json::json!({
        "id": d.id,
        "source": d.source.as_str(),
        "ticket_id": d.ticket_id,
        "ticket_version": d.ticket_version,
        "severity": d.severity.as_str(),
        "route": d.route.as_str(),
        "confidence": d.confidence,
        "reasoning": d.reasoning,
        "prompt_version": d.prompt_version,
        "model": d.model,
        "fallback": d.fallback,
        "fallback_reason": d.fallback_reason,
        "notes": d.notes,
        "tier": d.tier.as_str(),
        "request_id": d.usage.request_id,
        "input_tokens": d.usage.input_tokens,
        "output_tokens": d.usage.output_tokens,
        "cache_read_tokens": d.usage.cache_read_tokens,
        "cache_write_tokens": d.usage.cache_write_tokens,
        "cost_usd": d.usage.cost_usd,
        "trace_id": d.trace_id,
        "observation_id": d.observation_id,
        "created_at": d.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "model_latency_ms": d.usage.model_latency_ms,
        "model_retries": d.usage.model_retries,
        "model_severity": d.model_severity.as_str(),
        "weighting_rule": d.weighting_rule,
        "arr_usd": d.arr_usd,
        "tier_source": d.tier_source.map(TierSource::as_str),
        "enrichment_failed": d.enrichment_failed,
        "topic": d.topic,
        "sentiment": d.sentiment.map(crate::domain::Sentiment::as_str),
        "shadow": crate::taxonomy::shadow_to_json(&d.shadow),
        "caller": d.caller,
        "supersedes": d.supersedes,
        "priority": priority(d.severity),
        "actions": actions,
    })
}

macro_rules! impl_routing_log {
    ($store:ident, $pool:ty, $row:ty, $backend:literal, $skip_locked:literal) => {
        impl $store {
            /// How many other tickets (distinct ids) `customer_id` opened in `source` since
            /// `since`, on `executor`.
            async fn count_recent<'e, E>(
                executor: E,
                source: Source,
                customer_id: &str,
                exclude_ticket_id: &str,
                since: DateTime<Utc>,
            ) -> Result<u32, StoreError>
            where
                E: sqlx::Executor<'e, Database = <$pool as PoolDb>::Db>,
            {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(DISTINCT r.ticket_id) FROM (SELECT ticket_id FROM tickets \
                     WHERE source = $1 AND customer_id = $2 AND ticket_id <> $3 AND received_at >= $4 \
                     ORDER BY received_at DESC LIMIT $5) r",
                )
                .bind(source.as_str())
                .bind(customer_id)
                .bind(exclude_ticket_id)
                .bind(since)
                .bind(i64::from(MAX_REPEAT_ROWS))
                .fetch_one(executor)
                .await?;
                Ok(u32::try_from(n).unwrap_or(u32::MAX))
            }

            /// Writes one decision and its actions, and marks its delivery done: one statement on
            /// PostgreSQL, one transaction on SQLite.
            async fn record_one(&self, d: &Decision, actions: &[NewAction]) -> Result<Recorded, StoreError> {
                const INSERT: &str = "INSERT INTO decisions (id, source, ticket_id, ticket_version, \
                     severity, route, confidence, reasoning, prompt_version, model, fallback, \
                     fallback_reason, notes, tier, request_id, input_tokens, output_tokens, \
                     cache_read_tokens, cache_write_tokens, cost_usd, trace_id, observation_id, \
                     created_at, model_latency_ms, model_retries, model_severity, weighting_rule, \
                     arr_usd, tier_source, enrichment_failed, topic, sentiment, shadow, caller, supersedes) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                     $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, \
                     $32, $33, $34, $35) \
                     ON CONFLICT (source, ticket_id, ticket_version) DO NOTHING";
                macro_rules! bind_decision {
                    ($q:expr) => {
                        $q.bind(&d.id)
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
                            .bind(d.usage.model_latency_ms)
                            .bind(d.usage.model_retries)
                            .bind(d.model_severity.as_str())
                            .bind(&d.weighting_rule)
                            .bind(d.arr_usd)
                            .bind(d.tier_source.map(TierSource::as_str))
                            .bind(d.enrichment_failed)
                            .bind(&d.topic)
                            .bind(d.sentiment.map(crate::domain::Sentiment::as_str))
                            .bind(crate::taxonomy::shadow_to_json(&d.shadow))
                            .bind(&d.caller)
                            .bind(&d.supersedes)
                    };
                }
                let mut conn = self.acquire(Queue::Inbox).await?;
                let inserted = if $backend == "postgres" {
                    // One statement, so one round trip: the decision, its actions (only when
                    // the decision went in) and the delivery marked done. A statement is atomic.
                    let row = bind_decision!(sqlx::query(sqlx::AssertSqlSafe(format!(
                        "WITH dec AS ({INSERT} RETURNING id), \
                         act AS (INSERT INTO actions (decision_id, source, ticket_id, kind, payload, \
                           status, attempts, next_attempt_at, created_at, priority) \
                           SELECT dec.id, $2, $3, a.elem->>'kind', a.elem->>'payload', 'pending', 0, $23, $23, $36 \
                           FROM dec, jsonb_array_elements($37::jsonb) WITH ORDINALITY AS a(elem, n) \
                           ORDER BY a.n RETURNING 1), \
                         del AS (UPDATE deliveries SET status = 'done', done_at = $23, \
                           locked_until = NULL, last_error = NULL \
                           WHERE source = $2 AND ticket_id = $3 AND version = $4 \
                           AND status = 'pending' AND EXISTS (SELECT 1 FROM dec) RETURNING 1) \
                         SELECT (SELECT COUNT(*) FROM dec) AS inserted, \
                           (SELECT COUNT(*) FROM act) AS acted, (SELECT COUNT(*) FROM del) AS done"
                    ))))
                    .bind(priority(d.severity))
                    .bind(actions_json(actions))
                    .fetch_one(&mut *conn)
                    .await?;
                    let n: i64 = row
                        .try_get("inserted")
                        .map_err(corrupt)?;
                    n == 1
                } else {
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    let n = bind_decision!(sqlx::query(INSERT))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if n == 1 {
                        execute!(
                            &mut *tx,
                            "INSERT INTO actions (decision_id, source, ticket_id, kind, payload, \
                             status, attempts, next_attempt_at, created_at, priority) \
                             SELECT $1, $2, $3, json_extract(value, '$.kind'), \
                             json_extract(value, '$.payload'), 'pending', 0, $4, $4, $5 \
                             FROM json_each($6) ORDER BY key",
                            &d.id, d.source.as_str(), &d.ticket_id, d.created_at,
                            priority(d.severity), actions_json(actions)
                        );
                        execute!(
                            &mut *tx,
                            "UPDATE deliveries SET status = 'done', done_at = $1, \
                             locked_until = NULL, last_error = NULL \
                             WHERE source = $2 AND ticket_id = $3 AND version = $4 \
                             AND status = 'pending'",
                            d.created_at, d.source.as_str(), &d.ticket_id, &d.ticket_version
                        );
                        tx.commit().await?;
                    } else {
                        tx.rollback().await?;
                    }
                    n == 1
                };
                if inserted {
                    return Ok(Recorded::New);
                }
                drop(conn);
                self.existing(d).await
            }


            /// Writes the queued decisions until none is left, each batch in one statement.
            async fn write_records(&self) {
                self.records
                    .drain(RECORD_BATCH, |writes| async move { self.record_many(&writes).await })
                    .await;
            }

            /// Writes `writes` (one statement for all of them), each result in order. A batch
            /// the database refuses as a whole is written one by one, so one bad decision never
            /// stops the others.
            async fn record_many(&self, writes: &[RecordWrite]) -> Vec<Result<Recorded, StoreError>> {
                let mut results = Vec::with_capacity(writes.len());
                if let [(d, actions)] = writes {
                    results.push(self.record_one(d, actions).await);
                    return results;
                }
                match self.record_batch(writes).await {
                    Ok(inserted) => {
                        for (d, _) in writes {
                            results.push(if inserted.contains(&d.id) {
                                Ok(Recorded::New)
                            } else {
                                self.existing(d).await
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, decisions = writes.len(), "cannot write a batch of decisions; writing each");
                        for (d, actions) in writes {
                            results.push(self.record_one(d, actions).await);
                        }
                    }
                }
                results
            }

            /// The decision logged for `d`'s key, which won over `d`.
            async fn existing(&self, d: &Decision) -> Result<Recorded, StoreError> {
                let existing = Self::find(&self.pool, &d.key()).await?.ok_or_else(|| {
                    StoreError::Corrupt(format!("decision for {} conflicted but is not there", d.key()))
                })?;
                Ok(Recorded::Existing(Box::new(existing)))
            }

            /// PostgreSQL: the decisions of `writes`, their actions and their deliveries' completion
            /// in one statement; the ids of the decisions that went in (a key decided already, or
            /// twice in the batch, keeps its first decision).
            async fn record_batch(
                &self,
                writes: &[RecordWrite],
            ) -> Result<std::collections::HashSet<String>, StoreError> {
                let rows = serde_json::Value::Array(
                    writes.iter().map(|(d, actions)| decision_row(d, actions)).collect(),
                )
                .to_string();
                let mut conn = self.acquire(Queue::Inbox).await?;
                let ids: Vec<String> = sqlx::query_scalar(concat!(
                    "WITH input AS (SELECT * FROM jsonb_populate_recordset(NULL::decisions, $1::jsonb)), \
                     extra AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(id TEXT, priority SMALLINT, actions JSONB)), \
                     dec AS (INSERT INTO decisions (", decision_columns!(), ") SELECT ", decision_columns!(),
                    " FROM input ON CONFLICT (source, ticket_id, ticket_version) DO NOTHING \
                       RETURNING id, source, ticket_id, ticket_version, created_at), \
                     act AS (INSERT INTO actions (decision_id, source, ticket_id, kind, payload, \
                       status, attempts, next_attempt_at, created_at, priority) \
                       SELECT dec.id, dec.source, dec.ticket_id, a.elem->>'kind', a.elem->>'payload', \
                       'pending', 0, dec.created_at, dec.created_at, extra.priority \
                       FROM dec JOIN extra ON extra.id = dec.id, \
                       jsonb_array_elements(extra.actions) WITH ORDINALITY AS a(elem, n) \
                       ORDER BY dec.created_at, dec.id, a.n RETURNING 1), \
                     del AS (UPDATE deliveries SET status = 'done', done_at = dec.created_at, \
                       locked_until = NULL, last_error = NULL FROM dec \
                       WHERE deliveries.source = dec.source AND deliveries.ticket_id = dec.ticket_id \
                       AND deliveries.version = dec.ticket_version AND ", still_pending!("deliveries"), " \
                       RETURNING 1) \
                     SELECT id FROM dec"
                ))
                .bind(rows)
                .fetch_all(&mut *conn)
                .await?;
                Ok(ids.into_iter().collect())
            }


            /// Stores and claims the queued tickets until none is left, each batch in one
            /// statement.
            async fn write_claims(&self) {
                self.claims
                    .drain(RECORD_BATCH, |writes| async move { self.claim_many(&writes).await })
                    .await;
            }

            /// Stores and claims `writes` (one statement for all of them), each result in
            /// order. A key twice in the batch went in once: the first write of it claimed it,
            /// the later ones find it claimed. A batch the database refuses as a whole is
            /// claimed one by one, so one bad ticket never stops the others.
            async fn claim_many(&self, writes: &[ClaimWrite]) -> Vec<ClaimResult> {
                match self.claim_batch(writes).await {
                    Ok(mut inserted) => writes
                        .iter()
                        .map(|(key, _)| Ok(inserted.remove(key)))
                        .collect(),
                    Err(e) if writes.len() > 1 => {
                        tracing::warn!(error = %e, tickets = writes.len(), "cannot claim a batch of tickets; claiming each");
                        let mut each = Vec::with_capacity(writes.len());
                        for w in writes {
                            each.push(
                                self.claim_batch(std::slice::from_ref(w))
                                    .await
                                    .map(|inserted| inserted.get(&w.0).copied()),
                            );
                        }
                        each
                    }
                    Err(e) => vec![Err(e)],
                }
            }

            /// PostgreSQL: stores the tickets of `writes` claimed by this holder (a key stored
            /// already is left alone) and counts, for each one stored, its customer's other
            /// tickets since its `since` (the count's snapshot does not see this statement's
            /// rows). Returns the keys stored, with their counts.
            async fn claim_batch(
                &self,
                writes: &[ClaimWrite],
            ) -> Result<std::collections::HashMap<IdempotencyKey, u32>, StoreError> {
                let rows =
                    serde_json::Value::Array(writes.iter().map(|(_, row)| row.clone()).collect())
                        .to_string();
                let mut conn = self.acquire(Queue::Inbox).await?;
                let stored = statement!(
                    "WITH input AS (SELECT * FROM jsonb_populate_recordset(NULL::tickets, $1::jsonb)), \
                     extra AS (SELECT * FROM jsonb_to_recordset($1::jsonb) \
                       AS x(source TEXT, ticket_id TEXT, version TEXT, since TIMESTAMPTZ)), \
                     ins AS (INSERT INTO tickets (source, ticket_id, version, subject, body, tier, \
                       arr_usd, customer_id, received_at, claimed_until, claimed_by, acts, \
                       tier_source, enrichment_failed, caller) \
                       SELECT source, ticket_id, version, subject, body, tier, arr_usd, customer_id, \
                       received_at, claimed_until, claimed_by, acts, tier_source, enrichment_failed, \
                       caller FROM input \
                       ON CONFLICT (source, ticket_id, version) DO NOTHING \
                       RETURNING source, ticket_id, version, customer_id) \
                     SELECT ins.source, ins.ticket_id, ins.version, \
                       CASE WHEN extra.since IS NULL OR ins.customer_id IS NULL THEN 0 ELSE \
                       (SELECT COUNT(DISTINCT r.ticket_id) FROM (SELECT t.ticket_id FROM tickets t \
                        WHERE t.source = ins.source AND t.customer_id = ins.customer_id \
                        AND t.ticket_id <> ins.ticket_id AND t.received_at >= extra.since \
                        ORDER BY t.received_at DESC LIMIT $2) r) END AS recent \
                     FROM ins JOIN extra ON extra.source = ins.source \
                       AND extra.ticket_id = ins.ticket_id AND extra.version = ins.version",
                    rows,
                    i64::from(MAX_REPEAT_ROWS)
                )
                .fetch_all(&mut *conn)
                .await?;
                stored
                    .iter()
                    .map(|row| {
                        let key = key_of_row!(row);
                        let recent: i64 = row.try_get("recent").map_err(corrupt)?;
                        Ok((key, u32::try_from(recent).unwrap_or(u32::MAX)))
                    })
                    .collect()
            }

            async fn find<'e, E>(executor: E, key: &IdempotencyKey) -> Result<Option<Decision>, StoreError>
            where
                E: sqlx::Executor<'e, Database = <$pool as PoolDb>::Db>,
            {
                fetch_optional!(
                    executor,
                    Self::decision_from_row,
                    concat!(
                        "SELECT ",
                        decision_columns!(),
                        " FROM decisions WHERE source = $1 AND ticket_id = $2 AND ticket_version = $3"
                    ),
                    key.source.as_str(), &key.ticket_id, &key.version
                )
            }
        }

        #[async_trait]
        impl RoutingLog for $store {
            async fn claim_counting(
                &self, ticket: &Ticket, lease: Duration, options: &ClaimOptions,
            ) -> Result<(Claim, u32), StoreError> {
                let (repeats_since, take_own) = (options.repeats_since, options.take_own);
                let key = ticket.key();
                let now = Utc::now();
                let until = lease_end(lease);
                let since = repeats_since.filter(|_| ticket.customer_id().is_some());
                const INSERT: &str = "INSERT INTO tickets (source, ticket_id, version, subject, body, \
                     tier, arr_usd, customer_id, received_at, claimed_until, claimed_by, acts, \
                     tier_source, enrichment_failed, caller) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                     ON CONFLICT (source, ticket_id, version) DO NOTHING";
                // PostgreSQL inserts and counts the customer's other tickets in one statement
                // (the count's snapshot does not see the new row, which it excludes anyway);
                // SQLite is in-process, so a second statement costs no round trip.
                // The fifteen values of `INSERT`.
                macro_rules! bind_ticket {
                    ($q:expr) => {
                        $q.bind(key.source.as_str())
                            .bind(&key.ticket_id)
                            .bind(&key.version)
                            .bind(ticket.subject())
                            .bind(ticket.body())
                            .bind(ticket.tier().as_str())
                            .bind(ticket.arr_usd())
                            .bind(ticket.customer_id())
                            .bind(now)
                            .bind(until)
                            .bind(&self.holder)
                            .bind(options.acts)
                            .bind(ticket.tier_source().as_str())
                            .bind(ticket.enrichment_failed())
                            .bind(ticket.caller())
                    };
                }
                let (inserted, mut recent) = if $backend == "postgres" {
                    // Stored and claimed with the claims queued beside it, in one statement.
                    let row = serde_json::json!({
                        "source": key.source.as_str(),
                        "ticket_id": key.ticket_id,
                        "version": key.version,
                        "subject": ticket.subject(),
                        "body": ticket.body(),
                        "tier": ticket.tier().as_str(),
                        "arr_usd": ticket.arr_usd(),
                        "customer_id": ticket.customer_id(),
                        "received_at": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        "claimed_until": until.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        "claimed_by": self.holder,
                        "acts": options.acts,
                        "tier_source": ticket.tier_source().as_str(),
                        "enrichment_failed": ticket.enrichment_failed(),
                        "caller": ticket.caller(),
                        "since": since.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
                    });
                    let (claimed, start) = self.claims.push((key.clone(), row));
                    if start {
                        let store = self.clone();
                        tokio::spawn(async move { store.write_claims().await });
                    }
                    match claimed
                        .await
                        .unwrap_or(Err(StoreError::Unavailable(sqlx::Error::WorkerCrashed)))?
                    {
                        Some(recent) => (true, Some(recent)),
                        None => (false, None),
                    }
                } else {
                    let n = bind_ticket!(sqlx::query(INSERT))
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                    (n == 1, None)
                };
                if let (true, Some(recent)) = (inserted, recent) {
                    // The common path: stored, claimed and counted in the batch.
                    return Ok((Claim::New, recent));
                }
                // The rare paths (a key stored before, or SQLite's count) on one connection.
                let mut conn = self.acquire(Queue::Inbox).await?;
                let claim = if inserted {
                    Claim::New
                } else if let Some(d) = Self::find(&mut *conn, key).await? {
                    return Ok((Claim::Decided(Box::new(d)), 0));
                } else {
                    // Stored but undecided: take the claim over only if its holder's lease ran
                    // out or its holder stopped beating. A claim of our own is taken over only
                    // when the caller says so: otherwise it may be a concurrent request of
                    // this very process.
                    let taken = execute!(
                        &mut *conn,
                        "UPDATE tickets SET claimed_until = $1, claimed_by = $6, acts = $9 \
                         WHERE source = $2 AND ticket_id = $3 AND version = $4 \
                         AND (claimed_until < $5 OR (claimed_by = $6 AND $8) \
                          OR (claimed_by IS NOT NULL AND claimed_by <> $6 \
                          AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = tickets.claimed_by \
                          AND w.heartbeat_at >= $7)))",
                        until, key.source.as_str(), &key.ticket_id, &key.version, now,
                        &self.holder, self.live_since(), take_own, options.acts
                    );
                    if taken == 1 { Claim::New } else { return Ok((Claim::InFlight, 0)) }
                };
                if recent.is_none() {
                    recent = Some(match (since, ticket.customer_id()) {
                        (Some(since), Some(customer)) => {
                            Self::count_recent(&mut *conn, key.source, customer, &key.ticket_id, since)
                                .await?
                        }
                        _ => 0,
                    });
                }
                Ok((claim, recent.unwrap_or(0)))
            }

            async fn release_claim(&self, key: &IdempotencyKey) -> Result<bool, StoreError> {
                // Back-dated, so `claim` (`claimed_until < now`) takes it over at once.
                let released = execute!(
                    &self.pool,
                    "UPDATE tickets SET claimed_until = $1, claimed_by = NULL \
                     WHERE source = $2 AND ticket_id = $3 AND version = $4 AND claimed_by = $5 \
                     AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.source = tickets.source \
                       AND d.ticket_id = tickets.ticket_id AND d.ticket_version = tickets.version)",
                    Utc::now() - chrono::Duration::seconds(1), key.source.as_str(), &key.ticket_id,
                    &key.version, &self.holder
                );
                Ok(released == 1)
            }

            async fn decision(&self, key: &IdempotencyKey) -> Result<Option<Decision>, StoreError> {
                Self::find(&self.pool, key).await
            }

            async fn record(&self, d: &Decision, actions: &[NewAction]) -> Result<Recorded, StoreError> {
                if $backend != "postgres" {
                    // In process: a statement costs no round trip, and writes are serialised.
                    return self.record_one(d, actions).await;
                }
                let (written, start) = self.records.push((d.clone(), actions.to_vec()));
                if start {
                    let store = self.clone();
                    tokio::spawn(async move { store.write_records().await });
                }
                // The writer dropped this write without an answer (it panicked): nothing is
                // known to be written, so the caller retries, which is safe (one key, one row).
                written
                    .await
                    .unwrap_or(Err(StoreError::Unavailable(sqlx::Error::WorkerCrashed)))
            }

            async fn recent_tickets(
                &self, source: Source, customer_id: &str, exclude_ticket_id: &str, since: DateTime<Utc>,
            ) -> Result<u32, StoreError> {
                Self::count_recent(&self.pool, source, customer_id, exclude_ticket_id, since).await
            }

            async fn undecided_tickets(
                &self, source: Source, limit: u32,
            ) -> Result<Vec<Undecided>, StoreError> {
                let rows = statement!(
                    "SELECT t.source, t.ticket_id, t.version, t.subject, t.body, t.tier, t.arr_usd, \
                     t.customer_id, t.acts, t.tier_source, t.enrichment_failed, t.caller FROM tickets t \
                     WHERE t.source = $1 AND (t.claimed_until < $2 OR (t.claimed_by IS NOT NULL \
                       AND t.claimed_by <> $5 AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = t.claimed_by \
                       AND w.heartbeat_at >= $4))) AND NOT EXISTS ( \
                       SELECT 1 FROM decisions d WHERE d.source = t.source \
                       AND d.ticket_id = t.ticket_id AND d.ticket_version = t.version) \
                     ORDER BY t.received_at LIMIT $3",
                    source.as_str(), Utc::now(), i64::from(limit), self.live_since(), &self.holder
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let text = |col: &str| row.try_get::<String, _>(col).map_err(corrupt);
                        let acts: bool = row.try_get("acts").map_err(corrupt)?;
                        let ticket = Ticket::parse(
                            source,
                            RawTicket {
                                id: text("ticket_id")?,
                                version: text("version")?,
                                subject: text("subject")?,
                                body: text("body")?,
                                tier: Some(Tier::parse("tier", &text("tier")?).map_err(corrupt)?),
                                arr_usd: row.try_get("arr_usd").map_err(corrupt)?,
                                customer_id: row
                                    .try_get::<Option<String>, _>("customer_id")
                                    .map_err(corrupt)?
                                    .unwrap_or_default(),
                            },
                            "",
                        )
                        .map_err(corrupt)?;
                        let failed: bool = row.try_get("enrichment_failed").map_err(corrupt)?;
                        let ticket = match row
                            .try_get::<Option<String>, _>("tier_source")
                            .map_err(corrupt)?
                        {
                            Some(s) => ticket.with_tier_source(
                                TierSource::parse("tier_source", &s)
                                    .map_err(corrupt)?,
                                failed,
                            ),
                            None => ticket,
                        };
                        let caller: Option<String> = row.try_get("caller").map_err(corrupt)?;
                        Ok(Undecided { ticket: ticket.with_caller(caller), acts })
                    })
                    .collect()
            }
        }
    };
}

for_both_backends!(impl_routing_log);
