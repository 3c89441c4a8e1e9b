//! HTML of the review pages, rendered on the server. Every value from the log (ticket text,
//! reasoning, names) goes through [`esc`].

use std::fmt::Write as _;

use crate::{
    domain::Sentiment,
    review::{Pass, Review, ReviewItem, ReviewVerdict, Sample, Tally, source_key},
    taxonomy::Taxonomy,
    text::{escape_html as esc, usd},
};

/// What a review page shows: a day's sample in one pass, to one reviewer.
pub(super) struct View<'a> {
    /// The sample.
    pub(super) sample: &'a Sample,
    /// The pass: every item (first), those offered for a double review (second, without the
    /// first verdict), or the disputed ones (adjudication, with both verdicts).
    pub(super) pass: Pass,
    /// The day's tally (none while a second review of the day is open).
    pub(super) tally: Option<Tally>,
    /// The tally is held back until the day's second reviews are in.
    pub(super) tally_hidden: bool,
    /// Who is logged in.
    pub(super) reviewer: &'a str,
    /// The CSRF token of the session.
    pub(super) csrf: &'a str,
    /// The review time zone.
    pub(super) tz: &'a str,
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}\
header{background:#1d2330;color:#fff;padding:12px 24px;display:flex;gap:16px;align-items:center;flex-wrap:wrap}\
header h1{font-size:18px;margin:0}header form{margin:0}main{max-width:860px;margin:0 auto;padding:16px}\
.card{background:#fff;border-radius:8px;padding:16px 20px;margin:0 0 16px;box-shadow:0 1px 2px #0002}\
.card h2{font-size:16px;margin:0 0 6px}.meta{color:#566;font-size:13px}.msg{white-space:pre-wrap;background:#f7f8fa;\
padding:8px 10px;border-radius:6px;margin:8px 0;max-height:16em;overflow:auto}.decision{font-weight:600}\
.fallback{background:#fff3cd;border-radius:4px;padding:2px 6px;font-size:13px}\
.done{color:#1a7f37;font-weight:600}.corrected{color:#b35900;font-weight:600}.skipped{color:#777}\
.buttons{display:flex;gap:8px;flex-wrap:wrap;margin-top:10px}button{font:inherit;padding:6px 12px;border-radius:6px;\
border:1px solid #889;background:#fff;cursor:pointer}button.ok{background:#1a7f37;color:#fff;border-color:#1a7f37}\
select{font:inherit;padding:4px 6px}input[type=text],input[type=password]{font:inherit;padding:6px 8px;width:100%;box-sizing:border-box;border:1px solid #aab;border-radius:6px}\
.tally{font-size:14px}label{display:block;margin:10px 0 4px}.passes a{color:#fff}";

fn shell(title: &str, header: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><header><h1>escalator review</h1>{header}</header>\
         <main>{body}</main></body></html>",
        esc(title)
    )
}

/// A page with one message (errors).
pub(super) fn message(title: &str, text: &str) -> String {
    shell(
        title,
        "",
        &format!(
            "<div class=\"card\"><h2>{}</h2><p>{}</p><p><a href=\"/review\">Back to the review</a></p></div>",
            esc(title),
            esc(text)
        ),
    )
}

/// The login form.
/// The login form, going on to `next` (`/review` or `/dashboard`); with the admin token as a
/// login it also asks for a name (a reviewer's token names its holder).
pub(super) fn login_to(csrf: &str, error: Option<&str>, next: &str, ask_name: bool) -> String {
    let error = error
        .map(|e| format!("<p class=\"corrected\">{}</p>", esc(e)))
        .unwrap_or_default();
    let name = if ask_name {
        "<label for=\"name\">Your name, with the admin token (a reviewer's token names you)</label>\
         <input type=\"text\" id=\"name\" name=\"name\" maxlength=\"60\">"
    } else {
        ""
    };
    shell(
        "Log in",
        "",
        &format!(
            "<div class=\"card\"><h2>Log in</h2>{error}<form method=\"post\" action=\"/review/login\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <input type=\"hidden\" name=\"next\" value=\"{}\">\
             <label for=\"token\">Your token</label>\
             <input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"current-password\" required>\
             {name}<div class=\"buttons\"><button class=\"ok\" type=\"submit\" id=\"login\">Log in</button></div>\
             </form></div>",
            esc(csrf),
            esc(next)
        ),
    )
}

/// One verdict as a card shows it.
fn judged(r: &Review, label: &str) -> String {
    let class = match r.verdict {
        ReviewVerdict::Correct => "done",
        ReviewVerdict::Corrected(_) => "corrected",
    };
    format!(
        "<p class=\"{class} verdict\">{label} {} by {}{}</p>",
        esc(&r.verdict.to_string()),
        esc(&r.reviewer),
        r.why
            .as_deref()
            .map(|w| format!(": “{}”", esc(w)))
            .unwrap_or_default()
    )
}

/// The verdicts a card of `pass` shows: its own pass's (never the first verdict on the second
/// pass), and on adjudication both verdicts it settles.
fn status(item: &ReviewItem, pass: Pass) -> String {
    match pass {
        Pass::First => match (&item.latest, item.skipped) {
            (Some(r), _) => judged(r, "Judged"),
            (None, true) => "<p class=\"skipped verdict\">Skipped</p>".to_owned(),
            (None, false) => String::new(),
        },
        Pass::Second => item
            .second
            .as_ref()
            .map(|r| judged(r, "Second verdict:"))
            .unwrap_or_default(),
        Pass::Adjudication => {
            let mut out = String::new();
            for (r, label) in [
                (&item.latest, "First verdict:"),
                (&item.second, "Second verdict:"),
                (&item.adjudication, "Adjudicated:"),
            ] {
                if let Some(r) = r {
                    out.push_str(&judged(r, label));
                }
            }
            out
        }
    }
}

/// The label fields of a card's form: a topic and a sentiment select and, per shadow category
/// asked, whether it applies. Each is preset to the last review's word when it gave one, else
/// to the decision's labels (so Correct alone confirms them): judging a card again (say, its
/// severity) keeps the labels the reviewer corrected instead of reverting them to the model's.
fn label_fields(i: usize, item: &ReviewItem, pass: Pass, taxonomy: &Taxonomy) -> String {
    let d = &item.decision;
    let judged = item.verdict(pass).map(|r| &r.labels);
    let mut out = String::new();
    let select = |out: &mut String, name: &str, label: &str, options: &[&str], chosen: &str| {
        let _ = write!(
            out,
            "<label for=\"{name}-{i}\">{label}</label><select id=\"{name}-{i}\" name=\"{name}\">"
        );
        for o in options {
            let _ = write!(
                out,
                "<option value=\"{v}\"{sel}>{v}</option>",
                v = esc(o),
                sel = if *o == chosen { " selected" } else { "" }
            );
        }
        out.push_str("</select>");
    };
    if let Some(topic) = &d.topic {
        let mut topics = taxonomy.topics();
        if !topics.contains(&topic.as_str()) {
            // A topic configured when it was decided, since removed: still shown as decided.
            topics.insert(0, topic);
        }
        // The reviewer's topic, unless it has since been removed (the form would be refused).
        let chosen = judged
            .and_then(|l| l.topic.as_deref())
            .filter(|t| topics.contains(t))
            .unwrap_or(topic.as_str());
        select(&mut out, "topic", "Topic", &topics, chosen);
    }
    if let Some(s) = d.sentiment {
        let chosen = judged.and_then(|l| l.sentiment).unwrap_or(s);
        let all: Vec<&str> = Sentiment::ALL.iter().map(|s| s.as_str()).collect();
        select(&mut out, "sentiment", "Sentiment", &all, chosen.as_str());
    }
    for (name, applies) in &d.shadow {
        let answer = match judged.and_then(|l| l.shadow.get(name)) {
            Some(true) => "yes",
            Some(false) => "no",
            None => "not judged",
        };
        let definition = taxonomy
            .category(name)
            .map(|c| format!(": {}", c.definition))
            .unwrap_or_default();
        select(
            &mut out,
            &format!("shadow.{name}"),
            &format!(
                "Shadow category {}{} (the model says it {}). Does it apply?",
                esc(name),
                esc(&definition),
                if *applies {
                    "applies"
                } else {
                    "does not apply"
                }
            ),
            &["not judged", "yes", "no"],
            answer,
        );
    }
    out
}

fn card(out: &mut String, i: usize, item: &ReviewItem, view: &View<'_>, taxonomy: &Taxonomy) {
    let (sample, csrf, pass) = (view.sample, view.csrf, view.pass);
    let total = sample.items.len();
    let d = &item.decision;
    let _ = write!(
        out,
        "<section class=\"card\" id=\"card-{n}\" data-decision=\"{id}\"><div class=\"meta\">{n}/{total} · {src} {tid} · decided {at}</div>",
        n = i + 1,
        id = esc(&d.id),
        src = esc(d.source.as_str()),
        tid = esc(&d.ticket_id),
        at = d.created_at.format("%Y-%m-%d %H:%M UTC"),
    );
    match &item.ticket {
        Some(t) => {
            let _ = write!(
                out,
                "<h2>{}</h2><div class=\"msg\">{}</div><div class=\"meta\">tier {}{}</div>",
                esc(&t.subject),
                esc(&crate::text::ellipsize(&t.body, 4_000)),
                esc(t.tier.as_str()),
                t.arr_usd
                    .map(|a| format!(" · ARR {}", esc(&usd(a))))
                    .unwrap_or_default()
            );
        }
        None => out.push_str("<h2>(ticket text not in the routing log)</h2>"),
    }
    let _ = write!(
        out,
        "<p class=\"decision\">{} → {} · confidence {:.2}{}</p><p>{}</p><div class=\"meta\">{} · prompt {}</div>",
        esc(d.severity.as_str()),
        esc(d.route.as_str()),
        d.confidence,
        if d.fallback {
            format!(
                " <span class=\"fallback\">fallback: {}</span>",
                esc(d.fallback_reason.as_deref().unwrap_or("offline classifier"))
            )
        } else {
            String::new()
        },
        esc(&d.reasoning),
        esc(&d.model),
        esc(&d.prompt_version),
    );
    if let Some(rule) = &d.weighting_rule {
        let _ = write!(
            out,
            "<div class=\"meta weighting\">the classifier said {}; rule {} raised it to {}</div>",
            esc(d.model_severity.as_str()),
            esc(rule),
            esc(d.severity.as_str()),
        );
    }
    if d.topic.is_some() || d.sentiment.is_some() {
        let _ = write!(
            out,
            "<p class=\"labels\">topic {} · sentiment {}</p>",
            esc(d.topic.as_deref().unwrap_or("-")),
            d.sentiment.map_or("-", Sentiment::as_str)
        );
    }
    let mine = |r: &Option<Review>| r.as_ref().is_some_and(|r| r.reviewer == view.reviewer);
    // A first verdict waiting for its blind second review is shown to its author only.
    let held = pass == Pass::First
        && item.double_review()
        && item.second.is_none()
        && item.latest.is_some()
        && !mine(&item.latest);
    if held {
        out.push_str(
            "<p class=\"skipped verdict held\">Judged by another reviewer; the verdict is hidden until its second review is in.</p>",
        );
    } else {
        out.push_str(&status(item, pass));
    }
    let barred = match pass {
        Pass::First if held => Some("This decision waits for its second review."),
        Pass::First if mine(&item.second) => Some(
            "You gave the second verdict on this decision; the first must come from someone else.",
        ),
        Pass::Second if mine(&item.latest) => Some(
            "You gave the first verdict on this decision; the second must come from someone else.",
        ),
        _ => None,
    };
    if let Some(why) = barred {
        let _ = write!(out, "<p class=\"skipped barred\">{}</p>", esc(why));
    } else if !(item.skipped && pass == Pass::First) {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/review/verdict\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"decision_id\" value=\"{id}\">\
             <input type=\"hidden\" name=\"date\" value=\"{day}\">\
             <input type=\"hidden\" name=\"source\" value=\"{source}\">\
             <input type=\"hidden\" name=\"card\" value=\"{i}\">\
             <input type=\"hidden\" name=\"pass\" value=\"{pass}\">\
             <label for=\"why-{i}\">Why (optional, one line)</label>\
             <input type=\"text\" id=\"why-{i}\" name=\"why\" maxlength=\"300\">\
             {labels}<div class=\"buttons\">\
             <button class=\"ok\" name=\"verdict\" value=\"correct\">Correct</button>\
             <button name=\"verdict\" value=\"routine\">Routine (bot)</button>\
             <button name=\"verdict\" value=\"urgent\">Urgent (human)</button>\
             <button name=\"verdict\" value=\"on_fire\">On fire (engineering)</button>\
             {skip}</div></form>",
            csrf = esc(csrf),
            id = esc(&d.id),
            day = sample.day.format("%Y-%m-%d"),
            source = source_key(sample.source),
            pass = pass.as_str(),
            labels = label_fields(i, item, pass, taxonomy),
            skip = if pass == Pass::First && item.latest.is_none() {
                "<button name=\"verdict\" value=\"skip\">Skip</button>"
            } else {
                ""
            },
        );
    }
    out.push_str("</section>");
}

/// The day's sample in one pass, one card per ticket of the pass, with links to the other
/// passes.
pub(super) fn sample(view: &View<'_>, taxonomy: &Taxonomy) -> String {
    let sample = view.sample;
    let total = sample.items.len();
    let shown: Vec<(usize, &ReviewItem)> = sample.of_pass(view.pass).collect();
    let open = sample.open_for(view.pass, view.reviewer).count();
    let link = |p: Pass, label: String| {
        if p == view.pass {
            format!("<strong class=\"pass\">{}</strong>", esc(&label))
        } else {
            format!(
                "<a class=\"pass\" href=\"/review?date={}&amp;source={}&amp;pass={}\">{}</a>",
                sample.day.format("%Y-%m-%d"),
                source_key(sample.source),
                p.as_str(),
                esc(&label)
            )
        }
    };
    let passes = format!(
        "<nav class=\"passes\">{} · {} · {}</nav>",
        link(Pass::First, "Review".to_owned()),
        link(
            Pass::Second,
            format!("Second review ({})", sample.of_pass(Pass::Second).count())
        ),
        link(
            Pass::Adjudication,
            format!(
                "Adjudication ({})",
                sample.of_pass(Pass::Adjudication).count()
            )
        ),
    );
    let header = format!(
        "<span>{day} ({tz}) · {source}</span>{passes}<span class=\"tally\">{done}/{count} done{tally}</span>\
         <span>{reviewer}</span><form method=\"post\" action=\"/review/logout\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button type=\"submit\">Log out</button></form>",
        day = sample.day.format("%Y-%m-%d"),
        tz = esc(view.tz),
        source = source_key(sample.source),
        done = shown.len() - open.min(shown.len()),
        count = shown.len(),
        tally = match (view.tally, view.tally_hidden) {
            (Some(t), _) => format!(" · {}", esc(&t.to_string())),
            (None, true) => " · the tally waits until the day's second reviews are in".to_owned(),
            (None, false) => String::new(),
        },
        reviewer = esc(view.reviewer),
        csrf = esc(view.csrf),
    );
    let mut body = String::new();
    match view.pass {
        _ if total == 0 => body.push_str("<div class=\"card\"><h2>No decisions to review for this day.</h2><p>Pick another day with <code>?date=YYYY-MM-DD</code>.</p></div>"),
        Pass::Second if shown.is_empty() => body.push_str("<div class=\"card\"><h2>No decision of this day was offered for a second review.</h2><p><code>[review] second_reviewer_share</code> sets the share of each day's sample offered.</p></div>"),
        Pass::Second => body.push_str("<div class=\"card\"><p>Second review: judge each ticket on its own. The first verdict is not shown; a disagreement goes to adjudication.</p></div>"),
        Pass::Adjudication if shown.is_empty() => body.push_str("<div class=\"card\"><h2>No disagreement to settle for this day.</h2></div>"),
        Pass::Adjudication => body.push_str("<div class=\"card\"><p>Adjudication: the two reviewers disagree on these tickets. Your verdict settles each; it is the one the accuracy counts.</p></div>"),
        Pass::First => {}
    }
    for (i, item) in shown {
        card(&mut body, i, item, view, taxonomy);
    }
    shell("Review", &header, &body)
}
