//! Threat: anyone who can reach the gRPC port spends the model budget, writes into the routing
//! log and (with `[actions] api_tool`) has notes posted on tickets. Controls: a caller's bearer
//! token on every `Classify` and `Route` (the generated client over a real socket), the
//! caller's name on the decision, rotation by two lines per name without a restart, health
//! always open, reflection configurable, and a reachable address refused at start without
//! callers.

use std::{collections::BTreeMap, io::Write as _, path::Path, time::Duration};

use escalator::{
    config::Settings,
    domain::{IdempotencyKey, Source},
    grpc::pb::{ClassifyRequest, RouteRequest, escalator_client::EscalatorClient},
};
use tonic::{Code, Request, transport::Channel};

use super::{free_port, ready, serve, stop};
use crate::harness::{TestApp, domain_ticket, ticket};

pub(crate) const OLD: &str = "ci-bot-token-old-0123456789";
pub(crate) const NEW: &str = "ci-bot-token-new-9876543210";
pub(crate) const OTHER: &str = "support-tools-token-000000";

/// A callers file with `text`.
pub(crate) fn callers_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

/// Settings on port 0 with `env` and a config file holding `toml`.
fn settings(env: &[(&str, &str)], toml: &str) -> (Settings, tempfile::NamedTempFile) {
    let config = callers_file(toml);
    let path = config.path().to_str().unwrap().to_owned();
    let mut map = BTreeMap::from([
        ("ESCALATOR_GRPC_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_HTTP_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_CONFIG", path.as_str()),
    ]);
    map.extend(env.iter().copied());
    (Settings::load(&map).unwrap(), config)
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn classify(id: &str) -> ClassifyRequest {
    ClassifyRequest {
        ticket: Some(ticket(id, "Export", "How do I export a dashboard?", "pro")),
    }
}

/// Writes `text` to `path` the way a Secret update lands: a new file renamed over the old.
fn replace(path: &Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, path).unwrap();
}

crate::both_backends! {
    async fn only_callers_with_a_token_are_answered_and_their_name_is_logged(store) {
        let callers = callers_file(&format!("# rotation in progress\nci-bot {OLD}\nci-bot {NEW}\nsupport-tools {OTHER}\n"));
        let path = callers.path().to_str().unwrap().to_owned();
        let (s, config) = settings(&[("ESCALATOR_GRPC_CALLERS_FILE", path.as_str())], "");
        let app = TestApp::with_store(s, store, Some(config)).await;
        let mut grpc = app.grpc.clone();

        // No token, a malformed one, a wrong one: UNAUTHENTICATED, nothing decided.
        let no_token = grpc.classify(classify("T-A1")).await.unwrap_err();
        assert_eq!(no_token.code(), Code::Unauthenticated);
        assert!(no_token.message().contains("authorization: Bearer <token>"), "{}", no_token.message());
        let mut basic = Request::new(classify("T-A1"));
        basic.metadata_mut().insert("authorization", format!("Basic {OLD}").parse().unwrap());
        assert_eq!(grpc.classify(basic).await.unwrap_err().code(), Code::Unauthenticated);
        let wrong = grpc.classify(with_token(classify("T-A1"), "ci-bot-token-old-012345678X")).await.unwrap_err();
        assert_eq!(wrong.code(), Code::Unauthenticated);
        let route = grpc.route(RouteRequest { ticket: classify("T-A1").ticket, dry_run: false }).await.unwrap_err();
        assert_eq!(route.code(), Code::Unauthenticated);
        let key = |id: &str| IdempotencyKey::new(Source::Api, id, "v1");
        assert!(app.store.decision(&key("T-A1")).await.unwrap().is_none());

        // Both tokens of a rotation work, and the name is on the decision.
        let d = grpc.classify(with_token(classify("T-A1"), OLD)).await.unwrap().into_inner().decision.unwrap();
        assert_eq!(d.ticket_id, "T-A1");
        assert_eq!(app.store.decision(&key("T-A1")).await.unwrap().unwrap().caller.as_deref(), Some("ci-bot"));
        grpc.route(with_token(RouteRequest { ticket: classify("T-A2").ticket, dry_run: false }, NEW)).await.unwrap();
        assert_eq!(app.store.decision(&key("T-A2")).await.unwrap().unwrap().caller.as_deref(), Some("ci-bot"));
        grpc.classify(with_token(classify("T-A3"), OTHER)).await.unwrap();
        assert_eq!(app.store.decision(&key("T-A3")).await.unwrap().unwrap().caller.as_deref(), Some("support-tools"));

        // The rotation ends: the old line is taken out, and without a restart the old token
        // is refused while the new one goes on working.
        replace(callers.path(), &format!("ci-bot {NEW}\nsupport-tools {OTHER}\n"));
        assert_eq!(grpc.classify(with_token(classify("T-A4"), OLD)).await.unwrap_err().code(), Code::Unauthenticated);
        grpc.classify(with_token(classify("T-A4"), NEW)).await.unwrap();
        // A broken edit keeps the callers in force (and is logged).
        replace(callers.path(), "ci-bot short\n");
        grpc.classify(with_token(classify("T-A5"), NEW)).await.unwrap();

        // Health is open for probes; reflection is on for a loopback address.
        let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
        let status = health
            .check(tonic_health::pb::HealthCheckRequest { service: "escalator.v1.Escalator".into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status.status(), tonic_health::pb::health_check_response::ServingStatus::Serving);
        assert!(reflected(&app.channel).await.unwrap().contains(&"escalator.v1.Escalator".to_owned()));

        // The audit splits by caller (this week's decisions).
        let now = chrono::Utc::now();
        let this_week = {
            let w = chrono::Datelike::iso_week(&now);
            format!("{}-W{:02}", w.year(), w.week())
        };
        let defaults = Settings::load(&BTreeMap::<&str, &str>::new()).unwrap();
        let report = escalator::audit::build(
            app.store.as_ref(),
            &escalator::audit::run::request(&defaults, now, Some(&this_week), Some(1), None, None).unwrap(),
        )
        .await
        .unwrap();
        let week = report.weeks.last().unwrap();
        assert_eq!(week.callers["ci-bot"].decisions, 4);
        assert_eq!(week.callers["support-tools"].decisions, 1);
        app.stop().await;
    }

    async fn a_claimed_tickets_caller_survives_until_the_worker_decides_it(store) {
        let t = domain_ticket("T-R1", "1", "").with_caller(Some("ci-bot".into()));
        store.claim(&t, Duration::from_millis(1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let undecided = store.undecided_tickets(Source::Api, 10).await.unwrap();
        assert_eq!(undecided.len(), 1);
        assert_eq!(undecided[0].ticket.caller(), Some("ci-bot"));
        assert_eq!(undecided[0].ticket, t);
    }
}

/// The services reflection lists, or its error status.
async fn reflected(channel: &Channel) -> Result<Vec<String>, tonic::Status> {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await?
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        stream.message().await?.and_then(|r| r.message_response)
    else {
        panic!("no service list")
    };
    Ok(list.service.into_iter().map(|s| s.name).collect())
}

#[sqlx::test(migrations = "migrations/sqlite")]
async fn reflection_can_be_switched_off(pool: sqlx::SqlitePool) {
    let (s, config) = settings(&[], "[grpc]\nreflection = false\n");
    let app = TestApp::with_store(s, crate::harness::lite(pool), Some(config)).await;
    let e = reflected(&app.channel).await.unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
    // Without callers on a loopback address no token is asked for.
    app.grpc.clone().classify(classify("T-L1")).await.unwrap();
    app.stop().await;
}

/// The real binary: a reachable address without callers does not start (exit 64, naming the
/// setting), nor does one with a callers file it cannot use; with callers it starts on
/// `0.0.0.0`, answers only a caller's token, and no token reaches its log.
#[tokio::test]
async fn a_reachable_port_starts_only_with_callers_and_no_token_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let db = format!("sqlite://{}", dir.path().join("e.db").display());
    let (http, grpc) = (free_port(), free_port());
    let (http_addr, grpc_addr) = (format!("127.0.0.1:{http}"), format!("0.0.0.0:{grpc}"));
    let base = [
        ("DATABASE_URL", db.as_str()),
        ("ESCALATOR_HTTP_ADDR", http_addr.as_str()),
        ("ESCALATOR_GRPC_ADDR", grpc_addr.as_str()),
    ];
    let exit = |extra: &[(&str, &str)]| {
        let env: Vec<(&str, &str)> = base.iter().chain(extra).copied().collect();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_escalator"))
            .arg("serve")
            .env_clear()
            .envs(env)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = exit(&[]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "invalid configuration: ESCALATOR_GRPC_CALLERS_FILE: the gRPC address {grpc_addr} is not loopback"
        )),
        "{stderr}"
    );
    let missing = dir.path().join("nope");
    let (code, stderr) = exit(&[("ESCALATOR_GRPC_CALLERS_FILE", missing.to_str().unwrap())]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("ESCALATOR_GRPC_CALLERS_FILE"), "{stderr}");
    let bad = callers_file(&format!("ci-bot {OLD}\nother {OLD}\n"));
    let (code, stderr) = exit(&[("ESCALATOR_GRPC_CALLERS_FILE", bad.path().to_str().unwrap())]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("line 2: the token of other is also ci-bot's"),
        "{stderr}"
    );
    assert!(!stderr.contains(OLD), "{stderr}");

    let callers = callers_file(&format!("ci-bot {OLD}\n"));
    let path = callers.path().to_str().unwrap().to_owned();
    let env: Vec<(&str, &str)> = base
        .iter()
        .copied()
        .chain([("ESCALATOR_GRPC_CALLERS_FILE", path.as_str())])
        .collect();
    let mut child = serve(&env, &log);
    ready(&mut child, http, &log).await;
    let mut client = EscalatorClient::connect(format!("http://127.0.0.1:{grpc}"))
        .await
        .unwrap();
    let e = client
        .classify(with_token(classify("T-B1"), NEW))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    client
        .classify(with_token(classify("T-B1"), OLD))
        .await
        .unwrap();
    stop(child, &log);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("gRPC call refused: UNAUTHENTICATED"),
        "{text}"
    );
    assert!(
        text.contains("reason=\"unknown\"") || text.contains("\"reason\":\"unknown\""),
        "{text}"
    );
    for token in [OLD, NEW] {
        assert!(!text.contains(token), "{token} in the log:\n{text}");
    }

    // The explicit opt-out starts without callers, and says so.
    let log = dir.path().join("open.log");
    let mut open = base.to_vec();
    let config = callers_file("[grpc]\nallow_unauthenticated = true\n");
    let config_path = config.path().to_str().unwrap().to_owned();
    open.push(("ESCALATOR_CONFIG", config_path.as_str()));
    let mut child = serve(&open, &log);
    ready(&mut child, http, &log).await;
    stop(child, &log);
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("allow_unauthenticated = true: Classify and Route answer anyone")
    );
}
