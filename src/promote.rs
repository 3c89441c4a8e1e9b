//! `escalator promote CATEGORY`: a shadow category goes live once it has earned it.
//!
//! The gate: at least [`MIN_ACCURACY_PERCENT`]% of the reviewed verdicts on the category right
//! (the classifier said it applies or not, and the reviewer agreed), over at least
//! `[labels] promote_min_reviewed` reviewed tickets (whole routing log, sampled decisions only,
//! the verdict each counts with and weighted by the sample design, as the audit counts them).
//! Until then it refuses with the figures (exit 1).
//! When it passes it sets `mode = "live"` in the category's table of the `ESCALATOR_CONFIG`
//! file, leaving every other byte of the file as it was (`toml_edit`), and prints the prompt
//! version the service will classify with from then on: a live topic joins the topic enum, a
//! live severity clause joins the definitions. For a severity clause the labels file
//! (`[prompt] labels_file`) also gets, as examples, the reviewed tickets the reviewers said the
//! category fits and that are not in it yet, labelled with at least the clause's severity: the
//! combined file must pass the labels checks, or nothing is written.

use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use crate::{
    audit::labels::{ShadowFigures, shadow},
    config::Settings,
    domain::Severity,
    env::ProcessEnv,
    examples::Example,
    exit,
    store::{AuditLog, Reviews, StoreError},
    taxonomy::{Category, Kind, Mode},
};

/// The accuracy a category needs, in percent.
pub const MIN_ACCURACY_PERCENT: u64 = 90;

/// The arguments of `escalator promote`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The category, as named in `[labels.categories.<name>]`.
    category: String,
}

/// What the gate found.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// The category's figures over the reviewed decisions.
    pub figures: ShadowFigures,
    /// Reviewed tickets needed.
    pub min_reviewed: u64,
    /// Whether it may go live.
    pub passed: bool,
}

impl Gate {
    /// Judges `figures` against [`MIN_ACCURACY_PERCENT`] and `min_reviewed` (unweighted in
    /// whole numbers, so 27 of 30 is exactly 90%; a weighted share to within rounding).
    pub fn judge(figures: ShadowFigures, min_reviewed: u64) -> Self {
        let a = &figures.accuracy;
        #[allow(clippy::cast_precision_loss)]
        let bar = MIN_ACCURACY_PERCENT as f64 / 100.0;
        let right = match a.effective_n {
            None => a.k * 100 >= a.n * MIN_ACCURACY_PERCENT,
            Some(_) => a.share + 1e-9 >= bar,
        };
        let passed = a.n >= min_reviewed && right;
        Self {
            figures,
            min_reviewed,
            passed,
        }
    }

    /// The figures and the verdict, as printed.
    pub fn message(&self) -> String {
        let f = &self.figures;
        let a = &f.accuracy;
        let mut s = format!(
            "{}: {} of {} sampled verdicts right ({:.1}%{}; 95% interval {:.1}–{:.1}%), precision {}, recall {} (tp {}, fp {}, fn {}, tn {})\n",
            f.category,
            a.k,
            a.n,
            a.share * 100.0,
            a.effective_n
                .map(|e| format!(" weighted, effective sample size {e:.1}"))
                .unwrap_or_default(),
            a.lo * 100.0,
            a.hi * 100.0,
            f.precision,
            f.recall,
            f.true_positive,
            f.false_positive,
            f.false_negative,
            f.true_negative
        );
        if a.n < self.min_reviewed {
            s.push_str(&format!(
                "not promoted: {} reviewed tickets, at least {} are needed ([labels] promote_min_reviewed)",
                a.n, self.min_reviewed
            ));
        } else if !self.passed {
            s.push_str(&format!(
                "not promoted: accuracy is below {MIN_ACCURACY_PERCENT}%"
            ));
        } else {
            s.push_str(&format!(
                "passes the gate: at least {MIN_ACCURACY_PERCENT}% over at least {} reviewed tickets",
                self.min_reviewed
            ));
        }
        s
    }
}

/// The gate for `category` over the whole routing log of `store`.
///
/// # Errors
/// When the store cannot be read.
pub async fn gate<S: AuditLog + ?Sized>(
    store: &S,
    category: &str,
    min_reviewed: u64,
    tz: chrono_tz::Tz,
) -> Result<Gate, StoreError> {
    let rows = crate::review::judged(
        store,
        chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        chrono::Utc::now(),
        tz,
    )
    .await?;
    let rows: Vec<_> = rows.iter().collect();
    Ok(Gate::judge(shadow(&rows, category), min_reviewed))
}

/// The labels rows a live severity clause `category` brings: every ticket whose review (the one
/// it counts with, sampled or not: a label is a label) says the category fits, not already in `existing` (by ticket id) and with its text in
/// the log, labelled with the reviewed severity raised to at least `severity`, and a why naming
/// the clause.
///
/// # Errors
/// When the store cannot be read.
pub async fn clause_examples<S: AuditLog + Reviews + ?Sized>(
    store: &S,
    category: &Category,
    severity: Severity,
    existing: &[Example],
) -> Result<Vec<Example>, StoreError> {
    let rows = store
        .audit_decisions(
            chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
            chrono::Utc::now(),
        )
        .await?;
    let mut ids: std::collections::BTreeSet<String> =
        existing.iter().map(|e| e.ticket_id.clone()).collect();
    let mut out = Vec::new();
    for r in rows {
        if r.review_labels.shadow.get(&category.name) != Some(&true) {
            continue;
        }
        let Some(item) = store.review_item(&r.decision_id).await? else {
            continue;
        };
        let Some(ticket) = item.ticket else {
            continue;
        };
        if !ids.insert(r.ticket_id.clone()) {
            continue;
        }
        let reviewed = r
            .review
            .or(r.unsampled)
            .map_or(r.severity, |v| v.right_severity_of(r.severity));
        out.push(crate::review::labels::example_from(
            r.ticket_id.clone(),
            &ticket.subject,
            &ticket.body,
            ticket.tier,
            reviewed.max(severity),
            format!("{}: {}", category.name, category.definition.trim()),
        ));
    }
    Ok(out)
}

/// `text` (a config file) with `mode = "live"` for category `name`, everything else as it was.
///
/// # Errors
/// When the text is not TOML or has no `[labels.categories.<name>]` table.
pub fn rewrite_config(text: &str, name: &str) -> Result<String, String> {
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("not TOML: {e}"))?;
    let table = doc
        .get_mut("labels")
        .and_then(|l| l.get_mut("categories"))
        .and_then(|c| c.get_mut(name))
        .and_then(toml_edit::Item::as_table_like_mut)
        .ok_or_else(|| format!("it has no [labels.categories.{name}] table"))?;
    match table.get_mut("mode") {
        Some(item) => {
            // Keep the key's own decoration (comments, spacing) and only replace the value.
            let decor = item.as_value().map(|v| v.decor().clone());
            *item = toml_edit::value("live");
            if let (Some(decor), Some(v)) = (decor, item.as_value_mut()) {
                *v.decor_mut() = decor;
            }
        }
        None => {
            table.insert("mode", toml_edit::value("live"));
        }
    }
    Ok(doc.to_string())
}

/// Runs `escalator promote`.
pub fn main(args: PromoteArgs) -> ExitCode {
    exit::code(run(&args))
}

fn run(args: &PromoteArgs) -> Result<ExitCode, ExitCode> {
    let usage = |msg: String| {
        eprintln!("escalator promote: {msg}");
        ExitCode::from(exit::USAGE)
    };
    let settings = exit::settings("escalator")?;
    let name = args.category.trim();
    let Some(category) = settings.labels.taxonomy.category(name).cloned() else {
        let known: Vec<&str> = settings
            .labels
            .taxonomy
            .categories()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        return Err(usage(format!(
            "no category {name:?} in [labels.categories] (declared: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )));
    };
    if category.mode == Mode::Live {
        println!("{name} is already live; nothing to do.");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(path) = std::env::var_os("ESCALATOR_CONFIG").map(PathBuf::from) else {
        return Err(usage(
            "ESCALATOR_CONFIG is not set: promote rewrites the config file that declares the category"
                .to_owned(),
        ));
    };
    let labels_file = match category.kind {
        Kind::Severity(_) => settings.labels_file.clone(),
        Kind::Topic => None,
    };
    let existing = match &labels_file {
        Some(f) => crate::examples::load(f).map_err(|problems| {
            usage(format!(
                "the labels file is invalid:\n{}",
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            ))
        })?,
        None => Vec::new(),
    };
    let rt = exit::runtime("escalator")?;
    let (gate, rows) = rt
        .block_on(async {
            let store = crate::store::connect(&settings.store).await?;
            let g = gate(
                store.as_ref(),
                name,
                settings.labels.promote_min_reviewed,
                settings.review.time_zone,
            )
            .await;
            let rows = match (category.kind, &labels_file) {
                (Kind::Severity(s), Some(_)) => {
                    clause_examples(store.as_ref(), &category, s, &existing).await
                }
                _ => Ok(Vec::new()),
            };
            store.close().await;
            Ok::<_, anyhow::Error>((g?, rows?))
        })
        .map_err(|e| {
            eprintln!("escalator promote: cannot read the routing log: {e:#}");
            ExitCode::from(exit::SOFTWARE)
        })?;
    println!("{}", gate.message());
    if !gate.passed {
        return Ok(ExitCode::from(exit::CHECK_FAILED));
    }
    if let Some(file) = &labels_file {
        add_examples(file, &rows).map_err(|e| {
            eprintln!("escalator promote: {e}");
            ExitCode::from(exit::SOFTWARE)
        })?;
    } else if matches!(category.kind, Kind::Severity(_)) {
        println!(
            "the prompt's examples are the embedded labels ([prompt] labels_file is unset): no examples added for {name}"
        );
    }
    promote(&settings, &category, &path).map_err(|e| {
        eprintln!("escalator promote: {e}");
        ExitCode::from(exit::SOFTWARE)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Appends `rows` to the labels file `file` (checked like `labels add-from-reviews`, against
/// the holdout beside it), and says what it did.
fn add_examples(file: &std::path::Path, rows: &[Example]) -> Result<(), String> {
    let name = file.display().to_string();
    if rows.is_empty() {
        println!("{name}: no reviewed ticket to add as an example");
        return Ok(());
    }
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {name}: {e}"))?;
    let holdout_path = file.with_file_name("holdout.csv");
    let holdout = if holdout_path.exists() && holdout_path != file {
        Some((
            holdout_path.display().to_string(),
            crate::examples::load(&holdout_path).map_err(|p| {
                p.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            })?,
        ))
    } else {
        None
    };
    let (next, _) = crate::review::labels::appended(
        &name,
        &text,
        rows,
        holdout.as_ref().map(|(n, h)| (n.as_str(), h.as_slice())),
    )
    .map_err(|p| {
        format!(
            "the labels file with the new examples fails its checks (nothing written):\n{}",
            p.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let tmp = file.with_extension("csv.promote");
    std::fs::write(&tmp, next).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, file).map_err(|e| format!("cannot replace {name}: {e}"))?;
    println!("{name}: {} examples added", rows.len());
    Ok(())
}

/// Rewrites the config file at `path` so `category` is live, checks the result loads, and
/// prints the new prompt version.
fn promote(settings: &Settings, category: &Category, path: &std::path::Path) -> Result<(), String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let next = rewrite_config(&text, &category.name).map_err(|e| format!("{shown}: {e}"))?;
    let before = settings
        .load_prompt()
        .map(|(p, _)| p.version().to_owned())
        .map_err(|e| format!("{e:#}"))?;
    // Written next to the file and renamed over it, so a crash leaves the old or the new file.
    let tmp = path.with_extension("toml.promote");
    std::fs::write(&tmp, &next).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot replace {shown}: {e}"))?;
    let reloaded = Settings::load(&ProcessEnv).map_err(|e| format!("the rewritten file: {e}"))?;
    let (prompt, _) = reloaded
        .load_prompt()
        .map_err(|e| format!("the new prompt: {e:#}"))?;
    let what = match category.kind {
        Kind::Topic => "a topic".to_owned(),
        Kind::Severity(s) => format!("a clause for {s}"),
    };
    println!(
        "{} is live ({what}) in {shown}.\nprompt version: {before} -> {}\nRestart or roll out the service to classify with it.",
        category.name,
        prompt.version()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Rate;

    fn figures(k: u64, n: u64) -> ShadowFigures {
        ShadowFigures {
            category: "churn_risk".into(),
            true_positive: k,
            false_positive: n - k,
            false_negative: 0,
            true_negative: 0,
            accuracy: Rate::of(k, n),
            precision: Rate::of(k, n),
            recall: Rate::of(k, k),
        }
    }

    #[test]
    fn the_gate_is_ninety_percent_over_the_minimum() {
        assert!(!Gate::judge(figures(89, 100), 30).passed);
        assert!(Gate::judge(figures(90, 100), 30).passed);
        assert!(Gate::judge(figures(27, 30), 30).passed);
        let few = Gate::judge(figures(29, 29), 30);
        assert!(!few.passed);
        assert!(
            few.message()
                .contains("29 reviewed tickets, at least 30 are needed")
        );
        assert!(
            Gate::judge(figures(89, 100), 30)
                .message()
                .contains("not promoted: accuracy is below 90%")
        );
    }

    #[test]
    fn the_rewrite_changes_the_mode_and_nothing_else() {
        let text = "# escalator\nhttp_addr = \"0.0.0.0:8080\"\n\n[labels]\ntopics = [\"billing\", \"other\"] # ours\n\n[labels.categories.churn_risk]\nkind = \"topic\"\nmode = \"shadow\"  # on trial\ndefinition = \"May leave.\"\n\n[labels.categories.vip]\nkind = \"topic\"\nmode = \"shadow\"\ndefinition = \"A VIP.\"\n";
        let out = rewrite_config(text, "churn_risk").unwrap();
        assert_eq!(
            out,
            text.replacen(
                "mode = \"shadow\"  # on trial",
                "mode = \"live\"  # on trial",
                1
            )
        );
        assert!(
            rewrite_config(text, "nope")
                .unwrap_err()
                .contains("[labels.categories.nope]")
        );
        let inline =
            "labels.categories.x = { kind = \"topic\", mode = \"shadow\", definition = \"d\" }\n";
        assert!(
            rewrite_config(inline, "x")
                .unwrap()
                .contains("mode = \"live\"")
        );
    }
}
