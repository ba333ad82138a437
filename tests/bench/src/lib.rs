//! `saga bench`: throughput, latency, CPU and memory of the whole system, next to the transport
//! floor measured in the same run, then a correctness check.
//!
//! One run:
//! 1. starts nats-server (JetStream in a temporary directory), the databases (SQLite files or a
//!    throwaway PostgreSQL cluster), the participants and the orchestrator replicas
//!    ([`system`]); or uses a running system with `--server` and `--nats`;
//! 2. opens 64 bench accounts with a large deposit, so no credit is ever short;
//! 3. measures the transport floor ([`floor`]): the same messages over raw JetStream;
//! 4. runs the warm-up sagas, then the measured ones ([`driver`]), with `/proc` snapshots of
//!    every process before and after ([`procstat`]);
//! 5. reads everything back and checks it ([`verify`]);
//! 6. prints the summary table and one JSON line ([`report`]).
//!
//! ```text
//! saga bench --sagas 5000 --in-flight 200 --db postgres
//! ```

mod driver;
mod feed;
mod floor;
mod options;
mod preload;
mod procstat;
mod report;
mod system;
mod verify;

pub use options::BenchArgs;

use indicatif::{ProgressBar, ProgressStyle};
use report::{Counts, FloorReport, Latency, Process, Report, Settings};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use system::{Measured, System};

/// A bench failure, printed as `error: …`.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Bench accounts, each opened with [`DEPOSIT`].
const CUSTOMERS: u64 = 64;
/// Far more than the sagas of any run can reserve, so ReserveCredit never refuses.
const DEPOSIT: i64 = 1_000_000_000_000;
/// Floor sagas at least, unless --floor-sagas says otherwise: the floor is fast, and a run
/// of a fraction of a second measures mostly its start and its end.
const FLOOR_MIN_SAGAS: u64 = 10_000;

pub async fn run(args: BenchArgs) -> Result<ExitCode, Error> {
    args.validate()?;
    let text = !args.json_only;
    if text {
        eprintln!(
            "starting nats-server, {}, the participants and {} orchestrator(s) ({})…",
            args.db.as_str(),
            args.replicas,
            args.mode.as_str()
        );
    }
    let system = System::start(&args).await?;
    let result = bench(&args, &system).await;
    if result.is_err() {
        eprintln!("{}", system.logs());
    }
    if let Some(dir) = system.stop(args.keep).await {
        eprintln!("kept {}", dir.display());
    }
    let report = result?;
    if text {
        report::print(&report);
    }
    println!("{}", serde_json::to_string(&report)?);
    let clean = report.correctness.passed && report.sagas.errors == 0;
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn progress(text: bool, len: u64, prefix: &'static str) -> ProgressBar {
    if !text {
        return ProgressBar::hidden();
    }
    let bar = if len == u64::MAX {
        ProgressBar::no_length()
    } else {
        ProgressBar::new(len)
    };
    let style = ProgressStyle::with_template(
        "{prefix:>15} {bar:30} {pos}/{len} sagas  {per_sec:>12}  {elapsed}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(prefix);
    bar
}

/// CPU ticks of every measured process (the in-process system's without the driver threads),
/// and of the driver.
struct Snapshot {
    ticks: Vec<u64>,
    driver: u64,
}

fn is_driver_thread(name: &str) -> bool {
    !name.starts_with(system::SYSTEM_THREAD) && !name.starts_with("sqlx-sqlite")
}

fn snapshot(measured: &[Measured], in_process: bool) -> Snapshot {
    let me = std::process::id();
    let (driver, whole) = if in_process {
        procstat::self_threads(is_driver_thread)
    } else {
        // Only the bench's own threads: the system's processes are its children.
        let own = procstat::own_ticks(me).unwrap_or(0);
        (own, own)
    };
    let ticks = measured
        .iter()
        .map(|m| {
            if m.pid == me {
                whole.saturating_sub(driver)
            } else {
                procstat::tree_ticks(m.pid).map(|(t, _)| t).unwrap_or(0)
            }
        })
        .collect();
    Snapshot { ticks, driver }
}

/// Peak RSS of `pid`'s tree: the largest of its processes (PostgreSQL's backends share memory,
/// so a sum would count shared buffers many times).
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let (_, tree) = procstat::tree_ticks(pid)?;
    tree.into_iter()
        .filter_map(procstat::peak_rss)
        .max()
        .map(|b| b as f64 / (1024.0 * 1024.0))
}

async fn bench(args: &BenchArgs, system: &System) -> Result<Report, Error> {
    let text = !args.json_only;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections() + 16)
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let nats = system.nats_client("admin").await?;
    let prefix = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    for c in 0..CUSTOMERS {
        saga_participants::admin::open_account(&nats, &format!("{prefix}-{c}"), DEPOSIT).await?;
    }
    let tps = procstat::ticks_per_second();
    let count = args.count();

    let floor = if args.no_floor {
        None
    } else {
        let n = args
            .floor_sagas
            .unwrap_or(if count == u64::MAX { 0 } else { count })
            .max(if args.floor_sagas.is_some() {
                1
            } else {
                FLOOR_MIN_SAGAS
            });
        let before = snapshot(&system.measured, system.in_process);
        let bar = progress(text, n, "transport floor");
        let floor = floor::run(
            system.nats_client(saga_testkit::HARNESS).await?,
            system::storage_type(args.js_storage),
            n,
            args.in_flight,
            args.fail_rate,
            args.participant_concurrency,
            bar.clone(),
        )
        .await?;
        bar.finish_and_clear();
        let after = snapshot(&system.measured, system.in_process);
        // nats-server and the bench process, where the floor runs.
        let nats_ticks = system
            .measured
            .iter()
            .position(|m| m.name == "nats-server")
            .map(|i| after.ticks[i].saturating_sub(before.ticks[i]));
        let own = if system.in_process {
            let i = system.measured.len() - 1;
            (after.ticks[i] + after.driver).saturating_sub(before.ticks[i] + before.driver)
        } else {
            after.driver.saturating_sub(before.driver)
        };
        let cpu = nats_ticks.map(|t| {
            procstat::ticks_to_duration(t + own, tps).as_secs_f64() * 1000.0
                / floor.sagas.max(1) as f64
        });
        Some(FloorReport {
            sagas: floor.sagas,
            round_trips: floor.round_trips,
            elapsed_s: floor.elapsed.as_secs_f64(),
            throughput_per_s: floor.sagas as f64 / floor.elapsed.as_secs_f64().max(1e-9),
            latency_ms: Latency::of(&floor.latency_us),
            cpu_ms_per_saga: cpu,
        })
    };

    let watcher = feed::Watcher::connect(&system.servers, http.clone()).await?;
    let load = Arc::new(driver::Load {
        servers: system.servers.clone(),
        http: http.clone(),
        watcher: watcher.clone(),
        prefix: prefix.clone(),
        customers: CUSTOMERS,
        fail_rate: args.fail_rate,
        saga_timeout: args.saga_timeout,
        connections: Arc::new(tokio::sync::Semaphore::new(args.connections())),
    });
    let warm = driver::run(
        load.clone(),
        0,
        args.warmup,
        args.in_flight,
        None,
        progress(text && args.warmup > 0, args.warmup, "warm-up"),
    )
    .await?;
    if let Some(e) = &warm.first_error {
        return Err(format!("warm-up failed: {e}").into());
    }

    let before = snapshot(&system.measured, system.in_process);
    let deadline = args.duration.map(|d| Instant::now() + d);
    let end = args.warmup.saturating_add(count);
    let bar = progress(text, count, "sagas");
    let measured = driver::run(
        load,
        args.warmup,
        end,
        args.in_flight,
        deadline,
        bar.clone(),
    )
    .await?;
    bar.finish_and_clear();
    let after = snapshot(&system.measured, system.in_process);
    watcher.close();

    let ended = (measured.completed + measured.compensated + measured.stuck).max(1);
    let per_saga =
        |ticks: u64| procstat::ticks_to_duration(ticks, tps).as_secs_f64() * 1000.0 / ended as f64;
    let processes: Vec<Process> = system
        .measured
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let ticks = after.ticks[i].saturating_sub(before.ticks[i]);
            Process {
                name: m.name.clone(),
                pid: m.pid,
                cpu_s: procstat::ticks_to_duration(ticks, tps).as_secs_f64(),
                cpu_ms_per_saga: per_saga(ticks),
                peak_rss_mb: peak_rss_mb(m.pid),
            }
        })
        .collect();
    let driver_ticks = after.driver.saturating_sub(before.driver);
    let driver = Process {
        name: if system.in_process {
            "bench (driver threads)".into()
        } else {
            "bench (driver)".into()
        },
        pid: std::process::id(),
        cpu_s: procstat::ticks_to_duration(driver_ticks, tps).as_secs_f64(),
        cpu_ms_per_saga: per_saga(driver_ticks),
        peak_rss_mb: procstat::peak_rss(std::process::id()).map(|b| b as f64 / 1048576.0),
    };
    let cpu_ms_per_saga =
        (!processes.is_empty()).then(|| processes.iter().map(|p| p.cpu_ms_per_saga).sum());

    if let Some(e) = &measured.first_error {
        eprintln!("first error: {e}");
    }
    let started: Vec<verify::Started> = warm
        .sagas
        .iter()
        .chain(&measured.sagas)
        .map(|(id, customer, amount, _)| verify::Started {
            id: *id,
            customer: *customer,
            amount: *amount,
        })
        .collect();
    if text {
        eprintln!("checking {} sagas, balances and orders…", started.len());
    }
    let correctness = verify::check(
        &system.servers,
        &http,
        &nats,
        &prefix,
        DEPOSIT,
        CUSTOMERS,
        &started,
    )
    .await?;

    let elapsed = measured.elapsed.as_secs_f64().max(1e-9);
    let throughput = ended as f64 / elapsed;
    let floor_ratio = floor
        .as_ref()
        .map(|f| throughput / f.throughput_per_s.max(1e-9));
    Ok(Report {
        settings: Settings {
            sagas: measured.started,
            in_flight: args.in_flight,
            connections: args.connections(),
            fail_rate: args.fail_rate,
            warmup: args.warmup,
            db: args.db.as_str(),
            mode: if args.server.is_empty() {
                args.mode.as_str()
            } else {
                "running system"
            },
            replicas: system.servers.len(),
            js_storage: args.js_storage.as_str(),
            js_sync: args.js_sync_interval().unwrap_or_else(|| "default".into()),
            durability: args.durability.to_string(),
            preload: args.preload,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
        sagas: Counts {
            started: measured.started,
            completed: measured.completed,
            compensated: measured.compensated,
            stuck: measured.stuck,
            errors: measured.errors,
            timeouts: measured.timeouts,
            polled: measured.polled,
            expected_compensated: measured.expected_failures,
            most_in_flight: measured.most_in_flight,
        },
        elapsed_s: elapsed,
        throughput_per_s: throughput,
        windows_per_s: windows_per_s(&measured.windows, measured.elapsed),
        latency_ms: Latency::of(&measured.latency_us),
        cpu_ms_per_saga,
        processes,
        driver: Some(driver),
        floor,
        floor_ratio,
        correctness,
    })
}

/// Each full window's sagas per second; a last window shorter than a second (the end of a
/// `--duration` run) is left out, a longer one divided by the time it lasted.
fn windows_per_s(windows: &[u64], elapsed: std::time::Duration) -> Vec<f64> {
    let span = driver::WINDOW.as_secs_f64();
    windows
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let lasted = (elapsed.as_secs_f64() - i as f64 * span).min(span);
            (lasted >= 1.0).then(|| *n as f64 / lasted)
        })
        .collect()
}
