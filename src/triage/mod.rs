//! The use cases, over the ports (the store's concerns, `Ticketing`, `ActionPlanner`, the
//! [`OverrideSink`] an agent's change goes to) and the classifier's fallback policy
//! (`crate::classifier::Decider`, itself over the `Classifier` trait); the edges (gRPC, HTTP,
//! the worker) call them and the adapters are plugged in at startup.
//!
//! - [`decide`]: claim a ticket, enrich, classify, log the decision with the actions it implies
//!   ([`Triage`]); one trace per ticket ([`Triage::traced`]).
//! - [`followup`]: a customer's later message decided again on the conversation so far,
//!   raise only, never undoing a person ([`Triage::follow_up`]).
//! - [`accept`]: the webhook use case: verify and parse through the tool's adapter, make the
//!   delivery durable under its idempotency key, wake the worker ([`Bridge`]).

pub mod accept;
pub mod decide;
pub mod followup;

use std::time::Duration;

use crate::{
    domain::{Decision, DomainError},
    store::StoreError,
};

pub use accept::{Bridge, OverrideOutcome, OverrideSink, ReceiveError, Received};
pub use decide::{Mode, Triage};
pub use followup::{FollowUp, FollowUpSettings};

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
    /// The tier and repeat rules applied after the classifier (`[tiers]`).
    pub weighting: crate::weighting::Weighting,
    /// How customers' later messages are decided again (`[followups]`).
    pub followups: FollowUpSettings,
}

impl Default for TriageSettings {
    fn default() -> Self {
        Self {
            claim_lease: Duration::from_secs(120),
            in_flight_wait: Duration::from_secs(20),
            weighting: crate::weighting::Weighting::default(),
            followups: FollowUpSettings::default(),
        }
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
