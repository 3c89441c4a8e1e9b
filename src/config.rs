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
#[derive(Debug, Clone)]
pub struct ClaudeSettings {
    /// `ANTHROPIC_API_KEY`; never logged.
    pub api_key: Option<SecretString>,
    /// `ANTHROPIC_BASE_URL`.
    pub base_url: String,
    /// `ESCALATOR_MODEL`.
    pub model: String,
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
    /// Names of unknown `ESCALATOR_*` variables and unknown file keys, warned about at start.
    pub warnings: Vec<String>,
    /// The webhook bridge, the Plain and Pylon adapters, per-route targets and the action worker.
    pub ticketing: TicketingSettings,
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
    plain: FilePlain,
    #[serde(default)]
    pylon: FilePylon,
    #[serde(default)]
    actions: FileActions,
    #[serde(default)]
    routes: BTreeMap<String, FileRoute>,
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
            .or(file.claude.base_url)
            .unwrap_or_else(|| "https://api.anthropic.com".to_owned());
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                key: "ANTHROPIC_BASE_URL".into(),
                reason: "must be an http(s) URL".into(),
            });
        }
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
            },
            claude: ClaudeSettings {
                api_key: env.get("ANTHROPIC_API_KEY").map(SecretString::from),
                base_url: base_url.trim_end_matches('/').to_owned(),
                model: env
                    .get("ESCALATOR_MODEL")
                    .or(file.claude.model)
                    .unwrap_or_else(|| "claude-sonnet-4-6".to_owned()),
            },
            triage: TriageSettings::default(),
            shutdown_grace: Duration::from_secs(file.shutdown_grace_secs.unwrap_or(20)),
            prompt_file: file.prompt.template_file,
            labels_file: file.prompt.labels_file,
            warnings,
            ticketing,
        })
    }
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
