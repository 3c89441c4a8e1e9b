//! Settings of the routing log: `DATABASE_URL` from the environment, over `database_url` and
//! the `[database]` table of the file.

use std::time::Duration;

use serde::Deserialize;

use crate::env::{ConfigError, EnvSource, Setting, SettingDefault, invalid};

/// The settings this module owns (rendered into the reference in `deploy/README.md`).
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "DATABASE_URL",
        default: SettingDefault::Value("sqlite://escalator.db"),
        meaning: "The routing log: `postgres://user:password@host/db` in production, or `sqlite://file` (created when missing, in the working directory by default). Wins over `database_url`. The password is masked in logs.",
        example: "postgres://escalator:secret@db:5432/escalator",
    },
    Setting {
        key: "database_url",
        default: SettingDefault::Value("\"sqlite://escalator.db\""),
        meaning: "The routing log, when `DATABASE_URL` is unset (prefer the environment: the URL holds the password).",
        example: "\"postgres://escalator@db/escalator\"",
    },
    Setting {
        key: "database.max_connections",
        default: SettingDefault::Value("10"),
        meaning: "Connections per process, all paths together (the accept path's share included). With N replicas PostgreSQL sees up to N times this (mind `max_connections` on the server).",
        example: "10",
    },
    Setting {
        key: "database.accept_connections",
        default: SettingDefault::Value("2"),
        meaning: "The accept path's own share of `max_connections` (webhook deliveries stored in the inbox, gRPC `Classify` and `Route`), in a pool of its own, so an answer never waits behind the worker's backlog; the worker's inbox and outbox share the rest. Must be less than `max_connections`; `0` puts every path in one pool. SQLite: one pool whatever this says (one writer at a time).",
        example: "2",
    },
    Setting {
        key: "database.acquire_timeout_secs",
        default: SettingDefault::Value("5"),
        meaning: "Longest wait for a pooled connection; past it the request fails as unavailable (gRPC `UNAVAILABLE`, webhook 503, so the sender retries).",
        example: "5",
    },
];

/// Connection settings of the store.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// `postgres://…` or `sqlite://…`.
    pub url: String,
    /// Connections in all, the accept path's share included.
    pub max_connections: u32,
    /// The accept path's own pool, out of `max_connections` (0: one pool for every path).
    pub accept_connections: u32,
    /// How long a request waits for a connection before the store counts as unavailable.
    pub acquire_timeout: Duration,
    /// A lease holder whose heartbeat is older than this is taken for dead
    /// (`[worker] stale_after_secs`).
    pub stale_after: Duration,
    /// How long a request to a ticketing tool may still land after its sender stopped: the
    /// longer of the Plain and Pylon clients' timeouts, derived by `crate::config`. A
    /// non-idempotent action (a note) leased by a dead holder is taken over only this long after
    /// the holder would have been taken for dead, and an expired lease of one this long after it
    /// ran out, so whatever the holder had in flight has landed or died before the next holder
    /// looks for it.
    pub in_flight_grace: Duration,
}

/// Default of [`StoreSettings::accept_connections`] (fewer when `max_connections` is under 3).
pub const DEFAULT_ACCEPT_CONNECTIONS: u32 = 2;

/// Default of [`StoreSettings::stale_after`]: three missed heartbeats of two seconds.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(6);

/// `[database]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileDatabase {
    max_connections: Option<u32>,
    accept_connections: Option<u32>,
    acquire_timeout_secs: Option<u64>,
}

impl StoreSettings {
    /// The worker's pool and the accept path's pool: `(max_connections, 0)` when they are one
    /// pool.
    pub fn pool_sizes(&self) -> (u32, u32) {
        if self.accept_connections == 0 || self.accept_connections >= self.max_connections {
            (self.max_connections, 0)
        } else {
            (
                self.max_connections - self.accept_connections,
                self.accept_connections,
            )
        }
    }

    /// `DATABASE_URL` (else the file's top-level `database_url`, else the embedded SQLite file)
    /// and the pool settings of `[database]`; `stale_after` comes from the worker's settings.
    ///
    /// # Errors
    /// [`ConfigError`] naming `DATABASE_URL` for a scheme that is neither PostgreSQL nor SQLite,
    /// or `database.accept_connections` when it leaves the worker no connection.
    pub(crate) fn load(
        env: &dyn EnvSource,
        file_url: Option<String>,
        file: FileDatabase,
        stale_after: Duration,
        in_flight_grace: Duration,
    ) -> Result<Self, ConfigError> {
        let url = env
            .get("DATABASE_URL")
            .or(file_url)
            .unwrap_or_else(|| "sqlite://escalator.db".to_owned());
        if !(url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("sqlite:"))
        {
            return Err(invalid(
                "DATABASE_URL",
                "must start with postgres:// or sqlite://",
            ));
        }
        let max_connections = file.max_connections.unwrap_or(10);
        let accept_connections = file
            .accept_connections
            .unwrap_or(DEFAULT_ACCEPT_CONNECTIONS.min(max_connections.saturating_sub(1)));
        if accept_connections > 0 && accept_connections >= max_connections {
            return Err(invalid(
                "database.accept_connections",
                format!(
                    "must be less than database.max_connections ({max_connections}): the worker needs a connection too"
                ),
            ));
        }
        Ok(Self {
            url,
            max_connections,
            accept_connections,
            acquire_timeout: Duration::from_secs(file.acquire_timeout_secs.unwrap_or(5)),
            stale_after,
            in_flight_grace,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn load(max: Option<u32>, accept: Option<u32>) -> Result<StoreSettings, ConfigError> {
        let file = FileDatabase {
            max_connections: max,
            accept_connections: accept,
            acquire_timeout_secs: None,
        };
        StoreSettings::load(
            &BTreeMap::from([("DATABASE_URL", "postgres://db/escalator")]),
            None,
            file,
            DEFAULT_STALE_AFTER,
            Duration::ZERO,
        )
    }

    /// The accept path's pool is carved out of `max_connections`, never added to it.
    #[test]
    fn the_accept_share_is_carved_out_of_the_total() {
        assert_eq!(load(None, None).unwrap().pool_sizes(), (8, 2));
        assert_eq!(load(Some(10), Some(3)).unwrap().pool_sizes(), (7, 3));
        assert_eq!(load(Some(2), None).unwrap().pool_sizes(), (1, 1));
        // One connection in all: one pool for every path.
        assert_eq!(load(Some(1), None).unwrap().pool_sizes(), (1, 0));
        assert_eq!(load(Some(10), Some(0)).unwrap().pool_sizes(), (10, 0));
        for (max, accept) in [(10, 10), (4, 9)] {
            let e = load(Some(max), Some(accept)).unwrap_err().to_string();
            assert!(e.contains("database.accept_connections"), "{e}");
        }
    }
}
