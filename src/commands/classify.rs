//! `escalator classify`: one ticket through the configured classifier and the tier weighting,
//! printed as JSON; nothing is logged or routed.

use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use crate::{
    classifier::Decider,
    domain::{Classification, RawTicket, Severity, Source, Ticket, TicketContext, Tier, Usage},
    exit,
};

/// `escalator classify` arguments.
#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// The ticket's subject line.
    #[arg(long, default_value = "")]
    subject: String,
    /// The customer's first message.
    #[arg(long)]
    body: String,
    /// The customer's plan: free, pro or enterprise.
    #[arg(long, default_value = "free")]
    tier: String,
    /// The customer's annual recurring revenue in USD.
    #[arg(long)]
    arr_usd: Option<f64>,
    /// Other tickets from this customer in the last 24 hours.
    #[arg(long, default_value_t = 0)]
    repeat_count: u32,
}

fn decider() -> Result<Decider, ExitCode> {
    let settings = exit::settings("escalator")?;
    let classifiers = settings.classifiers(None).map_err(|e| {
        eprintln!("escalator: {e:#}");
        ExitCode::from(exit::USAGE)
    })?;
    Ok(classifiers.decider())
}

#[derive(Serialize)]
struct DecisionJson<'a> {
    severity: Severity,
    route: crate::domain::Route,
    confidence: f32,
    reasoning: &'a str,
    prompt_version: &'a str,
    model: &'a str,
    fallback: bool,
    fallback_reason: Option<&'a str>,
    notes: &'a [String],
    /// `request-id`, tokens and cost of the model call (zeros for the offline classifier).
    usage: &'a Usage,
    /// The classifier's own severity (`severity` is after the weighting rules).
    model_severity: Severity,
    /// The weighting rule that raised it, if one did.
    weighting_rule: Option<String>,
    /// The tier decided with (after the ARR threshold) and where it came from.
    tier: crate::domain::Tier,
    tier_source: crate::domain::TierSource,
    /// Topic, sentiment and the shadow categories asked (`{"churn_risk": true}`).
    topic: &'a str,
    sentiment: crate::domain::Sentiment,
    shadow: &'a std::collections::BTreeMap<String, bool>,
}

impl<'a> DecisionJson<'a> {
    /// The classification with the weighting rules applied, as the service would log it.
    fn weighed(
        c: &'a Classification,
        ctx: &TicketContext,
        w: &crate::weighting::Weighting,
    ) -> Self {
        let weighed = w.apply(ctx, c.verdict.severity);
        Self {
            severity: weighed.severity,
            route: weighed.severity.route(),
            confidence: c.verdict.confidence.get(),
            reasoning: &c.verdict.reasoning,
            prompt_version: &c.prompt_version,
            model: &c.model,
            fallback: c.fallback_reason.is_some(),
            fallback_reason: c.fallback_reason.as_deref(),
            notes: &c.verdict.notes,
            usage: &c.usage,
            model_severity: weighed.model_severity,
            weighting_rule: weighed.rule,
            tier: ctx.ticket.tier(),
            tier_source: ctx.ticket.tier_source(),
            topic: &c.verdict.labels.topic,
            sentiment: c.verdict.labels.sentiment,
            shadow: &c.verdict.labels.shadow,
        }
    }
}

/// Runs `escalator classify`; returns the exit code.
pub fn main(args: ClassifyArgs) -> ExitCode {
    let ticket = Tier::parse_given("--tier", &args.tier).and_then(|tier| {
        let raw = RawTicket {
            id: "cli".into(),
            version: String::new(),
            subject: args.subject,
            body: args.body,
            tier,
            arr_usd: args.arr_usd,
            customer_id: String::new(),
        };
        Ticket::parse(Source::Api, raw, "--")
    });
    let ticket = match ticket {
        Ok(t) => t,
        Err(e) => {
            eprintln!("escalator classify: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let decider = match decider() {
        Ok(d) => d,
        Err(code) => return code,
    };
    let weighting = match exit::settings("escalator") {
        Ok(s) => s.triage.weighting,
        Err(code) => return code,
    };
    let rt = match exit::runtime("escalator") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let ctx = TicketContext {
        ticket: weighting.account(ticket),
        repeat_count_24h: args.repeat_count,
    };
    let c = rt.block_on(decider.decide(&ctx));
    match serde_json::to_string_pretty(&DecisionJson::weighed(&c, &ctx, &weighting)) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("escalator classify: {e}");
            ExitCode::from(exit::SOFTWARE)
        }
    }
}
