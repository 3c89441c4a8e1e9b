//! The routing log: accepted tickets, decisions and their pending actions.
//!
//! PostgreSQL in production, SQLite as the embedded default; the URL scheme of `DATABASE_URL`
//! chooses. Both speak the same SQL here (numbered `$n` placeholders, `ON CONFLICT`,
//! `RETURNING`), so one macro writes both implementations and they cannot drift apart.

mod sql;

use std::{str::FromStr, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions},
};

use crate::domain::{Decision, IdempotencyKey, Source, Ticket};

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

/// The outcome of recording a decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// The decision and its actions were written.
    New,
    /// A decision for the same key was already logged (a concurrent duplicate won the race);
    /// nothing was written and this is the stored one.
    Existing(Box<Decision>),
}

/// An action a decision implies, written in the same transaction as the decision and executed
/// later from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAction {
    /// What to do (e.g. `plain.label`); unique per decision, so an action is logged once.
    pub kind: String,
    /// Everything the executor needs, as JSON.
    pub payload: serde_json::Value,
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
    /// 1 correct, 0 corrected.
    pub value: i32,
    /// Free text from the reviewer (e.g. the corrected route).
    pub comment: Option<String>,
    /// JSON object of filterable context (severity, route, prompt version, model).
    pub metadata: String,
    /// Failed send attempts so far.
    pub attempts: i32,
}

/// The routing log.
#[async_trait]
pub trait Store: Send + Sync {
    /// `postgres` or `sqlite`, for logs.
    fn backend(&self) -> &'static str;

    /// Checks the database answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Makes the ticket durable under its idempotency key and claims it for `lease`.
    async fn claim(&self, ticket: &Ticket, lease: Duration) -> Result<Claim, StoreError>;

    /// The decision logged for `key`, if any.
    async fn decision(&self, key: &IdempotencyKey) -> Result<Option<Decision>, StoreError>;

    /// Writes the decision and its actions in one transaction.
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

    /// Actions not yet done: (pending, failed).
    async fn action_backlog(&self) -> Result<(i64, i64), StoreError>;

    /// Closes the pool (end of graceful shutdown).
    async fn close(&self);
}

/// Connection settings of the store.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// `postgres://…` or `sqlite://…`.
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
    /// How long a request waits for a connection before the store counts as unavailable.
    pub acquire_timeout: Duration,
}

/// Opens the database named by `settings.url` (creating a missing SQLite file) and runs its
/// migrations.
///
/// # Errors
/// When the URL has an unknown scheme, the database cannot be reached, or a migration fails.
pub async fn connect(settings: &StoreSettings) -> anyhow::Result<Arc<dyn Store>> {
    use anyhow::Context as _;
    let url = settings.url.as_str();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let opts =
            PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid postgres URL")?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(opts)
            .await
            .context("cannot connect to PostgreSQL (DATABASE_URL)")?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .context("PostgreSQL migrations failed")?;
        Ok(Arc::new(PgStore::new(pool)))
    } else if url.starts_with("sqlite:") {
        let opts = SqliteConnectOptions::from_str(url)
            .context("DATABASE_URL is not a valid sqlite URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(opts)
            .await
            .context("cannot open the SQLite database (DATABASE_URL)")?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .context("SQLite migrations failed")?;
        Ok(Arc::new(SqliteStore::new(pool)))
    } else {
        anyhow::bail!(
            "DATABASE_URL must start with postgres:// or sqlite:// (got scheme {:?})",
            url.split(':').next().unwrap_or("")
        )
    }
}

/// The database URL with any password replaced by `***`, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://escalator.db"), "sqlite://escalator.db");
    }
}
