//! The offline classifier: deterministic rules for each definition clause, combined with the
//! nearest labelled examples. Needs no network; serves when no API key is set, in tests, and as
//! the fallback when the model cannot decide.
//!
//! Written by hand because it *is* the product's definitions table in code: no crate knows our
//! buckets. It judges the ticket's content only: the tier and the repeat count are the
//! [tier weighting](crate::weighting)'s to apply, after any classifier, so the audit trail is
//! the same whichever classifier decided. How a ticket is decided:
//!
//! 1. **The customer's own words** ([`doc`]): HTML tags are removed and entities decoded,
//!    quoted earlier messages (`> …`, `On … wrote:`), everything after a signature separator
//!    (`--`) and email boilerplate (confidentiality notices) are left out; the rest is split
//!    into sentences and words of [`crate::text::fold`]ed text (`can’t` is `cant`, `ＤＯＷＮ` is
//!    `down`), each word knowing its clause, whether it was written as a name and whether it
//!    stands in quotation marks.
//! 2. **Phrase rules** ([`rules::CLAUSES`]) and **clause-level rules** ([`rules::PAIRS`]: `we
//!    won't be renewing`, `moving to <competitor>`, `other tenants' files`): a phrase fires only
//!    in a context that supports it. It does not fire as a person's name (`Sue from
//!    Brightline`), in a quotation that is mentioned rather than said (`the message "your
//!    account has been compromised"`), or when one of its clause's guards applies to that
//!    occurrence: a negation in the same clause (`not an outage`, `won't get exposed`), a
//!    conditional, a past or planned event, a resolved incident, a question about how to do
//!    something (`where does the API token go?`, `how long are deleted items kept?`), a
//!    feature request, a request for a document (`send your SOC 2 report`), a feature or team
//!    named `Security` or `Legal`, a deletion the customer made, a cancel whose object is not
//!    the subscription. Phrases cover English, Spanish, German and French for the main clauses.
//! 3. **Ambiguous phrases** (`security`, `gdpr`, `real person`, `crashes`) fire when the ticket
//!    confirms them (`everyone`, `all our staff`, `right now`); otherwise the nearest labelled
//!    examples vote, and a vote for a lower severity wins.
//! 4. The disputed amount of a billing dispute ([`amounts::disputed`]: the one in the sentence
//!    about the charge, not the plan's size) over $1,000, and competitors named in frustration;
//!    the highest severity wins. With no rule at all, the nearest labelled example decides when
//!    it is similar enough, else the ticket is routine.
//!
//! The rules may be derived from `labels/labels.csv`, `labels/negatives.csv` and the
//! definitions only; [`contamination`] lists the phrases a holdout shares with no training row
//! and the rows they alone decide, so an accuracy figure never rests on them unsaid.
//!
//! [`OfflineClassifier::explain`] reports every step (what fired, what a guard switched off and
//! why, the nearest examples) for `escalator eval --explain`. Nothing here slices text at a
//! byte offset: tickets are Unicode, and every position is a char or word index.
//!
//! Over 450 lines: the offline classifier's pipeline (match the rules and their guards,
//! amounts, nearest examples, labels) and its explanation mode, which must follow the same
//! steps.

mod amounts;
pub mod contamination;
mod doc;
mod rules;
#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeSet, HashMap},
    fmt,
};

use async_trait::async_trait;

use self::{
    doc::{At, Doc, Mask, content_words},
    rules::{Guard, Pair, Rule},
};
use super::{Classifier, ClassifierError};
use crate::{
    domain::{
        Classification, Confidence, Labels, Sentiment, Severity, TicketContext, Usage, Verdict,
        clause::Clause,
    },
    examples::{self, Example},
    taxonomy::{OTHER_TOPIC, Taxonomy},
};

/// The model name recorded for decisions made by this classifier.
pub const OFFLINE_MODEL: &str = "offline";

/// Billing disputes whose disputed amount is above this many USD are `on_fire`; at or below
/// it, `urgent`.
pub const BILLING_ON_FIRE_USD: f64 = 1_000.0;

/// Lowest cosine similarity (content words weighted by rarity across the labels) at which a
/// labelled example counts as near.
const NEAREST_MIN_SIMILARITY: f64 = 0.2;

/// With no rule at all (and no phrase a guard switched off), the nearest example decides only
/// when at least this similar.
const NO_RULE_MIN_SIMILARITY: f64 = 0.3;

/// A near example shares at least this many content words with the ticket.
const MIN_SHARED_WORDS: usize = 2;

/// How many near examples vote on an ambiguous phrase.
const VOTERS: usize = 3;

/// A rule that fired.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RuleHit {
    /// The severity it implies.
    pub severity: Severity,
    /// The clause (`Production down`) or rule (`Billing dispute over $1,000`).
    pub rule: &'static str,
    /// What matched (`"is down"`, `$2,400`), for reasoning and `--explain`.
    pub detail: String,
    /// The phrase of a phrase rule (the second part's, for a clause-level rule).
    pub phrase: Option<&'static str>,
    /// An ambiguous phrase the ticket did not confirm: the nearest examples decided on it.
    pub ambiguous: bool,
}

impl fmt::Display for RuleHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            write!(f, "{}", self.rule)
        } else {
            write!(f, "{} ({})", self.rule, self.detail)
        }
    }
}

/// A phrase that matched but did not fire, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Suppressed {
    /// The clause it belongs to.
    pub rule: &'static str,
    /// The phrase.
    pub phrase: &'static str,
    /// The guard that applied (`negated`, `asks for a document`), or the vote that overruled it.
    pub reason: String,
}

/// A labelled example near the ticket.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Neighbour {
    /// Its id in the labels file.
    pub ticket_id: String,
    /// Its label.
    pub severity: Severity,
    /// The severity its text alone implies (an enterprise or repeat row counts as routine).
    pub votes_for: Severity,
    /// Cosine similarity, 0..=1.
    pub similarity: f64,
}

/// How the offline classifier decided one ticket.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The decision.
    pub classification: Classification,
    /// The rules that fired, highest severity first.
    pub fired: Vec<RuleHit>,
    /// Phrases that matched but a guard or the vote switched off.
    pub suppressed: Vec<Suppressed>,
    /// The nearest labelled examples, most similar first (at most [`VOTERS`]).
    pub nearest: Vec<Neighbour>,
}

impl Explanation {
    /// The rules, guards and neighbours, for display.
    pub fn trace(&self) -> Trace<'_> {
        Trace {
            fired: &self.fired,
            suppressed: &self.suppressed,
            nearest: &self.nearest,
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.trace().fmt(f)
    }
}

/// The parts of an [`Explanation`] that say how, shown as three indented lines: `fired:`,
/// `switched off:` and `nearest:` (what `escalator eval --explain` prints per ticket).
#[derive(Debug, Clone, Copy)]
pub struct Trace<'a> {
    /// The rules that fired.
    pub fired: &'a [RuleHit],
    /// The phrases switched off.
    pub suppressed: &'a [Suppressed],
    /// The nearest examples.
    pub nearest: &'a [Neighbour],
}

impl fmt::Display for Trace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |items: Vec<String>| {
            if items.is_empty() {
                "none".to_owned()
            } else {
                items.join("; ")
            }
        };
        let fired = self
            .fired
            .iter()
            .map(|h| {
                let amb = if h.ambiguous { ", ambiguous" } else { "" };
                format!("{h} -> {}{amb}", h.severity)
            })
            .collect();
        let off = self
            .suppressed
            .iter()
            .map(|s| format!("{} (\"{}\"): {}", s.rule, s.phrase, s.reason))
            .collect();
        let near = self
            .nearest
            .iter()
            .map(|n| {
                let votes = if n.votes_for == n.severity {
                    String::new()
                } else {
                    format!(", votes {}", n.votes_for)
                };
                format!(
                    "{} {}{votes} ({:.0}% similar)",
                    n.ticket_id,
                    n.severity,
                    n.similarity * 100.0
                )
            })
            .collect();
        writeln!(f, "    fired: {}", join(fired))?;
        writeln!(f, "    switched off: {}", join(off))?;
        writeln!(f, "    nearest: {}", join(near))
    }
}

/// The rule-based classifier. Build once at startup.
#[derive(Debug, Clone)]
pub struct OfflineClassifier {
    examples: Vec<Indexed>,
    /// Inverse document frequency of each content word over the examples.
    idf: HashMap<String, f64>,
    /// The weight of a word no example has.
    unseen_idf: f64,
    prompt_version: String,
    /// The topics it may answer (a topic with no keywords of its own is never chosen).
    taxonomy: Taxonomy,
    /// Phrases switched off ([`OfflineClassifier::without`]); empty in service.
    mask: Mask,
}

#[derive(Debug, Clone)]
struct Indexed {
    example: Example,
    votes_for: Severity,
    vector: HashMap<String, f64>,
}

impl OfflineClassifier {
    /// A classifier whose nearest-example step uses `examples`; decisions record
    /// `prompt_version` (the labels it was built from are part of that version).
    pub fn new(examples: &[Example], prompt_version: impl Into<String>) -> Self {
        let words: Vec<BTreeSet<String>> = examples
            .iter()
            .map(|e| content_words(&Doc::masked(&e.subject, &e.first_message, &Mask::default())))
            .collect();
        let mut df: HashMap<&str, usize> = HashMap::new();
        for w in words.iter().flatten() {
            *df.entry(w.as_str()).or_default() += 1;
        }
        #[allow(clippy::cast_precision_loss)]
        let n = examples.len() as f64;
        #[allow(clippy::cast_precision_loss)]
        let idf: HashMap<String, f64> = df
            .into_iter()
            .map(|(w, d)| (w.to_owned(), ((n + 1.0) / (d as f64 + 1.0)).ln() + 1.0))
            .collect();
        let unseen_idf = (n + 1.0).ln() + 1.0;
        let mut this = Self {
            examples: Vec::new(),
            idf,
            unseen_idf,
            prompt_version: prompt_version.into(),
            taxonomy: Taxonomy::default(),
            mask: Mask::default(),
        };
        this.examples = examples
            .iter()
            .zip(&words)
            .map(|(e, w)| Indexed {
                example: e.clone(),
                votes_for: text_severity(e),
                vector: this.vector(w),
            })
            .collect();
        this
    }

    /// The same classifier with `phrases` switched off: each matches nothing, as if it had never
    /// been written in the rules (a clause-level rule's pair is written `first … then`, see
    /// [`doc::pair_key`]). What a decision would be without them.
    #[must_use]
    pub fn without(&self, phrases: impl IntoIterator<Item = String>) -> Self {
        let mut this = self.clone();
        this.mask = std::sync::Arc::new(phrases.into_iter().collect());
        this
    }

    /// The labelled examples its nearest-example step uses.
    pub fn examples(&self) -> impl Iterator<Item = &Example> {
        self.examples.iter().map(|ix| &ix.example)
    }

    /// The same classifier answering topics from `taxonomy` (the default topics otherwise).
    #[must_use]
    pub fn with_taxonomy(mut self, taxonomy: Taxonomy) -> Self {
        self.taxonomy = taxonomy;
        self
    }

    /// The topic and sentiment of a ticket: clauses that name a topic, then the keywords of
    /// [`rules::TOPICS`] (only topics configured); the tone from [`rules::NEGATIVE`],
    /// [`rules::FRUSTRATION`], churn risk, a demand for a human now, production down, data
    /// loss, legal language, a dispute over $1,000 and chasing an unanswered ticket, else
    /// [`rules::POSITIVE`]; `other` and `neutral` when nothing says. Shadow categories are not
    /// judged here.
    fn labels(&self, doc: &Doc, fired: &[RuleHit]) -> Labels {
        let has_rule = |names: &[&str]| fired.iter().any(|h| names.contains(&h.rule));
        let by_clause = [
            ("security", has_rule(&[Clause::SecurityReport.name()])),
            ("legal", has_rule(&[Clause::LegalLanguage.name()])),
            (
                "outage",
                has_rule(&[Clause::ProductionDown.name(), Clause::DataLoss.name()]),
            ),
            (
                "billing",
                has_rule(&[
                    rules::BILLING_DISPUTE,
                    Clause::BillingDisputeOver1000.name(),
                ]),
            ),
        ];
        let topics = self.taxonomy.topics();
        let known = |t: &str| topics.contains(&t);
        let topic = by_clause
            .iter()
            .find(|(t, hit)| *hit && known(t))
            .map(|(t, _)| *t)
            .or_else(|| {
                rules::TOPICS
                    .iter()
                    .find(|(t, phrases)| known(t) && phrases.iter().any(|p| doc.has(p)))
                    .map(|(t, _)| *t)
            })
            .unwrap_or(OTHER_TOPIC);
        // Besides the words: a customer whose production is down or data lost, who threatens
        // legal action or disputes a large charge, or who writes again unanswered, is not
        // neutral (the repeat counts by the phrases only: a second ticket is no tone).
        let chasing = rules::CLAUSES
            .iter()
            .filter(|c| c.name == rules::REPEAT_PHRASES)
            .flat_map(|c| c.firm_phrases())
            .any(|(p, _)| doc.has(p));
        let negative = has_rule(&[
            Clause::ChurnRisk.name(),
            Clause::NeedAHumanNow.name(),
            Clause::ProductionDown.name(),
            Clause::DataLoss.name(),
            Clause::LegalLanguage.name(),
            Clause::BillingDisputeOver1000.name(),
        ]) || chasing
            || rules::NEGATIVE.iter().any(|p| doc.has(p))
            || rules::FRUSTRATION.iter().any(|p| doc.has(p));
        let sentiment = if negative {
            Sentiment::Negative
        } else if rules::POSITIVE.iter().any(|p| doc.has(p)) {
            Sentiment::Positive
        } else {
            Sentiment::Neutral
        };
        Labels {
            topic: topic.to_owned(),
            sentiment,
            shadow: std::collections::BTreeMap::new(),
        }
    }

    /// The topics it answers from.
    pub fn taxonomy(&self) -> &Taxonomy {
        &self.taxonomy
    }

    /// The prompt version this classifier's decisions carry.
    pub fn prompt_version(&self) -> &str {
        &self.prompt_version
    }

    /// Classifies deterministically; never fails.
    pub fn decide(&self, ctx: &TicketContext) -> Classification {
        self.explain(ctx).classification
    }

    /// Classifies and says how: which rules fired, which phrases a guard switched off, and the
    /// nearest labelled examples. The content only: `ctx`'s tier and repeat count are the
    /// weighting rules' to apply ([`crate::weighting::Weighting::apply`]).
    ///
    /// A follow-up's conversation is read newest customer message first: when a rule fires on
    /// that message (with the subject), its reading stands, so what the customer says now is
    /// what counts; otherwise the whole conversation is read as one body.
    pub fn explain(&self, ctx: &TicketContext) -> Explanation {
        let t = &ctx.ticket;
        if let Some(newest) = t.conversation().and_then(|c| c.newest_customer()) {
            let e = self.explain_doc(&Doc::masked(t.subject(), &newest.text, &self.mask));
            if !e.fired.is_empty() {
                return e;
            }
        }
        self.explain_doc(&Doc::masked(t.subject(), t.body(), &self.mask))
    }

    /// [`OfflineClassifier::explain`] over one text.
    fn explain_doc(&self, doc: &Doc) -> Explanation {
        let nearest = self.nearest(doc);
        let vote = vote(&nearest);
        let mut fired: Vec<RuleHit> = Vec::new();
        let mut suppressed: Vec<Suppressed> = Vec::new();
        let mut ambiguous: Vec<RuleHit> = Vec::new();

        for clause in rules::CLAUSES {
            match_clause(clause, doc, &mut fired, &mut ambiguous, &mut suppressed);
        }
        let billing = rules::CLAUSES
            .iter()
            .find(|c| c.name == rules::BILLING_DISPUTE);
        let billing_disputed = fired.iter().any(|h| h.rule == rules::BILLING_DISPUTE);
        if let (true, Some(billing)) = (billing_disputed, billing) {
            if let Some(amount) = amounts::disputed(doc, billing) {
                if amount > BILLING_ON_FIRE_USD {
                    fired.push(RuleHit {
                        severity: Severity::OnFire,
                        rule: Clause::BillingDisputeOver1000.name(),
                        detail: format!("a disputed amount of {amount:.0}"),
                        phrase: None,
                        ambiguous: false,
                    });
                }
            }
        }
        if let Some(c) = rules::COMPETITORS.iter().find(|c| doc.has(c)) {
            if let Some(f) = rules::FRUSTRATION.iter().find(|f| doc.has(f)) {
                fired.push(RuleHit {
                    severity: Severity::Urgent,
                    rule: Clause::CompetitorInFrustration.name(),
                    detail: format!("{c}, \"{f}\""),
                    phrase: None,
                    ambiguous: false,
                });
            }
        }
        // An ambiguous phrase above what fired for sure stands only when the near examples vote
        // for at least its severity: a word like `security` or `fails` alone proves nothing.
        let firm_top = fired.iter().map(|h| h.severity).max();
        let mut vote_overruled = 0;
        for hit in ambiguous {
            if firm_top.is_some_and(|s| s >= hit.severity) {
                continue;
            }
            let reason = match &vote {
                Some((v, _)) if *v >= hit.severity => {
                    fired.push(hit);
                    continue;
                }
                Some((v, by)) => format!("ambiguous; the nearest examples ({by}) are {v}"),
                None => "ambiguous; no similar labelled example".to_owned(),
            };
            vote_overruled += 1;
            suppressed.push(Suppressed {
                rule: hit.rule,
                phrase: hit.phrase.unwrap_or_default(),
                reason,
            });
        }
        let guarded_off = suppressed.len() > vote_overruled;
        // Highest severity wins; among equals the first clause in definition order names it.
        fired.sort_by_key(|h| std::cmp::Reverse(h.severity));

        let (severity, confidence, reasoning) = match (fired.first(), nearest.first()) {
            (Some(top), near) => {
                let same_level = fired.iter().filter(|h| h.severity == top.severity).count();
                let agrees = vote.as_ref().is_some_and(|(v, _)| *v == top.severity);
                #[allow(clippy::cast_precision_loss)]
                let mut conf = 0.7 + 0.05 * (same_level.min(3) as f64);
                if agrees {
                    conf += 0.1;
                }
                if top.ambiguous {
                    conf = 0.55;
                }
                let why = match (top.ambiguous, near) {
                    (true, Some(n)) => format!(
                        "Offline rule {top} was ambiguous; the nearest example {} agrees.",
                        n.ticket_id
                    ),
                    _ => format!("Offline rules matched {top}."),
                };
                (top.severity, conf, why)
            }
            // A guard that switched a phrase off is evidence against the incident; a look-alike
            // example does not overrule it.
            (None, Some(n)) if n.similarity >= NO_RULE_MIN_SIMILARITY && !guarded_off => (
                n.votes_for,
                (0.45 + n.similarity / 2.0).min(0.8),
                format!(
                    "No rule matched; nearest labelled example {} is {}.",
                    n.ticket_id, n.votes_for
                ),
            ),
            (None, _) => (
                Severity::Routine,
                0.6,
                "No urgency signal matched; a routine question for the bot.".to_owned(),
            ),
        };
        let confidence = Confidence::parse(confidence.min(0.95)).unwrap_or(Confidence::ZERO);
        let labels = self.labels(doc, &fired);
        Explanation {
            classification: Classification {
                verdict: Verdict::new(severity, None, confidence, &reasoning).with_labels(labels),
                model: OFFLINE_MODEL.to_owned(),
                prompt_version: self.prompt_version.clone(),
                fallback_reason: None,
                usage: Usage::default(),
                observation_id: None,
            },
            fired,
            suppressed,
            nearest,
        }
    }

    /// The tf-idf vector of a set of content words, unit length.
    fn vector(&self, words: &BTreeSet<String>) -> HashMap<String, f64> {
        let mut v: HashMap<String, f64> = words
            .iter()
            .map(|w| {
                let idf = self.idf.get(w).copied().unwrap_or(self.unseen_idf);
                (w.clone(), idf)
            })
            .collect();
        let norm = v.values().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 {
            for x in v.values_mut() {
                *x /= norm;
            }
        }
        v
    }

    /// The [`VOTERS`] most similar examples at or above [`NEAREST_MIN_SIMILARITY`].
    fn nearest(&self, doc: &Doc) -> Vec<Neighbour> {
        let words = content_words(doc);
        if words.is_empty() {
            return Vec::new();
        }
        let q = self.vector(&words);
        let mut near: Vec<Neighbour> = self
            .examples
            .iter()
            .filter_map(|ix| {
                let shared: Vec<f64> = q
                    .iter()
                    .filter_map(|(w, a)| ix.vector.get(w).map(|b| a * b))
                    .collect();
                let sim: f64 = shared.iter().sum();
                // One shared word (`help`) is a coincidence, not a likeness.
                (shared.len() >= MIN_SHARED_WORDS && sim >= NEAREST_MIN_SIMILARITY).then(|| {
                    Neighbour {
                        ticket_id: ix.example.ticket_id.clone(),
                        severity: ix.example.severity,
                        votes_for: ix.votes_for,
                        similarity: sim.min(1.0),
                    }
                })
            })
            .collect();
        near.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        near.truncate(VOTERS);
        near
    }
}

/// The severity an example's text alone stands for: its label, except rows labelled urgent only
/// for their tier or their repeat count, whose words are routine.
fn text_severity(e: &Example) -> Severity {
    match examples::clause_of(e).map(|c| c.clause) {
        Some(Clause::EnterpriseAccount) => Severity::Routine,
        Some(Clause::RepeatTicket) if e.repeat_24h.unwrap_or(0) > 0 => Severity::Routine,
        _ => e.severity,
    }
}

/// The severity the near examples vote for (similarity-weighted), and who voted.
fn vote(near: &[Neighbour]) -> Option<(Severity, String)> {
    let mut weight: [f64; 3] = [0.0; 3];
    for n in near {
        weight[severity_index(n.votes_for)] += n.similarity;
    }
    let (i, w) = weight
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))?;
    if *w <= 0.0 {
        return None;
    }
    let winner = Severity::ALL[i];
    let who = near
        .iter()
        .map(|n| n.ticket_id.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    Some((winner, who))
}

fn severity_index(s: Severity) -> usize {
    Severity::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

/// Matches one clause's phrases in `doc`: the first unguarded occurrence of each firm phrase
/// (or of each of the clause's [`rules::PAIRS`]) fires; weak phrases fire when confirmed and are
/// otherwise left for the vote (`ambiguous`).
fn match_clause(
    clause: &'static Rule,
    doc: &Doc,
    fired: &mut Vec<RuleHit>,
    ambiguous: &mut Vec<RuleHit>,
    suppressed: &mut Vec<Suppressed>,
) {
    let mut firm_hit = false;
    let mut fire = |detail: String, phrase: &'static str, fired: &mut Vec<RuleHit>| {
        if !firm_hit {
            fired.push(RuleHit {
                severity: clause.severity,
                rule: clause.name,
                detail,
                phrase: Some(phrase),
                ambiguous: false,
            });
            firm_hit = true;
        }
    };
    for (p, guarded) in clause.firm_phrases() {
        let extra: &[Guard] = if guarded { clause.weak_guards } else { &[] };
        match first_unguarded(doc, doc.find(p), clause.guards.iter().chain(extra)) {
            Found::Yes => fire(format!("\"{p}\""), p, fired),
            Found::Guarded(reason) => suppressed.push(Suppressed {
                rule: clause.name,
                phrase: p,
                reason: reason.to_owned(),
            }),
            Found::No => {}
        }
    }
    for pair in rules::PAIRS.iter().filter(|p| p.clause == clause.name) {
        for (first, then) in pair_phrases(pair) {
            let found = pair_occurrences(doc, pair, first, then);
            match first_unguarded(doc, found.into_iter(), clause.guards.iter()) {
                Found::Yes => fire(format!("\"{first} … {then}\""), then, fired),
                Found::Guarded(reason) => suppressed.push(Suppressed {
                    rule: clause.name,
                    phrase: then,
                    reason: reason.to_owned(),
                }),
                Found::No => {}
            }
        }
    }
    if firm_hit {
        return;
    }
    let confirmed = clause.confirm.iter().find(|c| doc.has(c));
    for p in clause.weak {
        let guards = clause.guards.iter().chain(clause.weak_guards);
        match first_unguarded(doc, doc.find(p), guards) {
            Found::Yes => {
                let hit = RuleHit {
                    severity: clause.severity,
                    rule: clause.name,
                    detail: format!("\"{p}\""),
                    phrase: Some(p),
                    ambiguous: confirmed.is_none(),
                };
                if let Some(c) = confirmed {
                    fired.push(RuleHit {
                        detail: format!("\"{p}\", \"{c}\""),
                        ..hit
                    });
                } else {
                    ambiguous.push(hit);
                }
                return;
            }
            Found::Guarded(reason) => suppressed.push(Suppressed {
                rule: clause.name,
                phrase: p,
                reason: reason.to_owned(),
            }),
            Found::No => {}
        }
    }
}

/// Every `(first, then)` combination of a clause-level rule, in table order.
fn pair_phrases(pair: &'static Pair) -> impl Iterator<Item = (&'static str, &'static str)> {
    pair.first
        .iter()
        .flat_map(|f| pair.then.iter().map(move |t| (*f, *t)))
}

/// Where `first` then `then` occur as `pair` asks: at most `pair.gap` words apart in one
/// clause, with a word of `pair.context` in the sentence when it has any. Each occurrence spans
/// from the first part to the end of the second, so the guards look before the first part.
/// Masked as a whole under [`doc::pair_key`].
fn pair_occurrences(doc: &Doc, pair: &Pair, first: &str, then: &str) -> Vec<At> {
    let mut out = Vec::new();
    let first_len = first.split(' ').count();
    let then_len = then.split(' ').count();
    for (i, s) in doc.sentences.iter().enumerate() {
        if s.is_masked(&doc::pair_key(first, then))
            || !(pair.context.is_empty() || pair.context.iter().any(|c| s.has(c)))
        {
            continue;
        }
        // A name is not the second part (`our contact, Sue Marsh`).
        for t in s.find(then).filter(|t| !s.is_name(*t, then_len)) {
            let starts = s.find(first).filter(|f| {
                let end = f + first_len;
                end <= t && t - end <= pair.gap && s.same_clause(*f, t)
            });
            if let Some(f) = starts.max() {
                out.push(At {
                    sentence: i,
                    start: f,
                    len: t + then_len - f,
                });
            }
        }
    }
    out
}

enum Found {
    /// An occurrence no guard applies to.
    Yes,
    /// Every occurrence was guarded; the first guard's reason.
    Guarded(&'static str),
    No,
}

/// Whether one of `occurrences` fires: none that is a person's name (a single word written
/// as one, see [`doc::Sentence::is_name`]), none in a quotation that is mentioned rather than
/// said, and none a guard of `guards` applies to.
fn first_unguarded<'g>(
    doc: &Doc,
    occurrences: impl Iterator<Item = At>,
    guards: impl Iterator<Item = &'g Guard> + Clone,
) -> Found {
    // The subject is a summary of the body: when the body mentions the phrase only in a
    // guarded way (`no longer see the duplicate charge`), the subject's bare mention follows it.
    let (mut subject, mut body_guarded) = (None, None);
    for at in occurrences {
        let s = &doc.sentences[at.sentence];
        let why = if s.is_name(at.start, at.len) {
            Some("a person's name")
        } else if s.quotation(at.start, at.len) == Some(true) {
            Some("quoted, not said")
        } else {
            guards.clone().find_map(|g| guard(*g, doc, at))
        };
        match (s.subject, why) {
            (true, why) => subject = Some(why),
            (false, None) => return Found::Yes,
            (false, Some(r)) => {
                body_guarded.get_or_insert(r);
            }
        }
    }
    match (body_guarded, subject) {
        (Some(r), _) | (None, Some(Some(r))) => Found::Guarded(r),
        (None, Some(None)) => Found::Yes,
        (None, None) => Found::No,
    }
}

/// Whether `g` applies to the occurrence `at`, and why.
fn guard(g: Guard, doc: &Doc, at: At) -> Option<&'static str> {
    let s = &doc.sentences[at.sentence];
    let before = |n: usize| at.start.saturating_sub(n)..at.start;
    match g {
        Guard::Negated => before(4)
            .filter(|k| s.same_clause(*k, at.start))
            .any(|k| {
                s.word_is(k, rules::NEGATORS)
                    && !(k + 1 < at.start && s.word_is(k + 1, rules::NOT_NEGATING))
            })
            .then_some("negated"),
        Guard::Hypothetical => before(6)
            .filter(|k| s.same_clause(*k, at.start))
            .any(|k| rules::CONDITIONALS.iter().any(|c| s.starts_at(k, c)))
            .then_some("hypothetical"),
        Guard::Resolved => (s.flags.resolved && !s.flags.ongoing_now).then_some("over or resolved"),
        Guard::PastOrPlanned => {
            (s.flags.past_or_planned && !s.flags.ongoing).then_some("a planned or past event")
        }
        Guard::SingleUser => s.flags.single_user.then_some("one user or browser"),
        Guard::HowTo => (s.asks_how_to(at.start) && !s.flags.ongoing).then_some("asks how to"),
        Guard::OwnSystem => before(6)
            .filter(|k| s.same_clause(*k, at.start))
            .any(|k| rules::OWN_SYSTEMS.iter().any(|o| s.starts_at(k, o)))
            .then_some("the customer's own system"),
        Guard::Modifier => {
            let after = at.start + at.len;
            (after..after + 2)
                .any(|k| s.same_clause(k, at.start) && s.word_is(k, rules::MODIFIED_HEADS))
                .then_some("names a kind of thing")
        }
        Guard::Intensional => {
            let searched = at
                .start
                .checked_sub(1)
                .is_some_and(|k| s.word_is(k, &["for", "against"]))
                && before(6)
                    .any(|k| s.same_clause(k, at.start) && s.word_is(k, rules::SEARCH_VERBS));
            let prevented =
                before(3).any(|k| s.same_clause(k, at.start) && s.word_is(k, rules::PREVENT));
            (searched || prevented).then_some("looked for or prevented, not found")
        }
        Guard::FeatureAsk => s.flags.feature_ask.then_some("asks for a feature"),
        Guard::DocumentRequest => doc.asks_for_document.then_some("asks for a document"),
        Guard::FeatureName => {
            let next = at.start + at.len;
            let prev = at.start.checked_sub(1);
            (s.word_is(next, rules::FEATURE_NOUNS)
                || prev.is_some_and(|k| s.word_is(k, rules::FEATURE_NOUNS)))
            .then_some("names a feature or team")
        }
        Guard::SelfInflicted => doc.self_inflicted.then_some("the customer did it"),
        Guard::OtherObject => {
            let after = at.start + at.len;
            let last = at.start + at.len - 1;
            (after..(after + 4).min(s.words.len()))
                .filter(|k| s.segments[*k] == s.segments[last])
                .any(|k| s.word_is(k, rules::OTHER_OBJECTS))
                .then_some("about something other than the subscription")
        }
        Guard::NotNow => (s.flags.later && !s.flags.now).then_some("for later"),
    }
}

#[async_trait]
impl Classifier for OfflineClassifier {
    fn model(&self) -> &str {
        OFFLINE_MODEL
    }

    async fn classify(&self, ctx: &TicketContext) -> Result<Classification, ClassifierError> {
        Ok(self.decide(ctx))
    }
}
