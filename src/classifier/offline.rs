//! The offline classifier: deterministic rules for each definition clause, combined with the
//! nearest labelled example. Needs no network; serves when no API key is set, in tests, and as
//! the fallback when the model cannot decide.
//!
//! Written by hand because it *is* the product's definitions table in code: no crate knows our
//! buckets. The rules are phrase lists matched on word boundaries of lowercased text, so a
//! support lead can read and extend them.

use std::collections::BTreeSet;

use async_trait::async_trait;

use super::{Classifier, ClassifierError};
use crate::{
    domain::{Classification, Confidence, Severity, TicketContext, Tier, Usage, Verdict},
    labels::Example,
};

/// The model name recorded for decisions made by this classifier.
pub const OFFLINE_MODEL: &str = "offline";

/// Billing disputes above this many USD are `on_fire`; at or below it, `urgent`.
pub const BILLING_ON_FIRE_USD: f64 = 1_000.0;

/// Minimum word overlap (Jaccard) for the nearest example to count.
const NEAREST_MIN_SIMILARITY: f64 = 0.34;

struct Clause {
    severity: Severity,
    name: &'static str,
    phrases: &'static [&'static str],
}

/// Phrase rules, one per definition clause. Phrases are matched as whole words in the
/// lowercased subject + message, with punctuation turned into spaces (apostrophes dropped).
const CLAUSES: &[Clause] = &[
    Clause {
        severity: Severity::OnFire,
        name: "Production down",
        phrases: &[
            "outage",
            "is down",
            "are down",
            "went down",
            "goes down",
            "down for",
            "production down",
            "prod down",
            "site down",
            "returns http 500",
            "returning 500",
            "500s",
            "http 500",
            "http 502",
            "http 503",
            "503",
            "502",
            "wont load",
            "not loading",
            "stopped firing",
            "completely stopped",
            "nothing has run",
            "stuck in queued",
            "nothing is reaching",
            "cant log in",
            "cannot log in",
            "nobody can log in",
            "all requests fail",
            "every request",
            "is unusable",
            "unavailable",
            "service is down",
        ],
    },
    Clause {
        severity: Severity::OnFire,
        name: "Data loss",
        phrases: &[
            "data loss",
            "lost data",
            "lost all",
            "deleted",
            "are missing",
            "is missing",
            "missing after",
            "gone from",
            "overwrote",
            "overwritten",
            "wiped",
            "disappeared",
            "history is gone",
            "data is gone",
            "records are gone",
            "corrupted",
        ],
    },
    Clause {
        severity: Severity::OnFire,
        name: "Security report",
        phrases: &[
            "security",
            "vulnerability",
            "xss",
            "script tag",
            "exposed",
            "leaked",
            "leak",
            "tenant isolation",
            "another company",
            "different company",
            "another customer",
            "suspicious login",
            "suspicious logins",
            "logins to our",
            "public repo",
            "compromised",
            "unauthorized",
            "unauthorised",
            "phishing",
            "account takeover",
            "sql injection",
            "key is visible",
            "token in",
        ],
    },
    Clause {
        severity: Severity::OnFire,
        name: "Legal language",
        phrases: &[
            "lawyer",
            "lawyers",
            "attorney",
            "legal action",
            "legal team",
            "gdpr",
            "subpoena",
            "breach of contract",
            "dpa",
            "lawsuit",
            "sue you",
            "court",
            "litigation",
            "data protection authority",
            "cease and desist",
        ],
    },
    Clause {
        severity: Severity::OnFire,
        name: "Need a human now",
        phrases: &[
            "human now",
            "real person",
            "actual person",
            "person right now",
            "speak to a human",
            "talk to a human",
            "on the phone with me",
            "escalate this",
            "escalate immediately",
            "manager now",
        ],
    },
    Clause {
        severity: Severity::Urgent,
        name: "Churn risk",
        phrases: &[
            "cancel",
            "cancelling",
            "canceling",
            "cancellation",
            "not renewing",
            "wont renew",
            "will not renew",
            "moving off",
            "move off",
            "leave your platform",
            "worth keeping",
            "worth staying",
            "churn",
            "terminate our",
            "switching away",
            "look elsewhere",
        ],
    },
    Clause {
        severity: Severity::Urgent,
        name: "Billing dispute",
        phrases: &[
            "refund",
            "refunded",
            "charged twice",
            "double charged",
            "duplicate charge",
            "overcharge",
            "overcharged",
            "dispute",
            "billed us",
            "bills us",
            "were billed",
            "was billed",
            "got billed",
            "still billed",
            "wrong invoice",
            "invoice is wrong",
            "this charge",
            "charged us",
            "charged me",
            "in error",
        ],
    },
    Clause {
        severity: Severity::Urgent,
        name: "Repeat ticket within 24 h",
        phrases: &[
            "third message",
            "third time",
            "second time asking",
            "second message",
            "asking again",
            "following up again",
            "earlier today",
            "this morning and",
            "still havent heard",
            "no reply",
            "nobody answered",
            "no one answered",
            "still waiting",
            "re re",
            "writing again",
            "no response yet",
        ],
    },
];

/// Competitor names; they count only with frustration language (see [`FRUSTRATION`]).
const COMPETITORS: &[&str] = &[
    "mixpanel",
    "amplitude",
    "segment",
    "intercom",
    "zendesk",
    "heap",
    "posthog",
    "looker",
    "tableau",
    "freshdesk",
    "pendo",
    "fullstory",
    "datadog",
];

/// Frustration language that turns a named competitor into an urgent signal.
const FRUSTRATION: &[&str] = &[
    "frustrating",
    "frustrated",
    "fed up",
    "ugh",
    "just works",
    "never had this problem",
    "handles this fine",
    "fine out of the box",
    "evaluating",
    "switching to",
    "why we switched",
    "sick of",
    "annoying",
    "ridiculous",
    "unacceptable",
    "does this better",
    "much better",
];

/// Words that make an amount a billing dispute rather than a question.
const DISPUTE_CONTEXT: &[&str] = &[
    "dispute",
    "wrong",
    "refund",
    "reversed",
    "never",
    "overcharge",
    "overcharged",
    "charged us",
    "billed us",
    "were billed",
    "in error",
    "not pay",
    "correct it",
    "didnt approve",
    "never approved",
    "nobody",
    "overage",
    "charged",
];

const STOPWORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "to", "of", "in", "on", "for", "with", "is", "are",
    "was", "were", "be", "it", "its", "this", "that", "we", "our", "us", "i", "my", "me", "you",
    "your", "can", "do", "does", "how", "what", "at", "from", "by", "as", "have", "has", "just",
    "there", "any", "so", "if", "not", "no", "get", "all", "about", "would", "could", "should",
    "im", "they",
];

/// The rule-based classifier. Cheap to clone the examples into; build once at startup.
#[derive(Debug, Clone)]
pub struct OfflineClassifier {
    examples: Vec<(Example, BTreeSet<String>)>,
    prompt_version: String,
}

impl OfflineClassifier {
    /// A classifier whose nearest-example step uses `examples`; decisions record
    /// `prompt_version` (the labels it was built from are part of that version).
    pub fn new(examples: &[Example], prompt_version: impl Into<String>) -> Self {
        let examples = examples
            .iter()
            .map(|e| {
                (
                    e.clone(),
                    content_words(&format!("{} {}", e.subject, e.first_message)),
                )
            })
            .collect();
        Self {
            examples,
            prompt_version: prompt_version.into(),
        }
    }

    /// The prompt version this classifier's decisions carry.
    pub fn prompt_version(&self) -> &str {
        &self.prompt_version
    }

    /// Classifies deterministically; never fails.
    pub fn decide(&self, ctx: &TicketContext) -> Classification {
        let t = &ctx.ticket;
        let text = normalise(&format!("{} {}", t.subject(), t.body()));
        let mut hits: Vec<(Severity, String)> = Vec::new();

        for clause in CLAUSES {
            if let Some(p) = clause.phrases.iter().find(|p| has_phrase(&text, p)) {
                hits.push((clause.severity, format!("{} (\"{p}\")", clause.name)));
            }
        }
        if let Some(amount) = max_amount(&format!("{} {}", t.subject(), t.body())) {
            if amount > BILLING_ON_FIRE_USD && DISPUTE_CONTEXT.iter().any(|p| has_phrase(&text, p))
            {
                hits.push((
                    Severity::OnFire,
                    format!("Billing dispute over $1,000 (${amount:.0})"),
                ));
            }
        }
        if let Some(c) = COMPETITORS.iter().find(|c| has_phrase(&text, c)) {
            if let Some(f) = FRUSTRATION.iter().find(|f| has_phrase(&text, f)) {
                hits.push((
                    Severity::Urgent,
                    format!("Competitor {c} named in frustration (\"{f}\")"),
                ));
            }
        }
        if ctx.repeat_count_24h > 0 {
            hits.push((
                Severity::Urgent,
                format!("Repeat ticket: {} others in 24 h", ctx.repeat_count_24h),
            ));
        }
        if t.tier() == Tier::Enterprise {
            hits.push((
                Severity::Urgent,
                "Enterprise account, never routine".to_owned(),
            ));
        }

        let nearest = self.nearest(&text);
        // Highest severity wins; among equals the first clause in definition order names it.
        hits.sort_by_key(|h| std::cmp::Reverse(h.0));
        let (severity, confidence, reasoning) = match (hits.first(), nearest) {
            (Some((sev, why)), near) => {
                let same_level = hits.iter().filter(|h| h.0 == *sev).count();
                let agrees = near.is_some_and(|(e, _)| e.severity == *sev);
                let conf = 0.7 + 0.05 * (same_level.min(3) as f64) + if agrees { 0.1 } else { 0.0 };
                (*sev, conf, format!("Offline rules matched {why}."))
            }
            (None, Some((e, sim))) => (
                e.severity,
                (0.45 + sim / 2.0).min(0.8),
                format!(
                    "No rule matched; nearest labelled example {} is {}.",
                    e.ticket_id, e.severity
                ),
            ),
            (None, None) => (
                Severity::Routine,
                0.6,
                "No urgency signal matched; a routine question for the bot.".to_owned(),
            ),
        };
        let confidence = Confidence::parse(confidence.min(0.95)).unwrap_or_else(|_| {
            // Unreachable: every branch above stays within 0.45..=0.95.
            Confidence::parse(0.5).unwrap_or_else(|_| unreachable!())
        });
        Classification {
            verdict: Verdict::new(severity, None, confidence, &reasoning),
            model: OFFLINE_MODEL.to_owned(),
            prompt_version: self.prompt_version.clone(),
            fallback_reason: None,
            usage: Usage::default(),
            observation_id: None,
        }
    }

    fn nearest(&self, text: &str) -> Option<(&Example, f64)> {
        let words = content_words(text);
        if words.is_empty() {
            return None;
        }
        self.examples
            .iter()
            .map(|(e, ew)| {
                let inter = words.intersection(ew).count();
                let union = words.union(ew).count();
                #[allow(clippy::cast_precision_loss)]
                let sim = if union == 0 {
                    0.0
                } else {
                    inter as f64 / union as f64
                };
                (e, sim)
            })
            .filter(|(_, sim)| *sim >= NEAREST_MIN_SIMILARITY)
            .max_by(|a, b| a.1.total_cmp(&b.1))
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

/// Lowercase, apostrophes dropped, every other non-alphanumeric char a space, single-spaced,
/// padded with one space each side so phrases match on word boundaries.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    let mut last_space = true;
    for ch in text.chars() {
        if ch == '\'' || ch == '\u{2019}' {
            continue;
        }
        if ch.is_alphanumeric() {
            out.extend(ch.to_lowercase());
            last_space = false;
        } else if !last_space {
            out.push(' ');
            last_space = true;
        }
    }
    if !last_space {
        out.push(' ');
    }
    out
}

fn has_phrase(normalised: &str, phrase: &str) -> bool {
    let mut needle = String::with_capacity(phrase.len() + 2);
    needle.push(' ');
    needle.push_str(phrase);
    needle.push(' ');
    normalised.contains(&needle)
}

fn content_words(text: &str) -> BTreeSet<String> {
    normalise(text)
        .split(' ')
        .filter(|w| w.len() > 2 && !STOPWORDS.contains(w))
        .map(|w| {
            w.strip_suffix('s')
                .filter(|s| s.len() > 2)
                .unwrap_or(w)
                .to_owned()
        })
        .collect()
}

/// The largest dollar amount in the text: `$4,800`, `$1.2k`, `USD 3000`, `2,400 dollars`.
fn max_amount(text: &str) -> Option<f64> {
    let lower = text.to_lowercase();
    let bytes = lower.as_bytes();
    let mut best: Option<f64> = None;
    let mut consider = |v: f64| {
        if best.is_none_or(|b| v > b) {
            best = Some(v);
        }
    };
    let number_at = |start: usize| -> Option<(f64, usize)> {
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_digit() || bytes[end] == b',' || bytes[end] == b'.')
        {
            end += 1;
        }
        let raw = lower[start..end].trim_end_matches(['.', ',']);
        if raw.is_empty() || !raw.as_bytes()[0].is_ascii_digit() {
            return None;
        }
        let mut v: f64 = raw.replace(',', "").parse().ok()?;
        let mut after = start + raw.len();
        if lower[after..].starts_with('k')
            && !lower[after + 1..].starts_with(|c: char| c.is_alphabetic())
        {
            v *= 1_000.0;
            after += 1;
        }
        Some((v, after))
    };
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            if let Some((v, _)) = number_at(i + 1) {
                consider(v);
            }
        } else if lower[i..].starts_with("usd ") {
            if let Some((v, _)) = number_at(i + 4) {
                consider(v);
            }
        } else if bytes[i].is_ascii_digit()
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
            && bytes.get(i.wrapping_sub(1)) != Some(&b'$')
        {
            if let Some((v, after)) = number_at(i) {
                let rest = lower[after..].trim_start();
                if rest.starts_with("dollars") || rest.starts_with("usd") {
                    consider(v);
                }
                i = after.max(i + 1);
                continue;
            }
        }
        i += 1;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::{RawTicket, Route, Source, Ticket},
        labels,
    };

    fn offline() -> OfflineClassifier {
        let ex = labels::parse("labels.csv", labels::EMBEDDED_LABELS).unwrap();
        OfflineClassifier::new(&ex, "classifier@test")
    }

    fn ctx(subject: &str, body: &str, tier: &str, repeats: u32) -> TicketContext {
        let raw = RawTicket {
            id: "T".into(),
            subject: subject.into(),
            body: body.into(),
            tier: tier.into(),
            ..RawTicket::default()
        };
        TicketContext {
            ticket: Ticket::parse(Source::Api, raw, "").unwrap(),
            repeat_count_24h: repeats,
        }
    }

    fn sev(subject: &str, body: &str, tier: &str) -> Severity {
        offline()
            .decide(&ctx(subject, body, tier, 0))
            .verdict
            .severity
    }

    #[test]
    fn each_clause_has_a_rule() {
        use Severity::*;
        let cases = [
            ("Docs", "Where are the webhook docs?", "free", Routine),
            ("API down", "Your API is down since noon.", "pro", OnFire),
            (
                "Gone",
                "All our dashboards were deleted overnight.",
                "free",
                OnFire,
            ),
            (
                "Vuln",
                "I found an XSS vulnerability in the editor.",
                "free",
                OnFire,
            ),
            (
                "Legal",
                "Our lawyer says this is a breach of contract.",
                "pro",
                OnFire,
            ),
            (
                "Human",
                "I need a real person on this, now.",
                "free",
                OnFire,
            ),
            (
                "Bill",
                "You charged us $2,400 in error, refund it.",
                "pro",
                OnFire,
            ),
            (
                "Bill",
                "You charged us $240 in error, refund it.",
                "pro",
                Urgent,
            ),
            (
                "Leaving",
                "We are thinking of cancelling our plan.",
                "pro",
                Urgent,
            ),
            (
                "Again",
                "Asking again, no reply since this morning.",
                "pro",
                Urgent,
            ),
            (
                "Rival",
                "Zendesk just works, this is frustrating.",
                "pro",
                Urgent,
            ),
            (
                "Idea",
                "Zendesk has a nice export, could you add one?",
                "pro",
                Routine,
            ),
            ("How", "How do I add a teammate?", "enterprise", Urgent),
        ];
        for (s, b, tier, want) in cases {
            assert_eq!(sev(s, b, tier), want, "{s}: {b}");
        }
    }

    #[test]
    fn repeat_count_from_the_log_raises_to_urgent() {
        let c = offline().decide(&ctx("How", "How do I add a teammate?", "free", 1));
        assert_eq!(c.verdict.severity, Severity::Urgent);
        assert_eq!(c.verdict.route, Route::Human);
        assert!(c.verdict.reasoning.contains("Repeat ticket"));
    }

    #[test]
    fn decisions_name_what_matched_and_are_well_formed() {
        let c = offline().decide(&ctx(
            "API",
            "Every request returns HTTP 500, production is down.",
            "pro",
            0,
        ));
        assert_eq!(c.model, "offline");
        assert_eq!(c.verdict.route, Route::Engineering);
        assert!(
            c.verdict
                .reasoning
                .starts_with("Offline rules matched Production down")
        );
        assert!(c.verdict.reasoning.split(' ').count() <= 20);
        assert!(c.fallback_reason.is_none());
    }

    #[test]
    fn amounts_are_read_in_common_spellings() {
        assert_eq!(max_amount("billed $4,800 and $12"), Some(4800.0));
        assert_eq!(max_amount("about $1.5k"), Some(1500.0));
        assert_eq!(max_amount("USD 3000 charge"), Some(3000.0));
        assert_eq!(max_amount("2,400 dollars"), Some(2400.0));
        assert_eq!(max_amount("seat 11 of 18"), None);
    }

    #[test]
    fn holdout_accuracy_is_at_least_eight_in_ten() {
        let c = offline();
        let hold = labels::parse("holdout.csv", labels::EMBEDDED_HOLDOUT).unwrap();
        let right = hold
            .iter()
            .filter(|e| {
                let x = ctx(&e.subject, &e.first_message, e.tier.as_str(), 0);
                c.decide(&x).verdict.severity == e.severity
            })
            .count();
        assert!(right * 10 >= hold.len() * 8, "{right}/{}", hold.len());
    }
}
