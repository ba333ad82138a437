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

/// Processes started while nats-server is down wait for it instead of exiting: each answers
/// `/livez` 200 and `/readyz` 503 naming what it waits for (the orchestrator's probes answer
/// before its event store and NATS are open), logs each try, and works once NATS is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_started_while_nats_is_down_serve_their_probes_and_wait_for_it() {
    let mut system = System::start(Backend::Sqlite).await;
    let deposits = open_accounts(&system).await;
    for service in SERVICES {
        system.kill(service);
    }
    system.nats.kill();
    let logged: Vec<usize> = SERVICES.iter().map(|s| system.log(*s).len()).collect();
    for service in SERVICES {
        system.spawn(service);
    }
    for (service, before) in SERVICES.into_iter().zip(logged) {
        let report = system.wait_readyz(service, false, DEADLINE).await;
        let waiting = match service {
            Service::Orchestrator => "starting",
            _ => "nats",
        };
        assert_eq!(report["status"], "not ready", "{service:?}: {report}");
        assert!(
            report["checks"][waiting]
                .as_str()
                .is_some_and(|c| c != "ok"),
            "{service:?} names {waiting}: {report}"
        );
        let live = system.probe(service, "/livez").await.map(|(s, _)| s);
        assert_eq!(live, Some(200), "{service:?} /livez while NATS is down");
        // Waiting, not merely slow to start: it has tried NATS and said it will try again.
        saga_testkit::wait_for(
            &format!("{} to log a retry", service.name()),
            DEADLINE,
            || async {
                let log = system.log(service);
                log.get(before..)
                    .is_some_and(|new| new.contains("trying again"))
                    .then_some(())
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", system.logs()));
    }
    system.assert_all_running("while NATS is down");

    system.nats.restart().expect("nats-server starts");
    assert_ready(&mut system, "once NATS is up").await;
    let mut sagas = Vec::new();
    start_some(&system, &mut sagas).await;
    assert_outcome(&system, &sagas, &deposits).await;
    system.assert_all_running("after the batch");
}
