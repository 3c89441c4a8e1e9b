//! The `/review` page in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! driven over WebDriver with `fantoccini`): log in, judge three tickets (one corrected), check
//! the stored verdicts and the scores sent to a fake Langfuse; a screenshot is saved under
//! `target/test-artifacts/`. Also: 404 without a token, CSRF and session checks over plain HTTP.

use crate::collector;
use std::{
    collections::BTreeMap,
    io::Write as _,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use escalator::{
    config::Settings,
    domain::{Severity, Source},
    review::{self, Origin, ReviewVerdict},
    startup::App,
    store::Store,
};
use fantoccini::{ClientBuilder, Locator};
use tokio_util::sync::CancellationToken;

use crate::{harness, review::seed};

pub(crate) const TOKEN: &str = "review-admin-token-0123456789";

pub(crate) struct Running {
    pub(crate) base: String,
    pub(crate) store: std::sync::Arc<dyn Store>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _config: tempfile::NamedTempFile,
}

pub(crate) async fn start(store: std::sync::Arc<dyn Store>, lf: &collector::Collector) -> Running {
    start_with(store, lf, "").await
}

/// [`start`] with `extra` appended to the config file (e.g. `[labels.categories.*]` tables).
pub(crate) async fn start_with(
    store: std::sync::Arc<dyn Store>,
    lf: &collector::Collector,
    extra: &str,
) -> Running {
    let mut config = tempfile::NamedTempFile::new().unwrap();
    write!(
        config,
        "[telemetry]\nscore_interval_secs = 1\n[review]\nsample_size = 3\ntime_zone = \"UTC\"\n{extra}"
    )
    .unwrap();
    let path = config.path().to_str().unwrap().to_owned();
    let host = lf.url();
    let settings = Settings::load(&BTreeMap::from([
        ("ESCALATOR_GRPC_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_HTTP_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_CONFIG", path.as_str()),
        ("ESCALATOR_ADMIN_TOKEN", TOKEN),
        ("LANGFUSE_HOST", host.as_str()),
        ("LANGFUSE_PUBLIC_KEY", "pk-lf-test"),
        ("LANGFUSE_SECRET_KEY", "sk-lf-secret"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
    ]))
    .unwrap();
    let app = App::with_store(settings, store.clone()).await.unwrap();
    let base = format!("http://{}", app.http_addr().unwrap());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    Running {
        base,
        store,
        shutdown,
        task,
        _config: config,
    }
}

/// Three decisions of yesterday (UTC), all routine, with HTML in their text.
async fn seed_yesterday(store: &dyn Store) -> Vec<escalator::domain::Decision> {
    let day = review::yesterday(chrono_tz::UTC);
    let mut out = Vec::new();
    for (i, subject) in [
        "<script>alert(1)</script> Can’t log in",
        "Export a dashboard?",
        "API 500s",
    ]
    .iter()
    .enumerate()
    {
        let at = chrono::TimeZone::from_utc_datetime(
            &chrono::Utc,
            &day.and_hms_opt(9 + u32::try_from(i).unwrap(), 0, 0)
                .unwrap(),
        );
        out.push(
            seed(
                store,
                Source::Plain,
                &format!("th_web_{i}"),
                subject,
                "Hi — “everything” is <b>broken</b> 🔥",
                Severity::Routine,
                i == 2,
                at,
            )
            .await,
        );
    }
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's chromedriver, started on a free port; killed on drop.
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

pub fn driver() -> Driver {
    let bin = which(&["chromedriver"]).unwrap_or_else(|| {
        panic!(
            "chromedriver is missing: the browser test needs Debian's `chromium` and \
             `chromium-driver` packages (scripts/test installs them with apt-get when run as root)"
        )
    });
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not start listening"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// Headless Chromium through `driver`, with its profile in `profile`, at `size` ("w,h").
pub async fn browser(
    driver: &Driver,
    profile: &tempfile::TempDir,
    size: &str,
) -> fantoccini::Client {
    let chromium = which(&["chromium", "chromium-browser"])
        .unwrap_or_else(|| panic!("chromium is missing: install Debian's `chromium` package"));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", format!("--window-size={size}"),
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("cannot start headless Chromium through chromedriver")
}

pub fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[sqlx::test(migrations = "migrations/sqlite")]
async fn a_reviewer_judges_three_tickets_in_headless_chromium(pool: sqlx::SqlitePool) {
    let lf = collector::Collector::start();
    let store = harness::lite(pool);
    let decisions = seed_yesterday(store.as_ref()).await;
    let app = start(store.clone(), &lf).await;
    let driver = driver();
    let profile = tempfile::tempdir().unwrap();
    let browser = browser(&driver, &profile, "1000,1800").await;
    let wait = || browser.wait().at_most(Duration::from_secs(15));

    log_in(
        &browser,
        &format!("{}/review", app.base),
        TOKEN,
        "Ada",
        "#card-3",
    )
    .await;
    let html = browser.source().await.unwrap();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "ticket text is escaped"
    );
    assert!(!html.contains("<script>"), "no script reaches the page");
    assert!(html.contains("&lt;b&gt;broken&lt;/b&gt; 🔥"));
    assert!(html.contains("fallback: timeout"), "fallbacks are marked");

    // The sample's order is the draw's; judge by card: 1 correct, 2 corrected to on_fire with
    // a why, 3 correct.
    let card_decision = |n: usize| {
        let browser = &browser;
        async move {
            browser
                .find(Locator::Css(&format!("#card-{n}")))
                .await
                .unwrap()
                .attr("data-decision")
                .await
                .unwrap()
                .unwrap()
        }
    };
    let ids = [
        card_decision(1).await,
        card_decision(2).await,
        card_decision(3).await,
    ];
    let click = |css: String| {
        let browser = &browser;
        async move {
            browser
                .find(Locator::Css(&css))
                .await
                .unwrap()
                .click()
                .await
                .unwrap()
        }
    };
    click("#card-1 button[value=correct]".into()).await;
    wait()
        .for_element(Locator::Css("#card-1 .verdict"))
        .await
        .unwrap();
    browser
        .find(Locator::Css("#why-1"))
        .await
        .unwrap()
        .send_keys("Production is down: engineering")
        .await
        .unwrap();
    click("#card-2 button[value=on_fire]".into()).await;
    wait()
        .for_element(Locator::Css("#card-2 .verdict"))
        .await
        .unwrap();
    click("#card-3 button[value=correct]".into()).await;
    wait()
        .for_element(Locator::Css("#card-3 .verdict"))
        .await
        .unwrap();
    let text = browser
        .find(Locator::Css("#card-2 .verdict"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("corrected to on_fire (engineering) by Ada"),
        "{text}"
    );
    let header = browser
        .find(Locator::Css("header"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(header.contains("3/3 done"), "{header}");
    let png = browser.screenshot().await.unwrap();
    let shot = artifacts().join("review-page.png");
    std::fs::write(&shot, &png).unwrap();
    assert!(
        png.starts_with(b"\x89PNG"),
        "screenshot at {}",
        shot.display()
    );
    browser.close().await.unwrap();

    // Stored verdicts.
    for (i, id) in ids.iter().enumerate() {
        let h = app.store.reviews(id).await.unwrap();
        assert_eq!(h.len(), 1, "{id}");
        assert_eq!((h[0].origin, h[0].reviewer.as_str()), (Origin::Web, "Ada"));
        let expected = if i == 1 {
            ReviewVerdict::Corrected(Severity::OnFire)
        } else {
            ReviewVerdict::Correct
        };
        assert_eq!(h[0].verdict, expected);
    }
    assert_eq!(
        app.store.reviews(&ids[1]).await.unwrap()[0].why.as_deref(),
        Some("Production is down: engineering")
    );

    // Scores sent: three routing_correct and one corrected_severity, exactly as documented.
    let deadline = Instant::now() + Duration::from_secs(20);
    while lf.requests("scores").len() < 4 {
        assert!(
            Instant::now() < deadline,
            "scores not sent: {:?}",
            lf.requests("scores").len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bodies: Vec<serde_json::Value> = lf
        .requests("scores")
        .iter()
        .map(|r| {
            assert_eq!(
                r.headers["authorization"],
                "Basic cGstbGYtdGVzdDpzay1sZi1zZWNyZXQ="
            );
            serde_json::from_slice(&r.body).unwrap()
        })
        .collect();
    assert_eq!(bodies.len(), 4, "{bodies:#?}");
    let corrected = decisions.iter().find(|d| d.id == ids[1]).unwrap();
    let trace = corrected.trace_id.clone().unwrap();
    let cat = bodies
        .iter()
        .find(|b| b["name"] == "corrected_severity")
        .unwrap();
    assert_eq!(cat["id"], format!("{trace}-corrected_severity"));
    assert_eq!(cat["traceId"], trace);
    assert_eq!(cat["value"], "on_fire");
    assert_eq!(cat["dataType"], "CATEGORICAL");
    assert_eq!(cat["environment"], "production");
    assert_eq!(cat["metadata"]["decision_id"], corrected.id);
    assert_eq!(
        cat["comment"],
        "corrected to on_fire (engineering) (web, Ada): Production is down: engineering"
    );
    let booleans: Vec<&serde_json::Value> = bodies
        .iter()
        .filter(|b| b["name"] == "routing_correct")
        .collect();
    assert_eq!(booleans.len(), 3);
    assert!(booleans.iter().all(|b| b["dataType"] == "BOOLEAN"));
    let wrong = booleans.iter().find(|b| b["traceId"] == trace).unwrap();
    assert_eq!(wrong["value"], 0);
    assert_eq!(wrong["id"], format!("{trace}-routing_correct"));
    assert_eq!(booleans.iter().filter(|b| b["value"] == 1).count(), 2);
    drop(driver);
    app.shutdown.cancel();
    app.task.await.unwrap().unwrap();
}

/// The value of `name="csrf"` in a page.
pub(crate) fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    html[at..at + 64].to_owned()
}

pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

pub(crate) fn set_cookie(resp: &reqwest::Response) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

#[sqlx::test(migrations = "migrations/sqlite")]
async fn the_page_needs_the_token_a_session_and_a_csrf_token(pool: sqlx::SqlitePool) {
    let lf = collector::Collector::start();
    let store = harness::lite(pool);
    let decisions = seed_yesterday(store.as_ref()).await;
    let app = start(store.clone(), &lf).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(format!("{}/review", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let nonce = set_cookie(&page);
    assert!(
        page.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("HttpOnly; SameSite=Strict")
    );
    let csrf = csrf_of(&page.text().await.unwrap());
    let login = |token: &'static str, csrf: String, cookie: String| {
        http.post(format!("{}/review/login", app.base))
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("token", token),
                ("name", "Ben"),
                ("csrf", csrf.as_str()),
            ]))
            .send()
    };
    // Without the form's nonce cookie, or with a wrong token, no session.
    assert_eq!(
        login(TOKEN, csrf.clone(), String::new())
            .await
            .unwrap()
            .status(),
        403
    );
    let wrong = login("review-admin-token-XXXXXXXXXX", csrf.clone(), nonce.clone())
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(
        wrong
            .headers()
            .get_all("set-cookie")
            .iter()
            .all(|c| !c.to_str().unwrap().starts_with("escalator_review="))
    );
    let ok = login(TOKEN, csrf, nonce).await.unwrap();
    assert_eq!(ok.status(), 303);
    let session = set_cookie(&ok);
    assert!(
        ok.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("HttpOnly; SameSite=Strict")
    );
    let page = http
        .get(format!("{}/review", app.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .split(';')
            .next(),
        Some("default-src 'none'")
    );
    let csrf = csrf_of(&page.text().await.unwrap());
    let id = decisions[0].id.clone();
    let post = |cookie: String, csrf: String| {
        http.post(format!("{}/review/verdict", app.base))
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("csrf", csrf.as_str()),
                ("decision_id", id.as_str()),
                ("verdict", "urgent"),
                ("why", "vip"),
            ]))
            .send()
    };
    assert_eq!(
        post(session.clone(), "0".repeat(64))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        post(String::new(), csrf.clone()).await.unwrap().status(),
        403
    );
    assert!(
        app.store.reviews(&id).await.unwrap().is_empty(),
        "nothing stored without CSRF and session"
    );
    assert_eq!(
        post(session.clone(), csrf.clone()).await.unwrap().status(),
        303
    );
    let h = app.store.reviews(&id).await.unwrap();
    assert_eq!(
        (h.len(), h[0].verdict, h[0].reviewer.as_str()),
        (1, ReviewVerdict::Corrected(Severity::Urgent), "Ben")
    );
    // A second verdict on a decision not offered for one is refused with the reason.
    let refused = http
        .post(format!("{}/review/verdict", app.base))
        .header("cookie", session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("csrf", csrf.as_str()),
            ("decision_id", id.as_str()),
            ("verdict", "correct"),
            ("pass", "second"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("was not offered for a second review")
    );
    assert_eq!(app.store.reviews(&id).await.unwrap().len(), 1);
    app.shutdown.cancel();
    app.task.await.unwrap().unwrap();
}

#[sqlx::test(migrations = "migrations/sqlite")]
async fn without_a_token_the_page_is_not_there(pool: sqlx::SqlitePool) {
    let app = harness::spawn_app(harness::lite(pool)).await;
    assert_eq!(app.get("/review").await.0, 404);
    assert_eq!(app.get("/review/login").await.0, 404);
    app.stop().await;
}

/// Logs `browser` in at `url` with the admin `token` as `name`, and waits for `ready`.
pub(crate) async fn log_in(
    browser: &fantoccini::Client,
    url: &str,
    token: &str,
    name: &str,
    ready: &str,
) {
    let wait = || browser.wait().at_most(Duration::from_secs(15));
    browser.goto(url).await.unwrap();
    wait()
        .for_element(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    browser
        .find(Locator::Css("#name"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    browser
        .find(Locator::Css("#login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait().for_element(Locator::Css(ready)).await.unwrap();
}

/// The text of the element `css` names.
pub(crate) async fn text_of(browser: &fantoccini::Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Clicks `css` (a button that submits a form) and waits for the page that answers it, with
/// `then` on it. The old page is marked first, so an element `then` names that the old page
/// already shows (a card judged before) does not pass for the answer, and nothing is read
/// from a page that is going away.
pub(crate) async fn click_then(browser: &fantoccini::Client, css: &str, then: &str) {
    browser
        .execute("window.__before_click = true;", vec![])
        .await
        .unwrap();
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let ready = browser
            .execute(
                "return window.__before_click === undefined \
                 && document.readyState === 'complete' \
                 && document.querySelector(arguments[0]) !== null;",
                vec![serde_json::Value::String(then.to_owned())],
            )
            .await
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        if ready {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after clicking {css}, no new page with {then} within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two reviewers and an adjudicator in two headless Chromium sessions, with every decision of
/// the sample offered to a second reviewer (`second_reviewer_share = 1.0`): Ada judges the day;
/// Bo, on the second review, sees none of her verdicts (nor her tally) and disagrees on one;
/// Ada cannot give the second verdicts; the adjudication page shows both verdicts of the one
/// disagreement and settles it; the dashboard lists it with its adjudication beside the
/// two reviewers' kappa.
#[sqlx::test(migrations = "migrations/sqlite")]
async fn two_reviewers_and_an_adjudication_in_headless_chromium(pool: sqlx::SqlitePool) {
    let lf = collector::Collector::start();
    let store = harness::lite(pool);
    seed_yesterday(store.as_ref()).await;
    let app = start_with(store.clone(), &lf, "second_reviewer_share = 1.0\n").await;
    let driver = driver();
    let (pa, pb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ada = browser(&driver, &pa, "1000,2400").await;
    let bo = browser(&driver, &pb, "1000,2400").await;
    let base = &app.base;

    // Ada, the first reviewer: all three correct.
    log_in(&ada, &format!("{base}/review"), TOKEN, "Ada", "#card-3").await;
    for n in 1..=3 {
        click_then(
            &ada,
            &format!("#card-{n} button[value=correct]"),
            &format!("#card-{n} .verdict"),
        )
        .await;
    }
    // On the second review, every card tells her the second verdict is someone else's.
    ada.goto(&format!("{base}/review?pass=second"))
        .await
        .unwrap();
    ada.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("#card-3 .barred"))
        .await
        .unwrap();
    assert_eq!(
        ada.find_all(Locator::Css("form[action='/review/verdict']"))
            .await
            .unwrap()
            .len(),
        0
    );

    // Bo, the second reviewer: on the first pass Ada's verdicts are held back (and the tally
    // with them); on the second, nothing of hers at all.
    log_in(&bo, &format!("{base}/review"), TOKEN, "Bo", "#card-3").await;
    let html = bo.source().await.unwrap();
    assert!(!html.contains("Ada"), "{html}");
    assert_eq!(bo.find_all(Locator::Css(".held")).await.unwrap().len(), 3);
    assert!(
        html.contains("the tally waits until the day&#x27;s second reviews are in")
            || html.contains("the tally waits until the day's second reviews are in"),
        "{html}"
    );
    bo.goto(&format!("{base}/review?pass=second"))
        .await
        .unwrap();
    bo.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("#card-3"))
        .await
        .unwrap();
    let html = bo.source().await.unwrap();
    if let Some(at) = html.find("Ada") {
        panic!(
            "the first verdict leaked to the second reviewer: …{}…",
            &html[at.saturating_sub(300)..(at + 100).min(html.len())]
        );
    }
    assert!(
        !html.contains("Judged") && !html.contains("sampled verdicts"),
        "{html}"
    );
    assert!(html.contains("Second review: judge each ticket on its own"));
    click_then(&bo, "#card-1 button[value=correct]", "#card-1 .verdict").await;
    click_then(&bo, "#card-2 button[value=urgent]", "#card-2 .verdict").await;
    click_then(&bo, "#card-3 button[value=correct]", "#card-3 .verdict").await;
    let shown = text_of(&bo, "#card-2 .verdict").await;
    assert!(
        shown.contains("Second verdict: corrected to urgent (human) by Bo"),
        "{shown}"
    );
    let disputed = bo
        .find(Locator::Css("#card-2"))
        .await
        .unwrap()
        .attr("data-decision")
        .await
        .unwrap()
        .unwrap();

    // The adjudication: one card, both verdicts on it; Bo's reading is the right one.
    bo.goto(&format!("{base}/review?pass=adjudication"))
        .await
        .unwrap();
    bo.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("#card-2"))
        .await
        .unwrap();
    assert_eq!(
        bo.find_all(Locator::Css("section.card[data-decision]"))
            .await
            .unwrap()
            .len(),
        1
    );
    let card = text_of(&bo, "#card-2").await;
    assert!(card.contains("First verdict: correct by Ada"), "{card}");
    assert!(
        card.contains("Second verdict: corrected to urgent (human) by Bo"),
        "{card}"
    );
    bo.find(Locator::Css("#why-1"))
        .await
        .unwrap()
        .send_keys("Asked twice: a human should answer")
        .await
        .unwrap();
    click_then(
        &bo,
        "#card-2 button[value=urgent]",
        "#card-2 p.verdict:nth-of-type(3)",
    )
    .await;
    let card = text_of(&bo, "#card-2").await;
    assert!(
        card.contains("Adjudicated: corrected to urgent (human) by Bo"),
        "{card}"
    );
    let item = app.store.review_item(&disputed).await.unwrap().unwrap();
    assert_eq!(
        item.adjudication.as_ref().map(|r| (r.verdict, r.pass)),
        Some((
            ReviewVerdict::Corrected(Severity::Urgent),
            review::Pass::Adjudication
        ))
    );
    // Ada's first pass now shows the day's tally with the pair counted once, as adjudicated.
    ada.goto(&format!("{base}/review")).await.unwrap();
    let header = ada
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("header .tally"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        header.contains("sampled verdicts: 66.7%") && header.contains("(2/3)"),
        "{header}"
    );

    // The dashboard of that week: the disagreement with its adjudication, and kappa.
    let day = review::yesterday(chrono_tz::UTC);
    let iso = chrono::Datelike::iso_week(&day);
    let week = format!("{}-W{:02}", iso.year(), iso.week());
    ada.goto(&format!("{base}/dashboard?week={week}&weeks=1"))
        .await
        .unwrap();
    let row = ada
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(&format!(
            "#disagreements tr[data-decision='{disputed}']"
        )))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        row.contains("routine (Ada)")
            && row.contains("urgent (Bo)")
            && row.ends_with("urgent (Bo)"),
        "{row}"
    );
    let agreement = text_of(&ada, "#agreement").await;
    assert!(
        agreement.contains("3 offered to a second reviewer")
            && agreement.contains("(2 of 3 pairs agree)"),
        "{agreement}"
    );
    assert!(agreement.contains("0 awaiting adjudication"), "{agreement}");
    let png = ada.screenshot().await.unwrap();
    std::fs::write(artifacts().join("dashboard-agreement.png"), &png).unwrap();
    ada.close().await.unwrap();
    bo.close().await.unwrap();
    drop(driver);
    app.shutdown.cancel();
    app.task.await.unwrap().unwrap();
}
