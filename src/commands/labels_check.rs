//! `escalator labels check`: a labelled-examples file checked as the service would load it
//! (header, enums, hygiene, overlap, clause coverage), without a database or a network.

use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use crate::{examples, exit};

/// `escalator labels check` arguments.
#[derive(Debug, Args)]
pub struct LabelsCheckArgs {
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
    /// A holdout also gets the offline rules' contamination report (never a failure).
    #[arg(long)]
    strict: bool,
}

/// Runs `escalator labels check`; returns the exit code.
pub fn main(args: LabelsCheckArgs) -> ExitCode {
    let LabelsCheckArgs {
        file,
        against,
        min_rows,
        min_per_clause,
        strict,
    } = args;
    let file = file.as_path();
    let mut options = examples::CheckOptions::for_file(file);
    // A `topic` is checked against the topics the service would answer with: `[labels] topics`
    // (and live topic categories) of `ESCALATOR_CONFIG`, the defaults without one.
    let settings = match exit::settings("escalator") {
        Ok(s) => s,
        Err(code) => return code,
    };
    options.topics = settings
        .labels
        .taxonomy
        .topics()
        .into_iter()
        .map(str::to_owned)
        .collect();
    if let Some(n) = min_rows {
        options.rules.min_rows = n;
    }
    if let Some(n) = min_per_clause {
        options.min_per_clause = n;
    }
    let against = against.or_else(|| examples::CheckOptions::default_against(file));
    let report = examples::check_file(file, against.as_deref(), &options);
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
        if is_holdout(file) {
            print!(
                "{}",
                holdout_contamination(file, report.against.as_deref(), &settings)
            );
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

/// A file that measures the rules rather than teaching them (`*holdout*`).
fn is_holdout(file: &std::path::Path) -> bool {
    file.file_name()
        .is_some_and(|n| n.to_string_lossy().to_lowercase().contains("holdout"))
}

/// The contamination of a holdout (see [`crate::classifier::offline::contamination`]): the
/// offline rules' phrases it carries and no row of `against` (the training file, else the
/// embedded labels), and the accuracy without the rows they alone decide.
fn holdout_contamination(
    file: &std::path::Path,
    against: Option<&str>,
    settings: &crate::config::Settings,
) -> String {
    let (Ok(rows), Ok(training)) = (
        examples::load(file),
        against.map_or_else(
            || examples::parse("labels/labels.csv", examples::EMBEDDED_LABELS),
            |a| examples::load(std::path::Path::new(a)),
        ),
    ) else {
        // Both were read and checked above; a file that changed meanwhile is not reported on.
        return String::new();
    };
    let negatives =
        examples::parse("labels/negatives.csv", examples::EMBEDDED_NEGATIVES).unwrap_or_default();
    let offline = crate::classifier::OfflineClassifier::new(&training, "labels check");
    crate::classifier::offline::contamination::check(
        &offline,
        &settings.triage.weighting,
        &negatives,
        &rows,
    )
    .to_string()
}
