//! `escalator audit`: the report on the terminal (or as JSON), exit 1 when the last full week
//! is below the bar with enough verdicts, and with `--open-pr` the labels pull request.

use std::process::ExitCode;

use clap::Args;

use super::{AuditRequest, Outcome, Report, github::Github, pr, weeks::IsoWeek};
use crate::{config::Settings, exit, labels::Summary, store::Store};

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

/// The request for `settings` at `now`, with the command line's overrides; the labels' urgent
/// share comes from the labels the prompt is built from.
///
/// # Errors
/// A message for an argument out of range.
pub fn request(
    settings: &Settings,
    now: chrono::DateTime<chrono::Utc>,
    week: Option<&str>,
    weeks: Option<usize>,
    min_accuracy: Option<f64>,
    min_verdicts: Option<u64>,
) -> Result<AuditRequest, String> {
    let tz = settings.review.time_zone;
    let last_week = match week {
        Some(w) => IsoWeek::parse(w).map_err(|e| format!("--week: {e}"))?,
        None => IsoWeek::last_full(now, tz),
    };
    let weeks = weeks.unwrap_or(settings.audit.weeks);
    if !(1..=104).contains(&weeks) {
        return Err("--weeks must be within 1..=104".to_owned());
    }
    let min_accuracy = min_accuracy.unwrap_or(settings.audit.min_accuracy);
    if !(0.0..=1.0).contains(&min_accuracy) {
        return Err(format!(
            "--min-accuracy must be within 0..1, got {min_accuracy}"
        ));
    }
    let labels_urgent_share = crate::startup::load_prompt(settings).ok().map(|(_, e)| {
        let s = Summary::of(&e);
        let urgent = s
            .by_severity
            .get(&crate::domain::Severity::Urgent)
            .copied()
            .unwrap_or(0);
        #[allow(clippy::cast_precision_loss)]
        let share = urgent as f64 / s.rows.max(1) as f64;
        share
    });
    Ok(AuditRequest {
        last_week,
        weeks,
        min_accuracy,
        min_verdicts: min_verdicts.unwrap_or(settings.audit.min_verdicts),
        time_zone: tz,
        labels_urgent_share,
    })
}

/// Runs the labels pull request flow for `report` and says what it did (one line).
///
/// # Errors
/// When GitHub is not configured or the flow fails.
pub async fn pull_request(
    store: &dyn Store,
    settings: &Settings,
    report: &Report,
) -> anyhow::Result<String> {
    let gh = settings.audit.github.clone().ok_or_else(|| {
        anyhow::anyhow!("GITHUB_TOKEN and GITHUB_REPOSITORY are needed to open the pull request")
    })?;
    let gh = Github::new(gh)?;
    Ok(
        match pr::open_or_update(
            &gh,
            store,
            report,
            &settings.audit,
            &settings.claude,
            &settings.prompt_spec(),
        )
        .await?
        {
            pr::PrResult::NotNeeded(why) => why,
            pr::PrResult::Opened(o) => format!(
                "opened pull request #{} ({}) on {} with {} rows; prompt version {}",
                o.number, o.url, o.branch, o.rows, o.prompt_version
            ),
            pr::PrResult::Updated(o) => format!(
                "updated pull request #{} ({}): {} moved to {} with {} rows; prompt version {}",
                o.number, o.url, o.branch, o.commit, o.rows, o.prompt_version
            ),
        },
    )
}

/// Runs `escalator audit`; returns the exit code.
pub fn main(args: AuditArgs) -> ExitCode {
    let settings = match exit::settings() {
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
    let rt = match exit::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let store = match crate::store::connect(&settings.store).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("escalator audit: {e:#}");
                return ExitCode::from(exit::SOFTWARE);
            }
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
