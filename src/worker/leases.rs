//! The lease keeper: every heartbeat, the leases of the deliveries and actions this process
//! still has in hand ([`super::holding`]) are extended, so a lease never runs out under a live
//! holder.

use tokio_util::sync::CancellationToken;

use super::{
    holding::max_hold,
    state::{Worker, persist},
};

impl Worker {
    /// Extends the leases of every item in hand (once).
    async fn extend_leases(&self) {
        let (action_lease, delivery_lease) =
            (self.settings.action_lease, self.settings.delivery_lease);
        let within = self.settings.heartbeat_interval;
        let ids = self.holdings.actions.held_within(max_hold(action_lease));
        if !ids.is_empty() {
            let outbox = self.queues.outbox.clone();
            match persist(within, || outbox.extend_actions(&ids, action_lease)).await {
                Ok(held) => tracing::trace!(actions = ids.len(), held, "action leases extended"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot extend the leases of the actions in hand")
                }
            }
        }
        let keys = self
            .holdings
            .deliveries
            .held_within(max_hold(delivery_lease));
        if !keys.is_empty() {
            let inbox = self.queues.inbox.clone();
            match persist(within, || inbox.extend_deliveries(&keys, delivery_lease)).await {
                Ok(held) => {
                    tracing::trace!(deliveries = keys.len(), held, "delivery leases extended");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot extend the leases of the deliveries in hand");
                }
            }
        }
    }
}

/// Runs the lease keeper until `shutdown` (and through the drain after it, while items are in
/// hand): every `[worker] heartbeat_ms`, the leases of the items in hand are extended.
pub async fn keep_leases(w: Worker, shutdown: CancellationToken) {
    loop {
        w.extend_leases().await;
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(w.settings.heartbeat_interval) => {}
        }
    }
}
