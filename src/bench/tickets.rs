//! The tickets a benchmark sends and what became of each: sent, acknowledged, mutated in the
//! mock Plain, complete. Shared by the load drivers and the mock servers.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use crate::domain::Severity;

/// A ticket text customers could have typed, and the answer the mock model gives for it.
#[derive(Debug)]
pub(crate) struct Template {
    /// Thread title; also how the mock model recognises the ticket in the user turn.
    pub(crate) subject: &'static str,
    /// The first message.
    pub(crate) body: &'static str,
    /// What the mock model answers.
    pub(crate) severity: Severity,
    /// The Plain tier the mock enrichment reports (`externalId`).
    pub(crate) tier: &'static str,
}

/// Phone-typed text in several languages, with typographic quotes, accents, emoji and HTML, so
/// the measured path handles what production sees.
pub(crate) const TEMPLATES: &[Template] = &[
    Template {
        subject: "API down – every request returns 500 😱",
        body: "Since 09:10 our production API answers “500 Internal Server Error” for all users. <b>Nothing works</b>.",
        severity: Severity::OnFire,
        tier: "enterprise",
    },
    Template {
        subject: "Datenverlust nach dem Update",
        body: "Seit dem Update gestern fehlen alle Einträge vom Oktober in unserem Konto. Bitte dringend prüfen!",
        severity: Severity::OnFire,
        tier: "pro",
    },
    Template {
        subject: "Facturation : débité deux fois",
        body: "Bonjour, on nous a débité deux fois 480 € ce mois-ci. Merci de corriger la facture rapidement.",
        severity: Severity::Urgent,
        tier: "pro",
    },
    Template {
        subject: "Exports keep failing – thinking of switching",
        body: "Third time this week the CSV export times out. Honestly we’re looking at other tools now…",
        severity: Severity::Urgent,
        tier: "free",
    },
    Template {
        subject: "How do I rename a workspace? 🙂",
        body: "Small question: where can I change the name of our workspace? Thanks!",
        severity: Severity::Routine,
        tier: "free",
    },
    Template {
        subject: "¿Cómo exporto los informes a CSV?",
        body: "Hola, ¿dónde está la opción para exportar los informes mensuales a CSV? Gracias 🙏",
        severity: Severity::Routine,
        tier: "pro",
    },
];

/// The template whose subject appears in `text` (the model's user turn).
pub(crate) fn template_in(text: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| text.contains(t.subject))
}

/// One ticket as the sender knows it. Redeliveries resend the same spec.
#[derive(Debug)]
pub(crate) struct TicketSpec {
    /// `th_…`, also the gRPC ticket id.
    pub(crate) thread_id: String,
    /// `c_…`.
    pub(crate) customer_id: String,
    /// `pEv_…`: the same on every delivery attempt.
    pub(crate) event_id: String,
    /// `payload.thread.updatedAt`: the ticket version.
    pub(crate) updated_at: String,
    /// Index into [`TEMPLATES`].
    pub(crate) template: usize,
}

impl TicketSpec {
    /// A new ticket with fresh ids.
    pub(crate) fn new(n: u64) -> Self {
        let template = usize::try_from(n).unwrap_or(0) % TEMPLATES.len();
        Self {
            thread_id: format!("th_{}", ulid()),
            customer_id: format!("c_{}", ulid()),
            event_id: format!("pEv_{}", ulid()),
            updated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            template,
        }
    }

    /// Its text.
    pub(crate) fn template(&self) -> &'static Template {
        &TEMPLATES[self.template]
    }
}

/// 26 Crockford base-32 characters from a UUIDv7, the shape of Plain's ids
/// (`^[a-zA-Z]+_[0-9A-HJKMNP-TV-Z]{26}$`, reference/plain.md).
pub(crate) fn ulid() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut v = uuid::Uuid::now_v7().as_u128();
    let mut out = [b'0'; 26];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[usize::try_from(v & 31).unwrap_or(0)];
        v >>= 5;
    }
    out.iter().map(|b| char::from(*b)).collect()
}

/// What happened to one ticket.
#[derive(Debug)]
struct TicketState {
    spec: Arc<TicketSpec>,
    /// Start of its first delivery.
    sent_at: Instant,
    /// A delivery of it got a 2xx.
    acknowledged: bool,
    /// Bit set of the mutation kinds the mock Plain has seen for it.
    done: u8,
    /// When the last expected mutation (or, over gRPC, the decision) arrived.
    completed_at: Option<Instant>,
}

/// Every ticket of a run.
#[derive(Debug)]
pub(crate) struct Tickets {
    inner: Mutex<Inner>,
    /// The mutation bits a ticket needs to be complete (see [`crate::bench::mocks`]).
    expected: u8,
}

#[derive(Debug, Default)]
struct Inner {
    by_thread: HashMap<String, usize>,
    list: Vec<TicketState>,
    /// Acknowledged and complete.
    done: u64,
    /// Acknowledged.
    acknowledged: u64,
    /// Mutations of a kind the thread already had (an action applied twice).
    repeated_mutations: u64,
    /// Mutations for a thread the benchmark never sent.
    unknown_mutations: u64,
}

/// Counts at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Progress {
    /// Tickets with a 2xx.
    pub(crate) acknowledged: u64,
    /// Tickets acknowledged and complete.
    pub(crate) done: u64,
}

/// The end state, for the report.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Tickets with a 2xx.
    pub(crate) acknowledged: u64,
    /// Of those, complete.
    pub(crate) completed: u64,
    /// Complete but never acknowledged (the sender gave up on the answer).
    pub(crate) completed_unacknowledged: u64,
    /// Complete before `load_end`.
    pub(crate) completed_during_load: u64,
    /// Delivery to last action, microseconds, for every acknowledged ticket; an incomplete one
    /// counts with its age at the end (a lower bound), see `censored`.
    pub(crate) e2e_us: Vec<u64>,
    /// Acknowledged tickets not complete at the end.
    pub(crate) censored: u64,
    /// The last completion.
    pub(crate) last_completion: Option<Instant>,
    /// Mutations repeating a kind the thread already had.
    pub(crate) repeated_mutations: u64,
    /// Mutations for threads the benchmark never sent.
    pub(crate) unknown_mutations: u64,
}

impl Tickets {
    /// An empty registry; a ticket is complete once it has every bit of `expected`.
    pub(crate) fn new(expected: u8) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            expected,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a new ticket, sent now; returns its index.
    pub(crate) fn add(&self, spec: Arc<TicketSpec>) -> usize {
        let mut g = self.lock();
        let i = g.list.len();
        g.by_thread.insert(spec.thread_id.clone(), i);
        g.list.push(TicketState {
            spec,
            sent_at: Instant::now(),
            acknowledged: false,
            done: 0,
            completed_at: None,
        });
        i
    }

    /// A ticket sent before, picked at random, to deliver again.
    pub(crate) fn random_sent(&self) -> Option<(usize, Arc<TicketSpec>)> {
        let g = self.lock();
        if g.list.is_empty() {
            return None;
        }
        let i = rand::random_range(0..g.list.len());
        Some((i, g.list[i].spec.clone()))
    }

    /// A delivery of ticket `i` got a 2xx.
    pub(crate) fn acknowledge(&self, i: usize) {
        let mut g = self.lock();
        let g = &mut *g;
        if let Some(t) = g.list.get_mut(i) {
            if !t.acknowledged {
                t.acknowledged = true;
                g.acknowledged += 1;
                if t.completed_at.is_some() {
                    g.done += 1;
                }
            }
        }
    }

    /// The mock Plain saw mutation `bit` for `thread_id`.
    pub(crate) fn mutation(&self, thread_id: &str, bit: u8) {
        let now = Instant::now();
        let mut g = self.lock();
        let g = &mut *g;
        let Some(&i) = g.by_thread.get(thread_id) else {
            g.unknown_mutations += 1;
            return;
        };
        let t = &mut g.list[i];
        if t.done & bit != 0 {
            g.repeated_mutations += 1;
            return;
        }
        t.done |= bit;
        if t.done & self.expected == self.expected && t.completed_at.is_none() {
            t.completed_at = Some(now);
            if t.acknowledged {
                g.done += 1;
            }
        }
    }

    /// Ticket `i` is complete (gRPC: its decision came back).
    pub(crate) fn complete(&self, i: usize) {
        let now = Instant::now();
        let mut g = self.lock();
        let g = &mut *g;
        if let Some(t) = g.list.get_mut(i) {
            if t.completed_at.is_none() {
                t.completed_at = Some(now);
                if t.acknowledged {
                    g.done += 1;
                }
            }
        }
    }

    /// The Plain tier of a ticket's template, for the mock enrichment.
    pub(crate) fn tier_of(&self, thread_id: &str) -> Option<&'static str> {
        let g = self.lock();
        let i = *g.by_thread.get(thread_id)?;
        Some(g.list[i].spec.template().tier)
    }

    /// Counts now.
    pub(crate) fn progress(&self) -> Progress {
        let g = self.lock();
        Progress {
            acknowledged: g.acknowledged,
            done: g.done,
        }
    }

    /// The end state: latencies measured up to `end`, completions before `load_end` counted.
    pub(crate) fn outcome(&self, load_end: Instant, end: Instant) -> Outcome {
        let g = self.lock();
        let mut o = Outcome {
            repeated_mutations: g.repeated_mutations,
            unknown_mutations: g.unknown_mutations,
            ..Outcome::default()
        };
        for t in &g.list {
            match (t.acknowledged, t.completed_at) {
                (true, Some(at)) => {
                    o.acknowledged += 1;
                    o.completed += 1;
                    o.completed_during_load += u64::from(at <= load_end);
                    o.e2e_us.push(micros(at - t.sent_at));
                    o.last_completion = o.last_completion.max(Some(at));
                }
                (true, None) => {
                    o.acknowledged += 1;
                    o.censored += 1;
                    o.e2e_us
                        .push(micros(end.saturating_duration_since(t.sent_at)));
                }
                (false, Some(_)) => o.completed_unacknowledged += 1,
                (false, None) => {}
            }
        }
        o
    }
}

/// A duration in whole microseconds.
pub(crate) fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_plains_shape() {
        let id = ulid();
        assert_eq!(id.len(), 26);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_digit() || (c.is_ascii_uppercase() && !"ILOU".contains(c)))
        );
        assert_ne!(ulid(), id);
    }

    #[test]
    fn a_ticket_is_done_with_every_expected_mutation_and_an_ack() {
        let t = Tickets::new(0b1011);
        let spec = Arc::new(TicketSpec::new(0));
        let i = t.add(spec.clone());
        t.mutation(&spec.thread_id, 1);
        t.mutation(&spec.thread_id, 2);
        t.mutation(&spec.thread_id, 2);
        assert_eq!(t.progress().done, 0);
        t.mutation(&spec.thread_id, 8);
        assert_eq!(t.progress().done, 0, "not acknowledged yet");
        t.acknowledge(i);
        t.acknowledge(i);
        assert_eq!(t.progress().done, 1);
        t.mutation("th_unknown", 1);
        let now = Instant::now();
        let o = t.outcome(now, now);
        assert_eq!((o.acknowledged, o.completed, o.censored), (1, 1, 0));
        assert_eq!((o.repeated_mutations, o.unknown_mutations), (1, 1));
    }

    #[test]
    fn the_model_recognises_every_template() {
        for t in TEMPLATES {
            let turn = format!("Subject: {}\nFirst message: {}", t.subject, t.body);
            assert_eq!(template_in(&turn).map(|x| x.subject), Some(t.subject));
        }
    }
}
