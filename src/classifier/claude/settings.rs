//! Settings of the Claude backend: `ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL` and
//! `ESCALATOR_MODEL` from the environment (DESIGN.md names), over the `[claude]` table of the
//! TOML file (see the README, "The Claude classifier"), over the defaults.

use std::{collections::BTreeMap, time::Duration};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::price::{CacheTtl, Price};
use crate::env::{ConfigError, EnvSource, Setting, SettingDefault, invalid, is_http_url};

/// The `anthropic-version` header and the auth header that goes with it. The two are switched
/// together: no official SDK sends a mixed pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ApiVersion {
    /// `2026-10-21` with `Authorization: Bearer <key>`, what the current official SDKs send.
    #[default]
    #[serde(rename = "2026-10-21")]
    V2026_10_21,
    /// `2023-06-01` with `x-api-key: <key>`, what SDKs up to Python 0.121.0 sent.
    #[serde(rename = "2023-06-01")]
    V2023_06_01,
}

impl ApiVersion {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V2026_10_21 => "2026-10-21",
            ApiVersion::V2023_06_01 => "2023-06-01",
        }
    }
}

/// `output_config.effort`, for models that take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    /// Cheapest and fastest; enough for a three-bucket classification.
    Low,
    /// The API's default on models with effort levels.
    Medium,
    /// More thinking.
    High,
    /// Even more thinking.
    Xhigh,
    /// The most thinking.
    Max,
}

/// Default `ANTHROPIC_BASE_URL`.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// Default `ESCALATOR_MODEL`.
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-6";

/// The settings this module owns (rendered into the reference in `deploy/README.md`).
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "ANTHROPIC_API_KEY",
        default: SettingDefault::Unset,
        meaning: "Claude API key; selects the Claude backend. Unset: the offline classifier decides every ticket (`model = \"offline\"`). Sent only in the auth header, never logged.",
        example: "sk-ant-api03-example",
    },
    Setting {
        key: "ANTHROPIC_BASE_URL",
        default: SettingDefault::Value("https://api.anthropic.com"),
        meaning: "Messages API root; wins over `claude.base_url`.",
        example: "https://api.anthropic.com",
    },
    Setting {
        key: "ESCALATOR_MODEL",
        default: SettingDefault::Value("claude-sonnet-4-6"),
        meaning: "Claude model id, checked at start (`GET /v1/models/{id}`); wins over `claude.model`.",
        example: "claude-sonnet-4-6",
    },
    Setting {
        key: "claude.base_url",
        default: SettingDefault::Value("\"https://api.anthropic.com\""),
        meaning: "Messages API root, when `ANTHROPIC_BASE_URL` is unset.",
        example: "\"https://api.anthropic.com\"",
    },
    Setting {
        key: "claude.model",
        default: SettingDefault::Value("\"claude-sonnet-4-6\""),
        meaning: "Model id, when `ESCALATOR_MODEL` is unset.",
        example: "\"claude-sonnet-4-6\"",
    },
    Setting {
        key: "claude.api_version",
        default: SettingDefault::Value("\"2026-10-21\""),
        meaning: "`anthropic-version` header: `\"2026-10-21\"` (sent with `Authorization: Bearer`) or `\"2023-06-01\"` (with `x-api-key`).",
        example: "\"2026-10-21\"",
    },
    Setting {
        key: "claude.max_tokens",
        default: SettingDefault::Value("1024"),
        meaning: "Output budget per call, thinking included (at least 1).",
        example: "1024",
    },
    Setting {
        key: "claude.timeout_ms",
        default: SettingDefault::Value("20000"),
        meaning: "One HTTP attempt.",
        example: "20000",
    },
    Setting {
        key: "claude.deadline_ms",
        default: SettingDefault::Value("45000"),
        meaning: "One classify call: waiting for a slot, every retry and backoff; past it the ticket falls back to the offline classifier.",
        example: "45000",
    },
    Setting {
        key: "claude.cache_ttl",
        default: SettingDefault::Value("\"1h\""),
        meaning: "TTL of the cached system block: `\"5m\"` or `\"1h\"`.",
        example: "\"1h\"",
    },
    Setting {
        key: "claude.effort",
        default: SettingDefault::Unset,
        meaning: "`output_config.effort` (`\"low\"`, `\"medium\"`, `\"high\"`, `\"xhigh\"`, `\"max\"`); unset: not sent. A level the model lacks stops the start.",
        example: "\"low\"",
    },
    Setting {
        key: "claude.max_retries",
        default: SettingDefault::Value("2"),
        meaning: "Retries after the first attempt (408, 409, 429, 5xx, 529, transport errors; never a spend-cap 429).",
        example: "2",
    },
    Setting {
        key: "claude.backoff_base_ms",
        default: SettingDefault::Value("500"),
        meaning: "First retry backoff; doubles per retry, less up to 25% jitter.",
        example: "500",
    },
    Setting {
        key: "claude.backoff_max_ms",
        default: SettingDefault::Value("8000"),
        meaning: "Longest retry backoff.",
        example: "8000",
    },
    Setting {
        key: "claude.retry_after_max_ms",
        default: SettingDefault::Value("60000"),
        meaning: "Cap on a server-requested `retry-after(-ms)`.",
        example: "60000",
    },
    Setting {
        key: "claude.retry_budget_ratio",
        default: SettingDefault::Value("0.2"),
        meaning: "Retries earned per call (the retry budget shared by a replica's calls).",
        example: "0.2",
    },
    Setting {
        key: "claude.retry_budget_reserve",
        default: SettingDefault::Value("10.0"),
        meaning: "Retries that may be spent back to back (the budget's ceiling).",
        example: "10.0",
    },
    Setting {
        key: "claude.max_concurrency",
        default: SettingDefault::Value("8"),
        meaning: "Most Claude calls in flight per replica; fewer when the API's rate-limit headers say the headroom is low.",
        example: "8",
    },
    Setting {
        key: "claude.spend_cap_probe_interval_ms",
        default: SettingDefault::Value("300000"),
        meaning: "While the spend-cap breaker is open, one call per interval is let through to see whether the cap was raised.",
        example: "300000",
    },
    Setting {
        key: "claude.prices.<model>.input",
        default: SettingDefault::Derived("built-in table"),
        meaning: "USD per million uncached input tokens of model `<model>`, overriding the built-in price table (required in a `[claude.prices.\"<model>\"]` table).",
        example: "3.0",
    },
    Setting {
        key: "claude.prices.<model>.output",
        default: SettingDefault::Derived("built-in table"),
        meaning: "USD per million output tokens (required in the table).",
        example: "15.0",
    },
    Setting {
        key: "claude.prices.<model>.cache_write_5m",
        default: SettingDefault::Derived("1.25 × `input`"),
        meaning: "USD per million tokens written to the 5-minute cache.",
        example: "3.75",
    },
    Setting {
        key: "claude.prices.<model>.cache_write_1h",
        default: SettingDefault::Derived("2 × `input`"),
        meaning: "USD per million tokens written to the 1-hour cache.",
        example: "6.0",
    },
    Setting {
        key: "claude.prices.<model>.cache_read",
        default: SettingDefault::Derived("0.1 × `input`"),
        meaning: "USD per million cached input tokens read.",
        example: "0.3",
    },
];

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
