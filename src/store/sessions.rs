//! The review's login sessions (`review_sessions`), held in the database so that logging out
//! ends a session on every replica. Only the SHA-256 of a session id is stored: the id is the
//! cookie's secret. Written once for both backends (`impl_sessions!`), as every concern of the
//! store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{
    StoreError,
    backend::{PgStore, SqliteStore, for_both_backends},
};

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 (hex) of the session id the cookie carries.
    pub id_hash: String,
    /// Who is logged in.
    pub reviewer: String,
    /// Which login opened it: `admin` or `reviewer`.
    pub login: String,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
    /// When it ends on its own.
    pub expires_at: DateTime<Utc>,
}

/// The review's sessions.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    async fn create_session(&self, session: &SessionRow) -> Result<(), StoreError>;

    /// The session with this id hash, if it exists and has not expired at `now`.
    async fn live_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRow>, StoreError>;

    /// Ends a session; `true` when it existed.
    async fn end_session(&self, id_hash: &str) -> Result<bool, StoreError>;

    /// Removes the sessions expired at `now`; how many.
    async fn purge_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}

macro_rules! impl_sessions {
    ($store:ident, $pool:ty, $row:ty, $backend:literal, $skip_locked:literal) => {
        #[async_trait]
        impl SessionStore for $store {
            async fn create_session(&self, s: &SessionRow) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO review_sessions (id_hash, reviewer, login, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&s.id_hash)
                .bind(&s.reviewer)
                .bind(&s.login)
                .bind(s.created_at)
                .bind(s.expires_at)
                .execute(self.pool())
                .await?;
                Ok(())
            }

            async fn live_session(
                &self,
                id_hash: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<SessionRow>, StoreError> {
                let row = sqlx::query(
                    "SELECT id_hash, reviewer, login, created_at, expires_at FROM review_sessions \
                     WHERE id_hash = $1 AND expires_at > $2",
                )
                .bind(id_hash)
                .bind(now)
                .fetch_optional(self.pool())
                .await?;
                let corrupt = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
                row.map(|r| {
                    Ok(SessionRow {
                        id_hash: r.try_get("id_hash").map_err(corrupt)?,
                        reviewer: r.try_get("reviewer").map_err(corrupt)?,
                        login: r.try_get("login").map_err(corrupt)?,
                        created_at: r.try_get("created_at").map_err(corrupt)?,
                        expires_at: r.try_get("expires_at").map_err(corrupt)?,
                    })
                })
                .transpose()
            }

            async fn end_session(&self, id_hash: &str) -> Result<bool, StoreError> {
                let n = sqlx::query("DELETE FROM review_sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(self.pool())
                    .await?
                    .rows_affected();
                Ok(n == 1)
            }

            async fn purge_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
                Ok(sqlx::query("DELETE FROM review_sessions WHERE expires_at <= $1")
                    .bind(now)
                    .execute(self.pool())
                    .await?
                    .rows_affected())
            }
        }
    };
}

for_both_backends!(impl_sessions);
