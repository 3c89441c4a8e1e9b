//! The one cause-chain formatter: an error and each of its sources on one line, for logs and
//! for the `last_error` columns. A leaf: it imports nothing of ours, so adapters, the worker
//! and the edges all use it.

/// `e` and its causes, `: `-separated (no secrets: requests carry keys in headers, which the
/// HTTP client's errors do not print).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    #[test]
    fn every_cause_is_on_the_line() {
        assert_eq!(super::chain(&Outer(Inner)), "outer: inner");
        assert_eq!(super::chain(&Inner), "inner");
    }
}
