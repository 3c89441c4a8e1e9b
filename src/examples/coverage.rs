//! The definition clauses a row names (`why_this_label` starts with one), and the rows per
//! clause that `labels check` reports (a clause without enough rows teaches nothing).

use std::fmt;

use super::{
    Example, Problem,
    hygiene::{Finding, Level},
};
use crate::{
    domain::{Severity, clause::Clause},
    text,
};

/// How a row's `why_this_label` names a clause of the definitions ([`Clause`], named in
/// `crate::domain::clause`), so the coverage table can count rows per clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClausePrefixes {
    /// The clause.
    pub clause: Clause,
    /// How `why_this_label` may start to name it (case-blind, a whole word or phrase).
    pub prefixes: &'static [&'static str],
}

/// One row of [`CLAUSES`]: the table reads as one line per clause.
const fn named(clause: Clause, prefixes: &'static [&'static str]) -> ClausePrefixes {
    ClausePrefixes { clause, prefixes }
}

/// Every clause of the definitions, in the template's order ([`Clause::ALL`]). A row names its
/// clause by starting `why_this_label` with one of its prefixes and having its severity
/// (`Billing dispute: …` labelled urgent is the clause up to $1,000; labelled on_fire, the one
/// over it).
pub const CLAUSES: &[ClausePrefixes] = &[
    named(Clause::DocsAnswer, &["docs answer", "docs"]),
    named(Clause::HowTo, &["how-to", "how to"]),
    named(Clause::Faq, &["faq"]),
    named(Clause::FeatureRequest, &["feature request"]),
    named(
        Clause::EnterpriseAccount,
        &["enterprise account", "enterprise"],
    ),
    named(Clause::ChurnRisk, &["churn risk", "churn-risk"]),
    named(Clause::BillingDisputeUpTo1000, &["billing dispute"]),
    named(Clause::RepeatTicket, &["repeat ticket", "repeat"]),
    named(Clause::CompetitorInFrustration, &["competitor"]),
    named(Clause::ProductionDown, &["production down", "outage"]),
    named(Clause::DataLoss, &["data loss"]),
    named(Clause::SecurityReport, &["security report", "security"]),
    named(Clause::LegalLanguage, &["legal language", "legal"]),
    named(Clause::BillingDisputeOver1000, &["billing dispute"]),
    named(
        Clause::NeedAHumanNow,
        &[
            "need a human now",
            "explicit demand for a human",
            "demand for a human",
        ],
    ),
];

impl ClausePrefixes {
    /// The severity the clause decides.
    pub fn severity(&self) -> Severity {
        self.clause.severity()
    }

    /// The clause's name.
    pub fn name(&self) -> &'static str {
        self.clause.name()
    }
}

/// `key` starts with `phrase` followed by a non-alphanumeric character or the end.
fn starts_with_words(key: &str, phrase: &str) -> bool {
    key.strip_prefix(phrase)
        .is_some_and(|rest| !rest.starts_with(char::is_alphanumeric))
}

/// The clause a row's `why_this_label` names, if any (see [`CLAUSES`]).
pub fn clause_of(e: &Example) -> Option<&'static ClausePrefixes> {
    let folded = text::fold(&e.why);
    let key = folded.trim_start_matches(|c: char| !c.is_alphanumeric());
    CLAUSES.iter().find(|c| {
        c.severity() == e.severity && c.prefixes.iter().any(|p| starts_with_words(key, p))
    })
}

/// Whether a row's `why_this_label` says it is *not* this clause (`… is not data loss`,
/// `not a security report`): a hard negative for it.
fn is_negative_of(e: &Example, c: &ClausePrefixes) -> bool {
    if e.severity >= c.severity() {
        return false;
    }
    let why = text::fold(&e.why);
    c.prefixes.iter().any(|p| {
        ["not ", "not a ", "not an "]
            .iter()
            .any(|n| why.contains(&format!("{n}{p}")))
    })
}

/// Rows per definition clause, and the rows that name none.
#[derive(Debug, Clone, PartialEq)]
pub struct Coverage {
    /// Rows counted.
    pub rows: usize,
    /// One entry per [`CLAUSES`] entry, in that order.
    pub by_clause: Vec<ClauseCount>,
    /// `(line, ticket_id)` of rows whose `why_this_label` names no clause of their severity.
    pub unnamed: Vec<(u64, String)>,
}

/// The rows of one clause.
#[derive(Debug, Clone, PartialEq)]
pub struct ClauseCount {
    /// The clause.
    pub clause: &'static ClausePrefixes,
    /// Rows labelled by it.
    pub rows: usize,
    /// Hard negatives: rows of a lower severity whose `why_this_label` says they are not it.
    pub negatives: usize,
}

impl Coverage {
    /// Counts `examples` per clause.
    pub fn of(examples: &[Example]) -> Self {
        let mut by_clause: Vec<ClauseCount> = CLAUSES
            .iter()
            .map(|clause| ClauseCount {
                clause,
                rows: 0,
                negatives: 0,
            })
            .collect();
        let mut unnamed = Vec::new();
        for e in examples {
            match clause_of(e) {
                Some(c) => {
                    if let Some(n) = by_clause.iter_mut().find(|n| std::ptr::eq(n.clause, c)) {
                        n.rows += 1;
                    }
                }
                None => unnamed.push((e.line, e.ticket_id.clone())),
            }
            for n in &mut by_clause {
                n.negatives += usize::from(is_negative_of(e, n.clause));
            }
        }
        Self {
            rows: examples.len(),
            by_clause,
            unnamed,
        }
    }

    /// A clause with no row is an error, one with fewer than `min_per_clause` a warning, and so
    /// is a row that names no clause. `min_per_clause` 0 checks nothing (a file of a few
    /// regression tickets need not cover the definitions).
    pub fn findings(&self, file: &str, min_per_clause: usize) -> Vec<Finding> {
        let at = |level: Level, line: u64, column: usize, message: String| Finding {
            level,
            problem: Problem {
                file: file.to_owned(),
                line,
                column,
                message,
            },
        };
        let mut out = Vec::new();
        if min_per_clause == 0 {
            return out;
        }
        for (line, id) in &self.unnamed {
            out.push(at(
                Level::Warning,
                *line,
                7,
                format!(
                    "{id}: why_this_label names no definition clause of its severity; start it with one (`Docs answer: …`, `Billing dispute over $1,000: …`, see `labels check` coverage)"
                ),
            ));
        }
        for n in &self.by_clause {
            let c = n.clause;
            if n.rows == 0 {
                out.push(at(
                    Level::Error,
                    0,
                    0,
                    format!(
                        "no row for the {} clause \"{}\": every clause of the definitions needs at least {min_per_clause}",
                        c.severity(), c.name()
                    ),
                ));
            } else if n.rows < min_per_clause {
                out.push(at(
                    Level::Warning,
                    0,
                    0,
                    format!(
                        "the {} clause \"{}\" has {} row(s), at least {min_per_clause} are needed",
                        c.severity(),
                        c.name(),
                        n.rows
                    ),
                ));
            }
        }
        out
    }
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  {:<9} {:<30} {:>4}  {:>9}",
            "clause of", "", "rows", "negatives"
        )?;
        for n in &self.by_clause {
            let neg = if n.clause.severity() == Severity::Routine {
                "-".to_owned()
            } else {
                n.negatives.to_string()
            };
            writeln!(
                f,
                "  {:<9} {:<30} {:>4}  {neg:>9}",
                n.clause.severity().as_str(),
                n.clause.name(),
                n.rows
            )?;
        }
        if !self.unnamed.is_empty() {
            writeln!(f, "  {:<40} {:>4}", "(names no clause)", self.unnamed.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn every_clause_of_the_definitions_has_its_prefixes_in_order() {
        assert!(CLAUSES.iter().map(|c| c.clause).eq(Clause::ALL));
    }

    #[test]
    fn coverage_counts_rows_per_clause_and_reports_gaps() {
        let mut rows = Vec::new();
        for (i, (why, sev)) in [
            ("Docs answer: where the page is.", "routine"),
            ("'How-to' question.", "routine"),
            (
                "FAQ billing question, not a billing dispute over $1,000.",
                "routine",
            ),
            ("Billing dispute: $49 twice.", "urgent"),
            ("Billing dispute over $1,000: $4,800.", "on_fire"),
            ("Enterprise account: never routine.", "urgent"),
            ("Because I said so.", "urgent"),
        ]
        .iter()
        .enumerate()
        {
            let mut e = row(&format!("A-{i}"), "s", "m", "pro", sev, i as u64 + 2);
            e.why = (*why).into();
            rows.push(e);
        }
        let cov = Coverage::of(&rows);
        let count = |name: &str| {
            cov.by_clause
                .iter()
                .find(|c| c.clause.name() == name)
                .map(|c| (c.rows, c.negatives))
                .unwrap()
        };
        assert_eq!(count("Docs answer"), (1, 0));
        assert_eq!(count("How-to"), (1, 0));
        assert_eq!(count("Billing dispute up to $1,000"), (1, 1));
        assert_eq!(count("Billing dispute over $1,000"), (1, 1));
        assert_eq!(count("Enterprise account"), (1, 0));
        assert_eq!(cov.unnamed, vec![(8, "A-6".to_owned())]);
        let f = cov.findings("f.csv", 1);
        let found = messages(&f);
        assert!(found.contains(&"f.csv:8:7: warning: A-6: why_this_label names no definition clause of its severity; start it with one (`Docs answer: …`, `Billing dispute over $1,000: …`, see `labels check` coverage)".to_owned()), "{found:#?}");
        assert!(found.contains(&"f.csv: no row for the on_fire clause \"Data loss\": every clause of the definitions needs at least 1".to_owned()), "{found:#?}");
        assert_eq!(f.iter().filter(|f| f.level == Level::Error).count(), 9);
        let thin = messages(&cov.findings("f.csv", 2));
        assert!(
            thin.contains(
                &"f.csv: warning: the routine clause \"FAQ\" has 1 row(s), at least 2 are needed"
                    .to_owned()
            ),
            "{thin:#?}"
        );
        assert!(cov.findings("f.csv", 0).is_empty());
        let shown = cov.to_string();
        assert!(
            shown.contains("  urgent    Billing dispute up to $1,000      1          1\n"),
            "{shown}"
        );
    }
}
