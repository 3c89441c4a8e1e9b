//! The webhook use case: verify and parse a delivery through its tool's adapter, make it durable
//! under its idempotency key before the sender gets a 2xx, and wake the worker, which decides
//! it later ([`crate::worker`]).

use std::sync::Arc;

use chrono::Utc;
use reqwest::header::HeaderMap;
use tokio::sync::Notify;

use crate::{
    domain::Source,
    store::Store,
    ticketing::{Accepted, Adapters, TRACEPARENT_KEY, WebhookError},
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

/// The webhook use case: verify, parse, make durable, wake the worker.
#[derive(Clone)]
pub struct Bridge {
    store: Arc<dyn Store>,
    adapters: Adapters,
    wake: Arc<Notify>,
    overrides: Option<Arc<crate::review::overrides::Overrides>>,
}

impl Bridge {
    /// A bridge storing into `store`; `wake` is notified after each new delivery.
    pub fn new(store: Arc<dyn Store>, adapters: Adapters, wake: Arc<Notify>) -> Self {
        Self {
            store,
            adapters,
            wake,
            overrides: None,
        }
    }

    /// Takes agents' overrides as verdicts (without this they are acknowledged and ignored).
    #[must_use]
    pub fn with_overrides(mut self, overrides: crate::review::overrides::Overrides) -> Self {
        self.overrides = Some(Arc::new(overrides));
        self
    }

    /// Handles one delivery for `source`. `Ok` means the delivery is durable (or deliberately
    /// ignored), so the sender may be told 2xx.
    ///
    /// # Errors
    /// [`WebhookError`] from verification and parsing, or when the store cannot be written.
    pub async fn receive(
        &self,
        source: Source,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Received, WebhookError> {
        let Some(adapter) = self.adapters.get(source) else {
            return Err(WebhookError::MissingField("source".into()));
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
                    .store
                    .record_rejection(source, version.as_deref(), &e.to_string())
                    .await
                {
                    tracing::warn!(error = %store_error, "cannot count a refused webhook");
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        match accepted {
            Accepted::Ignored { event_type } => {
                tracing::info!(%source, event_type, "webhook event ignored");
                Ok(Received::Ignored)
            }
            Accepted::Override(observed) => {
                use crate::review::overrides::Outcome;
                Ok(match &self.overrides {
                    Some(o) => match o.record(&observed).await? {
                        Outcome::Stored => Received::Accepted,
                        Outcome::Duplicate => Received::Duplicate,
                        Outcome::NotAnOverride => Received::Ignored,
                    },
                    None => Received::Ignored,
                })
            }
            Accepted::Ticket(mut delivery) => {
                // The worker that decides the delivery continues this request's trace.
                if let (Some(tp), Some(obj)) = (
                    crate::telemetry::traceparent_of(&tracing::Span::current()),
                    delivery.payload.as_object_mut(),
                ) {
                    obj.insert(TRACEPARENT_KEY.to_owned(), tp.into());
                }
                if self.store.accept_delivery(&delivery).await? {
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
