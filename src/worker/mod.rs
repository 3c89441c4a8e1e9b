//! The worker behind the webhook bridge, over the store's `Inbox`, `Outbox` and `Liveness` and the
//! `Ticketing` port. It runs as independent loops, each restarted by a supervisor if it ever
//! ends outside shutdown:
//!
//! 1. **Inbox** ([`inbox`]). Stored webhook deliveries are leased oldest first and decided
//!    through [`crate::triage::Triage::decide`] (which logs the decision, its actions and the delivery's
//!    completion in one transaction), up to `[worker] inbox_concurrency` at a time.
//! 2. **Outbox** ([`outbox`]). Pending actions are leased worst ticket first (`on_fire`, then
//!    `urgent`, then `routine`) and executed with backoff and jitter until done, up to
//!    `[worker] outbox_concurrency` at a time; completions are written in batches.
//! 3. **Recovery.** gRPC tickets whose request died after claiming them are decided.
//! 4. **Heartbeat.** This process's row in `workers` is refreshed every few seconds; leases and
//!    claims name their holder, so when a process dies any other takes its work over within
//!    `[worker] stale_after_secs` instead of waiting out the lease.
//! 5. **Leases** ([`leases`], over [`holding`]). Every heartbeat, the leases of the deliveries and actions this
//!    process is still working on are extended (up to `holding::MAX_HOLD_LEASES` leases, where
//!    every attempt is cut off), so a lease never runs out under a live holder; a completion
//!    counts only for the holder that holds the lease.
//! 6. **Scores** ([`scores`]), with Langfuse configured: the reviews' scores are sent from their
//!    outbox with back-off.
//!
//! Each loop keeps a fixed number of slots ([`pump::Pump`]): it leases as many items as it has
//! free slots, runs each in its own task, and leases again as soon as a slot frees (no
//! batch-and-wait rounds, so one slow item never holds the others). Every item runs in a task of
//! its own, so a panic in one is caught as one failed attempt of that item: logged at ERROR
//! with its key and stage (never ticket text), counted in `escalator_worker_panics_total`, and
//! retried with backoff. After `[worker] max_attempts` such attempts a delivery gets the safe
//! decision (`urgent` / `human`, fallback `internal_error`) so a person sees it, and an action
//! is given up.

pub mod holding;
pub mod inbox;
pub mod leases;
pub mod outbox;
pub mod pump;
pub mod scores;
pub mod settings;
mod state;

use std::{future::Future, sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{store::Liveness, telemetry::metrics::metrics};

pub use state::{Health, Queues, Wakes, Worker, isolated, persist};

/// Runs the loop `make` builds until `shutdown`; if it ends any other way (it returned or
/// panicked) it is logged, counted and started again after a second. `health` shows it down
/// meanwhile.
pub async fn supervise<F, Fut>(
    name: &'static str,
    health: Arc<Health>,
    shutdown: CancellationToken,
    mut make: F,
) where
    F: FnMut() -> Fut + Send,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        health.set(name, true);
        let result = tokio::spawn(make()).await;
        if shutdown.is_cancelled() {
            break;
        }
        health.set(name, false);
        metrics().worker_restarts.with_label_values(&[name]).inc();
        match result {
            Ok(()) => tracing::error!(worker_loop = name, "loop ended unexpectedly; restarting it"),
            Err(e) => tracing::error!(
                worker_loop = name,
                panicked = e.is_panic(),
                "loop panicked; restarting it"
            ),
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Refreshes this process's heartbeat every `interval` until `shutdown`, and with it the
/// planner's statistics of the queue tables once their backlog moved
/// ([`Liveness::refresh_queue_statistics`]).
pub async fn heartbeat(
    liveness: Arc<dyn Liveness>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        if let Err(e) = liveness.heartbeat().await {
            tracing::warn!(error = %e, "cannot refresh the worker heartbeat; retrying");
        }
        match liveness.refresh_queue_statistics().await {
            Ok(tables) if !tables.is_empty() => {
                tracing::debug!(?tables, "analysed the queue tables");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot analyse the queue tables; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

impl Worker {
    /// The loops' health, for `/readyz`.
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// Runs every loop until `shutdown` is cancelled, then lets the items in hand finish (the
    /// caller bounds that with its drain deadline; unfinished work stays in the log).
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            inbox_concurrency = self.settings.inbox_concurrency,
            outbox_concurrency = self.settings.outbox_concurrency,
            holder = self.queues.liveness.holder(),
            "worker started"
        );
        let inbox = self.spawn_loop("inbox", &shutdown, inbox::run);
        let outbox = self.spawn_loop("outbox", &shutdown, outbox::run);
        let recovery = self.spawn_loop("recovery", &shutdown, inbox::recover);
        // The keeper runs until the inbox and outbox have drained, so leases in hand during the
        // drain are still extended.
        let keeper_stop = CancellationToken::new();
        let keeper = self.spawn_loop("leases", &keeper_stop, leases::keep_leases);
        for (name, task) in [("inbox", inbox), ("outbox", outbox), ("recovery", recovery)] {
            if let Err(e) = task.await {
                tracing::error!(worker_loop = name, error = %e, "supervisor failed");
            }
        }
        keeper_stop.cancel();
        if let Err(e) = keeper.await {
            tracing::error!(worker_loop = "leases", error = %e, "supervisor failed");
        }
        tracing::info!("worker stopped");
    }

    /// Runs the loop `run` under [`supervise`] in a task of its own, until `shutdown`.
    fn spawn_loop<Fut>(
        &self,
        name: &'static str,
        shutdown: &CancellationToken,
        run: fn(Worker, CancellationToken) -> Fut,
    ) -> tokio::task::JoinHandle<()>
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (w, stop) = (self.clone(), shutdown.clone());
        tokio::spawn(supervise(
            name,
            self.health.clone(),
            shutdown.clone(),
            move || run(w.clone(), stop.clone()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    #[tokio::test]
    async fn a_panicking_item_is_an_error_not_an_unwind() {
        let r = isolated(async {
            if Utc::now().timestamp() > 0 {
                panic!("poison item");
            }
            0
        })
        .await;
        assert!(r.is_err_and(|e| e.is_panic()));
        assert_eq!(isolated(async { 7 }).await.ok(), Some(7));
    }

    #[tokio::test]
    async fn a_loop_that_dies_is_restarted_and_shown_down_meanwhile() {
        let health = Arc::new(Health::default());
        let shutdown = CancellationToken::new();
        let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = runs.clone();
        let stop = shutdown.clone();
        let task = tokio::spawn(supervise(
            "unit-test-loop",
            health.clone(),
            shutdown.clone(),
            move || {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let stop = stop.clone();
                async move {
                    if n == 0 {
                        panic!("first run dies");
                    }
                    stop.cancelled().await;
                }
            },
        ));
        for _ in 0..100 {
            if runs.load(std::sync::atomic::Ordering::SeqCst) >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(health.down().is_empty(), "restarted loop is up again");
        shutdown.cancel();
        assert!(
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_ok(),
            "the supervisor stops with its loop at shutdown"
        );
    }
}
