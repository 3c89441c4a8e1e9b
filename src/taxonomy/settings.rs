//! Settings of the labels: the `[labels]` table of the TOML file (topics, the shadow and live
//! categories, and the promotion gate's minimum).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Category, DEFAULT_TOPICS, Kind, Mode, Taxonomy};
use crate::{
    domain::Severity,
    env::{ConfigError, Setting, SettingDefault, invalid},
};

/// Default `[labels] promote_min_reviewed`.
pub const DEFAULT_PROMOTE_MIN_REVIEWED: u64 = 30;

/// The settings this module owns (rendered into the reference in `deploy/README.md`).
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "labels.topics",
        default: SettingDefault::Value(
            "[\"billing\", \"bug\", \"outage\", \"account_access\", \"how_to\", \"feature_request\", \"security\", \"legal\", \"other\"]",
        ),
        meaning: "The topics a decision is labelled with (one lowercase word each, `other` required: the answer when none fits). They are the enum of the answer's `topic`, so changing them changes the prompt version.",
        example: "[\"billing\", \"bug\", \"outage\", \"other\"]",
    },
    Setting {
        key: "labels.promote_min_reviewed",
        default: SettingDefault::Value("30"),
        meaning: "Reviewed tickets a shadow category needs (with at least 90% of them right) before `escalator promote` makes it live.",
        example: "30",
    },
    Setting {
        key: "labels.categories.<category>.kind",
        default: SettingDefault::Unset,
        meaning: "What category `<category>` (one lowercase word) would be: `\"topic\"` (another topic) or `\"severity\"` (another clause of the severity named by `severity`). Required for each category.",
        example: "\"severity\"",
    },
    Setting {
        key: "labels.categories.<category>.severity",
        default: SettingDefault::Unset,
        meaning: "For `kind = \"severity\"` only (and required there): the severity a ticket the category fits gets at least when live (`routine`, `urgent`, `on_fire`).",
        example: "\"urgent\"",
    },
    Setting {
        key: "labels.categories.<category>.mode",
        default: SettingDefault::Unset,
        meaning: "`\"shadow\"`: on trial (the model says in the answer's `shadow` field whether it applies; routing ignores it; reviews judge it); `\"live\"`: in use. Required; `escalator promote` sets it to live.",
        example: "\"shadow\"",
    },
    Setting {
        key: "labels.categories.<category>.definition",
        default: SettingDefault::Unset,
        meaning: "One sentence saying which tickets the category fits, shown to the model as written. Required.",
        example: "\"The customer says they may cancel, not renew or move to a competitor.\"",
    },
];

/// The labels' settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSettings {
    /// Topics and categories.
    pub taxonomy: Taxonomy,
    /// `[labels] promote_min_reviewed`.
    pub promote_min_reviewed: u64,
}

impl Default for LabelSettings {
    fn default() -> Self {
        Self {
            taxonomy: Taxonomy::default(),
            promote_min_reviewed: DEFAULT_PROMOTE_MIN_REVIEWED,
        }
    }
}

/// `[labels]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileLabels {
    topics: Option<Vec<String>>,
    promote_min_reviewed: Option<u64>,
    #[serde(default)]
    categories: BTreeMap<String, FileCategory>,
}

/// `[labels.categories.<name>]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileCategory {
    kind: Option<String>,
    severity: Option<String>,
    mode: Option<String>,
    definition: Option<String>,
}

impl LabelSettings {
    /// Loads `[labels]`. Categories are taken in name order (the file's tables are a map).
    ///
    /// # Errors
    /// [`ConfigError`] naming the bad key.
    pub(crate) fn load(file: FileLabels) -> Result<Self, ConfigError> {
        let topics = file
            .topics
            .unwrap_or_else(|| DEFAULT_TOPICS.iter().map(|t| (*t).to_owned()).collect());
        let mut categories = Vec::new();
        for (name, c) in file.categories {
            let key = |k: &str| format!("labels.categories.{name}.{k}");
            let need = |v: Option<String>, k: &str| {
                v.map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| invalid(&key(k), "is required"))
            };
            let kind = match need(c.kind, "kind")?.as_str() {
                "topic" => {
                    if c.severity.is_some() {
                        return Err(invalid(&key("severity"), "is only for kind = \"severity\""));
                    }
                    Kind::Topic
                }
                "severity" => {
                    let s = need(c.severity, "severity")?;
                    Kind::Severity(
                        Severity::parse("severity", &s)
                            .map_err(|e| invalid(&key("severity"), e.to_string()))?,
                    )
                }
                other => {
                    return Err(invalid(
                        &key("kind"),
                        format!("{other:?} is not one of \"topic\", \"severity\""),
                    ));
                }
            };
            let mode = match need(c.mode, "mode")?.as_str() {
                "shadow" => Mode::Shadow,
                "live" => Mode::Live,
                other => {
                    return Err(invalid(
                        &key("mode"),
                        format!("{other:?} is not one of \"shadow\", \"live\""),
                    ));
                }
            };
            categories.push(Category {
                definition: need(c.definition, "definition")?,
                name,
                kind,
                mode,
            });
        }
        let taxonomy = Taxonomy::new(topics, categories).map_err(|e| invalid("labels", e))?;
        let promote_min_reviewed = file
            .promote_min_reviewed
            .unwrap_or(DEFAULT_PROMOTE_MIN_REVIEWED);
        if promote_min_reviewed == 0 {
            return Err(invalid("labels.promote_min_reviewed", "must be at least 1"));
        }
        Ok(Self {
            taxonomy,
            promote_min_reviewed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str) -> Result<LabelSettings, ConfigError> {
        LabelSettings::load(toml::from_str(toml).unwrap())
    }

    #[test]
    fn categories_are_read_and_checked() {
        let s = load(
            "topics = [\"billing\", \"other\"]\n\
             [categories.churn_risk]\nkind = \"topic\"\nmode = \"shadow\"\ndefinition = \"May leave.\"\n\
             [categories.vip]\nkind = \"severity\"\nseverity = \"urgent\"\nmode = \"live\"\ndefinition = \"A VIP.\"\n",
        )
        .unwrap();
        assert_eq!(s.taxonomy.topics(), ["billing", "other"]);
        assert_eq!(s.taxonomy.categories().len(), 2);
        assert_eq!(
            s.taxonomy.category("vip").unwrap().kind,
            Kind::Severity(Severity::Urgent)
        );
        for (toml, msg) in [
            (
                "[categories.x]\nmode = \"shadow\"\ndefinition = \"d\"",
                "labels.categories.x.kind: is required",
            ),
            (
                "[categories.x]\nkind = \"severity\"\nmode = \"shadow\"\ndefinition = \"d\"",
                "labels.categories.x.severity: is required",
            ),
            (
                "[categories.x]\nkind = \"topic\"\nseverity = \"urgent\"\nmode = \"shadow\"\ndefinition = \"d\"",
                "labels.categories.x.severity: is only for kind = \"severity\"",
            ),
            (
                "[categories.x]\nkind = \"topic\"\nmode = \"trial\"\ndefinition = \"d\"",
                "labels.categories.x.mode: \"trial\" is not one of \"shadow\", \"live\"",
            ),
            (
                "topics = [\"billing\"]",
                "labels: the topics must include \"other\" (the answer when none fits)",
            ),
            (
                "promote_min_reviewed = 0",
                "labels.promote_min_reviewed: must be at least 1",
            ),
        ] {
            assert_eq!(load(toml).unwrap_err().to_string(), msg, "{toml}");
        }
        assert!(toml::from_str::<FileLabels>("topic = []").is_err());
    }
}
