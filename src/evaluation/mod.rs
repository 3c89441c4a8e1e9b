//! The evaluation: a classifier over labelled examples, its final severities (after the tier
//! weighting the service applies, [`crate::weighting`], as the labels are) compared with their
//! labels. Shared by `escalator eval` (`crate::commands::eval`) and the weekly labels pull
//! request's measured effect (`crate::audit::pr`).
//!
//! Every row counts: a row that gets no classification (the domain rejects it as a ticket, or
//! the classifier panicked) is a miss with its error; a row the offline classifier decided
//! because the model could not is a miss of the model, listed with its reason. With the offline
//! classifier the report says which rule phrases only the file carries and the accuracy without
//! the rows they alone decide ([`crate::classifier::offline::contamination`]).

mod report;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    classifier::{Decider, OfflineClassifier},
    domain::{Classification, Severity, TicketContext, Usage},
    examples::Example,
    weighting::Weighting,
};

pub use report::{EvalReport, EvalUsage, Explained, LabelAccuracy, Latency, Miss};

/// Explains every row that is a valid ticket with the offline rules (and the weighting rules
/// after them).
pub fn explain_rows(
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
    let rate = crate::stats::Rate::of_rows(correct, total);
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
        accuracy: rate.share,
        accuracy_ci95: [rate.lo, rate.hi],
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::examples;

    /// Each label is scored on the rows that carry it: a topic that is not configured is left
    /// out and counted, `angry` is `negative`, a row without the columns counts for neither.
    #[tokio::test]
    async fn each_label_is_scored_on_the_rows_that_carry_it() {
        let rows = examples::parse(
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
