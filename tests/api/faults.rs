//! What happens when things break, end to end and bounded in time, on loopback only: a poison
//! ticket, a `kill -9` of the real binary mid-load, a model that answers 529 for 30 s, a
//! ticketing tool that answers 500 for 30 s, and PostgreSQL restarted mid-load. Each test runs
//! the real service against a fresh PostgreSQL database (`DATABASE_URL`) and the stateful fakes
//! of `fakes.rs`, and checks what a support agent finally sees in the tool: every ticket
//! that got a 2xx is decided once and routed once (one note, its label, its priority).
//!
//! Over 700 lines: five fault scenarios over one load-and-check harness (start the binary, send
//! the tickets, wait, read what the tool saw); each scenario is a few dozen lines over it.
use std::{
    collections::BTreeMap,
    io::Write as _,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    fakes::{FakeClaude, FakePlain, MODEL_KEY, PLAIN_KEY, plain_delivery, sign},
    pg::TestDb,
};
use async_trait::async_trait;
use escalator::{
    classifier::{Classifier, ClassifierError, Decider, OfflineClassifier},
    config::Settings,
    domain::{Classification, TicketContext},
    examples,
    startup::App,
    store,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "plain-webhook-secret";
const OUTAGE: &str = "Our production API is down for all users, every request returns 500.";
const HOWTO: &str = "How do I export a dashboard to PDF?";

const CONFIG: &str = r#"
[actions]
poll_interval_ms = 100
backoff_base_ms = 50
backoff_max_secs = 2

# A note the killed process may have had in flight is taken over the longer of the two
# clients' timeouts (plus stale_after_secs) after its last heartbeat: 3 s here, so recovery
# stays well within 15 s.
[plain]
timeout_secs = 3
[pylon]
timeout_secs = 3

[routes.engineering.plain]
label_type_ids = ["lt_engineering"]
[routes.human.plain]
label_type_ids = ["lt_human"]
[routes.bot.plain]
label_type_ids = ["lt_bot"]
"#;

fn config_file(extra: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(format!("{CONFIG}\n{extra}").as_bytes())
        .unwrap();
    f
}

fn env(
    db_url: &str,
    plain: &FakePlain,
    config: &tempfile::NamedTempFile,
) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("DATABASE_URL", db_url.to_owned()),
        ("ESCALATOR_GRPC_ADDR", "127.0.0.1:0".to_owned()),
        ("ESCALATOR_HTTP_ADDR", "127.0.0.1:0".to_owned()),
        (
            "ESCALATOR_CONFIG",
            config.path().to_str().unwrap().to_owned(),
        ),
        ("PLAIN_API_URL", plain.url.clone()),
        ("PLAIN_API_KEY", PLAIN_KEY.to_owned()),
        ("PLAIN_WEBHOOK_SECRET", SECRET.to_owned()),
    ])
}

fn settings(env: &BTreeMap<&'static str, String>) -> Settings {
    let map: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut s = Settings::load(&map).unwrap();
    s.shutdown_grace = Duration::from_secs(5);
    s
}

/// The app in this process.
struct Running {
    http: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn start(app: App) -> Self {
        let http = format!("http://{}", app.http_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self {
            http,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Posts a signed Plain delivery; the status, or 0 when the connection failed.
async fn deliver(client: &reqwest::Client, http: &str, body: Vec<u8>) -> u16 {
    let sig = sign(SECRET, &body);
    match client
        .post(format!("{http}/webhooks/plain"))
        .header("content-type", "application/json")
        .header("Plain-Request-Signature", sig)
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits up to `limit` for `done`, polling; returns how long it took.
async fn wait_for<F, Fut>(limit: Duration, what: &str, mut done: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if done().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not reached within {limit:?}");
}

/// Every thread in `ids` routed exactly once: one decision, one note, its label, its priority.
async fn assert_routed_once(pool: &PgPool, plain: &FakePlain, ids: &[String]) {
    assert_eq!(
        plain.refused(),
        0,
        "every call was authorised and well-formed"
    );
    let threads = plain.threads();
    for id in ids {
        let decisions = count(
            pool,
            &format!("SELECT COUNT(*) FROM decisions WHERE ticket_id = '{id}'"),
        )
        .await;
        assert_eq!(decisions, 1, "{id}: decisions");
        let t = threads
            .get(id)
            .unwrap_or_else(|| panic!("{id} never reached Plain"));
        assert_eq!(t.notes.len(), 1, "{id}: notes {:?}", t.notes);
        assert_eq!(t.labels.len(), 1, "{id}: labels {:?}", t.labels);
        assert!(t.priority.is_some(), "{id}: priority");
    }
    assert_eq!(
        count(pool, "SELECT COUNT(*) FROM actions WHERE status <> 'done'").await,
        0
    );
}

// ---------------------------------------------------------------------------------------------
// A poison ticket
// ---------------------------------------------------------------------------------------------

const POISON: &str = "POISON-MARKER";

/// The offline classifier, except that it panics on tickets carrying [`POISON`].
struct PanicsOnPoison(Arc<OfflineClassifier>);

#[async_trait]
impl Classifier for PanicsOnPoison {
    fn model(&self) -> &str {
        "poison-test"
    }

    async fn classify(&self, ctx: &TicketContext) -> Result<Classification, ClassifierError> {
        if ctx.ticket.body().contains(POISON) {
            panic!("classifier bug on a poison ticket");
        }
        Ok(self.0.decide(ctx))
    }
}

#[tokio::test]
async fn a_poison_delivery_gets_the_safe_decision_and_the_others_are_routed() {
    let db = TestDb::new().await;
    let plain = FakePlain::start().await;
    let config = config_file("");
    let s = settings(&env(&db.url, &plain, &config));
    let store = store::connect(&s.store).await.unwrap();
    let examples = examples::parse("labels.csv", examples::EMBEDDED_LABELS).unwrap();
    let offline = Arc::new(OfflineClassifier::new(&examples, "classifier@test"));
    let decider = Decider::new(Some(Arc::new(PanicsOnPoison(offline.clone()))), offline);
    let app = Running::start(
        App::with_decider(s, store, decider, "classifier@test")
            .await
            .unwrap(),
    )
    .await;
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..20 {
        let id = format!("th_poison_{i:02}");
        let text = if i == 7 {
            format!("{OUTAGE} {POISON}")
        } else if i % 2 == 0 {
            OUTAGE.to_owned()
        } else {
            HOWTO.to_owned()
        };
        assert_eq!(
            deliver(&client, &app.http, plain_delivery(&id, &text)).await,
            202
        );
        ids.push(id);
    }
    let pool = &db.pool().await;
    let plain = &plain;
    wait_for(
        Duration::from_secs(60),
        "20 tickets routed",
        || async move { plain.routed() == 20 },
    )
    .await;
    assert_routed_once(pool, plain, &ids).await;
    let (severity, route, fallback, reason, model): (String, String, bool, String, String) =
        sqlx::query_as(
            "SELECT severity, route, fallback, fallback_reason, model FROM decisions \
             WHERE ticket_id = 'th_poison_07'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(
        (
            severity.as_str(),
            route.as_str(),
            fallback,
            reason.as_str(),
            model.as_str()
        ),
        ("urgent", "human", true, "internal_error", "none")
    );
    let (attempts, errors): (i32, i32) = sqlx::query_as(
        "SELECT attempts, internal_errors FROM deliveries WHERE ticket_id = 'th_poison_07'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        (attempts, errors),
        (5, 4),
        "five attempts, the last logs the safe decision"
    );
    assert!(plain.threads()["th_poison_07"].labels.contains("lt_human"));
    // The worker still runs.
    assert_eq!(
        deliver(&client, &app.http, plain_delivery("th_after", OUTAGE)).await,
        202
    );
    wait_for(
        Duration::from_secs(20),
        "the next ticket routed",
        || async move { plain.routed() == 21 },
    )
    .await;
    let metrics = client
        .get(format!("{}/metrics", app.http))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let panics = metrics
        .lines()
        .find(|l| l.starts_with("escalator_worker_panics_total{stage=\"decide\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(panics >= 5.0, "panics counted: {panics}");
    // The backlog and the loops are visible, and the service is ready: every loop runs.
    for line in [
        "escalator_delivery_backlog{status=\"pending\"} 0",
        "escalator_oldest_pending_seconds{queue=\"inbox\"} 0",
        "escalator_worker_loop_up{loop=\"inbox\"} 1",
        "escalator_worker_loop_up{loop=\"outbox\"} 1",
        "escalator_worker_loop_up{loop=\"heartbeat\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from /metrics");
    }
    let ready = client
        .get(format!("{}/readyz", app.http))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// kill -9 of the real binary mid-load
// ---------------------------------------------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_binary(env: &BTreeMap<&'static str, String>, http_port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_escalator"))
        .arg("serve")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("ESCALATOR_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
        .env("ESCALATOR_GRPC_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("ESCALATOR_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_ready(client: &reqwest::Client, http: &str) {
    wait_for(
        Duration::from_secs(30),
        "the service ready",
        || async move {
            client
                .get(format!("{http}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
}

#[tokio::test]
async fn kill_9_mid_load_loses_nothing_and_repeats_nothing() {
    let db = TestDb::new().await;
    let plain = FakePlain::start().await;
    // Slow enough that actions are in flight when the process dies.
    plain.set_latency_ms(40);
    let config = config_file("");
    let env = env(&db.url, &plain, &config);
    let port = free_port();
    let http = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut child = spawn_binary(&env, port);
    wait_ready(&client, &http).await;

    // 500 deliveries from 32 senders; the process is killed once 250 have been acknowledged.
    let plain = &plain;
    let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (client, http, acked, next) =
            (client.clone(), http.clone(), acked.clone(), next.clone());
        senders.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= 500 {
                    break;
                }
                let id = format!("th_kill_{i:03}");
                let text = if i % 3 == 0 { OUTAGE } else { HOWTO };
                let status = deliver(&client, &http, plain_delivery(&id, text)).await;
                if status == 202 || status == 200 {
                    acked.lock().unwrap().push(id);
                }
            }
        });
    }
    let seen = &acked;
    wait_for(Duration::from_secs(30), "250 acknowledged", || async move {
        seen.lock().unwrap().len() >= 250
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    senders.join_all().await;
    let acked = acked.lock().unwrap().clone();
    let routed_at_kill = plain.routed();
    assert!(
        routed_at_kill < acked.len(),
        "the kill must land mid-load ({routed_at_kill} of {} routed)",
        acked.len()
    );

    let restarted = Instant::now();
    let mut child = spawn_binary(&env, port);
    let pool = &db.pool().await;
    let acked = &acked;
    let took = wait_for(
        Duration::from_secs(15),
        "every acknowledged ticket routed",
        || async move {
            let threads = plain.threads();
            acked.iter().all(|id| {
                threads.get(id).is_some_and(|t| {
                    !t.notes.is_empty() && !t.labels.is_empty() && t.priority.is_some()
                })
            })
        },
    )
    .await;
    eprintln!(
        "kill -9: {} acknowledged, {routed_at_kill} routed at the kill, all routed {:.1}s after the restart ({took:?} of waiting)",
        acked.len(),
        restarted.elapsed().as_secs_f64()
    );
    // Recovery is complete (every action marked done, the dead process's notes included, which
    // wait out stale_after plus the clients' timeout) within 15 s of the restart.
    wait_for(
        Duration::from_secs(15).saturating_sub(restarted.elapsed()),
        "every action marked done within 15 s of the restart",
        || async move {
            count(pool, "SELECT COUNT(*) FROM actions WHERE status <> 'done'").await == 0
        },
    )
    .await;
    assert_routed_once(pool, plain, acked).await;
    let notes: u32 = plain
        .threads()
        .values()
        .map(|t| t.calls.get("createNote").copied().unwrap_or(0))
        .sum();
    assert_eq!(
        usize::try_from(notes).unwrap(),
        plain.threads().len(),
        "one createNote per thread"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `kill -9` while Plain is slow to read notes (a full listen backlog: a request waits seconds
/// before the tool reads it, and lands even after its sender died) posts no note twice: a note
/// the dead process had leased is taken over only `stale_after` plus the client's timeout after
/// its last heartbeat, when whatever it had in flight has landed, so the lookup before posting
/// sees it. Half the threads' notes are read 3 s late, inside the 6 s client timeout.
#[tokio::test]
async fn kill_9_while_the_tool_is_slow_posts_no_note_twice() {
    let db = TestDb::new().await;
    let plain = FakePlain::start().await;
    plain.set_slow_notes_ms(3_000);
    // Heartbeat 0.5 s, stale after 2 s, client timeout 6 s: the dead process's notes are taken
    // over 8 s after its last heartbeat; its slow notes land within 3.5 s of it.
    let mut config = tempfile::NamedTempFile::new().unwrap();
    config
        .write_all(
            format!(
                "{}\n[worker]\nheartbeat_ms = 500\nstale_after_secs = 2\n",
                CONFIG.replace("timeout_secs = 3", "timeout_secs = 6")
            )
            .as_bytes(),
        )
        .unwrap();
    let env = env(&db.url, &plain, &config);
    let port = free_port();
    let http = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut child = spawn_binary(&env, port);
    wait_ready(&client, &http).await;

    // 300 deliveries from 32 senders; the kill lands once 150 are acknowledged and slow notes
    // are on the wire.
    let plain = &plain;
    let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (client, http, acked, next) =
            (client.clone(), http.clone(), acked.clone(), next.clone());
        senders.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= 300 {
                    break;
                }
                let id = if i % 2 == 0 {
                    format!("th_slow_{i:03}")
                } else {
                    format!("th_fast_{i:03}")
                };
                let text = if i % 3 == 0 { OUTAGE } else { HOWTO };
                let status = deliver(&client, &http, plain_delivery(&id, text)).await;
                if status == 202 || status == 200 {
                    acked.lock().unwrap().push(id);
                }
            }
        });
    }
    let seen = &acked;
    wait_for(
        Duration::from_secs(30),
        "150 acknowledged and notes in flight",
        || async move { seen.lock().unwrap().len() >= 150 && plain.slow_in_flight() >= 5 },
    )
    .await;
    let in_flight_at_kill = plain.slow_in_flight();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    senders.join_all().await;
    let acked = acked.lock().unwrap().clone();

    let restarted = Instant::now();
    let mut child = spawn_binary(&env, port);
    let pool = &db.pool().await;
    let acked = &acked;
    wait_for(
        Duration::from_secs(15),
        "every acknowledged ticket routed",
        || async move {
            let threads = plain.threads();
            acked.iter().all(|id| {
                threads.get(id).is_some_and(|t| {
                    !t.notes.is_empty() && !t.labels.is_empty() && t.priority.is_some()
                })
            })
        },
    )
    .await;
    wait_for(
        Duration::from_secs(15).saturating_sub(restarted.elapsed()),
        "every action marked done within 15 s of the restart",
        || async move {
            count(pool, "SELECT COUNT(*) FROM actions WHERE status <> 'done'").await == 0
        },
    )
    .await;
    let recovered = restarted.elapsed();
    // Every note that was on the wire has landed by now; none may have made a second one.
    wait_for(
        Duration::from_secs(10),
        "the slow notes landed",
        || async move { plain.slow_in_flight() == 0 },
    )
    .await;
    let doubled: Vec<(String, usize)> = plain
        .threads()
        .into_iter()
        .filter(|(_, t)| t.notes.len() > 1)
        .map(|(id, t)| (id, t.notes.len()))
        .collect();
    assert!(doubled.is_empty(), "threads with two notes: {doubled:?}");
    assert_routed_once(pool, plain, acked).await;
    let taken_over: i64 = count(
        pool,
        "SELECT COUNT(*) FROM actions WHERE kind = 'plain.note' AND attempts > 1",
    )
    .await;
    eprintln!(
        "kill -9 with slow notes: {} acknowledged, {in_flight_at_kill} notes on the wire at the kill, \
         {taken_over} notes taken over, recovered {:.1}s after the restart",
        acked.len(),
        recovered.as_secs_f64()
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

// ---------------------------------------------------------------------------------------------
// The model answers 529 for 30 s
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_model_overloaded_for_30_s_costs_no_ticket_and_no_retry_storm() {
    let db = TestDb::new().await;
    let plain = FakePlain::start().await;
    let claude = FakeClaude::start().await;
    claude.set_down(true);
    let config = config_file(
        "[claude]\ndeadline_ms = 3000\ntimeout_ms = 1000\nbackoff_base_ms = 100\nbackoff_max_ms = 400\n",
    );
    let mut env = env(&db.url, &plain, &config);
    env.insert("ANTHROPIC_API_KEY", MODEL_KEY.to_owned());
    env.insert("ANTHROPIC_BASE_URL", claude.url.clone());
    let app = Running::start(App::build(settings(&env)).await.unwrap()).await;
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    let outage = Instant::now();
    let mut i = 0;
    while outage.elapsed() < Duration::from_secs(30) {
        let id = format!("th_529_{i:02}");
        assert_eq!(
            deliver(&client, &app.http, plain_delivery(&id, OUTAGE)).await,
            202
        );
        ids.push(id);
        i += 1;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    let pool = &db.pool().await;
    let plain = &plain;
    let n = i64::try_from(ids.len()).unwrap();
    wait_for(
        Duration::from_secs(20),
        "outage tickets decided",
        || async move { count(pool, "SELECT COUNT(*) FROM decisions").await == n },
    )
    .await;
    let during = claude.calls();
    assert_eq!(
        claude.refused(),
        during,
        "every call during the outage got 529"
    );
    let tickets = u64::try_from(ids.len()).unwrap();
    claude.set_down(false);
    for j in 0..5 {
        let id = format!("th_529_after_{j}");
        assert_eq!(
            deliver(&client, &app.http, plain_delivery(&id, OUTAGE)).await,
            202
        );
        ids.push(id);
    }
    let total = ids.len();
    wait_for(
        Duration::from_secs(30),
        "every ticket routed",
        || async move { plain.routed() == total },
    )
    .await;
    assert_routed_once(pool, plain, &ids).await;
    // During the outage: every ticket fell back (raised to at least urgent), none waited past
    // its deadline, and retries stayed within the budget (reserve 10 + 0.2 per call).
    let fallbacks = count(
        pool,
        "SELECT COUNT(*) FROM decisions WHERE fallback AND ticket_id NOT LIKE 'th_529_after_%' \
         AND (fallback_reason LIKE 'upstream_529%' OR fallback_reason LIKE 'overloaded%')",
    )
    .await;
    assert_eq!(u64::try_from(fallbacks).unwrap(), tickets);
    let retries = during - tickets;
    #[allow(clippy::cast_precision_loss)]
    let budget = 10.0 + 0.2 * during as f64;
    assert!(
        (retries as f64) <= budget + 1.0,
        "{retries} retries for {tickets} tickets ({during} calls), budget {budget}"
    );
    let slowest: f64 = sqlx::query_scalar(
        "SELECT MAX(EXTRACT(EPOCH FROM (d.created_at - v.received_at)))::float8 FROM decisions d \
         JOIN deliveries v ON v.ticket_id = d.ticket_id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(
        slowest < 3.0 + 1.5,
        "slowest decision took {slowest}s (deadline 3 s)"
    );
    // After it: the model decides again.
    let by_model = count(
        pool,
        "SELECT COUNT(*) FROM decisions WHERE ticket_id LIKE 'th_529_after_%' AND NOT fallback",
    )
    .await;
    assert_eq!(by_model, 5);
    eprintln!(
        "529 for 30 s: {tickets} tickets, {during} calls, {retries} retries, slowest decision {slowest:.2}s"
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The ticketing tool answers 500 for 30 s
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_ticketing_outage_of_30_s_ends_with_every_action_done_once() {
    let db = TestDb::new().await;
    let plain = FakePlain::start().await;
    plain.set_down(true);
    let config = config_file("");
    let app = Running::start(
        App::build(settings(&env(&db.url, &plain, &config)))
            .await
            .unwrap(),
    )
    .await;
    let client = reqwest::Client::new();
    let ids: Vec<String> = (0..10).map(|i| format!("th_500_{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let text = if i % 2 == 0 { OUTAGE } else { HOWTO };
        assert_eq!(
            deliver(&client, &app.http, plain_delivery(id, text)).await,
            202
        );
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    let pool = &db.pool().await;
    let plain = &plain;
    assert_eq!(plain.routed(), 0);
    assert!(plain.failed() > 0);
    // Decided with the default tier once enrichment gave up; nothing given up for good.
    assert_eq!(count(pool, "SELECT COUNT(*) FROM decisions").await, 10);
    assert_eq!(
        count(pool, "SELECT COUNT(*) FROM actions WHERE status = 'failed'").await,
        0
    );
    plain.set_down(false);
    let took = wait_for(
        Duration::from_secs(15),
        "every ticket routed",
        || async move { plain.routed() == 10 },
    )
    .await;
    wait_for(Duration::from_secs(5), "every action marked done", || async move {
        count(pool, "SELECT COUNT(*) FROM actions WHERE status <> 'done'").await == 0
    })
    .await;
    assert_routed_once(pool, plain, &ids).await;
    for (id, t) in plain.threads() {
        for (op, n) in &t.calls {
            assert_eq!(*n, 1, "{id}: {op} applied {n} times");
        }
    }
    eprintln!(
        "Plain 500 for 30 s: {} refused calls, all routed {took:?} after recovery",
        plain.failed()
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL restarted mid-load
// ---------------------------------------------------------------------------------------------

/// A PostgreSQL server of the test's own (the shared one serves every other test), run by the
/// `postgres` user from the installed binaries.
struct PrivatePg {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
}

impl PrivatePg {
    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.path().join("data");
        let status = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl {args:?} failed");
    }

    fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path().join("bin"))
                    .find(|b| b.join("initdb").exists())
            })
            .expect(
                "PostgreSQL's server binaries are missing (/usr/lib/postgresql/*/bin/initdb); \
                 scripts/test installs them",
            );
        let dir = tempfile::Builder::new()
            .prefix("escalator-pg-")
            .tempdir_in("/tmp")
            .unwrap();
        let owned = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            owned.success(),
            "cannot hand the test cluster to the postgres user"
        );
        let pg = Self {
            dir,
            bin,
            port: free_port(),
        };
        let init = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg.bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(pg.dir.path().join("data"))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(init.success(), "initdb failed");
        pg.up();
        pg
    }

    fn up(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        self.pg_ctl(&["-o", &opts, "-w", "-l", "/dev/null", "start"]);
    }

    /// A fast shutdown, as `systemctl restart postgresql` does: sessions are terminated.
    fn down(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[tokio::test]
async fn postgres_restarted_mid_load_gives_503_never_a_false_2xx_and_recovers() {
    let pg = tokio::task::spawn_blocking(PrivatePg::start).await.unwrap();
    let plain = FakePlain::start().await;
    let config = config_file("[database]\nacquire_timeout_secs = 1\n");
    let env = env(&pg.url(), &plain, &config);
    let app = Running::start(App::build(settings(&env)).await.unwrap()).await;
    let client = reqwest::Client::new();
    let pg = Arc::new(pg);
    let outage = {
        let pg = pg.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let pg2 = pg.clone();
            tokio::task::spawn_blocking(move || pg2.down())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(4)).await;
            tokio::task::spawn_blocking(move || pg.up()).await.unwrap();
        })
    };
    let mut acked = Vec::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(12) {
        let id = format!("th_pg_{i:03}");
        let status = deliver(&client, &app.http, plain_delivery(&id, HOWTO)).await;
        *statuses.entry(status).or_default() += 1;
        if status == 202 {
            acked.push(id);
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    outage.await.unwrap();
    assert!(
        statuses.keys().all(|s| [202, 503].contains(s)),
        "only 202 or 503 while the database restarts: {statuses:?}"
    );
    assert!(
        statuses.get(&503).copied().unwrap_or(0) > 0,
        "the outage was seen: {statuses:?}"
    );
    let pool = &PgPool::connect(&pg.url()).await.unwrap();
    let plain = &plain;
    let acked = &acked;
    wait_for(
        Duration::from_secs(30),
        "every acknowledged ticket routed",
        || async move {
            let threads = plain.threads();
            acked
                .iter()
                .all(|id| threads.get(id).is_some_and(|t| !t.notes.is_empty()))
        },
    )
    .await;
    wait_for(Duration::from_secs(10), "every action marked done", || async move {
        count(pool, "SELECT COUNT(*) FROM actions WHERE status <> 'done'").await == 0
    })
    .await;
    assert_routed_once(pool, plain, acked).await;
    assert_eq!(
        client
            .get(format!("{}/readyz", app.http))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "ready again without a restart"
    );
    eprintln!(
        "PostgreSQL restart: {statuses:?}, {} acknowledged and routed",
        acked.len()
    );
    pool.close().await;
    app.stop().await;
}
