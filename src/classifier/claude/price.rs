//! What a call costs and what a model caches. The Messages API returns token counts but no money
//! amount, so cost is computed here from a price table (reference section 8, overridable in the
//! TOML file), and the prompt-cache minimum is checked at start (reference section 7).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How long the cached system block lives after its last use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CacheTtl {
    /// Five minutes: for traffic that hits the prefix more often than every 5 minutes.
    #[serde(rename = "5m")]
    FiveMinutes,
    /// One hour (the default): support tickets arrive minutes apart, and a write costs 2× input
    /// instead of 1.25× but is needed far less often.
    #[default]
    #[serde(rename = "1h")]
    OneHour,
}

/// Multiplier on the base input price for a write to the 5-minute cache.
pub const CACHE_WRITE_5M_FACTOR: f64 = 1.25;
/// Multiplier on the base input price for a write to the 1-hour cache.
pub const CACHE_WRITE_1H_FACTOR: f64 = 2.0;
/// Multiplier on the base input price for a cache read.
pub const CACHE_READ_FACTOR: f64 = 0.1;
/// Share of the list price billed when `usage.service_tier` is `batch`.
pub const BATCH_FACTOR: f64 = 0.5;

/// USD per million tokens for one model. Only `input` and `output` are required; the cache
/// prices default to the published multipliers of `input`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Uncached input tokens.
    pub input: f64,
    /// Output tokens (thinking included).
    pub output: f64,
    /// A write to the 5-minute cache (default 1.25 × `input`).
    #[serde(default)]
    pub cache_write_5m: Option<f64>,
    /// A write to the 1-hour cache (default 2 × `input`).
    #[serde(default)]
    pub cache_write_1h: Option<f64>,
    /// A cache read (default 0.1 × `input`).
    #[serde(default)]
    pub cache_read: Option<f64>,
}

impl Price {
    /// A price with the cache prices derived from `input`.
    pub const fn new(input: f64, output: f64) -> Self {
        Self {
            input,
            output,
            cache_write_5m: None,
            cache_write_1h: None,
            cache_read: None,
        }
    }

    fn write_5m(&self) -> f64 {
        self.cache_write_5m
            .unwrap_or(self.input * CACHE_WRITE_5M_FACTOR)
    }

    fn write_1h(&self) -> f64 {
        self.cache_write_1h
            .unwrap_or(self.input * CACHE_WRITE_1H_FACTOR)
    }

    fn read(&self) -> f64 {
        self.cache_read.unwrap_or(self.input * CACHE_READ_FACTOR)
    }

    /// The cost in USD of one call with `tokens`.
    pub fn cost_usd(&self, tokens: &TokenCounts) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let per_million = tokens.input as f64 * self.input
            + tokens.cache_write_5m as f64 * self.write_5m()
            + tokens.cache_write_1h as f64 * self.write_1h()
            + tokens.cache_read as f64 * self.read()
            + tokens.output as f64 * self.output;
        let list = per_million / 1_000_000.0;
        if tokens.batch {
            list * BATCH_FACTOR
        } else {
            list
        }
    }
}

/// The billed token counts of one call, with cache writes split by TTL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    /// Uncached input after the last cache breakpoint.
    pub input: u64,
    /// Output, thinking included.
    pub output: u64,
    /// Served from the cache.
    pub cache_read: u64,
    /// Written to the 5-minute cache.
    pub cache_write_5m: u64,
    /// Written to the 1-hour cache.
    pub cache_write_1h: u64,
    /// Billed at the Batch discount.
    pub batch: bool,
}

impl TokenCounts {
    /// Splits a cache-write total the API did not split, at the TTL the request asked for.
    pub fn with_unsplit_writes(mut self, total: u64, ttl: CacheTtl) -> Self {
        match ttl {
            CacheTtl::FiveMinutes => self.cache_write_5m = total,
            CacheTtl::OneHour => self.cache_write_1h = total,
        }
        self
    }

    /// All cache writes, whatever their TTL.
    pub fn cache_write(&self) -> u64 {
        self.cache_write_5m + self.cache_write_1h
    }
}

/// Prices from reference section 8 (USD per million tokens, late 2026). Haiku 5.5 is priced at
/// its ≤100K-token rate: a ticket is capped at 32K characters, so a prompt never passes 100K.
const BUILTIN: &[(&str, Price)] = &[
    ("claude-sonnet-4-6", Price::new(3.0, 15.0)),
    ("claude-sonnet-4-5", Price::new(3.0, 15.0)),
    ("claude-haiku-4-5", Price::new(1.0, 5.0)),
    ("claude-haiku-5-5", Price::new(0.10, 0.50)),
    (
        "claude-sonnet-5-5",
        Price {
            cache_read: Some(0.10),
            ..Price::new(2.0, 10.0)
        },
    ),
    ("claude-opus-4-5", Price::new(5.0, 25.0)),
    ("claude-opus-4-6", Price::new(5.0, 25.0)),
    ("claude-opus-4-7", Price::new(5.0, 25.0)),
    ("claude-opus-4-8", Price::new(5.0, 25.0)),
];

/// The price table: built-in prices, overridden per model id by the `[claude.prices]` TOML
/// section.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable {
    overrides: BTreeMap<String, Price>,
}

impl PriceTable {
    /// The built-in table with `overrides` on top.
    pub fn new(overrides: BTreeMap<String, Price>) -> Self {
        Self { overrides }
    }

    /// The price of `model`; a dated id (`claude-haiku-4-5-20251001`) falls back to its
    /// undated one. `None` for a model the table does not know.
    pub fn get(&self, model: &str) -> Option<Price> {
        if let Some(p) = self.overrides.get(model) {
            return Some(*p);
        }
        let base = undated(model);
        self.overrides
            .get(base)
            .copied()
            .or_else(|| BUILTIN.iter().find(|(id, _)| *id == base).map(|(_, p)| *p))
    }
}

/// `claude-haiku-4-5-20251001` -> `claude-haiku-4-5`; other ids unchanged.
fn undated(model: &str) -> &str {
    match model.rsplit_once('-') {
        Some((base, date)) if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => model,
    }
}

/// Below this many tokens a prefix is not cached by an unknown model: 4,096 clears every
/// published minimum.
pub const SAFE_CACHE_MINIMUM: u32 = 4_096;

/// The minimum cacheable prompt length of `model` in tokens (reference section 7). Below it
/// nothing is cached and no error is returned. Unknown models get [`SAFE_CACHE_MINIMUM`].
///
/// Sonnet 4.6 is checked against 2,048: the docs disagree (1,024 vs 2,048) and a bug report saw
/// caching start at 2,048, so a block between the two gets a warning.
pub fn min_cacheable_tokens(model: &str) -> u32 {
    let m = undated(model);
    let family = |prefix: &str| m == prefix || m.starts_with(&format!("{prefix}-"));
    if m == "claude-haiku-5-5"
        || m == "claude-opus-5"
        || m == "claude-opus-5-5"
        || family("claude-fable-5")
        || (family("claude-mythos-5"))
    {
        512
    } else if m == "claude-sonnet-4-5" || m == "claude-sonnet-5" || m == "claude-opus-4-8" {
        1_024
    } else if m == "claude-sonnet-4-6" || m == "claude-opus-4-7" || m == "claude-mythos-preview" {
        2_048
    } else {
        SAFE_CACHE_MINIMUM
    }
}

/// Whether `model` takes `output_config.effort`. Only the models the reference names as
/// lacking effort levels are excluded; for others an operator who sets `effort` gets it sent.
pub fn takes_effort(model: &str) -> bool {
    !matches!(undated(model), "claude-haiku-4-5" | "claude-sonnet-4-5")
}

/// The chars/4 estimate used when `count_tokens` cannot be asked.
pub fn estimate_tokens(text: &str) -> u32 {
    u32::try_from(text.chars().count().div_ceil(4)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_follows_the_reference_formula() {
        let sonnet = PriceTable::default().get("claude-sonnet-4-6").unwrap();
        // 5,500 read + 300 input + 60 output on Sonnet 4.6:
        // 300×3 + 5,500×0.30 + 60×15 = 900 + 1,650 + 900 = 3,450 per million = $0.00345.
        let t = TokenCounts {
            input: 300,
            output: 60,
            cache_read: 5_500,
            ..TokenCounts::default()
        };
        assert!((sonnet.cost_usd(&t) - 0.003_45).abs() < 1e-12);
        // A 1h write costs 2× input; a 5m write 1.25×; batch halves everything.
        let w = TokenCounts::default().with_unsplit_writes(1_000_000, CacheTtl::OneHour);
        assert!((sonnet.cost_usd(&w) - 6.0).abs() < 1e-9);
        let w = TokenCounts {
            batch: true,
            ..TokenCounts::default().with_unsplit_writes(1_000_000, CacheTtl::FiveMinutes)
        };
        assert!((sonnet.cost_usd(&w) - 3.75 / 2.0).abs() < 1e-9);
    }

    #[test]
    fn dated_ids_and_overrides_resolve() {
        let table = PriceTable::new(BTreeMap::from([(
            "claude-haiku-5-5".to_owned(),
            Price::new(0.2, 1.0),
        )]));
        assert_eq!(
            table.get("claude-haiku-4-5-20251001"),
            Some(Price::new(1.0, 5.0))
        );
        assert_eq!(table.get("claude-haiku-5-5"), Some(Price::new(0.2, 1.0)));
        assert_eq!(table.get("claude-opus-4-7").map(|p| p.output), Some(25.0));
        assert_eq!(table.get("gpt-4"), None);
        let s55 = table.get("claude-sonnet-5-5").unwrap();
        let read = TokenCounts {
            cache_read: 1_000_000,
            ..TokenCounts::default()
        };
        assert!((s55.cost_usd(&read) - 0.10).abs() < 1e-12);
    }

    #[test]
    fn cache_minimums_per_model() {
        assert_eq!(min_cacheable_tokens("claude-haiku-5-5"), 512);
        assert_eq!(min_cacheable_tokens("claude-haiku-4-5-20251001"), 4_096);
        assert_eq!(min_cacheable_tokens("claude-sonnet-4-6"), 2_048);
        assert_eq!(min_cacheable_tokens("claude-opus-4-8"), 1_024);
        assert_eq!(min_cacheable_tokens("claude-fable-5-1"), 512);
        assert_eq!(min_cacheable_tokens("something-new"), SAFE_CACHE_MINIMUM);
        assert!(!takes_effort("claude-haiku-4-5"));
        assert!(takes_effort("claude-haiku-5-5"));
        assert_eq!(estimate_tokens("abcdefgh"), 2);
        assert_eq!(estimate_tokens("abcdefghi"), 3);
    }
}
