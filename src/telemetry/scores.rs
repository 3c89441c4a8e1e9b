//! Routing accuracy scores: a reviewed decision becomes a Langfuse score `routing_correct`
//! (BOOLEAN) on its trace and generation, and a corrected one also `corrected_severity`
//! (CATEGORICAL: the severity the reviewer says is right).
//!
//! The review flow writes the rows built here ([`review_score`], [`corrected_severity_score`],
//! [`label_score`]) to the score outbox only, so a review is never lost to a Langfuse outage;
//! the worker's score loop (`crate::worker::scores`) delivers them through [`ScoreSender`] with
//! back-off. The score id is an idempotency key, so a re-send (or a corrected review) updates
//! the score in Langfuse instead of duplicating it.

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;

use crate::{
    backoff::{Backoff, OUTBOX_JITTER},
    domain::{
        Decision, Severity,
        work::{ScoreRow, ScoreValue},
    },
    telemetry::settings::LangfuseSettings,
};

/// The score name the dashboards average.
pub const SCORE_NAME: &str = "routing_correct";
/// The CATEGORICAL score of a corrected decision: the severity that is right.
pub const CORRECTED_SEVERITY: &str = "corrected_severity";
/// The BOOLEAN score of a reviewed topic label.
pub const TOPIC_CORRECT: &str = "topic_correct";
/// The BOOLEAN score of a reviewed sentiment label.
pub const SENTIMENT_CORRECT: &str = "sentiment_correct";

/// A BOOLEAN label score of `decision`: [`TOPIC_CORRECT`] or [`SENTIMENT_CORRECT`], each on its
/// own so Langfuse charts each label's accuracy apart from `routing_correct`. Its id
/// (`<trace id>-<name>`) makes writing it again an update.
pub fn label_score(
    decision: &Decision,
    name: &str,
    correct: bool,
    comment: Option<&str>,
) -> ScoreRow {
    score_row(decision, name, ScoreValue::Boolean(correct), comment)
}

/// The `routing_correct` score of a review of `decision`: `correct = false` means the reviewer
/// corrected it; `comment` says how (e.g. `human -> engineering`).
pub fn review_score(decision: &Decision, correct: bool, comment: Option<&str>) -> ScoreRow {
    label_score(decision, SCORE_NAME, correct, comment)
}

/// The `corrected_severity` score of `decision`: the severity a reviewer says is right
/// (`<trace id>-corrected_severity`, so a re-judged decision updates it).
pub fn corrected_severity_score(
    decision: &Decision,
    severity: Severity,
    comment: Option<&str>,
) -> ScoreRow {
    score_row(
        decision,
        CORRECTED_SEVERITY,
        ScoreValue::Categorical(severity.as_str().to_owned()),
        comment,
    )
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
