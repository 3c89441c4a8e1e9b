//! The labelled examples: hand-labelled tickets in CSV files (`labels/*.csv`), the model's
//! teacher (rendered into the prompt) and the yardstick of `escalator eval`. A bad row is an
//! error with a file, line and column, never a skipped row.
//!
//! - [`csv`](mod@csv): the file format: parse, load, the columns of a header, rows written back.
//! - [`hygiene`](mod@hygiene): near-duplicates, conflicting labels, the severity mix against the other file.
//! - [`coverage`]: the definition clauses a row names, rows per clause.
//! - [`check`](mod@check): what `escalator labels check` runs over a file: row count and
//!   shares, overlap, hygiene, coverage, topics, and its report.
//!
//! ("Labels" elsewhere are the topic, sentiment and shadow categories of a decision:
//! `crate::taxonomy`.)

pub mod check;
pub mod coverage;
pub mod csv;
pub mod hygiene;

use std::{collections::BTreeMap, fmt};

use crate::domain::{DomainError, RawTicket, Route, Severity, Source, Ticket, TicketContext, Tier};

pub use check::{CheckOptions, Report, Rules, check, check_examples, check_file, topic_findings};
pub use coverage::{CLAUSES, ClauseCount, ClausePrefixes, Coverage, clause_of};
pub use csv::{CsvRows, columns, load, parse, read_csv, render_rows, to_csv_row};
pub use hygiene::{Finding, Level, compare_mix, hygiene, similarity};

/// The exact header every labels file starts with (the required columns, in this order).
pub const HEADER: [&str; 7] = [
    "ticket_id",
    "subject",
    "first_message",
    "tier",
    "severity",
    "route",
    "why_this_label",
];

/// Columns a file may add after [`HEADER`], each at most once, in any order. A file without them
/// is valid; an empty cell means "not known".
///
/// - `arr_usd`: the customer's ARR in USD (a number >= 0); rendered into the prompt's example
///   and passed to the classifier by `eval`.
/// - `repeat_24h`: the customer's other tickets in the 24 h before this one (a whole number);
///   rendered and passed like `arr_usd` (1 or more makes a ticket urgent at least).
/// - `topic`: one lowercase word (`billing`, `sso`); shown in the prompt's example and scored
///   by `eval` when it is one of the configured topics (`[labels] topics`); `labels check`
///   warns of one that is not ([`topic_findings`]).
/// - `sentiment`: one of [`SENTIMENTS`]; shown and scored likewise (`angry` as `negative`, the
///   classifier's scale having three values).
pub const OPTIONAL_COLUMNS: [&str; 4] = ["arr_usd", "repeat_24h", "topic", "sentiment"];

/// The values the `sentiment` column takes.
pub const SENTIMENTS: [&str; 4] = ["positive", "neutral", "negative", "angry"];

/// The training labels shipped with the binary (rendered into the prompt by default).
pub const EMBEDDED_LABELS: &str = include_str!("../../labels/labels.csv");
/// The holdout set shipped with the binary.
pub const EMBEDDED_HOLDOUT: &str = include_str!("../../labels/holdout.csv");
/// Tricky tickets the offline classifier once got wrong; the tests run it over every row.
pub const EMBEDDED_REGRESSIONS: &str = include_str!("../../labels/regressions.csv");
/// Benign tickets carrying each clause's trigger words, all routine: what the offline rules'
/// guards are derived from (with the training labels); the tests keep every row routine.
pub const EMBEDDED_NEGATIVES: &str = include_str!("../../labels/negatives.csv");

/// One labelled ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Unique within its file and across training/holdout.
    pub ticket_id: String,
    /// The subject line.
    pub subject: String,
    /// The customer's first message.
    pub first_message: String,
    /// The customer's plan.
    pub tier: Tier,
    /// The correct severity.
    pub severity: Severity,
    /// The correct route (always `severity.route()` in a checked file).
    pub route: Route,
    /// Why the labeller chose this, one sentence that starts with the name of the definition
    /// clause that decided (see [`CLAUSES`]), e.g. `Billing dispute over $1,000: …`.
    pub why: String,
    /// `arr_usd`, when the file has the column and the cell is not empty.
    pub arr_usd: Option<f64>,
    /// `repeat_24h`, when the file has the column and the cell is not empty.
    pub repeat_24h: Option<u32>,
    /// `topic`, when given.
    pub topic: Option<String>,
    /// `sentiment` (one of [`SENTIMENTS`]), when given.
    pub sentiment: Option<String>,
    /// The 1-based line the row starts on in its file (0 when it was not read from one).
    pub line: u64,
}

impl Example {
    /// The ticket the classifier sees for this row, as `eval` builds it: subject, first
    /// message, tier, ARR and the repeat count (0 when the file has none).
    ///
    /// # Errors
    /// When the row is not a valid ticket (e.g. a first message over the body limit).
    pub fn ticket_context(&self) -> Result<TicketContext, DomainError> {
        let raw = RawTicket {
            id: self.ticket_id.clone(),
            subject: self.subject.clone(),
            body: self.first_message.clone(),
            tier: Some(self.tier),
            arr_usd: self.arr_usd,
            ..RawTicket::default()
        };
        Ok(TicketContext {
            ticket: Ticket::parse(Source::Api, raw, "")?,
            repeat_count_24h: self.repeat_24h.unwrap_or(0),
        })
    }
}

impl Default for Example {
    /// An empty routine row for a free customer, for building examples field by field.
    fn default() -> Self {
        Self {
            ticket_id: String::new(),
            subject: String::new(),
            first_message: String::new(),
            tier: Tier::Free,
            severity: Severity::Routine,
            route: Severity::Routine.route(),
            why: String::new(),
            arr_usd: None,
            repeat_24h: None,
            topic: None,
            sentiment: None,
            line: 0,
        }
    }
}

/// One problem in a labels file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file as given.
    pub file: String,
    /// 1-based line; 0 when the problem is about the file as a whole.
    pub line: u64,
    /// 1-based column (field number); 0 when not about one field.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}: {}", self.file, self.message),
            (l, 0) => write!(f, "{}:{l}: {}", self.file, self.message),
            (l, c) => write!(f, "{}:{l}:{c}: {}", self.file, self.message),
        }
    }
}

impl Problem {
    /// A problem at `line` and `column` of `file`.
    pub fn at(file: &str, line: u64, column: usize, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// Rows per severity and per tier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Rows in the file.
    pub rows: usize,
    /// Rows per severity.
    pub by_severity: BTreeMap<Severity, usize>,
    /// Rows per tier.
    pub by_tier: BTreeMap<Tier, usize>,
}

impl Summary {
    /// Counts `examples`.
    pub fn of(examples: &[Example]) -> Self {
        let mut s = Summary {
            rows: examples.len(),
            ..Summary::default()
        };
        for e in examples {
            *s.by_severity.entry(e.severity).or_default() += 1;
            *s.by_tier.entry(e.tier).or_default() += 1;
        }
        s
    }
}

impl Summary {
    /// The share of rows with severity `s`, 0..=1 (0 for an empty file).
    pub fn share(&self, s: Severity) -> f64 {
        let n = self.by_severity.get(&s).copied().unwrap_or(0);
        #[allow(clippy::cast_precision_loss)]
        if self.rows == 0 {
            0.0
        } else {
            n as f64 / self.rows as f64
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} rows", self.rows)?;
        writeln!(f, "  severity   rows  share")?;
        for s in Severity::ALL {
            let n = self.by_severity.get(s).copied().unwrap_or(0);
            #[allow(clippy::cast_precision_loss)]
            let share = if self.rows == 0 {
                0.0
            } else {
                n as f64 * 100.0 / self.rows as f64
            };
            writeln!(f, "  {:<10} {n:>4}  {share:>4.0}%", s.as_str())?;
        }
        writeln!(f, "  tier       rows")?;
        for t in Tier::ALL {
            let n = self.by_tier.get(t).copied().unwrap_or(0);
            writeln!(f, "  {:<10} {n:>4}", t.as_str())?;
        }
        Ok(())
    }
}

/// Rows and helpers the tests of every concern share.
#[cfg(test)]
mod testing {
    use std::path::Path;

    pub(super) use super::*;

    pub(super) const HEAD: &str =
        "ticket_id,subject,first_message,tier,severity,route,why_this_label\n";

    pub(super) fn shipped(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("labels")
            .join(name)
    }

    pub(super) fn row(
        id: &str,
        subject: &str,
        body: &str,
        tier: &str,
        severity: &str,
        line: u64,
    ) -> Example {
        Example {
            ticket_id: id.into(),
            subject: subject.into(),
            first_message: body.into(),
            tier: Tier::parse("tier", tier).unwrap(),
            severity: Severity::parse("severity", severity).unwrap(),
            route: Severity::parse("severity", severity).unwrap().route(),
            why: "w".into(),
            line,
            ..Example::default()
        }
    }

    pub(super) fn messages(findings: &[Finding]) -> Vec<String> {
        findings.iter().map(ToString::to_string).collect()
    }
}
