//! The clauses of the severity definitions (`prompts/classifier.md`, DEFINITIONS), named once:
//! the labelled examples' coverage table (`crate::examples::coverage`) counts rows per clause
//! and the offline classifier's rules (`crate::classifier::offline`) say which clause fired,
//! both by these names.

use super::Severity;

/// One clause of the definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Clause {
    /// Routine: a question the docs answer.
    DocsAnswer,
    /// Routine: a how-to question.
    HowTo,
    /// Routine: a frequently asked question.
    Faq,
    /// Routine: a feature request.
    FeatureRequest,
    /// Urgent: an enterprise account.
    EnterpriseAccount,
    /// Urgent: churn-risk language.
    ChurnRisk,
    /// Urgent: a billing dispute of $1,000 or less, or with no amount.
    BillingDisputeUpTo1000,
    /// Urgent: a repeat ticket from the same customer within 24 hours.
    RepeatTicket,
    /// Urgent: a competitor named in frustration.
    CompetitorInFrustration,
    /// On fire: production down.
    ProductionDown,
    /// On fire: data loss.
    DataLoss,
    /// On fire: a security report.
    SecurityReport,
    /// On fire: legal language.
    LegalLanguage,
    /// On fire: a billing dispute over $1,000.
    BillingDisputeOver1000,
    /// On fire: a demand for a human now.
    NeedAHumanNow,
}

impl Clause {
    /// Every clause, in the template's order.
    pub const ALL: [Clause; 15] = [
        Clause::DocsAnswer,
        Clause::HowTo,
        Clause::Faq,
        Clause::FeatureRequest,
        Clause::EnterpriseAccount,
        Clause::ChurnRisk,
        Clause::BillingDisputeUpTo1000,
        Clause::RepeatTicket,
        Clause::CompetitorInFrustration,
        Clause::ProductionDown,
        Clause::DataLoss,
        Clause::SecurityReport,
        Clause::LegalLanguage,
        Clause::BillingDisputeOver1000,
        Clause::NeedAHumanNow,
    ];

    /// The clause's name: what the coverage table shows, what a row's `why_this_label` usually
    /// starts with, and what the offline classifier's reasoning names.
    pub const fn name(self) -> &'static str {
        self.row().1
    }

    /// The severity the clause decides.
    pub const fn severity(self) -> Severity {
        self.row().0
    }

    /// The words of the template's DEFINITIONS that state it (a test keeps the two in step).
    pub const fn definition(self) -> &'static str {
        self.row().2
    }

    /// The one table: severity, name, definition.
    const fn row(self) -> (Severity, &'static str, &'static str) {
        use Severity::{OnFire, Routine, Urgent};
        match self {
            Clause::DocsAnswer => (Routine, "Docs answer", "docs answers"),
            Clause::HowTo => (Routine, "How-to", "how-to questions"),
            Clause::Faq => (Routine, "FAQ", "FAQ"),
            Clause::FeatureRequest => (Routine, "Feature request", "feature requests"),
            Clause::EnterpriseAccount => (Urgent, "Enterprise account", "enterprise accounts"),
            Clause::ChurnRisk => (Urgent, "Churn risk", "churn-risk language"),
            Clause::BillingDisputeUpTo1000 => (
                Urgent,
                "Billing dispute up to $1,000",
                "billing disputes of $1,000 or less",
            ),
            Clause::RepeatTicket => (Urgent, "Repeat ticket", "a repeat ticket"),
            Clause::CompetitorInFrustration => (
                Urgent,
                "Competitor in frustration",
                "a competitor named in frustration",
            ),
            Clause::ProductionDown => (OnFire, "Production down", "production down"),
            Clause::DataLoss => (OnFire, "Data loss", "data loss"),
            Clause::SecurityReport => (OnFire, "Security report", "security report"),
            Clause::LegalLanguage => (OnFire, "Legal language", "legal language"),
            Clause::BillingDisputeOver1000 => (
                OnFire,
                "Billing dispute over $1,000",
                "billing dispute over $1,000",
            ),
            Clause::NeedAHumanNow => (OnFire, "Need a human now", "a demand for a human now"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_severity_order_with_unique_names() {
        let names: std::collections::BTreeSet<&str> =
            Clause::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), Clause::ALL.len());
        assert!(
            Clause::ALL
                .windows(2)
                .all(|w| w[0].severity() <= w[1].severity())
        );
    }
}
