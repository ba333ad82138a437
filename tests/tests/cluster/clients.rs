//! What the scenario's clients do besides the failures: start sagas through any live
//! orchestrator, count those running, and read the partition leases.

use crate::{CUSTOMERS, REJECT_EVERY, REVIEW_LIMIT};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use uuid::Uuid;

/// Starts saga `n` through any live orchestrator, under an idempotency key, retrying until
/// one answers (a start whose answer was lost with its orchestrator starts nothing twice).
pub async fn start_saga(http: &reqwest::Client, apis: &[String], n: usize) -> Option<Uuid> {
    let amount = if n.is_multiple_of(REJECT_EVERY) {
        REVIEW_LIMIT + 1
    } else {
        100
    };
    let body = json!({"customer_id": format!("c-{}", n % CUSTOMERS), "amount": amount});
    for attempt in 0..100 {
        let api = &apis[(n + attempt) % apis.len()];
        let sent = http
            .post(format!("{api}/v1/sagas/place_order"))
            .header("Idempotency-Key", format!("cluster-{n}"))
            .timeout(Duration::from_secs(3))
            .json(&body)
            .send()
            .await;
        if let Ok(resp) = sent
            && resp.status().is_success()
            && let Ok(value) = resp.json::<Value>().await
            && let Some(id) = value["saga_id"].as_str().and_then(|s| s.parse().ok())
        {
            return Some(id);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Keeps `in_flight` at the number of running and compensating sagas, every 200 ms, through
/// the overview of any live orchestrator. Runs until aborted.
pub async fn count_in_flight(
    http: reqwest::Client,
    apis: Arc<std::sync::RwLock<Vec<String>>>,
    in_flight: Arc<AtomicUsize>,
) {
    loop {
        let live = apis.read().expect("apis").clone();
        for api in &live {
            let counted = async {
                let resp = http
                    .get(format!("{api}/v1/overview"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .ok()?;
                let body: Value = resp.json().await.ok()?;
                let count = |s: &str| body["counts"][s].as_u64().unwrap_or(0);
                usize::try_from(count("running") + count("compensating")).ok()
            };
            if let Some(n) = counted.await {
                in_flight.store(n, Ordering::SeqCst);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Live members, the partitions each owner leases, and how many partitions are leased, as
/// the orchestrators' KV bucket says.
pub async fn lease_view(
    js: &async_nats::jetstream::Context,
) -> Option<(usize, HashMap<String, usize>, usize)> {
    use futures::StreamExt;
    let kv = js.get_key_value("saga_partitions").await.ok()?;
    let keys: Vec<String> = kv
        .keys()
        .await
        .ok()?
        .filter_map(|k| async move { k.ok() })
        .collect()
        .await;
    let members = keys.iter().filter(|k| k.starts_with("members.")).count();
    let mut owners = HashMap::new();
    let mut leased = 0;
    for key in keys.iter().filter(|k| k.starts_with("partitions.")) {
        if let Some(owner) = kv.get(key).await.ok().flatten() {
            *owners
                .entry(String::from_utf8_lossy(&owner).into_owned())
                .or_insert(0) += 1;
            leased += 1;
        }
    }
    Some((members, owners, leased))
}
