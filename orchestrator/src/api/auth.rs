//! Authentication and roles of the API.
//!
//! With tokens configured (see [`super::tokens`]), every `/v1` request and `/metrics` must
//! carry `Authorization: Bearer <token>` (the scheme in any case, RFC 9110) of a known caller
//! whose role allows the route, or gets a 401 (no or unknown token) or 403 (role too low)
//! problem naming what is missing. The probes (`/livez`, `/readyz`), the OpenAPI document and
//! the web UI's static files stay open: they hold no saga data, and the UI asks for a token
//! when the API answers 401. The authenticated caller rides on the request as a
//! [`Caller`] extension: an operator action records its name, whatever the body says.
//!
//! | role      | may                                                                  |
//! |-----------|----------------------------------------------------------------------|
//! | `read`    | every GET under `/v1` (status, history, search, overview, definitions, feed), `POST /v1/definitions/validate`, `/metrics` |
//! | `operate` | read, and `POST /v1/sagas/{name}` (start) and `POST /v1/sagas/{id}/{action}` (retry, skip, abort) |
//! | `admin`   | operate, and `POST /v1/definitions/reload`, `DELETE /v1/definitions/{name}/{version}` |
//!
//! ```no_run
//! # fn demo(orchestrator: saga_orchestrator::runtime::Orchestrator) -> Result<(), saga_orchestrator::api::TokensError> {
//! let tokens = saga_orchestrator::api::Tokens::from_settings(Some("s3cret"), None)?;
//! let app = saga_orchestrator::api::authenticate(saga_orchestrator::api::router(orchestrator), tokens);
//! # Ok(()) }
//! ```

use super::Error;
use super::tokens::{Role, Tokens};
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// `router` with its `/v1` routes and `/metrics` behind the callers of `tokens`, each route
/// for the roles that may call it. With no tokens configured, nothing is checked.
pub fn authenticate(router: Router, tokens: Tokens) -> Router {
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let tokens = tokens.clone();
            async move { check(&tokens, req, next).await }
        },
    ))
}

/// The role a `method` on `route` (the route's pattern, e.g. `/v1/sagas/{id}`) needs;
/// `None` when it is open to anyone.
pub fn required_role(method: &Method, route: &str) -> Option<Role> {
    if route == "/metrics" {
        return Some(Role::Read);
    }
    if route != "/v1" && !route.starts_with("/v1/") {
        return None;
    }
    Some(match (method, route) {
        (&Method::GET | &Method::HEAD, _) => Role::Read,
        (&Method::POST, "/v1/definitions/validate") => Role::Read,
        (
            &Method::POST,
            "/v1/sagas/{name}" | "/v1/sagas/{id}/{action}" | "/v1/sagas/{id}/signals/{name}",
        ) => Role::Operate,
        // Reload, retire, and whatever else comes: the narrowest role unless said otherwise.
        _ => Role::Admin,
    })
}

async fn check(tokens: &Tokens, mut req: Request, next: Next) -> Response {
    req.extensions_mut()
        .insert(super::Authenticating(tokens.enabled()));
    if !tokens.enabled() {
        return next.run(req).await;
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_string(), |m| m.as_str().to_string());
    let Some(needed) = required_role(req.method(), &route) else {
        return next.run(req).await;
    };
    let caller = match bearer(req.headers()) {
        Some(token) => match tokens.caller(token) {
            Some(caller) => caller,
            None => {
                return Error::Unauthorized(
                    "the bearer token is not one of this orchestrator's: check SAGA_API_TOKEN \
                     (or ask its admin for a token of --api-tokens)"
                        .into(),
                )
                .into_response();
            }
        },
        None => {
            return Error::Unauthorized(
                "this orchestrator requires `Authorization: Bearer <token>`; the CLI sends \
                 --token or SAGA_API_TOKEN"
                    .into(),
            )
            .into_response();
        }
    };
    if caller.role < needed {
        return Error::Forbidden(format!(
            "`{}` has the {} role; {} {route} needs {}",
            caller.name,
            caller.role,
            req.method(),
            allowed(needed)
        ))
        .into_response();
    }
    if !req.method().is_safe() {
        tracing::info!(caller = %caller.name, role = %caller.role, method = %req.method(), route, "API call");
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// `needed` and the roles above it, for a person: "the operate role (or admin)".
fn allowed(needed: Role) -> String {
    let higher: Vec<&str> = Role::ALL
        .into_iter()
        .filter(|r| *r > needed)
        .map(Role::as_str)
        .collect();
    match higher.as_slice() {
        [] => format!("the {needed} role"),
        _ => format!("the {needed} role (or {})", higher.join(", ")),
    }
}

/// The token of an `Authorization: Bearer …` header; the scheme is case-insensitive.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_route_needs_its_role() {
        let routes = [
            (Method::GET, "/livez"),
            (Method::GET, "/readyz"),
            (Method::GET, "/openapi.json"),
            (Method::GET, "/"),
            (Method::GET, "/ui/app.js"),
            (Method::GET, "/metrics"),
            (Method::GET, "/v1/sagas"),
            (Method::GET, "/v1/sagas/{name}"),
            (Method::GET, "/v1/sagas/{id}/events"),
            (Method::GET, "/v1/overview"),
            (Method::GET, "/v1/definitions"),
            (Method::GET, "/v1/feed/terminal"),
            (Method::POST, "/v1/definitions/validate"),
            (Method::POST, "/v1/sagas/{name}"),
            (Method::POST, "/v1/sagas/{id}/{action}"),
            (Method::POST, "/v1/sagas/{id}/signals/{name}"),
            (Method::POST, "/v1/definitions/reload"),
            (Method::DELETE, "/v1/definitions/{name}/{version}"),
            (Method::DELETE, "/v1/sagas"),
            (Method::PUT, "/v1/nope"),
        ];
        let table: Vec<String> = routes
            .iter()
            .map(|(m, r)| {
                let role = required_role(m, r).map_or("open", Role::as_str);
                format!("{:6} {r:36} {role}", m.as_str())
            })
            .collect();
        insta::assert_snapshot!(table.join("\n"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            bearer(&h).map(str::to_string)
        };
        assert_eq!(with("Bearer t1").as_deref(), Some("t1"));
        assert_eq!(with("bearer t1").as_deref(), Some("t1"));
        assert_eq!(with("BEARER  t1 ").as_deref(), Some("t1"));
        assert_eq!(with("Basic dTpw"), None);
        assert_eq!(with("Bearer "), None);
        assert_eq!(with("Bearer"), None);
    }

    #[test]
    fn a_refusal_names_the_roles_that_may() {
        assert_eq!(allowed(Role::Read), "the read role (or operate, admin)");
        assert_eq!(allowed(Role::Operate), "the operate role (or admin)");
        assert_eq!(allowed(Role::Admin), "the admin role");
    }
}
