//! The optional weekly run inside `serve` (`[audit] schedule_weekday` and `schedule_hour`, in
//! the review time zone; off by default): audits the last full week and, when it is below the
//! bar with enough verdicts, opens or updates the labels pull request. Every replica may run
//! it; the flow converges on one pull request per week.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Datelike as _, NaiveTime, TimeZone as _, Utc, Weekday};
use tokio_util::sync::CancellationToken;

use crate::{
    config::Settings,
    store::{AuditLog, Reviews},
};

/// The first `weekday` at `hour:00` in `tz` strictly after `now`.
pub fn next_run(
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
    weekday: Weekday,
    hour: u32,
) -> DateTime<Utc> {
    let local = now.with_timezone(&tz).date_naive();
    let time = NaiveTime::from_hms_opt(hour.min(23), 0, 0).unwrap_or(NaiveTime::MIN);
    for ahead in 0..15 {
        let day = local + chrono::Duration::days(ahead);
        if day.weekday() != weekday {
            continue;
        }
        // A local time that falls in a DST gap runs an hour later.
        let at = tz
            .from_local_datetime(&day.and_time(time))
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&(day.and_time(time) + chrono::Duration::hours(1)))
                    .earliest()
            });
        if let Some(at) = at.map(|t| t.with_timezone(&Utc)) {
            if at > now {
                return at;
            }
        }
    }
    now + chrono::Duration::days(7)
}

/// One weekly run: the audit of the last full week and, below the bar, the pull request.
/// Logs what it did; failures are logged and wait for the next week (or a manual run).
pub async fn run_once<S: AuditLog + Reviews + ?Sized>(
    store: &S,
    settings: &Settings,
    now: DateTime<Utc>,
) {
    let req = match super::run::request(settings, now, None, None, None, None) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "weekly audit: bad settings");
            return;
        }
    };
    let report = match super::build(store, &req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "weekly audit: cannot read the routing log");
            return;
        }
    };
    tracing::info!(
        week = %report.gate.week,
        outcome = ?report.gate.outcome,
        firing = ?report.symptoms.iter().filter(|s| s.firing).map(|s| s.id).collect::<Vec<_>>(),
        "weekly audit: {}",
        report.gate.message()
    );
    if settings.audit.github.is_none() {
        if report.gate.outcome == super::Outcome::Below {
            tracing::warn!(
                "weekly audit: below the bar, but GITHUB_TOKEN / GITHUB_REPOSITORY are unset: no pull request"
            );
        }
        return;
    }
    match super::run::pull_request(store, settings, &report).await {
        Ok(line) => tracing::info!("weekly audit: {line}"),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "weekly audit: the pull request failed")
        }
    }
}

/// Runs [`run_once`] at each scheduled time until `stop`.
pub async fn run<S: AuditLog + Reviews + ?Sized>(
    store: Arc<S>,
    settings: Settings,
    stop: CancellationToken,
) {
    let Some((weekday, hour)) = settings.audit.schedule else {
        return;
    };
    let tz = settings.review.time_zone;
    loop {
        let now = Utc::now();
        let at = next_run(now, tz, weekday, hour);
        tracing::info!(next = %at, "weekly audit scheduled");
        let wait = (at - now).to_std().unwrap_or(Duration::from_secs(60));
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        run_once(store.as_ref(), &settings, Utc::now()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_run_is_the_next_weekday_at_the_hour() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap(); // a Tuesday
        let at = next_run(now, chrono_tz::UTC, Weekday::Mon, 7);
        assert_eq!(at.to_rfc3339(), "2026-12-07T07:00:00+00:00");
        let at = next_run(now, chrono_tz::UTC, Weekday::Tue, 13);
        assert_eq!(at.to_rfc3339(), "2026-12-01T13:00:00+00:00");
        let at = next_run(now, chrono_tz::UTC, Weekday::Tue, 12);
        assert_eq!(at.to_rfc3339(), "2026-12-08T12:00:00+00:00");
        let at = next_run(now, chrono_tz::Europe::Berlin, Weekday::Mon, 7);
        assert_eq!(at.to_rfc3339(), "2026-12-07T06:00:00+00:00");
    }
}
