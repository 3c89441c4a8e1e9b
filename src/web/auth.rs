//! The admin login of the web pages: constant-time token check, self-verifying session cookies
//! and CSRF tokens, all HMAC-SHA256 under the admin token (so rotating the token ends every
//! session). Written by hand over `hmac`/`subtle`: the cookie format is four fields, and a
//! session store would be state the service otherwise does not keep.

use axum::http::HeaderMap;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The session cookie (`Path=/`: `/review` and `/dashboard` share the login).
const SESSION: &str = "escalator_review";
/// The login form's nonce cookie (its CSRF token is an HMAC of it).
const LOGIN: &str = "escalator_review_login";
/// How long a session lasts.
const SESSION_SECS: i64 = 12 * 3600;

/// A logged-in reviewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Session {
    /// The raw cookie value (the CSRF token is an HMAC of it).
    value: String,
    /// The name given at login.
    pub(super) reviewer: String,
}

/// Signs and checks tokens with the admin token as the key.
#[derive(Clone)]
pub(super) struct Auth {
    token: SecretString,
    secure: bool,
}

impl Auth {
    pub(super) fn new(token: &SecretString, secure: bool) -> Self {
        Self {
            token: token.clone(),
            secure,
        }
    }

    fn mac(&self, parts: &[&str]) -> String {
        // HMAC takes a key of any length, so this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(self.token.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        for p in parts {
            mac.update(p.as_bytes());
            mac.update(b"\n");
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `given` is the admin token. Both are hashed first, so the comparison is constant
    /// time and does not reveal the token's length.
    pub(super) fn token_ok(&self, given: &str) -> bool {
        let a = Sha256::digest(given.as_bytes());
        let b = Sha256::digest(self.token.expose_secret().as_bytes());
        bool::from(a.ct_eq(&b))
    }

    fn attrs(&self, max_age: i64) -> String {
        format!(
            "Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// A `Set-Cookie` value for a new session of `reviewer`.
    pub(super) fn session_cookie(&self, reviewer: &str) -> String {
        let issued = chrono::Utc::now().timestamp().to_string();
        let name = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(reviewer);
        let mac = self.mac(&["session", &issued, &name]);
        format!(
            "{SESSION}=v1.{issued}.{name}.{mac}; {}",
            self.attrs(SESSION_SECS)
        )
    }

    /// A `Set-Cookie` value that ends the session.
    pub(super) fn clear_cookie(&self) -> String {
        format!("{SESSION}=; {}", self.attrs(0))
    }

    /// The session the request carries, if its cookie is genuine and not expired.
    pub(super) fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let value = cookie(headers, SESSION)?;
        let mut parts = value.split('.');
        let (Some("v1"), Some(issued), Some(name), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let expected = self.mac(&["session", issued, name]);
        if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
            return None;
        }
        let age = chrono::Utc::now().timestamp() - issued.parse::<i64>().ok()?;
        if !(0..SESSION_SECS).contains(&age) {
            return None;
        }
        let reviewer = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(name)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())?;
        Some(Session {
            value: value.to_owned(),
            reviewer,
        })
    }

    /// The CSRF token of the session's forms.
    pub(super) fn csrf(&self, s: &Session) -> String {
        self.mac(&["csrf", &s.value])
    }

    /// Whether a POSTed CSRF token belongs to the session.
    pub(super) fn csrf_ok(&self, s: &Session, given: &str) -> bool {
        bool::from(self.csrf(s).as_bytes().ct_eq(given.as_bytes()))
    }

    /// A fresh login nonce and the `Set-Cookie` value carrying it.
    pub(super) fn login_nonce(&self) -> (String, String) {
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let cookie = format!("{LOGIN}={nonce}; {}", self.attrs(3600));
        (nonce, cookie)
    }

    /// The login form's CSRF token for `nonce`.
    pub(super) fn login_csrf(&self, nonce: &str) -> String {
        self.mac(&["login", nonce])
    }

    /// Whether the login POST carries the nonce cookie its form was made for.
    pub(super) fn login_csrf_ok(&self, headers: &HeaderMap, given: &str) -> bool {
        cookie(headers, LOGIN).is_some_and(|nonce| {
            bool::from(self.login_csrf(nonce).as_bytes().ct_eq(given.as_bytes()))
        })
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::COOKIE, cookie.parse().unwrap());
        h
    }

    #[test]
    fn sessions_verify_and_forgeries_do_not() {
        let auth = Auth::new(&SecretString::from("0123456789abcdef"), false);
        assert!(auth.token_ok("0123456789abcdef"));
        assert!(!auth.token_ok("0123456789abcdeF"));
        assert!(!auth.token_ok(""));
        let set = auth.session_cookie("Zoë");
        assert!(set.contains("HttpOnly; SameSite=Strict"), "{set}");
        let pair = set.split(';').next().unwrap();
        let s = auth.session(&headers(&format!("other=1; {pair}"))).unwrap();
        assert_eq!(s.reviewer, "Zoë");
        let csrf = auth.csrf(&s);
        assert!(auth.csrf_ok(&s, &csrf));
        assert!(!auth.csrf_ok(&s, "00"));
        // Another token signs other sessions: rotating the token logs everyone out.
        let other = Auth::new(&SecretString::from("fedcba9876543210"), true);
        assert!(other.session(&headers(pair)).is_none());
        assert!(other.session_cookie("x").ends_with("; Secure"));
        // A changed name breaks the MAC.
        let forged = pair.replace(".Wm_Dqw.", ".YWRtaW4.");
        assert_ne!(forged, pair);
        assert!(auth.session(&headers(&forged)).is_none());
        let (nonce, c) = auth.login_nonce();
        let h = headers(c.split(';').next().unwrap());
        assert!(auth.login_csrf_ok(&h, &auth.login_csrf(&nonce)));
        assert!(!auth.login_csrf_ok(&h, &auth.login_csrf("other")));
    }
}
