//! The outbox: the actions a decision implies, leased worst ticket first and completed, retried
//! or failed; an action row this release cannot read is given up with the reason.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::StoreError;
#[allow(clippy::wildcard_imports)]
use super::backend::*;
use crate::domain::{
    Source,
    work::{Action, ActionKind, ActionStatus},
};

/// The outbox of actions.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Leases up to `limit` pending actions that are due and not leased by a live worker, for
    /// `lease`, counting an attempt on each. Atomic across workers and replicas (`FOR UPDATE SKIP
    /// LOCKED` on PostgreSQL; SQLite serialises writers).
    async fn lease_actions(&self, lease: Duration, limit: u32) -> Result<Vec<Action>, StoreError>;

    /// Marks an action done; `false` when it was not pending any more (someone else finished it)
    /// or this holder does not hold its lease.
    async fn complete_action(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self.complete_actions(&[id]).await? == 1)
    }

    /// Marks many actions done in one statement; returns how many were still pending and
    /// leased by this holder (an action another holder took over is not this one's to finish).
    async fn complete_actions(&self, ids: &[i64]) -> Result<u64, StoreError>;

    /// Extends, to `lease` from now, the leases this holder still has on `ids` (the actions it
    /// is still working on); returns how many it still held.
    async fn extend_actions(&self, ids: &[i64], lease: Duration) -> Result<u64, StoreError>;

    /// Releases an action for another attempt at `next_attempt_at`, recording why this one failed.
    async fn retry_action(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Gives an action up for good (the tool rejected it as invalid or forbidden).
    async fn fail_action(&self, id: i64, error: &str) -> Result<(), StoreError>;

    /// Like [`Outbox::retry_action`] for an attempt that panicked: also counts it in
    /// `internal_errors`, which bounds such attempts.
    async fn action_crashed(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Every action of a decision, oldest first (for audits and tests).
    async fn actions(&self, decision_id: &str) -> Result<Vec<Action>, StoreError>;
}

macro_rules! impl_outbox {
    ($store:ident, $pool:ty, $row:ty, $backend:literal, $skip_locked:literal) => {
        impl $store {
            /// Releases the lease of a pending action and applies `set`, which binds `$1` (the
            /// error text) and `$2` (a time).
            async fn update_action(
                &self,
                id: i64,
                set: &'static str,
                error: &str,
                at: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                // Only the current holder's outcome counts: a holder whose lease was taken over
                // (it ran out, or the holder was taken for dead) changes nothing.
                let sql = sqlx::AssertSqlSafe(format!(
                    "UPDATE actions SET locked_until = NULL, {set} \
                     WHERE id = $3 AND {} AND locked_by = $4",
                    still_pending!()
                ));
                let mut conn = self.acquire(Queue::Outbox).await?;
                execute!(&mut *conn, sql, error, at, id, &self.holder);
                Ok(())
            }

            pub(super) fn action_from_row(row: &$row) -> Result<Action, StoreError> {
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
        }

        #[async_trait]
        impl Outbox for $store {
            async fn lease_actions(&self, lease: Duration, limit: u32) -> Result<Vec<Action>, StoreError> {
                // Worst tickets first (on_fire, urgent, routine), then the longest due. A
                // MATERIALIZED CTE, and an outer WHERE without `status`, for the same reasons as
                // in `lease_deliveries`.
                let sql = concat!(
                    "WITH picked AS MATERIALIZED ( \
                       SELECT id FROM actions \
                       WHERE status = 'pending' AND next_attempt_at <= $2 AND ",
                    action_leasable!(),
                    " ORDER BY priority, next_attempt_at, id LIMIT $3 ",
                    $skip_locked,
                    ") UPDATE actions SET locked_until = $1, locked_by = $5, attempts = attempts + 1 \
                     WHERE id IN (SELECT id FROM picked) AND ",
                    action_leasable!(),
                    " RETURNING ",
                    action_columns!()
                );
                let rows = self.lease_action_rows(sql, lease, limit).await?;
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
                let ids_match = ids_match!($backend);
                let still_pending = still_pending!();
                // Done counts only for the current holder (the lease names it): an action
                // another holder took over is that holder's to finish.
                let sql = sqlx::AssertSqlSafe(format!(
                    "UPDATE actions SET status = 'done', done_at = $1, locked_until = NULL, \
                     last_error = NULL WHERE {ids_match} AND {still_pending} AND locked_by = $3"
                ));
                let mut conn = self.acquire(Queue::Outbox).await?;
                Ok(execute!(&mut *conn, sql, Utc::now(), ids_json(ids), &self.holder))
            }

            async fn extend_actions(&self, ids: &[i64], lease: Duration) -> Result<u64, StoreError> {
                if ids.is_empty() {
                    return Ok(0);
                }
                let ids_match = ids_match!($backend);
                let still_pending = still_pending!();
                let sql = sqlx::AssertSqlSafe(format!(
                    // Only a lease still running: an attempt that just released its action (a
                    // retry sets `locked_until` NULL) must not be leased again by its keeper.
                    "UPDATE actions SET locked_until = $1 WHERE {ids_match} \
                     AND {still_pending} AND locked_by = $3 AND locked_until IS NOT NULL"
                ));
                Ok(execute!(&self.pool, sql, lease_end(lease), ids_json(ids), &self.holder))
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
        }
    };
}

for_both_backends!(impl_outbox);
