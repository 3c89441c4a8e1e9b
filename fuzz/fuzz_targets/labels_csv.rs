//! Labels files through the parser: examples with every field, or located problems.
#![no_main]

use escalator::labels;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match labels::parse("fuzz.csv", text) {
        Ok(examples) => {
            for e in examples {
                assert_eq!(e.route, e.severity.route());
                assert!(!e.ticket_id.is_empty() && !e.first_message.is_empty());
            }
        }
        Err(problems) => {
            assert!(!problems.is_empty());
            for p in problems {
                assert!(p.to_string().starts_with("fuzz.csv"));
            }
        }
    }
});
