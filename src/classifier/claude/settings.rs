//! Settings of the Claude backend: `ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL` and
//! `ESCALATOR_MODEL` from the environment (DESIGN.md names), over the `[claude]` table of the
//! TOML file (see the README, "The Claude classifier"), over the defaults.

use std::{collections::BTreeMap, time::Duration};

use secrecy::SecretString;
use serde::Deserialize;

use super::{ApiVersion, CacheTtl, Effort, price::Price};
use crate::env::{ConfigError, EnvSource, invalid, is_http_url};

/// Default `ANTHROPIC_BASE_URL`.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// Default `ESCALATOR_MODEL`.
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-6";

/// Settings of the Claude backend. `api_key: None` means the offline classifier serves.
/// Everything below `model` comes from the `[claude]` TOML section (see the README, "The Claude classifier").
#[derive(Debug, Clone)]
pub struct ClaudeSettings {
    /// `ANTHROPIC_API_KEY`; never logged.
    pub api_key: Option<SecretString>,
    /// `ANTHROPIC_BASE_URL`.
    pub base_url: String,
    /// `ESCALATOR_MODEL`.
    pub model: String,
    /// `api_version`: the `anthropic-version` header and the auth header that goes with it.
    pub api_version: ApiVersion,
    /// `max_tokens`: output budget per call, thinking included.
    pub max_tokens: u32,
    /// `timeout_ms`: one HTTP attempt.
    pub timeout: Duration,
    /// `deadline_ms`: one classify call, retries and waiting for a free slot included.
    pub deadline: Duration,
    /// `cache_ttl`: `5m` or `1h`.
    pub cache_ttl: CacheTtl,
    /// `effort`: sent only when set and the model takes it.
    pub effort: Option<Effort>,
    /// `max_retries`: retries after the first attempt.
    pub max_retries: u32,
    /// `backoff_base_ms`: first backoff delay; doubles per retry.
    pub backoff_base: Duration,
    /// `backoff_max_ms`: longest backoff delay.
    pub backoff_max: Duration,
    /// `retry_after_max_ms`: cap on a server-requested `retry-after`.
    pub retry_after_max: Duration,
    /// `retry_budget_ratio`: retries earned per call.
    pub retry_budget_ratio: f64,
    /// `retry_budget_reserve`: most retries that may be spent back to back.
    pub retry_budget_reserve: f64,
    /// `max_concurrency`: in-flight calls per replica, the upper bound of the concurrency the
    /// API's rate-limit headers allow.
    pub max_concurrency: usize,
    /// `spend_cap_probe_interval_ms`: while the spend-cap breaker is open, one call per
    /// interval is let through to see whether the cap was raised.
    pub spend_cap_probe_interval: Duration,
    /// `[claude.prices."<model>"]`: prices overriding the built-in table.
    pub prices: BTreeMap<String, Price>,
}

impl Default for ClaudeSettings {
    fn default() -> Self {
        Self {
            api_key: None,
            base_url: DEFAULT_BASE_URL.to_owned(),
            model: DEFAULT_MODEL.to_owned(),
            api_version: ApiVersion::default(),
            max_tokens: 1_024,
            timeout: Duration::from_secs(20),
            deadline: Duration::from_secs(45),
            cache_ttl: CacheTtl::default(),
            effort: None,
            max_retries: 2,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(8),
            retry_after_max: Duration::from_secs(60),
            retry_budget_ratio: 0.2,
            retry_budget_reserve: 10.0,
            max_concurrency: 8,
            spend_cap_probe_interval: Duration::from_secs(300),
            prices: BTreeMap::new(),
        }
    }
}

/// `[claude]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileClaude {
    base_url: Option<String>,
    model: Option<String>,
    api_version: Option<ApiVersion>,
    max_tokens: Option<u32>,
    timeout_ms: Option<u64>,
    deadline_ms: Option<u64>,
    cache_ttl: Option<CacheTtl>,
    effort: Option<Effort>,
    max_retries: Option<u32>,
    backoff_base_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
    retry_after_max_ms: Option<u64>,
    retry_budget_ratio: Option<f64>,
    retry_budget_reserve: Option<f64>,
    max_concurrency: Option<usize>,
    spend_cap_probe_interval_ms: Option<u64>,
    #[serde(default)]
    prices: BTreeMap<String, Price>,
}

impl FileClaude {
    /// The `[claude]` tunables over the defaults, checked.
    fn into_settings(
        self,
        api_key: Option<SecretString>,
        base_url: String,
        model: String,
    ) -> Result<ClaudeSettings, ConfigError> {
        let d = ClaudeSettings::default();
        let ms = |v: Option<u64>, default: Duration| v.map_or(default, Duration::from_millis);
        let s = ClaudeSettings {
            api_key,
            base_url,
            model,
            api_version: self.api_version.unwrap_or(d.api_version),
            max_tokens: self.max_tokens.unwrap_or(d.max_tokens),
            timeout: ms(self.timeout_ms, d.timeout),
            deadline: ms(self.deadline_ms, d.deadline),
            cache_ttl: self.cache_ttl.unwrap_or(d.cache_ttl),
            effort: self.effort.or(d.effort),
            max_retries: self.max_retries.unwrap_or(d.max_retries),
            backoff_base: ms(self.backoff_base_ms, d.backoff_base),
            backoff_max: ms(self.backoff_max_ms, d.backoff_max),
            retry_after_max: ms(self.retry_after_max_ms, d.retry_after_max),
            retry_budget_ratio: self.retry_budget_ratio.unwrap_or(d.retry_budget_ratio),
            retry_budget_reserve: self.retry_budget_reserve.unwrap_or(d.retry_budget_reserve),
            max_concurrency: self.max_concurrency.unwrap_or(d.max_concurrency),
            spend_cap_probe_interval: ms(
                self.spend_cap_probe_interval_ms,
                d.spend_cap_probe_interval,
            ),
            prices: self.prices,
        };
        let bad = |key: &str, reason: &str| invalid(&format!("claude.{key}"), reason);
        if s.max_tokens == 0 {
            return Err(bad("max_tokens", "must be at least 1"));
        }
        if s.timeout.is_zero() || s.deadline.is_zero() {
            return Err(bad(
                "timeout_ms",
                "timeout_ms and deadline_ms must be above 0",
            ));
        }
        if s.max_concurrency == 0 {
            return Err(bad("max_concurrency", "must be at least 1"));
        }
        if s.spend_cap_probe_interval.is_zero() {
            return Err(bad("spend_cap_probe_interval_ms", "must be above 0"));
        }
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if !(non_negative(s.retry_budget_ratio) && non_negative(s.retry_budget_reserve)) {
            return Err(bad(
                "retry_budget_ratio",
                "budget values must be finite and >= 0",
            ));
        }
        for (model, p) in &s.prices {
            let fields = [
                Some(p.input),
                Some(p.output),
                p.cache_write_5m,
                p.cache_write_1h,
                p.cache_read,
            ];
            if fields
                .iter()
                .flatten()
                .any(|v| !(v.is_finite() && *v >= 0.0))
            {
                return Err(bad(
                    &format!("prices.{model}"),
                    "prices must be finite and >= 0",
                ));
            }
        }
        Ok(s)
    }
}

impl ClaudeSettings {
    /// The Claude settings: `ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL` and `ESCALATOR_MODEL`
    /// from the environment, winning over `[claude]` in the file, over the defaults.
    ///
    /// # Errors
    /// [`ConfigError`] naming the bad key.
    pub(crate) fn load(env: &dyn EnvSource, file: FileClaude) -> Result<Self, ConfigError> {
        let base_url = env
            .get("ANTHROPIC_BASE_URL")
            .or(file.base_url.clone())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let model = env
            .get("ESCALATOR_MODEL")
            .or(file.model.clone())
            .unwrap_or_else(|| DEFAULT_MODEL.to_owned());
        let claude = file.into_settings(
            env.get("ANTHROPIC_API_KEY").map(SecretString::from),
            base_url.trim_end_matches('/').to_owned(),
            model,
        )?;
        if !is_http_url(&base_url) {
            return Err(invalid("ANTHROPIC_BASE_URL", "must be an http(s) URL"));
        }
        Ok(claude)
    }
}
