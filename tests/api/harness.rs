//! The shared harness of the integration tests: boots the real `App` on port 0 (over a given
//! store, or the database its settings name) with a tonic client and HTTP helpers; starts the
//! mock Plain and Pylon servers ([`Mocks`]) and signs webhooks as they do; and writes a store
//! test once for both backends ([`both_backends!`]).

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use escalator::{
    config::Settings,
    domain::{RawTicket, Source, Ticket, Tier},
    grpc::pb::{self, escalator_client::EscalatorClient},
    startup::App,
    store::{self, PgStore, SqliteStore, Store},
};
use hmac::{Hmac, Mac as _};
use serde_json::Value;
use sha2::Sha256;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use wiremock::MockServer;

/// The webhook signing secrets and API credentials the mocks expect.
pub const PLAIN_SECRET: &str = "plain-webhook-secret";
/// Pylon's webhook secret.
pub const PYLON_SECRET: &str = "pylon-webhook-secret";
/// Plain's API key (machine user).
pub const PLAIN_KEY: &str = "plainApiKey_test";
/// Pylon's API token.
pub const PYLON_TOKEN: &str = "pylon-token";

/// One mock server per ticketing tool: Plain's GraphQL API (at `/graphql/v1`) and Pylon's REST
/// API. Each test mounts the exact requests it expects on them.
pub struct Mocks {
    pub plain: MockServer,
    pub pylon: MockServer,
}

impl Mocks {
    /// Both servers, on 127.0.0.1 ports of their own.
    pub async fn start() -> Self {
        Self {
            plain: MockServer::start().await,
            pylon: MockServer::start().await,
        }
    }
}

/// The lowercase hex HMAC-SHA256 of `body` under `secret`: how Plain and Pylon sign webhooks.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A running app and clients for it.
pub struct TestApp {
    pub grpc: EscalatorClient<Channel>,
    pub channel: Channel,
    pub http: SocketAddr,
    pub store: Arc<dyn Store>,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<anyhow::Result<()>>,
    client: reqwest::Client,
    /// The `ESCALATOR_CONFIG` file the settings were loaded from, kept while the app runs.
    _config: Option<tempfile::NamedTempFile>,
}

pub fn test_settings() -> Settings {
    Settings::load(&BTreeMap::from([
        ("ESCALATOR_GRPC_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_HTTP_ADDR", "127.0.0.1:0"),
    ]))
    .unwrap()
}

pub async fn spawn_app(store: Arc<dyn Store>) -> TestApp {
    TestApp::with_store(test_settings(), store, None).await
}

impl TestApp {
    /// The app for `settings` on the database they name (migrated here), kept with its config
    /// file.
    pub async fn start(settings: Settings, config: Option<tempfile::NamedTempFile>) -> Self {
        let store = store::connect(&settings.store).await.unwrap();
        Self::with_store(settings, store, config).await
    }

    /// The app for `settings` over `store`.
    pub async fn with_store(
        settings: Settings,
        store: Arc<dyn Store>,
        config: Option<tempfile::NamedTempFile>,
    ) -> Self {
        let app = App::with_store(settings, store.clone()).await.unwrap();
        let grpc_addr = app.grpc_addr().unwrap();
        let http = app.http_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let channel = Channel::from_shared(format!("http://{grpc_addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        TestApp {
            grpc: EscalatorClient::new(channel.clone()),
            channel,
            http,
            store,
            shutdown,
            server,
            client: reqwest::Client::new(),
            _config: config,
        }
    }

    /// Cancels the shutdown token and waits for a clean exit.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.server.await.unwrap().unwrap();
    }

    /// `GET path` over a raw HTTP/1.1 connection; returns (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(self.http).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let status = out[9..12].parse().unwrap();
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// `POST route` with a JSON body and `headers`; returns (status, body as JSON, or as a
    /// string when it is not JSON).
    pub async fn post(
        &self,
        route: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("http://{}{route}", self.http))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A Plain webhook delivery, signed as Plain signs it.
    pub async fn plain(&self, body: Vec<u8>) -> (u16, Value) {
        let sig = sign(PLAIN_SECRET, &body);
        self.post("/webhooks/plain", &[("Plain-Request-Signature", sig)], body)
            .await
    }

    /// A Pylon webhook delivery, signed as Pylon signs it.
    pub async fn pylon(&self, body: Vec<u8>) -> (u16, Value) {
        let sig = sign(PYLON_SECRET, &body);
        self.post("/webhooks/pylon", &[("X-Pylon-Signature", sig)], body)
            .await
    }
}

pub fn pg(pool: sqlx::PgPool) -> Arc<dyn Store> {
    Arc::new(PgStore::new(pool))
}

pub fn lite(pool: sqlx::SqlitePool) -> Arc<dyn Store> {
    Arc::new(SqliteStore::new(pool))
}

pub fn ticket(id: &str, subject: &str, body: &str, tier: &str) -> pb::Ticket {
    pb::Ticket {
        id: id.into(),
        version: "v1".into(),
        subject: subject.into(),
        body: body.into(),
        tier: tier.into(),
        arr_usd: None,
        customer_id: String::new(),
        conversation: Vec::new(),
    }
}

pub fn domain_ticket(id: &str, version: &str, customer: &str) -> Ticket {
    Ticket::parse(
        Source::Api,
        RawTicket {
            id: id.into(),
            version: version.into(),
            subject: "s".into(),
            body: "How do I export a dashboard?".into(),
            tier: Some(Tier::Pro),
            arr_usd: Some(1200.0),
            customer_id: customer.into(),
        },
        "",
    )
    .unwrap()
}

/// Writes each test once and runs it on both backends.
#[macro_export]
macro_rules! both_backends {
    ($(async fn $name:ident($store:ident) $body:block)+) => {
        mod on_postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[sqlx::test(migrations = "migrations/postgres")]
                async fn $name(pool: sqlx::PgPool) {
                    let $store = $crate::harness::pg(pool);
                    $body
                }
            )+
        }
        mod on_sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[sqlx::test(migrations = "migrations/sqlite")]
                async fn $name(pool: sqlx::SqlitePool) {
                    let $store = $crate::harness::lite(pool);
                    $body
                }
            )+
        }
    };
}
