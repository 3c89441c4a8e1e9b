//! Settings: defaults in code, then an optional TOML file named by `ESCALATOR_CONFIG`, then the
//! environment (which wins). The environment names are part of the contract (DESIGN.md), so each
//! is mapped explicitly. The loader reads a key/value source, so tests pass a map instead of
//! touching the process environment.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    path::PathBuf,
    time::Duration,
};

use crate::classifier::claude::{ApiVersion, CacheTtl, Effort, price::Price};
use secrecy::SecretString;
use serde::Deserialize;

use crate::{
    store::StoreSettings,
    ticketing::TicketingSettings,
    ticketing::settings::{FileActions, FilePlain, FilePylon, FileRoute, FileTicketing},
    triage::TriageSettings,
};

/// Where settings come from: the process environment or, in tests, a map.
pub trait EnvSource {
    /// The value of `key`, if set and not empty.
    fn get(&self, key: &str) -> Option<String>;
    /// Every key that is set (to warn about unknown `ESCALATOR_*` names).
    fn keys(&self) -> Vec<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
    fn keys(&self) -> Vec<String> {
        std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .collect()
    }
}

impl EnvSource for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).filter(|v| !v.is_empty()).cloned()
    }
    fn keys(&self) -> Vec<String> {
        HashMap::keys(self).cloned().collect()
    }
}

impl EnvSource for BTreeMap<&str, &str> {
    fn get(&self, key: &str) -> Option<String> {
        BTreeMap::get(self, key)
            .filter(|v| !v.is_empty())
            .map(|v| (*v).to_owned())
    }
    fn keys(&self) -> Vec<String> {
        BTreeMap::keys(self).map(|k| (*k).to_owned()).collect()
    }
}

/// Every `ESCALATOR_*` variable the service reads; others are warned about at start.
pub const KNOWN_ESCALATOR_VARS: &[&str] = &[
    "ESCALATOR_GRPC_ADDR",
    "ESCALATOR_HTTP_ADDR",
    "ESCALATOR_CONFIG",
    "ESCALATOR_MODEL",
    "ESCALATOR_LOG",
    "ESCALATOR_LOG_FORMAT",
    "ESCALATOR_ENVIRONMENT",
    "ESCALATOR_RELEASE",
    "ESCALATOR_REDACT_TICKET_TEXT",
    "ESCALATOR_ADMIN_TOKEN",
];

/// A setting that could not be loaded; names the key. The CLI exits 64 (EX_USAGE) on it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value has the wrong shape.
    #[error("{key}: {reason}")]
    Invalid {
        /// The env variable or TOML key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The TOML file cannot be read or parsed.
    #[error("ESCALATOR_CONFIG {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

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
            base_url: "https://api.anthropic.com".to_owned(),
            model: "claude-sonnet-4-6".to_owned(),
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

/// Where traces go: an OTLP/HTTP (protobuf) traces endpoint and its headers.
#[derive(Debug, Clone)]
pub struct TraceExport {
    /// The full traces URL (…/v1/traces), used verbatim.
    pub endpoint: String,
    /// Headers sent with every export; values may hold credentials, so they are secret.
    pub headers: Vec<(String, SecretString)>,
    /// True when the endpoint is Langfuse's (set from `LANGFUSE_*`).
    pub langfuse: bool,
}

/// Langfuse, addressed directly (traces and the Scores API).
#[derive(Debug, Clone)]
pub struct LangfuseSettings {
    /// `LANGFUSE_HOST`, e.g. `https://cloud.langfuse.com`.
    pub host: String,
    /// `LANGFUSE_PUBLIC_KEY` (`pk-lf-…`).
    pub public_key: String,
    /// `LANGFUSE_SECRET_KEY` (`sk-lf-…`); never logged.
    pub secret_key: SecretString,
}

impl LangfuseSettings {
    /// The `Authorization` header value: Basic base64(public:secret).
    pub fn basic_auth(&self) -> SecretString {
        use base64::Engine as _;
        use secrecy::ExposeSecret as _;
        let raw = format!("{}:{}", self.public_key, self.secret_key.expose_secret());
        SecretString::from(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ))
    }
}

/// Logging, tracing and scoring settings.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// `ESCALATOR_LOG`: an `EnvFilter` directive for log lines.
    pub log_filter: String,
    /// `ESCALATOR_LOG_FORMAT=json`.
    pub log_json: bool,
    /// Trace export; None = no export.
    pub traces: Option<TraceExport>,
    /// Langfuse for scores (and traces when no OTLP endpoint is set).
    pub langfuse: Option<LangfuseSettings>,
    /// `ESCALATOR_REDACT_TICKET_TEXT`: keep subject and message out of exported traces.
    pub redact_ticket_text: bool,
    /// `ESCALATOR_ENVIRONMENT` (Langfuse environment: `[a-z0-9-_]`, at most 40, not `langfuse*`).
    pub environment: String,
    /// `ESCALATOR_RELEASE` (e.g. a git sha); default the package version.
    pub release: String,
    /// How often pending scores are sent.
    pub score_interval: Duration,
}

/// Everything the service needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// gRPC listen address (`ESCALATOR_GRPC_ADDR`); port 0 picks a free port (tests).
    pub grpc_addr: SocketAddr,
    /// HTTP listen address (`ESCALATOR_HTTP_ADDR`).
    pub http_addr: SocketAddr,
    /// The routing log (`DATABASE_URL`).
    pub store: StoreSettings,
    /// The Claude backend.
    pub claude: ClaudeSettings,
    /// Use-case tunables.
    pub triage: TriageSettings,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// A prompt template to use instead of the embedded `prompts/classifier.md`.
    pub prompt_file: Option<PathBuf>,
    /// A labels file to use instead of the embedded `labels/labels.csv`.
    pub labels_file: Option<PathBuf>,
    /// Logging, traces, metrics and scores.
    pub telemetry: TelemetrySettings,
    /// Names of unknown `ESCALATOR_*` variables and unknown file keys, warned about at start.
    pub warnings: Vec<String>,
    /// The webhook bridge, the Plain and Pylon adapters and per-route targets.
    pub ticketing: TicketingSettings,
    /// The worker: inbox, outbox, recovery and heartbeat loops (`[worker]`, and the worker keys
    /// of `[actions]`).
    pub worker: crate::worker::settings::WorkerSettings,
    /// The daily review (`[review]`, `ESCALATOR_ADMIN_TOKEN`).
    pub review: crate::review::ReviewSettings,
}

/// The optional TOML file. Unknown keys are warned about, not fatal.
#[derive(Debug, Default, Deserialize)]
struct FileSettings {
    grpc_addr: Option<String>,
    http_addr: Option<String>,
    database_url: Option<String>,
    shutdown_grace_secs: Option<u64>,
    #[serde(default)]
    database: FileDatabase,
    #[serde(default)]
    claude: FileClaude,
    #[serde(default)]
    prompt: FilePrompt,
    #[serde(default)]
    telemetry: FileTelemetry,
    #[serde(default)]
    plain: FilePlain,
    #[serde(default)]
    pylon: FilePylon,
    #[serde(default)]
    actions: FileActions,
    #[serde(default)]
    worker: crate::worker::settings::FileWorker,
    #[serde(default)]
    routes: BTreeMap<String, FileRoute>,
    #[serde(default)]
    review: crate::review::settings::FileReview,
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct FileDatabase {
    max_connections: Option<u32>,
    acquire_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct FileClaude {
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
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
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
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            key: format!("claude.{key}"),
            reason: reason.to_owned(),
        };
        if s.max_tokens == 0 {
            return Err(invalid("max_tokens", "must be at least 1"));
        }
        if s.timeout.is_zero() || s.deadline.is_zero() {
            return Err(invalid(
                "timeout_ms",
                "timeout_ms and deadline_ms must be above 0",
            ));
        }
        if s.max_concurrency == 0 {
            return Err(invalid("max_concurrency", "must be at least 1"));
        }
        if s.spend_cap_probe_interval.is_zero() {
            return Err(invalid("spend_cap_probe_interval_ms", "must be above 0"));
        }
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if !(non_negative(s.retry_budget_ratio) && non_negative(s.retry_budget_reserve)) {
            return Err(invalid(
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
                return Err(invalid(
                    &format!("prices.{model}"),
                    "prices must be finite and >= 0",
                ));
            }
        }
        Ok(s)
    }
}

#[derive(Debug, Default, Deserialize)]
struct FileTelemetry {
    environment: Option<String>,
    release: Option<String>,
    redact_ticket_text: Option<bool>,
    score_interval_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct FilePrompt {
    template_file: Option<PathBuf>,
    labels_file: Option<PathBuf>,
}

impl Settings {
    /// Loads settings from `env` (and the file it names).
    ///
    /// # Errors
    /// [`ConfigError`] naming the bad key.
    pub fn load(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let mut warnings = Vec::new();
        let file = match env.get("ESCALATOR_CONFIG") {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                let f: FileSettings = toml::from_str(&text).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                for k in f.unknown.keys() {
                    warnings.push(format!("unknown key `{k}` in {path}"));
                }
                f
            }
            None => FileSettings::default(),
        };
        let mut keys = env.keys();
        keys.sort();
        for k in keys {
            if k.starts_with("ESCALATOR_") && !KNOWN_ESCALATOR_VARS.contains(&k.as_str()) {
                warnings.push(format!("unknown environment variable {k} is ignored"));
            }
        }
        let addr = |key: &str,
                    file_val: Option<String>,
                    default: &str|
         -> Result<SocketAddr, ConfigError> {
            let v = env
                .get(key)
                .or(file_val)
                .unwrap_or_else(|| default.to_owned());
            v.parse().map_err(|e| ConfigError::Invalid {
                key: key.to_owned(),
                reason: format!("{v:?} is not a socket address: {e}"),
            })
        };
        let database_url = env
            .get("DATABASE_URL")
            .or(file.database_url)
            .unwrap_or_else(|| "sqlite://escalator.db".to_owned());
        if !(database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
            || database_url.starts_with("sqlite:"))
        {
            return Err(ConfigError::Invalid {
                key: "DATABASE_URL".into(),
                reason: "must start with postgres:// or sqlite://".into(),
            });
        }
        let base_url = env
            .get("ANTHROPIC_BASE_URL")
            .or(file.claude.base_url.clone())
            .unwrap_or_else(|| "https://api.anthropic.com".to_owned());
        for k in file.claude.unknown.keys() {
            warnings.push(format!(
                "unknown key `claude.{k}` in the ESCALATOR_CONFIG file"
            ));
        }
        let model = env
            .get("ESCALATOR_MODEL")
            .or(file.claude.model.clone())
            .unwrap_or_else(|| "claude-sonnet-4-6".to_owned());
        let claude = file.claude.into_settings(
            env.get("ANTHROPIC_API_KEY").map(SecretString::from),
            base_url.trim_end_matches('/').to_owned(),
            model,
        )?;
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                key: "ANTHROPIC_BASE_URL".into(),
                reason: "must be an http(s) URL".into(),
            });
        }
        let telemetry = load_telemetry(env, file.telemetry)?;
        let worker = crate::worker::settings::WorkerSettings::load(
            &file.actions,
            file.worker,
            claude.api_key.is_some().then_some(claude.max_concurrency),
        )?;
        let ticketing = TicketingSettings::load(
            env,
            FileTicketing {
                plain: file.plain,
                pylon: file.pylon,
                actions: file.actions,
                routes: file.routes,
            },
        )?;
        Ok(Self {
            grpc_addr: addr("ESCALATOR_GRPC_ADDR", file.grpc_addr, "127.0.0.1:50051")?,
            http_addr: addr("ESCALATOR_HTTP_ADDR", file.http_addr, "127.0.0.1:8080")?,
            store: StoreSettings {
                url: database_url,
                max_connections: file.database.max_connections.unwrap_or(10),
                acquire_timeout: Duration::from_secs(
                    file.database.acquire_timeout_secs.unwrap_or(5),
                ),
                stale_after: worker.stale_after,
            },
            claude,
            triage: TriageSettings::default(),
            shutdown_grace: Duration::from_secs(file.shutdown_grace_secs.unwrap_or(20)),
            prompt_file: file.prompt.template_file,
            labels_file: file.prompt.labels_file,
            telemetry,
            warnings,
            ticketing,
            worker,
            review: crate::review::ReviewSettings::load(env, file.review)?,
        })
    }
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(key, format!("{v:?} is not true or false"))),
    }
}

/// `key1=value1,key2=value2` with URL-encoded values (the OTel spec for
/// `OTEL_EXPORTER_OTLP_HEADERS`). Written by hand: it is six lines and the OTLP crate's parser is
/// private.
fn parse_otlp_headers(v: &str) -> Result<Vec<(String, SecretString)>, ConfigError> {
    let mut out = Vec::new();
    for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, val) = pair
            .split_once('=')
            .ok_or_else(|| invalid("OTEL_EXPORTER_OTLP_HEADERS", "each entry must be key=value"))?;
        out.push((
            k.trim().to_owned(),
            SecretString::from(percent_decode(val.trim())),
        ));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn load_telemetry(
    env: &dyn EnvSource,
    file: FileTelemetry,
) -> Result<TelemetrySettings, ConfigError> {
    let langfuse = match (
        env.get("LANGFUSE_HOST"),
        env.get("LANGFUSE_PUBLIC_KEY"),
        env.get("LANGFUSE_SECRET_KEY"),
    ) {
        (Some(host), Some(public_key), Some(secret)) => {
            if !(host.starts_with("http://") || host.starts_with("https://")) {
                return Err(invalid("LANGFUSE_HOST", "must be an http(s) URL"));
            }
            Some(LangfuseSettings {
                host: host.trim_end_matches('/').to_owned(),
                public_key,
                secret_key: SecretString::from(secret),
            })
        }
        (None, None, None) => None,
        _ => {
            return Err(invalid(
                "LANGFUSE_HOST",
                "LANGFUSE_HOST, LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY must be set together",
            ));
        }
    };
    let otlp_endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| {
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
    });
    let traces = match (otlp_endpoint, &langfuse) {
        (Some(endpoint), _) => Some(TraceExport {
            endpoint,
            headers: env
                .get("OTEL_EXPORTER_OTLP_HEADERS")
                .map(|h| parse_otlp_headers(&h))
                .transpose()?
                .unwrap_or_default(),
            langfuse: false,
        }),
        (None, Some(lf)) => Some(TraceExport {
            endpoint: format!("{}/api/public/otel/v1/traces", lf.host),
            headers: vec![
                ("Authorization".to_owned(), lf.basic_auth()),
                (
                    "x-langfuse-ingestion-version".to_owned(),
                    SecretString::from("4"),
                ),
            ],
            langfuse: true,
        }),
        (None, None) => None,
    };
    if let Some(t) = &traces {
        if !(t.endpoint.starts_with("http://") || t.endpoint.starts_with("https://")) {
            return Err(invalid(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "must be an http(s) URL",
            ));
        }
    }
    let environment = env
        .get("ESCALATOR_ENVIRONMENT")
        .or(file.environment)
        .unwrap_or_else(|| "production".to_owned());
    let env_ok = !environment.is_empty()
        && environment.len() <= 40
        && !environment.starts_with("langfuse")
        && environment
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !env_ok {
        return Err(invalid(
            "ESCALATOR_ENVIRONMENT",
            "must be 1-40 chars of a-z, 0-9, - and _, not starting with langfuse",
        ));
    }
    let redact_ticket_text = match env.get("ESCALATOR_REDACT_TICKET_TEXT") {
        Some(v) => parse_bool("ESCALATOR_REDACT_TICKET_TEXT", &v)?,
        None => file.redact_ticket_text.unwrap_or(false),
    };
    let log_json = match env.get("ESCALATOR_LOG_FORMAT") {
        Some(v) if v.eq_ignore_ascii_case("json") => true,
        Some(v) if v.eq_ignore_ascii_case("text") => false,
        Some(v) => {
            return Err(invalid(
                "ESCALATOR_LOG_FORMAT",
                format!("{v:?} is not json or text"),
            ));
        }
        None => false,
    };
    Ok(TelemetrySettings {
        log_filter: env
            .get("ESCALATOR_LOG")
            .unwrap_or_else(|| "info".to_owned()),
        log_json,
        traces,
        langfuse,
        redact_ticket_text,
        environment,
        release: env
            .get("ESCALATOR_RELEASE")
            .or(file.release)
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned()),
        score_interval: Duration::from_secs(file.score_interval_secs.unwrap_or(10)),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use secrecy::ExposeSecret as _;

    use super::*;

    #[test]
    fn defaults_are_the_embedded_ones() {
        let s = Settings::load(&BTreeMap::new()).unwrap();
        assert_eq!(s.grpc_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(s.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.store.url, "sqlite://escalator.db");
        assert!(s.claude.api_key.is_none());
        assert_eq!(s.claude.model, "claude-sonnet-4-6");
        assert_eq!(s.claude.base_url, "https://api.anthropic.com");
    }

    #[test]
    fn env_wins_over_file_and_unknowns_are_warned() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "http_addr = \"127.0.0.1:9000\"\ngrpc_addr = \"127.0.0.1:9001\"\ncolour = \"red\""
        )
        .unwrap();
        let path = f.path().to_str().unwrap().to_owned();
        let env = BTreeMap::from([
            ("ESCALATOR_CONFIG", path.as_str()),
            ("ESCALATOR_HTTP_ADDR", "127.0.0.1:7000"),
            ("ESCALATOR_GPRC_ADDR", "typo"),
            ("ANTHROPIC_API_KEY", "sk-test"),
        ]);
        let s = Settings::load(&env).unwrap();
        assert_eq!(s.http_addr.to_string(), "127.0.0.1:7000");
        assert_eq!(s.grpc_addr.to_string(), "127.0.0.1:9001");
        assert_eq!(s.claude.api_key.unwrap().expose_secret(), "sk-test");
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
    }

    #[test]
    fn claude_section_overrides_defaults_and_is_checked() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "[claude]\nmodel = \"claude-haiku-5-5\"\napi_version = \"2023-06-01\"\ncache_ttl = \"5m\"\n\
             effort = \"low\"\ntimeout_ms = 1500\nmax_concurrency = 2\n\
             [claude.prices.\"claude-haiku-5-5\"]\ninput = 0.2\noutput = 1.0"
        )
        .unwrap();
        let path = f.path().to_str().unwrap().to_owned();
        let s = Settings::load(&BTreeMap::from([("ESCALATOR_CONFIG", path.as_str())])).unwrap();
        assert_eq!(s.claude.model, "claude-haiku-5-5");
        assert_eq!(s.claude.api_version, ApiVersion::V2023_06_01);
        assert_eq!(s.claude.cache_ttl, CacheTtl::FiveMinutes);
        assert_eq!(s.claude.effort, Some(Effort::Low));
        assert_eq!(s.claude.timeout, Duration::from_millis(1500));
        assert_eq!(s.claude.max_concurrency, 2);
        assert_eq!(s.claude.max_retries, 2);
        assert_eq!(s.claude.spend_cap_probe_interval, Duration::from_secs(300));
        assert_eq!(s.claude.prices["claude-haiku-5-5"], Price::new(0.2, 1.0));
        let env = BTreeMap::from([
            ("ESCALATOR_CONFIG", path.as_str()),
            ("ESCALATOR_MODEL", "claude-opus-4-8"),
        ]);
        assert_eq!(
            Settings::load(&env).unwrap().claude.model,
            "claude-opus-4-8"
        );

        let mut bad = tempfile::NamedTempFile::new().unwrap();
        writeln!(bad, "[claude]\ncache_ttl = \"10m\"").unwrap();
        let p = bad.path().to_str().unwrap().to_owned();
        let e = Settings::load(&BTreeMap::from([("ESCALATOR_CONFIG", p.as_str())])).unwrap_err();
        assert!(e.to_string().contains("cache_ttl"), "{e}");
        let mut bad = tempfile::NamedTempFile::new().unwrap();
        writeln!(bad, "[claude]\nmax_concurrency = 0").unwrap();
        let p = bad.path().to_str().unwrap().to_owned();
        let e = Settings::load(&BTreeMap::from([("ESCALATOR_CONFIG", p.as_str())])).unwrap_err();
        assert_eq!(e.to_string(), "claude.max_concurrency: must be at least 1");
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "[claude]\nspend_cap_probe_interval_ms = 60000").unwrap();
        let p = f.path().to_str().unwrap().to_owned();
        let s = Settings::load(&BTreeMap::from([("ESCALATOR_CONFIG", p.as_str())])).unwrap();
        assert_eq!(s.claude.spend_cap_probe_interval, Duration::from_secs(60));
        let mut bad = tempfile::NamedTempFile::new().unwrap();
        writeln!(bad, "[claude]\nspend_cap_probe_interval_ms = 0").unwrap();
        let p = bad.path().to_str().unwrap().to_owned();
        let e = Settings::load(&BTreeMap::from([("ESCALATOR_CONFIG", p.as_str())])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "claude.spend_cap_probe_interval_ms: must be above 0"
        );
    }

    #[test]
    fn trace_export_from_otel_env_or_langfuse() {
        use secrecy::ExposeSecret as _;
        let s = Settings::load(&BTreeMap::from([
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%3Db, x=y"),
        ]))
        .unwrap();
        let t = s.telemetry.traces.unwrap();
        assert_eq!(t.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(t.headers[0].0, "api-key");
        assert_eq!(t.headers[0].1.expose_secret(), "a=b");
        assert_eq!(t.headers[1].1.expose_secret(), "y");
        let s = Settings::load(&BTreeMap::from([
            ("LANGFUSE_HOST", "https://lf.example/"),
            ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
            ("LANGFUSE_SECRET_KEY", "sk-lf-2"),
        ]))
        .unwrap();
        let t = s.telemetry.traces.unwrap();
        assert!(t.langfuse);
        assert_eq!(t.endpoint, "https://lf.example/api/public/otel/v1/traces");
        // base64("pk-lf-1:sk-lf-2")
        assert_eq!(t.headers[0].1.expose_secret(), "Basic cGstbGYtMTpzay1sZi0y");
        assert_eq!(t.headers[1].0, "x-langfuse-ingestion-version");
        assert!(!format!("{:?}", s.telemetry.langfuse).contains("sk-lf-2"));
        let e = Settings::load(&BTreeMap::from([("LANGFUSE_HOST", "https://x")])).unwrap_err();
        assert!(e.to_string().contains("must be set together"));
        let e = Settings::load(&BTreeMap::from([("ESCALATOR_ENVIRONMENT", "Prod")])).unwrap_err();
        assert!(e.to_string().starts_with("ESCALATOR_ENVIRONMENT"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = Settings::load(&BTreeMap::from([("ESCALATOR_GRPC_ADDR", "nope")])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("ESCALATOR_GRPC_ADDR: \"nope\" is not a socket address")
        );
        let e = Settings::load(&BTreeMap::from([("DATABASE_URL", "mysql://x")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "DATABASE_URL: must start with postgres:// or sqlite://"
        );
    }
}
