//! Property tests: every entry point that takes customer or model text accepts any Unicode
//! string without panicking, and what comes out is valid (a decision with a reason, or a clear
//! error naming the field). Run in CI with a fixed case budget (`CASES` each, fewer for the
//! 32 KiB inputs) so the suite stays within seconds.
//!
//! Entry points: the offline classifier, `Ticket::parse`, the Plain and Pylon webhook parsers,
//! the model-output validator, the labels parser, the text helpers (truncation, excerpts,
//! folding, `one_sentence`, terminal escaping) and the note renderers. Its own test binary: pure functions, no
//! harness to share, and proptest keeps its regressions next to this file
//! (`tests/unicode.proptest-regressions`), which a move would orphan. Over 700 lines for the
//! same reason: one file per binary, one strategy set every entry point draws from.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

use std::{collections::BTreeMap, sync::OnceLock};

use chrono::Utc;
use escalator::{
    classifier::{OfflineClassifier, claude::parse_answer},
    config::Settings,
    domain::{
        self, Classification, Decision, MAX_BODY_CHARS, MAX_ID_BYTES, MAX_REASONING_CHARS,
        MAX_REASONING_WORDS, MAX_SUBJECT_CHARS, RawTicket, Severity, Source, Ticket, TicketContext,
        Tier, Usage, Verdict,
    },
    examples,
    text::{self, ELLIPSIS, escape_html},
    ticketing::{
        Accepted, PLAIN_NOTE_MAX_CHARS, Plain, Pylon, Ticketing as _, WebhookError, note_html,
        note_markdown, note_text, pylon::html_to_text,
    },
};
use hmac::{Hmac, Mac as _};
use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderValue};
use sha2::Sha256;

/// Cases per property: enough to hit multibyte characters next to every ASCII trigger, few
/// enough that the whole file runs in seconds in a debug build.
const CASES: u32 = 256;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Shrinking a 32 KiB string is slow and the first failing input says enough.
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    }
}

/// Pieces of text as phones and editors produce them, and the ASCII the scanners look for
/// next to them.
const FRAGMENTS: &[&str] = &[
    "’",
    "‘",
    "ʼ",
    "´",
    "`",
    "“",
    "”",
    "„",
    "«",
    "»",
    "—",
    "–",
    "‐",
    "−",
    "…",
    "ó",
    "é",
    "ñ",
    "ü",
    "İ",
    "ı",
    "ß",
    "ẞ",
    "ﬁ",
    "Σ",
    "ς",
    "Å",
    "e\u{0301}",
    "\u{0301}",
    "\u{0308}\u{0308}",
    "日本語",
    "請求",
    "한국어",
    "中文",
    "עברית",
    "العربية",
    "\u{202E}",
    "\u{202D}",
    "\u{200F}",
    "😀",
    "🔥",
    "👩\u{200D}💻",
    "👨\u{200D}👩\u{200D}👧\u{200D}👦",
    "🇺🇸",
    "❤\u{FE0F}",
    "\u{200B}",
    "\u{200C}",
    "\u{200D}",
    "\u{2060}",
    "\u{FEFF}",
    "\u{00AD}",
    "\u{00A0}",
    "\u{3000}",
    "\0",
    "\r\n",
    "\n",
    "\t",
    "\u{7}",
    "\u{85}",
    "\u{1b}[31m",
    "\u{1b}]0;title\u{7}",
    "\u{9b}",
    "\u{2066}",
    "\u{2069}",
    "\u{2028}",
    "<p>",
    "</p>",
    "<br/>",
    "<b>",
    "<",
    ">",
    "&amp;",
    "&lt;",
    "&#39;",
    "&nbsp;",
    "&",
    "\"",
    "'",
    ",",
    ".",
    "!",
    "?",
    ";",
    ":",
    "$",
    "＄",
    "USD ",
    "usd",
    "dollars",
    "k",
    "K",
    "1",
    "9",
    "0",
    "1,200",
    "$1.5k",
    "$4,800",
    "2,400 ",
    "１２００",
    "{{tier}}",
    "{{",
    "}}",
    " ",
    "  ",
    "can't",
    "cant log in",
    "is down",
    "refund",
    "charged us",
    "in error",
    "lawyer",
    "zendesk",
    "frustrating",
    "cancel",
    "human now",
    "ＤＯＷＮ",
    "production",
    "down",
    "data loss",
    "security",
];

/// Text built from [`FRAGMENTS`] and arbitrary characters, mixed.
fn tricky() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => proptest::sample::select(FRAGMENTS).prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..48).prop_map(|v| v.concat())
}

/// Any Unicode string, or a tricky one.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), tricky()]
}

/// Mostly a well-formed id (so the text fields around it get parsed too), sometimes any text.
fn any_id() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[A-Za-z0-9_.:-]{1,24}", 1 => any_text()]
}

/// Up to 32 KiB of one character (the body limit), or of a short repeated fragment.
fn huge_text() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            proptest::sample::select(FRAGMENTS).prop_map(str::to_owned),
            any::<char>().prop_map(String::from)
        ],
        1..MAX_BODY_CHARS,
    )
        .prop_map(|(piece, chars)| {
            let n = piece.chars().count().max(1);
            piece.repeat(chars / n)
        })
}

fn offline() -> &'static OfflineClassifier {
    static C: OnceLock<OfflineClassifier> = OnceLock::new();
    C.get_or_init(|| {
        let ex = examples::parse("labels.csv", examples::EMBEDDED_LABELS).unwrap();
        OfflineClassifier::new(&ex, "classifier@test")
    })
}

fn context(subject: &str, body: &str, tier: &str, repeats: u32) -> Option<TicketContext> {
    let raw = RawTicket {
        id: "T-1".into(),
        subject: subject.into(),
        body: body.into(),
        tier: Tier::parse_given("tier", tier).unwrap(),
        ..RawTicket::default()
    };
    Ticket::parse(Source::Api, raw, "ticket.")
        .ok()
        .map(|ticket| TicketContext {
            ticket,
            repeat_count_24h: repeats,
        })
}

/// A decision is valid: route from severity, a reason of one bounded sentence, confidence in
/// range, nothing the log cannot store.
fn assert_valid_verdict(v: &Verdict) {
    assert_eq!(v.route, v.severity.route());
    assert!(!v.reasoning.trim().is_empty(), "empty reasoning");
    assert!(v.reasoning.chars().count() <= MAX_REASONING_CHARS);
    assert!(v.reasoning.split_whitespace().count() <= MAX_REASONING_WORDS);
    assert!(!text::has_control(&v.reasoning), "{:?}", v.reasoning);
    assert!((0.0..=1.0).contains(&v.confidence.get()));
}

fn assert_valid_classification(c: &Classification) {
    assert_valid_verdict(&c.verdict);
    assert_eq!(c.model, "offline");
    assert!(c.fallback_reason.is_none());
}

// ---------------------------------------------------------------------------------------------
// The offline classifier

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn the_offline_classifier_decides_any_text(
        subject in any_text(),
        body in any_text(),
        tier in prop_oneof![Just("free"), Just("pro"), Just("enterprise")],
        repeats in 0u32..3,
    ) {
        if let Some(ctx) = context(&subject, &body, tier, repeats) {
            assert_valid_classification(&offline().decide(&ctx));
        }
    }

    /// Typographic apostrophes and capitals change nothing in ASCII text.
    #[test]
    fn typographic_apostrophes_and_case_decide_like_ascii(
        body in "([a-zA-Z]{1,8}|can't|won't|haven't|is down|refund|\\$[0-9,.]{1,6}k?|[ .,!?-]){1,24}",
    ) {
        let Some(ascii) = context("", &body, "free", 0) else { return Ok(()) };
        let ascii = offline().decide(&ascii).verdict;
        for variant in [body.replace('\'', "’"), body.replace('\'', "ʼ"), body.to_uppercase(), body.replace('-', "—")] {
            let v = offline().decide(&context("", &variant, "free", 0).unwrap()).verdict;
            prop_assert_eq!(v.severity, ascii.severity, "{:?} vs {:?}", variant, body);
            prop_assert_eq!(&v.reasoning, &ascii.reasoning);
        }
    }
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn the_offline_classifier_decides_32_kib_of_one_character(body in huge_text()) {
        if let Some(ctx) = context("", &body, "pro", 0) {
            assert_valid_classification(&offline().decide(&ctx));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ticket parsing

const TICKET_FIELDS: &[&str] = &[
    "id",
    "version",
    "subject",
    "body",
    "tier",
    "arr_usd",
    "customer_id",
];

fn assert_names_a_field(message: &str, prefix: &str, fields: &[&str]) {
    let named = fields
        .iter()
        .any(|f| message.starts_with(&format!("invalid {prefix}{f}: ")));
    assert!(named, "the error names no field: {message}");
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn ticket_parsing_validates_any_text_or_names_the_field(
        id in any_id(),
        version in any_id(),
        subject in any_text(),
        body in any_text(),
        tier in prop_oneof![Just(String::new()), Just("PRO".to_owned()), any_text()],
        arr_usd in proptest::option::of(any::<f64>()),
        customer_id in any_id(),
    ) {
        // The tier's text is parsed where it arrives (the gRPC edge), then the ticket.
        let parsed = Tier::parse_given("ticket.tier", &tier).and_then(|tier| {
            let raw = RawTicket { id, version, subject, body, tier, arr_usd, customer_id };
            Ticket::parse(Source::Api, raw, "ticket.")
        });
        match parsed {
            Ok(t) => {
                let k = t.key();
                for id in [&k.ticket_id, &k.version] {
                    prop_assert!(!id.is_empty() && id.len() <= MAX_ID_BYTES && !text::has_control(id));
                }
                prop_assert!(!t.body().trim().is_empty());
                prop_assert!(t.body().chars().count() <= MAX_BODY_CHARS);
                prop_assert!(t.subject().chars().count() <= MAX_SUBJECT_CHARS);
                prop_assert!(!t.body().contains('\0') && !t.subject().contains('\0'));
                prop_assert!(t.arr_usd().is_none_or(|a| a.is_finite() && a >= 0.0));
            }
            Err(e) => assert_names_a_field(&e.to_string(), "ticket.", TICKET_FIELDS),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Webhook parsers: signed bodies, so every case reaches the parser.

const SECRET: &str = "whsec-test";

fn settings() -> &'static Settings {
    static S: OnceLock<Settings> = OnceLock::new();
    S.get_or_init(|| {
        Settings::load(&BTreeMap::from([
            ("PLAIN_WEBHOOK_SECRET", SECRET),
            ("PYLON_WEBHOOK_SECRET", SECRET),
            ("PYLON_API_TOKEN", "pylon-token"),
        ]))
        .unwrap()
    })
}

/// Built once: an adapter's HTTP client (TLS roots) costs far more than a parse.
fn plain() -> &'static Plain {
    static A: OnceLock<Plain> = OnceLock::new();
    A.get_or_init(|| Plain::new(settings().ticketing.plain.clone()).unwrap())
}

fn pylon() -> &'static Pylon {
    static A: OnceLock<Pylon> = OnceLock::new();
    A.get_or_init(|| Pylon::new(settings().ticketing.pylon.clone()).unwrap())
}

fn signed(header: &'static str, body: &[u8]) -> HeaderMap {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let mut h = HeaderMap::new();
    h.insert(
        header,
        HeaderValue::from_str(&hex::encode(mac.finalize().into_bytes())).unwrap(),
    );
    h
}

const PLAIN_FIELDS: &[&str] = &[
    "type",
    "webhookMetadata.webhookDeliveryAttemptTimestamp",
    "payload.thread.id",
    "payload.thread.title",
    "payload.thread.customer.id",
    "payload.thread.updatedAt",
];

/// What a webhook parser may answer: a stored delivery whose key the log can hold, an ignored
/// event, or an error that names the field (or says the body is not JSON).
fn assert_valid_acceptance(
    result: Result<Accepted, WebhookError>,
    fields: &[&str],
    domain_prefix: &str,
) {
    match result {
        Ok(Accepted::Ticket(d)) => {
            for id in [&d.key.ticket_id, &d.key.version, &d.event_type] {
                assert!(!id.is_empty(), "empty key part");
                assert!(id.len() <= MAX_ID_BYTES, "key part over the limit");
                assert!(!text::has_control(id), "control character in {id:?}");
            }
            for field in ["text", "title"] {
                if let Some(t) = d.payload.get(field).and_then(|v| v.as_str()) {
                    assert!(!t.contains('\0'));
                    assert!(t.chars().count() <= MAX_BODY_CHARS);
                }
            }
        }
        Ok(Accepted::Ignored { .. }) | Err(WebhookError::Malformed(_)) => {}
        // An override is only parsed when every id it needs is there; it writes no key.
        Ok(Accepted::Override(_)) => {}
        Err(WebhookError::MissingField(f)) => {
            assert!(fields.contains(&f.as_str()), "unknown field {f}")
        }
        Err(WebhookError::Invalid(e)) => {
            let all: Vec<&str> = TICKET_FIELDS
                .iter()
                .copied()
                .chain(["issue_id", "version", "event"])
                .collect();
            assert_names_a_field(&e.to_string(), domain_prefix, &all);
        }
        Err(other) => panic!("a signed, fresh delivery was refused with {other}"),
    }
}

fn plain_body(
    event_type: &str,
    thread_id: &str,
    title: &str,
    customer: &str,
    updated_at: Option<&str>,
    text: Option<&str>,
    preview: &str,
) -> Vec<u8> {
    let now = Utc::now().to_rfc3339();
    let mut thread = serde_json::json!({
        "id": thread_id,
        "title": title,
        "customer": {"id": customer},
        "previewText": preview,
    });
    if let Some(u) = updated_at {
        thread["updatedAt"] = u.into();
    }
    let mut payload = serde_json::json!({ "thread": thread });
    if let Some(t) = text {
        payload["email"] = serde_json::json!({ "textContent": t });
    }
    serde_json::to_vec(&serde_json::json!({
        "id": "pEv_1",
        "type": event_type,
        "payload": payload,
        "webhookMetadata": {"webhookDeliveryAttemptTimestamp": now},
    }))
    .unwrap()
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn the_plain_parser_accepts_any_text_or_names_the_field(
        event_type in prop_oneof![3 => Just("thread.thread_created".to_owned()), 1 => any_text()],
        thread_id in any_id(),
        title in any_text(),
        customer in any_id(),
        updated_at in proptest::option::of(any_id()),
        text in proptest::option::of(any_text()),
        preview in any_text(),
    ) {
        let body = plain_body(&event_type, &thread_id, &title, &customer, updated_at.as_deref(), text.as_deref(), &preview);
        let headers = signed("Plain-Request-Signature", &body);
        assert_valid_acceptance(plain().accept(&headers, &body, Utc::now()), PLAIN_FIELDS, "payload.thread.");
    }

    #[test]
    fn the_plain_parser_survives_any_signed_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let headers = signed("Plain-Request-Signature", &body);
        assert_valid_acceptance(plain().accept(&headers, &body, Utc::now()), PLAIN_FIELDS, "payload.thread.");
    }

    #[test]
    fn the_pylon_parser_accepts_any_text_or_names_the_field(
        issue_id in any_id(),
        event in any_id(),
        version in proptest::option::of(any_id()),
    ) {
        let mut v = serde_json::json!({ "issue_id": issue_id, "event": event });
        if let Some(version) = version {
            v["version"] = version.into();
        }
        let body = serde_json::to_vec(&v).unwrap();
        let headers = signed("X-Pylon-Signature", &body);
        assert_valid_acceptance(pylon().accept(&headers, &body, Utc::now()), &["issue_id", "event"], "");
    }

    #[test]
    fn the_pylon_parser_survives_any_signed_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let headers = signed("X-Pylon-Signature", &body);
        assert_valid_acceptance(pylon().accept(&headers, &body, Utc::now()), &["issue_id", "event"], "");
    }

    /// Pylon issue bodies are HTML: any text becomes plain text, never longer than the HTML.
    #[test]
    fn pylon_html_becomes_text_of_any_input(html in any_text()) {
        let t = html_to_text(&html);
        prop_assert!(t.chars().count() <= html.chars().count());
    }
}

// ---------------------------------------------------------------------------------------------
// The model's output

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn any_model_text_is_a_valid_verdict_or_a_reason(text in any_text()) {
        match parse_answer(&text, &escalator::taxonomy::Taxonomy::default()) {
            Ok(v) => assert_valid_verdict(&v),
            Err(reason) => prop_assert!(!reason.is_empty()),
        }
    }

    /// JSON of the right shape with arbitrary values: valid values decide, anything else is an
    /// error that names the field.
    #[test]
    fn model_json_is_validated_field_by_field(
        severity in prop_oneof![Just("on_fire".to_owned()), Just("URGENT".to_owned()), Just(" routine ".to_owned()), any_text()],
        route in prop_oneof![Just("engineering".to_owned()), any_text()],
        confidence in prop_oneof![0.0f64..=1.0, any::<f64>()],
        reasoning in any_text(),
    ) {
        let answer = serde_json::json!({
            "severity": severity, "route": route, "confidence": confidence, "reasoning": reasoning,
        })
        .to_string();
        let severity_ok = Severity::parse("severity", &severity).is_ok();
        let confidence_ok = (0.0..=1.0).contains(&confidence);
        let reasoning_ok = !reasoning.trim().is_empty();
        match parse_answer(&answer, &escalator::taxonomy::Taxonomy::default()) {
            Ok(v) => {
                prop_assert!(severity_ok && confidence_ok && reasoning_ok);
                assert_valid_verdict(&v);
            }
            Err(reason) => {
                prop_assert!(!(severity_ok && confidence_ok && reasoning_ok), "{}", reason);
                let named = ["json:", "invalid severity:", "invalid confidence:", "invalid reasoning:"]
                    .iter()
                    .any(|p| reason.starts_with(p));
                prop_assert!(named, "{}", reason);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Labels

fn csv_row(fields: &[String]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(fields).unwrap();
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

fn assert_valid_labels(result: Result<Vec<examples::Example>, Vec<examples::Problem>>) {
    match result {
        Ok(examples) => {
            for e in examples {
                assert_eq!(e.route, e.severity.route());
                for f in [&e.ticket_id, &e.subject, &e.first_message, &e.why] {
                    assert!(!f.trim().is_empty());
                }
            }
        }
        Err(problems) => {
            assert!(!problems.is_empty());
            for p in problems {
                assert!(p.to_string().starts_with("f.csv"), "{p}");
                assert!(!p.message.is_empty());
            }
        }
    }
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn the_labels_parser_survives_any_text(text in any_text()) {
        assert_valid_labels(examples::parse("f.csv", &text));
    }

    #[test]
    fn labels_rows_of_any_text_parse_or_name_line_and_column(
        rows in proptest::collection::vec(
            proptest::collection::vec(
                prop_oneof![
                    2 => proptest::sample::select(&["routine", "urgent", "on_fire", "bot", "human", "engineering", "pro", "free"][..]).prop_map(str::to_owned),
                    1 => any_text(),
                ],
                5..9,
            ),
            0..6,
        ),
    ) {
        let mut text = examples::HEADER.join(",");
        text.push('\n');
        for r in &rows {
            text.push_str(&csv_row(r));
        }
        assert_valid_labels(examples::parse("f.csv", &text));
    }
}

// ---------------------------------------------------------------------------------------------
// Text helpers

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn truncation_is_a_char_bounded_prefix(s in any_text(), max in 0usize..64) {
        let t = text::truncate_chars(&s, max);
        prop_assert!(s.starts_with(t));
        prop_assert!(t.chars().count() <= max);
        if s.chars().count() <= max {
            prop_assert_eq!(t, s.as_str());
        }
        if !s.is_empty() && max > 0 {
            prop_assert!(!t.is_empty());
        }
    }

    #[test]
    fn a_tail_is_a_char_bounded_suffix(s in any_text(), max in 0usize..64) {
        let t = text::tail_chars(&s, max);
        prop_assert!(s.ends_with(t));
        prop_assert!(t.chars().count() <= max);
        if s.chars().count() <= max {
            prop_assert_eq!(t, s.as_str());
        }
        if !s.is_empty() && max > 0 {
            prop_assert!(!t.is_empty());
        }
    }

    #[test]
    fn ellipsize_and_excerpt_stay_within_the_limit(s in any_text(), max in 0usize..64) {
        let e = text::ellipsize(&s, max);
        prop_assert!(e.chars().count() <= max);
        if s.chars().count() > max && max > 0 {
            prop_assert!(e.ends_with(ELLIPSIS));
        }
        let x = text::excerpt(&s, max);
        prop_assert!(x.chars().count() <= max);
        prop_assert!(!text::has_control(&x));
    }

    #[test]
    fn folding_maps_typographic_forms_and_drops_invisibles(s in any_text()) {
        let f = text::fold(&s);
        for c in ['’', '‘', 'ʼ', '“', '”', '—', '–', '\u{200B}', '\u{200D}', '\u{FEFF}', '\u{00AD}', '\0'] {
            prop_assert!(!f.contains(c), "{:?} in {:?}", c, f);
        }
        // Case-blind for ASCII letters (Unicode has letters, such as Turkish `ı`, whose upper
        // case folds to another letter).
        if s.is_ascii() {
            prop_assert_eq!(text::fold(&s.to_uppercase()), text::fold(&s.to_lowercase()));
        }
    }

    #[test]
    fn one_sentence_is_bounded_for_any_text(s in any_text(), words in 0usize..30) {
        let (out, _) = domain::one_sentence(&s, words);
        prop_assert!(out.chars().count() <= MAX_REASONING_CHARS);
        prop_assert!(!text::has_control(&out));
    }

    #[test]
    fn nothing_that_drives_a_terminal_survives_for_terminal(s in any_text()) {
        let t = text::for_terminal(&s);
        for c in t.chars() {
            let bidi = matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
            prop_assert!(!bidi && (!c.is_control() || c == '\n' || c == '\t'), "{:?} in {:?}", c, t);
        }
        // Lines stay lines, and text without such characters is left as it is.
        prop_assert_eq!(t.matches('\n').count(), s.matches('\n').count());
        if t.len() == s.len() {
            prop_assert_eq!(t.as_ref(), s.as_str());
        }
    }

    #[test]
    fn nul_never_survives(s in any_text()) {
        prop_assert!(!text::without_nul(&s).contains('\0'));
    }
}

// ---------------------------------------------------------------------------------------------
// Note renderers

fn decision(reasoning: &str, fallback: bool) -> Decision {
    let ctx = context("s", "Production is down", "pro", 0).unwrap();
    let verdict = Verdict::new(
        Severity::OnFire,
        None,
        domain::Confidence::parse(0.9).unwrap(),
        reasoning,
    );
    let c = Classification {
        verdict,
        model: "offline".into(),
        prompt_version: "classifier@test".into(),
        fallback_reason: fallback.then(|| reasoning.to_owned()),
        usage: Usage::default(),
        observation_id: None,
    };
    Decision::new(&ctx, c, None)
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn notes_render_any_reasoning_within_the_tools_limits(reasoning in any_text(), fallback in any::<bool>()) {
        let mut d = decision(&reasoning, fallback);
        // Also a decision read back from an older log whose reasoning was not bounded.
        for raw in [false, true] {
            if raw {
                d.reasoning = reasoning.clone();
            }
            for note in [note_text(&d), note_markdown(&d), note_html(&d)] {
                prop_assert!(note.chars().count() <= PLAIN_NOTE_MAX_CHARS);
                prop_assert!(note.contains(&d.id), "the note carries the decision id");
            }
            let escaped = escape_html(&text::ellipsize(&d.reasoning, MAX_REASONING_CHARS));
            prop_assert!(!escaped.contains(['<', '>', '"', '\'']));
            prop_assert!(note_html(&d).contains(&escaped));
        }
        prop_assert!(d.fallback_reason.as_deref().is_none_or(|r| !text::has_control(r)));
    }
}
