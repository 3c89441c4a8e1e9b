//! `escalator eval`: runs a classifier over a labelled file and prints the evaluation's report
//! ([`crate::evaluation`]); `--batch` sends the file through the Message Batches API instead
//! (half price). A row that gets no classification makes the command exit 1, and so does a row
//! the offline classifier decided because the model could not, unless `--allow-fallbacks`.

use std::{io::IsTerminal as _, path::PathBuf, process::ExitCode};

use clap::Args;

use crate::{
    classifier::claude::TokenSource,
    evaluation::{self, EvalReport},
    examples::{self, Example},
    exit,
};

/// The arguments of `escalator eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The labelled file to evaluate on (the embedded holdout when the default path is absent).
    #[arg(default_value = "labels/holdout.csv")]
    file: PathBuf,
    /// Exit with status 1 when accuracy is below this (0..1).
    #[arg(long)]
    min_accuracy: Option<f64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// The classifier to evaluate: `offline` (rules, no network) or `claude` (the real API with
    /// the configured model; needs ANTHROPIC_API_KEY and costs money).
    #[arg(long, value_enum, default_value_t = EvalClassifier::Offline)]
    classifier: EvalClassifier,
    /// Tickets classified at once with `--classifier claude` (also capped by
    /// `claude.max_concurrency`).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Also print, per ticket, which offline rules fired, which phrases a guard switched off and
    /// why, and the nearest labelled examples (the offline classifier is also the fallback).
    #[arg(long)]
    explain: bool,
    /// With `--classifier claude`: send every row in one Message Batch (half price; waits for
    /// the batch, polling every `[audit] batch_poll_secs`). A row whose request fails gets the
    /// offline fallback, as in the service.
    #[arg(long)]
    batch: bool,
    /// Exit 0 even when some rows fell back to the offline classifier (they still count as
    /// misses of the model).
    #[arg(long)]
    allow_fallbacks: bool,
}

/// Which backend `eval` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EvalClassifier {
    /// The rule-based classifier; no network.
    Offline,
    /// The Claude backend, through the same fallback policy as the service.
    Claude,
}

/// Builds the classifiers `--classifier` names through the builder `serve` uses and runs the
/// evaluation; against the API it first checks the cached prefix and warms the cache with one
/// call, then fans out.
async fn run(file: &str, examples: &[Example], args: &EvalArgs) -> Result<EvalReport, ExitCode> {
    let mut settings = exit::settings("escalator")?;
    if args.classifier == EvalClassifier::Offline {
        // Offline even when a key is set: evaluating the model is a choice that costs money.
        settings.claude.api_key = None;
    }
    // The same model check as `serve`: a mistyped model id would otherwise make every call 404
    // and the report would be the offline fallback's accuracy under the model's name.
    let model_info = crate::classifier::claude::models::check_model(&settings.claude)
        .await
        .map_err(|e| {
            eprintln!("escalator eval: {e}");
            ExitCode::from(exit::USAGE)
        })?;
    let classifiers = settings.classifiers(model_info.as_ref()).map_err(|e| {
        eprintln!("escalator eval: {e:#}");
        ExitCode::from(exit::USAGE)
    })?;
    let Some(claude) = &classifiers.claude else {
        if args.classifier == EvalClassifier::Claude {
            eprintln!("escalator eval --classifier claude: ANTHROPIC_API_KEY is not set");
            return Err(ExitCode::from(exit::USAGE));
        }
        let weighting = &settings.triage.weighting;
        let mut report =
            evaluation::evaluate(file, examples, &classifiers.decider(), weighting).await;
        let negatives = examples::parse("labels/negatives.csv", examples::EMBEDDED_NEGATIVES)
            .unwrap_or_default();
        report.contamination = Some(crate::classifier::offline::contamination::check(
            &classifiers.offline,
            weighting,
            &negatives,
            examples,
        ));
        if args.explain {
            report.explain = evaluation::explain_rows(examples, &classifiers.offline, weighting);
        }
        return Ok(report);
    };
    if args.batch {
        eprintln!(
            "sending {} tickets in one Message Batch (half price); polling every {} s",
            examples.len(),
            settings.audit.batch_poll.as_secs()
        );
        let (report, batch_id) = evaluation::evaluate_batch(
            file,
            examples,
            claude,
            &classifiers.offline,
            &settings.triage.weighting,
            settings.audit.batch_poll,
            settings.audit.batch_max_wait,
        )
        .await
        .map_err(|e| {
            eprintln!("escalator eval --batch: the batch failed: {}", e.reason());
            ExitCode::from(exit::SOFTWARE)
        })?;
        eprintln!("message batch {batch_id} ended");
        return Ok(report);
    }
    let check = claude.check_cache().await;
    eprintln!(
        "system block: {} tokens ({}), minimum cacheable for {}: {}{}",
        check.tokens,
        match check.source {
            TokenSource::CountTokens => "count_tokens",
            TokenSource::Estimate => "estimated at chars/4",
        },
        settings.claude.model,
        check.minimum,
        if check.cacheable() {
            ""
        } else {
            " (below it: nothing will be cached)"
        }
    );
    let warmup = match claude.warm().await {
        Ok(u) => Some(u),
        Err(e) => {
            eprintln!(
                "escalator eval: cache warm-up failed ({}); continuing",
                e.reason()
            );
            None
        }
    };
    let progress = std::io::stderr().is_terminal() && !args.json;
    let mut report = evaluation::evaluate_with(
        file,
        examples,
        &classifiers.decider(),
        &settings.triage.weighting,
        usize::from(args.concurrency),
        warmup,
        progress,
    )
    .await;
    if args.explain {
        report.explain =
            evaluation::explain_rows(examples, &classifiers.offline, &settings.triage.weighting);
    }
    Ok(report)
}

/// Runs `escalator eval`; returns the exit code (1 below `--min-accuracy` or when a row failed
/// to classify).
pub fn main(args: EvalArgs) -> ExitCode {
    if args.batch && args.classifier != EvalClassifier::Claude {
        eprintln!(
            "escalator eval: --batch sends the rows to the Message Batches API; it needs --classifier claude"
        );
        return ExitCode::from(exit::USAGE);
    }
    if let Some(min) = args.min_accuracy {
        if !(0.0..=1.0).contains(&min) {
            eprintln!("escalator eval: --min-accuracy must be within 0..1, got {min}");
            return ExitCode::from(exit::USAGE);
        }
    }
    let default_absent =
        args.file == std::path::Path::new("labels/holdout.csv") && !args.file.exists();
    let (file, parsed) = if default_absent {
        let name = "labels/holdout.csv (embedded)".to_owned();
        let parsed = examples::parse(&name, examples::EMBEDDED_HOLDOUT);
        (name, parsed)
    } else {
        (args.file.display().to_string(), examples::load(&args.file))
    };
    let examples = match parsed {
        Ok(e) => e,
        Err(problems) => {
            for p in problems {
                eprintln!("{p}");
            }
            return ExitCode::from(exit::CHECK_FAILED);
        }
    };
    let rt = match exit::runtime("escalator") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let report = match rt.block_on(run(&file, &examples, &args)) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("escalator eval: {e}");
                return ExitCode::from(exit::SOFTWARE);
            }
        }
    } else {
        print!("{report}");
    }
    let mut passed = true;
    if report.failed > 0 {
        eprintln!(
            "escalator eval: {} of {} tickets failed to classify (listed under misses)",
            report.failed, report.total
        );
        passed = false;
    }
    if report.fallbacks > 0 && !args.allow_fallbacks {
        eprintln!(
            "escalator eval: {} of {} tickets fell back to the offline classifier (counted as misses of the model; --allow-fallbacks accepts them)",
            report.fallbacks, report.total
        );
        passed = false;
    }
    if let Some(min) = args.min_accuracy {
        // The honest figure: without the rows only holdout-borne rule phrases decided.
        let (accuracy, which) = match &report.contamination {
            Some(c) if !c.rows.is_empty() => {
                (c.clean_accuracy, "accuracy without the contaminated rows")
            }
            _ => (report.accuracy, "accuracy"),
        };
        if accuracy < min {
            eprintln!("escalator eval: {which} {accuracy:.3} is below --min-accuracy {min}");
            passed = false;
        }
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::CHECK_FAILED)
    }
}
