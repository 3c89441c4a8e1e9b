//! What `escalator bench` reports: one JSON object (`--json`) or the same as text.

use std::fmt;

use serde::Serialize;

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// What ran.
    pub profile: Profile,
    /// Where it ran.
    pub machine: Machine,
    /// The requests and their answers.
    pub load: LoadReport,
    /// What became of the tickets.
    pub tickets: TicketReport,
    /// Delivery (start of the first request) to the last action (the mock Plain's last
    /// mutation), milliseconds; over gRPC, the `Classify` call.
    pub e2e_ms: Percentiles,
    /// Time to the answer of every request, milliseconds.
    pub ack_ms: Percentiles,
    /// Round trips to the database.
    pub database: DatabaseReport,
    /// The service process.
    pub service: ServiceReport,
    /// The mock Messages API.
    pub model: ModelReport,
    /// The mock Plain API.
    pub plain: PlainReport,
}

/// The parameters of the run.
#[derive(Debug, Serialize)]
pub struct Profile {
    /// `closed`, `open` or `burst`.
    pub mode: &'static str,
    /// `webhook` or `grpc`.
    pub driver: &'static str,
    /// `postgres` or `sqlite`.
    pub database: &'static str,
    /// Closed loop and burst: concurrent senders.
    pub connections: Option<usize>,
    /// Open loop: arrivals per second.
    pub rate: Option<f64>,
    /// Closed and open loop: seconds of load.
    pub duration_secs: Option<f64>,
    /// Burst: tickets.
    pub burst: Option<u64>,
    /// Share of requests that redeliver a ticket sent before.
    pub redeliveries: f64,
    /// Mock model latency.
    pub model_latency_ms: u64,
    /// Share of model calls answered 529.
    pub model_error_rate: f64,
    /// Mock Plain latency.
    pub plain_latency_ms: u64,
    /// Share of Plain calls answered 500.
    pub plain_error_rate: f64,
    /// `[claude] max_concurrency` given to the service, if set.
    pub model_concurrency: Option<usize>,
    /// How long the benchmark waited for the backlog at most.
    pub drain_timeout_secs: f64,
}

/// The machine.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: Option<String>,
    /// `MemTotal`, GiB.
    pub memory_gib: Option<f64>,
    /// PostgreSQL `server_version`, when PostgreSQL is used.
    pub postgres_version: Option<String>,
}

/// Requests and answers.
#[derive(Debug, Serialize)]
pub struct LoadReport {
    /// From the first request to the last answer.
    pub secs: f64,
    /// Requests sent.
    pub requests: u64,
    /// Of which redeliveries of a ticket sent before.
    pub redeliveries: u64,
    /// Answered 2xx.
    pub accepted: u64,
    /// `accepted / secs`.
    pub accepted_per_sec: f64,
    /// 202 (webhook) or a new decision (gRPC).
    pub new: u64,
    /// Answered as duplicates.
    pub duplicates: u64,
    /// 4xx.
    pub client_errors: u64,
    /// 5xx (e.g. 503 while the database is unavailable).
    pub server_errors: u64,
    /// No answer.
    pub transport_errors: u64,
    /// CPU time of the benchmark process itself (load generator, mocks, proxy) over the run:
    /// it shares the machine's cores with the service and PostgreSQL.
    pub generator_cpu_secs: f64,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// Tickets: accepted (any delivery got a 2xx) and complete (decided and every action done).
#[derive(Debug, Serialize)]
pub struct TicketReport {
    /// Distinct tickets with a 2xx.
    pub accepted: u64,
    /// Of those, complete by the end.
    pub completed: u64,
    /// Complete before the load ended.
    pub completed_during_load: u64,
    /// `completed_during_load / load secs` (burst: `completed / time to the last completion`).
    pub completed_per_sec: f64,
    /// `completed / time from the first request to the last completion`.
    pub completed_per_sec_overall: f64,
    /// Accepted and not complete at the end.
    pub incomplete: u64,
    /// Complete though no delivery of them got a 2xx (the sender gave up waiting).
    pub completed_unacknowledged: u64,
    /// Every accepted ticket completed within the drain timeout.
    pub drained: bool,
    /// From the end of the load to the last completion (or the timeout).
    pub drain_secs: f64,
    /// Mutations a ticket needs under the benchmark's configuration.
    pub mutations_per_ticket: u32,
}

/// Nearest-rank percentiles, milliseconds.
#[derive(Debug, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 95th.
    pub p95: f64,
    /// 99th.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Samples that are lower bounds (tickets not complete at the end, counted at their age).
    pub censored: u64,
}

impl Percentiles {
    /// From samples in microseconds.
    pub fn of(mut us: Vec<u64>, censored: u64) -> Self {
        let count = us.len();
        let mut rank = |p: f64| {
            #[allow(clippy::cast_precision_loss)]
            let ms = crate::stats::percentile(&mut us, p).unwrap_or(0) as f64 / 1_000.0;
            (ms * 10.0).round() / 10.0
        };
        Self {
            count,
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
            max: rank(1.0),
            censored,
        }
    }
}

/// Database round trips, counted by the proxy (PostgreSQL only).
#[derive(Debug, Serialize)]
pub struct DatabaseReport {
    /// `postgres` or `sqlite`.
    pub backend: &'static str,
    /// Sync + simple Query messages from the start of the load to the end (`null` on SQLite).
    pub round_trips: Option<u64>,
    /// `round_trips / tickets completed` (background polling included).
    pub round_trips_per_ticket: Option<f64>,
    /// Of `round_trips`, the bare `Sync`s that only check a connection as it goes back to the
    /// pool (sqlx does this after every use of a pooled connection).
    pub pool_checks: Option<u64>,
    /// `(round_trips - pool_checks) / tickets completed`: round trips that run statements.
    pub statement_trips_per_ticket: Option<f64>,
    /// Connections the service opened, start-up included.
    pub connections: Option<u64>,
}

/// The service process.
#[derive(Debug, Serialize)]
pub struct ServiceReport {
    /// `VmHWM`, MiB.
    pub peak_rss_mib: f64,
    /// CPU time (user + system) from the start of the load to the end.
    pub cpu_secs: f64,
    /// `cpu_secs` over the wall time: cores used on average.
    pub cpu_cores_avg: f64,
    /// WARN lines it logged.
    pub warn_lines: u64,
    /// ERROR lines it logged.
    pub error_lines: u64,
    /// The first distinct WARN and ERROR messages (at most five of each).
    pub log_messages: Vec<String>,
    /// It exited 0 on SIGTERM.
    pub clean_exit: bool,
}

/// The mock Messages API.
#[derive(Debug, Serialize)]
pub struct ModelReport {
    /// `POST /v1/messages` calls, errors included.
    pub calls: u64,
    /// Answered 529 on purpose.
    pub errors_injected: u64,
    /// Most calls in flight at once.
    pub max_concurrent: u64,
    /// `count_tokens` calls.
    pub count_tokens_calls: u64,
    /// Refused (bad key or body): should be 0.
    pub refused: u64,
}

/// The mock Plain API.
#[derive(Debug, Serialize)]
pub struct PlainReport {
    /// Enrichment queries.
    pub queries: u64,
    /// Note-marker lookups of retried notes (`threadNotes`).
    pub note_lookups: u64,
    /// Successful mutations.
    pub mutations: u64,
    /// Mutations repeating one a thread already had (an action applied twice).
    pub repeated_mutations: u64,
    /// Mutations for threads the benchmark never sent.
    pub unknown_mutations: u64,
    /// Answered 500 on purpose.
    pub errors_injected: u64,
    /// Refused (bad key, unknown operation): should be 0.
    pub refused: u64,
}

fn opt<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| v.to_string())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.profile;
        let shape = match p.mode {
            "open" => format!(
                "open loop, {} per second for {} s",
                opt(p.rate),
                opt(p.duration_secs)
            ),
            "burst" => format!(
                "burst of {} tickets, {} at a time",
                opt(p.burst),
                opt(p.connections)
            ),
            _ => format!(
                "closed loop, {} connections for {} s",
                opt(p.connections),
                opt(p.duration_secs)
            ),
        };
        writeln!(
            f,
            "escalator bench: {shape}, {} on {}, {:.0}% redeliveries",
            if p.driver == "grpc" {
                "gRPC Classify"
            } else {
                "signed Plain webhooks"
            },
            p.database,
            p.redeliveries * 100.0
        )?;
        writeln!(
            f,
            "  model {} ms ({:.0}% 529), Plain {} ms ({:.0}% 500), model concurrency cap {}",
            p.model_latency_ms,
            p.model_error_rate * 100.0,
            p.plain_latency_ms,
            p.plain_error_rate * 100.0,
            p.model_concurrency
                .map_or_else(|| "default".to_owned(), |c| c.to_string())
        )?;
        let m = &self.machine;
        writeln!(
            f,
            "  machine: {} CPUs ({}), {} GiB, PostgreSQL {}",
            m.cpus,
            m.cpu_model.as_deref().unwrap_or("unknown"),
            opt(m.memory_gib),
            m.postgres_version.as_deref().unwrap_or("n/a")
        )?;
        let l = &self.load;
        writeln!(
            f,
            "load          {:.1} s, {} requests ({} redeliveries): {} accepted = {:.1}/s ({} new, {} duplicates), {} 4xx, {} 5xx, {} no answer",
            l.secs,
            l.requests,
            l.redeliveries,
            l.accepted,
            l.accepted_per_sec,
            l.new,
            l.duplicates,
            l.client_errors,
            l.server_errors,
            l.transport_errors
        )?;
        writeln!(
            f,
            "              load generator, mocks and proxy used {:.2} CPU seconds",
            l.generator_cpu_secs
        )?;
        if let Some(e) = &l.first_error {
            writeln!(f, "              first failure: {e}")?;
        }
        let t = &self.tickets;
        writeln!(
            f,
            "tickets       {} accepted, {} completed: {:.1}/s during the load ({}), {:.1}/s overall",
            t.accepted,
            t.completed,
            t.completed_per_sec,
            t.completed_during_load,
            t.completed_per_sec_overall
        )?;
        if t.drained {
            writeln!(
                f,
                "drain         backlog done {:.1} s after the load",
                t.drain_secs
            )?;
        } else {
            writeln!(
                f,
                "drain         NOT finished after {:.1} s: {} tickets incomplete",
                t.drain_secs, t.incomplete
            )?;
        }
        let e = &self.e2e_ms;
        writeln!(
            f,
            "end to end    p50 {} ms, p95 {} ms, p99 {} ms, max {} ms{}",
            e.p50,
            e.p95,
            e.p99,
            e.max,
            if e.censored > 0 {
                format!(
                    " ({} incomplete counted at their age: lower bounds)",
                    e.censored
                )
            } else {
                String::new()
            }
        )?;
        let a = &self.ack_ms;
        writeln!(
            f,
            "ack           p50 {} ms, p95 {} ms, p99 {} ms, max {} ms",
            a.p50, a.p95, a.p99, a.max
        )?;
        let d = &self.database;
        writeln!(
            f,
            "database      {} round trips, {} per completed ticket ({} running statements, the rest pool checks), {} connections",
            opt(d.round_trips),
            opt(d.round_trips_per_ticket),
            opt(d.statement_trips_per_ticket),
            opt(d.connections)
        )?;
        let s = &self.service;
        writeln!(
            f,
            "service       peak RSS {:.1} MiB, CPU {:.2} s ({:.2} cores on average), {} WARN / {} ERROR lines, clean exit: {}",
            s.peak_rss_mib, s.cpu_secs, s.cpu_cores_avg, s.warn_lines, s.error_lines, s.clean_exit
        )?;
        for m in &s.log_messages {
            writeln!(f, "              logged: {m}")?;
        }
        let md = &self.model;
        writeln!(
            f,
            "model         {} calls ({} answered 529), at most {} at once",
            md.calls, md.errors_injected, md.max_concurrent
        )?;
        let pl = &self.plain;
        writeln!(
            f,
            "plain         {} enrichment queries, {} note lookups, {} mutations ({} per ticket), {} repeated, {} answered 500",
            pl.queries,
            pl.note_lookups,
            pl.mutations,
            t.mutations_per_ticket,
            pl.repeated_mutations,
            pl.errors_injected
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_in_ms() {
        let us: Vec<u64> = (1..=100).map(|i| i * 1_000).collect();
        let p = Percentiles::of(us, 2);
        assert_eq!(
            (p.count, p.p50, p.p95, p.p99, p.max),
            (100, 50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(p.censored, 2);
        let empty = Percentiles::of(Vec::new(), 0);
        assert_eq!((empty.count, empty.p99), (0, 0.0));
    }
}
