//! The two [`Store`] implementations, written once by `impl_store!` because PostgreSQL and
//! SQLite accept the same statements here. Timestamps are `TIMESTAMPTZ` on PostgreSQL and
//! RFC 3339 UTC text on SQLite (which sorts lexically, so range queries work on both).
//!
//! Over 450 lines on purpose: one macro body writes every statement for both backends, so no
//! statement can drift between them; splitting it would scatter one backend across files.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{
    Backlog, Claim, ClaimOptions, DEFAULT_STALE_AFTER, Recorded, ScoreRow, ScoreValue, Store,
    StoreError, Undecided,
};
use crate::domain::{
    Decision, IdempotencyKey, RawTicket, Route, Severity, Source, Ticket, Tier, TierSource, Usage,
    work::{Action, ActionKind, ActionStatus, NewAction, NewDelivery, PendingDelivery},
};

/// The routing log on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: sqlx::PgPool,
    holder: String,
    stale_after: Duration,
}

/// The routing log on SQLite (the embedded default).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
    holder: String,
    stale_after: Duration,
}

macro_rules! decision_columns {
    () => {
        "id, source, ticket_id, ticket_version, severity, route, confidence, \
     reasoning, prompt_version, model, fallback, fallback_reason, notes, tier, request_id, \
     input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, trace_id, \
     observation_id, created_at, model_latency_ms, model_retries, model_severity, weighting_rule, \
     arr_usd, tier_source, enrichment_failed, topic, sentiment, shadow, caller"
    };
}

macro_rules! review_columns {
    () => {
        "r.id, r.decision_id, r.reviewer, r.reviewed_at, r.verdict, r.corrected_severity, r.why, \
         r.origin, r.topic, r.sentiment, r.shadow"
    };
}

/// A decision (qualified `d.`, as tickets share column names), its ticket and its sample.
macro_rules! review_item_columns {
    () => {
        "d.id, d.source, d.ticket_id, d.ticket_version, d.severity, d.route, d.confidence, \
         d.reasoning, d.prompt_version, d.model, d.fallback, d.fallback_reason, d.notes, d.tier, \
         d.request_id, d.input_tokens, d.output_tokens, d.cache_read_tokens, d.cache_write_tokens, \
         d.cost_usd, d.trace_id, d.observation_id, d.created_at, d.model_latency_ms, \
         d.model_retries, d.model_severity, d.weighting_rule, d.arr_usd, d.tier_source, \
         d.enrichment_failed, d.topic, d.sentiment, d.shadow, d.caller, t.subject AS t_subject, \
         t.body AS t_body, t.tier AS t_tier, t.arr_usd AS t_arr_usd, s.skipped_at AS s_skipped_at"
    };
}

macro_rules! action_columns {
    () => {
        "id, decision_id, source, ticket_id, kind, payload, status, attempts, last_error, \
         internal_errors"
    };
}

/// The condition under which a row of `$table` may be leased: not leased, its lease ran out, or
/// its holder's heartbeat stopped. A holder never takes its own live lease over. Binds: `$2`
/// now, `$4` the oldest live heartbeat, `$5` this holder.
macro_rules! leasable {
    ($table:literal) => {
        concat!(
            "(",
            $table,
            ".locked_until IS NULL OR ",
            $table,
            ".locked_until < $2 OR (",
            $table,
            ".locked_by IS NOT NULL AND ",
            $table,
            ".locked_by <> $5 \
             AND NOT EXISTS (SELECT 1 FROM workers w \
             WHERE w.id = ",
            $table,
            ".locked_by AND w.heartbeat_at >= $4)))"
        )
    };
}

/// How many rows of `$table` are pending and failed, and when (`$at`) the oldest pending one
/// came in: the one statement for both the inbox and the outbox.
macro_rules! backlog_of {
    ($table:literal, $at:literal) => {
        concat!(
            "SELECT COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0) AS pending, \
             COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS failed, \
             MIN(CASE WHEN status = 'pending' THEN ",
            $at,
            " END) AS oldest FROM ",
            $table,
            " WHERE status IN ('pending', 'failed')"
        )
    };
}

/// The decision's severity as an action priority: lower runs first.
fn priority(severity: Severity) -> i16 {
    match severity {
        Severity::OnFire => 0,
        Severity::Urgent => 1,
        Severity::Routine => 2,
    }
}

/// The actions of a decision as one JSON array, so every backend inserts them in one statement.
fn actions_json(actions: &[NewAction]) -> String {
    serde_json::Value::Array(
        actions
            .iter()
            .map(|a| serde_json::json!({"kind": a.kind.as_str(), "payload": a.payload.to_string()}))
            .collect(),
    )
    .to_string()
}

/// Ids as a JSON array, bound as one text parameter on both backends.
fn ids_json(ids: &[i64]) -> String {
    serde_json::Value::from(ids.to_vec()).to_string()
}

fn attempts(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// A row that could not be read back: a column's value, or its parse into a domain type.
fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn json(col: &str, text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

/// A stored sentiment label (NULL: not labelled or not judged).
fn sentiment(text: Option<String>) -> Result<Option<crate::domain::Sentiment>, StoreError> {
    text.map(|t| crate::domain::Sentiment::parse("sentiment", &t).map_err(corrupt))
        .transpose()
}

/// A stored shadow map (NULL: none asked or judged).
fn shadow(text: Option<String>) -> Result<std::collections::BTreeMap<String, bool>, StoreError> {
    crate::taxonomy::shadow_from_json(text.as_deref()).map_err(StoreError::Corrupt)
}

fn lease_end(lease: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60))
}

/// The payload key an older release kept a delivery's `traceparent` under (now the
/// `trace_context` column, migration 0050).
const LEGACY_TRACEPARENT_KEY: &str = "_traceparent";

// The statuses written below are the spellings of `ActionStatus` and `DeliveryStatus` (a test
// holds them to the tables' CHECK constraints).

/// What an attempt that failed but may succeed later writes: the error, and when to try again.
const RETRY: &str = "last_error = $1, next_attempt_at = $2";
/// What giving up writes: failed for good, with the reason and when.
const FAIL: &str = "status = 'failed', last_error = $1, done_at = $2";
/// What an attempt that panicked or failed unexpectedly writes: as [`RETRY`], counted in
/// `internal_errors` (which bounds such attempts).
const CRASHED: &str =
    "last_error = $1, next_attempt_at = $2, internal_errors = internal_errors + 1";

// Most statements below differ only in their SQL, their binds and how a row is read back:
// these macros write the bind-run-read steps once, so each method states just what differs.
// `$ex` is the executor (`&self.pool`, or a transaction); `$from_row` reads one row.

/// `$sql` with each `$bind` bound in order (`$1`, `$2`, ...).
macro_rules! statement {
    ($sql:expr $(, $bind:expr)* $(,)?) => {
        sqlx::query($sql)$(.bind($bind))*
    };
}

/// Runs `$sql`; how many rows it changed.
macro_rules! execute {
    ($ex:expr, $sql:expr $(, $bind:expr)* $(,)?) => {
        statement!($sql $(, $bind)*).execute($ex).await?.rows_affected()
    };
}

/// Every row of `$sql`, each read by `$from_row`.
macro_rules! fetch_all {
    ($ex:expr, $from_row:expr, $sql:expr $(, $bind:expr)* $(,)?) => {{
        let rows = statement!($sql $(, $bind)*).fetch_all($ex).await?;
        rows.iter().map($from_row).collect::<Result<Vec<_>, StoreError>>()
    }};
}

/// The row of `$sql`, if there is one, read by `$from_row`.
macro_rules! fetch_optional {
    ($ex:expr, $from_row:expr, $sql:expr $(, $bind:expr)* $(,)?) => {{
        let row = statement!($sql $(, $bind)*).fetch_optional($ex).await?;
        row.as_ref().map($from_row).transpose()
    }};
}

/// `$ty { .. }` with each `$col` read from the column of its name, then the `$field`s given:
/// for row types that are mostly columns.
macro_rules! from_columns {
    ($row:expr, $ty:ident { $($col:ident),* $(,)? } $(; $($field:ident: $value:expr),* $(,)?)?) => {
        $ty {
            $($col: $row.try_get(stringify!($col)).map_err(corrupt)?,)*
            $($($field: $value,)*)?
        }
    };
}

macro_rules! impl_store {
    ($store:ident, $pool:ty, $row:ty, $backend:literal, $skip_locked:literal) => {
        impl $store {
            /// A store over an already migrated pool, holding leases under a fresh holder id.
            pub fn new(pool: $pool) -> Self {
                Self {
                    pool,
                    holder: uuid::Uuid::now_v7().to_string(),
                    stale_after: DEFAULT_STALE_AFTER,
                }
            }

            /// Sets how old a holder's heartbeat may be before its leases are taken over.
            #[must_use]
            pub fn stale_after(mut self, stale_after: Duration) -> Self {
                self.stale_after = stale_after;
                self
            }

            /// The oldest heartbeat that still counts as alive.
            fn live_since(&self) -> DateTime<Utc> {
                Utc::now()
                    - chrono::Duration::from_std(self.stale_after)
                        .unwrap_or(chrono::Duration::seconds(6))
            }

            /// The pool, for tests and the action worker.
            pub fn pool(&self) -> &$pool {
                &self.pool
            }

            /// Releases the lease of a pending delivery and applies `set`, which binds `$1` (an
            /// error text, or NULL) and `$2` (a time).
            async fn update_delivery(
                &self,
                key: &IdempotencyKey,
                set: &'static str,
                error: Option<&str>,
                at: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let sql = sqlx::AssertSqlSafe(format!(
                    "UPDATE deliveries SET locked_until = NULL, {set} \
                     WHERE source = $3 AND ticket_id = $4 AND version = $5 AND status = 'pending'"
                ));
                execute!(&self.pool, sql, error, at, key.source.as_str(), &key.ticket_id, &key.version);
                Ok(())
            }

            /// Releases the lease of a pending action and applies `set`, which binds `$1` (the
            /// error text) and `$2` (a time).
            async fn update_action(
                &self,
                id: i64,
                set: &'static str,
                error: &str,
                at: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let sql = sqlx::AssertSqlSafe(format!(
                    "UPDATE actions SET locked_until = NULL, {set} WHERE id = $3 AND status = 'pending'"
                ));
                execute!(&self.pool, sql, error, at, id);
                Ok(())
            }

            /// The usage columns of a decision row: a decision and an audit row read them alike.
            fn usage_from_row(row: &$row) -> Result<Usage, StoreError> {
                Ok(from_columns!(row, Usage {
                    request_id, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                    cost_usd, model_latency_ms, model_retries,
                }))
            }

            fn decision_from_row(row: &$row) -> Result<Decision, StoreError> {
                let text = |col: &str| row.try_get::<String, _>(col).map_err(corrupt);
                Ok(Decision {
                    id: text("id")?,
                    source: Source::parse("source", &text("source")?).map_err(corrupt)?,
                    ticket_id: text("ticket_id")?,
                    ticket_version: text("ticket_version")?,
                    severity: Severity::parse("severity", &text("severity")?).map_err(corrupt)?,
                    route: Route::parse("route", &text("route")?).map_err(corrupt)?,
                    confidence: row.try_get::<f32, _>("confidence").map_err(corrupt)?,
                    reasoning: text("reasoning")?,
                    prompt_version: text("prompt_version")?,
                    model: text("model")?,
                    fallback: row.try_get::<bool, _>("fallback").map_err(corrupt)?,
                    fallback_reason: row.try_get("fallback_reason").map_err(corrupt)?,
                    notes: row.try_get("notes").map_err(corrupt)?,
                    tier: Tier::parse("tier", &text("tier")?).map_err(corrupt)?,
                    usage: Self::usage_from_row(row)?,
                    trace_id: row.try_get("trace_id").map_err(corrupt)?,
                    observation_id: row.try_get("observation_id").map_err(corrupt)?,
                    created_at: row.try_get("created_at").map_err(corrupt)?,
                    model_severity: match row.try_get::<Option<String>, _>("model_severity").map_err(corrupt)? {
                        Some(s) => Severity::parse("model_severity", &s).map_err(corrupt)?,
                        // Logged before the weighting rules: the classifier's severity stood.
                        None => Severity::parse("severity", &text("severity")?).map_err(corrupt)?,
                    },
                    weighting_rule: row.try_get("weighting_rule").map_err(corrupt)?,
                    arr_usd: row.try_get("arr_usd").map_err(corrupt)?,
                    tier_source: row
                        .try_get::<Option<String>, _>("tier_source")
                        .map_err(corrupt)?
                        .map(|s| TierSource::parse("tier_source", &s))
                        .transpose()
                        .map_err(corrupt)?,
                    enrichment_failed: row.try_get("enrichment_failed").map_err(corrupt)?,
                    topic: row.try_get("topic").map_err(corrupt)?,
                    sentiment: sentiment(row.try_get("sentiment").map_err(corrupt)?)?,
                    shadow: shadow(row.try_get("shadow").map_err(corrupt)?)?,
                    caller: row.try_get("caller").map_err(corrupt)?,
                })
            }

            fn action_from_row(row: &$row) -> Result<Action, StoreError> {
                let text = |col: &str| row.try_get::<String, _>(col).map_err(corrupt);
                Ok(Action {
                    id: row.try_get("id").map_err(corrupt)?,
                    decision_id: text("decision_id")?,
                    source: Source::parse("source", &text("source")?)
                        .map_err(corrupt)?,
                    ticket_id: text("ticket_id")?,
                    kind: ActionKind::parse("kind", &text("kind")?).map_err(corrupt)?,
                    payload: json("payload", &text("payload")?)?,
                    status: ActionStatus::parse("status", &text("status")?).map_err(corrupt)?,
                    attempts: attempts(row.try_get("attempts").map_err(corrupt)?),
                    last_error: row.try_get("last_error").map_err(corrupt)?,
                    internal_errors: attempts(row.try_get("internal_errors").map_err(corrupt)?),
                })
            }

            /// Runs a lease statement of `lease_deliveries` or `lease_actions`, which both bind
            /// `$1` the lease's end, `$2` now, `$3` the limit, `$4` the oldest live heartbeat and
            /// `$5` this holder.
            async fn lease_rows(&self, sql: &'static str, lease: Duration, limit: u32) -> Result<Vec<$row>, StoreError> {
                let now = Utc::now();
                let rows = statement!(sql, lease_end(lease), now, i64::from(limit), self.live_since(), &self.holder)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows)
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
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> Result<(), StoreError> {
                execute!(&self.pool, "SELECT 1");
                Ok(())
            }

            fn holder(&self) -> &str {
                &self.holder
            }

            async fn heartbeat(&self) -> Result<(), StoreError> {
                let now = Utc::now();
                execute!(
                    &self.pool,
                    "INSERT INTO workers (id, started_at, heartbeat_at) VALUES ($1, $2, $2) \
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                    &self.holder, now
                );
                // Rows of processes gone for a day are no use to anyone.
                let day_ago = now - chrono::Duration::days(1);
                execute!(&self.pool, "DELETE FROM workers WHERE heartbeat_at < $1", day_ago);
                Ok(())
            }

            async fn retire(&self) -> Result<(), StoreError> {
                execute!(&self.pool, "DELETE FROM workers WHERE id = $1", &self.holder);
                Ok(())
            }

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
                     arr_usd, tier_source, enrichment_failed, topic, sentiment, shadow, caller) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                     $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, \
                     $32, $33, $34) \
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
                    };
                }
                let inserted = if $backend == "postgres" {
                    // One statement, so one round trip: the decision, its actions (only when
                    // the decision went in) and the delivery marked done. A statement is atomic.
                    let row = bind_decision!(sqlx::query(sqlx::AssertSqlSafe(format!(
                        "WITH dec AS ({INSERT} RETURNING id), \
                         act AS (INSERT INTO actions (decision_id, source, ticket_id, kind, payload, \
                           status, attempts, next_attempt_at, created_at, priority) \
                           SELECT dec.id, $2, $3, a.elem->>'kind', a.elem->>'payload', 'pending', 0, $23, $23, $35 \
                           FROM dec, jsonb_array_elements($36::jsonb) WITH ORDINALITY AS a(elem, n) \
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

            async fn accept_delivery(&self, d: &NewDelivery) -> Result<bool, StoreError> {
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
                .fetch_one(&self.pool)
                .await?;
                Ok(duplicates == 0)
            }

            async fn lease_deliveries(
                &self, lease: Duration, limit: u32,
            ) -> Result<Vec<PendingDelivery>, StoreError> {
                // Oldest first. The outer WHERE repeats the test so that a row another worker
                // leased between the pick and the update is not taken twice.
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
                       AND status = 'pending' AND ",
                    leasable!("deliveries"),
                    " RETURNING source, ticket_id, version, event_type, payload, attempts, internal_errors, \
                     trace_context"
                );
                let rows = self.lease_rows(sql, lease, limit).await?;
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
                            key: IdempotencyKey::new(
                                Source::parse("source", &text("source")?)
                                    .map_err(corrupt)?,
                                text("ticket_id")?,
                                text("version")?,
                            ),
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

            async fn lease_actions(&self, lease: Duration, limit: u32) -> Result<Vec<Action>, StoreError> {
                // Worst tickets first (on_fire, urgent, routine), then the longest due. A
                // MATERIALIZED CTE for the same reason as in `lease_deliveries`.
                let sql = concat!(
                    "WITH picked AS MATERIALIZED ( \
                       SELECT id FROM actions \
                       WHERE status = 'pending' AND next_attempt_at <= $2 AND ",
                    leasable!("actions"),
                    " ORDER BY priority, next_attempt_at, id LIMIT $3 ",
                    $skip_locked,
                    ") UPDATE actions SET locked_until = $1, locked_by = $5, attempts = attempts + 1 \
                     WHERE id IN (SELECT id FROM picked) AND status = 'pending' AND ",
                    leasable!("actions"),
                    " RETURNING ",
                    action_columns!()
                );
                let rows = self.lease_rows(sql, lease, limit).await?;
                let mut actions = Vec::with_capacity(rows.len());
                for row in &rows {
                    match Self::action_from_row(row) {
                        Ok(a) => actions.push(a),
                        // A row that cannot be read (an unknown kind: a manual edit, or a
                        // newer release's action) is given up with the reason; the others run.
                        Err(e) => {
                            let id: i64 = row.try_get("id").map_err(corrupt)?;
                            tracing::error!(action_id = id, error = %e, "an action row cannot be read; giving it up");
                            self.update_action(id, FAIL, &e.to_string(), Utc::now()).await?;
                        }
                    }
                }
                actions.sort_by_key(|a| a.id);
                Ok(actions)
            }

            async fn complete_actions(&self, ids: &[i64]) -> Result<u64, StoreError> {
                if ids.is_empty() {
                    return Ok(0);
                }
                let list = if $backend == "postgres" {
                    "SELECT (jsonb_array_elements_text($2::jsonb))::bigint"
                } else {
                    "SELECT value FROM json_each($2)"
                };
                let sql = sqlx::AssertSqlSafe(format!(
                    "UPDATE actions SET status = 'done', done_at = $1, locked_until = NULL, \
                     last_error = NULL WHERE id IN ({list}) AND status = 'pending'"
                ));
                Ok(execute!(&self.pool, sql, Utc::now(), ids_json(ids)))
            }

            async fn retry_action(
                &self, id: i64, error: &str, next_attempt_at: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                self.update_action(id, RETRY, error, next_attempt_at).await
            }

            async fn fail_action(&self, id: i64, error: &str) -> Result<(), StoreError> {
                self.update_action(id, FAIL, error, Utc::now()).await
            }

            async fn action_crashed(
                &self, id: i64, error: &str, next_attempt_at: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                self.update_action(id, CRASHED, error, next_attempt_at).await
            }

            async fn actions(&self, decision_id: &str) -> Result<Vec<Action>, StoreError> {
                let sql = concat!("SELECT ", action_columns!(), " FROM actions WHERE decision_id = $1 ORDER BY id");
                fetch_all!(&self.pool, Self::action_from_row, sql, decision_id)
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

            async fn upsert_score(&self, sc: &ScoreRow) -> Result<(), StoreError> {
                let now = Utc::now();
                // `value` for a BOOLEAN score, `string_value` for a CATEGORICAL one.
                let (value, string_value) = match &sc.value {
                    ScoreValue::Boolean(b) => (Some(i32::from(*b)), None),
                    ScoreValue::Categorical(v) => (None, Some(v.as_str())),
                };
                execute!(
                    &self.pool,
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

            async fn backlog(&self) -> Result<Backlog, StoreError> {
                let d = statement!(backlog_of!("deliveries", "received_at")).fetch_one(&self.pool).await?;
                let a = statement!(backlog_of!("actions", "created_at")).fetch_one(&self.pool).await?;
                // The same three columns of both rows.
                let counts = |row: &$row| -> Result<(i64, i64, Option<DateTime<Utc>>), StoreError> {
                    Ok((
                        row.try_get("pending").map_err(corrupt)?,
                        row.try_get("failed").map_err(corrupt)?,
                        row.try_get("oldest").map_err(corrupt)?,
                    ))
                };
                let (deliveries_pending, deliveries_failed, oldest_delivery) = counts(&d)?;
                let (actions_pending, actions_failed, oldest_action) = counts(&a)?;
                Ok(Backlog {
                    deliveries_pending, deliveries_failed, oldest_delivery,
                    actions_pending, actions_failed, oldest_action,
                })
            }

            async fn close(&self) {
                self.pool.close().await;
            }

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

            async fn audit_decisions(
                &self, from: DateTime<Utc>, to: DateTime<Utc>,
            ) -> Result<Vec<crate::domain::audit::AuditRow>, StoreError> {
                let rows = statement!(
                    "SELECT d.id, d.source, d.ticket_id, d.severity, d.confidence, d.prompt_version, \
                     d.model, d.fallback, d.fallback_reason, d.tier, d.request_id, d.input_tokens, d.output_tokens, \
                     d.cache_read_tokens, d.cache_write_tokens, d.cost_usd, d.model_latency_ms, \
                     d.model_retries, d.created_at, rv.verdict AS rv_verdict, \
                     rv.corrected_severity AS rv_severity, ov.verdict AS ov_verdict, \
                     ov.corrected_severity AS ov_severity, dl.webhook_version, dl.missing_fields, \
                     d.model_severity, d.weighting_rule, d.enrichment_failed, \
                     d.topic, d.sentiment, d.shadow, d.caller, rv.topic AS rv_topic, \
                     rv.sentiment AS rv_sentiment, rv.shadow AS rv_shadow \
                     FROM decisions d \
                     LEFT JOIN reviews rv ON rv.id = (SELECT MAX(r.id) FROM reviews r \
                       WHERE r.decision_id = d.id AND r.origin <> 'override') \
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
                        let missing: Option<String> = row.try_get("missing_fields").map_err(corrupt)?;
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
                            review: verdict("rv_verdict", "rv_severity")?,
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
                            review_labels: crate::domain::review::LabelVerdict {
                                topic: row.try_get("rv_topic").map_err(corrupt)?,
                                sentiment: sentiment(row.try_get("rv_sentiment").map_err(corrupt)?)?,
                                shadow: shadow(row.try_get("rv_shadow").map_err(corrupt)?)?,
                            },
                            caller: row.try_get("caller").map_err(corrupt)?,
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
