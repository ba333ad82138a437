//! The partition leases of the JetStream transport: each of the [`PARTITIONS`] partitions of
//! the saga ids is leased by one replica at a time through a NATS KV bucket.
//!
//! Every replica handles any saga's replies and starts (the reply consumer is shared, and
//! the event store's optimistic concurrency settles races). What a partition's owner alone
//! does is the work nobody asks for: it fires the saga's timers (timeouts, retries,
//! deadlines), including those armed by another replica or by one that died (found through
//! the read model's `due_at`), and it re-publishes the commands of its sagas that went quiet.
//! When it gains a partition it recovers that partition's sagas quiet for half the bound
//! (those a dead replica may have left between an append and its publish): their in-flight
//! commands are published again (same message ids) and their timers armed.
//!
//! A lease is a key `partitions.{n}` in bucket [`BUCKET`] whose value is the owner's replica
//! id. The bucket's `max_age` is the failover bound: the owner rewrites the key (a
//! compare-and-set on its revision) every third of it, so a replica that dies or loses NATS
//! loses its leases after the bound, and the others take them. A replica acts on a lease only
//! until one bound after it last began a successful renewal, which is before the key can
//! expire on the server, so two replicas never both believe they own a partition.
//!
//! Each replica also keeps a key `members.{replica}` alive and aims at an equal share:
//! `ceil(PARTITIONS / members)`. A replica above its share releases partitions (deleting the
//! key, so another can take it at once), one below it takes free ones. A replica that stops
//! cleanly releases everything.

use crate::partitions::{Keeper, LeaseOptions, Ownership, PARTITIONS, partition_of};
use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

/// The KV bucket of the leases.
pub const BUCKET: &str = saga_protocol::subjects::LEASES_BUCKET;

fn partition_key(partition: u16) -> String {
    format!("partitions.{partition}")
}

fn member_key(replica: &str) -> String {
    format!("members.{replica}")
}

/// Why the leases could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the partition leases (KV bucket {BUCKET}): {0}")]
pub struct Error(#[from] jetstream::context::CreateKeyValueError);

/// The lease keeper of one replica.
pub struct Leases {
    kv: kv::Store,
    replica: String,
    bound: Duration,
    ownership: Ownership,
    /// Revision of each lease key this replica wrote last.
    held: BTreeMap<u16, u64>,
    /// Leases taken back from this replica's previous process, reported as gained (so their
    /// sagas are recovered) once the first renewal confirms them.
    taking_back: BTreeSet<u16>,
    /// Partitions gained, for the runtime to recover.
    gained: mpsc::UnboundedSender<Vec<u16>>,
}

impl Leases {
    /// Opens (or creates) the bucket with the failover bound as its `max_age` and `replicas`
    /// copies, for the replica `options` names. Leases still held
    /// under that name (by this replica's previous process, which died) are taken back at once.
    pub async fn open(js: &jetstream::Context, options: LeaseOptions) -> Result<Self, Error> {
        let LeaseOptions {
            replica,
            bound,
            replicas,
            ownership,
            gained,
        } = options;
        let config = kv::Config {
            bucket: BUCKET.to_string(),
            description: "saga orchestrator partition leases".to_string(),
            history: 1,
            max_age: bound,
            storage: jetstream::stream::StorageType::File,
            num_replicas: replicas.max(1),
            ..Default::default()
        };
        // NATS away, or a cluster still forming (every process starting at once), times out
        // or refuses for a while: wait it out, as for the streams.
        let kv = saga_protocol::retry::transient(
            "open the partition leases",
            || js.create_or_update_key_value(config.clone()),
            |error: &jetstream::context::CreateKeyValueError| {
                use jetstream::context::CreateKeyValueErrorKind as Kind;
                matches!(
                    error.kind(),
                    Kind::TimedOut | Kind::JetStream | Kind::BucketCreate
                )
            },
        )
        .await?;
        let held = own_leases(&kv, &replica).await;
        if !held.is_empty() {
            tracing::info!(%replica, partitions = held.len(), "taking back this replica's leases");
        }
        Ok(Leases {
            kv,
            replica,
            bound,
            ownership,
            taking_back: held.keys().copied().collect(),
            held,
            gained,
        })
    }

    /// One round: say this replica is alive, renew what it holds, then move towards its
    /// share. Failures are logged and leave the next round to try again; a lease that could
    /// not be renewed lapses by itself.
    async fn round(&mut self) {
        let began = Instant::now();
        let until = began + self.bound.mul_f64(0.9);
        if let Err(e) = self.kv.put(member_key(&self.replica), "".into()).await {
            tracing::warn!(error = %e, "cannot renew this replica's membership");
        }
        // All renewals at once: one round trip, however many partitions this replica holds.
        let held: Vec<(u16, u64)> = self.held.iter().map(|(p, r)| (*p, *r)).collect();
        let renewals = held.iter().map(|(partition, revision)| {
            self.kv.update(
                partition_key(*partition),
                self.replica.clone().into(),
                *revision,
            )
        });
        let renewed = futures::future::join_all(renewals).await;
        let mut gained = Vec::new();
        for ((partition, _), renewed) in held.into_iter().zip(renewed) {
            match renewed {
                Ok(revision) => {
                    self.held.insert(partition, revision);
                    self.ownership.hold(partition, until);
                    if self.taking_back.remove(&partition) {
                        gained.push(partition);
                    }
                }
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    tracing::warn!(partition, "partition lease lost to another replica");
                    self.lose(partition);
                }
                // Unknown (NATS unreachable): keep trying while the lease may still be ours;
                // `ownership` stops acting on it when it lapses.
                Err(e) => tracing::warn!(partition, error = %e, "cannot renew a partition lease"),
            }
        }
        // Leases of the previous process that this round could not confirm are not taken back.
        self.taking_back.clear();
        let Some((members, taken)) = self.view().await else {
            self.report_gained(gained, 0);
            return;
        };
        let share = usize::from(PARTITIONS).div_ceil(members.max(1));
        while self.held.len() > share {
            let Some((&partition, &revision)) = self.held.last_key_value() else {
                break;
            };
            self.lose(partition);
            if let Err(e) = self
                .kv
                .delete_expect_revision(partition_key(partition), Some(revision))
                .await
            {
                tracing::debug!(partition, error = %e, "releasing a lease failed; it lapses");
            }
        }
        // Free partitions up to the share, all asked for at once; another replica may win
        // some of them, and the next round tries others.
        let wanted: Vec<u16> = self
            .preference()
            .into_iter()
            .filter(|p| !self.held.contains_key(p) && !taken.contains(p))
            .take(share.saturating_sub(self.held.len()))
            .collect();
        let creates = wanted.iter().map(|p| {
            self.kv
                .create(partition_key(*p), self.replica.clone().into())
        });
        let created = futures::future::join_all(creates).await;
        for (partition, created) in wanted.into_iter().zip(created) {
            if let Ok(revision) = created {
                self.held.insert(partition, revision);
                self.ownership.hold(partition, until);
                gained.push(partition);
            }
        }
        self.report_gained(gained, members);
    }

    /// Tells the runtime which partitions this replica gained, so it recovers their sagas.
    fn report_gained(&self, gained: Vec<u16>, members: usize) {
        if !gained.is_empty() {
            tracing::info!(
                replica = %self.replica,
                gained = ?gained,
                owned = self.held.len(),
                members,
                "partition leases taken"
            );
            let _ = self.gained.send(gained);
        }
    }

    /// How many replicas are alive and which partitions are leased, from the bucket's keys.
    /// This replica's own membership key is never counted twice, so a restarted replica
    /// with a stable name does not wait on the key its dead process left.
    async fn view(&self) -> Option<(usize, BTreeSet<u16>)> {
        let mut keys = match self.kv.keys().await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the partition leases");
                return None;
            }
        };
        // This replica counts even when its own membership could not be renewed just now.
        let own = member_key(&self.replica);
        let mut members = 1;
        let mut taken = BTreeSet::new();
        while let Some(key) = keys.next().await {
            let Ok(key) = key else { return None };
            if key.starts_with("members.") && key != own {
                members += 1;
            } else if let Some(p) = key
                .strip_prefix("partitions.")
                .and_then(|p| p.parse::<u16>().ok())
            {
                taken.insert(p);
            }
        }
        Some((members, taken))
    }

    /// The partitions in the order this replica tries them: from a point of its own, so
    /// replicas starting together do not all race for partition 0.
    fn preference(&self) -> Vec<u16> {
        let start = partition_of(Uuid::new_v5(&Uuid::NAMESPACE_OID, self.replica.as_bytes()));
        (0..PARTITIONS).map(|i| (start + i) % PARTITIONS).collect()
    }

    fn lose(&mut self, partition: u16) {
        self.held.remove(&partition);
        self.ownership.drop_partition(partition);
    }

    async fn release_all(&mut self) {
        let held = std::mem::take(&mut self.held);
        for (partition, revision) in held {
            self.ownership.drop_partition(partition);
            let _ = self
                .kv
                .delete_expect_revision(partition_key(partition), Some(revision))
                .await;
        }
        let _ = self.kv.delete(member_key(&self.replica)).await;
        tracing::info!(replica = %self.replica, "partition leases released");
    }
}

impl Keeper for Leases {
    fn replica(&self) -> &str {
        &self.replica
    }

    /// Renews, releases and takes leases every third of the bound until `shutdown`, then
    /// releases every lease it holds.
    async fn run(mut self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let mut ticks = tokio::time::interval(self.bound / 3);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = ticks.tick() => self.round().await,
            }
        }
        self.release_all().await;
    }
}

/// The partition leases that name `replica` in the bucket, with their revisions: left by a
/// process of the same name that died. The first round renews them by compare-and-set, so
/// one that another replica took meanwhile is lost there, not acted on. Best effort: what
/// cannot be read now lapses and is taken the ordinary way.
async fn own_leases(kv: &kv::Store, replica: &str) -> BTreeMap<u16, u64> {
    let mut held = BTreeMap::new();
    let Ok(mut keys) = kv.keys().await else {
        return held;
    };
    let mut partitions = Vec::new();
    while let Some(Ok(key)) = keys.next().await {
        if let Some(p) = key
            .strip_prefix("partitions.")
            .and_then(|p| p.parse::<u16>().ok())
        {
            partitions.push(p);
        }
    }
    let entries =
        futures::future::join_all(partitions.iter().map(|p| kv.entry(partition_key(*p)))).await;
    for (partition, entry) in partitions.into_iter().zip(entries) {
        if let Ok(Some(entry)) = entry
            && entry.operation == kv::Operation::Put
            && entry.value.as_ref() == replica.as_bytes()
        {
            held.insert(partition, entry.revision);
        }
    }
    held
}
