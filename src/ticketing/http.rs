//! The HTTP side both adapters share. Plain (GraphQL) and Pylon (REST) build their client,
//! read an answer and classify a failed one the same way, so that lives here once: a change to
//! how a 429, a 5xx or an answer without `data` is treated then reaches both tools alike.

use std::time::Duration;

use reqwest::{StatusCode, header::HeaderMap};
use serde_json::Value;

use super::port::{TicketingError, retry_after};

/// The HTTP client of an adapter: its timeout and escalator's user agent.
///
/// # Errors
/// When the client cannot be built (TLS roots unavailable).
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("escalator/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// `text` with every occurrence of the credential `secret` replaced, so an error that echoes
/// the request (a tool's message quoting our header) never carries it into a log or a row.
pub(crate) fn without_secret(text: &str, secret: &secrecy::SecretString) -> String {
    use secrecy::ExposeSecret as _;
    let secret = secret.expose_secret();
    if secret.is_empty() {
        return text.to_owned();
    }
    text.replace(secret, "[redacted]")
}

/// A header's value as text, empty when absent or not text (for logs).
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The body of an answer: HTTP 429 is [`TicketingError::RateLimited`] for its `Retry-After`
/// (else `default_wait`); a body that does not arrive is [`TicketingError::Transport`].
pub(crate) async fn answer_text(
    resp: reqwest::Response,
    default_wait: Duration,
) -> Result<String, TicketingError> {
    if resp.status().as_u16() == 429 {
        return Err(TicketingError::RateLimited {
            retry_after: retry_after(resp.headers()).unwrap_or(default_wait),
        });
    }
    resp.text().await.map_err(TicketingError::Transport)
}

/// A failure the tool reported: [`TicketingError::Upstream`] (retried) when `retryable`,
/// else [`TicketingError::Rejected`] (given up).
pub(crate) fn failure(retryable: bool, status: u16, message: String) -> TicketingError {
    if retryable {
        TicketingError::Upstream { status, message }
    } else {
        TicketingError::Rejected { status, message }
    }
}

/// `Ok` for a 2xx status; otherwise a 5xx is [`TicketingError::Upstream`] and anything else
/// [`TicketingError::Rejected`], with `message()`.
pub(crate) fn check_status(
    status: StatusCode,
    message: impl FnOnce() -> String,
) -> Result<(), TicketingError> {
    if status.is_success() {
        return Ok(());
    }
    Err(failure(
        status.is_server_error(),
        status.as_u16(),
        message(),
    ))
}

/// The `data` of a parsed answer; an answer without it is [`TicketingError::Upstream`].
pub(crate) fn take_data(
    answer: Option<Value>,
    status: StatusCode,
) -> Result<Value, TicketingError> {
    answer
        .and_then(|mut b| b.get_mut("data").map(Value::take))
        .ok_or_else(|| TicketingError::Upstream {
            status: status.as_u16(),
            message: "answer has no data".into(),
        })
}
