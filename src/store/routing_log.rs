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
    Decision, IdempotencyKey, RawTicket, Source, Ticket, Tier, TierSource, work::NewAction,
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

/// The outcome of recording a decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// The decision and its actions were written.
    New,
    /// A decision for the same key was already logged (a concurrent duplicate won the race);
    /// nothing was written and this is the stored one.
    Existing(Box<Decision>),
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
    /// the same customer opened in the same source since `options.repeats_since`, in the same
    /// round trip where the backend allows.
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

    /// How many other tickets (distinct ids) this customer opened in `source` since `since`.
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

macro_rules! impl_routing_log {
    ($store:ident, $pool:ty, $row:ty, $backend:literal, $skip_locked:literal) => {
        impl $store {
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
                let (inserted, mut recent) = if $backend == "postgres" && since.is_some() {
                    let row = bind_ticket!(sqlx::query(sqlx::AssertSqlSafe(format!(
                        "WITH ins AS ({INSERT} RETURNING 1) \
                         SELECT (SELECT COUNT(*) FROM ins) AS inserted, \
                         (SELECT COUNT(DISTINCT ticket_id) FROM tickets WHERE source = $1 \
                          AND customer_id = $8 AND ticket_id <> $2 AND received_at >= $16) AS recent"
                    ))))
                    .bind(since)
                    .fetch_one(&self.pool)
                    .await?;
                    let n: i64 = row.try_get("inserted").map_err(corrupt)?;
                    let r: i64 = row.try_get("recent").map_err(corrupt)?;
                    (n == 1, Some(u32::try_from(r).unwrap_or(u32::MAX)))
                } else {
                    let n = bind_ticket!(sqlx::query(INSERT))
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                    (n == 1, None)
                };
                let claim = if inserted {
                    Claim::New
                } else if let Some(d) = Self::find(&self.pool, key).await? {
                    return Ok((Claim::Decided(Box::new(d)), 0));
                } else {
                    // Stored but undecided: take the claim over only if its holder's lease ran
                    // out or its holder stopped beating. A claim of our own is taken over only
                    // when the caller says so: otherwise it may be a concurrent request of
                    // this very process.
                    let taken = execute!(
                        &self.pool,
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
                            self.recent_tickets(key.source, customer, &key.ticket_id, since).await?
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
                    .fetch_one(&self.pool)
                    .await?;
                    let n: i64 = row
                        .try_get("inserted")
                        .map_err(corrupt)?;
                    n == 1
                } else {
                    let mut tx = self.pool.begin().await?;
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
                let existing = Self::find(&self.pool, &d.key()).await?.ok_or_else(|| {
                    StoreError::Corrupt(format!("decision for {} conflicted but is not there", d.key()))
                })?;
                Ok(Recorded::Existing(Box::new(existing)))
            }

            async fn recent_tickets(
                &self, source: Source, customer_id: &str, exclude_ticket_id: &str, since: DateTime<Utc>,
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
