//! What `escalator labels check` runs over a file: row count and severity shares, overlap with
//! the other file, hygiene, coverage and topics, and the report it prints.

use std::{fmt, path::Path};

use super::{
    Example, Problem, Summary,
    coverage::Coverage,
    csv::{columns, load, parse, read},
    hygiene::{Finding, Level, compare_mix, hygiene},
};
use crate::domain::Severity;

/// What the checker requires beyond well-formed rows.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Fewest rows accepted.
    pub min_rows: usize,
    /// Smallest share each severity must have (0 to skip), e.g. 0.25 for the training file.
    pub min_share: f64,
}

/// Checks parsed examples against `rules` and against another labels file (`other`), which must
/// share no ticket id, subject or first message with this one (a holdout that leaks into the
/// prompt measures nothing).
pub fn check(
    file: &str,
    examples: &[Example],
    rules: &Rules,
    other: Option<(&str, &[Example])>,
) -> Vec<Problem> {
    let whole = |message: String| Problem {
        file: file.to_owned(),
        line: 0,
        column: 0,
        message,
    };
    let mut problems = Vec::new();
    if examples.len() < rules.min_rows {
        problems.push(whole(format!(
            "has {} rows, at least {} are required",
            examples.len(),
            rules.min_rows
        )));
    }
    if rules.min_share > 0.0 && !examples.is_empty() {
        let summary = Summary::of(examples);
        for s in Severity::ALL {
            let n = summary.by_severity.get(s).copied().unwrap_or(0);
            #[allow(clippy::cast_precision_loss)]
            let share = n as f64 / examples.len() as f64;
            if share < rules.min_share {
                problems.push(whole(format!(
                    "severity {s} has {n} rows ({:.0}%), every bucket needs at least {:.0}%",
                    share * 100.0,
                    rules.min_share * 100.0
                )));
            }
        }
    }
    if let Some((other_file, other)) = other {
        // The matching key (`can’t` = `can't`, case-folded), so retyping a row does not hide it.
        let norm = |s: &str| {
            crate::text::fold(s)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        for e in examples {
            for o in other {
                let what = if e.ticket_id == o.ticket_id {
                    Some("ticket_id")
                } else if norm(&e.first_message) == norm(&o.first_message) {
                    Some("first_message")
                } else if norm(&e.subject) == norm(&o.subject) {
                    Some("subject")
                } else {
                    None
                };
                if let Some(what) = what {
                    problems.push(whole(format!(
                        "{} overlaps {other_file} row {} ({what} is the same)",
                        e.ticket_id, o.ticket_id
                    )));
                }
            }
        }
    }
    problems
}

/// What `escalator labels check` asks of a file beyond well-formed rows.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Row count and severity shares ([`check`]).
    pub rules: Rules,
    /// Rows each definition clause needs ([`Coverage::findings`]; 0 skips coverage).
    pub min_per_clause: usize,
    /// Warn when the severity shares differ from the other file's ([`compare_mix`]).
    pub same_mix: bool,
    /// The topics a `topic` cell should be one of ([`topic_findings`]): the defaults
    /// ([`crate::taxonomy::DEFAULT_TOPICS`]) unless the caller has the configured ones.
    pub topics: Vec<String>,
    /// Every row must be `routine` (a file of negatives: benign tickets with trigger words).
    pub routine_only: bool,
}

impl CheckOptions {
    /// The defaults for a file by its name: a holdout (`*holdout*`: 40 rows), a regression or
    /// blind file (`*regression*`, `*blind*`: any size, no coverage, any mix), a file of
    /// negatives (`*negative*`: 40 rows, every one routine, no coverage, any mix), else a
    /// training file (50 rows, every severity at least 25%). Holdout and training file need 3
    /// rows per clause and the same severity mix as each other.
    pub fn for_file(path: &Path) -> Self {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let negatives = name.contains("negative");
        let apart = negatives || name.contains("regression") || name.contains("blind");
        let (min_rows, min_share, min_per_clause) = if name.contains("holdout") {
            (40, 0.0, 3)
        } else if negatives {
            (40, 0.0, 0)
        } else if apart {
            (1, 0.0, 0)
        } else {
            (50, 0.25, 3)
        };
        Self {
            rules: Rules {
                min_rows,
                min_share,
            },
            min_per_clause,
            same_mix: !apart,
            topics: crate::taxonomy::DEFAULT_TOPICS
                .iter()
                .map(|t| (*t).to_owned())
                .collect(),
            routine_only: negatives,
        }
    }

    /// The file a file must stay apart from when `--against` is not given: the training file
    /// for a holdout, regression or blind file, the holdout for a training file or a file of
    /// negatives (the rules are derived from both, so neither may copy the holdout), when it
    /// exists.
    pub fn default_against(path: &Path) -> Option<std::path::PathBuf> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let sibling = if ["holdout", "regression", "blind"]
            .iter()
            .any(|n| name.contains(n))
        {
            "labels.csv"
        } else {
            "holdout.csv"
        };
        let p = path.with_file_name(sibling);
        (p.exists() && p != path).then_some(p)
    }
}

/// Everything `labels check` found in one file.
#[derive(Debug, Clone)]
pub struct Report {
    /// The file as given.
    pub file: String,
    /// The file it was compared with, if any.
    pub against: Option<String>,
    /// Errors and warnings, errors first, each in file order.
    pub findings: Vec<Finding>,
    /// Rows per severity and tier (empty when the file did not parse).
    pub summary: Summary,
    /// Rows per clause (empty when the file did not parse).
    pub coverage: Coverage,
    /// The rows each clause needed.
    pub min_per_clause: usize,
}

impl Report {
    /// Errors found.
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.level == Level::Error)
            .count()
    }

    /// Warnings found.
    pub fn warnings(&self) -> usize {
        self.findings.len() - self.errors()
    }

    /// No error, and with `strict` no warning either.
    pub fn passed(&self, strict: bool) -> bool {
        self.errors() == 0 && (!strict || self.warnings() == 0)
    }
}

impl fmt::Display for Report {
    /// The summary a clean file prints: rows per severity and tier, then the coverage table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.summary)?;
        writeln!(
            f,
            "coverage: rows per definition clause (each needs at least {}; negatives: rows whose why_this_label says they are not it)",
            self.min_per_clause
        )?;
        write!(f, "{}", self.coverage)
    }
}

/// Loads and checks one labels file: [`parse`], [`check`] (against `against`, when given),
/// [`hygiene`], coverage and [`topic_findings`]. Never stops at the first problem.
pub fn check_file(path: &Path, against: Option<&Path>, options: &CheckOptions) -> Report {
    let file = path.display().to_string();
    let mut problems: Vec<Problem> = Vec::new();
    let (examples, topic_column) = match read(path) {
        Ok(text) => {
            let column = columns(&file, &text)
                .ok()
                .and_then(|c| c.iter().position(|n| *n == "topic"))
                .map(|i| i + 1);
            let examples = parse(&file, &text).unwrap_or_else(|p| {
                problems.extend(p);
                Vec::new()
            });
            (examples, column)
        }
        Err(p) => {
            problems.push(p);
            (Vec::new(), None)
        }
    };
    let other = against.and_then(|a| match load(a) {
        Ok(o) => Some((a.display().to_string(), o)),
        Err(p) => {
            problems.extend(p);
            None
        }
    });
    let mut report = check_examples(&file, &examples, other, options, problems);
    // A file that did not parse has no examples, so no topic warnings either.
    if let Some(column) = topic_column {
        report
            .findings
            .extend(topic_findings(&file, &examples, column, &options.topics));
        report.findings.sort_by_key(|f| std::cmp::Reverse(f.level));
    }
    report
}

/// A warning for each row whose `topic` (in 1-based `column`) is not one of `topics`: `eval`
/// leaves such a row out of the topic accuracy and the prompt's example shows no topic for it,
/// so the row teaches and measures nothing about the topic. Not an error: a file labelled with
/// another taxonomy stays usable for the severity.
pub fn topic_findings(
    file: &str,
    examples: &[Example],
    column: usize,
    topics: &[String],
) -> Vec<Finding> {
    examples
        .iter()
        .filter_map(|e| {
            let t = e.topic.as_deref()?;
            (!topics.iter().any(|c| c == t)).then(|| Finding {
                level: Level::Warning,
                problem: Problem {
                    file: file.to_owned(),
                    line: e.line,
                    column,
                    message: format!(
                        "{}: topic {t:?} is not one of the configured topics ({}); eval leaves the row out of the topic accuracy and the prompt shows no topic for it",
                        e.ticket_id,
                        topics.join(", ")
                    ),
                },
            })
        })
        .collect()
}

/// An error for each row that is not `routine`, at its severity cell (a file of negatives).
fn not_routine(file: &str, examples: &[Example]) -> Vec<Finding> {
    examples
        .iter()
        .filter(|e| e.severity != Severity::Routine)
        .map(|e| Finding {
            level: Level::Error,
            problem: Problem::at(
                file,
                e.line,
                5,
                format!(
                    "{}: a negative must be routine, not {}",
                    e.ticket_id, e.severity
                ),
            ),
        })
        .collect()
}

/// [`check_file`] over rows already parsed (e.g. a file about to be written): `unreadable`
/// holds problems met while reading them, which skip the other checks.
pub fn check_examples(
    file: &str,
    examples: &[Example],
    other: Option<(String, Vec<Example>)>,
    options: &CheckOptions,
    unreadable: Vec<Problem>,
) -> Report {
    let error = |problem: Problem| Finding {
        level: Level::Error,
        problem,
    };
    let mut findings: Vec<Finding> = unreadable.into_iter().map(error).collect();
    let coverage = Coverage::of(examples);
    if findings.is_empty() {
        let other = other.as_ref().map(|(n, o)| (n.as_str(), o.as_slice()));
        findings.extend(
            check(file, examples, &options.rules, other)
                .into_iter()
                .map(error),
        );
        findings.extend(hygiene(file, examples, other));
        if let (true, Some((other_file, other))) = (options.same_mix, other) {
            findings.extend(compare_mix(file, examples, other_file, other));
        }
        findings.extend(coverage.findings(file, options.min_per_clause));
        if options.routine_only {
            findings.extend(not_routine(file, examples));
        }
        findings.sort_by_key(|f| std::cmp::Reverse(f.level));
    }
    Report {
        file: file.to_owned(),
        against: other.map(|(n, _)| n),
        findings,
        summary: Summary::of(examples),
        coverage,
        min_per_clause: options.min_per_clause,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn shipped_files_are_clean() {
        let train = parse("labels.csv", EMBEDDED_LABELS).unwrap();
        let hold = parse("holdout.csv", EMBEDDED_HOLDOUT).unwrap();
        let files = [
            ("labels.csv", &train, 100, ("holdout.csv", hold.as_slice())),
            ("holdout.csv", &hold, 40, ("labels.csv", train.as_slice())),
        ];
        for (name, rows, min_rows, other) in files {
            let rules = Rules {
                min_rows,
                min_share: 0.25,
            };
            assert_eq!(check(name, rows, &rules, Some(other)), vec![], "{name}");
        }
        // What `labels check --strict` runs on each: no error and no warning.
        for (file, against) in [
            ("labels.csv", "holdout.csv"),
            ("holdout.csv", "labels.csv"),
            ("regressions.csv", "labels.csv"),
            ("negatives.csv", "holdout.csv"),
            ("blind.csv", "labels.csv"),
        ] {
            let path = shipped(file);
            let r = check_file(
                &path,
                Some(&shipped(against)),
                &CheckOptions::for_file(&path),
            );
            let shown: Vec<String> = r.findings.iter().map(ToString::to_string).collect();
            assert!(r.passed(true), "{file}: {shown:#?}");
        }
        // Every shipped row has the optional columns filled in where they apply.
        assert!(
            train
                .iter()
                .all(|e| e.repeat_24h.is_some() && e.sentiment.is_some())
        );
    }

    #[test]
    fn check_counts_rows_shares_and_overlap() {
        let a = parse("a.csv", &format!("{HEAD}A-1,s,m,pro,routine,bot,w\n")).unwrap();
        let b = parse("b.csv", &format!("{HEAD}B-1,other,M ,pro,routine,bot,w\n")).unwrap();
        let p = check(
            "a.csv",
            &a,
            &Rules {
                min_rows: 2,
                min_share: 0.25,
            },
            Some(("b.csv", &b)),
        );
        let p: Vec<String> = p.iter().map(ToString::to_string).collect();
        assert_eq!(
            p,
            vec![
                "a.csv: has 1 rows, at least 2 are required",
                "a.csv: severity urgent has 0 rows (0%), every bucket needs at least 25%",
                "a.csv: severity on_fire has 0 rows (0%), every bucket needs at least 25%",
                "a.csv: A-1 overlaps b.csv row B-1 (first_message is the same)",
            ]
        );
    }

    #[test]
    fn a_topic_that_is_not_configured_is_a_warning_naming_line_and_column() {
        let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
        std::io::Write::write_all(
            f.as_file_mut(),
            "ticket_id,subject,first_message,tier,severity,route,why_this_label,topic,sentiment\n\
             A-1,Refund,Please refund the duplicate charge.,pro,urgent,human,Billing dispute: twice.,billing,neutral\n\
             A-2,Charts,\"The dashboards page\nlooks different today.\",free,routine,bot,Docs answer: a question.,dashboards,positive\n\
             A-3,Hello,hi,free,routine,bot,How-to: no question yet.,,neutral\n"
                .as_bytes(),
        )
        .unwrap();
        let topic_warnings = |options: &CheckOptions| -> Vec<String> {
            check_file(f.path(), None, options)
                .findings
                .iter()
                .filter(|x| x.problem.message.contains("configured topics"))
                .map(|x| {
                    assert_eq!(x.level, Level::Warning);
                    x.to_string()
                })
                .collect()
        };
        let mut options = CheckOptions::for_file(f.path());
        let name = f.path().display();
        // The default topics: `dashboards` (line 3, column 8) is not one; an empty cell is
        // "not known", not a wrong topic.
        assert_eq!(
            topic_warnings(&options),
            vec![format!(
                "{name}:3:8: warning: A-2: topic \"dashboards\" is not one of the configured topics (billing, bug, outage, account_access, how_to, feature_request, security, legal, other); eval leaves the row out of the topic accuracy and the prompt shows no topic for it"
            )]
        );
        // The configured topics decide.
        options.topics = vec!["dashboards".into(), "other".into()];
        let shown = topic_warnings(&options);
        assert_eq!(shown.len(), 1, "{shown:#?}");
        assert!(
            shown[0].starts_with(&format!("{name}:2:8: warning: A-1: topic \"billing\" is not one of the configured topics (dashboards, other)")),
            "{shown:#?}"
        );
        options.topics.push("billing".into());
        assert_eq!(topic_warnings(&options), Vec::<String>::new());
        // A warning, so `labels check` passes without `--strict`.
        options.topics = vec!["other".into()];
        let r = check_file(f.path(), None, &options);
        assert!(r.warnings() >= 2 && !r.passed(true));
    }
}
