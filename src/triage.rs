//! The use case: accept a ticket, enrich it, classify it, log the decision (with the actions it
//! implies) and return it. Talks to traits only; the edges (gRPC, HTTP) and the adapters
//! (store, classifier) are plugged in at startup.

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use chrono::Utc;
use futures_util::FutureExt as _;
use tokio::sync::Notify;

use crate::{
    classifier::Decider,
    domain::{Decision, DomainError, IdempotencyKey, Ticket, TicketContext},
    store::{Claim, NewAction, Recorded, Store, StoreError},
    telemetry::{self, metrics::metrics},
};

/// Why a ticket could not be triaged. Each edge maps these in one place (`crate::error`).
#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    /// The input is invalid; the message names the field.
    #[error(transparent)]
    InvalidInput(#[from] DomainError),
    /// The routing log cannot be written; nothing was decided, the caller should retry.
    #[error("the routing log is unavailable; retry later")]
    StoreUnavailable(#[source] StoreError),
    /// Another request is deciding the same ticket right now and did not finish in time.
    #[error("ticket {0} is being classified by another request; retry shortly")]
    InFlight(String),
    /// Anything else; details are logged, never returned.
    #[error("internal error")]
    Unexpected(#[source] anyhow::Error),
}

impl From<StoreError> for TriageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => TriageError::StoreUnavailable(e),
            other => TriageError::Unexpected(other.into()),
        }
    }
}

/// A decision and whether it was made before.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The logged decision (for a dry run: computed, not logged).
    pub decision: Decision,
    /// True when the key was decided already and nothing was done now.
    pub duplicate: bool,
}

/// Tunables of the use case.
#[derive(Debug, Clone)]
pub struct TriageSettings {
    /// How long a claim on a ticket lasts; a crashed holder's ticket is taken over after it.
    /// Must exceed the classifier's whole deadline (retries included).
    pub claim_lease: Duration,
    /// How long a duplicate request waits for the in-flight original before answering "retry".
    pub in_flight_wait: Duration,
}

impl Default for TriageSettings {
    fn default() -> Self {
        Self {
            claim_lease: Duration::from_secs(120),
            in_flight_wait: Duration::from_secs(20),
        }
    }
}

/// Builds the actions a decision implies (empty when the ticket's source has nothing to act on).
pub trait ActionPlanner: Send + Sync {
    /// The actions for `decision` on `ticket`, written in the same transaction as the decision.
    fn plan(&self, ticket: &Ticket, decision: &Decision) -> Vec<NewAction>;
}

/// A planner that plans nothing (decisions are logged, nobody is told).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoActions;

impl ActionPlanner for NoActions {
    fn plan(&self, _ticket: &Ticket, _decision: &Decision) -> Vec<NewAction> {
        Vec::new()
    }
}

/// The triage use case.
#[derive(Clone)]
pub struct Triage {
    store: Arc<dyn Store>,
    decider: Decider,
    planner: Arc<dyn ActionPlanner>,
    settings: TriageSettings,
    /// Told when a decision with actions is logged, so the outbox runs them at once.
    acted: Option<Arc<Notify>>,
    /// Keys this process is deciding now. A claim of this process on any other key is stale
    /// (its attempt failed and could not release it) and is taken over.
    deciding: Arc<std::sync::Mutex<std::collections::HashSet<IdempotencyKey>>>,
}

/// Marks a key as being decided in this process until dropped (also on unwind).
struct Deciding {
    keys: Arc<std::sync::Mutex<std::collections::HashSet<IdempotencyKey>>>,
    key: IdempotencyKey,
}

impl Drop for Deciding {
    fn drop(&mut self) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.remove(&self.key);
        }
    }
}

impl Triage {
    /// A use case over the given store, classifier and action planner.
    pub fn new(
        store: Arc<dyn Store>,
        decider: Decider,
        planner: Arc<dyn ActionPlanner>,
        settings: TriageSettings,
    ) -> Self {
        Self {
            store,
            decider,
            planner,
            settings,
            acted: None,
            deciding: Arc::default(),
        }
    }

    /// Registers `key` as being decided here; `None` when this process already is (a
    /// concurrent request), whose claim must then be respected.
    fn enter(&self, key: &IdempotencyKey) -> Option<Deciding> {
        let mut keys = self.deciding.lock().ok()?;
        keys.insert(key.clone()).then(|| Deciding {
            keys: self.deciding.clone(),
            key: key.clone(),
        })
    }

    /// Wakes `outbox` whenever a decision with actions is logged.
    #[must_use]
    pub fn notifying(mut self, outbox: Arc<Notify>) -> Self {
        self.acted = Some(outbox);
        self
    }

    /// The store, for readiness checks.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The classifier, for the startup log line.
    pub fn decider(&self) -> &Decider {
        &self.decider
    }

    /// Decides `ticket` once: the first call for its key classifies and logs; every later call
    /// returns the logged decision with `duplicate = true` and does nothing else.
    ///
    /// # Errors
    /// [`TriageError::StoreUnavailable`] when the log cannot be written (nothing was decided),
    /// [`TriageError::InFlight`] when a concurrent request holds the ticket past the wait,
    /// [`TriageError::Unexpected`] when deciding panicked. After any failure of a request that
    /// held the claim, the claim is released at once (nothing was logged), so a retry decides
    /// the ticket without waiting out [`TriageSettings::claim_lease`].
    // No span of its own: enrichment and labels are recorded on the caller's root span.
    pub async fn decide(
        &self,
        ticket: Ticket,
        trace_id: Option<String>,
    ) -> Result<Outcome, TriageError> {
        let since = Utc::now() - chrono::Duration::hours(24);
        let deciding = self.enter(ticket.key());
        let (claim, repeat_count_24h) = self
            .store
            .claim_counting(
                &ticket,
                self.settings.claim_lease,
                Some(since),
                deciding.is_some(),
            )
            .await?;
        match claim {
            Claim::Decided(decision) => {
                tracing::info!(key = %ticket.key(), decision_id = %decision.id, "duplicate; returning the logged decision");
                metrics()
                    .duplicates
                    .with_label_values(&[decision.source.as_str()])
                    .inc();
                Ok(Outcome {
                    decision: *decision,
                    duplicate: true,
                })
            }
            Claim::InFlight => self.wait_for(&ticket).await,
            Claim::New => {
                let key = ticket.key().clone();
                // A panic anywhere in deciding (a classifier bug on some input) is this
                // request's failure, not the process's: it is caught here like an error.
                let decided =
                    AssertUnwindSafe(self.decide_claimed(ticket, repeat_count_24h, trace_id))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|_panic| {
                            // The message can quote ticket text, so it stays out of the log.
                            metrics().worker_panics.with_label_values(&["decide"]).inc();
                            tracing::error!(%key, stage = "decide", "deciding a ticket panicked; counted as a failed attempt");
                            Err(TriageError::Unexpected(anyhow::anyhow!(
                                "deciding {key} panicked"
                            )))
                        });
                if decided.is_err() {
                    // Nothing was logged: hand the claim back now, so the caller's retry (or
                    // the worker) decides the ticket instead of waiting out the lease.
                    match self.store.release_claim(&key).await {
                        Ok(released) => {
                            tracing::info!(%key, released, "claim released after a failure")
                        }
                        Err(e) => {
                            tracing::warn!(%key, error = %e, "cannot release the claim; it expires with its lease")
                        }
                    }
                }
                decided
            }
        }
    }

    /// Classifies and logs a ticket this caller holds the claim on.
    async fn decide_claimed(
        &self,
        ticket: Ticket,
        repeat_count_24h: u32,
        trace_id: Option<String>,
    ) -> Result<Outcome, TriageError> {
        let ctx = TicketContext {
            ticket,
            repeat_count_24h,
        };
        telemetry::record_context(&tracing::Span::current(), &ctx);
        let classification = self.decider.decide(&ctx).await;
        self.log(&ctx, classification, trace_id).await
    }

    /// Logs the safe decision for `ticket` (see [`Decider::safe`]) with the actions it implies,
    /// for a ticket the worker could not decide; `reason` is the fallback reason. A key decided
    /// meanwhile returns its logged decision.
    ///
    /// # Errors
    /// As [`Triage::decide`].
    pub async fn decide_safe(
        &self,
        ticket: Ticket,
        reason: &str,
        trace_id: Option<String>,
    ) -> Result<Outcome, TriageError> {
        let deciding = self.enter(ticket.key());
        let (claim, repeat_count_24h) = self
            .store
            .claim_counting(&ticket, self.settings.claim_lease, None, deciding.is_some())
            .await?;
        match claim {
            Claim::Decided(decision) => Ok(Outcome {
                decision: *decision,
                duplicate: true,
            }),
            Claim::InFlight => Err(TriageError::InFlight(ticket.key().to_string())),
            Claim::New => {
                let ctx = TicketContext {
                    ticket,
                    repeat_count_24h,
                };
                let classification = self.decider.safe(reason);
                self.log(&ctx, classification, trace_id).await
            }
        }
    }

    /// Gives up this process's claim on `key` after its decision failed unexpectedly, so a retry
    /// does not wait out the claim lease.
    ///
    /// # Errors
    /// When the store cannot be written (the claim then expires with its lease).
    pub async fn release(&self, key: &crate::domain::IdempotencyKey) -> Result<bool, TriageError> {
        Ok(self.store.release_claim(key).await?)
    }

    /// Writes the decision for `ctx` and the actions it implies.
    async fn log(
        &self,
        ctx: &TicketContext,
        classification: crate::domain::Classification,
        trace_id: Option<String>,
    ) -> Result<Outcome, TriageError> {
        let decision = Decision::new(ctx, classification, trace_id);
        let actions = self.planner.plan(&ctx.ticket, &decision);
        match self.store.record(&decision, &actions).await? {
            Recorded::New => {
                if let (Some(outbox), false) = (&self.acted, actions.is_empty()) {
                    outbox.notify_one();
                }
                metrics().decision(&decision);
                tracing::info!(
                    key = %decision.key(),
                    decision_id = %decision.id,
                    severity = %decision.severity,
                    route = %decision.route,
                    model = %decision.model,
                    fallback = decision.fallback,
                    actions = actions.len(),
                    "decision logged"
                );
                Ok(Outcome {
                    decision,
                    duplicate: false,
                })
            }
            Recorded::Existing(d) => {
                metrics()
                    .duplicates
                    .with_label_values(&[d.source.as_str()])
                    .inc();
                Ok(Outcome {
                    decision: *d,
                    duplicate: true,
                })
            }
        }
    }

    /// Classifies without logging or acting (`Route` with `dry_run`). A key that was decided
    /// already returns its logged decision.
    ///
    /// # Errors
    /// [`TriageError::StoreUnavailable`] when the log cannot be read.
    pub async fn dry_run(
        &self,
        ticket: Ticket,
        trace_id: Option<String>,
    ) -> Result<Outcome, TriageError> {
        if let Some(d) = self.store.decision(ticket.key()).await? {
            return Ok(Outcome {
                decision: d,
                duplicate: true,
            });
        }
        let ctx = self.enrich(ticket).await?;
        let classification = self.decider.decide(&ctx).await;
        Ok(Outcome {
            decision: Decision::new(&ctx, classification, trace_id),
            duplicate: false,
        })
    }

    async fn enrich(&self, ticket: Ticket) -> Result<TicketContext, TriageError> {
        let repeat_count_24h = match ticket.customer_id() {
            Some(customer) => {
                let since = Utc::now() - chrono::Duration::hours(24);
                self.store
                    .recent_tickets(
                        ticket.key().source,
                        customer,
                        &ticket.key().ticket_id,
                        since,
                    )
                    .await?
            }
            None => 0,
        };
        let ctx = TicketContext {
            ticket,
            repeat_count_24h,
        };
        telemetry::record_context(&tracing::Span::current(), &ctx);
        Ok(ctx)
    }

    async fn wait_for(&self, ticket: &Ticket) -> Result<Outcome, TriageError> {
        let deadline = tokio::time::Instant::now() + self.settings.in_flight_wait;
        let mut pause = Duration::from_millis(20);
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(pause).await;
            if let Some(d) = self.store.decision(ticket.key()).await? {
                metrics()
                    .duplicates
                    .with_label_values(&[d.source.as_str()])
                    .inc();
                return Ok(Outcome {
                    decision: d,
                    duplicate: true,
                });
            }
            pause = (pause * 2).min(Duration::from_millis(500));
        }
        Err(TriageError::InFlight(ticket.key().to_string()))
    }
}

/// The message of a caught panic (`panic!` with a literal or a formatted string).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}
