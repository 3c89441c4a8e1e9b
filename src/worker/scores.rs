//! The score loop: due scores in the outbox are sent to Langfuse (`crate::telemetry::scores`'s
//! client) every interval, each failure backed off on its own row.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::{
    store::{ScoreQueue, StoreError},
    telemetry::{
        metrics::metrics,
        scores::{ScoreSender, backoff},
    },
};

/// Sends every score due at `now` once; returns how many were sent.
///
/// # Errors
/// When the outbox cannot be read or updated.
pub async fn send_due(
    queue: &dyn ScoreQueue,
    sender: &ScoreSender,
    now: chrono::DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut sent = 0;
    for s in queue.due_scores(now, 100).await? {
        match sender.send(&s).await {
            Ok(()) => {
                queue.score_sent(&s.id).await?;
                metrics().scores.with_label_values(&["sent"]).inc();
                sent += 1;
            }
            Err(e) => {
                let delay = backoff(s.attempts);
                tracing::warn!(score_id = %s.id, attempts = s.attempts + 1, error = %e, retry_in_secs = delay.as_secs(), "sending a score to Langfuse failed");
                metrics().scores.with_label_values(&["failed"]).inc();
                let next = Utc::now()
                    + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
                queue.score_failed(&s.id, &e, next).await?;
            }
        }
    }
    Ok(sent)
}

/// Sends due scores every `interval` until `shutdown` is cancelled.
pub async fn run_sender(
    queue: Arc<dyn ScoreQueue>,
    sender: ScoreSender,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        if let Err(e) = send_due(queue.as_ref(), &sender, Utc::now()).await {
            tracing::warn!(error = %e, "score outbox unavailable; retrying");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
