//! The real app on port 0 over a SQLite file, under a scoped subscriber that exports spans as
//! configured: what every telemetry test starts from.
//!
//! The subscriber is scoped to the test's thread and the runtime is current-thread, so every span
//! of the server is created under it; it is built outside any runtime because the exporter's
//! blocking HTTP client owns one.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use escalator::{
    config::Settings,
    grpc::pb::escalator_client::EscalatorClient,
    startup::App,
    store::{self, Store},
    telemetry::{self, TelemetryGuard},
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Settings, subscriber, exporter guard and runtime of one test.
pub struct Traced {
    pub settings: Settings,
    pub dispatch: tracing::Dispatch,
    pub guard: TelemetryGuard,
    pub rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

/// Loads settings from `env` plus ports 0 and a fresh SQLite file, and builds telemetry.
pub fn traced(env: &[(&str, &str)]) -> Traced {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut map = BTreeMap::from([
        ("ESCALATOR_GRPC_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_HTTP_ADDR", "127.0.0.1:0"),
        ("DATABASE_URL", db.as_str()),
    ]);
    map.extend(env.iter().copied());
    let settings = Settings::load(&map).unwrap();
    let (dispatch, guard) = telemetry::build(&settings.telemetry).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    Traced {
        settings,
        dispatch,
        guard,
        rt,
        _dir: dir,
    }
}

/// A running app.
pub struct Running {
    pub grpc: EscalatorClient<Channel>,
    pub http: SocketAddr,
    pub store: Arc<dyn Store>,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Traced {
    /// Connects the store, builds the app and serves it.
    pub async fn start(&self) -> Running {
        let s = &self.settings;
        let store = store::connect(&s.store).await.unwrap();
        let app = App::with_store(s.clone(), store.clone()).await.unwrap();
        let (grpc, http) = (app.grpc_addr().unwrap(), app.http_addr().unwrap());
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let grpc = EscalatorClient::connect(format!("http://{grpc}"))
            .await
            .unwrap();
        Running {
            grpc,
            http,
            store,
            shutdown,
            server,
        }
    }
}

impl Running {
    /// Stops the app and waits for a clean exit.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.server.await.unwrap().unwrap();
    }
}
