//! A fake Langfuse / OTLP collector on 127.0.0.1: `POST …/v1/traces` decodes
//! `ExportTraceServiceRequest` protobufs; `POST /api/public/scores` answers from a script of
//! status codes. It runs on its own thread and runtime, so a test can block on a span flush
//! while the collector keeps answering.

use std::{
    collections::{BTreeMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, any_value::Value},
    trace::v1::Span,
};
use prost::Message as _;

/// One received request: headers (lowercase names) and body.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Bytes,
}

#[derive(Default)]
struct Inner {
    requests: Vec<Received>,
    score_statuses: VecDeque<u16>,
}

#[derive(Clone, Default)]
pub struct Collector {
    inner: Arc<Mutex<Inner>>,
    pub addr: Option<SocketAddr>,
}

fn record(state: &Collector, path: &str, headers: &HeaderMap, body: Bytes) {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    state.inner.lock().unwrap().requests.push(Received {
        path: path.to_owned(),
        headers,
        body,
    });
}

async fn traces(State(state): State<Collector>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let ok = ExportTraceServiceRequest::decode(body.clone()).is_ok();
    record(&state, "traces", &headers, body);
    if ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    }
}

async fn scores(
    State(state): State<Collector>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    record(&state, "scores", &headers, body);
    let status = state
        .inner
        .lock()
        .unwrap()
        .score_statuses
        .pop_front()
        .unwrap_or(200);
    (StatusCode::from_u16(status).unwrap(), "{\"id\":\"x\"}")
}

impl Collector {
    /// Starts the collector on its own thread.
    pub fn start() -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut collector = Collector::default();
        let state = collector.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Router::new()
                    .route("/api/public/otel/v1/traces", post(traces))
                    .route("/otlp/v1/traces", post(traces))
                    .route("/api/public/scores", post(scores))
                    .with_state(state);
                axum::serve(listener, app).await.unwrap();
            });
        });
        collector.addr = Some(rx.recv().unwrap());
        collector
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr.unwrap())
    }

    /// The next score requests get these statuses (then 200).
    pub fn script_scores(&self, statuses: &[u16]) {
        self.inner.lock().unwrap().score_statuses.extend(statuses);
    }

    pub fn requests(&self, path: &str) -> Vec<Received> {
        self.inner
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.requests("traces")
            .iter()
            .flat_map(|r| {
                ExportTraceServiceRequest::decode(r.body.clone())
                    .unwrap()
                    .resource_spans
            })
            .flat_map(|rs| rs.scope_spans)
            .flat_map(|ss| ss.spans)
            .collect()
    }
}

fn text(v: &AnyValue) -> String {
    match &v.value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::ArrayValue(a)) => format!(
            "[{}]",
            a.values.iter().map(text).collect::<Vec<_>>().join(",")
        ),
        other => format!("{other:?}"),
    }
}

/// A span's attributes as text (arrays as `[a,b]`).
pub fn attrs(span: &Span) -> BTreeMap<String, String> {
    span.attributes
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(text).unwrap_or_default(),
            )
        })
        .collect()
}
