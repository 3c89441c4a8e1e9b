//! The load: signed Plain `thread.thread_created` webhooks (or gRPC `Classify` calls), with a
//! share of redeliveries, in a closed loop (N connections, each sending its next request when
//! the last is answered), an open loop (R per second whatever the answers, so a slow service
//! cannot slow the arrivals) or one burst (N at once).
//!
//! Over 450 lines: the three load shapes share one sender and one tally, and the signing of Plain
//! deliveries sits beside them so a load cannot drift from what the service verifies.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use tokio::{sync::Semaphore, task::JoinSet};
use tonic::transport::Channel;

use super::tickets::{TicketSpec, Tickets, micros, ulid};
use crate::{
    grpc::pb::{self, escalator_client::EscalatorClient},
    ticketing::plain::SIGNATURE_HEADER,
};

/// How long one request may take before it counts as a transport error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The shape of the load.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    /// `connections` senders back to back for `duration`.
    Closed {
        /// Concurrent senders.
        connections: usize,
        /// How long.
        duration: Duration,
    },
    /// `rate` arrivals per second for `duration`.
    Open {
        /// Arrivals per second.
        rate: f64,
        /// How long.
        duration: Duration,
    },
    /// `count` tickets at once, at most `connections` requests in flight.
    Burst {
        /// Tickets.
        count: u64,
        /// Requests in flight at most.
        connections: usize,
    },
}

/// What the service is called through.
pub(crate) enum Target {
    /// `POST /webhooks/plain`, signed with the secret.
    Webhook {
        /// The HTTP client (one pool for every sender).
        client: reqwest::Client,
        /// The webhook URL.
        url: String,
        /// `PLAIN_WEBHOOK_SECRET`.
        secret: String,
    },
    /// `Classify` over a few HTTP/2 connections.
    Grpc {
        /// One client per connection; senders take them round-robin.
        clients: Vec<EscalatorClient<Channel>>,
    },
}

/// The answers the senders got.
#[derive(Debug, Default)]
pub(crate) struct Acks {
    /// Requests sent.
    pub(crate) requests: AtomicU64,
    /// Redeliveries among them.
    pub(crate) redeliveries: AtomicU64,
    /// 202 (webhook) or a new decision (gRPC).
    pub(crate) new: AtomicU64,
    /// 200 `duplicate` (webhook) or `duplicate = true` (gRPC).
    pub(crate) duplicates: AtomicU64,
    /// Other 2xx (e.g. an ignored event).
    pub(crate) other_2xx: AtomicU64,
    /// 4xx, or a gRPC status other than UNAVAILABLE/INTERNAL.
    pub(crate) client_errors: AtomicU64,
    /// 5xx, or gRPC UNAVAILABLE/INTERNAL.
    pub(crate) server_errors: AtomicU64,
    /// No answer (connection refused, reset, timed out).
    pub(crate) transport_errors: AtomicU64,
    /// Time to the answer of every request, microseconds.
    pub(crate) latencies_us: Mutex<Vec<u64>>,
    /// The first failure, to show what went wrong.
    pub(crate) first_error: Mutex<Option<String>>,
}

impl Acks {
    /// Requests answered 2xx.
    pub(crate) fn accepted(&self) -> u64 {
        self.new.load(Ordering::Relaxed)
            + self.duplicates.load(Ordering::Relaxed)
            + self.other_2xx.load(Ordering::Relaxed)
    }

    fn note_error(&self, e: String) {
        let mut g = self
            .first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.is_none() {
            *g = Some(e);
        }
    }

    fn latency(&self, d: Duration) {
        self.latencies_us
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(micros(d));
    }
}

/// Sends tickets and records what happened to them.
pub(crate) struct Driver {
    target: Target,
    tickets: Arc<Tickets>,
    /// The answers.
    pub(crate) acks: Arc<Acks>,
    redeliveries: f64,
    next: AtomicU64,
}

impl Driver {
    /// A driver sending to `target`; `redeliveries` (0..1) is the share of requests that resend
    /// a ticket sent before.
    pub(crate) fn new(target: Target, tickets: Arc<Tickets>, redeliveries: f64) -> Self {
        Self {
            target,
            tickets,
            acks: Arc::new(Acks::default()),
            redeliveries,
            next: AtomicU64::new(0),
        }
    }

    /// Runs the load to its end (every request answered or timed out); returns how long that
    /// took.
    pub(crate) async fn run(self: &Arc<Self>, shape: Shape) -> Duration {
        let started = Instant::now();
        let mut set = JoinSet::new();
        match shape {
            Shape::Closed {
                connections,
                duration,
            } => {
                let deadline = started + duration;
                for _ in 0..connections {
                    let d = self.clone();
                    set.spawn(async move {
                        while Instant::now() < deadline {
                            d.send_one(d.roll()).await;
                        }
                    });
                }
            }
            Shape::Open { rate, duration } => {
                let deadline = started + duration;
                let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
                // Catch up after a late tick, so the average rate holds.
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                loop {
                    tick.tick().await;
                    if Instant::now() >= deadline {
                        break;
                    }
                    let d = self.clone();
                    set.spawn(async move { d.send_one(d.roll()).await });
                    while set.try_join_next().is_some() {}
                }
            }
            Shape::Burst { count, connections } => {
                // `count` distinct tickets; redeliveries come on top, interleaved evenly, so
                // they are the `redeliveries` share of all requests.
                let slots = Arc::new(Semaphore::new(connections.max(1)));
                let share = self.redeliveries.min(0.99);
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    clippy::cast_precision_loss
                )]
                let extra = (count as f64 * share / (1.0 - share)).round() as u64;
                for j in 0..count {
                    let repeats = (j + 1) * extra / count - j * extra / count;
                    for redeliver in std::iter::once(false).chain((0..repeats).map(|_| true)) {
                        let d = self.clone();
                        let slots = slots.clone();
                        set.spawn(async move {
                            let _slot = slots.acquire_owned().await;
                            d.send_one(redeliver).await;
                        });
                    }
                }
            }
        }
        while set.join_next().await.is_some() {}
        started.elapsed()
    }

    /// Whether the next request of a loop redelivers: with probability `redeliveries`.
    fn roll(&self) -> bool {
        self.redeliveries > 0.0 && rand::random_bool(self.redeliveries.min(1.0))
    }

    /// Sends one request: a ticket sent before when `redeliver` (and there is one), else a new
    /// ticket.
    async fn send_one(&self, redeliver: bool) {
        let previous = if redeliver {
            self.tickets.random_sent()
        } else {
            None
        };
        let (i, spec, attempt) = match previous {
            Some((i, spec)) => {
                self.acks.redeliveries.fetch_add(1, Ordering::Relaxed);
                (i, spec, 2)
            }
            None => {
                let spec = Arc::new(TicketSpec::new(self.next.fetch_add(1, Ordering::Relaxed)));
                (self.tickets.add(spec.clone()), spec, 1)
            }
        };
        self.acks.requests.fetch_add(1, Ordering::Relaxed);
        match &self.target {
            Target::Webhook {
                client,
                url,
                secret,
            } => {
                let body = plain_body(&spec, attempt);
                let signature = sign(secret, &body);
                let started = Instant::now();
                let sent = client
                    .post(url)
                    .header("content-type", "application/json")
                    .header("plain-event-type", "thread.thread_created")
                    .header("plain-event-id", &spec.event_id)
                    .header("plain-webhook-delivery-attempt-number", attempt.to_string())
                    .header(SIGNATURE_HEADER, signature)
                    .body(body)
                    .send()
                    .await;
                let answer = match sent {
                    Ok(resp) => {
                        let status = resp.status();
                        let text = resp.text().await.unwrap_or_default();
                        Ok((status, text))
                    }
                    Err(e) => Err(e),
                };
                self.acks.latency(started.elapsed());
                match answer {
                    Ok((status, text)) if status.is_success() => {
                        self.tickets.acknowledge(i);
                        let counter = match (status.as_u16(), text.contains("duplicate")) {
                            (202, _) => &self.acks.new,
                            (_, true) => &self.acks.duplicates,
                            _ => &self.acks.other_2xx,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((status, text)) => {
                        let counter = if status.is_server_error() {
                            &self.acks.server_errors
                        } else {
                            &self.acks.client_errors
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        self.acks.note_error(format!("HTTP {status}: {text}"));
                    }
                    Err(e) => {
                        self.acks.transport_errors.fetch_add(1, Ordering::Relaxed);
                        self.acks.note_error(format!("webhook request failed: {e}"));
                    }
                }
            }
            Target::Grpc { clients } => {
                let n = usize::try_from(self.acks.requests.load(Ordering::Relaxed)).unwrap_or(0);
                let mut client = clients[n % clients.len()].clone();
                let t = spec.template();
                let request = pb::ClassifyRequest {
                    ticket: Some(pb::Ticket {
                        id: spec.thread_id.clone(),
                        version: spec.updated_at.clone(),
                        subject: t.subject.to_owned(),
                        body: t.body.to_owned(),
                        tier: t.tier.to_owned(),
                        arr_usd: Some(24_000.0),
                        customer_id: spec.customer_id.clone(),
                        conversation: Vec::new(),
                    }),
                };
                let started = Instant::now();
                let answer = tokio::time::timeout(REQUEST_TIMEOUT, client.classify(request)).await;
                self.acks.latency(started.elapsed());
                match answer {
                    Ok(Ok(resp)) => {
                        self.tickets.acknowledge(i);
                        self.tickets.complete(i);
                        let counter = if resp.into_inner().duplicate {
                            &self.acks.duplicates
                        } else {
                            &self.acks.new
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(status)) => {
                        let counter = match status.code() {
                            tonic::Code::Unavailable
                            | tonic::Code::Internal
                            | tonic::Code::Unknown => &self.acks.server_errors,
                            _ => &self.acks.client_errors,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        self.acks.note_error(format!(
                            "gRPC {:?}: {}",
                            status.code(),
                            status.message()
                        ));
                    }
                    Err(_) => {
                        self.acks.transport_errors.fetch_add(1, Ordering::Relaxed);
                        self.acks.note_error("gRPC Classify timed out".into());
                    }
                }
            }
        }
    }
}

/// The webhook HTTP client: one pool sized for `connections` keep-alive connections.
///
/// # Errors
/// When the client cannot be built.
pub(crate) fn http_client(connections: usize) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()
}

/// `connections.div_ceil(64)` HTTP/2 connections to the gRPC server (at least one).
///
/// # Errors
/// When a connection cannot be made.
pub(crate) async fn grpc_clients(
    addr: std::net::SocketAddr,
    connections: usize,
) -> anyhow::Result<Vec<EscalatorClient<Channel>>> {
    let mut clients = Vec::new();
    for _ in 0..connections.div_ceil(64).max(1) {
        let channel = Channel::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .connect()
            .await?;
        clients.push(EscalatorClient::new(channel));
    }
    Ok(clients)
}

/// HMAC-SHA256 of the raw body, lowercase hex: what the service verifies
/// (reference/plain.md §4).
pub(crate) fn sign(secret: &str, body: &[u8]) -> String {
    // A key of any length is valid for HMAC.
    let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A `thread.thread_created` delivery as Plain sends it (reference/plain.md §3), attempted now;
/// a redelivery keeps the event id, thread and `updatedAt` and gets a new attempt.
pub(crate) fn plain_body(spec: &TicketSpec, attempt: u32) -> Vec<u8> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let t = spec.template();
    let system = serde_json::json!({"actorType": "system", "system": "email_inbound_handler"});
    serde_json::json!({
        "timestamp": spec.updated_at,
        "workspaceId": "w_01GST0W989ZNAW53X6XYHAY87P",
        "payload": {
            "eventType": "thread.thread_created",
            "thread": {
                "id": spec.thread_id,
                "customer": {
                    "id": spec.customer_id,
                    "email": {"email": "customer@example.com", "isVerified": false, "verifiedAt": null},
                    "externalId": null,
                    "fullName": "Zoë Ångström",
                    "shortName": "Zoë",
                    "createdAt": spec.updated_at,
                    "createdBy": system,
                    "updatedAt": spec.updated_at,
                    "updatedBy": system
                },
                "title": t.subject,
                "previewText": t.body,
                "priority": 2,
                "externalId": null,
                "status": "TODO",
                "statusChangedAt": spec.updated_at,
                "statusDetail": {"type": "CREATED", "createdAt": spec.updated_at},
                "assignee": null,
                "assignedAt": null,
                "additionalAssignees": [],
                "labels": [],
                "supportEmailAddresses": ["help@example.com"],
                "createdAt": spec.updated_at,
                "createdBy": system,
                "updatedAt": spec.updated_at,
                "updatedBy": system
            }
        },
        "id": spec.event_id,
        "webhookMetadata": {
            "webhookTargetId": "whTarget_01HD4400VTDJQ646V6RY37SR7K",
            "webhookTargetVersion": "2026-02-27",
            "webhookDeliveryAttemptId": format!("whAttempt_{}", ulid()),
            "webhookDeliveryAttemptNumber": attempt,
            "webhookDeliveryAttemptTimestamp": now
        },
        "type": "thread.thread_created"
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_plains_test_vector() {
        // reference/plain.md §4: `hello-world` with secret `secret`.
        assert_eq!(
            sign("secret", b"hello-world"),
            "1bff4699de4fb5202a4b1e6cefd7b5fdfb02d19a67a1eb371dd417a45b0a47df"
        );
    }

    #[test]
    fn a_redelivery_keeps_the_key_and_gets_a_new_attempt() {
        let spec = TicketSpec::new(3);
        let a: serde_json::Value =
            serde_json::from_slice(&plain_body(&spec, 1)).unwrap_or_default();
        let b: serde_json::Value =
            serde_json::from_slice(&plain_body(&spec, 2)).unwrap_or_default();
        assert_eq!(a["id"], b["id"]);
        assert_eq!(a["payload"]["thread"]["id"], spec.thread_id.as_str());
        assert_eq!(
            a["payload"]["thread"]["updatedAt"],
            b["payload"]["thread"]["updatedAt"]
        );
        assert_ne!(
            a["webhookMetadata"]["webhookDeliveryAttemptId"],
            b["webhookMetadata"]["webhookDeliveryAttemptId"]
        );
        assert_eq!(b["webhookMetadata"]["webhookDeliveryAttemptNumber"], 2);
    }
}
