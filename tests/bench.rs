//! `escalator bench` as a user runs it: the built binary, a few seconds of small load against
//! PostgreSQL (`DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`) and SQLite,
//! and a JSON report that is complete and adds up. Speed is not asserted: the numbers belong in
//! the README, measured with a release build. Its own test binary, not in `tests/api`: it shares
//! no harness (it drives the built binary as a user does), and cargo runs test binaries one
//! after another, so its seconds of load never compete for the CPU with the timing-sensitive
//! end-to-end tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    missing_docs
)]

use std::{
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;

/// Runs `escalator bench --json ARGS` and returns the report, after checking the exit code.
fn bench(args: &[&str]) -> Value {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_escalator"))
        .arg("bench")
        .arg("--json")
        .args(args)
        // Every ticket of a smoke run finishes in well under this; the test stays bounded.
        .args(["--drain-timeout", "60"])
        .env_remove("ESCALATOR_CONFIG")
        .env_remove("ANTHROPIC_API_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "escalator bench {args:?} exited {:?}:\n{stderr}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "bench took {:?}",
        started.elapsed()
    );
    // No progress bar without a terminal.
    assert!(!stderr.contains('\r'), "{stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim().lines().count(), 1, "one JSON object: {text}");
    serde_json::from_str(&text).unwrap()
}

fn u(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{pointer} missing or not a count in {v:#}"))
}

fn f(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} missing or not a number in {v:#}"))
}

/// What every report must say, whatever the database and driver.
fn check_consistent(r: &Value) {
    let requests = u(r, "/load/requests");
    let accepted = u(r, "/load/accepted");
    assert!(requests > 0, "{r:#}");
    assert_eq!(accepted, requests, "every request accepted: {r:#}");
    assert_eq!(
        u(r, "/load/new") + u(r, "/load/duplicates"),
        accepted,
        "{r:#}"
    );
    assert_eq!(
        u(r, "/load/server_errors") + u(r, "/load/client_errors") + u(r, "/load/transport_errors"),
        0,
        "{r:#}"
    );
    assert!(f(r, "/load/accepted_per_sec") > 0.0);
    assert!(f(r, "/load/generator_cpu_secs") > 0.0, "{r:#}");

    let tickets = u(r, "/tickets/accepted");
    let completed = u(r, "/tickets/completed");
    assert_eq!(
        tickets,
        u(r, "/load/new"),
        "one new answer per ticket: {r:#}"
    );
    assert!(completed <= tickets, "{r:#}");
    assert_eq!(r["tickets"]["drained"], true, "{r:#}");
    assert_eq!(
        completed, tickets,
        "every ticket completed by the drain: {r:#}"
    );
    assert_eq!(u(r, "/tickets/incomplete"), 0);
    assert!(f(r, "/tickets/completed_per_sec") > 0.0, "{r:#}");

    assert_eq!(u(r, "/e2e_ms/count"), tickets);
    assert_eq!(u(r, "/e2e_ms/censored"), 0);
    let (p50, p99, max) = (
        f(r, "/e2e_ms/p50"),
        f(r, "/e2e_ms/p99"),
        f(r, "/e2e_ms/max"),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{r:#}");
    assert_eq!(u(r, "/ack_ms/count"), requests);
    assert!(f(r, "/ack_ms/p50") <= f(r, "/ack_ms/p99"));

    assert!(f(r, "/service/peak_rss_mib") > 1.0, "{r:#}");
    assert!(f(r, "/service/cpu_secs") > 0.0, "{r:#}");
    assert_eq!(r["service"]["clean_exit"], true, "{r:#}");
    assert_eq!(u(r, "/service/error_lines"), 0, "{r:#}");

    // The Claude path is the one measured: one model call per ticket, none refused.
    assert_eq!(u(r, "/model/calls"), tickets, "{r:#}");
    assert_eq!(u(r, "/model/refused"), 0);
    assert!(u(r, "/model/max_concurrent") >= 1);
    assert_eq!(u(r, "/plain/refused"), 0);
    assert_eq!(u(r, "/plain/unknown_mutations"), 0);
}

fn check_webhook_actions(r: &Value) {
    let tickets = u(r, "/tickets/accepted");
    assert_eq!(
        u(r, "/tickets/mutations_per_ticket"),
        3,
        "label, priority, note"
    );
    assert_eq!(u(r, "/plain/mutations"), 3 * tickets, "{r:#}");
    assert_eq!(u(r, "/plain/repeated_mutations"), 0, "{r:#}");
    assert_eq!(u(r, "/plain/queries"), tickets, "one enrichment per ticket");
}

#[test]
fn bench_on_postgres_reports_round_trips_and_every_ticket_routed() {
    let r = bench(&[
        "--rate",
        "25",
        "--duration",
        "2",
        "--redeliveries",
        "0.2",
        "--model-latency-ms",
        "20",
    ]);
    assert_eq!(r["profile"]["mode"], "open");
    assert_eq!(r["profile"]["database"], "postgres");
    check_consistent(&r);
    check_webhook_actions(&r);
    assert!(u(&r, "/load/redeliveries") > 0, "{r:#}");
    assert!(u(&r, "/load/duplicates") > 0, "{r:#}");
    assert!(u(&r, "/database/round_trips") > 0, "{r:#}");
    assert!(f(&r, "/database/round_trips_per_ticket") > 0.0, "{r:#}");
    // Statements and the pool's checks are told apart: sqlx checks every connection it takes
    // back, so there are checks, and fewer statement round trips than round trips.
    assert!(u(&r, "/database/pool_checks") > 0, "{r:#}");
    let statements = f(&r, "/database/statement_trips_per_ticket");
    assert!(
        statements > 0.0 && statements < f(&r, "/database/round_trips_per_ticket"),
        "{r:#}"
    );
    assert!(u(&r, "/database/connections") > 0);
    assert!(r["machine"]["postgres_version"].is_string());
}

#[test]
fn bench_on_sqlite_reports_round_trips_as_not_available() {
    let r = bench(&[
        "--database",
        "sqlite",
        "--burst",
        "40",
        "--connections",
        "8",
        "--model-latency-ms",
        "50",
    ]);
    assert_eq!(r["profile"]["mode"], "burst");
    check_consistent(&r);
    // 40 distinct tickets; the 10% redeliveries come on top: 4 of 44 requests.
    assert_eq!(u(&r, "/tickets/accepted"), 40, "{r:#}");
    assert_eq!(u(&r, "/load/requests"), 44, "{r:#}");
    assert_eq!(u(&r, "/load/duplicates"), 4, "{r:#}");
    check_webhook_actions(&r);
    assert!(r["database"]["round_trips"].is_null(), "{r:#}");
    assert!(r["database"]["round_trips_per_ticket"].is_null());
    assert!(r["database"]["statement_trips_per_ticket"].is_null());
    assert_eq!(r["database"]["backend"], "sqlite");
}

#[test]
fn bench_closed_loop_over_grpc_counts_each_decision() {
    // Closed loop over gRPC is paced by the model: 4 connections at 50 ms, about 80 tickets.
    let r = bench(&[
        "--grpc",
        "--connections",
        "4",
        "--duration",
        "1",
        "--model-latency-ms",
        "50",
    ]);
    assert_eq!(r["profile"]["driver"], "grpc");
    assert_eq!(r["profile"]["mode"], "closed");
    check_consistent(&r);
    assert_eq!(u(&r, "/tickets/mutations_per_ticket"), 0);
    assert_eq!(u(&r, "/plain/mutations"), 0, "Classify routes nothing back");
    assert!(u(&r, "/database/round_trips") > 0);
}

#[test]
fn bench_refuses_bad_arguments_with_exit_64() {
    let out = Command::new(env!("CARGO_BIN_EXE_escalator"))
        .args(["bench", "--model-error-rate", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--model-error-rate must be within 0..1")
    );
}
