//! Pylon webhook bodies, signed, through `Pylon::accept`; and issue HTML through
//! `html_to_text`.
#![no_main]

#[path = "common.rs"]
mod common;

use escalator::ticketing::{Pylon, Ticketing as _, pylon::html_to_text};
use libfuzzer_sys::fuzz_target;

/// Built once: the adapter's HTTP client (TLS roots) costs far more than a parse.
fn adapter() -> &'static Pylon {
    static A: std::sync::OnceLock<Pylon> = std::sync::OnceLock::new();
    A.get_or_init(|| Pylon::new(common::settings().ticketing.pylon.clone()).expect("pylon adapter"))
}

fuzz_target!(|body: &[u8]| {
    let headers = common::signed("X-Pylon-Signature", body);
    common::check(adapter().accept(&headers, body, common::clock_of(body)));
    if let Ok(html) = std::str::from_utf8(body) {
        assert!(html_to_text(html).chars().count() <= html.chars().count());
    }
});
