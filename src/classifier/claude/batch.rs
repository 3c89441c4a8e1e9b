//! The Message Batches API (`shared/reference/anthropic.md` §9): many tickets in one request at
//! half the price, for the runs where nobody waits on an answer (`escalator eval --batch`, the
//! labels pull request's measured effect). Each request's `params` is the exact Messages body
//! the service sends, so a batch measures the same prompt, schema and cache prefix.
//!
//! Create once (never retried: a second create would be a second bill), poll until
//! `processing_status` is `ended` (polling is idempotent, so a failed poll is tried again at the
//! next interval), then read the JSONL results, which come back in any order and are matched
//! on `custom_id`. A batch that does not end in time is cancelled.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use serde::Deserialize;
use serde_json::Value;

use super::{ClaudeClassifier, Reply};
use crate::{
    classifier::ClassifierError,
    domain::{Classification, TicketContext},
};

/// The batch object, as far as we read it.
#[derive(Debug, Deserialize)]
struct BatchObject {
    id: String,
    processing_status: String,
    results_url: Option<String>,
}

/// One line of the results file.
#[derive(Debug, Deserialize)]
struct ResultLine {
    custom_id: String,
    result: Value,
}

/// What a batch came to: the batch id and, per item, its classification or why it has none.
#[derive(Debug)]
pub struct BatchRun {
    /// `msgbatch_…`.
    pub id: String,
    /// One entry per item, in the order given.
    pub results: Vec<Result<Classification, ClassifierError>>,
}

impl BatchRun {
    /// USD of the answered requests (the batch price: half the list price).
    pub fn cost_usd(&self) -> f64 {
        self.results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|c| c.usage.cost_usd)
            .sum()
    }
}

/// The `custom_id` of item `i`: ids must match `^[a-zA-Z0-9_-]{1,64}$`, which ticket ids need
/// not, so items are numbered.
fn custom_id(i: usize) -> String {
    format!("item-{i}")
}

impl ClaudeClassifier {
    fn batches_url(&self) -> String {
        format!("{}/v1/messages/batches", self.settings.base_url)
    }

    async fn batch_call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, ClassifierError> {
        let mut req = self
            .http
            .request(method, url)
            .headers(self.headers())
            .timeout(self.settings.timeout.max(Duration::from_secs(30)));
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ClassifierError::Transport(crate::causes::chain(&e)))?;
        let status = resp.status();
        let request_id = resp
            .headers()
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClassifierError::Transport(crate::causes::chain(&e)))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let envelope: super::wire::ErrorEnvelope =
            serde_json::from_slice(&bytes).unwrap_or_default();
        Err(ClassifierError::Upstream {
            status: status.as_u16(),
            kind: envelope
                .kind()
                .map_or_else(|| super::wire::status_kind(status), str::to_owned),
            request_id: request_id.or(envelope.request_id),
        })
    }

    /// Classifies every ticket of `items` in one Message Batch, polling every `poll` for at
    /// most `max_wait` (then the batch is cancelled and the call fails). Items whose request
    /// errored, expired or was cancelled, or whose answer is invalid, get their error; the
    /// others their classification, priced at the batch rate.
    ///
    /// # Errors
    /// [`ClassifierError`] when the batch cannot be created, never ends in time, or its
    /// results cannot be read; nothing is classified then.
    pub async fn classify_batch(
        &self,
        items: &[TicketContext],
        poll: Duration,
        max_wait: Duration,
    ) -> Result<BatchRun, ClassifierError> {
        if items.is_empty() {
            return Ok(BatchRun {
                id: String::new(),
                results: Vec::new(),
            });
        }
        // The body is assembled from the exact bytes of each Messages request, so `params` is
        // byte for byte what the service would send (key order included).
        let mut body = b"{\"requests\":[".to_vec();
        for (i, ctx) in items.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(b"{\"custom_id\":");
            body.extend_from_slice(&serde_json::to_vec(&custom_id(i)).unwrap_or_default());
            body.extend_from_slice(b",\"params\":");
            let user = self.prompt.user_turn(ctx);
            body.extend_from_slice(&self.body(&user, Some(self.settings.max_tokens)).to_vec());
            body.push(b'}');
        }
        body.extend_from_slice(b"]}");
        let created = self
            .batch_call(reqwest::Method::POST, &self.batches_url(), Some(body))
            .await?;
        let mut batch: BatchObject = serde_json::from_slice(&created)
            .map_err(|e| ClassifierError::Transport(format!("batch object: {e}")))?;
        tracing::info!(batch_id = %batch.id, requests = items.len(), "message batch created");
        let deadline = Instant::now() + max_wait;
        while batch.processing_status != "ended" {
            if Instant::now() + poll > deadline {
                let cancel = format!("{}/{}/cancel", self.batches_url(), batch.id);
                if let Err(e) = self.batch_call(reqwest::Method::POST, &cancel, None).await {
                    tracing::warn!(batch_id = %batch.id, error = %e.reason(), "cannot cancel the batch");
                }
                return Err(ClassifierError::Timeout);
            }
            tokio::time::sleep(poll).await;
            let url = format!("{}/{}", self.batches_url(), batch.id);
            match self.batch_call(reqwest::Method::GET, &url, None).await {
                Ok(bytes) => match serde_json::from_slice::<BatchObject>(&bytes) {
                    Ok(b) => batch = b,
                    Err(e) => tracing::warn!(error = %e, "unreadable batch object; polling again"),
                },
                Err(e) => {
                    tracing::warn!(batch_id = %batch.id, error = %e.reason(), "batch poll failed; polling again");
                }
            }
        }
        let url = batch
            .results_url
            .clone()
            .unwrap_or_else(|| format!("{}/{}/results", self.batches_url(), batch.id));
        let lines = self.batch_call(reqwest::Method::GET, &url, None).await?;
        let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
        for line in String::from_utf8_lossy(&lines).lines() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<ResultLine>(line) {
                Ok(r) => {
                    by_id.insert(r.custom_id, r.result);
                }
                Err(e) => tracing::warn!(error = %e, "unreadable batch result line"),
            }
        }
        let span = tracing::Span::none();
        let results = (0..items.len())
            .map(|i| match by_id.remove(&custom_id(i)) {
                None => Err(ClassifierError::Transport(
                    "no result for this request in the batch".to_owned(),
                )),
                Some(result) => {
                    self.batch_result(result, &format!("{}/{}", batch.id, custom_id(i)), &span)
                }
            })
            .collect();
        Ok(BatchRun {
            id: batch.id,
            results,
        })
    }

    /// One result of a batch: a `succeeded` message read like a Messages answer (priced at
    /// the batch rate even when `usage.service_tier` is missing), or the error it carries.
    /// `request` (`msgbatch_…/item-N`) stands in for the `request-id` header a batch item has
    /// not, so a decision still names the call it came from.
    fn batch_result(
        &self,
        mut result: Value,
        request: &str,
        span: &tracing::Span,
    ) -> Result<Classification, ClassifierError> {
        let kind = result
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned();
        if kind != "succeeded" {
            let error = result
                .pointer("/error/error/type")
                .or_else(|| result.pointer("/error/type"))
                .and_then(Value::as_str)
                .unwrap_or(&kind)
                .to_owned();
            return Err(ClassifierError::Upstream {
                status: 200,
                kind: format!("batch_{kind}: {error}"),
                request_id: None,
            });
        }
        let Some(message) = result.get_mut("message") else {
            return Err(ClassifierError::Transport(
                "succeeded result without a message".to_owned(),
            ));
        };
        if let Some(usage) = message.get_mut("usage").and_then(Value::as_object_mut) {
            usage
                .entry("service_tier")
                .or_insert_with(|| Value::from("batch"));
        }
        let body = serde_json::to_vec(message).unwrap_or_default();
        self.interpret(
            Reply {
                request_id: Some(request.to_owned()),
                body,
            },
            span,
        )
    }
}
