//! Follow-ups: a customer's later message on a thread escalator already decided is decided
//! again, with the same prompt, on the conversation so far, as a new decision that supersedes
//! the thread's newest. Raise only: a higher severity acts as for a new ticket (or, when a
//! person changed the routing since escalator last acted, only says in a note what escalator
//! would do); an equal or lower one is logged and does nothing. Bounded: one re-decision per
//! thread per `[followups] min_interval_secs` (messages inside the window are read together at
//! its end), at most `[followups] max_per_thread` per thread. This module owns `[followups]`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Outcome, Triage, TriageError};
use crate::{
    domain::{
        FollowUpChange, IdempotencyKey, NoteOnly, RoutingRead, Ticket, TicketContext,
        conversation::{Author, Conversation, Message},
    },
    env::{ConfigError, Setting, SettingDefault, invalid},
    store::Claim,
};

/// The settings this module owns (rendered into the reference in `deploy/README.md`).
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "followups.enabled",
        default: SettingDefault::Value("true"),
        meaning: "`false`: customers' later messages are stored and acknowledged but never decided again.",
        example: "false",
    },
    Setting {
        key: "followups.min_interval_secs",
        default: SettingDefault::Value("60"),
        meaning: "At most one re-decision per thread in this many seconds: the messages that arrive inside the window are read together at its end.",
        example: "300",
    },
    Setting {
        key: "followups.max_per_thread",
        default: SettingDefault::Value("10"),
        meaning: "Most re-decisions of one thread (at least 1); later messages are stored and not decided.",
        example: "5",
    },
];

/// `[followups]` in the `ESCALATOR_CONFIG` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileFollowUps {
    enabled: Option<bool>,
    min_interval_secs: Option<u64>,
    max_per_thread: Option<u32>,
}

/// How follow-ups are decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpSettings {
    /// Whether customers' later messages are decided again at all.
    pub enabled: bool,
    /// Shortest time between two re-decisions of one thread, and the window a follow-up waits
    /// for more messages.
    pub min_interval: Duration,
    /// Most re-decisions of one thread.
    pub max_per_thread: u32,
}

impl Default for FollowUpSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            min_interval: Duration::from_secs(60),
            max_per_thread: 10,
        }
    }
}

impl FollowUpSettings {
    /// `[followups]` over the defaults.
    ///
    /// # Errors
    /// [`ConfigError`] naming `followups.max_per_thread` when it is 0.
    pub fn load(file: FileFollowUps) -> Result<Self, ConfigError> {
        let d = Self::default();
        let max_per_thread = file.max_per_thread.unwrap_or(d.max_per_thread);
        if max_per_thread == 0 {
            return Err(invalid(
                "followups.max_per_thread",
                "must be at least 1 (set `enabled = false` to turn follow-ups off)",
            ));
        }
        Ok(Self {
            enabled: file.enabled.unwrap_or(d.enabled),
            min_interval: file
                .min_interval_secs
                .map_or(d.min_interval, Duration::from_secs),
            max_per_thread,
        })
    }
}

/// What became of a follow-up message.
#[derive(Debug, Clone, PartialEq)]
pub enum FollowUp {
    /// Nothing to decide (follow-ups off, an agent's message, a thread never decided, a
    /// message an earlier re-decision read, the thread's budget spent): the delivery is done.
    Skipped(&'static str),
    /// The thread's window is open until then: try again at its end.
    Wait(DateTime<Utc>),
    /// Decided again (or found decided); `change` is what it does in the tool (`None`: equal
    /// or lower, logged only).
    Decided {
        /// The logged re-decision.
        outcome: Box<Outcome>,
        /// Raise, note only, or nothing.
        change: Option<FollowUpChange>,
    },
}

/// What the gate of a follow-up says.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// Nothing to decide now: skipped, wait, or decided already.
    Done(FollowUp),
    /// Decide it now ([`Triage::follow_up`]).
    Go(Ready),
}

/// A follow-up the gate let through: the decision it supersedes and the severity it must
/// exceed to act. Made only by [`Triage::follow_up_gate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    supersedes: String,
    standing: crate::domain::Severity,
}

/// How long a follow-up that lost the race to end its window waits before it looks again
/// (by then the winner's re-decision has begun, so it finds itself read).
const LOST_RACE_PAUSE: chrono::Duration = chrono::Duration::seconds(1);

impl Triage {
    /// Whether follow-ups are decided at all (`[followups] enabled` and a log to keep them).
    pub fn follow_ups_enabled(&self) -> bool {
        self.settings.followups.enabled && self.followups.is_some()
    }

    /// The first step of a follow-up `message` received at `received_at` by the delivery of
    /// `key` (version `message:<id>`): whether it is to be decided now ([`Gate::Go`]), later or
    /// not at all. Costs no call to the tool, so a message waiting for its window's end costs
    /// nothing but this.
    ///
    /// # Errors
    /// [`TriageError::StoreUnavailable`] when the log cannot be read or written.
    pub async fn follow_up_gate(
        &self,
        key: &IdempotencyKey,
        message: &Message,
        received_at: DateTime<Utc>,
    ) -> Result<Gate, TriageError> {
        let settings = &self.settings.followups;
        let Some(log) = self.followups.clone().filter(|_| settings.enabled) else {
            return Ok(Gate::Done(FollowUp::Skipped("follow-ups are off")));
        };
        if message.author == Author::Agent {
            return Ok(Gate::Done(FollowUp::Skipped(
                "an agent's message is read, not decided",
            )));
        }
        let (source, thread) = (key.source, key.ticket_id.clone());
        // A retry of a delivery whose re-decision is logged gets that decision.
        if let Some(d) = self.log.decision(key).await? {
            return Ok(Gate::Done(FollowUp::Decided {
                outcome: Box::new(Outcome {
                    decision: d,
                    duplicate: true,
                }),
                change: None,
            }));
        }
        let decisions = log.thread_decisions(source, &thread).await?;
        let Some(previous) = decisions.first() else {
            return Ok(Gate::Done(FollowUp::Skipped(
                "the thread was never decided; its first message is decided as a new ticket",
            )));
        };
        // Raise only: the bar is the highest severity the thread was decided with.
        let standing = decisions
            .iter()
            .map(|d| d.severity)
            .max()
            .unwrap_or(previous.severity);
        let ready = Gate::Go(Ready {
            supersedes: previous.id.clone(),
            standing,
        });
        let now = Utc::now();
        let state = log
            .open_followup_window(source, &thread, &key.version, received_at, now)
            .await?;
        // This delivery began the re-decision before and did not log it (a crash): go on.
        if state.last_version.as_deref() == Some(key.version.as_str()) {
            return Ok(ready);
        }
        let Some(opened_by) = state.window_opened_by.clone() else {
            return Ok(Gate::Done(FollowUp::Skipped(
                "an earlier re-decision read this message",
            )));
        };
        if state.redecisions >= settings.max_per_thread {
            return Ok(Gate::Done(FollowUp::Skipped(
                "the thread's re-decisions reached [followups] max_per_thread",
            )));
        }
        let interval = chrono::Duration::from_std(settings.min_interval)
            .unwrap_or(chrono::Duration::seconds(60));
        let mut due = state.window_opened_at.unwrap_or(now) + interval;
        if let Some(last) = state.last_redecided_at {
            due = due.max(last + interval);
        }
        if now < due {
            return Ok(Gate::Done(FollowUp::Wait(due)));
        }
        if !log
            .begin_redecision(source, &thread, &opened_by, &key.version, now)
            .await?
        {
            return Ok(Gate::Done(FollowUp::Wait(now + LOST_RACE_PAUSE)));
        }
        Ok(ready)
    }

    /// Decides a follow-up the gate let through, whose delivery the adapter built into
    /// `ticket` (the message as its body, enriched), on the thread's conversation so far.
    ///
    /// # Errors
    /// As [`Triage::decide`].
    /// `thread`: the thread's messages as the tool has them, when its webhook carries none
    /// (Pylon); else the messages the inbox stored are read.
    pub async fn follow_up(
        &self,
        ticket: Ticket,
        ready: Ready,
        thread: Option<Vec<Message>>,
        trace_id: Option<String>,
    ) -> Result<FollowUp, TriageError> {
        let Some(log) = self.followups.clone() else {
            return Ok(FollowUp::Skipped("follow-ups are off"));
        };
        let key = ticket.key().clone();
        let now = Utc::now();
        let Some(_deciding) = self.enter(&key) else {
            return Ok(FollowUp::Wait(now + LOST_RACE_PAUSE));
        };
        let messages = match thread {
            Some(m) => m,
            None => log.thread_messages(key.source, &key.ticket_id).await?,
        };
        let conversation = Conversation::new(messages);
        let repeat_contact = conversation.repeat_contact();
        let ticket = ticket.with_conversation(conversation);
        let since = now - chrono::Duration::hours(24);
        let (claim, repeats) = self.claim(&ticket, Some(since), true).await?;
        match claim {
            Claim::Decided(d) => {
                return Ok(FollowUp::Decided {
                    outcome: Box::new(Outcome {
                        decision: *d,
                        duplicate: true,
                    }),
                    change: None,
                });
            }
            Claim::InFlight => return Ok(FollowUp::Wait(now + LOST_RACE_PAUSE)),
            Claim::New => {}
        }
        let ctx = TicketContext {
            ticket: self.settings.weighting.account(ticket),
            // A customer writing again within 24 h with no answer between is a repeat.
            repeat_count_24h: repeats + u32::from(repeat_contact),
        };
        let decided = self
            .redecide(&ctx, &ready.supersedes, ready.standing, trace_id)
            .await;
        if decided.is_err() {
            if let Err(e) = self.log.release_claim(&key).await {
                tracing::warn!(%key, error = %e, "cannot release the claim; it expires with its lease");
            }
        }
        decided
    }

    /// Classifies the conversation, links the decision to the one it supersedes, and logs it
    /// with what a raise implies.
    async fn redecide(
        &self,
        ctx: &TicketContext,
        supersedes: &str,
        standing: crate::domain::Severity,
        trace_id: Option<String>,
    ) -> Result<FollowUp, TriageError> {
        let classification = self.decider.decide(ctx).await;
        let mut decision = self.weighed(ctx, classification, trace_id);
        decision.supersedes = Some(supersedes.to_owned());
        let change = if decision.severity > standing {
            Some(match self.note_only(&ctx.ticket).await? {
                Some(why) => FollowUpChange::WouldRaise {
                    from: standing,
                    why,
                },
                None => FollowUpChange::Raise { from: standing },
            })
        } else {
            None
        };
        let actions = match change {
            Some(c) => self.planner.plan_follow_up(&ctx.ticket, &decision, c),
            None => Vec::new(),
        };
        tracing::info!(
            key = %decision.key(),
            supersedes,
            from = %standing,
            to = %decision.severity,
            change = match change {
                Some(FollowUpChange::Raise { .. }) => "raise",
                Some(FollowUpChange::WouldRaise { .. }) => "note_only",
                None => "none",
            },
            "follow-up decided again"
        );
        let outcome = self.record_decided(decision, &actions).await?;
        Ok(FollowUp::Decided {
            outcome: Box::new(outcome),
            change,
        })
    }

    /// Why a raise of `ticket` (a follow-up, built with the tool's current routing) must be a
    /// note only, if it must: a person's override event stored after escalator last acted, or
    /// the tool's routing (re-read when the ticket was built, no extra call) not being what
    /// escalator's done actions set, or that routing not read (fail safe). `None`: raise.
    async fn note_only(&self, ticket: &Ticket) -> Result<Option<NoteOnly>, TriageError> {
        let Some(log) = &self.followups else {
            return Ok(None);
        };
        let key = ticket.key();
        let (source, thread) = (key.source, key.ticket_id.as_str());
        if let Some(acted) = log.last_acted_at(source, thread).await? {
            if log.person_changed_since(source, thread, acted).await? {
                return Ok(Some(NoteOnly::Override));
            }
        }
        let now = match ticket.routing() {
            RoutingRead::Read(now) => now,
            RoutingRead::Failed(error) => {
                tracing::warn!(
                    %key,
                    error,
                    "cannot re-read the ticket's routing in its tool; a raise is a note only"
                );
                return Ok(Some(NoteOnly::Unread));
            }
            RoutingRead::NotRead => {
                tracing::warn!(
                    %key,
                    "the ticket's routing was not read from its tool; a raise is a note only"
                );
                return Ok(Some(NoteOnly::Unread));
            }
        };
        let acted = log.acted_routing(source, thread).await?;
        Ok(self
            .planner
            .routing_moved(ticket, now, &acted)
            .map(|moved| {
                tracing::info!(
                    %key,
                    moved,
                    "the ticket's routing in its tool is not what escalator last set; a raise is a note only"
                );
                NoteOnly::Moved
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_limits() {
        let s = FollowUpSettings::load(FileFollowUps::default()).unwrap();
        assert_eq!(s, FollowUpSettings::default());
        let e = FollowUpSettings::load(FileFollowUps {
            max_per_thread: Some(0),
            ..FileFollowUps::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("followups.max_per_thread"), "{e}");
    }
}
