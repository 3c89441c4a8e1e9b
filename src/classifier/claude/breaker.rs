//! The spend-cap breaker. A 429 whose `error.details.error_code` is a spend limit
//! (`enforced_spend_limit_reached`, `contract_spend_limit_reached`; reference/anthropic.md,
//! sections 6 and D) means every further call is refused until someone raises the cap or the
//! month ends. So the breaker opens: calls are not made at all, and decisions go to the offline
//! fallback at once with reason `spend_cap`. One call every `spend_cap_probe_interval_ms` is let
//! through as a probe (a real ticket's call, so nothing is wasted); the first probe the API
//! answers with anything but a spend limit closes the breaker. A probe with no answer (timeout,
//! connection error) leaves it open. Each change is logged once (ERROR when it opens, INFO when
//! it closes) and shown in `/metrics`.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use super::{super::ClassifierError, retry::SPEND_LIMIT_CODES};
use crate::telemetry::metrics::metrics;

/// How a call was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// The breaker is closed.
    Closed,
    /// The breaker is open and this call is its probe.
    Probe,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed,
    Open { next_probe: Instant },
}

/// The breaker of one classifier (one per replica).
#[derive(Debug)]
pub struct SpendCapBreaker {
    interval: Duration,
    state: Mutex<State>,
}

/// Whether `result` is the API refusing for a spend limit.
pub fn is_spend_cap<T>(result: &Result<T, ClassifierError>) -> bool {
    matches!(result, Err(ClassifierError::Upstream { status: 429, kind, .. })
        if SPEND_LIMIT_CODES.contains(&kind.as_str()))
}

impl SpendCapBreaker {
    /// A closed breaker probing every `interval` once open.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(State::Closed),
        }
    }

    /// Whether a call may be made now.
    ///
    /// # Errors
    /// [`ClassifierError::SpendCap`] while open and it is not yet time for the next probe (or
    /// another call is the probe).
    pub fn admit(&self) -> Result<Admit, ClassifierError> {
        let Ok(mut s) = self.state.lock() else {
            return Ok(Admit::Closed);
        };
        match *s {
            State::Closed => Ok(Admit::Closed),
            State::Open { next_probe } => {
                let now = Instant::now();
                if now < next_probe {
                    return Err(ClassifierError::SpendCap);
                }
                // This call is the probe; the next one is due an interval later whatever
                // becomes of this one (a probe that never returns cannot stall the breaker).
                *s = State::Open {
                    next_probe: now + self.interval,
                };
                tracing::info!("spend-cap breaker: probing the Claude API with one call");
                Ok(Admit::Probe)
            }
        }
    }

    /// Records what a call let through by [`SpendCapBreaker::admit`] came to.
    pub fn record<T>(&self, admit: Admit, result: &Result<T, ClassifierError>) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        let m = &metrics().claude_spend_cap;
        if is_spend_cap(result) {
            if let State::Closed = *s {
                *s = State::Open {
                    next_probe: Instant::now() + self.interval,
                };
                m.open.set(1);
                m.transitions.with_label_values(&["open"]).inc();
                let request_id = match result {
                    Err(ClassifierError::Upstream { request_id, .. }) => request_id.clone(),
                    _ => None,
                };
                tracing::error!(
                    request_id = request_id.as_deref().unwrap_or(""),
                    probe_interval_secs = self.interval.as_secs(),
                    "Claude API spend limit reached: calls stop and every ticket goes to the \
                     offline classifier (reason spend_cap) until a probe gets through; raise \
                     the limit in the Anthropic console"
                );
            } else {
                tracing::debug!("spend-cap breaker: the probe was refused; staying open");
            }
            return;
        }
        let answered = matches!(result, Ok(_) | Err(ClassifierError::Upstream { .. }));
        if admit == Admit::Probe && answered {
            if let State::Open { .. } = *s {
                *s = State::Closed;
                m.open.set(0);
                m.transitions.with_label_values(&["closed"]).inc();
                tracing::info!(
                    "Claude API answered the spend-cap probe: the breaker is closed and Claude \
                     classifies again"
                );
            }
        }
    }

    /// True while open.
    pub fn is_open(&self) -> bool {
        self.state
            .lock()
            .is_ok_and(|s| matches!(*s, State::Open { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spend_cap() -> Result<(), ClassifierError> {
        Err(ClassifierError::Upstream {
            status: 429,
            kind: "enforced_spend_limit_reached".into(),
            request_id: None,
        })
    }

    #[test]
    fn opens_on_a_spend_cap_probes_once_per_interval_and_closes_on_an_answer() {
        let b = SpendCapBreaker::new(Duration::from_millis(50));
        assert_eq!(b.admit().unwrap(), Admit::Closed);
        // An ordinary rate limit does not open it.
        b.record(
            Admit::Closed,
            &Err::<(), _>(ClassifierError::Upstream {
                status: 429,
                kind: "rate_limit_error".into(),
                request_id: None,
            }),
        );
        assert!(!b.is_open());
        b.record(Admit::Closed, &spend_cap());
        assert!(b.is_open());
        assert_eq!(b.admit().unwrap_err(), ClassifierError::SpendCap);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.admit().unwrap(), Admit::Probe);
        // Only one probe per interval.
        assert_eq!(b.admit().unwrap_err(), ClassifierError::SpendCap);
        // A probe with no answer leaves it open.
        b.record(Admit::Probe, &Err::<(), _>(ClassifierError::Timeout));
        assert!(b.is_open());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.admit().unwrap(), Admit::Probe);
        b.record(Admit::Probe, &spend_cap());
        assert!(b.is_open());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.admit().unwrap(), Admit::Probe);
        b.record(Admit::Probe, &Ok(()));
        assert!(!b.is_open());
        assert_eq!(b.admit().unwrap(), Admit::Closed);
    }
}
