//! Agents' overrides: when an agent moves a ticket from the route escalator set to another
//! route's label, priority, tag or team, that is a correction nobody had to type. It is stored
//! once as an `override` verdict with the severity the new route implies (and scored like any
//! verdict); the ticket is never re-routed. Overrides only see misses, so they are counted apart
//! from the sampled reviews.
//!
//! The adapters only parse (`crate::ticketing::overrides`: [`plain_change`], [`pylon_doorbell`]);
//! the webhook bridge hands the result to [`Overrides::record`].
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

use std::{collections::BTreeSet, sync::Arc};

use crate::{
    domain::{Route, Source},
    store::Store,
    ticketing::{Pylon, RouteTargets, TicketingError, WebhookError},
};

use super::{NewReview, Origin, ReviewSettings, ReviewVerdict};

// The tools' events are parsed by the adapters (`crate::ticketing::overrides`); re-exported
// here, where they are judged.
pub use crate::ticketing::overrides::{
    Actor, Observed, PYLON_OVERRIDE_EVENT, PlainChange, PlainRouting, plain_change, pylon_doorbell,
};

/// What [`Overrides::record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored as an override verdict.
    Stored,
    /// The same change was stored before (a redelivery): nothing done.
    Duplicate,
    /// Not an override (escalator's own change, no route change, no decision): nothing done.
    NotAnOverride,
}

/// Takes agents' changes in the tools as verdicts.
pub struct Overrides {
    store: Arc<dyn Store>,
    routes: RouteTargets,
    plain_self: Option<String>,
    pylon: Option<Pylon>,
}

impl Overrides {
    /// Overrides into `store`, reading routes from `routes` and issues through `pylon` (a
    /// reader of its own, so it takes nothing from the action worker's rate limits).
    pub fn new(
        store: Arc<dyn Store>,
        routes: RouteTargets,
        review: &ReviewSettings,
        pylon: Option<Pylon>,
    ) -> Self {
        Self {
            store,
            routes,
            plain_self: review.plain_machine_user_id.clone(),
            pylon,
        }
    }

    /// Records `observed` when it is an agent's override.
    ///
    /// # Errors
    /// [`WebhookError::StoreUnavailable`] (the sender retries), or
    /// [`WebhookError::Unexpected`] when the Pylon issue cannot be read (a 5xx: retried too).
    pub async fn record(&self, observed: &Observed) -> Result<Outcome, WebhookError> {
        match observed {
            Observed::Plain(c) => self.plain(c).await,
            Observed::Pylon { issue_id } => self.pylon(issue_id).await,
        }
    }

    /// The one route whose Plain priority is `p` (none when routes share it).
    fn route_of_priority(&self, p: u64) -> Option<Route> {
        let mut found = Route::ALL
            .iter()
            .filter(|r| u64::from(self.routes.plain(**r).priority) == p);
        match (found.next(), found.next()) {
            (Some(r), None) => Some(*r),
            _ => None,
        }
    }

    /// Routes any of whose Plain label types are in `labels`.
    fn routes_of_labels(&self, labels: &BTreeSet<String>) -> BTreeSet<Route> {
        Route::ALL
            .iter()
            .copied()
            .filter(|r| {
                self.routes
                    .plain(*r)
                    .label_type_ids
                    .iter()
                    .any(|l| labels.contains(l))
            })
            .collect()
    }

    async fn plain(&self, c: &PlainChange) -> Result<Outcome, WebhookError> {
        let (actor, agent) = match &c.actor {
            Actor::User(id) => ("user", id.clone()),
            Actor::MachineUser(id) => match &self.plain_self {
                Some(me) if me == id => {
                    tracing::debug!(thread_id = %c.thread_id, "escalator's own change; not an override");
                    return Ok(Outcome::NotAnOverride);
                }
                Some(_) => ("machine user", id.clone()),
                None => {
                    tracing::info!(
                        thread_id = %c.thread_id,
                        "a machine user changed the thread; not taken as an override while \
                         [review] plain_machine_user_id (escalator's own) is unset"
                    );
                    return Ok(Outcome::NotAnOverride);
                }
            },
            Actor::Other(_) => return Ok(Outcome::NotAnOverride),
        };
        let (from, to, what) = if c.event_type == "thread.thread_priority_changed" {
            let (Some(b), Some(a)) = (c.before.priority, c.after.priority) else {
                return Ok(Outcome::NotAnOverride);
            };
            match (self.route_of_priority(b), self.route_of_priority(a)) {
                (Some(from), Some(to)) => (from, to, "priority"),
                _ => return Ok(Outcome::NotAnOverride),
            }
        } else {
            let added: BTreeSet<String> = c
                .after
                .label_type_ids
                .difference(&c.before.label_type_ids)
                .cloned()
                .collect();
            let to = self.routes_of_labels(&added);
            let from = self.routes_of_labels(&c.before.label_type_ids);
            match (to.len(), to.iter().next()) {
                (1, Some(to)) => match from.iter().find(|r| *r != to) {
                    Some(from) => (*from, *to, "label"),
                    None => return Ok(Outcome::NotAnOverride),
                },
                _ => return Ok(Outcome::NotAnOverride),
            }
        };
        let why =
            format!("An agent ({actor}) moved the thread from {from} to {to} in Plain ({what}).");
        self.store_override(
            Source::Plain,
            &c.thread_id,
            from,
            to,
            agent,
            why,
            format!("plain:{}", c.event_id),
        )
        .await
    }

    async fn pylon(&self, issue_id: &str) -> Result<Outcome, WebhookError> {
        let Some(pylon) = &self.pylon else {
            return Ok(Outcome::NotAnOverride);
        };
        let Some(decision) = self.store.latest_decision(Source::Pylon, issue_id).await? else {
            return Ok(Outcome::NotAnOverride);
        };
        let (tags, team) = match pylon.routing_of(issue_id).await {
            Ok(v) => v,
            Err(TicketingError::NotFound(_)) => return Ok(Outcome::NotAnOverride),
            Err(e) => {
                tracing::warn!(issue_id, error = %crate::causes::chain(&e), "cannot read the Pylon issue of an override");
                // A 5xx, so the trigger is delivered again.
                return Err(WebhookError::Unexpected(crate::store::StoreError::Corrupt(
                    format!("cannot read Pylon issue {issue_id}: {e}"),
                )));
            }
        };
        let ours = decision.route;
        let others = Route::ALL.iter().copied().filter(|r| *r != ours);
        // A team of another route; else a tag only that other route has.
        let by_team: Vec<Route> = others
            .clone()
            .filter(|r| {
                let t = &self.routes.pylon(*r).team_id;
                t.is_some() && *t == team && *t != self.routes.pylon(ours).team_id
            })
            .collect();
        let by_tag: Vec<Route> = others
            .filter(|r| {
                self.routes.pylon(*r).tags.iter().any(|t| {
                    tags.contains(t)
                        && Route::ALL
                            .iter()
                            .filter(|o| *o != r)
                            .all(|o| !self.routes.pylon(*o).tags.contains(t))
                })
            })
            .collect();
        let (to, what) = match (by_team.as_slice(), by_tag.as_slice()) {
            ([r], _) => (*r, "team"),
            ([], [r]) => (*r, "tag"),
            _ => return Ok(Outcome::NotAnOverride),
        };
        let why = format!("An agent moved the issue from {ours} to {to} in Pylon ({what}).");
        self.store_override(
            Source::Pylon,
            issue_id,
            ours,
            to,
            "pylon agent".to_owned(),
            why,
            format!("pylon:{issue_id}:{}:{to}", decision.id),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn store_override(
        &self,
        source: Source,
        ticket_id: &str,
        from: Route,
        to: Route,
        reviewer: String,
        why: String,
        key: String,
    ) -> Result<Outcome, WebhookError> {
        let Some(decision) = self.store.latest_decision(source, ticket_id).await? else {
            return Ok(Outcome::NotAnOverride);
        };
        if from == to || to == decision.route {
            return Ok(Outcome::NotAnOverride);
        }
        let review = NewReview {
            decision_id: decision.id.clone(),
            reviewer,
            verdict: ReviewVerdict::Corrected(to.severity()),
            why: Some(why),
            origin: Origin::Override,
            external_key: Some(key),
            // An agent's change in the tool says nothing about topic or sentiment.
            labels: super::LabelVerdict::default(),
        };
        match super::record(self.store.as_ref(), &decision, review).await? {
            Some(_) => {
                tracing::info!(%source, ticket_id, decision_id = %decision.id, %from, %to, "agent's override stored as a verdict");
                Ok(Outcome::Stored)
            }
            None => Ok(Outcome::Duplicate),
        }
    }
}
