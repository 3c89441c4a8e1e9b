//! The labels a decision carries besides its severity: one topic from the configured list, the
//! customer's sentiment, and the shadow categories on trial (`[labels]` in the config file, see
//! [`settings`]).
//!
//! Topics and sentiment are recorded, traced, reviewed and audited; they never change the
//! route, which stays a pure function of severity. A shadow category is a candidate topic or
//! severity clause declared with `mode = "shadow"`: the model says whether it applies, the
//! decision stores that, reviewers say whether it was right, and `escalator promote` makes it
//! live once it has earned it. Nothing here does I/O.

pub mod settings;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::Severity;

/// The topics used when `[labels] topics` is not set.
pub const DEFAULT_TOPICS: [&str; 9] = [
    "billing",
    "bug",
    "outage",
    "account_access",
    "how_to",
    "feature_request",
    "security",
    "legal",
    "other",
];

pub use crate::domain::{Labels, OTHER_TOPIC};

/// Most topics (configured plus live categories) accepted: each is an enum value of the
/// structured-output schema, and a long enum makes a large grammar for little use.
pub const MAX_TOPICS: usize = 40;

/// Most shadow categories on trial at once (each is an enum value of the `shadow` array).
pub const MAX_SHADOW: usize = 10;

/// Longest definition of a category, in characters (one sentence in the prompt).
pub const MAX_DEFINITION_CHARS: usize = 300;

/// What a declared category would become when live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Another value of the topic label.
    Topic,
    /// Another clause of an existing severity: when live, tickets it fits are this severity at
    /// least (the severity scale and so the routes stay the three buckets).
    Severity(Severity),
}

impl Kind {
    /// `topic` or `severity`, as configured.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Topic => "topic",
            Kind::Severity(_) => "severity",
        }
    }
}

/// Whether a category is on trial or in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// On trial: asked in the separate `shadow` field, ignored by routing, reviewed and audited.
    Shadow,
    /// In use: a topic the label takes, or a clause of the severity definitions.
    Live,
}

impl Mode {
    /// `shadow` or `live`, as configured.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Shadow => "shadow",
            Mode::Live => "live",
        }
    }
}

/// One declared category (`[labels.categories.<name>]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Category {
    /// Its name: one lowercase word (`churn_risk`), the value the model answers.
    pub name: String,
    /// What it would be.
    pub kind: Kind,
    /// On trial or in use.
    pub mode: Mode,
    /// One sentence saying which tickets it fits; shown to the model as written.
    pub definition: String,
}

/// The configured labels: the topic list and the declared categories. Built only by
/// [`Taxonomy::new`], so every value is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taxonomy {
    topics: Vec<String>,
    categories: Vec<Category>,
}

impl Default for Taxonomy {
    fn default() -> Self {
        Self {
            topics: DEFAULT_TOPICS.iter().map(|t| (*t).to_owned()).collect(),
            categories: Vec::new(),
        }
    }
}

/// Whether `s` is one lowercase word: `a-z`, `0-9` and `_`, starting with a letter.
pub fn is_slug(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Taxonomy {
    /// The topics `topics` (in order) and the categories `categories` (in order).
    ///
    /// # Errors
    /// A message naming what is wrong: a topic that is not one lowercase word or appears twice,
    /// no `other` topic, more than [`MAX_TOPICS`] topics or [`MAX_SHADOW`] shadow categories,
    /// a category whose name is a topic (or another category's), or a blank, multi-line or
    /// over-long definition.
    pub fn new(topics: Vec<String>, categories: Vec<Category>) -> Result<Self, String> {
        let mut seen = std::collections::BTreeSet::new();
        for t in &topics {
            if !is_slug(t) {
                return Err(format!(
                    "topic {t:?} must be one lowercase word (a-z, 0-9 and _, starting with a letter)"
                ));
            }
            if !seen.insert(t.clone()) {
                return Err(format!("topic {t:?} appears twice"));
            }
        }
        if !seen.contains(OTHER_TOPIC) {
            return Err(format!(
                "the topics must include {OTHER_TOPIC:?} (the answer when none fits)"
            ));
        }
        for c in &categories {
            if !is_slug(&c.name) {
                return Err(format!(
                    "category {:?} must be one lowercase word (a-z, 0-9 and _, starting with a letter)",
                    c.name
                ));
            }
            if !seen.insert(c.name.clone()) {
                return Err(format!(
                    "category {:?} is already a topic or another category",
                    c.name
                ));
            }
            let d = c.definition.trim();
            if d.is_empty() || d.contains(['\n', '\r']) {
                return Err(format!(
                    "category {:?}: definition must be one non-empty line",
                    c.name
                ));
            }
            if d.chars().count() > MAX_DEFINITION_CHARS {
                return Err(format!(
                    "category {:?}: definition is over {MAX_DEFINITION_CHARS} characters",
                    c.name
                ));
            }
        }
        let this = Self { topics, categories };
        if this.topics().len() > MAX_TOPICS {
            return Err(format!(
                "{} topics (live topic categories included); at most {MAX_TOPICS}",
                this.topics().len()
            ));
        }
        if this.shadow().count() > MAX_SHADOW {
            return Err(format!("at most {MAX_SHADOW} shadow categories at once"));
        }
        Ok(this)
    }

    /// The topics the label takes: the configured ones, then the live topic categories, with
    /// `other` last.
    pub fn topics(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .topics
            .iter()
            .map(String::as_str)
            .filter(|t| *t != OTHER_TOPIC)
            .collect();
        out.extend(
            self.categories
                .iter()
                .filter(|c| c.mode == Mode::Live && c.kind == Kind::Topic)
                .map(|c| c.name.as_str()),
        );
        out.push(OTHER_TOPIC);
        out
    }

    /// Every declared category, in configuration order.
    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    /// The category named `name`.
    pub fn category(&self, name: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.name == name)
    }

    /// The categories on trial, in configuration order.
    pub fn shadow(&self) -> impl Iterator<Item = &Category> {
        self.categories.iter().filter(|c| c.mode == Mode::Shadow)
    }

    /// The live categories with a definition the prompt shows (topics and severity clauses).
    pub fn live(&self) -> impl Iterator<Item = &Category> {
        self.categories.iter().filter(|c| c.mode == Mode::Live)
    }

    /// The topic `text` names (case and surrounding blanks ignored), in its configured spelling.
    pub fn topic(&self, text: &str) -> Option<&str> {
        let t = text.trim();
        self.topics()
            .into_iter()
            .find(|topic| topic.eq_ignore_ascii_case(t))
    }

    /// The shadow category `text` names (case and blanks ignored).
    pub fn shadow_category(&self, text: &str) -> Option<&Category> {
        let t = text.trim();
        self.shadow().find(|c| c.name.eq_ignore_ascii_case(t))
    }

    /// The same taxonomy with category `name` live: what `escalator promote` makes of it.
    ///
    /// # Errors
    /// When there is no such category.
    pub fn promoted(&self, name: &str) -> Result<Self, String> {
        let mut next = self.clone();
        let c = next
            .categories
            .iter_mut()
            .find(|c| c.name == name)
            .ok_or_else(|| format!("no category {name:?} is declared"))?;
        c.mode = Mode::Live;
        Self::new(next.topics, next.categories)
    }
}

/// The shadow map as stored (`{"churn_risk":true}`), `None` when empty.
pub fn shadow_to_json(shadow: &BTreeMap<String, bool>) -> Option<String> {
    (!shadow.is_empty()).then(|| serde_json::to_string(shadow).unwrap_or_default())
}

/// The shadow map from its stored text.
///
/// # Errors
/// When the text is not a JSON object of booleans.
pub fn shadow_from_json(text: Option<&str>) -> Result<BTreeMap<String, bool>, String> {
    match text {
        None | Some("") => Ok(BTreeMap::new()),
        Some(t) => serde_json::from_str(t).map_err(|e| format!("shadow: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(name: &str, kind: Kind, mode: Mode) -> Category {
        Category {
            name: name.into(),
            kind,
            mode,
            definition: "The customer says they may leave.".into(),
        }
    }

    #[test]
    fn topics_are_checked_and_other_comes_last() {
        let t = Taxonomy::default();
        assert_eq!(t.topics().last(), Some(&"other"));
        assert_eq!(t.topic(" Billing "), Some("billing"));
        assert_eq!(t.topic("sso"), None);
        let e = Taxonomy::new(vec!["billing".into()], vec![]).unwrap_err();
        assert!(e.contains("must include \"other\""), "{e}");
        let e = Taxonomy::new(vec!["Billing".into(), "other".into()], vec![]).unwrap_err();
        assert!(e.contains("one lowercase word"), "{e}");
        let e = Taxonomy::new(vec!["other".into(), "other".into()], vec![]).unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let e = Taxonomy::new(
            vec!["billing".into(), "other".into()],
            vec![cat("billing", Kind::Topic, Mode::Shadow)],
        )
        .unwrap_err();
        assert!(e.contains("already a topic"), "{e}");
    }

    #[test]
    fn a_promoted_topic_joins_the_topics_before_other() {
        let t = Taxonomy::new(
            vec!["billing".into(), "other".into()],
            vec![
                cat("churn_risk", Kind::Topic, Mode::Shadow),
                cat("vip", Kind::Severity(Severity::Urgent), Mode::Shadow),
            ],
        )
        .unwrap();
        assert_eq!(t.topics(), ["billing", "other"]);
        assert_eq!(t.shadow().count(), 2);
        let p = t.promoted("churn_risk").unwrap();
        assert_eq!(p.topics(), ["billing", "churn_risk", "other"]);
        assert_eq!(p.shadow().count(), 1);
        assert!(t.promoted("nope").is_err());
    }

    #[test]
    fn shadow_maps_round_trip() {
        let m = BTreeMap::from([("a".to_owned(), true), ("b".to_owned(), false)]);
        let s = shadow_to_json(&m).unwrap();
        assert_eq!(s, r#"{"a":true,"b":false}"#);
        assert_eq!(shadow_from_json(Some(&s)).unwrap(), m);
        assert!(shadow_from_json(None).unwrap().is_empty());
        assert!(shadow_from_json(Some("[1]")).is_err());
    }
}
