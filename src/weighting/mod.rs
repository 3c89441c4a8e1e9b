//! Tier weighting: contract policy as written, audited rules, applied after the classifier.
//!
//! The classifier (Claude or offline) gives its own judgement of a ticket; these rules then
//! apply what the contracts say, and the decision keeps both, so an audit separates the model
//! from the policy:
//! - **ARR** ([`Weighting::account`]): ARR at or above a tier's `arr_usd_min` raises the tier
//!   (before classifying, so the prompt and the floors see it); the highest tier met wins and
//!   a tier is never lowered.
//! - **Floors** ([`Weighting::apply`]): a tier's `floor` and the repeat floor (`min_count`
//!   other tickets from the customer in 24 hours) are the lowest severity the ticket is logged
//!   with. The rule that raised the severity is named `tiers.<tier>` or `tiers.repeat`.
//! - **Prompt sentences** ([`Weighting::sentences`]): each rule's `prompt` sentence for the
//!   ticket goes into the `<ticket>` block of the user turn (`policy:`).
//!
//! [`settings`] loads `[tiers.<tier>]` and `[tiers.repeat]`. Imports only the domain and `env`.

pub mod settings;

use std::collections::BTreeMap;

use crate::domain::{Severity, Ticket, TicketContext, Tier, TierSource};

/// Longest prompt sentence accepted, in characters.
pub const MAX_SENTENCE_CHARS: usize = 300;

/// The rule name of the repeat floor.
pub const REPEAT_RULE: &str = "tiers.repeat";

/// What the configuration says about one tier.
#[derive(Debug, Clone, PartialEq)]
pub struct TierRule {
    /// ARR in USD at or above which a customer counts as this tier.
    pub arr_usd_min: Option<f64>,
    /// The lowest severity a ticket of this tier is logged with.
    pub floor: Option<Severity>,
    /// The sentence added to the prompt's input block for this tier.
    pub prompt: Option<String>,
}

/// The repeat-within-24-hours floor.
#[derive(Debug, Clone, PartialEq)]
pub struct RepeatRule {
    /// Other tickets from the customer in the last 24 hours at which it applies (>= 1).
    pub min_count: u32,
    /// The lowest severity of a repeat ticket.
    pub floor: Option<Severity>,
    /// The sentence added to the prompt's input block for a repeat ticket.
    pub prompt: Option<String>,
}

/// The weighting rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Weighting {
    tiers: BTreeMap<Tier, TierRule>,
    repeat: RepeatRule,
}

impl Default for Weighting {
    /// Today's rules, as the labels define them: enterprise is never routine (and an ARR of
    /// 50,000 USD or more is enterprise), a repeat within 24 hours is urgent at least.
    fn default() -> Self {
        let none = TierRule {
            arr_usd_min: None,
            floor: None,
            prompt: None,
        };
        Self {
            tiers: BTreeMap::from([
                (Tier::Free, none.clone()),
                (Tier::Pro, none),
                (
                    Tier::Enterprise,
                    TierRule {
                        arr_usd_min: Some(50_000.0),
                        floor: Some(Severity::Urgent),
                        prompt: Some("Enterprise lowers the bar for urgent: contractual.".into()),
                    },
                ),
            ]),
            repeat: RepeatRule {
                min_count: 1,
                floor: Some(Severity::Urgent),
                prompt: Some("A repeat ticket within 24 hours is urgent at least.".into()),
            },
        }
    }
}

/// The outcome of the floors for one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weighed {
    /// The classifier's own severity.
    pub model_severity: Severity,
    /// The severity logged.
    pub severity: Severity,
    /// The rule that raised it, when one did.
    pub rule: Option<String>,
}

impl Weighed {
    /// Whether a rule changed the outcome.
    pub fn changed(&self) -> bool {
        self.rule.is_some()
    }
}

impl Weighting {
    /// The rule of `tier`.
    pub fn tier(&self, tier: Tier) -> &TierRule {
        // Every tier is filled in by `default` and `load`.
        &self.tiers[&tier]
    }

    /// The repeat rule.
    pub fn repeat(&self) -> &RepeatRule {
        &self.repeat
    }

    /// These rules with `rule` for `tier` (tests and tools; the service loads `[tiers]`).
    #[must_use]
    pub fn with_tier(mut self, tier: Tier, rule: TierRule) -> Self {
        self.tiers.insert(tier, rule);
        self
    }

    /// The tier `arr_usd` counts as, if any: the highest tier whose `arr_usd_min` it meets.
    pub fn tier_for_arr(&self, arr_usd: f64) -> Option<Tier> {
        Tier::ALL
            .iter()
            .rev()
            .copied()
            .find(|t| self.tier(*t).arr_usd_min.is_some_and(|min| arr_usd >= min))
    }

    /// `ticket` with its tier raised to what its ARR counts as (tier source `arr_usd`), or
    /// unchanged when the ARR is unknown or does not raise it.
    pub fn account(&self, ticket: Ticket) -> Ticket {
        let Some(raised) = ticket.arr_usd().and_then(|a| self.tier_for_arr(a)) else {
            return ticket;
        };
        if raised <= ticket.tier() {
            return ticket;
        }
        let (arr, failed) = (ticket.arr_usd(), ticket.enrichment_failed());
        ticket
            .with_account(raised, arr)
            .with_tier_source(TierSource::ArrUsd, failed)
    }

    /// The floors applied to `model`, the classifier's severity for `ctx`: the highest floor
    /// above it wins (the tier's before the repeat one on a tie) and names the rule.
    pub fn apply(&self, ctx: &TicketContext, model: Severity) -> Weighed {
        let tier = ctx.ticket.tier();
        let mut floors: Vec<(Severity, String)> = Vec::new();
        if let Some(f) = self.tier(tier).floor {
            floors.push((f, format!("tiers.{tier}")));
        }
        if ctx.repeat_count_24h >= self.repeat.min_count {
            if let Some(f) = self.repeat.floor {
                floors.push((f, REPEAT_RULE.to_owned()));
            }
        }
        let mut out = Weighed {
            model_severity: model,
            severity: model,
            rule: None,
        };
        for (floor, rule) in floors {
            if floor > out.severity {
                out.severity = floor;
                out.rule = Some(rule);
            }
        }
        out
    }

    /// The prompt sentences that apply to `ctx`: its tier's, then the repeat rule's.
    pub fn sentences(&self, ctx: &TicketContext) -> Vec<&str> {
        let mut out = Vec::new();
        if let Some(s) = &self.tier(ctx.ticket.tier()).prompt {
            out.push(s.as_str());
        }
        if ctx.repeat_count_24h >= self.repeat.min_count {
            if let Some(s) = &self.repeat.prompt {
                out.push(s.as_str());
            }
        }
        out
    }

    /// Every configured sentence with what it is for, in a fixed order: part of the prompt
    /// version, so a changed sentence is a new prompt.
    pub fn all_sentences(&self) -> Vec<(String, &str)> {
        let mut out: Vec<(String, &str)> = Tier::ALL
            .iter()
            .filter_map(|t| {
                self.tier(*t)
                    .prompt
                    .as_deref()
                    .map(|s| (format!("tiers.{t}"), s))
            })
            .collect();
        if let Some(s) = &self.repeat.prompt {
            out.push((
                format!("{REPEAT_RULE}>={}", self.repeat.min_count),
                s.as_str(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RawTicket, Source};

    fn ticket(tier: &str, arr: Option<f64>) -> Ticket {
        Ticket::parse(
            Source::Api,
            RawTicket {
                id: "T-1".into(),
                body: "How do I export?".into(),
                tier: Tier::parse_given("tier", tier).unwrap(),
                arr_usd: arr,
                ..RawTicket::default()
            },
            "",
        )
        .unwrap()
    }

    fn ctx(tier: &str, repeats: u32) -> TicketContext {
        TicketContext {
            ticket: ticket(tier, None),
            repeat_count_24h: repeats,
        }
    }

    #[test]
    fn arr_raises_the_tier_and_says_so() {
        let w = Weighting::default();
        let t = w.account(ticket("pro", Some(50_000.0)));
        assert_eq!(t.tier(), Tier::Enterprise);
        assert_eq!(t.tier_source(), TierSource::ArrUsd);
        let t = w.account(ticket("pro", Some(49_999.0)));
        assert_eq!(t.tier(), Tier::Pro);
        assert_eq!(t.tier_source(), TierSource::Request);
        let t = w.account(ticket("", None));
        assert_eq!(
            (t.tier(), t.tier_source()),
            (Tier::Free, TierSource::Default)
        );
    }

    #[test]
    fn the_highest_tier_met_wins_and_a_tier_is_never_lowered() {
        let mut w = Weighting::default();
        w.tiers.get_mut(&Tier::Pro).unwrap().arr_usd_min = Some(1_000.0);
        assert_eq!(w.tier_for_arr(2_000.0), Some(Tier::Pro));
        assert_eq!(w.tier_for_arr(90_000.0), Some(Tier::Enterprise));
        assert_eq!(w.tier_for_arr(10.0), None);
        let t = w.account(ticket("enterprise", Some(2_000.0)));
        assert_eq!(t.tier(), Tier::Enterprise);
        assert_eq!(t.tier_source(), TierSource::Request);
    }

    #[test]
    fn floors_raise_and_name_the_rule() {
        let w = Weighting::default();
        let o = w.apply(&ctx("enterprise", 0), Severity::Routine);
        assert_eq!(o.severity, Severity::Urgent);
        assert_eq!(o.model_severity, Severity::Routine);
        assert_eq!(o.rule.as_deref(), Some("tiers.enterprise"));
        // Never lowers.
        let o = w.apply(&ctx("enterprise", 0), Severity::OnFire);
        assert_eq!((o.severity, o.rule), (Severity::OnFire, None));
        let o = w.apply(&ctx("free", 2), Severity::Routine);
        assert_eq!(o.rule.as_deref(), Some(REPEAT_RULE));
        let o = w.apply(&ctx("free", 0), Severity::Routine);
        assert!(!o.changed());
        // A tie names the tier's rule; a higher repeat floor wins over it.
        let o = w.apply(&ctx("enterprise", 1), Severity::Routine);
        assert_eq!(o.rule.as_deref(), Some("tiers.enterprise"));
        let mut w = w;
        w.repeat.floor = Some(Severity::OnFire);
        w.repeat.min_count = 2;
        let o = w.apply(&ctx("enterprise", 1), Severity::Routine);
        assert_eq!(o.rule.as_deref(), Some("tiers.enterprise"));
        let o = w.apply(&ctx("enterprise", 2), Severity::Routine);
        assert_eq!(
            (o.severity, o.rule.as_deref()),
            (Severity::OnFire, Some(REPEAT_RULE))
        );
    }

    #[test]
    fn sentences_follow_the_ticket() {
        let w = Weighting::default();
        assert_eq!(
            w.sentences(&ctx("enterprise", 1)),
            [
                "Enterprise lowers the bar for urgent: contractual.",
                "A repeat ticket within 24 hours is urgent at least."
            ]
        );
        assert!(w.sentences(&ctx("pro", 0)).is_empty());
        assert_eq!(w.all_sentences().len(), 2);
    }
}
