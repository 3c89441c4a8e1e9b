//! Settings of the daily review: the `[review]` table of the TOML file,
//! `ESCALATOR_ADMIN_TOKEN` and `ESCALATOR_REVIEWERS_FILE` (either opens the `/review` web page).

use std::{path::PathBuf, sync::Arc};

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use crate::{
    credentials::CredentialsFile,
    env::{ConfigError, EnvSource, Setting, SettingDefault},
};

/// The settings this module owns (rendered into the reference in `deploy/README.md`).
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "ESCALATOR_ADMIN_TOKEN",
        default: SettingDefault::Unset,
        meaning: "The shared login of `/review` and `/dashboard` (at least 16 characters; never logged), for a team of one: the name typed at login goes on the verdicts. Unset with no reviewers file: both pages answer 404.",
        example: "change-me-0123456789abcdef",
    },
    Setting {
        key: "ESCALATOR_REVIEWERS_FILE",
        default: SettingDefault::Unset,
        meaning: "Named reviewers: a file of `name token` lines (`#` comments; a name on two lines during a rotation; tokens at least 16 characters). A reviewer logs in with their token and their verdicts carry the file's name. Read again when it changes; a token taken out ends its sessions. Wins over `review.reviewers_file`.",
        example: "/run/secrets/escalator/reviewers",
    },
    Setting {
        key: "review.reviewers_file",
        default: SettingDefault::Unset,
        meaning: "The reviewers file, when `ESCALATOR_REVIEWERS_FILE` is unset.",
        example: "\"/run/secrets/escalator/reviewers\"",
    },
    Setting {
        key: "review.client_address_header",
        default: SettingDefault::Unset,
        meaning: "Where failed logins are counted per client behind a reverse proxy: a header the proxy sets to the client's address (`x-forwarded-for`: its last entry; `x-real-ip`). Set it only behind a proxy that overwrites the header, or clients choose their own address. Unset: the TCP peer's address.",
        example: "\"x-forwarded-for\"",
    },
    Setting {
        key: "review.time_zone",
        default: SettingDefault::Value("\"UTC\""),
        meaning: "IANA time zone of the review day (`\"Europe/Berlin\"`).",
        example: "\"Europe/Berlin\"",
    },
    Setting {
        key: "review.sample_size",
        default: SettingDefault::Value("10"),
        meaning: "Decisions in a day's sample (1..=1000; `--n` overrides).",
        example: "10",
    },
    Setting {
        key: "review.on_fire_cap",
        default: SettingDefault::Value("3"),
        meaning: "The daily sample takes every `on_fire` decision, up to this many a draw (more are drawn among at random; 0..=1000).",
        example: "3",
    },
    Setting {
        key: "review.oversample",
        default: SettingDefault::Value("3.0"),
        meaning: "How many times as likely as an ordinary decision a low-confidence or enterprise decision is to be drawn into the daily sample (1.0..=100.0; 1.0: uniform).",
        example: "3.0",
    },
    Setting {
        key: "review.low_confidence_below",
        default: SettingDefault::Value("0.6"),
        meaning: "A decision with a confidence below this is in the sample's `low_confidence` stratum (0.0..=1.0).",
        example: "0.6",
    },
    Setting {
        key: "review.second_reviewer_share",
        default: SettingDefault::Value("0.0"),
        meaning: "The share of each day's sample offered to a second reviewer as well, who does not see the first verdict (0.0..=1.0; rounded to whole decisions per draw).",
        example: "0.2",
    },
    Setting {
        key: "review.secure_cookie",
        default: SettingDefault::Value("false"),
        meaning: "Mark the `/review` session cookie `Secure` (set it when served over HTTPS).",
        example: "true",
    },
    Setting {
        key: "review.plain_machine_user_id",
        default: SettingDefault::Unset,
        meaning: "escalator's own Plain machine user (`mu_…`, owner of `PLAIN_API_KEY`): its label and priority changes are not agents' overrides.",
        example: "\"mu_escalator\"",
    },
];

/// Shortest admin token accepted: a short shared secret on a web login is guessable.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// Default number of decisions in a day's sample.
pub const DEFAULT_SAMPLE_SIZE: usize = 10;

/// The daily review.
#[derive(Debug, Clone)]
pub struct ReviewSettings {
    /// `[review] time_zone` (IANA name): "a day" of decisions is a day in this zone.
    pub time_zone: chrono_tz::Tz,
    /// `[review] sample_size`: decisions per day's sample (`--n` overrides it).
    pub sample_size: usize,
    /// `[review] on_fire_cap`, `oversample`, `low_confidence_below` and
    /// `second_reviewer_share`: the sample design.
    pub design: crate::domain::sample::Design,
    /// `ESCALATOR_ADMIN_TOKEN`: the shared `/review` login. Unset (and no reviewers): the
    /// page answers 404.
    pub admin_token: Option<SecretString>,
    /// `ESCALATOR_REVIEWERS_FILE` / `[review] reviewers_file`: named reviewers' tokens.
    pub reviewers_file: Option<PathBuf>,
    /// `[review] client_address_header` (lower case): the header that holds the client's
    /// address behind a proxy, for counting failed logins; `None`: the TCP peer.
    pub client_address_header: Option<String>,
    /// `[review] secure_cookie`: mark the session cookie `Secure` (set it when served over
    /// HTTPS, directly or behind a proxy).
    pub secure_cookie: bool,
    /// `[review] plain_machine_user_id`: escalator's own machine user in Plain (`mu_…`, the
    /// owner of `PLAIN_API_KEY`). Label and priority changes it made are escalator's, not an
    /// agent's override.
    pub plain_machine_user_id: Option<String>,
}

impl Default for ReviewSettings {
    fn default() -> Self {
        Self {
            time_zone: chrono_tz::UTC,
            sample_size: DEFAULT_SAMPLE_SIZE,
            design: crate::domain::sample::Design::default(),
            admin_token: None,
            reviewers_file: None,
            client_address_header: None,
            secure_cookie: false,
            plain_machine_user_id: None,
        }
    }
}

/// `[review]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileReview {
    time_zone: Option<String>,
    sample_size: Option<usize>,
    on_fire_cap: Option<usize>,
    oversample: Option<f64>,
    low_confidence_below: Option<f32>,
    second_reviewer_share: Option<f64>,
    secure_cookie: Option<bool>,
    plain_machine_user_id: Option<String>,
    reviewers_file: Option<PathBuf>,
    client_address_header: Option<String>,
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

impl ReviewSettings {
    /// Loads `[review]` and `ESCALATOR_ADMIN_TOKEN`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the bad key.
    pub(crate) fn load(env: &dyn EnvSource, file: FileReview) -> Result<Self, ConfigError> {
        let d = Self::default();
        let time_zone = match file.time_zone {
            Some(name) => name.trim().parse::<chrono_tz::Tz>().map_err(|_| {
                invalid(
                    "review.time_zone",
                    format!("{name:?} is not an IANA time zone (e.g. \"Europe/Berlin\", \"UTC\")"),
                )
            })?,
            None => d.time_zone,
        };
        let sample_size = file.sample_size.unwrap_or(d.sample_size);
        if sample_size == 0 || sample_size > 1_000 {
            return Err(invalid("review.sample_size", "must be within 1..=1000"));
        }
        let design = crate::domain::sample::Design {
            on_fire_cap: file.on_fire_cap.unwrap_or(d.design.on_fire_cap),
            oversample: file.oversample.unwrap_or(d.design.oversample),
            low_confidence_below: file
                .low_confidence_below
                .unwrap_or(d.design.low_confidence_below),
            second_reviewer_share: file
                .second_reviewer_share
                .unwrap_or(d.design.second_reviewer_share),
        };
        if design.on_fire_cap > 1_000 {
            return Err(invalid("review.on_fire_cap", "must be within 0..=1000"));
        }
        if !(1.0..=100.0).contains(&design.oversample) {
            return Err(invalid("review.oversample", "must be within 1.0..=100.0"));
        }
        if !(0.0..=1.0).contains(&design.low_confidence_below) {
            return Err(invalid(
                "review.low_confidence_below",
                "must be within 0.0..=1.0",
            ));
        }
        if !(0.0..=1.0).contains(&design.second_reviewer_share) {
            return Err(invalid(
                "review.second_reviewer_share",
                "must be within 0.0..=1.0",
            ));
        }
        let admin_token = env.get("ESCALATOR_ADMIN_TOKEN").map(SecretString::from);
        if let Some(t) = &admin_token {
            if t.expose_secret().chars().count() < MIN_ADMIN_TOKEN_CHARS {
                return Err(invalid(
                    "ESCALATOR_ADMIN_TOKEN",
                    format!("must be at least {MIN_ADMIN_TOKEN_CHARS} characters"),
                ));
            }
        }
        let client_address_header = file
            .client_address_header
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty());
        if let Some(h) = &client_address_header {
            if axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(invalid(
                    "review.client_address_header",
                    format!("{h:?} is not a header name"),
                ));
            }
        }
        Ok(Self {
            time_zone,
            sample_size,
            design,
            admin_token,
            reviewers_file: env
                .get("ESCALATOR_REVIEWERS_FILE")
                .map(PathBuf::from)
                .or(file.reviewers_file.filter(|p| !p.as_os_str().is_empty())),
            client_address_header,
            secure_cookie: file.secure_cookie.unwrap_or(d.secure_cookie),
            plain_machine_user_id: file
                .plain_machine_user_id
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
        })
    }
}

impl ReviewSettings {
    /// Whether the web pages are on: an admin token or a reviewers file is set.
    pub fn has_logins(&self) -> bool {
        self.admin_token.is_some() || self.reviewers_file.is_some()
    }

    /// The reviewers file, read (and from then on re-read when it changes), or `None`.
    ///
    /// # Errors
    /// [`ConfigError`] naming `ESCALATOR_REVIEWERS_FILE` when the file cannot be read or parsed
    /// (never quoting a token).
    pub fn reviewers(&self) -> Result<Option<Arc<CredentialsFile>>, ConfigError> {
        CredentialsFile::open_optional("ESCALATOR_REVIEWERS_FILE", self.reviewers_file.as_deref())
            .map_err(|e| invalid(e.setting, format!("{}: {}", e.path, e.reason)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn file(toml: &str) -> FileReview {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn defaults_time_zone_and_token_are_checked() {
        let s = ReviewSettings::load(&BTreeMap::new(), FileReview::default()).unwrap();
        assert_eq!(s.time_zone, chrono_tz::UTC);
        assert_eq!(s.sample_size, 10);
        assert!(s.admin_token.is_none());
        let s = ReviewSettings::load(
            &BTreeMap::from([("ESCALATOR_ADMIN_TOKEN", "0123456789abcdef")]),
            file(
                "time_zone = \"Europe/Berlin\"\nsample_size = 5\nplain_machine_user_id = \"mu_1\"",
            ),
        )
        .unwrap();
        assert_eq!(s.time_zone, chrono_tz::Europe::Berlin);
        assert_eq!(s.sample_size, 5);
        assert_eq!(s.plain_machine_user_id.as_deref(), Some("mu_1"));
        assert!(!format!("{s:?}").contains("0123456789abcdef"));
        let e = ReviewSettings::load(&BTreeMap::new(), file("time_zone = \"Mars/Olympus\""))
            .unwrap_err();
        assert!(e.to_string().starts_with("review.time_zone: "), "{e}");
        let e = ReviewSettings::load(
            &BTreeMap::from([("ESCALATOR_ADMIN_TOKEN", "short")]),
            FileReview::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "ESCALATOR_ADMIN_TOKEN: must be at least 16 characters"
        );
        assert!(toml::from_str::<FileReview>("colour = 1").is_err());
        let s = ReviewSettings::load(
            &BTreeMap::new(),
            file("on_fire_cap = 5\noversample = 2.5\nlow_confidence_below = 0.7\nsecond_reviewer_share = 0.2"),
        )
        .unwrap();
        assert_eq!(
            (
                s.design.on_fire_cap,
                s.design.oversample,
                s.design.low_confidence_below,
                s.design.second_reviewer_share
            ),
            (5, 2.5, 0.7, 0.2)
        );
        assert_eq!(
            ReviewSettings::load(&BTreeMap::new(), FileReview::default())
                .unwrap()
                .design,
            crate::domain::sample::Design::default()
        );
        for (toml, key) in [
            ("oversample = 0.5", "review.oversample"),
            (
                "second_reviewer_share = 1.5",
                "review.second_reviewer_share",
            ),
            ("low_confidence_below = -0.1", "review.low_confidence_below"),
            ("on_fire_cap = 5000", "review.on_fire_cap"),
        ] {
            let e = ReviewSettings::load(&BTreeMap::new(), file(toml)).unwrap_err();
            assert!(e.to_string().starts_with(&format!("{key}: ")), "{e}");
        }
    }
}
