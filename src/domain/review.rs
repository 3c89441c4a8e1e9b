//! The review's pure types: a verdict on a logged decision, where it came from and which pass
//! of the review it belongs to, which verdict of a double review counts, and what the store
//! hands back for a reviewer to look at.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

pub use super::sample::Pass;
use super::{Decision, DomainError, Route, Sentiment, Severity, Tier, sample::Stratum};

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
        self.right_severity_of(decision.severity)
    }

    /// The severity this verdict says is right for a decision of severity `decided`.
    pub fn right_severity_of(self, decided: Severity) -> Severity {
        self.corrected_severity().unwrap_or(decided)
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
    /// The pass it belongs to (`First` for every single review and for overrides).
    pub pass: Pass,
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
    /// The pass it belongs to.
    pub pass: Pass,
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

/// Where a decision sits in the review sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleMark {
    /// The day of the sample it was offered in (`YYYY-MM-DD` in the review time zone).
    pub day: String,
    /// That sample's source filter (`all`, `plain`, `pylon`, `api`).
    pub source: String,
    /// Its stratum; `None` when drawn before strata existed (uniformly).
    pub stratum: Option<Stratum>,
    /// Its probability of being drawn on its day; `None` when drawn before strata existed
    /// (the audit then computes it from the day's decisions).
    pub inclusion_probability: Option<f64>,
    /// Offered to a second reviewer as well.
    pub double_review: bool,
}

/// One decision as a reviewer sees it: the decision, its ticket, its place in the sample and
/// the verdicts so far, by pass.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewItem {
    /// The logged decision.
    pub decision: Decision,
    /// Its ticket, when the log has it.
    pub ticket: Option<TicketText>,
    /// The last verdict of the first pass (a review, not an override), if any.
    pub latest: Option<Review>,
    /// The last verdict of the second reviewer, if any.
    pub second: Option<Review>,
    /// The last adjudication, if any.
    pub adjudication: Option<Review>,
    /// Skipped in its sample (not offered again).
    pub skipped: bool,
    /// Its place in the sample; `None` when it was never offered.
    pub sample: Option<SampleMark>,
}

impl ReviewItem {
    /// An item of `decision` nobody has judged, outside any sample.
    pub fn unjudged(decision: Decision, ticket: Option<TicketText>) -> Self {
        Self {
            decision,
            ticket,
            latest: None,
            second: None,
            adjudication: None,
            skipped: false,
            sample: None,
        }
    }

    /// Still waiting for a first-pass verdict in its sample.
    pub fn open(&self) -> bool {
        self.latest.is_none() && !self.skipped
    }

    /// Offered to a second reviewer as well.
    pub fn double_review(&self) -> bool {
        self.sample.as_ref().is_some_and(|s| s.double_review)
    }

    /// The last verdict of `pass`.
    pub fn verdict(&self, pass: Pass) -> Option<&Review> {
        match pass {
            Pass::First => self.latest.as_ref(),
            Pass::Second => self.second.as_ref(),
            Pass::Adjudication => self.adjudication.as_ref(),
        }
    }

    /// The first and the second verdict, both given and not alike.
    pub fn disputed(&self) -> bool {
        matches!((&self.latest, &self.second), (Some(a), Some(b)) if a.verdict != b.verdict)
    }

    /// Whether `reviewer` still has to judge this item in `pass`: the first pass every item
    /// not judged nor skipped, unless `reviewer` gave its second verdict; the second pass the
    /// items offered for a double review not judged in it, unless `reviewer` gave the first
    /// verdict; adjudication the disputed items not adjudicated.
    pub fn open_for(&self, pass: Pass, reviewer: &str) -> bool {
        let by = |r: &Option<Review>| r.as_ref().is_some_and(|r| r.reviewer == reviewer);
        match pass {
            Pass::First => self.open() && !by(&self.second),
            Pass::Second => self.double_review() && self.second.is_none() && !by(&self.latest),
            Pass::Adjudication => self.disputed() && self.adjudication.is_none(),
        }
    }

    /// Whether `review` may be recorded on this item, and why not: a second verdict only on
    /// a decision offered for a double review and from another reviewer than the first
    /// verdict's; a first verdict not from the reviewer who gave the second; an adjudication
    /// only where the first and the second verdict disagree. Agents' overrides always may.
    ///
    /// # Errors
    /// The reason, for the reviewer.
    pub fn check(&self, review: &NewReview) -> Result<(), String> {
        if review.origin == Origin::Override {
            return Ok(());
        }
        let by = |r: &Option<Review>| r.as_ref().is_some_and(|r| r.reviewer == review.reviewer);
        match review.pass {
            Pass::First if by(&self.second) => Err(format!(
                "{} gave the second verdict on decision {}; the first must come from someone else",
                review.reviewer, self.decision.id
            )),
            Pass::Second if !self.double_review() => Err(format!(
                "decision {} was not offered for a second review",
                self.decision.id
            )),
            Pass::Second if by(&self.latest) => Err(format!(
                "{} gave the first verdict on decision {}; the second must come from someone else",
                review.reviewer, self.decision.id
            )),
            Pass::Adjudication if !self.disputed() => Err(format!(
                "decision {} has no disagreement to adjudicate (it needs a first and a second verdict that differ)",
                self.decision.id
            )),
            _ => Ok(()),
        }
    }

    /// The decision's route.
    pub fn route(&self) -> Route {
        self.decision.route
    }
}

/// One pass's last verdict on a decision, and who gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// The verdict.
    pub verdict: ReviewVerdict,
    /// Who gave it.
    pub reviewer: String,
}

/// The last verdict of each pass on a decision (overrides apart).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Passes {
    /// The first pass's.
    pub first: Option<Judged>,
    /// The second reviewer's.
    pub second: Option<Judged>,
    /// The adjudication's.
    pub adjudication: Option<Judged>,
}

impl Passes {
    /// The last verdict of each pass in `history` (oldest first; overrides left out).
    pub fn of(history: &[Review]) -> Self {
        let mut p = Passes::default();
        for r in history.iter().filter(|r| r.origin != Origin::Override) {
            let j = Some(Judged {
                verdict: r.verdict,
                reviewer: r.reviewer.clone(),
            });
            match r.pass {
                Pass::First => p.first = j,
                Pass::Second => p.second = j,
                Pass::Adjudication => p.adjudication = j,
            }
        }
        p
    }

    /// The verdict the decision counts with, once however many reviewers judged it: the
    /// adjudication when there is one; else the first verdict (the same as the second when
    /// they agree; while they disagree, the first stands until an adjudication settles it);
    /// else the second.
    pub fn counted(&self) -> Option<&Judged> {
        self.adjudication
            .as_ref()
            .or(self.first.as_ref())
            .or(self.second.as_ref())
    }

    /// The pass of [`Passes::counted`].
    pub fn counted_pass(&self) -> Option<Pass> {
        if self.adjudication.is_some() {
            Some(Pass::Adjudication)
        } else if self.first.is_some() {
            Some(Pass::First)
        } else if self.second.is_some() {
            Some(Pass::Second)
        } else {
            None
        }
    }

    /// Both reviewers judged it and they differ.
    pub fn disputed(&self) -> bool {
        matches!((&self.first, &self.second), (Some(a), Some(b)) if a.verdict != b.verdict)
    }

    /// Disputed and not yet adjudicated (it counts with the first verdict meanwhile).
    pub fn awaiting_adjudication(&self) -> bool {
        self.disputed() && self.adjudication.is_none()
    }
}
