//! Where settings come from, and what every settings section shares: the key/value source (the
//! process environment, or a map in tests, so no test touches the process environment), the
//! error naming a bad key, and the small parsers. A leaf: it imports nothing of ours, so each
//! module can own its settings section without importing `config` (which composes them).

use std::collections::{BTreeMap, HashMap};

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
    /// The TOML file cannot be read or parsed (an unknown key included: the parser names it).
    #[error("ESCALATOR_CONFIG {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Shorthand for [`ConfigError::Invalid`].
pub fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// A boolean in the usual spellings (`1/0`, `true/false`, `yes/no`, `on/off`).
///
/// # Errors
/// [`ConfigError::Invalid`] naming `key` for anything else.
pub fn parse_bool(key: &str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(key, format!("{v:?} is not true or false"))),
    }
}

/// An http(s) base URL from `key` in the environment, else the file's value, else `default`;
/// trailing slashes dropped.
///
/// # Errors
/// [`ConfigError::Invalid`] naming `key` when the value is not an http(s) URL.
pub fn http_url(
    env: &dyn EnvSource,
    key: &str,
    file: Option<String>,
    default: &str,
) -> Result<String, ConfigError> {
    let v = env.get(key).or(file).unwrap_or_else(|| default.to_owned());
    if !is_http_url(&v) {
        return Err(invalid(key, "must be an http(s) URL"));
    }
    Ok(v.trim_end_matches('/').to_owned())
}

/// Whether `v` starts with `http://` or `https://`.
pub fn is_http_url(v: &str) -> bool {
    v.starts_with("http://") || v.starts_with("https://")
}

/// A trimmed string, `None` when blank.
pub fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// A finite amount >= 0, if set.
///
/// # Errors
/// [`ConfigError::Invalid`] naming `key` for a negative or non-finite amount.
pub fn amount(key: &str, v: Option<f64>) -> Result<Option<f64>, ConfigError> {
    match v {
        Some(a) if !a.is_finite() || a < 0.0 => {
            Err(invalid(key, format!("{a} is not a finite amount >= 0")))
        }
        other => Ok(other),
    }
}

/// One documented setting: an environment variable or a key of the `ESCALATOR_CONFIG` file.
///
/// Each settings module lists its own in a `SETTINGS` table; `config::reference` composes them
/// into the operator's configuration reference (`deploy/README.md`), and the loader tests check
/// each table against the real parser (every variable the loader reads and every key the file
/// accepts is listed, every literal default is what the loader does when the setting is
/// absent, every example loads), so the document cannot drift from the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// An environment variable (`ANTHROPIC_API_KEY`: upper case) or a dotted file key
    /// (`claude.max_tokens`; `<route>` and `<model>` stand for a table name the operator picks).
    pub key: &'static str,
    /// What happens when it is not set.
    pub default: SettingDefault,
    /// What it is for, in one or two sentences.
    pub meaning: &'static str,
    /// A valid value as it is written (a TOML literal for file keys), shown for settings that
    /// are unset by default; the loader tests load every example at once.
    pub example: &'static str,
}

/// A setting's default, as the reference shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingDefault {
    /// A value as it is written (a TOML literal for file keys): setting it changes nothing.
    Value(&'static str),
    /// Unset by default; the meaning says what that does.
    Unset,
    /// Computed from other settings or the build; the text says how.
    Derived(&'static str),
}

impl Setting {
    /// Whether the key is an environment variable (upper case) rather than a file key.
    pub fn is_env(&self) -> bool {
        self.key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    }
}

/// The tables of a TOML file's `text` as a section's file type `T`, failing as the loader does
/// (`ConfigError::File`): for a section's tests, which load its tables without the whole
/// configuration.
///
/// # Errors
/// The parse error, as the loader reports it.
#[cfg(test)]
pub(crate) fn file_tables<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::File {
        path: "test.toml".into(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_name_their_key() {
        assert!(parse_bool("K", "Yes").unwrap());
        assert_eq!(
            parse_bool("K", "maybe").unwrap_err().to_string(),
            "K: \"maybe\" is not true or false"
        );
        let env = BTreeMap::from([("U", "ftp://x")]);
        assert_eq!(
            http_url(&env, "U", None, "https://d")
                .unwrap_err()
                .to_string(),
            "U: must be an http(s) URL"
        );
        assert_eq!(
            http_url(&env, "V", None, "https://d/").unwrap(),
            "https://d"
        );
        assert!(amount("A", Some(-1.0)).is_err());
        assert_eq!(non_empty(Some("  ".into())), None);
    }
}
