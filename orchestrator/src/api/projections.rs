//! `/v1/projections/sagas`: the read model checked against the fold of the log, and rebuilt
//! from it, a page of sagas at a time (see [`crate::projections`]).
//!
//! `GET` compares and changes nothing; `POST …/rebuild` rewrites the rows that differ while
//! the system runs. Both take `after` (the previous page's `next`) and `limit`, so a caller
//! walks every saga page by page and can stop and resume anywhere.

use super::{Error, Problem};
use crate::projections::{self, Difference, Page, SAGAS};
use crate::runtime::{self, Orchestrator};
use crate::store::EventStore;
use crate::transport::Transport;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use uuid::Uuid;

/// Sagas per page at most.
const MAX_PAGE: u32 = 5_000;

/// Where a page starts and how long it is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PageQuery {
    /// The saga id the page starts after: the previous page's `next`.
    after: Option<String>,
    /// Sagas per page, 1 to 5000 (default 500).
    limit: Option<u32>,
}

/// One way a saga's rows differ from its log.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct DifferenceView {
    #[schema(value_type = String)]
    saga_id: Uuid,
    /// The column (`status`, `version`, `due_at`, `tags`, …); `row` for a row without a log
    /// or a log without a row; `log` for a log that cannot be folded (`stored` says why).
    field: String,
    /// What the read model holds.
    #[schema(value_type = Object)]
    stored: serde_json::Value,
    /// What the fold of the log says.
    #[schema(value_type = Object)]
    expected: serde_json::Value,
}

/// What a page of a verify or a rebuild found and did.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct ProjectionPageView {
    /// The projection (`sagas`: the `sagas` and `saga_tags` rows).
    projection: String,
    /// Sagas compared on this page.
    checked: u64,
    /// Sagas whose rows were rewritten (0 for a verify).
    rebuilt: u64,
    /// Every difference found: for a rebuild, the ones it mended (a `log` difference cannot be).
    differences: Vec<DifferenceView>,
    /// Pass as `after` for the next page; absent after the last page.
    next: Option<String>,
}

impl ProjectionPageView {
    fn new(page: Page) -> Self {
        ProjectionPageView {
            projection: SAGAS.to_string(),
            checked: page.checked,
            rebuilt: page.rebuilt,
            differences: page.differences.into_iter().map(view).collect(),
            next: page.next.map(|id| id.to_string()),
        }
    }
}

fn view(d: Difference) -> DifferenceView {
    DifferenceView {
        saga_id: d.saga_id,
        field: d.field.to_string(),
        stored: d.stored,
        expected: d.expected,
    }
}

/// The page asked for: only the orchestrator's projection, a valid `after` and `limit`.
fn page_of(
    name: &str,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<(Option<Uuid>, u32), Error> {
    if name != SAGAS {
        return Err(Error::NotFound(format!(
            "the orchestrator's projection is `{SAGAS}` (the `sagas` and `saga_tags` rows); \
             `accounts` and `orders` are the participants' (`saga projections verify` reaches \
             them over NATS)"
        )));
    }
    let Query(q) = query.map_err(|e| {
        Error::BadRequest(format!(
            "use `after=<saga id>` (the previous page's `next`) and `limit=<1 to {MAX_PAGE}>` ({})",
            e.body_text()
        ))
    })?;
    let after = q
        .after
        .map(|raw| {
            Uuid::parse_str(&raw).map_err(|_| {
                Error::BadRequest(format!(
                    "`after={raw}` is not a saga id: pass the previous page's `next`"
                ))
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(projections::DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Error::BadRequest(format!(
            "`limit={limit}` is out of range: use 1 to {MAX_PAGE}"
        )));
    }
    Ok((after, limit))
}

/// Compares a page of sagas' rows with the fold of their logs; changes nothing.
#[utoipa::path(get, path = "/v1/projections/{name}", tag = "projections", operation_id = "verify_projection",
    params(("name" = String, Path, description = "The projection: `sagas`"),
           ("after" = Option<String>, Query, description = "Start after this saga id: the previous page's `next`"),
           ("limit" = Option<u32>, Query, description = "Sagas per page, 1 to 5000 (default 500)")),
    responses((status = 200, description = "The sagas compared and every difference found", body = ProjectionPageView), (status = 400, description = "The request does not validate; `detail` says how to fix it", body = Problem, content_type = "application/problem+json"), (status = 401, description = "A token is required and was missing or wrong", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such projection here", body = Problem, content_type = "application/problem+json")))]
pub(super) async fn verify<S: EventStore, T: Transport>(
    State(o): State<Orchestrator<S, T>>,
    Path(name): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<ProjectionPageView>, Error> {
    let (after, limit) = page_of(&name, query)?;
    let page = projections::verify(o.store(), after, limit)
        .await
        .map_err(runtime::Error::from)?;
    Ok(Json(ProjectionPageView::new(page)))
}

/// Rewrites, from the fold of their logs, the rows of a page of sagas that differ from it.
#[utoipa::path(post, path = "/v1/projections/{name}/rebuild", tag = "projections", operation_id = "rebuild_projection",
    params(("name" = String, Path, description = "The projection: `sagas`"),
           ("after" = Option<String>, Query, description = "Start after this saga id: the previous page's `next`"),
           ("limit" = Option<u32>, Query, description = "Sagas per page, 1 to 5000 (default 500)")),
    responses((status = 200, description = "The sagas compared, the differences mended and any that could not be", body = ProjectionPageView), (status = 400, description = "The request does not validate; `detail` says how to fix it", body = Problem, content_type = "application/problem+json"), (status = 401, description = "A token is required and was missing or wrong", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The caller's role may not do this; `detail` names the role needed", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such projection here", body = Problem, content_type = "application/problem+json")))]
pub(super) async fn rebuild<S: EventStore, T: Transport>(
    State(o): State<Orchestrator<S, T>>,
    Path(name): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<ProjectionPageView>, Error> {
    let (after, limit) = page_of(&name, query)?;
    let page = projections::rebuild(o.store(), after, limit)
        .await
        .map_err(runtime::Error::from)?;
    Ok(Json(ProjectionPageView::new(page)))
}
