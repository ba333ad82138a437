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
        super::events::list,
        super::events::stream,
        super::sagas::operate,
        super::sagas::signal,
        super::search::overview,
        super::definitions::list,
        super::definitions::reload,
        super::definitions::validate,
        super::definitions::retire,
        super::projections::verify,
        super::projections::rebuild,
    ),
    components(schemas(
        StartedView,
        Links,
        SagaView,
        SummaryView,
        ListView,
        OverviewView,
        EventView,
        super::views::FeedEventView,
        super::views::FeedView,
        DefinitionView,
        ValidatedView,
        RetiredView,
        OperatorBody,
        super::sagas::SignalView,
        super::projections::ProjectionPageView,
        super::projections::DifferenceView,
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

/// The OpenAPI document of the API, as generated from the handlers: every route, and bearer
/// security declared on all of them.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

/// Whether the server answering checks API tokens: set on every request by
/// [`super::authenticate`], absent without it.
#[derive(Debug, Clone, Copy)]
pub struct Authenticating(pub bool);

/// The OpenAPI document as this server is configured (`GET /openapi.json`): bearer security
/// only when it checks tokens, and for each saga it starts (the newest version loaded) an
/// operation `POST /v1/sagas/<name>` whose body is that saga's input as a JSON Schema
/// (`components.schemas.Input.<name>`: types, required fields, defaults, rules, version).
pub fn document(registry: &crate::runtime::Registry, authenticated: bool) -> serde_json::Value {
    use serde_json::{Value, json};
    let mut doc = serde_json::to_value(openapi()).unwrap_or_default();
    if !authenticated {
        if let Some(top) = doc.as_object_mut() {
            top.remove("security");
        }
        if let Some(components) = doc["components"].as_object_mut() {
            components.remove("securitySchemes");
        }
    }
    let generic = doc["paths"]["/v1/sagas/{name}"]["post"].clone();
    let mut newest: std::collections::BTreeMap<&str, &saga_core::Definition> = Default::default();
    for def in registry.definitions() {
        newest.insert(def.name.as_str(), def);
    }
    for (name, def) in newest {
        let schema = format!("Input.{name}");
        doc["components"]["schemas"][&schema] = def.input_schema();
        let mut op = generic.clone();
        op["operationId"] = json!(format!("start_{name}"));
        op["summary"] = json!(format!("Start {name} (version {})", def.version));
        op["description"] = json!(def.description);
        if let Some(params) = op["parameters"].as_array_mut() {
            params.retain(|p| !(p["in"] == "path" && p["name"] == "name"));
        }
        op["requestBody"] = json!({
            "description": format!("The input of {name}"),
            "required": true,
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}},
        });
        doc["paths"][format!("/v1/sagas/{name}")] = json!({ "post": op });
    }
    if doc["paths"].is_null() {
        doc["paths"] = Value::Object(Default::default());
    }
    doc
}
