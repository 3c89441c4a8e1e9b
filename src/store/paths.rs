//! The accept path's own connections: a handle of the same store over the accept path's pool,
//! so a webhook's (or a gRPC call's) answer never queues behind the worker's statements.

use std::sync::Arc;

use super::Store;
#[allow(clippy::wildcard_imports)]
use super::backend::*;

/// The store as the accept path sees it.
pub trait AcceptPath: Send + Sync {
    /// The same store (same lease holder) over the accept path's pool, its pool waits labelled
    /// `accept`; the store itself when every path shares one pool.
    fn accepting(&self) -> Arc<dyn Store>;
}

macro_rules! impl_accept_path {
    ($store:ident, $pool:ty, $row:ty, $backend:literal, $skip_locked:literal) => {
        impl AcceptPath for $store {
            fn accepting(&self) -> Arc<dyn Store> {
                Arc::new(self.accept_handle())
            }
        }
    };
}

for_both_backends!(impl_accept_path);
