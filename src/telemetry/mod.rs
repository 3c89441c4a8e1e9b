//! Logs, traces, metrics and routing scores.
//!
//! - Logs: an `EnvFilter` (`ESCALATOR_LOG`, default `info`) over a text or JSON formatter on
//!   stderr. Ticket text is never logged at INFO.
//! - Traces: `tracing` spans with target [`OTEL_TARGET`] (and only those: no HTTP, gRPC or SQL
//!   library spans) go through `tracing-opentelemetry` to an OTLP/HTTP protobuf exporter, aimed at
//!   any collector (`OTEL_EXPORTER_OTLP_*`) or at Langfuse (`LANGFUSE_*`). One trace per ticket:
//!   a root span per request or delivery, a generation span per model call, with the trace-level
//!   Langfuse attributes set on both (Langfuse v4 reads them per span).
//! - Metrics: [`metrics`], Prometheus text on `GET /metrics`.
//! - Scores: [`scores`], reviewed decisions sent to Langfuse from a database outbox.
//!
//! Over 450 lines on purpose: every span attribute Langfuse reads is set in this one file, so
//! the mapping can be checked against `deploy/langfuse/README.md` in one read.

pub mod metrics;
pub mod scores;
pub mod settings;

use std::sync::RwLock;

use opentelemetry::{
    KeyValue, Value,
    propagation::{Extractor, TextMapPropagator as _},
    trace::{Status, TraceContextExt as _, TracerProvider as _},
};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use secrecy::ExposeSecret as _;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, filter::filter_fn, fmt, prelude::*};

use self::settings::TelemetrySettings;
use crate::domain::{Decision, Ticket, TicketContext, Usage};

/// The only `tracing` target whose spans are exported. Library spans (tonic, hyper, sqlx) and
/// internal spans stay out of Langfuse, where every exported span becomes an observation.
pub const OTEL_TARGET: &str = "escalator::otel";

/// Trace name shown in Langfuse for every ticket.
pub const TRACE_NAME: &str = "escalator.triage";

/// What every exported span repeats (set once at start).
#[derive(Debug, Clone)]
struct TraceDefaults {
    environment: String,
    release: String,
    redact_ticket_text: bool,
}

static DEFAULTS: RwLock<Option<TraceDefaults>> = RwLock::new(None);

fn defaults() -> TraceDefaults {
    DEFAULTS
        .read()
        .ok()
        .and_then(|d| d.clone())
        .unwrap_or_else(|| TraceDefaults {
            environment: "production".to_owned(),
            release: env!("CARGO_PKG_VERSION").to_owned(),
            redact_ticket_text: false,
        })
}

/// Keeps the tracer provider alive; [`TelemetryGuard::shutdown`] flushes buffered spans.
#[must_use = "dropping the guard without shutdown() may lose the last spans"]
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Exports buffered spans and stops the exporter. Blocks: call it outside the async runtime
    /// or in `spawn_blocking`.
    pub fn shutdown(self) {
        if let Some(p) = self.provider {
            if let Err(e) = p.shutdown() {
                eprintln!("escalator: flushing traces failed: {e}");
            }
        }
    }

    /// Exports buffered spans now (tests).
    pub fn flush(&self) {
        if let Some(p) = &self.provider {
            let _ = p.force_flush();
        }
    }
}

/// Builds the subscriber for `settings` without installing it, so tests can scope it with
/// `tracing::dispatcher::set_default`. Must be called outside an async context (the exporter's
/// blocking HTTP client owns a runtime).
///
/// # Errors
/// When the exporter cannot be built.
pub fn build(settings: &TelemetrySettings) -> anyhow::Result<(tracing::Dispatch, TelemetryGuard)> {
    if let Ok(mut d) = DEFAULTS.write() {
        *d = Some(TraceDefaults {
            environment: settings.environment.clone(),
            release: settings.release.clone(),
            redact_ticket_text: settings.redact_ticket_text,
        });
    }
    let filter =
        EnvFilter::try_new(&settings.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, never in files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = if settings.log_json {
        fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_filter(filter)
            .boxed()
    } else {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(ansi)
            .with_filter(filter)
            .boxed()
    };
    let (otel, provider) = match &settings.traces {
        None => (None, None),
        Some(t) => {
            let headers = t
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
                .collect();
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(t.endpoint.clone())
                .with_headers(headers)
                .build()?;
            let resource = Resource::builder()
                .with_service_name("escalator")
                .with_attributes([
                    KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
                    KeyValue::new("deployment.environment.name", settings.environment.clone()),
                    KeyValue::new("langfuse.release", settings.release.clone()),
                ])
                .build();
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource)
                .build();
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("escalator"))
                // Noise off: no code location, thread, target or busy/idle attributes.
                .with_location(false)
                .with_threads(false)
                .with_target(false)
                .with_tracked_inactivity(false)
                .with_filter(filter_fn(|meta| meta.target() == OTEL_TARGET));
            (Some(layer), Some(provider))
        }
    };
    let subscriber = tracing_subscriber::registry().with(logs).with(otel);
    Ok((
        tracing::Dispatch::new(subscriber),
        TelemetryGuard { provider },
    ))
}

/// Builds and installs the global subscriber.
///
/// # Errors
/// When the exporter cannot be built.
pub fn init(settings: &TelemetrySettings) -> anyhow::Result<TelemetryGuard> {
    let (dispatch, guard) = build(settings)?;
    // A second call (tests) keeps the first subscriber.
    let _ = tracing::dispatcher::set_global_default(dispatch);
    Ok(guard)
}

/// Replaces the default panic hook, which prints the panic message to stderr: a message such as
/// "byte index 12 is not a char boundary; it is inside 'ó' of `…`" quotes ticket text, which
/// must stay out of the logs at INFO and above. The location is logged at ERROR, the message
/// only at DEBUG. The worker and the gRPC edge recover from the panic itself.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(
            location,
            "a task panicked (message at DEBUG: it may quote ticket text)"
        );
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::debug!(location, message, "panic message");
    }));
}

/// Reads W3C trace context from request headers or gRPC metadata.
pub trait HeaderSource {
    /// The value of header `name` (lowercase), if present and text.
    fn header(&self, name: &str) -> Option<&str>;
}

impl HeaderSource for tonic::metadata::MetadataMap {
    fn header(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| v.to_str().ok())
    }
}

impl HeaderSource for axum::http::HeaderMap {
    fn header(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| v.to_str().ok())
    }
}

struct Extract<'a>(&'a dyn HeaderSource);

impl Extractor for Extract<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.header(key)
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// A W3C `traceparent` value, read as a header source (a delivery carries its webhook's).
#[derive(Debug, Clone, Copy)]
pub struct Traceparent<'a>(pub Option<&'a str>);

impl HeaderSource for Traceparent<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        (name == "traceparent").then_some(self.0).flatten()
    }
}

/// The `traceparent` of `span`, to continue its trace later (e.g. when a stored webhook
/// delivery is decided by the worker).
pub fn traceparent_of(span: &Span) -> Option<String> {
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent")
}

/// The root span of one ticket's trace, continuing the caller's W3C `traceparent` if it sent
/// one. `name` becomes the span name (e.g. `Classify`, `webhook plain`).
pub fn root_span(name: &str, headers: &dyn HeaderSource) -> Span {
    let span =
        tracing::info_span!(target: OTEL_TARGET, "ticket", otel.name = name, otel.kind = "server");
    let parent = TraceContextPropagator::new().extract(&Extract(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    span
}

/// The trace id of `span` (32 lowercase hex) when traces are on, else the caller's
/// `traceparent` trace id, so a routing-log row can always be joined to its trace.
pub fn trace_id(span: &Span, headers: &dyn HeaderSource) -> Option<String> {
    let sc = span.context().span().span_context().clone();
    if sc.is_valid() {
        return Some(sc.trace_id().to_string());
    }
    let parent = TraceContextPropagator::new().extract(&Extract(headers));
    let sc = parent.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// The span id of `span` (16 hex) when traces are on.
pub fn span_id(span: &Span) -> Option<String> {
    let sc = span.context().span().span_context().clone();
    sc.is_valid().then(|| sc.span_id().to_string())
}

fn string_array(values: &[&str]) -> Value {
    Value::Array(opentelemetry::Array::String(
        values.iter().map(|v| (*v).to_owned().into()).collect(),
    ))
}

/// Attributes Langfuse reads at trace level; set on every exported span of the ticket.
fn set_trace_attributes(span: &Span, ticket: &Ticket) {
    let d = defaults();
    let source = ticket.key().source.as_str();
    span.set_attribute("langfuse.trace.name", TRACE_NAME);
    span.set_attribute("langfuse.session.id", ticket.key().ticket_id.clone());
    span.set_attribute("langfuse.trace.tags", string_array(&["escalator", source]));
    span.set_attribute("langfuse.release", d.release);
    span.set_attribute("langfuse.version", env!("CARGO_PKG_VERSION"));
    span.set_attribute("langfuse.environment", d.environment);
    span.set_attribute("langfuse.trace.metadata.source", source);
    span.set_attribute("langfuse.trace.metadata.tier", ticket.tier().as_str());
    span.set_attribute(
        "langfuse.trace.metadata.ticket_version",
        ticket.key().version.clone(),
    );
    // The authenticated gRPC caller, so traces (and their cost) split by caller as the routing
    // log does.
    if let Some(caller) = ticket.caller() {
        span.set_attribute("langfuse.trace.metadata.caller", caller.to_owned());
    }
}

/// The inputs of the tier weighting: tier (after the ARR threshold), where it came from, ARR
/// and repeat count. What the rules then decided is set by [`record_decision`].
fn set_weighting(span: &Span, ctx: &TicketContext) {
    let t = &ctx.ticket;
    span.set_attribute("escalator.tier", t.tier().as_str());
    span.set_attribute("escalator.tier_source", t.tier_source().as_str());
    if t.enrichment_failed() {
        span.set_attribute("escalator.enrichment_failed", true);
    }
    if let Some(arr) = t.arr_usd() {
        span.set_attribute("escalator.arr_usd", arr);
    }
    span.set_attribute(
        "escalator.repeat_count_24h",
        i64::from(ctx.repeat_count_24h),
    );
}

/// What the weighting rules did to a decision: the rule that raised its severity (`none`),
/// whether one did, and the classifier's own severity.
fn set_weighting_outcome(span: &Span, d: &Decision) {
    span.set_attribute(
        "escalator.weighting.rule",
        d.weighting_rule
            .clone()
            .unwrap_or_else(|| "none".to_owned()),
    );
    span.set_attribute("escalator.weighting.changed", d.weighting_rule.is_some());
    span.set_attribute(
        "escalator.weighting.model_severity",
        d.model_severity.as_str(),
    );
}

/// Records a webhook delivery's outcome on its span (`accepted`, `duplicate`, `ignored`, or the
/// rejection reason).
pub fn record_delivery(span: &Span, source: crate::domain::Source, outcome: &str) {
    let d = defaults();
    span.set_attribute("langfuse.trace.name", TRACE_NAME);
    span.set_attribute(
        "langfuse.trace.tags",
        string_array(&["escalator", source.as_str()]),
    );
    span.set_attribute("langfuse.release", d.release);
    span.set_attribute("langfuse.version", env!("CARGO_PKG_VERSION"));
    span.set_attribute("langfuse.environment", d.environment);
    span.set_attribute("langfuse.trace.metadata.source", source.as_str());
    span.set_attribute("escalator.delivery", outcome.to_owned());
}

/// Records the accepted ticket on the root span: trace-level attributes and the input (ticket
/// text only when redaction is off).
pub fn record_ticket(span: &Span, ticket: &Ticket) {
    set_trace_attributes(span, ticket);
    let key = ticket.key();
    let mut input = serde_json::json!({
        "source": key.source.as_str(),
        "ticket_id": key.ticket_id,
        "version": key.version,
        "tier": ticket.tier().as_str(),
        "arr_usd": ticket.arr_usd(),
    });
    if !defaults().redact_ticket_text {
        input["subject"] = ticket.subject().into();
        input["first_message"] = ticket.body().into();
    }
    span.set_attribute("langfuse.observation.input", input.to_string());
}

/// Records enrichment (the tier weighting) on the current root span.
pub fn record_context(span: &Span, ctx: &TicketContext) {
    set_weighting(span, ctx);
}

/// The labels of a decision, as set on spans.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    /// Severity.
    pub severity: crate::domain::Severity,
    /// Route.
    pub route: crate::domain::Route,
    /// Confidence in 0..1.
    pub confidence: f32,
    /// Whether the offline classifier stood in.
    pub fallback: bool,
    /// The prompt version.
    pub prompt_version: &'a str,
    /// The model, or `offline`.
    pub model: &'a str,
}

impl<'a> From<&'a Decision> for Labels<'a> {
    fn from(d: &'a Decision) -> Self {
        Self {
            severity: d.severity,
            route: d.route,
            confidence: d.confidence,
            fallback: d.fallback,
            prompt_version: &d.prompt_version,
            model: &d.model,
        }
    }
}

/// Sets the labels on a span: metadata (filterable in Langfuse) and plain attributes.
pub fn record_labels(span: &Span, l: Labels<'_>) {
    span.set_attribute("langfuse.trace.metadata.route", l.route.as_str());
    span.set_attribute("langfuse.trace.metadata.severity", l.severity.as_str());
    span.set_attribute(
        "langfuse.trace.metadata.prompt_version",
        l.prompt_version.to_owned(),
    );
    span.set_attribute("langfuse.trace.metadata.model", l.model.to_owned());
    span.set_attribute(
        "langfuse.trace.metadata.fallback",
        if l.fallback { "true" } else { "false" },
    );
    span.set_attribute("escalator.severity", l.severity.as_str());
    span.set_attribute("escalator.route", l.route.as_str());
    span.set_attribute("escalator.confidence", f64::from(l.confidence));
    span.set_attribute("escalator.fallback", l.fallback);
}

/// Records the decision on the root span: labels, output, fallback as a warning.
pub fn record_decision(span: &Span, d: &Decision, duplicate: bool) {
    record_labels(span, d.into());
    span.set_attribute("langfuse.trace.metadata.decision_id", d.id.clone());
    span.set_attribute("escalator.decision_id", d.id.clone());
    span.set_attribute("escalator.duplicate", duplicate);
    set_weighting_outcome(span, d);
    let output = serde_json::json!({
        "severity": d.severity.as_str(),
        "route": d.route.as_str(),
        "confidence": d.confidence,
        "reasoning": d.reasoning,
        "fallback": d.fallback,
        "model_severity": d.model_severity.as_str(),
        "weighting_rule": d.weighting_rule,
        "topic": d.topic,
        "sentiment": d.sentiment.map(crate::domain::Sentiment::as_str),
        "shadow": d.shadow,
    });
    span.set_attribute("langfuse.observation.output", output.to_string());
    record_topic_labels(span, d);
    if let Some(reason) = &d.fallback_reason {
        span.set_attribute("escalator.fallback_reason", reason.clone());
        span.set_attribute("langfuse.observation.level", "WARNING");
        span.set_attribute(
            "langfuse.observation.status_message",
            format!("fallback: {reason}"),
        );
    }
}

/// The labels besides severity on the root span: `escalator.label.topic`,
/// `escalator.label.sentiment` (also trace metadata, so Langfuse filters on them) and
/// `escalator.label.shadow` (the shadow categories asked, as JSON `{"name": applies}`).
fn record_topic_labels(span: &Span, d: &Decision) {
    if let Some(topic) = &d.topic {
        span.set_attribute("escalator.label.topic", topic.clone());
        span.set_attribute("langfuse.trace.metadata.topic", topic.clone());
    }
    if let Some(s) = d.sentiment {
        span.set_attribute("escalator.label.sentiment", s.as_str());
        span.set_attribute("langfuse.trace.metadata.sentiment", s.as_str());
    }
    if let Some(shadow) = crate::taxonomy::shadow_to_json(&d.shadow) {
        span.set_attribute("escalator.label.shadow", shadow);
    }
}

/// Marks a span failed with `message` (never ticket text or secrets).
pub fn record_error(span: &Span, message: &str) {
    span.set_attribute("langfuse.observation.level", "ERROR");
    span.set_attribute("langfuse.observation.status_message", message.to_owned());
    span.set_status(Status::error(message.to_owned()));
}

/// What a model call produced, for its generation span.
#[derive(Debug, Clone)]
pub struct GenerationOutcome<'a> {
    /// The model the API says answered.
    pub response_model: &'a str,
    /// The message id (`msg_…`).
    pub response_id: Option<&'a str>,
    /// The stop reason.
    pub finish_reason: Option<&'a str>,
    /// Tokens and cost.
    pub usage: &'a Usage,
    /// The model's raw answer text (the JSON decision).
    pub output: &'a str,
}

/// A generation span for one model call, child of the current span, with the trace-level
/// attributes, the prompt link and the input (the rendered user turn, unless redacted).
pub fn generation_span(
    model: &str,
    ctx: &TicketContext,
    prompt_version: &str,
    user_turn: &str,
    max_tokens: u32,
) -> Span {
    let span = tracing::info_span!(
        target: OTEL_TARGET,
        "generation",
        otel.name = format!("chat {model}"),
        otel.kind = "client"
    );
    set_trace_attributes(&span, &ctx.ticket);
    set_weighting(&span, ctx);
    span.set_attribute("langfuse.observation.type", "generation");
    span.set_attribute("gen_ai.operation.name", "chat");
    span.set_attribute("gen_ai.provider.name", "anthropic");
    span.set_attribute("gen_ai.request.model", model.to_owned());
    span.set_attribute("gen_ai.output.type", "json");
    span.set_attribute("gen_ai.request.max_tokens", i64::from(max_tokens));
    span.set_attribute(
        "langfuse.trace.metadata.prompt_version",
        prompt_version.to_owned(),
    );
    let (name, hash) = prompt_version
        .split_once('@')
        .unwrap_or((prompt_version, ""));
    span.set_attribute("langfuse.observation.prompt.name", name.to_owned());
    // Langfuse wants an integer version; ours is a content hash, so its first 12 hex digits
    // (48 bits) are read as a number. The full string is in trace metadata.
    if let Ok(v) = i64::from_str_radix(hash, 16) {
        span.set_attribute("langfuse.observation.prompt.version", v);
    }
    let input = if defaults().redact_ticket_text {
        serde_json::json!({"redacted": true, "tier": ctx.ticket.tier().as_str()}).to_string()
    } else {
        serde_json::json!([{"role": "user", "content": user_turn}]).to_string()
    };
    span.set_attribute("langfuse.observation.input", input);
    span
}

/// Records a successful model call on its generation span.
pub fn record_generation(span: &Span, o: &GenerationOutcome<'_>) {
    let u = o.usage;
    span.set_attribute("gen_ai.response.model", o.response_model.to_owned());
    if let Some(id) = o.response_id {
        span.set_attribute("gen_ai.response.id", id.to_owned());
    }
    if let Some(r) = o.finish_reason {
        span.set_attribute("gen_ai.response.finish_reasons", string_array(&[r]));
    }
    // OTel's input_tokens includes cached tokens; Langfuse gets the exact split separately.
    span.set_attribute(
        "gen_ai.usage.input_tokens",
        u.input_tokens + u.cache_read_tokens + u.cache_write_tokens,
    );
    span.set_attribute("gen_ai.usage.output_tokens", u.output_tokens);
    span.set_attribute("gen_ai.usage.cache_read.input_tokens", u.cache_read_tokens);
    span.set_attribute(
        "gen_ai.usage.cache_creation.input_tokens",
        u.cache_write_tokens,
    );
    span.set_attribute(
        "langfuse.observation.usage_details",
        serde_json::json!({
            "input": u.input_tokens,
            "output": u.output_tokens,
            "cache_read_input_tokens": u.cache_read_tokens,
            "cache_creation_input_tokens": u.cache_write_tokens,
        })
        .to_string(),
    );
    span.set_attribute(
        "langfuse.observation.cost_details",
        serde_json::json!({"total": u.cost_usd}).to_string(),
    );
    if let Some(id) = &u.request_id {
        span.set_attribute("escalator.request_id", id.clone());
    }
    span.set_attribute("langfuse.observation.output", o.output.to_owned());
}
