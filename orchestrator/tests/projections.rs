#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `GET /v1/projections/sagas` and `POST /v1/projections/sagas/rebuild` on SQLite and
//! PostgreSQL: sagas run by the runtime, their read model then corrupted in SQL (a wrong
//! status and timer, a wrong version, lost tags, a lost row, a row with no log), every
//! difference found, the rows rebuilt page by page, and the sagas going on afterwards.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use saga_orchestrator::api::{Role, required_role};
use saga_orchestrator::clock::SystemClock;
use saga_orchestrator::runtime::{Options, Orchestrator, Registry};
use saga_orchestrator::store::SqlStore;
use saga_orchestrator::transport::MemoryTransport;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use tower::ServiceExt;
use uuid::Uuid;

type O = Orchestrator<SqlStore, MemoryTransport>;

async fn call(o: &O, method: Method, uri: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let response = saga_orchestrator::api::router(o.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn start(o: &O, customer: &str) -> Uuid {
    let input = json!({"customer_id": customer, "amount": 500});
    o.start("place_order", input, None).await.unwrap().saga_id
}

/// Walks every page of `verb` (`GET /v1/projections/sagas` or `POST …/rebuild`), `limit`
/// sagas a page, and returns every difference with how many sagas were checked and rebuilt.
async fn walk(o: &O, method: Method, path: &str, limit: u32) -> (Vec<Value>, u64, u64) {
    let (mut differences, mut checked, mut rebuilt) = (Vec::new(), 0, 0);
    let mut after: Option<String> = None;
    loop {
        let uri = match &after {
            Some(id) => format!("{path}?limit={limit}&after={id}"),
            None => format!("{path}?limit={limit}"),
        };
        let (status, page) = call(o, method.clone(), &uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {page}");
        assert_eq!(page["projection"], "sagas");
        assert!(page["checked"].as_u64().unwrap() <= u64::from(limit));
        checked += page["checked"].as_u64().unwrap();
        rebuilt += page["rebuilt"].as_u64().unwrap();
        differences.extend(page["differences"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return (differences, checked, rebuilt),
        }
    }
}

/// `(saga, field)` of each difference, with the saga named as in `names`.
fn found(differences: &[Value], names: &[(Uuid, &str)]) -> BTreeSet<(String, String)> {
    differences
        .iter()
        .map(|d| {
            let id: Uuid = d["saga_id"].as_str().unwrap().parse().unwrap();
            let name = names
                .iter()
                .find(|(saga, _)| *saga == id)
                .map_or("?", |(_, name)| name);
            (name.to_string(), d["field"].as_str().unwrap().to_string())
        })
        .collect()
}

async fn sql(url: &str, statements: &[String]) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
}

async fn a_corrupted_read_model_is_found_and_rebuilt_while_sagas_go_on(url: &str) {
    let store = SqlStore::open(url, 4).await.unwrap();
    let registry = Registry::load_dir(&saga_testkit::workspace_root().join("sagas")).unwrap();
    let o = Orchestrator::new(
        store,
        MemoryTransport::new(SystemClock),
        registry,
        Options::default(),
    );
    // Given sagas the runtime ran: one completed, three running (each with a timer).
    let done = start(&o, "ada").await;
    common::play(&o, done, 10).await;
    assert_eq!(
        o.load(done).await.unwrap().state.status.as_str(),
        "completed"
    );
    let versioned = start(&o, "bob").await;
    let untagged = start(&o, "cy").await;
    let rowless = start(&o, "dee").await;
    let (clean, checked, _) = walk(&o, Method::GET, "/v1/projections/sagas", 2).await;
    assert_eq!(checked, 4);
    assert!(
        clean.is_empty(),
        "a read model written by the runtime agrees: {clean:?}"
    );

    // When its read model is corrupted behind the orchestrator's back.
    let orphan = Uuid::new_v4();
    sql(
        url,
        &[
            format!("UPDATE sagas SET status = 'running', due_at = 5 WHERE saga_id = '{done}'"),
            format!("UPDATE sagas SET version = 1 WHERE saga_id = '{versioned}'"),
            format!("DELETE FROM saga_tags WHERE saga_id = '{untagged}'"),
            format!("DELETE FROM saga_tags WHERE saga_id = '{rowless}'"),
            format!("DELETE FROM sagas WHERE saga_id = '{rowless}'"),
            format!(
                "INSERT INTO sagas (saga_id, name, definition_version, status, version, \
                 input_digest, created_at, updated_at) \
                 VALUES ('{orphan}', 'place_order', 1, 'running', 3, 'sha256:00', 1, 1)"
            ),
        ],
    )
    .await;
    // The runtime trusts the row: it would see the saga cut short at its first event.
    assert_eq!(o.load(versioned).await.unwrap().events.len(), 1);
    let names = [
        (done, "done"),
        (versioned, "versioned"),
        (untagged, "untagged"),
        (rowless, "rowless"),
        (orphan, "orphan"),
    ];

    // Then verify finds every difference, page by page, and changes nothing.
    let expected: BTreeSet<(String, String)> = [
        ("done", "status"),
        ("done", "due_at"),
        ("versioned", "version"),
        ("untagged", "tags"),
        ("rowless", "row"),
        ("orphan", "row"),
    ]
    .iter()
    .map(|(saga, field)| (saga.to_string(), field.to_string()))
    .collect();
    let (differences, checked, rebuilt) = walk(&o, Method::GET, "/v1/projections/sagas", 2).await;
    assert_eq!((checked, rebuilt), (5, 0));
    assert_eq!(found(&differences, &names), expected, "{differences:#?}");
    let status = differences.iter().find(|d| d["field"] == "status").unwrap();
    assert_eq!(
        (&status["stored"], &status["expected"]),
        (&json!("running"), &json!("completed"))
    );
    let tags = differences.iter().find(|d| d["field"] == "tags").unwrap();
    assert_eq!(tags["stored"], json!({}));
    assert_eq!(
        tags["expected"],
        json!({"amount": "500", "customer_id": "cy"})
    );
    let (again, _, _) = walk(&o, Method::GET, "/v1/projections/sagas", 500).await;
    assert_eq!(found(&again, &names), expected, "verify changed nothing");

    // Rebuild mends each saga that differs, page by page, and verify is then clean.
    let (mended, checked, rebuilt) =
        walk(&o, Method::POST, "/v1/projections/sagas/rebuild", 2).await;
    assert_eq!((checked, rebuilt), (5, 5));
    assert_eq!(found(&mended, &names), expected);
    let (after, checked, _) = walk(&o, Method::GET, "/v1/projections/sagas", 2).await;
    assert_eq!(checked, 4, "the row with no log is gone");
    assert!(after.is_empty(), "{after:#?}");
    let (nothing, _, rebuilt) = walk(&o, Method::POST, "/v1/projections/sagas/rebuild", 500).await;
    assert_eq!(
        (nothing.len(), rebuilt),
        (0, 0),
        "a rebuild of a clean model writes nothing"
    );

    // And the sagas are whole again: found by their input, and they finish.
    let (status, list) = call(&o, Method::GET, "/v1/sagas?input.customer_id=cy").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list["sagas"][0]["saga_id"],
        json!(untagged.to_string()),
        "{list}"
    );
    let (status, list) = call(&o, Method::GET, "/v1/sagas?input.customer_id=dee").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list["sagas"][0]["saga_id"],
        json!(rowless.to_string()),
        "{list}"
    );
    let (status, _) = call(&o, Method::GET, &format!("/v1/sagas/{orphan}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for saga in [versioned, untagged, rowless] {
        common::play(&o, saga, 10).await;
        let (status, view) = call(&o, Method::GET, &format!("/v1/sagas/{saga}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(view["status"], "completed", "{view}");
    }
    o.store().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_read_model_is_verified_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("events.db").display());
    a_corrupted_read_model_is_found_and_rebuilt_while_sagas_go_on(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_read_model_is_verified_and_rebuilt() {
    let (pg, url) = saga_testkit::Postgres::with_database("events")
        .await
        .unwrap();
    a_corrupted_read_model_is_found_and_rebuilt_while_sagas_go_on(&url).await;
    drop(pg);
}

#[tokio::test]
async fn a_bad_page_or_projection_is_refused_with_what_to_send() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("events.db").display());
    let o = Orchestrator::new(
        SqlStore::open(&url, 2).await.unwrap(),
        MemoryTransport::new(SystemClock),
        Registry::default(),
        Options::default(),
    );
    let cases = [
        (
            "/v1/projections/accounts",
            StatusCode::NOT_FOUND,
            "participants'",
        ),
        (
            "/v1/projections/sagas?after=x",
            StatusCode::BAD_REQUEST,
            "previous page's `next`",
        ),
        (
            "/v1/projections/sagas?limit=0",
            StatusCode::BAD_REQUEST,
            "use 1 to 5000",
        ),
        (
            "/v1/projections/sagas?limit=a",
            StatusCode::BAD_REQUEST,
            "limit=<1 to 5000>",
        ),
        (
            "/v1/projections/sagas?page=2",
            StatusCode::BAD_REQUEST,
            "after=<saga id>",
        ),
    ];
    for (uri, code, detail) in cases {
        let (status, problem) = call(&o, Method::GET, uri).await;
        assert_eq!(status, code, "{uri}: {problem}");
        let text = problem["detail"].as_str().unwrap();
        assert!(text.contains(detail), "{uri}: {text}");
    }
    // Reading is for any caller; rewriting is the admin's.
    assert_eq!(
        required_role(&Method::GET, "/v1/projections/{name}"),
        Some(Role::Read)
    );
    assert_eq!(
        required_role(&Method::POST, "/v1/projections/{name}/rebuild"),
        Some(Role::Admin)
    );
}
