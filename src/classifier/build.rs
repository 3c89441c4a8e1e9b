//! The classifiers of one process, built from the Claude settings, the prompt and the labelled
//! examples: the offline backend (always), the Claude backend when a key is set. `serve`,
//! `classify`, `eval` and the tests all build theirs here (through
//! `crate::config::Settings::classifiers`), so they classify alike.

use std::sync::Arc;

use super::{
    Classifier, ClaudeClassifier, Decider, OfflineClassifier,
    claude::{self, CacheCheck, ClaudeSettings, SetupError, TokenSource, models::ModelInfo},
};
use crate::{examples::Example, prompt::Prompt};

/// The classifiers of one process and the prompt both classify with.
#[derive(Clone)]
pub struct Classifiers {
    /// The prompt (template + labels) both backends classify with.
    pub prompt: Prompt,
    /// The rule-based backend: alone without a key, else the fallback.
    pub offline: Arc<OfflineClassifier>,
    /// The Claude backend, when a key is set.
    pub claude: Option<Arc<ClaudeClassifier>>,
}

impl Classifiers {
    /// Builds the backends for `prompt` (rendered from `examples`); `model_info` is the
    /// start-up check's answer about the model ([`claude::models::check_model`]), if it ran.
    /// Does no I/O: without a key the cached prefix is estimated at chars/4 and a prompt below
    /// the configured model's cache minimum is logged, so it is noticed before the key is
    /// switched on.
    ///
    /// # Errors
    /// When the Claude client cannot be built.
    pub fn build(
        settings: &ClaudeSettings,
        prompt: Prompt,
        examples: &[Example],
        model_info: Option<&ModelInfo>,
    ) -> Result<Self, SetupError> {
        let offline = Arc::new(
            OfflineClassifier::new(examples, prompt.version())
                .with_taxonomy(prompt.taxonomy().clone()),
        );
        let model = &settings.model;
        if settings.api_key.is_none() {
            let check = CacheCheck {
                tokens: claude::price::estimate_tokens(prompt.system()),
                source: TokenSource::Estimate,
                minimum: claude::price::min_cacheable_tokens(model),
            };
            if !check.cacheable() {
                claude::log_cache_check(model, &check);
            }
            return Ok(Self {
                prompt,
                offline,
                claude: None,
            });
        }
        let backend = Arc::new(ClaudeClassifier::with_model(
            settings,
            prompt.clone(),
            model_info,
        )?);
        tracing::info!(
            model = %model,
            api_version = settings.api_version.as_str(),
            base_url = %settings.base_url,
            "ANTHROPIC_API_KEY is set: Claude classifies, the offline classifier is the fallback"
        );
        Ok(Self {
            prompt,
            offline,
            claude: Some(backend),
        })
    }

    /// The fallback policy over these backends.
    pub fn decider(&self) -> Decider {
        let primary = self.claude.clone().map(|c| c as Arc<dyn Classifier>);
        Decider::new(primary, self.offline.clone())
    }

    /// Inside a runtime (serve), counts the cached prefix with `count_tokens` in the
    /// background, so start-up does not wait on the API; outside one (or without a key),
    /// nothing.
    pub fn check_cache_in_background(&self) {
        if let (Some(claude), Ok(runtime)) = (&self.claude, tokio::runtime::Handle::try_current()) {
            let check = claude.clone();
            runtime.spawn(async move { check.check_cache().await });
        }
    }
}
