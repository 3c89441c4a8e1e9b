//! The two backends, [`PgStore`] and [`SqliteStore`], and what every concern's statements share:
//! the column lists, the lease condition, the bind-run-read macros, the readers of a decision
//! row. Each concern (`routing_log.rs`, `inbox.rs`, `outbox.rs`, `scores.rs`, `reviews.rs`,
//! `audit.rs`, `liveness.rs`) writes its statements once and implements its trait for both
//! backends with [`for_both_backends!`], since PostgreSQL and SQLite accept the same statements
//! here. Timestamps are `TIMESTAMPTZ` on PostgreSQL and RFC 3339 UTC text on SQLite (which sorts
//! lexically, so range queries work on both).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{DEFAULT_STALE_AFTER, StoreError, group::GroupCommit};
use crate::{
    domain::{Decision, Route, Severity, Source, Tier, TierSource, Usage, work::NewAction},
    telemetry::metrics::metrics,
};

/// The routing log on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    /// The pool this handle's statements use: the worker's, or the accept path's.
    pub(super) pool: sqlx::PgPool,
    /// The accept path's pool (the same pool when there is one for every path).
    pub(super) accept_pool: sqlx::PgPool,
    /// Decisions waiting to be written in one statement (PostgreSQL; SQLite writes each).
    pub(super) records: Records,
    /// Tickets waiting to be stored and claimed in one statement (PostgreSQL; SQLite: each).
    pub(super) claims: Claims,
    /// Webhook deliveries waiting to be stored in one statement (PostgreSQL; SQLite: each).
    pub(super) accepts: Accepts,
    /// Which path this handle serves, for the pool-wait metric.
    pub(super) path: PoolPath,
    pub(super) holder: String,
    pub(super) stale_after: Duration,
    pub(super) in_flight_grace: Duration,
}

/// The routing log on SQLite (the embedded default).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// The pool this handle's statements use: the worker's, or the accept path's.
    pub(super) pool: sqlx::SqlitePool,
    /// The accept path's pool (the same pool when there is one for every path).
    pub(super) accept_pool: sqlx::SqlitePool,
    /// Decisions waiting to be written in one statement (PostgreSQL; SQLite writes each).
    pub(super) records: Records,
    /// Tickets waiting to be stored and claimed in one statement (PostgreSQL; SQLite: each).
    pub(super) claims: Claims,
    /// Webhook deliveries waiting to be stored in one statement (PostgreSQL; SQLite: each).
    pub(super) accepts: Accepts,
    /// Which path this handle serves, for the pool-wait metric.
    pub(super) path: PoolPath,
    pub(super) holder: String,
    pub(super) stale_after: Duration,
    pub(super) in_flight_grace: Duration,
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

/// A decision and its actions, waiting to be written with others ([`GroupCommit`]).
pub(super) type RecordWrite = (Decision, Vec<NewAction>);

/// The decisions waiting to be written together, and each one's outcome.
pub(super) type Records = std::sync::Arc<GroupCommit<RecordWrite, Result<Recorded, StoreError>>>;

/// A ticket to store and claim with others: its key, and its row of `tickets` (keys are its
/// columns) with `since`, from when its customer's other tickets are counted (null: not
/// counted).
pub(super) type ClaimWrite = (crate::domain::IdempotencyKey, serde_json::Value);

/// A claim's outcome: its customer's other tickets counted when its ticket went in, `None`
/// when its key was stored already.
pub(super) type ClaimResult = Result<Option<u32>, StoreError>;

/// The claims waiting to be written together, each with its [`ClaimResult`].
pub(super) type Claims = std::sync::Arc<GroupCommit<ClaimWrite, ClaimResult>>;

/// The webhook deliveries waiting to be stored together: each one's answer is `true` when it
/// is new, `false` for a repeat of its key.
pub(super) type Accepts =
    std::sync::Arc<GroupCommit<crate::domain::work::NewDelivery, Result<bool, StoreError>>>;

/// The path a store handle serves: its pool, and the label of its waits in
/// `escalator_db_pool_wait_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolPath {
    /// The worker's loops (and every other reader): waits are labelled by queue, `inbox` or
    /// `outbox`.
    Worker,
    /// Webhook deliveries made durable, gRPC `Classify` and `Route`: waits labelled `accept`.
    Accept,
}

/// The queue a statement works for, when its handle is the worker's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Queue {
    Inbox,
    Outbox,
}

impl PoolPath {
    /// The label of a wait for a connection for `queue` on this path.
    pub(super) fn label(self, queue: Queue) -> &'static str {
        match (self, queue) {
            (PoolPath::Accept, _) => "accept",
            (PoolPath::Worker, Queue::Inbox) => "inbox",
            (PoolPath::Worker, Queue::Outbox) => "outbox",
        }
    }
}

macro_rules! decision_columns {
    () => {
        "id, source, ticket_id, ticket_version, severity, route, confidence, \
     reasoning, prompt_version, model, fallback, fallback_reason, notes, tier, request_id, \
     input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, trace_id, \
     observation_id, created_at, model_latency_ms, model_retries, model_severity, weighting_rule, \
     arr_usd, tier_source, enrichment_failed, topic, sentiment, shadow, caller, supersedes"
    };
}
pub(super) use decision_columns;

macro_rules! review_columns {
    () => {
        "r.id, r.decision_id, r.reviewer, r.reviewed_at, r.verdict, r.corrected_severity, r.why, \
         r.origin, r.topic, r.sentiment, r.shadow, r.pass"
    };
}
pub(super) use review_columns;

/// A decision (qualified `d.`, as tickets share column names), its ticket and its sample.
macro_rules! review_item_columns {
    () => {
        "d.id, d.source, d.ticket_id, d.ticket_version, d.severity, d.route, d.confidence, \
         d.reasoning, d.prompt_version, d.model, d.fallback, d.fallback_reason, d.notes, d.tier, \
         d.request_id, d.input_tokens, d.output_tokens, d.cache_read_tokens, d.cache_write_tokens, \
         d.cost_usd, d.trace_id, d.observation_id, d.created_at, d.model_latency_ms, \
         d.model_retries, d.model_severity, d.weighting_rule, d.arr_usd, d.tier_source, \
         d.enrichment_failed, d.topic, d.sentiment, d.shadow, d.caller, d.supersedes, \
         t.subject AS t_subject, \
         t.body AS t_body, t.tier AS t_tier, t.arr_usd AS t_arr_usd, s.skipped_at AS s_skipped_at, \
         s.sample_day AS s_day, s.sample_source AS s_source, s.stratum AS s_stratum, \
         s.inclusion_probability AS s_pi, s.double_review AS s_double"
    };
}
pub(super) use review_item_columns;

macro_rules! action_columns {
    () => {
        "id, decision_id, source, ticket_id, kind, payload, status, attempts, last_error, \
         internal_errors"
    };
}
pub(super) use action_columns;

/// The condition under which a row of `$table` may be leased: not leased, its lease ran out
/// (before `$expired`), or its holder's heartbeat stopped (is older than `$live`). A holder never
/// takes its own live lease over. Binds: `$2` now, `$4` the oldest live heartbeat, `$5` this
/// holder; the outbox's statement also `$6` and `$7` ([`action_leasable!`]).
macro_rules! leasable {
    ($table:literal) => {
        leasable!($table, "$2", "$4")
    };
    ($table:literal, $expired:expr, $live:expr) => {
        concat!(
            "(",
            $table,
            ".locked_until IS NULL OR ",
            $table,
            ".locked_until < ",
            $expired,
            " OR (",
            $table,
            ".locked_by IS NOT NULL AND ",
            $table,
            ".locked_by <> $5 \
             AND NOT EXISTS (SELECT 1 FROM workers w \
             WHERE w.id = ",
            $table,
            ".locked_by AND w.heartbeat_at >= ",
            $live,
            ")))"
        )
    };
}
pub(super) use leasable;

/// The kinds of action a repeat would apply twice (a note: neither tool has an idempotency key
/// for it). Taken over from a dead holder only after whatever it had in flight has landed or
/// died: [`action_leasable!`] binds `$6`, the oldest heartbeat that still counts as alive for
/// their holder (`stale_after` plus the clients' request timeout ago), and `$7`, the latest
/// expiry after which such a lease may be taken (the request timeout ago). Labels, priority,
/// assignment and the Pylon update are taken over at once.
macro_rules! non_idempotent_kinds {
    () => {
        "('plain.note', 'pylon.note')"
    };
}
pub(super) use non_idempotent_kinds;

/// [`leasable!`] for the outbox: a non-idempotent action's lease and holder are held to the
/// later bounds `$7` and `$6`.
macro_rules! action_leasable {
    () => {
        leasable!(
            "actions",
            concat!(
                "(CASE WHEN actions.kind IN ",
                non_idempotent_kinds!(),
                " THEN $7 ELSE $2 END)"
            ),
            concat!(
                "(CASE WHEN actions.kind IN ",
                non_idempotent_kinds!(),
                " THEN $6 ELSE $4 END)"
            )
        )
    };
}
pub(super) use action_leasable;

/// `status = 'pending'` for a row found by its key, spelled so that PostgreSQL cannot prove it
/// implies the predicate of the partial indexes `deliveries_pending` and `actions_pending` (the
/// CHECK constraints allow only these three statuses). The row is then looked up in the primary
/// key. Spelled `status = 'pending'`, the planner may instead read the whole partial index and
/// filter it, once per statement or once per id, when the table's statistics are older than its
/// backlog: seen under load at 0.3 ms per id with 6,000 pending actions, and at 30 ms per batch
/// of decisions with 90,000 pending deliveries, which made the queue fall further behind.
macro_rules! still_pending {
    () => {
        "status NOT IN ('done', 'failed')"
    };
    ($table:literal) => {
        concat!($table, ".status NOT IN ('done', 'failed')")
    };
}
pub(super) use still_pending;

/// How many rows of `$table` are pending and failed, and when (`$at`) the oldest pending one
/// came in: the one statement for both the inbox and the outbox. Spelled with OR so that
/// PostgreSQL can read the two partial indexes `*_pending` and `*_failed`.
macro_rules! backlog_of {
    ($table:literal, $at:literal) => {
        concat!(
            "SELECT COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0) AS pending, \
             COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS failed, \
             MIN(CASE WHEN status = 'pending' THEN ",
            $at,
            " END) AS oldest FROM ",
            $table,
            " WHERE status = 'pending' OR status = 'failed'"
        )
    };
}
pub(super) use backlog_of;

/// The decision's severity as an action priority: lower runs first.
pub(super) fn priority(severity: Severity) -> i16 {
    match severity {
        Severity::OnFire => 0,
        Severity::Urgent => 1,
        Severity::Routine => 2,
    }
}

/// The actions of a decision as one JSON array, so every backend inserts them in one statement.
pub(super) fn actions_json(actions: &[NewAction]) -> String {
    serde_json::Value::Array(
        actions
            .iter()
            .map(|a| serde_json::json!({"kind": a.kind.as_str(), "payload": a.payload.to_string()}))
            .collect(),
    )
    .to_string()
}

/// `id` is one of the ids bound as `$2` ([`ids_json`]). On PostgreSQL the JSON array is turned
/// into one `bigint[]` (`[1,2]` -> `{1,2}`), computed once per statement, so the planner can look
/// the ids up in the primary key (with [`still_pending!`]). A join against
/// `jsonb_array_elements_text($2)` instead let it choose a nested loop that expanded the whole
/// list once per pending row: quadratic in the batch, 0.6 s for 512 ids once the outbox fell
/// behind, which made it fall further behind.
macro_rules! ids_match {
    ($backend:literal) => {
        if $backend == "postgres" {
            "id = ANY(translate($2, '[]', '{}')::bigint[])"
        } else {
            "id IN (SELECT value FROM json_each($2))"
        }
    };
}
pub(super) use ids_match;

/// The idempotency key of a row with `source`, `ticket_id` and `version` columns; inside a
/// closure or function returning `Result<_, StoreError>` (a column that cannot be read returns
/// [`StoreError::Corrupt`] from it).
macro_rules! key_of_row {
    ($row:expr) => {{
        let row = $row;
        let text = |col: &str| row.try_get::<String, _>(col).map_err(corrupt);
        IdempotencyKey::new(
            Source::parse("source", &text("source")?).map_err(corrupt)?,
            text("ticket_id")?,
            text("version")?,
        )
    }};
}
pub(super) use key_of_row;

/// Ids as a JSON array, bound as one text parameter on both backends.
pub(super) fn ids_json(ids: &[i64]) -> String {
    serde_json::Value::from(ids.to_vec()).to_string()
}

pub(super) fn attempts(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// A row that could not be read back: a column's value, or its parse into a domain type.
pub(super) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

pub(super) fn json(col: &str, text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

/// A stored sentiment label (NULL: not labelled or not judged).
pub(super) fn sentiment(
    text: Option<String>,
) -> Result<Option<crate::domain::Sentiment>, StoreError> {
    text.map(|t| crate::domain::Sentiment::parse("sentiment", &t).map_err(corrupt))
        .transpose()
}

/// A stored shadow map (NULL: none asked or judged).
pub(super) fn shadow(
    text: Option<String>,
) -> Result<std::collections::BTreeMap<String, bool>, StoreError> {
    crate::taxonomy::shadow_from_json(text.as_deref()).map_err(StoreError::Corrupt)
}

pub(super) fn lease_end(lease: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60))
}

/// The payload key an older release kept a delivery's `traceparent` under (now the
/// `trace_context` column, migration 0050).
pub(super) const LEGACY_TRACEPARENT_KEY: &str = "_traceparent";

// The statuses written below are the spellings of `ActionStatus` and `DeliveryStatus` (a test
// holds them to the tables' CHECK constraints).

/// What an attempt that failed but may succeed later writes: the error, and when to try again.
pub(super) const RETRY: &str = "last_error = $1, next_attempt_at = $2";
/// What giving up writes: failed for good, with the reason and when.
pub(super) const FAIL: &str = "status = 'failed', last_error = $1, done_at = $2";
/// What an attempt that panicked or failed unexpectedly writes: as [`RETRY`], counted in
/// `internal_errors` (which bounds such attempts).
pub(super) const CRASHED: &str =
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
pub(super) use statement;

/// Runs `$sql`; how many rows it changed.
macro_rules! execute {
    ($ex:expr, $sql:expr $(, $bind:expr)* $(,)?) => {
        statement!($sql $(, $bind)*).execute($ex).await?.rows_affected()
    };
}
pub(super) use execute;

/// Every row of `$sql`, each read by `$from_row`.
macro_rules! fetch_all {
    ($ex:expr, $from_row:expr, $sql:expr $(, $bind:expr)* $(,)?) => {{
        let rows = statement!($sql $(, $bind)*).fetch_all($ex).await?;
        rows.iter().map($from_row).collect::<Result<Vec<_>, StoreError>>()
    }};
}
pub(super) use fetch_all;

/// The row of `$sql`, if there is one, read by `$from_row`.
macro_rules! fetch_optional {
    ($ex:expr, $from_row:expr, $sql:expr $(, $bind:expr)* $(,)?) => {{
        let row = statement!($sql $(, $bind)*).fetch_optional($ex).await?;
        row.as_ref().map($from_row).transpose()
    }};
}
pub(super) use fetch_optional;

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
pub(super) use from_columns;

macro_rules! impl_backend {
    ($store:ident, $pool:ty, $row:ty, $backend:literal, $skip_locked:literal) => {
        impl $store {
            /// A store over an already migrated pool, holding leases under a fresh holder id;
            /// every path shares the pool.
            pub fn new(pool: $pool) -> Self {
                Self {
                    accept_pool: pool.clone(),
                    records: Records::default(),
                    claims: Claims::default(),
                    accepts: Accepts::default(),
                    pool,
                    path: PoolPath::Worker,
                    holder: uuid::Uuid::now_v7().to_string(),
                    stale_after: DEFAULT_STALE_AFTER,
                    in_flight_grace: Duration::ZERO,
                }
            }

            /// Gives the accept path `accept_pool`, a pool of its own (see
            /// [`AcceptPath::accepting`](super::AcceptPath::accepting)).
            #[must_use]
            pub fn with_accept_pool(mut self, accept_pool: $pool) -> Self {
                self.accept_pool = accept_pool;
                self
            }

            /// The same store (same holder) over the accept path's pool.
            #[must_use]
            pub fn accept_handle(&self) -> Self {
                // Queues of its own, so its writes go over its own pool.
                Self {
                    pool: self.accept_pool.clone(),
                    path: PoolPath::Accept,
                    records: Records::default(),
                    claims: Claims::default(),
                    accepts: Accepts::default(),
                    ..self.clone()
                }
            }

            /// A connection of this handle's pool for `queue`; the wait is observed in
            /// `escalator_db_pool_wait_seconds{path}`.
            pub(super) async fn acquire(
                &self,
                queue: Queue,
            ) -> Result<sqlx::pool::PoolConnection<<$pool as PoolDb>::Db>, StoreError> {
                let started = std::time::Instant::now();
                let conn = self.pool.acquire().await;
                metrics()
                    .db_pool_wait
                    .with_label_values(&[self.path.label(queue)])
                    .observe(started.elapsed().as_secs_f64());
                Ok(conn?)
            }

            /// Sets how old a holder's heartbeat may be before its leases are taken over.
            #[must_use]
            pub fn stale_after(mut self, stale_after: Duration) -> Self {
                self.stale_after = stale_after;
                self
            }

            /// Sets how long a request to a ticketing tool may still land after its sender
            /// stopped (the clients' timeout): a note leased by a dead holder waits that much
            /// longer before it is taken over.
            #[must_use]
            pub fn in_flight_grace(mut self, grace: Duration) -> Self {
                self.in_flight_grace = grace;
                self
            }

            /// The oldest heartbeat that still counts as alive.
            pub(super) fn live_since(&self) -> DateTime<Utc> {
                Utc::now()
                    - chrono::Duration::from_std(self.stale_after)
                        .unwrap_or(chrono::Duration::seconds(6))
            }

            /// The pool, for tests and the action worker.
            pub fn pool(&self) -> &$pool {
                &self.pool
            }

            /// The usage columns of a decision row: a decision and an audit row read them alike.
            pub(super) fn usage_from_row(row: &$row) -> Result<Usage, StoreError> {
                Ok(from_columns!(
                    row,
                    Usage {
                        request_id,
                        input_tokens,
                        output_tokens,
                        cache_read_tokens,
                        cache_write_tokens,
                        cost_usd,
                        model_latency_ms,
                        model_retries,
                    }
                ))
            }

            pub(super) fn decision_from_row(row: &$row) -> Result<Decision, StoreError> {
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
                    model_severity: match row
                        .try_get::<Option<String>, _>("model_severity")
                        .map_err(corrupt)?
                    {
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
                    supersedes: row.try_get("supersedes").map_err(corrupt)?,
                })
            }

            /// Runs a lease statement of `lease_deliveries` or `lease_actions`, which both bind
            /// `$1` the lease's end, `$2` now, `$3` the limit, `$4` the oldest live heartbeat and
            /// `$5` this holder.
            pub(super) async fn lease_rows(
                &self,
                queue: Queue,
                sql: &'static str,
                lease: Duration,
                limit: u32,
            ) -> Result<Vec<$row>, StoreError> {
                let mut conn = self.acquire(queue).await?;
                let now = Utc::now();
                let rows = statement!(
                    sql,
                    lease_end(lease),
                    now,
                    i64::from(limit),
                    self.live_since(),
                    &self.holder
                )
                .fetch_all(&mut *conn)
                .await?;
                Ok(rows)
            }

            /// As [`Self::lease_rows`] for `lease_actions`, which also binds `$6` the oldest
            /// heartbeat still alive for a non-idempotent action's holder and `$7` the latest
            /// expiry after which such an action's lease may be taken.
            pub(super) async fn lease_action_rows(
                &self,
                sql: &'static str,
                lease: Duration,
                limit: u32,
            ) -> Result<Vec<$row>, StoreError> {
                let mut conn = self.acquire(Queue::Outbox).await?;
                let now = Utc::now();
                let grace = chrono::Duration::from_std(self.in_flight_grace)
                    .unwrap_or(chrono::Duration::seconds(60));
                let live_since = self.live_since();
                let rows = statement!(
                    sql,
                    lease_end(lease),
                    now,
                    i64::from(limit),
                    live_since,
                    &self.holder,
                    live_since - grace,
                    now - grace
                )
                .fetch_all(&mut *conn)
                .await?;
                Ok(rows)
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

/// Writes `$impl!` (a concern's implementation) for both backends: PostgreSQL, and SQLite, which
/// has no row locks (writers are serialised, so an UPDATE alone is atomic: no `SKIP LOCKED`).
macro_rules! for_both_backends {
    ($impl:ident) => {
        $impl!(
            PgStore,
            sqlx::PgPool,
            sqlx::postgres::PgRow,
            "postgres",
            "FOR UPDATE SKIP LOCKED"
        );
        $impl!(
            SqliteStore,
            sqlx::SqlitePool,
            sqlx::sqlite::SqliteRow,
            "sqlite",
            ""
        );
    };
}
pub(super) use for_both_backends;

for_both_backends!(impl_backend);
