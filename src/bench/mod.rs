//! `escalator bench`: starts the real service (this binary, `serve`) as a child process against
//! mocks of the Messages API and Plain served in-process, and a real PostgreSQL (through a
//! round-trip-counting proxy) or SQLite; drives signed Plain webhooks or gRPC `Classify`; and
//! reports accepted/s, completed tickets/s (decided and every action done: the mock Plain saw
//! the ticket's last mutation), end-to-end and ack latency, database round trips per ticket,
//! peak RSS and CPU time of the service, and what the mocks saw.
//!
//! Numbers belong in the README's Benchmark section, measured with a release build; nothing
//! here asserts a speed.
//!
//! Over 450 lines: the benchmark's orchestration (database, mocks, the service as a child process,
//! the drain and the report's inputs); the load, mocks, proxy and report have their own files.

mod load;
mod mocks;
mod pgproxy;
pub mod report;
mod service;
mod tickets;

use std::{
    io::IsTerminal as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use sqlx::{Executor as _, PgConnection};

use crate::exit;

pub use self::report::Report;

use self::{
    load::{Driver, Shape, Target},
    mocks::{
        Behaviour, MUTATION_ASSIGN, MUTATION_LABEL, MUTATION_NOTE, MUTATION_PRIORITY,
        ModelCounters, PlainCounters,
    },
    pgproxy::PgProxy,
    report::{
        DatabaseReport, LoadReport, Machine, ModelReport, Percentiles, PlainReport, Profile,
        ServiceReport, TicketReport,
    },
    service::Service,
    tickets::Tickets,
};

/// The PostgreSQL server used when neither `--database-url` nor `DATABASE_URL` names one.
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// `PLAIN_WEBHOOK_SECRET` of the measured service.
const WEBHOOK_SECRET: &str = "bench-plain-webhook-secret";
/// Filter for the service's log: warnings, and the start-up line the benchmark reads the
/// addresses from. INFO on every delivery and action would measure the log pipe.
const DEFAULT_SERVICE_LOG: &str = "warn,escalator::startup=info";

/// `escalator bench` arguments.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The database the service runs on.
    #[arg(long, value_enum, default_value_t = BenchDatabase::Postgres)]
    database: BenchDatabase,
    /// A PostgreSQL database to use as it is. Default: a fresh `escalator_bench_<uuid>` on the
    /// server of DATABASE_URL (or postgres://postgres@127.0.0.1:5432/postgres), dropped after.
    #[arg(long)]
    database_url: Option<String>,
    /// Closed loop: concurrent senders, each sending its next request when the last is
    /// answered. Burst: requests in flight at most.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    connections: u32,
    /// Seconds of load (closed and open loop).
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Open loop: arrivals per second, whatever the answers.
    #[arg(long, conflicts_with = "burst")]
    rate: Option<f64>,
    /// Send N tickets at once, then wait for all to complete.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    burst: Option<u64>,
    /// Drive gRPC `Classify` instead of webhooks (complete = the decision came back).
    #[arg(long)]
    grpc: bool,
    /// Share of requests that redeliver a ticket sent before (0..1).
    #[arg(long, default_value_t = 0.1)]
    redeliveries: f64,
    /// Latency of the mock Messages API.
    #[arg(long, default_value_t = 0)]
    model_latency_ms: u64,
    /// Share of model calls answered `529 overloaded_error` (0..1).
    #[arg(long, default_value_t = 0.0)]
    model_error_rate: f64,
    /// Latency of the mock Plain API.
    #[arg(long, default_value_t = 0)]
    plain_latency_ms: u64,
    /// Share of Plain calls answered HTTP 500 (0..1).
    #[arg(long, default_value_t = 0.0)]
    plain_error_rate: f64,
    /// `[claude] max_concurrency` for the service (default: the service's own default).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    model_concurrency: Option<u32>,
    /// A TOML file merged over the generated service configuration (e.g. `[actions] batch`).
    #[arg(long)]
    service_config: Option<PathBuf>,
    /// `ESCALATOR_LOG` for the service.
    #[arg(long, default_value = DEFAULT_SERVICE_LOG)]
    service_log: String,
    /// Seconds to wait for the backlog after the load stops.
    #[arg(long, default_value_t = 120.0)]
    drain_timeout: f64,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// Which database the measured service uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchDatabase {
    /// A real PostgreSQL server, with round trips counted.
    Postgres,
    /// A SQLite file in a temporary directory.
    Sqlite,
}

/// Runs the benchmark: 0 when every accepted ticket completed within the drain timeout, 1 when
/// not (the report is printed either way), 64 for bad arguments, 70 when it could not run.
pub fn main(args: BenchArgs) -> ExitCode {
    if let Err(e) = check(&args) {
        eprintln!("escalator bench: {e}");
        return ExitCode::from(exit::USAGE);
    }
    let rt = match exit::runtime("escalator bench") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let report = match rt.block_on(run(&args)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("escalator bench: {e:#}");
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    if args.json {
        match serde_json::to_string(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("escalator bench: {e}");
                return ExitCode::from(exit::SOFTWARE);
            }
        }
    } else {
        print!("{report}");
    }
    if report.tickets.drained {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::CHECK_FAILED)
    }
}

fn check(a: &BenchArgs) -> Result<(), String> {
    let share = |name: &str, v: f64| {
        if (0.0..=1.0).contains(&v) {
            Ok(())
        } else {
            Err(format!("--{name} must be within 0..1, got {v}"))
        }
    };
    share("redeliveries", a.redeliveries)?;
    share("model-error-rate", a.model_error_rate)?;
    share("plain-error-rate", a.plain_error_rate)?;
    if !(a.duration.is_finite() && a.duration > 0.0 && a.duration <= 86_400.0) {
        return Err(format!(
            "--duration must be above 0 and at most a day, got {}",
            a.duration
        ));
    }
    if !(a.drain_timeout.is_finite() && a.drain_timeout >= 0.0 && a.drain_timeout <= 86_400.0) {
        return Err(format!(
            "--drain-timeout must be within 0..86400, got {}",
            a.drain_timeout
        ));
    }
    if let Some(r) = a.rate {
        if !(r.is_finite() && r > 0.0 && r <= 100_000.0) {
            return Err(format!("--rate must be within (0, 100000], got {r}"));
        }
    }
    if a.database == BenchDatabase::Sqlite && a.database_url.is_some() {
        return Err("--database-url is for --database postgres".into());
    }
    Ok(())
}

impl BenchArgs {
    fn shape(&self) -> Shape {
        let connections = usize::try_from(self.connections).unwrap_or(1);
        let duration = Duration::from_secs_f64(self.duration);
        match (self.burst, self.rate) {
            (Some(count), _) => Shape::Burst { count, connections },
            (None, Some(rate)) => Shape::Open { rate, duration },
            (None, None) => Shape::Closed {
                connections,
                duration,
            },
        }
    }

    fn profile(&self) -> Profile {
        let shape = self.shape();
        Profile {
            mode: match shape {
                Shape::Closed { .. } => "closed",
                Shape::Open { .. } => "open",
                Shape::Burst { .. } => "burst",
            },
            driver: if self.grpc { "grpc" } else { "webhook" },
            database: match self.database {
                BenchDatabase::Postgres => "postgres",
                BenchDatabase::Sqlite => "sqlite",
            },
            connections: match shape {
                Shape::Open { .. } => None,
                _ => usize::try_from(self.connections).ok(),
            },
            rate: self.rate.filter(|_| self.burst.is_none()),
            duration_secs: match shape {
                Shape::Burst { .. } => None,
                _ => Some(self.duration),
            },
            burst: self.burst,
            redeliveries: self.redeliveries,
            model_latency_ms: self.model_latency_ms,
            model_error_rate: self.model_error_rate,
            plain_latency_ms: self.plain_latency_ms,
            plain_error_rate: self.plain_error_rate,
            model_concurrency: self.model_concurrency.and_then(|c| usize::try_from(c).ok()),
            drain_timeout_secs: self.drain_timeout,
        }
    }
}

/// A fresh PostgreSQL database for one run, dropped by [`FreshDb::drop_it`].
struct FreshDb {
    admin: String,
    name: String,
}

impl FreshDb {
    async fn create(admin: &str) -> anyhow::Result<(Self, String)> {
        let name = format!("escalator_bench_{}", uuid::Uuid::now_v7().simple());
        let mut conn = admin_connection(admin).await.with_context(|| {
            format!(
                "PostgreSQL is not reachable at {} (set DATABASE_URL or --database-url, or use --database sqlite)",
                crate::store::redact_url(admin)
            )
        })?;
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        let mut url = url::Url::parse(admin).context("DATABASE_URL is not a URL")?;
        url.set_path(&format!("/{name}"));
        Ok((
            Self {
                admin: admin.to_owned(),
                name,
            },
            url.to_string(),
        ))
    }

    async fn drop_it(self) {
        match admin_connection(&self.admin).await {
            Ok(mut c) => {
                if let Err(e) = c
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        self.name
                    )))
                    .await
                {
                    eprintln!("escalator bench: cannot drop database {}: {e}", self.name);
                }
            }
            Err(e) => eprintln!("escalator bench: cannot drop database {}: {e}", self.name),
        }
    }
}

/// A connection for CREATE/DROP DATABASE, without sqlx's slow-statement log lines (a DROP
/// WITH (FORCE) takes a second and is not news).
async fn admin_connection(url: &str) -> anyhow::Result<PgConnection> {
    use sqlx::ConnectOptions as _;
    let opts: sqlx::postgres::PgConnectOptions = url.parse()?;
    Ok(opts.disable_statement_logging().connect().await?)
}

/// The mutations a ticket implies under `config`: the same for every route, or an error (the
/// benchmark could not tell when a ticket is complete).
fn expected_mutations(config: &toml::Table) -> anyhow::Result<u8> {
    let mut masks = Vec::new();
    for route in ["bot", "human", "engineering"] {
        let plain = config
            .get("routes")
            .and_then(|r| r.get(route))
            .and_then(|r| r.get("plain"));
        let labels = plain
            .and_then(|p| p.get("label_type_ids"))
            .and_then(toml::Value::as_array)
            .is_some_and(|a| !a.is_empty());
        let assignee = plain
            .and_then(|p| p.get("assignee_user_id"))
            .and_then(toml::Value::as_str)
            .is_some_and(|s| !s.trim().is_empty());
        // Priority always; the note always (every bench ticket has a customer).
        let mut mask = MUTATION_PRIORITY | MUTATION_NOTE;
        if labels {
            mask |= MUTATION_LABEL;
        }
        if assignee {
            mask |= MUTATION_ASSIGN;
        }
        masks.push(mask);
    }
    anyhow::ensure!(
        masks.windows(2).all(|w| w[0] == w[1]),
        "--service-config gives the routes different Plain actions (labels, assignee); the \
         benchmark needs the same kinds for every route to know when a ticket is complete"
    );
    Ok(masks[0])
}

/// Deep merge: tables merge key by key, anything else in `over` replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// The service configuration: label types on every route (so every ticket implies a label, a
/// priority and a note), the model concurrency cap if given, then `--service-config` on top.
fn service_config(args: &BenchArgs) -> anyhow::Result<toml::Table> {
    let mut base: toml::Table = toml::from_str(
        r#"
shutdown_grace_secs = 10

[routes.bot.plain]
label_type_ids = ["lt_01BENCHB0TR0VTE00000000000"]

[routes.human.plain]
label_type_ids = ["lt_01BENCHHVMANR0VTE000000000"]

[routes.engineering.plain]
label_type_ids = ["lt_01BENCHENG1NEER1NG00000000"]
"#,
    )
    .context("built-in bench configuration")?;
    if let Some(c) = args.model_concurrency {
        let mut claude = toml::Table::new();
        claude.insert("max_concurrency".into(), toml::Value::Integer(i64::from(c)));
        let mut over = toml::Table::new();
        over.insert("claude".into(), toml::Value::Table(claude));
        merge(&mut base, over);
    }
    if let Some(path) = &args.service_config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --service-config {}", path.display()))?;
        let over: toml::Table = toml::from_str(&text)
            .with_context(|| format!("--service-config {} is not valid TOML", path.display()))?;
        merge(&mut base, over);
    }
    Ok(base)
}

/// The service's URL for `url`, through the proxy at `proxy`, without TLS (the proxy counts
/// plaintext messages).
fn proxied_url(url: &str, proxy: SocketAddr) -> anyhow::Result<String> {
    let mut u = url::Url::parse(url).context("the database URL is not a URL")?;
    u.set_host(Some(&proxy.ip().to_string()))
        .context("the database URL has no host")?;
    u.set_port(Some(proxy.port()))
        .map_err(|()| anyhow::anyhow!("the database URL cannot take a port"))?;
    let query: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != "sslmode")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    u.query_pairs_mut()
        .clear()
        .extend_pairs(query)
        .append_pair("sslmode", "disable");
    Ok(u.to_string())
}

async fn upstream_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let u = url::Url::parse(url).context("the database URL is not a URL")?;
    let host = u.host_str().filter(|h| !h.is_empty()).context(
        "the database URL needs a TCP host (the round-trip proxy cannot use a Unix socket)",
    )?;
    let port = u.port().unwrap_or(5432);
    tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve {host}:{port}"))?
        .next()
        .with_context(|| format!("{host}:{port} has no address"))
}

fn machine(postgres_version: Option<String>) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    #[allow(clippy::cast_precision_loss)]
    let memory_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| (kb as f64 / 1_048_576.0 * 10.0).round() / 10.0);
    Machine {
        cpus: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        cpu_model,
        memory_gib,
        postgres_version,
    }
}

async fn postgres_version(url: &str) -> Option<String> {
    let mut c = admin_connection(url).await.ok()?;
    let v: (String,) = sqlx::query_as("SHOW server_version")
        .fetch_one(&mut c)
        .await
        .ok()?;
    Some(v.0)
}

/// Removes the run's temporary directory when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn run(args: &BenchArgs) -> anyhow::Result<Report> {
    let dir = TempDir(
        std::env::temp_dir().join(format!("escalator-bench-{}", uuid::Uuid::now_v7().simple())),
    );
    std::fs::create_dir_all(&dir.0)
        .with_context(|| format!("cannot create {}", dir.0.display()))?;
    let (db_url, fresh) = match (args.database, &args.database_url) {
        (BenchDatabase::Sqlite, _) => (
            format!("sqlite://{}", dir.0.join("bench.db").display()),
            None,
        ),
        (BenchDatabase::Postgres, Some(url)) => (url.clone(), None),
        (BenchDatabase::Postgres, None) => {
            let admin = std::env::var("DATABASE_URL")
                .ok()
                .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
                .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned());
            let (db, url) = FreshDb::create(&admin).await?;
            (url, Some(db))
        }
    };
    let result = measure(args, &db_url, &dir.0).await;
    if let Some(db) = fresh {
        db.drop_it().await;
    }
    result
}

async fn measure(args: &BenchArgs, db_url: &str, dir: &Path) -> anyhow::Result<Report> {
    let is_pg = args.database == BenchDatabase::Postgres;
    let (proxy, service_db_url, pg_version) = if is_pg {
        let proxy = PgProxy::start(upstream_addr(db_url).await?).await?;
        let url = proxied_url(db_url, proxy.addr)?;
        (Some(proxy), url, postgres_version(db_url).await)
    } else {
        (None, db_url.to_owned(), None)
    };

    let config = service_config(args)?;
    let expected = expected_mutations(&config)?;
    let config_path = dir.join("escalator.toml");
    std::fs::write(&config_path, toml::to_string(&config)?)
        .with_context(|| format!("cannot write {}", config_path.display()))?;

    let tickets = Arc::new(Tickets::new(expected));
    let model_counters = Arc::new(ModelCounters::default());
    let plain_counters = Arc::new(PlainCounters::default());
    let model = mocks::start_model(
        Behaviour {
            latency: Duration::from_millis(args.model_latency_ms),
            error_rate: args.model_error_rate,
        },
        model_counters.clone(),
    )
    .await?;
    let plain = mocks::start_plain(
        Behaviour {
            latency: Duration::from_millis(args.plain_latency_ms),
            error_rate: args.plain_error_rate,
        },
        plain_counters.clone(),
        tickets.clone(),
    )
    .await?;

    let env: Vec<(String, String)> = [
        ("DATABASE_URL", service_db_url),
        ("ESCALATOR_CONFIG", config_path.display().to_string()),
        ("ESCALATOR_GRPC_ADDR", "127.0.0.1:0".into()),
        ("ESCALATOR_HTTP_ADDR", "127.0.0.1:0".into()),
        ("ESCALATOR_LOG", args.service_log.clone()),
        ("ESCALATOR_LOG_FORMAT", "json".into()),
        ("ANTHROPIC_API_KEY", mocks::MODEL_KEY.into()),
        ("ANTHROPIC_BASE_URL", format!("http://{}", model.addr)),
        ("PLAIN_API_KEY", mocks::PLAIN_KEY.into()),
        ("PLAIN_API_URL", format!("http://{}/graphql/v1", plain.addr)),
        ("PLAIN_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let exe = std::env::current_exe().context("cannot find the escalator binary")?;
    let service = Service::start(&exe, &env, dir, Duration::from_secs(60)).await?;
    let outcome = drive(args, &service, &tickets, &model_counters, proxy.as_ref()).await;
    let stats = service.stats();
    let log_counts = service.log_counts.clone();
    let tail = service.tail();
    let clean_exit = service.stop(Duration::from_secs(20)).await;
    let run = outcome.with_context(|| format!("service log:\n{tail}"))?;
    let stats = stats?;

    let acks = &run.acks;
    let end_state = tickets.outcome(run.load_end, run.end);
    let load_secs = run.load_secs;
    let per_sec = |n: u64, secs: f64| {
        #[allow(clippy::cast_precision_loss)]
        let r = if secs > 0.0 { n as f64 / secs } else { 0.0 };
        (r * 10.0).round() / 10.0
    };
    let accepted = acks.accepted();
    let to_last = end_state
        .last_completion
        .map_or(0.0, |t| (t - run.load_start).as_secs_f64());
    let burst = args.burst.is_some();
    let round_trips = proxy.as_ref().map(|p| {
        p.counters
            .round_trips()
            .saturating_sub(run.round_trips_before)
    });
    let pool_checks = proxy.as_ref().map(|p| {
        p.counters
            .checks
            .load(Ordering::Relaxed)
            .saturating_sub(run.checks_before)
    });
    #[allow(clippy::cast_precision_loss)]
    let ticket_share = |r: u64| {
        (end_state.completed > 0)
            .then(|| (r as f64 / end_state.completed as f64 * 10.0).round() / 10.0)
    };
    let per_ticket = round_trips.and_then(ticket_share);
    let statement_trips = round_trips
        .zip(pool_checks)
        .and_then(|(r, c)| ticket_share(r.saturating_sub(c)));
    let wall = (run.end - run.load_start).as_secs_f64();
    let cpu_secs = (stats.cpu_secs - run.cpu_before).max(0.0);
    let latencies = std::mem::take(
        &mut *acks
            .latencies_us
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    #[allow(clippy::cast_precision_loss)]
    let report = Report {
        profile: args.profile(),
        machine: machine(pg_version),
        load: LoadReport {
            secs: (load_secs * 100.0).round() / 100.0,
            requests: acks.requests.load(Ordering::Relaxed),
            redeliveries: acks.redeliveries.load(Ordering::Relaxed),
            accepted,
            accepted_per_sec: per_sec(accepted, load_secs),
            new: acks.new.load(Ordering::Relaxed),
            duplicates: acks.duplicates.load(Ordering::Relaxed),
            client_errors: acks.client_errors.load(Ordering::Relaxed),
            server_errors: acks.server_errors.load(Ordering::Relaxed),
            transport_errors: acks.transport_errors.load(Ordering::Relaxed),
            generator_cpu_secs: (run.own_cpu_secs.max(0.0) * 100.0).round() / 100.0,
            first_error: acks
                .first_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        },
        tickets: TicketReport {
            accepted: end_state.acknowledged,
            completed: end_state.completed,
            completed_during_load: end_state.completed_during_load,
            completed_per_sec: if burst {
                per_sec(end_state.completed, to_last)
            } else {
                per_sec(end_state.completed_during_load, load_secs)
            },
            completed_per_sec_overall: per_sec(end_state.completed, to_last),
            incomplete: end_state.censored,
            completed_unacknowledged: end_state.completed_unacknowledged,
            drained: end_state.censored == 0,
            drain_secs: (run.drain_secs * 100.0).round() / 100.0,
            mutations_per_ticket: if args.grpc { 0 } else { expected.count_ones() },
        },
        e2e_ms: Percentiles::of(end_state.e2e_us, end_state.censored),
        ack_ms: Percentiles::of(latencies, 0),
        database: DatabaseReport {
            backend: if is_pg { "postgres" } else { "sqlite" },
            round_trips,
            round_trips_per_ticket: per_ticket,
            pool_checks,
            statement_trips_per_ticket: statement_trips,
            connections: proxy
                .as_ref()
                .map(|p| p.counters.connections.load(Ordering::Relaxed)),
        },
        service: ServiceReport {
            peak_rss_mib: (stats.peak_rss_bytes as f64 / 1_048_576.0 * 10.0).round() / 10.0,
            cpu_secs: (cpu_secs * 100.0).round() / 100.0,
            cpu_cores_avg: if wall > 0.0 {
                (cpu_secs / wall * 100.0).round() / 100.0
            } else {
                0.0
            },
            warn_lines: log_counts.warn.load(Ordering::Relaxed),
            error_lines: log_counts.error.load(Ordering::Relaxed),
            log_messages: log_counts
                .messages
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            clean_exit,
        },
        model: ModelReport {
            calls: model_counters.calls.load(Ordering::Relaxed),
            errors_injected: model_counters.errors.load(Ordering::Relaxed),
            max_concurrent: model_counters.max_in_flight.load(Ordering::Relaxed),
            count_tokens_calls: model_counters.count_tokens.load(Ordering::Relaxed),
            refused: model_counters.refused.load(Ordering::Relaxed),
        },
        plain: PlainReport {
            queries: plain_counters.queries.load(Ordering::Relaxed),
            note_lookups: plain_counters.note_lookups.load(Ordering::Relaxed),
            mutations: plain_counters.mutations.load(Ordering::Relaxed),
            repeated_mutations: end_state.repeated_mutations,
            unknown_mutations: end_state.unknown_mutations,
            errors_injected: plain_counters.errors.load(Ordering::Relaxed),
            refused: plain_counters.refused.load(Ordering::Relaxed),
        },
    };
    drop((model, plain));
    Ok(report)
}

/// What [`drive`] measured.
struct Run {
    acks: Arc<load::Acks>,
    load_start: Instant,
    load_end: Instant,
    end: Instant,
    load_secs: f64,
    drain_secs: f64,
    round_trips_before: u64,
    checks_before: u64,
    cpu_before: f64,
    /// CPU seconds of this process (load, mocks, proxy) over the run.
    own_cpu_secs: f64,
}

/// Waits for readiness, runs the load, then waits (bounded) for the backlog.
async fn drive(
    args: &BenchArgs,
    service: &Service,
    tickets: &Arc<Tickets>,
    model: &Arc<ModelCounters>,
    proxy: Option<&PgProxy>,
) -> anyhow::Result<Run> {
    let connections = usize::try_from(args.connections).unwrap_or(1);
    let client = load::http_client(connections)?;
    wait_ready(&client, service.http).await?;
    let target = if args.grpc {
        Target::Grpc {
            clients: load::grpc_clients(service.grpc, connections).await?,
        }
    } else {
        Target::Webhook {
            client,
            url: format!("http://{}/webhooks/plain", service.http),
            secret: WEBHOOK_SECRET.to_owned(),
        }
    };
    let driver = Arc::new(Driver::new(target, tickets.clone(), args.redeliveries));

    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {prefix}: {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.set_prefix("load");
    let ticker = {
        let (bar, tickets, model, acks) = (
            bar.clone(),
            tickets.clone(),
            model.clone(),
            driver.acks.clone(),
        );
        tokio::spawn(async move {
            loop {
                let p = tickets.progress();
                bar.set_message(format!(
                    "{} requests, {} tickets accepted, {} complete, backlog {}, model calls in flight {}, {} failed requests",
                    acks.requests.load(Ordering::Relaxed),
                    p.acknowledged,
                    p.done,
                    p.acknowledged.saturating_sub(p.done),
                    model.in_flight.load(Ordering::Relaxed),
                    acks.server_errors.load(Ordering::Relaxed)
                        + acks.client_errors.load(Ordering::Relaxed)
                        + acks.transport_errors.load(Ordering::Relaxed),
                ));
                bar.tick();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let round_trips_before = proxy.map_or(0, |p| p.counters.round_trips());
    let checks_before = proxy.map_or(0, |p| p.counters.checks.load(Ordering::Relaxed));
    let cpu_before = service.stats()?.cpu_secs;
    let own_before = service::proc_stats(std::process::id())?.cpu_secs;
    let load_start = Instant::now();
    let load_secs = driver.run(args.shape()).await.as_secs_f64();
    let load_end = Instant::now();
    bar.set_prefix("drain");
    let deadline = load_end + Duration::from_secs_f64(args.drain_timeout);
    loop {
        let p = tickets.progress();
        if p.done >= p.acknowledged || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let end = Instant::now();
    let own_cpu_secs = service::proc_stats(std::process::id())?.cpu_secs - own_before;
    ticker.abort();
    bar.finish_and_clear();
    Ok(Run {
        acks: driver.acks.clone(),
        load_start,
        load_end,
        end,
        load_secs,
        drain_secs: (end - load_end).as_secs_f64(),
        round_trips_before,
        checks_before,
        cpu_before,
        own_cpu_secs,
    })
}

/// `GET /readyz` until 200 (the database answers), at most 30 s.
async fn wait_ready(client: &reqwest::Client, http: SocketAddr) -> anyhow::Result<()> {
    let url = format!("http://{http}/readyz");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(&url).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the service did not answer /readyz with 200 within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> BenchArgs {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let mut argv = vec!["bench"];
        argv.extend_from_slice(extra);
        Cli::parse_from(argv).bench
    }

    #[test]
    fn every_ticket_implies_a_label_a_priority_and_a_note() {
        let config = service_config(&args(&["--model-concurrency", "256"])).unwrap_or_default();
        assert_eq!(
            expected_mutations(&config).unwrap_or(0),
            MUTATION_LABEL | MUTATION_PRIORITY | MUTATION_NOTE
        );
        assert_eq!(config["claude"]["max_concurrency"].as_integer(), Some(256));
    }

    #[test]
    fn a_service_config_merges_over_and_must_keep_routes_alike() {
        let mut base = service_config(&args(&[])).unwrap_or_default();
        let over: toml::Table = toml::from_str(
            "[actions]\nbatch = 256\n[routes.bot.plain]\nassignee_user_id = \"u_1\"\n",
        )
        .unwrap_or_default();
        merge(&mut base, over);
        assert_eq!(base["actions"]["batch"].as_integer(), Some(256));
        assert!(base["routes"]["bot"]["plain"]["label_type_ids"].is_array());
        assert!(expected_mutations(&base).is_err());
    }

    #[test]
    fn the_service_reaches_postgres_through_the_proxy_in_plaintext() {
        let proxy: SocketAddr = "127.0.0.1:6000".parse().unwrap_or_else(|_| unreachable!());
        let url = proxied_url(
            "postgres://postgres@db.internal:5432/x?sslmode=require&application_name=a",
            proxy,
        )
        .unwrap_or_default();
        assert_eq!(
            url,
            "postgres://postgres@127.0.0.1:6000/x?application_name=a&sslmode=disable"
        );
    }

    #[test]
    fn bad_shares_and_durations_are_refused() {
        assert!(check(&args(&["--redeliveries", "1.5"])).is_err());
        assert!(check(&args(&["--duration", "0"])).is_err());
        assert!(check(&args(&["--rate=-1"])).is_err());
        assert!(
            check(&args(&[
                "--database",
                "sqlite",
                "--database-url",
                "postgres://x/y"
            ]))
            .is_err()
        );
        assert!(check(&args(&[])).is_ok());
    }
}
