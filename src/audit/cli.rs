//! `escalator audit`: the report on the terminal (or as JSON), exit 1 when the last full week
//! is below the bar with enough verdicts, and with `--open-pr` the labels pull request.

use std::process::ExitCode;

use clap::Args;

use super::{
    Outcome,
    run::{pull_request, request},
};
use crate::exit;

/// The arguments of `escalator audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// ISO weeks to report, ending with the last full week (default `[audit] weeks`, 8).
    #[arg(long)]
    weeks: Option<usize>,
    /// The last week to report and judge, e.g. 2026-W48 (default: the last full week).
    #[arg(long)]
    week: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// The bar of the last week's sampled accuracy (default `[audit] min_accuracy`, 0.90).
    #[arg(long)]
    min_accuracy: Option<f64>,
    /// Verdicts the last week needs before the bar applies (default `[audit] min_verdicts`, 30).
    #[arg(long)]
    min_verdicts: Option<u64>,
    /// Open (or update) the week's labels pull request when it is below the bar (needs
    /// GITHUB_TOKEN and GITHUB_REPOSITORY).
    #[arg(long)]
    open_pr: bool,
}

/// Runs `escalator audit`; returns the exit code.
pub fn main(args: AuditArgs) -> ExitCode {
    let settings = match exit::settings("escalator") {
        Ok(s) => s,
        Err(code) => return code,
    };
    let req = match request(
        &settings,
        chrono::Utc::now(),
        args.week.as_deref(),
        args.weeks,
        args.min_accuracy,
        args.min_verdicts,
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("escalator audit: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    if args.open_pr && settings.audit.github.is_none() {
        eprintln!(
            "escalator audit --open-pr: GITHUB_TOKEN and GITHUB_REPOSITORY (owner/name) must be set"
        );
        return ExitCode::from(exit::USAGE);
    }
    let rt = match exit::runtime("escalator") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let store = match exit::store("escalator audit", &settings).await {
            Ok(s) => s,
            Err(code) => return code,
        };
        let report = match super::build(store.as_ref(), &req).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("escalator audit: cannot read the routing log: {e}");
                return ExitCode::from(exit::SOFTWARE);
            }
        };
        if args.json {
            match serde_json::to_string_pretty(&report) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("escalator audit: {e}");
                    return ExitCode::from(exit::SOFTWARE);
                }
            }
        } else {
            print!("{report}");
        }
        eprintln!("escalator audit: {}", report.gate.message());
        let mut code = match report.gate.outcome {
            Outcome::Below => ExitCode::from(exit::CHECK_FAILED),
            Outcome::Pass | Outcome::NotEnoughVerdicts => ExitCode::SUCCESS,
        };
        if args.open_pr {
            match pull_request(store.as_ref(), &settings, &report).await {
                Ok(line) => eprintln!("escalator audit: {line}"),
                Err(e) => {
                    eprintln!("escalator audit --open-pr: {e:#}");
                    code = ExitCode::from(exit::SOFTWARE);
                }
            }
        }
        store.close().await;
        code
    })
}
