//! The review's commands: `escalator review [export|import]` and
//! `escalator labels add-from-reviews`. `crate::cli` only dispatches here.

use std::{io::IsTerminal as _, path::PathBuf, process::ExitCode, sync::Arc};

use chrono::NaiveDate;
use clap::{Args, Subcommand};

use crate::{config::Settings, domain::Source, exit, store::Store};

use super::{Pass, ReviewVerdict, SampleRequest};

/// `escalator review`: judge a day's sample in the terminal (or export / import it).
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReviewArgs {
    #[command(subcommand)]
    command: Option<ReviewCommand>,
    #[command(flatten)]
    sample: SampleArgs,
    /// Who is judging (stored with every verdict).
    #[arg(long, env = "USER", default_value = "reviewer")]
    reviewer: String,
}

#[derive(Debug, Subcommand)]
enum ReviewCommand {
    /// Print the day's open sample as CSV (ticket, decision, empty verdict columns).
    Export(SampleArgs),
    /// Validate a filled-in export and store its verdicts (nothing is stored if a row is wrong).
    Import {
        /// The CSV file.
        file: PathBuf,
        /// The reviewer of rows whose `reviewer` column is empty.
        #[arg(long, env = "USER", default_value = "reviewer")]
        reviewer: String,
    },
}

/// Which sample: the day, its size, the seed and the source.
#[derive(Debug, Args)]
struct SampleArgs {
    /// The day whose decisions are sampled (YYYY-MM-DD in `[review] time_zone`; default
    /// yesterday).
    #[arg(long)]
    date: Option<NaiveDate>,
    /// Decisions in the day's sample (default `[review] sample_size`, 10).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000))]
    n: Option<u16>,
    /// Seed of the draw, to repeat it (the seed used is printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Only decisions of this source.
    #[arg(long, value_enum)]
    source: Option<SourceArg>,
    /// Judge as the second reviewer: the decisions offered for a double review, shown without
    /// the first verdict.
    #[arg(long, conflicts_with = "adjudicate")]
    second: bool,
    /// Settle the disagreements between the first and the second verdict (terminal and page
    /// only).
    #[arg(long)]
    adjudicate: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SourceArg {
    Plain,
    Pylon,
    Api,
}

impl From<SourceArg> for Source {
    fn from(s: SourceArg) -> Self {
        match s {
            SourceArg::Plain => Source::Plain,
            SourceArg::Pylon => Source::Pylon,
            SourceArg::Api => Source::Api,
        }
    }
}

/// `escalator labels add-from-reviews`.
#[derive(Debug, Args)]
pub struct AddFromReviewsArgs {
    /// Only verdicts given on or after this day (YYYY-MM-DD in `[review] time_zone`).
    #[arg(long)]
    since: Option<NaiveDate>,
    /// Show what would be added and the prompt version; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// The labels file to append to.
    #[arg(long, default_value = "labels/labels.csv")]
    file: PathBuf,
}

struct Env {
    settings: Settings,
    rt: tokio::runtime::Runtime,
    store: Arc<dyn Store>,
}

fn open(command: &str) -> Result<Env, ExitCode> {
    let command = format!("escalator {command}");
    let settings = exit::settings(&command)?;
    let rt = exit::runtime(&command)?;
    let store = rt.block_on(exit::store(&command, &settings))?;
    Ok(Env {
        settings,
        rt,
        store,
    })
}

/// Opens the store and draws the day's sample: the shared start of `review` and `review export`.
fn open_sample(
    command: &str,
    args: &SampleArgs,
) -> Result<(Env, SampleRequest, super::Sample), ExitCode> {
    let env = open(command)?;
    let req = args.request(&env.settings);
    let tz = env.settings.review.time_zone;
    match env.rt.block_on(super::sample(env.store.as_ref(), tz, &req)) {
        Ok(sample) => Ok((env, req, sample)),
        Err(e) => {
            eprintln!("escalator {command}: cannot sample: {e}");
            Err(ExitCode::from(exit::SOFTWARE))
        }
    }
}

impl SampleArgs {
    fn pass(&self) -> Pass {
        if self.second {
            Pass::Second
        } else if self.adjudicate {
            Pass::Adjudication
        } else {
            Pass::First
        }
    }

    fn request(&self, settings: &Settings) -> SampleRequest {
        SampleRequest {
            day: self
                .date
                .unwrap_or_else(|| super::yesterday(settings.review.time_zone)),
            n: self.n.map_or(settings.review.sample_size, usize::from),
            seed: self.seed,
            source: self.source.map(Source::from),
            design: settings.review.design,
        }
    }
}

/// Runs `escalator review …`; returns the exit code.
pub fn main(args: ReviewArgs) -> ExitCode {
    match args.command {
        None => review(&args.sample, &args.reviewer),
        Some(ReviewCommand::Export(sample)) => export(&sample),
        Some(ReviewCommand::Import { file, reviewer }) => import(&file, &reviewer),
    }
}

fn review(args: &SampleArgs, reviewer: &str) -> ExitCode {
    let pass = args.pass();
    let (env, req, sample) = match open_sample("review", args) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let tz = env.settings.review.time_zone;
    if sample.items.is_empty() {
        println!("No decisions to review for {} in {tz}.", req.day);
        return ExitCode::SUCCESS;
    }
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut lines;
    let input: &mut dyn super::terminal::Keys = if stdin.is_terminal() {
        eprintln!("Type a key; the why is optional (Enter to leave it empty).");
        &mut super::terminal::Tty
    } else {
        lines = stdin.lock();
        &mut super::terminal::Lines(&mut lines)
    };
    let outcome = super::terminal::run(
        env.rt.handle(),
        env.store.as_ref(),
        &sample,
        &super::terminal::Judge {
            reviewer,
            pass,
            taxonomy: &env.settings.labels.taxonomy,
        },
        input,
        &mut out,
    );
    match outcome {
        Ok(_) => {
            // A second reviewer sees nothing of the first verdicts, not even their tally.
            if pass != Pass::Second {
                if let Ok(t) = env
                    .rt
                    .block_on(super::tally(env.store.as_ref(), tz, req.day))
                {
                    println!("{}: {t}", req.day);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("escalator review: {e:#} (verdicts given before it are kept)");
            ExitCode::from(exit::SOFTWARE)
        }
    }
}

fn export(args: &SampleArgs) -> ExitCode {
    let pass = args.pass();
    if pass == Pass::Adjudication {
        eprintln!(
            "escalator review export: adjudicate in the terminal (`escalator review --adjudicate`) or on the /review page"
        );
        return ExitCode::from(exit::USAGE);
    }
    let (_env, req, sample) = match open_sample("review export", args) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    // The reviewer is not known here: the import refuses a second verdict from the first
    // reviewer.
    let open: Vec<_> = sample.open_for(pass, "").map(|(_, i)| i).collect();
    if let Err(e) = super::csv::export(&open, pass, &mut std::io::stdout().lock()) {
        eprintln!("escalator review export: {e}");
        return ExitCode::from(exit::SOFTWARE);
    }
    eprintln!(
        "{} decisions of {} to judge{} (seed {}); fill in verdict (correct | corrected), \
         corrected_severity (routine | urgent | on_fire) and why, then `escalator review import`",
        open.len(),
        req.day,
        if pass == Pass::Second {
            " as the second reviewer"
        } else {
            ""
        },
        sample.seed
    );
    ExitCode::SUCCESS
}

fn import(file: &std::path::Path, reviewer: &str) -> ExitCode {
    let name = file.display().to_string();
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{name}: cannot read: {e}");
            return ExitCode::from(exit::CHECK_FAILED);
        }
    };
    let env = match open("review import") {
        Ok(e) => e,
        Err(code) => return code,
    };
    let store = env.store.as_ref();
    let parsed = match env.rt.block_on(super::csv::parse(
        store,
        &name,
        &text,
        reviewer,
        &env.settings.labels.taxonomy,
    )) {
        Ok(p) => p,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("{name}: {} problem(s); nothing was stored", problems.len());
            return ExitCode::from(exit::CHECK_FAILED);
        }
    };
    let mut corrected = 0;
    for row in &parsed.rows {
        if let Err(e) = env
            .rt
            .block_on(super::record_by_id(store, row.review.clone()))
        {
            eprintln!(
                "{name}:{}: cannot store the verdict: {e} (rows before it are stored; importing again is safe)",
                row.line
            );
            return ExitCode::from(exit::SOFTWARE);
        }
        corrected += usize::from(matches!(row.review.verdict, ReviewVerdict::Corrected(_)));
    }
    println!(
        "{name}: {} verdicts stored ({corrected} corrected), {} rows left unjudged",
        parsed.rows.len(),
        parsed.unjudged
    );
    ExitCode::SUCCESS
}

/// Runs `escalator labels add-from-reviews`; returns the exit code.
pub fn add_from_reviews(args: AddFromReviewsArgs) -> ExitCode {
    let env = match open("labels add-from-reviews") {
        Ok(e) => e,
        Err(code) => return code,
    };
    let result = env.rt.block_on(super::labels::add_from_reviews(
        env.store.as_ref(),
        env.settings.review.time_zone,
        &args.file,
        args.since,
        env.settings.prompt_file.as_deref(),
        args.dry_run,
        &env.settings.prompt_spec(),
    ));
    let name = args.file.display();
    match result {
        Ok(added) => {
            for e in &added.rows {
                let line = format!(
                    "{} {}: {} -> {} ({})",
                    if args.dry_run { "would add" } else { "added" },
                    e.ticket_id,
                    crate::text::excerpt(&e.subject, 60),
                    e.severity,
                    e.why
                );
                println!("{}", crate::text::for_terminal(&line));
            }
            println!(
                "{name}: {} row(s) {}, {} already there, {} without ticket text, {} awaiting adjudication; labels check: ok",
                added.rows.len(),
                if args.dry_run {
                    "to add (dry run)"
                } else {
                    "added"
                },
                added.already_there,
                added.without_text,
                added.disputed
            );
            println!("prompt version: {}", added.prompt_version);
            ExitCode::SUCCESS
        }
        Err(super::labels::AddError::Labels(problems)) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!(
                "{name}: {} problem(s); the file is unchanged",
                problems.len()
            );
            ExitCode::from(exit::CHECK_FAILED)
        }
        Err(e) => {
            eprintln!("escalator labels add-from-reviews: {e:#}; the file is unchanged");
            ExitCode::from(exit::SOFTWARE)
        }
    }
}
