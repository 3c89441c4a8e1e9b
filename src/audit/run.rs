//! The two steps of a weekly audit run that `escalator audit` and the schedule in `serve`
//! share: the request from the settings, and the labels pull request for a report.

use super::{AuditRequest, Report, github::Github, pr, weeks::IsoWeek};
use crate::{
    config::Settings,
    examples::Summary,
    store::{AuditLog, Reviews},
};

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
    let labels_urgent_share = settings.load_prompt().ok().map(|(_, e)| {
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
pub async fn pull_request<S: AuditLog + Reviews + ?Sized>(
    store: &S,
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
