//! The routing log and everything else escalator keeps: accepted tickets and their decisions,
//! the inbox and outbox, the score outbox, the reviews, the audit's reads, the review's login
//! sessions.
//!
//! PostgreSQL in production, SQLite as the embedded default; the URL scheme of `DATABASE_URL`
//! chooses. Both speak the same SQL here (numbered `$n` placeholders, `ON CONFLICT`,
//! `RETURNING`), so each concern writes its statements once for both backends and they cannot
//! drift apart. One file per concern, each with the trait a consumer asks for alone
//! (`routing_log.rs`, `inbox.rs`, `outbox.rs`, `scores.rs`, `reviews.rs`, `audit.rs`,
//! `liveness.rs`, `sessions.rs`); `backend.rs` holds the two stores and what the statements
//! share. This file: the error, the sum [`Store`] for wiring, connecting and migrating.

mod audit;
mod backend;
mod followups;
mod group;
mod inbox;
mod liveness;
mod outbox;
mod paths;
mod redact;
mod reviews;
mod routing_log;
mod scores;
pub mod sessions;
pub mod settings;

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions},
};

pub use audit::AuditLog;
pub use backend::{PgStore, PoolPath, Recorded, SqliteStore};
pub use followups::{FollowUpLog, ThreadState};
pub use inbox::Inbox;
pub use liveness::{Backlog, Liveness};
pub use outbox::Outbox;
pub use paths::AcceptPath;
pub use redact::redact_url;
pub use reviews::{NewDraw, Reviews};
pub use routing_log::{Claim, ClaimOptions, RoutingLog, Undecided};
pub use scores::ScoreQueue;
pub use sessions::{SessionRow, SessionStore};
pub use settings::{DEFAULT_ACCEPT_CONNECTIONS, DEFAULT_STALE_AFTER, StoreSettings};

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

/// The whole store, for wiring: the sum of its concerns, each a trait a consumer asks for alone
/// ([`RoutingLog`], [`Inbox`], [`Outbox`], [`ScoreQueue`], [`Reviews`], [`AuditLog`],
/// [`Liveness`], [`SessionStore`], and [`AcceptPath`] for wiring). `Arc<dyn Store>` upcasts to
/// any of them.
pub trait Store:
    RoutingLog
    + Inbox
    + Outbox
    + ScoreQueue
    + Reviews
    + AuditLog
    + Liveness
    + SessionStore
    + FollowUpLog
    + AcceptPath
{
}

impl<T> Store for T where
    T: RoutingLog
        + Inbox
        + Outbox
        + ScoreQueue
        + Reviews
        + AuditLog
        + Liveness
        + SessionStore
        + FollowUpLog
        + AcceptPath
        + ?Sized
{
}

/// Every concern's trait, unnamed: `use escalator::store::prelude::*` lets a test or the wiring
/// call any method on an `Arc<dyn Store>`.
pub mod prelude {
    pub use super::{
        AcceptPath as _, AuditLog as _, FollowUpLog as _, Inbox as _, Liveness as _, Outbox as _,
        Reviews as _, RoutingLog as _, ScoreQueue as _, SessionStore as _, Store,
    };
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
/// migrations. On PostgreSQL with `accept_connections` set, the accept path gets a pool of its
/// own of that size and the worker the rest of `max_connections` ([`AcceptPath::accepting`]);
/// SQLite keeps one pool (it writes one transaction at a time whatever the pools).
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
        let (worker, accept) = settings.pool_sizes();
        let options = || {
            PgPoolOptions::new()
                .test_before_acquire(false)
                .acquire_timeout(settings.acquire_timeout)
        };
        let pool = open_migrated(
            options().max_connections(worker),
            opts.clone(),
            postgres_migrator(),
            POSTGRES_ERRORS,
        )
        .await?;
        let store = PgStore::new(pool)
            .stale_after(settings.stale_after)
            .in_flight_grace(settings.in_flight_grace);
        if accept == 0 {
            return Ok(Arc::new(store));
        }
        // Opened lazily: its connections are made as the first answers need them.
        let accept_pool = options().max_connections(accept).connect_lazy_with(opts);
        Ok(Arc::new(store.with_accept_pool(accept_pool)))
    } else if url.starts_with("sqlite:") {
        let opts = SqliteConnectOptions::from_str(url)
            .context("DATABASE_URL is not a valid sqlite URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout);
        let pool = open_migrated(pool, opts, sqlite_migrator(), SQLITE_ERRORS).await?;
        Ok(Arc::new(
            SqliteStore::new(pool)
                .stale_after(settings.stale_after)
                .in_flight_grace(settings.in_flight_grace),
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

/// Opens a pool with `pool`'s size and timeout and runs `migrator` on it: the steps both
/// backends share, written once. `errors` are the contexts of a failed open and a failed
/// migration.
async fn open_migrated<DB>(
    pool: sqlx::pool::PoolOptions<DB>,
    opts: <DB::Connection as sqlx::Connection>::Options,
    migrator: sqlx::migrate::Migrator,
    errors: [&'static str; 2],
) -> anyhow::Result<sqlx::Pool<DB>>
where
    DB: sqlx::Database,
    DB::Connection: sqlx::migrate::Migrate,
{
    use anyhow::Context as _;
    let [cannot_open, migrations_failed] = errors;
    let pool = pool.connect_with(opts).await.context(cannot_open)?;
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
