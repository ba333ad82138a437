//! Correctness after the run, read back from the system itself (not from what the bench saw):
//! every saga started is terminal in the orchestrator's store, money is conserved on every
//! bench account (available + reserved == deposited, reserved == the amounts of its completed
//! sagas == its approved orders), and the orders match the sagas one for one.

use crate::Error;
use futures::StreamExt;
use saga_participants::admin;
use serde::Serialize;
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Debug, Default, Serialize)]
pub struct Verdict {
    pub passed: bool,
    /// Sagas read back from the orchestrator.
    pub checked_sagas: u64,
    pub all_terminal: bool,
    pub conserved: bool,
    pub orders_match: bool,
    /// What was wrong, at most a few lines.
    pub problems: Vec<String>,
}

impl Verdict {
    fn problem(&mut self, p: String) {
        if self.problems.len() < 10 {
            self.problems.push(p);
        }
    }
}

/// A saga as started by the bench: id, customer index, amount.
pub struct Started {
    pub id: Uuid,
    pub customer: u64,
    pub amount: i64,
}

pub async fn check(
    servers: &[String],
    http: &reqwest::Client,
    nats: &async_nats::Client,
    prefix: &str,
    deposit: i64,
    customers: u64,
    sagas: &[Started],
) -> Result<Verdict, Error> {
    let mut v = Verdict {
        all_terminal: true,
        conserved: true,
        orders_match: true,
        ..Verdict::default()
    };
    // Every saga terminal, by reading each one back (16 at a time).
    let statuses: Vec<(usize, Option<String>)> = futures::stream::iter(sagas.iter().enumerate())
        .map(|(n, s)| {
            let url = format!("{}/v1/sagas/{}", servers[n % servers.len()], s.id);
            async move {
                let status = async {
                    let saga: serde_json::Value =
                        http.get(&url).send().await.ok()?.json().await.ok()?;
                    saga["status"].as_str().map(str::to_string)
                }
                .await;
                (n, status)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut completed_amount: HashMap<String, i64> = HashMap::new();
    let mut completed = 0u64;
    for (n, status) in &statuses {
        v.checked_sagas += 1;
        let s = &sagas[*n];
        match status.as_deref() {
            Some("completed") => {
                completed += 1;
                *completed_amount
                    .entry(format!("{prefix}-{}", s.customer))
                    .or_default() += s.amount;
            }
            Some("compensated") => {}
            other => {
                v.all_terminal = false;
                v.problem(format!(
                    "saga {} is {}",
                    s.id,
                    other.unwrap_or("unreadable")
                ));
            }
        }
    }

    // Money: every account the bench opened.
    let balances = admin::balances(nats).await?;
    let ours: Vec<_> = balances
        .iter()
        .filter(|b| b.customer_id.starts_with(&format!("{prefix}-")))
        .collect();
    if ours.len() as u64 != customers {
        v.conserved = false;
        v.problem(format!(
            "{} bench accounts, expected {customers}",
            ours.len()
        ));
    }
    for b in ours {
        let approved = completed_amount.get(&b.customer_id).copied().unwrap_or(0);
        if b.deposited != deposit
            || b.available + b.reserved != b.deposited
            || b.reserved != approved
        {
            v.conserved = false;
            v.problem(format!(
                "{}: available {} + reserved {} vs deposited {} (expected {deposit}); completed sagas {approved}",
                b.customer_id, b.available, b.reserved, b.deposited
            ));
        }
    }

    // Orders: one per saga, approved exactly for the completed ones.
    match admin::orders(nats).await {
        Ok(orders) => {
            let ours: Vec<_> = orders
                .iter()
                .filter(|o| o.customer_id.starts_with(&format!("{prefix}-")))
                .collect();
            let approved = ours.iter().filter(|o| o.status == "approved").count() as u64;
            let pending = ours.iter().filter(|o| o.status == "pending").count();
            if ours.len() != sagas.len() || approved != completed || pending > 0 {
                v.orders_match = false;
                v.problem(format!(
                    "{} orders for {} sagas; {approved} approved for {completed} completed; {pending} pending",
                    ours.len(),
                    sagas.len()
                ));
            }
        }
        Err(e) => {
            v.orders_match = false;
            v.problem(format!("cannot read the orders: {e}"));
        }
    }
    v.passed = v.all_terminal && v.conserved && v.orders_match;
    Ok(v)
}
