//! Settings of the worker: the `[worker]` table of the TOML file, plus the older worker keys of
//! `[actions]` (`enabled`, `poll_interval_ms`, `action_lease_secs`, `delivery_lease_secs`,
//! `batch`, `backoff_base_ms`, `backoff_max_secs`), which keep their place so existing files
//! stay valid.

use std::time::Duration;

use serde::Deserialize;

use crate::env::{ConfigError, Setting, SettingDefault, invalid};

/// The settings this module owns (rendered into the reference in `deploy/README.md`).
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "actions.enabled",
        default: SettingDefault::Value("true"),
        meaning: "`false`: this replica only accepts webhooks and serves gRPC; the worker (inbox, outbox, recovery) runs on other replicas.",
        example: "true",
    },
    Setting {
        key: "actions.poll_interval_ms",
        default: SettingDefault::Value("1000"),
        meaning: "How often an idle loop looks for due work when nothing wakes it.",
        example: "1000",
    },
    Setting {
        key: "actions.action_lease_secs",
        default: SettingDefault::Value("120"),
        meaning: "An action is leased for this long, and the lease is extended every heartbeat while its holder still works on it, up to 10 leases, where the attempt is cut off and retried. A dead holder loses it sooner, after `worker.stale_after_secs` (a note: that plus the longer client timeout).",
        example: "120",
    },
    Setting {
        key: "actions.delivery_lease_secs",
        default: SettingDefault::Value("180"),
        meaning: "A delivery is leased for this long, extended every heartbeat while its holder still decides it, up to 10 leases, where the attempt is cut off (an unexpected failure).",
        example: "180",
    },
    Setting {
        key: "actions.batch",
        default: SettingDefault::Value("64"),
        meaning: "Most deliveries or actions leased by one query (1..=1000).",
        example: "64",
    },
    Setting {
        key: "actions.backoff_base_ms",
        default: SettingDefault::Value("1000"),
        meaning: "First retry delay of a failed action or delivery; doubles per attempt, with 50-100% jitter (a `Retry-After` wins).",
        example: "1000",
    },
    Setting {
        key: "actions.backoff_max_secs",
        default: SettingDefault::Value("600"),
        meaning: "Longest retry delay.",
        example: "600",
    },
    Setting {
        key: "worker.inbox_concurrency",
        default: SettingDefault::Derived(
            "`claude.max_concurrency` and an eighth more with an API key, at least 64",
        ),
        meaning: "Deliveries decided at once (1..=10000).",
        example: "128",
    },
    Setting {
        key: "worker.outbox_concurrency",
        default: SettingDefault::Value("128"),
        meaning: "Actions executed at once (1..=10000).",
        example: "128",
    },
    Setting {
        key: "worker.max_attempts",
        default: SettingDefault::Value("5"),
        meaning: "Attempts that panic or fail unexpectedly before a delivery gets the safe decision (`urgent`, a person, fallback `internal_error`) and an action is marked `failed`.",
        example: "5",
    },
    Setting {
        key: "worker.heartbeat_ms",
        default: SettingDefault::Value("2000"),
        meaning: "How often this process refreshes its heartbeat (at least 100).",
        example: "2000",
    },
    Setting {
        key: "worker.stale_after_secs",
        default: SettingDefault::Value("6"),
        meaning: "A holder silent this long is dead: any replica takes its leases and claims over (at least twice `worker.heartbeat_ms`).",
        example: "6",
    },
    Setting {
        key: "worker.fetch_cooldown_ms",
        default: SettingDefault::Value("10"),
        meaning: "Shortest time between two lease queries of one loop.",
        example: "10",
    },
];

/// The inbox, outbox, recovery and heartbeat loops.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Whether this replica runs the worker (a webhook-only replica sets `false`).
    pub enabled: bool,
    /// How often a loop looks for due work when nobody wakes it.
    pub poll_interval: Duration,
    /// How long a leased action is held before another worker may take it over; extended every
    /// heartbeat while its holder works on it (`crate::worker::leases`), up to
    /// `holding::MAX_HOLD_LEASES` leases, where the attempt is cut off. A holder whose heartbeat
    /// stops loses it sooner.
    pub action_lease: Duration,
    /// How long a leased delivery is held; must exceed building and classifying a ticket.
    pub delivery_lease: Duration,
    /// Most items leased by one query.
    pub batch: u32,
    /// First retry delay; doubles per attempt, with jitter.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Deliveries decided at once (`[worker] inbox_concurrency`). The default is the model's
    /// concurrency cap and an eighth more, so the cap, not the worker, limits how many calls
    /// are in flight while the margin builds the next tickets (enrichment and the claim take
    /// milliseconds against the model's hundreds); twice the cap held ~20 MiB more for nothing
    /// (a burst of 2,000 at a cap of 256: peak RSS 140.4 MiB with 512 slots, 120.6 MiB with
    /// 288, the same completion); and at least 64, because
    /// a fast model leaves each slot waiting on database round trips instead (measured with
    /// `escalator bench`, model 0 ms: 16 slots drained ~640 tickets/s, 64 slots ~1,500/s).
    pub inbox_concurrency: usize,
    /// Actions executed at once (`[worker] outbox_concurrency`).
    pub outbox_concurrency: usize,
    /// Attempts that panic or fail unexpectedly before a delivery gets the safe decision
    /// (urgent, human, fallback `internal_error`) and an action is given up
    /// (`[worker] max_attempts`).
    pub max_attempts: u32,
    /// How often this process refreshes its heartbeat (`[worker] heartbeat_ms`).
    pub heartbeat_interval: Duration,
    /// A holder whose heartbeat is older than this is dead and its leases are taken over
    /// (`[worker] stale_after_secs`); at least twice `heartbeat_ms`.
    pub stale_after: Duration,
    /// Shortest time between two lease queries of one loop (`[worker] fetch_cooldown_ms`), so
    /// slots freed one by one under load are refilled by one query, not one each.
    pub fetch_cooldown: Duration,
}

/// The worker's keys of `[actions]` (the table's `api_tool` is the ticketing's;
/// `crate::config` reads the table and hands each its part).
#[derive(Debug, Default)]
pub(crate) struct FileActions {
    pub(crate) enabled: Option<bool>,
    pub(crate) poll_interval_ms: Option<u64>,
    pub(crate) action_lease_secs: Option<u64>,
    pub(crate) delivery_lease_secs: Option<u64>,
    pub(crate) batch: Option<u32>,
    pub(crate) backoff_base_ms: Option<u64>,
    pub(crate) backoff_max_secs: Option<u64>,
}

/// `[worker]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileWorker {
    inbox_concurrency: Option<usize>,
    outbox_concurrency: Option<usize>,
    max_attempts: Option<u32>,
    heartbeat_ms: Option<u64>,
    stale_after_secs: Option<u64>,
    fetch_cooldown_ms: Option<u64>,
}

impl WorkerSettings {
    /// Loads the worker settings; `model_concurrency` is the Claude backend's cap when a key is
    /// set (it sizes the inbox by default).
    ///
    /// # Errors
    /// [`ConfigError`] naming the bad key.
    pub(crate) fn load(
        a: &FileActions,
        w: FileWorker,
        model_concurrency: Option<usize>,
    ) -> Result<Self, ConfigError> {
        let inbox_concurrency = w
            .inbox_concurrency
            .unwrap_or_else(|| model_concurrency.map_or(64, |c| (c + c / 8).max(64)));
        let outbox_concurrency = w.outbox_concurrency.unwrap_or(128);
        for (key, v) in [
            ("worker.inbox_concurrency", inbox_concurrency),
            ("worker.outbox_concurrency", outbox_concurrency),
        ] {
            if !(1..=10_000).contains(&v) {
                return Err(invalid(key, format!("{v} is not within 1..=10000")));
            }
        }
        let max_attempts = w.max_attempts.unwrap_or(5);
        if max_attempts == 0 {
            return Err(invalid("worker.max_attempts", "must be at least 1"));
        }
        let heartbeat_interval = Duration::from_millis(w.heartbeat_ms.unwrap_or(2_000));
        if heartbeat_interval < Duration::from_millis(100) {
            return Err(invalid("worker.heartbeat_ms", "must be at least 100"));
        }
        let stale_after = Duration::from_secs(w.stale_after_secs.unwrap_or(6));
        if stale_after < 2 * heartbeat_interval {
            return Err(invalid(
                "worker.stale_after_secs",
                format!(
                    "{}s must be at least twice worker.heartbeat_ms ({} ms), or a live worker \
                     would be taken for dead",
                    stale_after.as_secs(),
                    heartbeat_interval.as_millis()
                ),
            ));
        }
        Ok(Self {
            enabled: a.enabled.unwrap_or(true),
            poll_interval: Duration::from_millis(a.poll_interval_ms.unwrap_or(1_000).max(1)),
            action_lease: Duration::from_secs(a.action_lease_secs.unwrap_or(120).max(1)),
            delivery_lease: Duration::from_secs(a.delivery_lease_secs.unwrap_or(180).max(1)),
            batch: a.batch.unwrap_or(64).clamp(1, 1_000),
            backoff_base: Duration::from_millis(a.backoff_base_ms.unwrap_or(1_000).max(1)),
            backoff_max: Duration::from_secs(a.backoff_max_secs.unwrap_or(600).max(1)),
            inbox_concurrency,
            outbox_concurrency,
            max_attempts,
            heartbeat_interval,
            stale_after,
            fetch_cooldown: Duration::from_millis(w.fetch_cooldown_ms.unwrap_or(10)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inbox_follows_the_model_cap_by_default() {
        let s = WorkerSettings::load(&FileActions::default(), FileWorker::default(), Some(256))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.inbox_concurrency, 288);
        let s = WorkerSettings::load(&FileActions::default(), FileWorker::default(), Some(80))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.inbox_concurrency, 90);
        let s = WorkerSettings::load(&FileActions::default(), FileWorker::default(), Some(8))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.inbox_concurrency, 64, "a small cap still gets 64 slots");
        let s = WorkerSettings::load(&FileActions::default(), FileWorker::default(), None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.inbox_concurrency, 64);
        assert_eq!(s.max_attempts, 5);
    }

    #[test]
    fn a_stale_threshold_below_two_heartbeats_is_refused() {
        let w = FileWorker {
            heartbeat_ms: Some(5_000),
            stale_after_secs: Some(6),
            ..FileWorker::default()
        };
        let e = WorkerSettings::load(&FileActions::default(), w, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("worker.stale_after_secs"), "{e}");
    }
}
