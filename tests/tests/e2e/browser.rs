//! The web UI in a real headless Chromium, driven over WebDriver (chromedriver, from Debian's
//! `chromium-driver`; `make test` installs it with `deploy/local/ensure-chromium.sh`), against
//! a whole system: the list filters to Compensated, a saga's page draws its timeline, and the
//! compensation bars come in the reverse order of the steps; an overdue saga is marked in the
//! list and on its page, and "overdue only" lists just it; an operator sends the signal a
//! waiting step awaits from its page. Saves a screenshot to
//! `target/browser/timeline.png`.

use crate::system::{Backend, REVIEW_LIMIT, System};
use fantoccini::{Client, ClientBuilder, Locator};
use saga_testkit::{free_port, wait_for};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(program: &str) -> String {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    });
    found.map(|p| p.display().to_string()).unwrap_or_else(|| {
        panic!("{program} is not installed: run `make test` or deploy/local/ensure-chromium.sh")
    })
}

async fn start_driver() -> Driver {
    let port = free_port().unwrap();
    let child = Command::new(find("chromedriver"))
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    let status = format!("{}/status", driver.url);
    wait_for("chromedriver answers /status", DEADLINE, || async {
        let resp = http.get(&status).send().await.ok()?;
        resp.status().is_success().then_some(())
    })
    .await
    .unwrap();
    driver
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": find("chromium"),
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
                "--window-size=1200,900",
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap()
}

/// The `attr` of every element matching `css`, in document order; `None` while any is missing
/// (the page re-renders as events come, so an element may go stale between two calls).
async fn attrs(client: &Client, css: &str, attr: &str) -> Option<Vec<String>> {
    let mut values = Vec::new();
    for element in client.find_all(Locator::Css(css)).await.ok()? {
        values.push(element.attr(attr).await.ok()??);
    }
    Some(values)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_shows_compensations_in_reverse_order() {
    let system = System::start(Backend::Sqlite).await;
    system.open_account("alice", 10_000_000).await;
    let completed = system.start_saga("alice", 500).await;
    let compensated = system.start_saga("alice", REVIEW_LIMIT + 1).await;
    let statuses = system
        .wait_terminal(&[completed, compensated], Duration::from_secs(60))
        .await;
    assert_eq!(statuses[&compensated], "compensated");
    assert_eq!(statuses[&completed], "completed");

    let driver = start_driver().await;
    let client = browser(&driver).await;
    client.goto(&format!("{}/", system.api)).await.unwrap();

    // The list shows both, then only the compensated one once filtered.
    let both = [completed.to_string(), compensated.to_string()];
    wait_for("the list shows both sagas", DEADLINE, || async {
        let ids = attrs(&client, "#saga-list tr[data-saga-id]", "data-saga-id").await?;
        both.iter().all(|id| ids.contains(id)).then_some(())
    })
    .await
    .unwrap();
    click(&client, r#"[data-status-filter="compensated"]"#).await;
    wait_for(
        "the list holds only compensated sagas",
        DEADLINE,
        || async {
            let rows = attrs(&client, "#saga-list tr[data-saga-id]", "data-saga-id").await?;
            let statuses = attrs(&client, "#saga-list tr[data-saga-id]", "data-status").await?;
            (rows == [compensated.to_string()] && statuses == ["compensated"]).then_some(())
        },
    )
    .await
    .unwrap();
    let total = client
        .find(Locator::Css("#total"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(total, "2", "the overview counts every saga");

    // Open it from the list.
    let link = format!(r##"a[href="#/saga/{compensated}"]"##);
    click(&client, &link).await;
    let compensations = wait_for("the timeline draws two compensations", DEADLINE, || async {
        let steps = attrs(
            &client,
            r#"#timeline rect[data-kind="compensation"]"#,
            "data-step",
        )
        .await?;
        let starts = attrs(
            &client,
            r#"#timeline rect[data-kind="compensation"]"#,
            "data-start",
        )
        .await?;
        (steps.len() == 2).then_some((steps, starts))
    })
    .await
    .unwrap();
    let forward = attrs(
        &client,
        r#"#timeline rect[data-kind="forward"]"#,
        "data-step",
    )
    .await
    .unwrap();
    assert_eq!(forward, ["reserve_credit", "create_order", "approve_order"]);
    let outcomes = attrs(
        &client,
        r#"#timeline rect[data-kind="forward"]"#,
        "data-outcome",
    )
    .await
    .unwrap();
    assert_eq!(outcomes, ["succeeded", "succeeded", "rejected"]);

    // Compensations in reverse order of the steps they undo, on the time axis too.
    let (steps, starts) = compensations;
    let mut by_time: Vec<(i64, String)> = starts
        .iter()
        .map(|s| s.parse::<i64>().unwrap())
        .zip(steps.iter().cloned())
        .collect();
    by_time.sort();
    let order: Vec<&str> = by_time.iter().map(|(_, step)| step.as_str()).collect();
    assert_eq!(order, ["create_order", "reserve_credit"]);
    assert_eq!(
        steps,
        ["create_order", "reserve_credit"],
        "rows follow time"
    );
    let status = client
        .find(Locator::Css("#saga-status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(status, "compensated");
    let input = client
        .find(Locator::Css("#input"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(input.contains("alice"), "{input}");

    let png = client.screenshot().await.unwrap();
    let dir = saga_testkit::workspace_root().join("target/browser");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("timeline.png"), &png).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");

    // Time travel from the event log: as of event 2 the saga was running its first step.
    let at = format!(r##"#events a[href="#/saga/{compensated}/at/2"]"##);
    click(&client, &at).await;
    wait_for("the saga as of event 2", DEADLINE, || async {
        client.find(Locator::Css("#as-of")).await.ok()?;
        let status = client.find(Locator::Css("#saga-status")).await.ok()?;
        let status = status.text().await.ok()?;
        let bars = attrs(&client, "#timeline rect[data-kind]", "data-step").await?;
        (status == "running" && bars == ["reserve_credit"]).then_some(())
    })
    .await
    .unwrap();
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_saga_is_marked_in_the_list_and_on_its_page() {
    // place_order with a 1 s deadline, flagged overdue as soon as it is past it, and no account
    // participant: the saga misses its deadline and then cannot finish compensating.
    let definition =
        std::fs::read_to_string(saga_testkit::workspace_root().join("sagas/place_order.toml"))
            .unwrap()
            .replace("deadline = \"5m\"", "deadline = \"1s\"");
    assert!(definition.contains("deadline = \"1s\""));
    let options = crate::system::Options {
        definition: Some(definition),
        env: vec![("SAGA_OVERDUE_AFTER".into(), "0s".into())],
        ..crate::system::Options::default()
    };
    let mut system = System::start_with_options(Backend::Sqlite, options).await;
    system.open_account("alice", 10_000_000).await;
    let finished = system.start_saga("alice", 500).await;
    system
        .wait_terminal(&[finished], Duration::from_secs(60))
        .await;
    system.kill(crate::system::Service::Account);
    let late = system.start_saga("alice", 600).await;
    wait_for(
        "the saga to be overdue",
        Duration::from_secs(60),
        || async {
            let saga = system.saga(late).await?;
            (saga["overdue"] == true).then_some(())
        },
    )
    .await
    .unwrap();

    let driver = start_driver().await;
    let client = browser(&driver).await;
    client.goto(&format!("{}/", system.api)).await.unwrap();
    // The list marks the overdue saga, and only it; "overdue only" keeps just that one.
    let row = |id: uuid::Uuid| format!(r#"#saga-list tr[data-saga-id="{id}"] .overdue"#);
    wait_for("the list marks the overdue saga", DEADLINE, || async {
        client.find(Locator::Css(&row(late))).await.ok()?;
        client
            .find(Locator::Css(&format!(
                r#"#saga-list tr[data-saga-id="{finished}"]"#
            )))
            .await
            .ok()?;
        Some(())
    })
    .await
    .unwrap();
    assert!(
        client.find(Locator::Css(&row(finished))).await.is_err(),
        "a finished saga is never overdue"
    );
    click(&client, "#overdue-filter").await;
    wait_for("only the overdue saga is listed", DEADLINE, || async {
        let rows = attrs(&client, "#saga-list tr[data-saga-id]", "data-saga-id").await?;
        (rows == [late.to_string()]).then_some(())
    })
    .await
    .unwrap();
    // Its page says so next to its status, with the deadline it missed.
    client
        .goto(&format!("{}/#/saga/{late}", system.api))
        .await
        .unwrap();
    wait_for("the saga's page marks it overdue", DEADLINE, || async {
        client.find(Locator::Css("#saga .overdue")).await.ok()?;
        let deadline = client.find(Locator::Css("#deadline")).await.ok()?;
        deadline
            .text()
            .await
            .ok()?
            .contains("deadline")
            .then_some(())
    })
    .await
    .unwrap();
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sends_the_signal_a_waiting_step_awaits() {
    let system = System::start(Backend::Sqlite).await;
    system.open_account("wanda", 10_000).await;
    let id = system.start_named("approved_order", "wanda", 250).await;
    system
        .wait_event(id, "SignalAwaited", Duration::from_secs(60))
        .await;

    let driver = start_driver().await;
    let client = browser(&driver).await;
    client
        .goto(&format!("{}/#/saga/{id}", system.api))
        .await
        .unwrap();
    // The waiting step says what it waits for and until when, with a form to send it.
    let waiting = wait_for("the page shows the waiting step", DEADLINE, || async {
        let e = client
            .find(Locator::Css("#waiting-manager_approval"))
            .await
            .ok()?;
        e.text().await.ok()
    })
    .await
    .unwrap();
    assert!(
        waiting.contains("waits for signal approval until"),
        "{waiting}"
    );
    wait_for("the payload is typed", DEADLINE, || async {
        let payload = client.find(Locator::Css("#payload-approval")).await.ok()?;
        payload.clear().await.ok()?;
        payload
            .send_keys(r#"{"approved_by": "web operator"}"#)
            .await
            .ok()
    })
    .await
    .unwrap();
    click(&client, r#"[data-signal="approval"]"#).await;
    wait_for("the saga completes", DEADLINE, || async {
        let status = client.find(Locator::Css("#saga-status")).await.ok()?;
        (status.text().await.ok()? == "completed").then_some(())
    })
    .await
    .unwrap();
    let saga = system.saga(id).await.unwrap();
    let approval = saga["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "manager_approval")
        .cloned()
        .unwrap();
    assert_eq!(approval["output"]["approved_by"], "web operator");
    // The page followed the feed: it received the saga's events up to its last one.
    let history = system.history(id).await;
    let last = history.last().unwrap()["position"].as_u64().unwrap();
    wait_for(
        "the page to have read the feed up to the saga's end",
        DEADLINE,
        || async {
            let body = client.find(Locator::Css("body")).await.ok()?;
            let seen: u64 = body.attr("data-feed-position").await.ok()??.parse().ok()?;
            (seen >= last).then_some(())
        },
    )
    .await
    .unwrap();
    client.close().await.unwrap();
}

/// Clicks the element `css` selects. The pages re-render as events come, so an element
/// found just before may be replaced before the click lands (a stale element): it is found
/// and clicked again until the click is taken, within the deadline.
async fn click(client: &Client, css: &str) {
    wait_for(&format!("a click on {css}"), DEADLINE, || async {
        let element = client.find(Locator::Css(css)).await.ok()?;
        element.click().await.ok()
    })
    .await
    .unwrap();
}
