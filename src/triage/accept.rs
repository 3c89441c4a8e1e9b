//! The webhook use case: verify and parse a delivery through its tool's adapter, make it durable
//! under its idempotency key before the sender gets a 2xx, and wake the worker, which decides
//! it later ([`crate::worker`]). An agent's routing change goes to an [`OverrideSink`] (the
//! daily review's `crate::review::overrides` in the service).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use reqwest::header::HeaderMap;
use tokio::sync::Notify;

use crate::{
    domain::Source,
    store::{Inbox, StoreError},
    ticketing::{Accepted, Adapters, WebhookError, overrides::Observed},
};

/// What [`Bridge::receive`] did with a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Stored for the first time; it will be decided and routed.
    Accepted,
    /// Its key was stored before; nothing else happened.
    Duplicate,
    /// An event type the bridge does not act on.
    Ignored,
}

impl Received {
    /// The word used in the response body and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Received::Accepted => "accepted",
            Received::Duplicate => "duplicate",
            Received::Ignored => "ignored",
        }
    }
}

/// Why a delivery was not taken. Mapped to an HTTP status in `crate::error`.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The adapter refused it (configuration, signature, body).
    #[error(transparent)]
    Refused(#[from] WebhookError),
    /// The routing log cannot be written; the sender must retry.
    #[error("the routing log is unavailable; retry later")]
    StoreUnavailable(#[source] StoreError),
    /// Anything else (the log, or the tool an override is read from); details are logged,
    /// never returned.
    #[error("internal error")]
    Unexpected(#[source] anyhow::Error),
}

impl From<StoreError> for ReceiveError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ReceiveError::StoreUnavailable(e),
            other => ReceiveError::Unexpected(other.into()),
        }
    }
}

/// What became of an agent's routing change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideOutcome {
    /// Stored as an override verdict.
    Stored,
    /// The same change was stored before (a redelivery): nothing done.
    Duplicate,
    /// Not an override (escalator's own change, no route change, no decision): nothing done.
    NotAnOverride,
}

/// Where the bridge hands an agent's routing change (the daily review takes it as a verdict).
#[async_trait]
pub trait OverrideSink: Send + Sync {
    /// Records `observed` when it is an agent's override.
    ///
    /// # Errors
    /// [`ReceiveError`]: the sender retries.
    async fn record(&self, observed: &Observed) -> Result<OverrideOutcome, ReceiveError>;
}

/// The webhook use case: verify, parse, make durable, wake the worker.
#[derive(Clone)]
pub struct Bridge {
    inbox: Arc<dyn Inbox>,
    adapters: Adapters,
    wake: Arc<Notify>,
    overrides: Option<Arc<dyn OverrideSink>>,
}

impl Bridge {
    /// A bridge storing into `inbox`; `wake` is notified after each new delivery.
    pub fn new(inbox: Arc<dyn Inbox>, adapters: Adapters, wake: Arc<Notify>) -> Self {
        Self {
            inbox,
            adapters,
            wake,
            overrides: None,
        }
    }

    /// Takes agents' overrides as verdicts (without this they are acknowledged and ignored).
    #[must_use]
    pub fn with_overrides(mut self, overrides: Arc<dyn OverrideSink>) -> Self {
        self.overrides = Some(overrides);
        self
    }

    /// Handles one delivery for `source`. `Ok` means the delivery is durable (or deliberately
    /// ignored), so the sender may be told 2xx.
    ///
    /// # Errors
    /// [`ReceiveError`] from verification and parsing, or when the store cannot be written.
    pub async fn receive(
        &self,
        source: Source,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Received, ReceiveError> {
        let Some(adapter) = self.adapters.get(source) else {
            return Err(WebhookError::MissingField("source".into()).into());
        };
        let accepted = match adapter.accept(headers, body, Utc::now()) {
            Ok(a) => a,
            Err(
                e @ (WebhookError::Malformed(_)
                | WebhookError::MissingField(_)
                | WebhookError::Invalid(_)),
            ) => {
                // Signed (the adapters verify before they parse) but unreadable: counted for
                // the weekly audit with its payload version; a failure to count it is logged
                // and the sender still gets the 400 it would have got.
                let version = adapter.webhook_version(body);
                if let Err(store_error) = self
                    .inbox
                    .record_rejection(source, version.as_deref(), &e.to_string())
                    .await
                {
                    tracing::warn!(error = %store_error, "cannot count a refused webhook");
                }
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        match accepted {
            Accepted::Ignored { event_type } => {
                tracing::info!(%source, event_type, "webhook event ignored");
                Ok(Received::Ignored)
            }
            Accepted::Override(observed) => Ok(match &self.overrides {
                Some(o) => match o.record(&observed).await? {
                    OverrideOutcome::Stored => Received::Accepted,
                    OverrideOutcome::Duplicate => Received::Duplicate,
                    OverrideOutcome::NotAnOverride => Received::Ignored,
                },
                None => Received::Ignored,
            }),
            Accepted::Ticket(mut delivery) => {
                // The worker that decides the delivery continues this request's trace.
                delivery.trace_context =
                    crate::telemetry::traceparent_of(&tracing::Span::current());
                if self.inbox.accept_delivery(&delivery).await? {
                    tracing::info!(key = %delivery.key, event_type = delivery.event_type, "webhook delivery stored");
                    self.wake.notify_one();
                    Ok(Received::Accepted)
                } else {
                    tracing::info!(key = %delivery.key, "duplicate webhook delivery acknowledged");
                    Ok(Received::Duplicate)
                }
            }
        }
    }
}
