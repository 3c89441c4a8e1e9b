//! Text as customers type it on phones: typographic quotes, accents, emoji and ZWJ sequences,
//! other scripts, zero-width characters, NUL. One home for the few things the service does to
//! such text, so no module slices a `str` at a byte offset of its own:
//!
//! - [`truncate_chars`], [`tail_chars`], [`ellipsize`], [`excerpt`]: cuts by characters that land on grapheme
//!   cluster boundaries (an emoji sequence or a letter with its accents is never split);
//! - [`fold`]: the matching key of the phrase rules (typographic punctuation as ASCII, invisible
//!   characters dropped, NFKC, Unicode full case folding);
//! - [`without_nul`], [`has_control`]: what the routing log cannot store (PostgreSQL `TEXT`
//!   rejects NUL) and what an id must not contain;
//! - [`for_terminal`]: text a terminal shows as it is, with nothing that drives the terminal
//!   (escape sequences, carriage returns, bidi overrides);
//! - [`escape_html`], [`usd`]: text as the pages, the notes and the terminal show it.
//!
//! Every function is total: any `&str` in, no panic (property tests in `tests/unicode.rs`).

use std::borrow::Cow;

use caseless::Caseless as _;
use unicode_normalization::UnicodeNormalization as _;
use unicode_segmentation::UnicodeSegmentation as _;

/// Marks a cut made by [`ellipsize`] and [`excerpt`].
pub const ELLIPSIS: char = '…';

/// The longest prefix of `s` with at most `max` characters that ends on a grapheme cluster
/// boundary. When even the first cluster is longer than `max` (a letter under thousands of
/// combining marks), the prefix is cut at `max` characters instead, so it is never empty for a
/// non-empty `s` and `max > 0`.
pub fn truncate_chars(s: &str, max: usize) -> &str {
    // `hard`: the byte offset of the first character that does not fit (a char boundary).
    let Some((hard, _)) = s.char_indices().nth(max) else {
        return s;
    };
    let mut end = 0;
    for (i, g) in s.grapheme_indices(true) {
        if i + g.len() > hard {
            break;
        }
        end = i + g.len();
    }
    if end == 0 { &s[..hard] } else { &s[..end] }
}

/// The longest suffix of `s` with at most `max` characters that starts on a grapheme cluster
/// boundary: the newest end of a text that must keep its end (a conversation capped with the
/// newest message kept). When even the last cluster is longer than `max`, the suffix starts at
/// the last `max` characters instead, so it is never empty for a non-empty `s` and `max > 0`.
pub fn tail_chars(s: &str, max: usize) -> &str {
    let total = s.chars().count();
    if total <= max {
        return s;
    }
    // `hard`: the byte offset of the first character that may be kept (a char boundary).
    let hard = s
        .char_indices()
        .nth(total - max)
        .map_or(s.len(), |(i, _)| i);
    match s.grapheme_indices(true).find(|(i, _)| *i >= hard) {
        Some((start, _)) => &s[start..],
        None => &s[hard..],
    }
}

/// `s` cut to at most `max` characters, ending in [`ELLIPSIS`] when it was cut (the ellipsis
/// counts towards `max`).
pub fn ellipsize(s: &str, max: usize) -> Cow<'_, str> {
    if s.chars().nth(max).is_none() {
        return Cow::Borrowed(s);
    }
    if max == 0 {
        return Cow::Borrowed("");
    }
    let kept = truncate_chars(s, max - 1).trim_end();
    Cow::Owned(format!("{kept}{ELLIPSIS}"))
}

/// A one-line excerpt of at most `max` characters for logs and stored error reasons: control
/// characters and whitespace runs become one space, and a cut ends in [`ELLIPSIS`].
pub fn excerpt(s: &str, max: usize) -> String {
    let one_line = s
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    ellipsize(&one_line, max).into_owned()
}

/// `s` without NUL characters, which PostgreSQL cannot store in `TEXT` (SQLite can, but both
/// backends must hold the same log). Borrowed when there is none.
pub fn without_nul(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', ""))
    } else {
        Cow::Borrowed(s)
    }
}

/// Whether `s` holds a control character (NUL, CR, LF, tab, DEL, C1 controls): never part of
/// an id.
pub fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Whether a terminal would act on `c` instead of showing it: a C0 control but newline and
/// tab (ESC starts the ANSI and OSC sequences that recolour, hide, move the cursor, set the
/// window title or make OSC 8 links; CR and backspace overwrite what was shown), DEL, a C1
/// control (CSI and OSC have one-character C1 forms), or a bidi control that reorders the text
/// around it (the marks, embeddings, overrides and isolates of "Trojan Source",
/// CVE-2021-42574).
fn drives_terminal(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// `s` as a terminal may show it: every character that would drive the terminal (see
/// [`drives_terminal`]) is written visibly as `\u{1b}`, so the reader sees that it was there
/// and what it was, and nothing else changes (newlines and tabs stay). Borrowed when there is
/// none. Ticket text and anything derived from it goes through this before it reaches a
/// terminal (`escalator review`, `labels add-from-reviews`).
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(drives_terminal) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if drives_terminal(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The matching key of `s`, for comparing text and never for showing it:
///
/// 1. typographic apostrophes and quotes (`’ ‘ ‛ ′ ʼ ´ `` ` `` “ ” „ « »`) become `'` and `"`,
///    dashes and minus signs (`‐ ‑ ‒ – — ― −`) become `-`, every space and control character a
///    plain space;
/// 2. invisible format characters are dropped (zero-width space and joiners, bidi marks and
///    overrides, soft hyphen, word joiner, BOM, variation selectors, tags), so
///    `do\u{200B}wn` is `down`;
/// 3. NFKC (full-width `ＤＯＷＮ` is `DOWN`, the ligature `ﬁ` is `fi`), Unicode full case
///    folding (`ẞ` and `ß` fold to `ss`, `Σ` and `ς` to `σ`), and NFKC again.
///
/// So `I CAN’T LOG IN`, `I can't log in` and `I ｃａｎ’t log in` share a key.
pub fn fold(s: &str) -> String {
    // Mapped before NFKC (which would turn `´` into a space and a combining accent) and again
    // after it (which can make new ones, e.g. `‴` into three `′`).
    s.chars()
        .filter_map(ascii_form)
        .nfkc()
        .default_case_fold()
        .nfkc()
        .filter_map(ascii_form)
        .collect()
}

/// Steps 1 and 2 of [`fold`] and NFKC, with the letters' case kept: the text a reader would
/// call the same, for rules that look at capitals (a name like `Sue` is not the verb `sue`).
/// Words split alike in this and in [`fold`], so a word's case can be looked up here and its
/// matching key there.
pub fn fold_keeping_case(s: &str) -> String {
    s.chars()
        .filter_map(ascii_form)
        .nfkc()
        .filter_map(ascii_form)
        .collect()
}

/// The ASCII form of typographic punctuation, `None` for an invisible character, else `c`.
fn ascii_form(c: char) -> Option<char> {
    Some(match c {
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '\u{02BC}'
        | '\u{00B4}' | '`' | '\u{FF07}' => '\'',
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' | '\u{00AB}'
        | '\u{00BB}' | '\u{301D}' | '\u{301E}' | '\u{FF02}' => '"',
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' | '\u{FF0D}' => '-',
        c if is_invisible(c) => return None,
        c if c.is_whitespace() || c.is_control() => ' ',
        c => c,
    })
}

/// Format characters that change no letter: Unicode's default-ignorable code points that
/// phones and editors insert (ZWSP, ZWNJ, ZWJ, LRM/RLM, bidi embeddings and isolates, soft
/// hyphen, word joiner, BOM, variation selectors, tag characters).
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Escapes text for an HTML body or a quoted attribute: `&`, `<`, `>`, `"` and `'` (as
/// `&#39;`). By hand, five characters: the `html-escape` crate writes `'` as `&#x27;`, and the
/// Pylon notes and the pages keep the entity they have always had.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A money amount with thousands separators (`$120,000`).
pub fn usd(v: f64) -> String {
    #[allow(clippy::cast_possible_truncation)]
    let whole = v.round() as i64;
    let digits = whole.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("{}${out}", if whole < 0 { "-" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_land_on_grapheme_boundaries() {
        assert_eq!(truncate_chars("aplicación", 8), "aplicaci");
        assert_eq!(truncate_chars("short", 10), "short");
        assert_eq!(truncate_chars("", 0), "");
        // A family emoji is one cluster of 5 chars: it is kept whole or not at all.
        let family = "ok 👩\u{200D}👩\u{200D}👧";
        assert_eq!(truncate_chars(family, 4), "ok ");
        assert_eq!(truncate_chars(family, 8), family);
        // A letter with its combining accent stays together.
        assert_eq!(truncate_chars("cafe\u{0301}s", 4), "caf");
        // One cluster longer than the limit is still cut (never empty).
        let zalgo = format!("a{}", "\u{0301}".repeat(50));
        assert_eq!(truncate_chars(&zalgo, 3).chars().count(), 3);
    }

    #[test]
    fn ellipsize_and_excerpt_mark_the_cut() {
        assert_eq!(ellipsize("hello world", 20), "hello world");
        assert_eq!(ellipsize("hello world", 7), "hello…");
        assert_eq!(ellipsize("日本語のテキスト", 4), "日本語…");
        assert_eq!(ellipsize("abc", 0), "");
        assert_eq!(excerpt("a\r\n\tb\0c   d", 100), "a b c d");
        assert_eq!(excerpt(&"x".repeat(500), 10).chars().count(), 10);
    }

    #[test]
    fn typographic_forms_fold_to_ascii() {
        assert_eq!(fold("I CAN’T LOG IN"), fold("i can't log in"));
        assert_eq!(fold("won‘t renew"), "won't renew");
        assert_eq!(fold("“is down” — again"), "\"is down\" - again");
        assert_eq!(fold("ＰＲＯＤ ＤＯＷＮ"), "prod down");
        assert_eq!(fold("do\u{200B}wn\u{FEFF}"), "down");
        assert_eq!(fold("Straße"), "strasse");
        assert_eq!(fold("ﬁle"), "file");
        assert_eq!(fold("la APLICACIÓN"), "la aplicación");
        assert_eq!(fold("a\u{00A0}b\u{3000}c\nd"), "a b c d");
    }

    #[test]
    fn a_terminal_sees_escape_sequences_and_bidi_overrides_instead_of_obeying_them() {
        assert_eq!(
            for_terminal("\u{1b}[2J\u{1b}]0;pwned\u{7}ok"),
            "\\u{1b}[2J\\u{1b}]0;pwned\\u{7}ok"
        );
        assert_eq!(
            for_terminal("\u{1b}]8;;https://evil\u{1b}\\click\u{1b}]8;;\u{1b}\\"),
            "\\u{1b}]8;;https://evil\\u{1b}\\click\\u{1b}]8;;\\u{1b}\\"
        );
        assert_eq!(for_terminal("paid\rREFUND"), "paid\\u{d}REFUND");
        assert_eq!(for_terminal("a\u{9b}31mb\u{7f}"), "a\\u{9b}31mb\\u{7f}");
        assert_eq!(
            for_terminal("user\u{202E}gnp.exe\u{2066}x\u{2069}\u{200F}"),
            "user\\u{202e}gnp.exe\\u{2066}x\\u{2069}\\u{200f}"
        );
        // Newlines, tabs and everything printable stay as they are, borrowed.
        let kept = "Line 1\n\tCan’t log in 🔥 日本語 مرحبا";
        assert!(matches!(for_terminal(kept), Cow::Borrowed(s) if s == kept));
    }

    #[test]
    fn nul_is_removed_and_controls_are_seen() {
        assert_eq!(without_nul("a\0b"), "ab");
        assert!(matches!(without_nul("ab"), Cow::Borrowed(_)));
        assert!(has_control("th_1\n"));
        assert!(!has_control("th_1"));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<b>\"a\" & 'b'</b>"),
            "&lt;b&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn amounts_have_thousands_separators() {
        assert_eq!(usd(120_000.0), "$120,000");
        assert_eq!(usd(999.4), "$999");
        assert_eq!(usd(1_000.0), "$1,000");
    }
}
