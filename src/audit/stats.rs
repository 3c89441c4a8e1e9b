//! The statistics of the audit: proportions with their 95% Wilson score interval (computed by
//! [`crate::stats`]), and nearest-rank percentiles, written here (a dozen lines) rather than
//! taken from a crate: the statistics crates of the field (statrs) give distributions.

use std::fmt;

use serde::Serialize;

/// `k` of `n` with its share and 95% Wilson score interval. Wilson rather than the normal
/// approximation: with 70 verdicts and accuracy near 90% the normal interval runs past 100%,
/// and with a handful of verdicts it collapses to nothing; Wilson stays inside 0..1 and honest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    /// Successes (e.g. correct verdicts).
    pub k: u64,
    /// Trials (e.g. verdicts).
    pub n: u64,
    /// `k / n` (0 when `n` is 0).
    pub share: f64,
    /// Lower end of the 95% interval.
    pub lo: f64,
    /// Upper end of the 95% interval.
    pub hi: f64,
}

impl Rate {
    /// `k` of `n`; `k` is capped at `n`.
    pub fn of(k: u64, n: u64) -> Self {
        let k = k.min(n);
        let (lo, hi) = wilson(k, n);
        #[allow(clippy::cast_precision_loss)]
        let share = if n == 0 { 0.0 } else { k as f64 / n as f64 };
        Self {
            k,
            n,
            share,
            lo,
            hi,
        }
    }

    /// Half the width of the interval, in percentage points.
    pub fn plus_minus_points(&self) -> f64 {
        (self.hi - self.lo) * 50.0
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.n == 0 {
            return f.write_str("-");
        }
        write!(
            f,
            "{:.1}% [{:.1}–{:.1}] ({}/{})",
            self.share * 100.0,
            self.lo * 100.0,
            self.hi * 100.0,
            self.k,
            self.n
        )
    }
}

/// The 95% Wilson score interval of `k` successes in `n` trials; `(0, 1)` when `n` is 0
/// ([`crate::stats::wilson_95`], the one implementation, over the audit's `u64` counts).
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    let count = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    crate::stats::wilson_95(count(k), count(n))
}

/// The nearest-rank percentile `p` (0..1) of `values` (sorted here); `None` when empty.
pub fn percentile(values: &mut [i64], p: f64) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values.get(rank - 1).copied()
}

/// The median of the present values, for a baseline of earlier weeks.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-4
    }

    #[test]
    fn wilson_matches_the_textbook_values() {
        // 63 of 70 (90%): 80.77%..95.07%, about ±7 points, as the issue says.
        let r = Rate::of(63, 70);
        assert!(close(r.lo, 0.8077) && close(r.hi, 0.9507), "{r:?}");
        assert!((r.plus_minus_points() - 7.15).abs() < 0.05);
        // All correct still has a lower bound below 1; none correct an upper bound above 0.
        let (lo, hi) = wilson(10, 10);
        assert!(close(lo, 0.7225) && close(hi, 1.0), "{lo} {hi}");
        let (lo, hi) = wilson(0, 10);
        assert!(close(lo, 0.0) && close(hi, 0.2775), "{lo} {hi}");
        assert_eq!(wilson(0, 0), (0.0, 1.0));
        assert_eq!(Rate::of(63, 70).to_string(), "90.0% [80.8–95.1] (63/70)");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&mut v, 0.5), Some(50));
        assert_eq!(percentile(&mut v, 0.95), Some(95));
        assert_eq!(percentile(&mut [7], 0.95), Some(7));
        assert_eq!(percentile(&mut [], 0.5), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[1.0, 2.0]), Some(1.5));
    }
}
