//! Prometheus metrics, served as text on `GET /metrics`.
//!
//! One process-wide registry: counters are incremented where things happen (triage, the
//! classifier chain, the action worker, the webhook edge) and gauges that mirror the database
//! (action backlog) are refreshed at scrape time.

use std::sync::OnceLock;

use prometheus::{
    CounterVec, Encoder as _, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::domain::{Decision, Severity, Source, Usage, work::ActionKind};

/// The label values of every labelled counter that are known before anything happens, so each
/// series is exported at 0 from the start (Prometheus' advice on missing series: a dashboard or
/// an alert that reads `rate(escalator_worker_panics_total[5m])` sees 0, not nothing). Values
/// that come from the configuration (the model, the gRPC callers) are added at start-up by
/// [`Metrics::prime_models`] and [`Metrics::prime_callers`].
pub mod known {
    /// `escalator_worker_panics_total{stage}`.
    pub const PANIC_STAGES: &[&str] = &["decide", "act", "recover"];
    /// `escalator_worker_restarts_total{loop}` and `escalator_worker_loop_up{loop}`.
    pub const WORKER_LOOPS: &[&str] = &["inbox", "outbox", "recovery", "leases"];
    /// `escalator_scores_total{outcome}`.
    pub const SCORE_OUTCOMES: &[&str] = &["sent", "failed"];
    /// `escalator_webhook_rejections_total{reason}`: the edge's own refusals (`too_large`,
    /// `unreadable_body`) and every value of [`crate::error::webhook_reason`].
    pub const WEBHOOK_REJECTIONS: &[&str] = &[
        "too_large",
        "unreadable_body",
        "not_configured",
        "missing_signature",
        "bad_signature",
        "stale",
        "malformed",
        "invalid_field",
        "store_unavailable",
        "internal",
    ];
    /// `escalator_fallbacks_total{reason}`: the reason kinds that carry no status code (an
    /// `upstream_<status>` kind appears when that status is first seen).
    pub const FALLBACK_REASONS: &[&str] = &[
        "invalid_answer",
        "timeout",
        "transport",
        "overloaded",
        "spend_cap",
    ];
    /// `escalator_tokens_total{kind}`.
    pub const TOKEN_KINDS: &[&str] = &["input", "output", "cache_read", "cache_write"];
    /// `escalator_claude_spend_cap_transitions_total{state}`.
    pub const SPEND_CAP_STATES: &[&str] = &["open", "closed"];
    /// `escalator_grpc_unauthenticated_total{reason}`.
    pub const GRPC_REFUSALS: &[&str] = &["missing", "malformed", "unknown"];
    /// The gRPC methods of `escalator_grpc_calls_total{method}`.
    pub const GRPC_METHODS: &[&str] = &["Classify", "Route"];
    /// `escalator_review_login_failures_total{reason}`.
    pub const LOGIN_FAILURES: &[&str] = &["wrong_token"];
    /// `escalator_review_login_throttled_total{scope}`.
    pub const LOGIN_THROTTLE_SCOPES: &[&str] = &["address", "global"];
    /// `escalator_db_pool_wait_seconds{path}`.
    pub const POOL_PATHS: &[&str] = &["accept", "inbox", "outbox"];
    /// The model label of decisions made with no classifier (the safe decision).
    pub const NO_MODEL: &str = "none";
}

/// Every metric escalator exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Decisions logged, by source, severity, route and model.
    pub decisions: IntCounterVec,
    /// Decisions the offline classifier made in place of the model, by reason kind.
    pub fallbacks: IntCounterVec,
    /// Requests or deliveries for a key that was already decided, by source.
    pub duplicates: IntCounterVec,
    /// Wall time of model calls (retries included), by model and outcome.
    pub model_latency: HistogramVec,
    /// Time spent waiting for a pooled database connection, by path (accept, inbox, outbox).
    pub db_pool_wait: HistogramVec,
    /// Tokens used, by model and kind (input, output, cache_read, cache_write).
    pub tokens: IntCounterVec,
    /// Model spend in USD, by model.
    pub cost_usd: CounterVec,
    /// Actions waiting in the outbox, by status (pending, failed); refreshed at scrape.
    pub action_backlog: IntGaugeVec,
    /// Failed attempts to execute an action, by kind.
    pub action_failures: IntCounterVec,
    /// Webhook deliveries refused, by source and reason.
    pub webhook_rejections: IntCounterVec,
    /// Webhook deliveries verified only by the previous secret of a rotation, by source.
    pub webhook_previous_secret: IntCounterVec,
    /// Routing scores sent to Langfuse, by outcome (sent, failed).
    pub scores: IntCounterVec,
    /// Deliveries in the inbox not yet decided, by status (pending, failed); refreshed at scrape.
    pub delivery_backlog: IntGaugeVec,
    /// Age in seconds of the oldest pending item, by queue (inbox, outbox); 0 when empty.
    pub oldest_pending_seconds: GaugeVec,
    /// Worker attempts that panicked, by stage (decide, act, recover).
    pub worker_panics: IntCounterVec,
    /// Worker loops restarted after ending outside shutdown, by loop.
    pub worker_restarts: IntCounterVec,
    /// 1 while a worker loop runs, 0 while it is down (restarting), by loop.
    pub worker_loop_up: IntGaugeVec,
    /// The Claude API's rate limits as its last answer stated them, by kind (requests,
    /// input_tokens, output_tokens): limit, remaining, and when the bucket is full again.
    pub claude_ratelimit: ClaudeRateLimit,
    /// The spend-cap breaker: open (1) or closed (0), and its state changes.
    pub claude_spend_cap: ClaudeSpendCap,
    /// Decisions whose severity a weighting rule raised, by rule.
    pub weighting_changes: IntCounterVec,
    /// Enrichment calls that failed after their retries (the default tier was used), by source.
    pub enrichment_failures: IntCounterVec,
    /// Tickets decided safely because they could not be read or were invalid, by source and
    /// cause ([`UNREADABLE_CAUSES`]).
    pub unreadable_tickets: IntCounterVec,
    /// The logins of the gRPC API and the review pages: refusals, throttling, callers.
    pub auth: AuthMetrics,
}

/// Who was let in and who was not: gRPC callers and review logins.
#[derive(Debug)]
pub struct AuthMetrics {
    /// gRPC calls refused with `UNAUTHENTICATED`, by reason (missing, malformed, unknown).
    pub grpc_refused: IntCounterVec,
    /// gRPC calls of authenticated callers, by caller and method.
    pub grpc_calls: IntCounterVec,
    /// Review logins refused for a wrong token (or a CSRF failure), by reason.
    pub review_login_failures: IntCounterVec,
    /// Review logins answered 429 without checking the token, by scope (address, global).
    pub review_login_throttled: IntCounterVec,
}

/// Gauges of the Claude API's `anthropic-ratelimit-*` headers and of the adaptive concurrency
/// they drive.
#[derive(Debug)]
pub struct ClaudeRateLimit {
    /// `anthropic-ratelimit-<kind>-limit`.
    pub limit: IntGaugeVec,
    /// `anthropic-ratelimit-<kind>-remaining`: the organisation's headroom, shared by replicas.
    pub remaining: IntGaugeVec,
    /// `anthropic-ratelimit-<kind>-reset` as a Unix time.
    pub reset: IntGaugeVec,
    /// Calls this replica lets in flight now (at most `max_concurrency`).
    pub concurrency: IntGauge,
    /// Calls in flight now.
    pub in_flight: IntGauge,
}

/// The spend-cap breaker's state.
#[derive(Debug)]
pub struct ClaudeSpendCap {
    /// 1 while open (calls skipped), 0 while closed.
    pub open: IntGauge,
    /// State changes, by the state entered (open, closed).
    pub transitions: IntCounterVec,
}

/// Registers a metric made by `made` (its name for the panic messages): every metric here
/// goes through it. Both failures are programming errors (a malformed name, a name used twice).
fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    name: &str,
    made: prometheus::Result<M>,
) -> M {
    let m = made.unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"));
    registry
        .register(Box::new(m.clone()))
        .unwrap_or_else(|e| panic!("metric {name} registered twice: {e}"));
    m
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        registry,
        name,
        IntGaugeVec::new(Opts::new(name, help), labels),
    )
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, name, IntGauge::new(name, help))
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        registry,
        name,
        IntCounterVec::new(Opts::new(name, help), labels),
    )
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new_custom(Some("escalator".into()), None)
            .unwrap_or_else(|e| panic!("registry prefix is malformed: {e}"));
        let decisions = counter(
            &registry,
            "decisions_total",
            "Decisions written to the routing log.",
            &["source", "severity", "route", "model"],
        );
        let fallbacks = counter(
            &registry,
            "fallbacks_total",
            "Decisions made by the offline classifier because the model could not decide.",
            &["reason"],
        );
        let duplicates = counter(
            &registry,
            "duplicates_total",
            "Tickets received again for an already decided key (nothing was done twice).",
            &["source"],
        );
        let model_latency = register(
            &registry,
            "model_latency_seconds",
            HistogramVec::new(
                HistogramOpts::new(
                    "model_latency_seconds",
                    "Wall time of one classification by the model, retries included.",
                )
                .buckets(vec![0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
                &["model", "outcome"],
            ),
        );
        let db_pool_wait = register(
            &registry,
            "db_pool_wait_seconds",
            HistogramVec::new(
                HistogramOpts::new(
                    "db_pool_wait_seconds",
                    "Time a statement waited for a pooled database connection, by path: accept \
                     (webhook and gRPC answers, a pool of their own), inbox and outbox (the worker).",
                )
                .buckets(vec![
                    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5, 5.0,
                ]),
                &["path"],
            ),
        );
        let tokens = counter(
            &registry,
            "tokens_total",
            "Model tokens, by kind: input (uncached), output, cache_read, cache_write.",
            &["model", "kind"],
        );
        let cost_usd = register(
            &registry,
            "cost_usd_total",
            CounterVec::new(
                Opts::new("cost_usd_total", "Model spend in USD from the price table."),
                &["model"],
            ),
        );
        let action_backlog = register(
            &registry,
            "action_backlog",
            IntGaugeVec::new(
                Opts::new(
                    "action_backlog",
                    "Actions in the outbox not yet done, by status (pending, failed).",
                ),
                &["status"],
            ),
        );
        let action_failures = counter(
            &registry,
            "action_failures_total",
            "Failed attempts to execute an action in the ticketing tool (it is retried).",
            &["kind"],
        );
        let webhook_rejections = counter(
            &registry,
            "webhook_rejections_total",
            "Webhook deliveries refused, by source and reason.",
            &["source", "reason"],
        );
        let webhook_previous_secret = counter(
            &registry,
            "webhook_previous_secret_total",
            "Webhook deliveries verified only by the previous secret (a rotation in progress), by source.",
            &["source"],
        );
        let scores = counter(
            &registry,
            "scores_total",
            "Routing scores sent to Langfuse, by outcome.",
            &["outcome"],
        );
        let delivery_backlog = gauge_vec(
            &registry,
            "delivery_backlog",
            "Webhook deliveries in the inbox not yet decided, by status (pending, failed).",
            &["status"],
        );
        let oldest_pending_seconds = register(
            &registry,
            "oldest_pending_seconds",
            GaugeVec::new(
                Opts::new(
                    "oldest_pending_seconds",
                    "Age of the oldest pending item, by queue (inbox, outbox); 0 when empty.",
                ),
                &["queue"],
            ),
        );
        let worker_panics = counter(
            &registry,
            "worker_panics_total",
            "Worker attempts that panicked (each is one failed attempt of its item), by stage.",
            &["stage"],
        );
        let worker_restarts = counter(
            &registry,
            "worker_restarts_total",
            "Worker loops restarted after ending outside shutdown, by loop.",
            &["loop"],
        );
        let worker_loop_up = gauge_vec(
            &registry,
            "worker_loop_up",
            "1 while a worker loop runs, 0 while it is down, by loop.",
            &["loop"],
        );
        let claude_ratelimit = ClaudeRateLimit {
            limit: gauge_vec(
                &registry,
                "claude_ratelimit_limit",
                "Claude API rate limit per kind (requests, input_tokens, output_tokens), from its last answer.",
                &["kind"],
            ),
            remaining: gauge_vec(
                &registry,
                "claude_ratelimit_remaining",
                "Claude API headroom left per kind, shared by every replica of the organisation.",
                &["kind"],
            ),
            reset: gauge_vec(
                &registry,
                "claude_ratelimit_reset_timestamp_seconds",
                "When the Claude API rate limit bucket of a kind is full again (Unix time).",
                &["kind"],
            ),
            concurrency: gauge(
                &registry,
                "claude_concurrency_limit",
                "Claude calls this replica lets in flight now, adapted to the headroom left.",
            ),
            in_flight: gauge(&registry, "claude_in_flight", "Claude calls in flight now."),
        };
        let claude_spend_cap = ClaudeSpendCap {
            open: gauge(
                &registry,
                "claude_spend_cap_open",
                "1 while the spend-cap breaker is open (Claude calls skipped), else 0.",
            ),
            transitions: counter(
                &registry,
                "claude_spend_cap_transitions_total",
                "Spend-cap breaker state changes, by the state entered.",
                &["state"],
            ),
        };
        let weighting_changes = counter(
            &registry,
            "weighting_changes_total",
            "Decisions whose severity a weighting rule (tiers.<tier>, tiers.repeat) raised above the classifier's.",
            &["rule"],
        );
        let enrichment_failures = counter(
            &registry,
            "enrichment_failures_total",
            "Enrichment calls that failed after their retries; the ticket was decided with the default tier.",
            &["source"],
        );
        let unreadable_tickets = counter(
            &registry,
            "unreadable_tickets_total",
            "Acknowledged tickets that could not be read from the tool or were invalid, so they got the safe decision (urgent, a person), by source and cause (auth: the tool refused the token; not_found; rejected: another 4xx; invalid; other).",
            &["source", "cause"],
        );
        let auth = AuthMetrics {
            grpc_refused: counter(
                &registry,
                "grpc_unauthenticated_total",
                "gRPC calls refused with UNAUTHENTICATED, by reason (missing, malformed, unknown token).",
                &["reason"],
            ),
            grpc_calls: counter(
                &registry,
                "grpc_calls_total",
                "gRPC calls of authenticated callers (ESCALATOR_GRPC_CALLERS_FILE), by caller and method.",
                &["caller", "method"],
            ),
            review_login_failures: counter(
                &registry,
                "review_login_failures_total",
                "Review logins refused, by reason (wrong_token).",
                &["reason"],
            ),
            review_login_throttled: counter(
                &registry,
                "review_login_throttled_total",
                "Review logins answered 429 (too many failures) without checking the token, by scope (address, global).",
                &["scope"],
            ),
        };
        let m = Self {
            registry,
            auth,
            decisions,
            fallbacks,
            duplicates,
            model_latency,
            db_pool_wait,
            tokens,
            cost_usd,
            action_backlog,
            action_failures,
            webhook_rejections,
            webhook_previous_secret,
            scores,
            delivery_backlog,
            oldest_pending_seconds,
            worker_panics,
            worker_restarts,
            worker_loop_up,
            claude_ratelimit,
            claude_spend_cap,
            weighting_changes,
            enrichment_failures,
            unreadable_tickets,
        };
        m.prime();
        m
    }

    /// Creates every series of [`known`] label values at 0.
    fn prime(&self) {
        let zero = |c: &IntCounterVec, values: &[&str]| {
            c.with_label_values(values).inc_by(0);
        };
        for stage in known::PANIC_STAGES {
            zero(&self.worker_panics, &[stage]);
        }
        for path in known::POOL_PATHS {
            // A histogram's series start at 0 when created.
            let _ = self.db_pool_wait.with_label_values(&[path]);
        }
        for name in known::WORKER_LOOPS {
            zero(&self.worker_restarts, &[name]);
        }
        for outcome in known::SCORE_OUTCOMES {
            zero(&self.scores, &[outcome]);
        }
        for reason in known::FALLBACK_REASONS {
            zero(&self.fallbacks, &[reason]);
        }
        for state in known::SPEND_CAP_STATES {
            zero(&self.claude_spend_cap.transitions, &[state]);
        }
        for reason in known::GRPC_REFUSALS {
            zero(&self.auth.grpc_refused, &[reason]);
        }
        for reason in known::LOGIN_FAILURES {
            zero(&self.auth.review_login_failures, &[reason]);
        }
        for scope in known::LOGIN_THROTTLE_SCOPES {
            zero(&self.auth.review_login_throttled, &[scope]);
        }
        for kind in ActionKind::ALL {
            zero(&self.action_failures, &[kind.as_str()]);
        }
        for source in Source::ALL {
            let s = source.as_str();
            zero(&self.duplicates, &[s]);
            zero(&self.webhook_previous_secret, &[s]);
            zero(&self.enrichment_failures, &[s]);
            if *source != Source::Api {
                // A tool's tickets only: `api` tickets are never read from a tool.
                for cause in UNREADABLE_CAUSES {
                    zero(&self.unreadable_tickets, &[s, cause]);
                }
            }
            for reason in known::WEBHOOK_REJECTIONS {
                zero(&self.webhook_rejections, &[s, reason]);
            }
        }
        self.prime_models(&[known::NO_MODEL]);
    }

    /// Creates the series of `models` (the configured model and the offline classifier's) at
    /// 0: decisions by source and severity, tokens by kind, spend.
    pub fn prime_models(&self, models: &[&str]) {
        for model in models {
            for source in Source::ALL {
                for severity in Severity::ALL {
                    self.decisions
                        .with_label_values(&[
                            source.as_str(),
                            severity.as_str(),
                            severity.route().as_str(),
                            model,
                        ])
                        .inc_by(0);
                }
            }
            for kind in known::TOKEN_KINDS {
                self.tokens.with_label_values(&[model, kind]).inc_by(0);
            }
            self.cost_usd.with_label_values(&[model]).inc_by(0.0);
        }
    }

    /// Creates the series of each gRPC caller and method at 0.
    pub fn prime_callers(&self, callers: &[&str]) {
        for caller in callers {
            for method in known::GRPC_METHODS {
                self.auth
                    .grpc_calls
                    .with_label_values(&[caller, method])
                    .inc_by(0);
            }
        }
    }

    /// Counts a newly logged decision.
    pub fn decision(&self, d: &Decision) {
        self.decisions
            .with_label_values(&[
                d.source.as_str(),
                d.severity.as_str(),
                d.route.as_str(),
                &d.model,
            ])
            .inc();
        if let Some(reason) = &d.fallback_reason {
            self.fallbacks
                .with_label_values(&[reason_kind(reason)])
                .inc();
        }
        if let Some(rule) = &d.weighting_rule {
            self.weighting_changes.with_label_values(&[rule]).inc();
        }
    }

    /// Counts the tokens and cost of one model call.
    pub fn usage(&self, model: &str, u: &Usage) {
        for (kind, n) in [
            ("input", u.input_tokens),
            ("output", u.output_tokens),
            ("cache_read", u.cache_read_tokens),
            ("cache_write", u.cache_write_tokens),
        ] {
            if let Ok(n) = u64::try_from(n) {
                self.tokens.with_label_values(&[model, kind]).inc_by(n);
            }
        }
        if u.cost_usd > 0.0 {
            self.cost_usd.with_label_values(&[model]).inc_by(u.cost_usd);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The low-cardinality part of a fallback reason (`upstream_529: overloaded_error` ->
/// `upstream_529`), so the label set stays bounded.
pub fn reason_kind(reason: &str) -> &str {
    reason.split(':').next().unwrap_or(reason).trim()
}

/// The causes `escalator_unreadable_tickets_total` counts, each exported at zero from the start.
pub const UNREADABLE_CAUSES: [&str; 5] = ["auth", "not_found", "rejected", "invalid", "other"];

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_reasons_are_bucketed() {
        assert_eq!(
            reason_kind("upstream_529: overloaded_error"),
            "upstream_529"
        );
        assert_eq!(reason_kind("timeout"), "timeout");
    }

    #[test]
    fn usage_is_counted_by_kind() {
        let m = metrics();
        let u = Usage {
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: 100,
            cost_usd: 0.5,
            ..Usage::default()
        };
        m.usage("unit-test-model", &u);
        let text = m.render();
        assert!(
            text.contains(
                "escalator_tokens_total{kind=\"cache_read\",model=\"unit-test-model\"} 100"
            )
        );
        assert!(text.contains("escalator_cost_usd_total{model=\"unit-test-model\"} 0.5"));
    }
}
