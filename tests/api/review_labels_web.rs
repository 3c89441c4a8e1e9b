//! What issue 13 added to the `/review` page, in a real headless Chromium on PostgreSQL (the
//! harness of [`crate::review_web`]): a card whose severity a weighting rule raised says so; the
//! topic and sentiment selects come preset to the decision's labels and a reviewer's changes
//! are stored with the verdict (and shown preset on the card afterwards); a shadow category is
//! asked about and the answer is stored.

use std::{collections::BTreeMap, time::Duration};

use escalator::{
    domain::{Decision, Sentiment, Severity, Source},
    review::{self, LabelVerdict, Origin, ReviewVerdict},
    store::Store,
};
use fantoccini::{Client, Locator};

use crate::{
    collector::Collector,
    harness,
    review::seed_with,
    review_web::{Running, TOKEN, browser, click_then, driver, start_with},
};

/// A decision of yesterday (UTC) at `hour`, routine unless `edit` says otherwise.
async fn seed_yesterday(
    store: &dyn Store,
    ticket_id: &str,
    hour: u32,
    edit: impl FnOnce(&mut Decision),
) -> Decision {
    let day = review::yesterday(chrono_tz::UTC);
    let at = day.and_hms_opt(hour, 0, 0).unwrap().and_utc();
    seed_with(
        store,
        Source::Plain,
        ticket_id,
        "Charged twice",
        "We were charged twice this month — “again”. Fix it or we leave.",
        Severity::Routine,
        false,
        at,
        edit,
    )
    .await
}

/// The app with `extra` config, a headless Chromium logged in as Ada on `/review` (the sample
/// of yesterday shown, its `cards` cards there).
struct Session {
    app: Running,
    browser: Client,
    _driver: crate::review_web::Driver,
    _profile: tempfile::TempDir,
    _lf: Collector,
}

impl Session {
    async fn open(store: std::sync::Arc<dyn Store>, extra: &str, cards: usize) -> Self {
        let lf = Collector::start();
        let app = start_with(store, &lf, extra).await;
        let driver = driver();
        let profile = tempfile::tempdir().unwrap();
        let browser = browser(&driver, &profile, "1000,1800").await;
        browser.goto(&format!("{}/review", app.base)).await.unwrap();
        let s = Self {
            app,
            browser,
            _driver: driver,
            _profile: profile,
            _lf: lf,
        };
        s.wait()
            .for_element(Locator::Css("#token"))
            .await
            .unwrap()
            .send_keys(TOKEN)
            .await
            .unwrap();
        s.find("#name").await.send_keys("Ada").await.unwrap();
        s.find("#login").await.click().await.unwrap();
        s.wait()
            .for_element(Locator::Css(&format!("#card-{cards}")))
            .await
            .unwrap();
        s
    }

    fn wait(&self) -> fantoccini::wait::Wait<'_> {
        self.browser.wait().at_most(Duration::from_secs(15))
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.browser
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    /// The current value of the form control `css` (a select's chosen option).
    async fn value(&self, css: &str) -> String {
        self.find(css).await.prop("value").await.unwrap().unwrap()
    }

    /// Clicks `button` in card 1 and waits for the new page, the verdict shown.
    async fn judge_first_card(&self, button: &str) {
        click_then(
            &self.browser,
            &format!("#card-1 button[value={button}]"),
            "#card-1 .verdict",
        )
        .await;
    }

    async fn close(self) {
        self.browser.close().await.unwrap();
        self.app.shutdown.cancel();
        self.app.task.await.unwrap().unwrap();
    }
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_card_says_which_weighting_rule_raised_its_severity(pool: sqlx::PgPool) {
    let store = harness::pg(pool);
    let raised = seed_yesterday(store.as_ref(), "th_weighed", 9, |d| {
        *d = d
            .clone()
            .weighed(Severity::Urgent, Some("tiers.enterprise".to_owned()));
    })
    .await;
    let kept = seed_yesterday(store.as_ref(), "th_kept", 10, |_| {}).await;
    let s = Session::open(store, "", 2).await;

    let card = |id: &str| format!("section[data-decision=\"{id}\"]");
    let line = s
        .find(&format!("{} .weighting", card(&raised.id)))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        line,
        "the classifier said routine; rule tiers.enterprise raised it to urgent"
    );
    let decision = s
        .find(&format!("{} .decision", card(&raised.id)))
        .await
        .text()
        .await
        .unwrap();
    assert!(decision.starts_with("urgent → human"), "{decision}");
    // The classifier's severity stood on the other: no such line.
    let none = s
        .browser
        .find_all(Locator::Css(&format!("{} .weighting", card(&kept.id))))
        .await
        .unwrap();
    assert!(none.is_empty(), "no weighting line where no rule applied");
    s.close().await;
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_reviewer_corrects_topic_and_sentiment_in_headless_chromium(pool: sqlx::PgPool) {
    let store = harness::pg(pool);
    let d = seed_yesterday(store.as_ref(), "th_labels", 9, |d| {
        d.topic = Some("billing".into());
        d.sentiment = Some(Sentiment::Negative);
    })
    .await;
    let s = Session::open(store, "", 1).await;
    let labels = s.find("#card-1 .labels").await.text().await.unwrap();
    assert_eq!(labels, "topic billing · sentiment negative");
    assert_eq!(s.value("#card-1 select[name=topic]").await, "billing");
    assert_eq!(s.value("#card-1 select[name=sentiment]").await, "negative");

    // The reviewer says: a bug, and not negative but neutral; the severity was right.
    s.find("#card-1 select[name=topic]")
        .await
        .select_by_value("bug")
        .await
        .unwrap();
    s.find("#card-1 select[name=sentiment]")
        .await
        .select_by_value("neutral")
        .await
        .unwrap();
    s.judge_first_card("correct").await;

    let stored = s.app.store.reviews(&d.id).await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        (
            stored[0].verdict,
            stored[0].origin,
            stored[0].reviewer.as_str()
        ),
        (ReviewVerdict::Correct, Origin::Web, "Ada")
    );
    assert_eq!(
        stored[0].labels,
        LabelVerdict {
            topic: Some("bug".into()),
            sentiment: Some(Sentiment::Neutral),
            shadow: BTreeMap::new(),
        }
    );
    // The card now shows the reviewer's labels preset, so judging it again (here: the
    // severity) keeps the corrected labels instead of reverting them to the model's.
    assert_eq!(s.value("#card-1 select[name=topic]").await, "bug");
    assert_eq!(s.value("#card-1 select[name=sentiment]").await, "neutral");
    s.judge_first_card("urgent").await;
    let stored = s.app.store.reviews(&d.id).await.unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
    let last = stored.iter().max_by_key(|r| r.id).unwrap();
    assert_eq!(last.verdict, ReviewVerdict::Corrected(Severity::Urgent));
    assert_eq!(
        (last.labels.topic.as_deref(), last.labels.sentiment),
        (Some("bug"), Some(Sentiment::Neutral))
    );
    s.close().await;
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_reviewer_answers_a_shadow_category_in_headless_chromium(pool: sqlx::PgPool) {
    let store = harness::pg(pool);
    let d = seed_yesterday(store.as_ref(), "th_shadow", 9, |d| {
        d.topic = Some("billing".into());
        d.sentiment = Some(Sentiment::Negative);
        d.shadow = BTreeMap::from([("churn_risk".to_owned(), true)]);
    })
    .await;
    let s = Session::open(
        store,
        "[labels.categories.churn_risk]\nkind = \"topic\"\nmode = \"shadow\"\n\
         definition = \"The customer may leave.\"\n",
        1,
    )
    .await;
    let question = s
        .find("#card-1 label[for=\"shadow.churn_risk-0\"]")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        question,
        "Shadow category churn_risk: The customer may leave. (the model says it applies). \
         Does it apply?"
    );
    let select = "#card-1 select[name=\"shadow.churn_risk\"]";
    assert_eq!(s.value(select).await, "not judged");
    s.find(select).await.select_by_value("no").await.unwrap();
    s.judge_first_card("correct").await;

    let stored = s.app.store.reviews(&d.id).await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        stored[0].labels.shadow,
        BTreeMap::from([("churn_risk".to_owned(), false)]),
        "the reviewer said churn risk does not apply"
    );
    assert_eq!(
        (
            stored[0].labels.topic.as_deref(),
            stored[0].labels.sentiment
        ),
        (Some("billing"), Some(Sentiment::Negative)),
        "the preset labels are confirmed"
    );
    assert_eq!(s.value(select).await, "no", "the answer shows on the card");
    s.close().await;
}
