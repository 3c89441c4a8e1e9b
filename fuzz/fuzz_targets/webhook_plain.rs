//! Plain webhook bodies, signed, through `Plain::accept`.
#![no_main]

#[path = "common.rs"]
mod common;

use escalator::ticketing::{Plain, Ticketing as _, plain::SIGNATURE_HEADER};
use libfuzzer_sys::fuzz_target;

/// Built once: the adapter's HTTP client (TLS roots) costs far more than a parse.
fn adapter() -> &'static Plain {
    static A: std::sync::OnceLock<Plain> = std::sync::OnceLock::new();
    A.get_or_init(|| Plain::new(common::settings().ticketing.plain.clone()).expect("plain adapter"))
}

fuzz_target!(|body: &[u8]| {
    let headers = common::signed(SIGNATURE_HEADER, body);
    common::check(adapter().accept(&headers, body, common::clock_of(body)));
});
