//! Logging setup: an `EnvFilter` (`ESCALATOR_LOG`, default `info`) over a text or JSON
//! formatter (`ESCALATOR_LOG_FORMAT=json`). Ticket text is never logged at INFO.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::EnvSource;

/// Installs the global subscriber. Logs go to stderr so command output on stdout stays clean.
pub fn init(env: &dyn EnvSource) {
    let filter = EnvFilter::try_new(
        env.get("ESCALATOR_LOG")
            .unwrap_or_else(|| "info".to_owned()),
    )
    .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    // Colours only for a person at a terminal, never in files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let json = env
        .get("ESCALATOR_LOG_FORMAT")
        .is_some_and(|f| f.eq_ignore_ascii_case("json"));
    // try_init: a second call (tests) keeps the first subscriber.
    let _ = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .with_target(false),
            )
            .try_init()
    } else {
        registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false)
                    .with_ansi(ansi),
            )
            .try_init()
    };
}
