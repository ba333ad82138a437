//! `saga dev`: the whole system on one machine with nothing to set up.
//!
//! Starts a nats-server with JetStream (store under the data directory), the account, order
//! and inventory participants and the orchestrator (each on its own SQLite file), serves the
//! API, opens a few demo accounts and a show, runs a batch of demo sagas, prints what
//! happened, and keeps serving until Ctrl-C.

use super::{DevArgs, Error};
use saga_core::Status;
use saga_orchestrator::runtime::{Options, Orchestrator};
use std::net::TcpListener;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Demo customers and their first deposit (minor units).
const CUSTOMERS: [(&str, i64); 4] = [
    ("alice", 5_000_000),
    ("bob", 5_000_000),
    ("carol", 3_000_000),
    ("dave", 20_000),
];

/// The demo show and its seats: the third booking of the default demo finds too few left.
const SHOW: (&str, i64) = ("opening-night", 5);
/// The price of a seat (minor units).
const SEAT_PRICE: i64 = 2_500;

pub async fn run(args: DevArgs) -> Result<ExitCode, Error> {
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
    let data = std::fs::canonicalize(&args.data_dir)?;
    let shutdown = super::servers::shutdown_on_signal();
    // A missing token or a port in use stops `saga dev` here, before anything starts.
    let api = args.api.bind(&shutdown).await?;

    let port = args.nats_port.unwrap_or_else(|| pick_port(4222));
    let nats = tokio::task::block_in_place(|| {
        saga_testkit::NatsServer::launch(saga_testkit::NatsOptions {
            port: Some(port),
            dir: Some(data.clone()),
            ..saga_testkit::NatsOptions::default()
        })
    })?;
    let nats_url = nats.url();
    println!(
        "nats-server   {nats_url}  (JetStream store in {})",
        data.join("nats").display()
    );
    let identities = nats.identities().clone();
    println!(
        "credentials   an NKey per process in {} (admin.nk for `saga account` and `saga dlq`)",
        data.join("credentials").display()
    );

    let mut tasks = tokio::task::JoinSet::new();
    for (kind, file) in [
        (saga_participants::Kind::Account, "account.db"),
        (saga_participants::Kind::Order, "order.db"),
        (saga_participants::Kind::Inventory, "inventory.db"),
    ] {
        super::servers::check_catalogue(
            kind,
            &args.sagas.join(saga_orchestrator::runtime::CATALOGUE_FILE),
        )?;
        let options = saga_participants::Options {
            nats_url: nats_url.clone(),
            nats_nkey: identities.nkey(kind.as_str()),
            nats_ca: identities.ca(),
            database_url: sqlite_url(&data, file),
            ..saga_participants::Options::default()
        };
        let stop = shutdown.clone().cancelled_owned();
        tasks.spawn(async move {
            saga_participants::run(kind, options, stop)
                .await
                .map_err(|e| format!("{kind} participant: {e}"))
        });
        println!(
            "participant   {kind:<9} sqlite {}",
            data.join(file).display()
        );
    }

    let options = Options {
        nats_url: nats_url.clone(),
        nats_nkey: identities.nkey("orchestrator"),
        nats_ca: identities.ca(),
        database_url: sqlite_url(&data, "orchestrator.db"),
        sagas_dir: args.sagas.clone(),
        republish_after: Duration::from_secs(5),
        ..Options::default()
    };
    let orchestrator = tokio::select! {
        opened = Orchestrator::open(&options) => opened?,
        () = shutdown.cancelled() => return Ok(ExitCode::SUCCESS),
    };
    println!(
        "orchestrator  http://{}  sagas: {}",
        args.api.listen,
        orchestrator
            .registry()
            .names()
            .collect::<Vec<_>>()
            .join(", ")
    );
    {
        let o = orchestrator.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            saga_orchestrator::api::serve(o, api, stop)
                .await
                .map_err(|e| format!("orchestrator: {e}"))
        });
    }

    // The participants and the API run until shutdown: one that ends before it has failed,
    // and stops `saga dev` with its message instead of leaving a system that only looks up.
    let demo_then_serve = async {
        if args.demo > 0 {
            let admin = identities.connect(&nats_url, "admin").await?;
            demo(&orchestrator, &admin, args.demo).await?;
        }
        if !args.exit_after_demo {
            println!(
                "\nServing until Ctrl-C. Open the web UI at http://{}/ or try:",
                args.api.listen
            );
            println!(
                "  cargo run -q --bin saga -- start place_order --input '{{\"customer_id\":\"alice\",\"amount\":500}}' --wait"
            );
            println!("  cargo run -q --bin saga -- history <saga id>");
            println!("  curl -s http://{}/v1/sagas/<saga id>", args.api.listen);
            println!("  curl -s http://{}/metrics", args.api.listen);
            shutdown.cancelled().await;
        }
        Ok::<(), Error>(())
    };
    let outcome = tokio::select! {
        outcome = demo_then_serve => outcome.map_err(|e| format!("demo failed: {e}")),
        failure = first_failure(&mut tasks) => Err(failure),
    };
    if let Err(e) = &outcome {
        eprintln!("{e}");
    }
    shutdown.cancel();
    let drain = async {
        while let Some(done) = tasks.join_next().await {
            if let Ok(Err(e)) = done {
                eprintln!("{e}");
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(15), drain).await;
    drop(nats);
    Ok(if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Why the first of `tasks` to end did: each part of `saga dev` runs until shutdown, so any
/// end before it is a failure. Pending while every part runs.
async fn first_failure(tasks: &mut tokio::task::JoinSet<Result<(), String>>) -> String {
    match tasks.join_next().await {
        Some(Ok(Err(e))) => e,
        Some(Ok(Ok(()))) => "a part of the system stopped by itself".to_string(),
        Some(Err(e)) => format!("a part of the system crashed: {e}"),
        None => std::future::pending().await,
    }
}

fn sqlite_url(dir: &Path, file: &str) -> String {
    format!("sqlite:{}", dir.join(file).display())
}

/// `preferred` if nothing listens on it, else a free port.
fn pick_port(preferred: u16) -> u16 {
    TcpListener::bind(("127.0.0.1", preferred))
        .or_else(|_| TcpListener::bind(("127.0.0.1", 0)))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(preferred)
}

struct DemoSaga {
    saga_id: uuid::Uuid,
    name: &'static str,
    customer: &'static str,
    amount: i64,
    started: Instant,
}

/// Opens the demo accounts and the show and runs `count` sagas: mostly place_order, every
/// fourth an express_order (a parallel group, a pivot and a retriable step), some
/// approved_order (an await step, whose approval the demo sends), some book_seats (seats of
/// the show, charged to the account). Most complete; those above the review limit, beyond a
/// customer's credit or beyond the seats left are compensated.
async fn demo(
    orchestrator: &Orchestrator,
    client: &async_nats::Client,
    count: usize,
) -> Result<(), Error> {
    for (customer, deposit) in CUSTOMERS {
        retry_admin(|| saga_participants::admin::open_account(client, customer, deposit)).await?;
    }
    let (show, capacity) = SHOW;
    retry_admin(|| saga_participants::admin::create_show(client, show, capacity)).await?;
    let mut sagas = Vec::with_capacity(count);
    for i in 0..count {
        let (customer, _) = CUSTOMERS[i % CUSTOMERS.len()];
        let amount = match i % 6 {
            4 => 1_500_000, // above the order review limit: approval refused, compensated
            _ if customer == "dave" => 15_000, // dave's credit covers one such order only
            _ => 1_000 + 2_500 * i64::try_from(i).unwrap_or(0),
        };
        let mut input = serde_json::json!({ "customer_id": customer, "amount": amount });
        let loaded = |name: &str| orchestrator.registry().latest(name).is_some();
        let name = if i % 5 == 1 && loaded("book_seats") {
            let seats = [2, 1, 3][(i / 5) % 3];
            input = serde_json::json!({
                "customer_id": customer,
                "show_id": show,
                "seats": seats,
                "amount": seats * SEAT_PRICE,
            });
            "book_seats"
        } else if i % 4 == 2 && loaded("express_order") {
            "express_order"
        } else if i % 6 == 3 && loaded("approved_order") {
            "approved_order"
        } else {
            "place_order"
        };
        let started = Instant::now();
        let amount = input["amount"].as_i64().unwrap_or(amount);
        let saga = orchestrator.start(name, input, None).await?;
        sagas.push(DemoSaga {
            saga_id: saga.saga_id,
            name,
            customer,
            amount,
            started,
        });
    }
    println!("\nran {count} demo sagas:\n");
    let mut table = super::table([
        "saga id", "saga", "customer", "amount", "status", "took", "reason",
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut by_status = std::collections::BTreeMap::<&str, usize>::new();
    for s in &sagas {
        let loaded = loop {
            let loaded = orchestrator.load(s.saga_id).await?;
            if loaded.state.status.is_terminal() || Instant::now() > deadline {
                break loaded;
            }
            // The demo plays the approver of approved_order (a person in the web UI, or an
            // approval service, would send it).
            let waits_for_approval = loaded.state.steps.iter().any(|step| {
                step.status == saga_core::StepStatus::Waiting
                    && step.signal.as_deref() == Some("approval")
            });
            if waits_for_approval {
                let approval = serde_json::json!({ "approved_by": "saga dev" });
                orchestrator.signal(s.saga_id, "approval", approval).await?;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let took = if loaded.state.status.is_terminal() {
            format!(
                "{:.0?}",
                loaded
                    .record
                    .updated_at
                    .since(loaded.record.created_at)
                    .max(Duration::from_millis(1))
            )
        } else {
            format!(">{:.0?}", s.started.elapsed())
        };
        let status = loaded.state.status;
        *by_status.entry(status.as_str()).or_default() += 1;
        table.add_row([
            s.saga_id.to_string(),
            s.name.to_string(),
            s.customer.to_string(),
            s.amount.to_string(),
            status.as_str().to_string(),
            took,
            loaded.state.reason.unwrap_or_default(),
        ]);
    }
    super::print_table(&table);
    let summary: Vec<String> = by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
    println!("\n{}", summary.join(", "));
    println!(
        "\naccounts (available + reserved = deposited; reserved = approved orders and booked seats):\n"
    );
    let balances = saga_participants::admin::balances(client).await?;
    super::print_table(&super::client::balance_table(&balances));
    println!("\nshows (capacity = free + held + sold; sold = confirmed bookings):\n");
    let shows = saga_participants::admin::shows(client).await?;
    super::print_table(&super::inventory::seat_table(&shows));
    let unfinished = sagas.len()
        - by_status
            .iter()
            .filter(|(s, _)| {
                [Status::Completed, Status::Compensated]
                    .iter()
                    .any(|t| t.as_str() == **s)
            })
            .map(|(_, n)| n)
            .sum::<usize>();
    if unfinished > 0 {
        return Err(format!("{unfinished} demo sagas did not complete or compensate").into());
    }
    Ok(())
}

/// Admin calls fail with "no responders" until the participant has subscribed.
async fn retry_admin<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    mut call: impl FnMut() -> F,
) -> Result<T, Error> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() > deadline => {
                return Err(format!("participant: {e}").into());
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
