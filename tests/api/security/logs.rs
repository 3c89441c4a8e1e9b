//! Threat: a secret in the log, which is shipped to a log store many more people can read than
//! the secret's owner. `DATABASE_URL` can carry a password in the userinfo and in query
//! parameters (`password`, `sslpassword`, `passfile`), all of which the drivers accept; a failed
//! review login carries a token (the guess, or a real token mistyped).

use crate::pg::TestDb;

use super::{free_port, ready, serve, stop};

/// The real service on PostgreSQL, started with secrets in every place of its URL (the test
/// server trusts local connections, so the passwords are accepted and ignored) and an admin
/// token, then given a wrong review login: it starts, logs the refusal, and no secret appears
/// anywhere in its log, not even from the driver.
#[tokio::test]
async fn no_database_secret_reaches_the_log() {
    let db = TestDb::new().await;
    let (base, name) = db.url.rsplit_once('/').unwrap();
    let (scheme, rest) = base.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let url = format!(
        "{scheme}://postgres:userinfo-secret-1@{host}/{name}\
         ?password=query-secret-2&sslpassword=passphrase-secret-3&passfile=/run/secret-4"
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let http = free_port();
    let (http_addr, grpc_addr) = (
        format!("127.0.0.1:{http}"),
        format!("127.0.0.1:{}", free_port()),
    );
    let mut child = serve(
        &[
            ("DATABASE_URL", url.as_str()),
            ("ESCALATOR_HTTP_ADDR", http_addr.as_str()),
            ("ESCALATOR_GRPC_ADDR", grpc_addr.as_str()),
            ("ESCALATOR_LOG", "debug"),
            ("ESCALATOR_ADMIN_TOKEN", "admin-token-secret-5"),
        ],
        &log,
    );
    ready(&mut child, http, &log).await;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{http}");
    let page = client.get(format!("{base}/review")).send().await.unwrap();
    let cookie = crate::review_web::set_cookie(&page);
    let csrf = crate::review_web::csrf_of(&page.text().await.unwrap());
    let wrong = client
        .post(format!("{base}/review/login"))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(crate::review_web::form(&[
            ("token", "guessed-token-secret-6"),
            ("name", "x"),
            ("csrf", &csrf),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    stop(child, &log);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("escalator ready"), "{text}");
    assert!(
        text.contains("postgres:***@") && text.contains("password=***"),
        "the redacted URL is logged: {text}"
    );
    assert!(
        text.contains("review page: login with a wrong token"),
        "{text}"
    );
    for secret in [
        "secret-1", "secret-2", "secret-3", "secret-4", "secret-5", "secret-6",
    ] {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
    }
}
