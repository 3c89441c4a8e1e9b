//! The labels pull request: when the last full week's sampled accuracy is under the bar with
//! enough verdicts, the week's missed tickets are appended to the labels file with their
//! corrected labels (by `review::labels`, over the labels module's parser, checker and writer)
//! in one commit on `escalator/labels-<iso-week>`, and a pull request shows the accuracy with
//! its interval, each miss, the prompt version the change implies and its measured effect.
//!
//! One open pull request per week: a re-run moves the branch to a fresh single commit on the
//! base and rewrites the body, so replicas running the weekly job at once converge on one.
//!
//! Over 450 lines: one use case (the weekly labels pull request) from gate to branch, commit, body
//! and the measured effect of the new rows.

use std::{collections::BTreeSet, fmt::Write as _, sync::Arc};

use super::{
    AuditSettings, Miss, Outcome, Report,
    github::{Github, GithubError, Pull},
};
use crate::{
    classifier::{ClaudeClassifier, Decider, OfflineClassifier, claude::ClaudeSettings},
    examples::{self, Example, Problem},
    prompt::{self, Prompt},
    review,
    stats::Rate,
    store::{AuditLog, Reviews, StoreError},
};

/// GitHub's limit on a pull request body, in characters.
pub const MAX_BODY_CHARS: usize = 65_536;

/// Why no pull request was opened or updated.
#[derive(Debug, thiserror::Error)]
pub enum PrError {
    /// A GitHub call failed.
    #[error(transparent)]
    Github(#[from] GithubError),
    /// The labels file on the base branch, or with the rows, fails the labels checks.
    #[error("the labels would not pass `labels check`:\n{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Labels(Vec<Problem>),
    /// A file the pull request needs is not on the base branch.
    #[error("{0} is not on the base branch")]
    MissingFile(String),
    /// The routing log cannot be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The prompt cannot be rendered from the template and labels.
    #[error("cannot render the prompt: {0}")]
    Prompt(String),
}

/// What the flow did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrResult {
    /// Nothing to do, and why (the week meets the bar, has too few verdicts, or has no miss to
    /// add).
    NotNeeded(String),
    /// A pull request was opened.
    Opened(Opened),
    /// The week's open pull request was updated (branch moved, body rewritten).
    Updated(Opened),
}

/// The pull request and what went into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Its number.
    pub number: u64,
    /// Its page.
    pub url: String,
    /// `escalator/labels-<iso-week>`.
    pub branch: String,
    /// The one commit on it.
    pub commit: String,
    /// Rows appended to the labels.
    pub rows: usize,
    /// The prompt version with the new labels.
    pub prompt_version: String,
}

/// The candidate's measured effect on the week's reviewed tickets.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    /// Reviewed tickets with text in the log.
    pub tickets: usize,
    /// What the logged decisions got (the live classifier, current prompt).
    pub live: Rate,
    /// The offline classifier with the base branch's labels.
    pub offline_before: Rate,
    /// The offline classifier with the candidate labels.
    pub offline_after: Rate,
    /// The Claude path with the candidate prompt through the Message Batches API, when an API
    /// key is set: the model, accuracy, cost, batch id; or why it did not run.
    pub claude: Option<Result<ClaudeEffect, String>>,
}

/// The Claude path over the reviewed tickets with the candidate prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaudeEffect {
    /// The model.
    pub model: String,
    /// Its accuracy (a request that failed counts with its offline fallback).
    pub accuracy: Rate,
    /// USD of the batch (half the list price).
    pub cost_usd: f64,
    /// The batch.
    pub batch_id: String,
    /// Requests that failed and fell back.
    pub fallbacks: usize,
}

/// The branch of a week's pull request.
pub fn branch_name(week: super::weeks::IsoWeek) -> String {
    format!("escalator/labels-{week}")
}

/// Opens (or updates) the week's labels pull request when `report`'s gate says the week is
/// below the bar. `claude`: the Claude settings, used when an API key is set.
///
/// # Errors
/// [`PrError`]; nothing is left half done that a re-run would not fix (a branch without a pull
/// request is moved and gets one on the next run).
pub async fn open_or_update<S: AuditLog + Reviews + ?Sized>(
    gh: &Github,
    store: &S,
    report: &Report,
    audit: &AuditSettings,
    claude: &ClaudeSettings,
    spec: &crate::prompt::PromptSpec,
) -> Result<PrResult, PrError> {
    if report.gate.outcome != Outcome::Below {
        return Ok(PrResult::NotNeeded(format!(
            "no pull request: {}",
            report.gate.message()
        )));
    }
    let s = gh.settings().clone();
    gh.repository().await?;
    let base = gh.branch_head(&s.base_branch).await?;
    let base_tree = gh.commit_tree(&base).await?;
    let text = gh
        .file(&s.labels_path, &s.base_branch)
        .await?
        .ok_or_else(|| PrError::MissingFile(s.labels_path.clone()))?;
    let holdout = match gh.file(&s.holdout_path, &s.base_branch).await? {
        Some(h) => Some(examples::parse(&s.holdout_path, &h).map_err(PrError::Labels)?),
        None => None,
    };
    let template = gh
        .file(&s.prompt_path, &s.base_branch)
        .await?
        .unwrap_or_else(|| prompt::EMBEDDED_TEMPLATE.to_owned());
    let existing = examples::parse(&s.labels_path, &text).map_err(PrError::Labels)?;
    let rows = rows(&report.misses, &existing, report.gate.week);
    if rows.is_empty() {
        return Ok(PrResult::NotNeeded(format!(
            "no pull request: {} is below the bar, but none of its {} misses can be added \
             (already labelled, or no ticket text in the log)",
            report.gate.week,
            report.misses.len()
        )));
    }
    let (new_text, candidate) = review::labels::appended(
        &s.labels_path,
        &text,
        &rows,
        holdout
            .as_ref()
            .map(|h| (s.holdout_path.as_str(), h.as_slice())),
    )
    .map_err(PrError::Labels)?;
    let render = |examples: &[Example]| {
        spec.render(&template, examples)
            .map_err(|e| PrError::Prompt(e.to_string()))
    };
    let current = render(&existing)?;
    let next = render(&candidate)?;
    let effect = measure(
        store,
        report,
        (&existing, &candidate),
        &next,
        &spec.weighting,
        audit,
        claude,
    )
    .await?;
    let body = body(report, &rows, current.version(), next.version(), &effect);
    let title = format!(
        "labels: {} tickets missed in {} (accuracy {:.1}%)",
        rows.len(),
        report.gate.week,
        report.gate.accuracy.share * 100.0
    );
    let branch = branch_name(report.gate.week);
    let commit = gh
        .commit_file(
            &base,
            &base_tree,
            &s.labels_path,
            &new_text,
            &format!(
                "labels: add the {} tickets missed in {}\n\nFrom escalator audit: sampled \
                 accuracy {} with {} verdicts. Prompt version {}.",
                rows.len(),
                report.gate.week,
                report.gate.accuracy,
                report.gate.accuracy.n,
                next.version()
            ),
        )
        .await?;
    gh.set_branch(&branch, &commit).await?;
    let opened = |p: Pull| Opened {
        number: p.number,
        url: p.html_url,
        branch: branch.clone(),
        commit: commit.clone(),
        rows: rows.len(),
        prompt_version: next.version().to_owned(),
    };
    if let Some(p) = gh.open_pull(&branch, &s.base_branch).await? {
        let p = gh.update_pull(p.number, &title, &body).await?;
        return Ok(PrResult::Updated(opened(p)));
    }
    match gh.create_pull(&branch, &s.base_branch, &title, &body).await {
        Ok(p) => Ok(PrResult::Opened(opened(p))),
        // Another replica opened it between our look and our create: update that one.
        Err(GithubError::Invalid { message, .. }) if message.contains("already exists") => {
            match gh.open_pull(&branch, &s.base_branch).await? {
                Some(p) => {
                    let p = gh.update_pull(p.number, &title, &body).await?;
                    Ok(PrResult::Updated(opened(p)))
                }
                None => Err(PrError::Github(GithubError::Invalid {
                    what: "new pull request".to_owned(),
                    message,
                })),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The labels rows for the misses: one per ticket not already labelled, with the reviewer's
/// why (or a sentence saying who corrected what).
fn rows(misses: &[Miss], existing: &[Example], week: super::weeks::IsoWeek) -> Vec<Example> {
    let mut ids: BTreeSet<&str> = existing.iter().map(|e| e.ticket_id.as_str()).collect();
    let mut out = Vec::new();
    for m in misses {
        let Some(body) = m.body.as_deref().filter(|b| !b.trim().is_empty()) else {
            continue;
        };
        if !ids.insert(m.ticket_id.as_str()) {
            continue;
        }
        let why = m.why.clone().unwrap_or_else(|| {
            format!(
                "Corrected from {} to {} ({}, {week}).",
                m.model_said, m.reviewer_said, m.origin
            )
        });
        out.push(review::labels::example_from(
            m.ticket_id.clone(),
            m.subject.as_deref().unwrap_or(""),
            body,
            m.tier,
            m.reviewer_said,
            why,
        ));
    }
    out
}

/// The reviewed tickets of the week as labelled examples (the reviewer's severity as the
/// label), for measuring classifiers on them.
async fn reviewed<S: AuditLog + Reviews + ?Sized>(
    store: &S,
    report: &Report,
) -> Result<(Vec<Example>, Rate), StoreError> {
    let tz: chrono_tz::Tz = report.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let (from, to) = report.gate.week.bounds(tz);
    let mut out = Vec::new();
    let mut live = (0, 0);
    for r in store.audit_decisions(from, to).await? {
        let (Some(truth), Some(correct)) = (r.truth(), r.correct()) else {
            continue;
        };
        let Some(ticket) = store
            .review_item(&r.decision_id)
            .await?
            .and_then(|i| i.ticket)
        else {
            continue;
        };
        if ticket.body.trim().is_empty() {
            continue;
        }
        live.1 += 1;
        live.0 += u64::from(correct);
        out.push(review::labels::example_from(
            r.ticket_id.clone(),
            &ticket.subject,
            &ticket.body,
            ticket.tier,
            truth,
            "reviewed".to_owned(),
        ));
    }
    Ok((out, Rate::of(live.0, live.1)))
}

/// The offline classifier before and after, and with an API key the Claude path with the
/// candidate prompt through the Message Batches API.
async fn measure<S: AuditLog + Reviews + ?Sized>(
    store: &S,
    report: &Report,
    (before, after): (&[Example], &[Example]),
    candidate: &Prompt,
    weighting: &crate::weighting::Weighting,
    audit: &AuditSettings,
    claude: &ClaudeSettings,
) -> Result<Effect, StoreError> {
    let (tickets, live) = reviewed(store, report).await?;
    let taxonomy = candidate.taxonomy();
    let offline = |examples: &[Example], version: &str| {
        Decider::new(
            None,
            Arc::new(OfflineClassifier::new(examples, version).with_taxonomy(taxonomy.clone())),
        )
    };
    let name = format!("reviewed tickets of {}", report.gate.week);
    let offline_before = offline(before, "before");
    let ob = crate::evaluation::evaluate(&name, &tickets, &offline_before, weighting).await;
    let offline_after = offline(after, candidate.version());
    let oa = crate::evaluation::evaluate(&name, &tickets, &offline_after, weighting).await;
    let claude_effect = if claude.api_key.is_some() {
        Some(match ClaudeClassifier::new(claude, candidate.clone()) {
            Err(e) => Err(e.to_string()),
            Ok(c) => {
                let fallback = OfflineClassifier::new(after, candidate.version())
                    .with_taxonomy(taxonomy.clone());
                match crate::evaluation::evaluate_batch(
                    &name,
                    &tickets,
                    &c,
                    &fallback,
                    weighting,
                    audit.batch_poll,
                    audit.batch_max_wait,
                )
                .await
                {
                    Ok((r, batch_id)) => Ok(ClaudeEffect {
                        model: claude.model.clone(),
                        accuracy: r.rate(),
                        cost_usd: r.usage.as_ref().map_or(0.0, |u| u.cost_usd),
                        batch_id,
                        fallbacks: r.fallbacks,
                    }),
                    Err(e) => Err(e.reason()),
                }
            }
        })
    } else {
        None
    };
    Ok(Effect {
        tickets: tickets.len(),
        live,
        offline_before: ob.rate(),
        offline_after: oa.rate(),
        claude: claude_effect,
    })
}

/// Text for a Markdown table cell: one line, no pipes, no HTML.
fn cell(s: &str) -> String {
    html_escape::encode_text(&crate::text::excerpt(s, 300)).replace('|', "\\|")
}

fn pct(r: &Rate) -> String {
    if r.n == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}% ({}/{})", r.share * 100.0, r.k, r.n)
    }
}

/// The pull request body (Markdown, at most [`MAX_BODY_CHARS`]).
pub fn body(
    report: &Report,
    rows: &[Example],
    current_version: &str,
    next_version: &str,
    effect: &Effect,
) -> String {
    let g = &report.gate;
    let a = &g.accuracy;
    let mut out = String::new();
    let _ = writeln!(out, "## Labels from the audit of {}\n", g.week);
    let _ = writeln!(
        out,
        "Sampled-review accuracy in {}: {}; the bar is {:.0}%.\n",
        g.week,
        a.headline(),
        g.min_accuracy * 100.0
    );
    let added: BTreeSet<&str> = rows.iter().map(|r| r.ticket_id.as_str()).collect();
    let _ = writeln!(
        out,
        "### Missed tickets ({} added to the labels)\n",
        added.len()
    );
    let _ = writeln!(
        out,
        "| ticket | excerpt | model said | reviewer said | why |\n|---|---|---|---|---|"
    );
    let mut table = String::new();
    let mut shown = 0;
    for m in &report.misses {
        let line = format!(
            "| {} `{}`{} | {} | {} | {} | {} |\n",
            m.source,
            cell(&m.ticket_id),
            if added.contains(m.ticket_id.as_str()) {
                ""
            } else {
                " (not added)"
            },
            cell(&m.excerpt),
            m.model_said,
            m.reviewer_said,
            cell(m.why.as_deref().unwrap_or(&m.origin)),
        );
        // Leave room for the rest of the body under GitHub's limit.
        if out.len() + table.len() + line.len() > MAX_BODY_CHARS - 4_000 {
            break;
        }
        table.push_str(&line);
        shown += 1;
    }
    out.push_str(&table);
    if shown < report.misses.len() {
        let _ = writeln!(
            out,
            "\n…and {} more (see `escalator audit --week {}`).",
            report.misses.len() - shown,
            g.week
        );
    }
    let _ = writeln!(
        out,
        "\n### Prompt version\n\nCurrent: `{current_version}` → with these labels: `{next_version}` \
         (every decision after the merge carries it).\n"
    );
    let _ = writeln!(
        out,
        "### Measured effect on the week's {} sampled, reviewed tickets\n\nCorrect of those \
         tickets, unweighted: the same tickets for each classifier, so the columns compare; the \
         sample over-weights costly strata, so these are not estimates of the week's accuracy.\n",
        effect.tickets
    );
    let _ = writeln!(
        out,
        "| classifier | before | after |\n|---|---|---|\n| live decisions (current prompt) | {} | |\n\
         | offline (rules + nearest labelled example) | {} | {} |",
        pct(&effect.live),
        pct(&effect.offline_before),
        pct(&effect.offline_after)
    );
    match &effect.claude {
        Some(Ok(c)) => {
            let _ = writeln!(
                out,
                "| {} with the candidate prompt (Message Batches `{}`) | {} | {} |\n\n\
                 The batch cost ${:.4} (half the list price); {} requests fell back to the \
                 offline classifier.",
                c.model,
                cell(&c.batch_id),
                pct(&effect.live),
                pct(&c.accuracy),
                c.cost_usd,
                c.fallbacks
            );
        }
        Some(Err(why)) => {
            let _ = writeln!(
                out,
                "\nThe Claude path with the candidate prompt did not run: {}.",
                cell(why)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "\nNo ANTHROPIC_API_KEY: the Claude path with the candidate prompt was not measured."
            );
        }
    }
    let _ = writeln!(
        out,
        "\nThe reviewed tickets include the ones this change adds, so \"after\" is an upper \
         bound; `escalator eval` on the holdout is the check that does not see them.\n\n\
         Opened by `escalator audit --open-pr`; a re-run this week updates this pull request."
    );
    crate::text::truncate_chars(&out, MAX_BODY_CHARS).to_owned()
}
