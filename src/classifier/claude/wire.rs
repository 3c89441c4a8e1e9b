//! The Messages API on the wire: request bodies serialised from structs (fixed key order, so
//! the cached prefix is byte-identical on every call) and lenient response types (unknown fields
//! ignored, open enums kept as strings).
//!
//! Over 450 lines with its tests: the request and response types of one API, kept together so the
//! cached prefix's byte order is visible in one place.

use reqwest::{
    StatusCode,
    header::{self, HeaderMap, HeaderName, HeaderValue},
};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use super::{
    price::CacheTtl,
    settings::{ApiVersion, Effort},
};
use crate::{
    classifier::ClassifierError,
    domain::{Confidence, Labels, Route, Sentiment, Severity, Verdict},
    prompt::AnswerSchema,
    taxonomy::{OTHER_TOPIC, Taxonomy},
};

/// `POST /v1/messages` and (without `max_tokens`) `POST /v1/messages/count_tokens`.
#[derive(Debug, Serialize)]
pub(super) struct MessagesRequest<'a> {
    pub(super) model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) max_tokens: Option<u32>,
    pub(super) system: [SystemBlock<'a>; 1],
    pub(super) messages: [UserMessage<'a>; 1],
    pub(super) output_config: OutputConfig<'a>,
}

#[derive(Debug, Serialize)]
pub(super) struct SystemBlock<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) text: &'a str,
    pub(super) cache_control: CacheControl,
}

#[derive(Debug, Serialize)]
pub(super) struct CacheControl {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) ttl: CacheTtl,
}

#[derive(Debug, Serialize)]
pub(super) struct UserMessage<'a> {
    pub(super) role: &'static str,
    pub(super) content: &'a str,
}

#[derive(Debug, Serialize)]
pub(super) struct OutputConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) effort: Option<Effort>,
    pub(super) format: OutputFormat<'a>,
}

#[derive(Debug, Serialize)]
pub(super) struct OutputFormat<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) schema: &'a AnswerSchema,
}

impl<'a> MessagesRequest<'a> {
    /// The request for one user turn; everything but `user` and `max_tokens` is the same on
    /// every call.
    pub(super) fn new(
        model: &'a str,
        max_tokens: Option<u32>,
        system: &'a str,
        ttl: CacheTtl,
        effort: Option<Effort>,
        user: &'a str,
        schema: &'a AnswerSchema,
    ) -> Self {
        Self {
            model,
            max_tokens,
            system: [SystemBlock {
                kind: "text",
                text: system,
                cache_control: CacheControl {
                    kind: "ephemeral",
                    ttl,
                },
            }],
            messages: [UserMessage {
                role: "user",
                content: user,
            }],
            output_config: OutputConfig {
                effort,
                format: OutputFormat {
                    kind: "json_schema",
                    schema,
                },
            },
        }
    }
}

/// The fields of [`MessagesRequest`] before `messages`: the same on every call of one client
/// with one `max_tokens`.
#[derive(Serialize)]
struct Head<'r, 'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    system: &'r [SystemBlock<'a>; 1],
}

/// The fields of [`MessagesRequest`] from `messages` on: the call's own.
#[derive(Serialize)]
struct Tail<'r, 'a> {
    messages: &'r [UserMessage<'a>; 1],
    output_config: &'r OutputConfig<'a>,
}

impl MessagesRequest<'_> {
    /// The serialised request in two parts whose concatenation is, byte for byte,
    /// `serde_json::to_vec(self)`: `{"model":…,"system":[…],` and `"messages":[…],…}`. The head
    /// carries the system prompt (about 55 KB), so a client serialises it once and every call
    /// sends the same buffer (`ClaudeClassifier::body`).
    pub(super) fn split(&self) -> (Vec<u8>, Vec<u8>) {
        let head = Head {
            model: self.model,
            max_tokens: self.max_tokens,
            system: &self.system,
        };
        let tail = Tail {
            messages: &self.messages,
            output_config: &self.output_config,
        };
        // Serialising structs of strings and numbers cannot fail; each is one JSON object,
        // `{…}`: the head's closing brace becomes the comma before the tail's first field.
        let mut head = serde_json::to_vec(&head).unwrap_or_default();
        head.pop();
        head.push(b',');
        let mut tail = serde_json::to_vec(&tail).unwrap_or_default();
        tail.remove(0);
        (head, tail)
    }
}

/// A `Message` response, read leniently.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct MessagesResponse {
    pub(super) id: Option<String>,
    pub(super) model: Option<String>,
    pub(super) content: Vec<ContentBlock>,
    pub(super) stop_reason: Option<String>,
    pub(super) stop_details: Option<StopDetails>,
    pub(super) usage: Option<WireUsage>,
}

/// One content block; `type` is an open set (`thinking`, `redacted_thinking`, …).
#[derive(Debug, Deserialize)]
pub(super) struct ContentBlock {
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) text: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct StopDetails {
    #[serde(default)]
    pub(super) category: Option<String>,
}

/// `usage`: only the two totals are always present.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct WireUsage {
    pub(super) input_tokens: u64,
    pub(super) output_tokens: u64,
    pub(super) cache_creation_input_tokens: Option<u64>,
    pub(super) cache_read_input_tokens: Option<u64>,
    pub(super) cache_creation: Option<CacheCreation>,
    pub(super) service_tier: Option<String>,
    pub(super) speed: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct CacheCreation {
    pub(super) ephemeral_5m_input_tokens: Option<u64>,
    pub(super) ephemeral_1h_input_tokens: Option<u64>,
}

/// `{"input_tokens": N}` from `count_tokens`.
#[derive(Debug, Deserialize)]
pub(super) struct CountTokensResponse {
    pub(super) input_tokens: u64,
}

/// `{"type":"error","error":{"type":…,"message":…,"details":{"error_code":…}},"request_id":…}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ErrorEnvelope {
    pub(super) error: Option<ErrorBody>,
    pub(super) request_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ErrorBody {
    #[serde(rename = "type", default)]
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) message: Option<String>,
    #[serde(default)]
    pub(super) details: Option<ErrorDetails>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ErrorDetails {
    #[serde(default)]
    pub(super) error_code: Option<String>,
}

impl ErrorEnvelope {
    /// The most specific name of the error: `details.error_code`, else `error.type`.
    pub(super) fn kind(&self) -> Option<&str> {
        let e = self.error.as_ref()?;
        e.details
            .as_ref()
            .and_then(|d| d.error_code.as_deref())
            .or(e.kind.as_deref())
    }
}

/// The model's answer as sent; every field is checked in [`parse_answer`]. The labels are kept
/// as raw JSON: a bad label is a note on a valid decision, never a fallback.
#[derive(Debug, Deserialize)]
struct Answer {
    severity: String,
    route: String,
    confidence: f64,
    reasoning: String,
    #[serde(default)]
    topic: Option<serde_json::Value>,
    #[serde(default)]
    sentiment: Option<serde_json::Value>,
    #[serde(default)]
    shadow: Option<serde_json::Value>,
}

/// A label value quoted in a note: its JSON, cut short (model output is unbounded).
fn quoted(v: &serde_json::Value) -> String {
    crate::text::excerpt(&v.to_string(), 60)
}

/// The labels of an answer against `taxonomy`. An unknown or missing topic is `other`, an
/// unknown or missing sentiment `neutral`, an unknown shadow name is dropped; each is noted.
fn labels(a: &Answer, taxonomy: &Taxonomy, notes: &mut Vec<String>) -> Labels {
    let mut out = Labels::default();
    match &a.topic {
        Some(serde_json::Value::String(t)) => match taxonomy.topic(t) {
            Some(topic) => topic.clone_into(&mut out.topic),
            None => notes.push(format!(
                "topic_unknown: model said {}, recorded as {OTHER_TOPIC}",
                quoted(&serde_json::Value::String(t.clone()))
            )),
        },
        Some(other) => notes.push(format!(
            "topic_invalid: model said {}, recorded as {OTHER_TOPIC}",
            quoted(other)
        )),
        None => notes.push(format!("topic_missing: recorded as {OTHER_TOPIC}")),
    }
    match &a.sentiment {
        Some(serde_json::Value::String(t)) => match Sentiment::parse("sentiment", t) {
            Ok(s) => out.sentiment = s,
            Err(_) => notes.push(format!(
                "sentiment_unknown: model said {}, recorded as neutral",
                quoted(&serde_json::Value::String(t.clone()))
            )),
        },
        Some(other) => notes.push(format!(
            "sentiment_invalid: model said {}, recorded as neutral",
            quoted(other)
        )),
        None => notes.push("sentiment_missing: recorded as neutral".to_owned()),
    }
    if taxonomy.shadow().next().is_none() {
        return out;
    }
    match &a.shadow {
        Some(serde_json::Value::Array(names)) => {
            let mut asked: std::collections::BTreeMap<String, bool> =
                taxonomy.shadow().map(|c| (c.name.clone(), false)).collect();
            for n in names {
                match n.as_str().and_then(|n| taxonomy.shadow_category(n)) {
                    Some(c) => {
                        asked.insert(c.name.clone(), true);
                    }
                    None => notes.push(format!("shadow_unknown: model said {}", quoted(n))),
                }
            }
            out.shadow = asked;
        }
        // Not judged: nothing stored, so the audit does not count it as "does not apply".
        Some(other) => notes.push(format!("shadow_invalid: model said {}", quoted(other))),
        None => notes.push("shadow_missing".to_owned()),
    }
    out
}

/// Validates the model's JSON text into a [`Verdict`]: enums case-insensitive, confidence within
/// 0..1, reasoning cut to one sentence of at most 20 words (flagged), route derived from the
/// severity (a disagreement, or a route value this build does not know, is recorded).
///
/// # Errors
/// A message for the fallback reason when the text is not JSON, a field is missing or has the
/// wrong type, the severity is not one of ours, the confidence is out of range, or the
/// reasoning is blank. A bad topic, sentiment or shadow list never fails the answer: it is
/// noted and recorded as `other`, `neutral` or not judged. Any text in, no panic
/// (property-tested in `tests/unicode.rs`).
pub fn parse_answer(text: &str, taxonomy: &Taxonomy) -> Result<Verdict, String> {
    let a: Answer = serde_json::from_str(text.trim()).map_err(|e| format!("json: {e}"))?;
    let severity = Severity::parse("severity", &a.severity).map_err(|e| e.to_string())?;
    let confidence = Confidence::parse(a.confidence).map_err(|e| e.to_string())?;
    if a.reasoning.trim().is_empty() {
        return Err("invalid reasoning: must not be empty".to_owned());
    }
    let claimed = Route::parse("route", &a.route).ok();
    let mut verdict = Verdict::new(severity, claimed, confidence, &a.reasoning);
    if claimed.is_none() {
        verdict.notes.push(format!(
            "route_disagreement: model said {:?}, severity {severity} implies {}",
            crate::text::excerpt(a.route.trim(), 60),
            verdict.route
        ));
    }
    verdict.labels = labels(&a, taxonomy, &mut verdict.notes);
    Ok(verdict)
}

/// The headers of every request to the API: version, content type and the auth header that
/// goes with the version. The one place the API key is exposed.
pub(super) fn api_headers(version: ApiVersion, api_key: &SecretString) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        HeaderName::from_static("anthropic-version"),
        HeaderValue::from_static(version.as_str()),
    );
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    let (name, value) = match version {
        ApiVersion::V2026_10_21 => (
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {}", api_key.expose_secret())),
        ),
        ApiVersion::V2023_06_01 => (
            HeaderName::from_static("x-api-key"),
            HeaderValue::from_str(api_key.expose_secret()),
        ),
    };
    // A key with bytes a header cannot hold is sent as nothing; the API answers 401, which
    // is logged as such (the key itself never is).
    if let Ok(mut value) = value {
        value.set_sensitive(true);
        h.insert(name, value);
    }
    h
}

/// A request that got no answer: a timeout, or the connection failing.
pub(super) fn transport_error(e: &reqwest::Error) -> ClassifierError {
    if e.is_timeout() {
        return ClassifierError::Timeout;
    }
    ClassifierError::Transport(crate::causes::chain(e))
}

/// An HTTP status as an error kind (`too_many_requests`), for a reply without a JSON error.
pub(super) fn status_kind(status: StatusCode) -> String {
    status.canonical_reason().map_or_else(
        || "unknown".to_owned(),
        |r| r.to_lowercase().replace(' ', "_"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: &str = r#","topic":"outage","sentiment":"negative""#;

    fn answer(core: &str) -> String {
        format!("{}{L}}}", core.trim_end_matches('}'))
    }

    #[test]
    fn request_serialises_in_a_fixed_order_without_sampling_parameters() {
        let schema = AnswerSchema::new(&Taxonomy::default());
        let r = MessagesRequest::new(
            "claude-sonnet-4-6",
            Some(1024),
            "SYS",
            CacheTtl::OneHour,
            None,
            "USER",
            &schema,
        );
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            format!(
                r#"{{"model":"claude-sonnet-4-6","max_tokens":1024,"system":[{{"type":"text","text":"SYS","cache_control":{{"type":"ephemeral","ttl":"1h"}}}}],"messages":[{{"role":"user","content":"USER"}}],"output_config":{{"format":{{"type":"json_schema","schema":{}}}}}}}"#,
                schema.to_json()
            )
        );
        let counted = MessagesRequest::new(
            "m",
            None,
            "S",
            CacheTtl::FiveMinutes,
            Some(Effort::Low),
            "U",
            &schema,
        );
        let s = serde_json::to_string(&counted).unwrap();
        for req in [&r, &counted] {
            let (head, tail) = req.split();
            assert_eq!(
                [head, tail].concat(),
                serde_json::to_vec(req).unwrap(),
                "the shared head and the call's tail are the whole body, byte for byte"
            );
        }
        let (head, _) = r.split();
        assert!(
            head.ends_with(br#""ttl":"1h"}}],"#),
            "the head ends with the system block"
        );
        assert!(!s.contains("max_tokens"));
        assert!(s.contains(r#""ttl":"5m""#));
        assert!(s.contains(r#""output_config":{"effort":"low","format""#));
    }

    #[test]
    fn answers_are_validated_leniently_but_strictly_enough() {
        let t = Taxonomy::default();
        let v = parse_answer(
            &answer(r#"{"severity":"On_Fire","route":"HUMAN","confidence":0.9,"reasoning":"Outage.","extra":1}"#),
            &t,
        )
        .unwrap();
        assert_eq!(v.severity, Severity::OnFire);
        assert_eq!(v.route, Route::Engineering);
        assert_eq!(v.notes.len(), 1);
        assert_eq!(v.labels.topic, "outage");
        assert_eq!(v.labels.sentiment, Sentiment::Negative);
        let v = parse_answer(
            &answer(
                r#"{"severity":"urgent","route":"sales","confidence":1,"reasoning":"Churn risk."}"#,
            ),
            &t,
        )
        .unwrap();
        assert_eq!(v.route, Route::Human);
        assert!(v.notes[0].contains("\"sales\""));
        for bad in [
            r#"{"severity":"urgent","route":"human","confidence":1.5,"reasoning":"x"}"#,
            r#"{"severity":"critical","route":"human","confidence":0.5,"reasoning":"x"}"#,
            r#"{"severity":"urgent","confidence":0.5,"reasoning":"x"}"#,
            r#"{"severity":"urgent","route":"human","confidence":"high","reasoning":"x"}"#,
            r#"{"severity":"urgent","route":"hu"#,
            r#"{"severity":"urgent","route":"human","confidence":0.5,"reasoning":" \n "}"#,
            "",
        ] {
            assert!(parse_answer(bad, &t).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_labels_are_notes_never_failures() {
        use crate::taxonomy::{Category, Kind, Mode};
        let t = Taxonomy::default();
        let core = r#"{"severity":"routine","route":"bot","confidence":0.8,"reasoning":"How-to."#;
        let v = parse_answer(
            &format!(r#"{core}","topic":"Dashboards","sentiment":"furious"}}"#),
            &t,
        )
        .unwrap();
        assert_eq!(v.labels.topic, "other");
        assert_eq!(v.labels.sentiment, Sentiment::Neutral);
        assert_eq!(
            v.notes,
            [
                "topic_unknown: model said \"Dashboards\", recorded as other",
                "sentiment_unknown: model said \"furious\", recorded as neutral"
            ]
        );
        let v = parse_answer(&format!(r#"{core}","topic":7}}"#), &t).unwrap();
        assert_eq!(
            v.notes,
            [
                "topic_invalid: model said 7, recorded as other",
                "sentiment_missing: recorded as neutral"
            ]
        );
        let v = parse_answer(
            &format!(r#"{core}","topic":"HOW_TO","sentiment":"Positive"}}"#),
            &t,
        )
        .unwrap();
        assert_eq!(
            (v.labels.topic.as_str(), v.labels.sentiment),
            ("how_to", Sentiment::Positive)
        );
        assert!(v.notes.is_empty());
        assert!(v.labels.shadow.is_empty(), "no shadow category asked");
        let shadowed = Taxonomy::new(
            vec!["other".into()],
            vec![
                Category {
                    name: "churn_risk".into(),
                    kind: Kind::Topic,
                    mode: Mode::Shadow,
                    definition: "d".into(),
                },
                Category {
                    name: "vip".into(),
                    kind: Kind::Topic,
                    mode: Mode::Shadow,
                    definition: "d".into(),
                },
            ],
        )
        .unwrap();
        let v = parse_answer(
            &format!(
                r#"{core}","topic":"other","sentiment":"neutral","shadow":["Churn_Risk","nope"]}}"#
            ),
            &shadowed,
        )
        .unwrap();
        assert_eq!(
            v.labels.shadow,
            std::collections::BTreeMap::from([
                ("churn_risk".to_owned(), true),
                ("vip".to_owned(), false)
            ])
        );
        assert_eq!(v.notes, ["shadow_unknown: model said \"nope\""]);
        let v = parse_answer(
            &format!(r#"{core}","topic":"other","sentiment":"neutral"}}"#),
            &shadowed,
        )
        .unwrap();
        assert!(v.labels.shadow.is_empty());
        assert_eq!(v.notes, ["shadow_missing"]);
    }

    #[test]
    fn responses_with_unknown_fields_and_blocks_parse() {
        let r: MessagesResponse = serde_json::from_str(
            r#"{"id":"m","content":[{"type":"thinking","thinking":"","signature":"s"},{"type":"brand_new"},{"type":"text","text":"{}"}],
               "stop_reason":"something_new","usage":{"input_tokens":1,"output_tokens":2,"cache_creation":null,"new":{}},"later":true}"#,
        )
        .unwrap();
        assert_eq!(r.content.len(), 3);
        assert_eq!(r.stop_reason.as_deref(), Some("something_new"));
        let e: ErrorEnvelope = serde_json::from_str(
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"m","details":{"error_code":"enforced_spend_limit_reached"}},"request_id":"req_1"}"#,
        )
        .unwrap();
        assert_eq!(e.kind(), Some("enforced_spend_limit_reached"));
    }
}
