//! The logins of the web pages: tokens checked in constant time (the admin token, and the named
//! reviewers of `ESCALATOR_REVIEWERS_FILE`), sessions held server-side, and CSRF tokens.
//!
//! A session is a row in `review_sessions` (only its id's SHA-256) and a cookie
//! `v2.<id>.<mac>`, the MAC an HMAC-SHA256 of the id, name and login under the digest of the
//! token that logged in. Each request looks the row up and checks the MAC, so
//! - logging out deletes the row: the cookie stops working on every replica at once;
//! - rotating a token ends its sessions: once the token is out of the reviewers file (or the
//!   admin token changed), no key verifies the MAC;
//! - a session ends after 12 hours whatever its cookie says.
//!
//! Written by hand over `hmac`/`subtle`/`sha2`: four fields and a table row, where a session
//! crate would bring its own store and cookie format.

use std::sync::Arc;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::{
    credentials::CredentialsFile,
    store::{SessionRow, SessionStore, StoreError},
};

/// The session cookie (`Path=/`: `/review` and `/dashboard` share the login).
const SESSION: &str = "escalator_review";
/// The login form's nonce cookie (its CSRF token is an HMAC of it).
const LOGIN: &str = "escalator_review_login";
/// How long a session lasts.
const SESSION_SECS: i64 = 12 * 3600;

/// Which credential opened a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Login {
    /// `ESCALATOR_ADMIN_TOKEN`: the name is the one typed at login.
    Admin,
    /// A line of the reviewers file: the name is the file's.
    Reviewer,
}

impl Login {
    fn as_str(self) -> &'static str {
        match self {
            Login::Admin => "admin",
            Login::Reviewer => "reviewer",
        }
    }
}

/// A logged-in reviewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Session {
    /// The session id (the cookie's secret).
    id: String,
    /// Its SHA-256, the row's key.
    id_hash: String,
    /// Who is logged in: verdicts given in the session carry it.
    pub(super) reviewer: String,
    /// The key that verified the session (its token's digest); its CSRF tokens are MACs under it.
    key: [u8; 32],
}

/// A token that logged in: which login, the reviewer's name for a file login, and the key the
/// session is signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Granted {
    pub(super) login: Login,
    pub(super) name: Option<String>,
    key: [u8; 32],
}

/// Checks tokens and keeps sessions.
#[derive(Clone)]
pub(super) struct Auth {
    admin: Option<[u8; 32]>,
    reviewers: Option<Arc<CredentialsFile>>,
    secure: bool,
    store: Arc<dyn SessionStore>,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn mac(key: &[u8; 32], parts: &[&str]) -> String {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    for p in parts {
        mac.update(p.as_bytes());
        mac.update(b"\n");
    }
    hex::encode(mac.finalize().into_bytes())
}

fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Auth {
    pub(super) fn new(
        admin: Option<&SecretString>,
        reviewers: Option<Arc<CredentialsFile>>,
        secure: bool,
        store: Arc<dyn SessionStore>,
    ) -> Self {
        Self {
            admin: admin.map(|t| digest(t.expose_secret())),
            reviewers,
            secure,
            store,
        }
    }

    /// Whether the admin token is a login (the form then asks for a name).
    pub(super) fn has_admin(&self) -> bool {
        self.admin.is_some()
    }

    /// Who `given` logs in as. The admin token and every line of the reviewers file are
    /// compared, each in constant time, whatever matches; a reviewer's token wins over an equal
    /// admin token (it names someone).
    pub(super) fn check(&self, given: &str) -> Option<Granted> {
        let d = digest(given);
        let admin = self
            .admin
            .filter(|a| bool::from(a.ct_eq(&d)))
            .map(|key| Granted {
                login: Login::Admin,
                name: None,
                key,
            });
        let reviewer = self.reviewers.as_ref().and_then(|f| {
            f.current().verify(given).map(|name| Granted {
                login: Login::Reviewer,
                name: Some(name.to_owned()),
                key: d,
            })
        });
        reviewer.or(admin)
    }

    fn attrs(&self, max_age: i64) -> String {
        format!(
            "Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// Opens a session for `reviewer` under `granted` and returns its `Set-Cookie` value.
    /// Expired sessions are cleared on the way.
    ///
    /// # Errors
    /// When the session cannot be stored.
    pub(super) async fn open(
        &self,
        granted: &Granted,
        reviewer: &str,
    ) -> Result<String, StoreError> {
        let now = chrono::Utc::now();
        if let Err(e) = self.store.purge_sessions(now).await {
            tracing::warn!(error = %e, "cannot clear expired review sessions");
        }
        let id = hex::encode(rand::random::<[u8; 32]>());
        let login = granted.login.as_str();
        self.store
            .create_session(&SessionRow {
                id_hash: hex::encode(digest(&id)),
                reviewer: reviewer.to_owned(),
                login: login.to_owned(),
                created_at: now,
                expires_at: now + chrono::Duration::seconds(SESSION_SECS),
            })
            .await?;
        let tag = mac(&granted.key, &["session", &id, reviewer, login]);
        Ok(format!(
            "{SESSION}=v2.{id}.{tag}; {}",
            self.attrs(SESSION_SECS)
        ))
    }

    /// A `Set-Cookie` value that drops the session cookie.
    pub(super) fn clear_cookie(&self) -> String {
        format!("{SESSION}=; {}", self.attrs(0))
    }

    /// The session the request carries: its cookie is well formed, its row is there and not
    /// expired, and its MAC verifies under a token that is still a login. (A row whose token
    /// is gone stays until it expires and is cleared; nothing can verify it.)
    ///
    /// # Errors
    /// When the sessions cannot be read (the caller answers 503).
    pub(super) async fn session(&self, headers: &HeaderMap) -> Result<Option<Session>, StoreError> {
        let Some(value) = cookie(headers, SESSION) else {
            return Ok(None);
        };
        let mut parts = value.split('.');
        let (Some("v2"), Some(id), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let id_hash = hex::encode(digest(id));
        let Some(row) = self
            .store
            .live_session(&id_hash, chrono::Utc::now())
            .await?
        else {
            return Ok(None);
        };
        let keys: Vec<[u8; 32]> = match row.login.as_str() {
            "admin" => self.admin.into_iter().collect(),
            _ => self
                .reviewers
                .as_ref()
                .map(|f| f.current().keys_of(&row.reviewer).copied().collect())
                .unwrap_or_default(),
        };
        let verified = keys
            .into_iter()
            .find(|k| same(&mac(k, &["session", id, &row.reviewer, &row.login]), tag));
        Ok(verified.map(|key| Session {
            id: id.to_owned(),
            id_hash,
            reviewer: row.reviewer,
            key,
        }))
    }

    /// Ends `session` server-side: its cookie stops working on every replica.
    ///
    /// # Errors
    /// When the sessions cannot be written.
    pub(super) async fn close(&self, session: &Session) -> Result<(), StoreError> {
        self.store.end_session(&session.id_hash).await.map(|_| ())
    }

    /// The CSRF token of the session's forms.
    pub(super) fn csrf(&self, s: &Session) -> String {
        mac(&s.key, &["csrf", &s.id])
    }

    /// Whether a POSTed CSRF token belongs to the session.
    pub(super) fn csrf_ok(&self, s: &Session, given: &str) -> bool {
        same(&self.csrf(s), given)
    }

    /// The key of the login form's CSRF tokens: a digest of every login's key, so every
    /// replica with the same logins makes and accepts the same tokens (a form shown by one and
    /// posted to another works), and nobody without a token can make one.
    fn login_key(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"escalator review login form\n");
        if let Some(a) = &self.admin {
            h.update(a);
        }
        if let Some(f) = &self.reviewers {
            let c = f.current();
            for name in c.names() {
                for k in c.keys_of(name) {
                    h.update(k);
                }
            }
        }
        h.finalize().into()
    }

    /// A fresh login nonce and the `Set-Cookie` value carrying it.
    pub(super) fn login_nonce(&self) -> (String, String) {
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let cookie = format!("{LOGIN}={nonce}; {}", self.attrs(3600));
        (nonce, cookie)
    }

    /// The login form's CSRF token for `nonce`.
    pub(super) fn login_csrf(&self, nonce: &str) -> String {
        mac(&self.login_key(), &["login", nonce])
    }

    /// Whether the login POST carries the nonce cookie its form was made for.
    pub(super) fn login_csrf_ok(&self, headers: &HeaderMap, given: &str) -> bool {
        cookie(headers, LOGIN).is_some_and(|nonce| same(&self.login_csrf(nonce), given))
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

    async fn store() -> Arc<dyn SessionStore> {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .unwrap();
        Arc::new(crate::store::SqliteStore::new(pool))
    }

    const ADMIN: &str = "0123456789abcdef";
    const ADA_OLD: &str = "ada-token-0123456789";
    const ADA_NEW: &str = "ada-token-9876543210";

    #[tokio::test]
    async fn sessions_live_in_the_store_and_end_with_logout_or_their_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reviewers");
        std::fs::write(&path, format!("ada {ADA_OLD}\nada {ADA_NEW}\n")).unwrap();
        let file = Arc::new(CredentialsFile::open("ESCALATOR_REVIEWERS_FILE", &path).unwrap());
        let store = store().await;
        let auth = Auth::new(
            Some(&SecretString::from(ADMIN)),
            Some(file),
            false,
            store.clone(),
        );
        assert!(auth.check("0123456789abcdeF").is_none());
        assert!(auth.check("").is_none());
        let admin = auth.check(ADMIN).unwrap();
        assert_eq!((admin.login, admin.name.as_deref()), (Login::Admin, None));
        let ada = auth.check(ADA_OLD).unwrap();
        assert_eq!(
            (ada.login, ada.name.as_deref()),
            (Login::Reviewer, Some("ada"))
        );

        let set = auth.open(&ada, "ada").await.unwrap();
        assert!(set.contains("HttpOnly; SameSite=Strict"), "{set}");
        let pair = set.split(';').next().unwrap().to_owned();
        let s = auth
            .session(&headers(&format!("other=1; {pair}")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.reviewer, "ada");
        assert!(auth.csrf_ok(&s, &auth.csrf(&s)));
        assert!(!auth.csrf_ok(&s, "00"));
        // A forged MAC, a changed id, an old v1 cookie: no session.
        let flipped = if pair.ends_with('0') { '1' } else { '0' };
        let forged = format!("{}{flipped}", &pair[..pair.len() - 1]);
        for bad in [
            forged.as_str(),
            "escalator_review=v1.1.YWRh.00",
            "escalator_review=v2.zz.00",
        ] {
            let fresh = auth.session(&headers(bad)).await.unwrap();
            assert!(fresh.is_none(), "{bad}");
        }
        // Logging out deletes the row: the same cookie is dead.
        let again = auth.session(&headers(&pair)).await.unwrap().unwrap();
        auth.close(&again).await.unwrap();
        assert!(auth.session(&headers(&pair)).await.unwrap().is_none());

        // A rotation: a session under the old token lives while both lines are there and
        // ends when the old line goes; one under the new token goes on.
        let old = auth
            .open(&auth.check(ADA_OLD).unwrap(), "ada")
            .await
            .unwrap();
        let new = auth
            .open(&auth.check(ADA_NEW).unwrap(), "ada")
            .await
            .unwrap();
        let (old, new) = (
            old.split(';').next().unwrap().to_owned(),
            new.split(';').next().unwrap().to_owned(),
        );
        assert!(auth.session(&headers(&old)).await.unwrap().is_some());
        let next = dir.path().join("reviewers.next");
        std::fs::write(&next, format!("ada {ADA_NEW}\n")).unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert!(auth.session(&headers(&old)).await.unwrap().is_none());
        assert!(auth.session(&headers(&new)).await.unwrap().is_some());
        assert!(auth.check(ADA_OLD).is_none());

        // Another admin token signs nothing of this one's.
        let admin_cookie = auth.open(&admin, "Zoë").await.unwrap();
        let admin_cookie = admin_cookie.split(';').next().unwrap();
        let s = auth.session(&headers(admin_cookie)).await.unwrap().unwrap();
        assert_eq!(s.reviewer, "Zoë");
        let rotated = Auth::new(
            Some(&SecretString::from("fedcba9876543210")),
            None,
            true,
            store,
        );
        assert!(
            rotated
                .session(&headers(admin_cookie))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            auth.session(&headers(admin_cookie))
                .await
                .unwrap()
                .is_some(),
            "the key, not the row"
        );
        assert!(rotated.clear_cookie().ends_with("; Secure"));

        let (nonce, c) = auth.login_nonce();
        let h = headers(c.split(';').next().unwrap());
        assert!(auth.login_csrf_ok(&h, &auth.login_csrf(&nonce)));
        assert!(!auth.login_csrf_ok(&h, &auth.login_csrf("other")));
    }
}
