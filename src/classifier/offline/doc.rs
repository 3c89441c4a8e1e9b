//! A ticket as the offline rules read it: the customer's own words (quoted replies, signatures
//! and boilerplate left out), split into sentences of words in matching form, with what each
//! word and each sentence says about its context:
//!
//! - per word: its part of the sentence (commas, colons, brackets and spaced dashes separate
//!   parts), whether it was written as a name is (`Sue`, `Court Jensen`), and the quotation it
//!   stands in, if any;
//! - per sentence: whether it asks how to do something (`how do I…`, `where does…`, `is there a
//!   way…`), asks for a feature, says the incident is over, past or planned, ongoing, limited to
//!   one user, or for later.
//!
//! Nothing here slices text at a byte offset: every position is a word index.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
};

use unicode_normalization::char::is_combining_mark;

use super::rules;
use crate::text;

/// Phrases switched off (see `super::contamination`): a masked phrase matches nothing, as if it
/// had never been written in [`rules`]. Empty in service.
pub(super) type Mask = Arc<BTreeSet<String>>;

/// One sentence in matching form.
#[derive(Debug, Clone, Default)]
pub(super) struct Sentence {
    /// The sentence as the customer wrote it (for the amount rule).
    pub(super) text: String,
    /// The ticket's subject line, not a sentence of the body.
    pub(super) subject: bool,
    /// Its words: [`text::fold`]ed, apostrophes dropped, split at anything that is neither a
    /// letter, a digit nor a combining mark.
    pub(super) words: Vec<String>,
    /// For each word, which part of the sentence it is in, parts being separated by commas,
    /// colons, brackets and spaced dashes (a negation does not reach across: `No, it is down`).
    pub(super) segments: Vec<u32>,
    /// For each word, whether it was written capitalised (`Sue`: a capital, then small letters).
    capitalised: Vec<bool>,
    /// For each word, where its clause starts (see [`Sentence::same_clause`]).
    clause_of: Vec<usize>,
    /// The clauses (by start) that ask how to do something or where something is.
    how_to: BTreeSet<usize>,
    /// For each word, the quotation (index into `quotes`) it stands in.
    quoted: Vec<Option<usize>>,
    /// The quotations: where each starts and how many words it has.
    quotes: Vec<(usize, usize)>,
    /// It ended with a question mark.
    question_mark: bool,
    /// Where each word starts (and each word less one trailing `s`, see [`word_matches`]): a
    /// phrase is looked for only where its first word is.
    at: HashMap<String, Vec<usize>>,
    /// What the sentence as a whole says, for the sentence-wide guards (computed once, so a
    /// phrase repeated a thousand times costs a thousand lookups, not a thousand scans).
    pub(super) flags: Flags,
    mask: Mask,
}

/// Sentence-wide context of [`Sentence`].
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Flags {
    /// A word of [`rules::RESOLVED`].
    pub(super) resolved: bool,
    /// A word of [`rules::ONGOING`].
    pub(super) ongoing: bool,
    /// A word of [`rules::ONGOING`] other than `since` and its translations (`fine since`
    /// says it is over).
    pub(super) ongoing_now: bool,
    /// A word of [`rules::PAST_OR_PLANNED`], or `next`/`last` with a word of
    /// [`rules::TIME_UNITS`] (`next Tuesday`, `last week`).
    pub(super) past_or_planned: bool,
    /// A phrase of [`rules::SINGLE_USER`].
    pub(super) single_user: bool,
    /// A phrase of [`rules::LATER`].
    pub(super) later: bool,
    /// `now`, `immediately`, `asap`, `right away`.
    pub(super) now: bool,
    /// It asks for a feature (a phrase of [`rules::FEATURE_ASKS`]).
    pub(super) feature_ask: bool,
    /// Written in capitals throughout: capitals then say nothing about names.
    pub(super) shouting: bool,
}

impl Sentence {
    /// Word indices where `phrase` (words separated by single spaces) starts; none when the
    /// phrase is masked.
    pub(super) fn find<'a>(&'a self, phrase: &'a str) -> impl Iterator<Item = usize> + 'a {
        let first = phrase.split(' ').next().unwrap_or_default();
        let masked = self.mask.contains(phrase);
        self.at
            .get(first)
            .into_iter()
            .flatten()
            .copied()
            .filter(move |k| !masked && self.starts_at(*k, phrase))
    }

    pub(super) fn has(&self, phrase: &str) -> bool {
        self.find(phrase).next().is_some()
    }

    /// Whether `key` (a phrase, or a clause-level rule's pair) is switched off.
    pub(super) fn is_masked(&self, key: &str) -> bool {
        self.mask.contains(key)
    }

    /// Whether `phrase` starts at word `k` (and is not masked).
    pub(super) fn starts_at(&self, k: usize, phrase: &str) -> bool {
        if self.mask.contains(phrase) {
            return false;
        }
        let mut words = self.words[k..].iter();
        phrase
            .split(' ')
            .all(|p| words.next().is_some_and(|w| word_matches(w, p)))
    }

    /// Whether word `k` is one of `list` (and not masked).
    pub(super) fn word_is(&self, k: usize, list: &[&str]) -> bool {
        self.words
            .get(k)
            .is_some_and(|w| list.contains(&w.as_str()) && !self.mask.contains(w.as_str()))
    }

    /// Whether words `a` and `b` are in the same clause: one part of the sentence (see
    /// [`Sentence::segments`]) with no word of [`rules::CLAUSE_BREAKS`] between (`and`,
    /// `but`, `because`, `that`), so a negation or a subject does not reach into the next clause.
    pub(super) fn same_clause(&self, a: usize, b: usize) -> bool {
        matches!((self.clause_of.get(a), self.clause_of.get(b)), (Some(x), Some(y)) if x == y)
    }

    /// Whether word `k`'s clause asks how to do something or where something is: after a
    /// greeting ([`rules::FILLERS`]) it opens with a phrase of [`rules::HOW_TO`] (`how do I…`,
    /// `and how much…`), and the sentence ends with a question mark unless the opener has
    /// several words (`how do i`, typed on a phone without one).
    pub(super) fn asks_how_to(&self, k: usize) -> bool {
        self.clause_of
            .get(k)
            .is_some_and(|c| self.how_to.contains(c))
    }

    /// Whether the words `start..start + len` name a person rather than say something: a
    /// single capitalised word (`Sue`, `Court`) after a word of [`rules::NAME_CUES`] (`this is
    /// Sue`, `my colleague Court`, `thanks, Sue`), before a capitalised surname or `from`,
    /// `here`, `at` (`Sue from Brightline`), or alone with other capitalised words (a signature
    /// line) or alone in its part of the sentence (`Thanks so much, Sue`). Capitals in a
    /// sentence written all in capitals say nothing.
    pub(super) fn is_name(&self, start: usize, len: usize) -> bool {
        if len != 1 || self.flags.shouting || !self.capitalised.get(start).copied().unwrap_or(false)
        {
            return false;
        }
        let prev = start.checked_sub(1);
        let next = start + 1;
        let cue_before = prev.is_some_and(|p| {
            rules::NAME_CUES.iter().any(|c| {
                c.split(' ').count() <= p + 1 && self.starts_at(p + 1 - c.split(' ').count(), c)
            })
        });
        let surname = self.capitalised.get(next).copied().unwrap_or(false)
            && !prev.is_some_and(|p| self.word_is(p, &["the", "a", "an", "our", "your"]));
        let after = self.word_is(next, &["from", "here", "at"]);
        let signature = self.words.len() <= 3 && self.capitalised.iter().all(|c| *c);
        // Set off by commas or alone in its part: `Thanks so much, Sue`, `Sue, can you…`.
        let alone = self
            .segments
            .iter()
            .filter(|s| **s == self.segments[start])
            .count()
            == 1;
        cue_before || surname || after || signature || alone
    }

    /// How the words `start..start + len` are quoted: `None` when not in quotation marks;
    /// `Some(true)` when the quotation is mentioned rather than said: a sentence of its own
    /// (four words or more: someone else's words, a message shown) or announced by a word of
    /// [`rules::MENTION_CUES`] (`the word "sue"`, `a column called "court"`); `Some(false)`
    /// for a short quotation of the customer's own (`“thinking of cancelling”`).
    pub(super) fn quotation(&self, start: usize, len: usize) -> Option<bool> {
        let q = self.quoted.get(start).copied().flatten()?;
        if (start..start + len).any(|k| self.quoted.get(k).copied().flatten() != Some(q)) {
            return None;
        }
        let (q_start, q_len) = self.quotes[q];
        let cue =
            (q_start.saturating_sub(2)..q_start).any(|k| self.word_is(k, rules::MENTION_CUES));
        Some(q_len >= 4 || cue)
    }

    fn indexed(mut self) -> Self {
        for (k, w) in self.words.iter().enumerate() {
            self.at.entry(w.clone()).or_default().push(k);
            if let Some(stem) = w.strip_suffix('s').filter(|s| s.chars().count() >= 3) {
                self.at.entry(stem.to_owned()).or_default().push(k);
            }
        }
        let mut start = 0;
        for k in 0..self.words.len() {
            let new_part = k > 0 && self.segments[k] != self.segments[k - 1];
            if new_part || (k > 0 && self.word_is(k - 1, rules::CLAUSE_BREAKS)) {
                start = k;
            }
            self.clause_of.push(start);
        }
        let starts: BTreeSet<usize> = self.clause_of.iter().copied().collect();
        for c in starts {
            let opener = (c..self.words.len())
                .take_while(|k| self.clause_of[*k] == c)
                .find(|k| !self.word_is(*k, rules::FILLERS));
            let asks = opener.is_some_and(|o| {
                rules::HOW_TO
                    .iter()
                    .any(|h| self.starts_at(o, h) && (self.question_mark || h.contains(' ')))
            });
            if asks {
                self.how_to.insert(c);
            }
        }
        self.with_flags()
    }

    fn with_flags(mut self) -> Self {
        let any = |list: &[&str]| list.iter().any(|p| self.has(p));
        let next_or_last = self.words.iter().enumerate().any(|(k, w)| {
            matches!(w.as_str(), "next" | "last") && self.word_is(k + 1, rules::TIME_UNITS)
        });
        let letters = self.text.chars().filter(|c| c.is_alphabetic());
        let shouting = letters.clone().count() > 3 && letters.clone().all(|c| !c.is_lowercase());
        self.flags = Flags {
            resolved: any(rules::RESOLVED),
            ongoing: any(rules::ONGOING),
            ongoing_now: rules::ONGOING
                .iter()
                .filter(|o| !matches!(**o, "since" | "seit" | "desde" | "depuis"))
                .any(|o| self.has(o)),
            past_or_planned: any(rules::PAST_OR_PLANNED) || next_or_last,
            single_user: any(rules::SINGLE_USER),
            later: any(rules::LATER),
            now: any(&["now", "immediately", "asap", "right away"]),
            feature_ask: any(rules::FEATURE_ASKS),
            shouting,
        };
        self
    }
}

/// A text word matches a phrase word when equal, or the phrase word plus one `s` (plurals and
/// possessives: `lawyers`, `company’s`) for phrase words of three letters or more.
pub(super) fn word_matches(word: &str, phrase_word: &str) -> bool {
    word == phrase_word
        || (phrase_word.chars().count() >= 3 && word.strip_suffix('s') == Some(phrase_word))
}

/// Where a phrase occurs: sentence index, first word index, word count.
#[derive(Debug, Clone, Copy)]
pub(super) struct At {
    pub(super) sentence: usize,
    pub(super) start: usize,
    pub(super) len: usize,
}

/// A ticket prepared for matching.
#[derive(Debug, Clone, Default)]
pub(super) struct Doc {
    /// Subject first, then the body's sentences; boilerplate sentences left out.
    pub(super) sentences: Vec<Sentence>,
    /// Some sentence asks for a document ([`rules::DOCUMENTS`] with [`rules::DOCUMENT_REQUESTS`]).
    pub(super) asks_for_document: bool,
    /// The customer says they deleted something themselves (`I deleted`, `by mistake`).
    pub(super) self_inflicted: bool,
}

impl Doc {
    /// The ticket, with the phrases of `mask` matching nothing.
    pub(super) fn masked(subject: &str, body: &str, mask: &Mask) -> Self {
        let own = own_words(body);
        let mut sentences = vec![Sentence {
            subject: true,
            ..sentence(subject, false, mask)
        }];
        sentences.extend(
            split_sentences(&own)
                .into_iter()
                .map(|(s, question)| sentence(s, question, mask)),
        );
        sentences.retain(|s| !s.words.is_empty() && !rules::BOILERPLATE.iter().any(|b| s.has(b)));
        let asks_for_document = sentences.iter().any(|s| {
            rules::DOCUMENTS.iter().any(|d| s.has(d))
                && rules::DOCUMENT_REQUESTS.iter().any(|r| s.has(r))
        });
        let self_inflicted = sentences.iter().any(|s| {
            rules::SELF_INFLICTED.iter().any(|p| s.has(p))
                || rules::DELETIONS.iter().any(|d| {
                    s.find(d).any(|at| {
                        (at.saturating_sub(3)..at).any(|k| {
                            s.same_clause(k, at) && s.word_is(k, rules::SELF_INFLICTED_BEFORE)
                        })
                    })
                })
        });
        Self {
            sentences,
            asks_for_document,
            self_inflicted,
        }
    }

    /// Every occurrence of `phrase`.
    pub(super) fn find<'a>(&'a self, phrase: &'a str) -> impl Iterator<Item = At> + 'a {
        let len = phrase.split(' ').count();
        self.sentences.iter().enumerate().flat_map(move |(i, s)| {
            s.find(phrase).map(move |start| At {
                sentence: i,
                start,
                len,
            })
        })
    }

    pub(super) fn has(&self, phrase: &str) -> bool {
        self.sentences.iter().any(|s| s.has(phrase))
    }
}

/// The customer's own words of an email body: HTML tags removed (block tags end a line) and
/// entities decoded, quoted lines (`> …`) and `On … wrote:` lines dropped, and everything after
/// a signature separator line (`--`, `—`, `__`) cut.
pub(super) fn own_words(body: &str) -> String {
    let plain = strip_tags(body);
    let decoded = html_escape::decode_html_entities(&plain);
    let mut out = String::with_capacity(decoded.len());
    for line in decoded.lines() {
        let t = line.trim();
        if t.starts_with('>') {
            continue;
        }
        if !t.is_empty()
            && t.chars().all(|c| matches!(c, '-' | '—' | '–' | '_'))
            && t.chars().count() <= 3
        {
            break;
        }
        if text::fold(t).ends_with("wrote:") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `text` without HTML tags: a `<` followed by a letter, `/` or `!` up to the next `>` (within
/// 300 characters) is a tag; block tags (`p`, `div`, `br`, `li`, `tr`, headings) become a line
/// break, others a space. Works on characters, so no cut falls inside one.
pub(super) fn strip_tags(text: &str) -> String {
    if !text.contains('<') {
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let opens = c == '<'
            && chars
                .get(i + 1)
                .is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!'));
        if opens {
            if let Some(len) = chars[i + 1..].iter().take(300).position(|c| *c == '>') {
                let tag: String = chars[i + 1..i + 1 + len]
                    .iter()
                    .skip_while(|c| **c == '/')
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect::<String>()
                    .to_ascii_lowercase();
                let block = matches!(
                    tag.as_str(),
                    "p" | "div" | "br" | "li" | "tr" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6"
                );
                out.push(if block { '\n' } else { ' ' });
                i += len + 2;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Sentences end at `!`, `?`, `;`, a line break, or a `.` followed by a space or the end (so
/// `3.4.1` and `$1.5k` stay whole); each with whether a `?` ended it.
pub(super) fn split_sentences(text: &str) -> Vec<(&str, bool)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next_is_space = chars.peek().is_none_or(|(_, n)| n.is_whitespace());
        let ends = matches!(c, '!' | '?' | ';' | '\n') || (c == '.' && next_is_space);
        if ends {
            // `i` is a char boundary from char_indices; `c` is ASCII, so `i + 1` is one too.
            let question = c == '?' || text[start..i].trim_end().ends_with('?');
            out.push((&text[start..i], question));
            start = i + c.len_utf8();
        }
    }
    out.push((&text[start..], false));
    out
}

/// One sentence in matching form: words split at anything that is neither a letter, a digit
/// nor a combining mark, apostrophes dropped, each word [`text::fold`]ed (and its capitals
/// noted from [`text::fold_keeping_case`]); a comma starts a new segment; double quotation
/// marks (and single ones that open before a letter) delimit quotations. `question`: a `?`
/// ended it.
pub(super) fn sentence(raw: &str, question: bool, mask: &Mask) -> Sentence {
    let cased = text::fold_keeping_case(raw);
    let mut s = Sentence {
        text: raw.to_owned(),
        question_mark: question || raw.trim_end().ends_with('?'),
        mask: mask.clone(),
        ..Sentence::default()
    };
    let mut word = String::new();
    let mut segment = 0u32;
    // The quotation being read: its index in `s.quotes`, and whether single marks opened it.
    let mut open: Option<(usize, bool)> = None;
    let chars: Vec<char> = cased.chars().collect();
    let flush = |word: &mut String, s: &mut Sentence, segment: u32, open: Option<(usize, bool)>| {
        if word.is_empty() {
            return;
        }
        let token = std::mem::take(word);
        let mut letters = token.chars().filter(|c| c.is_alphabetic());
        let capitalised = letters.next().is_some_and(char::is_uppercase)
            && letters.clone().next().is_some()
            && letters.all(|c| !c.is_uppercase());
        // Folding may split a word (`½` is `1⁄2`); each part keeps the word's context.
        let folded = text::fold(&token);
        for part in folded
            .split(|c: char| !(c.is_alphanumeric() || is_combining_mark(c)))
            .filter(|p| !p.is_empty())
        {
            if let Some((q, _)) = open {
                s.quotes[q].1 += 1;
            }
            s.words.push(part.to_owned());
            s.segments.push(segment);
            s.capitalised.push(capitalised);
            s.quoted.push(open.map(|(q, _)| q));
        }
    };
    for (i, &ch) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map_or(' ', |p| chars[p]);
        let next = chars.get(i + 1).copied().unwrap_or(' ');
        if ch == '\'' {
            // An apostrophe inside a word is dropped (`cant`); one that opens before a letter
            // after a space, or closes an open single quotation, is a quotation mark.
            let word_before = prev.is_alphanumeric();
            let word_after = next.is_alphanumeric();
            if !word_before && word_after && open.is_none() {
                flush(&mut word, &mut s, segment, open);
                s.quotes.push((s.words.len(), 0));
                open = Some((s.quotes.len() - 1, true));
            } else if word_before && !word_after && matches!(open, Some((_, true))) {
                flush(&mut word, &mut s, segment, open);
                open = None;
            }
            continue;
        }
        if ch.is_alphanumeric() || is_combining_mark(ch) {
            word.push(ch);
            continue;
        }
        flush(&mut word, &mut s, segment, open);
        if ch == '"' {
            if open.is_some() {
                open = None;
            } else {
                s.quotes.push((s.words.len(), 0));
                open = Some((s.quotes.len() - 1, false));
            }
        }
        // A comma, a colon, brackets or a spaced dash (`cancelling — the editor`) end a
        // part of the sentence.
        if matches!(ch, ',' | ':' | '(' | ')') || (ch == '-' && prev.is_whitespace()) {
            segment += 1;
        }
    }
    flush(&mut word, &mut s, segment, open);
    // A mark that never closes is a stray one, not a quotation.
    if let Some((q, _)) = open {
        for x in &mut s.quoted {
            if *x == Some(q) {
                *x = None;
            }
        }
    }
    s.indexed()
}

/// The words the nearest-example similarity compares: three letters or more, no digits-only
/// words, no [`rules::STOPWORDS`], one trailing `s` dropped.
pub(super) fn content_words(doc: &Doc) -> BTreeSet<String> {
    doc.sentences
        .iter()
        .flat_map(|s| &s.words)
        .filter(|w| {
            w.chars().count() > 2
                && !w.chars().all(|c| c.is_ascii_digit())
                && !rules::STOPWORDS.contains(&w.as_str())
        })
        .map(|w| {
            w.strip_suffix('s')
                .filter(|s| s.chars().count() > 2)
                .unwrap_or(w)
                .to_owned()
        })
        .collect()
}
/// How a clause-level rule's pair is written in the report and in a mask:
/// `first … then` (`moving to … amplitude`).
pub(super) fn pair_key(first: &str, then: &str) -> String {
    format!("{first} … {then}")
}
