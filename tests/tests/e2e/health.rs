//! `/readyz` follows the dependencies: not ready while NATS or the database is down, ready
//! again when they return; `/livez` stays up throughout, so Kubernetes takes the pods out of
//! service instead of restarting them.

use crate::place_order::{assert_outcome, nth, open_accounts};
use crate::system::{Backend, Service, System};
use std::time::Duration;

const SERVICES: [Service; 3] = [Service::Orchestrator, Service::Account, Service::Order];
/// NATS clients reconnect with a growing back-off, and a pool notices a dead database on
/// its next use; both well within this.
const DEADLINE: Duration = Duration::from_secs(60);

/// Every service is unready with `check` failing, yet live.
async fn assert_unready(system: &System, check: &str) {
    for service in SERVICES {
        let report = system.wait_readyz(service, false, DEADLINE).await;
        assert_eq!(report["status"], "not ready", "{service:?}: {report}");
        assert_ne!(report["checks"][check], "ok", "{service:?}: {report}");
        let live = system.probe(service, "/livez").await.map(|(s, _)| s);
        assert_eq!(live, Some(200), "{service:?} /livez during the outage");
    }
}

async fn assert_ready(system: &System) {
    for service in SERVICES {
        let report = system.wait_readyz(service, true, DEADLINE).await;
        assert_eq!(report["status"], "ready", "{service:?}: {report}");
        let checks = report["checks"].as_object().expect("checks");
        assert!(checks.len() >= 3, "{service:?}: {report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_not_ready_while_nats_or_the_database_is_down() {
    let mut system = System::start(Backend::Postgres).await;
    assert_ready(&system).await;

    system.nats.kill();
    assert_unready(&system, "nats").await;
    system.nats.restart().expect("nats-server starts again");
    assert_ready(&system).await;

    let pg = system.pg.as_ref().expect("PostgreSQL backend");
    pg.stop().expect("PostgreSQL stops");
    assert_unready(&system, "database").await;
    pg.start_again().expect("PostgreSQL starts again");
    assert_ready(&system).await;

    // Ready means working: sagas run end to end after both outages.
    let deposits = open_accounts(&system).await;
    let mut sagas = Vec::new();
    for i in 0..10 {
        let (customer, amount, expected) = nth(i);
        sagas.push((system.start_saga(&customer, amount).await, expected));
    }
    assert_outcome(&system, &sagas, &deposits).await;
}
