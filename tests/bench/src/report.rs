//! The figures of a run: a summary table for people and one JSON line for tools.

use super::verify::Verdict;
use hdrhistogram::Histogram;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Report {
    pub settings: Settings,
    pub sagas: Counts,
    pub elapsed_s: f64,
    pub throughput_per_s: f64,
    /// Sagas per second in each 10 s window of the run, from its start (a last window under a
    /// second is left out).
    pub windows_per_s: Vec<f64>,
    pub latency_ms: Latency,
    /// CPU time per saga of every process of the system together (the bench's driver is not
    /// part of it); `None` when the system was not started by the bench.
    pub cpu_ms_per_saga: Option<f64>,
    pub processes: Vec<Process>,
    /// The bench's own load generator (HTTP client, feed listener).
    pub driver: Option<Process>,
    pub floor: Option<FloorReport>,
    /// Saga throughput divided by the floor's.
    pub floor_ratio: Option<f64>,
    pub correctness: Verdict,
}

#[derive(Debug, Serialize)]
pub struct Settings {
    pub sagas: u64,
    pub in_flight: usize,
    pub connections: usize,
    pub fail_rate: f64,
    pub warmup: u64,
    pub db: &'static str,
    pub mode: &'static str,
    pub replicas: usize,
    pub js_storage: &'static str,
    pub js_sync: String,
    /// `process` or `power` (see `--durability`).
    pub durability: String,
    pub preload: u64,
    pub cpus: usize,
}

#[derive(Debug, Serialize)]
pub struct Counts {
    pub started: u64,
    pub completed: u64,
    pub compensated: u64,
    pub stuck: u64,
    pub errors: u64,
    pub timeouts: u64,
    /// Ends read from the API because the feed did not announce them within 5 s.
    pub polled: u64,
    /// Sagas ordering above the review limit, which must end compensated.
    pub expected_compensated: u64,
    /// Most sagas started (POST answered) and not yet ended at one time.
    pub most_in_flight: u64,
}

#[derive(Debug, Serialize, Default)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

#[derive(Debug, Serialize, Clone)]
pub struct Process {
    pub name: String,
    pub pid: u32,
    pub cpu_s: f64,
    pub cpu_ms_per_saga: f64,
    /// Peak resident set size (VmHWM); for PostgreSQL the largest of its processes.
    pub peak_rss_mb: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct FloorReport {
    pub sagas: u64,
    pub round_trips: u64,
    pub elapsed_s: f64,
    pub throughput_per_s: f64,
    pub latency_ms: Latency,
    /// CPU of nats-server and the bench process (driver and responders) per floor saga.
    pub cpu_ms_per_saga: Option<f64>,
}

fn f1(x: f64) -> String {
    format!("{x:.1}")
}

fn f2(x: f64) -> String {
    format!("{x:.2}")
}

/// The summary for a terminal.
pub fn print(r: &Report) {
    let s = &r.settings;
    println!(
        "\nsaga bench: {} sagas, {} in flight, {:.0} % rejected at approve_order, {} ({}), {} orchestrator replica(s), JetStream {} / sync {}, durability {}{}",
        s.sagas,
        s.in_flight,
        s.fail_rate * 100.0,
        s.db,
        s.mode,
        s.replicas,
        s.js_storage,
        s.js_sync,
        s.durability,
        if s.preload > 0 {
            format!(", {} sagas preloaded", s.preload)
        } else {
            String::new()
        }
    );
    println!();
    let mut t = table([
        "",
        "sagas/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "CPU ms/saga",
    ]);
    let l = &r.latency_ms;
    t.add_row([
        "sagas".to_string(),
        f1(r.throughput_per_s),
        f2(l.p50),
        f2(l.p95),
        f2(l.p99),
        f2(l.max),
        r.cpu_ms_per_saga.map(f2).unwrap_or_else(|| "-".into()),
    ]);
    if let Some(f) = &r.floor {
        let l = &f.latency_ms;
        t.add_row([
            "transport floor".to_string(),
            f1(f.throughput_per_s),
            f2(l.p50),
            f2(l.p95),
            f2(l.p99),
            f2(l.max),
            f.cpu_ms_per_saga.map(f2).unwrap_or_else(|| "-".into()),
        ]);
    }
    print_table(&t);
    if r.windows_per_s.len() > 1 {
        let windows: Vec<String> = r.windows_per_s.iter().map(|w| format!("{w:.0}")).collect();
        println!("\nsagas/s per 10 s: {}", windows.join(" "));
    }
    if let Some(ratio) = r.floor_ratio {
        println!(
            "\nthroughput is {:.0} % of the transport floor",
            ratio * 100.0
        );
    }
    if !r.processes.is_empty() {
        println!();
        let mut t = table(["process", "pid", "CPU s", "CPU ms/saga", "peak RSS MB"]);
        for p in r.processes.iter().chain(r.driver.iter()) {
            t.add_row([
                p.name.clone(),
                p.pid.to_string(),
                f2(p.cpu_s),
                f2(p.cpu_ms_per_saga),
                p.peak_rss_mb.map(f1).unwrap_or_else(|| "-".into()),
            ]);
        }
        print_table(&t);
    }
    let c = &r.sagas;
    println!(
        "\n{} started ({} in flight at most): {} completed, {} compensated (expected {}), {} stuck, {} errors ({} timed out), {} ends polled, in {:.1} s",
        c.started,
        c.most_in_flight,
        c.completed,
        c.compensated,
        c.expected_compensated,
        c.stuck,
        c.errors,
        c.timeouts,
        c.polled,
        r.elapsed_s
    );
    let v = &r.correctness;
    println!(
        "correctness: {} ({} sagas read back; all terminal: {}, money conserved: {}, orders match: {})",
        if v.passed { "PASSED" } else { "FAILED" },
        v.checked_sagas,
        v.all_terminal,
        v.conserved,
        v.orders_match
    );
    for p in &v.problems {
        println!("  {p}");
    }
    println!();
}

/// A table for the terminal, without borders, headed by `header`.
fn table<const N: usize>(header: [&str; N]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header);
    t
}

/// Prints a table without the padding that would trail each line.
fn print_table(table: &comfy_table::Table) {
    println!("{}", table.trim_fmt());
}
