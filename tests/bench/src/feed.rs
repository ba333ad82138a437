//! How the bench sees the end of a saga: it listens to every orchestrator's
//! `GET /v1/feed/terminal` (server-sent events, see [`saga_orchestrator::watch`]), which announces a saga
//! after the append that made it completed, compensated or stuck has committed. Polling
//! `GET /v1/sagas/{id}` for each saga would add a database read per poll to the figures; the
//! feed adds one small write per saga to a socket. Only when the feed has a gap (it reported
//! `lagged`, or its connection broke and was opened again) do waiting clients read their saga
//! through `GET /v1/sagas/{id}` every 5 s; such ends are counted as `polled`, so a report says
//! when that happened. A saga still not ended at `--saga-timeout` is read once more, then
//! counted as timed out.

use crate::Error;
use serde_json::Value;
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
pub struct Ended {
    pub status: String,
    pub at: Instant,
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
    pub async fn wait(
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
