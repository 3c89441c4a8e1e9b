//! Settings: defaults in code, then an optional TOML file named by `ESCALATOR_CONFIG`, then the
//! environment (which wins). The environment names are part of the contract (DESIGN.md), so each
//! is mapped explicitly. The loader reads a key/value source ([`EnvSource`]), so tests pass a
//! map instead of touching the process environment.
//!
//! This module only composes: each module owns its settings type and its section of the file
//! (`classifier::claude::settings`, `telemetry::settings`, `ticketing::settings`,
//! `worker::settings`, `store::settings`), and the source, the error and the parsers they share
//! live in the leaf [`crate::env`]. One policy for the file: a key no section knows, in any
//! table, is an error that names it, so a typo never silently falls back to a default.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;

use crate::{
    classifier::claude::settings::{ClaudeSettings, FileClaude},
    env::{ConfigError, EnvSource},
    store::{StoreSettings, settings::FileDatabase},
    telemetry::settings::{FileTelemetry, TelemetrySettings},
    ticketing::settings::{
        FileActions, FilePlain, FilePylon, FileRoute, FileTicketing, TicketingSettings,
    },
    triage::TriageSettings,
    worker::settings::{FileWorker, WorkerSettings},
};

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
    /// Names of unknown `ESCALATOR_*` variables, warned about at start (an unknown key in the
    /// file is an error instead).
    pub warnings: Vec<String>,
    /// The webhook bridge, the Plain and Pylon adapters and per-route targets.
    pub ticketing: TicketingSettings,
    /// The worker: inbox, outbox, recovery and heartbeat loops (`[worker]`, and the worker keys
    /// of `[actions]`).
    pub worker: WorkerSettings,
    /// The daily review (`[review]`, `ESCALATOR_ADMIN_TOKEN`).
    pub review: crate::review::ReviewSettings,
    /// The weekly audit (`[audit]`, `GITHUB_*`).
    pub audit: crate::audit::AuditSettings,
}

/// The optional TOML file: each table is the section of the module that owns it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
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
    worker: FileWorker,
    #[serde(default)]
    routes: BTreeMap<String, FileRoute>,
    #[serde(default)]
    review: crate::review::settings::FileReview,
    #[serde(default)]
    audit: crate::audit::settings::FileAudit,
}

/// `[prompt]`: files to classify with instead of the embedded ones.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePrompt {
    template_file: Option<PathBuf>,
    labels_file: Option<PathBuf>,
}

impl Settings {
    /// Loads settings from `env` (and the file it names).
    ///
    /// # Errors
    /// [`ConfigError`] naming the bad key; an unknown key in the file names the key.
    pub fn load(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let file = match env.get("ESCALATOR_CONFIG") {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                toml::from_str::<FileSettings>(&text).map_err(|e| ConfigError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?
            }
            None => FileSettings::default(),
        };
        let mut keys = env.keys();
        keys.sort();
        let warnings = keys
            .into_iter()
            .filter(|k| k.starts_with("ESCALATOR_") && !KNOWN_ESCALATOR_VARS.contains(&k.as_str()))
            .map(|k| format!("unknown environment variable {k} is ignored"))
            .collect();
        let addr = |key: &str,
                    file_val: Option<String>,
                    default: &str|
         -> Result<SocketAddr, ConfigError> {
            let v = env
                .get(key)
                .or(file_val)
                .unwrap_or_else(|| default.to_owned());
            v.parse().map_err(|e| {
                crate::env::invalid(key, format!("{v:?} is not a socket address: {e}"))
            })
        };
        let claude = ClaudeSettings::load(env, file.claude)?;
        let telemetry = TelemetrySettings::load(env, file.telemetry)?;
        let worker = WorkerSettings::load(
            &file.actions,
            file.worker,
            claude.api_key.is_some().then_some(claude.max_concurrency),
        )?;
        let store = StoreSettings::load(env, file.database_url, file.database, worker.stale_after)?;
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
            store,
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
            audit: crate::audit::AuditSettings::load(env, file.audit)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use secrecy::ExposeSecret as _;

    use super::*;
    use crate::classifier::claude::{ApiVersion, CacheTtl, Effort, price::Price};

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
    fn env_wins_over_file_and_unknown_variables_are_warned() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "http_addr = \"127.0.0.1:9000\"\ngrpc_addr = \"127.0.0.1:9001\""
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
        assert_eq!(
            s.warnings,
            ["unknown environment variable ESCALATOR_GPRC_ADDR is ignored"]
        );
    }

    /// One policy in every table: an unknown key stops the start and the error names it.
    #[test]
    fn an_unknown_key_in_any_table_is_an_error_naming_it() {
        for (toml, key) in [
            ("colour = \"red\"\n", "colour"),
            ("[database]\nmax_conections = 3\n", "max_conections"),
            ("[claude]\nmodle = \"x\"\n", "modle"),
            ("[prompt]\ntemplate = \"x\"\n", "template"),
            ("[telemetry]\nenviroment = \"x\"\n", "enviroment"),
            ("[plain]\napi_key = \"x\"\n", "api_key"),
            ("[pylon]\ntoken = \"x\"\n", "token"),
            ("[actions]\nbackof_base_ms = 1\n", "backof_base_ms"),
            ("[worker]\nslots = 1\n", "slots"),
            ("[routes.bot.plain]\nlabel = \"x\"\n", "label"),
            ("[routes.bot]\nslack = {}\n", "slack"),
        ] {
            let mut f = tempfile::NamedTempFile::new().unwrap();
            f.write_all(toml.as_bytes()).unwrap();
            let path = f.path().to_str().unwrap().to_owned();
            let e = Settings::load(&BTreeMap::from([("ESCALATOR_CONFIG", path.as_str())]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("unknown field `{key}`")), "{toml}: {e}");
        }
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
