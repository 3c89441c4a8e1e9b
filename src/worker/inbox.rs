//! The inbox loop: stored webhook deliveries become tickets (through their adapter, which
//! fetches and enriches them) and are decided; and the recovery loop for gRPC tickets whose
//! request died after claiming them.
//!
//! What each outcome of an attempt does:
//!
//! | outcome | then |
//! |---|---|
//! | decided (or found decided) | the delivery is done (in the decision's transaction) |
//! | the tool or the database is unavailable, another worker holds the ticket | retried with backoff, unbounded |
//! | the ticket cannot be read (the tool says it does not exist, refuses the token, rejects the call) | the safe decision at once, reason `ticket_unreadable: <the call and its answer>` |
//! | the ticket is invalid (e.g. an empty message) | the safe decision at once: a person reads it |
//! | a panic or an unexpected error | one failed attempt (claim released, backoff); the safe decision after `max_attempts` |
//! | the safe decision itself cannot be logged (not an outage) | the delivery is failed with both reasons |
//!
//! So every delivery that got a 2xx ends with a decision in the routing log, and its actions
//! (which may fail too, e.g. with the same refused token, and then end `failed`).

use std::{collections::HashMap, time::Instant};

use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::{
    holding::{MAX_HOLD_LEASES, max_hold},
    state::{Worker, isolated, persist},
};
use crate::{
    causes::chain,
    classifier::INTERNAL_ERROR,
    domain::{
        IdempotencyKey, RawTicket, Source, Ticket,
        conversation::{Author, Conversation, MESSAGE_VERSION_PREFIX, Message},
        work::PendingDelivery,
    },
    telemetry::{self, metrics::metrics},
    ticketing::TicketingError,
    triage::{
        FollowUp, Mode, Outcome, TriageError,
        followup::{Gate, Ready},
    },
};

/// What the message of a ticket whose text cannot be read says, in the safe decision's log row
/// and in the tool's note.
const UNREADABLE_BODY: &str = "(escalator could not read this ticket's text; open it in the tool)";

/// Runs the inbox until `shutdown`.
pub async fn run(w: Worker, shutdown: CancellationToken) {
    let pump = w.pump("inbox", w.settings.inbox_concurrency);
    let wake = w.wakes.inbox.clone();
    pump.run(
        &wake,
        &shutdown,
        |n| {
            let store = w.queues.inbox.clone();
            let lease = w.settings.delivery_lease;
            async move { store.lease_deliveries(lease, n).await }
        },
        |d, slot| {
            let w = w.clone();
            tokio::spawn(async move {
                w.attempt_delivery(d).await;
                drop(slot);
            });
        },
    )
    .await;
}

/// How an attempt at a delivery ended, when it did not end it.
enum Failed {
    /// Try again later (the tool, the database or a concurrent holder); not counted.
    Later {
        error: String,
        hint: Option<std::time::Duration>,
    },
    /// A bug or a corrupt row: counted towards `max_attempts`.
    Internal(String),
    /// The tool will not give the ticket (no such ticket, our token refused, the call
    /// rejected): decide it safely now, naming the cause (`cause` is the metric's label).
    Unreadable { error: String, cause: &'static str },
    /// The ticket can be had but is invalid: decide it safely now.
    Invalid(String),
}

impl Worker {
    /// One attempt at a leased delivery, isolated: a panic anywhere in it is one failed attempt.
    async fn attempt_delivery(&self, d: PendingDelivery) {
        let w = self.clone();
        let leased = d.clone();
        // Registered while in hand, so the lease keeper extends its lease; cut off where the
        // extensions stop (counted as an unexpected failure: the safe decision follows).
        let _held = self.holdings.deliveries.hold(d.key.clone());
        let max = max_hold(self.settings.delivery_lease);
        let result =
            isolated(async move { tokio::time::timeout(max, w.decide_delivery(&leased)).await })
                .await;
        let failed = match result {
            Ok(Ok(Ok(()))) => return,
            Ok(Ok(Err(f))) => f,
            Ok(Err(_)) => Failed::Internal(format!(
                "cut off after {}s ({MAX_HOLD_LEASES} leases) in hand",
                max.as_secs()
            )),
            Err(join) => {
                metrics().worker_panics.with_label_values(&["decide"]).inc();
                tracing::error!(
                    key = %d.key,
                    stage = "decide",
                    attempt = d.attempts,
                    cancelled = join.is_cancelled(),
                    "deciding a delivery panicked; counted as a failed attempt"
                );
                Failed::Internal("panicked while deciding (stage decide)".to_owned())
            }
        };
        match failed {
            Failed::Later { error, hint } => {
                tracing::warn!(key = %d.key, error, "cannot decide the delivery yet; will retry");
                self.retry_later(&d, &error, hint).await;
            }
            Failed::Unreadable { error, cause } => {
                unreadable(&d.key, cause);
                tracing::error!(
                    key = %d.key,
                    cause,
                    error,
                    "the ticket cannot be read from its tool; logging the safe decision"
                );
                self.decide_safely(&d, &format!("ticket_unreadable: {error}"), false)
                    .await;
            }
            Failed::Invalid(error) => {
                unreadable(&d.key, "invalid");
                tracing::warn!(key = %d.key, error, "the ticket is invalid; logging the safe decision");
                self.decide_safely(&d, &format!("invalid_ticket: {error}"), false)
                    .await;
            }
            Failed::Internal(error) => {
                // A claim this attempt left would make the retry wait out the claim lease.
                if let Err(e) = self.triage.release(&d.key).await {
                    tracing::warn!(key = %d.key, error = %chain(&e), "cannot release the claim; it expires with its lease");
                }
                let internal = d.internal_errors + 1;
                if internal >= self.settings.max_attempts {
                    tracing::error!(
                        key = %d.key,
                        internal_errors = internal,
                        "delivery failed {internal} times unexpectedly; logging the safe decision"
                    );
                    self.decide_safely(&d, INTERNAL_ERROR, true).await;
                } else if let Err(se) = persist(self.settings.delivery_lease / 2, || {
                    self.queues.inbox.delivery_crashed(
                        &d.key,
                        &error,
                        self.next_attempt(internal, None),
                    )
                })
                .await
                {
                    tracing::warn!(key = %d.key, error = %se, "cannot reschedule the delivery; its lease will expire");
                }
            }
        }
    }

    /// Builds the ticket and decides it.
    async fn decide_delivery(&self, d: &PendingDelivery) -> Result<(), Failed> {
        if d.internal_errors >= self.settings.max_attempts {
            // The process died before it could log the safe decision last time.
            self.decide_safely(d, INTERNAL_ERROR, true).await;
            return Ok(());
        }
        let key = &d.key;
        let Some(adapter) = self.adapters.get(key.source) else {
            return Err(Failed::Unreadable {
                error: format!("no ticketing tool is configured for {}", key.source),
                cause: "other",
            });
        };
        // A follow-up carries its message (Plain), or the tool has the thread (Pylon).
        let (mut message, mut thread) = (None, None);
        if d.key.version.starts_with(MESSAGE_VERSION_PREFIX) {
            message = d
                .payload
                .get("message")
                .cloned()
                .and_then(|m| serde_json::from_value::<Message>(m).ok());
            if message.is_none() {
                if let Some(messages) =
                    adapter.thread_messages(d).await.map_err(failed_ticketing)?
                {
                    message = Conversation::new(messages.clone())
                        .messages()
                        .last()
                        .cloned();
                    thread = Some(messages);
                }
                if message.is_none() {
                    self.finish_message(key, "the tool shows no message").await;
                    return Ok(());
                }
            }
        }
        if let Some(m) = &message {
            if m.author == Author::Agent || !self.triage.follow_ups_enabled() {
                // Part of the conversation a later re-decision reads; nothing to decide now.
                self.finish_message(key, "a message read, not decided")
                    .await;
                return Ok(());
            }
        }
        let ready = match &message {
            Some(m) => match self.follow_up_gate(d, m).await? {
                Gate::Go(ready) => Some(ready),
                Gate::Done(done) => return self.followed_up(d, Ok(done)).await,
            },
            None => None,
        };
        let ticket = adapter.ticket(d).await.map_err(failed_ticketing)?;
        if let Some(ready) = ready {
            return self.follow_up(d, ticket, ready, thread).await;
        }
        // One trace per ticket: this span continues the webhook request's trace.
        let parent = d.trace_context.as_deref();
        let result = self
            .triage
            .traced(
                &format!("decide {} delivery", key.source),
                &telemetry::Traceparent(parent),
                Ok(ticket),
                Mode::Route,
            )
            .await;
        match result {
            Ok(outcome) => {
                self.finished(key, &outcome).await;
                Ok(())
            }
            Err(TriageError::InvalidInput(e)) => Err(Failed::Invalid(e.to_string())),
            Err(e @ (TriageError::StoreUnavailable(_) | TriageError::InFlight(_))) => {
                Err(Failed::Later {
                    error: chain(&e),
                    hint: None,
                })
            }
            Err(e @ TriageError::Unexpected(_)) => Err(Failed::Internal(chain(&e))),
        }
    }

    /// Asks the follow-up's gate (`crate::triage::followup`) whether to decide it now.
    async fn follow_up_gate(&self, d: &PendingDelivery, message: &Message) -> Result<Gate, Failed> {
        let received_at = d
            .payload
            .get("received_at")
            .and_then(serde_json::Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or(message.sent_at, |t| t.with_timezone(&chrono::Utc));
        self.triage
            .follow_up_gate(&d.key, message, received_at)
            .await
            .map_err(failed_follow_up)
    }

    /// Decides a customer's follow-up again on the conversation, in a trace of its own.
    async fn follow_up(
        &self,
        d: &PendingDelivery,
        ticket: Ticket,
        ready: Ready,
        thread: Option<Vec<Message>>,
    ) -> Result<(), Failed> {
        let parent = telemetry::Traceparent(d.trace_context.as_deref());
        let span = telemetry::root_span(&format!("follow-up {} delivery", d.key.source), &parent);
        let trace = telemetry::trace_id(&span, &parent);
        let result = self
            .triage
            .follow_up(ticket, ready, thread, trace)
            .instrument(span)
            .await;
        self.followed_up(d, result).await
    }

    /// What a follow-up's outcome does to its delivery: done, rescheduled for the end of its
    /// window, or a failed attempt.
    async fn followed_up(
        &self,
        d: &PendingDelivery,
        result: Result<FollowUp, TriageError>,
    ) -> Result<(), Failed> {
        match result.map_err(failed_follow_up)? {
            FollowUp::Skipped(why) => self.finish_message(&d.key, why).await,
            FollowUp::Wait(until) => {
                if let Err(se) = persist(self.settings.delivery_lease / 2, || {
                    self.queues.inbox.retry_delivery(
                        &d.key,
                        "waiting for the end of the thread's follow-up window",
                        until,
                    )
                })
                .await
                {
                    tracing::warn!(key = %d.key, error = %se, "cannot reschedule the follow-up; its lease will expire");
                }
            }
            FollowUp::Decided { outcome, .. } => self.finished(&d.key, &outcome).await,
        }
        Ok(())
    }

    /// Marks a message delivery done without a decision, saying why at DEBUG.
    async fn finish_message(&self, key: &IdempotencyKey, why: &str) {
        tracing::debug!(%key, why, "message delivery done without a decision");
        if let Err(e) = persist(self.settings.delivery_lease / 2, || {
            self.queues.inbox.finish_delivery(key)
        })
        .await
        {
            tracing::warn!(%key, error = %e, "cannot mark the message delivery done; it will be seen again");
        }
    }

    /// A new decision marked its delivery done in its own transaction; a duplicate did not.
    async fn finished(&self, key: &IdempotencyKey, outcome: &Outcome) {
        if outcome.duplicate {
            if let Err(e) = persist(self.settings.delivery_lease / 2, || {
                self.queues.inbox.finish_delivery(key)
            })
            .await
            {
                // The decision is logged; a repeat of this delivery finds it and does nothing.
                tracing::warn!(%key, error = %e, "cannot mark the delivery done; it will be seen again as a duplicate");
            }
        }
        tracing::debug!(%key, decision_id = %outcome.decision.id, duplicate = outcome.duplicate, "delivery decided");
    }

    /// Logs the safe decision for a delivery that cannot be decided: with `read`, from the
    /// ticket as the tool has it if that can be read, else (and without `read`, when reading it
    /// is what failed) from its key alone; if even that cannot be logged, the delivery is failed
    /// with the reason. Every step is isolated.
    async fn decide_safely(&self, d: &PendingDelivery, reason: &str, read: bool) {
        if d.key.version.starts_with(MESSAGE_VERSION_PREFIX) {
            // A follow-up only ever raises: the safe decision (urgent) could lower the ticket.
            // The thread keeps its decision; the message stays for the next re-decision.
            self.give_up_delivery(&d.key, &format!("follow-up not decided: {reason}"))
                .await;
            return;
        }
        let read = match self.adapters.get(d.key.source).filter(|_| read) {
            Some(adapter) => {
                let (adapter, d) = (adapter.clone(), d.clone());
                isolated(async move { adapter.ticket(&d).await })
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            None => None,
        };
        let mut candidates: Vec<Ticket> = read.into_iter().collect();
        match unreadable_ticket(&d.key) {
            Ok(t) => candidates.push(t),
            Err(e) => tracing::error!(key = %d.key, error = %e, "cannot build even a bare ticket"),
        }
        let mut last = "no ticket could be built".to_owned();
        for ticket in candidates {
            let triage = self.triage.clone();
            let why = reason.to_owned();
            match isolated(async move { triage.decide_safe(ticket, &why, None, true).await }).await
            {
                Ok(Ok(outcome)) => {
                    tracing::warn!(
                        key = %d.key,
                        decision_id = %outcome.decision.id,
                        reason,
                        "safe decision logged: urgent, routed to a person"
                    );
                    self.finished(&d.key, &outcome).await;
                    return;
                }
                Ok(Err(e @ (TriageError::StoreUnavailable(_) | TriageError::InFlight(_)))) => {
                    // Nothing is lost: the next attempt tries again.
                    let error = chain(&e);
                    tracing::warn!(key = %d.key, error, "cannot log the safe decision yet; will retry");
                    self.retry_later(d, &error, None).await;
                    return;
                }
                Ok(Err(e)) => last = chain(&e),
                Err(_) => {
                    metrics().worker_panics.with_label_values(&["decide"]).inc();
                    if let Err(e) = self.triage.release(&d.key).await {
                        tracing::warn!(key = %d.key, error = %chain(&e), "cannot release the claim");
                    }
                    last = "panicked while logging the safe decision".to_owned();
                }
            }
        }
        self.give_up_delivery(
            &d.key,
            &format!("{reason}; the safe decision failed too: {last}"),
        )
        .await;
    }

    /// Hands the delivery back for another attempt after its backoff (or the tool's `hint`).
    async fn retry_later(
        &self,
        d: &PendingDelivery,
        error: &str,
        hint: Option<std::time::Duration>,
    ) {
        let next = self.next_attempt(d.attempts, hint);
        if let Err(se) = persist(self.settings.delivery_lease / 2, || {
            self.queues.inbox.retry_delivery(&d.key, error, next)
        })
        .await
        {
            tracing::warn!(key = %d.key, error = %se, "cannot reschedule the delivery; its lease will expire");
        }
    }

    async fn give_up_delivery(&self, key: &IdempotencyKey, error: &str) {
        tracing::error!(
            %key,
            error,
            "delivery cannot be decided; giving up (see deliveries.last_error)"
        );
        if let Err(e) = persist(self.settings.delivery_lease / 2, || {
            self.queues.inbox.fail_delivery(key, error)
        })
        .await
        {
            tracing::warn!(%key, error = %e, "cannot record the failed delivery");
        }
    }
}

/// The label of `escalator_unreadable_tickets_total` for a ticket the tool would not give.
fn unreadable_cause(e: &TicketingError) -> &'static str {
    match e {
        e if e.is_unauthorised() => "auth",
        TicketingError::NotFound(_) => "not_found",
        TicketingError::Rejected { .. } => "rejected",
        _ => "other",
    }
}

/// Counts a ticket decided safely because it could not be read (or was invalid).
fn unreadable(key: &IdempotencyKey, cause: &'static str) {
    metrics()
        .unreadable_tickets
        .with_label_values(&[key.source.as_str(), cause])
        .inc();
}

/// A tool's error as the attempt's failure.
fn failed_ticketing(e: TicketingError) -> Failed {
    match e {
        TicketingError::InvalidPayload(_) => Failed::Internal(chain(&e)),
        TicketingError::InvalidTicket(_) => Failed::Invalid(chain(&e)),
        e if e.is_retryable() => Failed::Later {
            error: chain(&e),
            hint: e.retry_after(),
        },
        e => Failed::Unreadable {
            cause: unreadable_cause(&e),
            error: chain(&e),
        },
    }
}

/// A follow-up's error as the attempt's failure.
fn failed_follow_up(e: TriageError) -> Failed {
    match e {
        TriageError::InvalidInput(e) => Failed::Invalid(e.to_string()),
        e @ (TriageError::StoreUnavailable(_) | TriageError::InFlight(_)) => Failed::Later {
            error: chain(&e),
            hint: None,
        },
        e @ TriageError::Unexpected(_) => Failed::Internal(chain(&e)),
    }
}

/// A ticket from its key alone, for the safe decision when the tool's copy cannot be read.
fn unreadable_ticket(key: &IdempotencyKey) -> Result<Ticket, crate::domain::DomainError> {
    Ticket::parse(
        key.source,
        RawTicket {
            id: key.ticket_id.clone(),
            version: key.version.clone(),
            body: UNREADABLE_BODY.to_owned(),
            ..RawTicket::default()
        },
        "",
    )
}

/// Runs the recovery loop until `shutdown`: every poll, gRPC tickets whose claim ran out (or
/// whose holder died) without a decision are decided, each in a task of its own. Failures are
/// counted per ticket in memory and backed off; after `max_attempts` the safe decision is
/// logged.
pub async fn recover(w: Worker, shutdown: CancellationToken) {
    let mut failures: HashMap<IdempotencyKey, (u32, Instant)> = HashMap::new();
    loop {
        match w.triage.undecided(Source::Api, w.settings.batch).await {
            Ok(tickets) => {
                for undecided in tickets {
                    // Decided as its request would have: `Classify` logs only, `Route` acts.
                    let (t, act) = (undecided.ticket, undecided.acts);
                    let key = t.key().clone();
                    let count = match failures.get(&key) {
                        Some((_, next)) if *next > Instant::now() => continue,
                        Some((n, _)) => *n,
                        None => 0,
                    };
                    let triage = w.triage.clone();
                    let result = if count >= w.settings.max_attempts {
                        isolated(
                            async move { triage.decide_safe(t, INTERNAL_ERROR, None, act).await },
                        )
                        .await
                    } else {
                        isolated(async move { triage.decide_once(t, None, act).await }).await
                    };
                    match result {
                        Ok(Ok(o)) => {
                            failures.remove(&key);
                            tracing::info!(%key, decision_id = %o.decision.id, "abandoned ticket decided");
                        }
                        // Another replica took it over first, or the store is down: next pass.
                        Ok(Err(
                            e @ (TriageError::StoreUnavailable(_) | TriageError::InFlight(_)),
                        )) => {
                            tracing::info!(%key, error = %chain(&e), "abandoned ticket not decided yet");
                        }
                        Ok(Err(e)) => {
                            tracing::error!(%key, error = %chain(&e), "abandoned ticket cannot be decided");
                            w.note_recovery_failure(&mut failures, key).await;
                        }
                        Err(_) => {
                            metrics()
                                .worker_panics
                                .with_label_values(&["recover"])
                                .inc();
                            tracing::error!(%key, stage = "recover", "deciding an abandoned ticket panicked");
                            w.note_recovery_failure(&mut failures, key).await;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list abandoned tickets; retrying later"),
        }
        failures.retain(|_, (n, _)| *n <= w.settings.max_attempts);
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(w.settings.poll_interval) => {}
        }
    }
}

impl Worker {
    async fn note_recovery_failure(
        &self,
        failures: &mut HashMap<IdempotencyKey, (u32, Instant)>,
        key: IdempotencyKey,
    ) {
        if let Err(e) = self.triage.release(&key).await {
            tracing::warn!(%key, error = %chain(&e), "cannot release the claim");
        }
        let entry = failures.entry(key).or_insert((0, Instant::now()));
        entry.0 += 1;
        let delay = self.retry_delay(entry.0);
        entry.1 = Instant::now() + delay;
    }
}
