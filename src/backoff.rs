//! The one backoff of every retry loop: the action outbox and inbox (`worker`), the Claude
//! retry layer (`classifier::claude::retry`) and the Langfuse score sender
//! (`telemetry::scores`). A leaf: it imports nothing of ours.
//!
//! The shape, for retry `n` (0 for the first retry):
//!
//! ```text
//! delay(n) = min(base · 2ⁿ, max) · (1 − u),  u uniform in [0, jitter]
//! ```
//!
//! so a delay never exceeds its exponential ceiling and is at most `jitter` shorter: the
//! official Anthropic SDKs subtract up to 25% this way ("less up to 25% jitter"); the outboxes
//! subtract up to half, so many items failing together (a tool's outage) spread their retries
//! over half the interval. Each caller keeps its own base, cap and jitter share.

use std::time::Duration;

/// The jitter share of the Claude retry layer: the official SDKs take up to 25% off.
pub const SDK_JITTER: f64 = 0.25;
/// The jitter share of the outboxes (actions, deliveries, scores): up to half, so items that
/// failed together retry spread over half the interval.
pub const OUTBOX_JITTER: f64 = 0.5;

/// An exponential backoff with subtractive jitter (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The delay before the first retry, at most.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
    /// The largest share of the delay taken off at random, in `0..=1`.
    pub jitter: f64,
}

impl Backoff {
    /// The exponential ceiling of retry `retry` (0 for the first): `min(base · 2ⁿ, max)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << retry.min(30))
            .min(self.max)
    }

    /// The delay before retry `retry` (0 for the first): the ceiling less a random share of at
    /// most `jitter`.
    pub fn delay(&self, retry: u32) -> Duration {
        let share = self.jitter.clamp(0.0, 1.0);
        let cut = if share > 0.0 {
            rand::random_range(0.0..=share)
        } else {
            0.0
        };
        self.ceiling(retry).mul_f64(1.0 - cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_and_is_capped() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(1_000),
            jitter: 0.5,
        };
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(2), Duration::from_millis(400));
        assert_eq!(b.ceiling(40), Duration::from_millis(1_000));
    }

    #[test]
    fn jitter_only_shortens_and_by_at_most_its_share() {
        for jitter in [0.0, 0.25, 0.5] {
            let b = Backoff {
                base: Duration::from_millis(500),
                max: Duration::from_secs(8),
                jitter,
            };
            for n in 0..10 {
                let full = b.ceiling(n);
                let seen: Vec<Duration> = (0..50).map(|_| b.delay(n)).collect();
                assert!(
                    seen.iter()
                        .all(|d| *d <= full && *d >= full.mul_f64(1.0 - jitter)),
                    "{jitter} {n}: {seen:?}"
                );
                if jitter > 0.0 {
                    assert!(seen.iter().any(|d| *d != seen[0]), "jitter never varies");
                }
            }
        }
    }
}
