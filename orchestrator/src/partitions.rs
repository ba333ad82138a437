//! Which replica owns which sagas: [`PARTITIONS`] partitions of the saga ids, each owned by
//! one replica at a time.
//!
//! Every replica handles any saga's replies and starts (the reply consumer is shared, and
//! the event store's optimistic concurrency settles races). What a partition's owner alone
//! does is the work nobody asks for: it fires the saga's timers (timeouts, retries,
//! deadlines), including those armed by another replica or by one that died (found through
//! the read model's `due_at`), and it re-publishes the commands of its sagas that went quiet.
//! When it gains a partition it recovers that partition's sagas quiet for half the bound.
//!
//! Who owns what is decided by the transport's lease [`Keeper`]: over JetStream, leases in a
//! KV bucket shared by the replicas (`transport::leases`); in memory, the one process owns
//! every partition.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

mod replica;
pub use replica::{replica_id, stable_replica_id};

/// How many partitions the saga ids fall into. A persisted contract (the lease keys name
/// them): every replica must use the same number.
pub const PARTITIONS: u16 = 64;

/// The partition of a saga: its id's last 64 bits (random in v4 and v7 ids) modulo
/// [`PARTITIONS`]. Stable across processes and versions.
///
/// ```
/// use saga_orchestrator::partitions::{partition_of, PARTITIONS};
/// let id = uuid::Uuid::from_u64_pair(7, 130);
/// assert_eq!(partition_of(id), 130 % PARTITIONS);
/// ```
pub fn partition_of(saga_id: Uuid) -> u16 {
    let (_, low) = saga_id.as_u64_pair();
    u16::try_from(low % u64::from(PARTITIONS)).unwrap_or(0)
}

/// Until when this replica may act as the owner of each partition. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Ownership {
    valid_until: Arc<Mutex<BTreeMap<u16, Instant>>>,
}

impl Ownership {
    /// Whether this replica owns `saga_id`'s partition now.
    pub fn owns(&self, saga_id: Uuid) -> bool {
        self.owns_partition(partition_of(saga_id))
    }

    /// Whether this replica owns `partition` now.
    pub fn owns_partition(&self, partition: u16) -> bool {
        self.lock()
            .get(&partition)
            .is_some_and(|until| *until > Instant::now())
    }

    /// The partitions this replica owns now.
    pub fn owned(&self) -> BTreeSet<u16> {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(p, _)| *p)
            .collect()
    }

    pub(crate) fn hold(&self, partition: u16, until: Instant) {
        self.lock().insert(partition, until);
    }

    pub(crate) fn drop_partition(&self, partition: u16) {
        self.lock().remove(&partition);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u16, Instant>> {
        self.valid_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a lease keeper is opened with.
#[derive(Debug, Clone)]
pub struct LeaseOptions {
    /// This replica's name ([`replica_id`], [`stable_replica_id`]).
    pub replica: String,
    /// The failover bound: a replica that stops renewing loses its leases after it.
    pub bound: Duration,
    /// Copies of the lease bucket, where the keeper keeps one.
    pub replicas: usize,
    /// Where the keeper writes until when this replica owns each partition.
    pub ownership: Ownership,
    /// Where the keeper reports the partitions it gained, so their sagas are recovered.
    pub gained: mpsc::UnboundedSender<Vec<u16>>,
}

/// Keeps this replica's share of the partitions in [`Ownership`] while it runs, and lets it
/// go when it stops.
pub trait Keeper: Send + 'static {
    /// This replica's name among the others.
    fn replica(&self) -> &str;

    /// Takes, renews and releases leases until `shutdown` resolves, then releases them all.
    fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send;
}
