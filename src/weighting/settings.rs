//! Settings of the weighting rules: the `[tiers.<tier>]` tables (`free`, `pro`, `enterprise`)
//! and `[tiers.repeat]` of the TOML file.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{RepeatRule, TierRule, Weighting};
use crate::{
    domain::{Severity, Tier},
    env::{ConfigError, Setting, SettingDefault, amount, invalid},
};

/// The settings this module owns (rendered into the reference in `deploy/README.md`).
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "tiers.<tier>.arr_usd_min",
        default: SettingDefault::Derived("enterprise `50000.0`; free and pro unset"),
        meaning: "ARR in USD at or above which a customer counts as tier `<tier>` (`free`, `pro`, `enterprise`) whatever its source said; the highest tier met wins. `\"none\"`: ARR never sets this tier.",
        example: "10000.0",
    },
    Setting {
        key: "tiers.<tier>.floor",
        default: SettingDefault::Derived("enterprise `\"urgent\"`; free and pro `\"none\"`"),
        meaning: "Lowest severity (`routine`, `urgent`, `on_fire`) a ticket of the tier is logged with, applied after either classifier; `\"none\"`: no floor.",
        example: "\"urgent\"",
    },
    Setting {
        key: "tiers.<tier>.prompt",
        default: SettingDefault::Derived(
            "enterprise `\"Enterprise lowers the bar for urgent: contractual.\"`; free and pro `\"\"`",
        ),
        meaning: "Sentence added to the prompt's `<ticket>` block (`policy:` line) for a ticket of the tier; `\"\"`: none. Part of the prompt version.",
        example: "\"Pro customers pay for a human answer the same day.\"",
    },
    Setting {
        key: "tiers.repeat.min_count",
        default: SettingDefault::Value("1"),
        meaning: "Other tickets from the same customer in the last 24 hours at which the repeat floor applies (1 to 20: repeats are counted over the customer's latest 20 tickets).",
        example: "2",
    },
    Setting {
        key: "tiers.repeat.floor",
        default: SettingDefault::Value("\"urgent\""),
        meaning: "Lowest severity of a repeat ticket, applied after either classifier; `\"none\"`: no floor.",
        example: "\"urgent\"",
    },
    Setting {
        key: "tiers.repeat.prompt",
        default: SettingDefault::Value("\"A repeat ticket within 24 hours is urgent at least.\""),
        meaning: "Sentence added to the prompt's `<ticket>` block for a repeat ticket; `\"\"`: none.",
        example: "\"A second ticket within a day means the first answer failed.\"",
    },
];

/// `[tiers]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileTiers {
    free: Option<FileTier>,
    pro: Option<FileTier>,
    enterprise: Option<FileTier>,
    repeat: Option<FileRepeat>,
}

/// `[tiers.<tier>]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTier {
    arr_usd_min: Option<FileAmount>,
    floor: Option<String>,
    prompt: Option<String>,
}

/// An ARR threshold as written: a number, or `"none"` (no threshold).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileAmount {
    Amount(f64),
    Word(String),
}

/// `[tiers.repeat]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepeat {
    min_count: Option<u32>,
    floor: Option<String>,
    prompt: Option<String>,
}

/// A floor as written: a severity, or `none`.
fn floor(
    key: &str,
    v: Option<String>,
    default: Option<Severity>,
) -> Result<Option<Severity>, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) if s.trim().eq_ignore_ascii_case("none") => Ok(None),
        Some(s) => Severity::parse(key, &s).map(Some).map_err(|_| {
            invalid(
                key,
                format!("{s:?} is not one of none, routine, urgent, on_fire"),
            )
        }),
    }
}

/// A prompt sentence: one line (it goes into one line of the `<ticket>` block), `""` for none.
fn sentence(
    key: &str,
    v: Option<String>,
    default: Option<&str>,
) -> Result<Option<String>, ConfigError> {
    let text = match v {
        None => return Ok(default.map(str::to_owned)),
        Some(t) => t.trim().to_owned(),
    };
    if text.chars().any(char::is_control) {
        return Err(invalid(key, "must be one line without control characters"));
    }
    if text.chars().count() > super::MAX_SENTENCE_CHARS {
        return Err(invalid(
            key,
            format!("is longer than {} characters", super::MAX_SENTENCE_CHARS),
        ));
    }
    Ok((!text.is_empty()).then_some(text))
}

impl Weighting {
    /// Loads the rules from the file's `[tiers]` table; what it leaves out keeps the defaults
    /// ([`Weighting::default`]).
    ///
    /// # Errors
    /// [`ConfigError`] naming the bad key.
    pub(crate) fn load(file: FileTiers) -> Result<Self, ConfigError> {
        let defaults = Weighting::default();
        let mut tiers = BTreeMap::new();
        for (tier, given) in [
            (Tier::Free, file.free),
            (Tier::Pro, file.pro),
            (Tier::Enterprise, file.enterprise),
        ] {
            let d = defaults.tier(tier).clone();
            let f = given.unwrap_or_default();
            let key = |k: &str| format!("tiers.{tier}.{k}");
            tiers.insert(
                tier,
                TierRule {
                    arr_usd_min: match f.arr_usd_min {
                        None => d.arr_usd_min,
                        Some(FileAmount::Amount(a)) => amount(&key("arr_usd_min"), Some(a))?,
                        Some(FileAmount::Word(w)) if w.trim().eq_ignore_ascii_case("none") => None,
                        Some(FileAmount::Word(w)) => {
                            return Err(invalid(
                                &key("arr_usd_min"),
                                format!("{w:?} is neither an amount nor \"none\""),
                            ));
                        }
                    },
                    floor: floor(&key("floor"), f.floor, d.floor)?,
                    prompt: sentence(&key("prompt"), f.prompt, d.prompt.as_deref())?,
                },
            );
        }
        let d = defaults.repeat;
        let r = file.repeat.unwrap_or_default();
        let min_count = r.min_count.unwrap_or(d.min_count);
        if min_count == 0 {
            return Err(invalid(
                "tiers.repeat.min_count",
                "must be at least 1 (0 would count every ticket as a repeat)",
            ));
        }
        if min_count > crate::domain::MAX_REPEAT_ROWS {
            return Err(invalid(
                "tiers.repeat.min_count",
                format!(
                    "is {min_count}; repeats are counted up to {} (over a customer's latest {0} \
                     tickets), so a larger threshold would never be reached",
                    crate::domain::MAX_REPEAT_ROWS
                ),
            ));
        }
        Ok(Self {
            tiers,
            repeat: RepeatRule {
                min_count,
                floor: floor("tiers.repeat.floor", r.floor, d.floor)?,
                prompt: sentence("tiers.repeat.prompt", r.prompt, d.prompt.as_deref())?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `[tiers]` table of a file.
    #[derive(Default, Deserialize)]
    struct Tables {
        #[serde(default)]
        tiers: FileTiers,
    }

    fn load(toml: &str) -> Result<Weighting, ConfigError> {
        let t: Tables = crate::env::file_tables(toml)?;
        Weighting::load(t.tiers)
    }

    #[test]
    fn defaults_are_todays_rules() {
        let w = load("").unwrap();
        assert_eq!(w, Weighting::default());
        let e = w.tier(Tier::Enterprise);
        assert_eq!(e.arr_usd_min, Some(50_000.0));
        assert_eq!(e.floor, Some(Severity::Urgent));
        assert_eq!(w.tier(Tier::Free).floor, None);
        assert_eq!(w.repeat().min_count, 1);
        assert_eq!(w.repeat().floor, Some(Severity::Urgent));
    }

    #[test]
    fn the_file_overrides_each_key() {
        let w = load(
            "[tiers.enterprise]\nfloor = \"on_fire\"\nprompt = \"\"\n[tiers.pro]\narr_usd_min = 5000\nfloor = \"urgent\"\n[tiers.repeat]\nmin_count = 3\nfloor = \"none\"\n",
        )
        .unwrap();
        assert_eq!(w.tier(Tier::Enterprise).floor, Some(Severity::OnFire));
        assert_eq!(w.tier(Tier::Enterprise).prompt, None);
        assert_eq!(w.tier(Tier::Enterprise).arr_usd_min, Some(50_000.0));
        assert_eq!(w.tier(Tier::Pro).arr_usd_min, Some(5_000.0));
        assert_eq!(w.repeat().min_count, 3);
        assert_eq!(w.repeat().floor, None);
        let w = load("[tiers.enterprise]\narr_usd_min = \"none\"\n").unwrap();
        assert_eq!(w.tier(Tier::Enterprise).arr_usd_min, None);
        assert_eq!(w.tier_for_arr(1e9), None);
        let e = load("[tiers.enterprise]\narr_usd_min = \"lots\"\n").unwrap_err();
        assert!(
            e.to_string().starts_with("tiers.enterprise.arr_usd_min: "),
            "{e}"
        );
    }

    #[test]
    fn bad_values_and_unknown_keys_name_the_key() {
        let e = load("[tiers.gold]\nfloor = \"urgent\"\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `gold`"), "{e}");
        let e = load("[tiers.pro]\nflor = \"urgent\"\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `flor`"), "{e}");
        let e = load("[tiers.pro]\nfloor = \"high\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "tiers.pro.floor: \"high\" is not one of none, routine, urgent, on_fire"
        );
        let e = load("[tiers.enterprise]\narr_usd_min = -1\n").unwrap_err();
        assert!(
            e.to_string().starts_with("tiers.enterprise.arr_usd_min: "),
            "{e}"
        );
        let e = load("[tiers.repeat]\nmin_count = 0\n").unwrap_err();
        assert!(e.to_string().starts_with("tiers.repeat.min_count: "), "{e}");
        let e = load("[tiers.repeat]\nmin_count = 21\n").unwrap_err();
        assert!(
            e.to_string().starts_with("tiers.repeat.min_count: is 21"),
            "{e}"
        );
        assert_eq!(
            load("[tiers.repeat]\nmin_count = 20\n")
                .unwrap()
                .repeat()
                .min_count,
            20
        );
        let e = load("[tiers.free]\nprompt = \"two\\nlines\"\n").unwrap_err();
        assert!(e.to_string().starts_with("tiers.free.prompt: "), "{e}");
    }
}
