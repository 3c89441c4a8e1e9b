//! The `/review` web page: the day's review sample, server-rendered (no JavaScript, no build
//! step), one card per ticket with buttons for the verdict, behind `ESCALATOR_ADMIN_TOKEN`; and
//! `/dashboard`, the weekly audit as server-rendered SVG charts ([`dashboard`], [`charts`])
//! behind the same login.
//!
//! Access: a login form takes a token, a named reviewer's (`ESCALATOR_REVIEWERS_FILE`, whose
//! name goes on the verdicts) or the admin token (with a typed name), compared in constant time;
//! failed logins are throttled per client address and globally ([`throttle`]). A session is
//! held server-side and its cookie (`HttpOnly`, `SameSite=Strict`, `Path=/`, 12 hours) carries
//! an HMAC under the token ([`auth`]), so logging out or rotating the token ends it on every
//! replica. Every form carries a CSRF token (an HMAC of the session, or of a login nonce cookie
//! for the login form) checked on POST. With no login set, every `/review` path answers 404 and
//! the start-up log says why. Ticket text is escaped everywhere.
//!
//! Here: the routes of both pages and their CSRF and error handling. The HTML is in page.rs and
//! dashboard.rs, the login and logout in login.rs, the sessions in auth.rs, the login limits in
//! throttle.rs.

mod auth;
mod charts;
mod common;
mod dashboard;
mod login;
mod page;
mod throttle;

use std::sync::Arc;

use axum::{
    Form, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;

use crate::{
    config::Settings,
    credentials::CredentialsFile,
    domain::{Severity, Source},
    review::{self, NewReview, Origin, Pass, ReviewSettings, ReviewVerdict, SampleRequest},
    store::SessionStore,
};

use auth::Auth;
pub use common::PageStore;
use common::{Pages, html, unavailable};
use throttle::Throttle;

/// The `/review` and `/dashboard` routes over `store` (logins kept in `sessions`), or none (so
/// every such path is a 404) when neither an admin token nor `reviewers` is set. Logs at start
/// which one it is. Served with `ConnectInfo<SocketAddr>` (failed logins are counted per client
/// address).
pub fn router<S: PageStore + ?Sized + 'static>(
    store: Arc<S>,
    sessions: Arc<dyn SessionStore>,
    all: &Settings,
    reviewers: Option<Arc<CredentialsFile>>,
) -> Router {
    let settings = &all.review;
    if settings.admin_token.is_none() && reviewers.is_none() {
        tracing::warn!(
            "ESCALATOR_ADMIN_TOKEN and ESCALATOR_REVIEWERS_FILE are unset: the review page and \
             the dashboard are off (GET /review and GET /dashboard answer 404)"
        );
        return Router::new();
    }
    tracing::info!(
        time_zone = %settings.time_zone,
        admin_token = settings.admin_token.is_some(),
        reviewers = reviewers.as_ref().map_or(0, |r| r.current().names().len()),
        "review page on GET /review"
    );
    let pages = Pages {
        auth: Auth::new(
            settings.admin_token.as_ref(),
            reviewers,
            settings.secure_cookie,
            sessions,
        ),
        store,
        settings: settings.clone(),
        all: Arc::new(all.clone()),
        throttle: Arc::new(Throttle::new()),
    };
    Router::new()
        .route("/dashboard", get(show_dashboard::<S>))
        .route("/review", get(show::<S>))
        .route("/review/login", post(login::login::<S>))
        .route("/review/logout", post(login::logout::<S>))
        .route("/review/verdict", post(verdict::<S>))
        .with_state(pages)
}

/// Which sample a page shows, and which pass of its review.
#[derive(Debug, Default, Deserialize)]
struct Which {
    date: Option<String>,
    source: Option<String>,
    pass: Option<String>,
}

/// The pass a form or query names (`first` when absent), or a message for a 400.
fn pass_of(text: Option<&str>) -> Result<Pass, String> {
    match text.map(str::trim).filter(|p| !p.is_empty()) {
        None => Ok(Pass::First),
        Some(p) => Pass::parse("pass", p).map_err(|e| e.to_string()),
    }
}

impl Which {
    /// The day and source, or a message for a 400.
    fn parse(
        &self,
        settings: &ReviewSettings,
    ) -> Result<(chrono::NaiveDate, Option<Source>), String> {
        let day = match self
            .date
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| format!("date {d:?} is not YYYY-MM-DD"))?,
            None => review::yesterday(settings.time_zone),
        };
        let source = match self
            .source
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None | Some("all") => None,
            Some(s) => Some(Source::parse("source", s).map_err(|e| e.to_string())?),
        };
        Ok((day, source))
    }

    /// The query string that shows the same sample and pass again.
    fn query(day: chrono::NaiveDate, source: Option<Source>, pass: Pass) -> String {
        format!(
            "date={}&source={}&pass={}",
            day.format("%Y-%m-%d"),
            review::source_key(source),
            pass.as_str()
        )
    }
}

/// `GET /review`: the login form, or the day's sample.
async fn show<S: PageStore + ?Sized + 'static>(
    State(p): State<Pages<S>>,
    headers: HeaderMap,
    Query(which): Query<Which>,
) -> Response {
    let session = match login::session_or_login(&p, &headers, "/review").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (day, source, pass) = match which
        .parse(&p.settings)
        .and_then(|(d, s)| Ok((d, s, pass_of(which.pass.as_deref())?)))
    {
        Ok(v) => v,
        Err(e) => return html(StatusCode::BAD_REQUEST, page::message("Bad request", &e)),
    };
    let req = SampleRequest {
        day,
        n: p.settings.sample_size,
        seed: None,
        source,
        design: p.settings.design,
    };
    let tz = p.settings.time_zone;
    let sample = match review::sample(p.store.as_ref(), tz, &req).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "review page: cannot sample");
            return unavailable();
        }
    };
    // A second reviewer sees nothing of the first verdicts, not even their tally: it waits
    // until every second review of the day is in, on every pass.
    let blind = sample
        .items
        .iter()
        .any(|i| i.double_review() && i.second.is_none());
    let tally = if blind {
        None
    } else {
        review::tally(p.store.as_ref(), tz, day).await.ok()
    };
    let csrf = p.auth.csrf(&session);
    html(
        StatusCode::OK,
        page::sample(
            &page::View {
                sample: &sample,
                pass,
                tally,
                tally_hidden: blind,
                reviewer: &session.reviewer,
                csrf: &csrf,
                tz: &tz.to_string(),
            },
            &p.all.labels.taxonomy,
        ),
    )
}

/// Which weeks the dashboard shows.
#[derive(Debug, Default, Deserialize)]
struct DashboardQuery {
    week: Option<String>,
    weeks: Option<usize>,
}

/// `GET /dashboard`: the login form, or the weekly audit as charts and tables.
async fn show_dashboard<S: PageStore + ?Sized + 'static>(
    State(p): State<Pages<S>>,
    headers: HeaderMap,
    Query(q): Query<DashboardQuery>,
) -> Response {
    let session = match login::session_or_login(&p, &headers, "/dashboard").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let week = q.week.as_deref().map(str::trim).filter(|w| !w.is_empty());
    let req =
        match crate::audit::run::request(&p.all, chrono::Utc::now(), week, q.weeks, None, None) {
            Ok(r) => r,
            Err(e) => return html(StatusCode::BAD_REQUEST, page::message("Bad request", &e)),
        };
    match crate::audit::build(p.store.as_ref(), &req).await {
        Ok(report) => html(
            StatusCode::OK,
            dashboard::page(&report, &session.reviewer, &p.auth.csrf(&session)),
        ),
        Err(e) => {
            tracing::error!(error = %e, "dashboard: cannot read the routing log");
            unavailable()
        }
    }
}

#[derive(Debug, Deserialize)]
struct VerdictForm {
    csrf: String,
    decision_id: String,
    verdict: String,
    #[serde(default)]
    why: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    card: String,
    /// The pass of the page the verdict was given on (`first` when absent).
    #[serde(default)]
    pass: String,
    /// The topic the reviewer says is right (preset to the decision's).
    #[serde(default)]
    topic: String,
    /// The sentiment the reviewer says is right (preset to the decision's).
    #[serde(default)]
    sentiment: String,
    /// `shadow.<category>`: `yes`, `no` or `not judged`.
    #[serde(flatten)]
    rest: std::collections::HashMap<String, String>,
}

/// The reviewer's word on the labels of `d` from the form: the topic must be one of the
/// configured ones (or the decision's own), the sentiment one of the three, each shadow answer
/// about a category the decision was asked about.
///
/// # Errors
/// A message naming the bad field.
fn form_labels(
    f: &VerdictForm,
    d: &crate::domain::Decision,
    taxonomy: &crate::taxonomy::Taxonomy,
) -> Result<review::LabelVerdict, String> {
    let mut v = review::LabelVerdict::default();
    let topic = f.topic.trim();
    if !topic.is_empty() {
        let known = taxonomy
            .topic(topic)
            .map(str::to_owned)
            .or_else(|| (d.topic.as_deref() == Some(topic)).then(|| topic.to_owned()));
        v.topic = Some(known.ok_or_else(|| format!("topic {topic:?} is not a configured topic"))?);
    }
    let sentiment = f.sentiment.trim();
    if !sentiment.is_empty() {
        v.sentiment = Some(
            crate::domain::Sentiment::parse("sentiment", sentiment).map_err(|e| e.to_string())?,
        );
    }
    for (key, answer) in &f.rest {
        let Some(name) = key.strip_prefix("shadow.") else {
            continue;
        };
        if !d.shadow.contains_key(name) {
            return Err(format!(
                "the decision was not asked about shadow category {name:?}"
            ));
        }
        match answer.as_str() {
            "yes" => {
                v.shadow.insert(name.to_owned(), true);
            }
            "no" => {
                v.shadow.insert(name.to_owned(), false);
            }
            "not judged" | "" => {}
            other => {
                return Err(format!(
                    "shadow.{name}: {other:?} is not yes, no or not judged"
                ));
            }
        }
    }
    Ok(v)
}

/// `POST /review/verdict`: records a verdict (or a skip) and shows the page again.
async fn verdict<S: PageStore + ?Sized + 'static>(
    State(p): State<Pages<S>>,
    headers: HeaderMap,
    Form(f): Form<VerdictForm>,
) -> Response {
    let session = match p.auth.session(&headers).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return html(
                StatusCode::FORBIDDEN,
                page::message("Forbidden", "Your session ended; log in again at /review."),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "review page: cannot read the sessions");
            return unavailable();
        }
    };
    if !p.auth.csrf_ok(&session, &f.csrf) {
        return html(
            StatusCode::FORBIDDEN,
            page::message("Forbidden", "The form expired; reload /review."),
        );
    }
    let which = Which {
        date: Some(f.date.clone()),
        source: Some(f.source.clone()),
        pass: Some(f.pass.clone()),
    };
    let (day, source, pass) = match which
        .parse(&p.settings)
        .and_then(|(d, s)| Ok((d, s, pass_of(Some(&f.pass))?)))
    {
        Ok(v) => v,
        Err(e) => return html(StatusCode::BAD_REQUEST, page::message("Bad request", &e)),
    };
    let verdict = match f.verdict.as_str() {
        "correct" => Some(ReviewVerdict::Correct),
        "skip" => None,
        other => match Severity::parse("verdict", other) {
            Ok(s) => Some(ReviewVerdict::Corrected(s)),
            Err(e) => {
                return html(
                    StatusCode::BAD_REQUEST,
                    page::message("Bad request", &e.to_string()),
                );
            }
        },
    };
    let store = p.store.as_ref();
    let decision = match store.decision_by_id(&f.decision_id).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return html(
                StatusCode::NOT_FOUND,
                page::message("Not found", "No such decision in the routing log."),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "review page: cannot read the decision");
            return unavailable();
        }
    };
    let labels = match form_labels(&f, &decision, &p.all.labels.taxonomy) {
        Ok(l) => l,
        Err(e) => return html(StatusCode::BAD_REQUEST, page::message("Bad request", &e)),
    };
    let result = match verdict {
        // A skip only means something in the first pass (not offered again); in the others the
        // item stays open.
        None if pass == Pass::First => store.skip_sampled(&decision.id).await.map_err(Into::into),
        None => Ok(()),
        Some(v) => review::record(
            store,
            &decision,
            NewReview {
                decision_id: decision.id.clone(),
                reviewer: session.reviewer.clone(),
                verdict: v,
                why: Some(f.why.clone()),
                origin: Origin::Web,
                external_key: None,
                labels,
                pass,
            },
        )
        .await
        .map(|_| ()),
    };
    if let Err(review::ReviewError::Refused(why)) = &result {
        return html(StatusCode::CONFLICT, page::message("Not recorded", why));
    }
    if let Err(e) = result {
        tracing::error!(error = %e, "review page: cannot store the verdict");
        return html(
            StatusCode::SERVICE_UNAVAILABLE,
            page::message(
                "Unavailable",
                "The verdict was not stored; go back and retry.",
            ),
        );
    }
    let card: usize = f.card.parse().unwrap_or(0);
    Redirect::to(&format!(
        "/review?{}#card-{}",
        Which::query(day, source, pass),
        card + 1
    ))
    .into_response()
}
