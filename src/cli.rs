//! The command line: `serve`, `classify`, `eval`, `labels check`, `prompt render`.
//!
//! Exit codes: 0 success; 1 a check failed (bad labels, accuracy below `--min-accuracy`);
//! 2 usage error (clap); 64 invalid configuration; 70 the service failed at run time.

use std::{collections::BTreeMap, path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::{
    classifier::Decider,
    config::{ProcessEnv, Settings},
    domain::{Classification, RawTicket, Severity, Source, Ticket, TicketContext},
    labels::{self, Example, Rules, Summary},
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
    Eval(EvalArgs),
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

#[derive(Debug, Args)]
struct EvalArgs {
    /// The labelled file to evaluate on (the embedded holdout when the default path is absent).
    #[arg(default_value = "labels/holdout.csv")]
    file: PathBuf,
    /// Exit with status 1 when accuracy is below this (0..1).
    #[arg(long)]
    min_accuracy: Option<f64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum LabelsCommand {
    /// Validate a labels file: header, enums, route vs severity, unique ids, row count, bucket
    /// shares, overlap with the other file, empty fields.
    Check {
        /// The file to check.
        #[arg(default_value = "labels/labels.csv")]
        file: PathBuf,
        /// The file it must not overlap (default: the holdout for a training file and vice versa).
        #[arg(long)]
        against: Option<PathBuf>,
        /// Fewest rows accepted (default: 50 for a training file, 10 for a holdout).
        #[arg(long)]
        min_rows: Option<usize>,
    },
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
    telemetry::init(&ProcessEnv);
    match cli.command {
        Command::Serve => serve(),
        Command::Classify(args) => classify(args),
        Command::Eval(args) => eval(args),
        Command::Labels {
            command:
                LabelsCommand::Check {
                    file,
                    against,
                    min_rows,
                },
        } => labels_check(&file, against, min_rows),
        Command::Prompt {
            command:
                PromptCommand::Render {
                    labels,
                    template,
                    json,
                },
        } => prompt_render(labels, template, json),
    }
}

const EX_USAGE: u8 = 64;
const EX_SOFTWARE: u8 = 70;

fn settings() -> Result<Settings, ExitCode> {
    Settings::load(&ProcessEnv).map_err(|e| {
        eprintln!("escalator: invalid configuration: {e}");
        ExitCode::from(EX_USAGE)
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("escalator: cannot start the async runtime: {e}");
            ExitCode::from(EX_SOFTWARE)
        })
}

fn serve() -> ExitCode {
    let run = || -> Result<(), ExitCode> {
        let settings = settings()?;
        let rt = runtime()?;
        rt.block_on(async {
            let app = App::build(settings).await.map_err(|e| {
                tracing::error!("cannot start: {e:#}");
                ExitCode::from(EX_SOFTWARE)
            })?;
            let token = CancellationToken::new();
            tokio::spawn(shutdown::cancel_on_signal(token.clone()));
            app.run_until_stopped(token).await.map_err(|e| {
                tracing::error!("server failed: {e:#}");
                ExitCode::from(EX_SOFTWARE)
            })
        })
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

fn decider() -> Result<(Decider, Prompt), ExitCode> {
    let settings = settings()?;
    startup::build_decider(&settings).map_err(|e| {
        eprintln!("escalator: {e:#}");
        ExitCode::from(EX_USAGE)
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
}

impl<'a> From<&'a Classification> for DecisionJson<'a> {
    fn from(c: &'a Classification) -> Self {
        Self {
            severity: c.verdict.severity,
            route: c.verdict.route,
            confidence: c.verdict.confidence.get(),
            reasoning: &c.verdict.reasoning,
            prompt_version: &c.prompt_version,
            model: &c.model,
            fallback: c.fallback_reason.is_some(),
            fallback_reason: c.fallback_reason.as_deref(),
            notes: &c.verdict.notes,
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
            return ExitCode::from(EX_USAGE);
        }
    };
    let (decider, _) = match decider() {
        Ok(d) => d,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let ctx = TicketContext {
        ticket,
        repeat_count_24h: args.repeat_count,
    };
    let c = rt.block_on(decider.decide(&ctx));
    match serde_json::to_string_pretty(&DecisionJson::from(&c)) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("escalator classify: {e}");
            ExitCode::from(EX_SOFTWARE)
        }
    }
}

/// The result of an evaluation run.
#[derive(Debug, Serialize)]
pub struct EvalReport {
    /// The file evaluated.
    pub file: String,
    /// The model that classified.
    pub model: String,
    /// The prompt version.
    pub prompt_version: String,
    /// Rows evaluated.
    pub total: usize,
    /// Rows whose severity matched the label.
    pub correct: usize,
    /// `correct / total`.
    pub accuracy: f64,
    /// `confusion[expected][predicted]`, both keyed by severity.
    pub confusion: BTreeMap<Severity, BTreeMap<Severity, usize>>,
    /// The rows that were wrong.
    pub misses: Vec<Miss>,
}

/// One wrong answer.
#[derive(Debug, Serialize)]
pub struct Miss {
    /// The labelled ticket.
    pub ticket_id: String,
    /// The label.
    pub expected: Severity,
    /// What the classifier said.
    pub predicted: Severity,
    /// Its reasoning.
    pub reasoning: String,
}

/// Classifies every example with `decider` and compares with the labels.
pub async fn evaluate(file: &str, examples: &[Example], decider: &Decider) -> EvalReport {
    let mut confusion: BTreeMap<Severity, BTreeMap<Severity, usize>> = Severity::ALL
        .iter()
        .map(|s| (*s, Severity::ALL.iter().map(|p| (*p, 0)).collect()))
        .collect();
    let mut misses = Vec::new();
    let mut model = String::new();
    let mut prompt_version = String::new();
    for e in examples {
        let raw = RawTicket {
            id: e.ticket_id.clone(),
            subject: e.subject.clone(),
            body: e.first_message.clone(),
            tier: e.tier.as_str().to_owned(),
            ..RawTicket::default()
        };
        let Ok(ticket) = Ticket::parse(Source::Api, raw, "") else {
            continue;
        };
        let c = decider
            .decide(&TicketContext {
                ticket,
                repeat_count_24h: 0,
            })
            .await;
        model.clone_from(&c.model);
        prompt_version.clone_from(&c.prompt_version);
        let predicted = c.verdict.severity;
        if let Some(row) = confusion.get_mut(&e.severity) {
            *row.entry(predicted).or_default() += 1;
        }
        if predicted != e.severity {
            misses.push(Miss {
                ticket_id: e.ticket_id.clone(),
                expected: e.severity,
                predicted,
                reasoning: c.verdict.reasoning,
            });
        }
    }
    let total = examples.len();
    let correct = total - misses.len();
    #[allow(clippy::cast_precision_loss)]
    let accuracy = if total == 0 {
        0.0
    } else {
        correct as f64 / total as f64
    };
    EvalReport {
        file: file.to_owned(),
        model,
        prompt_version,
        total,
        correct,
        accuracy,
        confusion,
        misses,
    }
}

impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} with {} ({})",
            self.file, self.model, self.prompt_version
        )?;
        writeln!(
            f,
            "accuracy: {}/{} = {:.1}%",
            self.correct,
            self.total,
            self.accuracy * 100.0
        )?;
        writeln!(f, "\nexpected \\ predicted  routine   urgent  on_fire")?;
        for (expected, row) in &self.confusion {
            write!(f, "{:<20}", expected.as_str())?;
            for s in Severity::ALL {
                write!(f, " {:>8}", row.get(s).copied().unwrap_or(0))?;
            }
            writeln!(f)?;
        }
        if self.misses.is_empty() {
            writeln!(f, "\nno misses")?;
        } else {
            writeln!(f, "\nmisses:")?;
            for m in &self.misses {
                writeln!(
                    f,
                    "  {}: expected {}, got {}: {}",
                    m.ticket_id, m.expected, m.predicted, m.reasoning
                )?;
            }
        }
        Ok(())
    }
}

fn eval(args: EvalArgs) -> ExitCode {
    if let Some(min) = args.min_accuracy {
        if !(0.0..=1.0).contains(&min) {
            eprintln!("escalator eval: --min-accuracy must be within 0..1, got {min}");
            return ExitCode::from(EX_USAGE);
        }
    }
    let default_absent = args.file == std::path::Path::new("labels/holdout.csv") && !args.file.exists();
    let (file, parsed) = if default_absent {
        let name = "labels/holdout.csv (embedded)".to_owned();
        let parsed = labels::parse(&name, labels::EMBEDDED_HOLDOUT);
        (name, parsed)
    } else {
        (args.file.display().to_string(), labels::load(&args.file))
    };
    let examples = match parsed {
        Ok(e) => e,
        Err(problems) => {
            for p in problems {
                eprintln!("{p}");
            }
            return ExitCode::from(1);
        }
    };
    let (decider, _) = match decider() {
        Ok(d) => d,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let report = rt.block_on(evaluate(&file, &examples, &decider));
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("escalator eval: {e}");
                return ExitCode::from(EX_SOFTWARE);
            }
        }
    } else {
        print!("{report}");
    }
    match args.min_accuracy {
        Some(min) if report.accuracy < min => {
            eprintln!(
                "escalator eval: accuracy {:.3} is below --min-accuracy {min}",
                report.accuracy
            );
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    }
}

fn labels_check(file: &std::path::Path, against: Option<PathBuf>, min_rows: Option<usize>) -> ExitCode {
    let is_holdout = file
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("holdout"));
    let against = against.or_else(|| {
        let sibling = if is_holdout {
            "labels.csv"
        } else {
            "holdout.csv"
        };
        let p = file.with_file_name(sibling);
        p.exists().then_some(p)
    });
    let rules = Rules {
        min_rows: min_rows.unwrap_or(if is_holdout { 10 } else { 50 }),
        min_share: if is_holdout { 0.0 } else { 0.25 },
    };
    let name = file.display().to_string();
    let mut problems = Vec::new();
    let examples = labels::load(file).unwrap_or_else(|p| {
        problems.extend(p);
        Vec::new()
    });
    let other = match &against {
        Some(path) => match labels::load(path) {
            Ok(o) => Some((path.display().to_string(), o)),
            Err(p) => {
                problems.extend(p);
                None
            }
        },
        None => None,
    };
    if problems.is_empty() {
        problems.extend(labels::check(
            &name,
            &examples,
            &rules,
            other.as_ref().map(|(n, o)| (n.as_str(), o.as_slice())),
        ));
    }
    if problems.is_empty() {
        print!("{name}: ok\n{}", Summary::of(&examples));
        if let Some((n, _)) = &other {
            println!("no overlap with {n}");
        }
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("{p}");
        }
        eprintln!("{name}: {} problem(s)", problems.len());
        ExitCode::from(1)
    }
}

fn prompt_render(labels_file: Option<PathBuf>, template: Option<PathBuf>, json: bool) -> ExitCode {
    let mut settings = match settings() {
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
            return ExitCode::from(1);
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
