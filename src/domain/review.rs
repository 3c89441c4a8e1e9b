//! The review's pure types: a verdict on a logged decision, where it came from, and what the
//! store hands back for a reviewer to look at.

use std::{collections::BTreeMap, fmt};

use chrono::{DateTime, Utc};

use super::{Decision, DomainError, Route, Sentiment, Severity, Tier};

/// A reviewer's word on the labels besides the severity. Each part is `None` (or empty) when
/// not judged: an agent's override, an import without those columns, a decision logged before
/// labels existed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelVerdict {
    /// The topic the reviewer says is right (the decision's own when they confirmed it).
    pub topic: Option<String>,
    /// The sentiment the reviewer says is right.
    pub sentiment: Option<Sentiment>,
    /// Per shadow category judged: whether the reviewer says it applies to the ticket.
    pub shadow: BTreeMap<String, bool>,
}

impl LabelVerdict {
    /// Whether the decision's topic was right, when both are known.
    pub fn topic_correct(&self, decided: Option<&str>) -> Option<bool> {
        Some(self.topic.as_deref()? == decided?)
    }

    /// Whether the decision's sentiment was right, when both are known.
    pub fn sentiment_correct(&self, decided: Option<Sentiment>) -> Option<bool> {
        Some(self.sentiment? == decided?)
    }
}

/// What a reviewer (or an agent's change in the tool) says about a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewVerdict {
    /// The decision was right.
    Correct,
    /// The decision was wrong; this severity is right (the route follows from it).
    Corrected(Severity),
}

impl ReviewVerdict {
    /// `correct` or `corrected`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewVerdict::Correct => "correct",
            ReviewVerdict::Corrected(_) => "corrected",
        }
    }

    /// The corrected severity, when there is one.
    pub fn corrected_severity(self) -> Option<Severity> {
        match self {
            ReviewVerdict::Correct => None,
            ReviewVerdict::Corrected(s) => Some(s),
        }
    }

    /// The severity this verdict says is right for `decision`.
    pub fn right_severity(self, decision: &Decision) -> Severity {
        self.corrected_severity().unwrap_or(decision.severity)
    }

    /// A correction to the severity the decision already has is no correction: it is `Correct`.
    pub fn normalised(self, decision: &Decision) -> Self {
        match self {
            ReviewVerdict::Corrected(s) if s == decision.severity => ReviewVerdict::Correct,
            v => v,
        }
    }

    /// Builds a verdict from its stored (or typed) parts.
    ///
    /// # Errors
    /// When `verdict` is not `correct`/`corrected`, or a correction names no valid severity.
    pub fn parse(verdict: &str, severity: Option<&str>) -> Result<Self, DomainError> {
        let severity = severity.map(str::trim).filter(|s| !s.is_empty());
        match verdict.trim().to_ascii_lowercase().as_str() {
            "correct" => match severity {
                None => Ok(ReviewVerdict::Correct),
                Some(_) => Err(DomainError::invalid(
                    "corrected_severity",
                    "must be empty when the verdict is correct",
                )),
            },
            "corrected" => match severity {
                Some(s) => Ok(ReviewVerdict::Corrected(Severity::parse(
                    "corrected_severity",
                    s,
                )?)),
                None => Err(DomainError::invalid(
                    "corrected_severity",
                    "is required when the verdict is corrected (routine, urgent or on_fire)",
                )),
            },
            other => Err(DomainError::invalid(
                "verdict",
                format!("{other:?} is not one of correct, corrected"),
            )),
        }
    }
}

impl fmt::Display for ReviewVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReviewVerdict::Correct => f.write_str("correct"),
            ReviewVerdict::Corrected(s) => write!(f, "corrected to {s} ({})", s.route()),
        }
    }
}

/// Where a verdict came from. Overrides only ever see misses, so they are counted apart from
/// the sampled reviews (which are the accuracy headline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// `escalator review` in a terminal.
    Cli,
    /// The `/review` web page.
    Web,
    /// `escalator review import` (a spreadsheet).
    Import,
    /// An agent changed escalator's label, priority, tag or team in the ticketing tool.
    Override,
}

impl Origin {
    /// Every origin.
    pub const ALL: [Origin; 4] = [Origin::Cli, Origin::Web, Origin::Import, Origin::Override];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Cli => "cli",
            Origin::Web => "web",
            Origin::Import => "import",
            Origin::Override => "override",
        }
    }

    /// Parses the stored spelling.
    ///
    /// # Errors
    /// When it is not one of the four.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        Origin::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| DomainError::invalid("origin", format!("{s:?} is not an origin")))
    }
}

/// A verdict to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReview {
    /// The decision judged.
    pub decision_id: String,
    /// Who judged (a name, or the agent's id in the tool for an override).
    pub reviewer: String,
    /// The verdict.
    pub verdict: ReviewVerdict,
    /// A one-line why, if given.
    pub why: Option<String>,
    /// Where it came from.
    pub origin: Origin,
    /// For overrides: the tool's event, so a redelivered webhook is stored once.
    pub external_key: Option<String>,
    /// The reviewer's word on topic, sentiment and shadow categories.
    pub labels: LabelVerdict,
}

/// A stored verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    /// Row id; the highest per decision is the verdict that counts.
    pub id: i64,
    /// The decision judged.
    pub decision_id: String,
    /// Who judged.
    pub reviewer: String,
    /// When.
    pub reviewed_at: DateTime<Utc>,
    /// The verdict.
    pub verdict: ReviewVerdict,
    /// The one-line why.
    pub why: Option<String>,
    /// Where it came from.
    pub origin: Origin,
    /// The reviewer's word on topic, sentiment and shadow categories.
    pub labels: LabelVerdict,
}

/// The ticket text a decision was made on, as the routing log holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketText {
    /// Subject line.
    pub subject: String,
    /// The first message.
    pub body: String,
    /// The tier the ticket arrived with (after enrichment).
    pub tier: Tier,
    /// ARR in USD, if known.
    pub arr_usd: Option<f64>,
}

/// One decision as a reviewer sees it: the decision, its ticket, and the verdicts so far.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewItem {
    /// The logged decision.
    pub decision: Decision,
    /// Its ticket, when the log has it.
    pub ticket: Option<TicketText>,
    /// The last verdict from a review (not an override), if any.
    pub latest: Option<Review>,
    /// Skipped in its sample (not offered again).
    pub skipped: bool,
}

impl ReviewItem {
    /// Still waiting for a verdict in its sample.
    pub fn open(&self) -> bool {
        self.latest.is_none() && !self.skipped
    }

    /// The decision's route.
    pub fn route(&self) -> Route {
        self.decision.route
    }
}

/// Latest verdicts of a day's decisions, sampled reviews and agents' overrides apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Decisions whose last sampled-review verdict is `correct`.
    pub reviewed_correct: u64,
    /// Decisions whose last sampled-review verdict is `corrected`.
    pub reviewed_corrected: u64,
    /// Decisions an agent overrode in the tool.
    pub overrides: u64,
}

impl Tally {
    /// Sampled decisions with a verdict.
    pub fn reviewed(&self) -> u64 {
        self.reviewed_correct + self.reviewed_corrected
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.reviewed();
        if n == 0 {
            write!(f, "reviewed: none yet")?;
        } else {
            #[allow(clippy::cast_precision_loss)]
            let pct = self.reviewed_correct as f64 * 100.0 / n as f64;
            write!(
                f,
                "reviewed: {}/{n} correct ({pct:.0}%)",
                self.reviewed_correct
            )?;
        }
        write!(
            f,
            "; agents' overrides (misses only, counted apart): {}",
            self.overrides
        )
    }
}
