//! Follow-ups: a thread's messages as the inbox stored them (the conversation a re-decision
//! reads), the per-thread window and count that bound re-decisions, whether a person
//! changed the routing since escalator last acted (the override verdicts the review stores),
//! and what escalator's done actions set on the thread (compared with the tool's routing).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::StoreError;
#[allow(clippy::wildcard_imports)]
use super::backend::*;
use crate::domain::{
    Decision, Source,
    conversation::{Author, MESSAGE_VERSION_PREFIX, Message},
    work::Action,
};

/// What the store keeps of a thread's follow-ups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadState {
    /// Re-decisions begun so far.
    pub redecisions: u32,
    /// When the last one began.
    pub last_redecided_at: Option<DateTime<Utc>>,
    /// The key version of the follow-up delivery that made it.
    pub last_version: Option<String>,
    /// When the current window opened (`None`: no window open).
    pub window_opened_at: Option<DateTime<Utc>>,
    /// The key version of the follow-up delivery that opened it.
    pub window_opened_by: Option<String>,
}

/// The follow-ups' part of the log.
#[async_trait]
pub trait FollowUpLog: Send + Sync {
    /// Every decision of a thread (any version), newest first: the newest is the one a
    /// re-decision supersedes, and the highest severity among them the one it must exceed.
    async fn thread_decisions(
        &self,
        source: Source,
        ticket_id: &str,
    ) -> Result<Vec<Decision>, StoreError>;

    /// The thread's messages, unsorted: its first message (the body of the first ticket
    /// stored for it, as of its receipt, id `first`) and every message delivery stored for it
    /// (customers' and agents').
    async fn thread_messages(
        &self,
        source: Source,
        ticket_id: &str,
    ) -> Result<Vec<Message>, StoreError>;

    /// Opens a window for a follow-up received at `received_at` by the delivery `version`,
    /// unless one is open already or a re-decision began at or after `received_at` (which
    /// read the message); returns the thread's state after it. Atomic.
    async fn open_followup_window(
        &self,
        source: Source,
        ticket_id: &str,
        version: &str,
        received_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ThreadState, StoreError>;

    /// Begins a re-decision for the delivery `version`: counts it, closes the window opened by
    /// `opened_by` and records when and by whom. `false` when another delivery closed that
    /// window first (atomic across workers and replicas).
    async fn begin_redecision(
        &self,
        source: Source,
        ticket_id: &str,
        opened_by: &str,
        version: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// When escalator last changed the thread's routing in the tool: the newest decision of the
    /// thread with an action other than a note.
    async fn last_acted_at(
        &self,
        source: Source,
        ticket_id: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// What escalator set in the tool for the thread: the done actions other than notes of
    /// all its decisions, oldest first (in the order they were logged), for a follow-up to compare
    /// with the tool's current routing.
    async fn acted_routing(
        &self,
        source: Source,
        ticket_id: &str,
    ) -> Result<Vec<Action>, StoreError>;

    /// Whether a person moved the thread's routing after `since`: an override verdict
    /// (`crate::review::overrides`) on any of its decisions, stored after `since`.
    async fn person_changed_since(
        &self,
        source: Source,
        ticket_id: &str,
        since: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// A stored message delivery's payload as its message (the adapters store it under
/// `message`); `None` for a payload without one.
fn message_of(payload: &serde_json::Value) -> Option<Message> {
    serde::Deserialize::deserialize(payload.get("message")?).ok()
}

macro_rules! impl_followups {
    ($store:ident, $pool:ty, $row:ty, $backend:literal, $skip_locked:literal) => {
        impl $store {
            fn thread_state(row: &$row) -> Result<ThreadState, StoreError> {
                let n: i32 = row.try_get("redecisions").map_err(corrupt)?;
                Ok(ThreadState {
                    redecisions: attempts(n),
                    last_redecided_at: row.try_get("last_redecided_at").map_err(corrupt)?,
                    last_version: row.try_get("last_version").map_err(corrupt)?,
                    window_opened_at: row.try_get("window_opened_at").map_err(corrupt)?,
                    window_opened_by: row.try_get("window_opened_by").map_err(corrupt)?,
                })
            }
        }

        #[async_trait]
        impl FollowUpLog for $store {
            async fn thread_decisions(
                &self, source: Source, ticket_id: &str,
            ) -> Result<Vec<Decision>, StoreError> {
                let sql = concat!(
                    "SELECT ",
                    decision_columns!(),
                    " FROM decisions WHERE source = $1 AND ticket_id = $2 \
                     ORDER BY created_at DESC, id DESC"
                );
                fetch_all!(&self.pool, Self::decision_from_row, sql, source.as_str(), ticket_id)
            }

            async fn thread_messages(
                &self, source: Source, ticket_id: &str,
            ) -> Result<Vec<Message>, StoreError> {
                let like = format!("{MESSAGE_VERSION_PREFIX}%");
                let first = statement!(
                    "SELECT body, received_at FROM tickets WHERE source = $1 AND ticket_id = $2 \
                     AND version NOT LIKE $3 ORDER BY received_at LIMIT 1",
                    source.as_str(), ticket_id, &like
                )
                .fetch_optional(&self.pool)
                .await?;
                let mut out = Vec::new();
                if let Some(row) = first {
                    out.push(Message {
                        id: "first".to_owned(),
                        author: Author::Customer,
                        sent_at: row.try_get("received_at").map_err(corrupt)?,
                        text: row.try_get("body").map_err(corrupt)?,
                    });
                }
                let rows = statement!(
                    "SELECT payload FROM deliveries WHERE source = $1 AND ticket_id = $2 \
                     AND version LIKE $3",
                    source.as_str(), ticket_id, &like
                )
                .fetch_all(&self.pool)
                .await?;
                for row in &rows {
                    let text: String = row.try_get("payload").map_err(corrupt)?;
                    if let Some(m) = message_of(&json("payload", &text)?) {
                        out.push(m);
                    }
                }
                Ok(out)
            }

            async fn open_followup_window(
                &self, source: Source, ticket_id: &str, version: &str,
                received_at: DateTime<Utc>, now: DateTime<Utc>,
            ) -> Result<ThreadState, StoreError> {
                let row = statement!(
                    "INSERT INTO followup_threads (source, ticket_id, redecisions, \
                       window_opened_at, window_opened_by) VALUES ($1, $2, 0, $5, $3) \
                     ON CONFLICT (source, ticket_id) DO UPDATE SET \
                       window_opened_at = CASE \
                         WHEN followup_threads.window_opened_at IS NOT NULL \
                           OR (followup_threads.last_redecided_at IS NOT NULL \
                               AND followup_threads.last_redecided_at >= $4) \
                         THEN followup_threads.window_opened_at ELSE $5 END, \
                       window_opened_by = CASE \
                         WHEN followup_threads.window_opened_at IS NOT NULL \
                           OR (followup_threads.last_redecided_at IS NOT NULL \
                               AND followup_threads.last_redecided_at >= $4) \
                         THEN followup_threads.window_opened_by ELSE $3 END \
                     RETURNING redecisions, last_redecided_at, last_version, window_opened_at, \
                       window_opened_by",
                    source.as_str(), ticket_id, version, received_at, now
                )
                .fetch_one(&self.pool)
                .await?;
                Self::thread_state(&row)
            }

            async fn begin_redecision(
                &self, source: Source, ticket_id: &str, opened_by: &str, version: &str,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let n = execute!(
                    &self.pool,
                    "UPDATE followup_threads SET redecisions = redecisions + 1, \
                     last_redecided_at = $4, last_version = $5, window_opened_at = NULL, \
                     window_opened_by = NULL \
                     WHERE source = $1 AND ticket_id = $2 AND window_opened_by = $3",
                    source.as_str(), ticket_id, opened_by, now, version
                );
                Ok(n == 1)
            }

            async fn last_acted_at(
                &self, source: Source, ticket_id: &str,
            ) -> Result<Option<DateTime<Utc>>, StoreError> {
                let row = statement!(
                    "SELECT d.created_at FROM decisions d WHERE d.source = $1 AND d.ticket_id = $2 \
                     AND EXISTS (SELECT 1 FROM actions a WHERE a.decision_id = d.id \
                       AND a.kind NOT IN ('plain.note', 'pylon.note')) \
                     ORDER BY d.created_at DESC LIMIT 1",
                    source.as_str(), ticket_id
                )
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| r.try_get("created_at").map_err(corrupt)).transpose()
            }

            async fn acted_routing(
                &self, source: Source, ticket_id: &str,
            ) -> Result<Vec<Action>, StoreError> {
                let sql = concat!(
                    "SELECT ",
                    action_columns!(),
                    " FROM actions WHERE source = $1 AND ticket_id = $2 AND status = 'done' \
                     AND kind NOT IN ('plain.note', 'pylon.note') ORDER BY id"
                );
                let rows = statement!(sql, source.as_str(), ticket_id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::action_from_row).collect()
            }

            async fn person_changed_since(
                &self, source: Source, ticket_id: &str, since: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM reviews r JOIN decisions d ON d.id = r.decision_id \
                     WHERE d.source = $1 AND d.ticket_id = $2 AND r.origin = 'override' \
                     AND r.reviewed_at > $3",
                )
                .bind(source.as_str())
                .bind(ticket_id)
                .bind(since)
                .fetch_one(&self.pool)
                .await?;
                Ok(n > 0)
            }
        }
    };
}

for_both_backends!(impl_followups);
