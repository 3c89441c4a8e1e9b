//! Slots, not rounds: the shape every worker loop shares (River's producer, Oban's queues).
//!
//! A pump holds a fixed number of slots. It leases as many items as it has free slots (at most
//! `batch` per query), hands each to its own task together with a slot, and leases again as soon
//! as a slot frees, with a short cooldown so slots freed one by one under load are refilled by
//! one query. When a lease comes back short, nothing more is due: it sleeps until woken (new
//! work), the poll interval passes, or shutdown.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::{
    sync::{Notify, OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::store::StoreError;

/// One loop's slots and timing.
#[derive(Debug, Clone)]
pub struct Pump {
    /// For logs.
    pub name: &'static str,
    /// Items in flight at most.
    pub slots: usize,
    /// Items leased by one query at most.
    pub batch: u32,
    /// Shortest time between two lease queries.
    pub cooldown: Duration,
    /// Longest sleep when nobody wakes the loop.
    pub poll: Duration,
}

impl Pump {
    /// Runs until `shutdown`, then waits for the items in flight to finish. `lease(n)` takes up
    /// to `n` due items; `start(item, slot)` must run the item in a task of its own and drop
    /// the slot when the item is done.
    pub async fn run<T, L, LF, S>(
        &self,
        wake: &Notify,
        shutdown: &CancellationToken,
        mut lease: L,
        mut start: S,
    ) where
        L: FnMut(u32) -> LF,
        LF: Future<Output = Result<Vec<T>, StoreError>>,
        S: FnMut(T, OwnedSemaphorePermit),
    {
        let slots = Arc::new(Semaphore::new(self.slots));
        let mut last_lease: Option<Instant> = None;
        loop {
            let first = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let mut permits = vec![first];
            while permits.len() < usize::try_from(self.batch).unwrap_or(usize::MAX) {
                match slots.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            if let Some(at) = last_lease {
                let next = at + self.cooldown;
                if next > Instant::now() {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep_until(next) => {}
                    }
                }
            }
            last_lease = Some(Instant::now());
            let want = u32::try_from(permits.len()).unwrap_or(u32::MAX);
            match lease(want).await {
                Ok(items) => {
                    let got = items.len();
                    for item in items {
                        // The query never returns more than asked; extra items would wait for
                        // their lease to run out, so none is dropped silently.
                        let Some(permit) = permits.pop() else {
                            tracing::error!(
                                worker_loop = self.name,
                                "lease returned more items than asked"
                            );
                            break;
                        };
                        start(item, permit);
                    }
                    drop(permits);
                    if got >= usize::try_from(want).unwrap_or(usize::MAX) {
                        continue;
                    }
                }
                Err(e) => {
                    drop(permits);
                    tracing::warn!(worker_loop = self.name, error = %e, "cannot lease work; retrying");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(self.poll) => {}
            }
        }
        // Let the items in hand finish; the caller's drain deadline bounds this.
        let all = u32::try_from(self.slots).unwrap_or(u32::MAX);
        let _ = slots.acquire_many(all).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A slow item does not hold the others: with 4 slots and one item that never finishes,
    /// the other 20 all run.
    #[tokio::test]
    async fn one_stuck_item_never_holds_the_others() {
        let pump = Pump {
            name: "test",
            slots: 4,
            batch: 2,
            cooldown: Duration::from_millis(1),
            poll: Duration::from_millis(5),
        };
        let queue = Arc::new(std::sync::Mutex::new((0..21).collect::<Vec<u32>>()));
        let done = Arc::new(AtomicUsize::new(0));
        let shutdown = CancellationToken::new();
        let wake = Notify::new();
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let run = {
            let (queue, done, shutdown) = (queue.clone(), done.clone(), shutdown.clone());
            let (max_in_flight, in_flight) = (max_in_flight.clone(), in_flight.clone());
            async move {
                pump.run(
                    &wake,
                    &shutdown,
                    |n| {
                        let queue = queue.clone();
                        async move {
                            let mut q = queue
                                .lock()
                                .map_err(|_| StoreError::Corrupt("lock".into()))?;
                            let k = q.len().min(n as usize);
                            Ok(q.drain(..k).collect::<Vec<u32>>())
                        }
                    },
                    |item, permit| {
                        let (done, max_in_flight, in_flight) =
                            (done.clone(), max_in_flight.clone(), in_flight.clone());
                        tokio::spawn(async move {
                            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                            max_in_flight.fetch_max(now, Ordering::SeqCst);
                            if item == 0 {
                                std::future::pending::<()>().await;
                            }
                            tokio::time::sleep(Duration::from_millis(2)).await;
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                            done.fetch_add(1, Ordering::SeqCst);
                            drop(permit);
                        });
                    },
                )
                .await;
            }
        };
        let task = tokio::spawn(run);
        for _ in 0..200 {
            if done.load(Ordering::SeqCst) == 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(done.load(Ordering::SeqCst), 20);
        assert!(max_in_flight.load(Ordering::SeqCst) <= 4);
        shutdown.cancel();
        // The stuck item keeps its slot, so the drain waits: the caller's deadline bounds it.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), task)
                .await
                .is_err()
        );
    }
}
