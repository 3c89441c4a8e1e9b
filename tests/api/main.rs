//! The integration tests, one binary over one harness ([`harness`]): the real server on port 0
//! called with a real tonic client, the store suites (routing log, inbox and outbox) on
//! PostgreSQL and SQLite, the webhook bridge against mock Plain and Pylon servers, the Claude
//! backend against a mock Messages API, and the command line.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    missing_docs
)]

mod audit;
mod audit_pr;
mod classify;
mod claude;
mod cli;
#[allow(dead_code)]
#[path = "../support/collector.rs"]
mod collector;
mod dashboard_web;
mod deploy;
mod fakes;
mod faults;
mod followups;
mod harness;
mod labels;
mod migrations;
mod outbox;
mod overrides;
mod panics;
mod pg;
mod review;
mod review_labels_web;
mod review_web;
mod security;
mod store;
mod webhooks;
mod weighting;
