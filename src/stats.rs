//! Small statistics for reports, in one place: a proportion with its 95% Wilson interval
//! ([`Rate`]: eval's accuracies, the audit's figures, the promotion gate), nearest-rank
//! percentiles (eval's and the audit's latency, the benchmark's) and a median.
//!
//! Written by hand: the Wilson interval is three lines of arithmetic and a percentile a dozen,
//! and the statistics crates that have them (statrs and the like) bring a distribution library
//! for one constant.

use std::fmt;

use serde::Serialize;

/// The two-sided 95% normal quantile (z for the Wilson interval).
pub const Z_95: f64 = 1.959_963_984_540_054;

/// The 95% Wilson score interval of a proportion of `successes` in `n` trials, as
/// `(low, high)` within 0..=1. Unlike the normal approximation it stays inside 0..1 and is
/// honest for small `n` and for proportions near 0 or 1: 9/10 is 0.60..0.98, 36/40 is
/// 0.77..0.96, 54/54 is 0.93..1. With `n == 0` nothing is known: `(0, 1)`.
///
/// Source: E. B. Wilson, "Probable inference, the law of succession, and statistical
/// inference", JASA 22 (1927); the formula as in Agresti and Coull, "Approximate is better than
/// exact", The American Statistician 52 (1998).
pub fn wilson_95(successes: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    #[allow(clippy::cast_precision_loss)]
    let (k, n) = (successes.min(n) as f64, n as f64);
    let p = k / n;
    let z2 = Z_95 * Z_95;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = Z_95 / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((center - half).max(0.0), (center + half).min(1.0))
}

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
        let (lo, hi) = wilson_95(k, n);
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

    /// [`Rate::of`] over `usize` counts (rows of a file).
    pub fn of_rows(k: usize, n: usize) -> Self {
        let count = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        Self::of(count(k), count(n))
    }

    /// Half the width of the interval, in percentage points.
    pub fn plus_minus_points(&self) -> f64 {
        (self.hi - self.lo) * 50.0
    }

    /// `k/n = x% (95% Wilson interval lo%–hi%)`: how every accuracy of `escalator eval` reads.
    pub fn sentence(&self) -> String {
        format!(
            "{}/{} = {:.1}% (95% Wilson interval {:.1}%–{:.1}%)",
            self.k,
            self.n,
            self.share * 100.0,
            self.lo * 100.0,
            self.hi * 100.0
        )
    }
}

/// `x% [lo–hi] (k/n)`, or `-` with no trials: how the audit's tables read.
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

/// The nearest-rank percentile `p` (0..=1) of `values` (sorted here); `None` when empty.
pub fn percentile<T: Copy + Ord>(values: &mut [T], p: f64) -> Option<T> {
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

/// The median of the finite values, for a baseline of earlier weeks.
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

    fn rounded((lo, hi): (f64, f64)) -> (f64, f64) {
        (
            (lo * 1000.0).round() / 1000.0,
            (hi * 1000.0).round() / 1000.0,
        )
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-4
    }

    #[test]
    fn matches_published_values() {
        // Agresti and Coull's example values and the common textbook cases.
        assert_eq!(rounded(wilson_95(9, 10)), (0.596, 0.982));
        assert_eq!(rounded(wilson_95(36, 40)), (0.769, 0.960));
        assert_eq!(rounded(wilson_95(54, 54)), (0.934, 1.0));
        assert_eq!(rounded(wilson_95(0, 20)), (0.0, 0.161));
        assert_eq!(rounded(wilson_95(5, 10)), (0.237, 0.763));
        // 63 of 70 (90%): 80.77%..95.07%, about ±7 points.
        let r = Rate::of(63, 70);
        assert!(close(r.lo, 0.8077) && close(r.hi, 0.9507), "{r:?}");
        assert!((r.plus_minus_points() - 7.15).abs() < 0.05);
        // All correct still has a lower bound below 1; none correct an upper bound above 0.
        let (lo, hi) = wilson_95(10, 10);
        assert!(close(lo, 0.7225) && close(hi, 1.0), "{lo} {hi}");
        let (lo, hi) = wilson_95(0, 10);
        assert!(close(lo, 0.0) && close(hi, 0.2775), "{lo} {hi}");
    }

    #[test]
    fn more_rows_narrow_the_interval_and_nothing_panics() {
        let (lo10, hi10) = wilson_95(9, 10);
        let (lo40, hi40) = wilson_95(36, 40);
        assert!(hi40 - lo40 < hi10 - lo10);
        assert_eq!(wilson_95(0, 0), (0.0, 1.0));
        assert_eq!(wilson_95(7, 3), wilson_95(3, 3));
        let (lo, hi) = wilson_95(u64::MAX / 2, u64::MAX);
        assert!((0.0..=1.0).contains(&lo) && lo <= hi && hi <= 1.0);
    }

    #[test]
    fn a_rate_reads_as_a_table_cell_and_as_a_sentence() {
        assert_eq!(Rate::of(63, 70).to_string(), "90.0% [80.8–95.1] (63/70)");
        assert_eq!(Rate::of(0, 0).to_string(), "-");
        assert_eq!(
            Rate::of_rows(54, 54).sentence(),
            "54/54 = 100.0% (95% Wilson interval 93.4%–100.0%)"
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&mut v, 0.5), Some(50));
        assert_eq!(percentile(&mut v, 0.95), Some(95));
        assert_eq!(percentile(&mut v, 1.0), Some(100));
        assert_eq!(percentile(&mut [7], 0.95), Some(7));
        assert_eq!(percentile::<i64>(&mut [], 0.5), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[1.0, 2.0]), Some(1.5));
    }
}
