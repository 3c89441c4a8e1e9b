//! The outbox loop: logged actions are leased worst ticket first and executed in the ticketing
//! tool until done. Attempts and the last error are recorded; an action is marked done once.
//! A process killed mid-call leaves the action leased; once its heartbeat is stale (or the lease
//! runs out) it runs again, and the executors are written so a repeat does not apply twice. A
//! note (no idempotency key in either tool) is taken over only the clients' request timeout
//! later than that, so a request the dead process had on the wire has landed before the retry
//! looks for it (the store's lease statement holds that wait). A live holder's leases are
//! extended while it works (`super::leases`), and only the holder's completion counts.
//!
//! Completions go through a completer that writes them in batches (one `UPDATE` for every action
//! finished within a few milliseconds), so each action does not pay its own round trip. An
//! action finished but not yet written when the process dies runs again, which the executors
//! make harmless.

use std::{sync::Arc, time::Duration};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    holding::{MAX_HOLD_LEASES, max_hold},
    state::{Worker, isolated, persist},
};
use crate::{domain::work::Action, store::Outbox, telemetry::metrics::metrics};

/// How long the completer waits for more completions before writing a batch.
const COMPLETE_WINDOW: Duration = Duration::from_millis(2);
/// Most completions written by one statement.
const COMPLETE_BATCH: usize = 512;

/// Runs the outbox until `shutdown`, then writes the completions still in hand.
pub async fn run(w: Worker, shutdown: CancellationToken) {
    let (done, completions) = mpsc::unbounded_channel();
    let completer = tokio::spawn(complete(
        w.queues.outbox.clone(),
        completions,
        w.settings.action_lease / 2,
    ));
    let pump = w.pump("outbox", w.settings.outbox_concurrency);
    let wake = w.wakes.outbox.clone();
    pump.run(
        &wake,
        &shutdown,
        |n| {
            let store = w.queues.outbox.clone();
            let lease = w.settings.action_lease;
            async move { store.lease_actions(lease, n).await }
        },
        |a, slot| {
            let w = w.clone();
            let done = done.clone();
            tokio::spawn(async move {
                w.attempt_action(a, &done).await;
                drop(slot);
            });
        },
    )
    .await;
    drop(done);
    if let Err(e) = completer.await {
        tracing::error!(error = %e, "the action completer panicked");
    }
}

/// Writes completed action ids in batches until every sender is gone.
async fn complete(
    outbox: Arc<dyn Outbox>,
    mut ids: mpsc::UnboundedReceiver<i64>,
    within: Duration,
) {
    while let Some(first) = ids.recv().await {
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + COMPLETE_WINDOW;
        while batch.len() < COMPLETE_BATCH {
            match tokio::time::timeout_at(until, ids.recv()).await {
                Ok(Some(id)) => batch.push(id),
                Ok(None) | Err(_) => break,
            }
        }
        match persist(within, || outbox.complete_actions(&batch)).await {
            Ok(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n < batch.len() {
                    tracing::info!(
                        finished_elsewhere = batch.len() - n,
                        "some actions were finished by another worker"
                    );
                }
            }
            Err(e) => {
                // One bad row fails the whole statement: mark each on its own, so only the
                // ones that really cannot be written run again.
                tracing::warn!(error = %e, actions = batch.len(), "cannot mark a batch of actions done; marking each");
                for id in batch {
                    if let Err(e) = outbox.complete_action(id).await {
                        tracing::warn!(
                            action_id = id,
                            error = %e,
                            "action ran but cannot be marked done; it runs again after its lease"
                        );
                    }
                }
            }
        }
    }
}

impl Worker {
    /// One attempt at a leased action, isolated: a panic in it is one failed attempt.
    async fn attempt_action(&self, a: Action, done: &mpsc::UnboundedSender<i64>) {
        let w = self.clone();
        let leased = a.clone();
        // Registered while in hand, so the lease keeper extends its lease; cut off where the
        // extensions stop, so it never runs on under a lease another holder may take.
        let _held = self.holdings.actions.hold(a.id);
        let max = max_hold(self.settings.action_lease);
        let ran = isolated(async move { tokio::time::timeout(max, w.execute(&leased)).await })
            .await
            .map(|r| r.map_err(|_| max));
        match ran {
            Ok(Err(max)) => {
                metrics()
                    .action_failures
                    .with_label_values(&[a.kind.as_str()])
                    .inc();
                let error = format!(
                    "cut off after {}s ({MAX_HOLD_LEASES} leases) in hand",
                    max.as_secs()
                );
                tracing::error!(action_id = a.id, kind = %a.kind, error, "action took too long; will retry");
                let next = self.next_attempt(a.attempts, None);
                if let Err(e) = persist(self.settings.action_lease / 2, || {
                    self.queues.outbox.retry_action(a.id, &error, next)
                })
                .await
                {
                    tracing::warn!(action_id = a.id, error = %e, "cannot record the cut-off attempt; its lease will expire");
                }
            }
            Ok(Ok(true)) => {
                if done.send(a.id).is_err() {
                    tracing::warn!(
                        action_id = a.id,
                        "action ran but the completer is gone; it runs again after its lease"
                    );
                }
            }
            Ok(Ok(false)) => {}
            Err(join) => {
                metrics().worker_panics.with_label_values(&["act"]).inc();
                let internal = a.internal_errors + 1;
                tracing::error!(
                    action_id = a.id,
                    kind = %a.kind,
                    decision_id = %a.decision_id,
                    stage = "act",
                    attempt = a.attempts,
                    cancelled = join.is_cancelled(),
                    "executing an action panicked; counted as a failed attempt"
                );
                let within = self.settings.action_lease / 2;
                let result = if internal >= self.settings.max_attempts {
                    let why = format!("panicked {internal} times (stage act)");
                    persist(within, || self.queues.outbox.fail_action(a.id, &why)).await
                } else {
                    let at = self.next_attempt(internal, None);
                    persist(within, || {
                        self.queues
                            .outbox
                            .action_crashed(a.id, "panicked (stage act)", at)
                    })
                    .await
                };
                if let Err(e) = result {
                    tracing::warn!(action_id = a.id, error = %e, "cannot record the failed action; its lease will expire");
                }
            }
        }
    }

    /// Executes one action; `true` when it is done and must be marked so.
    #[tracing::instrument(skip_all, fields(action_id = a.id, kind = %a.kind, decision_id = %a.decision_id, attempt = a.attempts))]
    async fn execute(&self, a: &Action) -> bool {
        match self.adapters.for_kind(a.kind).execute(a).await {
            Ok(()) => {
                tracing::debug!("action done");
                true
            }
            Err(e) => {
                let error = crate::causes::chain(&e);
                metrics()
                    .action_failures
                    .with_label_values(&[a.kind.as_str()])
                    .inc();
                let within = self.settings.action_lease / 2;
                let recorded = if e.is_retryable() {
                    tracing::warn!(error, "action failed; will retry");
                    let next = self.next_attempt(a.attempts, e.retry_after());
                    persist(within, || {
                        self.queues.outbox.retry_action(a.id, &error, next)
                    })
                    .await
                } else {
                    tracing::error!(error, "action rejected by the tool; giving up");
                    persist(within, || self.queues.outbox.fail_action(a.id, &error)).await
                };
                if let Err(se) = recorded {
                    tracing::warn!(error = %se, "cannot record the failed attempt; the action's lease will expire");
                }
                false
            }
        }
    }
}
