//! Small statistics for reports, in one place: a proportion with its 95% Wilson interval
//! ([`Rate`]: eval's accuracies, the audit's figures, the promotion gate), the same from
//! weighted verdicts of a stratified sample ([`Weighted`]: the Hájek estimate with a Wilson
//! interval on Kish's effective sample size), Cohen's kappa with its interval ([`Kappa`]: two
//! reviewers' agreement), nearest-rank percentiles (eval's and the audit's latency, the
//! benchmark's) and a median.
//!
//! Written by hand: the Wilson interval is three lines of arithmetic, the weighted estimate and
//! kappa a dozen each, a percentile a dozen, and the statistics crates that have them (statrs
//! and the like) bring a distribution library for one constant.

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
    wilson_95_at(k / n, n)
}

/// The 95% Wilson score interval of a proportion `p` estimated with the precision of `n`
/// independent trials, where `n` may be fractional: an effective sample size (see
/// [`Weighted`]). [`wilson_95`] is this with `p = k / n`. With `n` not above 0 nothing is
/// known: `(0, 1)`.
pub fn wilson_95_at(p: f64, n: f64) -> (f64, f64) {
    if !(n > 0.0 && p.is_finite()) {
        return (0.0, 1.0);
    }
    let p = p.clamp(0.0, 1.0);
    let z2 = Z_95 * Z_95;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = Z_95 / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((center - half).max(0.0), (center + half).min(1.0))
}

/// `k` of `n` with its share and 95% Wilson score interval. Wilson rather than the normal
/// approximation: with 70 verdicts and accuracy near 90% the normal interval runs past 100%,
/// and with a handful of verdicts it collapses to nothing; Wilson stays inside 0..1 and honest.
///
/// From weighted verdicts ([`Weighted::rate`]) the share is the weighted estimate and the
/// interval is Wilson's on the effective sample size, which `effective_n` then holds; `k` and
/// `n` stay the plain counts of correct verdicts and verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    /// Successes (e.g. correct verdicts).
    pub k: u64,
    /// Trials (e.g. verdicts).
    pub n: u64,
    /// `k / n` (0 when `n` is 0), or the weighted estimate.
    pub share: f64,
    /// Lower end of the 95% interval.
    pub lo: f64,
    /// Upper end of the 95% interval.
    pub hi: f64,
    /// Kish's effective sample size the interval was computed on, when the verdicts carried
    /// unequal weights; absent when every verdict weighs the same (then it is `n`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_n: Option<f64>,
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
            effective_n: None,
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

    /// The audit's headline: `k/n correct = x%, 95% interval lo–hi% (±p points with n
    /// verdicts)`, or for a weighted rate `weighted accuracy x% (k/n verdicts correct,
    /// unweighted), 95% interval lo–hi% (±p points, effective sample size e of n verdicts)`.
    pub fn headline(&self) -> String {
        match self.effective_n {
            None => format!(
                "{}/{} correct = {:.1}%, 95% interval {:.1}–{:.1}% (±{:.1} points with {} verdicts)",
                self.k,
                self.n,
                self.share * 100.0,
                self.lo * 100.0,
                self.hi * 100.0,
                self.plus_minus_points(),
                self.n
            ),
            Some(e) => format!(
                "weighted accuracy {:.1}% ({}/{} verdicts correct, unweighted), 95% interval {:.1}–{:.1}% (±{:.1} points, effective sample size {e:.1} of {} verdicts)",
                self.share * 100.0,
                self.k,
                self.n,
                self.lo * 100.0,
                self.hi * 100.0,
                self.plus_minus_points(),
                self.n
            ),
        }
    }

    /// `k/n = x% (95% Wilson interval lo%–hi%)`: how every accuracy of `escalator eval` reads.
    /// A weighted rate says so: `x% weighted, k/n correct (effective sample size e; 95%
    /// Wilson interval lo%–hi%)`.
    pub fn sentence(&self) -> String {
        if let Some(e) = self.effective_n {
            return format!(
                "{:.1}% weighted, {}/{} correct (effective sample size {e:.1}; 95% Wilson interval {:.1}%–{:.1}%)",
                self.share * 100.0,
                self.k,
                self.n,
                self.lo * 100.0,
                self.hi * 100.0
            );
        }
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

/// `x% [lo–hi] (k/n)`, or `-` with no trials: how the audit's tables read. A weighted rate
/// adds its effective sample size: `x% [lo–hi] (k/n, n_eff e)`, where `x` is the weighted
/// estimate (not `k/n`).
impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.n == 0 {
            return f.write_str("-");
        }
        write!(
            f,
            "{:.1}% [{:.1}–{:.1}] ({}/{}",
            self.share * 100.0,
            self.lo * 100.0,
            self.hi * 100.0,
            self.k,
            self.n
        )?;
        match self.effective_n {
            Some(e) => write!(f, ", n_eff {e:.1})"),
            None => f.write_str(")"),
        }
    }
}

/// Verdicts of a stratified sample, each weighted by the inverse of its inclusion probability
/// (`w = 1/π`), summed so that figures over splits, weeks or strata merge.
///
/// The estimate ([`Weighted::rate`]) is Hájek's: `Σ w·y / Σ w` with `y` 1 for a correct
/// verdict, the weighted share of correct verdicts, which estimates the accuracy over every
/// decision the sample was drawn from, however unequal the inclusion probabilities (Hájek,
/// "Comment on a paper by D. Basu", in Godambe and Sprott (eds.), *Foundations of Statistical
/// Inference*, 1971, p. 236; Särndal, Swensson and Wretman, *Model Assisted Survey Sampling*,
/// 1992). Its 95% interval is Wilson's with the number of verdicts replaced by Kish's effective
/// sample size `n_eff = (Σ w)² / Σ w²`, the number of equally weighted verdicts that would be
/// as precise (Kish, "Weighting for unequal Pi", Journal of Official Statistics 8(2), 1992).
/// Wilson's interval on an effective sample size is the one Franco, Little, Louis and Slud
/// recommend for survey proportions ("Comparative study of confidence intervals for
/// proportions in complex sample surveys", Journal of Survey Statistics and Methodology 7(3),
/// 2019). Kish's formula treats the verdicts as varying alike in every stratum; in the daily
/// sample the estimate and its variance are both carried by the same heavily weighted stratum
/// (the `rest`), where that holds closely enough, and the per-stratum figures are shown beside.
///
/// When every verdict weighs the same (one stratum, one inclusion probability) the estimate is
/// `k/n` and `n_eff` is `n`: [`Weighted::rate`] is then exactly [`Rate::of`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Weighted {
    /// Verdicts.
    pub n: u64,
    /// Correct verdicts.
    pub k: u64,
    /// Σ w.
    pub weight: f64,
    /// Σ w².
    pub weight_sq: f64,
    /// Σ w over the correct verdicts.
    pub weight_correct: f64,
    /// The smallest and the largest weight (to tell a self-weighting sample).
    min: f64,
    max: f64,
}

impl Weighted {
    /// Adds one verdict of weight `weight` (`1/π`; a weight that is not a finite number of at
    /// least 1 is read as 1, the weight of a decision certain to be drawn).
    pub fn add(&mut self, weight: f64, correct: bool) {
        let w = if weight.is_finite() && weight >= 1.0 {
            weight
        } else {
            1.0
        };
        if self.n == 0 {
            (self.min, self.max) = (w, w);
        } else {
            self.min = self.min.min(w);
            self.max = self.max.max(w);
        }
        self.n += 1;
        self.k += u64::from(correct);
        self.weight += w;
        self.weight_sq += w * w;
        if correct {
            self.weight_correct += w;
        }
    }

    /// Adds `other`'s verdicts.
    pub fn merge(&mut self, other: &Weighted) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *other;
            return;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.n += other.n;
        self.k += other.k;
        self.weight += other.weight;
        self.weight_sq += other.weight_sq;
        self.weight_correct += other.weight_correct;
    }

    /// Whether every verdict weighs the same (within rounding).
    pub fn self_weighting(&self) -> bool {
        self.max - self.min <= 1e-9 * self.max
    }

    /// Kish's effective sample size, `(Σ w)² / Σ w²` (`n` when the weights are equal).
    pub fn effective_n(&self) -> f64 {
        if self.self_weighting() || self.weight_sq <= 0.0 {
            #[allow(clippy::cast_precision_loss)]
            let n = self.n as f64;
            return n;
        }
        self.weight * self.weight / self.weight_sq
    }

    /// The Hájek estimate with the Wilson interval on the effective sample size; exactly
    /// [`Rate::of`]`(k, n)` when every verdict weighs the same.
    pub fn rate(&self) -> Rate {
        if self.n == 0 || self.self_weighting() {
            return Rate::of(self.k, self.n);
        }
        let share = self.weight_correct / self.weight;
        let n_eff = self.effective_n();
        let (lo, hi) = wilson_95_at(share, n_eff);
        Rate {
            k: self.k,
            n: self.n,
            share,
            lo,
            hi,
            effective_n: Some(n_eff),
        }
    }
}

/// Cohen's kappa between two raters over the same items, with its 95% interval: how far their
/// agreement exceeds what their own rates of each category would give by chance.
///
/// `κ = (p_o − p_e) / (1 − p_e)`, `p_o` the share of items they agree on, `p_e = Σ p_i· p_·i`
/// (Cohen, "A coefficient of agreement for nominal scales", Educational and Psychological
/// Measurement 20(1), 1960). The interval is `κ ± 1.96·SE` (clipped to −1..1) with the
/// large-sample standard error of Fleiss, Cohen and Everitt ("Large sample standard errors of
/// kappa and weighted kappa", Psychological Bulletin 72(5), 1969), as SAS PROC FREQ reports it;
/// with few pairs it is rough, and the report says how many pairs it rests on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Kappa {
    /// Items both rated.
    pub pairs: u64,
    /// Items they rated alike.
    pub agreed: u64,
    /// Observed agreement `p_o`.
    pub observed: f64,
    /// Agreement expected by chance `p_e`.
    pub expected: f64,
    /// κ; `None` with no pairs, or when chance alone gives full agreement (`p_e = 1`: both
    /// raters used one and the same category throughout).
    pub kappa: Option<f64>,
    /// Its large-sample standard error.
    pub se: Option<f64>,
    /// Lower end of the 95% interval.
    pub lo: Option<f64>,
    /// Upper end of the 95% interval.
    pub hi: Option<f64>,
}

impl Kappa {
    /// κ of a square table of counts: `table[i][j]` items the first rater put in category `i`
    /// and the second in `j`.
    pub fn of(table: &[Vec<u64>]) -> Kappa {
        let c = table.len();
        let n: u64 = table.iter().flatten().sum();
        let agreed: u64 = (0..c).map(|i| table[i].get(i).copied().unwrap_or(0)).sum();
        #[allow(clippy::cast_precision_loss)]
        let nf = n as f64;
        #[allow(clippy::cast_precision_loss)]
        let p = |i: usize, j: usize| table[i].get(j).copied().unwrap_or(0) as f64 / nf;
        let none = Kappa {
            pairs: n,
            agreed,
            observed: 0.0,
            expected: 0.0,
            kappa: None,
            se: None,
            lo: None,
            hi: None,
        };
        if n == 0 {
            return none;
        }
        let row: Vec<f64> = (0..c).map(|i| (0..c).map(|j| p(i, j)).sum()).collect();
        let col: Vec<f64> = (0..c).map(|j| (0..c).map(|i| p(i, j)).sum()).collect();
        let po: f64 = (0..c).map(|i| p(i, i)).sum();
        let pe: f64 = (0..c).map(|i| row[i] * col[i]).sum();
        if 1.0 - pe <= 1e-12 {
            return Kappa {
                observed: po,
                expected: pe,
                ..none
            };
        }
        let k = (po - pe) / (1.0 - pe);
        // Fleiss, Cohen and Everitt (1969), the variance of κ when κ is not 0.
        let a: f64 = (0..c)
            .map(|i| p(i, i) * (1.0 - (row[i] + col[i]) * (1.0 - k)).powi(2))
            .sum();
        let b: f64 = (1.0 - k).powi(2)
            * (0..c)
                .flat_map(|i| (0..c).filter(move |j| *j != i).map(move |j| (i, j)))
                .map(|(i, j)| p(i, j) * (col[i] + row[j]).powi(2))
                .sum::<f64>();
        let cc = (k - pe * (1.0 - k)).powi(2);
        let se = ((a + b - cc).max(0.0) / ((1.0 - pe).powi(2) * nf)).sqrt();
        Kappa {
            observed: po,
            expected: pe,
            kappa: Some(k),
            se: Some(se),
            lo: Some((k - Z_95 * se).max(-1.0)),
            hi: Some((k + Z_95 * se).min(1.0)),
            ..none
        }
    }
}

/// `κ = 0.48 [0.21–0.75] (12 of 14 pairs agree)`, or what is missing.
impl fmt::Display for Kappa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kappa, self.lo, self.hi) {
            _ if self.pairs == 0 => f.write_str("no pairs"),
            (Some(k), Some(lo), Some(hi)) => write!(
                f,
                "κ = {k:.2} [{lo:.2}–{hi:.2}] ({} of {} pairs agree)",
                self.agreed, self.pairs
            ),
            _ => write!(
                f,
                "κ undefined: both reviewers gave one and the same severity throughout ({} of {} pairs agree)",
                self.agreed, self.pairs
            ),
        }
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
    fn equal_weights_give_exactly_the_unweighted_rate() {
        for (k, n, w) in [
            (40u64, 50u64, 2.0),
            (47, 50, 1.0),
            (5, 10, 1.0 / 0.3),
            (0, 3, 7.0),
        ] {
            let mut acc = Weighted::default();
            for i in 0..n {
                acc.add(w, i < k);
            }
            assert_eq!(acc.rate(), Rate::of(k, n), "{k}/{n} at weight {w}");
            assert!((acc.effective_n() - n as f64).abs() < 1e-9);
        }
        assert_eq!(Weighted::default().rate(), Rate::of(0, 0));
        assert_eq!(Rate::of(40, 50).to_string(), "80.0% [67.0–88.8] (40/50)");
    }

    /// The README's worked example (a day of 200 decisions, ten verdicts over five strata).
    #[test]
    fn the_weighted_estimate_and_its_interval_are_hajek_and_kish_wilson() {
        let mut acc = Weighted::default();
        let verdicts = [
            (1.0, true),
            (4.0 / 3.0, true),
            (4.0 / 3.0, true),
            (4.0 / 3.0, false),
            (10.0, true),
            (10.0, false),
            (15.0, true),
            (160.0 / 3.0, true),
            (160.0 / 3.0, true),
            (160.0 / 3.0, true),
        ];
        for (w, c) in verdicts {
            acc.add(w, c);
        }
        assert!((acc.weight - 200.0).abs() < 1e-9);
        assert!((acc.weight_sq - 8_964.667).abs() < 1e-3);
        let r = acc.rate();
        assert_eq!((r.k, r.n), (8, 10));
        assert!(close(r.share, 0.9433), "{r:?}");
        assert!((r.effective_n.unwrap() - 4.462).abs() < 1e-3, "{r:?}");
        assert!(close(r.lo, 0.4798) && close(r.hi, 0.9967), "{r:?}");
        assert_eq!(r.to_string(), "94.3% [48.0–99.7] (8/10, n_eff 4.5)");
        // Merging the halves gives the same figure.
        let (mut a, mut b) = (Weighted::default(), Weighted::default());
        for (i, (w, c)) in verdicts.iter().enumerate() {
            if i % 2 == 0 {
                a.add(*w, *c)
            } else {
                b.add(*w, *c)
            }
        }
        a.merge(&b);
        let m = a.rate();
        assert_eq!((m.k, m.n), (r.k, r.n));
        assert!(close(m.share, r.share) && close(m.lo, r.lo) && close(m.hi, r.hi));
        // A weight that cannot be one (below 1, not finite) is read as 1.
        let mut odd = Weighted::default();
        odd.add(f64::NAN, true);
        odd.add(0.5, false);
        assert_eq!(odd.rate(), Rate::of(1, 2));
    }

    #[test]
    fn kappa_matches_sas_proc_freq() {
        // The two tables statsmodels checks against SAS's PROC FREQ output.
        let k = Kappa::of(&[vec![0, 4, 1], vec![0, 8, 0], vec![0, 1, 5]]);
        assert!((k.kappa.unwrap() - 0.4842).abs() < 5e-5, "{k:?}");
        assert!((k.se.unwrap() - 0.1380).abs() < 5e-5, "{k:?}");
        assert!((k.lo.unwrap() - 0.2137).abs() < 5e-5 && (k.hi.unwrap() - 0.7547).abs() < 5e-5);
        assert_eq!((k.agreed, k.pairs), (13, 19));
        let k = Kappa::of(&[vec![0, 0, 0], vec![5, 16, 3], vec![8, 12, 28]]);
        assert!((k.kappa.unwrap() - 0.3333).abs() < 5e-5, "{k:?}");
        assert!((k.se.unwrap() - 0.0814).abs() < 5e-5, "{k:?}");
        assert!((k.lo.unwrap() - 0.1738).abs() < 5e-5 && (k.hi.unwrap() - 0.4929).abs() < 5e-5);
        assert_eq!(
            Kappa::of(&[vec![0, 4, 1], vec![0, 8, 0], vec![0, 1, 5]]).to_string(),
            "κ = 0.48 [0.21–0.75] (13 of 19 pairs agree)"
        );
        // Perfect agreement: κ 1 with no width; one category throughout: undefined; none.
        let k = Kappa::of(&[vec![3, 0], vec![0, 2]]);
        assert_eq!((k.kappa, k.lo, k.hi), (Some(1.0), Some(1.0), Some(1.0)));
        let k = Kappa::of(&[vec![4, 0], vec![0, 0]]);
        assert_eq!(k.kappa, None);
        assert!(k.to_string().starts_with("κ undefined"), "{k}");
        assert_eq!(Kappa::of(&[vec![0]]).to_string(), "no pairs");
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
