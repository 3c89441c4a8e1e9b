//! The offline classifier: deterministic rules for each definition clause, combined with the
//! nearest labelled example. Needs no network; serves when no API key is set, in tests, and as
//! the fallback when the model cannot decide.
//!
//! Written by hand because it *is* the product's definitions table in code: no crate knows our
//! buckets. The rules are phrase lists matched on word boundaries of case-folded text
//! ([`crate::text::fold`]: `can’t` is `can't`, `ＤＯＷＮ` is `down`), so a support lead can read
//! and extend them. Nothing here slices text at a byte offset: tickets are Unicode.

use std::collections::BTreeSet;

use async_trait::async_trait;
use unicode_normalization::char::is_combining_mark;

use super::{Classifier, ClassifierError};
use crate::{
    domain::{Classification, Confidence, Severity, TicketContext, Tier, Usage, Verdict},
    labels::Example,
    text,
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
/// case-folded subject + message, with punctuation turned into spaces (apostrophes, typographic
/// ones included, dropped: write `cant`, not `can't`).
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

/// The phrase-matching form of `text`: [`text::fold`] (typographic quotes and dashes as ASCII,
/// invisible characters dropped, NFKC, Unicode case folding), apostrophes dropped, every run of
/// characters that are neither letters, digits nor combining marks one space, padded with one
/// space each side so phrases match on word boundaries.
fn normalise(text: &str) -> String {
    let folded = text::fold(text);
    let mut out = String::with_capacity(folded.len() + 2);
    out.push(' ');
    let mut last_space = true;
    for ch in folded.chars() {
        if ch == '\'' {
            continue;
        }
        if ch.is_alphanumeric() || is_combining_mark(ch) {
            out.push(ch);
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
        .filter(|w| w.chars().count() > 2 && !STOPWORDS.contains(w))
        .map(|w| {
            w.strip_suffix('s')
                .filter(|s| s.chars().count() > 2)
                .unwrap_or(w)
                .to_owned()
        })
        .collect()
}

/// The largest dollar amount in the text: `$4,800`, `$1.2k`, `USD 3000`, `2,400 dollars`.
///
/// Scans characters, not bytes: the text is whatever the customer typed (`la aplicación`,
/// `can’t`, emoji), so every position below is a char index into `chars`, never a byte offset
/// into a `str`. Amounts that do not fit an `f64` are ignored.
fn max_amount(text: &str) -> Option<f64> {
    let chars: Vec<char> = text::fold(text).chars().collect();
    let n = chars.len();
    let digit_at = |i: usize| chars.get(i).is_some_and(char::is_ascii_digit);
    let starts_with = |i: usize, pat: &str| {
        pat.chars()
            .enumerate()
            .all(|(k, p)| chars.get(i + k) == Some(&p))
    };
    // The number starting at char `start` and the char index just after it (and its `k`).
    let number_at = |start: usize| -> Option<(f64, usize)> {
        if !digit_at(start) {
            return None;
        }
        let mut end = start;
        while end < n && (chars[end].is_ascii_digit() || matches!(chars[end], ',' | '.')) {
            end += 1;
        }
        while matches!(chars[end - 1], ',' | '.') {
            end -= 1;
        }
        let raw: String = chars[start..end].iter().filter(|c| **c != ',').collect();
        let mut v: f64 = raw.parse().ok()?;
        let mut after = end;
        if chars.get(after) == Some(&'k')
            && !chars.get(after + 1).is_some_and(|c| c.is_alphabetic())
        {
            v *= 1_000.0;
            after += 1;
        }
        v.is_finite().then_some((v, after))
    };
    let mut best: Option<f64> = None;
    let mut consider = |v: f64| {
        if best.is_none_or(|b| v > b) {
            best = Some(v);
        }
    };
    let mut i = 0;
    while i < n {
        if chars[i] == '$' {
            if let Some((v, _)) = number_at(i + 1) {
                consider(v);
            }
        } else if starts_with(i, "usd ") {
            if let Some((v, _)) = number_at(i + 4) {
                consider(v);
            }
        } else if chars[i].is_ascii_digit()
            && (i == 0 || !chars[i - 1].is_ascii_alphanumeric())
            && (i == 0 || chars[i - 1] != '$')
        {
            if let Some((v, after)) = number_at(i) {
                let mut rest = after;
                while chars.get(rest).is_some_and(|c| c.is_whitespace()) {
                    rest += 1;
                }
                if starts_with(rest, "dollars") || starts_with(rest, "usd") {
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

    // Regression: the scanner sliced `lower[i..]` at byte offsets and panicked on the first
    // multibyte character ("start byte index 12 is not a char boundary; it is inside 'ó'").
    #[test]
    fn accented_text_does_not_panic_the_amount_scanner() {
        assert_eq!(max_amount("la aplicación no funciona"), None);
        assert_eq!(
            max_amount("¿Por qué me cobraron $1.200 dólares?"),
            Some(1.2)
        );
        assert_eq!(max_amount("Überweisung: USD 4,800 zurück"), Some(4800.0));
        assert_eq!(
            sev("Ayuda", "la aplicación no funciona", "free"),
            Severity::Routine
        );
    }

    #[test]
    fn typographic_apostrophes_do_not_panic_the_amount_scanner() {
        assert_eq!(max_amount("I can’t log in"), None);
        assert_eq!(
            max_amount("you’ve billed us $2,400 we didn’t approve"),
            Some(2400.0)
        );
        assert_eq!(sev("Login", "I can’t log in", "free"), Severity::OnFire);
    }

    #[test]
    fn emoji_cjk_and_rtl_text_do_not_panic_the_amount_scanner() {
        for text in [
            "🔥🔥 $5k 👩\u{200D}💻 refund",
            "請求額が$3,000でした",
            "المبلغ $1500 خطأ",
            "$",
            "$é",
            "usd",
            "usdó 12",
            "12ó dollars",
            "1.5kó",
            "\u{0301}$1\u{0301}",
        ] {
            let _ = max_amount(text);
            let _ = offline().decide(&ctx("s", text, "free", 0));
        }
        assert_eq!(max_amount("🔥🔥 $5k 👩\u{200D}💻 refund"), Some(5000.0));
        assert_eq!(max_amount("請求額が$3,000でした"), Some(3000.0));
    }

    #[test]
    fn thirty_two_kib_of_one_multibyte_character_does_not_panic_the_classifier() {
        for ch in ['ó', '’', '😀', '\u{200B}', '$', '9'] {
            let body: String = std::iter::repeat_n(ch, crate::domain::MAX_BODY_CHARS).collect();
            let c = offline().decide(&ctx("", &body, "free", 0));
            assert!(!c.verdict.reasoning.is_empty());
        }
        // 32 KiB of digits is one number too large for the amount rule, not a panic.
        assert_eq!(max_amount(&"9".repeat(400)), None);
    }

    #[test]
    fn typographic_quotes_dashes_and_case_match_like_ascii() {
        use Severity::*;
        let cases = [
            ("Login", "I can’t log in", OnFire),
            ("LOGIN", "I CAN’T LOG IN SINCE THIS MORNING", OnFire),
            ("Login", "I can\u{2018}t log in", OnFire),
            ("Login", "I canʼt log in", OnFire),
            ("Renewal", "We won’t renew next year.", Urgent),
            ("Again", "Still haven’t heard back from anyone", Urgent),
            ("Outage", "It’s down for everyone — again", OnFire),
            ("Outage", "“Production down” since 9am", OnFire),
            ("Outage", "ＰＲＯＤＵＣＴＩＯＮ ＤＯＷＮ", OnFire),
            ("Outage", "production\u{200B} is dow\u{00AD}n", OnFire),
            ("Refund", "REFUND PLEASE – DOUBLE CHARGED", Urgent),
        ];
        for (subject, body, want) in cases {
            assert_eq!(sev(subject, body, "free"), want, "{subject}: {body}");
        }
        // The same text with ASCII punctuation decides the same.
        let typographic = offline().decide(&ctx("Login", "I can’t log in", "free", 0));
        let ascii = offline().decide(&ctx("Login", "I can't log in", "free", 0));
        assert_eq!(typographic.verdict, ascii.verdict);
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
