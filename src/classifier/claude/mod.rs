//! The Claude backend: one `POST /v1/messages` per ticket with a cached system block and a JSON
//! schema for the answer, validated again here.
//!
//! A small reqwest + serde client instead of a third-party SDK: none of the Rust crates sends
//! `output_config.format` with the 1h cache TTL and the current version headers, and their retry
//! behaviour differs from the one policy we want (see `retry`).
//!
//! - `wire`: request and response bodies (structs, so the cached prefix is byte-identical).
//! - `retry`: which failures are retried, backoff, `retry-after`, the shared retry budget.
//! - `price`: price table, cost per call, minimum cacheable prompt length.
//! - `models`: the start-up check of the configured model (`GET /v1/models/{model}`).
//! - `limits`: concurrency adapted to the `anthropic-ratelimit-*` headroom the API reports.
//! - `breaker`: the spend-cap breaker (no calls while the organisation's spend limit is hit).
//! - `batch`: the Message Batches API, for evaluations nobody waits on (half price).
//!
//! Over 450 lines on purpose: what is left here is the one request path (slot, attempt, retry
//! loop, usage and cost, reading the answer), which reads best top to bottom; each part with a
//! concern of its own is one of the submodules above.

pub mod batch;
pub mod breaker;
pub mod limits;
pub mod models;
pub mod price;
pub mod retry;
pub mod settings;

pub use price::CacheTtl;
pub use settings::{ApiVersion, Effort};
mod wire;

pub use settings::ClaudeSettings;
/// The model-output validator, public for the property tests and fuzz targets.
pub use wire::parse_answer;

use std::{
    collections::HashSet,
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use secrecy::SecretString;
use tracing::{Instrument as _, Span};

use self::{
    breaker::SpendCapBreaker,
    limits::Limiter,
    price::{Price, PriceTable, TokenCounts},
    retry::RetryBudget,
    wire::{
        CountTokensResponse, ErrorEnvelope, MessagesRequest, MessagesResponse, WireUsage,
        api_headers, status_kind, transport_error,
    },
};
use super::{Classifier, ClassifierError};
use crate::{
    domain::{Classification, TicketContext, Usage},
    prompt::Prompt,
    telemetry::{self, GenerationOutcome},
};

/// Why the Claude backend cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// No `ANTHROPIC_API_KEY`.
    #[error("ANTHROPIC_API_KEY is not set")]
    MissingKey,
    /// The HTTP client could not be built (TLS roots).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// The user turn sent to warm the cache and to count the system block: no ticket data.
const PROBE_USER_TURN: &str = "Warm-up request: no ticket.";

/// How the size of the system block was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `POST /v1/messages/count_tokens` (system block plus a one-line user turn and the schema).
    CountTokens,
    /// Characters / 4.
    Estimate,
}

/// The start-up check of the cached prefix against the model's minimum cacheable length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheCheck {
    /// Tokens in the cached prefix.
    pub tokens: u32,
    /// How they were counted.
    pub source: TokenSource,
    /// The model's minimum cacheable length.
    pub minimum: u32,
}

impl CacheCheck {
    /// False when the API will silently not cache the system block.
    pub fn cacheable(&self) -> bool {
        self.tokens >= self.minimum
    }
}

/// The Claude classifier. One per process: the retry budget, the adaptive concurrency limit,
/// the spend-cap breaker and the connection pool are shared by every call.
#[derive(Debug)]
pub struct ClaudeClassifier {
    http: reqwest::Client,
    settings: ClaudeSettings,
    api_key: SecretString,
    prompt: Prompt,
    messages_url: String,
    count_tokens_url: String,
    effort: Option<Effort>,
    price: Option<Price>,
    budget: RetryBudget,
    /// In-flight calls, adapted to the rate-limit headroom the API reports.
    limiter: Limiter,
    /// Stops Messages calls while the spend limit is reached.
    breaker: SpendCapBreaker,
    /// Error kinds already logged at ERROR, so a broken key logs once, not per ticket.
    logged: Mutex<HashSet<String>>,
    /// The serialised head every ticket's request shares ([`ClaudeClassifier::body`]).
    head: std::sync::OnceLock<bytes::Bytes>,
}

/// A Messages request body: the head every ticket's call shares and the call's own tail, sent
/// as two chunks of one body with its exact length (`content-length`, not chunked).
#[derive(Debug, Clone)]
pub(super) struct RequestBody {
    head: bytes::Bytes,
    tail: bytes::Bytes,
}

impl RequestBody {
    /// The whole body in one buffer (a batch request embeds it).
    pub(super) fn to_vec(&self) -> Vec<u8> {
        [&self.head[..], &self.tail[..]].concat()
    }

    /// The body for one attempt: both buffers shared, nothing copied.
    fn send(&self) -> reqwest::Body {
        reqwest::Body::wrap(TwoChunks {
            chunks: [Some(self.head.clone()), Some(self.tail.clone())],
        })
    }
}

/// An HTTP body of two buffers with its exact length up front. Written here because reqwest's
/// own bodies are one buffer or a stream of unknown length (chunked encoding), and
/// http-body-util has no chain of two.
struct TwoChunks {
    chunks: [Option<bytes::Bytes>; 2],
}

impl http_body::Body for TwoChunks {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let next = self.chunks.iter_mut().find_map(Option::take);
        std::task::Poll::Ready(next.map(|b| Ok(http_body::Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.iter().all(Option::is_none)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let left = self
            .chunks
            .iter()
            .flatten()
            .map(bytes::Bytes::len)
            .sum::<usize>();
        http_body::SizeHint::with_exact(u64::try_from(left).unwrap_or(u64::MAX))
    }
}

/// A 2xx answer.
struct Reply {
    request_id: Option<String>,
    body: Vec<u8>,
}

/// What one HTTP attempt came to.
enum Attempt {
    /// A 2xx.
    Done(Reply),
    /// A failure worth another attempt, after the wait the server asked for (if any).
    Retry(ClassifierError, Option<Duration>),
    /// A failure that retrying cannot fix.
    Fatal(ClassifierError),
}

impl ClaudeClassifier {
    /// A classifier for `settings`, classifying with `prompt`. Logs (WARN) an `effort` the model
    /// does not take, and a model with no price.
    ///
    /// # Errors
    /// [`SetupError`] when no API key is set or the HTTP client cannot be built.
    pub fn new(settings: &ClaudeSettings, prompt: Prompt) -> Result<Self, SetupError> {
        Self::with_model(settings, prompt, None)
    }

    /// Like [`ClaudeClassifier::new`], with what `GET /v1/models/{model}` said about the model
    /// ([`models::check_model`]): its effort capability decides whether `effort` is sent, in
    /// place of the built-in table.
    ///
    /// # Errors
    /// [`SetupError`] when no API key is set or the HTTP client cannot be built.
    pub fn with_model(
        settings: &ClaudeSettings,
        prompt: Prompt,
        model: Option<&models::ModelInfo>,
    ) -> Result<Self, SetupError> {
        let api_key = settings.api_key.clone().ok_or(SetupError::MissingKey)?;
        let http = reqwest::Client::builder()
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            // The docs warn that idle connections can be dropped.
            .tcp_keepalive(Duration::from_secs(30))
            .build()
            .map_err(SetupError::Client)?;
        let takes_effort = model
            .and_then(models::ModelInfo::takes_effort)
            .unwrap_or_else(|| price::takes_effort(&settings.model));
        let effort = match settings.effort {
            Some(e) if !takes_effort => {
                tracing::warn!(
                    model = %settings.model,
                    effort = ?e,
                    "the model takes no effort level; claude.effort is not sent"
                );
                None
            }
            e => e,
        };
        let price = PriceTable::new(settings.prices.clone()).get(&settings.model);
        if price.is_none() {
            tracing::warn!(
                model = %settings.model,
                "no price for this model; cost is recorded as 0 (add [claude.prices.\"<model>\"])"
            );
        }
        Ok(Self {
            http,
            messages_url: format!("{}/v1/messages", settings.base_url),
            count_tokens_url: format!("{}/v1/messages/count_tokens", settings.base_url),
            api_key,
            effort,
            price,
            budget: RetryBudget::new(settings.retry_budget_ratio, settings.retry_budget_reserve),
            limiter: Limiter::new(settings.max_concurrency),
            breaker: SpendCapBreaker::new(settings.spend_cap_probe_interval),
            logged: Mutex::new(HashSet::new()),
            // The key is kept once, in `api_key`.
            settings: ClaudeSettings {
                api_key: None,
                ..settings.clone()
            },
            prompt,
            head: std::sync::OnceLock::new(),
        })
    }

    /// The request body for one user turn. Its head (model, `max_tokens`, the system prompt)
    /// is serialised once per client and shared by every ticket's call, its tail (the ticket,
    /// the answer schema) is the call's own; every attempt sends both without copying them.
    /// With 256 calls in flight a whole body per call was 256 copies of the ~55 KiB prompt
    /// (16 MiB of the 100 MiB budget, issue 25); now it is one.
    fn body(&self, user: &str, max_tokens: Option<u32>) -> RequestBody {
        let req = MessagesRequest::new(
            &self.settings.model,
            max_tokens,
            self.prompt.system(),
            self.settings.cache_ttl,
            self.effort,
            user,
            self.prompt.schema(),
        );
        let (head, tail) = req.split();
        // Only the ticket calls' head is kept: probes (`max_tokens` 0 or none) are rare.
        let head = if max_tokens == Some(self.settings.max_tokens) {
            self.head.get_or_init(|| head.into()).clone()
        } else {
            head.into()
        };
        RequestBody {
            head,
            tail: tail.into(),
        }
    }

    /// The headers of every call.
    fn headers(&self) -> HeaderMap {
        api_headers(self.settings.api_version, &self.api_key)
    }

    /// One POST with the retry policy, within `deadline`.
    async fn post(
        &self,
        url: &str,
        body: &RequestBody,
        deadline: Instant,
    ) -> Result<Reply, ClassifierError> {
        let mut retries = 0;
        loop {
            let (err, wait) = match self.attempt(url, body, deadline).await {
                Attempt::Done(reply) => return Ok(reply),
                Attempt::Retry(err, wait) => (err, wait),
                Attempt::Fatal(err) => return Err(err),
            };
            if retries >= self.settings.max_retries {
                return Err(err);
            }
            let wait = wait.unwrap_or_else(|| {
                retry::backoff(
                    retries,
                    self.settings.backoff_base,
                    self.settings.backoff_max,
                )
            });
            if Instant::now() + wait >= deadline {
                // Sleeping would pass the deadline: give up now and let the fallback decide.
                return Err(err);
            }
            if !self.budget.withdraw() {
                return Err(ClassifierError::Overloaded(format!(
                    "retry budget spent; last error {}",
                    err.reason()
                )));
            }
            retries += 1;
            super::count_retry();
            tracing::warn!(
                error = %err.reason(),
                retry = retries,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "Claude call failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One HTTP attempt, classified by the retry rules.
    async fn attempt(&self, url: &str, body: &RequestBody, deadline: Instant) -> Attempt {
        let timeout = self
            .settings
            .timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let sent = self
            .http
            .post(url)
            .headers(self.headers())
            .timeout(timeout)
            .body(body.send())
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(transport_error(&e), None),
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        // count_tokens has rate limits of its own; only Messages answers describe ours.
        if url == self.messages_url {
            self.limiter.observe(&headers);
        }
        let request_id = headers
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Attempt::Retry(transport_error(&e), None),
        };
        if status.is_success() {
            return Attempt::Done(Reply {
                request_id,
                body: bytes.to_vec(),
            });
        }
        let envelope: ErrorEnvelope = serde_json::from_slice(&bytes).unwrap_or_default();
        let code = envelope
            .error
            .as_ref()
            .and_then(|e| e.details.as_ref())
            .and_then(|d| d.error_code.as_deref());
        let err = ClassifierError::Upstream {
            status: status.as_u16(),
            kind: envelope
                .kind()
                .map_or_else(|| status_kind(status), str::to_owned),
            request_id: request_id.or_else(|| envelope.request_id.clone()),
        };
        if retry::should_retry(status.as_u16(), retry::should_retry_header(&headers), code) {
            let wait = retry::retry_after(&headers, self.settings.retry_after_max);
            Attempt::Retry(err, wait)
        } else {
            let message = envelope.error.as_ref().and_then(|e| e.message.as_deref());
            let spend_cap = code.is_some_and(|c| retry::SPEND_LIMIT_CODES.contains(&c));
            // A spend cap on a Messages call opens the breaker, which logs it (once per
            // opening, not once per process).
            if !(spend_cap && url == self.messages_url) {
                self.log_refused(url, &err, message);
            }
            Attempt::Fatal(err)
        }
    }

    /// Logs a call the API refused for good at ERROR, once per kind (a revoked key would
    /// otherwise log once per ticket); repeats go to DEBUG.
    fn log_refused(&self, url: &str, err: &ClassifierError, message: Option<&str>) {
        let ClassifierError::Upstream {
            status,
            kind,
            request_id,
        } = err
        else {
            return;
        };
        let first = self
            .logged
            .lock()
            .map(|mut seen| seen.insert(format!("{url} {status} {kind}")))
            .unwrap_or(true);
        let request_id = request_id.as_deref().unwrap_or("");
        let api_version = self.settings.api_version.as_str();
        let message = message.unwrap_or("");
        if first {
            tracing::error!(
                url,
                status,
                kind = %kind,
                request_id,
                api_version,
                message,
                "Claude API refused the call and it is not retried; every such ticket falls back \
                 to the offline classifier (logged once per kind)"
            );
        } else {
            tracing::debug!(status, kind = %kind, request_id, "Claude API refused the call again");
        }
    }

    /// Token counts and cost of a reply.
    fn usage(&self, request_id: Option<String>, u: Option<&WireUsage>) -> Usage {
        let Some(u) = u else {
            return Usage {
                request_id,
                ..Usage::default()
            };
        };
        let (w5m, w1h) = u.cache_creation.as_ref().map_or((0, 0), |c| {
            (
                c.ephemeral_5m_input_tokens.unwrap_or(0),
                c.ephemeral_1h_input_tokens.unwrap_or(0),
            )
        });
        let total_write = u.cache_creation_input_tokens.unwrap_or(w5m + w1h);
        let base = TokenCounts {
            input: u.input_tokens,
            output: u.output_tokens,
            cache_read: u.cache_read_input_tokens.unwrap_or(0),
            batch: u.service_tier.as_deref() == Some("batch"),
            ..TokenCounts::default()
        };
        let tokens = if u.cache_creation.is_some() && w5m + w1h == total_write {
            TokenCounts {
                cache_write_5m: w5m,
                cache_write_1h: w1h,
                ..base
            }
        } else {
            // No split (or one that does not add up): count the writes at the TTL we asked for.
            base.with_unsplit_writes(total_write, self.settings.cache_ttl)
        };
        if u.speed.as_deref() == Some("fast") {
            tracing::warn!(
                request_id = request_id.as_deref().unwrap_or(""),
                "call ran in fast mode, which the price table does not cover; cost is understated"
            );
        }
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        Usage {
            cost_usd: self.price.map_or(0.0, |p| p.cost_usd(&tokens)),
            request_id,
            input_tokens: count(tokens.input),
            output_tokens: count(tokens.output),
            cache_read_tokens: count(tokens.cache_read),
            cache_write_tokens: count(tokens.cache_write()),
            ..Usage::default()
        }
    }

    /// Reads a 2xx `Message` into a classification, recording what the model produced (usage,
    /// cost, answer text) on the generation `span` even when the answer turns out invalid: the
    /// call was billed either way.
    fn interpret(&self, reply: Reply, span: &Span) -> Result<Classification, ClassifierError> {
        let msg: MessagesResponse =
            serde_json::from_slice(&reply.body).map_err(|e| ClassifierError::InvalidAnswer {
                reason: format!("response body: {e}"),
                usage: None,
                observation_id: telemetry::span_id(span),
            })?;
        let usage = self.usage(reply.request_id, msg.usage.as_ref());
        let text = msg
            .content
            .iter()
            .find(|b| b.kind == "text")
            .and_then(|b| b.text.as_deref());
        telemetry::record_generation(
            span,
            &GenerationOutcome {
                response_model: msg.model.as_deref().unwrap_or(&self.settings.model),
                response_id: msg.id.as_deref(),
                finish_reason: msg.stop_reason.as_deref(),
                usage: &usage,
                output: text.unwrap_or(""),
            },
        );
        let invalid = |why: String| {
            // Billed all the same: the fallback decision records this usage.
            tracing::warn!(
                request_id = usage.request_id.as_deref().unwrap_or(""),
                input_tokens = usage.input_tokens,
                output_tokens = usage.output_tokens,
                cost_usd = usage.cost_usd,
                reason = %why,
                "Claude answer is invalid"
            );
            ClassifierError::InvalidAnswer {
                reason: why,
                usage: Some(Box::new(usage.clone())),
                observation_id: telemetry::span_id(span),
            }
        };
        match msg.stop_reason.as_deref() {
            Some("refusal") => {
                let category = msg
                    .stop_details
                    .as_ref()
                    .and_then(|d| d.category.as_deref())
                    .unwrap_or("unspecified");
                return Err(invalid(format!("refusal ({category})")));
            }
            Some(
                reason @ ("max_tokens"
                | "model_context_window_exceeded"
                | "pause_turn"
                | "tool_use"
                | "stop_sequence"),
            ) => {
                return Err(invalid(format!("stop_reason {reason}")));
            }
            // `end_turn`, or a value newer than this build: the validation below decides.
            _ => {}
        }
        let Some(text) = text else {
            return Err(invalid("no text block".to_owned()));
        };
        let verdict = wire::parse_answer(text, self.prompt.taxonomy()).map_err(invalid)?;
        tracing::debug!(
            request_id = usage.request_id.as_deref().unwrap_or(""),
            severity = %verdict.severity,
            cache_read_tokens = usage.cache_read_tokens,
            cost_usd = usage.cost_usd,
            "Claude decided"
        );
        Ok(Classification {
            verdict,
            model: self.settings.model.clone(),
            prompt_version: self.prompt.version().to_owned(),
            fallback_reason: None,
            usage,
            observation_id: telemetry::span_id(span),
        })
    }

    /// Waits for a place in flight, then posts; all within `deadline`. `admit` is the
    /// spend-cap breaker's leave for a Messages call (`None` for `count_tokens`, which is free),
    /// told what the call came to.
    async fn call(
        &self,
        url: &str,
        body: &RequestBody,
        deadline: Instant,
        admit: Option<breaker::Admit>,
    ) -> Result<Reply, ClassifierError> {
        let run = async {
            let _slot = self.limiter.acquire(deadline).await?;
            self.post(url, body, deadline).await
        };
        let result = tokio::time::timeout_at(deadline.into(), run)
            .await
            .unwrap_or(Err(ClassifierError::Timeout));
        if let Some(admit) = admit {
            self.breaker.record(admit, &result);
        }
        result
    }

    /// Writes the system block to the prompt cache with one `max_tokens: 0` call (documented to
    /// fill the cache and generate nothing), so calls fanned out afterwards read it instead of
    /// each writing it.
    ///
    /// # Errors
    /// [`ClassifierError`] when the call fails; the calls after it still work, uncached.
    pub async fn warm(&self) -> Result<Usage, ClassifierError> {
        let admit = self.breaker.admit()?;
        let deadline = Instant::now() + self.settings.deadline;
        let reply = self
            .call(
                &self.messages_url,
                &self.body(PROBE_USER_TURN, Some(0)),
                deadline,
                Some(admit),
            )
            .await?;
        let msg: Option<MessagesResponse> = serde_json::from_slice(&reply.body).ok();
        Ok(self.usage(
            reply.request_id,
            msg.as_ref().and_then(|m| m.usage.as_ref()),
        ))
    }

    /// Counts the tokens of the cached prefix with `count_tokens` (the estimate chars/4 when
    /// that fails) and warns when it is below the model's minimum cacheable length, where the
    /// API caches nothing and says nothing.
    pub async fn check_cache(&self) -> CacheCheck {
        let minimum = price::min_cacheable_tokens(&self.settings.model);
        let deadline = Instant::now() + self.settings.timeout;
        let body = self.body(PROBE_USER_TURN, None);
        let counted = match self
            .call(&self.count_tokens_url, &body, deadline, None)
            .await
        {
            Ok(reply) => serde_json::from_slice::<CountTokensResponse>(&reply.body)
                .map(|c| u32::try_from(c.input_tokens).unwrap_or(u32::MAX))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.reason()),
        };
        let check = match counted {
            Ok(tokens) => CacheCheck {
                tokens,
                source: TokenSource::CountTokens,
                minimum,
            },
            Err(why) => {
                tracing::warn!(error = %why, "count_tokens failed; estimating the system block at chars/4");
                CacheCheck {
                    tokens: price::estimate_tokens(self.prompt.system()),
                    source: TokenSource::Estimate,
                    minimum,
                }
            }
        };
        log_cache_check(&self.settings.model, &check);
        check
    }

    /// The settings in use (`api_key` is `None` here: the key is held once, apart).
    pub fn settings(&self) -> &ClaudeSettings {
        &self.settings
    }
}

/// Logs a [`CacheCheck`]: INFO when the block is cacheable, WARN when it is not.
pub fn log_cache_check(model: &str, check: &CacheCheck) {
    if check.cacheable() {
        tracing::info!(
            model,
            tokens = check.tokens,
            minimum = check.minimum,
            source = ?check.source,
            "system block is above the model's minimum cacheable length"
        );
    } else {
        tracing::warn!(
            model,
            tokens = check.tokens,
            minimum = check.minimum,
            source = ?check.source,
            "system block is below the model's minimum cacheable length: nothing will be cached \
             and every call pays full input price"
        );
    }
}

#[async_trait]
impl Classifier for ClaudeClassifier {
    fn model(&self) -> &str {
        &self.settings.model
    }

    async fn classify(&self, ctx: &TicketContext) -> Result<Classification, ClassifierError> {
        // While the spend cap holds, no call is made, so no generation span either.
        let admit = self.breaker.admit()?;
        let user = self.prompt.user_turn(ctx);
        // The generation span (Langfuse observation): model, prompt link, input (unless
        // redacted), then usage, cost and the answer.
        let span = telemetry::generation_span(
            &self.settings.model,
            ctx,
            self.prompt.version(),
            &user,
            self.settings.max_tokens,
        );
        let run = async {
            let deadline = Instant::now() + self.settings.deadline;
            self.budget.deposit();
            let body = self.body(&user, Some(self.settings.max_tokens));
            let reply = self
                .call(&self.messages_url, &body, deadline, Some(admit))
                .await?;
            self.interpret(reply, &span)
        };
        let result = run.instrument(span.clone()).await;
        if let Err(e) = &result {
            telemetry::record_error(&span, &e.reason());
        }
        result
    }
}
