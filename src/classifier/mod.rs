//! Classifiers: a trait with two backends (Claude and offline) and the fallback policy.
//!
//! Every ticket gets a decision. When the primary classifier fails for good, the offline one
//! decides, `routine` is raised to `urgent` (a person sees every ticket the model did not judge),
//! and the decision carries the reason.

mod build;
pub mod claude;
pub mod offline;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{Classification, Severity, TicketContext, Usage, Verdict};

pub use build::Classifiers;
pub use claude::ClaudeClassifier;
pub use offline::OfflineClassifier;

/// Why a classifier gave no usable answer. Each variant ends in the offline fallback; the
/// variant decides whether it was retried first and how it is logged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClassifierError {
    /// The model answered, but not with a valid decision (bad JSON, schema violation, refusal,
    /// `max_tokens`).
    #[error("invalid answer: {reason}")]
    InvalidAnswer {
        /// What was wrong with it.
        reason: String,
        /// The call was billed all the same: its usage, recorded on the fallback decision.
        usage: Option<Box<Usage>>,
        /// The generation span of the call, when traced.
        observation_id: Option<String>,
    },
    /// The API answered with an error status that retrying will not fix, or retries ran out.
    #[error("upstream {status} {kind}")]
    Upstream {
        /// HTTP status.
        status: u16,
        /// The API's `error.type` (or error code), for logs and the fallback reason.
        kind: String,
        /// The API's `request-id` header, for support.
        request_id: Option<String>,
    },
    /// The call did not finish within its deadline.
    #[error("timeout")]
    Timeout,
    /// The connection failed (DNS, TLS, reset).
    #[error("transport: {0}")]
    Transport(String),
    /// The retry budget is spent or the rate-limit headroom is gone: shed load, do not wait.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// The spend-cap breaker is open: no call was made (see `claude::breaker`).
    #[error("spend cap reached; no call made until a probe gets through")]
    SpendCap,
}

impl ClassifierError {
    /// A short machine-friendly reason, stored as the decision's `fallback_reason`.
    pub fn reason(&self) -> String {
        match self {
            ClassifierError::InvalidAnswer { reason, .. } => format!("invalid_answer: {reason}"),
            ClassifierError::Upstream { status, kind, .. } => format!("upstream_{status}: {kind}"),
            ClassifierError::Timeout => "timeout".to_owned(),
            ClassifierError::Transport(m) => format!("transport: {m}"),
            ClassifierError::Overloaded(m) => format!("overloaded: {m}"),
            ClassifierError::SpendCap => "spend_cap".to_owned(),
        }
    }
}

tokio::task_local! {
    /// Retries of the model call in progress, counted by the backend and read by
    /// [`Decider::decide`] into the decision's usage. A task-local because a failed call returns
    /// only its error, and the retries of a call that timed out are the ones the audit needs.
    static RETRIES: std::cell::Cell<i32>;
}

/// Counts one retry of the model call in progress (a no-op outside [`Decider::decide`]).
pub(crate) fn count_retry() {
    let _ = RETRIES.try_with(|c| c.set(c.get().saturating_add(1)));
}

/// A backend that turns a ticket into a validated classification.
#[async_trait]
pub trait Classifier: Send + Sync {
    /// The model name recorded in decisions (`offline` for the rule-based backend).
    fn model(&self) -> &str;

    /// Classifies one ticket.
    ///
    /// # Errors
    /// [`ClassifierError`] when no valid answer could be had; the caller falls back.
    async fn classify(&self, ctx: &TicketContext) -> Result<Classification, ClassifierError>;
}

/// The classifier the service uses: an optional primary (Claude) and the offline backend, which
/// serves alone when no API key is set and stands in when the primary fails.
#[derive(Clone)]
pub struct Decider {
    primary: Option<Arc<dyn Classifier>>,
    offline: Arc<OfflineClassifier>,
}

impl Decider {
    /// A decider over `primary` (None: offline only).
    pub fn new(primary: Option<Arc<dyn Classifier>>, offline: Arc<OfflineClassifier>) -> Self {
        Self { primary, offline }
    }

    /// The labels both backends answer from (the offline classifier's, built from the same
    /// settings as the prompt's).
    pub fn taxonomy(&self) -> &crate::taxonomy::Taxonomy {
        self.offline.taxonomy()
    }

    /// The model labels its decisions can carry: the configured model's (if any) and the
    /// offline classifier's.
    pub fn models(&self) -> Vec<&str> {
        let mut models: Vec<&str> = self.primary.iter().map(|p| p.model()).collect();
        models.push(self.offline.model());
        models
    }

    /// The model the service classifies with, for the startup log line.
    pub fn describe(&self) -> String {
        match &self.primary {
            Some(p) => format!("{} (fallback: offline)", p.model()),
            None => "offline (no ANTHROPIC_API_KEY set)".to_owned(),
        }
    }

    /// Decides; never fails. See the module docs for the fallback policy.
    pub async fn decide(&self, ctx: &TicketContext) -> Classification {
        let Some(primary) = &self.primary else {
            return self.offline.decide(ctx);
        };
        let started = std::time::Instant::now();
        let (result, retries) = RETRIES
            .scope(std::cell::Cell::new(0), async {
                let result = primary.classify(ctx).await;
                (result, RETRIES.with(std::cell::Cell::get))
            })
            .await;
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let m = crate::telemetry::metrics::metrics();
        let outcome = if result.is_ok() { "ok" } else { "error" };
        m.model_latency
            .with_label_values(&[primary.model(), outcome])
            .observe(started.elapsed().as_secs_f64());
        let timed = |mut c: Classification| {
            c.usage.model_latency_ms = Some(latency_ms);
            c.usage.model_retries = retries;
            c
        };
        match result {
            Ok(c) => {
                m.usage(&c.model, &c.usage);
                timed(c)
            }
            Err(e) => {
                if e == ClassifierError::SpendCap {
                    // The breaker logged its opening once; one line per ticket would be noise.
                    tracing::debug!("spend cap: the offline classifier decides");
                } else {
                    // An invalid answer's reason quotes model output: one bounded line in the log.
                    tracing::warn!(
                        error = %crate::text::excerpt(&e.to_string(), 300),
                        "classifier failed; the offline classifier decides"
                    );
                }
                let mut c = fallback(self.offline.decide(ctx), &e.reason());
                if let ClassifierError::InvalidAnswer {
                    usage: Some(usage),
                    observation_id,
                    ..
                } = e
                {
                    // A refused or malformed answer was billed: the log keeps its cost.
                    m.usage(primary.model(), &usage);
                    c.usage = *usage;
                    c.observation_id = observation_id;
                }
                timed(c)
            }
        }
    }
}

/// The `fallback_reason` of a safe decision made because the worker could not decide a ticket.
pub const INTERNAL_ERROR: &str = "internal_error";

impl Decider {
    /// The safe decision for a ticket that cannot be classified at all (its attempts kept
    /// panicking or failing unexpectedly, or it cannot be read): `urgent`, so a person sees it,
    /// with no classifier involved (`model = "none"`, confidence 0) and `reason` as the
    /// fallback reason. Building it runs no classifier code, so it cannot fail the same way.
    pub fn safe(&self, reason: &str) -> Classification {
        Classification {
            verdict: Verdict::new(
                Severity::Urgent,
                None,
                crate::domain::Confidence::ZERO,
                "escalator could not classify this ticket, so a person should triage it.",
            ),
            model: "none".to_owned(),
            prompt_version: self.offline.prompt_version().to_owned(),
            fallback_reason: Some(reason.to_owned()),
            usage: Usage::default(),
            observation_id: None,
        }
    }
}

/// Marks an offline classification as a fallback for `reason`, raising routine to urgent.
pub fn fallback(mut c: Classification, reason: &str) -> Classification {
    if c.verdict.severity == Severity::Routine {
        let mut notes = c.verdict.notes.clone();
        notes.push("fallback raised routine to urgent".to_owned());
        c.verdict = Verdict {
            notes,
            labels: c.verdict.labels.clone(),
            ..Verdict::new(
                Severity::Urgent,
                None,
                c.verdict.confidence,
                &c.verdict.reasoning,
            )
        };
    }
    c.fallback_reason = Some(reason.to_owned());
    c
}
