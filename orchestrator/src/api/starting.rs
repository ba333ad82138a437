//! The API while the orchestrator starts: served from the moment its port is bound, before
//! the event store and NATS are open (which can take as long as either is away).
//!
//! Until the full API is [`Deferred::install`]ed, `/livez` answers 200 (the process is alive
//! and waiting, which is no reason to restart it), `/readyz` answers 503 with a `starting`
//! check in the same body shape as the full probe, and every other path a 503
//! `application/problem+json` with `Retry-After`. Afterwards every request goes to the full
//! API, unchanged.
//!
//! ```
//! # async fn demo() {
//! use axum::Router;
//! use saga_orchestrator::api::starting::Deferred;
//!
//! let deferred = Deferred::default();
//! let app: Router = deferred.router();
//! // ... axum::serve(listener, app) on a task, then open the orchestrator ...
//! deferred.install(Router::new());
//! # }
//! ```

use super::Error;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

/// What `/readyz` and the problems say while the orchestrator opens.
const STARTING: &str = "opening the event store and connecting to NATS (each is waited for \
                        while it is away; the log says which)";

/// The full API, once it is there. Cheap to clone.
#[derive(Clone, Default)]
pub struct Deferred(Arc<OnceLock<Router>>);

impl Deferred {
    /// A router that answers as the module docs say until [`Deferred::install`], and is the
    /// installed API afterwards.
    pub fn router(&self) -> Router {
        Router::new().fallback(dispatch).with_state(self.clone())
    }

    /// Hands every request from now on to `app`. Only the first call has an effect.
    pub fn install(&self, app: Router) {
        if self.0.set(app).is_err() {
            tracing::warn!("the API was installed twice; keeping the first");
        }
    }
}

async fn dispatch(State(deferred): State<Deferred>, request: Request) -> Response {
    match deferred.0.get() {
        Some(app) => match app.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        None => starting(request.uri().path()),
    }
}

fn starting(path: &str) -> Response {
    match path {
        "/livez" => "ok".into_response(),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "status": "not ready",
                "checks": { "starting": STARTING },
            })),
        )
            .into_response(),
        _ => {
            let mut response = Error::Starting(format!(
                "the orchestrator is starting: {STARTING}; retry shortly"
            ))
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::Body;
    use axum::routing::get;

    async fn call(app: &Router, path: &str) -> (StatusCode, String, String) {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        crate::api::test_support::answer(app, request).await
    }

    #[tokio::test]
    async fn probes_answer_while_starting_and_the_api_takes_over_once_installed() {
        let deferred = Deferred::default();
        let app = deferred.router();

        let (status, _, body) = call(&app, "/livez").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
        let (status, _, body) = call(&app, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.contains(r#""starting":"opening the event store"#),
            "{body}"
        );
        let (status, kind, body) = call(&app, "/v1/sagas").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(kind, "application/problem+json");
        assert!(body.contains("the orchestrator is starting"), "{body}");

        deferred.install(Router::new().route("/readyz", get(|| async { "ready" })));
        let (status, _, body) = call(&app, "/readyz").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ready"));
        let (status, _, _) = call(&app, "/livez").await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "the installed API answers alone"
        );
    }
}
