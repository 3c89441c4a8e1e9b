//! The command line: a thin dispatcher. Each command lives in its own module: `serve`,
//! `classify`, `eval`, `labels check`, `prompt render` and `healthcheck` in [`crate::commands`],
//! `bench` ([`crate::bench`]), `review` and `labels add-from-reviews`
//! ([`crate::review::cli`]), `audit` ([`crate::audit::cli`]) and `promote`
//! ([`crate::promote`]). Exit codes are in [`crate::exit`].

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
    Classify(crate::commands::classify::ClassifyArgs),
    /// Run the classifier over a labelled file: accuracy, confusion matrix, misses.
    Eval(crate::commands::eval::EvalArgs),
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
    Healthcheck(crate::commands::healthcheck::HealthcheckArgs),
}

#[derive(Debug, Subcommand)]
enum LabelsCommand {
    /// Validate a labels file: header, enums, route vs severity, unique ids, row count, bucket
    /// shares, overlap with the other file, empty fields, duplicates and conflicting labels
    /// (also against the other file), and rows per definition clause.
    Check(crate::commands::labels_check::LabelsCheckArgs),
    /// Append the tickets reviewers corrected to the labels file, check it, print the prompt
    /// version it implies.
    AddFromReviews(crate::review::cli::AddFromReviewsArgs),
}

#[derive(Debug, Subcommand)]
enum PromptCommand {
    /// Print the exact system block to stdout and its version to stderr.
    Render(crate::commands::prompt_render::PromptRenderArgs),
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Serve = cli.command {
        return crate::commands::serve::main();
    }
    // One-shot commands log to stderr only; traces are for the service. The guard is held
    // until the command returns.
    let _telemetry = Settings::load(&ProcessEnv).ok().and_then(|mut s| {
        s.telemetry.traces = None;
        telemetry::init(&s.telemetry).ok()
    });
    match cli.command {
        Command::Serve => crate::commands::serve::main(),
        Command::Classify(args) => crate::commands::classify::main(args),
        Command::Eval(args) => crate::commands::eval::main(args),
        Command::Labels {
            command: LabelsCommand::Check(args),
        } => crate::commands::labels_check::main(args),
        Command::Labels {
            command: LabelsCommand::AddFromReviews(args),
        } => crate::review::cli::add_from_reviews(args),
        Command::Prompt {
            command: PromptCommand::Render(args),
        } => crate::commands::prompt_render::main(args),
        Command::Bench(args) => crate::bench::main(args),
        Command::Review(args) => crate::review::cli::main(args),
        Command::Audit(args) => crate::audit::cli::main(args),
        Command::Promote(args) => crate::promote::main(args),
        Command::Healthcheck(args) => crate::commands::healthcheck::main(args),
    }
}
