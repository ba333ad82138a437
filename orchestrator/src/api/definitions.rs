//! `/v1/definitions`: the definition versions stored with the sagas, loading new ones,
//! checking a file before deploying it, and retiring a version nothing runs on any more.
//!
//! Every version the orchestrator loaded is stored with its source and content hash; the list
//! shows each with whether its file is loaded here and how many of its sagas are in flight.
//! A version with none can be retired (`DELETE /v1/definitions/{name}/{version}`): it can no
//! longer be started, and the history of its sagas stays readable.

use super::{Error, Problem};
use crate::runtime::{DefinitionInfo, LoadError, Orchestrator};
use crate::store::{EventStore, StoredDefinition};
use crate::transport::Transport;
use axum::Json;
use axum::extract::{Path, State};

/// A stored (or loaded) definition version.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct DefinitionView {
    name: String,
    version: u32,
    /// sha256 (hex) of the validated definition's canonical form: whitespace and comments
    /// do not change it. Every saga records the hash of the version it runs.
    hash: String,
    description: String,
    steps: Vec<String>,
    /// Whether a file of this version is loaded: new sagas may start on it unless retired.
    loaded: bool,
    /// Sagas of this version running, compensating or stuck.
    in_flight: u64,
    /// When it was stored (RFC 3339); absent for a loaded version not stored yet.
    stored_at: Option<String>,
    /// When it was retired (RFC 3339): it can no longer be started.
    retired_at: Option<String>,
}

impl From<DefinitionInfo> for DefinitionView {
    fn from(d: DefinitionInfo) -> Self {
        DefinitionView {
            name: d.name,
            version: d.version,
            hash: d.hash,
            description: d.description,
            steps: d.steps,
            loaded: d.loaded,
            in_flight: d.in_flight,
            stored_at: d.stored_at.map(|t| t.to_string()),
            retired_at: d.retired_at.map(|t| t.to_string()),
        }
    }
}

/// A definition that validates.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct ValidatedView {
    name: String,
    version: u32,
    /// What the version would be stored under.
    hash: String,
    description: String,
    steps: Vec<String>,
}

/// A retired version.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct RetiredView {
    name: String,
    version: u32,
    hash: String,
    /// RFC 3339.
    retired_at: Option<String>,
}

impl From<StoredDefinition> for RetiredView {
    fn from(d: StoredDefinition) -> Self {
        RetiredView {
            name: d.name,
            version: d.version,
            hash: d.hash,
            retired_at: d.retired_at.map(|t| t.to_string()),
        }
    }
}

async fn views<S: EventStore, T: Transport>(
    o: &Orchestrator<S, T>,
) -> Result<Vec<DefinitionView>, Error> {
    let list = o.definition_list().await?;
    Ok(list.into_iter().map(Into::into).collect())
}

/// Every stored version, with its hash, whether its file is loaded and its sagas in flight.
#[utoipa::path(get, path = "/v1/definitions", tag = "definitions", operation_id = "definitions",
    responses((status = 200, description = "Every stored definition version", body = Vec<DefinitionView>), (status = 401, description = "A token is required and was missing or wrong", body = Problem, content_type = "application/problem+json")))]
pub(super) async fn list<S: EventStore, T: Transport>(
    State(o): State<Orchestrator<S, T>>,
) -> Result<Json<Vec<DefinitionView>>, Error> {
    Ok(Json(views(&o).await?))
}

/// Loads the definitions directory again: new versions are stored and added, running sagas
/// keep theirs. A file that changes a stored version is refused, and nothing changes.
#[utoipa::path(post, path = "/v1/definitions/reload", tag = "definitions", operation_id = "reload_definitions",
    responses((status = 200, description = "The stored versions after the reload", body = Vec<DefinitionView>), (status = 400, description = "A file is invalid or changes a stored version; `detail` names the file and line", body = Problem, content_type = "application/problem+json"), (status = 401, description = "A token is required and was missing or wrong", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The caller's role may not do this; `detail` names the role needed", body = Problem, content_type = "application/problem+json")))]
pub(super) async fn reload<S: EventStore, T: Transport>(
    State(o): State<Orchestrator<S, T>>,
) -> Result<Json<Vec<DefinitionView>>, Error> {
    match o.reload().await {
        Ok(_) => Ok(Json(views(&o).await?)),
        Err(LoadError::Invalid(e)) => Err(Error::BadRequest(format!(
            "the definitions were not reloaded:\n{e}"
        ))),
        Err(LoadError::Store(e)) => Err(e.into()),
    }
}

/// Validates a posted definition (TOML body) against the loaded catalogue.
#[utoipa::path(post, path = "/v1/definitions/validate", tag = "definitions", operation_id = "validate_definition",
    request_body(content = String, description = "A saga definition (TOML)", content_type = "application/toml"),
    responses((status = 200, description = "The definition is valid: its name, version, hash and steps", body = ValidatedView), (status = 400, description = "The request does not validate; `detail` says how to fix it", body = Problem, content_type = "application/problem+json"), (status = 401, description = "A token is required and was missing or wrong", body = Problem, content_type = "application/problem+json"), (status = 413, description = "The body is larger than the API accepts (--api-max-body)", body = Problem, content_type = "application/problem+json")))]
pub(super) async fn validate<S: EventStore, T: Transport>(
    State(o): State<Orchestrator<S, T>>,
    body: axum::body::Bytes,
) -> Result<Json<ValidatedView>, Error> {
    let registry = o.registry();
    let body = saga_core::definition::source_text("posted.toml", body.to_vec())
        .map_err(|e| Error::BadRequest(e.to_string()))?;
    let def = saga_core::Definition::parse("posted.toml", &body, registry.catalogue())
        .map_err(|e| Error::BadRequest(e.to_string()))?;
    Ok(Json(ValidatedView {
        steps: def.steps.iter().map(|s| s.name.clone()).collect(),
        name: def.name,
        version: def.version,
        hash: def.hash,
        description: def.description,
    }))
}

/// Retires a stored version: it can no longer be started; its sagas' history stays readable.
#[utoipa::path(delete, path = "/v1/definitions/{name}/{version}", tag = "definitions", operation_id = "retire_definition",
    params(("name" = String, Path, description = "Saga definition name"), ("version" = u32, Path, description = "Definition version")),
    responses((status = 200, description = "The version is retired", body = RetiredView), (status = 400, description = "The version is not a number", body = Problem, content_type = "application/problem+json"), (status = 401, description = "A token is required and was missing or wrong", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The caller's role may not do this; `detail` names the role needed", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such stored version", body = Problem, content_type = "application/problem+json"), (status = 409, description = "Sagas of the version are in flight; `detail` says how many", body = Problem, content_type = "application/problem+json")))]
pub(super) async fn retire<S: EventStore, T: Transport>(
    State(o): State<Orchestrator<S, T>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<RetiredView>, Error> {
    let version: u32 = version.parse().map_err(|_| {
        Error::BadRequest(format!(
            "`{version}` is not a definition version: use a whole number, e.g. /v1/definitions/{name}/1"
        ))
    })?;
    Ok(Json(o.retire(&name, version).await?.into()))
}
