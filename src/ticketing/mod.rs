//! The ticketing tools (Plain, Pylon) as adapters behind two ports: [`Ticketing`] (webhook
//! verification and parsing, building the ticket with enrichment, how an agent's change moved a
//! ticket's route, executing actions) and [`ActionPlanner`] (the actions a decision implies).
//! Each tool's module ([`plain`], [`pylon`]) holds what is that tool's: its webhook parse, its
//! typed actions ([`PlainAction`], [`PylonAction`]), how a decision is planned into them and
//! rendered as a note, how they are executed, and how its routing changes read. What both
//! share has a file of its own: `webhook.rs` (signatures and the
//! refuse-verify-parse steps), `http.rs` (the client and status mapping), [`overrides`] (the
//! agents' changes as the webhooks report them), [`settings`].
//!
//! The adapters import the domain only (the queue rows are `crate::domain::work`). The webhook
//! use case that drives them is `crate::triage::accept`; the worker (`crate::worker`) builds the
//! ticket through the adapter, decides it (which logs the decision with its actions in one
//! transaction) and executes the actions from the log.

mod http;
pub mod overrides;
pub mod plain;
mod port;
pub mod pylon;
pub mod settings;
mod webhook;

use std::sync::Arc;

use crate::domain::{
    Decision, Source, Ticket,
    work::{ActionKind, NewAction},
};

pub use plain::{
    PLAIN_NOTE_MAX_CHARS, Plain, PlainAction, PlainDelivery, note_markdown, note_marker, note_text,
};
use port::to_row;
pub use port::{Accepted, ActionPlanner, NoActions, Ticketing, TicketingError, WebhookError};
pub use pylon::{Pylon, PylonAction, PylonDelivery, note_html};
pub use settings::{PlainTarget, PylonTarget, RouteTargets, TicketingSettings};
pub use webhook::signature_matches;

/// The configured adapters, by source.
#[derive(Clone)]
pub struct Adapters {
    plain: Arc<dyn Ticketing>,
    pylon: Arc<dyn Ticketing>,
}

impl Adapters {
    /// The adapters for `settings`.
    ///
    /// # Errors
    /// When an HTTP client cannot be built (TLS roots unavailable).
    pub fn new(settings: &TicketingSettings) -> Result<Self, reqwest::Error> {
        Ok(Self {
            plain: Arc::new(Plain::new(settings.plain.clone())?),
            pylon: Arc::new(Pylon::new(settings.pylon.clone())?),
        })
    }

    /// The adapter for `source`; `None` for `api` (no tool behind it).
    pub fn get(&self, source: Source) -> Option<&Arc<dyn Ticketing>> {
        match source {
            Source::Plain => Some(&self.plain),
            Source::Pylon => Some(&self.pylon),
            Source::Api => None,
        }
    }

    /// The adapter that executes actions of `kind`.
    pub fn for_kind(&self, kind: ActionKind) -> &Arc<dyn Ticketing> {
        match kind.tool() {
            Source::Plain => &self.plain,
            Source::Pylon | Source::Api => &self.pylon,
        }
    }
}

/// Maps a decision to the actions it implies in the ticket's tool, from the per-route targets
/// of the configuration: [`PlainAction`]s or [`PylonAction`]s, planned by their adapter's
/// module.
#[derive(Debug, Clone)]
pub struct RoutingPlanner {
    routes: RouteTargets,
    /// Acting on Plain needs `PLAIN_API_KEY`; without it decisions are only logged.
    plain_enabled: bool,
    /// Acting on Pylon needs `PYLON_API_TOKEN`.
    pylon_enabled: bool,
    /// The tool `api` tickets are routed back through (their ids are that tool's ids), if any.
    api_tool: Option<Source>,
}

impl RoutingPlanner {
    /// A planner for `settings`.
    pub fn new(settings: &TicketingSettings) -> Self {
        Self {
            routes: settings.routes.clone(),
            plain_enabled: settings.plain.api_key.is_some(),
            pylon_enabled: settings.pylon.api_token.is_some(),
            api_tool: settings.api_tool,
        }
    }
}

impl ActionPlanner for RoutingPlanner {
    fn plan(&self, ticket: &Ticket, d: &Decision) -> Vec<NewAction> {
        let tool = match d.source {
            Source::Api => self.api_tool,
            other => Some(other),
        };
        let route = d.route;
        match tool {
            Some(Source::Plain) if self.plain_enabled => {
                plain::plan(self.routes.plain(route), ticket, d)
                    .iter()
                    .map(to_row)
                    .collect()
            }
            Some(Source::Pylon) if self.pylon_enabled => pylon::plan(self.routes.pylon(route), d)
                .iter()
                .map(to_row)
                .collect(),
            Some(Source::Plain | Source::Pylon | Source::Api) | None => Vec::new(),
        }
    }

    fn plan_follow_up(
        &self,
        ticket: &Ticket,
        d: &Decision,
        change: crate::domain::FollowUpChange,
    ) -> Vec<NewAction> {
        let tool = match d.source {
            Source::Api => self.api_tool,
            other => Some(other),
        };
        match tool {
            Some(Source::Plain) if self.plain_enabled => {
                plain::plan_follow_up(&self.routes, ticket, d, change)
                    .iter()
                    .map(to_row)
                    .collect()
            }
            Some(Source::Pylon) if self.pylon_enabled => {
                pylon::plan_follow_up(self.routes.pylon(d.route), d, change)
                    .iter()
                    .map(to_row)
                    .collect()
            }
            Some(Source::Plain | Source::Pylon | Source::Api) | None => Vec::new(),
        }
    }

    fn routing_moved(
        &self,
        ticket: &Ticket,
        now: &crate::domain::ToolRouting,
        acted: &[crate::domain::work::Action],
    ) -> Option<String> {
        let tool = match ticket.key().source {
            Source::Api => self.api_tool,
            other => Some(other),
        };
        match tool {
            Some(Source::Plain) => plain::routing_moved(&self.routes, now, acted),
            Some(Source::Pylon) => pylon::routing_moved(&self.routes, now, acted),
            Some(Source::Api) | None => None,
        }
    }
}

#[cfg(test)]
mod tests;
