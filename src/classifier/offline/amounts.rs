//! Amounts of money in a ticket, and which one a billing dispute is about.
//!
//! The $1,000 line of the billing clause is about the *disputed* amount: the one in a sentence
//! that speaks of the charge (`charged`, `invoice`, `refund`, see [`rules::CHARGE_WORDS`]), not
//! the largest amount anywhere. A rate or the size of a contract (`$12,000/yr`, `a $12,000
//! plan`, `$899 each`) gives way to a plain amount in those sentences, so "we're on a
//! $12,000/yr plan and you charged us $49 twice" disputes $49; with no plain amount the rate is
//! what is disputed ("you billed our $12,000/yr plan twice").
//!
//! Scans characters, not bytes: the text is whatever the customer typed (`la aplicación`,
//! `can’t`, emoji), so every position below is a char index, never a byte offset into a `str`.

use super::{doc::Doc, rules};
use crate::text;

/// One amount of money in a text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Amount {
    /// Its value, counted as USD (see [`amounts`]).
    pub(super) value: f64,
    /// It is a rate or the size of a contract (`$12,000/yr`, `a $12,000 plan`, `$899 each`).
    pub(super) rate: bool,
}

/// The amount a billing dispute in `doc` is about: the largest plain amount in the sentences
/// that speak of a charge (a word of [`rules::CHARGE_WORDS`] or a phrase of the billing
/// clause), else the largest rate there; `None` when those sentences name no amount.
pub(super) fn disputed(doc: &Doc, billing: &rules::Rule) -> Option<f64> {
    let mut plain: Option<f64> = None;
    let mut rate: Option<f64> = None;
    let about_a_charge = |s: &super::doc::Sentence| {
        rules::CHARGE_WORDS.iter().any(|w| s.has(w))
            || billing.firm_phrases().any(|(p, _)| s.has(p))
    };
    for s in doc.sentences.iter().filter(|s| about_a_charge(s)) {
        for a in amounts(&s.text) {
            let best = if a.rate { &mut rate } else { &mut plain };
            if best.is_none_or(|b| a.value > b) {
                *best = Some(a.value);
            }
        }
    }
    plain.or(rate)
}

/// The dollar amounts in the text: `$4,800`, `$1.2k`, `USD 3000`, `2,400 dollars`, `99 USD`,
/// `250 $`, and the European groupings `2.400 USD` and `1.234,56 $`. Euro and pound amounts
/// (`€1.500`, `1.500 €`, `EUR 2000`, `£1,200`, `900 GBP`, `300 euros`, `80 pounds`) count one to
/// one: the offline rules know no exchange rate, and EUR and GBP sit within about 30% of USD,
/// so a euro or pound amount within about 30% of the $1,000 line can land on the wrong side of
/// it. Amounts that do not fit an `f64` are ignored.
pub(super) fn amounts(text: &str) -> Vec<Amount> {
    let chars: Vec<char> = text::fold(text).chars().collect();
    let n = chars.len();
    let digit_at = |i: usize| chars.get(i).is_some_and(char::is_ascii_digit);
    let starts_with = |i: usize, pat: &str| {
        pat.chars()
            .enumerate()
            .all(|(k, p)| chars.get(i + k) == Some(&p))
    };
    // The number starting at char `start` and the char index just after it (and its `k`).
    let number_at = |start: usize| -> Option<(f64, usize)> {
        if !digit_at(start) {
            return None;
        }
        let mut end = start;
        while end < n && (chars[end].is_ascii_digit() || matches!(chars[end], ',' | '.')) {
            end += 1;
        }
        while matches!(chars[end - 1], ',' | '.') {
            end -= 1;
        }
        let mut v = grouped_number(&chars[start..end])?;
        let mut after = end;
        if chars.get(after) == Some(&'k')
            && !chars.get(after + 1).is_some_and(|c| c.is_alphabetic())
        {
            v *= 1_000.0;
            after += 1;
        }
        v.is_finite().then_some((v, after))
    };
    let skip_spaces = |mut i: usize| {
        while chars.get(i) == Some(&' ') {
            i += 1;
        }
        i
    };
    const UNITS: [&str; 12] = [
        "dollars", "dollar", "dólares", "usd", "$", "euros", "euro", "eur", "€", "pounds", "gbp",
        "£",
    ];
    let mut out = Vec::new();
    let mut push = |value: f64, after: usize| {
        out.push(Amount {
            value,
            rate: is_rate(&chars[after.min(n)..]),
        });
    };
    let mut i = 0;
    while i < n {
        if matches!(chars[i], '$' | '€' | '£') {
            if let Some((v, after)) = number_at(skip_spaces(i + 1)) {
                push(v, after);
            }
        } else if ["usd ", "eur ", "gbp "]
            .iter()
            .any(|code| starts_with(i, code))
            && (i == 0 || !chars[i - 1].is_alphanumeric())
        {
            if let Some((v, after)) = number_at(i + 4) {
                push(v, after);
            }
        } else if chars[i].is_ascii_digit()
            && (i == 0 || !chars[i - 1].is_ascii_alphanumeric())
            && (i == 0 || chars[i - 1] != '$')
        {
            if let Some((v, after)) = number_at(i) {
                let rest = skip_spaces(after);
                if let Some(unit) = UNITS.iter().find(|unit| starts_with(rest, unit)) {
                    push(v, rest + unit.chars().count());
                }
                i = after.max(i + 1);
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Whether the text right after an amount makes it a rate or a contract's size: `/yr`,
/// `a year`, `per seat`, `each`, `annually`, or a word of [`rules::CONTRACT_NOUNS`] (`plan`).
fn is_rate(rest: &[char]) -> bool {
    let rest: String = rest.iter().take(40).collect();
    let slash = rest.trim_start().starts_with('/');
    let mut words = rest
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty());
    let (first, second) = (words.next(), words.next());
    match (slash, first) {
        (true, Some(w)) => rules::RATE_UNITS.contains(&w),
        (false, Some(w)) if rules::PER.contains(&w) => {
            second.is_some_and(|u| rules::RATE_UNITS.contains(&u))
        }
        (false, Some(w)) => rules::RATES.contains(&w) || rules::CONTRACT_NOUNS.contains(&w),
        _ => false,
    }
}

/// A run of digits with `,` and `.` as an amount: the last separator is the decimal point when
/// one to two (or four or more) digits follow it or the other separator came before it
/// (`1,000.00`, `1.234,56`, `1.5`); with exactly three digits after it, every separator groups
/// thousands (`4,800`, `2.400`).
fn grouped_number(run: &[char]) -> Option<f64> {
    let is_sep = |c: &char| matches!(c, ',' | '.');
    let raw: String = match run.iter().rposition(is_sep) {
        None => run.iter().collect(),
        Some(p) => {
            let sep = run[p];
            let tail = run.len() - p - 1;
            let mixed = run[..p].iter().any(|c| is_sep(c) && *c != sep);
            let decimal = mixed || tail != 3;
            run.iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    if c.is_ascii_digit() {
                        Some(*c)
                    } else if decimal && i == p {
                        Some('.')
                    } else {
                        None
                    }
                })
                .collect()
        }
    };
    raw.parse().ok()
}

#[cfg(test)]
pub(super) fn max_amount(text: &str) -> Option<f64> {
    amounts(text).into_iter().map(|a| a.value).reduce(f64::max)
}
