//! Threats against the review pages: a token guessed by trying many (25 wrong tokens in a row
//! used to all get 401 at full speed), a stolen session cookie that outlives its logout, and a
//! verdict signed with whatever name the reviewer typed. Controls: failed logins throttled per
//! client address and globally (429 + `Retry-After`, exponential), sessions held in the
//! database (logout and token rotation end them on every replica), named reviewers whose
//! verdicts carry the authenticated name. Over plain HTTP on both databases, and in headless
//! Chromium where the browser's own cookie handling matters.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use escalator::{
    config::Settings,
    domain::{Severity, Source},
    review::{self, Origin},
    startup::App,
    store::Store,
};
use fantoccini::Locator;
use tokio_util::sync::CancellationToken;

use super::grpc::callers_file;
use crate::{
    review::seed,
    review_web::{TOKEN, browser, click_then, csrf_of, driver, form, set_cookie},
};

const ADA: &str = "ada-reviewer-token-0123456789";
const ADA_NEXT: &str = "ada-reviewer-token-9876543210";
const BEN: &str = "ben-reviewer-token-0123456789";

/// A running app: its base URL and how to stop it.
struct Replica {
    base: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Replica {
    /// The app over `store` with `env` and a config file holding `toml`.
    async fn start(store: Arc<dyn Store>, env: &[(&str, &str)], toml: &str) -> Self {
        let config = callers_file(toml);
        let path = config.path().to_str().unwrap().to_owned();
        let mut map = BTreeMap::from([
            ("ESCALATOR_GRPC_ADDR", "127.0.0.1:0"),
            ("ESCALATOR_HTTP_ADDR", "127.0.0.1:0"),
            ("ESCALATOR_CONFIG", path.as_str()),
        ]);
        map.extend(env.iter().copied());
        let app = App::with_store(Settings::load(&map).unwrap(), store)
            .await
            .unwrap();
        let base = format!("http://{}", app.http_addr().unwrap());
        let stop = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(stop.clone()));
        Self { base, stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The login form's nonce cookie and CSRF token.
async fn form_of(http: &reqwest::Client, base: &str) -> (String, String) {
    let page = http.get(format!("{base}/review")).send().await.unwrap();
    let cookie = set_cookie(&page);
    (cookie, csrf_of(&page.text().await.unwrap()))
}

/// One login POST with `token` (and typed `name`), from `forwarded_for` when given.
async fn login(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let (cookie, csrf) = form_of(http, base).await;
    let mut req = http
        .post(format!("{base}/review/login"))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", token), ("name", name), ("csrf", &csrf)]));
    if let Some(f) = forwarded_for {
        req = req.header("x-forwarded-for", f);
    }
    req.send().await.unwrap()
}

/// The session cookie a login set.
async fn session(http: &reqwest::Client, base: &str, token: &str, name: &str) -> String {
    let r = login(http, base, token, name, None).await;
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    set_cookie(&r)
}

/// `GET /review` with `cookie`: whether it is the day's sample (logged in) and its page.
async fn logged_in(http: &reqwest::Client, base: &str, cookie: &str) -> (bool, String) {
    let page = http
        .get(format!("{base}/review"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let text = page.text().await.unwrap();
    (text.contains("action=\"/review/logout\""), text)
}

async fn metric(base: &str, line: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(line))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

/// A decision of yesterday to judge.
async fn seed_one(store: &dyn Store) -> escalator::domain::Decision {
    let day = review::yesterday(chrono_tz::UTC);
    let at = chrono::TimeZone::from_utc_datetime(&chrono::Utc, &day.and_hms_opt(9, 0, 0).unwrap());
    seed(
        store,
        Source::Plain,
        "th_sess_1",
        "Export?",
        "How do I export a dashboard?",
        Severity::Routine,
        false,
        at,
    )
    .await
}

#[sqlx::test(migrations = "migrations/sqlite")]
async fn wrong_tokens_from_one_address_are_slowed_exponentially(pool: sqlx::SqlitePool) {
    let app = Replica::start(
        crate::harness::lite(pool),
        &[("ESCALATOR_ADMIN_TOKEN", TOKEN)],
        "",
    )
    .await;
    let http = http();
    let failures = "escalator_review_login_failures_total{reason=\"wrong_token\"}";
    let throttled = "escalator_review_login_throttled_total{scope=\"address\"}";
    let (f0, t0) = (
        metric(&app.base, failures).await,
        metric(&app.base, throttled).await,
    );
    // Five free failures, a sixth that starts the wait, then 429 without the token checked
    // (the right token too) until the wait is over.
    for i in 0..6 {
        let r = login(&http, &app.base, "review-admin-token-XXXXXXXXXX", "x", None).await;
        assert_eq!(r.status(), 401, "attempt {i}");
    }
    let started = Instant::now();
    let mut statuses = Vec::new();
    for token in ["review-admin-token-YYYYYYYYYY", TOKEN] {
        let r = login(&http, &app.base, token, "x", None).await;
        statuses.push(r.status().as_u16());
        assert_eq!(r.headers()["retry-after"], "1");
        assert!(r.text().await.unwrap().contains("Too many failed logins"));
    }
    assert_eq!(statuses, [429, 429]);
    assert!(metric(&app.base, failures).await >= f0 + 6.0);
    assert!(metric(&app.base, throttled).await >= t0 + 2.0);
    // After the wait the right token gets in and clears the address; a wrong one now waits 2 s
    // (the back-off doubles) only after five more free failures.
    tokio::time::sleep(
        Duration::from_secs(1).saturating_sub(started.elapsed()) + Duration::from_millis(100),
    )
    .await;
    assert_eq!(
        login(&http, &app.base, TOKEN, "x", None).await.status(),
        303
    );
    assert_eq!(
        login(&http, &app.base, "review-admin-token-ZZZZZZZZZZ", "x", None)
            .await
            .status(),
        401
    );
    app.stop().await;
}

#[sqlx::test(migrations = "migrations/sqlite")]
async fn many_addresses_behind_a_proxy_hit_the_global_limit(pool: sqlx::SqlitePool) {
    let app = Replica::start(
        crate::harness::lite(pool),
        &[("ESCALATOR_ADMIN_TOKEN", TOKEN)],
        "[review]\nclient_address_header = \"X-Forwarded-For\"\n",
    )
    .await;
    let http = http();
    // 51 addresses (as the proxy appends them) one failure each: none is throttled on its own
    // (with the TCP peer they would all be one address, throttled at the seventh), but the
    // 51st failure overall starts the global wait.
    for i in 0..51 {
        let from = format!("198.51.100.7, 10.0.{}.{}", i / 200, i % 200);
        let r = login(
            &http,
            &app.base,
            "review-admin-token-XXXXXXXXXX",
            "x",
            Some(&from),
        )
        .await;
        assert_eq!(r.status(), 401, "address {i}");
    }
    let before = metric(
        &app.base,
        "escalator_review_login_throttled_total{scope=\"global\"}",
    )
    .await;
    let r = login(&http, &app.base, TOKEN, "x", Some("192.0.2.99")).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(
        metric(
            &app.base,
            "escalator_review_login_throttled_total{scope=\"global\"}"
        )
        .await
            >= before + 1.0
    );
    app.stop().await;
}

crate::both_backends! {
    async fn a_logout_on_one_replica_ends_the_session_on_the_other(store) {
        let d = seed_one(store.as_ref()).await;
        let reviewers = callers_file(&format!("ada {ADA}\nben {BEN}\n"));
        let path = reviewers.path().to_str().unwrap().to_owned();
        let env = [("ESCALATOR_REVIEWERS_FILE", path.as_str())];
        // Two replicas over one database.
        let a = Replica::start(store.clone(), &env, "").await;
        let b = Replica::start(store.clone(), &env, "").await;
        let http = http();
        // A reviewer's token logs in as the file's name, whatever is typed; without the admin
        // token the form asks for no name.
        let (_, form_page) = logged_in(&http, &a.base, "").await;
        assert!(form_page.contains("id=\"token\"") && !form_page.contains("id=\"name\""));
        let cookie = session(&http, &a.base, ADA, "Mallory").await;
        let (ok, page) = logged_in(&http, &b.base, &cookie).await;
        assert!(ok, "the session works on the other replica");
        let csrf = csrf_of(&page);
        let verdict = |base: String, cookie: String, csrf: String| {
            let http = http.clone();
            let id = d.id.clone();
            async move {
                http.post(format!("{base}/review/verdict"))
                    .header("cookie", cookie)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form(&[("csrf", csrf.as_str()), ("decision_id", id.as_str()), ("verdict", "urgent")]))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        assert_eq!(verdict(b.base.clone(), cookie.clone(), csrf.clone()).await, 303);
        let h = store.reviews(&d.id).await.unwrap();
        assert_eq!((h[0].reviewer.as_str(), h[0].origin), ("ada", Origin::Web));

        // Logging out on A ends the session everywhere: the copied cookie (and its CSRF token)
        // no longer work on B.
        let out = http
            .post(format!("{}/review/logout", a.base))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("csrf", csrf.as_str())]))
            .send()
            .await
            .unwrap();
        assert_eq!(out.status(), 303);
        assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
        assert!(!logged_in(&http, &b.base, &cookie).await.0);
        assert!(!logged_in(&http, &a.base, &cookie).await.0);
        assert_eq!(verdict(b.base.clone(), cookie.clone(), csrf.clone()).await, 403);
        assert_eq!(store.reviews(&d.id).await.unwrap().len(), 1);

        // A token rotated out of the file ends its sessions without a restart; the one
        // replacing it logs in as the same name; ben is untouched.
        let ada_old = session(&http, &a.base, ADA, "").await;
        let ben = session(&http, &a.base, BEN, "").await;
        let next = reviewers.path().with_extension("next");
        std::fs::write(&next, format!("ada {ADA_NEXT}\nben {BEN}\n")).unwrap();
        std::fs::rename(&next, reviewers.path()).unwrap();
        assert!(!logged_in(&http, &b.base, &ada_old).await.0);
        assert_eq!(login(&http, &b.base, ADA, "", None).await.status(), 401);
        let ada_new = session(&http, &b.base, ADA_NEXT, "").await;
        let (ok, page) = logged_in(&http, &a.base, &ada_new).await;
        assert!(ok && page.contains(">ada<"), "{page}");
        assert!(logged_in(&http, &a.base, &ben).await.0);
        a.stop().await;
        b.stop().await;
    }
}

/// In a real browser: a named reviewer logs in, judges, logs out; the cookie the browser held
/// (copied before the logout, as a thief would) opens nothing afterwards.
#[sqlx::test(migrations = "migrations/sqlite")]
async fn a_cookie_copied_from_the_browser_is_dead_after_logout(pool: sqlx::SqlitePool) {
    let store = crate::harness::lite(pool);
    let d = seed_one(store.as_ref()).await;
    let reviewers = callers_file(&format!("ada {ADA}\n"));
    let path = reviewers.path().to_str().unwrap().to_owned();
    let app = Replica::start(
        store.clone(),
        &[
            ("ESCALATOR_REVIEWERS_FILE", path.as_str()),
            ("ESCALATOR_ADMIN_TOKEN", TOKEN),
        ],
        "",
    )
    .await;
    let driver = driver();
    let profile = tempfile::tempdir().unwrap();
    let browser = browser(&driver, &profile, "1000,1200").await;
    let wait = || browser.wait().at_most(Duration::from_secs(15));
    browser.goto(&format!("{}/review", app.base)).await.unwrap();
    wait()
        .for_element(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(ADA)
        .await
        .unwrap();
    // The admin token is on too, so the form asks for a name: a reviewer's token ignores it.
    browser
        .find(Locator::Css("#name"))
        .await
        .unwrap()
        .send_keys("Mallory")
        .await
        .unwrap();
    browser
        .find(Locator::Css("#login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait().for_element(Locator::Css("#card-1")).await.unwrap();
    let stolen = browser.get_named_cookie("escalator_review").await.unwrap();
    let stolen = format!("escalator_review={}", stolen.value());
    click_then(
        &browser,
        "#card-1 button[value=correct]",
        "#card-1 .verdict",
    )
    .await;
    let text = browser
        .find(Locator::Css("#card-1 .verdict"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("by ada"), "{text}");
    assert_eq!(store.reviews(&d.id).await.unwrap()[0].reviewer, "ada");
    let http = http();
    assert!(
        logged_in(&http, &app.base, &stolen).await.0,
        "the copy works while logged in"
    );
    browser
        .find(Locator::Css("form[action='/review/logout'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait().for_element(Locator::Css("#token")).await.unwrap();
    assert!(
        !logged_in(&http, &app.base, &stolen).await.0,
        "the copy is dead after logout"
    );
    browser.close().await.unwrap();
    drop(driver);
    app.stop().await;
}
