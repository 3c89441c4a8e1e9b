//! End-to-end tests of the foundation: the real server on port 0 called with a real tonic
//! client, the store suite on PostgreSQL and SQLite, and the command line.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    missing_docs
)]

mod classify;
mod cli;
mod harness;
mod overrides;
mod panics;
mod review;
mod review_web;
mod store;
