//! Settings of the webhook bridge, the tool adapters and the actions: the `[plain]`,
//! `[pylon]`, `[actions]` and `[routes.<route>.plain|pylon]` tables of the TOML file, with the
//! `PLAIN_*` and `PYLON_*` environment variables (DESIGN.md names) winning over the file.
//!
//! Over 450 lines: the settings of two tools and of their per-route actions, each key documented in
//! the `SETTINGS` table that generates the configuration reference.

use std::{collections::BTreeMap, time::Duration};

use secrecy::SecretString;
use serde::Deserialize;

use crate::{
    domain::{Route, Severity, Source, Tier},
    env::{ConfigError, EnvSource, Setting, SettingDefault, amount, http_url, invalid, non_empty},
};

/// The settings this module owns (rendered into the reference in `deploy/README.md`).
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "PLAIN_API_KEY",
        default: SettingDefault::Unset,
        meaning: "Plain machine-user API key: enrichment (tier, ARR) and routing back (labels, priority, assignee, note). Unset: Plain tickets are decided and logged only.",
        example: "plainApiKey_example",
    },
    Setting {
        key: "PLAIN_API_URL",
        default: SettingDefault::Value("https://core-api.uk.plain.com/graphql/v1"),
        meaning: "Plain GraphQL endpoint; wins over `plain.api_url`.",
        example: "https://core-api.uk.plain.com/graphql/v1",
    },
    Setting {
        key: "PLAIN_WEBHOOK_SECRET",
        default: SettingDefault::Unset,
        meaning: "Plain's workspace request-signing secret (HMAC-SHA256 of the raw body in `Plain-Request-Signature`). Unset: `/webhooks/plain` refuses every request with 503.",
        example: "plain-webhook-secret-new",
    },
    Setting {
        key: "PLAIN_WEBHOOK_SECRET_PREVIOUS",
        default: SettingDefault::Unset,
        meaning: "The secret before a rotation, accepted too while it is set (see rotating secrets); needs `PLAIN_WEBHOOK_SECRET`. Deliveries it verifies count in `escalator_webhook_previous_secret_total`.",
        example: "plain-webhook-secret-old",
    },
    Setting {
        key: "PYLON_API_TOKEN",
        default: SettingDefault::Unset,
        meaning: "Pylon API token: reads the issue and routes it back. Unset: `/webhooks/pylon` refuses every request (the issue could not be read).",
        example: "pylon-token-example",
    },
    Setting {
        key: "PYLON_API_URL",
        default: SettingDefault::Value("https://api.usepylon.com"),
        meaning: "Pylon REST base URL (EU workspaces: `https://api.eu.usepylon.com`); wins over `pylon.api_url`.",
        example: "https://api.usepylon.com",
    },
    Setting {
        key: "PYLON_WEBHOOK_SECRET",
        default: SettingDefault::Unset,
        meaning: "The Pylon webhook's signing secret (`X-Pylon-Signature`). Unset: `/webhooks/pylon` refuses every request with 503.",
        example: "pylon-webhook-secret-new",
    },
    Setting {
        key: "PYLON_WEBHOOK_SECRET_PREVIOUS",
        default: SettingDefault::Unset,
        meaning: "The old webhook's secret, accepted too while it is set (see rotating secrets); needs `PYLON_WEBHOOK_SECRET`.",
        example: "pylon-webhook-secret-old",
    },
    Setting {
        key: "plain.api_url",
        default: SettingDefault::Value("\"https://core-api.uk.plain.com/graphql/v1\""),
        meaning: "Plain GraphQL endpoint, when `PLAIN_API_URL` is unset.",
        example: "\"https://core-api.uk.plain.com/graphql/v1\"",
    },
    Setting {
        key: "plain.event_types",
        default: SettingDefault::Value("[\"thread.thread_created\"]"),
        meaning: "Plain events that carry a new ticket; any other event is answered 200 and ignored.",
        example: "[\"thread.thread_created\"]",
    },
    Setting {
        key: "plain.replay_window_secs",
        default: SettingDefault::Value("300"),
        meaning: "A delivery whose attempt timestamp is further than this from now is refused with 401 (Plain retries with a freshly signed body).",
        example: "300",
    },
    Setting {
        key: "plain.default_tier",
        default: SettingDefault::Value("\"free\""),
        meaning: "Tier (`free`, `pro`, `enterprise`) when `PLAIN_API_KEY` is unset or Plain has none for the thread.",
        example: "\"pro\"",
    },
    Setting {
        key: "plain.default_arr_usd",
        default: SettingDefault::Unset,
        meaning: "ARR in USD when enrichment finds none; unset: no ARR.",
        example: "0.0",
    },
    Setting {
        key: "plain.enrichment_attempts",
        default: SettingDefault::Value("3"),
        meaning: "Failed enrichment attempts (GraphQL down) before the ticket is decided with the defaults, flagged `enrichment_failed`.",
        example: "3",
    },
    Setting {
        key: "plain.tier_from",
        default: SettingDefault::Value("[\"thread\", \"tenant\", \"company\"]"),
        meaning: "Where enrichment reads the tier, first match wins: `thread` (`thread.tier`, tier source `plain.thread`), `tenant` (the tenant's `tier_tenant_field`, then its tier: `plain.tenant`), `company` (`customer.company.tier`: `plain.company`). A tier object counts by its `externalId` or `name` spelling `free`, `pro` or `enterprise`.",
        example: "[\"company\", \"thread\"]",
    },
    Setting {
        key: "plain.tier_tenant_field",
        default: SettingDefault::Unset,
        meaning: "Tenant field (`externalFieldId`) holding the tier as text, read under `tenant` in `tier_from`; unset: only the tenant's own tier.",
        example: "\"plan\"",
    },
    Setting {
        key: "plain.arr_tenant_field",
        default: SettingDefault::Unset,
        meaning: "Tenant field (`externalFieldId`, a number) holding the ARR in USD, read before `customer.company.contractValue`; unset: the contract value only.",
        example: "\"arr_usd\"",
    },
    Setting {
        key: "plain.timeout_secs",
        default: SettingDefault::Value("8"),
        meaning: "Per-request timeout of the Plain GraphQL client. The longer of this and `pylon.timeout_secs` is also how long after `worker.stale_after_secs` a dead process's note is taken over, so a request it had in flight has landed or died.",
        example: "8",
    },
    Setting {
        key: "pylon.api_url",
        default: SettingDefault::Value("\"https://api.usepylon.com\""),
        meaning: "Pylon REST base URL, when `PYLON_API_URL` is unset.",
        example: "\"https://api.usepylon.com\"",
    },
    Setting {
        key: "pylon.default_tier",
        default: SettingDefault::Value("\"free\""),
        meaning: "Tier of Pylon tickets whose account names none (or is not read, or could not be read).",
        example: "\"pro\"",
    },
    Setting {
        key: "pylon.default_arr_usd",
        default: SettingDefault::Unset,
        meaning: "ARR of Pylon tickets whose account names none; unset: no ARR.",
        example: "0.0",
    },
    Setting {
        key: "pylon.account_tier_field",
        default: SettingDefault::Unset,
        meaning: "Slug of the account custom field holding the tier: the issue's account is read (`GET /accounts/{id}`, tier source `pylon.account`). Unset (and no `account_arr_field`): the account is not read.",
        example: "\"plan\"",
    },
    Setting {
        key: "pylon.account_arr_field",
        default: SettingDefault::Unset,
        meaning: "Slug of the account custom field holding the ARR in USD (a number, or text such as `120000`).",
        example: "\"arr\"",
    },
    Setting {
        key: "pylon.tier_values",
        default: SettingDefault::Value("{}"),
        meaning: "The tier field's values as tiers (`{ \"Enterprise Annual\" = \"enterprise\" }`, matched ignoring case); a value not listed counts when it spells `free`, `pro` or `enterprise`.",
        example: "{ \"Enterprise Annual\" = \"enterprise\", \"Growth\" = \"pro\" }",
    },
    Setting {
        key: "pylon.enrichment_attempts",
        default: SettingDefault::Value("3"),
        meaning: "Failed account reads (Pylon down, rate limited) before the ticket is decided with `default_tier`, flagged `enrichment_failed`.",
        example: "3",
    },
    Setting {
        key: "pylon.rate_share",
        default: SettingDefault::Value("1.0"),
        meaning: "This replica's share of Pylon's per-endpoint rate limits, in (0, 1]: with N replicas set `1/N`.",
        example: "0.5",
    },
    Setting {
        key: "pylon.timeout_secs",
        default: SettingDefault::Value("8"),
        meaning: "Per-request timeout of the Pylon client (see `plain.timeout_secs` for the note takeover it also sets).",
        example: "8",
    },
    Setting {
        key: "actions.api_tool",
        default: SettingDefault::Unset,
        meaning: "Route gRPC `Route` tickets back through `\"plain\"` or `\"pylon\"` (their ids must be that tool's); unset: they are decided and logged only.",
        example: "\"plain\"",
    },
    Setting {
        key: "routes.<route>.plain.label_type_ids",
        default: SettingDefault::Value("[]"),
        meaning: "Plain label types (`lt_…`) added for route `<route>` (`bot`, `human`, `engineering`); empty adds none.",
        example: "[\"lt_example\"]",
    },
    Setting {
        key: "routes.<route>.plain.priority",
        default: SettingDefault::Derived("engineering 0, human 1, bot 2"),
        meaning: "Plain thread priority for the route, 0 (urgent) … 3 (low).",
        example: "2",
    },
    Setting {
        key: "routes.<route>.plain.assignee_user_id",
        default: SettingDefault::Unset,
        meaning: "Plain user (`u_…`) to assign; unset: not assigned.",
        example: "\"u_oncall\"",
    },
    Setting {
        key: "routes.<route>.pylon.tags",
        default: SettingDefault::Value("[]"),
        meaning: "Pylon tags added for the route (merged with the issue's tags).",
        example: "[\"escalator\"]",
    },
    Setting {
        key: "routes.<route>.pylon.team_id",
        default: SettingDefault::Unset,
        meaning: "Pylon team to set; unset: unchanged.",
        example: "\"team_support\"",
    },
    Setting {
        key: "routes.<route>.pylon.assignee_id",
        default: SettingDefault::Unset,
        meaning: "Pylon assignee to set; unset: unchanged.",
        example: "\"user_oncall\"",
    },
];

/// The default per-request timeout of both ticketing clients, in seconds. It also sets how long
/// a dead process's note waits before it is taken over (`worker.stale_after_secs` plus this), so
/// it is kept short enough that a `kill -9` recovers within 15 s of the restart on the defaults
/// (6 + 8 s), and long enough for a tool's slow answer (GraphQL mutations answer in well under a
/// second normally).
pub const DEFAULT_TIMEOUT_SECS: u64 = 8;

/// Default Plain GraphQL endpoint.
pub const DEFAULT_PLAIN_API_URL: &str = "https://core-api.uk.plain.com/graphql/v1";
/// Default Pylon REST base URL.
pub const DEFAULT_PYLON_API_URL: &str = "https://api.usepylon.com";

/// The Plain adapter.
#[derive(Debug, Clone)]
pub struct PlainSettings {
    /// `PLAIN_API_URL`: the GraphQL endpoint.
    pub api_url: String,
    /// `PLAIN_API_KEY` (machine-user key). Unset: no enrichment and no routing back.
    pub api_key: Option<SecretString>,
    /// `PLAIN_WEBHOOK_SECRET`. Unset: `/webhooks/plain` refuses every request.
    pub webhook_secret: Option<SecretString>,
    /// `PLAIN_WEBHOOK_SECRET_PREVIOUS`: also accepted while a secret is rotated, so deliveries
    /// signed before the change still verify. Needs `PLAIN_WEBHOOK_SECRET`.
    pub webhook_secret_previous: Option<SecretString>,
    /// Event types that carry a new ticket (`[plain] event_types`).
    pub event_types: Vec<String>,
    /// How far the delivery-attempt timestamp may be from now.
    pub replay_window: Duration,
    /// Tier when enrichment is off or finds none.
    pub default_tier: Tier,
    /// ARR when enrichment is off or finds none.
    pub default_arr_usd: Option<f64>,
    /// Failed enrichment attempts before deciding with the defaults (never drop a ticket).
    pub enrichment_attempts: u32,
    /// Per-request timeout of the GraphQL client.
    pub timeout: Duration,
    /// Where enrichment reads the tier, first match wins (`[plain] tier_from`).
    pub tier_from: Vec<PlainTierFrom>,
    /// The tenant field holding the tier as text.
    pub tier_tenant_field: Option<String>,
    /// The tenant field holding the ARR in USD.
    pub arr_tenant_field: Option<String>,
}

/// A place of a Plain thread that can name the tier (`[plain] tier_from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainTierFrom {
    /// `thread.tier`.
    Thread,
    /// `thread.tenant`: the tier tenant field, then the tenant's tier.
    Tenant,
    /// `thread.customer.company.tier`.
    Company,
}

impl PlainTierFrom {
    fn parse(key: &str, v: &str) -> Result<Self, ConfigError> {
        match v.trim().to_ascii_lowercase().as_str() {
            "thread" => Ok(Self::Thread),
            "tenant" => Ok(Self::Tenant),
            "company" => Ok(Self::Company),
            _ => Err(invalid(
                key,
                format!("{v:?} is not one of thread, tenant, company"),
            )),
        }
    }
}

/// The Pylon adapter.
#[derive(Debug, Clone)]
pub struct PylonSettings {
    /// `PYLON_API_URL`.
    pub api_url: String,
    /// `PYLON_API_TOKEN`. Needed to read issues, so unset refuses the webhook too.
    pub api_token: Option<SecretString>,
    /// `PYLON_WEBHOOK_SECRET`. Unset: `/webhooks/pylon` refuses every request.
    pub webhook_secret: Option<SecretString>,
    /// `PYLON_WEBHOOK_SECRET_PREVIOUS`: the old webhook's secret, also accepted while both
    /// webhooks deliver during a rotation. Needs `PYLON_WEBHOOK_SECRET`.
    pub webhook_secret_previous: Option<SecretString>,
    /// Tier of Pylon tickets.
    pub default_tier: Tier,
    /// ARR of Pylon tickets.
    pub default_arr_usd: Option<f64>,
    /// This replica's share of Pylon's per-endpoint rate limits (0 < share <= 1).
    pub rate_share: f64,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The account custom field holding the tier.
    pub account_tier_field: Option<String>,
    /// The account custom field holding the ARR.
    pub account_arr_field: Option<String>,
    /// Tier field values as tiers, keys lowercased.
    pub tier_values: BTreeMap<String, Tier>,
    /// Failed account reads before deciding with the defaults.
    pub enrichment_attempts: u32,
}

/// The default Plain priority of a severity (0 urgent … 3 low), for a route without
/// `[routes.<route>.plain] priority`.
pub fn default_priority(severity: Severity) -> u8 {
    match severity {
        Severity::OnFire => 0,
        Severity::Urgent => 1,
        Severity::Routine => 2,
    }
}

/// Where a route lands in Plain.
#[derive(Debug, Clone, PartialEq)]
pub struct PlainTarget {
    /// Label types to add (`labelTypeIds`); empty adds none.
    pub label_type_ids: Vec<String>,
    /// Thread priority, 0 (urgent) … 3 (low).
    pub priority: u8,
    /// A user to assign, if any.
    pub assignee_user_id: Option<String>,
}

/// Where a route lands in Pylon.
#[derive(Debug, Clone, PartialEq)]
pub struct PylonTarget {
    /// Tags to add (merged with the current tags).
    pub tags: Vec<String>,
    /// Team to set, if any.
    pub team_id: Option<String>,
    /// Assignee to set, if any.
    pub assignee_id: Option<String>,
}

/// The per-route targets.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteTargets {
    plain: BTreeMap<Route, PlainTarget>,
    pylon: BTreeMap<Route, PylonTarget>,
}

impl RouteTargets {
    /// The Plain target of `route`.
    pub fn plain(&self, route: Route) -> &PlainTarget {
        // Every route is filled in by `load`.
        &self.plain[&route]
    }
    /// The Pylon target of `route`.
    pub fn pylon(&self, route: Route) -> &PylonTarget {
        &self.pylon[&route]
    }
    /// Every route's Plain target.
    pub fn plain_targets(&self) -> impl Iterator<Item = &PlainTarget> {
        self.plain.values()
    }
    /// Every route's Pylon target.
    pub fn pylon_targets(&self) -> impl Iterator<Item = &PylonTarget> {
        self.pylon.values()
    }
}

/// Everything the bridge needs.
#[derive(Debug, Clone)]
pub struct TicketingSettings {
    /// Plain.
    pub plain: PlainSettings,
    /// Pylon.
    pub pylon: PylonSettings,
    /// Per-route targets.
    pub routes: RouteTargets,
    /// The tool `api` tickets are routed back through (`[actions] api_tool`); unset: `api`
    /// tickets are decided and logged only.
    pub api_tool: Option<Source>,
}

impl TicketingSettings {
    /// The longest a request to either tool can take before its client gives up (the longer of
    /// `plain.timeout_secs` and `pylon.timeout_secs`): after that, whatever a dead holder had
    /// in flight has landed or died.
    pub fn request_timeout(&self) -> std::time::Duration {
        self.plain.timeout.max(self.pylon.timeout)
    }
}

/// `[plain]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilePlain {
    api_url: Option<String>,
    event_types: Option<Vec<String>>,
    replay_window_secs: Option<u64>,
    default_tier: Option<String>,
    default_arr_usd: Option<f64>,
    enrichment_attempts: Option<u32>,
    timeout_secs: Option<u64>,
    tier_from: Option<Vec<String>>,
    tier_tenant_field: Option<String>,
    arr_tenant_field: Option<String>,
}

/// `[pylon]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilePylon {
    api_url: Option<String>,
    default_tier: Option<String>,
    default_arr_usd: Option<f64>,
    rate_share: Option<f64>,
    timeout_secs: Option<u64>,
    account_tier_field: Option<String>,
    account_arr_field: Option<String>,
    tier_values: Option<BTreeMap<String, String>>,
    enrichment_attempts: Option<u32>,
}

/// `[routes.<route>]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileRoute {
    #[serde(default)]
    plain: FilePlainTarget,
    #[serde(default)]
    pylon: FilePylonTarget,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePlainTarget {
    #[serde(default)]
    label_type_ids: Vec<String>,
    priority: Option<u8>,
    assignee_user_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePylonTarget {
    #[serde(default)]
    tags: Vec<String>,
    team_id: Option<String>,
    assignee_id: Option<String>,
}

/// The bridge's tables of the TOML file.
#[derive(Debug, Default)]
pub(crate) struct FileTicketing {
    pub(crate) plain: FilePlain,
    pub(crate) pylon: FilePylon,
    /// `[actions] api_tool` (the rest of `[actions]` is the worker's).
    pub(crate) api_tool: Option<String>,
    pub(crate) routes: BTreeMap<String, FileRoute>,
}

fn tier(key: &str, v: Option<String>) -> Result<Tier, ConfigError> {
    match v {
        None => Ok(Tier::Free),
        Some(t) => Tier::parse(key, &t).map_err(|e| invalid(key, e.to_string())),
    }
}

impl TicketingSettings {
    /// Loads the bridge settings from the environment and the file's tables.
    ///
    /// # Errors
    /// [`ConfigError`] naming the bad key.
    pub(crate) fn load(env: &dyn EnvSource, file: FileTicketing) -> Result<Self, ConfigError> {
        let secret = |k: &str| env.get(k).map(SecretString::from);
        // A previous secret is the second half of a rotation: alone it would leave the route
        // refusing everything while the operator believes it accepts the old deliveries.
        let previous = |current: &str, k: &str| match (env.get(current), secret(k)) {
            (None, Some(_)) => Err(invalid(k, format!("is set but {current} is not"))),
            (_, p) => Ok(p),
        };
        let p = file.plain;
        let plain = PlainSettings {
            api_url: http_url(env, "PLAIN_API_URL", p.api_url, DEFAULT_PLAIN_API_URL)?,
            api_key: secret("PLAIN_API_KEY"),
            webhook_secret: secret("PLAIN_WEBHOOK_SECRET"),
            webhook_secret_previous: previous(
                "PLAIN_WEBHOOK_SECRET",
                "PLAIN_WEBHOOK_SECRET_PREVIOUS",
            )?,
            event_types: p
                .event_types
                .unwrap_or_else(|| vec!["thread.thread_created".to_owned()]),
            replay_window: Duration::from_secs(p.replay_window_secs.unwrap_or(300)),
            default_tier: tier("plain.default_tier", p.default_tier)?,
            default_arr_usd: amount("plain.default_arr_usd", p.default_arr_usd)?,
            enrichment_attempts: p.enrichment_attempts.unwrap_or(3).max(1),
            timeout: Duration::from_secs(p.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS)),
            tier_from: match p.tier_from {
                None => vec![
                    PlainTierFrom::Thread,
                    PlainTierFrom::Tenant,
                    PlainTierFrom::Company,
                ],
                Some(list) => list
                    .iter()
                    .map(|v| PlainTierFrom::parse("plain.tier_from", v))
                    .collect::<Result<_, _>>()?,
            },
            tier_tenant_field: non_empty(p.tier_tenant_field),
            arr_tenant_field: non_empty(p.arr_tenant_field),
        };
        let y = file.pylon;
        let rate_share = y.rate_share.unwrap_or(1.0);
        if !(rate_share > 0.0 && rate_share <= 1.0) {
            return Err(ConfigError::Invalid {
                key: "pylon.rate_share".into(),
                reason: format!("{rate_share} is not within (0, 1]"),
            });
        }
        let pylon = PylonSettings {
            api_url: http_url(env, "PYLON_API_URL", y.api_url, DEFAULT_PYLON_API_URL)?,
            api_token: secret("PYLON_API_TOKEN"),
            webhook_secret: secret("PYLON_WEBHOOK_SECRET"),
            webhook_secret_previous: previous(
                "PYLON_WEBHOOK_SECRET",
                "PYLON_WEBHOOK_SECRET_PREVIOUS",
            )?,
            default_tier: tier("pylon.default_tier", y.default_tier)?,
            default_arr_usd: amount("pylon.default_arr_usd", y.default_arr_usd)?,
            rate_share,
            timeout: Duration::from_secs(y.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS)),
            account_tier_field: non_empty(y.account_tier_field),
            account_arr_field: non_empty(y.account_arr_field),
            tier_values: y
                .tier_values
                .unwrap_or_default()
                .into_iter()
                .map(|(value, t)| {
                    let key = format!("pylon.tier_values.{value}");
                    Tier::parse(&key, &t)
                        .map(|tier| (value.trim().to_lowercase(), tier))
                        .map_err(|e| invalid(&key, e.to_string()))
                })
                .collect::<Result<_, _>>()?,
            enrichment_attempts: y.enrichment_attempts.unwrap_or(3).max(1),
        };
        let api_tool = match non_empty(file.api_tool) {
            None => None,
            Some(t) => match Source::parse("actions.api_tool", &t) {
                Ok(s @ (Source::Plain | Source::Pylon)) => Some(s),
                Ok(Source::Api) | Err(_) => {
                    return Err(ConfigError::Invalid {
                        key: "actions.api_tool".into(),
                        reason: format!("{t:?} is not one of plain, pylon"),
                    });
                }
            },
        };
        let mut plain_routes = BTreeMap::new();
        let mut pylon_routes = BTreeMap::new();
        for route in Route::ALL {
            plain_routes.insert(
                *route,
                PlainTarget {
                    label_type_ids: Vec::new(),
                    priority: default_priority(route.severity()),
                    assignee_user_id: None,
                },
            );
            pylon_routes.insert(
                *route,
                PylonTarget {
                    tags: Vec::new(),
                    team_id: None,
                    assignee_id: None,
                },
            );
        }
        for (name, r) in file.routes {
            let key = format!("routes.{name}");
            let route = Route::parse(&key, &name).map_err(|e| ConfigError::Invalid {
                key: key.clone(),
                reason: e.to_string(),
            })?;
            let priority = r
                .plain
                .priority
                .unwrap_or(default_priority(route.severity()));
            if priority > 3 {
                return Err(ConfigError::Invalid {
                    key: format!("{key}.plain.priority"),
                    reason: format!("{priority} is not within 0 (urgent) ..= 3 (low)"),
                });
            }
            plain_routes.insert(
                route,
                PlainTarget {
                    label_type_ids: r.plain.label_type_ids,
                    priority,
                    assignee_user_id: non_empty(r.plain.assignee_user_id),
                },
            );
            pylon_routes.insert(
                route,
                PylonTarget {
                    tags: r.pylon.tags,
                    team_id: non_empty(r.pylon.team_id),
                    assignee_id: non_empty(r.pylon.assignee_id),
                },
            );
        }
        Ok(Self {
            plain,
            pylon,
            routes: RouteTargets {
                plain: plain_routes,
                pylon: pylon_routes,
            },
            api_tool,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use secrecy::ExposeSecret as _;

    use super::*;

    /// The tables of a file this section reads (the whole file's other tables are ignored).
    #[derive(Default, Deserialize)]
    struct Tables {
        #[serde(default)]
        plain: FilePlain,
        #[serde(default)]
        pylon: FilePylon,
        #[serde(default)]
        actions: Actions,
        #[serde(default)]
        routes: BTreeMap<String, FileRoute>,
    }

    #[derive(Default, Deserialize)]
    struct Actions {
        api_tool: Option<String>,
    }

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<TicketingSettings, ConfigError> {
        let t: Tables = crate::env::file_tables(toml)?;
        let env: BTreeMap<&str, &str> = env.iter().copied().collect();
        let file = FileTicketing {
            plain: t.plain,
            pylon: t.pylon,
            api_tool: t.actions.api_tool,
            routes: t.routes,
        };
        TicketingSettings::load(&env, file)
    }

    #[test]
    fn the_shipped_example_loads() {
        let text = include_str!("../../deploy/escalator.example.toml");
        let s = load(text, &[]).unwrap();
        assert_eq!(
            s.routes.plain(Route::Engineering).label_type_ids,
            ["lt_REPLACE_engineering"]
        );
        assert_eq!(s.routes.plain(Route::Bot).priority, 2);
        assert_eq!(
            s.routes.pylon(Route::Human).tags,
            ["escalator", "escalator-human"]
        );
        assert_eq!(s.plain.event_types, ["thread.thread_created"]);
        assert_eq!(s.plain.api_url, DEFAULT_PLAIN_API_URL);
        assert_eq!(s.api_tool, None);
    }

    #[test]
    fn env_wins_and_secrets_come_only_from_env() {
        let s = load(
            "[plain]\napi_url = \"https://file.example/graphql\"\n",
            &[
                ("PLAIN_API_URL", "http://127.0.0.1:1/graphql/"),
                ("PLAIN_WEBHOOK_SECRET", "s3cret"),
                ("PYLON_API_TOKEN", "tok"),
            ],
        )
        .unwrap();
        assert_eq!(s.plain.api_url, "http://127.0.0.1:1/graphql");
        assert_eq!(s.plain.webhook_secret.unwrap().expose_secret(), "s3cret");
        assert!(s.plain.api_key.is_none());
        assert_eq!(s.pylon.api_token.unwrap().expose_secret(), "tok");
        assert!(
            !format!("{:?}", load("", &[("PLAIN_API_KEY", "k-123")]).unwrap()).contains("k-123")
        );
    }

    #[test]
    fn defaults_cover_every_route() {
        let s = load("", &[]).unwrap();
        assert_eq!(s.routes.plain(Route::Engineering).priority, 0);
        assert_eq!(s.routes.plain(Route::Human).priority, 1);
        assert!(s.routes.pylon(Route::Bot).tags.is_empty());
        assert_eq!(s.pylon.api_url, DEFAULT_PYLON_API_URL);
        assert_eq!(s.plain.replay_window, Duration::from_secs(300));
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = load("[routes.urgent.plain]\npriority = 1\n", &[]).unwrap_err();
        assert!(e.to_string().starts_with("routes.urgent: "), "{e}");
        let e = load("[routes.bot.plain]\npriority = 7\n", &[]).unwrap_err();
        assert!(
            e.to_string().starts_with("routes.bot.plain.priority: "),
            "{e}"
        );
        let e = load("[actions]\napi_tool = \"api\"\n", &[]).unwrap_err();
        assert!(e.to_string().starts_with("actions.api_tool: "), "{e}");
        let e = load("[pylon]\nrate_share = 0\n", &[]).unwrap_err();
        assert!(e.to_string().starts_with("pylon.rate_share: "), "{e}");
        let e = load("", &[("PYLON_API_URL", "ftp://x")]).unwrap_err();
        assert_eq!(e.to_string(), "PYLON_API_URL: must be an http(s) URL");
        let e = load("[routes.bot.plain]\nlabel_type_id = [\"x\"]\n", &[]).unwrap_err();
        assert!(e.to_string().contains("label_type_id"), "{e}");
    }
}
