//! Threat: gRPC in cleartext across a network (tokens and ticket text read or changed on the
//! way), and callers that are not who they say. Controls: TLS with the server's certificate,
//! and mutual TLS that refuses a client without a certificate from the configured CA, both
//! through tonic's rustls support; certificates made here with rcgen.

use std::{collections::BTreeMap, net::SocketAddr, path::Path};

use escalator::{
    config::Settings,
    grpc::pb::{ClassifyRequest, escalator_client::EscalatorClient},
    startup::App,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tokio_util::sync::CancellationToken;
use tonic::{
    Code, Request,
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
};

use super::grpc::{NEW, callers_file};
use crate::harness::{lite, ticket};

/// A CA that signs leaf certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, in PEM.
struct Leaf {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Self {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `names` (DNS names or IPs), for a server or a client.
    fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// The real app with `toml` (and `env`) on SQLite, serving until the token is cancelled.
async fn start(
    pool: sqlx::SqlitePool,
    toml: &str,
    env: &[(&str, &str)],
) -> (
    SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let config = callers_file(toml);
    let path = config.path().to_str().unwrap().to_owned();
    let mut map = BTreeMap::from([
        ("ESCALATOR_GRPC_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_HTTP_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_CONFIG", path.as_str()),
    ]);
    map.extend(env.iter().copied());
    let app = App::with_store(Settings::load(&map).unwrap(), lite(pool))
        .await
        .unwrap();
    let addr = app.grpc_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    (addr, stop, task)
}

/// The TLS files of a server in `dir`: its certificate and key, and the client CA.
fn write(dir: &Path, server: &Leaf, client_ca: Option<&Ca>) -> String {
    let p = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    std::fs::write(p("tls.crt"), &server.cert).unwrap();
    std::fs::write(p("tls.key"), &server.key).unwrap();
    let mut toml = format!(
        "[grpc]\ntls_cert_file = {:?}\ntls_key_file = {:?}\n",
        p("tls.crt"),
        p("tls.key")
    );
    if let Some(ca) = client_ca {
        std::fs::write(p("ca.crt"), ca.pem()).unwrap();
        toml.push_str(&format!("client_ca_file = {:?}\n", p("ca.crt")));
    }
    toml
}

/// One `Classify` over TLS trusting `ca`, presenting `identity`, with `token`: the code it
/// ends with, whether the connection or the call failed.
async fn call(addr: SocketAddr, ca: &Ca, identity: Option<&Leaf>, token: Option<&str>) -> Code {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name("localhost");
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert, &id.key));
    }
    let channel = match Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
    {
        Ok(c) => c,
        Err(_) => return Code::Unavailable,
    };
    classify(channel, token).await
}

async fn classify(channel: Channel, token: Option<&str>) -> Code {
    let mut req = Request::new(ClassifyRequest {
        ticket: Some(ticket("T-TLS", "s", "How do I export?", "")),
    });
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    match EscalatorClient::new(channel).classify(req).await {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

#[sqlx::test(migrations = "migrations/sqlite")]
async fn tls_serves_only_tls(pool: sqlx::SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("escalator test CA");
    let server = ca.leaf(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let (addr, stop, task) = start(pool, &write(dir.path(), &server, None), &[]).await;
    assert_eq!(call(addr, &ca, None, None).await, Code::Ok);
    // A client that does not trust the server's CA, and a cleartext client, get nothing.
    assert_ne!(call(addr, &Ca::new("other CA"), None, None).await, Code::Ok);
    let plain = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        assert_ne!(classify(channel, None).await, Code::Ok);
    }
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[sqlx::test(migrations = "migrations/sqlite")]
async fn mutual_tls_refuses_a_client_without_a_certificate_from_the_ca(pool: sqlx::SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("escalator test CA");
    let server = ca.leaf(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let client = ca.leaf(&["ci-bot"], ExtendedKeyUsagePurpose::ClientAuth);
    let rogue = Ca::new("rogue CA").leaf(&["ci-bot"], ExtendedKeyUsagePurpose::ClientAuth);
    let callers = callers_file(&format!("ci-bot {NEW}\n"));
    let callers_path = callers.path().to_str().unwrap().to_owned();
    let (addr, stop, task) = start(
        pool,
        &write(dir.path(), &server, Some(&ca)),
        &[("ESCALATOR_GRPC_CALLERS_FILE", callers_path.as_str())],
    )
    .await;
    // The CA's client with a caller's token is answered; mutual TLS does not replace the token.
    assert_eq!(call(addr, &ca, Some(&client), Some(NEW)).await, Code::Ok);
    assert_eq!(
        call(addr, &ca, Some(&client), None).await,
        Code::Unauthenticated
    );
    // No certificate, or one from another CA: refused in the handshake, token or not.
    assert_ne!(call(addr, &ca, None, Some(NEW)).await, Code::Ok);
    assert_ne!(call(addr, &ca, Some(&rogue), Some(NEW)).await, Code::Ok);
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[sqlx::test(migrations = "migrations/sqlite")]
async fn a_key_that_does_not_match_its_certificate_stops_the_start(pool: sqlx::SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("escalator test CA");
    let mut server = ca.leaf(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    server.key = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n".into();
    let config = callers_file(&write(dir.path(), &server, None));
    let path = config.path().to_str().unwrap().to_owned();
    let settings = Settings::load(&BTreeMap::from([
        ("ESCALATOR_GRPC_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_HTTP_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_CONFIG", path.as_str()),
    ]))
    .unwrap();
    let e = App::with_store(settings, lite(pool))
        .await
        .err()
        .expect("an unusable key must stop the start");
    assert!(
        e.downcast_ref::<escalator::env::ConfigError>().is_some(),
        "{e:#}"
    );
    assert!(e.to_string().starts_with("grpc.tls_cert_file: "), "{e:#}");
}
