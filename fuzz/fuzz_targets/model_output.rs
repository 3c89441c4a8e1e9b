//! The model's answer text through the validator: a valid verdict or a reason, never a panic.
#![no_main]

use escalator::{
    classifier::claude::parse_answer,
    domain::{MAX_REASONING_CHARS, MAX_REASONING_WORDS},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_answer(text, &escalator::taxonomy::Taxonomy::default()) {
        Ok(v) => {
            assert_eq!(v.route, v.severity.route());
            assert!(!v.reasoning.trim().is_empty());
            assert!(v.reasoning.chars().count() <= MAX_REASONING_CHARS);
            assert!(v.reasoning.split_whitespace().count() <= MAX_REASONING_WORDS);
            assert!((0.0..=1.0).contains(&v.confidence.get()));
        }
        Err(reason) => assert!(!reason.is_empty()),
    }
});
