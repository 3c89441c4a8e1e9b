//! The worker's state its loops share ([`Worker`]: the queues, triage, the adapters, the
//! settings, the wake signals, the loops' health) and the steps every loop takes on an item:
//! [`persist`] a write through a database blip, run it [`isolated`] so a panic is one failed
//! attempt, back off before the next. The loops ([`super::inbox`], [`super::outbox`]) import
//! this file; `mod.rs` composes them.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use tokio::sync::Notify;

use super::{pump, settings::WorkerSettings};
use crate::{
    backoff::{Backoff, OUTBOX_JITTER},
    store::{Inbox, Liveness, Outbox},
    telemetry::metrics::metrics,
    ticketing::Adapters,
    triage::Triage,
};

/// Which loops are running, for `/readyz` (503 while one is down).
#[derive(Debug, Default)]
pub struct Health {
    loops: Mutex<BTreeMap<&'static str, bool>>,
}

impl Health {
    pub(super) fn set(&self, name: &'static str, up: bool) {
        if let Ok(mut loops) = self.loops.lock() {
            loops.insert(name, up);
        }
        metrics()
            .worker_loop_up
            .with_label_values(&[name])
            .set(i64::from(up));
    }

    /// The loops that are down now (empty when all run, or when none was started).
    pub fn down(&self) -> Vec<&'static str> {
        self.loops
            .lock()
            .map(|l| l.iter().filter(|(_, up)| !**up).map(|(n, _)| *n).collect())
            .unwrap_or_default()
    }
}

/// The store's concerns the worker's loops use.
#[derive(Clone)]
pub struct Queues {
    /// Webhook deliveries to decide.
    pub inbox: Arc<dyn Inbox>,
    /// Actions to execute.
    pub outbox: Arc<dyn Outbox>,
    /// This process's heartbeat and lease holder id.
    pub liveness: Arc<dyn Liveness>,
}

/// The inbox, outbox and recovery loops.
#[derive(Clone)]
pub struct Worker {
    pub(super) queues: Queues,
    pub(super) triage: Triage,
    pub(super) adapters: Adapters,
    pub(super) settings: WorkerSettings,
    pub(super) wakes: Wakes,
    pub(super) health: Arc<Health>,
    pub(super) holdings: Arc<super::holding::Holdings>,
}

/// The signals that wake the worker's loops before their poll interval.
#[derive(Clone, Default)]
pub struct Wakes {
    /// The bridge's "new delivery" signal, for the inbox.
    pub inbox: Arc<Notify>,
    /// Triage's "decision with actions logged" signal, for the outbox.
    pub outbox: Arc<Notify>,
}

impl Worker {
    /// A worker over `queues`, deciding through `triage` and acting through `adapters`, woken
    /// early by `wakes`.
    pub fn new(
        queues: Queues,
        triage: Triage,
        adapters: Adapters,
        settings: WorkerSettings,
        wakes: Wakes,
    ) -> Self {
        Self {
            queues,
            triage,
            adapters,
            settings,
            wakes,
            health: Arc::new(Health::default()),
            holdings: Arc::new(super::holding::Holdings::default()),
        }
    }

    /// A pump named `name` with `slots` in flight, paced by the shared worker settings.
    pub(super) fn pump(&self, name: &'static str, slots: usize) -> pump::Pump {
        pump::Pump {
            name,
            slots,
            batch: self.settings.batch,
            cooldown: self.settings.fetch_cooldown,
            poll: self.settings.poll_interval,
        }
    }

    /// When the next attempt is due after `attempts` failed ones: the tool's hint if it gave
    /// one, else [`Worker::retry_delay`].
    pub(super) fn next_attempt(
        &self,
        attempts: u32,
        hint: Option<Duration>,
    ) -> chrono::DateTime<Utc> {
        let delay = hint.unwrap_or_else(|| self.retry_delay(attempts));
        Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(60))
    }

    /// The wait after `failures` failed attempts (at least 1): `backoff_base`, doubling up to
    /// `backoff_max`, less up to half at random so items failing together spread out
    /// ([`crate::backoff`]).
    pub(super) fn retry_delay(&self, failures: u32) -> Duration {
        Backoff {
            base: self.settings.backoff_base,
            max: self.settings.backoff_max,
            jitter: OUTBOX_JITTER,
        }
        .delay(failures.saturating_sub(1))
    }
}

/// Retries a write to the routing log while the database is unavailable, for up to `within`:
/// releasing or completing an item must not wait out its lease because the database blinked
/// (a restart takes seconds, a lease minutes). Other errors are returned at once.
///
/// # Errors
/// The last error when the database stayed unavailable for `within`, or any other error.
pub async fn persist<T, F, Fut>(
    within: Duration,
    mut write: F,
) -> Result<T, crate::store::StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, crate::store::StoreError>>,
{
    let start = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        match write().await {
            Err(crate::store::StoreError::Unavailable(_)) if start.elapsed() + pause < within => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// Runs `fut` in a task of its own, so that a panic in it is returned as an error instead of
/// unwinding into the caller's loop.
///
/// # Errors
/// The task's [`tokio::task::JoinError`] when it panicked (or was cancelled at shutdown).
pub async fn isolated<T, F>(fut: F) -> Result<T, tokio::task::JoinError>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    tokio::spawn(fut).await
}
