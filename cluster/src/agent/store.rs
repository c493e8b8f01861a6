//! The agent's view of the cluster store: the handful of operations it needs, so etcd today and
//! the Kubernetes API next can sit behind one trait without touching the agent's logic.

use std::future::Future;
use std::time::Duration;

/// A store error: what failed and why, and whether the store was unreachable (the agent keeps the
/// data plane and retries) rather than refusing the request.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{op}: {message}")]
pub struct StoreError {
    /// The operation, e.g. "list /coreos.com/network/subnets/".
    pub op: String,
    /// The store's message.
    pub message: String,
    /// True when the store could not be reached or did not answer in time.
    pub unavailable: bool,
}

impl StoreError {
    /// The store could not be reached.
    pub fn unavailable(op: impl Into<String>, message: impl std::fmt::Display) -> StoreError {
        StoreError { op: op.into(), message: message.to_string(), unavailable: true }
    }

    /// The store answered with an error.
    pub fn failed(op: impl Into<String>, message: impl std::fmt::Display) -> StoreError {
        StoreError { op: op.into(), message: message.to_string(), unavailable: false }
    }
}

/// What store calls return.
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// One key with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// The store lease the key is bound to; 0 for none (a reservation, in flannel's terms).
    pub lease: i64,
    /// The store revision that created the key (orders leases that claim overlapping subnets:
    /// the older one holds them).
    pub create_revision: i64,
}

/// Keys under a prefix and the store revision they were read at.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The keys, in key order.
    pub kvs: Vec<KeyValue>,
    /// The revision of the read: watching from `revision + 1` misses nothing.
    pub revision: i64,
}

/// One change under a watched prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was created or changed.
    Put(KeyValue),
    /// A key was deleted or its lease expired.
    Delete(String),
}

/// What a watch yields.
#[derive(Debug, Clone)]
pub enum WatchItem {
    /// Changes, in order, as of `revision`.
    Events {
        /// The changes.
        events: Vec<WatchEvent>,
        /// The store revision after them.
        revision: i64,
    },
    /// The start revision was compacted away: list again and watch from the new revision.
    Compacted {
        /// The oldest revision still available.
        compact_revision: i64,
    },
}

/// A running watch.
pub trait StoreWatch: Send {
    /// The next item; an error means the watch is broken (list again and re-watch).
    fn next(&mut self) -> impl Future<Output = StoreResult<WatchItem>> + Send;
}

/// The operations the agent needs from a cluster store.
///
/// Keys bound to a lease disappear when the lease is neither kept alive nor revoked within its
/// TTL; keys without one stay until deleted.
pub trait Store: Send + Sync + 'static {
    /// The watch type.
    type Watch: StoreWatch + 'static;

    /// One key.
    fn get(&self, key: &str) -> impl Future<Output = StoreResult<Option<KeyValue>>> + Send;
    /// Every key under `prefix`, with the revision of the read.
    fn list(&self, prefix: &str) -> impl Future<Output = StoreResult<Listing>> + Send;
    /// Changes under `prefix` from `from_revision` on.
    fn watch(&self, prefix: &str, from_revision: i64) -> impl Future<Output = StoreResult<Self::Watch>> + Send;
    /// Create `key` only if it does not exist (a transaction on version == 0), bound to `lease`
    /// (0: none). False when it existed.
    fn create(&self, key: &str, value: &[u8], lease: i64) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Write `key` whether or not it exists, bound to `lease` (0: none).
    fn put(&self, key: &str, value: &[u8], lease: i64) -> impl Future<Output = StoreResult<()>> + Send;
    /// Delete `key` (absent is success).
    fn delete(&self, key: &str) -> impl Future<Output = StoreResult<()>> + Send;
    /// A new lease with `ttl`; returns its id.
    fn grant(&self, ttl: Duration) -> impl Future<Output = StoreResult<i64>> + Send;
    /// Refresh `lease`; `None` when it no longer exists (expired or revoked).
    fn keep_alive(&self, lease: i64) -> impl Future<Output = StoreResult<Option<Duration>>> + Send;
    /// Revoke `lease`, deleting its keys.
    fn revoke(&self, lease: i64) -> impl Future<Output = StoreResult<()>> + Send;
}
