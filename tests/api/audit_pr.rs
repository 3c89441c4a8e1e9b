//! The labels pull request end to end against a mock GitHub REST API (wiremock on 127.0.0.1)
//! that checks every request: the branch, the one commit appending the week's misses to
//! labels/labels.csv (still passing the labels checks), the body; a re-run updating the same
//! pull request instead of opening another; 401, 404 on the repository and 422 "a pull request
//! already exists". With an API key, the candidate prompt is measured through a mock Message
//! Batches API. And `escalator eval --classifier claude --batch` against the same mock.
//!
//! Over 700 lines: one flow against one mock GitHub, whose fixtures (the base branch's files,
//! the recorded requests) every test shares; split, each file would rebuild them.

use std::{collections::BTreeMap, io::Write as _};

use base64::Engine as _;
use escalator::{
    audit::{
        self, Report,
        github::{Github, GithubError},
        pr::{self, PrError, PrResult},
    },
    config::Settings,
    examples,
    prompt::{self, Prompt},
};
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, Request, ResponseTemplate,
    matchers::{body_partial_json, header, header_regex, method, path, query_param},
};

use crate::audit::{Db, Kind, seed_month};

const TOKEN: &str = "ghp_test_token";
const BRANCH: &str = "escalator/labels-2026-W48";
const REPO: &str = "/repos/acme/support";

fn settings(
    github: &MockServer,
    claude: Option<&MockServer>,
) -> (Settings, tempfile::NamedTempFile) {
    let mut config = tempfile::NamedTempFile::new().unwrap();
    write!(
        config,
        "[audit]\nbatch_poll_secs = 1\nbase_branch = \"main\"\n"
    )
    .unwrap();
    let path = config.path().to_str().unwrap().to_owned();
    let gh = github.uri();
    let anthropic = claude.map(MockServer::uri);
    let mut env = BTreeMap::from([
        ("ESCALATOR_CONFIG", path.as_str()),
        ("GITHUB_TOKEN", TOKEN),
        ("GITHUB_REPOSITORY", "acme/support"),
        ("GITHUB_API_URL", gh.as_str()),
    ]);
    if let Some(a) = &anthropic {
        env.insert("ANTHROPIC_API_KEY", "sk-ant-test");
        env.insert("ANTHROPIC_BASE_URL", a.as_str());
    }
    (Settings::load(&env).unwrap(), config)
}

/// A file as the contents API serves it: base64 with a line break every 60 characters.
fn contents(text: &str) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD.encode(text);
    let wrapped: Vec<String> = b64
        .as_bytes()
        .chunks(60)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    json!({"type": "file", "encoding": "base64", "content": wrapped.join("\n") + "\n", "sha": "f00"})
}

fn gh(m: &str, p: &str) -> wiremock::MockBuilder {
    Mock::given(method(m))
        .and(path(format!("{REPO}{p}")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("accept", "application/vnd.github+json"))
        .and(header("x-github-api-version", "2022-11-28"))
        .and(header_regex("user-agent", "^escalator/"))
}

/// Everything up to the commit: repository, base branch, its tree, the three files, blob, tree
/// and commit.
async fn mount_reads_and_commit(s: &MockServer) {
    gh("GET", "")
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"full_name": "acme/support"})),
        )
        .expect(1)
        .mount(s)
        .await;
    gh("GET", "/git/ref/heads/main")
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"ref": "refs/heads/main", "object": {"sha": "base111", "type": "commit"}}),
        ))
        .expect(1)
        .mount(s)
        .await;
    gh("GET", "/git/commits/base111")
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"sha": "base111", "tree": {"sha": "tree111"}, "parents": []}),
            ),
        )
        .expect(1)
        .mount(s)
        .await;
    for (file, text) in [
        ("labels/labels.csv", examples::EMBEDDED_LABELS),
        ("labels/holdout.csv", examples::EMBEDDED_HOLDOUT),
        ("prompts/classifier.md", prompt::EMBEDDED_TEMPLATE),
    ] {
        gh("GET", &format!("/contents/{file}"))
            .and(query_param("ref", "main"))
            .respond_with(ResponseTemplate::new(200).set_body_json(contents(text)))
            .expect(1)
            .mount(s)
            .await;
    }
    gh("POST", "/git/blobs")
        .and(body_partial_json(json!({"encoding": "utf-8"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sha": "blob222"})))
        .expect(1)
        .mount(s)
        .await;
    gh("POST", "/git/trees")
        .and(body_partial_json(json!({
            "base_tree": "tree111",
            "tree": [{"path": "labels/labels.csv", "mode": "100644", "type": "blob", "sha": "blob222"}],
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sha": "tree222"})))
        .expect(1)
        .mount(s)
        .await;
    gh("POST", "/git/commits")
        .and(body_partial_json(
            json!({"tree": "tree222", "parents": ["base111"]}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sha": "commit222"})))
        .expect(1)
        .mount(s)
        .await;
}

fn open_pulls() -> wiremock::MockBuilder {
    gh("GET", "/pulls")
        .and(query_param("state", "open"))
        .and(query_param("head", format!("acme:{BRANCH}").as_str()))
        .and(query_param("base", "main"))
}

fn pull(number: u64) -> Value {
    json!({"number": number, "html_url": format!("https://github.example/acme/support/pull/{number}"),
           "head": {"ref": BRANCH, "sha": "commit222"}})
}

fn body_of(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

async fn requests(s: &MockServer, m: &str, p: &str) -> Vec<Request> {
    s.received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == m && r.url.path() == format!("{REPO}{p}"))
        .collect()
}

async fn bad_month() -> (Db, Report) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/pr.db?mode=rwc", dir.path().display());
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect(&url)
        .await
        .unwrap();
    sqlx::migrate!("./migrations/sqlite")
        .run(&pool)
        .await
        .unwrap();
    // The pool keeps the file open; the directory may go.
    std::mem::forget(dir);
    let db = Db::Lite(pool);
    seed_month(&db, Kind::Bad).await;
    let report = audit::build(db.store().as_ref(), &crate::audit::request())
        .await
        .unwrap();
    (db, report)
}

/// The Message Batches API: one batch, polled once, its results out of order; every answer
/// says urgent.
async fn mount_batches(s: &MockServer, items: usize) {
    Mock::given(method("POST"))
        .and(path("/v1/messages/batches"))
        .and(header("authorization", "Bearer sk-ant-test"))
        .and(header("anthropic-version", "2026-10-21"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msgbatch_01", "type": "message_batch", "processing_status": "in_progress",
            "request_counts": {"processing": items, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        })))
        .expect(1)
        .mount(s)
        .await;
    let results_url = format!("{}/v1/messages/batches/msgbatch_01/results", s.uri());
    Mock::given(method("GET"))
        .and(path("/v1/messages/batches/msgbatch_01"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msgbatch_01", "type": "message_batch", "processing_status": "ended",
            "results_url": results_url
        })))
        .expect(1)
        .mount(s)
        .await;
    let lines: Vec<String> = (0..items)
        .rev()
        .map(|i| {
            json!({"custom_id": format!("item-{i}"), "result": {"type": "succeeded", "message": {
                "id": format!("msg_{i}"), "type": "message", "role": "assistant",
                "model": "claude-sonnet-4-6", "stop_reason": "end_turn",
                "content": [{"type": "text", "text": "{\"severity\":\"urgent\",\"route\":\"human\",\"confidence\":0.8,\"reasoning\":\"Seeded.\"}"}],
                "usage": {"input_tokens": 300, "output_tokens": 20, "cache_read_input_tokens": 4000,
                          "cache_creation_input_tokens": 0, "service_tier": "batch"}}}})
            .to_string()
        })
        .collect();
    Mock::given(method("GET"))
        .and(path("/v1/messages/batches/msgbatch_01/results"))
        .and(header("authorization", "Bearer sk-ant-test"))
        .respond_with(ResponseTemplate::new(200).set_body_string(lines.join("\n") + "\n"))
        .expect(1)
        .mount(s)
        .await;
}

#[tokio::test]
async fn a_week_below_the_bar_opens_one_pull_request_and_a_rerun_updates_it() {
    let (db, report) = bad_month().await;
    let store = db.store();
    let github = MockServer::start().await;
    let anthropic = MockServer::start().await;
    let (settings, _config) = settings(&github, Some(&anthropic));
    let client = Github::new(settings.audit.github.clone().unwrap()).unwrap();

    mount_reads_and_commit(&github).await;
    gh("POST", "/git/refs")
        .and(body_partial_json(
            json!({"ref": format!("refs/heads/{BRANCH}"), "sha": "commit222"}),
        ))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"ref": format!("refs/heads/{BRANCH}")})),
        )
        .expect(1)
        .mount(&github)
        .await;
    open_pulls()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(1)
        .mount(&github)
        .await;
    gh("POST", "/pulls")
        .and(body_partial_json(
            json!({"head": BRANCH, "base": "main", "draft": false}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(pull(7)))
        .expect(1)
        .mount(&github)
        .await;
    mount_batches(&anthropic, 50).await;

    let result = pr::open_or_update(
        &client,
        store.as_ref(),
        &report,
        &settings.audit,
        &settings.claude,
        &settings.prompt_spec(),
    )
    .await
    .unwrap();
    let PrResult::Opened(opened) = result else {
        panic!("expected a new pull request: {result:?}")
    };
    assert_eq!(
        (
            opened.number,
            opened.branch.as_str(),
            opened.commit.as_str(),
            opened.rows
        ),
        (7, BRANCH, "commit222", 12)
    );

    // The commit: the labels with the week's twelve misses appended, still passing the checks.
    let blob = body_of(&requests(&github, "POST", "/git/blobs").await[0]);
    let text = blob["content"].as_str().unwrap();
    assert!(text.starts_with(examples::EMBEDDED_LABELS));
    let rows = examples::parse("labels/labels.csv", text).unwrap();
    let base = examples::parse("labels.csv", examples::EMBEDDED_LABELS).unwrap();
    assert_eq!(rows.len(), base.len() + 12);
    let holdout = examples::parse("holdout.csv", examples::EMBEDDED_HOLDOUT).unwrap();
    let checked = examples::check_examples(
        "labels/labels.csv",
        &rows,
        Some(("holdout.csv".to_owned(), holdout)),
        &examples::CheckOptions::for_file(std::path::Path::new("labels/labels.csv")),
        Vec::new(),
    );
    assert_eq!(checked.errors(), 0, "{:?}", checked.findings);
    let added = &rows[base.len()..];
    let two = added
        .iter()
        .find(|e| e.ticket_id == "2026-W48-002")
        .unwrap();
    assert_eq!(two.severity, escalator::domain::Severity::Urgent);
    assert_eq!(two.why, "Reviewer: 2026-W48-002 is urgent");
    assert!(two.first_message.contains("café ☕"));
    let commit = body_of(&requests(&github, "POST", "/git/commits").await[0]);
    assert!(
        commit["message"]
            .as_str()
            .unwrap()
            .starts_with("labels: add the 12 tickets missed in 2026-W48")
    );

    // The body: accuracy with its interval, each miss, the prompt versions, the measured effect.
    let pr_body = body_of(&requests(&github, "POST", "/pulls").await[0]);
    assert_eq!(
        pr_body["title"],
        "labels: 12 tickets missed in 2026-W48 (accuracy 80.0%)"
    );
    let md = pr_body["body"].as_str().unwrap();
    assert!(md.contains("Sampled-review accuracy in 2026-W48: 40/50 correct = 80.0%, 95% interval 67.0–88.8% (±10.9 points with 50 verdicts); the bar is 90%"), "{md}");
    for m in &report.misses {
        assert!(
            md.contains(&format!("`{}`", m.ticket_id)),
            "{} missing:\n{md}",
            m.ticket_id
        );
    }
    let row = format!(
        "| plain `2026-W48-002` | Seeded ticket 2026-W48-002: {} | routine | urgent | Reviewer: 2026-W48-002 is urgent |",
        crate::audit::seeded_body("2026-W48-002", 2)
    );
    assert!(md.contains(&row), "{md}");
    let current = Prompt::render(prompt::EMBEDDED_TEMPLATE, &base).unwrap();
    let next = Prompt::render(prompt::EMBEDDED_TEMPLATE, &rows).unwrap();
    assert_ne!(current.version(), next.version());
    assert!(
        md.contains(&format!(
            "Current: `{}` → with these labels: `{}`",
            current.version(),
            next.version()
        )),
        "{md}"
    );
    assert_eq!(opened.prompt_version, next.version());
    assert!(
        md.contains("| live decisions (current prompt) | 80.0% (40/50) | |"),
        "{md}"
    );
    assert!(
        md.contains("| offline (rules + nearest labelled example) | "),
        "{md}"
    );
    assert!(md.contains("| claude-sonnet-4-6 with the candidate prompt (Message Batches `msgbatch_01`) | 80.0% (40/50) | 48.0% (24/50) |"), "{md}");
    assert!(
        md.contains("The batch cost $0.0600 (half the list price); 0 requests fell back"),
        "{md}"
    );
    assert!(md.chars().count() <= pr::MAX_BODY_CHARS);
    std::fs::write(
        crate::review_web::artifacts().join("labels-pull-request.md"),
        md,
    )
    .unwrap();

    // The batch carried the candidate prompt, byte for byte the service's request.
    let batch: Vec<Request> = anthropic
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .collect();
    let b = body_of(&batch[0]);
    let reqs = b["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 50);
    assert_eq!(reqs[0]["custom_id"], "item-0");
    let params = &reqs[0]["params"];
    assert_eq!(params["model"], "claude-sonnet-4-6");
    assert_eq!(params["system"][0]["text"], next.system());
    assert_eq!(params["system"][0]["cache_control"]["ttl"], "1h");
    assert_eq!(params["output_config"]["format"]["type"], "json_schema");
    assert!(
        params["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("broke after the")
    );

    // A re-run the same week: the branch is moved to a fresh commit and the body rewritten.
    github.verify().await;
    github.reset().await;
    anthropic.reset().await;
    mount_reads_and_commit(&github).await;
    gh("POST", "/git/refs")
        .respond_with(
            ResponseTemplate::new(422)
                .set_body_json(json!({"message": "Reference already exists"})),
        )
        .expect(1)
        .mount(&github)
        .await;
    gh("PATCH", &format!("/git/refs/heads/{BRANCH}"))
        .and(body_partial_json(
            json!({"sha": "commit222", "force": true}),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ref": format!("refs/heads/{BRANCH}")})),
        )
        .expect(1)
        .mount(&github)
        .await;
    open_pulls()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([pull(7)])))
        .expect(1)
        .mount(&github)
        .await;
    gh("PATCH", "/pulls/7")
        .and(body_partial_json(
            json!({"title": "labels: 12 tickets missed in 2026-W48 (accuracy 80.0%)"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(pull(7)))
        .expect(1)
        .mount(&github)
        .await;
    gh("POST", "/pulls")
        .respond_with(ResponseTemplate::new(201).set_body_json(pull(8)))
        .expect(0)
        .mount(&github)
        .await;
    mount_batches(&anthropic, 50).await;
    let result = pr::open_or_update(
        &client,
        store.as_ref(),
        &report,
        &settings.audit,
        &settings.claude,
        &settings.prompt_spec(),
    )
    .await
    .unwrap();
    assert!(
        matches!(&result, PrResult::Updated(o) if o.number == 7 && o.rows == 12),
        "{result:?}"
    );
    let patched = body_of(&requests(&github, "PATCH", "/pulls/7").await[0]);
    assert!(
        patched["body"]
            .as_str()
            .unwrap()
            .contains("Missed tickets (12 added to the labels)")
    );
}

#[tokio::test]
async fn a_pull_request_opened_meanwhile_is_updated_not_duplicated() {
    let (db, report) = bad_month().await;
    let github = MockServer::start().await;
    let (settings, _config) = settings(&github, None);
    let client = Github::new(settings.audit.github.clone().unwrap()).unwrap();
    mount_reads_and_commit(&github).await;
    gh("POST", "/git/refs")
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({})))
        .expect(1)
        .mount(&github)
        .await;
    // None open when we look; another replica opens one before our create.
    open_pulls()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .up_to_n_times(1)
        .expect(1)
        .mount(&github)
        .await;
    gh("POST", "/pulls")
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": "Validation Failed",
            "errors": [{"resource": "PullRequest", "code": "custom",
                        "message": format!("A pull request already exists for acme:{BRANCH}.")}]
        })))
        .expect(1)
        .mount(&github)
        .await;
    open_pulls()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([pull(9)])))
        .expect(1)
        .mount(&github)
        .await;
    gh("PATCH", "/pulls/9")
        .respond_with(ResponseTemplate::new(200).set_body_json(pull(9)))
        .expect(1)
        .mount(&github)
        .await;
    let result = pr::open_or_update(
        &client,
        db.store().as_ref(),
        &report,
        &settings.audit,
        &settings.claude,
        &settings.prompt_spec(),
    )
    .await
    .unwrap();
    assert!(
        matches!(&result, PrResult::Updated(o) if o.number == 9),
        "{result:?}"
    );
    let md = body_of(&requests(&github, "PATCH", "/pulls/9").await[0])["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        md.contains(
            "No ANTHROPIC_API_KEY: the Claude path with the candidate prompt was not measured."
        ),
        "{md}"
    );
}

#[tokio::test]
async fn bad_credentials_and_a_missing_repository_stop_before_any_write() {
    let (db, report) = bad_month().await;
    for (status, message, expected) in [
        (
            401,
            "Bad credentials",
            "GitHub refused the token (401 Bad credentials): check GITHUB_TOKEN",
        ),
        (
            404,
            "Not Found",
            "repository acme/support not found on GitHub (404), or the token cannot see it",
        ),
    ] {
        let github = MockServer::start().await;
        let (settings, _config) = settings(&github, None);
        let client = Github::new(settings.audit.github.clone().unwrap()).unwrap();
        gh("GET", "")
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({
                "message": message, "documentation_url": "https://docs.github.com/rest"
            })))
            .expect(1)
            .mount(&github)
            .await;
        let err = pr::open_or_update(
            &client,
            db.store().as_ref(),
            &report,
            &settings.audit,
            &settings.claude,
            &settings.prompt_spec(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), expected);
        match (status, &err) {
            (401, PrError::Github(GithubError::Unauthorized))
            | (404, PrError::Github(GithubError::NotFound { .. })) => {}
            other => panic!("{other:?}"),
        }
        let all = github.received_requests().await.unwrap();
        assert_eq!(all.len(), 1, "nothing after the failed check: {all:?}");
    }
}

#[tokio::test]
async fn a_week_that_meets_the_bar_calls_nothing() {
    let (db, mut report) = bad_month().await;
    report.gate.outcome = audit::Outcome::Pass;
    let github = MockServer::start().await;
    let (settings, _config) = settings(&github, None);
    let client = Github::new(settings.audit.github.clone().unwrap()).unwrap();
    let result = pr::open_or_update(
        &client,
        db.store().as_ref(),
        &report,
        &settings.audit,
        &settings.claude,
        &settings.prompt_spec(),
    )
    .await
    .unwrap();
    assert!(
        matches!(result, PrResult::NotNeeded(ref why) if why.starts_with("no pull request: 2026-W48")),
        "{result:?}"
    );
    assert!(github.received_requests().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_batch_sends_the_labelled_file_through_the_batches_api() {
    let holdout = examples::parse("holdout.csv", examples::EMBEDDED_HOLDOUT).unwrap();
    let anthropic = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages/batches"))
        .and(header("authorization", "Bearer sk-ant-test"))
        .and(header("anthropic-version", "2026-10-21"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msgbatch_eval", "type": "message_batch", "processing_status": "in_progress"
        })))
        .expect(1)
        .mount(&anthropic)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/messages/batches/msgbatch_eval"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msgbatch_eval", "type": "message_batch", "processing_status": "ended"
        })))
        .expect(1)
        .mount(&anthropic)
        .await;
    // Every row answered with its label, except row 0 (wrong) and row 1 (errored: offline).
    let wrong = match holdout[0].severity.as_str() {
        "routine" => "on_fire",
        _ => "routine",
    };
    let lines: Vec<String> = holdout
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if i == 1 {
                return json!({"custom_id": "item-1", "result": {"type": "errored", "error": {
                    "type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}}})
                .to_string();
            }
            let sev = if i == 0 { wrong } else { e.severity.as_str() };
            let answer = json!({"severity": sev, "route": "human", "confidence": 0.9, "reasoning": "Labelled."});
            json!({"custom_id": format!("item-{i}"), "result": {"type": "succeeded", "message": {
                "id": format!("msg_{i}"), "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
                "stop_reason": "end_turn", "content": [{"type": "text", "text": answer.to_string()}],
                "usage": {"input_tokens": 100, "output_tokens": 10}}}})
            .to_string()
        })
        .collect();
    Mock::given(method("GET"))
        .and(path("/v1/messages/batches/msgbatch_eval/results"))
        .respond_with(ResponseTemplate::new(200).set_body_string(lines.join("\n")))
        .expect(1)
        .mount(&anthropic)
        .await;
    // The model check `eval --classifier claude` makes first, as `serve` does.
    Mock::given(method("GET"))
        .and(path("/v1/models/claude-sonnet-4-6"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "model", "id": "claude-sonnet-4-6",
            "capabilities": {"structured_outputs": {"supported": true}}
        })))
        .expect(1)
        .mount(&anthropic)
        .await;
    let mut config = tempfile::NamedTempFile::new().unwrap();
    write!(config, "[audit]\nbatch_poll_secs = 1\n").unwrap();
    let config_path = config.path().to_owned();
    let base = anthropic.uri();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_escalator"))
            .args([
                "eval",
                "labels/holdout.csv",
                "--classifier",
                "claude",
                "--batch",
                "--json",
                "--allow-fallbacks",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("ANTHROPIC_API_KEY", "sk-ant-test")
            .env("ANTHROPIC_BASE_URL", base)
            .env("ESCALATOR_CONFIG", config_path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("message batch msgbatch_eval ended"),
        "{stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["total"], holdout.len());
    assert_eq!(report["fallbacks"], 1);
    assert_eq!(
        report["fallback_reasons"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>(),
        1,
        "{report}"
    );
    let correct = report["correct"].as_u64().unwrap();
    let misses: Vec<&str> = report["misses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["ticket_id"].as_str().unwrap())
        .collect();
    assert!(
        misses.contains(&holdout[0].ticket_id.as_str()),
        "{misses:?}"
    );
    // Row 1 fell back to the offline classifier: a miss of the model, whatever it answered.
    assert!(
        misses.contains(&holdout[1].ticket_id.as_str()),
        "{misses:?}"
    );
    let fell_back = report["misses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["ticket_id"] == holdout[1].ticket_id.as_str())
        .unwrap();
    assert!(fell_back["fallback_reason"].is_string(), "{fell_back}");
    assert_eq!(correct as usize, holdout.len() - 2);
    assert_eq!(misses.len(), 2);
    // Priced at the batch rate: (100 × $3 + 10 × $15) / 1M / 2 per answered row.
    let answered = holdout.len() - 1;
    #[allow(clippy::cast_precision_loss)]
    let expected = answered as f64 * (100.0 * 3.0 + 10.0 * 15.0) / 1e6 / 2.0;
    assert!(
        (report["usage"]["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-9,
        "{report}"
    );
    assert_eq!(report["usage"]["answered"], answered, "{report}");
    let sent = anthropic.received_requests().await.unwrap();
    assert_eq!(sent[0].url.path(), "/v1/models/claude-sonnet-4-6");
    let body: Value = serde_json::from_slice(&sent[1].body).unwrap();
    assert_eq!(body["requests"].as_array().unwrap().len(), holdout.len());
    assert_eq!(body["requests"][3]["custom_id"], "item-3");
    assert_eq!(body["requests"][3]["params"]["max_tokens"], 1024);
}

#[tokio::test]
async fn the_weekly_run_in_serve_opens_the_pull_request_below_the_bar() {
    let (db, _) = bad_month().await;
    let github = MockServer::start().await;
    let (settings, _config) = settings(&github, None);
    mount_reads_and_commit(&github).await;
    gh("POST", "/git/refs")
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({})))
        .expect(1)
        .mount(&github)
        .await;
    open_pulls()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(1)
        .mount(&github)
        .await;
    gh("POST", "/pulls")
        .respond_with(ResponseTemplate::new(201).set_body_json(pull(11)))
        .expect(1)
        .mount(&github)
        .await;
    // Monday 2026-11-30 07:00 UTC: the last full week is 2026-W48.
    let now = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 30, 7, 0, 0).unwrap();
    audit::schedule::run_once(db.store().as_ref(), &settings, now).await;
    let md = body_of(&requests(&github, "POST", "/pulls").await[0])["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(md.contains("## Labels from the audit of 2026-W48"), "{md}");
    github.verify().await;
}
