//! The review as a spreadsheet: `escalator review export` writes a day's open sample as CSV
//! (the ticket, the decision, and empty verdict columns); `escalator review import` validates
//! every row and stores the verdicts, or stores nothing when any row is wrong.

use std::collections::BTreeSet;

use crate::{
    domain::{Sentiment, Severity},
    store::Store,
    taxonomy::Taxonomy,
};

use super::{LabelVerdict, NewReview, Origin, ReviewItem, Verdict};

/// The exact header of an export (and of a file to import). The last six are the labels:
/// the decision's `topic`, `sentiment` and `shadow` (`churn_risk=yes; vip=no`: what the
/// classifier said of each shadow category), then the reviewer's `right_topic` and
/// `right_sentiment` (blank: the decision's label is right) and `shadow_applies` (the same
/// shape; a category left out is not judged).
pub const HEADER: [&str; 26] = [
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
];

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

/// Writes `items` as CSV with empty verdict columns.
///
/// # Errors
/// When the writer fails.
pub fn export(items: &[&ReviewItem], out: &mut dyn std::io::Write) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(HEADER)?;
    for item in items {
        let d = &item.decision;
        let t = item.ticket.as_ref();
        w.write_record([
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
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// One problem in an import, located like the labels checker's (`file:line:column: message`).
pub type Problem = crate::labels::Problem;

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
/// reviewer, each decision id present once and known to `store` with the row's ticket id, and
/// the labels columns (a topic of `taxonomy`, a sentiment, shadow categories the decision was
/// asked about).
///
/// # Errors
/// Every problem found, each naming its line and column; nothing is stored then.
pub async fn parse(
    store: &dyn Store,
    file: &str,
    text: &str,
    default_reviewer: &str,
    taxonomy: &Taxonomy,
) -> Result<Parsed, Vec<Problem>> {
    let problem =
        |line: u64, column: usize, message: String| Problem::at(file, line, column, message);
    let (header, rows) = crate::labels::read_csv(file, text).map_err(|p| vec![p])?;
    if header.iter().ne(HEADER.iter().copied()) {
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
    for row in rows.of_width(HEADER.len()) {
        let (line, record) = match row {
            Ok(row) => row,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        let field = |name: &str| record[col(name)].trim();
        let verdict = field("verdict");
        let severity = field("corrected_severity");
        if verdict.is_empty() && severity.is_empty() {
            parsed.unjudged += 1;
            continue;
        }
        let id = field("decision_id");
        let mut ok = true;
        let mut decision = None;
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
            match store.decision_by_id(id).await {
                Ok(Some(d)) if d.ticket_id == field("ticket_id") => decision = Some(d),
                Ok(Some(d)) => {
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
            Ok(s) if severity.is_empty() => Ok(Verdict::Corrected(s)),
            _ => Verdict::parse(verdict, Some(severity)),
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
        let mut labels = LabelVerdict::default();
        if let Some(d) = &decision {
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
        if let (true, Some(verdict)) = (ok, verdict) {
            parsed.rows.push(Row {
                line,
                review: NewReview {
                    decision_id: id.to_owned(),
                    reviewer: reviewer.to_owned(),
                    verdict,
                    why: Some(field("why").to_owned()),
                    origin: Origin::Import,
                    external_key: None,
                    labels,
                },
            });
        }
    }
    if problems.is_empty() {
        Ok(parsed)
    } else {
        Err(problems)
    }
}
