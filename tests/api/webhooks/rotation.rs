//! Rotating a webhook secret without downtime: while `*_WEBHOOK_SECRET_PREVIOUS` is set, the
//! real routes accept deliveries signed with either secret, and count the old ones.

use super::*;

/// Plain and Pylon each with a new secret and the harness's old one as the previous secret:
/// deliveries signed with either are accepted, any other signature is refused with 401, and
/// `/metrics` counts the deliveries the old secret verified.
#[tokio::test]
async fn both_secrets_verify_on_the_real_routes_during_a_rotation() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    // The worker stays off: this test is about the edge, not about routing back.
    let (mut s, config) = settings(&db, &mocks, "enabled = false\n");
    s.ticketing.plain.webhook_secret = Some("plain-secret-new".to_owned().into());
    s.ticketing.plain.webhook_secret_previous = Some(PLAIN_SECRET.to_owned().into());
    s.ticketing.pylon.webhook_secret = Some("pylon-secret-new".to_owned().into());
    s.ticketing.pylon.webhook_secret_previous = Some(PYLON_SECRET.to_owned().into());
    let app = TestApp::start(s, Some(config)).await;

    // Signed with the old secret (a delivery sent before the change): accepted.
    let body = plain_body(OUTAGE);
    assert_eq!(app.plain(body.clone()).await.0, 202);
    // The same delivery signed with the new secret: verified too (a duplicate now).
    let sig = sign("plain-secret-new", &body);
    let (status, _) = app
        .post("/webhooks/plain", &[("Plain-Request-Signature", sig)], body)
        .await;
    assert_eq!(status, 200);
    // Neither secret: refused.
    let body = plain_body("another ticket");
    let sig = sign("plain-secret-unknown", &body);
    let (status, _) = app
        .post("/webhooks/plain", &[("Plain-Request-Signature", sig)], body)
        .await;
    assert_eq!(status, 401);

    let pylon = br#"{"issue_id":"iss_rot","event":"issue.created"}"#.to_vec();
    assert_eq!(app.pylon(pylon.clone()).await.0, 202);
    let sig = sign("pylon-secret-new", &pylon);
    let (status, _) = app
        .post(
            "/webhooks/pylon",
            &[("X-Pylon-Signature", sig)],
            pylon.clone(),
        )
        .await;
    assert_eq!(status, 200);
    let sig = sign("pylon-secret-unknown", &pylon);
    let (status, _) = app
        .post("/webhooks/pylon", &[("X-Pylon-Signature", sig)], pylon)
        .await;
    assert_eq!(status, 401);

    let (_, metrics) = app.get("/metrics").await;
    for source in ["plain", "pylon"] {
        let line = format!("escalator_webhook_previous_secret_total{{source=\"{source}\"}}");
        let n: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{line} missing:\n{metrics}"));
        assert!(n >= 1.0, "{line} = {n}");
    }
    app.stop().await;
}
