//! What a request may be, and the one shape of every refusal.
//!
//! A body larger than [`Limits::max_body`] (`--api-max-body`, `SAGA_API_MAX_BODY`) is refused
//! with 413 before it is read when it declares its length, and when its extractor reaches the
//! limit otherwise. Every error answer is `application/problem+json`: the handlers' own
//! problems (and the `/readyz` report) pass through; what axum answers by itself (an unknown
//! route, a method a route does not have, a path or query its extractor cannot parse, a body
//! too large) is rewritten into a problem with a detail that says what to do. Any 413 gets the
//! limit's detail, whoever gave it.
//!
//! ```no_run
//! # fn demo(orchestrator: saga_orchestrator::runtime::Orchestrator) {
//! use saga_orchestrator::api::{Limits, router_with};
//! let app = router_with(orchestrator, Limits { max_body: 64 * 1024 });
//! # let _ = app; }
//! ```

use super::Error;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Limits of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub max_body: usize,
}

/// The default [`Limits::max_body`]: 256 KiB. A saga's input travels on in its commands, so
/// the body must stay well below the largest NATS message (`max_payload`, 1 MiB by default):
/// an input the API took but the bus refused would leave its saga unable to go on.
pub const DEFAULT_MAX_BODY: usize = 256 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

/// Longest detail taken over from a plain-text refusal.
const MAX_DETAIL: usize = 300;

/// `router` with its bodies bounded by `limits` and every error answered as a problem.
pub fn bounded(router: Router, limits: Limits) -> Router {
    router
        .layer(DefaultBodyLimit::max(limits.max_body))
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| async move { answer(limits, req, next).await },
        ))
}

async fn answer(limits: Limits, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return too_large(limits);
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = next.run(req).await;
    let status = response.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large(limits);
    }
    if !(status.is_client_error() || status.is_server_error()) || answered_by_handler(&response) {
        return response;
    }
    as_problem(response, &method, &path).await
}

fn too_large(limits: Limits) -> Response {
    Error::TooLarge(format!(
        "the request body is larger than this API accepts ({} bytes; the orchestrator's \
         --api-max-body or SAGA_API_MAX_BODY sets it)",
        limits.max_body
    ))
    .into_response()
}

/// A problem, or another JSON document a handler answers with on purpose (the `/readyz`
/// report); what axum answers by itself is plain text or empty.
fn answered_by_handler(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/problem+json") || v.starts_with("application/json")
        })
}

/// An error answer axum gave by itself, as a problem with the same status.
async fn as_problem(response: Response, method: &Method, path: &str) -> Response {
    let status = response.status();
    let allow = response.headers().get(header::ALLOW).cloned();
    let text = axum::body::to_bytes(response.into_body(), MAX_DETAIL * 4)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let detail = match status {
        StatusCode::NOT_FOUND if text.is_empty() => {
            format!("no route {method} {path}; GET /openapi.json lists the API's routes")
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = allow
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map_or_else(String::new, |v| format!("; it allows {v}"));
            format!("{path} does not take {method}{allowed}")
        }
        _ if text.is_empty() => format!("{method} {path} was refused"),
        _ => format!("{method} {path}: {}", clip(&text)),
    };
    let mut problem = Error::Status(status, detail).into_response();
    if let Some(allow) = allow {
        problem.headers_mut().insert(header::ALLOW, allow);
    }
    problem
}

fn clip(text: &str) -> &str {
    match text.char_indices().nth(MAX_DETAIL) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::Body;
    use axum::routing::post;

    /// An empty body, as axum gives for some refusals.
    fn empty(status: StatusCode) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = status;
        response
    }

    async fn ask(app: &Router, method: Method, path: &str, body: Body) -> (u16, String, String) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(body)
            .unwrap();
        let (status, kind, body) = crate::api::test_support::answer(app, request).await;
        (status.as_u16(), kind, body)
    }

    fn app() -> Router {
        let routes = Router::new()
            .route("/echo", post(|body: String| async move { body }))
            .route("/teapot", post(|| async { empty(StatusCode::IM_A_TEAPOT) }));
        bounded(routes, Limits { max_body: 16 })
    }

    #[tokio::test]
    async fn every_refusal_is_a_problem_that_says_what_to_do() {
        let app = app();
        let streamed = Body::from_stream(futures::stream::iter(
            ["0123456789", "0123456789"].map(Ok::<_, std::io::Error>),
        ));
        let mut seen = Vec::new();
        for (method, path, body) in [
            (Method::POST, "/echo", Body::from("small")),
            (
                Method::POST,
                "/echo",
                Body::from("a body of more than sixteen bytes"),
            ),
            (Method::POST, "/echo", streamed),
            (Method::POST, "/echo", Body::from(vec![0xff, 0xfe])),
            (Method::GET, "/nope", Body::empty()),
            (Method::DELETE, "/echo", Body::empty()),
            (Method::POST, "/teapot", Body::empty()),
        ] {
            let label = format!("{method} {path}");
            let (status, kind, body) = ask(&app, method, path, body).await;
            seen.push(format!("{label} → {status} {kind}\n  {body}"));
        }
        insta::assert_snapshot!(seen.join("\n"));
    }
}
