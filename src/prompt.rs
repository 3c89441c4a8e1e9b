//! The classifier prompt: template + labelled examples -> system block, user turn and version.
//!
//! The system block holds definitions and examples only and is byte-identical across tickets, so
//! Anthropic's prompt cache hits; ticket data goes into the user turn and nowhere else.
//!
//! Over 450 lines with its tests: the template, the examples, the labels block and the answer
//! schema all feed one version hash, so they are rendered in one file.

use std::fmt::Write as _;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{
    domain::{DomainError, Route, Sentiment, Severity, TicketContext},
    examples::Example,
    taxonomy::{Kind, Taxonomy},
    weighting::Weighting,
};

/// The template shipped with the binary.
pub const EMBEDDED_TEMPLATE: &str = include_str!("../prompts/classifier.md");
/// The line that separates the system template from the user-turn template.
pub const USER_TURN_MARKER: &str = "<!-- user turn -->";
/// The placeholder in the system template that the rendered examples replace.
pub const EXAMPLES_PLACEHOLDER: &str = "{{examples}}";
/// The placeholder in the system template that the labels block (topics, sentiment, live and
/// shadow categories) replaces; a template without it gets the block at the end of its system
/// part.
pub const LABELS_PLACEHOLDER: &str = "{{labels}}";
/// The name under which prompt versions are reported (`classifier@<hash>`).
pub const PROMPT_NAME: &str = "classifier";

/// The JSON schema the model's answer must match (`output_config.format`): severity, route,
/// confidence, reasoning, topic and sentiment, plus `shadow` when shadow categories are on
/// trial. A struct (not a map), so it serialises in this order and its bytes, part of the prompt
/// version, never depend on map ordering. Within the structured-output limits: every property
/// required, `additionalProperties: false`, enums of strings, no optional properties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnswerSchema {
    #[serde(rename = "type")]
    kind: &'static str,
    properties: AnswerProperties,
    required: Vec<&'static str>,
    #[serde(rename = "additionalProperties")]
    additional_properties: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct AnswerProperties {
    severity: EnumProperty,
    route: EnumProperty,
    confidence: TypeOnly,
    reasoning: TypeOnly,
    topic: EnumProperty,
    sentiment: EnumProperty,
    #[serde(skip_serializing_if = "Option::is_none")]
    shadow: Option<ArrayProperty>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct EnumProperty {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "enum")]
    values: Vec<String>,
}

impl EnumProperty {
    fn of<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            kind: "string",
            values: values.into_iter().map(str::to_owned).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct ArrayProperty {
    #[serde(rename = "type")]
    kind: &'static str,
    items: EnumProperty,
}

impl AnswerSchema {
    /// The schema for `taxonomy`: its topics, the three sentiments, and its shadow categories.
    pub fn new(taxonomy: &Taxonomy) -> Self {
        let shadow: Vec<&str> = taxonomy.shadow().map(|c| c.name.as_str()).collect();
        let mut required = vec![
            "severity",
            "route",
            "confidence",
            "reasoning",
            "topic",
            "sentiment",
        ];
        if !shadow.is_empty() {
            required.push("shadow");
        }
        Self {
            kind: "object",
            properties: AnswerProperties {
                severity: EnumProperty::of(Severity::ALL.iter().map(|s| s.as_str())),
                route: EnumProperty::of(Route::ALL.iter().map(|r| r.as_str())),
                confidence: TypeOnly { kind: "number" },
                reasoning: TypeOnly { kind: "string" },
                topic: EnumProperty::of(taxonomy.topics()),
                sentiment: EnumProperty::of(Sentiment::ALL.iter().map(|s| s.as_str())),
                shadow: (!shadow.is_empty()).then(|| ArrayProperty {
                    kind: "array",
                    items: EnumProperty::of(shadow),
                }),
            },
            required,
            additional_properties: false,
        }
    }

    /// The schema as JSON text, exactly as sent.
    pub fn to_json(&self) -> String {
        // A struct of strings, vectors and booleans always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The labels block of the system prompt for `taxonomy`: the topics, the sentiments, the live
/// categories' definitions and the shadow categories on trial.
pub fn render_labels(taxonomy: &Taxonomy) -> String {
    let mut out = String::from(
        "TOPIC AND SENTIMENT\nAlso label every ticket with one topic and the customer's sentiment. They are recorded and reviewed; they never change the severity or the route.\n",
    );
    let _ = writeln!(
        out,
        "- topic: exactly one of {}. Use other when none fits.",
        taxonomy.topics().join(", ")
    );
    for c in taxonomy.live().filter(|c| c.kind == Kind::Topic) {
        let _ = writeln!(out, "  - {}: {}", c.name, c.definition.trim());
    }
    out.push_str("- sentiment: the customer's tone in their own words: negative, neutral or positive. Use neutral when there is no tone to tell.\n");
    let clauses: Vec<_> = taxonomy
        .live()
        .filter_map(|c| match c.kind {
            Kind::Severity(s) => Some((c, s)),
            Kind::Topic => None,
        })
        .collect();
    if !clauses.is_empty() {
        out.push_str("\nMORE SEVERITY CLAUSES\n");
        for (c, s) in clauses {
            let _ = writeln!(out, "- {s} at least: {} ({})", c.definition.trim(), c.name);
        }
    }
    let shadow: Vec<_> = taxonomy.shadow().collect();
    if !shadow.is_empty() {
        out.push_str("\nSHADOW CATEGORIES\nCategories on trial. List in \"shadow\" the name of each one that fits the ticket, or [] when none does. They never change the severity, the route or the topic.\n");
        for c in shadow {
            let what = match c.kind {
                Kind::Topic => "a topic".to_owned(),
                Kind::Severity(s) => format!("a clause for {s}"),
            };
            let _ = writeln!(out, "- {} ({what}): {}", c.name, c.definition.trim());
        }
    }
    out
}

/// What besides the template and the examples decides the prompt and its version: the labels
/// it asks for (`[labels]`) and the weighting sentences (`[tiers]`). Every place that computes a
/// prompt version (the service, `labels add-from-reviews`, the labels pull request) renders
/// through this, so they all print the version the service runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromptSpec {
    /// The topics, sentiments and categories.
    pub taxonomy: Taxonomy,
    /// The tier and repeat sentences.
    pub weighting: Weighting,
}

impl PromptSpec {
    /// The prompt for `template` and `examples` under this spec.
    ///
    /// # Errors
    /// As [`Prompt::render_with`].
    pub fn render(&self, template: &str, examples: &[Example]) -> Result<Prompt, DomainError> {
        Ok(
            Prompt::render_with(template, examples, &self.taxonomy)?
                .with_weighting(&self.weighting),
        )
    }
}

/// A rendered prompt: what every call sends, and the version every decision records.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    system: String,
    user_template: String,
    version: String,
    /// The digest of template, examples and schema; the version adds the weighting sentences.
    base_digest: Vec<u8>,
    /// Whose `prompt` sentences go into the user turn's `{{policy}}`.
    weighting: Weighting,
    taxonomy: Taxonomy,
    schema: AnswerSchema,
}

impl Prompt {
    /// Renders `template` with `examples` and the default labels ([`Taxonomy::default`]).
    ///
    /// # Errors
    /// As [`Prompt::render_with`].
    pub fn render(template: &str, examples: &[Example]) -> Result<Self, DomainError> {
        Self::render_with(template, examples, &Taxonomy::default())
    }

    /// Renders `template` with `examples` and the labels of `taxonomy`.
    ///
    /// # Errors
    /// When the template lacks the user-turn marker or the examples placeholder, has the labels
    /// placeholder more than once, or when the system part has any other `{{…}}` placeholder
    /// (ticket data must never reach it).
    pub fn render_with(
        template: &str,
        examples: &[Example],
        taxonomy: &Taxonomy,
    ) -> Result<Self, DomainError> {
        let (system_t, user_t) = template.split_once(USER_TURN_MARKER).ok_or_else(|| {
            DomainError::invalid(
                "prompt",
                format!("template has no `{USER_TURN_MARKER}` line"),
            )
        })?;
        if system_t.matches(EXAMPLES_PLACEHOLDER).count() != 1 {
            return Err(DomainError::invalid(
                "prompt",
                format!("the system part must contain `{EXAMPLES_PLACEHOLDER}` exactly once"),
            ));
        }
        if system_t.matches(LABELS_PLACEHOLDER).count() > 1 {
            return Err(DomainError::invalid(
                "prompt",
                format!("the system part may contain `{LABELS_PLACEHOLDER}` at most once"),
            ));
        }
        let rendered = render_examples_with(examples, taxonomy);
        let labels = render_labels(taxonomy);
        let mut system = system_t.replacen(EXAMPLES_PLACEHOLDER, rendered.trim_end(), 1);
        if system.contains(LABELS_PLACEHOLDER) {
            system = system.replacen(LABELS_PLACEHOLDER, labels.trim_end(), 1);
        } else {
            system = format!("{}\n\n{}", system.trim_end(), labels.trim_end());
        }
        let system = system.trim().to_owned();
        if let Some(i) = system_t
            .replace(EXAMPLES_PLACEHOLDER, "")
            .replace(LABELS_PLACEHOLDER, "")
            .find("{{")
        {
            return Err(DomainError::invalid(
                "prompt",
                format!(
                    "the system part has a placeholder other than {EXAMPLES_PLACEHOLDER} at byte {i}"
                ),
            ));
        }
        let mut hasher = Sha256::new();
        hasher.update(system_t.as_bytes());
        hasher.update([0]);
        hasher.update(user_t.as_bytes());
        hasher.update([0]);
        hasher.update(rendered.as_bytes());
        hasher.update([0]);
        hasher.update(labels.as_bytes());
        hasher.update([0]);
        let schema = AnswerSchema::new(taxonomy);
        hasher.update(schema.to_json().as_bytes());
        let base_digest = hasher.finalize().to_vec();
        let weighting = Weighting::default();
        Ok(Self {
            system,
            user_template: user_t.trim().to_owned(),
            version: version_of(&base_digest, &weighting),
            base_digest,
            weighting,
            taxonomy: taxonomy.clone(),
            schema,
        })
    }

    /// The prompt with the `prompt` sentences of `weighting` (`[tiers]`) instead of the
    /// default ones; they are part of the version.
    #[must_use]
    pub fn with_weighting(mut self, weighting: &Weighting) -> Self {
        self.weighting = weighting.clone();
        self.version = version_of(&self.base_digest, &self.weighting);
        self
    }

    /// The labels this prompt asks for (the answer is validated against them).
    pub fn taxonomy(&self) -> &Taxonomy {
        &self.taxonomy
    }

    /// The answer's JSON schema (`output_config.format.schema`).
    pub fn schema(&self) -> &AnswerSchema {
        &self.schema
    }

    /// The system block: definitions and examples, identical for every ticket.
    pub fn system(&self) -> &str {
        &self.system
    }

    /// `classifier@<12 hex of sha256 over template, rendered examples, labels block and output
    /// schema>`: a change of topics or categories is a new version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The user turn for one ticket.
    pub fn user_turn(&self, ctx: &TicketContext) -> String {
        let t = &ctx.ticket;
        let arr = t
            .arr_usd()
            .map_or_else(|| "unknown".to_owned(), |a| format!("{a:.0}"));
        // One pass over the template so text inside the ticket that looks like a placeholder
        // (`{{tier}}` typed by a customer) is never substituted.
        let mut out = String::with_capacity(self.user_template.len() + t.body().len() + 64);
        let mut rest = self.user_template.as_str();
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let name = &after[..end];
            let value: std::borrow::Cow<'_, str> = match name {
                "tier" => t.tier().as_str().into(),
                "arr_usd" => arr.as_str().into(),
                "repeat_count_24h" => ctx.repeat_count_24h.to_string().into(),
                "policy" => policy(&self.weighting, ctx).into(),
                "subject" => one_line(t.subject()).into(),
                "first_message" => one_line(t.body()).into(),
                _ => rest[start..start + 2 + end + 2].into(),
            };
            out.push_str(&value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        out
    }
}

/// `classifier@<12 hex>` over the base digest and every configured weighting sentence.
fn version_of(base: &[u8], weighting: &Weighting) -> String {
    let mut hasher = Sha256::new();
    hasher.update(base);
    for (rule, sentence) in weighting.all_sentences() {
        hasher.update([0]);
        hasher.update(rule.as_bytes());
        hasher.update([0]);
        hasher.update(sentence.as_bytes());
    }
    let digest = hex::encode(hasher.finalize());
    format!("{PROMPT_NAME}@{}", &digest[..12])
}

/// The weighting sentences that apply to the ticket, one line; `none` when none does.
fn policy(weighting: &Weighting, ctx: &TicketContext) -> String {
    let sentences = weighting.sentences(ctx);
    if sentences.is_empty() {
        "none".to_owned()
    } else {
        sentences.join(" ")
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Renders the labelled examples in file order, one block each, with the default labels.
pub fn render_examples(examples: &[Example]) -> String {
    render_examples_with(examples, &Taxonomy::default())
}

/// Renders the labelled examples in file order, one block each. A row's topic is shown when it
/// is one of `taxonomy`'s topics (a topic the answer may not give would teach a wrong answer),
/// its sentiment when it has one (the file's `angry` as `negative`).
pub fn render_examples_with(examples: &[Example], taxonomy: &Taxonomy) -> String {
    let mut out = String::new();
    for e in examples {
        // serde_json escapes the reasoning exactly like the model is asked to write it.
        let mut answer = format!(
            "{{\"severity\":\"{}\",\"route\":\"{}\",\"reasoning\":{}",
            e.severity,
            e.route,
            serde_json::Value::String(e.why.clone())
        );
        if let Some(topic) = e.topic.as_deref().and_then(|t| taxonomy.topic(t)) {
            let _ = write!(answer, ",\"topic\":\"{topic}\"");
        }
        if let Some(s) = e.sentiment.as_deref().and_then(Sentiment::from_label) {
            let _ = write!(answer, ",\"sentiment\":\"{s}\"");
        }
        answer.push('}');
        let _ = write!(out, "<example id=\"{}\">\ntier: {}\n", e.ticket_id, e.tier);
        // The same names as the user turn, and only for rows that have them, so a file without
        // the optional columns renders (and versions) exactly as before.
        if let Some(arr) = e.arr_usd {
            let _ = writeln!(out, "arr_usd: {arr:.0}");
        }
        if let Some(n) = e.repeat_24h {
            let _ = writeln!(out, "other_tickets_from_customer_last_24h: {n}");
        }
        let _ = write!(
            out,
            "subject: {}\nfirst_message: {}\nanswer: {}\n</example>\n",
            one_line(&e.subject),
            one_line(&e.first_message),
            answer
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::{RawTicket, Source, Ticket, Tier},
        examples,
    };

    fn shipped() -> Prompt {
        let ex = examples::parse("labels.csv", examples::EMBEDDED_LABELS).unwrap();
        Prompt::render(EMBEDDED_TEMPLATE, &ex).unwrap()
    }

    #[test]
    fn version_is_stable_and_content_addressed() {
        let a = shipped();
        let b = shipped();
        assert_eq!(a, b);
        assert!(a.version().starts_with("classifier@"));
        assert_eq!(a.version().len(), "classifier@".len() + 12);
        let ex = examples::parse("labels.csv", examples::EMBEDDED_LABELS).unwrap();
        let fewer = Prompt::render(EMBEDDED_TEMPLATE, &ex[1..]).unwrap();
        assert_ne!(fewer.version(), a.version());
    }

    #[test]
    fn system_block_has_every_example_and_no_placeholder() {
        let p = shipped();
        assert!(p.system().contains("<example id=\"L-001\">"));
        assert!(!p.system().contains("{{"));
        assert!(!p.system().contains(USER_TURN_MARKER));
    }

    #[test]
    fn ticket_data_goes_to_the_user_turn_only() {
        let p = shipped();
        let raw = RawTicket {
            id: "T-9".into(),
            subject: "Export {{tier}}".into(),
            body: "Our dashboard\nis down".into(),
            tier: Some(Tier::Enterprise),
            arr_usd: Some(120_000.0),
            ..RawTicket::default()
        };
        let ctx = TicketContext {
            ticket: Ticket::parse(Source::Api, raw, "").unwrap(),
            repeat_count_24h: 2,
        };
        let user = p.user_turn(&ctx);
        assert!(user.contains("tier: enterprise"));
        assert!(user.contains("arr_usd: 120000"));
        assert!(user.contains("other_tickets_from_customer_last_24h: 2"));
        assert!(user.contains(
            "policy: Enterprise lowers the bar for urgent: contractual. A repeat ticket within 24 hours is urgent at least.\n"
        ));
        assert!(user.contains("subject: Export {{tier}}"));
        assert!(user.contains("first_message: Our dashboard is down"));
        assert!(!p.system().contains("Our dashboard"));
    }

    #[test]
    fn examples_show_arr_and_repeats_only_when_the_file_has_them() {
        let plain = examples::parse(
            "f.csv",
            "ticket_id,subject,first_message,tier,severity,route,why_this_label\nA-1,s,m,pro,routine,bot,w\n",
        )
        .unwrap();
        assert_eq!(
            render_examples(&plain),
            "<example id=\"A-1\">\ntier: pro\nsubject: s\nfirst_message: m\nanswer: {\"severity\":\"routine\",\"route\":\"bot\",\"reasoning\":\"w\"}\n</example>\n"
        );
        let rich = examples::parse(
            "f.csv",
            "ticket_id,subject,first_message,tier,severity,route,why_this_label,arr_usd,repeat_24h,topic\nA-1,s,m,pro,urgent,human,w,12000,2,billing\nA-2,s2,m2,free,routine,bot,w,,,\n",
        )
        .unwrap();
        let shown = render_examples(&rich);
        assert!(
            shown.starts_with("<example id=\"A-1\">\ntier: pro\narr_usd: 12000\nother_tickets_from_customer_last_24h: 2\nsubject: s\n"),
            "{shown}"
        );
        assert!(
            shown.contains("<example id=\"A-2\">\ntier: free\nsubject: s2\n"),
            "{shown}"
        );
        assert!(
            shown.contains(r#""reasoning":"w","topic":"billing"}"#),
            "a known topic is shown: {shown}"
        );
        // The columns are part of the examples, so of the prompt version.
        let a = Prompt::render(EMBEDDED_TEMPLATE, &plain).unwrap();
        let mut with_arr = plain.clone();
        with_arr[0].arr_usd = Some(5.0);
        let b = Prompt::render(EMBEDDED_TEMPLATE, &with_arr).unwrap();
        assert_ne!(a.version(), b.version());
    }

    #[test]
    fn weighting_sentences_are_configured_per_ticket_and_versioned() {
        let p = shipped();
        let raw = RawTicket {
            id: "T-9".into(),
            body: "How do I export?".into(),
            tier: Some(Tier::Pro),
            ..RawTicket::default()
        };
        let ctx = TicketContext {
            ticket: Ticket::parse(Source::Api, raw, "").unwrap(),
            repeat_count_24h: 0,
        };
        assert!(p.user_turn(&ctx).contains("policy: none\n"));
        let w = crate::weighting::Weighting::default().with_tier(
            crate::domain::Tier::Pro,
            crate::weighting::TierRule {
                arr_usd_min: None,
                floor: None,
                prompt: Some("Pro pays for speed.".into()),
            },
        );
        let q = p.clone().with_weighting(&w);
        assert_ne!(q.version(), p.version());
        assert_eq!(q.system(), p.system(), "the system block stays cacheable");
        assert!(q.user_turn(&ctx).contains("policy: Pro pays for speed.\n"));
        assert_eq!(
            p.clone()
                .with_weighting(&crate::weighting::Weighting::default()),
            p
        );
    }

    #[test]
    fn topics_sentiments_and_shadow_categories_reach_prompt_schema_and_version() {
        use crate::taxonomy::{Category, Kind, Mode};
        let rows = examples::parse(
            "f.csv",
            "ticket_id,subject,first_message,tier,severity,route,why_this_label,topic,sentiment\n\
             A-1,s,m,pro,routine,bot,w,billing,angry\nA-2,s2,m2,free,routine,bot,w,dashboards,positive\n",
        )
        .unwrap();
        let plain = Prompt::render(EMBEDDED_TEMPLATE, &rows).unwrap();
        assert!(
            plain
                .system()
                .contains("- topic: exactly one of billing, bug, outage, account_access, how_to, feature_request, security, legal, other."),
            "{}",
            plain.system()
        );
        // Only topics the answer may give are shown; `angry` is shown as negative.
        assert!(
            plain
                .system()
                .contains(r#""reasoning":"w","topic":"billing","sentiment":"negative"}"#)
        );
        assert!(
            plain
                .system()
                .contains(r#""reasoning":"w","sentiment":"positive"}"#)
        );
        assert!(!plain.system().contains("SHADOW"));
        assert!(!plain.schema().to_json().contains("shadow"));
        let t = Taxonomy::new(
            vec!["billing".into(), "bug".into(), "other".into()],
            vec![Category {
                name: "churn_risk".into(),
                kind: Kind::Topic,
                mode: Mode::Shadow,
                definition: "The customer may leave.".into(),
            }],
        )
        .unwrap();
        let shadowed = Prompt::render_with(EMBEDDED_TEMPLATE, &rows, &t).unwrap();
        assert_ne!(shadowed.version(), plain.version());
        assert!(shadowed.system().contains(
            "SHADOW CATEGORIES\nCategories on trial. List in \"shadow\" the name of each one that fits the ticket, or [] when none does. They never change the severity, the route or the topic.\n- churn_risk (a topic): The customer may leave."
        ));
        assert!(!shadowed.system().contains("{{"));
        assert_eq!(
            shadowed.schema().to_json(),
            r#"{"type":"object","properties":{"severity":{"type":"string","enum":["routine","urgent","on_fire"]},"route":{"type":"string","enum":["bot","human","engineering"]},"confidence":{"type":"number"},"reasoning":{"type":"string"},"topic":{"type":"string","enum":["billing","bug","other"]},"sentiment":{"type":"string","enum":["negative","neutral","positive"]},"shadow":{"type":"array","items":{"type":"string","enum":["churn_risk"]}}},"required":["severity","route","confidence","reasoning","topic","sentiment","shadow"],"additionalProperties":false}"#
        );
        let live =
            Prompt::render_with(EMBEDDED_TEMPLATE, &rows, &t.promoted("churn_risk").unwrap())
                .unwrap();
        assert!(live.system().contains("billing, bug, churn_risk, other."));
        assert!(
            live.system()
                .contains("  - churn_risk: The customer may leave.")
        );
        assert!(!live.system().contains("SHADOW"));
        assert_ne!(live.version(), shadowed.version());
        // A live severity clause joins the definitions; routing still follows the severity.
        let clause = Taxonomy::new(
            vec!["other".into()],
            vec![Category {
                name: "vip".into(),
                kind: Kind::Severity(crate::domain::Severity::Urgent),
                mode: Mode::Live,
                definition: "A customer named as a VIP.".into(),
            }],
        )
        .unwrap();
        let p = Prompt::render_with(EMBEDDED_TEMPLATE, &rows, &clause).unwrap();
        assert!(
            p.system().contains(
                "MORE SEVERITY CLAUSES\n- urgent at least: A customer named as a VIP. (vip)"
            ),
            "{}",
            p.system()
        );
    }

    #[test]
    fn bad_templates_are_rejected() {
        assert!(Prompt::render("no marker {{examples}}", &[]).is_err());
        assert!(Prompt::render("no examples\n<!-- user turn -->\nx", &[]).is_err());
        let e = Prompt::render("{{examples}} {{subject}}\n<!-- user turn -->\nx", &[]).unwrap_err();
        assert!(e.to_string().contains("placeholder other than"));
    }

    /// The examples' coverage table names each clause by words the template states.
    #[test]
    fn every_clause_is_stated_in_the_template_definitions() {
        let template = EMBEDDED_TEMPLATE;
        let start = template.find("DEFINITIONS").unwrap();
        let end = template.find("ROUTE").unwrap();
        let definitions = template[start..end].to_lowercase();
        for c in crate::domain::clause::Clause::ALL {
            assert!(
                definitions.contains(&c.definition().to_lowercase()),
                "{}: {:?} is not in the DEFINITIONS of prompts/classifier.md",
                c.name(),
                c.definition()
            );
        }
    }
}
