//! escalator routes customer-support tickets: one classification per ticket against a short
//! versioned prompt, written to the routing log before anything acts on it.
//!
//! # Layout
//! Arrows point inward: edges -> use cases -> domain <- adapters. Nothing imports a layer above
//! its own, and no file imports another that imports it back: `tests/layout.rs` reads `src/`
//! and fails on an import cycle or an arrow pointing outward.
//! - [`domain`]: pure types (`Ticket`, `Severity`, `Route`, `Decision`, `IdempotencyKey`; the
//!   queue rows of `domain::work`, the review's verdicts and the audit's rows, so the store and
//!   the adapters share them without importing each other; the definition clauses), no I/O.
//! - Leaves that import nothing of ours: [`env`](mod@env) (settings sources, `ConfigError`,
//!   parsers), [`text`] (char-safe cuts, matching keys, the HTML escape), [`backoff`] (the one
//!   backoff with jitter), [`causes`] (the one cause-chain formatter), [`stats`] (proportions
//!   with their Wilson interval, percentiles), [`credentials`] (`name token` files: gRPC callers,
//!   reviewers).
//! - [`examples`], [`prompt`]: the labelled examples and the prompt rendered from them;
//!   [`evaluation`]: a classifier over labelled examples, against their labels;
//!   [`weighting`]: the tier and repeat rules applied after the classifier (over the domain);
//!   [`taxonomy`]: the topics, sentiments and shadow categories a decision is labelled with.
//! - Adapters: [`classifier`] (the `Classifier` trait, offline and Claude backends, the
//!   fallback policy, the classifiers of one process), [`store`] (PostgreSQL or SQLite: one
//!   trait per concern, `Store` their sum), [`ticketing`] (the `Ticketing` and `ActionPlanner`
//!   ports, Plain and Pylon each in one module), [`telemetry`] (logs, traces, metrics, the
//!   score client). Each owns its settings section.
//! - Use cases: [`triage`] (`decide`: claim, classify, log with actions; `accept`: webhook
//!   deliveries made durable; `followup`: a customer's later message decided again on the
//!   conversation, raise only), over the ports; [`review`] (the daily review: samples, verdicts,
//!   overrides, labels from reviews), [`audit`] (the weekly figures, symptoms and the labels
//!   pull request), [`promote`] (a shadow category goes live past its gate).
//! - Edges: [`grpc`], [`http`], [`web`] (the `/review` and `/dashboard` pages) and [`worker`]
//!   (the inbox, outbox, recovery and score loops) drive the use cases; [`error`] maps their
//!   errors to codes in one place.
//! - Wiring and commands: [`config`] (composes the sections), [`startup`], [`shutdown`],
//!   [`cli`] (a thin dispatcher), [`exit`] (exit codes and the prelude every command starts
//!   with), [`commands`] (`serve`, `classify`, `eval`, `labels check`, `prompt render`,
//!   `healthcheck`), [`bench`](mod@bench) (`escalator bench`); `review`, `audit` and `promote`
//!   keep their commands in their own files (`review/cli.rs`, `audit/cli.rs`, `promote.rs`).

pub mod audit;
pub mod backoff;
pub mod bench;
pub mod causes;
pub mod classifier;
pub mod cli;
pub mod commands;
pub mod config;
pub mod credentials;
pub mod domain;
pub mod env;
pub mod error;
pub mod evaluation;
pub mod examples;
pub mod exit;
pub mod grpc;
pub mod http;
pub mod promote;
pub mod prompt;
pub mod review;
pub mod shutdown;
pub mod startup;
pub mod stats;
pub mod store;
pub mod taxonomy;
pub mod telemetry;
pub mod text;
pub mod ticketing;
pub mod triage;
pub mod web;
pub mod weighting;
pub mod worker;
