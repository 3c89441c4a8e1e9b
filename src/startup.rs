//! Wiring: builds the store, prompt, classifiers and use case from [`Settings`], binds both
//! listeners (so tests can use port 0 and read the real ports), and runs until a token is
//! cancelled. Used by `escalator serve` and by the integration tests.
//!
//! Over 450 lines: the one place that wires every section together (store, prompt, classifiers,
//! adapters, worker, servers); splitting it would spread the start-up order over files.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

use crate::{
    classifier::Decider,
    config::Settings,
    grpc::{EscalatorService, pb},
    http::{HttpState, router, with_request_timeout},
    prompt::Prompt,
    store::{self, Store},
    ticketing::{Adapters, RoutingPlanner},
    triage::{Bridge, Triage},
    worker::{self, Health, Worker},
};

/// The classifier chain for `settings`: Claude when an API key is set (with the offline
/// classifier as fallback), else the offline classifier alone.
///
/// # Errors
/// When the prompt cannot be loaded or the Claude client cannot be built.
pub fn build_decider(settings: &Settings) -> anyhow::Result<(Decider, Prompt)> {
    build_decider_for(settings, None)
}

/// [`build_decider`] with the start-up check's answer about the model ([`check_model`]).
/// Inside a runtime (serve) the cached prefix is counted with `count_tokens` in the background,
/// so start-up does not wait on the API.
///
/// # Errors
/// When the prompt cannot be loaded or the Claude client cannot be built.
pub fn build_decider_for(
    settings: &Settings,
    model_info: Option<&crate::classifier::claude::models::ModelInfo>,
) -> anyhow::Result<(Decider, Prompt)> {
    let classifiers = settings.classifiers(model_info)?;
    classifiers.check_cache_in_background();
    Ok((classifiers.decider(), classifiers.prompt))
}

/// With an API key, asks the API about the configured model before anything is served
/// (`GET /v1/models/{model}`): a model that does not exist, is retired, or cannot do what the
/// configuration asks stops the start (the CLI exits 64); an outage only warns.
///
/// # Errors
/// A [`crate::classifier::claude::models::ModelError`] (inside the `anyhow` error, so callers
/// can `downcast_ref` it).
pub async fn check_model(
    settings: &Settings,
) -> anyhow::Result<Option<crate::classifier::claude::models::ModelInfo>> {
    Ok(crate::classifier::claude::models::check_model(&settings.claude).await?)
}

/// Says at start which webhook routes and tool actions are live, so a missing secret or key is
/// visible in the first lines of the log.
fn log_bridge_setup(settings: &Settings) {
    let t = &settings.ticketing;
    for (route, secret, var) in [
        (
            "/webhooks/plain",
            t.plain.webhook_secret.is_some(),
            "PLAIN_WEBHOOK_SECRET",
        ),
        (
            "/webhooks/pylon",
            t.pylon.webhook_secret.is_some(),
            "PYLON_WEBHOOK_SECRET",
        ),
    ] {
        if !secret {
            tracing::warn!(
                route,
                "{var} is unset: {route} refuses every request with 503"
            );
        }
    }
    if t.plain.api_key.is_none() {
        tracing::warn!(
            "PLAIN_API_KEY is unset: Plain tickets are decided with the default tier and logged, not routed back"
        );
    }
    if t.pylon.api_token.is_none() {
        tracing::warn!("PYLON_API_TOKEN is unset: /webhooks/pylon refuses every request with 503");
    }
}

/// Connections the kernel may hold for a listener before it accepts them (Linux caps it at
/// `net.core.somaxconn`, 4096 by default). `TcpListener::bind` asks for 128, like the
/// standard library: 256 clients connecting at once overflowed it, and each dropped SYN cost
/// its client a retransmit a second later (the shared harness saw 55 of 256 connections open
/// 1 s late, and a second of latency on their first webhook). Node's HTTP server asks for 511.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the listener of `addr`, naming the setting `key` when the address is taken.
async fn bind(key: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // As `TcpListener::bind` does: a restart may bind while old connections linger.
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().with_context(|| format!("cannot listen on {key} {addr}"))
}

/// Says at start who may call the gRPC API, so an open port is visible in the first lines of
/// the log.
fn log_grpc_access(settings: &Settings, callers: Option<&crate::credentials::CredentialsFile>) {
    let g = &settings.grpc;
    match callers {
        Some(file) => tracing::info!(
            callers = file.current().names().len(),
            tls = g.tls.is_some(),
            mutual_tls = g.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
            reflection = g.reflection,
            "gRPC Classify and Route need a caller's bearer token (ESCALATOR_GRPC_CALLERS_FILE)"
        ),
        None if settings.grpc_addr.ip().is_loopback() => tracing::info!(
            reflection = g.reflection,
            "gRPC on a loopback address without callers: no token is asked for"
        ),
        None => tracing::warn!(
            addr = %settings.grpc_addr,
            tls = g.tls.is_some(),
            reflection = g.reflection,
            "[grpc] allow_unauthenticated = true: Classify and Route answer anyone who can reach the gRPC port"
        ),
    }
}

/// A built application: listeners bound, dependencies connected, not yet serving.
pub struct App {
    settings: Settings,
    /// The gRPC callers (re-read when the file changes); `None`: no token is asked for.
    callers: Option<Arc<crate::credentials::CredentialsFile>>,
    /// The gRPC server's TLS, when configured.
    grpc_tls: Option<tonic::transport::ServerTlsConfig>,
    /// The named reviewers of the web pages (re-read when the file changes).
    reviewers: Option<Arc<crate::credentials::CredentialsFile>>,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    /// The use case over the accept path's connections, for the gRPC edge.
    grpc_triage: Triage,
    store: Arc<dyn Store>,
    bridge: Bridge,
    worker: Worker,
}

impl App {
    /// Connects the store (running migrations), builds the classifiers and binds both listeners.
    ///
    /// # Errors
    /// When the database cannot be opened, the prompt is invalid, or an address is taken.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = store::connect(&settings.store).await?;
        Self::with_store(settings, store).await
    }

    /// Like [`App::build`], over an already connected and migrated store (tests hand in a
    /// fresh database per test).
    ///
    /// # Errors
    /// When the configured model fails its check (see [`check_model`]), the prompt is invalid
    /// or an address is taken.
    pub async fn with_store(settings: Settings, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        for w in &settings.warnings {
            tracing::warn!("{w}");
        }
        let model_info = check_model(&settings).await?;
        let (decider, prompt) = build_decider_for(&settings, model_info.as_ref())?;
        Self::with_decider(settings, store, decider, prompt.version()).await
    }

    /// Like [`App::with_store`], classifying with `decider` (whose decisions carry
    /// `prompt_version`) instead of the one the settings describe: tests plug in a classifier
    /// that misbehaves on purpose.
    ///
    /// # Errors
    /// When an address is taken or the ticketing clients cannot be built.
    pub async fn with_decider(
        settings: Settings,
        store: Arc<dyn Store>,
        decider: Decider,
        prompt_version: &str,
    ) -> anyhow::Result<Self> {
        let outbox_wake = Arc::new(tokio::sync::Notify::new());
        let triage = Triage::new(
            store.clone(),
            decider,
            Arc::new(RoutingPlanner::new(&settings.ticketing)),
            settings.triage.clone(),
        )
        .notifying(outbox_wake.clone())
        .with_followups(store.clone());
        let adapters = Adapters::new(&settings.ticketing)
            .context("cannot build the ticketing HTTP clients")?;
        let wake = Arc::new(tokio::sync::Notify::new());
        let overrides = crate::review::overrides::Overrides::new(
            store.clone(),
            settings.ticketing.routes.clone(),
            &settings.review,
            // A set of its own, so reading a ticket for an override takes nothing from the
            // action worker's rate limits.
            Adapters::new(&settings.ticketing)
                .context("cannot build the ticketing HTTP clients")?,
        );
        // The accept path (webhook deliveries stored, gRPC answers) has connections of its
        // own, so its answers never queue behind the worker's statements.
        let accepting = store.accepting();
        let bridge = Bridge::new(accepting.clone(), adapters.clone(), wake.clone())
            .with_overrides(Arc::new(overrides));
        let worker = Worker::new(
            crate::worker::Queues {
                inbox: store.clone(),
                outbox: store.clone(),
                liveness: store.clone(),
            },
            triage.clone(),
            adapters,
            settings.worker.clone(),
            crate::worker::Wakes {
                inbox: wake,
                outbox: outbox_wake,
            },
        );
        // Alive before serving: a claim this process takes must not look abandoned.
        if let Err(e) = store.heartbeat().await {
            tracing::warn!(error = %e, "cannot write the first worker heartbeat");
        }
        log_bridge_setup(&settings);
        // Read before binding: an unreadable login file or certificate stops the start.
        let callers = settings.grpc.callers()?;
        let grpc_tls = settings.grpc.server_tls()?;
        let reviewers = settings.review.reviewers()?;
        log_grpc_access(&settings, callers.as_deref());
        let m = crate::telemetry::metrics::metrics();
        m.prime_models(&triage.decider().models());
        if let Some(c) = &callers {
            let current = c.current();
            m.prime_callers(&current.names());
        }
        let grpc_listener = bind("ESCALATOR_GRPC_ADDR", settings.grpc_addr).await?;
        let http_listener = bind("ESCALATOR_HTTP_ADDR", settings.http_addr).await?;
        tracing::info!(
            database = %store::redact_url(&settings.store.url),
            backend = store.backend(),
            classifier = %triage.decider().describe(),
            prompt_version,
            grpc = %grpc_listener.local_addr()?,
            http = %http_listener.local_addr()?,
            "escalator ready"
        );
        Ok(Self {
            settings,
            callers,
            grpc_tls,
            reviewers,
            grpc_listener,
            http_listener,
            grpc_triage: triage.over(accepting),
            store,
            bridge,
            worker,
        })
    }

    /// The bound gRPC address (the real port when configured with port 0).
    ///
    /// # Errors
    /// When the socket has no local address (closed).
    pub fn grpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.grpc_listener.local_addr()
    }

    /// The bound HTTP address.
    ///
    /// # Errors
    /// When the socket has no local address (closed).
    pub fn http_addr(&self) -> std::io::Result<SocketAddr> {
        self.http_listener.local_addr()
    }

    /// Serves gRPC and HTTP until `shutdown` is cancelled, then stops accepting, lets in-flight
    /// requests finish within the grace period, and closes the database pool.
    ///
    /// # Errors
    /// When a server fails (not on a normal shutdown).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<pb::escalator_server::EscalatorServer<EscalatorService>>()
            .await;
        let reflection = if self.settings.grpc.reflection {
            Some(
                tonic_reflection::server::Builder::configure()
                    .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                    .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                    .build_v1()
                    .context("cannot build gRPC reflection")?,
            )
        } else {
            None
        };
        // Only the Escalator service asks for a caller's token: health answers probes and
        // reflection (when on) describes the API, neither acts.
        let service = pb::escalator_server::EscalatorServer::with_interceptor(
            EscalatorService::new(self.grpc_triage.clone()),
            crate::grpc::auth::CallerCheck::new(self.callers.clone()),
        );

        let grpc_stop = CancellationToken::new();
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = self.grpc_tls.clone() {
            builder = builder
                .tls_config(tls)
                .context("the gRPC TLS certificate or key is not usable")?;
        }
        let grpc = builder
            .add_service(health_service)
            .add_optional_service(reflection)
            .add_service(service)
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(self.grpc_listener),
                grpc_stop.clone().cancelled_owned(),
            );
        let http_stop = CancellationToken::new();
        let routes = router(HttpState {
            store: self.store.clone(),
            bridge: self.bridge.clone(),
            health: self.worker.health(),
        })
        .merge(crate::web::router(
            self.store.clone(),
            self.store.clone(),
            &self.settings,
            self.reviewers.clone(),
        ));
        let http = axum::serve(
            self.http_listener,
            with_request_timeout(routes, self.settings.http_timeout)
                // The peer's address, for counting failed review logins per client.
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(http_stop.clone().cancelled_owned());
        let scores = self.settings.telemetry.langfuse.as_ref().map(|lf| {
            crate::telemetry::scores::ScoreSender::new(lf, &self.settings.telemetry.environment)
        });
        let loops: Arc<Health> = self.worker.health();
        let scores = match scores {
            Some(Ok(sender)) => {
                let (store, interval, stop) = (
                    self.store.clone(),
                    self.settings.telemetry.score_interval,
                    shutdown.clone(),
                );
                Some(tokio::spawn(worker::supervise(
                    "scores",
                    loops.clone(),
                    shutdown.clone(),
                    move || {
                        crate::worker::scores::run_sender(
                            store.clone(),
                            sender.clone(),
                            interval,
                            stop.clone(),
                        )
                    },
                )))
            }
            Some(Err(e)) => return Err(e.context("cannot build the Langfuse score client")),
            None => None,
        };
        let audit = self.settings.audit.schedule.map(|_| {
            let (store, settings, stop) =
                (self.store.clone(), self.settings.clone(), shutdown.clone());
            tokio::spawn(worker::supervise(
                "audit",
                loops.clone(),
                shutdown.clone(),
                move || crate::audit::schedule::run(store.clone(), settings.clone(), stop.clone()),
            ))
        });
        let beat_stop = CancellationToken::new();
        let heartbeat = {
            let (store, interval, stop) = (
                self.store.clone(),
                self.settings.worker.heartbeat_interval,
                beat_stop.clone(),
            );
            tokio::spawn(worker::supervise(
                "heartbeat",
                loops.clone(),
                beat_stop.clone(),
                move || worker::heartbeat(store.clone(), interval, stop.clone()),
            ))
        };
        let worker_stop = CancellationToken::new();
        let worker = if self.settings.worker.enabled {
            Some(tokio::spawn(self.worker.run(worker_stop.clone())))
        } else {
            tracing::info!("worker disabled ([actions] enabled = false)");
            None
        };
        let mut grpc = tokio::spawn(grpc);
        let mut http = tokio::spawn(async move { http.await });

        tokio::select! {
            () = shutdown.cancelled() => {}
            r = &mut grpc => return Err(anyhow::anyhow!("gRPC server stopped: {r:?}")),
            r = &mut http => return Err(anyhow::anyhow!("HTTP server stopped: {r:?}")),
        }
        // Tell load balancers first, then stop accepting and drain.
        health
            .set_not_serving::<pb::escalator_server::EscalatorServer<EscalatorService>>()
            .await;
        grpc_stop.cancel();
        http_stop.cancel();
        worker_stop.cancel();
        let drain = async {
            let g = grpc.await;
            let h = http.await;
            if let Some(w) = worker {
                if let Err(e) = w.await {
                    tracing::error!(error = %e, "action worker panicked");
                }
            }
            (g, h)
        };
        match tokio::time::timeout(self.settings.shutdown_grace, drain).await {
            Ok((g, h)) => {
                g.context("gRPC task panicked")?
                    .context("gRPC server failed")?;
                h.context("HTTP task panicked")?
                    .context("HTTP server failed")?;
                tracing::info!("in-flight requests finished");
            }
            Err(_) => tracing::warn!(
                grace_secs = self.settings.shutdown_grace.as_secs(),
                "drain deadline passed; exiting with requests still open"
            ),
        }
        if let Some(scores) = scores {
            let _ = scores.await;
        }
        if let Some(audit) = audit {
            // A weekly run in progress is cut short; the next start runs it again next week
            // (or `escalator audit --open-pr` now), and the flow is safe to repeat.
            audit.abort();
            let _ = audit.await;
        }
        // Whatever is still leased is taken over by another replica at once.
        beat_stop.cancel();
        let _ = heartbeat.await;
        if let Err(e) = self.store.retire().await {
            tracing::warn!(error = %e, "cannot remove the worker heartbeat; its leases expire on their own");
        }
        self.store.close().await;
        tracing::info!("escalator stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 300 clients connecting at once to a listener that has not accepted any of them yet all
    /// get through the handshake. With the standard backlog of 128 the kernel drops the SYNs
    /// past it and those clients retry only after a second, far past the 500 ms allowed here.
    #[tokio::test]
    async fn a_crowd_of_clients_connecting_at_once_is_not_turned_away() {
        let listener = bind("TEST_ADDR", "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let connects = (0..300).map(|_| {
            tokio::time::timeout(
                std::time::Duration::from_millis(500),
                tokio::net::TcpStream::connect(addr),
            )
        });
        let results = futures_util::future::join_all(connects).await;
        let connected = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
        assert_eq!(
            connected, 300,
            "every handshake completes before any accept"
        );
        drop(listener);
    }
}
