//! `escalator review`: the day's sample in a terminal, one ticket at a time. On a terminal a
//! verdict is one keystroke (`c`, `r`, `u`, `f`, `s`, `q`; read in raw mode with crossterm),
//! then an optional one-line why; from a pipe or in tests each key is a line of the input
//! stream ([`Lines`]), so the same flow runs everywhere.
//!
//! Over 450 lines with its tests: one interactive flow (card, keystroke, why, labels, shadow
//! questions) and the two key sources it runs on.

use std::io::{BufRead, Write};

use crate::{
    domain::{Decision, Sentiment, Severity, Source},
    store::{Reviews, ScoreQueue},
    taxonomy::Taxonomy,
    text::usd,
};

use super::{LabelVerdict, NewReview, Origin, Pass, Review, ReviewItem, ReviewVerdict, Sample};

/// Longest first message shown, in characters (the rest is cut with `…`).
const SHOWN_BODY_CHARS: usize = 1_500;

/// How a terminal session ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Verdicts recorded.
    pub judged: usize,
    /// Items skipped (in the first pass not offered again; in the others offered next time).
    pub skipped: usize,
    /// Items left open (the reviewer quit, or the input ended).
    pub left: usize,
}

/// One key's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Verdict(ReviewVerdict),
    Skip,
    Quit,
}

fn parse_key(line: &str) -> Option<Key> {
    match line.trim().to_ascii_lowercase().as_str() {
        "c" => Some(Key::Verdict(ReviewVerdict::Correct)),
        "r" => Some(Key::Verdict(ReviewVerdict::Corrected(Severity::Routine))),
        "u" => Some(Key::Verdict(ReviewVerdict::Corrected(Severity::Urgent))),
        "f" => Some(Key::Verdict(ReviewVerdict::Corrected(Severity::OnFire))),
        "s" => Some(Key::Skip),
        "q" => Some(Key::Quit),
        _ => None,
    }
}

/// The item as the terminal shows it: ticket, decision, and how it was reached. Ticket text
/// and the model's words can hold escape sequences, carriage returns and bidi overrides that
/// would recolour, hide, rewrite or reorder what the reviewer reads: every such character is
/// shown escaped instead ([`crate::text::for_terminal`]).
pub fn render(item: &ReviewItem, position: usize, total: usize) -> String {
    let d = &item.decision;
    let mut s = format!("\n── {position}/{total} ─────────────────────────────────────────\n");
    match &item.ticket {
        Some(t) => {
            s.push_str(&format!(
                "Subject:    {}\n",
                // Escaped first, so the one line shows what `excerpt` would blank out.
                crate::text::excerpt(&crate::text::for_terminal(&t.subject), 200)
            ));
            let body = crate::text::ellipsize(&t.body, SHOWN_BODY_CHARS);
            s.push_str("Message:    ");
            s.push_str(&body.replace('\n', "\n            "));
            s.push('\n');
            s.push_str(&format!(
                "Customer:   tier {}{}\n",
                t.tier,
                t.arr_usd
                    .map(|a| format!(", ARR {}", usd(a)))
                    .unwrap_or_default()
            ));
        }
        None => s.push_str("Subject:    (the ticket's text is not in the routing log)\n"),
    }
    s.push_str(&format!(
        "Ticket:     {} {} (version {}), decided {}\n",
        d.source,
        d.ticket_id,
        d.ticket_version,
        d.created_at.format("%Y-%m-%d %H:%M UTC")
    ));
    s.push_str(&format!(
        "Decision:   {} -> {} (confidence {:.2})\n",
        d.severity, d.route, d.confidence
    ));
    if let Some(rule) = &d.weighting_rule {
        s.push_str(&format!(
            "Weighting:  the classifier said {}; rule {rule} raised it to {}\n",
            d.model_severity, d.severity
        ));
    }
    s.push_str(&format!("Reasoning:  {}\n", d.reasoning));
    if d.topic.is_some() || d.sentiment.is_some() {
        s.push_str(&format!(
            "Labels:     topic {}, sentiment {}\n",
            d.topic.as_deref().unwrap_or("-"),
            d.sentiment.map_or("-", Sentiment::as_str)
        ));
    }
    for (name, applies) in &d.shadow {
        s.push_str(&format!(
            "Shadow:     {name}: the model says it {}\n",
            if *applies {
                "applies"
            } else {
                "does not apply"
            }
        ));
    }
    s.push_str(&format!(
        "Made by:    {} with prompt {}\n",
        d.model, d.prompt_version
    ));
    if d.fallback {
        s.push_str(&format!(
            "FALLBACK:   the offline classifier decided ({})\n",
            d.fallback_reason.as_deref().unwrap_or("no reason logged")
        ));
    }
    crate::text::for_terminal(&s).into_owned()
}

const KEYS: &str = "[c] correct  [r] routine  [u] urgent  [f] on_fire  [s] skip  [q] quit";

/// The two verdicts an adjudication settles, escaped for the terminal like the card.
fn disagreement(item: &ReviewItem) -> String {
    let line = |label: &str, r: Option<&Review>| {
        r.map_or_else(String::new, |r| {
            format!(
                "{label} {} by {}{}\n",
                r.verdict,
                r.reviewer,
                r.why
                    .as_deref()
                    .map(|w| format!(": {w}"))
                    .unwrap_or_default()
            )
        })
    };
    crate::text::for_terminal(&format!(
        "{}{}",
        line("First:     ", item.latest.as_ref()),
        line("Second:    ", item.second.as_ref())
    ))
    .into_owned()
}

/// Where the reviewer's keys and lines come from.
pub trait Keys {
    /// One verdict key; `None` at the end of the input.
    ///
    /// # Errors
    /// When the input cannot be read.
    fn key(&mut self, out: &mut dyn Write) -> std::io::Result<Option<String>>;
    /// One line (the optional why); `None` at the end of the input.
    ///
    /// # Errors
    /// When the input cannot be read.
    fn line(&mut self) -> std::io::Result<Option<String>>;
    /// What to type after a key, for the prompt.
    fn hint(&self) -> &'static str;
}

/// Keys as lines of an input stream (a pipe, a file, a test).
pub struct Lines<'a>(pub &'a mut dyn BufRead);

impl Keys for Lines<'_> {
    fn key(&mut self, _out: &mut dyn Write) -> std::io::Result<Option<String>> {
        self.line()
    }

    fn line(&mut self) -> std::io::Result<Option<String>> {
        let mut line = String::new();
        if self.0.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        Ok(Some(line))
    }

    fn hint(&self) -> &'static str {
        " (then Enter)"
    }
}

/// Keys from the terminal: one keystroke each, read in raw mode (no Enter needed); the why is
/// read as a normal line. Ctrl-C, Ctrl-D and Esc quit like `q`.
pub struct Tty;

/// Leaves raw mode however the read ends.
struct Raw;

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

impl Keys for Tty {
    fn key(&mut self, out: &mut dyn Write) -> std::io::Result<Option<String>> {
        use crossterm::event::{Event, KeyCode, KeyEventKind, KeyModifiers, read};
        let key = {
            crossterm::terminal::enable_raw_mode()?;
            let _raw = Raw;
            loop {
                let Event::Key(k) = read()? else { continue };
                if k.kind != KeyEventKind::Press {
                    continue;
                }
                match k.code {
                    KeyCode::Char('c' | 'd') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                        break "q".to_owned();
                    }
                    KeyCode::Esc => break "q".to_owned(),
                    KeyCode::Char(c) => break c.to_string(),
                    _ => {}
                }
            }
        };
        // Raw mode does not echo: show what was typed.
        writeln!(out, "{key}")?;
        Ok(Some(key))
    }

    fn line(&mut self) -> std::io::Result<Option<String>> {
        Lines(&mut std::io::stdin().lock()).line()
    }

    fn hint(&self) -> &'static str {
        ""
    }
}

/// What a labels line says: the topic and sentiment it names (each `None` when not named).
///
/// # Errors
/// The words that are neither a topic of `taxonomy` nor a sentiment.
fn parse_labels(
    line: &str,
    taxonomy: &Taxonomy,
) -> Result<(Option<String>, Option<Sentiment>), String> {
    let (mut topic, mut sentiment) = (None, None);
    for word in line.split([' ', ',']).filter(|w| !w.trim().is_empty()) {
        if let Some(t) = taxonomy.topic(word) {
            topic = Some(t.to_owned());
        } else if let Ok(s) = Sentiment::parse("sentiment", word) {
            sentiment = Some(s);
        } else {
            return Err(format!(
                "{:?} is neither a topic ({}) nor a sentiment (negative, neutral, positive).",
                crate::text::excerpt(word, 40),
                taxonomy.topics().join(", ")
            ));
        }
    }
    Ok((topic, sentiment))
}

/// Asks for the labels of `d` besides its severity: one line for topic and sentiment (Enter
/// confirms them), then one per shadow category asked (y, n, or Enter for not judged). The end
/// of the input judges nothing more.
fn ask_labels(
    d: &Decision,
    taxonomy: &Taxonomy,
    input: &mut dyn Keys,
    out: &mut dyn Write,
) -> std::io::Result<LabelVerdict> {
    let mut v = LabelVerdict::default();
    if d.topic.is_some() || d.sentiment.is_some() {
        loop {
            write!(
                out,
                "Topic {}, sentiment {}: Enter if right, or type the right ones: ",
                d.topic.as_deref().unwrap_or("-"),
                d.sentiment.map_or("-", Sentiment::as_str)
            )?;
            out.flush()?;
            let Some(line) = input.line()? else {
                return Ok(v);
            };
            match parse_labels(&line, taxonomy) {
                Ok((topic, sentiment)) => {
                    v.topic = topic.or_else(|| d.topic.clone());
                    v.sentiment = sentiment.or(d.sentiment);
                    break;
                }
                Err(e) => writeln!(out, "{e}")?,
            }
        }
    }
    for (name, applies) in &d.shadow {
        let definition = taxonomy
            .category(name)
            .map(|c| format!(" ({})", c.definition))
            .unwrap_or_default();
        loop {
            write!(
                out,
                "Shadow category {name}{definition}: the model says it {}. Does it apply? [y/n, Enter: not judged] ",
                if *applies {
                    "applies"
                } else {
                    "does not apply"
                }
            )?;
            out.flush()?;
            let Some(line) = input.line()? else {
                return Ok(v);
            };
            match line.trim().to_ascii_lowercase().as_str() {
                "" => break,
                "y" | "yes" => {
                    v.shadow.insert(name.clone(), true);
                    break;
                }
                "n" | "no" => {
                    v.shadow.insert(name.clone(), false);
                    break;
                }
                _ => writeln!(out, "Type y, n, or Enter.")?,
            }
        }
    }
    Ok(v)
}

/// Who judges in a terminal session, in which pass, with which labels.
#[derive(Debug, Clone, Copy)]
pub struct Judge<'a> {
    /// Stored with every verdict.
    pub reviewer: &'a str,
    /// The pass of the review.
    pub pass: Pass,
    /// The topics and shadow categories the labels are checked against.
    pub taxonomy: &'a Taxonomy,
}

/// Runs `pass` of the review of `sample` for `reviewer` (the [`Judge`]): the items still open to them in it
/// (the first pass: every item not judged nor skipped; the second: those offered for a double
/// review, shown without the first verdict; adjudication: the disputed ones, shown with both
/// verdicts). Shows each, reads a key, an optional why and, for a labelled decision, the
/// reviewer's word on its topic, sentiment and shadow categories (checked against
/// `taxonomy`), and records the verdict at once (so quitting keeps what was judged). A skip in
/// the second pass or in adjudication records nothing (the item is offered again). `handle`
/// runs the store calls; call this from a thread outside the runtime (the CLI's main thread, or
/// `spawn_blocking`).
///
/// # Errors
/// When the terminal cannot be read or written, or a verdict cannot be stored (what was judged
/// before it is kept).
pub fn run<S: Reviews + ScoreQueue + ?Sized>(
    handle: &tokio::runtime::Handle,
    store: &S,
    sample: &Sample,
    judge: &Judge<'_>,
    input: &mut dyn Keys,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let Judge {
        reviewer,
        pass,
        taxonomy,
    } = *judge;
    let total = sample.items.len();
    let open: Vec<(usize, &ReviewItem)> = sample.open_for(pass, reviewer).collect();
    let mut outcome = Outcome {
        left: open.len(),
        ..Outcome::default()
    };
    let source = sample.source.map_or("all sources", Source::as_str);
    let what = match pass {
        Pass::First => String::new(),
        Pass::Second => format!(
            ", second review: {} offered to a second reviewer",
            sample.of_pass(Pass::Second).count()
        ),
        Pass::Adjudication => format!(
            ", adjudication: {} disagreement(s)",
            sample.of_pass(Pass::Adjudication).count()
        ),
    };
    writeln!(
        out,
        "Review of {} ({source}): {total} decisions sampled{what}, {} to judge (seed {}).",
        sample.day,
        open.len(),
        sample.seed
    )?;
    'items: for (i, item) in open {
        write!(out, "{}", render(item, i + 1, total))?;
        if pass == Pass::Adjudication {
            write!(out, "{}", disagreement(item))?;
        }
        let key = loop {
            write!(out, "{KEYS}{}\n> ", input.hint())?;
            out.flush()?;
            let Some(line) = input.key(out)? else {
                break Key::Quit;
            };
            match parse_key(&line) {
                Some(k) => break k,
                None => writeln!(out, "Type one of c, r, u, f, s or q.")?,
            }
        };
        match key {
            Key::Quit => break 'items,
            Key::Skip => {
                if pass == Pass::First {
                    handle.block_on(store.skip_sampled(&item.decision.id))?;
                }
                outcome.skipped += 1;
                outcome.left -= 1;
                writeln!(out, "skipped")?;
            }
            Key::Verdict(v) => {
                let v = v.normalised(&item.decision);
                write!(out, "Why (optional, one line): ")?;
                out.flush()?;
                let why = input.line()?.unwrap_or_default();
                let labels = ask_labels(&item.decision, taxonomy, input, out)?;
                let review = NewReview {
                    decision_id: item.decision.id.clone(),
                    reviewer: reviewer.to_owned(),
                    verdict: v,
                    why: Some(why),
                    origin: Origin::Cli,
                    external_key: None,
                    labels,
                    pass,
                };
                handle.block_on(super::record(store, &item.decision, review))?;
                outcome.judged += 1;
                outcome.left -= 1;
                writeln!(out, "recorded: {v}")?;
            }
        }
    }
    writeln!(
        out,
        "\n{} judged, {} skipped, {} left{}.",
        outcome.judged,
        outcome.skipped,
        outcome.left,
        if outcome.left > 0 {
            " (run the same command again to go on)"
        } else {
            ""
        }
    )?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_weighted_decision_shows_the_classifiers_severity_beside_the_final_one() {
        use crate::domain::{
            Classification, Confidence, RawTicket, Severity, Source, Ticket, TicketContext, Tier,
            Usage, Verdict,
        };
        let ctx = TicketContext {
            ticket: Ticket::parse(
                Source::Api,
                RawTicket {
                    id: "T-1".into(),
                    body: "How do I export?".into(),
                    tier: Some(Tier::Enterprise),
                    ..RawTicket::default()
                },
                "",
            )
            .unwrap(),
            repeat_count_24h: 0,
        };
        let c = Classification {
            verdict: Verdict::new(
                Severity::Routine,
                None,
                Confidence::parse(0.8).unwrap(),
                "A how-to.",
            ),
            model: "offline".into(),
            prompt_version: "classifier@test".into(),
            fallback_reason: None,
            usage: Usage::default(),
            observation_id: None,
        };
        let plain = crate::domain::Decision::new(&ctx, c, None);
        let item = |decision| ReviewItem::unjudged(decision, None);
        assert!(!render(&item(plain.clone()), 1, 1).contains("Weighting:"));
        let weighed = plain.weighed(Severity::Urgent, Some("tiers.enterprise".into()));
        let shown = render(&item(weighed), 1, 1);
        assert!(shown.contains("Decision:   urgent -> human"), "{shown}");
        assert!(
            shown.contains("Weighting:  the classifier said routine; rule tiers.enterprise raised it to urgent\n"),
            "{shown}"
        );
    }

    #[test]
    fn keys_and_money() {
        assert_eq!(
            parse_key(" C\n"),
            Some(Key::Verdict(ReviewVerdict::Correct))
        );
        assert_eq!(
            parse_key("f"),
            Some(Key::Verdict(ReviewVerdict::Corrected(Severity::OnFire)))
        );
        assert_eq!(parse_key("x"), None);
    }

    #[test]
    fn a_labels_line_names_topics_and_sentiments_in_any_order() {
        let t = Taxonomy::default();
        assert_eq!(parse_labels("", &t), Ok((None, None)));
        assert_eq!(
            parse_labels(" Negative, bug ", &t),
            Ok((Some("bug".to_owned()), Some(Sentiment::Negative)))
        );
        assert!(
            parse_labels("dashboards", &t)
                .unwrap_err()
                .contains("neither a topic")
        );
    }
}
