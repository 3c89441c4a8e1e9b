//! The hygiene of a labels file: near-duplicates (character shingles, so a typo does not hide
//! a copy), conflicting labels within and across files, and a severity mix unlike the other
//! file's.

use std::{collections::BTreeMap, fmt};

use super::{Example, Problem, Summary};
use crate::{
    domain::{Severity, Tier},
    text,
};

/// How bad a finding of [`hygiene`] or [`super::Coverage::findings`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Worth a look; `labels check --strict` fails on it.
    Warning,
    /// The file is wrong; `labels check` fails.
    Error,
}

/// A located problem with its level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub level: Level,
    /// Where and what.
    pub problem: Problem,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.level {
            Level::Error => write!(f, "{}", self.problem),
            Level::Warning => {
                let p = &self.problem;
                let at = Problem {
                    message: format!("warning: {}", p.message),
                    ..p.clone()
                };
                write!(f, "{at}")
            }
        }
    }
}

/// Characters per shingle for [`similarity`].
pub const SHINGLE_CHARS: usize = 5;

/// Two rows whose [`similarity`] is at least this are near-duplicates: with different labels
/// they conflict (an error), with the same label one is redundant (a warning). Retyping a row
/// with a few words changed scores 0.7 to 0.95; the shipped files' most similar distinct rows
/// score below 0.2.
pub const NEAR_DUPLICATE_SIMILARITY: f64 = 0.6;

/// The text a row is compared by: subject and first message, [`text::fold`]ed (case, quotes,
/// width), with every run of characters that are not letters or digits one space.
fn comparable_text(e: &Example) -> Vec<char> {
    let folded = text::fold(&format!("{} {}", e.subject, e.first_message));
    let mut out = Vec::with_capacity(folded.len());
    let mut space = true;
    for c in folded.chars() {
        if c == '\'' {
            continue;
        }
        if c.is_alphanumeric() {
            out.push(c);
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if out.last() == Some(&' ') {
        out.pop();
    }
    out
}

/// The sorted set of [`SHINGLE_CHARS`]-character shingles of a row (windows over characters,
/// never bytes), hashed. A text shorter than one shingle is its own single shingle.
fn shingles(e: &Example) -> Vec<u64> {
    use std::hash::{Hash as _, Hasher as _};
    let chars = comparable_text(e);
    let hash = |w: &[char]| {
        let mut h = std::hash::DefaultHasher::new();
        w.hash(&mut h);
        h.finish()
    };
    let mut out: Vec<u64> = if chars.len() <= SHINGLE_CHARS {
        vec![hash(&chars)]
    } else {
        chars.windows(SHINGLE_CHARS).map(hash).collect()
    };
    out.sort_unstable();
    out.dedup();
    out
}

fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    let (mut i, mut j, mut both) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                both += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - both;
    #[allow(clippy::cast_precision_loss)]
    if union == 0 {
        0.0
    } else {
        both as f64 / union as f64
    }
}

/// How alike two rows read, 0..=1: the Jaccard index of their character shingles
/// ([`SHINGLE_CHARS`] characters of the folded subject and first message). Character shingles
/// rather than words, so a typo, a plural or another spelling of `can’t` barely moves it.
pub fn similarity(a: &Example, b: &Example) -> f64 {
    jaccard(&shingles(a), &shingles(b))
}

/// The exact-duplicate key: subject and first message with case, quotes and whitespace
/// normalised ([`text::fold`]).
fn exact_key(s: &str) -> String {
    text::fold(s)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether two rows' labels can be compared at all: the same text with another tier or another
/// repeat count may rightly have another label (enterprise is never routine; a repeat is urgent).
fn same_context(a: &Example, b: &Example) -> bool {
    a.tier == b.tier && a.repeat_24h.unwrap_or(0) == b.repeat_24h.unwrap_or(0)
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn percent(sim: f64) -> u32 {
    (sim * 100.0).floor() as u32
}

/// Duplicates and conflicting labels within `examples`, and against `other` (the file the
/// examples must stay apart from, e.g. the holdout):
///
/// - the same subject and first message (case, whitespace and quotes normalised), tier and
///   repeat count twice in one file: error;
/// - near-duplicates ([`similarity`] >= [`NEAR_DUPLICATE_SIMILARITY`]) with the same tier and
///   repeat count but different severities: error, naming both lines (`conflicting labels:
///   line 12 and line 57 are 91% similar`);
/// - near-duplicates with the same severity: warning (one of them teaches nothing new; across
///   files, the holdout would measure memory).
///
/// Rows are compared pairwise (quadratic; a few thousand rows take well under a second).
pub fn hygiene(
    file: &str,
    examples: &[Example],
    other: Option<(&str, &[Example])>,
) -> Vec<Finding> {
    let at = |level: Level, line: u64, message: String| Finding {
        level,
        problem: Problem {
            file: file.to_owned(),
            line,
            column: 0,
            message,
        },
    };
    let mut out = Vec::new();
    let ours: Vec<Vec<u64>> = examples.iter().map(shingles).collect();
    // `a` is a row of this file (the finding's line), `b` the later row or the other file's.
    let compare = |a: &Example, sa: &[u64], b: &Example, sb: &[u64], line: u64, where_b: String| {
        // Jaccard <= smaller / larger: skip pairs that cannot reach the threshold.
        let (lo, hi) = (sa.len().min(sb.len()), sa.len().max(sb.len()));
        #[allow(clippy::cast_precision_loss)]
        if hi == 0 || (lo as f64) < NEAR_DUPLICATE_SIMILARITY * hi as f64 {
            return None;
        }
        let sim = jaccard(sa, sb);
        if sim < NEAR_DUPLICATE_SIMILARITY {
            return None;
        }
        let pct = percent(sim);
        if a.severity == b.severity {
            Some(at(
                Level::Warning,
                line,
                format!(
                    "near-duplicate: line {} and {where_b} are {pct}% similar ({} and {}, both {})",
                    a.line, a.ticket_id, b.ticket_id, a.severity
                ),
            ))
        } else if same_context(a, b) {
            Some(at(
                Level::Error,
                line,
                format!(
                    "conflicting labels: line {} and {where_b} are {pct}% similar ({} is {}, {} is {})",
                    a.line, a.ticket_id, a.severity, b.ticket_id, b.severity
                ),
            ))
        } else {
            // Another tier or repeat count explains another label: a deliberate contrast pair.
            None
        }
    };
    let mut seen: BTreeMap<(String, String, Tier, u32), &Example> = BTreeMap::new();
    // A row that is an exact duplicate is reported once and not compared again.
    let mut duplicate = vec![false; examples.len()];
    for (j, b) in examples.iter().enumerate() {
        let key = (
            exact_key(&b.subject),
            exact_key(&b.first_message),
            b.tier,
            b.repeat_24h.unwrap_or(0),
        );
        if let Some(a) = seen.get(&key) {
            out.push(at(
                Level::Error,
                b.line,
                format!(
                    "exact duplicate: line {} and line {} have the same subject and first message ({} and {})",
                    a.line, b.line, a.ticket_id, b.ticket_id
                ),
            ));
            duplicate[j] = true;
            continue;
        }
        seen.insert(key, b);
        for (i, a) in examples[..j].iter().enumerate() {
            if !duplicate[i] {
                out.extend(compare(
                    a,
                    &ours[i],
                    b,
                    &ours[j],
                    b.line,
                    format!("line {}", b.line),
                ));
            }
        }
    }
    if let Some((other_file, other)) = other {
        for o in other {
            let so = shingles(o);
            for (i, a) in examples.iter().enumerate() {
                out.extend(compare(
                    a,
                    &ours[i],
                    o,
                    &so,
                    a.line,
                    format!("{other_file} line {}", o.line),
                ));
            }
        }
    }
    out
}

/// Severity shares of `examples` that differ from `other`'s by more than 10 points, as
/// warnings: a holdout measures the training mix only when it has the same one.
pub fn compare_mix(
    file: &str,
    examples: &[Example],
    other_file: &str,
    other: &[Example],
) -> Vec<Finding> {
    let mut out = Vec::new();
    if examples.is_empty() || other.is_empty() {
        return out;
    }
    let (mine, theirs) = (Summary::of(examples), Summary::of(other));
    for s in Severity::ALL {
        let (a, b) = (mine.share(*s), theirs.share(*s));
        if (a - b).abs() > 0.10 {
            out.push(Finding {
                level: Level::Warning,
                problem: Problem {
                    file: file.to_owned(),
                    line: 0,
                    column: 0,
                    message: format!(
                        "severity {s} is {:.0}% of the rows here but {:.0}% in {other_file}: keep the mix alike",
                        a * 100.0,
                        b * 100.0
                    ),
                },
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn duplicates_and_conflicting_labels_are_found_within_and_across_files() {
        let body = "We were charged $49 twice on March 3rd for the same Pro subscription, please refund one.";
        let typo = "We were charged $49 twice on March 3rd for teh same Pro subscription, please refund one!";
        let rows = vec![
            row("A-1", "Charged twice", body, "pro", "urgent", 2),
            row("A-2", "CHARGED  twice", body, "pro", "urgent", 3),
            row("A-3", "Charged twice", typo, "pro", "routine", 4),
            row("A-4", "Charged twice!", typo, "pro", "urgent", 5),
            // Another tier may rightly have another label: a contrast pair, not a conflict.
            row("A-5", "Charged twice", body, "enterprise", "on_fire", 6),
            row(
                "A-6",
                "Dark mode",
                "Would love a dark mode for the editor.",
                "pro",
                "routine",
                7,
            ),
        ];
        let found = messages(&hygiene("f.csv", &rows, None));
        assert_eq!(
            found,
            vec![
                "f.csv:3: exact duplicate: line 2 and line 3 have the same subject and first message (A-1 and A-2)",
                "f.csv:4: conflicting labels: line 2 and line 4 are 87% similar (A-1 is urgent, A-3 is routine)",
                "f.csv:5: warning: near-duplicate: line 2 and line 5 are 87% similar (A-1 and A-4, both urgent)",
                "f.csv:5: conflicting labels: line 4 and line 5 are 100% similar (A-3 is routine, A-4 is urgent)",
            ]
        );
        let other = vec![row("H-9", "Double charge", typo, "pro", "on_fire", 12)];
        let found = messages(&hygiene("f.csv", &rows[5..], Some(("h.csv", &other))));
        assert!(found.is_empty(), "{found:?}");
        let found = messages(&hygiene("f.csv", &rows[..1], Some(("h.csv", &other))));
        assert_eq!(
            found,
            vec![
                "f.csv:2: conflicting labels: line 2 and h.csv line 12 are 75% similar (A-1 is urgent, H-9 is on_fire)"
            ]
        );
    }

    #[test]
    fn similarity_shrugs_off_typos_and_separates_different_tickets() {
        let a = row(
            "A",
            "Webhooks stopped",
            "Our webhooks stopped firing two hours ago.",
            "pro",
            "on_fire",
            2,
        );
        let b = row(
            "B",
            "webhooks stopped",
            "our webhooks stoped firing 2 hours ago!!",
            "pro",
            "on_fire",
            3,
        );
        let c = row(
            "C",
            "Dark mode",
            "Would love a dark mode for the editor.",
            "pro",
            "routine",
            4,
        );
        assert!(
            similarity(&a, &b) > NEAR_DUPLICATE_SIMILARITY,
            "{}",
            similarity(&a, &b)
        );
        assert!(similarity(&a, &c) < 0.1);
        assert!((similarity(&a, &a) - 1.0).abs() < 1e-9);
        // Short and non-Latin texts are compared by characters, never bytes.
        let d = row("D", "ok", "日本", "free", "routine", 5);
        assert!((similarity(&d, &d) - 1.0).abs() < 1e-9);
    }
}
