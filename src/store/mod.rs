//! The routing log: accepted tickets, decisions and their pending actions.
//!
//! PostgreSQL in production, SQLite as the embedded default; the URL scheme of `DATABASE_URL`
//! chooses. Both speak the same SQL here (numbered `$n` placeholders, `ON CONFLICT`,
//! `RETURNING`), so one macro writes both implementations and they cannot drift apart.
//!
//! Over 450 lines: the `Store` port (every method documented with its guarantees) and its row
//! types; the SQL is in sql.rs.

mod redact;
pub mod sessions;
pub mod settings;
mod sql;

use std::{str::FromStr, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions},
};

use crate::domain::{
    Decision, IdempotencyKey, Source, Ticket,
    work::{Action, NewAction, NewDelivery, PendingDelivery},
};

pub use redact::redact_url;
pub use sessions::{SessionRow, SessionStore};
pub use settings::{DEFAULT_STALE_AFTER, StoreSettings};
pub use sql::{PgStore, SqliteStore};

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (connection refused, pool timed out, closed): the caller
    /// should answer "retry later".
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// A row in the log could not be read back as a domain value (a bug or a manual edit).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Any other database error.
    #[error("database error")]
    Unexpected(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            // The server is restarting or shutting down (class 08 connection exceptions, 57P01
            // admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now): retry later.
            sqlx::Error::Database(ref db)
                if db
                    .code()
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57P0")) =>
            {
                StoreError::Unavailable(e)
            }
            other => StoreError::Unexpected(other),
        }
    }
}

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

/// How much work waits in the inbox and the outbox, read at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Backlog {
    /// Deliveries not yet decided.
    pub deliveries_pending: i64,
    /// Deliveries given up on.
    pub deliveries_failed: i64,
    /// When the oldest pending delivery was received.
    pub oldest_delivery: Option<DateTime<Utc>>,
    /// Actions not yet done.
    pub actions_pending: i64,
    /// Actions given up on.
    pub actions_failed: i64,
    /// When the oldest pending action was logged.
    pub oldest_action: Option<DateTime<Utc>>,
}

/// A routing score waiting to be sent to Langfuse (or sent).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    /// Idempotency id, also the Langfuse score id.
    pub id: String,
    /// The decision it judges.
    pub decision_id: String,
    /// The decision's trace, when traced.
    pub trace_id: Option<String>,
    /// The generation span of the model call, when there was one.
    pub observation_id: Option<String>,
    /// The ticket id (Langfuse session id).
    pub session_id: String,
    /// Score name (`routing_correct`).
    pub name: String,
    /// The value: `routing_correct` is BOOLEAN (1 correct, 0 corrected), `corrected_severity`
    /// CATEGORICAL (the severity the reviewer says is right).
    pub value: ScoreValue,
    /// Free text from the reviewer (e.g. the corrected route).
    pub comment: Option<String>,
    /// JSON object of filterable context (severity, route, prompt version, model).
    pub metadata: String,
    /// Failed send attempts so far.
    pub attempts: i32,
}

/// A score's value and, with it, its Langfuse `dataType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScoreValue {
    /// `dataType: BOOLEAN`, sent as `1` or `0`.
    Boolean(bool),
    /// `dataType: CATEGORICAL`, sent as the string.
    Categorical(String),
}

impl ScoreValue {
    /// The Langfuse `dataType` (also the stored `data_type`).
    pub fn data_type(&self) -> &'static str {
        match self {
            ScoreValue::Boolean(_) => "BOOLEAN",
            ScoreValue::Categorical(_) => "CATEGORICAL",
        }
    }
}

/// The routing log (and, through [`SessionStore`], the review's login sessions).
#[async_trait]
pub trait Store: SessionStore + Send + Sync {
    /// `postgres` or `sqlite`, for logs.
    fn backend(&self) -> &'static str;

    /// Checks the database answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// This process's id as a lease holder: every lease and claim it takes names it, and its
    /// [`Store::heartbeat`] keeps them alive.
    fn holder(&self) -> &str;

    /// Refreshes this process's heartbeat. Leases and claims of a holder whose heartbeat is
    /// older than the store's `stale_after` are taken over at once by any other process.
    async fn heartbeat(&self) -> Result<(), StoreError>;

    /// Removes this process's heartbeat at the end of a graceful shutdown, so whatever it still
    /// holds is taken over without waiting.
    async fn retire(&self) -> Result<(), StoreError>;

    /// Makes the ticket durable under its idempotency key and claims it for `lease`.
    async fn claim(&self, ticket: &Ticket, lease: Duration) -> Result<Claim, StoreError> {
        Ok(self
            .claim_counting(ticket, lease, &ClaimOptions::default())
            .await?
            .0)
    }

    /// [`Store::claim`], and for a new claim also the number of other tickets (distinct ids)
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

    /// Like [`Store::retry_delivery`] for an attempt that panicked or failed unexpectedly:
    /// also counts it in `internal_errors`, which bounds such attempts.
    async fn delivery_crashed(
        &self,
        key: &IdempotencyKey,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Leases up to `limit` pending actions that are due and not leased by a live worker, for
    /// `lease`, counting an attempt on each. Atomic across workers and replicas (`FOR UPDATE SKIP
    /// LOCKED` on PostgreSQL; SQLite serialises writers).
    async fn lease_actions(&self, lease: Duration, limit: u32) -> Result<Vec<Action>, StoreError>;

    /// Marks an action done; `false` when it was not pending any more (someone else finished it).
    async fn complete_action(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self.complete_actions(&[id]).await? == 1)
    }

    /// Marks many actions done in one statement; returns how many were still pending.
    async fn complete_actions(&self, ids: &[i64]) -> Result<u64, StoreError>;

    /// Releases an action for another attempt at `next_attempt_at`, recording why this one failed.
    async fn retry_action(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Gives an action up for good (the tool rejected it as invalid or forbidden).
    async fn fail_action(&self, id: i64, error: &str) -> Result<(), StoreError>;

    /// Like [`Store::retry_action`] for an attempt that panicked: also counts it in
    /// `internal_errors`, which bounds such attempts.
    async fn action_crashed(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Every action of a decision, oldest first (for audits and tests).
    async fn actions(&self, decision_id: &str) -> Result<Vec<Action>, StoreError>;

    /// Tickets from `source` whose claim ran out without a decision (the process deciding them
    /// died), oldest first, for the worker to decide.
    async fn undecided_tickets(
        &self,
        source: Source,
        limit: u32,
    ) -> Result<Vec<Undecided>, StoreError>;

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

    /// Inbox and outbox backlog, for `/metrics`.
    async fn backlog(&self) -> Result<Backlog, StoreError>;

    /// Closes the pool (end of graceful shutdown).
    async fn close(&self);

    // The daily review (`crate::review`): samples and verdicts.

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

    // The weekly audit (`crate::audit`): reads only, besides the refused webhooks it counts.

    /// Every decision logged in `[from, to)`, oldest first, with its last sampled-review
    /// verdict, its last override and the version of the delivery it came from.
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

    /// Counts a signed webhook the parse refused (never stored as a delivery), with its
    /// payload version when it could be read.
    async fn record_rejection(
        &self,
        source: Source,
        webhook_version: Option<&str>,
        reason: &str,
    ) -> Result<(), StoreError>;
}

/// The PostgreSQL migrations, run by every replica at start.
///
/// Safe with several replicas starting at once: sqlx 0.9's `Migrator::run` (with `locking`
/// on, its default) first takes the session-level advisory lock
/// `pg_advisory_lock(0x3d32ad9e * crc32(current_database()))` (`sqlx-postgres` 0.9.0,
/// `src/migrate.rs`, `lock`), so a second replica waits, then finds the migrations applied
/// and goes on. Each migration runs in its own transaction and the lock dies with its
/// connection, so a replica killed mid-migration leaves nothing half-applied and blocks no
/// one. `tests/api/migrations.rs` starts two processes at once on an empty database.
///
/// Migrations a newer release applied are ignored (`set_ignore_missing`), so during a rolling
/// upgrade an old replica that restarts still starts, and a release can be rolled back: the
/// migrations are additive (README, "Upgrades and migrations"). A changed checksum of a
/// migration this release knows still stops the start.
pub fn postgres_migrator() -> sqlx::migrate::Migrator {
    let mut m = sqlx::migrate!("./migrations/postgres");
    m.set_ignore_missing(true);
    m
}

/// The SQLite migrations, with the same policy as [`postgres_migrator`].
fn sqlite_migrator() -> sqlx::migrate::Migrator {
    let mut m = sqlx::migrate!("./migrations/sqlite");
    m.set_ignore_missing(true);
    m
}

/// Opens the database named by `settings.url` (creating a missing SQLite file) and runs its
/// migrations.
///
/// # Errors
/// When the URL has an unknown scheme, the database cannot be reached, or a migration fails.
pub async fn connect(settings: &StoreSettings) -> anyhow::Result<Arc<dyn Store>> {
    use anyhow::Context as _;
    let (url, unread) = redact::for_driver(&settings.url);
    for name in unread {
        tracing::warn!(
            parameter = %name,
            "DATABASE_URL: the driver does not read this parameter; it is ignored"
        );
    }
    let url = url.as_ref();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let opts =
            PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid postgres URL")?;
        // No ping before every query: it doubled the round trips of the hot path. A
        // connection the server dropped fails its next query as `Unavailable` (the caller
        // answers 503 or retries) and the pool replaces it.
        let pool = PgPoolOptions::new().test_before_acquire(false);
        let pool =
            open_migrated(pool, opts, settings, postgres_migrator(), POSTGRES_ERRORS).await?;
        Ok(Arc::new(
            PgStore::new(pool).stale_after(settings.stale_after),
        ))
    } else if url.starts_with("sqlite:") {
        let opts = SqliteConnectOptions::from_str(url)
            .context("DATABASE_URL is not a valid sqlite URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new();
        let pool = open_migrated(pool, opts, settings, sqlite_migrator(), SQLITE_ERRORS).await?;
        Ok(Arc::new(
            SqliteStore::new(pool).stale_after(settings.stale_after),
        ))
    } else {
        anyhow::bail!(
            "DATABASE_URL must start with postgres:// or sqlite:// (got scheme {:?})",
            url.split(':').next().unwrap_or("")
        )
    }
}

/// What [`connect`] says when PostgreSQL cannot be reached, and when its migrations fail.
const POSTGRES_ERRORS: [&str; 2] = [
    "cannot connect to PostgreSQL (DATABASE_URL)",
    "PostgreSQL migrations failed",
];
/// The same for SQLite.
const SQLITE_ERRORS: [&str; 2] = [
    "cannot open the SQLite database (DATABASE_URL)",
    "SQLite migrations failed",
];

/// Opens a pool sized and timed by `settings` and runs `migrator` on it: the steps both
/// backends share, written once. `errors` are the contexts of a failed open and a failed
/// migration.
async fn open_migrated<DB>(
    pool: sqlx::pool::PoolOptions<DB>,
    opts: <DB::Connection as sqlx::Connection>::Options,
    settings: &StoreSettings,
    migrator: sqlx::migrate::Migrator,
    errors: [&'static str; 2],
) -> anyhow::Result<sqlx::Pool<DB>>
where
    DB: sqlx::Database,
    DB::Connection: sqlx::migrate::Migrate,
{
    use anyhow::Context as _;
    let [cannot_open, migrations_failed] = errors;
    let pool = pool
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(opts)
        .await
        .context(cannot_open)?;
    migrator.run(&pool).await.context(migrations_failed)?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use crate::domain::work::{ActionStatus, DeliveryStatus};

    /// The typed statuses are exactly what the tables accept, on both backends.
    #[test]
    fn queue_statuses_are_the_tables_own() {
        let list = |all: Vec<&str>| {
            let quoted: Vec<String> = all.iter().map(|s| format!("'{s}'")).collect();
            format!("CHECK (status IN ({}))", quoted.join(", "))
        };
        let actions = list(ActionStatus::ALL.iter().map(|s| s.as_str()).collect());
        let deliveries = list(DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect());
        for dialect in ["postgres", "sqlite"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dialect);
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
            assert!(read("0001_routing_log.sql").contains(&actions), "{dialect}");
            assert!(
                read("0002_deliveries.sql").contains(&deliveries),
                "{dialect}"
            );
        }
    }
}
