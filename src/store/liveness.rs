//! The store as the running process and its probes see it: which backend, whether the database
//! answers, this process's heartbeat (the lease holder every lease and claim names), and how much
//! work waits in the queues (for `/metrics`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::StoreError;
#[allow(clippy::wildcard_imports)]
use super::backend::*;

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

/// This process and the database: liveness, leases' holder, backlog.
#[async_trait]
pub trait Liveness: Send + Sync {
    /// `postgres` or `sqlite`, for logs.
    fn backend(&self) -> &'static str;

    /// Checks the database answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// This process's id as a lease holder: every lease and claim it takes names it, and its
    /// [`Liveness::heartbeat`] keeps them alive.
    fn holder(&self) -> &str;

    /// Refreshes this process's heartbeat. Leases and claims of a holder whose heartbeat is
    /// older than the store's `stale_after` are taken over at once by any other process.
    async fn heartbeat(&self) -> Result<(), StoreError>;

    /// Removes this process's heartbeat at the end of a graceful shutdown, so whatever it still
    /// holds is taken over without waiting.
    async fn retire(&self) -> Result<(), StoreError>;

    /// Closes the pool (end of graceful shutdown).
    async fn close(&self);

    /// Inbox and outbox backlog, for `/metrics`.
    async fn backlog(&self) -> Result<Backlog, StoreError>;

    /// On PostgreSQL, analyses the queue tables (`deliveries`, `actions`) whose rows changed
    /// by more than [`QUEUE_ANALYZE_CHANGES`] plus 2% since their last analysis, and returns
    /// their names; nothing on SQLite.
    ///
    /// Autovacuum analyses at most once a minute per database (`autovacuum_naptime`), while a
    /// queue's backlog can grow from none to 50,000 in that minute. On statistics that still
    /// say "almost nothing pending", PostgreSQL read and sorted every pending row to lease a
    /// batch of 64, and joined a batch of decisions to its deliveries through a scan of the
    /// whole table (`escalator bench` and the shared harness, issue 25): each batch got slower
    /// as the backlog grew. Only the columns the queue statements filter and sort on are
    /// sampled, never the payloads; `SKIP_LOCKED` leaves a table another replica is analysing.
    /// A role that may not analyse a table (not its owner) leaves it to autovacuum.
    async fn refresh_queue_statistics(&self) -> Result<Vec<&'static str>, StoreError>;
}

/// Row changes (inserts, updates, deletes) since a queue table's last analysis, beyond 2% of its
/// rows, after which [`Liveness::refresh_queue_statistics`] analyses it again.
pub(super) const QUEUE_ANALYZE_CHANGES: i64 = 1_000;

macro_rules! impl_liveness {
    ($store:ident, $pool:ty, $row:ty, $backend:literal, $skip_locked:literal) => {
        #[async_trait]
        impl Liveness for $store {
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
                    &self.holder,
                    now
                );
                // Rows of processes gone for a day are no use to anyone.
                let day_ago = now - chrono::Duration::days(1);
                execute!(
                    &self.pool,
                    "DELETE FROM workers WHERE heartbeat_at < $1",
                    day_ago
                );
                Ok(())
            }

            async fn retire(&self) -> Result<(), StoreError> {
                execute!(
                    &self.pool,
                    "DELETE FROM workers WHERE id = $1",
                    &self.holder
                );
                Ok(())
            }

            async fn close(&self) {
                // A second close of one pool can wait for ever on sqlx 0.9 (its permits are
                // counted again after the first close gave them back): two apps sharing one
                // store, as the replica tests do, hung the second shutdown in about one run in
                // three. Closing once is enough.
                // Both pools, whichever handle closes (one pool when every path shares it).
                for pool in [&self.pool, &self.accept_pool] {
                    if !pool.is_closed() {
                        pool.close().await;
                    }
                }
            }

            async fn refresh_queue_statistics(&self) -> Result<Vec<&'static str>, StoreError> {
                if $backend != "postgres" {
                    return Ok(Vec::new());
                }
                // The cumulative statistics system's counters: a catalog read, no table scan.
                // Only tables this role may analyse: their owner's privileges, a superuser's
                // or the database owner's (PostgreSQL 15's rule for ANALYZE). Another role would
                // get a WARNING and no analysis on every heartbeat; autovacuum still runs.
                let drifted: Vec<String> = sqlx::query_scalar(
                    "SELECT s.relname::text FROM pg_stat_user_tables s \
                     JOIN pg_class c ON c.oid = s.relid \
                     WHERE s.schemaname = current_schema() AND s.relname IN ('deliveries', 'actions') \
                     AND s.n_mod_since_analyze > $1 + s.n_live_tup / 50 \
                     AND (pg_has_role(current_user, c.relowner, 'USAGE') \
                       OR pg_has_role(current_user, (SELECT datdba FROM pg_database \
                         WHERE datname = current_database()), 'USAGE'))",
                )
                .bind(QUEUE_ANALYZE_CHANGES)
                .fetch_all(&self.pool)
                .await?;
                let mut analysed = Vec::new();
                for table in drifted {
                    let (name, sql) = match table.as_str() {
                        "deliveries" => (
                            "deliveries",
                            "ANALYZE (SKIP_LOCKED) deliveries \
                             (status, next_attempt_at, received_at, locked_until, locked_by)",
                        ),
                        "actions" => (
                            "actions",
                            "ANALYZE (SKIP_LOCKED) actions \
                             (status, priority, next_attempt_at, locked_until, locked_by, kind)",
                        ),
                        _ => continue,
                    };
                    execute!(&self.pool, sql);
                    analysed.push(name);
                }
                Ok(analysed)
            }

            async fn backlog(&self) -> Result<Backlog, StoreError> {
                let d = statement!(backlog_of!("deliveries", "received_at"))
                    .fetch_one(&self.pool)
                    .await?;
                let a = statement!(backlog_of!("actions", "created_at"))
                    .fetch_one(&self.pool)
                    .await?;
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
                    deliveries_pending,
                    deliveries_failed,
                    oldest_delivery,
                    actions_pending,
                    actions_failed,
                    oldest_action,
                })
            }
        }
    };
}

for_both_backends!(impl_liveness);
