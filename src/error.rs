//! The one mapping from [`TriageError`] to a gRPC code and an HTTP status. Both edges call it;
//! the match has no `_` arm, so a new variant does not compile until its codes are chosen.
//! [`ReceiveError`] (the webhook bridge's errors, the adapters' [`WebhookError`] among them)
//! has its exhaustive mapping here too.

use axum::http::StatusCode;
use tonic::Code;

use crate::{
    causes::chain as error_chain,
    ticketing::WebhookError,
    triage::{ReceiveError, TriageError},
};

/// The gRPC code and HTTP status for `e`.
pub fn codes(e: &TriageError) -> (Code, StatusCode) {
    match e {
        TriageError::InvalidInput(_) => (Code::InvalidArgument, StatusCode::BAD_REQUEST),
        // The sender retries: a 2xx is never given for a ticket that is not stored.
        TriageError::StoreUnavailable(_) => (Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
        TriageError::InFlight(_) => (Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
        TriageError::Unexpected(_) => (Code::Internal, StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// Logs `e` with its cause chain once, at the edge, and returns the gRPC status the caller
/// sees (the variant's message only, never internals).
pub fn to_status(e: &TriageError) -> tonic::Status {
    let (code, _) = codes(e);
    log(e);
    tonic::Status::new(code, e.to_string())
}

/// Logs `e` at a level fitting its kind, with the whole cause chain.
pub fn log(e: &TriageError) {
    let chain = error_chain(e);
    match e {
        TriageError::InvalidInput(_) | TriageError::InFlight(_) => {
            tracing::info!(error = %chain, "request rejected")
        }
        TriageError::StoreUnavailable(_) => {
            tracing::warn!(error = %chain, "routing log unavailable")
        }
        TriageError::Unexpected(_) => tracing::error!(error = %chain, "request failed"),
    }
}

/// The HTTP status a webhook sender gets for `e`. Only 2xx stops a sender's retries, so
/// everything that may succeed later (store down, route not configured yet) is a 5xx.
pub fn webhook_status(e: &ReceiveError) -> StatusCode {
    match e {
        // A route without its secret refuses every request (documented in the README).
        ReceiveError::Refused(WebhookError::NotConfigured { .. }) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ReceiveError::Refused(
            WebhookError::MissingSignature(_) | WebhookError::BadSignature | WebhookError::Stale(_),
        ) => StatusCode::UNAUTHORIZED,
        ReceiveError::Refused(
            WebhookError::Malformed(_) | WebhookError::MissingField(_) | WebhookError::Invalid(_),
        ) => StatusCode::BAD_REQUEST,
        ReceiveError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ReceiveError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A short, bounded label for a refused webhook (the `reason` of
/// `escalator_webhook_rejections_total`).
pub fn webhook_reason(e: &ReceiveError) -> &'static str {
    match e {
        ReceiveError::Refused(w) => match w {
            WebhookError::NotConfigured { .. } => "not_configured",
            WebhookError::MissingSignature(_) => "missing_signature",
            WebhookError::BadSignature => "bad_signature",
            WebhookError::Stale(_) => "stale",
            WebhookError::Malformed(_) => "malformed",
            WebhookError::MissingField(_) | WebhookError::Invalid(_) => "invalid_field",
        },
        ReceiveError::StoreUnavailable(_) => "store_unavailable",
        ReceiveError::Unexpected(_) => "internal",
    }
}

/// Logs a refused webhook once, at the edge, at a level fitting its kind.
pub fn log_webhook(e: &ReceiveError) {
    let chain = error_chain(e);
    match e {
        ReceiveError::Refused(WebhookError::NotConfigured { .. }) => {
            tracing::error!(error = %chain, "webhook refused: route not configured")
        }
        ReceiveError::Refused(
            WebhookError::MissingSignature(_) | WebhookError::BadSignature | WebhookError::Stale(_),
        ) => tracing::warn!(error = %chain, "webhook refused: authentication"),
        ReceiveError::Refused(
            WebhookError::Malformed(_) | WebhookError::MissingField(_) | WebhookError::Invalid(_),
        ) => tracing::info!(error = %chain, "webhook refused: bad request"),
        ReceiveError::StoreUnavailable(_) => {
            tracing::warn!(error = %chain, "webhook refused: routing log unavailable")
        }
        ReceiveError::Unexpected(_) => tracing::error!(error = %chain, "webhook failed"),
    }
}
