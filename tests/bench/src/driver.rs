//! The load: K clients, each starting a `place_order` saga through the HTTP API like a real
//! client (`POST /v1/sagas/place_order`) and starting the next one when its saga has ended
//! (as the terminal feed tells it, see [`crate::feed`]). A saga's latency runs from just before
//! its POST is sent to the moment its announcement arrives, so it covers the HTTP start, the
//! three (or five) round trips and the final append.

use crate::Error;
use crate::feed::Ended;
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// What every client shares.
pub struct Load {
    pub servers: Vec<String>,
    pub http: reqwest::Client,
    pub watcher: Arc<crate::feed::Watcher>,
    /// Customer ids are `{prefix}-{n}`.
    pub prefix: String,
    pub customers: u64,
    pub fail_rate: f64,
    pub saga_timeout: Duration,
    /// One permit per HTTP connection.
    pub connections: Arc<tokio::sync::Semaphore>,
}

/// Figures of one phase (warm-up or measured).
pub struct Phase {
    pub latency_us: Histogram<u64>,
    pub started: u64,
    pub completed: u64,
    pub compensated: u64,
    pub stuck: u64,
    /// Starts the API refused or that failed, and sagas not ended within the timeout.
    pub errors: u64,
    pub timeouts: u64,
    /// Sagas whose end was read from the API because the feed did not announce it in time.
    pub polled: u64,
    pub expected_failures: u64,
    /// Most sagas started (their POST answered) and not yet ended at one time.
    pub most_in_flight: u64,
    pub elapsed: Duration,
    /// Sagas ended in each [`WINDOW`] of the phase, from its start.
    pub windows: Vec<u64>,
    /// Every saga started: (id, customer index, amount, status once ended).
    pub sagas: Vec<(Uuid, u64, i64, Option<String>)>,
    pub first_error: Option<String>,
}

#[derive(Default)]
struct Counters {
    started: AtomicU64,
    completed: AtomicU64,
    compensated: AtomicU64,
    stuck: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    polled: AtomicU64,
    expected_failures: AtomicU64,
    /// Sagas started (POST answered) and not yet ended, now and at most.
    open: AtomicU64,
    most_open: AtomicU64,
}

/// The span of each throughput window of a phase.
pub const WINDOW: Duration = Duration::from_secs(10);

/// Whether saga number `i` orders above the review limit: a fixed pseudo-random choice, so
/// runs are comparable and the expected number of compensations is known.
pub fn fails(i: u64, rate: f64) -> bool {
    // splitmix64
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 11) as f64 / (1u64 << 53) as f64) < rate
}

/// Runs sagas `first..end` with `in_flight` clients, stopping new starts at `deadline`.
pub async fn run(
    load: Arc<Load>,
    first: u64,
    end: u64,
    in_flight: usize,
    deadline: Option<Instant>,
    progress: ProgressBar,
) -> Result<Phase, Error> {
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1,
        3_600_000_000,
        3,
    )?));
    let counters = Arc::new(Counters::default());
    let sagas = Arc::new(Mutex::new(Vec::new()));
    let windows: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let first_error = Arc::new(Mutex::new(None));
    let next = Arc::new(AtomicU64::new(first));
    let started_at = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let (load, next, histogram, counters, sagas, first_error, progress) = (
            load.clone(),
            next.clone(),
            histogram.clone(),
            counters.clone(),
            sagas.clone(),
            first_error.clone(),
            progress.clone(),
        );
        let windows = windows.clone();
        clients.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let outcome = one(&load, i, &counters).await;
                match outcome {
                    Ok((id, customer, amount, Some((ended, polled)), sent)) => {
                        let us = u64::try_from(ended.at.duration_since(sent).as_micros())
                            .unwrap_or(u64::MAX);
                        if let Ok(mut h) = histogram.lock() {
                            let _ = h.record(us.max(1));
                        }
                        let window = usize::try_from(
                            ended.at.saturating_duration_since(started_at).as_secs()
                                / WINDOW.as_secs(),
                        )
                        .unwrap_or(usize::MAX);
                        if let Ok(mut w) = windows.lock()
                            && window < 100_000
                        {
                            if w.len() <= window {
                                w.resize(window + 1, 0);
                            }
                            w[window] += 1;
                        }
                        let counter = match ended.status.as_str() {
                            "completed" => &counters.completed,
                            "compensated" => &counters.compensated,
                            _ => &counters.stuck,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        if polled {
                            counters.polled.fetch_add(1, Ordering::Relaxed);
                        }
                        push(&sagas, (id, customer, amount, Some(ended.status)));
                    }
                    Ok((id, customer, amount, None, _)) => {
                        counters.timeouts.fetch_add(1, Ordering::Relaxed);
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        push(&sagas, (id, customer, amount, None));
                    }
                    Err(e) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut f) = first_error.lock() {
                            f.get_or_insert(e);
                        }
                    }
                }
                progress.inc(1);
            }
        });
    }
    while clients.join_next().await.is_some() {}
    let elapsed = started_at.elapsed();
    let latency_us = histogram
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|e| e.into_inner().clone());
    let c = &counters;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let sagas = std::mem::take(&mut *sagas.lock().unwrap_or_else(|e| e.into_inner()));
    let first_error = first_error.lock().ok().and_then(|mut f| f.take());
    let windows = std::mem::take(&mut *windows.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Phase {
        latency_us,
        started: get(&c.started),
        completed: get(&c.completed),
        compensated: get(&c.compensated),
        stuck: get(&c.stuck),
        errors: get(&c.errors),
        timeouts: get(&c.timeouts),
        polled: get(&c.polled),
        expected_failures: get(&c.expected_failures),
        most_in_flight: get(&c.most_open),
        elapsed,
        windows,
        sagas,
        first_error,
    })
}

fn push<T>(v: &Mutex<Vec<T>>, item: T) {
    v.lock().unwrap_or_else(|e| e.into_inner()).push(item);
}

type Outcome = (Uuid, u64, i64, Option<(Ended, bool)>, Instant);

/// Starts saga `i` and waits for its end.
async fn one(load: &Load, i: u64, counters: &Counters) -> Result<Outcome, String> {
    let failing = fails(i, load.fail_rate);
    let customer = i % load.customers.max(1);
    let spread = i64::try_from(i % 900).unwrap_or(0);
    let amount = if failing {
        super::system::REVIEW_LIMIT + 1 + spread
    } else {
        100 + spread
    };
    let server = &load.servers[usize::try_from(i).unwrap_or(0) % load.servers.len()];
    let input = json!({ "customer_id": format!("{}-{customer}", load.prefix), "amount": amount });
    let sent = Instant::now();
    let permit = load
        .connections
        .acquire()
        .await
        .map_err(|e| format!("connection pool closed: {e}"))?;
    let response = load
        .http
        .post(format!("{server}/v1/sagas/place_order"))
        .json(&input)
        .send()
        .await
        .map_err(|e| format!("POST /v1/sagas/place_order: {e}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    drop(permit);
    if status.as_u16() != 201 {
        return Err(format!(
            "POST /v1/sagas/place_order answered {status}: {body}"
        ));
    }
    let id: Uuid = body["saga_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no saga_id in {body}"))?;
    counters.started.fetch_add(1, Ordering::Relaxed);
    let open = counters.open.fetch_add(1, Ordering::Relaxed) + 1;
    counters.most_open.fetch_max(open, Ordering::Relaxed);
    if failing {
        counters.expected_failures.fetch_add(1, Ordering::Relaxed);
    }
    let ended = load.watcher.wait(server, id, sent, load.saga_timeout).await;
    counters.open.fetch_sub(1, Ordering::Relaxed);
    Ok((id, customer, amount, ended, sent))
}
