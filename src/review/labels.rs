//! `escalator labels add-from-reviews`: the corrected tickets become labelled examples. Rows are
//! appended to the labels file with the labels module's own writer, checked with its checker
//! (the rules of `escalator labels check`) before anything is written, and the prompt version
//! the new file implies is printed, since every later decision will carry it.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::{
    domain::{Severity, Tier},
    examples::{self, Example},
    prompt,
    store::Reviews,
};

use super::ReviewVerdict;

/// What `add-from-reviews` found and did.
#[derive(Debug, Clone, PartialEq)]
pub struct Added {
    /// The rows appended (or, in a dry run, that would be).
    pub rows: Vec<Example>,
    /// Corrected tickets already in the file (by ticket id), skipped.
    pub already_there: usize,
    /// Corrected decisions whose ticket text is not in the routing log, skipped.
    pub without_text: usize,
    /// Double reviews whose two verdicts differ and wait for an adjudication, skipped.
    pub disputed: usize,
    /// The prompt version with the new file.
    pub prompt_version: String,
}

/// Why nothing was added.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The labels file (as it is, or with the new rows) fails the checks; nothing was written.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Labels(Vec<examples::Problem>),
    /// The routing log cannot be read.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The file cannot be written, or the prompt not rendered.
    #[error(transparent)]
    Io(#[from] anyhow::Error),
}

/// Appends the tickets whose verdict since `since` (start of that day in `tz`; all when
/// `None`) is a correction to the labels file at `file`, with the corrected severity and the
/// reviewer's why; tickets already in the file are skipped. A decision's verdict is the one it
/// counts with ([`super::Passes::counted`]: the adjudication, else the first reviewer's; an
/// agent's override when no reviewer judged it), sampled or not; a double review whose two
/// verdicts differ waits for its adjudication. The combined file must pass the
/// labels checks (against the holdout beside it, when there is one) or nothing is written.
/// `template` is the prompt template for the version (the embedded one when `None`).
///
/// # Errors
/// [`AddError`]; the file is unchanged then.
pub async fn add_from_reviews<S: Reviews + ?Sized>(
    store: &S,
    tz: chrono_tz::Tz,
    file: &Path,
    since: Option<NaiveDate>,
    template: Option<&Path>,
    dry_run: bool,
    spec: &crate::prompt::PromptSpec,
) -> Result<Added, AddError> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| {
        AddError::Labels(vec![examples::Problem {
            file: name.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        }])
    })?;
    let existing = examples::parse(&name, &text).map_err(AddError::Labels)?;
    let since = since.map_or(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH, |d| {
        super::day_bounds(d, tz).0
    });
    let mut ids: std::collections::BTreeSet<String> =
        existing.iter().map(|e| e.ticket_id.clone()).collect();
    let mut added = Added {
        rows: Vec::new(),
        already_there: 0,
        without_text: 0,
        disputed: 0,
        prompt_version: String::new(),
    };
    for last in store.latest_reviews_since(since).await? {
        let history = store.reviews(&last.decision_id).await?;
        let passes = super::Passes::of(&history);
        if passes.awaiting_adjudication() {
            added.disputed += 1;
            continue;
        }
        let review = match passes.counted_pass() {
            Some(pass) => history
                .iter()
                .rev()
                .find(|r| r.origin != super::Origin::Override && r.pass == pass)
                .unwrap_or(&last),
            None => &last,
        };
        let ReviewVerdict::Corrected(severity) = review.verdict else {
            continue;
        };
        let Some(item) = store.review_item(&review.decision_id).await? else {
            continue;
        };
        let Some(ticket) = item.ticket else {
            added.without_text += 1;
            continue;
        };
        let id = item.decision.ticket_id.clone();
        if !ids.insert(id.clone()) {
            added.already_there += 1;
            continue;
        }
        added.rows.push(example_from(
            id,
            &ticket.subject,
            &ticket.body,
            ticket.tier,
            severity,
            review.why.clone().unwrap_or_else(|| {
                format!(
                    "Reviewer corrected {} to {severity} ({}).",
                    item.decision.severity,
                    review.origin.as_str()
                )
            }),
        ));
    }
    let holdout = file.with_file_name("holdout.csv");
    let other = if holdout.exists() && holdout != file {
        Some((
            holdout.display().to_string(),
            examples::load(&holdout).map_err(AddError::Labels)?,
        ))
    } else {
        None
    };
    let (new_text, examples) = appended(
        &name,
        &text,
        &added.rows,
        other.as_ref().map(|(n, o)| (n.as_str(), o.as_slice())),
    )
    .map_err(AddError::Labels)?;
    let template = match template {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("cannot read prompt template {}: {e}", p.display()))?,
        None => prompt::EMBEDDED_TEMPLATE.to_owned(),
    };
    added.prompt_version = spec
        .render(&template, &examples)
        .map_err(|e| anyhow::anyhow!("cannot render the prompt: {e}"))?
        .version()
        .to_owned();
    if !dry_run && !added.rows.is_empty() {
        write_atomically(file, &new_text)?;
    }
    Ok(added)
}

/// A labels row for a corrected ticket: the subject as one line of at most 300 characters
/// (`(no subject)` when blank), the message trimmed, the route from the severity.
pub fn example_from(
    ticket_id: String,
    subject: &str,
    body: &str,
    tier: Tier,
    severity: Severity,
    why: String,
) -> Example {
    let subject = crate::text::excerpt(subject, 300);
    Example {
        ticket_id,
        subject: if subject.is_empty() {
            "(no subject)".to_owned()
        } else {
            subject
        },
        first_message: body.trim().to_owned(),
        tier,
        severity,
        route: severity.route(),
        why,
        ..Example::default()
    }
}

/// `text` (a labels file named `name`) with `rows` appended by the labels module's writer,
/// parsed back and checked by the labels checks (`labels check`'s training rules, and no
/// overlap with `holdout` when given): the new text and its examples.
///
/// # Errors
/// The problems when the file, as it is or with the rows, fails a check.
pub fn appended(
    name: &str,
    text: &str,
    rows: &[Example],
    holdout: Option<(&str, &[Example])>,
) -> Result<(String, Vec<Example>), Vec<examples::Problem>> {
    examples::parse(name, text)?;
    let columns = examples::columns(name, text).map_err(|p| vec![p])?;
    let mut new_text = text.to_owned();
    if !new_text.ends_with('\n') {
        new_text.push('\n');
    }
    new_text.push_str(&examples::render_rows(rows, &columns));
    let examples = examples::parse(name, &new_text)?;
    // Every check of `escalator labels check` on the file as it would be written, against the
    // holdout it must stay apart from; an error refuses it.
    let report = examples::check_examples(
        name,
        &examples,
        holdout.map(|(n, h)| (n.to_owned(), h.to_vec())),
        &examples::CheckOptions::for_file(std::path::Path::new(name)),
        Vec::new(),
    );
    let problems: Vec<examples::Problem> = report
        .findings
        .into_iter()
        .filter(|f| f.level == examples::Level::Error)
        .map(|f| f.problem)
        .collect();
    if problems.is_empty() {
        Ok((new_text, examples))
    } else {
        Err(problems)
    }
}

/// Writes `text` next to `file` and renames it over, so a crash never leaves half a file.
fn write_atomically(file: &Path, text: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let tmp: PathBuf = file.with_extension("csv.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("cannot replace {}", file.display()))?;
    Ok(())
}
