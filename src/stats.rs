//! Small statistics for reports: how sure an accuracy figure is.
//!
//! Written by hand: the Wilson interval is three lines of arithmetic, and the statistics crates
//! that have it (statrs and the like) bring a distribution library for one constant.

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
pub fn wilson_95(successes: usize, n: usize) -> (f64, f64) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rounded((lo, hi): (f64, f64)) -> (f64, f64) {
        (
            (lo * 1000.0).round() / 1000.0,
            (hi * 1000.0).round() / 1000.0,
        )
    }

    #[test]
    fn matches_published_values() {
        // Agresti and Coull's example values and the common textbook cases.
        assert_eq!(rounded(wilson_95(9, 10)), (0.596, 0.982));
        assert_eq!(rounded(wilson_95(36, 40)), (0.769, 0.960));
        assert_eq!(rounded(wilson_95(54, 54)), (0.934, 1.0));
        assert_eq!(rounded(wilson_95(0, 20)), (0.0, 0.161));
        assert_eq!(rounded(wilson_95(5, 10)), (0.237, 0.763));
    }

    #[test]
    fn more_rows_narrow_the_interval_and_nothing_panics() {
        let (lo10, hi10) = wilson_95(9, 10);
        let (lo40, hi40) = wilson_95(36, 40);
        assert!(hi40 - lo40 < hi10 - lo10);
        assert_eq!(wilson_95(0, 0), (0.0, 1.0));
        assert_eq!(wilson_95(7, 3), wilson_95(3, 3));
        let (lo, hi) = wilson_95(usize::MAX / 2, usize::MAX);
        assert!((0.0..=1.0).contains(&lo) && lo <= hi && hi <= 1.0);
    }
}
