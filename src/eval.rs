//! `escalator eval`: runs a classifier over a labelled file and reports accuracy, the confusion
//! matrix with a `failed` margin, the misses, and with the model its tokens, cost and latency;
//! `--batch` sends the file through the Message Batches API instead (half price).
//!
//! Every row of the file counts: a row that gets no classification (the domain rejects it as a
//! ticket, or the classifier panicked) is a miss with its error and makes the command exit 1.
//! A row the offline classifier decided because the model could not is a miss of the model (the
//! offline rules are not the model under test), listed with its reason; it makes the command
//! exit 1 unless `--allow-fallbacks`. Each row's severity is the final one, after the tier
//! weighting the service applies ([`crate::weighting`]), as the labels are. With the offline
//! classifier the report says which rule phrases only the file carries and the accuracy without
//! the rows they alone decide ([`offline::contamination`]).
//!
//! Over 450 lines for now: the report, the evaluation loop and the command moved here together
//! from `cli.rs` (issue 10); the report can become a module of its own with issue 14's changes.

use std::{
    collections::{BTreeMap, HashMap},
    io::IsTerminal as _,
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Args;
use serde::Serialize;

use crate::{
    classifier::{
        Decider, OfflineClassifier,
        claude::TokenSource,
        offline::{self, contamination::Contamination},
    },
    domain::{Classification, Severity, TicketContext, Usage},
    exit,
    labels::{self, Example},
    startup,
    weighting::Weighting,
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

/// The result of an evaluation run.
#[derive(Debug, Serialize)]
pub struct EvalReport {
    /// The file evaluated.
    pub file: String,
    /// The model that classified.
    pub model: String,
    /// The prompt version.
    pub prompt_version: String,
    /// Rows in the file, every one counted (a row that failed to classify is a miss).
    pub total: usize,
    /// Rows whose final severity (after the weighting rules) matched the label, decided by the
    /// classifier under test: a fallback row is never correct.
    pub correct: usize,
    /// `correct / total`.
    pub accuracy: f64,
    /// The 95% Wilson interval of `accuracy`, `[low, high]`: how far a 9/10 and a 36/40 are
    /// apart honestly.
    pub accuracy_ci95: [f64; 2],
    /// `confusion[expected][predicted]`, both keyed by severity (rows the classifier under test
    /// decided; the fallbacks and the failed rows are the margins,
    /// [`EvalReport::fallbacks_by_expected`] and [`EvalReport::failed_by_expected`]).
    pub confusion: BTreeMap<Severity, BTreeMap<Severity, usize>>,
    /// Rows that got no classification at all (invalid as a ticket, or the classifier
    /// panicked); each is also in `misses` with its error, and makes `eval` exit 1.
    pub failed: usize,
    /// The confusion matrix's margin: failed rows per expected severity.
    pub failed_by_expected: BTreeMap<Severity, usize>,
    /// The rows that were wrong or failed.
    pub misses: Vec<Miss>,
    /// Rows the offline classifier decided because the model could not: misses of the model.
    pub fallbacks: usize,
    /// Fallback rows per reason kind (`timeout`, `upstream_529`, `invalid_answer`).
    pub fallback_reasons: BTreeMap<String, usize>,
    /// The confusion matrix's margin: fallback rows per expected severity.
    pub fallbacks_by_expected: BTreeMap<Severity, usize>,
    /// Rows whose severity a weighting rule raised above the classifier's, per rule
    /// (`tiers.enterprise`, `tiers.repeat`).
    pub weighting_raised: BTreeMap<String, usize>,
    /// With the offline classifier: the rule phrases only this file carries and the accuracy
    /// without the rows they alone decide.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contamination: Option<Contamination>,
    /// Time per decision (fallbacks included), in milliseconds.
    pub latency_ms: Latency,
    /// Model usage and cost; absent for the offline classifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<EvalUsage>,
    /// With `--explain`: per row, how the offline rules decided it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub explain: Vec<Explained>,
    /// Accuracy of the topic label on the rows whose `topic` is one of the configured topics.
    pub topic: LabelAccuracy,
    /// Accuracy of the sentiment label on the rows with a `sentiment` (`angry` as `negative`).
    pub sentiment: LabelAccuracy,
}

/// One label's accuracy over the rows that carry it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LabelAccuracy {
    /// Classified rows with the label (and, for the topic, one the classifier may answer).
    pub labelled: usize,
    /// Of them, the rows the classifier labelled the same.
    pub correct: usize,
    /// `correct / labelled` (0 when none).
    pub accuracy: f64,
    /// The 95% Wilson interval of `accuracy`.
    pub accuracy_ci95: [f64; 2],
    /// Rows whose topic is not a configured topic (the classifier cannot answer it): left out.
    pub not_configured: usize,
}

impl LabelAccuracy {
    fn finish(mut self) -> Self {
        #[allow(clippy::cast_precision_loss)]
        if self.labelled > 0 {
            self.accuracy = self.correct as f64 / self.labelled as f64;
        }
        let (lo, hi) = crate::stats::wilson_95(self.correct, self.labelled);
        self.accuracy_ci95 = [lo, hi];
        self
    }
}

/// `correct/total = x% (95% Wilson interval lo%–hi%)`: how every accuracy of the report reads.
fn accuracy_text(correct: usize, total: usize, share: f64, [lo, hi]: [f64; 2]) -> String {
    format!(
        "{correct}/{total} = {:.1}% (95% Wilson interval {:.1}%–{:.1}%)",
        share * 100.0,
        lo * 100.0,
        hi * 100.0
    )
}

impl std::fmt::Display for LabelAccuracy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.labelled == 0 {
            write!(f, "no labelled rows")?;
        } else {
            let share = accuracy_text(
                self.correct,
                self.labelled,
                self.accuracy,
                self.accuracy_ci95,
            );
            write!(f, "{share}")?;
        }
        if self.not_configured > 0 {
            write!(
                f,
                "; {} rows have a topic that is not configured (left out)",
                self.not_configured
            )?;
        }
        Ok(())
    }
}

/// How the offline rules decided one row (`eval --explain`).
#[derive(Debug, Serialize)]
pub struct Explained {
    /// The labelled ticket.
    pub ticket_id: String,
    /// The label.
    pub expected: Severity,
    /// What the offline rules decided (the content only).
    pub offline: Severity,
    /// The final severity, after the weighting rules.
    pub severity: Severity,
    /// The weighting rule that raised it, if one did.
    pub weighting_rule: Option<String>,
    /// Their reasoning.
    pub reasoning: String,
    /// The rules that fired.
    pub fired: Vec<offline::RuleHit>,
    /// The phrases a guard or the nearest-example vote switched off.
    pub switched_off: Vec<offline::Suppressed>,
    /// The nearest labelled examples.
    pub nearest: Vec<offline::Neighbour>,
}

/// Explains every row that is a valid ticket with the offline rules (and the weighting rules
/// after them).
fn explain_rows(
    examples: &[Example],
    offline: &OfflineClassifier,
    weighting: &Weighting,
) -> Vec<Explained> {
    examples
        .iter()
        .filter_map(|e| {
            let ctx = weighed_context(e.ticket_context().ok()?, weighting);
            let x = offline.explain(&ctx);
            let w = weighting.apply(&ctx, x.classification.verdict.severity);
            Some(Explained {
                ticket_id: e.ticket_id.clone(),
                expected: e.severity,
                offline: x.classification.verdict.severity,
                severity: w.severity,
                weighting_rule: w.rule,
                reasoning: x.classification.verdict.reasoning,
                fired: x.fired,
                switched_off: x.suppressed,
                nearest: x.nearest,
            })
        })
        .collect()
}

/// Nearest-rank percentiles of the time per decision.
#[derive(Debug, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
}

impl Latency {
    fn of(mut ms: Vec<u64>) -> Self {
        ms.sort_unstable();
        let rank = |p: f64| {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let i = ((p * ms.len() as f64).ceil() as usize).saturating_sub(1);
            ms.get(i).copied().unwrap_or(0)
        };
        Self {
            p50: rank(0.50),
            p95: rank(0.95),
        }
    }
}

/// Tokens and cost of an evaluation run against the API, from each decision's `usage`.
#[derive(Debug, Default, Serialize)]
pub struct EvalUsage {
    /// Rows the model decided (not fallbacks).
    pub answered: usize,
    /// Uncached input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Tokens read from the prompt cache.
    pub cache_read_tokens: i64,
    /// Tokens written to the prompt cache (warm-up included).
    pub cache_write_tokens: i64,
    /// Share of answered rows that read the system block from the cache.
    pub cache_hit_rate: f64,
    /// USD for the whole run, warm-up included. Calls whose answer was invalid (a refusal,
    /// `max_tokens`, broken JSON) were billed too: their fallback decision carries the call's
    /// usage, so they are counted here.
    pub cost_usd: f64,
    /// `cost_usd / total`.
    pub cost_per_ticket_usd: f64,
    /// USD of the warm-up call.
    pub warmup_cost_usd: f64,
}

impl EvalUsage {
    fn add(&mut self, u: &Usage) {
        self.input_tokens += u.input_tokens;
        self.output_tokens += u.output_tokens;
        self.cache_read_tokens += u.cache_read_tokens;
        self.cache_write_tokens += u.cache_write_tokens;
        self.cost_usd += u.cost_usd;
    }
}

/// One wrong answer, or a row that failed to classify.
#[derive(Debug, Serialize)]
pub struct Miss {
    /// The labelled ticket.
    pub ticket_id: String,
    /// The label.
    pub expected: Severity,
    /// What the classifier said; `None` when it failed.
    pub predicted: Option<Severity>,
    /// Its reasoning (empty when it failed).
    pub reasoning: String,
    /// Why the row got no classification, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the model did not decide it, when the offline classifier stood in (`predicted` is
    /// the fallback's answer; the row is a miss of the model whatever it was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

/// How one row of an evaluation ended: its classification and the time it took, or why it got
/// none.
type RowOutcome = Result<(Classification, Duration), String>;

/// A row's index in the file and how it ended.
type IndexedOutcome = (usize, RowOutcome);

/// Classifies every example with `decider` and compares the final severity (after
/// `weighting`) with the labels, one at a time.
pub async fn evaluate(
    file: &str,
    examples: &[Example],
    decider: &Decider,
    weighting: &Weighting,
) -> EvalReport {
    evaluate_with(file, examples, decider, weighting, 1, None, false).await
}

/// Like [`evaluate`], with up to `concurrency` tickets in flight, the usage of a warm-up call
/// (`warmup`) folded into the totals, and a progress line on stderr when `progress` is set.
pub async fn evaluate_with(
    file: &str,
    examples: &[Example],
    decider: &Decider,
    weighting: &Weighting,
    concurrency: usize,
    warmup: Option<Usage>,
    progress: bool,
) -> EvalReport {
    let total = examples.len();
    // Every row ends in exactly one entry here: a classification, or the reason it has none
    // (a row the domain rejects, a classifier that panicked). None is dropped, so a failure can
    // never count as correct.
    let (ok, mut results) = contexts(examples, weighting);
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut rows_of_tasks = HashMap::new();
    for (i, ctx) in ok {
        let decider = decider.clone();
        let slots = slots.clone();
        let task = tasks.spawn(async move {
            let _slot = slots.acquire_owned().await;
            let started = Instant::now();
            let c = decider.decide(&ctx).await;
            (c, started.elapsed())
        });
        rows_of_tasks.insert(task.id(), i);
    }
    while let Some(joined) = tasks.join_next_with_id().await {
        let (id, outcome) = match joined {
            Ok((id, decided)) => (id, Ok(decided)),
            Err(e) => {
                let id = e.id();
                let why = if e.is_panic() {
                    format!(
                        "classification panicked: {}",
                        crate::triage::panic_message(e.into_panic().as_ref())
                    )
                } else {
                    "classification was cancelled".to_owned()
                };
                (id, Err(why))
            }
        };
        if let Some(i) = rows_of_tasks.remove(&id) {
            results.push((i, outcome));
        }
        if progress {
            eprint!("\r  classified {}/{total}", results.len());
        }
    }
    if progress {
        eprintln!();
    }
    results.sort_by_key(|(i, _)| *i);

    report(
        file,
        examples,
        results,
        warmup,
        decider.taxonomy(),
        weighting,
    )
}

/// The tickets of `examples` as the classifier sees them (the ARR raising the tier, as in the
/// service); a row the domain rejects as a ticket is an error result in `failed`, with its
/// index.
fn contexts(
    examples: &[Example],
    weighting: &Weighting,
) -> (Vec<(usize, TicketContext)>, Vec<IndexedOutcome>) {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for (i, e) in examples.iter().enumerate() {
        // The row's ARR and repeat count too, when the file has them.
        match e.ticket_context() {
            Ok(ctx) => ok.push((i, weighed_context(ctx, weighting))),
            Err(err) => failed.push((i, Err(format!("not a valid ticket: {err}")))),
        }
    }
    (ok, failed)
}

/// `ctx` with its tier raised by its ARR, as the service builds it before classifying.
fn weighed_context(ctx: TicketContext, weighting: &Weighting) -> TicketContext {
    TicketContext {
        ticket: weighting.account(ctx.ticket),
        ..ctx
    }
}

/// Classifies every example in one Message Batch with `claude` (its prompt), the offline
/// classifier standing in for each request that failed, as the service's fallback does.
///
/// # Errors
/// When the batch cannot be created, does not end within `max_wait`, or its results cannot be
/// read.
pub async fn evaluate_batch(
    file: &str,
    examples: &[Example],
    claude: &crate::classifier::ClaudeClassifier,
    offline: &crate::classifier::OfflineClassifier,
    weighting: &Weighting,
    poll: Duration,
    max_wait: Duration,
) -> Result<(EvalReport, String), crate::classifier::ClassifierError> {
    let (ok, mut results) = contexts(examples, weighting);
    let items: Vec<TicketContext> = ok.iter().map(|(_, c)| c.clone()).collect();
    let run = claude.classify_batch(&items, poll, max_wait).await?;
    for ((i, ctx), result) in ok.into_iter().zip(run.results) {
        let c = match result {
            Ok(c) => c,
            Err(e) => {
                let mut c = crate::classifier::fallback(offline.decide(&ctx), &e.reason());
                if let crate::classifier::ClassifierError::InvalidAnswer {
                    usage: Some(usage),
                    ..
                } = e
                {
                    c.usage = *usage;
                }
                c
            }
        };
        results.push((i, Ok((c, Duration::ZERO))));
    }
    results.sort_by_key(|(i, _)| *i);
    Ok((
        report(file, examples, results, None, offline.taxonomy(), weighting),
        run.id,
    ))
}

/// The report of `results` (one per row, in row order) against the labels of `examples`, each
/// classification weighed by `weighting` first (the final severity is what a label states).
fn report(
    file: &str,
    examples: &[Example],
    results: Vec<(usize, RowOutcome)>,
    warmup: Option<Usage>,
    taxonomy: &crate::taxonomy::Taxonomy,
    weighting: &Weighting,
) -> EvalReport {
    let mut topic = LabelAccuracy::default();
    let mut sentiment = LabelAccuracy::default();
    let total = examples.len();
    let mut confusion: BTreeMap<Severity, BTreeMap<Severity, usize>> = Severity::ALL
        .iter()
        .map(|s| (*s, Severity::ALL.iter().map(|p| (*p, 0)).collect()))
        .collect();
    let mut failed_by_expected: BTreeMap<Severity, usize> =
        Severity::ALL.iter().map(|s| (*s, 0)).collect();
    let mut fallbacks_by_expected = failed_by_expected.clone();
    let mut fallback_reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut weighting_raised: BTreeMap<String, usize> = BTreeMap::new();
    let mut misses = Vec::new();
    let mut correct = 0;
    let mut failed = 0;
    let mut model = String::new();
    let mut prompt_version = String::new();
    let mut fallbacks = 0;
    let mut latencies = Vec::with_capacity(results.len());
    let mut usage = EvalUsage::default();
    let mut cache_hits = 0;
    if let Some(w) = &warmup {
        usage.add(w);
        usage.warmup_cost_usd = w.cost_usd;
    }
    for (i, outcome) in results {
        let e = &examples[i];
        let (c, elapsed) = match outcome {
            Ok(decided) => decided,
            Err(error) => {
                failed += 1;
                *failed_by_expected.entry(e.severity).or_default() += 1;
                misses.push(Miss {
                    ticket_id: e.ticket_id.clone(),
                    expected: e.severity,
                    predicted: None,
                    reasoning: String::new(),
                    error: Some(error),
                    fallback_reason: None,
                });
                continue;
            }
        };
        latencies.push(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
        if c.fallback_reason.is_some() {
            fallbacks += 1;
        } else {
            model.clone_from(&c.model);
            if c.usage.request_id.is_some() {
                usage.answered += 1;
                cache_hits += usize::from(c.usage.cache_read_tokens > 0);
            }
        }
        if model.is_empty() {
            model.clone_from(&c.model);
        }
        usage.add(&c.usage);
        prompt_version.clone_from(&c.prompt_version);
        if let Some(t) = e.topic.as_deref() {
            match taxonomy.topic(t) {
                Some(t) => {
                    topic.labelled += 1;
                    topic.correct += usize::from(c.verdict.labels.topic == t);
                }
                None => topic.not_configured += 1,
            }
        }
        if let Some(s) = e
            .sentiment
            .as_deref()
            .and_then(crate::domain::Sentiment::from_label)
        {
            sentiment.labelled += 1;
            sentiment.correct += usize::from(c.verdict.labels.sentiment == s);
        }
        // Classified, so the row is a valid ticket: its context as it was classified.
        let weighed = e
            .ticket_context()
            .map(|ctx| weighting.apply(&weighed_context(ctx, weighting), c.verdict.severity));
        let predicted = weighed.as_ref().map_or(c.verdict.severity, |w| w.severity);
        if let Some(rule) = weighed.ok().and_then(|w| w.rule) {
            *weighting_raised.entry(rule).or_default() += 1;
        }
        if let Some(reason) = &c.fallback_reason {
            let kind = reason.split(':').next().unwrap_or(reason).trim().to_owned();
            *fallback_reasons.entry(kind).or_default() += 1;
            *fallbacks_by_expected.entry(e.severity).or_default() += 1;
        } else if let Some(row) = confusion.get_mut(&e.severity) {
            *row.entry(predicted).or_default() += 1;
        }
        if predicted == e.severity && c.fallback_reason.is_none() {
            correct += 1;
        } else {
            misses.push(Miss {
                ticket_id: e.ticket_id.clone(),
                expected: e.severity,
                predicted: Some(predicted),
                reasoning: c.verdict.reasoning,
                error: None,
                fallback_reason: c.fallback_reason.clone(),
            });
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let accuracy = ratio(correct, total);
    let (low, high) = crate::stats::wilson_95(correct, total);
    let model_called = warmup.is_some() || usage.answered > 0 || usage.cost_usd > 0.0;
    let usage = model_called.then(|| {
        usage.cache_hit_rate = ratio(cache_hits, usage.answered);
        #[allow(clippy::cast_precision_loss)]
        let per_ticket = if total == 0 {
            0.0
        } else {
            usage.cost_usd / total as f64
        };
        usage.cost_per_ticket_usd = per_ticket;
        usage
    });
    EvalReport {
        file: file.to_owned(),
        model,
        prompt_version,
        total,
        correct,
        accuracy,
        accuracy_ci95: [low, high],
        confusion,
        failed,
        failed_by_expected,
        misses,
        fallbacks,
        fallback_reasons,
        fallbacks_by_expected,
        weighting_raised,
        contamination: None,
        latency_ms: Latency::of(latencies),
        usage,
        explain: Vec::new(),
        topic: topic.finish(),
        sentiment: sentiment.finish(),
    }
}

impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} with {} ({})",
            self.file, self.model, self.prompt_version
        )?;
        let share = accuracy_text(self.correct, self.total, self.accuracy, self.accuracy_ci95);
        writeln!(f, "accuracy: {share}")?;
        if self.fallbacks > 0 {
            let reasons: Vec<String> = self
                .fallback_reasons
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            writeln!(
                f,
                "fallbacks: {} of {} rows fell back to the offline classifier ({}), counted as misses of the model",
                self.fallbacks,
                self.total,
                reasons.join(", ")
            )?;
        }
        if let Some(c) = &self.contamination {
            write!(f, "{c}")?;
        }
        if !self.weighting_raised.is_empty() {
            let raised: Vec<String> = self
                .weighting_raised
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            writeln!(
                f,
                "raised by a weighting rule: {} (severities are final, after the rules)",
                raised.join(", ")
            )?;
        }
        if self.failed > 0 {
            writeln!(
                f,
                "failed: {} of {} rows got no classification (counted as misses)",
                self.failed, self.total
            )?;
        }
        writeln!(f, "topic accuracy: {}", self.topic)?;
        writeln!(f, "sentiment accuracy: {}", self.sentiment)?;
        writeln!(
            f,
            "\nexpected \\ predicted  routine   urgent  on_fire fallback   failed"
        )?;
        for (expected, row) in &self.confusion {
            write!(f, "{:<20}", expected.as_str())?;
            for s in Severity::ALL {
                write!(f, " {:>8}", row.get(s).copied().unwrap_or(0))?;
            }
            let fell_back = self.fallbacks_by_expected.get(expected).copied();
            let failed = self.failed_by_expected.get(expected).copied();
            writeln!(
                f,
                " {:>8} {:>8}",
                fell_back.unwrap_or(0),
                failed.unwrap_or(0)
            )?;
        }
        if self.misses.is_empty() {
            writeln!(f, "\nno misses")?;
        } else {
            writeln!(f, "\nmisses:")?;
            for m in &self.misses {
                match (&m.predicted, &m.error) {
                    (Some(p), _) if m.fallback_reason.is_some() => writeln!(
                        f,
                        "  {}: expected {}, FELL BACK ({}); the fallback decided {p}",
                        m.ticket_id,
                        m.expected,
                        m.fallback_reason.as_deref().unwrap_or_default()
                    )?,
                    (Some(p), _) => writeln!(
                        f,
                        "  {}: expected {}, got {p}: {}",
                        m.ticket_id, m.expected, m.reasoning
                    )?,
                    (None, error) => writeln!(
                        f,
                        "  {}: expected {}, FAILED: {}",
                        m.ticket_id,
                        m.expected,
                        error.as_deref().unwrap_or("no classification")
                    )?,
                }
            }
        }
        writeln!(
            f,
            "\nlatency: p50 {} ms, p95 {} ms",
            self.latency_ms.p50, self.latency_ms.p95
        )?;
        if let Some(u) = &self.usage {
            writeln!(
                f,
                "tokens: input {}, output {}, cache read {}, cache write {}",
                u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens
            )?;
            writeln!(
                f,
                "cache hit rate: {:.1}% of {} answers",
                u.cache_hit_rate * 100.0,
                u.answered
            )?;
            writeln!(
                f,
                "cost: ${:.4} total, ${:.5} per ticket (warm-up ${:.4} included)",
                u.cost_usd, u.cost_per_ticket_usd, u.warmup_cost_usd
            )?;
        }
        if !self.explain.is_empty() {
            writeln!(f, "\nexplain (the offline rules, per ticket):")?;
            for x in &self.explain {
                let mark = if x.severity == x.expected {
                    ""
                } else {
                    "  MISS"
                };
                let raised = x
                    .weighting_rule
                    .as_ref()
                    .map(|r| format!(", raised to {} by {r}", x.severity))
                    .unwrap_or_default();
                writeln!(
                    f,
                    "  {}: expected {}, offline {}{raised}{mark}: {}",
                    x.ticket_id, x.expected, x.offline, x.reasoning
                )?;
                let trace = offline::Trace {
                    fired: &x.fired,
                    suppressed: &x.switched_off,
                    nearest: &x.nearest,
                };
                write!(f, "{trace}")?;
            }
        }
        Ok(())
    }
}

/// Builds the classifiers `--classifier` names through the builder `serve` uses and runs the
/// evaluation; against the API it first checks the cached prefix and warms the cache with one
/// call, then fans out.
async fn run(file: &str, examples: &[Example], args: &EvalArgs) -> Result<EvalReport, ExitCode> {
    let mut settings = exit::settings()?;
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
    let classifiers = startup::build_classifiers(&settings, model_info.as_ref()).map_err(|e| {
        eprintln!("escalator eval: {e:#}");
        ExitCode::from(exit::USAGE)
    })?;
    let Some(claude) = &classifiers.claude else {
        if args.classifier == EvalClassifier::Claude {
            eprintln!("escalator eval --classifier claude: ANTHROPIC_API_KEY is not set");
            return Err(ExitCode::from(exit::USAGE));
        }
        let weighting = &settings.triage.weighting;
        let mut report = evaluate(file, examples, &classifiers.decider(), weighting).await;
        let negatives =
            labels::parse("labels/negatives.csv", labels::EMBEDDED_NEGATIVES).unwrap_or_default();
        report.contamination = Some(offline::contamination::check(
            &classifiers.offline,
            weighting,
            &negatives,
            examples,
        ));
        if args.explain {
            report.explain = explain_rows(examples, &classifiers.offline, weighting);
        }
        return Ok(report);
    };
    if args.batch {
        eprintln!(
            "sending {} tickets in one Message Batch (half price); polling every {} s",
            examples.len(),
            settings.audit.batch_poll.as_secs()
        );
        let (report, batch_id) = evaluate_batch(
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
    let mut report = evaluate_with(
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
        report.explain = explain_rows(examples, &classifiers.offline, &settings.triage.weighting);
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
            return ExitCode::from(exit::CHECK_FAILED);
        }
    };
    let rt = match exit::runtime() {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each label is scored on the rows that carry it: a topic that is not configured is left
    /// out and counted, `angry` is `negative`, a row without the columns counts for neither.
    #[tokio::test]
    async fn each_label_is_scored_on_the_rows_that_carry_it() {
        let rows = labels::parse(
            "f.csv",
            "ticket_id,subject,first_message,tier,severity,route,why_this_label,topic,sentiment\n\
             A-1,Refund,We were charged twice for the March invoice.,pro,urgent,human,Billing dispute: charged twice.,billing,neutral\n\
             A-2,Outage,Our production dashboard is down for everyone right now. Unacceptable.,pro,on_fire,engineering,Production down: everyone.,outage,angry\n\
             A-3,Charts,The dashboards page looks different today.,free,routine,bot,Docs answer: a question.,dashboards,positive\n\
             A-4,Hi,Quick note about our meeting.,free,routine,bot,Docs answer: nothing urgent.,,\n",
        )
        .unwrap();
        let offline = Arc::new(OfflineClassifier::new(&[], "classifier@test"));
        let report = evaluate(
            "f.csv",
            &rows,
            &Decider::new(None, offline),
            &Weighting::default(),
        )
        .await;
        assert_eq!(
            (
                report.topic.labelled,
                report.topic.correct,
                report.topic.not_configured
            ),
            (2, 2, 1)
        );
        // A-3 is positive in the file; the offline rules hear no tone there.
        assert_eq!(
            (report.sentiment.labelled, report.sentiment.correct),
            (3, 2)
        );
        let text = report.to_string();
        assert!(
            text.contains("topic accuracy: 2/2 = 100.0%")
                && text.contains("1 rows have a topic that is not configured (left out)"),
            "{text}"
        );
        assert!(text.contains("sentiment accuracy: 2/3 = 66.7%"), "{text}");
    }
}
