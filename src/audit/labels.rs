//! The labels besides severity in the audit: topic and sentiment accuracy on the sampled
//! reviewed decisions, and each shadow category's accuracy, precision and recall on the sampled
//! decisions whose reviewer judged it, each weighted like the headline (by the inverse of the
//! decision's inclusion probability). Computed over the whole window (labels are judged less
//! often than the severity, and a shadow category needs every verdict it can get);
//! `escalator promote` gates on the same figures over the whole log.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::{
    domain::audit::AuditRow,
    stats::{Rate, Weighted},
};

/// Topic, sentiment and shadow figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelFigures {
    /// Reviewed decisions whose topic the reviewer confirmed, of those with a judged topic.
    pub topic: Rate,
    /// The same for the sentiment.
    pub sentiment: Rate,
    /// One entry per shadow category some reviewed decision was asked about, by name.
    pub shadow: Vec<ShadowFigures>,
}

/// How one shadow category did on the decisions whose reviewer judged it: the classifier said
/// it applies (positive) or not, the reviewer said whether it does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowFigures {
    /// The category.
    pub category: String,
    /// Said to apply, and it does.
    pub true_positive: u64,
    /// Said to apply, and it does not.
    pub false_positive: u64,
    /// Said not to apply, and it does.
    pub false_negative: u64,
    /// Said not to apply, and it does not. (The four counts are plain counts of verdicts; the
    /// rates below are weighted.)
    pub true_negative: u64,
    /// Right of judged: what `escalator promote` gates on.
    pub accuracy: Rate,
    /// True positives of those said to apply.
    pub precision: Rate,
    /// True positives of those it truly applies to.
    pub recall: Rate,
}

impl ShadowFigures {
    /// Decisions whose reviewer judged the category.
    pub fn judged(&self) -> u64 {
        self.accuracy.n
    }
}

/// The figures of `category` over `rows` (the sampled verdicts that judged it).
pub fn shadow(rows: &[&AuditRow], category: &str) -> ShadowFigures {
    let (mut tp, mut fp, mut fneg, mut tn) = (0, 0, 0, 0);
    let (mut accuracy, mut precision, mut recall) = (
        Weighted::default(),
        Weighted::default(),
        Weighted::default(),
    );
    for r in rows.iter().filter(|r| r.sample.is_some()) {
        let (Some(said), Some(truth)) =
            (r.shadow.get(category), r.review_labels.shadow.get(category))
        else {
            continue;
        };
        let w = r.weight();
        accuracy.add(w, said == truth);
        if *said {
            precision.add(w, *truth);
        }
        if *truth {
            recall.add(w, *said);
        }
        match (said, truth) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fneg += 1,
            (false, false) => tn += 1,
        }
    }
    ShadowFigures {
        category: category.to_owned(),
        true_positive: tp,
        false_positive: fp,
        false_negative: fneg,
        true_negative: tn,
        accuracy: accuracy.rate(),
        precision: precision.rate(),
        recall: recall.rate(),
    }
}

/// The label figures of `rows`.
pub fn figures(rows: &[&AuditRow]) -> LabelFigures {
    let (mut topic, mut sentiment) = (Weighted::default(), Weighted::default());
    let mut names = BTreeSet::new();
    for r in rows.iter().filter(|r| r.sample.is_some()) {
        if let Some(c) = r.review_labels.topic_correct(r.topic.as_deref()) {
            topic.add(r.weight(), c);
        }
        if let Some(c) = r.review_labels.sentiment_correct(r.sentiment) {
            sentiment.add(r.weight(), c);
        }
        for name in r.shadow.keys() {
            if r.review_labels.shadow.contains_key(name) {
                names.insert(name.clone());
            }
        }
    }
    LabelFigures {
        topic: topic.rate(),
        sentiment: sentiment.rate(),
        shadow: names.iter().map(|n| shadow(rows, n)).collect(),
    }
}
