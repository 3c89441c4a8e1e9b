//! The command line: a thin dispatcher over `serve`, `classify`, `eval` ([`crate::eval`]),
//! `labels check`, `prompt render`, `bench` ([`crate::bench`]), `review` and
//! `labels add-from-reviews` ([`crate::review::cli`]) and `audit` ([`crate::audit::cli`]). Exit
//! codes are in [`crate::exit`].

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::{
    classifier::Decider,
    config::Settings,
    domain::{Classification, RawTicket, Severity, Source, Ticket, TicketContext, Usage},
    env::ProcessEnv,
    exit, labels,
    prompt::Prompt,
    shutdown,
    startup::{self, App},
    telemetry,
};

/// escalator: classify and route customer-support tickets.
#[derive(Debug, Parser)]
#[command(name = "escalator", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gRPC and HTTP servers (configured by environment, see README).
    Serve,
    /// Classify one ticket and print the decision as JSON (nothing is logged or routed).
    Classify(ClassifyArgs),
    /// Run the classifier over a labelled file: accuracy, confusion matrix, misses.
    Eval(crate::eval::EvalArgs),
    /// Work with labels files.
    Labels {
        #[command(subcommand)]
        command: LabelsCommand,
    },
    /// Work with the classifier prompt.
    Prompt {
        #[command(subcommand)]
        command: PromptCommand,
    },
    /// Benchmark the real service against in-process mocks of the Messages API and Plain.
    Bench(crate::bench::BenchArgs),
    /// The daily review: judge a day's sample of decisions (or export / import it as CSV).
    Review(crate::review::cli::ReviewArgs),
    /// The weekly audit: accuracy per ISO week with 95% intervals, calibration, the five
    /// symptoms; exit 1 below --min-accuracy; --open-pr opens the labels pull request.
    Audit(crate::audit::cli::AuditArgs),
    /// Make a shadow category live once at least 90% of its reviewed verdicts (over at least
    /// `[labels] promote_min_reviewed`) are right: rewrites the config file, prints the new
    /// prompt version; refuses (exit 1) with the figures until then.
    Promote(crate::promote::PromoteArgs),
    /// Ask this server's own `/healthz` (or `/readyz`): exit 0 on 200, 1 otherwise (for a
    /// container `HEALTHCHECK` in an image without curl).
    Healthcheck(crate::healthcheck::HealthcheckArgs),
}

#[derive(Debug, Args)]
struct ClassifyArgs {
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

#[derive(Debug, Subcommand)]
enum LabelsCommand {
    /// Validate a labels file: header, enums, route vs severity, unique ids, row count, bucket
    /// shares, overlap with the other file, empty fields, duplicates and conflicting labels
    /// (also against the other file), and rows per definition clause.
    Check {
        /// The file to check.
        #[arg(default_value = "labels/labels.csv")]
        file: PathBuf,
        /// The file it must not overlap (default: the holdout for a training file, the training
        /// file for a holdout or regression file).
        #[arg(long)]
        against: Option<PathBuf>,
        /// Fewest rows accepted (default: 50 for a training file, 40 for a holdout, 1 for a
        /// regression file).
        #[arg(long)]
        min_rows: Option<usize>,
        /// Rows each definition clause needs (default 3; 0 for a regression file; 0 skips the
        /// coverage check).
        #[arg(long)]
        min_per_clause: Option<usize>,
        /// Fail on warnings too (near-duplicates, thin clauses, rows naming no clause), for CI.
        #[arg(long)]
        strict: bool,
    },
    /// Append the tickets reviewers corrected to the labels file, check it, print the prompt
    /// version it implies.
    AddFromReviews(crate::review::cli::AddFromReviewsArgs),
}

#[derive(Debug, Subcommand)]
enum PromptCommand {
    /// Print the exact system block to stdout and its version to stderr.
    Render {
        /// The labels rendered as examples (default: the embedded labels/labels.csv).
        #[arg(long)]
        labels: Option<PathBuf>,
        /// The template (default: the embedded prompts/classifier.md).
        #[arg(long)]
        template: Option<PathBuf>,
        /// Print `{"version": …, "system": …}` instead.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Serve = cli.command {
        return serve();
    }
    // One-shot commands log to stderr only; traces are for the service.
    if let Ok(mut s) = Settings::load(&ProcessEnv) {
        s.telemetry.traces = None;
        if let Ok(guard) = telemetry::init(&s.telemetry) {
            std::mem::forget(guard);
        }
    }
    match cli.command {
        Command::Serve => serve(),
        Command::Classify(args) => classify(args),
        Command::Eval(args) => crate::eval::main(args),
        Command::Labels {
            command:
                LabelsCommand::Check {
                    file,
                    against,
                    min_rows,
                    min_per_clause,
                    strict,
                },
        } => labels_check(&file, against, min_rows, min_per_clause, strict),
        Command::Labels {
            command: LabelsCommand::AddFromReviews(args),
        } => crate::review::cli::add_from_reviews(args),
        Command::Prompt {
            command:
                PromptCommand::Render {
                    labels,
                    template,
                    json,
                },
        } => prompt_render(labels, template, json),
        Command::Bench(args) => crate::bench::main(args),
        Command::Review(args) => crate::review::cli::main(args),
        Command::Audit(args) => crate::audit::cli::main(args),
        Command::Promote(args) => crate::promote::main(args),
        Command::Healthcheck(args) => crate::healthcheck::main(args),
    }
}

fn serve() -> ExitCode {
    let run = || -> Result<(), ExitCode> {
        let settings = exit::settings()?;
        // Before the runtime: the trace exporter's blocking HTTP client owns its own.
        let telemetry = telemetry::init(&settings.telemetry).map_err(|e| {
            eprintln!("escalator: cannot set up tracing: {e:#}");
            ExitCode::from(exit::USAGE)
        })?;
        telemetry::install_panic_hook();
        let rt = exit::runtime()?;
        let result = rt.block_on(async {
            let app = App::build(settings).await.map_err(|e| {
                tracing::error!("cannot start: {e:#}");
                // A model the API does not know is a configuration error, like a bad value.
                if e.downcast_ref::<crate::classifier::claude::models::ModelError>()
                    .is_some()
                {
                    ExitCode::from(exit::USAGE)
                } else {
                    ExitCode::from(exit::SOFTWARE)
                }
            })?;
            let token = CancellationToken::new();
            tokio::spawn(shutdown::cancel_on_signal(token.clone()));
            app.run_until_stopped(token).await.map_err(|e| {
                tracing::error!("server failed: {e:#}");
                ExitCode::from(exit::SOFTWARE)
            })
        });
        drop(rt);
        // Last: export the spans of the final requests.
        telemetry.shutdown();
        result
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

fn decider() -> Result<(Decider, Prompt), ExitCode> {
    let settings = exit::settings()?;
    startup::build_decider(&settings).map_err(|e| {
        eprintln!("escalator: {e:#}");
        ExitCode::from(exit::USAGE)
    })
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

fn classify(args: ClassifyArgs) -> ExitCode {
    let raw = RawTicket {
        id: "cli".into(),
        version: String::new(),
        subject: args.subject,
        body: args.body,
        tier: args.tier,
        arr_usd: args.arr_usd,
        customer_id: String::new(),
    };
    let ticket = match Ticket::parse(Source::Api, raw, "--") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("escalator classify: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let (decider, _) = match decider() {
        Ok(d) => d,
        Err(code) => return code,
    };
    let weighting = match exit::settings() {
        Ok(s) => s.triage.weighting,
        Err(code) => return code,
    };
    let rt = match exit::runtime() {
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

fn labels_check(
    file: &std::path::Path,
    against: Option<PathBuf>,
    min_rows: Option<usize>,
    min_per_clause: Option<usize>,
    strict: bool,
) -> ExitCode {
    let mut options = labels::CheckOptions::for_file(file);
    if let Some(n) = min_rows {
        options.rules.min_rows = n;
    }
    if let Some(n) = min_per_clause {
        options.min_per_clause = n;
    }
    let against = against.or_else(|| labels::CheckOptions::default_against(file));
    let report = labels::check_file(file, against.as_deref(), &options);
    for f in &report.findings {
        eprintln!("{f}");
    }
    let name = &report.file;
    if report.passed(strict) {
        match report.warnings() {
            0 => println!("{name}: ok"),
            n => println!("{name}: ok, {n} warning(s)"),
        }
        print!("{report}");
        if let Some(n) = &report.against {
            println!("no overlap with {n}");
        }
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "{name}: {} error(s), {} warning(s){}",
            report.errors(),
            report.warnings(),
            if strict && report.errors() == 0 {
                " (--strict fails on warnings)"
            } else {
                ""
            }
        );
        ExitCode::from(exit::CHECK_FAILED)
    }
}

fn prompt_render(labels_file: Option<PathBuf>, template: Option<PathBuf>, json: bool) -> ExitCode {
    let mut settings = match exit::settings() {
        Ok(s) => s,
        Err(code) => return code,
    };
    if labels_file.is_some() {
        settings.labels_file = labels_file;
    }
    if template.is_some() {
        settings.prompt_file = template;
    }
    let prompt = match startup::load_prompt(&settings) {
        Ok((p, _)) => p,
        Err(e) => {
            eprintln!("escalator prompt render: {e:#}");
            return ExitCode::from(exit::CHECK_FAILED);
        }
    };
    if json {
        println!(
            "{}",
            serde_json::json!({"version": prompt.version(), "system": prompt.system()})
        );
    } else {
        println!("{}", prompt.system());
        eprintln!("prompt version: {}", prompt.version());
    }
    ExitCode::SUCCESS
}
