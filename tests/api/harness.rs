//! Boots the real `App` on port 0 over a given store, with a tonic client and an HTTP probe.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use escalator::{
    config::Settings,
    domain::{RawTicket, Source, Ticket},
    grpc::pb::{self, escalator_client::EscalatorClient},
    startup::App,
    store::{PgStore, SqliteStore, Store},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// A running app and clients for it.
pub struct TestApp {
    pub grpc: EscalatorClient<Channel>,
    pub channel: Channel,
    pub http: SocketAddr,
    pub store: Arc<dyn Store>,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<anyhow::Result<()>>,
}

pub fn test_settings() -> Settings {
    Settings::load(&BTreeMap::from([
        ("ESCALATOR_GRPC_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_HTTP_ADDR", "127.0.0.1:0"),
    ]))
    .unwrap()
}

pub async fn spawn_app(store: Arc<dyn Store>) -> TestApp {
    let app = App::with_store(test_settings(), store.clone())
        .await
        .unwrap();
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
    }
}

impl TestApp {
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
            tier: "pro".into(),
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
