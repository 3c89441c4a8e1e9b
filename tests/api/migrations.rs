//! Migrations with several replicas: every replica runs them at start, so two starting at once
//! on an empty database must both come up, with each migration applied once. The migrator's
//! PostgreSQL advisory lock is what makes that safe (see `store::postgres_migrator`).

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use escalator::{
    config::Settings,
    store::{self, postgres_migrator},
};

use crate::pg::TestDb;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `escalator serve` on `db`, logging to `log`.
fn serve(db: &str, http: u16, log: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_escalator"))
        .arg("serve")
        .env_clear()
        .env("DATABASE_URL", db)
        .env("ESCALATOR_HTTP_ADDR", format!("127.0.0.1:{http}"))
        .env("ESCALATOR_GRPC_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("ESCALATOR_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Applied migrations: (count, all successful).
async fn applied(url: &str) -> (i64, bool) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let row: (i64, bool) =
        sqlx::query_as("SELECT COUNT(*), COALESCE(BOOL_AND(success), false) FROM _sqlx_migrations")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    row
}

/// Two real processes started at the same moment on an empty database: both migrate (one
/// waits for the other's advisory lock), both answer `/readyz` 200, each migration is applied
/// exactly once, and both stop cleanly.
#[tokio::test]
async fn two_processes_starting_at_once_on_an_empty_database_both_come_up() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port()];
    let logs = [dir.path().join("a.log"), dir.path().join("b.log")];
    let mut children = [
        serve(&db.url, ports[0], &logs[0]),
        serve(&db.url, ports[1], &logs[1]),
    ];
    let client = reqwest::Client::new();
    let start = Instant::now();
    let mut ready = [false, false];
    while !ready.iter().all(|r| *r) {
        for i in 0..2 {
            if let Some(status) = children[i].try_wait().unwrap() {
                panic!(
                    "process {i} exited with {status} before it was ready:\n{}",
                    std::fs::read_to_string(&logs[i]).unwrap_or_default()
                );
            }
            ready[i] = ready[i]
                || client
                    .get(format!("http://127.0.0.1:{}/readyz", ports[i]))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not both ready after 60 s: {ready:?}\n--- a ---\n{}\n--- b ---\n{}",
            std::fs::read_to_string(&logs[0]).unwrap_or_default(),
            std::fs::read_to_string(&logs[1]).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expected = i64::try_from(postgres_migrator().iter().count()).unwrap();
    assert_eq!(applied(&db.url).await, (expected, true));

    for (i, child) in children.iter_mut().enumerate() {
        let kill = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "process {i}: {status}\n{}",
            std::fs::read_to_string(&logs[i]).unwrap_or_default()
        );
    }
}

/// The migrator is the locking one (a future `set_locking(false)` would make concurrent starts
/// race on `CREATE TABLE`), and eight connects racing on one empty database all succeed.
#[tokio::test]
async fn concurrent_starts_migrate_once_under_the_advisory_lock() {
    assert!(
        postgres_migrator().locking,
        "the migrator must take its advisory lock"
    );
    let db = TestDb::new().await;
    let mut settings = Settings::load(&std::collections::BTreeMap::from([(
        "DATABASE_URL",
        db.url.as_str(),
    )]))
    .unwrap()
    .store;
    settings.max_connections = 2;
    let mut starts = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let s = settings.clone();
        starts.spawn(async move { store::connect(&s).await.map(|_| ()) });
    }
    while let Some(r) = starts.join_next().await {
        r.unwrap()
            .unwrap_or_else(|e| panic!("a concurrent start failed: {e:#}"));
    }
    let expected = i64::try_from(postgres_migrator().iter().count()).unwrap();
    assert_eq!(applied(&db.url).await, (expected, true));
}

/// A rolling upgrade or a rollback: a database a newer release migrated (a migration this
/// release does not know is applied) still lets this release start; a known migration whose
/// file changed still stops it.
#[tokio::test]
async fn an_older_release_starts_on_a_database_a_newer_one_migrated() {
    let db = TestDb::new().await;
    let settings = Settings::load(&std::collections::BTreeMap::from([(
        "DATABASE_URL",
        db.url.as_str(),
    )]))
    .unwrap()
    .store;
    store::connect(&settings).await.unwrap().close().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990001, 'from a newer release', true, '\\x00'::bytea, 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    store::connect(&settings)
        .await
        .unwrap_or_else(|e| panic!("an older release must start: {e:#}"))
        .close()
        .await;
    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00'::bytea WHERE version = 1")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let e = store::connect(&settings)
        .await
        .err()
        .map(|e| format!("{e:#}"));
    assert!(
        e.as_deref().is_some_and(|e| e.contains("migrat")),
        "a changed migration must stop the start: {e:?}"
    );
}
