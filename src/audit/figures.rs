//! The figures of one ISO week, computed from the rows the store hands back: accuracy from the
//! sampled reviews (each verdict weighted by the inverse of its inclusion probability: the
//! Hájek estimate of `crate::stats::Weighted`) with its splits, the agents' overrides beside
//! it, and the numbers the symptoms and the dashboard chart (urgent share, enterprise recall,
//! latency, cost, webhooks). The sample's own figures (per stratum, the unsampled verdicts, the
//! double review's agreement) are in `super::sample`.
//!
//! Over 450 lines: every figure of a week is computed in one pass over the same rows, so the
//! splits, the symptoms' numbers and the chart data cannot disagree.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::{sample::SampleFigures, weeks::IsoWeek};
use crate::domain::{
    Route, Severity, Tier,
    audit::{AuditRow, DeliveryRow, FollowUpMark, RejectionRow},
};
use crate::stats::{self, Rate, Weighted};

/// One ISO week of the audit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeekFigures {
    /// The week.
    pub week: IsoWeek,
    /// Decisions logged.
    pub decisions: u64,
    /// Sampled reviews: the weighted estimate of the share of decisions right, with its 95%
    /// interval (with equal inclusion probabilities: correct of judged). The headline.
    pub accuracy: Rate,
    /// The sample itself: per stratum, the unsampled verdicts apart, the double review's
    /// agreement.
    pub sample: SampleFigures,
    /// Recall per true severity (the reviewer's): correct of those truly that severity.
    pub by_true_severity: BTreeMap<Severity, Rate>,
    /// Precision per decided severity: correct of those decided that severity.
    pub by_decided_severity: BTreeMap<Severity, Rate>,
    /// Accuracy per tier.
    pub by_tier: BTreeMap<Tier, Rate>,
    /// Accuracy per source.
    pub by_source: BTreeMap<String, Rate>,
    /// Accuracy per prompt version.
    pub by_prompt_version: BTreeMap<String, Rate>,
    /// Accuracy per model (`offline` for fallbacks).
    pub by_model: BTreeMap<String, Rate>,
    /// Accuracy per authenticated gRPC caller (decisions without one are not in it).
    pub by_caller: BTreeMap<String, Rate>,
    /// Decisions and model cost per authenticated gRPC caller: who spends the budget.
    pub callers: BTreeMap<String, CallerFigures>,
    /// Agents' overrides, reported beside the accuracy and never in it (they see only misses).
    pub overrides: Overrides,
    /// Follow-ups decided again: how many, how many raised, kept or undone, and how right.
    pub follow_ups: FollowUps,
    /// Decisions decided `urgent`, of all decisions.
    pub urgent_share: Rate,
    /// Reviewed decisions whose true severity is `urgent`, of the reviewed.
    pub truth_urgent_share: Rate,
    /// Sampled reviews that corrected an `urgent` decision down to `routine`.
    pub urgent_corrected_down: u64,
    /// Enterprise tickets: recall and corrections upward.
    pub enterprise: Enterprise,
    /// Model latency and retries.
    pub latency: Latency,
    /// Cost, cache and the things that inflate cost.
    pub cost: Cost,
    /// Webhook deliveries per source and payload version.
    pub webhooks: Vec<WebhookFigures>,
    /// Decisions per day by route, Monday first.
    pub days: Vec<DayFigures>,
    /// How often each weighting rule changed an outcome, and enrichment that failed.
    pub weighting: WeightingFigures,
}

/// The weighting rules of one week (`crate::weighting`): contract policy apart from the
/// classifier's judgement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeightingFigures {
    /// Decisions whose severity a rule raised above the classifier's, by rule
    /// (`tiers.enterprise`, `tiers.repeat`, …).
    pub changed_by_rule: BTreeMap<String, u64>,
    /// Decisions a rule changed, of all decisions.
    pub changed: Rate,
    /// Decisions made with the default tier because enrichment failed.
    pub enrichment_failed: u64,
}

/// What one gRPC caller asked for in a week.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CallerFigures {
    /// Decisions logged for its requests.
    pub decisions: u64,
    /// Their model cost in USD.
    pub cost_usd: f64,
}

/// Follow-ups of one week: customers' later messages decided again (issue 26).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FollowUps {
    /// Re-decisions of follow-ups logged.
    pub redecisions: u64,
    /// Of them, raises that changed the routing.
    pub raised: u64,
    /// Raises no agent overrode since.
    pub kept: u64,
    /// Raises an agent overrode (moved to another route).
    pub undone: u64,
    /// Raises posted as a note only, a person having changed the routing before.
    pub note_only: u64,
    /// Sampled raises the review says were right, of those judged.
    pub raised_accuracy: Rate,
}

/// Agents' overrides of one week.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Overrides {
    /// Decisions an agent overrode.
    pub count: u64,
    /// Of all decisions.
    pub share_of_decisions: f64,
    /// Overrides to a higher severity.
    pub raised: u64,
    /// Overrides to a lower severity.
    pub lowered: u64,
}

/// Enterprise tickets of one week, from the sampled reviews.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Enterprise {
    /// Enterprise decisions reviewed.
    pub reviewed: u64,
    /// Of those, corrected to a higher severity (false negatives).
    pub corrected_up: u64,
    /// Of the reviewed enterprise tickets whose true severity is urgent or on_fire, those
    /// decided at exactly that severity.
    pub recall: Rate,
    /// Enterprise decisions agents overrode upward.
    pub overridden_up: u64,
}

/// Model latency of one week.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Decisions with a model call.
    pub calls: u64,
    /// Median model latency in ms.
    pub p50_ms: Option<i64>,
    /// 95th percentile in ms.
    pub p95_ms: Option<i64>,
    /// Retries per decision with a model call.
    pub retries_per_decision: f64,
}

/// Cost of one week.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Cost {
    /// USD of all model calls.
    pub total_usd: f64,
    /// USD per decision (all decisions).
    pub per_decision_usd: f64,
    /// Cache reads of all input tokens (uncached + cache writes + cache reads).
    pub cache_hit_share: f64,
    /// Decisions that wrote the prompt cache, per day.
    pub cache_writes_per_day: f64,
    /// Fallback decisions of all.
    pub fallback_share: Rate,
    /// Repeats of a delivery key received (free, but the sender is retrying).
    pub duplicate_deliveries: u64,
    /// Decisions of a ticket that already had one (a new version: a second model call).
    pub repeat_decisions: u64,
}

/// Deliveries of one payload version in one week.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookFigures {
    /// `plain` or `pylon`.
    pub source: String,
    /// The payload version (`unversioned` when the delivery carried none).
    pub version: String,
    /// Deliveries stored.
    pub deliveries: u64,
    /// Signed deliveries the parse refused.
    pub parse_failures: u64,
    /// Stored deliveries that lacked a field.
    pub missing_fields: u64,
    /// Sampled-review accuracy of the decisions from these deliveries.
    pub accuracy: Rate,
    /// The weighted verdicts behind it (so weeks can be added up).
    #[serde(skip)]
    pub verdicts: Weighted,
}

/// One day of decisions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayFigures {
    /// The day, in the review time zone.
    pub day: NaiveDate,
    /// Decisions per route.
    pub by_route: BTreeMap<Route, u64>,
    /// Decisions that wrote the prompt cache.
    pub cache_writes: u64,
}

/// Weighted verdicts keyed by a split: each split's figure is the same weighted estimate as
/// the headline, over its verdicts (a domain estimate).
struct Split<K: Ord>(BTreeMap<K, Weighted>);

impl<K: Ord> Default for Split<K> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<K: Ord> Split<K> {
    fn add(&mut self, key: K, weight: f64, correct: bool) {
        self.0.entry(key).or_default().add(weight, correct);
    }
    fn rates(self) -> BTreeMap<K, Rate> {
        self.0.into_iter().map(|(k, w)| (k, w.rate())).collect()
    }
}

fn rank(s: Severity) -> u8 {
    match s {
        Severity::Routine => 0,
        Severity::Urgent => 1,
        Severity::OnFire => 2,
    }
}

#[allow(clippy::cast_precision_loss)]
fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

/// The payload version as shown (`unversioned` when absent).
pub fn version_label(v: Option<&str>) -> String {
    v.unwrap_or("unversioned").to_owned()
}

/// The figures of `week` from its decisions, deliveries and refused webhooks (each already cut
/// to the week). `tz` places decisions on days. `seen_tickets` holds the tickets decided before
/// the week (in the window) and gains this week's: a second decision of one is a repeat.
#[allow(clippy::too_many_lines)]
pub fn week(
    week: IsoWeek,
    tz: chrono_tz::Tz,
    rows: &[&AuditRow],
    deliveries: &[&DeliveryRow],
    rejections: &[&RejectionRow],
    seen_tickets: &mut std::collections::HashSet<(String, String)>,
) -> WeekFigures {
    let mut accuracy = Weighted::default();
    let mut truth_urgent = Weighted::default();
    let mut ent_recall = Weighted::default();
    let mut by_true = Split::default();
    let mut by_decided = Split::default();
    let mut by_tier = Split::default();
    let mut by_source = Split::default();
    let mut by_prompt = Split::default();
    let mut by_model = Split::default();
    let mut by_caller = Split::default();
    let mut callers: BTreeMap<String, CallerFigures> = BTreeMap::new();
    let mut overrides = Overrides::default();
    let mut follow_ups = FollowUps {
        redecisions: 0,
        raised: 0,
        kept: 0,
        undone: 0,
        note_only: 0,
        raised_accuracy: Rate::of(0, 0),
    };
    let (mut raised_right, mut raised_judged) = (0u64, 0u64);
    let (mut urgent, mut urgent_down) = (0, 0);
    let mut ent = (0u64, 0u64, 0u64); // reviewed, up, overridden up
    let mut latencies = Vec::new();
    let mut retries = 0i64;
    let mut cost = 0.0;
    let (mut read, mut all_input) = (0i64, 0i64);
    let mut fallbacks = 0;
    let mut repeats = 0;
    let mut changed_by_rule: BTreeMap<String, u64> = BTreeMap::new();
    let mut enrichment_failed = 0u64;
    let mut days: BTreeMap<NaiveDate, DayFigures> = week
        .days()
        .map(|d| {
            (
                d,
                DayFigures {
                    day: d,
                    by_route: Route::ALL.iter().map(|r| (*r, 0)).collect(),
                    cache_writes: 0,
                },
            )
        })
        .collect();
    let mut hooks: BTreeMap<(String, String), WebhookFigures> = BTreeMap::new();
    let hook = |hooks: &mut BTreeMap<(String, String), WebhookFigures>, s: &str, v: String| {
        hooks
            .entry((s.to_owned(), v.clone()))
            .or_insert_with(|| WebhookFigures {
                source: s.to_owned(),
                version: v,
                deliveries: 0,
                parse_failures: 0,
                missing_fields: 0,
                accuracy: Rate::of(0, 0),
                verdicts: Weighted::default(),
            });
    };
    let mut hook_acc: BTreeMap<(String, String), Weighted> = BTreeMap::new();
    for r in rows {
        if r.severity == Severity::Urgent {
            urgent += 1;
        }
        if r.fallback {
            fallbacks += 1;
        }
        if let Some(rule) = &r.weighting_rule {
            *changed_by_rule.entry(rule.clone()).or_default() += 1;
        }
        enrichment_failed += u64::from(r.enrichment_failed);
        cost += r.usage.cost_usd;
        if let Some(c) = &r.caller {
            let f = callers.entry(c.clone()).or_default();
            f.decisions += 1;
            f.cost_usd += r.usage.cost_usd;
        }
        read += r.usage.cache_read_tokens;
        all_input += r.usage.input_tokens + r.usage.cache_read_tokens + r.usage.cache_write_tokens;
        if let Some(ms) = r.usage.model_latency_ms {
            latencies.push(ms);
            retries += i64::from(r.usage.model_retries);
        }
        if !seen_tickets.insert((r.source.as_str().to_owned(), r.ticket_id.clone())) {
            repeats += 1;
        }
        let day = r.created_at.with_timezone(&tz).date_naive();
        if let Some(d) = days.get_mut(&day) {
            *d.by_route.entry(r.severity.route()).or_default() += 1;
            d.cache_writes += u64::from(r.usage.cache_write_tokens > 0);
        }
        if let Some(mark) = r.follow_up {
            follow_ups.redecisions += 1;
            match mark {
                FollowUpMark::Raised => {
                    follow_ups.raised += 1;
                    if r.overridden.is_some() {
                        follow_ups.undone += 1;
                    } else {
                        follow_ups.kept += 1;
                    }
                    if let Some(c) = r.correct() {
                        raised_judged += 1;
                        raised_right += u64::from(c);
                    }
                }
                FollowUpMark::NoteOnly => follow_ups.note_only += 1,
                FollowUpMark::Unchanged => {}
            }
        }
        if let Some(v) = r.overridden {
            if let Some(to) = v.corrected_severity() {
                overrides.count += 1;
                if rank(to) > rank(r.severity) {
                    overrides.raised += 1;
                    if r.tier == Tier::Enterprise {
                        ent.2 += 1;
                    }
                } else {
                    overrides.lowered += 1;
                }
            }
        }
        let (Some(truth), Some(correct)) = (r.truth(), r.correct()) else {
            continue;
        };
        let w = r.weight();
        accuracy.add(w, correct);
        by_true.add(truth, w, correct);
        by_decided.add(r.severity, w, correct);
        by_tier.add(r.tier, w, correct);
        by_source.add(r.source.as_str().to_owned(), w, correct);
        by_prompt.add(r.prompt_version.clone(), w, correct);
        by_model.add(r.model.clone(), w, correct);
        if let Some(c) = &r.caller {
            by_caller.add(c.clone(), w, correct);
        }
        truth_urgent.add(w, truth == Severity::Urgent);
        if r.severity == Severity::Urgent && truth == Severity::Routine {
            urgent_down += 1;
        }
        if r.tier == Tier::Enterprise {
            ent.0 += 1;
            if rank(truth) > rank(r.severity) {
                ent.1 += 1;
            }
            if truth != Severity::Routine {
                ent_recall.add(w, correct);
            }
        }
        if r.source != crate::domain::Source::Api {
            let key = (
                r.source.as_str().to_owned(),
                version_label(r.webhook_version.as_deref()),
            );
            hook_acc.entry(key).or_default().add(w, correct);
        }
    }
    for d in deliveries {
        let v = version_label(d.webhook_version.as_deref());
        hook(&mut hooks, d.source.as_str(), v.clone());
        if let Some(h) = hooks.get_mut(&(d.source.as_str().to_owned(), v)) {
            h.deliveries += 1;
            h.missing_fields += u64::from(!d.missing_fields.is_empty());
        }
    }
    for j in rejections {
        let v = version_label(j.webhook_version.as_deref());
        hook(&mut hooks, j.source.as_str(), v.clone());
        if let Some(h) = hooks.get_mut(&(j.source.as_str().to_owned(), v)) {
            h.parse_failures += 1;
        }
    }
    for (key, verdicts) in hook_acc {
        hook(&mut hooks, &key.0, key.1.clone());
        if let Some(h) = hooks.get_mut(&key) {
            h.accuracy = verdicts.rate();
            h.verdicts = verdicts;
        }
    }
    let n = rows.len() as u64;
    #[allow(clippy::cast_precision_loss)]
    let nf = n as f64;
    overrides.share_of_decisions = ratio(overrides.count as f64, nf);
    let calls = latencies.len() as u64;
    #[allow(clippy::cast_precision_loss)]
    let latency = Latency {
        calls,
        p50_ms: stats::percentile(&mut latencies, 0.50),
        p95_ms: stats::percentile(&mut latencies, 0.95),
        retries_per_decision: ratio(retries as f64, calls as f64),
    };
    let cache_writes: u64 = days.values().map(|d| d.cache_writes).sum();
    #[allow(clippy::cast_precision_loss)]
    let cost = Cost {
        total_usd: cost,
        per_decision_usd: ratio(cost, nf),
        cache_hit_share: ratio(read as f64, all_input as f64),
        cache_writes_per_day: cache_writes as f64 / 7.0,
        fallback_share: Rate::of(fallbacks, n),
        duplicate_deliveries: deliveries
            .iter()
            .map(|d| u64::try_from(d.duplicates).unwrap_or(0))
            .sum(),
        repeat_decisions: repeats,
    };
    WeekFigures {
        week,
        decisions: n,
        accuracy: accuracy.rate(),
        sample: super::sample::figures(rows),
        by_true_severity: by_true.rates(),
        by_decided_severity: by_decided.rates(),
        by_tier: by_tier.rates(),
        by_source: by_source.rates(),
        by_prompt_version: by_prompt.rates(),
        by_model: by_model.rates(),
        by_caller: by_caller.rates(),
        callers,
        overrides,
        follow_ups: FollowUps {
            raised_accuracy: Rate::of(raised_right, raised_judged),
            ..follow_ups
        },
        urgent_share: Rate::of(urgent, n),
        truth_urgent_share: truth_urgent.rate(),
        urgent_corrected_down: urgent_down,
        enterprise: Enterprise {
            reviewed: ent.0,
            corrected_up: ent.1,
            recall: ent_recall.rate(),
            overridden_up: ent.2,
        },
        latency,
        cost,
        webhooks: hooks.into_values().collect(),
        days: days.into_values().collect(),
        weighting: WeightingFigures {
            changed: Rate::of(changed_by_rule.values().sum(), n),
            changed_by_rule,
            enrichment_failed,
        },
    }
}

/// Accuracy per confidence band for one model, and its expected calibration error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// The model.
    pub model: String,
    /// Reviewed decisions of the model.
    pub verdicts: u64,
    /// Σ over bands of (band verdicts / verdicts) × |accuracy − mean confidence|: 0 when
    /// confidence means what it says.
    pub ece: f64,
    /// The bands with verdicts, lowest first.
    pub bands: Vec<Band>,
}

/// One confidence band.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Band {
    /// Lower edge (inclusive).
    pub from: f64,
    /// Upper edge (exclusive, except 1.0).
    pub to: f64,
    /// Mean confidence of the band's verdicts.
    pub mean_confidence: f64,
    /// Their accuracy.
    pub accuracy: Rate,
}

/// The band edges: below 0.5 is one band (models rarely go there), then tenths.
pub const BAND_EDGES: [f64; 7] = [0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

/// Calibration per model over the sampled reviews in `rows`, models in name order: each
/// band's accuracy and mean confidence weighted like the headline, its share of the error the
/// weighted share of the model's verdicts it holds.
pub fn calibration(rows: &[AuditRow]) -> Vec<Calibration> {
    let mut per: BTreeMap<&str, Vec<(f64, f64, bool)>> = BTreeMap::new();
    for r in rows {
        if let Some(c) = r.correct() {
            per.entry(r.model.as_str())
                .or_default()
                .push((f64::from(r.confidence), r.weight(), c));
        }
    }
    per.into_iter()
        .map(|(model, points)| {
            let mut bands = Vec::new();
            let mut ece = 0.0;
            let total: f64 = points.iter().map(|(_, w, _)| w).sum();
            for e in BAND_EDGES.windows(2) {
                let (from, to) = (e[0], e[1]);
                let last = (to - 1.0).abs() < f64::EPSILON;
                let inside: Vec<&(f64, f64, bool)> = points
                    .iter()
                    .filter(|(c, _, _)| *c >= from && (*c < to || (last && *c <= to)))
                    .collect();
                if inside.is_empty() {
                    continue;
                }
                let weight: f64 = inside.iter().map(|(_, w, _)| w).sum();
                let mean = inside.iter().map(|(c, w, _)| c * w).sum::<f64>() / weight;
                let mut acc = Weighted::default();
                for (_, w, ok) in &inside {
                    acc.add(*w, *ok);
                }
                let accuracy = acc.rate();
                ece += weight / total * (accuracy.share - mean).abs();
                bands.push(Band {
                    from,
                    to,
                    mean_confidence: mean,
                    accuracy,
                });
            }
            Calibration {
                model: model.to_owned(),
                verdicts: points.len() as u64,
                ece,
                bands,
            }
        })
        .collect()
}
