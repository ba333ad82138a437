//! Outages are waited out: with nats-server and PostgreSQL each taken down five times while a
//! batch of sagas runs, no process exits, `/readyz` is not ready during every outage (naming
//! the dependency) and ready after it, and every saga still ends with money conserved.
//! `/livez` stays up throughout, so Kubernetes takes the pods out of service instead of
//! restarting them.

use crate::place_order::{assert_outcome, nth, open_accounts};
use crate::system::{Backend, Service, System};
use std::time::Duration;
use uuid::Uuid;

const SERVICES: [Service; 3] = [Service::Orchestrator, Service::Account, Service::Order];
/// NATS clients reconnect with a growing back-off, and a pool notices a dead database on
/// its next use; both well within this.
const DEADLINE: Duration = Duration::from_secs(60);
/// Outages of each dependency.
const OUTAGES: usize = 5;
/// Sagas started before each outage, so some are in flight when it begins.
const PER_OUTAGE: usize = 6;

/// Every service is unready with `check` failing, yet live, and none has exited.
async fn assert_unready(system: &mut System, check: &str, outage: usize) {
    for service in SERVICES {
        let report = system.wait_readyz(service, false, DEADLINE).await;
        assert_eq!(report["status"], "not ready", "{service:?}: {report}");
        assert_ne!(report["checks"][check], "ok", "{service:?}: {report}");
        let live = system.probe(service, "/livez").await.map(|(s, _)| s);
        assert_eq!(live, Some(200), "{service:?} /livez during the outage");
    }
    system.assert_all_running(&format!("during {check} outage {outage}"));
}

async fn assert_ready(system: &mut System, after: &str) {
    for service in SERVICES {
        let report = system.wait_readyz(service, true, DEADLINE).await;
        assert_eq!(report["status"], "ready", "{service:?} {after}: {report}");
        let checks = report["checks"].as_object().expect("checks");
        assert!(
            checks
                .values()
                .all(|c| c == "ok" || c.as_str().is_some_and(|c| c.ends_with("loaded"))),
            "{service:?} {after}: {report}"
        );
    }
    system.assert_all_running(after);
}

/// Starts the next `PER_OUTAGE` sagas of the batch.
async fn start_some(system: &System, sagas: &mut Vec<(Uuid, &'static str)>) {
    for _ in 0..PER_OUTAGE {
        let (customer, amount, expected) = nth(sagas.len());
        sagas.push((system.start_saga(&customer, amount).await, expected));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_and_postgres_each_down_five_times_during_a_batch_nothing_exits_every_saga_ends() {
    let mut system = System::start(Backend::Postgres).await;
    assert_ready(&mut system, "at start").await;
    let deposits = open_accounts(&system).await;
    let mut sagas = Vec::new();

    for outage in 1..=OUTAGES {
        start_some(&system, &mut sagas).await;
        system.nats.kill();
        assert_unready(&mut system, "nats", outage).await;
        system.nats.restart().expect("nats-server starts again");
        assert_ready(&mut system, &format!("after nats outage {outage}")).await;
    }

    for outage in 1..=OUTAGES {
        start_some(&system, &mut sagas).await;
        let pg = system.pg.as_ref().expect("PostgreSQL backend");
        pg.stop().expect("PostgreSQL stops");
        assert_unready(&mut system, "database", outage).await;
        let pg = system.pg.as_ref().expect("PostgreSQL backend");
        pg.start_again().expect("PostgreSQL starts again");
        assert_ready(&mut system, &format!("after database outage {outage}")).await;
    }

    // Ready means working: the sagas started before the outages end, and new ones run.
    start_some(&system, &mut sagas).await;
    assert_outcome(&system, &sagas, &deposits).await;
    system.assert_all_running("after the batch");
}
