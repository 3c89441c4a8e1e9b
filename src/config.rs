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
//!
//! Over 450 lines with its tests: the composition of every section and the generated configuration
//! reference, with the tests that keep that reference in step with the parsers.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context as _;
use serde::Deserialize;

use crate::{
    classifier::claude::settings::{ClaudeSettings, FileClaude},
    env::{ConfigError, EnvSource, Setting, SettingDefault},
    store::{StoreSettings, settings::FileDatabase},
    telemetry::settings::{FileTelemetry, TelemetrySettings},
    ticketing::settings::{FilePlain, FilePylon, FileRoute, FileTicketing, TicketingSettings},
    triage::TriageSettings,
    worker::settings::{FileActions, FileWorker, WorkerSettings},
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
    "ESCALATOR_REVIEWERS_FILE",
    "ESCALATOR_GRPC_CALLERS_FILE",
];

/// The settings this module owns: the listeners, the file itself, the drain deadline and the
/// prompt files (the reference in `deploy/README.md` is rendered from these tables).
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "ESCALATOR_GRPC_ADDR",
        default: SettingDefault::Value("127.0.0.1:50051"),
        meaning: "gRPC listen address (`Classify`, `Route`, health, reflection); wins over `grpc_addr`. In a container: `0.0.0.0:50051`, which needs callers (`ESCALATOR_GRPC_CALLERS_FILE`) or `grpc.allow_unauthenticated`.",
        example: "0.0.0.0:50051",
    },
    Setting {
        key: "ESCALATOR_HTTP_ADDR",
        default: SettingDefault::Value("127.0.0.1:8080"),
        meaning: "HTTP listen address (webhooks, `/healthz`, `/readyz`, `/metrics`, `/review`); wins over `http_addr`.",
        example: "0.0.0.0:8080",
    },
    Setting {
        key: "ESCALATOR_CONFIG",
        default: SettingDefault::Unset,
        meaning: "Path of the optional TOML file holding the file keys below. Unset: defaults and environment only.",
        example: "/etc/escalator/escalator.toml",
    },
    Setting {
        key: "grpc_addr",
        default: SettingDefault::Value("\"127.0.0.1:50051\""),
        meaning: "gRPC listen address, when `ESCALATOR_GRPC_ADDR` is unset.",
        example: "\"0.0.0.0:50051\"",
    },
    Setting {
        key: "http_addr",
        default: SettingDefault::Value("\"127.0.0.1:8080\""),
        meaning: "HTTP listen address, when `ESCALATOR_HTTP_ADDR` is unset.",
        example: "\"0.0.0.0:8080\"",
    },
    Setting {
        key: "shutdown_grace_secs",
        default: SettingDefault::Value("20"),
        meaning: "The drain deadline: after SIGTERM, how long in-flight requests and worker items may take before the process exits. Keep a pod's `terminationGracePeriodSeconds` above it.",
        example: "20",
    },
    Setting {
        key: "http_timeout_secs",
        default: SettingDefault::Value("15"),
        meaning: "Longest time one HTTP request (webhook, page, probe, metrics) may take; past it the request is cancelled and answered 503, so a webhook sender retries and one slow call cannot hold the drain. Keep it below `shutdown_grace_secs`.",
        example: "15",
    },
    Setting {
        key: "prompt.template_file",
        default: SettingDefault::Unset,
        meaning: "A prompt template to classify with instead of the embedded `prompts/classifier.md` (the prompt version changes with it).",
        example: "\"prompts/classifier.md\"",
    },
    Setting {
        key: "prompt.labels_file",
        default: SettingDefault::Unset,
        meaning: "A labels file for the prompt's examples instead of the embedded `labels/labels.csv`.",
        example: "\"labels/labels.csv\"",
    },
];

/// Everything the service needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// gRPC listen address (`ESCALATOR_GRPC_ADDR`); port 0 picks a free port (tests).
    pub grpc_addr: SocketAddr,
    /// Who may call the gRPC API, reflection and TLS (`[grpc]`,
    /// `ESCALATOR_GRPC_CALLERS_FILE`).
    pub grpc: crate::grpc::settings::GrpcSettings,
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
    /// Longest time one HTTP request may take (`http_timeout_secs`).
    pub http_timeout: Duration,
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
    /// Topics, sentiment and shadow categories (`[labels]`).
    pub labels: crate::taxonomy::settings::LabelSettings,
}

/// The optional TOML file: each table is the section of the module that owns it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    grpc_addr: Option<String>,
    http_addr: Option<String>,
    database_url: Option<String>,
    shutdown_grace_secs: Option<u64>,
    http_timeout_secs: Option<u64>,
    #[serde(default)]
    grpc: crate::grpc::settings::FileGrpc,
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
    actions: FileActionsTable,
    #[serde(default)]
    worker: FileWorker,
    #[serde(default)]
    routes: BTreeMap<String, FileRoute>,
    #[serde(default)]
    review: crate::review::settings::FileReview,
    #[serde(default)]
    audit: crate::audit::settings::FileAudit,
    #[serde(default)]
    tiers: crate::weighting::settings::FileTiers,
    #[serde(default)]
    labels: crate::taxonomy::settings::FileLabels,
    #[serde(default)]
    followups: crate::triage::followup::FileFollowUps,
}

/// `[actions]`: one table with keys of two sections, kept together so existing files stay
/// valid: `api_tool` is the ticketing's, the others are the worker's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileActionsTable {
    api_tool: Option<String>,
    enabled: Option<bool>,
    poll_interval_ms: Option<u64>,
    action_lease_secs: Option<u64>,
    delivery_lease_secs: Option<u64>,
    batch: Option<u32>,
    backoff_base_ms: Option<u64>,
    backoff_max_secs: Option<u64>,
}

impl FileActionsTable {
    /// The ticketing's `api_tool` and the worker's keys.
    fn split(self) -> (Option<String>, FileActions) {
        let worker = FileActions {
            enabled: self.enabled,
            poll_interval_ms: self.poll_interval_ms,
            action_lease_secs: self.action_lease_secs,
            delivery_lease_secs: self.delivery_lease_secs,
            batch: self.batch,
            backoff_base_ms: self.backoff_base_ms,
            backoff_max_secs: self.backoff_max_secs,
        };
        (self.api_tool, worker)
    }
}

/// `[prompt]`: files to classify with instead of the embedded ones.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePrompt {
    template_file: Option<PathBuf>,
    labels_file: Option<PathBuf>,
}

impl Settings {
    /// What renders the prompt besides its template and examples: the configured labels and
    /// weighting sentences.
    pub fn prompt_spec(&self) -> crate::prompt::PromptSpec {
        crate::prompt::PromptSpec {
            taxonomy: self.labels.taxonomy.clone(),
            weighting: self.triage.weighting.clone(),
        }
    }

    /// The prompt and labels the service classifies with, loaded from the configured files or the
    /// embedded copies.
    ///
    /// # Errors
    /// When a configured file cannot be read or the labels or template are invalid.
    pub fn load_prompt(
        &self,
    ) -> anyhow::Result<(crate::prompt::Prompt, Vec<crate::examples::Example>)> {
        let examples = match &self.labels_file {
            Some(path) => crate::examples::load(path),
            None => crate::examples::parse(
                "labels/labels.csv (embedded)",
                crate::examples::EMBEDDED_LABELS,
            ),
        }
        .map_err(|problems| {
            anyhow::anyhow!(
                "labels are invalid:\n{}",
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })?;
        let template = match &self.prompt_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read prompt template {}", path.display()))?,
            None => crate::prompt::EMBEDDED_TEMPLATE.to_owned(),
        };
        let prompt = self.prompt_spec().render(&template, &examples)?;
        Ok((prompt, examples))
    }

    /// The classifiers these settings describe, over the prompt of [`Settings::load_prompt`];
    /// `model_info` is the start-up check's answer about the model, if it ran.
    ///
    /// # Errors
    /// When the prompt cannot be loaded or the Claude client cannot be built.
    pub fn classifiers(
        &self,
        model_info: Option<&crate::classifier::claude::models::ModelInfo>,
    ) -> anyhow::Result<crate::classifier::Classifiers> {
        let (prompt, examples) = self.load_prompt()?;
        Ok(crate::classifier::Classifiers::build(
            &self.claude,
            prompt,
            &examples,
            model_info,
        )?)
    }

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
        let (api_tool, actions) = file.actions.split();
        let worker = WorkerSettings::load(
            &actions,
            file.worker,
            claude.api_key.is_some().then_some(claude.max_concurrency),
        )?;
        let ticketing = TicketingSettings::load(
            env,
            FileTicketing {
                plain: file.plain,
                pylon: file.pylon,
                api_tool,
                routes: file.routes,
            },
        )?;
        let store = StoreSettings::load(
            env,
            file.database_url,
            file.database,
            worker.stale_after,
            ticketing.request_timeout(),
        )?;
        let grpc_addr = addr("ESCALATOR_GRPC_ADDR", file.grpc_addr, "127.0.0.1:50051")?;
        Ok(Self {
            grpc: crate::grpc::settings::GrpcSettings::load(env, file.grpc, grpc_addr)?,
            grpc_addr,
            http_addr: addr("ESCALATOR_HTTP_ADDR", file.http_addr, "127.0.0.1:8080")?,
            store,
            claude,
            triage: TriageSettings {
                weighting: crate::weighting::Weighting::load(file.tiers)?,
                followups: crate::triage::FollowUpSettings::load(file.followups)?,
                ..TriageSettings::default()
            },
            shutdown_grace: Duration::from_secs(file.shutdown_grace_secs.unwrap_or(20)),
            http_timeout: match file.http_timeout_secs.unwrap_or(15) {
                0 => {
                    return Err(crate::env::invalid(
                        "http_timeout_secs",
                        "must be at least 1",
                    ));
                }
                s => Duration::from_secs(s),
            },
            prompt_file: file.prompt.template_file,
            labels_file: file.prompt.labels_file,
            telemetry,
            warnings,
            ticketing,
            worker,
            review: crate::review::ReviewSettings::load(env, file.review)?,
            audit: crate::audit::AuditSettings::load(env, file.audit)?,
            labels: crate::taxonomy::settings::LabelSettings::load(file.labels)?,
        })
    }
}

/// One part of the configuration reference: the settings one module owns.
#[derive(Debug, Clone, Copy)]
pub struct ReferenceSection {
    /// The heading.
    pub title: &'static str,
    /// The file that owns these settings (and their table).
    pub owner: &'static str,
    /// The settings.
    pub settings: &'static [Setting],
}

/// Every setting, grouped by the module that owns it: the source of the configuration
/// reference in `deploy/README.md` (rendered by [`render_reference`]).
pub fn reference() -> [ReferenceSection; 12] {
    [
        ReferenceSection {
            title: "Server",
            owner: "src/config.rs",
            settings: SETTINGS,
        },
        ReferenceSection {
            title: "gRPC callers, reflection and TLS",
            owner: "src/grpc/settings.rs",
            settings: crate::grpc::settings::SETTINGS,
        },
        ReferenceSection {
            title: "Routing log",
            owner: "src/store/settings.rs",
            settings: crate::store::settings::SETTINGS,
        },
        ReferenceSection {
            title: "Claude classifier",
            owner: "src/classifier/claude/settings.rs",
            settings: crate::classifier::claude::settings::SETTINGS,
        },
        ReferenceSection {
            title: "Plain, Pylon and where each route lands",
            owner: "src/ticketing/settings.rs",
            settings: crate::ticketing::settings::SETTINGS,
        },
        ReferenceSection {
            title: "Tier weighting",
            owner: "src/weighting/settings.rs",
            settings: crate::weighting::settings::SETTINGS,
        },
        ReferenceSection {
            title: "Follow-ups",
            owner: "src/triage/followup.rs",
            settings: crate::triage::followup::SETTINGS,
        },
        ReferenceSection {
            title: "Worker",
            owner: "src/worker/settings.rs",
            settings: crate::worker::settings::SETTINGS,
        },
        ReferenceSection {
            title: "Logs, traces and Langfuse",
            owner: "src/telemetry/settings.rs",
            settings: crate::telemetry::settings::SETTINGS,
        },
        ReferenceSection {
            title: "Daily review",
            owner: "src/review/settings.rs",
            settings: crate::review::settings::SETTINGS,
        },
        ReferenceSection {
            title: "Weekly audit and the labels pull request",
            owner: "src/audit/settings.rs",
            settings: crate::audit::settings::SETTINGS,
        },
        ReferenceSection {
            title: "Topics, sentiment and shadow categories",
            owner: "src/taxonomy/settings.rs",
            settings: crate::taxonomy::settings::SETTINGS,
        },
    ]
}

/// The configuration reference as Markdown: one table per owning module, environment
/// variables first. `deploy/README.md` holds exactly this text between its
/// `BEGIN/END GENERATED CONFIGURATION REFERENCE` markers (a test compares them).
pub fn render_reference() -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = String::new();
    for section in reference() {
        out.push_str(&format!(
            "#### {} (`{}`)\n\n| setting | default | meaning |\n|---|---|---|\n",
            section.title, section.owner
        ));
        let (env, file): (Vec<&Setting>, Vec<&Setting>) =
            section.settings.iter().partition(|s| s.is_env());
        for s in env.into_iter().chain(file) {
            let (default, meaning) = match s.default {
                SettingDefault::Value(v) => (format!("`{v}`"), s.meaning.to_owned()),
                SettingDefault::Unset => (
                    "unset".to_owned(),
                    format!("{} Example: `{}`.", s.meaning, s.example),
                ),
                SettingDefault::Derived(how) => (how.to_owned(), s.meaning.to_owned()),
            };
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                s.key,
                cell(&default),
                cell(&meaning)
            ));
        }
        out.push('\n');
    }
    out
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
    fn every_prompt_version_comes_from_the_configured_labels_and_sentences() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "[tiers.pro]\nprompt = \"Pro pays for speed.\"\n\n[labels]\ntopics = [\"billing\", \"other\"]"
        )
        .unwrap();
        let path = f.path().to_str().unwrap().to_owned();
        let custom =
            Settings::load(&BTreeMap::from([("ESCALATOR_CONFIG", path.as_str())])).unwrap();
        let plain = Settings::load(&BTreeMap::new()).unwrap();
        let examples =
            crate::examples::parse("labels.csv", crate::examples::EMBEDDED_LABELS).unwrap();
        let template = crate::prompt::EMBEDDED_TEMPLATE;
        let served = custom.load_prompt().unwrap().0;
        // What `labels add-from-reviews` and the labels pull request render with.
        let spec = custom.prompt_spec().render(template, &examples).unwrap();
        assert_eq!(spec.version(), served.version());
        let default = plain.prompt_spec().render(template, &examples).unwrap();
        assert_ne!(default.version(), served.version());
        // Each part counts on its own.
        let mut only_labels = custom.prompt_spec();
        only_labels.weighting = plain.triage.weighting.clone();
        let v = only_labels.render(template, &examples).unwrap();
        assert_ne!(v.version(), served.version());
        assert_ne!(v.version(), default.version());
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
            ("[labels]\ntopic = []\n", "topic"),
            ("[labels.categories.x]\nmodes = \"shadow\"\n", "modes"),
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

/// The configuration reference checked against the real loader: every variable it reads and
/// every key the file accepts is documented (and nothing else), every literal default is what
/// the loader does without the setting, every example loads, and `deploy/README.md` holds the
/// rendered reference.
#[cfg(test)]
mod reference_tests {
    use std::{
        collections::{BTreeMap, BTreeSet},
        io::Write as _,
        sync::Mutex,
    };

    use super::*;

    /// The `ESCALATOR_CONFIG` file the tests load, and where the reference lives.
    const GUIDE: &str = "deploy/README.md";
    const BEGIN: &str = "<!-- BEGIN GENERATED CONFIGURATION REFERENCE: edit the SETTINGS tables in src/, then run `UPDATE_REFERENCE=1 cargo test --lib config::reference_tests` -->\n";
    const END: &str = "<!-- END GENERATED CONFIGURATION REFERENCE -->";

    /// An environment that records every variable the loader asks for.
    struct Recording<'a> {
        inner: &'a dyn EnvSource,
        read: Mutex<BTreeSet<String>>,
    }

    impl EnvSource for Recording<'_> {
        fn get(&self, key: &str) -> Option<String> {
            self.read
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(key.to_owned());
            self.inner.get(key)
        }
        fn keys(&self) -> Vec<String> {
            self.inner.keys()
        }
    }

    fn all() -> Vec<Setting> {
        reference()
            .iter()
            .flat_map(|s| s.settings.iter().copied())
            .collect()
    }

    /// A documented key as a path of TOML tables, with its placeholders filled in.
    fn path(key: &str) -> Vec<String> {
        key.split('.')
            .map(|seg| match seg {
                "<route>" => "bot".to_owned(),
                "<model>" => "claude-example".to_owned(),
                "<tier>" => "pro".to_owned(),
                "<category>" => "churn_risk".to_owned(),
                other => other.to_owned(),
            })
            .collect()
    }

    /// A TOML file setting each `(key, literal)`.
    fn toml_file(entries: &[(&str, &str)]) -> String {
        let mut root = toml::Table::new();
        for (key, literal) in entries {
            let value = toml::from_str::<toml::Table>(&format!("v = {literal}"))
                .unwrap_or_else(|e| panic!("{key}: {literal} is not a TOML value: {e}"))
                .remove("v")
                .unwrap_or_else(|| panic!("{key}: no value"));
            let segs = path(key);
            let (leaf, tables) = segs.split_last().unwrap_or_else(|| panic!("{key}"));
            let mut t = &mut root;
            for seg in tables {
                t = t
                    .entry(seg.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .unwrap_or_else(|| panic!("{key}: {seg} is not a table"));
            }
            t.insert(leaf.clone(), value);
        }
        toml::to_string(&root).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Loads `env` plus an `ESCALATOR_CONFIG` file holding `toml`.
    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut f = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        f.write_all(toml.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let p = f
            .path()
            .to_str()
            .unwrap_or_else(|| panic!("path"))
            .to_owned();
        let mut map = BTreeMap::from([("ESCALATOR_CONFIG", p.as_str())]);
        map.extend(env.iter().copied());
        Settings::load(&map)
    }

    fn debug(r: Result<Settings, ConfigError>) -> String {
        format!("{:?}", r.unwrap_or_else(|e| panic!("{e}")))
    }

    /// Where two `Debug` renderings part, with some context (the whole is a page long).
    fn difference(a: &str, b: &str) -> String {
        let at = a
            .char_indices()
            .zip(b.chars())
            .find(|((_, x), y)| x != y)
            .map_or(a.len().min(b.len()), |((i, _), _)| i);
        let from = a[..at].char_indices().rev().nth(60).map_or(0, |(i, _)| i);
        let cut = |s: &str| s[from..].chars().take(120).collect::<String>();
        format!("\n  with it:    …{}\n  without it: …{}", cut(a), cut(b))
    }

    #[test]
    fn keys_are_unique_and_examples_are_given() {
        let mut seen = BTreeSet::new();
        for s in all() {
            assert!(seen.insert(s.key), "{} is documented twice", s.key);
            assert!(!s.example.is_empty(), "{} has no example", s.key);
            assert!(!s.meaning.is_empty(), "{} has no meaning", s.key);
        }
    }

    /// Every variable the loader reads is documented, and every documented variable is read:
    /// recorded over an empty environment and over one with every example set at once (which
    /// must load, with a file holding every file example).
    #[test]
    fn the_documented_variables_are_the_ones_the_loader_reads() {
        let documented: BTreeSet<&str> =
            all().iter().filter(|s| s.is_env()).map(|s| s.key).collect();
        let empty = BTreeMap::<&str, &str>::new();
        let rec = Recording {
            inner: &empty,
            read: Mutex::new(BTreeSet::new()),
        };
        Settings::load(&rec).unwrap_or_else(|e| panic!("{e}"));

        let file_examples: Vec<(&str, &str)> = all()
            .iter()
            .filter(|s| !s.is_env())
            .map(|s| (s.key, s.example))
            .collect();
        let mut f = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        f.write_all(toml_file(&file_examples).as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let config = f
            .path()
            .to_str()
            .unwrap_or_else(|| panic!("path"))
            .to_owned();
        let mut full: BTreeMap<&str, &str> = all()
            .iter()
            .filter(|s| s.is_env())
            .map(|s| (s.key, s.example))
            .collect();
        full.insert("ESCALATOR_CONFIG", config.as_str());
        let rec_full = Recording {
            inner: &full,
            read: Mutex::new(BTreeSet::new()),
        };
        let loaded = Settings::load(&rec_full)
            .unwrap_or_else(|e| panic!("every example at once does not load: {e}"));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

        let mut read = rec.read.into_inner().unwrap_or_default();
        read.extend(rec_full.read.into_inner().unwrap_or_default());
        let read: BTreeSet<&str> = read.iter().map(String::as_str).collect();
        let undocumented: Vec<_> = read.difference(&documented).collect();
        let unread: Vec<_> = documented.difference(&read).collect();
        assert!(
            undocumented.is_empty() && unread.is_empty(),
            "read but not documented: {undocumented:?}; documented but never read: {unread:?}"
        );
        let known: BTreeSet<&str> = KNOWN_ESCALATOR_VARS.iter().copied().collect();
        let documented_escalator: BTreeSet<&str> = documented
            .iter()
            .copied()
            .filter(|k| k.starts_with("ESCALATOR_"))
            .collect();
        assert_eq!(known, documented_escalator, "KNOWN_ESCALATOR_VARS");
    }

    /// Setting a variable to its documented default changes nothing.
    #[test]
    fn documented_variable_defaults_are_the_loaders() {
        let baseline = debug(load("", &[]));
        for s in all().iter().filter(|s| s.is_env()) {
            if let SettingDefault::Value(v) = s.default {
                let with = debug(load("", &[(s.key, v)]));
                assert!(
                    with == baseline,
                    "{} = {v:?} is not the default:{}",
                    s.key,
                    difference(&with, &baseline)
                );
            }
        }
    }

    /// Writing a file key with its documented default changes nothing.
    #[test]
    fn documented_file_defaults_are_the_loaders() {
        let baseline = debug(load("", &[]));
        for s in all().iter().filter(|s| !s.is_env()) {
            if let SettingDefault::Value(v) = s.default {
                let toml = toml_file(&[(s.key, v)]);
                let with = debug(load(&toml, &[]));
                assert!(
                    with == baseline,
                    "{} = {v} is not the default:{}",
                    s.key,
                    difference(&with, &baseline)
                );
            }
        }
    }

    /// The field names serde expects in the table at `path`, from its unknown-field error.
    fn parser_keys(path: &[String]) -> BTreeSet<String> {
        let mut toml = String::new();
        if !path.is_empty() {
            let quoted: Vec<String> = path.iter().map(|p| format!("{p:?}")).collect();
            toml.push_str(&format!("[{}]\n", quoted.join(".")));
        }
        toml.push_str("not_a_key_of_ours = 0\n");
        let e = load(&toml, &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let Some((_, expected)) = e.split_once("expected") else {
            panic!("[{}]: no list of expected keys in {e:?}", path.join("."))
        };
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    /// Each table of the file accepts exactly the documented keys (and its documented
    /// sub-tables): a key the parser takes but the reference omits fails, and so does one the
    /// reference lists but the parser refuses.
    #[test]
    fn the_documented_file_keys_are_the_ones_the_parser_takes() {
        let keys: Vec<Vec<&str>> = all()
            .iter()
            .filter(|s| !s.is_env())
            .map(|s| s.key.split('.').collect())
            .collect();
        let mut tables: BTreeSet<Vec<&str>> = BTreeSet::new();
        for k in &keys {
            for n in 0..k.len() {
                tables.insert(k[..n].to_vec());
            }
        }
        for table in tables {
            let children: BTreeSet<&str> = keys
                .iter()
                .filter(|k| k.len() > table.len() && k[..table.len()] == table[..])
                .map(|k| k[table.len()])
                .collect();
            // A map of tables the operator names (`routes.<route>`, `claude.prices.<model>`).
            if children.iter().any(|c| c.starts_with('<')) {
                continue;
            }
            let concrete = path(&table.join("."));
            let concrete: Vec<String> = concrete.into_iter().filter(|s| !s.is_empty()).collect();
            let documented: BTreeSet<String> = children.iter().map(|c| (*c).to_owned()).collect();
            assert_eq!(
                parser_keys(&concrete),
                documented,
                "[{}]: the parser's keys (left) differ from the reference's (right)",
                table.join(".")
            );
        }
    }

    /// `deploy/README.md` holds the reference exactly as rendered from the tables. Run with
    /// `UPDATE_REFERENCE=1` to rewrite it.
    #[test]
    fn the_operators_guide_holds_the_rendered_reference() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GUIDE);
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{GUIDE}: {e}"));
        let (Some(start), Some(end)) = (text.find(BEGIN), text.find(END)) else {
            panic!("{GUIDE} lacks the reference markers:\n{BEGIN}{END}")
        };
        let current = &text[start + BEGIN.len()..end];
        let rendered = render_reference();
        if current == rendered {
            return;
        }
        if std::env::var_os("UPDATE_REFERENCE").is_some() {
            let updated = format!("{}{BEGIN}{rendered}{}", &text[..start], &text[end..]);
            std::fs::write(&file, updated).unwrap_or_else(|e| panic!("{GUIDE}: {e}"));
            return;
        }
        panic!(
            "{GUIDE}'s configuration reference differs from the SETTINGS tables in src/; run \
             `UPDATE_REFERENCE=1 cargo test --lib config::reference_tests` and commit it.\n\
             --- rendered ---\n{rendered}"
        );
    }
}
