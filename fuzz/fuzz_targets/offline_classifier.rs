//! Ticket text (subject, a newline, then the body) through `Ticket::parse` and the offline
//! classifier, which is also the fallback for every model failure.
#![no_main]

use std::sync::OnceLock;

use escalator::{
    classifier::OfflineClassifier,
    domain::{MAX_REASONING_CHARS, RawTicket, Source, Ticket, TicketContext},
    labels,
};
use libfuzzer_sys::fuzz_target;

fn classifier() -> &'static OfflineClassifier {
    static C: OnceLock<OfflineClassifier> = OnceLock::new();
    C.get_or_init(|| {
        let ex = labels::parse("labels.csv", labels::EMBEDDED_LABELS).expect("embedded labels");
        OfflineClassifier::new(&ex, "classifier@fuzz")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (subject, body) = text.split_once('\n').unwrap_or(("", text));
    let raw = RawTicket {
        id: "F-1".into(),
        subject: subject.into(),
        body: body.into(),
        tier: "pro".into(),
        ..RawTicket::default()
    };
    let Ok(ticket) = Ticket::parse(Source::Api, raw, "ticket.") else {
        return;
    };
    let c = classifier().decide(&TicketContext {
        ticket,
        repeat_count_24h: 0,
    });
    assert_eq!(c.verdict.route, c.verdict.severity.route());
    assert!(!c.verdict.reasoning.is_empty());
    assert!(c.verdict.reasoning.chars().count() <= MAX_REASONING_CHARS);
});
