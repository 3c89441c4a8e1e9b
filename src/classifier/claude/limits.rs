//! Rate limits read from the API instead of guessed: every answer carries
//! `anthropic-ratelimit-{requests,input-tokens,output-tokens}-{limit,remaining,reset}`
//! (reference/anthropic.md, section 6), the organisation's token buckets, shared by every
//! replica. [`Limiter`] turns them into a per-replica concurrency that shrinks as the headroom
//! does, so N replicas slow down together before the API refuses them, with no configured share:
//!
//! - while every bucket has at least [`SLOW_DOWN_BELOW`] of its limit left, up to
//!   `max_concurrency` calls are in flight;
//! - below that, `ceil(max_concurrency × left / SLOW_DOWN_BELOW)` (at least 1);
//! - never more calls in flight than requests left (calls sent since the last answer are not in
//!   its `remaining` yet);
//! - an empty bucket lets nothing through until it has refilled enough for one call (buckets
//!   refill continuously: linearly from the observed `remaining` to `limit` at `reset`); a call
//!   whose deadline comes first falls back at once instead of waiting.
//!
//! Until the first answer nothing is known and `max_concurrency` applies.
//!
//! Written by hand: no crate reads these headers, and tower's concurrency limits are static
//! or latency-driven, not driven by a server's stated headroom.
//!
//! Just over 450 lines with its tests, which replay the documented header cases.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use reqwest::header::HeaderMap;
use tokio::sync::Notify;

use super::super::ClassifierError;
use crate::telemetry::metrics::metrics;

/// Headroom (fraction of the limit left) below which the concurrency shrinks.
pub const SLOW_DOWN_BELOW: f64 = 0.5;
/// How often a waiting call looks again at the refilling buckets.
const RECHECK: Duration = Duration::from_millis(100);

/// The buckets the API reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Requests per minute.
    Requests,
    /// Input tokens per minute (cache reads mostly do not count).
    InputTokens,
    /// Output tokens per minute.
    OutputTokens,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Requests, Kind::InputTokens, Kind::OutputTokens];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Requests => "requests",
            Kind::InputTokens => "input_tokens",
            Kind::OutputTokens => "output_tokens",
        }
    }

    fn header(self) -> &'static str {
        match self {
            Kind::Requests => "requests",
            Kind::InputTokens => "input-tokens",
            Kind::OutputTokens => "output-tokens",
        }
    }
}

/// One bucket as an answer stated it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// `-limit`.
    pub limit: u64,
    /// `-remaining` when the answer arrived.
    pub remaining: u64,
    /// When the answer arrived.
    pub observed: Instant,
    /// `-reset`: when the bucket is full again.
    pub reset: Instant,
}

impl Bucket {
    /// What is left at `now`, refilling linearly from `remaining` at `observed` to `limit` at
    /// `reset` (the API's buckets refill continuously).
    pub fn left(&self, now: Instant) -> f64 {
        if now >= self.reset || self.limit == 0 {
            return self.limit as f64;
        }
        let span = self
            .reset
            .saturating_duration_since(self.observed)
            .as_secs_f64();
        let gone = now.saturating_duration_since(self.observed).as_secs_f64();
        let missing = self.limit.saturating_sub(self.remaining) as f64;
        let refilled = if span > 0.0 {
            missing * gone / span
        } else {
            missing
        };
        (self.remaining as f64 + refilled).min(self.limit as f64)
    }

    /// When at least one unit is back (`now` if it already is).
    fn refilled_at(&self, now: Instant) -> Instant {
        if self.left(now) >= 1.0 {
            return now;
        }
        let missing = self.limit.saturating_sub(self.remaining) as f64;
        let span = self.reset.saturating_duration_since(self.observed);
        if missing <= 0.0 {
            return self.reset;
        }
        let need = (1.0 - self.remaining as f64) / missing;
        self.observed + span.mul_f64(need.clamp(0.0, 1.0))
    }
}

/// The buckets in one answer's headers; kinds with a missing or unreadable header are `None`
/// (Microsoft Foundry sends none).
pub fn read_headers(headers: &HeaderMap, now: Instant) -> [Option<Bucket>; 3] {
    let number = |name: String| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Kind::ALL.map(|k| {
        let prefix = format!("anthropic-ratelimit-{}", k.header());
        let limit = number(format!("{prefix}-limit"))?;
        let remaining = number(format!("{prefix}-remaining"))?;
        let reset = headers
            .get(format!("{prefix}-reset"))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| chrono::DateTime::parse_from_rfc3339(v.trim()).ok())?;
        let wait = reset
            .signed_duration_since(chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        Some(Bucket {
            limit,
            remaining: remaining.min(limit),
            observed: now,
            reset: now + wait,
        })
    })
}

/// What the buckets allow at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Allowed {
    /// This many calls in flight.
    Slots(usize),
    /// Nothing until this moment (a bucket is empty).
    Until(Instant, Kind),
}

/// The concurrency `buckets` allow under a cap of `cap` at `now` (see the module docs).
pub fn allowed(buckets: &[Option<Bucket>; 3], cap: usize, now: Instant) -> Allowed {
    let mut headroom = 1.0_f64;
    let mut requests_left = f64::INFINITY;
    let mut empty: Option<(Instant, Kind)> = None;
    for (b, kind) in buckets.iter().zip(Kind::ALL) {
        let Some(b) = b else { continue };
        if b.limit == 0 {
            continue;
        }
        let left = b.left(now);
        if kind == Kind::Requests {
            requests_left = left;
        }
        if left < 1.0 {
            let at = b.refilled_at(now);
            if empty.is_none_or(|(t, _)| at > t) {
                empty = Some((at, kind));
            }
        }
        headroom = headroom.min(left / b.limit as f64);
    }
    if let Some((at, kind)) = empty {
        return Allowed::Until(at, kind);
    }
    let scaled = if headroom >= SLOW_DOWN_BELOW {
        cap as f64
    } else {
        (cap as f64 * headroom / SLOW_DOWN_BELOW).ceil()
    };
    // Within 1..=cap after the clamp (requests_left >= 1 here), so the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = scaled.min(requests_left.floor()).clamp(1.0, cap as f64) as usize;
    Allowed::Slots(n)
}

#[derive(Debug)]
struct State {
    in_flight: usize,
    buckets: [Option<Bucket>; 3],
}

/// The adaptive concurrency limit of one classifier (one per replica).
#[derive(Debug)]
pub struct Limiter {
    cap: usize,
    state: Mutex<State>,
    changed: Notify,
}

/// A call's place in flight; dropping it frees the place.
#[derive(Debug)]
pub struct Permit<'a> {
    limiter: &'a Limiter,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.limiter.state.lock() {
            s.in_flight = s.in_flight.saturating_sub(1);
            metrics().claude_ratelimit.in_flight.sub(1);
        }
        self.limiter.changed.notify_waiters();
    }
}

impl Limiter {
    /// A limiter with `cap` (`max_concurrency`) as its upper bound and no headroom known yet.
    pub fn new(cap: usize) -> Self {
        metrics()
            .claude_ratelimit
            .concurrency
            .set(i64::try_from(cap).unwrap_or(i64::MAX));
        Self {
            cap,
            state: Mutex::new(State {
                in_flight: 0,
                buckets: [None; 3],
            }),
            changed: Notify::new(),
        }
    }

    /// Waits for a place in flight, within `deadline`.
    ///
    /// # Errors
    /// [`ClassifierError::Overloaded`] at once when a bucket is empty until after `deadline`
    /// (waiting could only end in a timeout); [`ClassifierError::Timeout`] when `deadline`
    /// passes while waiting for a place.
    pub async fn acquire(&self, deadline: Instant) -> Result<Permit<'_>, ClassifierError> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before the state is read, so a release in between is not missed.
            notified.as_mut().enable();
            let now = Instant::now();
            let wake = {
                let mut s = self
                    .state
                    .lock()
                    .map_err(|_| ClassifierError::Overloaded("rate limiter poisoned".into()))?;
                match allowed(&s.buckets, self.cap, now) {
                    Allowed::Slots(n) => {
                        set_concurrency(n);
                        if s.in_flight < n {
                            s.in_flight += 1;
                            metrics().claude_ratelimit.in_flight.add(1);
                            return Ok(Permit { limiter: self });
                        }
                        now + RECHECK
                    }
                    Allowed::Until(at, kind) => {
                        set_concurrency(0);
                        if at >= deadline {
                            return Err(ClassifierError::Overloaded(format!(
                                "rate limit: no {} headroom before the deadline",
                                kind.as_str()
                            )));
                        }
                        at.min(now + RECHECK)
                    }
                }
            };
            let _ = tokio::time::timeout_at(wake.min(deadline).into(), notified).await;
            if Instant::now() >= deadline {
                return Err(ClassifierError::Timeout);
            }
        }
    }

    /// Records the buckets an answer stated (any status: a 429 carries them too) and publishes
    /// them as gauges.
    pub fn observe(&self, headers: &HeaderMap) {
        let now = Instant::now();
        let read = read_headers(headers, now);
        if read.iter().all(Option::is_none) {
            return;
        }
        let m = &metrics().claude_ratelimit;
        let wall = chrono::Utc::now();
        for (b, kind) in read.iter().zip(Kind::ALL) {
            let Some(b) = b else { continue };
            let label = [kind.as_str()];
            m.limit
                .with_label_values(&label)
                .set(i64::try_from(b.limit).unwrap_or(i64::MAX));
            m.remaining
                .with_label_values(&label)
                .set(i64::try_from(b.remaining).unwrap_or(i64::MAX));
            let until = chrono::Duration::from_std(b.reset.saturating_duration_since(now))
                .unwrap_or_default();
            m.reset
                .with_label_values(&label)
                .set((wall + until).timestamp());
        }
        if let Ok(mut s) = self.state.lock() {
            for (slot, new) in s.buckets.iter_mut().zip(read) {
                if let Some(new) = new {
                    *slot = Some(new);
                }
            }
            if let Allowed::Slots(n) = allowed(&s.buckets, self.cap, now) {
                set_concurrency(n);
            }
        }
        // The headroom may have grown: let waiting calls look again.
        self.changed.notify_waiters();
    }

    /// Calls in flight now (for tests and logs).
    pub fn in_flight(&self) -> usize {
        self.state.lock().map_or(0, |s| s.in_flight)
    }
}

fn set_concurrency(n: usize) {
    metrics()
        .claude_ratelimit
        .concurrency
        .set(i64::try_from(n).unwrap_or(i64::MAX));
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn bucket(limit: u64, remaining: u64, now: Instant, reset_in: Duration) -> Option<Bucket> {
        Some(Bucket {
            limit,
            remaining,
            observed: now,
            reset: now + reset_in,
        })
    }

    #[test]
    fn headers_are_read_per_kind() {
        let mut h = HeaderMap::new();
        let reset = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc3339();
        for (k, v) in [
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "49"),
            ("anthropic-ratelimit-requests-reset", reset.as_str()),
            ("anthropic-ratelimit-output-tokens-limit", "8000"),
            ("anthropic-ratelimit-output-tokens-remaining", "nope"),
            ("anthropic-ratelimit-output-tokens-reset", reset.as_str()),
        ] {
            h.insert(k, HeaderValue::from_str(v).unwrap());
        }
        let now = Instant::now();
        let [req, input, output] = read_headers(&h, now);
        let req = req.unwrap();
        assert_eq!((req.limit, req.remaining), (50, 49));
        let wait = req.reset - now;
        assert!(
            wait > Duration::from_secs(28) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert!(input.is_none());
        assert!(output.is_none(), "an unreadable value is ignored");
    }

    #[test]
    fn concurrency_follows_the_headroom() {
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        // Nothing known: the cap.
        assert_eq!(allowed(&[None; 3], 8, now), Allowed::Slots(8));
        // Plenty left.
        let b = [bucket(100, 60, now, minute), None, None];
        assert_eq!(allowed(&b, 8, now), Allowed::Slots(8));
        // Never more in flight than requests left.
        let b = [bucket(5, 3, now, minute), None, None];
        assert_eq!(allowed(&b, 8, now), Allowed::Slots(3));
        // 10% left: ceil(8 × 0.1 / 0.5) = 2; the tightest bucket decides.
        let b = [
            bucket(100, 90, now, minute),
            bucket(10_000, 1_000, now, minute),
            None,
        ];
        assert_eq!(allowed(&b, 8, now), Allowed::Slots(2));
        // Almost nothing left: one at a time, never zero while a unit is left.
        let b = [bucket(1_000, 1, now, minute), None, None];
        assert_eq!(allowed(&b, 8, now), Allowed::Slots(1));
        // Empty: nothing until one request has refilled (60 s / 100 = 0.6 s).
        let b = [bucket(100, 0, now, minute), None, None];
        let Allowed::Until(at, Kind::Requests) = allowed(&b, 8, now) else {
            panic!("not empty")
        };
        assert_eq!(at - now, Duration::from_millis(600));
        // ... after which the bucket has refilled: half of it after 30 s.
        assert_eq!(
            allowed(&b, 8, now + Duration::from_secs(30)),
            Allowed::Slots(8)
        );
        assert_eq!(
            allowed(&b, 8, now + Duration::from_secs(6)),
            Allowed::Slots(2)
        );
        // Past the reset the bucket is full.
        assert_eq!(allowed(&b, 8, now + minute), Allowed::Slots(8));
    }

    #[tokio::test]
    async fn an_empty_bucket_until_after_the_deadline_fails_at_once() {
        let l = Limiter::new(4);
        let mut h = HeaderMap::new();
        let reset = (chrono::Utc::now() + chrono::Duration::seconds(60)).to_rfc3339();
        h.insert(
            "anthropic-ratelimit-requests-limit",
            HeaderValue::from_static("50"),
        );
        h.insert(
            "anthropic-ratelimit-requests-remaining",
            HeaderValue::from_static("0"),
        );
        h.insert(
            "anthropic-ratelimit-requests-reset",
            HeaderValue::from_str(&reset).unwrap(),
        );
        l.observe(&h);
        let started = Instant::now();
        let e = l
            .acquire(Instant::now() + Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(
            e.reason(),
            "overloaded: rate limit: no requests headroom before the deadline"
        );
        // A deadline after the refill (60 s / 50 = 1.2 s): the call waits for it.
        let started = Instant::now();
        let p = l
            .acquire(Instant::now() + Duration::from_secs(5))
            .await
            .unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(1_100),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(l.in_flight(), 1);
        drop(p);
        assert_eq!(l.in_flight(), 0);
    }
}
