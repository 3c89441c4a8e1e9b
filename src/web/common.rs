//! What the pages share: their state ([`Pages`], over a [`PageStore`]) and how an HTML answer is
//! sent (the headers every page carries, the 503 page, a cookie added).

use std::sync::Arc;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse as _, Response},
};

use super::{auth::Auth, page, throttle::Throttle};
use crate::{
    config::Settings,
    review::ReviewSettings,
    store::{AuditLog, Reviews, ScoreQueue},
};

/// What the pages read and write: the daily review (samples, verdicts and their scores) and
/// the audit's reads for the dashboard.
pub trait PageStore: Reviews + ScoreQueue + AuditLog {}

impl<T: Reviews + ScoreQueue + AuditLog + ?Sized> PageStore for T {}

/// Shared state of the review pages.
pub(super) struct Pages<S: ?Sized> {
    pub(super) store: Arc<S>,
    pub(super) settings: ReviewSettings,
    /// Everything the dashboard's audit needs (`[audit]`, the labels).
    pub(super) all: Arc<Settings>,
    pub(super) auth: Auth,
    /// Failed logins of this replica.
    pub(super) throttle: Arc<Throttle>,
}

impl<S: ?Sized> Clone for Pages<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            settings: self.settings.clone(),
            all: self.all.clone(),
            auth: self.auth.clone(),
            throttle: self.throttle.clone(),
        }
    }
}

/// The page for a routing log that cannot be read (the caller logs why).
pub(super) fn unavailable() -> Response {
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        page::message(
            "Unavailable",
            "The routing log cannot be read; retry later.",
        ),
    )
}

/// `body` as a page, with the headers every page gets: not cached, not framed, no scripts at all.
pub(super) fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    r
}

/// `r` setting `cookie` as well.
pub(super) fn with_cookie(mut r: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}
