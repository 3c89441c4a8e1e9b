//! The login and logout of the web pages: the form, the login limits ([`super::throttle`]), the
//! token check and the session ([`super::auth`]), kept apart from the pages they open.

use std::net::SocketAddr;

use axum::{
    Form,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::{
    auth,
    common::{Pages, html, unavailable, with_cookie},
    page,
};
use crate::telemetry::metrics::metrics;

/// The session of the request, or the response to give instead: the login form going on to
/// `next` (none), or 503 (the sessions cannot be read).
pub(super) async fn session_or_login<S: ?Sized>(
    p: &Pages<S>,
    headers: &HeaderMap,
    next: &str,
) -> Result<auth::Session, Response> {
    match p.auth.session(headers).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(login_form(p, StatusCode::OK, None, next)),
        Err(e) => {
            tracing::error!(error = %e, "review page: cannot read the sessions");
            Err(unavailable())
        }
    }
}

/// The login form with a fresh nonce cookie.
pub(super) fn login_form<S: ?Sized>(
    p: &Pages<S>,
    status: StatusCode,
    error: Option<&str>,
    next: &str,
) -> Response {
    let (nonce, cookie) = p.auth.login_nonce();
    with_cookie(
        html(
            status,
            page::login_to(&p.auth.login_csrf(&nonce), error, next, p.auth.has_admin()),
        ),
        &cookie,
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    token: String,
    #[serde(default)]
    name: String,
    csrf: String,
    /// Where to go after logging in: `/dashboard`, or the review (anything else).
    #[serde(default)]
    next: String,
}

/// The page a login goes on to: only our own two pages, never a URL from the form.
fn after_login(next: &str) -> &'static str {
    if next == "/dashboard" {
        "/dashboard"
    } else {
        "/review"
    }
}

/// The client's address for the login limits: the configured proxy header (the last entry of
/// `X-Forwarded-For`, which the nearest proxy appended), else the TCP peer.
fn client_address<S: ?Sized>(
    p: &Pages<S>,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> std::net::IpAddr {
    p.settings
        .client_address_header
        .as_deref()
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| peer.ip())
}

/// `POST /review/login`: checks the login limits, the login CSRF token and the token, and opens
/// the session. A throttled login is answered 429 with `Retry-After` and its token is not
/// checked; a wrong token is counted, logged (never the token) and answered 401.
pub(super) async fn login<S: ?Sized>(
    State(p): State<Pages<S>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let client = client_address(&p, &headers, peer);
    let now = std::time::Instant::now();
    if let Err((scope, wait)) = p.throttle.check(client, now) {
        metrics()
            .auth
            .review_login_throttled
            .with_label_values(&[scope.as_str()])
            .inc();
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        tracing::warn!(%client, scope = scope.as_str(), retry_after_secs = secs, "review page: login throttled");
        let mut r = login_form(
            &p,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!("Too many failed logins; try again in {secs} s.")),
            after_login(&f.next),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return r;
    }
    if !p.auth.login_csrf_ok(&headers, &f.csrf) {
        return html(
            StatusCode::FORBIDDEN,
            page::message("Forbidden", "The form expired; open /review again."),
        );
    }
    let Some(granted) = p.auth.check(&f.token) else {
        p.throttle.failed(client, now);
        metrics()
            .auth
            .review_login_failures
            .with_label_values(&["wrong_token"])
            .inc();
        tracing::warn!(%client, "review page: login with a wrong token");
        return login_form(
            &p,
            StatusCode::UNAUTHORIZED,
            Some("Wrong token."),
            after_login(&f.next),
        );
    };
    p.throttle.succeeded(client);
    // A reviewer is the file's name; with the admin token, the name typed (a team of one).
    let name = match &granted.name {
        Some(n) => n.clone(),
        None => match crate::text::excerpt(&f.name, 60) {
            n if n.is_empty() => "web".to_owned(),
            n => n,
        },
    };
    match p.auth.open(&granted, &name).await {
        Ok(cookie) => {
            tracing::info!(reviewer = %name, login = ?granted.login, "review page: logged in");
            with_cookie(Redirect::to(after_login(&f.next)).into_response(), &cookie)
        }
        Err(e) => {
            tracing::error!(error = %e, "review page: cannot store the session");
            unavailable()
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct LogoutForm {
    csrf: String,
}

/// `POST /review/logout`: ends the session server-side (its cookie stops working on every
/// replica) and clears the cookie.
pub(super) async fn logout<S: ?Sized>(
    State(p): State<Pages<S>>,
    headers: HeaderMap,
    Form(f): Form<LogoutForm>,
) -> Response {
    match p.auth.session(&headers).await {
        Ok(Some(s)) if p.auth.csrf_ok(&s, &f.csrf) => match p.auth.close(&s).await {
            Ok(()) => {
                tracing::info!(reviewer = %s.reviewer, "review page: logged out");
                with_cookie(
                    Redirect::to("/review").into_response(),
                    &p.auth.clear_cookie(),
                )
            }
            Err(e) => {
                tracing::error!(error = %e, "review page: cannot end the session");
                unavailable()
            }
        },
        Ok(_) => html(
            StatusCode::FORBIDDEN,
            page::message("Forbidden", "Log in again at /review."),
        ),
        Err(e) => {
            tracing::error!(error = %e, "review page: cannot read the sessions");
            unavailable()
        }
    }
}
