//! The triage use case: a ticket is claimed under its idempotency key, enriched, classified and
//! its decision logged with the actions it implies, once; every later request for the key gets
//! the logged decision.

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures_util::FutureExt as _;
use tokio::sync::Notify;
use tracing::Instrument as _;

use super::{Outcome, TriageError, TriageSettings};
use crate::{
    classifier::Decider,
    domain::{Decision, IdempotencyKey, Source, Ticket, TicketContext},
    store::{Claim, ClaimOptions, FollowUpLog, Recorded, RoutingLog, StoreError, Undecided},
    telemetry::{self, HeaderSource, metrics::metrics},
    ticketing::ActionPlanner,
};

/// What a request asks of the use case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Log the decision with the actions it implies (gRPC `Route`, webhook deliveries).
    Route,
    /// Log the decision only, acting in no tool (gRPC `Classify`: the proto says it only logs,
    /// even when `[actions] api_tool` routes `api` tickets back).
    LogOnly,
    /// Classify without logging or acting (`Route` with `dry_run`).
    DryRun,
}

/// The triage use case.
#[derive(Clone)]
pub struct Triage {
    pub(super) log: Arc<dyn RoutingLog>,
    pub(super) decider: Decider,
    pub(super) planner: Arc<dyn ActionPlanner>,
    pub(super) settings: TriageSettings,
    /// The follow-ups' part of the log; without it customers' later messages are not decided.
    pub(super) followups: Option<Arc<dyn FollowUpLog>>,
    /// Told when a decision with actions is logged, so the outbox runs them at once.
    acted: Option<Arc<Notify>>,
    /// Keys this process is deciding now. A claim of this process on any other key is stale
    /// (its attempt failed and could not release it) and is taken over.
    deciding: Arc<std::sync::Mutex<std::collections::HashSet<IdempotencyKey>>>,
}

/// Marks a key as being decided in this process until dropped (also on unwind).
pub(super) struct Deciding {
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
    /// A use case over the given routing log, classifier and action planner.
    pub fn new(
        log: Arc<dyn RoutingLog>,
        decider: Decider,
        planner: Arc<dyn ActionPlanner>,
        settings: TriageSettings,
    ) -> Self {
        Self {
            log,
            decider,
            planner,
            settings,
            acted: None,
            deciding: Arc::default(),
            followups: None,
        }
    }

    /// Decides customers' later messages again, keeping their windows and counts in `log`.
    #[must_use]
    pub fn with_followups(mut self, log: Arc<dyn FollowUpLog>) -> Self {
        self.followups = Some(log);
        self
    }

    /// Claims `ticket` in the log (taking over this process's own stale claim), counting its
    /// repeats since `repeats_since` when given: the shared first step of both decide paths.
    pub(super) async fn claim(
        &self,
        ticket: &Ticket,
        repeats_since: Option<DateTime<Utc>>,
        acts: bool,
    ) -> Result<(Claim, u32), TriageError> {
        let options = ClaimOptions {
            repeats_since,
            take_own: true,
            acts,
        };
        Ok(self
            .log
            .claim_counting(ticket, self.settings.claim_lease, &options)
            .await?)
    }

    /// Registers `key` as being decided here; `None` when this process already is (a
    /// concurrent request, whose decision the caller then waits for).
    pub(super) fn enter(&self, key: &IdempotencyKey) -> Option<Deciding> {
        let mut keys = self.deciding.lock().ok()?;
        keys.insert(key.clone()).then(|| Deciding {
            keys: self.deciding.clone(),
            key: key.clone(),
        })
    }

    /// The same use case (same classifier, planner and keys in hand) over another handle of
    /// the log: the gRPC edge decides over the accept path's pool, so its answers never wait
    /// behind the worker's statements.
    #[must_use]
    pub fn over(&self, log: Arc<dyn RoutingLog>) -> Self {
        Self {
            log,
            ..self.clone()
        }
    }

    /// Wakes `outbox` whenever a decision with actions is logged.
    #[must_use]
    pub fn notifying(mut self, outbox: Arc<Notify>) -> Self {
        self.acted = Some(outbox);
        self
    }

    /// Tickets from `source` whose claim ran out undecided (their process died), oldest
    /// first, for the worker's recovery loop to decide.
    ///
    /// # Errors
    /// When the routing log cannot be read.
    pub async fn undecided(
        &self,
        source: Source,
        limit: u32,
    ) -> Result<Vec<Undecided>, StoreError> {
        self.log.undecided_tickets(source, limit).await
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
        self.decide_once(ticket, trace_id, true).await
    }

    /// Runs `mode` for one ticket in its own trace: a root span named `name` continuing the
    /// W3C `traceparent` of `parent` (a caller's metadata, a stored delivery's), with the
    /// ticket, then the decision or the error, recorded on it. The one sequence of the gRPC
    /// edge and the worker; `ticket` is the edge's parse, so an invalid input is recorded too.
    ///
    /// # Errors
    /// The parse error, or as [`Triage::decide`].
    pub async fn traced(
        &self,
        name: &str,
        parent: &(dyn HeaderSource + Sync),
        ticket: Result<Ticket, TriageError>,
        mode: Mode,
    ) -> Result<Outcome, TriageError> {
        let span = telemetry::root_span(name, parent);
        let trace = telemetry::trace_id(&span, parent);
        let result = match ticket {
            Err(e) => Err(e),
            Ok(ticket) => {
                telemetry::record_ticket(&span, &ticket);
                let run = async {
                    match mode {
                        Mode::Route => self.decide(ticket, trace).await,
                        // As `decide`, without the actions the decision implies.
                        Mode::LogOnly => self.decide_once(ticket, trace, false).await,
                        Mode::DryRun => self.dry_run(ticket, trace).await,
                    }
                };
                run.instrument(span.clone()).await
            }
        };
        match &result {
            Ok(o) => telemetry::record_decision(&span, &o.decision, o.duplicate),
            Err(e) => telemetry::record_error(&span, &e.to_string()),
        }
        result
    }

    /// Decides `ticket` once; `act` plans the actions the decision implies (`false`: gRPC
    /// `Classify`, which only logs). The worker decides an abandoned ticket with the `act` its
    /// request claimed it with.
    ///
    /// # Errors
    /// As [`Triage::decide`].
    pub async fn decide_once(
        &self,
        ticket: Ticket,
        trace_id: Option<String>,
        act: bool,
    ) -> Result<Outcome, TriageError> {
        let since = Utc::now() - chrono::Duration::hours(24);
        // One request per key in this process claims it; a concurrent duplicate here waits for
        // its decision. So a claim of this process that nobody here is deciding is stale (its
        // attempt failed and could not release it) and is taken over.
        let Some(_deciding) = self.enter(ticket.key()) else {
            return self.wait_for(&ticket).await;
        };
        let (claim, repeat_count_24h) = self.claim(&ticket, Some(since), act).await?;
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
                    AssertUnwindSafe(self.decide_claimed(ticket, repeat_count_24h, trace_id, act))
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
                    match self.log.release_claim(&key).await {
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
        act: bool,
    ) -> Result<Outcome, TriageError> {
        let ctx = TicketContext {
            ticket: self.settings.weighting.account(ticket),
            repeat_count_24h,
        };
        telemetry::record_context(&tracing::Span::current(), &ctx);
        let classification = self.decider.decide(&ctx).await;
        self.log(&ctx, classification, trace_id, act).await
    }

    /// The decision for `ctx` from `classification`, with the weighting rules applied after
    /// the classifier: the final severity (and so the route) may be raised by a floor, and the
    /// classifier's own severity and the rule are kept beside it.
    pub(super) fn weighed(
        &self,
        ctx: &TicketContext,
        classification: crate::domain::Classification,
        trace_id: Option<String>,
    ) -> Decision {
        let decision = Decision::new(ctx, classification, trace_id);
        let w = self.settings.weighting.apply(ctx, decision.severity);
        decision.weighed(w.severity, w.rule)
    }

    /// Logs the safe decision for `ticket` (see [`Decider::safe`]) with the actions it implies,
    /// for a ticket the worker could not decide; `reason` is the fallback reason. A key decided
    /// meanwhile returns its logged decision. `act` as in [`Triage::decide_once`].
    ///
    /// # Errors
    /// As [`Triage::decide`].
    pub async fn decide_safe(
        &self,
        ticket: Ticket,
        reason: &str,
        trace_id: Option<String>,
        act: bool,
    ) -> Result<Outcome, TriageError> {
        let Some(_deciding) = self.enter(ticket.key()) else {
            return Err(TriageError::InFlight(ticket.key().to_string()));
        };
        let (claim, repeat_count_24h) = self.claim(&ticket, None, act).await?;
        match claim {
            Claim::Decided(decision) => Ok(Outcome {
                decision: *decision,
                duplicate: true,
            }),
            Claim::InFlight => Err(TriageError::InFlight(ticket.key().to_string())),
            Claim::New => {
                let ctx = TicketContext {
                    ticket: self.settings.weighting.account(ticket),
                    repeat_count_24h,
                };
                let classification = self.decider.safe(reason);
                self.log(&ctx, classification, trace_id, act).await
            }
        }
    }

    /// Gives up this process's claim on `key` after its decision failed unexpectedly, so a retry
    /// does not wait out the claim lease.
    ///
    /// # Errors
    /// When the store cannot be written (the claim then expires with its lease).
    pub async fn release(&self, key: &crate::domain::IdempotencyKey) -> Result<bool, TriageError> {
        Ok(self.log.release_claim(key).await?)
    }

    /// Writes the decision for `ctx` and, with `act`, the actions it implies.
    async fn log(
        &self,
        ctx: &TicketContext,
        classification: crate::domain::Classification,
        trace_id: Option<String>,
        act: bool,
    ) -> Result<Outcome, TriageError> {
        let mut decision = self.weighed(ctx, classification, trace_id);
        if let (Some(_), Some(log)) = (ctx.ticket.conversation(), &self.followups) {
            // A ticket decided on its conversation supersedes its newest decision.
            let key = ctx.ticket.key();
            decision.supersedes = log
                .thread_decisions(key.source, &key.ticket_id)
                .await?
                .into_iter()
                .find(|d| d.ticket_version != key.version)
                .map(|d| d.id);
        }
        let actions = if act {
            self.planner.plan(&ctx.ticket, &decision)
        } else {
            Vec::new()
        };
        self.record_decided(decision, &actions).await
    }

    /// Writes `decision` with `actions` (the delivery of its key marked done in the same
    /// transaction), logs it with its cost in the metrics, and wakes the outbox.
    pub(super) async fn record_decided(
        &self,
        decision: Decision,
        actions: &[crate::domain::work::NewAction],
    ) -> Result<Outcome, TriageError> {
        match self.log.record(&decision, actions).await? {
            Recorded::New => {
                if let (Some(outbox), false) = (&self.acted, actions.is_empty()) {
                    outbox.notify_one();
                }
                metrics().decision(&decision);
                tracing::info!(
                    key = %decision.key(),
                    decision_id = %decision.id,
                    severity = %decision.severity,
                    model_severity = %decision.model_severity,
                    weighting_rule = decision.weighting_rule.as_deref().unwrap_or("none"),
                    tier = %decision.tier,
                    tier_source = decision.tier_source.map_or("unknown", |s| s.as_str()),
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
        if let Some(d) = self.log.decision(ticket.key()).await? {
            return Ok(Outcome {
                decision: d,
                duplicate: true,
            });
        }
        let ctx = self.enrich(ticket).await?;
        let classification = self.decider.decide(&ctx).await;
        Ok(Outcome {
            decision: self.weighed(&ctx, classification, trace_id),
            duplicate: false,
        })
    }

    async fn enrich(&self, ticket: Ticket) -> Result<TicketContext, TriageError> {
        let repeat_count_24h = match ticket.customer_id() {
            Some(customer) => {
                let since = Utc::now() - chrono::Duration::hours(24);
                self.log
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
            ticket: self.settings.weighting.account(ticket),
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
            if let Some(d) = self.log.decision(ticket.key()).await? {
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
