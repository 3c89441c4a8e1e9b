//! Webhook signatures: the HMAC-SHA256 check in constant time, the current and previous secret
//! of a rotation, and [`Webhook`], the refuse-verify-parse steps Plain and Pylon share.

use hmac::{Hmac, Mac as _};
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;

use super::port::WebhookError;
use crate::domain::Source;

/// Checks a hex HMAC-SHA256 of `body` under `secret`, in constant time. Upper- or lower-case hex
/// is accepted; anything that is not hex of the right length fails.
pub fn signature_matches(secret: &SecretString, body: &[u8], signature_hex: &str) -> bool {
    let Ok(given) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// Checks the signature header against the current secret and, during a rotation, the
/// previous one (`*_WEBHOOK_SECRET_PREVIOUS`); the error names a missing header.
///
/// Both secrets are always tried (no early exit), so the time taken does not say which one
/// matched. A delivery verified only by the previous secret is counted in
/// `escalator_webhook_previous_secret_total{source}`: once that stops growing, the rotation is
/// over and the previous secret can be dropped.
pub(crate) fn verify_signature(
    source: Source,
    headers: &HeaderMap,
    header: &'static str,
    current: &SecretString,
    previous: Option<&SecretString>,
    body: &[u8],
) -> Result<(), WebhookError> {
    let sig = headers
        .get(header)
        .and_then(|v| v.to_str().ok())
        .ok_or(WebhookError::MissingSignature(header))?;
    let by_current = signature_matches(current, body, sig);
    let by_previous = previous.is_some_and(|p| signature_matches(p, body, sig));
    if by_current {
        Ok(())
    } else if by_previous {
        tracing::info!(
            source = source.as_str(),
            "webhook verified with the previous secret (rotation in progress)"
        );
        crate::telemetry::metrics::metrics()
            .webhook_previous_secret
            .with_label_values(&[source.as_str()])
            .inc();
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// How a tool signs its webhooks. Plain and Pylon refuse, verify and parse a delivery the same
/// way, so both adapters go through [`Webhook::secret`] and [`Webhook::verified_json`] instead
/// of each repeating the steps: the refusal names the same variable, the rotation is handled
/// alike and the signature is always compared in constant time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Webhook {
    /// Which tool.
    source: Source,
    /// The signature header.
    header: &'static str,
    /// The environment variable holding the current secret.
    secret_var: &'static str,
}

impl Webhook {
    /// The webhook of `source`, signed in `header` with the secret in `secret_var`.
    pub(crate) const fn new(
        source: Source,
        header: &'static str,
        secret_var: &'static str,
    ) -> Self {
        Self {
            source,
            header,
            secret_var,
        }
    }

    /// The route refused as not configured: `missing` is unset.
    pub(crate) fn not_configured(&self, missing: &'static str) -> WebhookError {
        WebhookError::NotConfigured {
            tool: self.source,
            missing,
        }
    }

    /// The current secret; without one every delivery is refused rather than accepted unsigned.
    ///
    /// # Errors
    /// [`WebhookError::NotConfigured`] naming [`Webhook::secret_var`].
    pub(crate) fn secret<'a>(
        &self,
        current: Option<&'a SecretString>,
    ) -> Result<&'a SecretString, WebhookError> {
        current.ok_or_else(|| self.not_configured(self.secret_var))
    }

    /// The body as JSON once its signature matched the `current` or `previous` secret
    /// ([`verify_signature`]).
    ///
    /// # Errors
    /// What [`verify_signature`] returns, or [`WebhookError::Malformed`].
    pub(crate) fn verified_json(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        current: &SecretString,
        previous: Option<&SecretString>,
    ) -> Result<serde_json::Value, WebhookError> {
        verify_signature(self.source, headers, self.header, current, previous, body)?;
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))
    }
}
