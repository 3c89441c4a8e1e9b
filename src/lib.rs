//! escalator routes customer-support tickets: one classification per ticket against a short
//! versioned prompt, written to the routing log before anything acts on it.
//!
//! # Layout
//! Arrows point inward: edges -> use case -> domain <- adapters.
//! - [`domain`]: pure types (`Ticket`, `Severity`, `Route`, `Decision`), no I/O.
//! - [`text`]: char-safe truncation, matching keys (typographic quotes, case folding), NUL.
//! - [`labels`], [`prompt`]: the labelled examples and the prompt rendered from them.
//! - [`classifier`]: the `Classifier` trait, the offline backend and the fallback policy.
//! - [`store`]: the routing log on PostgreSQL or SQLite.
//! - [`triage`]: the use case (accept, enrich, classify, log), over traits only.
//! - [`ticketing`]: Plain and Pylon adapters (webhooks in, actions out) and the webhook bridge.
//! - [`worker`]: the loops that decide stored deliveries and run logged actions, supervised.
//! - [`grpc`], [`http`]: thin edges; [`error`] maps use-case errors to codes in one place.
//! - [`config`], [`telemetry`], [`startup`], [`shutdown`], [`cli`]: wiring and lifecycle.
//! - [`bench`]: `escalator bench`, the real service against in-process mocks, measured.
//! - [`stats`]: the Wilson interval of an accuracy figure.

pub mod bench;
pub mod classifier;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod http;
pub mod labels;
pub mod prompt;
pub mod shutdown;
pub mod startup;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod ticketing;
pub mod triage;
pub mod worker;
