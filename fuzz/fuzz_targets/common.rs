//! Shared by the webhook targets: sign the body with the test secret, so every input reaches
//! the parser, and check what it answers.

use std::{collections::BTreeMap, sync::OnceLock};

use chrono::{DateTime, Utc};
use escalator::{
    config::Settings,
    domain::MAX_ID_BYTES,
    text,
    ticketing::{Accepted, WebhookError},
};
use hmac::{Hmac, Mac as _};
use http::{HeaderMap, HeaderValue};
use sha2::Sha256;

pub const SECRET: &str = "whsec-fuzz";

pub fn settings() -> &'static Settings {
    static S: OnceLock<Settings> = OnceLock::new();
    S.get_or_init(|| {
        Settings::load(&BTreeMap::from([
            ("PLAIN_WEBHOOK_SECRET", SECRET),
            ("PYLON_WEBHOOK_SECRET", SECRET),
            ("PYLON_API_TOKEN", "pylon-token"),
        ]))
        .expect("fuzz settings")
    })
}

pub fn signed(header: &'static str, body: &[u8]) -> HeaderMap {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("hmac key");
    mac.update(body);
    let mut h = HeaderMap::new();
    h.insert(
        header,
        HeaderValue::from_str(&hex::encode(mac.finalize().into_bytes())).expect("hex header"),
    );
    h
}

/// The delivery's own timestamp as the clock, so a mutated body is not merely stale.
pub fn clock_of(body: &[u8]) -> DateTime<Utc> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/webhookMetadata/webhookDeliveryAttemptTimestamp")
                .and_then(|t| t.as_str())
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        })
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc))
}

/// A stored delivery has a key the log can hold; an error names what is wrong.
pub fn check(result: Result<Accepted, WebhookError>) {
    match result {
        Ok(Accepted::Ticket(d)) => {
            for part in [&d.key.ticket_id, &d.key.version, &d.event_type] {
                assert!(!part.is_empty() && part.len() <= MAX_ID_BYTES);
                assert!(!text::has_control(part));
            }
        }
        Ok(Accepted::Ignored { .. } | Accepted::Override(_)) => {}
        Err(WebhookError::MissingField(f)) => assert!(!f.is_empty()),
        Err(WebhookError::Invalid(e)) => assert!(e.to_string().starts_with("invalid ")),
        Err(WebhookError::Malformed(_) | WebhookError::Stale(_)) => {}
        Err(other) => panic!("a signed delivery was refused with {other}"),
    }
}
