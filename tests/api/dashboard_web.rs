//! `/dashboard` in a real headless Chromium (as the review page test): behind the admin login,
//! it renders every chart of the seeded month as server-side SVG (the elements are there, with
//! the interval bars and verdict counts), the sample's strata and the unsampled verdicts apart,
//! the symptoms and last week's misses with their reasoning; a screenshot is saved under
//! `target/test-artifacts/`. (The two reviewers' agreement on it is in `review_web`.)

use std::{collections::BTreeMap, time::Duration};

use escalator::config::Settings;
use fantoccini::Locator;

use crate::{
    audit::{Db, Kind, seed_month},
    harness::{self, TestApp},
    review_web::{artifacts, browser, driver, log_in, text_of},
};

const TOKEN: &str = "dashboard-admin-token-0123456789";

async fn start(db: &Db) -> TestApp {
    let settings = Settings::load(&BTreeMap::from([
        ("ESCALATOR_GRPC_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_HTTP_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_ADMIN_TOKEN", TOKEN),
    ]))
    .unwrap();
    TestApp::with_store(settings, db.store(), None).await
}

#[sqlx::test(migrations = "migrations/sqlite")]
async fn the_dashboard_renders_every_chart_in_headless_chromium(pool: sqlx::SqlitePool) {
    let db = Db::Lite(pool);
    seed_month(&db, Kind::Bad).await;
    let app = start(&db).await;
    let base = format!("http://{}", app.http);
    let url = format!("{base}/dashboard?week=2026-W48&weeks=4");

    // Without a session: the login form, no charts.
    let (status, page) = app.get("/dashboard?week=2026-W48&weeks=4").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("name=\"next\" value=\"/dashboard\""),
        "{page}"
    );
    assert!(!page.contains("<svg"));

    let driver = driver();
    let profile = tempfile::tempdir().unwrap();
    let browser = browser(&driver, &profile, "1400,3200").await;
    let wait = || browser.wait().at_most(Duration::from_secs(15));
    log_in(&browser, &url, TOKEN, "Ada", "header").await;
    // The login goes on to the dashboard; the same session opens the review too.
    wait()
        .for_element(Locator::Css("#chart-accuracy svg"))
        .await
        .unwrap();
    assert!(browser.current_url().await.unwrap().path() == "/dashboard");
    browser.goto(&url).await.unwrap();
    wait()
        .for_element(Locator::Css("#chart-accuracy svg"))
        .await
        .unwrap();

    let count = |css: String| {
        let browser = &browser;
        async move { browser.find_all(Locator::Css(&css)).await.unwrap().len() }
    };
    for id in [
        "chart-accuracy",
        "chart-decisions",
        "chart-cost",
        "chart-latency",
        "chart-cache",
        "chart-fallback",
        "chart-raises",
    ] {
        assert_eq!(count(format!("#{id} svg")).await, 1, "{id} has no SVG");
        assert!(
            count(format!("#{id} svg text")).await >= 4,
            "{id} has no axis labels"
        );
    }
    // Accuracy: a point per week (four), interval bars, the verdict counts.
    assert_eq!(count("#chart-accuracy svg circle".into()).await, 4);
    assert!(count("#chart-accuracy svg line, #chart-accuracy svg polyline".into()).await >= 12);
    let accuracy = browser
        .find(Locator::Css("#chart-accuracy svg"))
        .await
        .unwrap()
        .html(false)
        .await
        .unwrap();
    assert!(
        accuracy.contains(">n=50<") || accuracy.contains("n=50"),
        "{accuracy}"
    );
    assert!(accuracy.contains("W48"));
    // Decisions per day: three routes stacked over 28 days.
    assert!(count("#chart-decisions svg rect".into()).await >= 28 * 3);
    // The lines: one point per week.
    for id in [
        "chart-cost",
        "chart-latency",
        "chart-fallback",
        "chart-raises",
    ] {
        assert_eq!(count(format!("#{id} svg circle")).await, 4, "{id}");
    }
    // Symptoms and the misses with their reasoning.
    assert_eq!(count("#symptoms td.firing".into()).await, 5);
    assert_eq!(count("#misses tr.miss".into()).await, 12);
    let misses = browser
        .find(Locator::Css("#misses"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        misses.contains("Seeded reasoning <2026-W48-002>."),
        "{misses}"
    );
    assert!(misses.contains("Reviewer: 2026-W48-002 is urgent"));
    let gate = browser
        .find(Locator::Css("#gate"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(gate.contains("below 0.90 with 50 verdicts"), "{gate}");
    assert!(
        gate.contains("verdicts on decisions the draw never offered (10 in 2026-W48)"),
        "{gate}"
    );
    // The sample beside the headline: its one stratum, and the unsampled verdicts apart.
    let rest = text_of(&browser, "#strata tr[data-stratum=rest]").await;
    assert!(
        rest.contains("80.0% [67.0–88.8] (40/50)") && rest.contains("100.0%"),
        "{rest}"
    );
    let unsampled = text_of(&browser, "#unsampled").await;
    assert!(
        unsampled.starts_with("Unsampled verdicts: 10, accuracy 100.0% [72.2–100.0] (10/10)"),
        "{unsampled}"
    );
    let html = browser.source().await.unwrap();
    assert!(!html.contains("<script"), "no JavaScript on the page");
    let png = browser.screenshot().await.unwrap();
    let shot = artifacts().join("dashboard.png");
    std::fs::write(&shot, &png).unwrap();
    assert!(
        png.starts_with(b"\x89PNG"),
        "screenshot at {}",
        shot.display()
    );
    browser.goto(&format!("{base}/review")).await.unwrap();
    wait()
        .for_element(Locator::Css("header form"))
        .await
        .unwrap();
    assert!(
        count("#token".into()).await == 0,
        "the session is shared with /review"
    );
    browser.close().await.unwrap();
    drop(driver);
    app.stop().await;
}

#[sqlx::test(migrations = "migrations/sqlite")]
async fn without_a_token_there_is_no_dashboard(pool: sqlx::SqlitePool) {
    let app = harness::spawn_app(harness::lite(pool)).await;
    assert_eq!(app.get("/dashboard").await.0, 404);
    app.stop().await;
}
