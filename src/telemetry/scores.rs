//! Routing accuracy scores: a reviewed decision becomes a Langfuse score `routing_correct`
//! (BOOLEAN) on its trace and generation, and a corrected one also `corrected_severity`
//! (CATEGORICAL: the severity the reviewer says is right).
//!
//! [`record_review`] is what the review flow calls: it only writes the score to the database
//! outbox, so a review is never lost to a Langfuse outage. [`run_sender`] delivers pending scores
//! with back-off; the score id is an idempotency key, so a re-send (or a corrected review)
//! updates the score in Langfuse instead of duplicating it.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::{
    backoff::{Backoff, OUTBOX_JITTER},
    domain::Decision,
    domain::Severity,
    store::{ScoreRow, ScoreValue, Store, StoreError},
    telemetry::{metrics::metrics, settings::LangfuseSettings},
};

/// The score name the dashboards average.
pub const SCORE_NAME: &str = "routing_correct";
/// The CATEGORICAL score of a corrected decision: the severity that is right.
pub const CORRECTED_SEVERITY: &str = "corrected_severity";
/// The BOOLEAN score of a reviewed topic label.
pub const TOPIC_CORRECT: &str = "topic_correct";
/// The BOOLEAN score of a reviewed sentiment label.
pub const SENTIMENT_CORRECT: &str = "sentiment_correct";

/// Writes a BOOLEAN label score of `decision` to the outbox (pending): [`TOPIC_CORRECT`] or
/// [`SENTIMENT_CORRECT`], each on its own so Langfuse charts each label's accuracy apart from
/// `routing_correct`. Idempotent like [`record_review`] (`<trace id>-<name>`).
///
/// # Errors
/// When the score cannot be written; the caller should retry the review.
pub async fn record_label(
    store: &dyn Store,
    decision: &Decision,
    name: &str,
    correct: bool,
    comment: Option<&str>,
) -> Result<ScoreRow, StoreError> {
    let score = score_row(decision, name, ScoreValue::Boolean(correct), comment);
    store.upsert_score(&score).await?;
    Ok(score)
}

/// Writes the review of `decision` to the score outbox (pending). `correct = false` means the
/// reviewer corrected the decision; `comment` says how (e.g. `human -> engineering`).
///
/// # Errors
/// When the score cannot be written; the caller should retry the review.
pub async fn record_review(
    store: &dyn Store,
    decision: &Decision,
    correct: bool,
    comment: Option<&str>,
) -> Result<ScoreRow, StoreError> {
    record_label(store, decision, SCORE_NAME, correct, comment).await
}

/// Writes the `corrected_severity` score of `decision` to the outbox (pending): the severity a
/// reviewer says is right. Idempotent like [`record_review`] (`<trace id>-corrected_severity`),
/// so a re-judged decision updates it.
///
/// # Errors
/// When the score cannot be written; the caller should retry the review.
pub async fn record_corrected_severity(
    store: &dyn Store,
    decision: &Decision,
    severity: Severity,
    comment: Option<&str>,
) -> Result<ScoreRow, StoreError> {
    let score = score_row(
        decision,
        CORRECTED_SEVERITY,
        ScoreValue::Categorical(severity.as_str().to_owned()),
        comment,
    );
    store.upsert_score(&score).await?;
    Ok(score)
}

/// A score on `decision`'s trace (or, untraced, its id) named `name`, with the filterable
/// context of the decision as metadata.
fn score_row(
    decision: &Decision,
    name: &str,
    value: ScoreValue,
    comment: Option<&str>,
) -> ScoreRow {
    let anchor = decision.trace_id.as_deref().unwrap_or(&decision.id);
    ScoreRow {
        id: format!("{anchor}-{name}"),
        decision_id: decision.id.clone(),
        trace_id: decision.trace_id.clone(),
        observation_id: decision.observation_id.clone(),
        session_id: decision.ticket_id.clone(),
        name: name.to_owned(),
        value,
        comment: comment.map(str::to_owned),
        metadata: serde_json::json!({
            "decision_id": decision.id,
            "source": decision.source.as_str(),
            "severity": decision.severity.as_str(),
            "route": decision.route.as_str(),
            "prompt_version": decision.prompt_version,
            "model": decision.model,
            "fallback": decision.fallback,
            "topic": decision.topic,
            "sentiment": decision.sentiment.map(crate::domain::Sentiment::as_str),
        })
        .to_string(),
        attempts: 0,
    }
}

/// The body of `POST /api/public/scores` (reference/langfuse-otel.md section 4).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ScoreBody<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    observation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    name: &'a str,
    /// A number for BOOLEAN, a string for CATEGORICAL.
    value: serde_json::Value,
    data_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<&'a str>,
    metadata: serde_json::Value,
    environment: &'a str,
}

/// Sends scores to Langfuse's Scores API.
#[derive(Debug, Clone)]
pub struct ScoreSender {
    client: reqwest::Client,
    url: String,
    auth: SecretString,
    environment: String,
}

impl ScoreSender {
    /// A sender for `langfuse`, tagging scores with `environment`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS setup).
    pub fn new(langfuse: &LangfuseSettings, environment: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            url: format!("{}/api/public/scores", langfuse.host),
            auth: langfuse.basic_auth(),
            environment: environment.to_owned(),
        })
    }

    /// Sends one score.
    ///
    /// # Errors
    /// A short description (status and the start of the body, or the transport error).
    pub async fn send(&self, s: &ScoreRow) -> Result<(), String> {
        let metadata = serde_json::from_str(&s.metadata).unwrap_or(serde_json::Value::Null);
        let body = ScoreBody {
            id: &s.id,
            trace_id: s.trace_id.as_deref(),
            observation_id: s.trace_id.as_ref().and(s.observation_id.as_deref()),
            // A score without a trace still links to the ticket's session.
            session_id: s.trace_id.is_none().then_some(s.session_id.as_str()),
            name: &s.name,
            value: match &s.value {
                ScoreValue::Boolean(b) => serde_json::Value::from(i32::from(*b)),
                ScoreValue::Categorical(v) => serde_json::Value::from(v.as_str()),
            },
            data_type: s.value.data_type(),
            comment: s.comment.as_deref(),
            metadata,
            environment: &self.environment,
        };
        let resp = self
            .client
            .post(&self.url)
            .header("authorization", self.auth.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("transport: {}", e.without_url()))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        Err(format!(
            "HTTP {}: {}",
            status.as_u16(),
            crate::text::excerpt(&text, 200)
        ))
    }
}

/// The delay before retry number `attempts + 1`: 5 s doubling, at most an hour, less up to half
/// at random so scores that failed together (a Langfuse outage) spread out ([`crate::backoff`]).
pub fn backoff(attempts: i32) -> Duration {
    Backoff {
        base: Duration::from_secs(5),
        max: Duration::from_secs(3600),
        jitter: OUTBOX_JITTER,
    }
    .delay(u32::try_from(attempts).unwrap_or(0))
}

/// Sends every score due at `now` once; returns how many were sent.
///
/// # Errors
/// When the outbox cannot be read or updated.
pub async fn send_due(
    store: &dyn Store,
    sender: &ScoreSender,
    now: chrono::DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut sent = 0;
    for s in store.due_scores(now, 100).await? {
        match sender.send(&s).await {
            Ok(()) => {
                store.score_sent(&s.id).await?;
                metrics().scores.with_label_values(&["sent"]).inc();
                sent += 1;
            }
            Err(e) => {
                let delay = backoff(s.attempts);
                tracing::warn!(score_id = %s.id, attempts = s.attempts + 1, error = %e, retry_in_secs = delay.as_secs(), "sending a score to Langfuse failed");
                metrics().scores.with_label_values(&["failed"]).inc();
                let next = Utc::now()
                    + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
                store.score_failed(&s.id, &e, next).await?;
            }
        }
    }
    Ok(sent)
}

/// Sends due scores every `interval` until `shutdown` is cancelled.
pub async fn run_sender(
    store: Arc<dyn Store>,
    sender: ScoreSender,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        if let Err(e) = send_due(store.as_ref(), &sender, Utc::now()).await {
            tracing::warn!(error = %e, "score outbox unavailable; retrying");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_is_capped_and_jittered_down() {
        let within = |d: Duration, full: u64| {
            d <= Duration::from_secs(full) && d >= Duration::from_secs(full) / 2
        };
        assert!(within(backoff(0), 5));
        assert!(within(backoff(1), 10));
        assert!(within(backoff(20), 3600));
        assert!(within(backoff(-1), 5));
    }
}
