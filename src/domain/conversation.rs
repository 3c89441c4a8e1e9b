//! Follow-ups: the customer writes again on a ticket escalator already decided. The messages
//! of a thread as the tools report them ([`Message`]), the conversation they make
//! ([`Conversation`]: what a re-decision classifies, capped with the newest kept). What a
//! re-decision may do with its outcome is `super::FollowUpChange`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::text;

/// How long after a customer's message another one without a team answer in between counts
/// as a repeat contact (the seed's "a repeat ticket within 24 h" clause).
pub const REPEAT_CONTACT_HOURS: i64 = 24;

/// The prefix of the key version of a message delivery: `message:<message id>`, so a follow-up
/// is idempotent per (thread, message id) like every delivery is per key.
pub const MESSAGE_VERSION_PREFIX: &str = "message:";

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Author {
    /// The customer (a tool's `*_received` event).
    Customer,
    /// Someone of the support team (a tool's `*_sent` event).
    Agent,
}

impl Author {
    /// The spelling in stored payloads and in the gRPC mapping.
    pub fn as_str(self) -> &'static str {
        match self {
            Author::Customer => "customer",
            Author::Agent => "agent",
        }
    }
}

/// One message of a thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The tool's message id (or the event id when the tool sends none).
    pub id: String,
    /// Who wrote it.
    pub author: Author,
    /// When it was written (the tool's time; the receipt time when the tool gives none).
    pub sent_at: DateTime<Utc>,
    /// The text, cut to [`super::MAX_BODY_CHARS`] at accept.
    pub text: String,
}

/// A thread's messages, oldest first: the first message, then the later ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversation {
    messages: Vec<Message>,
}

impl Conversation {
    /// The conversation of `messages`, sorted oldest first (equal times keep their order);
    /// a message id seen twice is kept once.
    pub fn new(mut messages: Vec<Message>) -> Self {
        messages.sort_by_key(|m| m.sent_at);
        let mut seen = std::collections::HashSet::new();
        messages.retain(|m| seen.insert(m.id.clone()));
        Self { messages }
    }

    /// The messages, oldest first.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The newest message of the customer, which the offline rules read first.
    pub fn newest_customer(&self) -> Option<&Message> {
        self.messages
            .iter()
            .rev()
            .find(|m| m.author == Author::Customer)
    }

    /// Whether the newest customer message repeats an earlier one: it follows another customer
    /// message by at most [`REPEAT_CONTACT_HOURS`] with no message of the team in between.
    pub fn repeat_contact(&self) -> bool {
        let Some(pos) = self
            .messages
            .iter()
            .rposition(|m| m.author == Author::Customer)
        else {
            return false;
        };
        let newest = &self.messages[pos];
        match pos.checked_sub(1).map(|i| &self.messages[i]) {
            Some(before) if before.author == Author::Customer => {
                newest.sent_at - before.sent_at <= chrono::Duration::hours(REPEAT_CONTACT_HOURS)
            }
            _ => false,
        }
    }

    /// The conversation as the classifier reads it: oldest first, one block per message
    /// headed by who wrote it (`[customer, first message]`, `[customer]`, `[agent reply]`) and
    /// when, at most `max_chars` characters. When it is longer, the oldest part is dropped
    /// (the newest is what changed) and a marker says so; cuts fall on grapheme boundaries.
    pub fn render(&self, max_chars: usize) -> String {
        let blocks: Vec<String> = self
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let who = match (m.author, i) {
                    (Author::Customer, 0) => "customer, first message",
                    (Author::Customer, _) => "customer",
                    (Author::Agent, _) => "agent reply",
                };
                format!(
                    "[{who}, {}]\n{}",
                    m.sent_at.format("%Y-%m-%d %H:%M UTC"),
                    m.text.trim()
                )
            })
            .collect();
        let full = blocks.join("\n\n");
        if full.chars().count() <= max_chars {
            return full;
        }
        const CUT: &str = "[earlier messages cut]\n…";
        let keep = max_chars.saturating_sub(CUT.chars().count());
        if keep == 0 {
            return text::tail_chars(&full, max_chars).to_owned();
        }
        format!("{CUT}{}", text::tail_chars(&full, keep))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, author: Author, minutes: i64, text: &str) -> Message {
        Message {
            id: id.into(),
            author,
            sent_at: DateTime::<Utc>::from_timestamp(1_790_000_000, 0).unwrap()
                + chrono::Duration::minutes(minutes),
            text: text.into(),
        }
    }

    #[test]
    fn oldest_first_agents_marked_newest_kept_when_capped() {
        let c = Conversation::new(vec![
            msg(
                "m3",
                Author::Customer,
                30,
                "the export deleted half our records 😱",
            ),
            msg("m1", Author::Customer, 0, "how do I export?"),
            msg("m2", Author::Agent, 10, "Settings → Export."),
            msg("m1", Author::Customer, 0, "how do I export?"),
        ]);
        assert_eq!(c.messages().len(), 3);
        let full = c.render(10_000);
        let (a, b, d) = (
            full.find("how do I export").unwrap(),
            full.find("[agent reply").unwrap(),
            full.find("deleted half").unwrap(),
        );
        assert!(a < b && b < d, "{full}");
        assert!(full.starts_with("[customer, first message, "), "{full}");
        let capped = c.render(60);
        assert!(capped.chars().count() <= 60, "{capped}");
        assert!(capped.ends_with("records 😱"), "{capped}");
        assert!(capped.starts_with("[earlier messages cut]"), "{capped}");
        assert!(!capped.contains("how do I export"));
        assert_eq!(c.newest_customer().unwrap().id, "m3");
    }

    #[test]
    fn a_repeat_contact_is_a_second_customer_message_within_a_day_without_an_answer() {
        let unanswered = Conversation::new(vec![
            msg("1", Author::Customer, 0, "a"),
            msg("2", Author::Customer, 60, "still waiting"),
        ]);
        assert!(unanswered.repeat_contact());
        let answered = Conversation::new(vec![
            msg("1", Author::Customer, 0, "a"),
            msg("2", Author::Agent, 30, "on it"),
            msg("3", Author::Customer, 60, "thanks"),
        ]);
        assert!(!answered.repeat_contact());
        let days_later = Conversation::new(vec![
            msg("1", Author::Customer, 0, "a"),
            msg("2", Author::Customer, 25 * 60, "b"),
        ]);
        assert!(!days_later.repeat_contact());
        assert!(!Conversation::default().repeat_contact());
    }
}
