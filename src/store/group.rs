//! Group commit: writes that arrive while one batch is being written wait and go together in
//! the next statement, so slots that free up together (a burst of model answers) cost one round
//! trip between them instead of one each. Nothing waits on purpose: a lone write goes at once,
//! in a batch of one.

use std::sync::Mutex;

use tokio::sync::oneshot;

/// The queue of one kind of write (`T`), each waiting for its result (`R`).
pub(super) struct GroupCommit<T, R> {
    state: Mutex<State<T, R>>,
}

struct State<T, R> {
    queue: Vec<(T, oneshot::Sender<R>)>,
    /// A writer task is draining the queue.
    writing: bool,
}

impl<T, R> std::fmt::Debug for GroupCommit<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl<T, R> Default for GroupCommit<T, R> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                queue: Vec::new(),
                writing: false,
            }),
        }
    }
}

impl<T, R> GroupCommit<T, R> {
    /// Queues `item`. The receiver gets its result; `true` when no writer is running, so the
    /// caller must start one (which calls [`GroupCommit::take`] until it comes back empty).
    pub(super) fn push(&self, item: T) -> (oneshot::Receiver<R>, bool) {
        let (tx, rx) = oneshot::channel();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.queue.push((item, tx));
        let start = !state.writing;
        state.writing = true;
        (rx, start)
    }

    /// Up to `max` queued writes, oldest first. Empty when nothing is queued, and then the
    /// writer is marked gone in the same step, so a write queued right after starts a new one.
    pub(super) fn take(&self, max: usize) -> Vec<(T, oneshot::Sender<R>)> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = state.queue.len().min(max);
        if n == 0 {
            state.writing = false;
        }
        state.queue.drain(..n).collect()
    }

    /// Drains the queue as its writer (the caller [`GroupCommit::push`] told to start one):
    /// each batch of up to `max` writes goes to `write`, which answers each write in order, until
    /// the queue is empty. A caller that went away does not need its answer; the write stands.
    pub(super) async fn drain<F, Fut>(&self, max: usize, mut write: F)
    where
        F: FnMut(Vec<T>) -> Fut,
        Fut: std::future::Future<Output = Vec<R>>,
    {
        let mut writer = WriterGuard::new(self);
        while let Some(batch) = writer.next(max) {
            let (writes, answers): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
            for (answer, result) in answers.into_iter().zip(write(writes).await) {
                let _ = answer.send(result);
            }
        }
    }

    /// Marks the writer gone (it panicked or was cancelled): the next write starts another,
    /// which drains what is still queued.
    pub(super) fn writer_gone(&self) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.writing = false;
    }
}

/// Marks the writer gone when dropped before the queue was drained: a panic or a cancelled
/// task. (A writer that drained the queue was marked gone by [`GroupCommit::take`], and another
/// may have started since.)
pub(super) struct WriterGuard<'a, T, R> {
    group: &'a GroupCommit<T, R>,
    drained: bool,
}

impl<'a, T, R> WriterGuard<'a, T, R> {
    /// Guards the writer of `group`.
    pub(super) fn new(group: &'a GroupCommit<T, R>) -> Self {
        Self {
            group,
            drained: false,
        }
    }

    /// The next batch (see [`GroupCommit::take`]); `None` once the queue is drained.
    pub(super) fn next(&mut self, max: usize) -> Option<Vec<(T, oneshot::Sender<R>)>> {
        let batch = self.group.take(max);
        if batch.is_empty() {
            self.drained = true;
            return None;
        }
        Some(batch)
    }
}

impl<T, R> Drop for WriterGuard<'_, T, R> {
    fn drop(&mut self) {
        if !self.drained {
            self.group.writer_gone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_write_starts_the_writer_and_the_rest_queue_behind_it() {
        let g: GroupCommit<u32, u32> = GroupCommit::default();
        let (_a, start_a) = g.push(1);
        let (_b, start_b) = g.push(2);
        assert!(start_a && !start_b);
        let batch: Vec<u32> = g.take(10).into_iter().map(|(t, _)| t).collect();
        assert_eq!(batch, [1, 2]);
        // Drained: the writer stops, and the next write starts a new one.
        assert!(g.take(10).is_empty());
        let (_c, start_c) = g.push(3);
        assert!(start_c);
        // A writer that dies leaves the queue to the next one.
        drop(WriterGuard::new(&g));
        let (_d, start_d) = g.push(4);
        assert!(start_d);
        let batch: Vec<u32> = g.take(1).into_iter().map(|(t, _)| t).collect();
        assert_eq!(batch, [3]);
    }
}
