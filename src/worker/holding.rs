//! What this process is working on, so that a lease never runs out under a live holder.
//!
//! Each delivery and action in hand is registered here for as long as its task runs (a guard
//! removes it when the task ends, however it ends). The lease keeper (`super::leases`) extends,
//! every heartbeat, the leases of everything registered, up to [`MAX_HOLD_LEASES`] leases after
//! the item was taken; and every attempt is cut off at that same bound ([`max_hold`]), so an
//! item is never worked on by a holder whose lease ran out. A holder that dies stops extending:
//! its leases run out (or its heartbeat goes stale) and another holder takes the items over.

use std::{collections::HashMap, hash::Hash, sync::Arc, time::Duration};

use tokio::time::Instant;

use crate::domain::IdempotencyKey;

/// An attempt may hold its item for at most this many leases (its kind's `action_lease_secs` or
/// `delivery_lease_secs`): the leases stop being extended then, and the attempt is cut off.
pub const MAX_HOLD_LEASES: u32 = 10;

/// The items of one kind in hand, with when each was last taken and by how many attempts (an
/// attempt that released its item may still be ending when the next attempt takes it).
#[derive(Debug)]
pub struct Holding<K> {
    items: std::sync::Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K> Default for Holding<K> {
    fn default() -> Self {
        Self {
            items: std::sync::Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone> Holding<K> {
    /// Registers `key` until the returned guard is dropped.
    pub fn hold(self: &Arc<Self>, key: K) -> Held<K> {
        if let Ok(mut items) = self.items.lock() {
            let held = items.entry(key.clone()).or_insert((Instant::now(), 0));
            *held = (Instant::now(), held.1 + 1);
        }
        Held {
            holding: self.clone(),
            key,
        }
    }

    /// The items taken less than `max` ago: those whose leases are still extended.
    pub fn held_within(&self, max: Duration) -> Vec<K> {
        let now = Instant::now();
        self.items
            .lock()
            .map(|items| {
                items
                    .iter()
                    .filter(|(_, (since, _))| now.duration_since(*since) < max)
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// An item registered in a [`Holding`]; removed when dropped.
#[derive(Debug)]
pub struct Held<K: Eq + Hash> {
    holding: Arc<Holding<K>>,
    key: K,
}

impl<K: Eq + Hash> Drop for Held<K> {
    fn drop(&mut self) {
        if let Ok(mut items) = self.holding.items.lock()
            && let Some((_, n)) = items.get_mut(&self.key)
        {
            *n -= 1;
            if *n == 0 {
                items.remove(&self.key);
            }
        }
    }
}

/// The deliveries and actions this process is working on.
#[derive(Debug, Default)]
pub struct Holdings {
    /// Deliveries being decided.
    pub deliveries: Arc<Holding<IdempotencyKey>>,
    /// Actions being executed, by id.
    pub actions: Arc<Holding<i64>>,
}

/// The longest one attempt may hold an item leased for `lease`.
pub fn max_hold(lease: Duration) -> Duration {
    lease * MAX_HOLD_LEASES
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With paused time: an item is extended while it is held, up to its maximum, and let go
    /// when its task ends; another item taken later is still extended.
    #[tokio::test(start_paused = true)]
    async fn items_are_extended_until_their_maximum_and_let_go_when_done() {
        let holding = Arc::new(Holding::<i64>::default());
        let max = max_hold(Duration::from_secs(120));
        assert_eq!(max, Duration::from_secs(1200));
        let first = holding.hold(1);
        tokio::time::advance(Duration::from_secs(600)).await;
        let second = holding.hold(2);
        let mut held = holding.held_within(max);
        held.sort_unstable();
        assert_eq!(held, [1, 2], "both in hand, well within the maximum");
        tokio::time::advance(Duration::from_secs(601)).await;
        assert_eq!(
            holding.held_within(max),
            [2],
            "the first is past its maximum: its lease is no longer extended"
        );
        // The next attempt takes the first item again before the old attempt has ended: the
        // old attempt's end does not let the new one go.
        let again = holding.hold(1);
        drop(first);
        let mut held = holding.held_within(max);
        held.sort_unstable();
        assert_eq!(held, [1, 2]);
        drop(again);
        drop(second);
        assert!(
            holding.held_within(max).is_empty(),
            "a finished item is let go"
        );
        assert!(holding.items.lock().map(|i| i.is_empty()).unwrap_or(false));
    }
}
