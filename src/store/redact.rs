//! `DATABASE_URL` without its secrets, for logs; and the URL handed to the driver without the
//! secret-bearing parameters it does not read (sqlx logs an unknown parameter with its value).
//!
//! A database URL carries secrets in two places, and both drivers the URL may be written for
//! (sqlx, libpq) read both: the userinfo (`postgres://user:secret@host/db`) and the query
//! (`postgres://host/db?user=u&password=secret`). The query may also carry a client key's
//! passphrase (`sslpassword`), the key itself (`sslkey` holds a path or, for sqlx, the PEM
//! text), or where a password file is (`passfile`). Parsed with the `url` crate, the parser
//! sqlx itself uses, so what is redacted is what the driver reads (percent-encoded names
//! included).

use std::borrow::Cow;

/// Query parameters whose value can be a secret, in the spellings libpq and sqlx accept.
const SECRET_PARAMS: &[&str] = &[
    "password",
    "sslpassword",
    "ssl-password",
    "sslkey",
    "ssl-key",
    "passfile",
];

/// Secret-bearing parameters sqlx does not read: it would log each with its value ("ignoring
/// unrecognized connect parameter"), so they are taken out before it sees the URL.
const UNREAD_BY_SQLX: &[&str] = &["sslpassword", "ssl-password", "passfile"];

/// What a redacted value reads as.
const MASK: &str = "***";

/// Whether a (percent-decoded) query parameter name can carry a secret.
fn is_secret(name: &str) -> bool {
    SECRET_PARAMS.contains(&name.to_ascii_lowercase().as_str())
}

/// The database URL with the userinfo password and every secret query parameter replaced by
/// `***`, for logs. A URL the parser cannot read is shown as its scheme only, since where its
/// secrets are cannot be told.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        let scheme = url.split_once(':').map_or("", |(s, _)| s);
        let scheme: String = scheme
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            .collect();
        return format!("{scheme}:(not a URL; not shown)");
    };
    if parsed.password().is_some() {
        // Only a URL that cannot have a password (`sqlite::memory:`) refuses; it has none.
        let _ = parsed.set_password(Some(MASK));
    }
    if parsed.query_pairs().any(|(k, _)| is_secret(&k)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret(&k) {
                    MASK.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// `url` without the secret-bearing parameters sqlx does not read (see [`UNREAD_BY_SQLX`]),
/// and the names of those taken out, so the caller can warn about them by name. Borrowed when
/// there is none (or the URL does not parse: the driver then refuses it without logging it).
pub(crate) fn for_driver(url: &str) -> (Cow<'_, str>, Vec<String>) {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return (Cow::Borrowed(url), Vec::new());
    };
    let unread = |k: &str| UNREAD_BY_SQLX.contains(&k.to_ascii_lowercase().as_str());
    let dropped: Vec<String> = parsed
        .query_pairs()
        .filter(|(k, _)| unread(k))
        .map(|(k, _)| k.into_owned())
        .collect();
    if dropped.is_empty() {
        return (Cow::Borrowed(url), dropped);
    }
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| !unread(k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    (Cow::Owned(parsed.to_string()), dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every secret in every place both drivers read one, and nothing else changed.
    #[test]
    fn no_password_key_or_passphrase_reaches_a_log() {
        for (url, logged) in [
            (
                "postgres://u:secret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            ("postgresql://u:s%40cr%3At@h/db", "postgresql://u:***@h/db"),
            ("postgres://:secret@h/db", "postgres://:***@h/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            (
                "postgres://h/db?user=u&password=secret",
                "postgres://h/db?user=u&password=***",
            ),
            (
                "postgresql:///db?host=/var/run/postgresql&password=secret",
                "postgresql:///db?host=%2Fvar%2Frun%2Fpostgresql&password=***",
            ),
            (
                "postgres://u:a@h/db?sslmode=verify-full&sslpassword=pass&sslkey=/k.pem&passfile=/p",
                "postgres://u:***@h/db?sslmode=verify-full&sslpassword=***&sslkey=***&passfile=***",
            ),
            (
                "postgres://h/db?ssl-key=-----BEGIN%20PRIVATE%20KEY-----abc&ssl-password=x",
                "postgres://h/db?ssl-key=***&ssl-password=***",
            ),
            // A percent-encoded or upper-case name is still the parameter.
            (
                "postgres://h/db?pass%77ord=secret&PASSWORD=other",
                "postgres://h/db?password=***&PASSWORD=***",
            ),
            // An `@` in the query is not the end of the userinfo.
            (
                "postgres://u:pw@h/db?application_name=a@b",
                "postgres://u:***@h/db?application_name=a@b",
            ),
            ("sqlite://escalator.db", "sqlite://escalator.db"),
            ("sqlite::memory:", "sqlite::memory:"),
            ("sqlite:data/e.db?mode=rwc", "sqlite:data/e.db?mode=rwc"),
        ] {
            let r = redact_url(url);
            assert_eq!(r, logged, "{url}");
            for secret in ["secret", "s%40cr", "pass&", "/k.pem", "BEGIN", "other"] {
                assert!(!r.contains(secret), "{url} -> {r}");
            }
        }
        // Unparseable: its scheme only.
        assert_eq!(
            redact_url("postgres://u:secret@[::1/db"),
            "postgres:(not a URL; not shown)"
        );
        assert_eq!(redact_url("secret"), ":(not a URL; not shown)");
    }

    /// The URL both drivers accept parses the same after redaction as far as sqlx is concerned:
    /// host, port, user and database are what sqlx reads from the original.
    #[test]
    fn a_redacted_url_still_names_the_same_server() {
        use std::str::FromStr as _;
        for url in [
            "postgres://u:secret@db.example:6543/routing?password=x&sslmode=disable",
            "postgresql://u@db.example/routing?password=secret",
        ] {
            let a = sqlx::postgres::PgConnectOptions::from_str(url).unwrap();
            let b = sqlx::postgres::PgConnectOptions::from_str(&redact_url(url)).unwrap();
            assert_eq!(
                (
                    a.get_host(),
                    a.get_port(),
                    a.get_username(),
                    a.get_database()
                ),
                (
                    b.get_host(),
                    b.get_port(),
                    b.get_username(),
                    b.get_database()
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn the_driver_never_sees_a_secret_it_would_log() {
        let (url, dropped) =
            for_driver("postgres://u:pw@h/db?sslpassword=x&sslmode=require&PassFile=/p");
        assert_eq!(url, "postgres://u:pw@h/db?sslmode=require");
        assert_eq!(dropped, ["sslpassword", "PassFile"]);
        let (url, dropped) = for_driver("postgres://u@h/db?sslpassword=x");
        assert_eq!((url.as_ref(), dropped.len()), ("postgres://u@h/db", 1));
        let (url, dropped) = for_driver("postgres://u:pw@h/db?password=x");
        assert!(matches!(url, Cow::Borrowed(_)) && dropped.is_empty());
    }
}
