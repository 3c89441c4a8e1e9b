//! The hand-labelled example tickets: parse, check, summarise.
//!
//! The labels are the model's teacher (they are rendered into the prompt) and the yardstick of
//! `escalator eval`, so a bad row is an error with a file, line and column, never a skipped row.

use std::{collections::BTreeMap, fmt, path::Path};

use crate::domain::{Route, Severity, Tier};

/// The exact header every labels file starts with.
pub const HEADER: [&str; 7] = [
    "ticket_id",
    "subject",
    "first_message",
    "tier",
    "severity",
    "route",
    "why_this_label",
];

/// The training labels shipped with the binary (rendered into the prompt by default).
pub const EMBEDDED_LABELS: &str = include_str!("../labels/labels.csv");
/// The holdout set shipped with the binary.
pub const EMBEDDED_HOLDOUT: &str = include_str!("../labels/holdout.csv");

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
    /// Why the labeller chose this, one sentence.
    pub why: String,
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

/// What the checker requires beyond well-formed rows.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Fewest rows accepted.
    pub min_rows: usize,
    /// Smallest share each severity must have (0 to skip), e.g. 0.25 for the training file.
    pub min_share: f64,
}

/// Parses a labels file's text, collecting every problem instead of stopping at the first.
///
/// # Errors
/// The list of problems when any row is malformed; a file with problems yields no examples.
pub fn parse(file: &str, text: &str) -> Result<Vec<Example>, Vec<Problem>> {
    let problem = |line: u64, column: usize, message: String| Problem {
        file: file.to_owned(),
        line,
        column,
        message,
    };
    let mut problems = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    match records.next() {
        None => return Err(vec![problem(0, 0, "file is empty".into())]),
        Some(Err(e)) => return Err(vec![problem(1, 0, format!("unreadable header: {e}"))]),
        Some(Ok(header)) => {
            let got: Vec<&str> = header.iter().collect();
            if got != HEADER {
                return Err(vec![problem(
                    1,
                    0,
                    format!(
                        "header must be exactly `{}`, found `{}`",
                        HEADER.join(","),
                        got.join(",")
                    ),
                )]);
            }
        }
    }
    let mut examples = Vec::new();
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for record in records {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                problems.push(problem(line, 0, format!("malformed CSV: {e}")));
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        if record.len() != HEADER.len() {
            problems.push(problem(
                line,
                0,
                format!("has {} fields, expected {}", record.len(), HEADER.len()),
            ));
            continue;
        }
        let mut row_ok = true;
        for (i, name) in HEADER.iter().enumerate() {
            if record[i].trim().is_empty() {
                problems.push(problem(line, i + 1, format!("{name} is empty")));
                row_ok = false;
            }
        }
        let tier = Tier::parse("tier", &record[3]);
        let severity = Severity::parse("severity", &record[4]);
        let route = Route::parse("route", &record[5]);
        for (col, res) in [
            (4, tier.as_ref().err()),
            (5, severity.as_ref().err()),
            (6, route.as_ref().err()),
        ] {
            if let Some(e) = res {
                if !record[col - 1].trim().is_empty() {
                    problems.push(problem(line, col, e.to_string()));
                }
                row_ok = false;
            }
        }
        if let (Ok(s), Ok(r)) = (&severity, &route) {
            if s.route() != *r {
                problems.push(problem(
                    line,
                    6,
                    format!(
                        "route {r} is inconsistent with severity {s} (expected {})",
                        s.route()
                    ),
                ));
                row_ok = false;
            }
        }
        let id = record[0].trim().to_owned();
        if !id.is_empty() {
            if let Some(first) = seen.insert(id.clone(), line) {
                problems.push(problem(
                    line,
                    1,
                    format!("duplicate ticket_id {id:?} (first on line {first})"),
                ));
                row_ok = false;
            }
        }
        if let (true, Ok(tier), Ok(severity), Ok(route)) = (row_ok, tier, severity, route) {
            examples.push(Example {
                ticket_id: id,
                subject: record[1].trim().to_owned(),
                first_message: record[2].trim().to_owned(),
                tier,
                severity,
                route,
                why: record[6].trim().to_owned(),
            });
        }
    }
    if problems.is_empty() {
        Ok(examples)
    } else {
        Err(problems)
    }
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

/// Reads and parses a labels file from disk.
///
/// # Errors
/// A single problem when the file cannot be read, or the parse problems.
pub fn load(path: &Path) -> Result<Vec<Example>, Vec<Problem>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem {
            file: file.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        }]
    })?;
    parse(&file, &text)
}

/// Renders examples as rows of a labels file (no header), quoted where the CSV format needs it,
/// so a tool that adds rows (`escalator labels add-from-reviews`) writes what [`parse`] reads.
pub fn render_rows(examples: &[Example]) -> String {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    for e in examples {
        // Writing to a Vec cannot fail.
        let _ = w.write_record([
            e.ticket_id.as_str(),
            &e.subject,
            &e.first_message,
            e.tier.as_str(),
            e.severity.as_str(),
            e.route.as_str(),
            &e.why,
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_rows_parse_back() {
        let e = Example {
            ticket_id: "th_1".into(),
            subject: "Can’t log in, \"urgent\"".into(),
            first_message: "Line one,\nline two 🔥".into(),
            tier: Tier::Pro,
            severity: Severity::Urgent,
            route: Route::Human,
            why: "Reviewer: login blocked".into(),
        };
        let text = format!(
            "{}\n{}",
            HEADER.join(","),
            render_rows(std::slice::from_ref(&e))
        );
        assert_eq!(parse("f.csv", &text).unwrap(), vec![e]);
    }

    const HEAD: &str = "ticket_id,subject,first_message,tier,severity,route,why_this_label\n";

    #[test]
    fn shipped_files_are_clean() {
        let train = parse("labels.csv", EMBEDDED_LABELS).unwrap();
        let hold = parse("holdout.csv", EMBEDDED_HOLDOUT).unwrap();
        let rules = Rules {
            min_rows: 50,
            min_share: 0.25,
        };
        assert_eq!(
            check("labels.csv", &train, &rules, Some(("holdout.csv", &hold))),
            vec![]
        );
        let rules = Rules {
            min_rows: 10,
            min_share: 0.0,
        };
        assert_eq!(
            check("holdout.csv", &hold, &rules, Some(("labels.csv", &train))),
            vec![]
        );
    }

    #[test]
    fn problems_are_located_by_line_and_column() {
        let text = format!(
            "{HEAD}A-1,s,m,pro,routine,bot,w\nA-2,s2,m2,gold,urgent,bot,w\nA-1,s3,,pro,urgent,human,w\n"
        );
        let problems: Vec<String> = parse("f.csv", &text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            problems,
            vec![
                "f.csv:3:4: invalid tier: \"gold\" is not one of free, pro, enterprise",
                "f.csv:3:6: route bot is inconsistent with severity urgent (expected human)",
                "f.csv:4:3: first_message is empty",
                "f.csv:4:1: duplicate ticket_id \"A-1\" (first on line 2)",
            ]
        );
    }

    #[test]
    fn wrong_header_and_field_count_are_reported() {
        let p = parse("f.csv", "id,subject\n").unwrap_err();
        assert!(
            p[0].to_string()
                .starts_with("f.csv:1: header must be exactly")
        );
        let p = parse("f.csv", &format!("{HEAD}A-1,s,m\n")).unwrap_err();
        assert_eq!(p[0].to_string(), "f.csv:2: has 3 fields, expected 7");
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
}
