//! The worker behind the webhook bridge, over the `Store` and `Ticketing` traits:
//!
//! 1. **Inbox.** Stored webhook deliveries are leased, turned into tickets by their adapter
//!    (fetching and enriching), and decided through [`Triage::decide`], which logs the decision
//!    and its actions in one transaction. A delivery whose worker died is leased again once its
//!    lease runs out, so a crash between "2xx sent" and "decision logged" loses nothing; the
//!    triage claim makes the decision happen once.
//!    A ticket claimed by a gRPC `Route` request that died before deciding is found by its
//!    expired claim and decided the same way.
//! 2. **Outbox.** Pending actions are leased (atomically: `FOR UPDATE SKIP LOCKED` on
//!    PostgreSQL, so several replicas can share one database) and executed with backoff and
//!    jitter until done. Attempts and the last error are recorded; an action is marked done once.
//!    A process killed mid-call leaves the action leased; after the lease it runs again, and the
//!    executors are written so a repeat does not apply twice.
//!
//! The worker wakes on a timer and whenever the bridge stores a delivery, and stops on the
//! shutdown token after finishing the batch in hand (unfinished work stays in the log).

use std::{hash::BuildHasher as _, sync::Arc, time::Duration};

use chrono::Utc;
use tokio::{sync::Notify, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::{
    domain::Source,
    store::{Action, PendingDelivery, Store},
    telemetry::{self, metrics::metrics},
    ticketing::{Adapters, settings::WorkerSettings},
    triage::{Triage, TriageError},
};

/// The inbox and outbox worker.
#[derive(Clone)]
pub struct Worker {
    store: Arc<dyn Store>,
    triage: Triage,
    adapters: Adapters,
    settings: WorkerSettings,
    wake: Arc<Notify>,
}

impl Worker {
    /// A worker over `store`, deciding through `triage` and acting through `adapters`; `wake` is
    /// the bridge's "new delivery" signal.
    pub fn new(
        store: Arc<dyn Store>,
        triage: Triage,
        adapters: Adapters,
        settings: WorkerSettings,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            triage,
            adapters,
            settings,
            wake,
        }
    }

    /// Runs until `shutdown` is cancelled. The batch in hand is finished first; the caller bounds
    /// that with its drain deadline.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            poll_ms = u64::try_from(self.settings.poll_interval.as_millis()).unwrap_or(u64::MAX),
            "action worker started"
        );
        loop {
            let worked = self.run_once().await;
            if shutdown.is_cancelled() {
                break;
            }
            if worked > 0 {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
        tracing::info!("action worker stopped");
    }

    /// One pass: decides the due deliveries and the abandoned `api` tickets, then runs the due
    /// actions, each batch concurrently. Returns how many items it handled (0: nothing was due,
    /// or the store is down).
    pub async fn run_once(&self) -> usize {
        let mut handled = 0;
        // Webhook tickets are recovered through their deliveries; a gRPC request that died after
        // claiming its ticket left only the ticket behind.
        match self
            .store
            .undecided_tickets(Source::Api, self.settings.batch)
            .await
        {
            Ok(tickets) => {
                for t in tickets {
                    let key = t.key().clone();
                    match self.triage.decide(t, None).await {
                        Ok(o) => {
                            handled += 1;
                            tracing::info!(%key, decision_id = %o.decision.id, "abandoned ticket decided");
                        }
                        // Another replica took it over first, or the store is down: next pass.
                        Err(e) => {
                            tracing::info!(%key, error = %crate::error::error_chain(&e), "abandoned ticket not decided yet")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list abandoned tickets; retrying later"),
        }
        match self
            .store
            .lease_deliveries(self.settings.delivery_lease, self.settings.batch)
            .await
        {
            Ok(deliveries) => {
                handled += deliveries.len();
                let mut set = JoinSet::new();
                for d in deliveries {
                    let w = self.clone();
                    set.spawn(async move { w.process_delivery(d).await });
                }
                set.join_all().await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot lease deliveries; retrying later"),
        }
        match self
            .store
            .lease_actions(self.settings.action_lease, self.settings.batch)
            .await
        {
            Ok(actions) => {
                handled += actions.len();
                let mut set = JoinSet::new();
                for a in actions {
                    let w = self.clone();
                    set.spawn(async move { w.execute(a).await });
                }
                set.join_all().await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot lease actions; retrying later"),
        }
        handled
    }

    /// The delay before the next attempt: the tool's hint if it gave one, else [`backoff`]
    /// with [`jitter`].
    fn delay(&self, attempts: u32, hint: Option<Duration>) -> Duration {
        hint.unwrap_or_else(|| {
            jitter(backoff(
                self.settings.backoff_base,
                self.settings.backoff_max,
                attempts,
            ))
        })
    }

    fn at(&self, attempts: u32, hint: Option<Duration>) -> chrono::DateTime<Utc> {
        Utc::now()
            + chrono::Duration::from_std(self.delay(attempts, hint))
                .unwrap_or(chrono::Duration::seconds(60))
    }

    #[tracing::instrument(skip_all, fields(key = %d.key, attempt = d.attempts))]
    async fn process_delivery(&self, d: PendingDelivery) {
        let key = d.key.clone();
        let Some(adapter) = self.adapters.get(key.source) else {
            self.give_up_delivery(&d, "no ticketing tool for this source")
                .await;
            return;
        };
        let ticket = match adapter.ticket(&d).await {
            Ok(t) => t,
            Err(e) if e.is_retryable() => {
                let error = e.chain();
                tracing::warn!(error, "cannot build the ticket yet; will retry");
                if let Err(se) = self
                    .store
                    .retry_delivery(&key, &error, self.at(d.attempts, e.retry_after()))
                    .await
                {
                    tracing::warn!(error = %se, "cannot reschedule the delivery; its lease will expire");
                }
                return;
            }
            Err(e) => {
                self.give_up_delivery(&d, &e.chain()).await;
                return;
            }
        };
        // One trace per ticket: this span continues the webhook request's trace.
        let parent = d
            .payload
            .get(crate::ticketing::TRACEPARENT_KEY)
            .and_then(serde_json::Value::as_str);
        let headers = telemetry::Traceparent(parent);
        let span = telemetry::root_span(&format!("decide {} delivery", key.source), &headers);
        let trace_id = telemetry::trace_id(&span, &headers);
        telemetry::record_ticket(&span, &ticket);
        let result = self
            .triage
            .decide(ticket, trace_id)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(o) => telemetry::record_decision(&span, &o.decision, o.duplicate),
            Err(e) => telemetry::record_error(&span, &e.to_string()),
        }
        match result {
            Ok(outcome) => {
                if let Err(e) = self.store.finish_delivery(&key).await {
                    // The decision is logged; a repeat of this delivery finds it and does nothing.
                    tracing::warn!(error = %e, "cannot mark the delivery done; it will be seen again as a duplicate");
                }
                tracing::info!(
                    decision_id = %outcome.decision.id,
                    duplicate = outcome.duplicate,
                    "delivery decided"
                );
            }
            Err(TriageError::InvalidInput(e)) => {
                self.give_up_delivery(&d, &e.to_string()).await;
            }
            Err(
                e @ (TriageError::StoreUnavailable(_)
                | TriageError::InFlight(_)
                | TriageError::Unexpected(_)),
            ) => {
                let error = crate::error::error_chain(&e);
                tracing::warn!(error, "cannot decide the delivery yet; will retry");
                if let Err(se) = self
                    .store
                    .retry_delivery(&key, &error, self.at(d.attempts, None))
                    .await
                {
                    tracing::warn!(error = %se, "cannot reschedule the delivery; its lease will expire");
                }
            }
        }
    }

    async fn give_up_delivery(&self, d: &PendingDelivery, error: &str) {
        tracing::error!(
            error,
            "delivery cannot be decided; giving up (see deliveries.last_error)"
        );
        if let Err(e) = self.store.fail_delivery(&d.key, error).await {
            tracing::warn!(error = %e, "cannot record the failed delivery");
        }
    }

    #[tracing::instrument(skip_all, fields(action_id = a.id, kind = %a.kind, decision_id = %a.decision_id, attempt = a.attempts))]
    async fn execute(&self, a: Action) {
        let tool = a
            .kind
            .split('.')
            .next()
            .and_then(|t| Source::parse("kind", t).ok());
        let Some(adapter) = tool.and_then(|t| self.adapters.get(t)) else {
            let error = format!("no ticketing tool executes {}", a.kind);
            tracing::error!(error, "action cannot run; giving up");
            if let Err(e) = self.store.fail_action(a.id, &error).await {
                tracing::warn!(error = %e, "cannot record the failed action");
            }
            return;
        };
        match adapter.execute(&a).await {
            Ok(()) => match self.store.complete_action(a.id).await {
                Ok(true) => tracing::info!("action done"),
                Ok(false) => tracing::info!("action was finished by another worker"),
                Err(e) => tracing::warn!(
                    error = %e,
                    "action ran but cannot be marked done; it will run again after its lease"
                ),
            },
            Err(e) if e.is_retryable() => {
                let error = e.chain();
                metrics()
                    .action_failures
                    .with_label_values(&[&a.kind])
                    .inc();
                tracing::warn!(error, "action failed; will retry");
                if let Err(se) = self
                    .store
                    .retry_action(a.id, &error, self.at(a.attempts, e.retry_after()))
                    .await
                {
                    tracing::warn!(error = %se, "cannot reschedule the action; its lease will expire");
                }
            }
            Err(e) => {
                let error = e.chain();
                metrics()
                    .action_failures
                    .with_label_values(&[&a.kind])
                    .inc();
                tracing::error!(error, "action rejected by the tool; giving up");
                if let Err(se) = self.store.fail_action(a.id, &error).await {
                    tracing::warn!(error = %se, "cannot record the failed action");
                }
            }
        }
    }
}

/// Exponential backoff after `attempts` failed attempts: `base`, `2 base`, `4 base` … capped at
/// `max`.
pub fn backoff(base: Duration, max: Duration, attempts: u32) -> Duration {
    base.saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
        .min(max)
}

/// `d` scaled by a random factor in 50..100 %, so retries of many actions spread out.
pub fn jitter(d: Duration) -> Duration {
    let r = std::collections::hash_map::RandomState::new().hash_one(0u8);
    #[allow(clippy::cast_precision_loss)]
    let factor = 0.5 + (r % 1_000) as f64 / 2_000.0;
    d.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let (base, max) = (Duration::from_millis(100), Duration::from_millis(1_000));
        assert_eq!(backoff(base, max, 1), Duration::from_millis(100));
        assert_eq!(backoff(base, max, 3), Duration::from_millis(400));
        assert_eq!(backoff(base, max, 30), Duration::from_millis(1_000));
        assert_eq!(backoff(base, max, 0), Duration::from_millis(100));
    }

    #[test]
    fn jitter_stays_within_half_and_whole() {
        let d = Duration::from_secs(10);
        let seen: Vec<Duration> = (0..50).map(|_| jitter(d)).collect();
        assert!(seen.iter().all(|j| *j >= d / 2 && *j <= d));
        assert!(seen.iter().any(|j| *j != seen[0]), "jitter never varies");
    }
}
