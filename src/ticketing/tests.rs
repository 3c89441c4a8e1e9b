//! Tests of the ticketing ports: planning per tool, typed rows, signatures, retryable errors.
//!
//! Over 450 lines: it is a test file, one test per planning rule, row shape and signature case of
//! both tools.
use std::{collections::BTreeMap, io::Write as _, time::Duration};

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;

use hmac::{Hmac, Mac as _};
use secrecy::SecretString;
use sha2::Sha256;

use super::{
    port::{ToolAction, from_delivery, from_row},
    *,
};
use crate::{
    config::Settings,
    domain::{
        RawTicket, Route, Severity, Tier, Usage,
        work::{Action, PendingDelivery},
    },
};

fn settings(toml: &str, env: &[(&str, &str)]) -> TicketingSettings {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(toml.as_bytes()).unwrap();
    let path = f.path().to_str().unwrap().to_owned();
    let mut map = BTreeMap::from([("ESCALATOR_CONFIG", path.as_str())]);
    map.extend(env.iter().copied());
    Settings::load(&map).unwrap().ticketing
}

fn ticket(source: Source, customer: &str) -> Ticket {
    Ticket::parse(
        source,
        RawTicket {
            id: "th_1".into(),
            body: "Production is down".into(),
            customer_id: customer.into(),
            ..RawTicket::default()
        },
        "",
    )
    .unwrap()
}

fn decision(source: Source, fallback: bool) -> Decision {
    Decision {
        id: "dec-1".into(),
        source,
        ticket_id: "th_1".into(),
        ticket_version: "1".into(),
        severity: Severity::OnFire,
        route: Route::Engineering,
        confidence: 0.9,
        reasoning: "Production <down> & losing data.".into(),
        prompt_version: "p@1".into(),
        model: "offline".into(),
        fallback,
        fallback_reason: fallback.then(|| "timeout".to_owned()),
        notes: None,
        tier: Tier::Free,
        usage: Usage::default(),
        trace_id: None,
        observation_id: None,
        created_at: Utc::now(),
        model_severity: Severity::OnFire,
        weighting_rule: None,
        arr_usd: None,
        tier_source: None,
        enrichment_failed: false,
        topic: Some("billing".into()),
        sentiment: Some(crate::domain::Sentiment::Negative),
        shadow: std::collections::BTreeMap::new(),
        caller: None,
        supersedes: None,
    }
}

const ROUTES: &str = "[routes.engineering.plain]\nlabel_type_ids = [\"lt_eng\"]\nassignee_user_id = \"u_1\"\n[routes.engineering.pylon]\ntags = [\"on-fire\"]\n";
const KEYS: &[(&str, &str)] = &[("PLAIN_API_KEY", "k"), ("PYLON_API_TOKEN", "t")];

fn kinds(actions: &[NewAction]) -> Vec<&str> {
    actions.iter().map(|a| a.kind.as_str()).collect()
}

#[test]
fn a_plain_decision_plans_label_priority_assignment_and_note() {
    let p = RoutingPlanner::new(&settings(ROUTES, KEYS));
    let d = decision(Source::Plain, false);
    let a = p.plan(&ticket(Source::Plain, "c_1"), &d);
    assert_eq!(
        kinds(&a),
        [
            "plain.label",
            "plain.priority",
            "plain.assign",
            "plain.note"
        ]
    );
    assert_eq!(
        a[0].payload,
        serde_json::json!({"thread_id": "th_1", "label_type_ids": ["lt_eng"]})
    );
    assert_eq!(
        a[1].payload,
        serde_json::json!({"thread_id": "th_1", "priority": 0})
    );
    assert_eq!(a[3].payload["customer_id"], "c_1");
    assert_eq!(
        a[3].payload["text"],
        "escalator: on_fire -> engineering (confidence 0.90). Production <down> & losing data. Topic: billing · sentiment: negative.\nescalator decision dec-1"
    );
    assert_eq!(
        a[3].payload["markdown"],
        "**escalator**: `on_fire` → `engineering` (confidence 0.90)\n\nProduction <down> & losing data.\n\nTopic: billing · sentiment: negative\n\nescalator decision dec-1"
    );
    // Without a customer there is no note (createNote needs one).
    let a = p.plan(&ticket(Source::Plain, ""), &d);
    assert_eq!(kinds(&a), ["plain.label", "plain.priority", "plain.assign"]);
}

#[test]
fn a_pylon_decision_plans_update_and_an_escaped_note() {
    let p = RoutingPlanner::new(&settings(ROUTES, KEYS));
    let d = decision(Source::Pylon, true);
    let a = p.plan(&ticket(Source::Pylon, ""), &d);
    assert_eq!(kinds(&a), ["pylon.update", "pylon.note"]);
    assert_eq!(
        a[0].payload,
        serde_json::json!({"issue_id": "th_1", "tags": ["on-fire"], "team_id": null, "assignee_id": null})
    );
    let html = a[1].payload["body_html"].as_str().unwrap();
    assert!(
        html.contains("Production &lt;down&gt; &amp; losing data."),
        "{html}"
    );
    assert!(html.contains("fallback"), "{html}");
    assert!(
        html.contains("<p>Topic: billing · sentiment: negative</p><p><i>fallback"),
        "the labels are in the note: {html}"
    );
    // A decision logged before labels existed has no labels line.
    let old = crate::domain::Decision {
        topic: None,
        sentiment: None,
        ..d
    };
    assert!(!super::pylon::note_html(&old).contains("Topic"));
    assert!(!super::plain::note_text(&old).contains("Topic"));
}

#[test]
fn nothing_is_planned_without_credentials_or_for_api_by_default() {
    let p = RoutingPlanner::new(&settings(ROUTES, &[]));
    assert!(
        p.plan(
            &ticket(Source::Plain, "c_1"),
            &decision(Source::Plain, false)
        )
        .is_empty()
    );
    assert!(
        p.plan(&ticket(Source::Pylon, ""), &decision(Source::Pylon, false))
            .is_empty()
    );
    let p = RoutingPlanner::new(&settings(ROUTES, KEYS));
    assert!(
        p.plan(&ticket(Source::Api, "c_1"), &decision(Source::Api, false))
            .is_empty()
    );
    let with_api = format!("[actions]\napi_tool = \"plain\"\n{ROUTES}");
    let p = RoutingPlanner::new(&settings(&with_api, KEYS));
    assert_eq!(
        kinds(&p.plan(&ticket(Source::Api, "c_1"), &decision(Source::Api, false))),
        [
            "plain.label",
            "plain.priority",
            "plain.assign",
            "plain.note"
        ]
    );
}

#[test]
fn signatures_are_checked_in_hex_of_either_case() {
    let secret = SecretString::from("secret");
    let sig = "1bff4699de4fb5202a4b1e6cefd7b5fdfb02d19a67a1eb371dd417a45b0a47df";
    assert!(signature_matches(&secret, b"hello-world", sig));
    assert!(signature_matches(
        &secret,
        b"hello-world",
        &sig.to_uppercase()
    ));
    assert!(!signature_matches(&secret, b"hello-world!", sig));
    assert!(!signature_matches(&secret, b"hello-world", &sig[..62]));
    assert!(!signature_matches(&secret, b"hello-world", "zz"));
    assert!(!signature_matches(
        &SecretString::from("other"),
        b"hello-world",
        sig
    ));
}

#[test]
fn retryable_errors_are_the_transient_ones() {
    assert!(
        TicketingError::Upstream {
            status: 500,
            message: String::new()
        }
        .is_retryable()
    );
    assert!(
        TicketingError::RateLimited {
            retry_after: Duration::from_secs(1)
        }
        .is_retryable()
    );
    assert!(
        !TicketingError::Rejected {
            status: 400,
            message: String::new()
        }
        .is_retryable()
    );
    assert!(!TicketingError::NotFound("x".into()).is_retryable());
}

fn row(kind: &str, payload: serde_json::Value, attempts: u32) -> Action {
    Action {
        id: 1,
        decision_id: "dec-1".into(),
        source: Source::Plain,
        ticket_id: "th_1".into(),
        kind: ActionKind::parse("kind", kind).unwrap(),
        payload,
        status: crate::domain::work::ActionStatus::Pending,
        attempts,
        last_error: None,
        internal_errors: 0,
    }
}

/// An old row of `kind` decodes as `T` and is stored again exactly as it was.
fn round_trips<T: serde::de::DeserializeOwned + ToolAction>(
    kind: &str,
    payload: serde_json::Value,
) {
    let a: T = from_row(&row(kind, payload.clone(), 1)).unwrap();
    let expected = NewAction {
        kind: ActionKind::parse("kind", kind).unwrap(),
        payload,
    };
    assert_eq!(to_row(&a), expected, "{kind}");
}

/// Rows written before the actions were typed (kind strings, JSON payloads) decode into
/// the enums, and a planned action is stored in exactly that shape.
#[test]
fn rows_stored_before_the_typed_actions_still_decode() {
    let old = row(
        "plain.note",
        serde_json::json!({"thread_id": "th_1", "customer_id": "c_1", "decision_id": "dec-1",
            "text": "t", "markdown": "m"}),
        1,
    );
    let note = PlainAction::Note {
        thread_id: "th_1".into(),
        customer_id: "c_1".into(),
        decision_id: "dec-1".into(),
        text: "t".into(),
        markdown: "m".into(),
    };
    assert_eq!(from_row::<PlainAction>(&old).unwrap(), note);
    assert_eq!(
        to_row(&note),
        NewAction {
            kind: old.kind,
            payload: old.payload.clone()
        }
    );
    for (kind, payload) in [
        (
            "plain.label",
            serde_json::json!({"thread_id": "th_1", "label_type_ids": ["lt_1"]}),
        ),
        (
            "plain.priority",
            serde_json::json!({"thread_id": "th_1", "priority": 0}),
        ),
        (
            "plain.assign",
            serde_json::json!({"thread_id": "th_1", "user_id": "u_1"}),
        ),
    ] {
        round_trips::<PlainAction>(kind, payload);
    }
    for (kind, payload) in [
        (
            "pylon.update",
            serde_json::json!({"issue_id": "i_1", "tags": ["on-fire"],
            "team_id": null, "assignee_id": "u_2"}),
        ),
        (
            "pylon.note",
            serde_json::json!({"issue_id": "i_1", "decision_id": "dec-1",
            "body_html": "<p>x</p>"}),
        ),
    ] {
        round_trips::<PylonAction>(kind, payload);
    }
    // A kind of the other tool (an unknown kind never gets this far: the store gives it up).
    let e = from_row::<PlainAction>(&row("pylon.note", serde_json::json!({}), 1)).unwrap_err();
    assert!(matches!(e, TicketingError::InvalidPayload(_)), "{e:?}");
    assert!(!e.is_retryable());
    let e = from_row::<PylonAction>(&row("pylon.note", serde_json::json!({"issue_id": 1}), 1))
        .unwrap_err();
    assert!(
        e.to_string().starts_with("invalid payload: pylon.note: "),
        "{e}"
    );
}

/// A stored delivery's payload (with a key it does not know) reads back typed.
#[test]
fn stored_deliveries_read_back_typed() {
    let d = PendingDelivery {
        key: crate::domain::IdempotencyKey::new(Source::Plain, "th_1", "v1"),
        event_type: "thread.thread_created".into(),
        payload: serde_json::json!({"event_id": "e_1", "thread_id": "th_1", "title": "T",
            "text": "B", "customer_id": "c_1", "_traceparent": "00-abc-def-01"}),
        attempts: 1,
        internal_errors: 0,
        trace_context: None,
    };
    let p: PlainDelivery = from_delivery(&d).unwrap();
    assert_eq!(
        (p.thread_id.as_str(), p.title.as_str(), p.text.as_str()),
        ("th_1", "T", "B")
    );
    assert!(from_delivery::<PylonDelivery>(&d).is_err());
}

#[test]
fn actions_run_on_the_tool_their_kind_names() {
    let adapters = Adapters::new(&settings("", &[])).unwrap();
    for kind in ActionKind::ALL {
        assert_eq!(adapters.for_kind(*kind).source(), kind.tool(), "{kind}");
    }
}

/// Each typed action is stored under the kind its serde tag names.
#[test]
fn every_action_is_tagged_with_its_kind() {
    fn tag<T: ToolAction>(a: &T) -> (String, ActionKind) {
        let v = serde_json::to_value(a).unwrap();
        (v["kind"].as_str().unwrap().to_owned(), a.kind())
    }
    let s = String::new;
    for (tag, kind) in [
        tag(&PlainAction::Label {
            thread_id: s(),
            label_type_ids: vec![],
        }),
        tag(&PlainAction::Priority {
            thread_id: s(),
            priority: 0,
        }),
        tag(&PlainAction::Assign {
            thread_id: s(),
            user_id: s(),
        }),
        tag(&PlainAction::Note {
            thread_id: s(),
            customer_id: s(),
            decision_id: s(),
            text: s(),
            markdown: s(),
        }),
        tag(&PylonAction::Update {
            issue_id: s(),
            tags: vec![],
            team_id: None,
            assignee_id: None,
        }),
        tag(&PylonAction::Note {
            issue_id: s(),
            decision_id: s(),
            body_html: s(),
        }),
    ] {
        assert_eq!(tag, kind.as_str());
    }
}

/// During a rotation both webhook secrets verify; a wrong one still fails; and with no
/// previous secret set, only the current one verifies (the old behaviour, unchanged).
#[test]
fn two_webhook_secrets_verify_during_a_rotation() {
    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }
    fn headers(name: &'static str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, sig.parse().unwrap());
        h
    }
    let plain_body = include_bytes!("testdata/plain-thread-created.json");
    let plain_now: DateTime<Utc> = "2023-10-19T14:17:26.000Z".parse().unwrap();
    let pylon_body = br#"{"issue_id":"iss_1","event":"issue.created"}"#;
    let rotating = settings(
        "",
        &[
            ("PLAIN_WEBHOOK_SECRET", "plain-new"),
            ("PLAIN_WEBHOOK_SECRET_PREVIOUS", "plain-old"),
            ("PYLON_WEBHOOK_SECRET", "pylon-new"),
            ("PYLON_WEBHOOK_SECRET_PREVIOUS", "pylon-old"),
            ("PYLON_API_TOKEN", "tok"),
        ],
    );
    let single = settings(
        "",
        &[
            ("PLAIN_WEBHOOK_SECRET", "plain-new"),
            ("PYLON_WEBHOOK_SECRET", "pylon-new"),
            ("PYLON_API_TOKEN", "tok"),
        ],
    );
    let plain_header = plain::SIGNATURE_HEADER;
    let pylon_header = pylon::SIGNATURE_HEADER;
    let counted = || {
        let m = crate::telemetry::metrics::metrics();
        (
            m.webhook_previous_secret
                .with_label_values(&["plain"])
                .get(),
            m.webhook_previous_secret
                .with_label_values(&["pylon"])
                .get(),
        )
    };

    let p = Plain::new(rotating.plain).unwrap();
    let y = Pylon::new(rotating.pylon).unwrap();
    let before = counted();
    for secret in ["plain-new", "plain-old"] {
        let h = headers(plain_header, &sign(secret, plain_body));
        assert!(p.accept(&h, plain_body, plain_now).is_ok(), "{secret}");
    }
    for secret in ["pylon-new", "pylon-old"] {
        let h = headers(pylon_header, &sign(secret, pylon_body));
        assert!(y.accept(&h, pylon_body, plain_now).is_ok(), "{secret}");
    }
    // Only the deliveries signed with the old secrets were counted (other tests may count
    // too, in parallel, so at least).
    let after = counted();
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "{before:?} {after:?}"
    );
    let h = headers(plain_header, &sign("plain-other", plain_body));
    assert!(matches!(
        p.accept(&h, plain_body, plain_now),
        Err(WebhookError::BadSignature)
    ));
    let h = headers(pylon_header, &sign("pylon-other", pylon_body));
    assert!(matches!(
        y.accept(&h, pylon_body, plain_now),
        Err(WebhookError::BadSignature)
    ));

    // No previous secret: the current one verifies, the old one is refused.
    assert!(single.plain.webhook_secret_previous.is_none());
    let p = Plain::new(single.plain).unwrap();
    let y = Pylon::new(single.pylon).unwrap();
    let tools: [(&dyn Ticketing, &'static str, &[u8]); 2] = [
        (&p, plain_header, plain_body),
        (&y, pylon_header, pylon_body),
    ];
    for (tool, header, body) in tools {
        let name = tool.source().as_str();
        let h = headers(header, &sign(&format!("{name}-new"), body));
        assert!(tool.accept(&h, body, plain_now).is_ok(), "{name}");
        let h = headers(header, &sign(&format!("{name}-old"), body));
        let refused = tool.accept(&h, body, plain_now);
        assert!(matches!(refused, Err(WebhookError::BadSignature)), "{name}");
    }
}

/// A previous secret without a current one is a configuration error naming it, not a route
/// that silently refuses everything.
#[test]
fn a_previous_secret_alone_is_refused() {
    for (key, current) in [
        ("PLAIN_WEBHOOK_SECRET_PREVIOUS", "PLAIN_WEBHOOK_SECRET"),
        ("PYLON_WEBHOOK_SECRET_PREVIOUS", "PYLON_WEBHOOK_SECRET"),
    ] {
        let e = Settings::load(&BTreeMap::from([(key, "old")]))
            .unwrap_err()
            .to_string();
        assert_eq!(e, format!("{key}: is set but {current} is not"));
    }
}

/// `rows` as the thread's executed actions (`status`), in order, notes left out as the store
/// leaves them out.
fn acted(rows: &[NewAction], status: crate::domain::work::ActionStatus) -> Vec<Action> {
    rows.iter()
        .filter(|r| !r.kind.as_str().ends_with(".note"))
        .enumerate()
        .map(|(i, r)| Action {
            id: i64::try_from(i).unwrap(),
            decision_id: "dec-1".into(),
            source: r.kind.tool(),
            ticket_id: "th_1".into(),
            kind: r.kind,
            payload: r.payload.clone(),
            status,
            attempts: 1,
            last_error: None,
            internal_errors: 0,
        })
        .collect()
}

#[test]
fn plain_routing_moved_compares_what_escalator_set_with_the_thread() {
    use crate::domain::{ToolRouting, work::ActionStatus};
    let p = RoutingPlanner::new(&settings(ROUTES, KEYS));
    let t = ticket(Source::Plain, "c_1");
    let rows = p.plan(&t, &decision(Source::Plain, false));
    let done = acted(&rows, ActionStatus::Done);
    let now = |priority: u8, labels: &[&str], assignee: Option<&str>| ToolRouting {
        labels: labels.iter().map(|l| (*l).to_owned()).collect(),
        priority: Some(priority),
        assignee: assignee.map(str::to_owned),
        team: None,
    };
    // As escalator left it, with a label type no route uses: not moved.
    assert_eq!(
        p.routing_moved(&t, &now(0, &["lt_eng", "lt_vip"], Some("u_1")), &done),
        None
    );
    assert_eq!(
        p.routing_moved(&t, &now(2, &["lt_eng"], Some("u_1")), &done)
            .as_deref(),
        Some("priority is 2, escalator set 0")
    );
    assert_eq!(
        p.routing_moved(&t, &now(0, &["lt_eng"], None), &done)
            .as_deref(),
        Some("assignee is nobody, escalator assigned u_1")
    );
    assert_eq!(
        p.routing_moved(&t, &now(0, &[], Some("u_1")), &done)
            .as_deref(),
        Some("label type lt_eng escalator added is gone")
    );
    // A pending (or failed) action set nothing: nothing to compare.
    let pending = acted(&rows, ActionStatus::Pending);
    assert_eq!(p.routing_moved(&t, &now(3, &[], None), &pending), None);
}

#[test]
fn pylon_routing_moved_compares_tags_team_and_assignee() {
    use crate::domain::{ToolRouting, work::ActionStatus};
    let routes = "[routes.engineering.pylon]\ntags = [\"on-fire\"]\nteam_id = \"team_eng\"\n\
                  [routes.human.pylon]\ntags = [\"urgent\"]\n";
    let p = RoutingPlanner::new(&settings(routes, KEYS));
    let t = ticket(Source::Pylon, "");
    let done = acted(
        &p.plan(&t, &decision(Source::Pylon, false)),
        ActionStatus::Done,
    );
    let now = |tags: &[&str], team: Option<&str>| ToolRouting {
        labels: tags.iter().map(|l| (*l).to_owned()).collect(),
        priority: None,
        assignee: None,
        team: team.map(str::to_owned),
    };
    assert_eq!(
        p.routing_moved(&t, &now(&["on-fire", "vip"], Some("team_eng")), &done),
        None
    );
    assert_eq!(
        p.routing_moved(&t, &now(&["on-fire"], Some("team_x")), &done)
            .as_deref(),
        Some("team is team_x, escalator set team_eng")
    );
    assert_eq!(
        p.routing_moved(&t, &now(&["on-fire", "urgent"], Some("team_eng")), &done)
            .as_deref(),
        Some("tag urgent is on the issue, escalator did not set it")
    );
}
