//! Optional bearer-token authentication of the API.
//!
//! With a token set (`--token` / `SAGA_API_TOKEN`), every `/v1` request must carry
//! `Authorization: Bearer <token>` or gets a 401 problem. The probes (`/livez`, `/readyz`),
//! the OpenAPI document and the web UI's static files stay open: they hold no saga data, and
//! the UI asks for the token when the API answers 401. The server refuses to listen on a
//! non-loopback address without a token (see `cli::servers::serve`).
//!
//! ```no_run
//! # fn demo(orchestrator: saga_orchestrator::runtime::Orchestrator) {
//! let app = saga_orchestrator::api::router(orchestrator);
//! let app = saga_orchestrator::api::require_token(app, "s3cret".into());
//! # }
//! ```

use super::Error;
use axum::Router;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// `router` with every `/v1` route behind `Authorization: Bearer <token>`.
pub fn require_token(router: Router, token: String) -> Router {
    let token: Arc<str> = token.into();
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let token = token.clone();
            async move { check(&token, req, next).await }
        },
    ))
}

async fn check(token: &str, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/v1/") && req.uri().path() != "/v1" {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if same(given.trim().as_bytes(), token.as_bytes()) => next.run(req).await,
        Some(_) => Error::Unauthorized(
            "the bearer token is not this orchestrator's; check SAGA_API_TOKEN".into(),
        )
        .into_response(),
        None => Error::Unauthorized(
            "this orchestrator requires `Authorization: Bearer <token>`; the CLI sends \
             --token or SAGA_API_TOKEN"
                .into(),
        )
        .into_response(),
    }
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
