//! The one place where failures become HTTP statuses. Bodies are `application/problem+json`
//! with a message a person can act on; SQL and NATS internals are logged, never returned.

use crate::runtime::{self, Declined};
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// 413: the body is over the API's limit.
    #[error("{0}")]
    TooLarge(String),
    /// Any other refusal, with its status (what axum answers by itself, made a problem).
    #[error("{1}")]
    Status(StatusCode, String),
    #[error("the service is temporarily unavailable; retry shortly")]
    Unavailable,
    /// The process is up but still opening what it needs (see `api::starting`).
    #[error("{0}")]
    Starting(String),
    #[error("internal error; see the orchestrator's log")]
    Internal,
}

/// An `application/problem+json` body (RFC 9457).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem<'a> {
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    kind: &'a str,
    #[schema(value_type = String)]
    title: &'a str,
    status: u16,
    detail: String,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Status(status, _) => *status,
            Error::Unavailable | Error::Starting(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let problem = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("error"),
            status: status.as_u16(),
            detail: self.to_string(),
        };
        let mut response = (status, Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl Error {
    /// A JSON body that could not be taken: too large (413; `api::limits` gives every 413 the
    /// limit's detail), or not what the route expects (400 naming `expected`).
    pub(super) fn from_body(
        rejection: &axum::extract::rejection::JsonRejection,
        expected: &str,
    ) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Error::TooLarge(rejection.body_text());
        }
        Error::BadRequest(format!("{expected} ({})", rejection.body_text()))
    }
}

impl From<Declined> for Error {
    fn from(declined: Declined) -> Self {
        match declined {
            e @ Declined::UnknownDefinition { .. } => {
                Error::NotFound(format!("{e}; GET /v1/definitions lists the loaded ones"))
            }
            Declined::InvalidInput(rejection) => Error::BadRequest(rejection.to_string()),
            e @ Declined::IdempotencyConflict { .. } => Error::Conflict(format!(
                "{e}; use a new Idempotency-Key for a different input"
            )),
            e @ Declined::NotFound(_) => Error::NotFound(e.to_string()),
            e @ (Declined::Retired { .. }
            | Declined::DefinitionChanged(_)
            | Declined::VersionInFlight { .. }) => Error::Conflict(e.to_string()),
            e @ Declined::UnknownVersion { .. } => Error::NotFound(format!(
                "{e}; GET /v1/definitions lists the stored versions"
            )),
        }
    }
}

impl From<runtime::Error> for Error {
    fn from(e: runtime::Error) -> Self {
        match e {
            runtime::Error::Declined(declined) => declined.into(),
            // The reason names the saga and what of its log cannot be read (an event of a
            // newer build, say), never SQL or NATS text.
            e @ runtime::Error::Corrupt { .. } => {
                tracing::error!(error = %e, "a saga's log cannot be read");
                Error::Status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
            e if e.is_transient() => {
                tracing::warn!(error = %e, "transient failure behind an API call");
                Error::Unavailable
            }
            e => {
                tracing::error!(error = %e, "API call failed");
                Error::Internal
            }
        }
    }
}
