//! Settings of the weekly audit: the `[audit]` table of the TOML file (the bar, the optional
//! weekly run inside `serve`, where the labels live in the repository, Message Batches
//! polling) and the GitHub variables the labels pull request needs.

use std::time::Duration;

use chrono::Weekday;
use secrecy::SecretString;
use serde::Deserialize;

use crate::env::{ConfigError, EnvSource, Setting, SettingDefault, invalid};

/// Every setting of this module, for the configuration reference (`crate::config::reference`).
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "GITHUB_TOKEN",
        default: SettingDefault::Unset,
        meaning: "Token for the labels pull request (contents and pull requests, read and write, on the one repository; never logged). Unset: the audit reports but opens no pull request.",
        example: "github_pat_0123456789",
    },
    Setting {
        key: "GITHUB_REPOSITORY",
        default: SettingDefault::Unset,
        meaning: "`owner/name` of the repository that holds `prompts/` and `labels/`; required with `GITHUB_TOKEN`.",
        example: "acme/escalator",
    },
    Setting {
        key: "GITHUB_API_URL",
        default: SettingDefault::Value("https://api.github.com"),
        meaning: "GitHub REST API root (GitHub Enterprise Server: `https://<host>/api/v3`).",
        example: "https://api.github.com",
    },
    Setting {
        key: "GITHUB_BASE_BRANCH",
        default: SettingDefault::Derived("`audit.base_branch`, else `main`"),
        meaning: "The branch the labels pull request targets (wins over `audit.base_branch`).",
        example: "main",
    },
    Setting {
        key: "audit.weeks",
        default: SettingDefault::Value("8"),
        meaning: "ISO weeks `escalator audit` reports (1..=104; `--weeks` overrides).",
        example: "8",
    },
    Setting {
        key: "audit.min_accuracy",
        default: SettingDefault::Value("0.9"),
        meaning: "The bar of the last full week's sampled accuracy (0..1; `--min-accuracy` overrides).",
        example: "0.9",
    },
    Setting {
        key: "audit.min_verdicts",
        default: SettingDefault::Value("30"),
        meaning: "Sampled verdicts a week needs before the bar applies (fewer: \"not enough verdicts\").",
        example: "30",
    },
    Setting {
        key: "audit.schedule_weekday",
        default: SettingDefault::Unset,
        meaning: "With `schedule_hour`: the weekly audit run inside `serve` (review time zone), which opens or updates the labels pull request below the bar. Unset: no weekly run.",
        example: "\"mon\"",
    },
    Setting {
        key: "audit.schedule_hour",
        default: SettingDefault::Unset,
        meaning: "Hour (0..=23) of the weekly run; required with `schedule_weekday`.",
        example: "7",
    },
    Setting {
        key: "audit.base_branch",
        default: SettingDefault::Value("\"main\""),
        meaning: "The branch the labels pull request targets (`GITHUB_BASE_BRANCH` wins).",
        example: "\"main\"",
    },
    Setting {
        key: "audit.labels_path",
        default: SettingDefault::Value("\"labels/labels.csv\""),
        meaning: "The training labels in the repository, which the pull request appends to.",
        example: "\"labels/labels.csv\"",
    },
    Setting {
        key: "audit.holdout_path",
        default: SettingDefault::Value("\"labels/holdout.csv\""),
        meaning: "The holdout in the repository the labels must stay apart from.",
        example: "\"labels/holdout.csv\"",
    },
    Setting {
        key: "audit.prompt_path",
        default: SettingDefault::Value("\"prompts/classifier.md\""),
        meaning: "The prompt template in the repository (for the prompt version the change implies).",
        example: "\"prompts/classifier.md\"",
    },
    Setting {
        key: "audit.batch_poll_secs",
        default: SettingDefault::Value("30"),
        meaning: "How often a Message Batch (`eval --batch`, the pull request's measured effect) is polled.",
        example: "30",
    },
    Setting {
        key: "audit.batch_max_wait_secs",
        default: SettingDefault::Value("7200"),
        meaning: "How long to wait for a Message Batch before giving it up.",
        example: "7200",
    },
];

/// The default GitHub REST API (GitHub Enterprise Server: `https://<host>/api/v3`).
pub const DEFAULT_GITHUB_API_URL: &str = "https://api.github.com";

/// The weekly audit.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// `[audit] weeks`: ISO weeks reported (`--weeks` overrides it).
    pub weeks: usize,
    /// `[audit] min_accuracy`: the bar of the last full week (`--min-accuracy`).
    pub min_accuracy: f64,
    /// `[audit] min_verdicts`: verdicts the week needs before the bar applies (`--min-verdicts`).
    pub min_verdicts: u64,
    /// `[audit] schedule_weekday` and `schedule_hour`: the weekly run inside `serve` (review
    /// time zone), which opens or updates the labels pull request when the bar is missed.
    /// `None` (the default): no weekly run.
    pub schedule: Option<(Weekday, u32)>,
    /// Where the labels pull request goes; `None` without `GITHUB_TOKEN` and
    /// `GITHUB_REPOSITORY`.
    pub github: Option<GithubSettings>,
    /// `[audit] batch_poll_secs`: how often a Message Batch is polled.
    pub batch_poll: Duration,
    /// `[audit] batch_max_wait_secs`: how long to wait for a batch before giving it up (the
    /// API expires unfinished requests after 24 hours).
    pub batch_max_wait: Duration,
}

/// The repository that holds `prompts/` and `labels/`, and how to reach it.
#[derive(Debug, Clone)]
pub struct GithubSettings {
    /// `GITHUB_TOKEN`: contents and pull requests, read and write, on the one repository.
    pub token: SecretString,
    /// `GITHUB_REPOSITORY`'s owner.
    pub owner: String,
    /// `GITHUB_REPOSITORY`'s name.
    pub repo: String,
    /// `GITHUB_API_URL`, trailing slash dropped.
    pub api_url: String,
    /// `[audit] base_branch` (or `GITHUB_BASE_BRANCH`): the branch the pull request targets.
    pub base_branch: String,
    /// `[audit] labels_path`: the training labels in the repository.
    pub labels_path: String,
    /// `[audit] holdout_path`: the holdout the labels must not overlap.
    pub holdout_path: String,
    /// `[audit] prompt_path`: the prompt template (for the version the change implies).
    pub prompt_path: String,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            weeks: 8,
            min_accuracy: super::DEFAULT_MIN_ACCURACY,
            min_verdicts: super::DEFAULT_MIN_VERDICTS,
            schedule: None,
            github: None,
            batch_poll: Duration::from_secs(30),
            batch_max_wait: Duration::from_secs(2 * 3600),
        }
    }
}

/// `[audit]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileAudit {
    weeks: Option<usize>,
    min_accuracy: Option<f64>,
    min_verdicts: Option<u64>,
    schedule_weekday: Option<String>,
    schedule_hour: Option<u32>,
    base_branch: Option<String>,
    labels_path: Option<String>,
    holdout_path: Option<String>,
    prompt_path: Option<String>,
    batch_poll_secs: Option<u64>,
    batch_max_wait_secs: Option<u64>,
}

impl AuditSettings {
    /// Loads `[audit]` and the `GITHUB_*` variables.
    ///
    /// # Errors
    /// [`ConfigError`] naming the bad key.
    pub(crate) fn load(env: &dyn EnvSource, file: FileAudit) -> Result<Self, ConfigError> {
        let d = Self::default();
        let weeks = file.weeks.unwrap_or(d.weeks);
        if !(1..=104).contains(&weeks) {
            return Err(invalid("audit.weeks", "must be within 1..=104"));
        }
        let min_accuracy = file.min_accuracy.unwrap_or(d.min_accuracy);
        if !(0.0..=1.0).contains(&min_accuracy) {
            return Err(invalid("audit.min_accuracy", "must be within 0..1"));
        }
        let schedule = match (file.schedule_weekday, file.schedule_hour) {
            (None, None) => None,
            (Some(day), Some(hour)) => {
                let weekday = day.trim().parse::<Weekday>().map_err(|_| {
                    invalid(
                        "audit.schedule_weekday",
                        format!("{day:?} is not a weekday (mon, tue, …)"),
                    )
                })?;
                if hour > 23 {
                    return Err(invalid("audit.schedule_hour", "must be within 0..=23"));
                }
                Some((weekday, hour))
            }
            (Some(_), None) => {
                return Err(invalid(
                    "audit.schedule_hour",
                    "is required with audit.schedule_weekday",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "audit.schedule_weekday",
                    "is required with audit.schedule_hour",
                ));
            }
        };
        let github = match (env.get("GITHUB_TOKEN"), env.get("GITHUB_REPOSITORY")) {
            (Some(token), Some(repository)) => {
                let (owner, repo) = repository
                    .trim()
                    .split_once('/')
                    .filter(|(o, r)| {
                        !o.is_empty() && !r.is_empty() && !r.contains('/') && !o.contains(' ')
                    })
                    .ok_or_else(|| invalid("GITHUB_REPOSITORY", "must be owner/name"))?;
                Some(GithubSettings {
                    token: SecretString::from(token),
                    owner: owner.to_owned(),
                    repo: repo.to_owned(),
                    api_url: crate::env::http_url(
                        env,
                        "GITHUB_API_URL",
                        None,
                        DEFAULT_GITHUB_API_URL,
                    )?,
                    base_branch: env
                        .get("GITHUB_BASE_BRANCH")
                        .or(file.base_branch)
                        .map(|b| b.trim().to_owned())
                        .filter(|b| !b.is_empty())
                        .unwrap_or_else(|| "main".to_owned()),
                    labels_path: file
                        .labels_path
                        .unwrap_or_else(|| "labels/labels.csv".to_owned()),
                    holdout_path: file
                        .holdout_path
                        .unwrap_or_else(|| "labels/holdout.csv".to_owned()),
                    prompt_path: file
                        .prompt_path
                        .unwrap_or_else(|| "prompts/classifier.md".to_owned()),
                })
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "GITHUB_REPOSITORY",
                    "is required with GITHUB_TOKEN (owner/name)",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "GITHUB_TOKEN",
                    "is required with GITHUB_REPOSITORY",
                ));
            }
        };
        let secs = |v: Option<u64>, default: Duration, key: &str| match v {
            Some(0) => Err(invalid(key, "must be at least 1")),
            Some(s) => Ok(Duration::from_secs(s)),
            None => Ok(default),
        };
        Ok(Self {
            weeks,
            min_accuracy,
            min_verdicts: file.min_verdicts.unwrap_or(d.min_verdicts),
            schedule,
            github,
            batch_poll: secs(file.batch_poll_secs, d.batch_poll, "audit.batch_poll_secs")?,
            batch_max_wait: secs(
                file.batch_max_wait_secs,
                d.batch_max_wait,
                "audit.batch_max_wait_secs",
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use secrecy::ExposeSecret as _;

    use super::*;

    fn file(toml: &str) -> FileAudit {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn defaults_schedule_and_github_are_checked() {
        let s = AuditSettings::load(&BTreeMap::new(), FileAudit::default()).unwrap();
        assert_eq!((s.weeks, s.min_verdicts), (8, 30));
        assert!(s.schedule.is_none() && s.github.is_none());
        let s = AuditSettings::load(
            &BTreeMap::from([
                ("GITHUB_TOKEN", "ghp_secret"),
                ("GITHUB_REPOSITORY", "acme/support-config"),
                ("GITHUB_API_URL", "https://ghe.example/api/v3/"),
            ]),
            file("schedule_weekday = \"mon\"\nschedule_hour = 7\nbase_branch = \"trunk\""),
        )
        .unwrap();
        assert_eq!(s.schedule, Some((Weekday::Mon, 7)));
        let g = s.github.unwrap();
        assert_eq!(
            (g.owner.as_str(), g.repo.as_str()),
            ("acme", "support-config")
        );
        assert_eq!(g.api_url, "https://ghe.example/api/v3");
        assert_eq!(g.base_branch, "trunk");
        assert_eq!(g.token.expose_secret(), "ghp_secret");
        assert!(!format!("{g:?}").contains("ghp_secret"));
        let e = AuditSettings::load(
            &BTreeMap::new(),
            file("schedule_weekday = \"someday\"\nschedule_hour = 7"),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("audit.schedule_weekday"), "{e}");
        let e = AuditSettings::load(&BTreeMap::new(), file("schedule_hour = 7")).unwrap_err();
        assert!(e.to_string().starts_with("audit.schedule_weekday"), "{e}");
        let e = AuditSettings::load(
            &BTreeMap::from([("GITHUB_TOKEN", "t"), ("GITHUB_REPOSITORY", "no-slash")]),
            FileAudit::default(),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "GITHUB_REPOSITORY: must be owner/name");
        assert!(toml::from_str::<FileAudit>("colour = 1").is_err());
    }
}
