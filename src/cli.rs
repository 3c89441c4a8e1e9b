//! The command line: a thin dispatcher. Each command lives in its own module: `serve`
//! ([`crate::serve`]), `classify` ([`crate::classify`]), `eval` ([`crate::eval`]), `labels check`
//! and `prompt render` ([`crate::inspect`]), `bench` ([`crate::bench`]), `review` and `labels
//! add-from-reviews` ([`crate::review::cli`]), `audit` ([`crate::audit::cli`]), `promote`
//! ([`crate::promote`]) and `healthcheck` ([`crate::healthcheck`]). Exit codes are in
//! [`crate::exit`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{config::Settings, env::ProcessEnv, telemetry};

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
    Classify(crate::classify::ClassifyArgs),
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

#[derive(Debug, Subcommand)]
enum LabelsCommand {
    /// Validate a labels file: header, enums, route vs severity, unique ids, row count, bucket
    /// shares, overlap with the other file, empty fields, duplicates and conflicting labels
    /// (also against the other file), and rows per definition clause.
    Check(crate::inspect::LabelsCheckArgs),
    /// Append the tickets reviewers corrected to the labels file, check it, print the prompt
    /// version it implies.
    AddFromReviews(crate::review::cli::AddFromReviewsArgs),
}

#[derive(Debug, Subcommand)]
enum PromptCommand {
    /// Print the exact system block to stdout and its version to stderr.
    Render(crate::inspect::PromptRenderArgs),
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Serve = cli.command {
        return crate::serve::main();
    }
    // One-shot commands log to stderr only; traces are for the service.
    if let Ok(mut s) = Settings::load(&ProcessEnv) {
        s.telemetry.traces = None;
        if let Ok(guard) = telemetry::init(&s.telemetry) {
            std::mem::forget(guard);
        }
    }
    match cli.command {
        Command::Serve => crate::serve::main(),
        Command::Classify(args) => crate::classify::main(args),
        Command::Eval(args) => crate::eval::main(args),
        Command::Labels {
            command: LabelsCommand::Check(args),
        } => crate::inspect::labels_check(args),
        Command::Labels {
            command: LabelsCommand::AddFromReviews(args),
        } => crate::review::cli::add_from_reviews(args),
        Command::Prompt {
            command: PromptCommand::Render(args),
        } => crate::inspect::prompt_render(args),
        Command::Bench(args) => crate::bench::main(args),
        Command::Review(args) => crate::review::cli::main(args),
        Command::Audit(args) => crate::audit::cli::main(args),
        Command::Promote(args) => crate::promote::main(args),
        Command::Healthcheck(args) => crate::healthcheck::main(args),
    }
}
