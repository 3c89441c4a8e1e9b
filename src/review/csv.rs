//! The review as a spreadsheet: `escalator review export` writes a day's open sample as CSV
//! (the ticket, the decision, and empty verdict columns); `escalator review import` validates
//! every row and stores the verdicts, or stores nothing when any row is wrong.
//!
//! Ticket text is written so that a spreadsheet never runs it (CSV injection, OWASP): a cell
//! that starts with `=`, `+`, `-`, `@`, tab or carriage return would be read as a formula, so
//! the export puts a `'` before it ([`neutralise`]), which spreadsheets show as text; the
//! import takes exactly that `'` off again ([`restore`]), so the round trip keeps every cell
//! byte for byte.
//!
//! Over 450 lines with its tests: the round trip's property test sits beside the export and
//! import it checks.

use std::{borrow::Cow, collections::BTreeSet};

use crate::{
    domain::{Sentiment, Severity},
    store::Reviews,
    taxonomy::Taxonomy,
};

use super::{LabelVerdict, NewReview, Origin, Pass, ReviewItem, ReviewVerdict};

/// The exact header of an export (and of a file to import). Six columns before the last are
/// the labels: the decision's `topic`, `sentiment` and `shadow` (`churn_risk=yes; vip=no`:
/// what the classifier said of each shadow category), then the reviewer's `right_topic` and
/// `right_sentiment` (blank: the decision's label is right) and `shadow_applies` (the same
/// shape; a category left out is not judged). The last, `pass`, says whose verdicts the file
/// holds: `first` (the day's reviewer) or `second` (the second reviewer of a double review).
/// A file with the header before `pass` existed (without it) imports as `first`.
pub const HEADER: [&str; 27] = [
    "decision_id",
    "source",
    "ticket_id",
    "decided_at",
    "subject",
    "first_message",
    "tier",
    "arr_usd",
    "severity",
    "route",
    "confidence",
    "reasoning",
    "prompt_version",
    "model",
    "fallback",
    "fallback_reason",
    "verdict",
    "corrected_severity",
    "why",
    "reviewer",
    "topic",
    "sentiment",
    "shadow",
    "right_topic",
    "right_sentiment",
    "shadow_applies",
    "pass",
];

/// The first characters that make a spreadsheet read a cell as a formula (OWASP, "CSV
/// Injection"): `=`, `+`, `-`, `@`, tab and carriage return.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// What the export puts before such a cell: spreadsheets show a cell that starts with `'` as
/// text.
const TEXT_MARK: char = '\'';

/// `cell` as the export writes it: with [`TEXT_MARK`] before it when it starts with a formula
/// character, or with the mark itself (so that [`restore`] can tell the two apart and the round
/// trip is exact). Borrowed otherwise.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some(c) if FORMULA_STARTS.contains(&c) || c == TEXT_MARK => {
            Cow::Owned(format!("{TEXT_MARK}{cell}"))
        }
        _ => Cow::Borrowed(cell),
    }
}

/// `cell` as the import reads it: the one [`TEXT_MARK`] [`neutralise`] put before it taken
/// off, so `restore(&neutralise(s)) == s` for every `s`.
pub fn restore(cell: &str) -> &str {
    cell.strip_prefix(TEXT_MARK).unwrap_or(cell)
}

/// `churn_risk=yes; vip=no`.
fn shadow_cell(shadow: &std::collections::BTreeMap<String, bool>) -> String {
    shadow
        .iter()
        .map(|(k, v)| format!("{k}={}", if *v { "yes" } else { "no" }))
        .collect::<Vec<_>>()
        .join("; ")
}

fn col(name: &str) -> usize {
    HEADER.iter().position(|h| *h == name).unwrap_or(0)
}

/// Writes `items` as CSV with empty verdict columns, for `pass` (`first` or `second`; the
/// columns never show another pass's verdict).
///
/// # Errors
/// When the writer fails.
pub fn export(
    items: &[&ReviewItem],
    pass: Pass,
    out: &mut dyn std::io::Write,
) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(HEADER)?;
    for item in items {
        let d = &item.decision;
        let t = item.ticket.as_ref();
        let cells = [
            d.id.as_str(),
            d.source.as_str(),
            &d.ticket_id,
            &d.created_at.to_rfc3339(),
            t.map_or("", |t| t.subject.as_str()),
            t.map_or("", |t| t.body.as_str()),
            t.map_or("", |t| t.tier.as_str()),
            &t.and_then(|t| t.arr_usd)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            d.severity.as_str(),
            d.route.as_str(),
            &format!("{:.2}", d.confidence),
            &d.reasoning,
            &d.prompt_version,
            &d.model,
            if d.fallback { "true" } else { "false" },
            d.fallback_reason.as_deref().unwrap_or(""),
            "",
            "",
            "",
            "",
            d.topic.as_deref().unwrap_or(""),
            d.sentiment.map_or("", Sentiment::as_str),
            &shadow_cell(&d.shadow),
            "",
            "",
            "",
            pass.as_str(),
        ];
        w.write_record(cells.iter().map(|c| neutralise(c).into_owned()))?;
    }
    w.flush()?;
    Ok(())
}

/// One problem in an import, located like the labels checker's (`file:line:column: message`).
pub type Problem = crate::examples::Problem;

/// A verdict read from a file, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// 1-based line.
    pub line: u64,
    /// The review.
    pub review: NewReview,
}

/// What an import holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// Rows with a verdict.
    pub rows: Vec<Row>,
    /// Rows left unjudged (empty verdict).
    pub unjudged: usize,
}

/// Parses and validates an import: the header, every row's verdict, corrected severity, why and
/// reviewer, each decision id present once and known to `store` with the row's ticket id, the
/// labels columns (a topic of `taxonomy`, a sentiment, shadow categories the decision was
/// asked about), and the pass (`first` or `second`, fitting the decision as
/// [`ReviewItem::check`] says).
///
/// # Errors
/// Every problem found, each naming its line and column; nothing is stored then.
pub async fn parse<S: Reviews + ?Sized>(
    store: &S,
    file: &str,
    text: &str,
    default_reviewer: &str,
    taxonomy: &Taxonomy,
) -> Result<Parsed, Vec<Problem>> {
    let problem =
        |line: u64, column: usize, message: String| Problem::at(file, line, column, message);
    let (header, rows) = crate::examples::read_csv(file, text).map_err(|p| vec![p])?;
    // The header before `pass` existed is read as a first-pass file.
    let width = if header.iter().eq(HEADER[..HEADER.len() - 1].iter().copied()) {
        HEADER.len() - 1
    } else {
        HEADER.len()
    };
    if header.iter().ne(HEADER[..width].iter().copied()) {
        return Err(vec![problem(
            1,
            0,
            format!(
                "header must be exactly `{}` (as `escalator review export` writes it)",
                HEADER.join(",")
            ),
        )]);
    }
    let mut problems = Vec::new();
    let mut parsed = Parsed::default();
    let mut seen = BTreeSet::new();
    for row in rows.of_width(width) {
        let (line, record) = match row {
            Ok(row) => row,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        let field = |name: &str| {
            let i = col(name);
            if i < width {
                restore(&record[i]).trim()
            } else {
                ""
            }
        };
        let verdict = field("verdict");
        let severity = field("corrected_severity");
        if verdict.is_empty() && severity.is_empty() {
            parsed.unjudged += 1;
            continue;
        }
        let id = field("decision_id");
        let mut ok = true;
        let mut item = None;
        if id.is_empty() {
            problems.push(problem(
                line,
                col("decision_id") + 1,
                "decision_id is empty".into(),
            ));
            ok = false;
        } else if !seen.insert(id.to_owned()) {
            problems.push(problem(
                line,
                col("decision_id") + 1,
                format!("decision {id} appears twice"),
            ));
            ok = false;
        } else {
            match store.review_item(id).await {
                Ok(Some(i)) if i.decision.ticket_id == field("ticket_id") => item = Some(i),
                Ok(Some(ReviewItem { decision: d, .. })) => {
                    problems.push(problem(
                        line,
                        col("ticket_id") + 1,
                        format!(
                            "ticket_id {:?} is not the ticket of decision {id} ({:?})",
                            field("ticket_id"),
                            d.ticket_id
                        ),
                    ));
                    ok = false;
                }
                Ok(None) => {
                    problems.push(problem(
                        line,
                        col("decision_id") + 1,
                        format!("no decision {id} in the routing log"),
                    ));
                    ok = false;
                }
                Err(e) => {
                    problems.push(problem(
                        line,
                        0,
                        format!("cannot read the routing log: {e}"),
                    ));
                    ok = false;
                }
            }
        }
        // `corrected` with a severity, `correct` without; a bare severity in the verdict column
        // (as typed in a hurry) is read as a correction to it.
        let parsed_verdict = match Severity::parse("verdict", verdict) {
            Ok(s) if severity.is_empty() => Ok(ReviewVerdict::Corrected(s)),
            _ => ReviewVerdict::parse(verdict, Some(severity)),
        };
        let verdict = match parsed_verdict {
            Ok(v) => Some(v),
            Err(crate::domain::DomainError::InvalidField { field: f, reason }) => {
                let column = if f == "verdict" {
                    col("verdict")
                } else {
                    col("corrected_severity")
                } + 1;
                problems.push(problem(line, column, format!("{f} {reason}")));
                None
            }
        };
        let reviewer = match field("reviewer") {
            "" => default_reviewer,
            r => r,
        };
        if crate::text::has_control(reviewer) || reviewer.chars().count() > 100 {
            problems.push(problem(
                line,
                col("reviewer") + 1,
                "reviewer must be one line of at most 100 characters".into(),
            ));
            ok = false;
        }
        let pass = match field("pass") {
            "" | "first" => Some(Pass::First),
            "second" => Some(Pass::Second),
            other => {
                problems.push(problem(
                    line,
                    col("pass") + 1,
                    format!("pass {other:?} is not one of first, second (adjudicate in the terminal or on the page)"),
                ));
                ok = false;
                None
            }
        };
        let mut labels = LabelVerdict::default();
        if let Some(d) = item.as_ref().map(|i| &i.decision) {
            let labelled = d.topic.is_some() || d.sentiment.is_some();
            match field("right_topic") {
                "" if labelled => labels.topic.clone_from(&d.topic),
                "" => {}
                t => match taxonomy.topic(t) {
                    Some(t) => labels.topic = Some(t.to_owned()),
                    None => {
                        problems.push(problem(
                            line,
                            col("right_topic") + 1,
                            format!(
                                "right_topic {t:?} is not one of {}",
                                taxonomy.topics().join(", ")
                            ),
                        ));
                        ok = false;
                    }
                },
            }
            match field("right_sentiment") {
                "" if labelled => labels.sentiment = d.sentiment,
                "" => {}
                s => match Sentiment::parse("right_sentiment", s) {
                    Ok(s) => labels.sentiment = Some(s),
                    Err(e) => {
                        problems.push(problem(line, col("right_sentiment") + 1, e.to_string()));
                        ok = false;
                    }
                },
            }
            for part in field("shadow_applies").split(';').map(str::trim) {
                if part.is_empty() {
                    continue;
                }
                let parsed = part.split_once('=').and_then(|(k, v)| {
                    let applies = match v.trim().to_ascii_lowercase().as_str() {
                        "yes" | "y" | "true" => Some(true),
                        "no" | "n" | "false" => Some(false),
                        _ => None,
                    }?;
                    d.shadow
                        .contains_key(k.trim())
                        .then(|| (k.trim().to_owned(), applies))
                });
                match parsed {
                    Some((k, v)) => {
                        labels.shadow.insert(k, v);
                    }
                    None => {
                        problems.push(problem(
                            line,
                            col("shadow_applies") + 1,
                            format!(
                                "shadow_applies {part:?} must be <category>=yes|no for a category the decision was asked about ({})",
                                d.shadow.keys().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        ));
                        ok = false;
                    }
                }
            }
        }
        if let (true, Some(verdict), Some(pass), Some(item)) = (ok, verdict, pass, item) {
            let review = NewReview {
                decision_id: id.to_owned(),
                reviewer: reviewer.to_owned(),
                verdict: verdict.normalised(&item.decision),
                why: Some(field("why").to_owned()),
                origin: Origin::Import,
                external_key: None,
                labels,
                pass,
            };
            match item.check(&review) {
                Ok(()) => parsed.rows.push(Row { line, review }),
                Err(e) => problems.push(problem(line, col("pass") + 1, e)),
            }
        }
    }
    if problems.is_empty() {
        Ok(parsed)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::{Decision, Route, Tier, Usage, review::TicketText};

    /// A reviewable item whose free-text cells are the given strings.
    fn item(ticket_id: &str, subject: &str, body: &str, reasoning: &str) -> ReviewItem {
        ReviewItem::unjudged(
            Decision {
                id: "dec-1".into(),
                source: crate::domain::Source::Api,
                ticket_id: ticket_id.into(),
                ticket_version: "1".into(),
                severity: Severity::Routine,
                route: Route::Bot,
                confidence: 0.5,
                reasoning: reasoning.into(),
                prompt_version: "p@1".into(),
                model: "offline".into(),
                fallback: false,
                fallback_reason: None,
                notes: None,
                tier: Tier::Free,
                usage: Usage::default(),
                trace_id: None,
                observation_id: None,
                created_at: chrono::Utc::now(),
                model_severity: Severity::Routine,
                weighting_rule: None,
                arr_usd: None,
                tier_source: None,
                enrichment_failed: false,
                topic: None,
                sentiment: None,
                shadow: std::collections::BTreeMap::new(),
                caller: None,
                supersedes: None,
            },
            Some(TicketText {
                subject: subject.into(),
                body: body.into(),
                tier: Tier::Free,
                arr_usd: None,
            }),
        )
    }

    /// The export of `item` read back as the import reads it: every cell as written, and
    /// restored.
    fn round_trip(item: &ReviewItem) -> Vec<(String, String)> {
        let mut out = Vec::new();
        export(&[item], Pass::First, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let (_, rows) = crate::examples::read_csv("s.csv", &text).unwrap();
        let (_, record) = rows.of_width(HEADER.len()).next().unwrap().unwrap();
        record
            .iter()
            .map(|c| (c.to_owned(), restore(c).to_owned()))
            .collect()
    }

    #[test]
    fn a_formula_in_ticket_text_reaches_the_spreadsheet_as_text() {
        let cells = round_trip(&item(
            "-42",
            "=HYPERLINK(\"https://evil\",\"click\")",
            "@SUM(1+1)*cmd|' /C calc'!A0",
            "+1 urgent",
        ));
        let cell = |name: &str| &cells[col(name)];
        assert_eq!(cell("ticket_id").0, "'-42");
        assert_eq!(cell("subject").0, "'=HYPERLINK(\"https://evil\",\"click\")");
        assert_eq!(cell("first_message").0, "'@SUM(1+1)*cmd|' /C calc'!A0");
        assert_eq!(cell("reasoning").0, "'+1 urgent");
        assert_eq!(cell("subject").1, "=HYPERLINK(\"https://evil\",\"click\")");
        // Tab and CR starts, and text that starts with the mark itself.
        for s in ["\tx", "\r\n=1", "'=1", "''", "'"] {
            assert_eq!(neutralise(s), format!("'{s}"));
            assert_eq!(restore(&neutralise(s)), s);
        }
        // Everything else is left alone.
        for s in ["", "Can’t log in", " =1", "a=b", "1-2", "th_1"] {
            assert!(matches!(neutralise(s), Cow::Borrowed(_)), "{s:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Any text, and text that starts with every formula character and the mark: no
        /// exported cell starts a formula, and the import reads back exactly what was logged.
        #[test]
        fn the_export_import_round_trip_keeps_text_byte_for_byte(
            cells in proptest::collection::vec(
                (
                    proptest::sample::select(vec!["", "=", "+", "-", "@", "\t", "\r", "'", "''", "\r\n", " "]),
                    any::<String>(),
                ).prop_map(|(start, rest)| format!("{start}{rest}")),
                4,
            )
        ) {
            let neutralised = neutralise(&cells[0]);
            prop_assert_eq!(restore(&neutralised), cells[0].as_str());
            let it = item(&cells[0], &cells[1], &cells[2], &cells[3]);
            let read = round_trip(&it);
            for (written, _) in &read {
                prop_assert!(
                    !written.starts_with(FORMULA_STARTS),
                    "{:?} starts a formula", written
                );
            }
            for (name, original) in [
                ("ticket_id", &cells[0]),
                ("subject", &cells[1]),
                ("first_message", &cells[2]),
                ("reasoning", &cells[3]),
            ] {
                prop_assert_eq!(&read[col(name)].1, original, "{}", name);
            }
        }
    }
}
