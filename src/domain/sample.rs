//! The daily review sample's design, pure: the stratum each decision falls in, how a draw of
//! `k` decisions is allocated over the strata, the seeded draw itself, and each sampled
//! decision's inclusion probability over every draw of its day; also the passes of a double
//! review (a first reviewer, a second who does not see the first verdict, an adjudication).
//!
//! The design looks where a miss is expensive and still estimates honestly: every stratum is a
//! simple random sample of its decisions, so each sampled decision's probability of being
//! drawn is known and the audit can weight its verdict by the inverse.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rand::{SeedableRng as _, rngs::StdRng, seq::SliceRandom as _};
use serde::{Deserialize, Serialize};

use super::{DomainError, Severity, Source, Tier};

string_enum! {
    /// Where a decision sits in the day's sample design. A decision is in the first stratum
    /// that fits it, in this order.
    Stratum {
        /// An agent changed its routing in the ticketing tool (taken whole).
        Overridden = "overridden",
        /// The offline classifier decided because the model could not (taken whole).
        Fallback = "fallback",
        /// Decided `on_fire` (taken whole up to `[review] on_fire_cap`).
        OnFire = "on_fire",
        /// Confidence below `[review] low_confidence_below` (oversampled).
        LowConfidence = "low_confidence",
        /// The top tier, enterprise (oversampled).
        Enterprise = "enterprise",
        /// Everything else, drawn uniformly.
        Rest = "rest",
    }
}

string_enum! {
    /// Which pass of the review a verdict belongs to.
    Pass {
        /// The day's reviewer (every sampled decision).
        First = "first",
        /// The second reviewer of a decision offered for a double review, who does not see
        /// the first verdict.
        Second = "second",
        /// The word that settles a disagreement between the first and the second verdict.
        Adjudication = "adjudication",
    }
}

impl Stratum {
    /// The strata taken whole (within their cap and half of a draw).
    pub const TAKEN_WHOLE: [Stratum; 3] = [Stratum::Overridden, Stratum::Fallback, Stratum::OnFire];
    /// The strata shared out by size, the first two oversampled.
    pub const SHARED: [Stratum; 3] = [Stratum::LowConfidence, Stratum::Enterprise, Stratum::Rest];

    /// Parses a stored stratum; `None` for a sample drawn before strata existed (uniformly).
    ///
    /// # Errors
    /// When the text is neither empty nor a stratum.
    pub fn parse_stored(text: Option<&str>) -> Result<Option<Self>, DomainError> {
        text.map(|t| Stratum::parse("stratum", t)).transpose()
    }
}

/// The sample design's settings (`[review]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Design {
    /// At most this many `on_fire` decisions a draw takes whole (more are drawn among).
    pub on_fire_cap: usize,
    /// How many times as likely as a `rest` decision a `low_confidence` or `enterprise`
    /// decision is to be drawn (its size counts this many times in the share-out).
    pub oversample: f64,
    /// A confidence below this is `low_confidence`.
    pub low_confidence_below: f32,
    /// The share of each draw offered to a second reviewer as well.
    pub second_reviewer_share: f64,
}

/// Default `[review] on_fire_cap`.
pub const DEFAULT_ON_FIRE_CAP: usize = 3;
/// Default `[review] oversample`.
pub const DEFAULT_OVERSAMPLE: f64 = 3.0;
/// Default `[review] low_confidence_below`.
pub const DEFAULT_LOW_CONFIDENCE_BELOW: f32 = 0.6;

impl Default for Design {
    fn default() -> Self {
        Self {
            on_fire_cap: DEFAULT_ON_FIRE_CAP,
            oversample: DEFAULT_OVERSAMPLE,
            low_confidence_below: DEFAULT_LOW_CONFIDENCE_BELOW,
            second_reviewer_share: 0.0,
        }
    }
}

impl Design {
    /// The factor a stratum's size counts with in the share-out.
    fn factor(&self, s: Stratum) -> f64 {
        match s {
            Stratum::LowConfidence | Stratum::Enterprise => self.oversample,
            _ => 1.0,
        }
    }
}

/// A decision of the day never offered for review, as the design reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The decision.
    pub id: String,
    /// Its source.
    pub source: Source,
    /// When it was decided.
    pub created_at: DateTime<Utc>,
    /// What was decided.
    pub severity: Severity,
    /// The offline classifier stood in.
    pub fallback: bool,
    /// The classifier's confidence.
    pub confidence: f32,
    /// The tier it was decided with.
    pub tier: Tier,
    /// An agent overrode it in the tool.
    pub overridden: bool,
}

impl Candidate {
    /// The first stratum that fits.
    pub fn stratum(&self, design: &Design) -> Stratum {
        if self.overridden {
            Stratum::Overridden
        } else if self.fallback {
            Stratum::Fallback
        } else if self.severity == Severity::OnFire {
            Stratum::OnFire
        } else if self.confidence < design.low_confidence_below {
            Stratum::LowConfidence
        } else if self.tier == Tier::Enterprise {
            Stratum::Enterprise
        } else {
            Stratum::Rest
        }
    }
}

/// How many decisions of each stratum a draw of `k` takes from strata of `sizes`:
///
/// 1. the strata taken whole (`overridden`, `fallback`, `on_fire`, the last at most
///    `on_fire_cap`), one decision to each in turn in that order until each has all it wants
///    or half of the draw (rounded down) is spent, so one full stratum cannot starve another;
/// 2. the rest of the draw one at a time to `low_confidence`, `enterprise` and `rest`: each
///    next decision to the stratum with the largest `size × factor / drawn` (a stratum with none
///    drawn first; factor `oversample` for the first two, 1 for `rest`; ties in that order),
///    never more than its size (Adams' apportionment, so every non-empty stratum gets one
///    before any gets two);
/// 3. what they cannot take (all drawn) to the strata taken whole, in order, up to their size.
///
/// Never more than `k` in all, nor more than a stratum holds.
pub fn allocate(
    sizes: &BTreeMap<Stratum, usize>,
    k: usize,
    design: &Design,
) -> BTreeMap<Stratum, usize> {
    let size = |s: Stratum| sizes.get(&s).copied().unwrap_or(0);
    let mut n: BTreeMap<Stratum, usize> = Stratum::ALL.iter().map(|s| (*s, 0)).collect();
    let mut left = k;
    let mut budget = k / 2;
    let want = |s: Stratum| {
        if s == Stratum::OnFire {
            size(s).min(design.on_fire_cap)
        } else {
            size(s)
        }
    };
    while budget > 0 {
        let mut gave = false;
        for s in Stratum::TAKEN_WHOLE {
            if budget > 0 && n[&s] < want(s) {
                *n.entry(s).or_default() += 1;
                budget -= 1;
                left -= 1;
                gave = true;
            }
        }
        if !gave {
            break;
        }
    }
    while left > 0 {
        let next = Stratum::SHARED
            .into_iter()
            .filter(|s| n[s] < size(*s))
            .map(|s| {
                #[allow(clippy::cast_precision_loss)]
                let weight = size(s) as f64 * design.factor(s);
                #[allow(clippy::cast_precision_loss)]
                let priority = if n[&s] == 0 {
                    f64::INFINITY
                } else {
                    weight / n[&s] as f64
                };
                (s, priority)
            })
            // The first of equal priorities wins: `max_by` keeps the last, so compare reversed.
            .fold(None::<(Stratum, f64)>, |best, (s, p)| match best {
                Some((_, bp)) if bp >= p => best,
                _ => Some((s, p)),
            });
        let Some((s, _)) = next else { break };
        *n.entry(s).or_default() += 1;
        left -= 1;
    }
    for s in Stratum::TAKEN_WHOLE {
        let more = (size(s) - n[&s]).min(left);
        *n.entry(s).or_default() += more;
        left -= more;
    }
    n
}

/// One decision a draw picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    /// The decision.
    pub id: String,
    /// Its stratum.
    pub stratum: Stratum,
    /// Offered to a second reviewer as well.
    pub double_review: bool,
}

/// One stratum of a draw: the decisions it held (never offered before) and how many were
/// drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StratumDraw {
    /// The stratum.
    pub stratum: Stratum,
    /// Its decisions in the draw's frame.
    pub frame: usize,
    /// Drawn from them.
    pub drawn: usize,
}

/// What one draw picked, in the order the reviewer sees them (shuffled, so the strata are not
/// shown in blocks), and its strata.
#[derive(Debug, Clone, PartialEq)]
pub struct Draw {
    /// The picks.
    pub picks: Vec<Pick>,
    /// Every stratum with decisions in the frame.
    pub strata: Vec<StratumDraw>,
}

/// Draws `k` of `candidates` (in id order, as the store lists them) with `seed`: each
/// stratum a simple random sample of the size [`allocate`] gives it, the picks shuffled, and
/// `second_reviewer_share` of them (rounded to the nearest whole) drawn for a second review.
/// The same candidates, `k`, seed and design always give the same draw.
pub fn draw(candidates: &[Candidate], k: usize, seed: u64, design: &Design) -> Draw {
    let mut members: BTreeMap<Stratum, Vec<&Candidate>> = BTreeMap::new();
    for c in candidates {
        members.entry(c.stratum(design)).or_default().push(c);
    }
    let sizes: BTreeMap<Stratum, usize> = members.iter().map(|(s, m)| (*s, m.len())).collect();
    let n = allocate(&sizes, k, design);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut picks = Vec::new();
    let mut strata = Vec::new();
    for (s, m) in &members {
        let take = n.get(s).copied().unwrap_or(0).min(m.len());
        strata.push(StratumDraw {
            stratum: *s,
            frame: m.len(),
            drawn: take,
        });
        for i in rand::seq::index::sample(&mut rng, m.len(), take) {
            picks.push(Pick {
                id: m[i].id.clone(),
                stratum: *s,
                double_review: false,
            });
        }
    }
    picks.shuffle(&mut rng);
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let doubles = ((design.second_reviewer_share.clamp(0.0, 1.0) * picks.len() as f64).round()
        as usize)
        .min(picks.len());
    for i in rand::seq::index::sample(&mut rng, picks.len(), doubles) {
        picks[i].double_review = true;
    }
    Draw { picks, strata }
}

/// A recorded draw of a day, as the inclusion probabilities read it.
#[derive(Debug, Clone, PartialEq)]
pub struct DrawRecord {
    /// Its id.
    pub id: i64,
    /// The source it was drawn for (`None`: all sources).
    pub source: Option<Source>,
    /// When.
    pub drawn_at: DateTime<Utc>,
    /// Per stratum: (decisions in its frame, drawn).
    pub strata: BTreeMap<Stratum, (usize, usize)>,
}

/// A sampled decision of the day, as the inclusion probabilities read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampled {
    /// The decision.
    pub decision_id: String,
    /// Its source.
    pub source: Source,
    /// When it was decided.
    pub created_at: DateTime<Utc>,
    /// Its stratum.
    pub stratum: Stratum,
    /// The draw that picked it.
    pub draw_id: i64,
}

/// Each sampled decision's probability of being drawn on its day:
/// `π = 1 − Π (1 − drawn / frame)` over the day's draws that could have picked it (its own,
/// and every draw for all sources or for its source made after it was decided), with the
/// counts of its stratum in each. With one draw this is `drawn / frame` of its stratum; a
/// top-up of `m` more from a stratum of `N` that gave `n` before makes it `(n + m) / N`.
///
/// Each draw is a simple random sample of each stratum among the decisions not offered
/// before, so given that a decision was not picked before, a draw picks it with probability
/// `drawn / frame` of its stratum; the product is the chance that no draw did. A decision whose
/// stratum changed between draws (an agent overrode it later) is counted in the stratum it was
/// drawn in: a small approximation.
pub fn inclusion_probabilities(draws: &[DrawRecord], sampled: &[Sampled]) -> Vec<(String, f64)> {
    sampled
        .iter()
        .map(|d| {
            let missed: f64 = draws
                .iter()
                .filter(|w| {
                    w.id == d.draw_id
                        || (w.source.is_none_or(|s| s == d.source) && d.created_at < w.drawn_at)
                })
                .map(|w| match w.strata.get(&d.stratum) {
                    #[allow(clippy::cast_precision_loss)]
                    Some((frame, drawn)) if *frame > 0 => {
                        1.0 - (*drawn as f64 / *frame as f64).min(1.0)
                    }
                    _ => 1.0,
                })
                .product();
            let pi = (1.0 - missed).clamp(0.0, 1.0);
            (d.decision_id.clone(), pi)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(v: &[(Stratum, usize)]) -> BTreeMap<Stratum, usize> {
        v.iter().copied().collect()
    }

    fn alloc(v: &[(Stratum, usize)], k: usize) -> Vec<(Stratum, usize)> {
        allocate(&sizes(v), k, &Design::default())
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// The README's worked example: 200 decisions, ten drawn.
    #[test]
    fn the_allocation_takes_the_costly_strata_whole_and_shares_out_the_rest() {
        use Stratum::*;
        let day = [
            (Fallback, 1),
            (OnFire, 4),
            (LowConfidence, 20),
            (Enterprise, 15),
            (Rest, 160),
        ];
        assert_eq!(
            alloc(&day, 10),
            [
                (Fallback, 1),
                (OnFire, 3),
                (LowConfidence, 2),
                (Enterprise, 1),
                (Rest, 3)
            ]
        );
        // Taken whole within half the draw, in turn: 8 fallbacks and 6 on_fire with ten draws.
        assert_eq!(
            alloc(&[(Fallback, 8), (OnFire, 6), (Rest, 100)], 10),
            [(Fallback, 3), (OnFire, 2), (Rest, 5)]
        );
        // A top-up of one goes to the shared strata first.
        assert_eq!(alloc(&day, 1), [(LowConfidence, 1)]);
        // Fewer decisions than draws: all of them.
        assert_eq!(
            alloc(&[(OnFire, 5), (Rest, 2)], 10),
            [(OnFire, 5), (Rest, 2)]
        );
        // One stratum: a uniform draw.
        assert_eq!(alloc(&[(Rest, 30)], 10), [(Rest, 10)]);
        assert!(alloc(&[], 10).is_empty());
        assert!(alloc(&day, 0).is_empty());
    }

    fn candidate(i: usize, stratum: Stratum) -> Candidate {
        Candidate {
            id: format!("d-{i:03}"),
            source: if i.is_multiple_of(2) {
                Source::Plain
            } else {
                Source::Pylon
            },
            created_at: DateTime::<Utc>::UNIX_EPOCH
                + chrono::Duration::minutes(i64::try_from(i).unwrap()),
            severity: if stratum == Stratum::OnFire {
                Severity::OnFire
            } else {
                Severity::Urgent
            },
            fallback: stratum == Stratum::Fallback,
            confidence: if stratum == Stratum::LowConfidence {
                0.4
            } else {
                0.9
            },
            tier: if stratum == Stratum::Enterprise {
                Tier::Enterprise
            } else {
                Tier::Pro
            },
            overridden: stratum == Stratum::Overridden,
        }
    }

    #[test]
    fn a_candidate_is_in_the_first_stratum_that_fits() {
        let d = Design::default();
        for s in Stratum::ALL {
            assert_eq!(candidate(1, *s).stratum(&d), *s);
        }
        let mut c = candidate(1, Stratum::Rest);
        c.tier = Tier::Enterprise;
        c.confidence = 0.3;
        c.severity = Severity::OnFire;
        assert_eq!(c.stratum(&d), Stratum::OnFire);
        c.fallback = true;
        assert_eq!(c.stratum(&d), Stratum::Fallback);
        c.overridden = true;
        assert_eq!(c.stratum(&d), Stratum::Overridden);
    }

    #[test]
    fn draws_are_reproducible_within_their_strata_and_pick_the_second_reviews() {
        let mut cs: Vec<Candidate> = (0..40).map(|i| candidate(i, Stratum::Rest)).collect();
        cs.extend((40..44).map(|i| candidate(i, Stratum::OnFire)));
        cs.extend((44..54).map(|i| candidate(i, Stratum::Enterprise)));
        let design = Design {
            second_reviewer_share: 0.25,
            ..Design::default()
        };
        let a = draw(&cs, 10, 7, &design);
        assert_eq!(a, draw(&cs, 10, 7, &design));
        assert_ne!(a.picks, draw(&cs, 10, 8, &design).picks);
        assert_eq!(a.picks.len(), 10);
        let mut ids: Vec<&str> = a.picks.iter().map(|p| p.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 10, "no decision twice");
        for p in &a.picks {
            let c = cs.iter().find(|c| c.id == p.id).unwrap();
            assert_eq!(c.stratum(&design), p.stratum);
        }
        let on_fire = a
            .strata
            .iter()
            .find(|s| s.stratum == Stratum::OnFire)
            .unwrap();
        assert_eq!((on_fire.frame, on_fire.drawn), (4, 3));
        assert_eq!(
            a.picks.iter().filter(|p| p.double_review).count(),
            3,
            "25% of 10, rounded"
        );
        // Each rest decision is about equally likely: 4,000 draws of 10, each of the 40 about
        // 4,000 × 4/40 = 400 times (the rest get 4 of the 10: 3 on_fire, then 2 + 1 shared).
        let mut counts = BTreeMap::new();
        for seed in 0..4_000 {
            for p in draw(&cs, 10, seed, &Design::default()).picks {
                if p.stratum == Stratum::Rest {
                    *counts.entry(p.id).or_insert(0u32) += 1;
                }
            }
        }
        let per = 4_000
            * allocate(
                &sizes(&[
                    (Stratum::Rest, 40),
                    (Stratum::OnFire, 4),
                    (Stratum::Enterprise, 10),
                ]),
                10,
                &Design::default(),
            )[&Stratum::Rest]
            / 40;
        assert_eq!(counts.len(), 40);
        assert!(
            counts
                .values()
                .all(|c| (u32::try_from(per).unwrap() * 80 / 100
                    ..u32::try_from(per).unwrap() * 120 / 100)
                    .contains(c)),
            "{per} {counts:?}"
        );
    }

    fn record(
        id: i64,
        source: Option<Source>,
        at: i64,
        strata: &[(Stratum, usize, usize)],
    ) -> DrawRecord {
        DrawRecord {
            id,
            source,
            drawn_at: DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(at),
            strata: strata.iter().map(|(s, f, d)| (*s, (*f, *d))).collect(),
        }
    }

    fn sampled(id: &str, source: Source, at: i64, stratum: Stratum, draw_id: i64) -> Sampled {
        Sampled {
            decision_id: id.into(),
            source,
            created_at: DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(at),
            stratum,
            draw_id,
        }
    }

    #[test]
    fn inclusion_probabilities_combine_the_draws_of_a_day() {
        use Stratum::{OnFire, Rest};
        // One draw: drawn / frame of the stratum.
        let one = [record(1, None, 1_000, &[(Rest, 160, 3), (OnFire, 4, 3)])];
        let s = [
            sampled("a", Source::Plain, 5, Rest, 1),
            sampled("b", Source::Pylon, 6, OnFire, 1),
        ];
        let p = inclusion_probabilities(&one, &s);
        assert!((p[0].1 - 3.0 / 160.0).abs() < 1e-12 && (p[1].1 - 0.75).abs() < 1e-12);
        // A top-up of 7 more from the 157 left: (3 + 7) / 160 for every rest decision.
        let topped = [
            one[0].clone(),
            record(2, None, 2_000, &[(Rest, 157, 7), (OnFire, 1, 0)]),
        ];
        let s2 = [
            s[0].clone(),
            sampled("c", Source::Plain, 7, Rest, 2),
            s[1].clone(),
        ];
        let p = inclusion_probabilities(&topped, &s2);
        assert!((p[0].1 - 10.0 / 160.0).abs() < 1e-12, "{p:?}");
        assert!((p[1].1 - 10.0 / 160.0).abs() < 1e-12, "{p:?}");
        assert!((p[2].1 - 0.75).abs() < 1e-12, "{p:?}");
        // A Plain-only draw counts for Plain decisions only; a draw made before a decision was
        // decided does not count for it (unless it is the one that picked it).
        let mixed = [
            record(1, Some(Source::Plain), 1_000, &[(Rest, 10, 2)]),
            record(2, None, 2_000, &[(Rest, 28, 4)]),
        ];
        let s3 = [
            sampled("p", Source::Plain, 5, Rest, 2),
            sampled("q", Source::Pylon, 5, Rest, 2),
            sampled("late", Source::Plain, 1_500, Rest, 2),
        ];
        let p = inclusion_probabilities(&mixed, &s3);
        assert!(
            (p[0].1 - (1.0 - 0.8 * (1.0 - 4.0 / 28.0))).abs() < 1e-12,
            "{p:?}"
        );
        assert!((p[1].1 - 4.0 / 28.0).abs() < 1e-12, "{p:?}");
        assert!((p[2].1 - 4.0 / 28.0).abs() < 1e-12, "{p:?}");
    }
}
