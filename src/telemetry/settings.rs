//! Settings of logs, traces and scores: `ESCALATOR_LOG`, `ESCALATOR_LOG_FORMAT`,
//! `OTEL_EXPORTER_OTLP_*`, `LANGFUSE_*`, `ESCALATOR_ENVIRONMENT`, `ESCALATOR_RELEASE` and
//! `ESCALATOR_REDACT_TICKET_TEXT` from the environment, over the `[telemetry]` table of the file.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::env::{
    ConfigError, EnvSource, Setting, SettingDefault, invalid, is_http_url, parse_bool,
};

/// The settings this module owns (rendered into the reference in `deploy/README.md`).
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "ESCALATOR_LOG",
        default: SettingDefault::Value("info"),
        meaning: "Log filter, `tracing` `EnvFilter` syntax (`info,escalator::worker=debug`). Logs go to stderr; ticket text is never logged at INFO.",
        example: "info",
    },
    Setting {
        key: "ESCALATOR_LOG_FORMAT",
        default: SettingDefault::Value("text"),
        meaning: "`json` for one JSON object per log line (for log shippers), or `text`.",
        example: "json",
    },
    Setting {
        key: "OTEL_EXPORTER_OTLP_ENDPOINT",
        default: SettingDefault::Unset,
        meaning: "Base URL of an OTLP/HTTP collector; `/v1/traces` is appended. Set, traces go there instead of straight to Langfuse.",
        example: "http://otel-collector:4318",
    },
    Setting {
        key: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        default: SettingDefault::Unset,
        meaning: "Full OTLP/HTTP traces URL, used as it is; wins over `OTEL_EXPORTER_OTLP_ENDPOINT`.",
        example: "http://otel-collector:4318/v1/traces",
    },
    Setting {
        key: "OTEL_EXPORTER_OTLP_HEADERS",
        default: SettingDefault::Unset,
        meaning: "`key=value,…` headers for the collector (values URL-decoded; held as secrets).",
        example: "authorization=Basic%20cGs6c2s=",
    },
    Setting {
        key: "LANGFUSE_HOST",
        default: SettingDefault::Unset,
        meaning: "Langfuse base URL: traces (when no OTLP endpoint is set) go to `{host}/api/public/otel/v1/traces`, routing scores to `{host}/api/public/scores`. All three `LANGFUSE_*` or none.",
        example: "http://langfuse-web:3000",
    },
    Setting {
        key: "LANGFUSE_PUBLIC_KEY",
        default: SettingDefault::Unset,
        meaning: "Langfuse project public key (`pk-lf-…`), the user of Basic auth.",
        example: "pk-lf-escalator-local",
    },
    Setting {
        key: "LANGFUSE_SECRET_KEY",
        default: SettingDefault::Unset,
        meaning: "Langfuse project secret key (`sk-lf-…`); never logged.",
        example: "sk-lf-escalator-local",
    },
    Setting {
        key: "ESCALATOR_ENVIRONMENT",
        default: SettingDefault::Value("production"),
        meaning: "Langfuse environment of every trace and score (`[a-z0-9-_]`, at most 40, not starting with `langfuse`); wins over `telemetry.environment`.",
        example: "staging",
    },
    Setting {
        key: "ESCALATOR_RELEASE",
        default: SettingDefault::Derived("the package version"),
        meaning: "Release shown in Langfuse (a git sha or image tag); wins over `telemetry.release`.",
        example: "v1.4.2",
    },
    Setting {
        key: "ESCALATOR_REDACT_TICKET_TEXT",
        default: SettingDefault::Value("false"),
        meaning: "`true` keeps ticket subject and message out of exported traces; wins over `telemetry.redact_ticket_text`.",
        example: "true",
    },
    Setting {
        key: "telemetry.environment",
        default: SettingDefault::Value("\"production\""),
        meaning: "Langfuse environment, when `ESCALATOR_ENVIRONMENT` is unset.",
        example: "\"production\"",
    },
    Setting {
        key: "telemetry.release",
        default: SettingDefault::Derived("the package version"),
        meaning: "Release, when `ESCALATOR_RELEASE` is unset.",
        example: "\"v1.4.2\"",
    },
    Setting {
        key: "telemetry.redact_ticket_text",
        default: SettingDefault::Value("false"),
        meaning: "Keep ticket text out of traces, when `ESCALATOR_REDACT_TICKET_TEXT` is unset.",
        example: "false",
    },
    Setting {
        key: "telemetry.score_interval_secs",
        default: SettingDefault::Value("10"),
        meaning: "How often pending routing scores are sent to Langfuse (failures are retried with backoff).",
        example: "10",
    },
];

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

/// `[telemetry]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileTelemetry {
    environment: Option<String>,
    release: Option<String>,
    redact_ticket_text: Option<bool>,
    score_interval_secs: Option<u64>,
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

impl TelemetrySettings {
    /// The telemetry settings: `ESCALATOR_LOG*`, `OTEL_EXPORTER_OTLP_*`, `LANGFUSE_*` and
    /// `ESCALATOR_{ENVIRONMENT,RELEASE,REDACT_TICKET_TEXT}` over `[telemetry]` in the file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the bad key.
    pub(crate) fn load(env: &dyn EnvSource, file: FileTelemetry) -> Result<Self, ConfigError> {
        let langfuse = match (
            env.get("LANGFUSE_HOST"),
            env.get("LANGFUSE_PUBLIC_KEY"),
            env.get("LANGFUSE_SECRET_KEY"),
        ) {
            (Some(host), Some(public_key), Some(secret)) => {
                if !is_http_url(&host) {
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
            if !is_http_url(&t.endpoint) {
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
}
