//! The command line as a user runs it: the built binary, its output and exit codes.

use std::{
    io::Write as _,
    net::TcpListener,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use escalator::grpc::pb::{self, ClassifyRequest, escalator_client::EscalatorClient};

fn escalator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_escalator"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ESCALATOR_CONFIG")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const HEAD: &str = "ticket_id,subject,first_message,tier,severity,route,why_this_label\n";

#[test]
fn labels_check_passes_the_shipped_files_with_a_summary() {
    let out = escalator(&["labels", "check", "--strict"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("labels/labels.csv: ok\n108 rows\n"),
        "{stdout}"
    );
    assert!(stdout.contains("routine"));
    assert!(stdout.contains("enterprise"));
    assert!(stdout.contains("no overlap with labels/holdout.csv"));
    // The coverage table: every clause of the definitions, at least 3 rows each.
    assert!(
        stdout.contains("coverage: rows per definition clause (each needs at least 3"),
        "{stdout}"
    );
    let clauses: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            l.starts_with("  routine   ")
                || l.starts_with("  urgent    ")
                || l.starts_with("  on_fire   ")
        })
        .filter(|l| l.split_whitespace().count() > 3)
        .collect();
    assert_eq!(
        clauses.len(),
        escalator::examples::CLAUSES.len(),
        "{stdout}"
    );
    for line in &clauses {
        let rows: usize = line
            .split_whitespace()
            .rev()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(rows >= 3, "{line}");
    }
    for file in [
        "labels/holdout.csv",
        "labels/regressions.csv",
        "labels/negatives.csv",
        "labels/blind.csv",
    ] {
        let out = escalator(&["labels", "check", file, "--strict"]);
        assert!(out.status.success(), "{file}: {}", text(&out.stderr));
    }
}

/// A `topic` that is not one of the configured topics is a warning at its line and column;
/// the configured topics are `[labels] topics` of `ESCALATOR_CONFIG`, the defaults without one.
#[test]
fn labels_check_warns_of_a_topic_that_is_not_configured() {
    let mut f = tempfile::Builder::new()
        .prefix("regressions-")
        .suffix(".csv")
        .tempfile()
        .unwrap();
    write!(
        f,
        "ticket_id,subject,first_message,tier,severity,route,why_this_label,topic,sentiment\n\
         A-1,Charts,The dashboards page looks different today.,free,routine,bot,Docs answer: a question.,dashboards,neutral\n"
    )
    .unwrap();
    let path = f.path().to_str().unwrap();
    let out = escalator(&["labels", "check", path]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(": ok, 1 warning(s)"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains(&format!(
            "{path}:2:8: warning: A-1: topic \"dashboards\" is not one of the configured topics (billing, bug, outage, account_access, how_to, feature_request, security, legal, other)"
        )),
        "{}",
        text(&out.stderr)
    );
    let mut config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    write!(config, "[labels]\ntopics = [\"dashboards\", \"other\"]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_escalator"))
        .args(["labels", "check", path, "--strict"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("ANTHROPIC_API_KEY")
        .env("ESCALATOR_CONFIG", config.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(": ok\n"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn labels_check_reports_conflicting_labels_and_coverage_and_strict_fails_on_warnings() {
    let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    write!(
        f,
        "{HEAD}\
         A-1,Charged twice,\"We were charged $49 twice on March 3rd, please refund one.\",pro,urgent,human,Billing dispute: $49 twice.\n\
         A-2,Charged twice,\"We were charged $49 twice on March 3rd, please refund one!!\",pro,routine,bot,FAQ: billing.\n\
         A-3,Dark mode,Would love a dark mode.,pro,routine,bot,Feature request.\n\
         A-4,Dark mode please,Would love a dark mode!,pro,routine,bot,Feature request.\n"
    )
    .unwrap();
    let path = f.path().to_str().unwrap();
    let out = escalator(&["labels", "check", path, "--min-rows", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{path}:3: conflicting labels: line 2 and line 3 are 100% similar (A-1 is urgent, A-2 is routine)"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{path}: no row for the on_fire clause \"Data loss\""
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: near-duplicate: line 4 and line 5"),
        "{stderr}"
    );

    // A regression file (any size, any mix, no coverage) with only the warning left: ok,
    // unless --strict.
    let mut g = tempfile::Builder::new()
        .prefix("regressions-")
        .suffix(".csv")
        .tempfile()
        .unwrap();
    write!(
        g,
        "{HEAD}\
         A-3,Dark mode,Would love a dark mode.,pro,routine,bot,Feature request.\n\
         A-4,Dark mode please,Would love a dark mode!,pro,routine,bot,Feature request.\n"
    )
    .unwrap();
    let path = g.path().to_str().unwrap();
    let args = ["labels", "check", path];
    let out = escalator(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(": ok, 1 warning(s)"),
        "{}",
        text(&out.stdout)
    );
    let mut strict = args.to_vec();
    strict.push("--strict");
    let out = escalator(&strict);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("(--strict fails on warnings)"),
        "{}",
        text(&out.stderr)
    );

    // The same checks against the other file.
    let out = escalator(&["labels", "check", path, "--against", "labels/labels.csv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("no overlap with labels/labels.csv"));
}

#[test]
fn labels_check_names_file_line_and_column_and_fails() {
    let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    write!(
        f,
        "{HEAD}A-1,s,m,pro,routine,bot,w\nA-2,s2,m2,pro,urgnt,human,w\n"
    )
    .unwrap();
    let path = f.path().to_str().unwrap();
    let out = escalator(&["labels", "check", path, "--min-rows", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{path}:3:5: invalid severity: \"urgnt\" is not one of routine, urgent, on_fire"
        )),
        "{stderr}"
    );
    let out = escalator(&["labels", "check", "does/not/exist.csv"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("does/not/exist.csv: cannot read"));
}

#[test]
fn prompt_render_prints_the_system_block_and_version() {
    let out = escalator(&["prompt", "render"]);
    assert!(out.status.success());
    let system = text(&out.stdout);
    assert!(system.contains("DEFINITIONS"));
    assert!(system.contains("<example id=\"L-001\">"));
    assert!(!system.contains("{{"));
    let stderr = text(&out.stderr);
    let version = stderr.trim().strip_prefix("prompt version: ").unwrap();
    let json = escalator(&["prompt", "render", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["version"], version);
    assert_eq!(format!("{}\n", v["system"].as_str().unwrap()), system);
}

#[test]
fn eval_reports_accuracy_and_gates_on_min_accuracy() {
    let out = escalator(&["eval", "--min-accuracy", "0.6"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("accuracy: "), "{stdout}");
    assert!(stdout.contains("% (95% Wilson interval "), "{stdout}");
    assert!(stdout.contains("expected \\ predicted"));
    // The contamination report: no rule phrase only the holdout carries, so both figures agree.
    assert!(
        stdout.contains(
            "contamination: no rule phrase matches a row here and none of the 108 training rows"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("rows decided only by them: none"),
        "{stdout}"
    );
    let json = escalator(&["eval", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let accuracy = v["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.6, "{accuracy}");
    assert_eq!(v["total"], 54);
    let c = &v["contamination"];
    assert_eq!(c["phrases"], serde_json::json!([]));
    assert_eq!(c["clean_total"], 54);
    assert_eq!(c["clean_accuracy"], v["accuracy"]);
    assert_eq!(v["fallbacks"], 0);
    let (low, high) = (
        v["accuracy_ci95"][0].as_f64().unwrap(),
        v["accuracy_ci95"][1].as_f64().unwrap(),
    );
    assert!(
        low < accuracy && accuracy <= high && high <= 1.0,
        "{low} {high}"
    );
    assert!(v.get("explain").is_none());

    // A file whose labels are all wrong: accuracy 0, exit 1, the misses listed.
    let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    writeln!(
        f,
        "{HEAD}X-1,Down,Your API is down for everyone.,pro,routine,bot,w"
    )
    .unwrap();
    let out = escalator(&["eval", f.path().to_str().unwrap(), "--min-accuracy", "0.9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("X-1: expected routine, got on_fire"));
    assert!(text(&out.stderr).contains("below --min-accuracy 0.9"));
}

/// `--explain` says per ticket which rules fired, which a guard switched off, and the nearest
/// example; the file's `repeat_24h` and `arr_usd` reach the classifier.
#[test]
fn eval_explain_shows_rules_guards_and_nearest_and_passes_the_optional_columns() {
    let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    write!(
        f,
        "ticket_id,subject,first_message,tier,severity,route,why_this_label,arr_usd,repeat_24h\n\
         E-1,SOC 2,Can you send your SOC 2 report and security whitepaper?,free,routine,bot,Docs answer.,0,0\n\
         E-2,Report,Our Monday report didn't go out. Can you check?,pro,urgent,human,Repeat ticket.,9000,2\n\
         E-3,Down,\"Since 9am every request returns HTTP 500, prod is down.\",pro,on_fire,engineering,Production down.,,\n"
    )
    .unwrap();
    let path = f.path().to_str().unwrap();
    let out = escalator(&["eval", path, "--explain", "--min-accuracy", "1"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("accuracy: 3/3 = 100.0% (95% Wilson interval 43.9%–100.0%)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("explain (the offline rules, per ticket):"),
        "{stdout}"
    );
    assert!(
        stdout.contains("switched off: Security report (\"security\"): asks for a document"),
        "{stdout}"
    );
    // The repeat count is the weighting rules': the offline rules judged the words routine.
    assert!(
        stdout.contains("E-2: expected urgent, offline routine, raised to urgent by tiers.repeat:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("raised by a weighting rule: tiers.repeat 1"),
        "{stdout}"
    );
    assert!(stdout.contains("fired: Production down (\""), "{stdout}");
    assert!(stdout.contains("nearest: L-"), "{stdout}");

    let out = escalator(&["eval", path, "--explain", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let x = &v["explain"][1];
    assert_eq!(x["ticket_id"], "E-2");
    assert_eq!(x["offline"], "routine");
    assert_eq!(x["severity"], "urgent");
    assert_eq!(x["weighting_rule"], "tiers.repeat");
    assert_eq!(v["weighting_raised"]["tiers.repeat"], 1);
    assert_eq!(
        v["explain"][0]["switched_off"][0]["reason"],
        "asks for a document"
    );
}

/// Tickets as phones type them: typographic apostrophes and quotes, dashes, accents, emoji,
/// other scripts. Each one panicked the offline classifier's amount scanner before.
const PHONE_TYPED: &str = "\
P-1,Login,Our whole team can’t log in since this morning,pro,on_fire,engineering,w
P-2,Ayuda,la aplicación no funciona,free,routine,bot,w
P-3,Renewal,We won’t renew — it’s too expensive,pro,urgent,human,w
P-4,Billing,\"You’ve charged us $2,400 in error — refund it\",pro,on_fire,engineering,w
P-5,Docs,Where’s the “export” button? 🙏,free,routine,bot,w
P-6,請求,請求書について質問があります,free,routine,bot,w
P-7,Outage,It’s down for everyone 🔥🔥,enterprise,on_fire,engineering,w
P-8,Äpfel,Wie exportiere ich Berichte? Grüße,free,routine,bot,w
";

#[test]
fn eval_on_phone_typed_tickets_classifies_every_row() {
    let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    write!(f, "{HEAD}{PHONE_TYPED}").unwrap();
    let out = escalator(&["eval", f.path().to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total"], 8);
    assert_eq!(v["failed"], 0);
    assert_eq!(v["correct"], 8, "{:#}", v["misses"]);
}

#[test]
fn eval_counts_a_row_that_cannot_be_classified_as_a_miss_and_exits_1() {
    let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    let too_long = "ó".repeat(32_769);
    write!(
        f,
        "{HEAD}P-1,Login,I can’t log in,pro,routine,bot,w\nP-9,Long,{too_long},pro,urgent,human,w\n"
    )
    .unwrap();
    let path = f.path().to_str().unwrap();
    let out = escalator(&["eval", path]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("accuracy: 1/2 = 50.0%"), "{stdout}");
    assert!(
        stdout.contains(
            "P-9: expected urgent, FAILED: not a valid ticket: invalid body: is 32769 characters"
        ),
        "{stdout}"
    );
    // The margins of the confusion matrix: no fallback, one failed row expected urgent.
    let urgent_row = stdout.lines().find(|l| l.starts_with("urgent ")).unwrap();
    assert_eq!(
        urgent_row.split_whitespace().collect::<Vec<_>>(),
        ["urgent", "0", "0", "0", "0", "1"]
    );
    assert!(
        text(&out.stderr).contains("1 of 2 tickets failed to classify"),
        "{}",
        text(&out.stderr)
    );

    let out = escalator(&["eval", path, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            v["total"].as_u64(),
            v["correct"].as_u64(),
            v["failed"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(v["accuracy"], 0.5);
    assert_eq!(v["failed_by_expected"]["urgent"], 1);
    let miss = &v["misses"][0];
    assert_eq!(miss["ticket_id"], "P-9");
    assert!(miss["predicted"].is_null());
    assert!(
        miss["error"]
            .as_str()
            .unwrap()
            .starts_with("not a valid ticket")
    );
}

#[test]
fn classify_prints_the_decision_as_json() {
    let out = escalator(&[
        "classify",
        "--subject",
        "Invoice",
        "--body",
        "You billed us $4,800 in error.",
        "--tier",
        "pro",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["severity"], "on_fire");
    assert_eq!(v["route"], "engineering");
    assert_eq!(v["model"], "offline");
    assert_eq!(v["fallback"], false);
    // A dispute over $1,000 is a negative tone, as the labels files have it.
    assert_eq!(
        (v["topic"].as_str(), v["sentiment"].as_str()),
        (Some("billing"), Some("negative"))
    );
    assert_eq!(v["shadow"], serde_json::json!({}));
    assert_eq!(v["model_severity"], "on_fire");
    assert_eq!(v["weighting_rule"], serde_json::Value::Null);
    assert_eq!(
        (&v["tier"], &v["tier_source"]),
        (&"pro".into(), &"request".into())
    );
    // The weighting applies as in the service: an ARR at the enterprise threshold raises the tier.
    let out = escalator(&[
        "classify",
        "--body",
        "How do I export a CSV of our dashboards?",
        "--tier",
        "pro",
        "--arr-usd",
        "50000",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tier"], "enterprise");
    assert_eq!(v["tier_source"], "arr_usd");
    assert_eq!(v["severity"], "urgent");
    let out = escalator(&["classify", "--body", "hi", "--tier", "gold"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("invalid --tier"));
    // The exit codes the README documents: 64 for a value clap cannot check, 2 for clap's own.
    let out = escalator(&["eval", "--min-accuracy", "2"]);
    assert_eq!(out.status.code(), Some(64));
    let out = escalator(&["classify", "--tier", "pro"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a missing --body is clap's usage error"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The quick start as written: `escalator serve` on embedded defaults (a SQLite file and the
/// offline classifier), a Classify call, the decision in the file, and a clean exit on SIGTERM.
#[tokio::test]
async fn serve_runs_on_embedded_defaults_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, http) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_escalator"))
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("DATABASE_URL")
        .env_remove("ESCALATOR_CONFIG")
        .env("ESCALATOR_GRPC_ADDR", format!("127.0.0.1:{grpc}"))
        .env("ESCALATOR_HTTP_ADDR", format!("127.0.0.1:{http}"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let client = loop {
        if let Ok(c) = EscalatorClient::connect(format!("http://127.0.0.1:{grpc}")).await {
            break c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut client = client;
    let t = pb::Ticket {
        id: "Q-1".into(),
        body: "We are thinking of cancelling our subscription.".into(),
        tier: "pro".into(),
        ..pb::Ticket::default()
    };
    let d = client
        .classify(ClassifyRequest { ticket: Some(t) })
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(d.severity(), pb::Severity::Urgent);

    // The decision is in the default SQLite file, created in the working directory.
    let db = dir.path().join("escalator.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let (id, severity): (String, String) =
        sqlx::query_as("SELECT id, severity FROM decisions WHERE source = 'api' AND ticket_id = 'Q-1' AND ticket_version = '1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((id, severity.as_str()), (d.decision_id, "urgent"));
    pool.close().await;

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        (status, err)
    })
    .await
    .unwrap();
    assert!(status.0.success(), "exit {:?}\n{}", status.0, status.1);
    assert!(
        status.1.contains("offline (no ANTHROPIC_API_KEY set)"),
        "{}",
        status.1
    );
    assert!(
        status.1.contains("backend=\"sqlite\"") || status.1.contains("backend=sqlite"),
        "{}",
        status.1
    );
    assert!(status.1.contains("SIGTERM received"), "{}", status.1);
    assert!(status.1.contains("escalator stopped"), "{}", status.1);
}

/// `escalator healthcheck` (the container image's `HEALTHCHECK`) against a real `serve`: 0 for
/// `/healthz` and `/readyz` on the address `ESCALATOR_HTTP_ADDR` names, 1 naming the URL when
/// nothing answers.
#[tokio::test]
async fn healthcheck_asks_the_servers_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, http) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_escalator"))
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("DATABASE_URL")
        .env_remove("ESCALATOR_CONFIG")
        .env("ESCALATOR_GRPC_ADDR", format!("127.0.0.1:{grpc}"))
        .env("ESCALATOR_HTTP_ADDR", format!("127.0.0.1:{http}"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let check = |args: &[&str], addr: String| {
        Command::new(env!("CARGO_BIN_EXE_escalator"))
            .arg("healthcheck")
            .args(args)
            .current_dir(dir.path())
            .env_remove("ESCALATOR_CONFIG")
            .env_remove("DATABASE_URL")
            .env("ESCALATOR_HTTP_ADDR", addr)
            .output()
            .unwrap()
    };
    let start = Instant::now();
    while !check(&[], format!("127.0.0.1:{http}")).status.success() {
        assert!(start.elapsed() < Duration::from_secs(30), "never healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = check(&["--path", "/readyz"], format!("127.0.0.1:{http}"));
    assert!(ready.status.success(), "{}", text(&ready.stderr));

    let closed = free_port();
    let out = check(&[], format!("127.0.0.1:{closed}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("http://127.0.0.1:{closed}/healthz")),
        "{}",
        text(&out.stderr)
    );
    let out = check(&["--path", "/nope"], format!("127.0.0.1:{http}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("404"), "{}", text(&out.stderr));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
