//! Whether an evaluation of the offline rules measures anything: the phrases of the rules that
//! match a row of the evaluated file (the holdout) and no row of the training labels, and the
//! rows those phrases alone decide.
//!
//! The rules may be derived from the training labels, `labels/negatives.csv` and the seed
//! definitions (the DEFINITIONS of `prompts/classifier.md`). A phrase that only the holdout
//! carries was most likely written for it, and a holdout row it decides measures the writer's
//! memory, not the rules. So the report lists those phrases and gives the accuracy twice: over
//! every row, and over the rows whose decision does not change when those phrases are switched
//! off ([`OfflineClassifier::without`]): the figure a reader can trust.
//!
//! A phrase that raises a severity (a clause's phrases, a competitor, a charge word, a pair)
//! must be carried by a training row or the definitions; the negatives, which are all routine,
//! cannot teach one (each of them carries a trigger on purpose). A phrase that lowers one (a
//! guard's words: `how do I`, `whenever`, a name's cue) may also come from a negative row:
//! that is what the negatives are for.
//!
//! A phrase is looked for as the rules look for it (the same words in matching form, a pair of
//! a clause-level rule as a pair in one clause), whatever its guards would say: a phrase the
//! holdout taught is taught even where a guard switches it off.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{
    OfflineClassifier,
    doc::{Doc, Mask, pair_key},
    pair_occurrences, pair_phrases, rules,
};
use crate::{domain::Severity, examples::Example, stats::Rate, weighting::Weighting};

/// What the rules may be derived from: training rows and negatives (the definitions are
/// always the embedded template's).
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// The training labels (`labels/labels.csv`).
    pub labels: &'a [Example],
    /// The benign tickets with trigger words (`labels/negatives.csv`).
    pub negatives: &'a [Example],
}

/// The DEFINITIONS block of the embedded prompt template (up to `ROUTE`), as one ticket.
fn definitions() -> Doc {
    let t = crate::prompt::EMBEDDED_TEMPLATE;
    let start = t.find("DEFINITIONS").unwrap_or(0);
    let end = t[start..].find("\nROUTE").map_or(t.len(), |e| start + e);
    // `start` and `end` come from `find`, so both are char boundaries.
    Doc::masked("", &t[start..end], &Mask::default())
}

/// A phrase of the rules found in the evaluated file and in no training row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Phrase {
    /// The list it is in (`Churn risk: firm`, `NEGATORS`, `Churn risk: pair`).
    pub list: String,
    /// The phrase (a pair as `first … then`).
    pub phrase: String,
    /// The evaluated rows it matches.
    pub rows: Vec<String>,
}

/// The contamination of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contamination {
    /// Training rows the phrases were compared with.
    pub training_rows: usize,
    /// Negative rows the guards' phrases were compared with.
    pub negative_rows: usize,
    /// Phrases that match an evaluated row and no training row.
    pub phrases: Vec<Phrase>,
    /// The evaluated rows whose final severity changes when those phrases are switched off:
    /// decided by them alone.
    pub rows: Vec<String>,
    /// Rows evaluated (rows that are not a valid ticket left out).
    pub total: usize,
    /// Of them, rows the offline rules (and the weighting rules) got right.
    pub correct: usize,
    /// `correct / total`.
    pub accuracy: f64,
    /// Rows left when `rows` are taken out.
    pub clean_total: usize,
    /// Of them, rows got right.
    pub clean_correct: usize,
    /// `clean_correct / clean_total`: the accuracy the rules earned.
    pub clean_accuracy: f64,
    /// The 95% Wilson interval of `clean_accuracy`.
    pub clean_accuracy_ci95: [f64; 2],
}

/// One thing the rules look for: a phrase of a list (and whether the list raises a severity),
/// or a pair of a clause-level rule (which always does).
enum Unit {
    Phrase(String, &'static str, bool),
    Pair(&'static rules::Pair, &'static str, &'static str),
}

impl Unit {
    fn key(&self) -> String {
        match self {
            Unit::Phrase(_, p, _) => (*p).to_owned(),
            Unit::Pair(_, first, then) => pair_key(first, then),
        }
    }

    fn list(&self) -> String {
        match self {
            Unit::Phrase(list, ..) => list.clone(),
            Unit::Pair(pair, ..) => format!("{}: pair", pair.clause),
        }
    }

    fn raises(&self) -> bool {
        match self {
            Unit::Phrase(.., raises) => *raises,
            Unit::Pair(..) => true,
        }
    }

    fn in_doc(&self, doc: &Doc) -> bool {
        match self {
            Unit::Phrase(_, p, _) => doc.has(p),
            Unit::Pair(pair, first, then) => !pair_occurrences(doc, pair, first, then).is_empty(),
        }
    }
}

fn units() -> Vec<Unit> {
    let mut out: Vec<Unit> = rules::lists()
        .into_iter()
        .flat_map(|l| {
            l.phrases
                .iter()
                .map(move |p| Unit::Phrase(l.name.clone(), p, l.raises))
        })
        .collect();
    for pair in rules::PAIRS {
        out.extend(pair_phrases(pair).map(|(f, t)| Unit::Pair(pair, f, t)));
    }
    out
}

fn docs(rows: &[Example]) -> Vec<Doc> {
    rows.iter()
        .map(|e| Doc::masked(&e.subject, &e.first_message, &Mask::default()))
        .collect()
}

/// The phrases of the rules that match a row of `evaluated` and nothing they may be derived
/// from: no training row and not the definitions, nor (for a phrase that lowers a severity)
/// a negative row.
pub fn phrases(sources: Sources<'_>, evaluated: &[Example]) -> Vec<Phrase> {
    let mut train = docs(sources.labels);
    train.push(definitions());
    let (negatives, eval) = (docs(sources.negatives), docs(evaluated));
    let mut out: Vec<Phrase> = Vec::new();
    for unit in units() {
        let rows: Vec<String> = evaluated
            .iter()
            .zip(&eval)
            .filter(|(_, d)| unit.in_doc(d))
            .map(|(e, _)| e.ticket_id.clone())
            .collect();
        let taught = train.iter().any(|d| unit.in_doc(d))
            || (!unit.raises() && negatives.iter().any(|d| unit.in_doc(d)));
        if rows.is_empty() || taught {
            continue;
        }
        let (list, phrase) = (unit.list(), unit.key());
        // A phrase listed twice (a clause's and a guard's) is reported once per list.
        if !out.iter().any(|p| p.list == list && p.phrase == phrase) {
            out.push(Phrase { list, phrase, rows });
        }
    }
    out
}

/// The contamination of evaluating `classifier` (its training examples are the labels the
/// rules may come from, with `negatives`) with `weighting` on `evaluated`: the phrases, the
/// rows they alone decide, and the accuracy of the final severity (after the weighting rules,
/// as `escalator eval` counts it) with and without those rows.
pub fn check(
    classifier: &OfflineClassifier,
    weighting: &Weighting,
    negatives: &[Example],
    evaluated: &[Example],
) -> Contamination {
    let training: Vec<Example> = classifier.examples().cloned().collect();
    let sources = Sources {
        labels: &training,
        negatives,
    };
    let phrases = phrases(sources, evaluated);
    let keys: BTreeSet<String> = phrases.iter().map(|p| p.phrase.clone()).collect();
    let without = classifier.without(keys);
    let mut rows = Vec::new();
    let (mut total, mut correct, mut clean_total, mut clean_correct) = (0, 0, 0, 0);
    for e in evaluated {
        let Ok(ctx) = e.ticket_context() else {
            continue;
        };
        let ctx = crate::domain::TicketContext {
            ticket: weighting.account(ctx.ticket),
            ..ctx
        };
        let decide = |c: &OfflineClassifier| -> Severity {
            weighting
                .apply(&ctx, c.decide(&ctx).verdict.severity)
                .severity
        };
        let with = decide(classifier);
        let right = usize::from(with == e.severity);
        total += 1;
        correct += right;
        if decide(&without) == with {
            clean_total += 1;
            clean_correct += right;
        } else {
            rows.push(e.ticket_id.clone());
        }
    }
    let clean = Rate::of_rows(clean_correct, clean_total);
    Contamination {
        training_rows: training.len(),
        negative_rows: negatives.len(),
        phrases,
        rows,
        total,
        correct,
        accuracy: Rate::of_rows(correct, total).share,
        clean_total,
        clean_correct,
        clean_accuracy: clean.share,
        clean_accuracy_ci95: [clean.lo, clean.hi],
    }
}

impl std::fmt::Display for Contamination {
    /// `contamination: …` and one indented line per phrase, then the two accuracies.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sources = format!(
            "{} training rows, the definitions or (for a guard's phrase) the {} negatives",
            self.training_rows, self.negative_rows
        );
        if self.phrases.is_empty() {
            writeln!(
                f,
                "contamination: no rule phrase matches a row here and none of the {sources}"
            )?;
        } else {
            writeln!(
                f,
                "contamination: {} rule phrase(s) match a row here and none of the {sources}:",
                self.phrases.len()
            )?;
            for p in &self.phrases {
                writeln!(f, "  {}: \"{}\" ({})", p.list, p.phrase, p.rows.join(", "))?;
            }
        }
        let rows = if self.rows.is_empty() {
            "none".to_owned()
        } else {
            self.rows.join(", ")
        };
        writeln!(f, "rows decided only by them: {rows}")?;
        writeln!(
            f,
            "offline accuracy with them: {}/{} = {:.1}%; without them: {}",
            self.correct,
            self.total,
            self.accuracy * 100.0,
            Rate::of_rows(self.clean_correct, self.clean_total).sentence()
        )
    }
}
