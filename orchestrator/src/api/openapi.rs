//! `GET /openapi.json`: the API described as OpenAPI, generated at compile time (utoipa) from
//! the handlers' `#[utoipa::path]` annotations and the answer types, so it cannot drift from
//! the routes.

use super::Problem;
use super::definitions::{DefinitionView, RetiredView, ValidatedView};
use super::sagas::OperatorBody;
use super::views::{EventView, Links, ListView, OverviewView, SagaView, StartedView, SummaryView};
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "saga orchestrator",
        description = "Start, find, inspect and repair sagas. Errors are application/problem+json \
                       with a `detail` a person can act on. With a token configured, /v1 needs \
                       `Authorization: Bearer <token>`."
    ),
    paths(
        super::sagas::start,
        super::search::list,
        super::sagas::status,
        super::sagas::history,
        super::sagas::operate,
        super::sagas::signal,
        super::search::overview,
        super::definitions::list,
        super::definitions::reload,
        super::definitions::validate,
        super::definitions::retire,
    ),
    components(schemas(
        StartedView,
        Links,
        SagaView,
        SummaryView,
        ListView,
        OverviewView,
        EventView,
        DefinitionView,
        ValidatedView,
        RetiredView,
        OperatorBody,
        super::sagas::SignalView,
        Problem
    )),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
struct Doc;

/// Declares the optional bearer token.
struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}
