//! Partition leases between replicas, over a real nats-server: a lone replica owns every
//! partition, a second one gets an equal share, the two never own one partition at once, and
//! the partitions of a replica that stops, or dies without a word, go to the one left; a
//! replica restarted under its name takes its leases back at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use saga_orchestrator::partitions::{Keeper, LeaseOptions, Ownership, PARTITIONS, replica_id};
use saga_orchestrator::transport::leases::Leases;
use saga_testkit::{NatsServer, wait_for};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The shortest failover bound, so lapsed leases move quickly.
const BOUND: Duration = Duration::from_secs(1);

/// A replica's lease keeper, running.
struct Replica {
    ownership: Ownership,
    gained: mpsc::UnboundedReceiver<Vec<u16>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn replica(nats: &NatsServer) -> Replica {
    replica_named(nats, BOUND, replica_id()).await
}

async fn replica_named(nats: &NatsServer, bound: Duration, name: String) -> Replica {
    let client = nats.client().await.unwrap();
    let js = async_nats::jetstream::new(client);
    let ownership = Ownership::default();
    let (gained_tx, gained) = mpsc::unbounded_channel();
    let options = LeaseOptions {
        replica: name,
        bound,
        replicas: 1,
        ownership: ownership.clone(),
        gained: gained_tx,
    };
    let leases = Leases::open(&js, options).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(leases.run(stop.clone().cancelled_owned()));
    Replica {
        ownership,
        gained,
        stop,
        task,
    }
}

/// Waits until `ready` holds of the replicas' owned partitions, checking at every look that
/// no partition is owned by two of them.
async fn until(what: &str, replicas: &[&Replica], ready: impl Fn(&[BTreeSet<u16>]) -> bool) {
    wait_for(what, Duration::from_secs(30), || {
        let owned: Vec<BTreeSet<u16>> = replicas.iter().map(|r| r.ownership.owned()).collect();
        for (i, a) in owned.iter().enumerate() {
            for b in &owned[i + 1..] {
                let both: Vec<_> = a.intersection(b).collect();
                assert!(both.is_empty(), "partitions owned twice: {both:?}");
            }
        }
        std::future::ready(ready(&owned).then_some(()))
    })
    .await
    .unwrap_or_else(|e| {
        let owned: Vec<usize> = replicas.iter().map(|r| r.ownership.owned().len()).collect();
        panic!("{e}: owned {owned:?}")
    });
}

fn all(owned: &BTreeSet<u16>) -> bool {
    owned.len() == usize::from(PARTITIONS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_partitions_and_take_over_those_of_one_that_stops_or_dies() {
    let nats = NatsServer::start().unwrap();

    // Given one replica: it owns every partition, and says it gained them.
    let mut a = replica(&nats).await;
    until("the lone replica to own everything", &[&a], |o| all(&o[0])).await;
    let mut gained = BTreeSet::new();
    while let Ok(partitions) = a.gained.try_recv() {
        gained.extend(partitions);
    }
    assert_eq!(gained.len(), usize::from(PARTITIONS));

    // When a second one starts: each gets half, never the same partition.
    let b = replica(&nats).await;
    let half = usize::from(PARTITIONS) / 2;
    until("an equal share each", &[&a, &b], |o| {
        o[0].len() == half && o[1].len() == half
    })
    .await;

    // When it stops cleanly: its leases are released and the first takes them back.
    b.stop.cancel();
    b.task.await.unwrap();
    until("the first to own everything again", &[&a], |o| all(&o[0])).await;

    // When a third one joins and then dies without a word (its task aborted, nothing
    // released): its leases lapse after the bound and the first takes them over.
    let mut c = replica(&nats).await;
    until("an equal share with the third", &[&a, &c], |o| {
        o[0].len() == half && o[1].len() == half
    })
    .await;
    c.task.abort();
    let _ = (&mut c.task).await;
    // The dead one's own view lapses before the bucket lets the first take over, so at no
    // look do both claim a partition.
    until("the first to take over the dead one's", &[&a, &c], |o| {
        all(&o[0])
    })
    .await;
    // Then the dead one's view has lapsed too: it would act on nothing.
    wait_for(
        "the dead replica's leases to lapse",
        Duration::from_secs(10),
        || std::future::ready(c.ownership.owned().is_empty().then_some(())),
    )
    .await
    .unwrap();

    a.stop.cancel();
    a.task.await.unwrap();
}

/// A failover bound long enough that no lease lapses while the restart is checked.
const LONG_BOUND: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_under_its_name_takes_its_leases_back_without_waiting_on_its_ghost() {
    let nats = NatsServer::start().unwrap();
    let half = usize::from(PARTITIONS) / 2;
    let a = replica_named(&nats, LONG_BOUND, "replica-a".into()).await;
    let b = replica_named(&nats, LONG_BOUND, "replica-b".into()).await;
    until("an equal share each", &[&a, &b], |o| {
        o[0].len() == half && o[1].len() == half
    })
    .await;
    let held_by_a = a.ownership.owned();

    // When `a` dies without a word (its task aborted: its leases and its membership key stay
    // in the bucket until they lapse, LONG_BOUND from its last renewal) and a new process
    // starts under its name:
    a.task.abort();
    let _ = a.task.await;
    let mut again = replica_named(&nats, LONG_BOUND, "replica-a".into()).await;

    // Then it holds the same partitions again before any of them could lapse (the deadline
    // is half the bound): it neither waits for its old leases nor counts its old membership
    // as a third replica (which would shrink its share to 22).
    wait_for(
        "the restarted replica to hold its partitions",
        LONG_BOUND / 2,
        || std::future::ready((again.ownership.owned() == held_by_a).then_some(())),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: holds {} partitions", again.ownership.owned().len()));
    assert_eq!(b.ownership.owned().len(), half, "the other keeps its share");
    // And it recovers their sagas: the partitions taken back are reported as gained (at the
    // end of the round that confirmed them).
    let mut reported = BTreeSet::new();
    let within = tokio::time::timeout(LONG_BOUND / 2, async {
        while reported != held_by_a {
            reported.extend(again.gained.recv().await.unwrap());
        }
    });
    within
        .await
        .unwrap_or_else(|_| panic!("gained {reported:?}, held {held_by_a:?}"));

    for r in [again, b] {
        r.stop.cancel();
        r.task.await.unwrap();
    }
}
