//! The start-up model check: `GET /v1/models/{model}` with the configured headers
//! (reference/anthropic.md, SDK section E and G). A mistyped or retired model would otherwise
//! answer 404 to every call, which is not retried, so every ticket would silently fall back to
//! the offline rules. The check turns that into a refusal to start, naming the model and the
//! close matches from `GET /v1/models`; an outage (network error, 5xx) only warns, so an
//! Anthropic incident never blocks a deploy.
//!
//! The answer's capabilities are checked against the configuration: structured outputs are
//! required (every call sends `output_config.format`), and a configured `effort` level must be
//! one the model takes.

use std::{collections::BTreeMap, time::Duration};

use secrecy::SecretString;
use serde::Deserialize;

use super::{
    settings::{ClaudeSettings, Effort},
    wire::{ErrorEnvelope, api_headers, transport_error},
};

/// How long the start-up check waits for each answer (at most; `timeout_ms` if shorter).
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// Close matches named when the model is unknown.
const MAX_SUGGESTIONS: usize = 3;
/// Models listed instead when none is close.
const MAX_LISTED: usize = 10;
/// Least normalised Damerau-Levenshtein similarity of a close match (`claude-sonet-4-6` to
/// `claude-sonnet-4-6` is 0.94; `claude-opus-4-8` to it about 0.6).
const CLOSE_MATCH: f64 = 0.7;

/// A model as `GET /v1/models/{id}` describes it (`ModelInfo` in the SDKs), read leniently.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ModelInfo {
    /// The model id.
    #[serde(default)]
    pub id: String,
    /// `active`, `deprecated` or `retired` (open: a newer stage is kept as a string).
    #[serde(default)]
    pub lifecycle: Option<String>,
    /// When a deprecated model retires (RFC 3339).
    #[serde(default)]
    pub retires_at: Option<String>,
    /// What the model supports; absent on older API versions.
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
}

/// The capabilities escalator depends on; every other one is ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Capabilities {
    /// `output_config.format` (JSON schema answers).
    #[serde(default)]
    pub structured_outputs: Option<Support>,
    /// `output_config.effort` and its levels.
    #[serde(default)]
    pub effort: Option<EffortSupport>,
}

/// `{"supported": bool}`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Support {
    /// Whether the model supports it.
    #[serde(default)]
    pub supported: bool,
}

/// `{"supported": bool, "low": {"supported": bool}, …}`: one entry per level.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EffortSupport {
    /// Whether the model takes `effort` at all.
    #[serde(default)]
    pub supported: bool,
    /// Each level by name (`low` … `max`, `xhigh`).
    #[serde(flatten)]
    pub levels: BTreeMap<String, serde_json::Value>,
}

impl EffortSupport {
    /// Whether `effort` is one of the model's levels.
    pub fn takes(&self, effort: Effort) -> bool {
        self.supported
            && self
                .levels
                .get(effort_name(effort))
                .and_then(|l| l.get("supported"))
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false)
    }

    /// The level names the model takes, for the error message.
    fn supported_levels(&self) -> Vec<String> {
        self.levels
            .iter()
            .filter(|(_, v)| v.get("supported").and_then(serde_json::Value::as_bool) == Some(true))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

impl ModelInfo {
    /// What the model says about `effort`: `Some(true)` takes it, `Some(false)` takes no
    /// effort at all, `None` when the answer has no effort capability (then the built-in table
    /// decides).
    pub fn takes_effort(&self) -> Option<bool> {
        self.capabilities
            .as_ref()
            .and_then(|c| c.effort.as_ref())
            .map(|e| e.supported)
    }
}

fn effort_name(e: Effort) -> &'static str {
    match e {
        Effort::Low => "low",
        Effort::Medium => "medium",
        Effort::High => "high",
        Effort::Xhigh => "xhigh",
        Effort::Max => "max",
    }
}

/// A configured model the service must not start with. The CLI exits 64 on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// `GET /v1/models/{model}` answered 404.
    #[error(
        "model {model:?} (ESCALATOR_MODEL / [claude] model) does not exist for this API key: GET /v1/models/{model} answered 404; {}",
        suggest(close, available)
    )]
    Unknown {
        /// The configured model id.
        model: String,
        /// The listed models closest to it, best first.
        close: Vec<String>,
        /// Some listed models, when none is close.
        available: Vec<String>,
    },
    /// The model exists but is retired: calls naming it fail.
    #[error(
        "model {model:?} (ESCALATOR_MODEL / [claude] model) is retired and its calls fail; {}",
        suggest(close, available)
    )]
    Retired {
        /// The configured model id.
        model: String,
        /// The listed models closest to it, best first.
        close: Vec<String>,
        /// Some listed models, when none is close.
        available: Vec<String>,
    },
    /// The model does not take `output_config.format`, which every call sends.
    #[error(
        "model {model:?} does not support structured outputs (output_config.format), which every escalator call sends; choose another model"
    )]
    NoStructuredOutputs {
        /// The configured model id.
        model: String,
    },
    /// The configured `effort` level is not one of the model's levels.
    #[error(
        "claude.effort {effort:?} is not a level model {model:?} takes (it takes: {}); change or remove claude.effort",
        supported.join(", ")
    )]
    EffortLevel {
        /// The configured model id.
        model: String,
        /// The configured level.
        effort: String,
        /// The model's levels.
        supported: Vec<String>,
    },
}

fn suggest(close: &[String], available: &[String]) -> String {
    if !close.is_empty() {
        format!("close matches: {}", close.join(", "))
    } else if !available.is_empty() {
        format!(
            "no close match; GET /v1/models lists {}",
            available.join(", ")
        )
    } else {
        "GET /v1/models lists no model to suggest".to_owned()
    }
}

/// The listed models closest to `model`, best first (at most [`MAX_SUGGESTIONS`]).
pub fn close_matches(model: &str, listed: &[String]) -> Vec<String> {
    let mut scored: Vec<(f64, &String)> = listed
        .iter()
        .filter(|id| id.as_str() != model)
        .map(|id| (strsim::normalized_damerau_levenshtein(model, id), id))
        .filter(|(score, _)| *score >= CLOSE_MATCH)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, id)| id.clone())
        .collect()
}

/// `{"data": [{"id": …}, …]}` from `GET /v1/models`.
#[derive(Debug, Default, Deserialize)]
struct ModelList {
    #[serde(default)]
    data: Vec<ModelInfo>,
}

/// Checks the configured model with the API (see the module docs). `Ok(None)`: the check
/// could not be made (no key, network error, 5xx, unreadable answer) and was logged at WARN;
/// the service starts and the built-in tables decide.
///
/// # Errors
/// [`ModelError`] when the model is unknown or retired, lacks structured outputs, or does not
/// take the configured effort level.
pub async fn check_model(settings: &ClaudeSettings) -> Result<Option<ModelInfo>, ModelError> {
    let Some(key) = &settings.api_key else {
        return Ok(None);
    };
    let model = settings.model.as_str();
    let http = match reqwest::Client::builder()
        .timeout(settings.timeout.min(CHECK_TIMEOUT))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot build the HTTP client for the model check; starting unchecked");
            return Ok(None);
        }
    };
    let url = format!("{}/v1/models/{model}", settings.base_url);
    let resp = match get(&http, &url, settings, key).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(
                model,
                error = %transport_error(&e).reason(),
                "cannot reach the Claude API to check the model; starting unchecked"
            );
            return Ok(None);
        }
    };
    let status = resp.status();
    let request_id = resp
        .headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = resp.bytes().await.unwrap_or_default();
    if status.as_u16() == 404 {
        let (close, available) = suggestions(&http, settings, key, model).await;
        return Err(ModelError::Unknown {
            model: model.to_owned(),
            close,
            available,
        });
    }
    if !status.is_success() {
        let envelope: ErrorEnvelope = serde_json::from_slice(&bytes).unwrap_or_default();
        let kind = envelope.kind().unwrap_or("").to_owned();
        let message = envelope
            .error
            .as_ref()
            .and_then(|e| e.message.clone())
            .unwrap_or_default();
        if status.is_server_error() {
            tracing::warn!(
                model,
                status = status.as_u16(),
                kind,
                request_id,
                "the Claude API failed the model check; starting unchecked"
            );
        } else {
            // A key or permission problem fails every call too; the calls log it once each.
            tracing::error!(
                model,
                status = status.as_u16(),
                kind,
                request_id,
                message,
                "the Claude API refused the model check; starting, but calls will likely fail the same way"
            );
        }
        return Ok(None);
    }
    let info: ModelInfo = match serde_json::from_slice(&bytes) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(model, error = %e, "cannot read the model check's answer; starting unchecked");
            return Ok(None);
        }
    };
    match info.lifecycle.as_deref() {
        Some("retired") => {
            let (close, available) = suggestions(&http, settings, key, model).await;
            return Err(ModelError::Retired {
                model: model.to_owned(),
                close,
                available,
            });
        }
        Some("deprecated") => tracing::warn!(
            model,
            retires_at = info.retires_at.as_deref().unwrap_or("unknown"),
            "the configured model is deprecated; choose its successor before it retires"
        ),
        _ => {}
    }
    if let Some(caps) = &info.capabilities {
        if caps.structured_outputs.is_some_and(|s| !s.supported) {
            return Err(ModelError::NoStructuredOutputs {
                model: model.to_owned(),
            });
        }
        if let (Some(effort), Some(e)) = (settings.effort, &caps.effort) {
            // A model without effort levels gets none sent (warned when the client is built);
            // a model with levels but not this one would answer 400 to every call.
            if e.supported && !e.takes(effort) {
                return Err(ModelError::EffortLevel {
                    model: model.to_owned(),
                    effort: effort_name(effort).to_owned(),
                    supported: e.supported_levels(),
                });
            }
        }
    }
    tracing::info!(
        model,
        lifecycle = info.lifecycle.as_deref().unwrap_or("unknown"),
        request_id,
        "the Claude API knows the configured model"
    );
    Ok(Some(info))
}

async fn get(
    http: &reqwest::Client,
    url: &str,
    settings: &ClaudeSettings,
    key: &SecretString,
) -> Result<reqwest::Response, reqwest::Error> {
    http.get(url)
        .headers(api_headers(settings.api_version, key))
        .send()
        .await
}

/// Close matches (and, when there are none, some listed models) from `GET /v1/models`; empty
/// when the list cannot be had.
async fn suggestions(
    http: &reqwest::Client,
    settings: &ClaudeSettings,
    key: &SecretString,
    model: &str,
) -> (Vec<String>, Vec<String>) {
    let url = format!("{}/v1/models?limit=1000", settings.base_url);
    let listed: Vec<String> = match get(http, &url, settings, key).await {
        Ok(r) if r.status().is_success() => r
            .json::<ModelList>()
            .await
            .map(|l| l.data.into_iter().map(|m| m.id).collect())
            .unwrap_or_default(),
        Ok(r) => {
            tracing::warn!(
                status = r.status().as_u16(),
                "cannot list the models to suggest one"
            );
            Vec::new()
        }
        Err(e) => {
            tracing::warn!(error = %transport_error(&e).reason(), "cannot list the models to suggest one");
            Vec::new()
        }
    };
    let close = close_matches(model, &listed);
    let available = if close.is_empty() {
        listed.into_iter().take(MAX_LISTED).collect()
    } else {
        Vec::new()
    };
    (close, available)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn close_matches_rank_the_likely_typos_first() {
        let listed = ids(&[
            "claude-opus-4-8",
            "claude-sonnet-4-6",
            "claude-sonnet-4-5",
            "claude-haiku-5-5",
            "claude-sonnet-5-5",
        ]);
        let m = close_matches("claude-sonet-4-6", &listed);
        assert_eq!(m[0], "claude-sonnet-4-6");
        assert!(m.len() <= MAX_SUGGESTIONS);
        assert!(!m.contains(&"claude-opus-4-8".to_owned()), "{m:?}");
        assert!(close_matches("gpt-4o", &listed).is_empty());
    }

    #[test]
    fn effort_levels_are_read_by_name() {
        let e: EffortSupport = serde_json::from_str(
            r#"{"supported":true,"low":{"supported":true},"medium":{"supported":true},"high":{"supported":true},"max":{"supported":false},"xhigh":{"supported":false}}"#,
        )
        .unwrap();
        assert!(e.takes(Effort::Low));
        assert!(!e.takes(Effort::Max));
        assert!(!e.takes(Effort::Xhigh));
        assert_eq!(e.supported_levels(), ["high", "low", "medium"]);
        let none: EffortSupport = serde_json::from_str(r#"{"supported":false}"#).unwrap();
        assert!(!none.takes(Effort::Low));
    }

    #[test]
    fn errors_name_the_model_and_the_matches() {
        let e = ModelError::Unknown {
            model: "claude-sonet-4-6".into(),
            close: ids(&["claude-sonnet-4-6"]),
            available: vec![],
        };
        assert_eq!(
            e.to_string(),
            "model \"claude-sonet-4-6\" (ESCALATOR_MODEL / [claude] model) does not exist for this API key: GET /v1/models/claude-sonet-4-6 answered 404; close matches: claude-sonnet-4-6"
        );
        let e = ModelError::Unknown {
            model: "x".into(),
            close: vec![],
            available: ids(&["a", "b"]),
        };
        assert!(
            e.to_string()
                .ends_with("no close match; GET /v1/models lists a, b")
        );
    }
}
