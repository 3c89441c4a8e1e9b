//! The `/dashboard` page: the weekly audit as server-rendered SVG charts ([`super::charts`])
//! and tables (the gate, the symptoms, last week's misses with their reasoning), behind the
//! same admin login as `/review`. Every value from the log goes through `esc`.

use std::fmt::Write as _;

use super::charts;
use crate::{audit::Report, text::escape_html as esc};

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}\
header{background:#1d2330;color:#fff;padding:12px 24px;display:flex;gap:16px;align-items:center;flex-wrap:wrap}\
header h1{font-size:18px;margin:0}header form{margin:0}header a{color:#fff}main{max-width:1320px;margin:0 auto;padding:16px}\
.card{background:#fff;border-radius:8px;padding:16px 20px;margin:0 0 16px;box-shadow:0 1px 2px #0002}\
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(640px,1fr));gap:16px}\
figure{margin:0;background:#fff;border-radius:8px;padding:8px;box-shadow:0 1px 2px #0002}\
figcaption{font-size:13px;color:#566;padding:0 8px 4px}table{border-collapse:collapse;width:100%;font-size:14px}\
td,th{border-bottom:1px solid #dde;padding:6px 8px;text-align:left;vertical-align:top}\
.firing{color:#b91c1c;font-weight:600}.ok{color:#1a7f37}.below{color:#b91c1c;font-weight:600}\
button{font:inherit;padding:4px 10px;border-radius:6px;border:1px solid #889;background:#fff;cursor:pointer}";

fn figure(out: &mut String, id: &str, caption: &str, svg: Result<String, String>) {
    match svg {
        Ok(svg) => {
            let _ = write!(
                out,
                "<figure id=\"{id}\">{svg}<figcaption>{}</figcaption></figure>",
                esc(caption)
            );
        }
        Err(e) => {
            tracing::warn!(chart = id, error = %e, "dashboard chart failed");
            let _ = write!(
                out,
                "<figure id=\"{id}\"><figcaption>{} could not be drawn.</figcaption></figure>",
                esc(caption)
            );
        }
    }
}

/// The last week's sample: the accuracy per stratum, the unsampled verdicts apart, the two
/// reviewers' agreement and their disagreements.
fn sample(body: &mut String, w: &crate::audit::figures::WeekFigures) {
    let s = &w.sample;
    let _ = write!(
        body,
        "<section class=\"card\" id=\"sample\"><h2>Sample in {}</h2>\
         <p>{} decisions offered. Each stratum's accuracy is weighted within it; its weight is the share \
         of the week's decisions its verdicts stand for in the headline.</p>\
         <table id=\"strata\"><tr><th>stratum</th><th>offered</th><th>accuracy</th><th>weight</th>\
         <th>mean inclusion probability</th></tr>",
        w.week, s.offered
    );
    for f in &s.strata {
        let _ = write!(
            body,
            "<tr data-stratum=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td><td>{:.3}</td></tr>",
            esc(&f.stratum),
            esc(&f.stratum),
            f.offered,
            esc(&f.accuracy.to_string()),
            f.weight_share * 100.0,
            f.mean_inclusion_probability
        );
    }
    body.push_str("</table>");
    let u = &s.unsampled;
    let _ = write!(
        body,
        "<p id=\"unsampled\">Unsampled verdicts: {}{} (a reviewer chose these decisions, so they are \
         not in the accuracy; their corrections still become labels).</p>",
        u.n,
        if u.n > 0 {
            format!(", accuracy {}", esc(&u.to_string()))
        } else {
            String::new()
        }
    );
    let a = &s.agreement;
    let _ = write!(
        body,
        "<p id=\"agreement\">Double review: {} offered to a second reviewer; agreement on the severity: {} \
         (Cohen's kappa, 95% interval); {} awaiting adjudication (counted with the first verdict until then).</p>",
        a.offered,
        esc(&a.kappa.to_string()),
        a.awaiting_adjudication
    );
    if !a.disagreements.is_empty() {
        body.push_str(
            "<table id=\"disagreements\"><tr><th>ticket</th><th>decided</th><th>first</th><th>second</th>\
             <th>adjudication</th></tr>",
        );
        for d in &a.disagreements {
            let _ = write!(
                body,
                "<tr class=\"disagreement\" data-decision=\"{}\"><td>{} {}</td><td>{}</td><td>{} ({})</td>\
                 <td>{} ({})</td><td>{}</td></tr>",
                esc(&d.decision_id),
                esc(d.source.as_str()),
                esc(&d.ticket_id),
                esc(d.decided.as_str()),
                esc(d.first.0.as_str()),
                esc(&d.first.1),
                esc(d.second.0.as_str()),
                esc(&d.second.1),
                d.adjudicated.as_ref().map_or_else(
                    || "awaiting".to_owned(),
                    |(s, who)| format!("{} ({})", esc(s.as_str()), esc(who))
                ),
            );
        }
        body.push_str("</table>");
    }
    body.push_str("</section>");
}

/// The whole page for `report`, for `reviewer` (whose logout form carries `csrf`).
pub(super) fn page(report: &Report, reviewer: &str, csrf: &str) -> String {
    let weeks = &report.weeks;
    let g = &report.gate;
    let mut body = String::new();
    let class = match g.outcome {
        crate::audit::Outcome::Below => "below",
        _ => "ok",
    };
    let _ = write!(
        body,
        "<section class=\"card\" id=\"gate\"><p class=\"{class}\">{}</p>\
         <p>Sampled reviews alone make the accuracy, each verdict weighted by the inverse of its \
         inclusion probability; verdicts on decisions the draw never offered ({} in {}) and \
         agents' overrides (misses only: {}) are counted beside it.</p></section>",
        esc(&g.message()),
        report.last().map_or(0, |w| w.sample.unsampled.n),
        g.week,
        report.last().map_or(0, |w| w.overrides.count),
    );
    body.push_str("<div class=\"charts\">");
    figure(
        &mut body,
        "chart-accuracy",
        "Accuracy of sampled reviews per ISO week, weighted by the sample design: point = accuracy, bar = 95% Wilson interval on the effective sample size, n = verdicts (eff = effective sample size, when the weights differ); dashed line = the bar.",
        charts::accuracy(weeks, g.min_accuracy),
    );
    figure(
        &mut body,
        "chart-decisions",
        "Decisions per day by route.",
        charts::decisions_per_day(weeks),
    );
    figure(
        &mut body,
        "chart-cost",
        "Cost per decision (USD) per week.",
        charts::weekly_line(
            weeks,
            "Cost per decision",
            |w| (w.decisions > 0).then_some(w.cost.per_decision_usd),
            |y| format!("${y:.4}"),
        ),
    );
    figure(
        &mut body,
        "chart-latency",
        "p95 model latency (ms) per week.",
        charts::weekly_line(
            weeks,
            "p95 model latency",
            |w| {
                #[allow(clippy::cast_precision_loss)]
                let v = w.latency.p95_ms.map(|v| v as f64);
                v
            },
            |y| format!("{y:.0} ms"),
        ),
    );
    figure(
        &mut body,
        "chart-cache",
        "Cache reads of all input tokens per week.",
        charts::weekly_line(
            weeks,
            "Cache-hit share",
            |w| (w.decisions > 0).then_some(w.cost.cache_hit_share),
            |y| format!("{:.0}%", y * 100.0),
        ),
    );
    figure(
        &mut body,
        "chart-fallback",
        "Decisions made by the offline fallback per week.",
        charts::weekly_line(
            weeks,
            "Fallback share",
            |w| (w.decisions > 0).then_some(w.cost.fallback_share.share),
            |y| format!("{:.1}%", y * 100.0),
        ),
    );
    figure(
        &mut body,
        "chart-raises",
        "Tickets raised by a customer's follow-up per week (a label, priority or assignee changed; note-only raises not counted).",
        charts::weekly_line(
            weeks,
            "Follow-up raises",
            |w| {
                #[allow(clippy::cast_precision_loss)]
                let v = w.follow_ups.raised as f64;
                Some(v)
            },
            |y| format!("{y:.0}"),
        ),
    );
    body.push_str("</div>");
    if let Some(w) = report.last() {
        sample(&mut body, w);
    }
    body.push_str(
        "<section class=\"card\" id=\"symptoms\"><h2>Symptoms</h2><table><tr><th></th><th>symptom</th><th>now</th><th>fix that usually works</th></tr>",
    );
    for s in &report.symptoms {
        let _ = write!(
            body,
            "<tr data-symptom=\"{id}\"><td class=\"{c}\">{state}</td><td>{n}. {t}</td><td>{sum}</td><td>{fix}</td></tr>",
            id = s.id,
            c = if s.firing { "firing" } else { "ok" },
            state = if s.firing { "firing" } else { "ok" },
            n = s.number,
            t = esc(s.title),
            sum = esc(&s.summary),
            fix = if s.firing { esc(s.fix) } else { String::new() },
        );
    }
    body.push_str("</table></section>");
    let _ = write!(
        body,
        "<section class=\"card\"><h2>Misses in {}</h2><table id=\"misses\"><tr><th>ticket</th><th>excerpt</th>\
         <th>model said</th><th>corrected to</th><th>why</th><th>model's reasoning</th></tr>",
        g.week
    );
    if report.misses.is_empty() {
        body.push_str("<tr><td colspan=\"6\">No misses.</td></tr>");
    }
    for m in &report.misses {
        let _ = write!(
            body,
            "<tr class=\"miss\" data-decision=\"{}\"><td>{} {}<br><small>{} · {}</small></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&m.decision_id),
            esc(m.source.as_str()),
            esc(&m.ticket_id),
            esc(m.tier.as_str()),
            esc(&m.origin),
            esc(&m.excerpt),
            esc(m.model_said.as_str()),
            esc(m.reviewer_said.as_str()),
            esc(m.why.as_deref().unwrap_or("")),
            esc(&m.reasoning),
        );
    }
    body.push_str("</table></section>");
    let header = format!(
        "<span>{} to {} ({})</span><a href=\"/review\">Review</a><span>{}</span>\
         <form method=\"post\" action=\"/review/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\">Log out</button></form>",
        weeks
            .first()
            .map(|w| w.week.to_string())
            .unwrap_or_default(),
        g.week,
        esc(&report.time_zone),
        esc(reviewer),
        esc(csrf)
    );
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>escalator dashboard</title><style>{STYLE}</style></head><body><header>\
         <h1>escalator dashboard</h1>{header}</header><main>{body}</main></body></html>"
    )
}
