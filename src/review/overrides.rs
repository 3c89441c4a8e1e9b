//! Agents' overrides: when an agent moves a ticket from the route escalator set to another
//! route's label, priority, tag or team, that is a correction nobody had to type. It is stored
//! once as an `override` verdict with the severity the new route implies (and scored like any
//! verdict); the ticket is never re-routed. Overrides only see misses, so they are counted apart
//! from the sampled reviews.
//!
//! The adapters parse the tools' events (`crate::ticketing::overrides`: [`plain_change`],
//! [`pylon_doorbell`]) and say how a change moved the ticket between routes (the `Ticketing`
//! port's `route_change`); the webhook bridge hands the event to [`Overrides`] (its
//! `OverrideSink`), which judges who made it and stores the verdict.
//!
//! - **Plain**: `thread.thread_labels_changed` and `thread.thread_priority_changed` carry
//!   `previousThread` and `thread` (reference/plain.md section 2); the actor is the new
//!   thread's `updatedBy`. A change by a user (an agent), or by a machine user other than
//!   escalator's own (`[review] plain_machine_user_id`), counts; system and customer changes do
//!   not, and neither does any machine user while escalator's own id is not configured (it
//!   could be escalator's own action).
//! - **Pylon**: triggers carry no previous state and no actor, so a trigger on tag or team
//!   change sends `{"issue_id": "{{ issue.id }}", "event": "issue.routing_changed"}` and the
//!   issue is read back: a team or tag of another route than the decision's is an override.
//!   escalator itself only ever adds its own route's tags and team, so its changes never count.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    domain::Decision,
    store::{Reviews, ScoreQueue},
    ticketing::{Adapters, RouteTargets, TicketingError, overrides::RouteChange},
    triage::{OverrideOutcome, OverrideSink, ReceiveError},
};

use super::{NewReview, Origin, ReviewSettings, ReviewVerdict};

// The tools' events are parsed by the adapters (`crate::ticketing::overrides`); re-exported
// here, where they are judged.
pub use crate::ticketing::overrides::{
    Actor, Observed, PYLON_OVERRIDE_EVENT, PlainChange, PlainRouting, plain_change, pylon_doorbell,
};

/// Takes agents' changes in the tools as verdicts, into the review's `store`.
pub struct Overrides<S: ?Sized> {
    store: Arc<S>,
    routes: RouteTargets,
    plain_self: Option<String>,
    adapters: Adapters,
}

impl<S: Reviews + ScoreQueue + ?Sized> Overrides<S> {
    /// Overrides into `store`, reading routes from `routes` and the tools through `adapters`
    /// (a set of its own, so it takes nothing from the action worker's rate limits).
    pub fn new(
        store: Arc<S>,
        routes: RouteTargets,
        review: &ReviewSettings,
        adapters: Adapters,
    ) -> Self {
        Self {
            store,
            routes,
            plain_self: review.plain_machine_user_id.clone(),
            adapters,
        }
    }

    /// Who made a Plain change, as the verdict's reviewer and its why (`user`, `machine
    /// user`), or `None` when it does not count: escalator's own machine user, any machine
    /// user while escalator's own is not configured, the system or a customer.
    fn plain_agent(&self, c: &PlainChange) -> Option<(&'static str, String)> {
        match &c.actor {
            Actor::User(id) => Some(("user", id.clone())),
            Actor::MachineUser(id) => match &self.plain_self {
                Some(me) if me == id => {
                    tracing::debug!(thread_id = %c.thread_id, "escalator's own change; not an override");
                    None
                }
                Some(_) => Some(("machine user", id.clone())),
                None => {
                    tracing::info!(
                        thread_id = %c.thread_id,
                        "a machine user changed the thread; not taken as an override while \
                         [review] plain_machine_user_id (escalator's own) is unset"
                    );
                    None
                }
            },
            Actor::Other(_) => None,
        }
    }

    /// How the change moved the ticket off `decision`, read through its tool's adapter;
    /// `None` when it did not (or the tool no longer has the ticket).
    async fn route_change(
        &self,
        observed: &Observed,
        decision: &Decision,
    ) -> Result<Option<RouteChange>, ReceiveError> {
        let Some(adapter) = self.adapters.get(decision.source) else {
            return Ok(None);
        };
        match adapter
            .route_change(observed, &self.routes, decision.route)
            .await
        {
            Ok(change) => Ok(change),
            Err(TicketingError::NotFound(_)) => Ok(None),
            Err(e) => {
                let (source, ticket_id) = observed.ticket();
                tracing::warn!(%source, ticket_id, error = %crate::causes::chain(&e), "cannot read the ticket of an override");
                // A 5xx, so the trigger is delivered again.
                Err(ReceiveError::Unexpected(anyhow::Error::new(e).context(
                    format!("cannot read {source} ticket {ticket_id}"),
                )))
            }
        }
    }
}

#[async_trait]
impl<S: Reviews + ScoreQueue + ?Sized + 'static> OverrideSink for Overrides<S> {
    /// Stores `observed` as an `override` verdict when an agent moved the ticket to another
    /// route than the one escalator decided.
    async fn record(&self, observed: &Observed) -> Result<OverrideOutcome, ReceiveError> {
        let (who, reviewer) = match observed {
            Observed::Plain(c) => match self.plain_agent(c) {
                Some((who, id)) => (Some(who), id),
                None => return Ok(OverrideOutcome::NotAnOverride),
            },
            Observed::Pylon { .. } => (None, "pylon agent".to_owned()),
        };
        let (source, ticket_id) = observed.ticket();
        let Some(decision) = self.store.latest_decision(source, ticket_id).await? else {
            return Ok(OverrideOutcome::NotAnOverride);
        };
        let Some(RouteChange { from, to, what }) = self.route_change(observed, &decision).await?
        else {
            return Ok(OverrideOutcome::NotAnOverride);
        };
        if from == to || to == decision.route {
            return Ok(OverrideOutcome::NotAnOverride);
        }
        let (why, key) = match (observed, who) {
            (Observed::Plain(c), Some(who)) => (
                format!("An agent ({who}) moved the thread from {from} to {to} in Plain ({what})."),
                format!("plain:{}", c.event_id),
            ),
            _ => (
                format!("An agent moved the issue from {from} to {to} in Pylon ({what})."),
                format!("pylon:{ticket_id}:{}:{to}", decision.id),
            ),
        };
        let review = NewReview {
            decision_id: decision.id.clone(),
            reviewer,
            verdict: ReviewVerdict::Corrected(to.severity()),
            why: Some(why),
            origin: Origin::Override,
            external_key: Some(key),
            // An agent's change in the tool says nothing about topic or sentiment.
            labels: super::LabelVerdict::default(),
            pass: super::Pass::First,
        };
        let stored = super::record(self.store.as_ref(), &decision, review)
            .await
            .map_err(|e| match e {
                super::ReviewError::Store(e) => ReceiveError::from(e),
                // An override is never checked against the passes, and its decision is known.
                other => ReceiveError::Unexpected(other.into()),
            })?;
        match stored {
            Some(_) => {
                tracing::info!(%source, ticket_id, decision_id = %decision.id, %from, %to, "agent's override stored as a verdict");
                Ok(OverrideOutcome::Stored)
            }
            None => Ok(OverrideOutcome::Duplicate),
        }
    }
}
