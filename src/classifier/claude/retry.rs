//! The one retry layer: which answers are retried, how long to wait, and a shared budget so an
//! overload storm does not multiply traffic.

use std::{sync::Mutex, time::Duration};

use reqwest::header::HeaderMap;

use crate::backoff::{Backoff, SDK_JITTER};

/// Statuses retried with backoff (timeout, conflict, rate limit, server errors, overload).
pub const RETRIED_STATUSES: &[u16] = &[408, 409, 429, 500, 502, 503, 504, 529];
/// Statuses never retried, whatever `x-should-retry` says: retrying cannot fix them.
pub const NEVER_RETRIED_STATUSES: &[u16] = &[400, 401, 402, 403, 404, 413];
/// `error.details.error_code` values of a spend cap: the API refuses until an operator acts (or
/// the month ends), so they are never retried.
pub const SPEND_LIMIT_CODES: &[&str] = &[
    "enforced_spend_limit_reached",
    "contract_spend_limit_reached",
];

/// Whether an error response is worth another attempt. Order: spend-cap codes and the
/// never-retried statuses first, then the server's `x-should-retry`, then the status list.
pub fn should_retry(
    status: u16,
    should_retry_header: Option<bool>,
    error_code: Option<&str>,
) -> bool {
    if error_code.is_some_and(|c| SPEND_LIMIT_CODES.contains(&c))
        || NEVER_RETRIED_STATUSES.contains(&status)
    {
        return false;
    }
    match should_retry_header {
        Some(hint) => hint,
        None => RETRIED_STATUSES.contains(&status),
    }
}

/// `x-should-retry: true|false`, if present and readable.
pub fn should_retry_header(headers: &HeaderMap) -> Option<bool> {
    let v = headers.get("x-should-retry")?.to_str().ok()?.trim();
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// The server's requested wait: `retry-after-ms`, else `retry-after` (seconds or an HTTP
/// date), capped at `cap`. `None` when absent, unreadable or not positive.
pub fn retry_after(headers: &HeaderMap, cap: Duration) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let from_ms = text("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms > 0.0)
        .map(|ms| Duration::from_secs_f64((ms / 1000.0).min(cap.as_secs_f64())));
    from_ms
        .or_else(|| {
            let v = text("retry-after")?;
            if let Ok(secs) = v.parse::<f64>() {
                return (secs.is_finite() && secs > 0.0)
                    .then(|| Duration::from_secs_f64(secs.min(cap.as_secs_f64())));
            }
            let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
            let wait = at.signed_duration_since(chrono::Utc::now()).to_std().ok()?;
            (!wait.is_zero()).then_some(wait)
        })
        .map(|d| d.min(cap))
}

/// The backoff of retry `retry` (0 for the first): `min(base·2^n, max)` less up to 25% jitter,
/// as the official SDKs do ([`crate::backoff`]).
pub fn backoff(retry: u32, base: Duration, max: Duration) -> Duration {
    Backoff {
        base,
        max,
        jitter: SDK_JITTER,
    }
    .delay(retry)
}

/// A retry budget shared by every call of one classifier (one per replica): each call deposits
/// `ratio` tokens, each retry withdraws one, the balance never exceeds `reserve`. When the API is
/// overloaded the reserve drains and retries fall to `ratio` per call, so a storm adds at most
/// that share of traffic instead of multiplying it by the attempt count.
#[derive(Debug)]
pub struct RetryBudget {
    balance: Mutex<f64>,
    ratio: f64,
    reserve: f64,
}

impl RetryBudget {
    /// A full budget.
    pub fn new(ratio: f64, reserve: f64) -> Self {
        Self {
            balance: Mutex::new(reserve),
            ratio,
            reserve,
        }
    }

    /// Records a new call.
    pub fn deposit(&self) {
        if let Ok(mut b) = self.balance.lock() {
            *b = (*b + self.ratio).min(self.reserve);
        }
    }

    /// Takes one retry from the budget; false when it is spent.
    pub fn withdraw(&self) -> bool {
        match self.balance.lock() {
            Ok(mut b) if *b >= 1.0 => {
                *b -= 1.0;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn status_rules() {
        for s in RETRIED_STATUSES {
            assert!(should_retry(*s, None, None), "{s}");
        }
        for s in NEVER_RETRIED_STATUSES {
            assert!(!should_retry(*s, None, None), "{s}");
            assert!(!should_retry(*s, Some(true), None), "{s}");
        }
        assert!(!should_retry(
            429,
            None,
            Some("enforced_spend_limit_reached")
        ));
        assert!(!should_retry(
            429,
            Some(true),
            Some("contract_spend_limit_reached")
        ));
        assert!(should_retry(429, None, Some("ramp_limit_exceeded")));
        assert!(!should_retry(529, Some(false), None));
        assert!(should_retry(501, Some(true), None));
        assert!(!should_retry(501, None, None));
    }

    #[test]
    fn retry_after_headers() {
        let cap = Duration::from_secs(60);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, cap), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h, cap), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h, cap), Some(Duration::from_millis(150)));
        h.insert("retry-after-ms", HeaderValue::from_static("-1"));
        assert_eq!(retry_after(&h, cap), Some(Duration::from_secs(2)));
        h.insert("retry-after", HeaderValue::from_static("3600"));
        assert_eq!(retry_after(&h, cap), Some(cap));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h, cap), None);
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        h.insert("retry-after", HeaderValue::from_str(&soon).unwrap());
        let d = retry_after(&h, cap).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert("x-should-retry", HeaderValue::from_static("False"));
        assert_eq!(should_retry_header(&h), Some(false));
    }

    #[test]
    fn backoff_is_the_sdks_less_up_to_a_quarter() {
        let base = Duration::from_millis(500);
        let max = Duration::from_secs(8);
        for n in 0..10 {
            let d = backoff(n, base, max);
            let full = (base * 2_u32.pow(n)).min(max);
            assert!(d <= full && d >= full.mul_f64(0.75), "{n}: {d:?}");
        }
    }

    #[test]
    fn budget_limits_retries_to_a_share_of_calls() {
        let b = RetryBudget::new(0.5, 2.0);
        assert!(b.withdraw());
        assert!(b.withdraw());
        assert!(!b.withdraw());
        b.deposit();
        assert!(!b.withdraw());
        b.deposit();
        assert!(b.withdraw());
        for _ in 0..100 {
            b.deposit();
        }
        assert!(b.withdraw() && b.withdraw() && !b.withdraw());
    }
}
