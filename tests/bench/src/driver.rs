//! The load: K clients, each starting a `place_order` saga through the HTTP API like a real
//! client (`POST /v1/sagas/place_order`) and starting the next one when its saga has ended.
//!
//! How the end of a saga is seen: the bench listens to every orchestrator's
//! `GET /v1/feed/terminal` (server-sent events, see [`saga_orchestrator::watch`]), which announces a saga
//! after the append that made it completed, compensated or stuck has committed. A saga's
//! latency runs from just before its POST is sent to the moment its announcement arrives, so
//! it covers the HTTP start, the three (or five) round trips and the final append. Polling
//! `GET /v1/sagas/{id}` for each saga would add a database read per poll to the figures; the
//! feed adds one small write per saga to a socket. Only when the feed has a gap (it reported
//! `lagged`, or its connection broke and was opened again) do waiting clients read their saga
//! through `GET /v1/sagas/{id}` every 5 s; such ends are counted as `polled`, so a report says
//! when that happened. A saga still not ended at `--saga-timeout` is read once more, then
//! counted as timed out.

use crate::Error;
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use uuid::Uuid;

/// After a gap in the feed, waiting clients read their saga from the API this often.
const POLL_AFTER: Duration = Duration::from_secs(5);

/// How a saga ended, as seen by the bench.
#[derive(Debug, Clone)]
struct Ended {
    status: String,
    at: Instant,
}

enum Slot {
    Waiting(oneshot::Sender<Ended>),
    Arrived(Ended),
}

/// Matches feed announcements with the clients waiting for them.
pub struct Watcher {
    slots: Mutex<HashMap<Uuid, Slot>>,
    /// Gaps in the feed so far (lagged announcements, reconnections).
    gaps: AtomicU64,
    http: reqwest::Client,
    stop: tokio_util::sync::CancellationToken,
}

impl Watcher {
    /// Connects to the feed of every server and returns once all of them are listening.
    pub async fn connect(servers: &[String], http: reqwest::Client) -> Result<Arc<Self>, Error> {
        let watcher = Arc::new(Watcher {
            slots: Mutex::new(HashMap::new()),
            gaps: AtomicU64::new(0),
            http,
            stop: tokio_util::sync::CancellationToken::new(),
        });
        for server in servers {
            let url = format!("{}/v1/feed/terminal", server.trim_end_matches('/'));
            let response = watcher
                .http
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("cannot open {url}: {e}"))?;
            if !response.status().is_success() {
                return Err(format!(
                    "{url} answered {}: the orchestrator has no terminal feed",
                    response.status()
                )
                .into());
            }
            let w = watcher.clone();
            tokio::spawn(async move { w.listen(url, response).await });
        }
        Ok(watcher)
    }

    pub fn close(&self) {
        self.stop.cancel();
    }

    /// Reads announcements until the feed ends, then reconnects (sagas ended in between are
    /// found by polling).
    async fn listen(self: Arc<Self>, url: String, first: reqwest::Response) {
        let mut response = Some(first);
        while !self.stop.is_cancelled() {
            let Some(mut r) = response.take() else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.gaps.fetch_add(1, Ordering::Relaxed);
                response = self.http.get(&url).send().await.ok();
                continue;
            };
            let mut buffer = String::new();
            loop {
                let chunk = tokio::select! {
                    () = self.stop.cancelled() => return,
                    chunk = r.chunk() => chunk,
                };
                let Ok(Some(chunk)) = chunk else { break };
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    self.on_event(&event);
                }
            }
        }
    }

    fn on_event(&self, event: &str) {
        let mut kind = "message";
        let mut data = "";
        for line in event.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                kind = v.trim();
            } else if let Some(v) = line.strip_prefix("data:") {
                data = v.trim();
            }
        }
        if kind == "lagged" {
            self.gaps.fetch_add(1, Ordering::Relaxed);
        }
        if kind != "terminal" {
            return;
        }
        let Ok(t) = serde_json::from_str::<saga_orchestrator::watch::Terminal>(data) else {
            return;
        };
        let ended = Ended {
            status: t.status,
            at: Instant::now(),
        };
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match slots.remove(&t.saga_id) {
            Some(Slot::Waiting(tx)) => {
                let _ = tx.send(ended);
            }
            // Announced before its client registered (the POST answer was still on its way).
            _ => {
                slots.insert(t.saga_id, Slot::Arrived(ended));
            }
        }
    }

    /// Waits for saga `id` to end: by its announcement, else by reading it from `server`.
    /// Returns the status and whether it had to be polled; `None` after `timeout`.
    async fn wait(
        &self,
        server: &str,
        id: Uuid,
        sent: Instant,
        timeout: Duration,
    ) -> Option<(Ended, bool)> {
        let mut rx = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(Slot::Arrived(ended)) = slots.remove(&id) {
                return Some((ended, false));
            }
            let (tx, rx) = oneshot::channel();
            slots.insert(id, Slot::Waiting(tx));
            rx
        };
        loop {
            let left = timeout.saturating_sub(sent.elapsed());
            // Wakes every 5 s to see whether the feed had a gap; polls only then.
            let pause = POLL_AFTER.min(left);
            tokio::select! {
                ended = &mut rx => return ended.ok().map(|e| (e, false)),
                () = tokio::time::sleep(pause) => {}
            }
            let last = timeout <= sent.elapsed();
            if !last && self.gaps.load(Ordering::Relaxed) == 0 {
                continue;
            }
            if let Some(status) = self.poll(server, id).await {
                self.forget(id);
                let ended = Ended {
                    status,
                    at: Instant::now(),
                };
                return Some((ended, true));
            }
            if last {
                self.forget(id);
                return None;
            }
        }
    }

    fn forget(&self, id: Uuid) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.remove(&id);
    }

    async fn poll(&self, server: &str, id: Uuid) -> Option<String> {
        let saga: Value = self
            .http
            .get(format!("{server}/v1/sagas/{id}"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let status = saga["status"].as_str()?;
        matches!(status, "completed" | "compensated" | "stuck").then(|| status.to_string())
    }
}

/// What every client shares.
pub struct Load {
    pub servers: Vec<String>,
    pub http: reqwest::Client,
    pub watcher: Arc<Watcher>,
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
