//! CycloneDX 1.6 exports of the inventory (any role):
//! `GET /v1/models/{model}/versions/{version}/dependents.cdx.json` and
//! `GET /v1/consumers/{name}/dependencies.cdx.json`, with the same `transitive`,
//! `maxDepth`, `includeStale` and `limit` parameters as the GraphQL questions.

use super::{ApiError, AppState};
use crate::export::cyclonedx::MEDIA_TYPE;
use crate::service::Ask;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Params {
    transitive: Option<bool>,
    max_depth: Option<u32>,
    include_stale: Option<bool>,
    limit: Option<usize>,
}

impl Params {
    fn ask(&self) -> Ask {
        Ask {
            transitive: self.transitive.unwrap_or(true),
            max_depth: self.max_depth,
            include_stale: self.include_stale.unwrap_or(true),
            limit: self.limit,
        }
    }
}

fn cyclonedx(bom: serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, MEDIA_TYPE)], bom.to_string()).into_response()
}

pub async fn dependents(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let bom = state
        .services
        .inventory()
        .dependents_bom(&model, &version, params.ask())
        .await?;
    Ok(cyclonedx(bom))
}

pub async fn dependencies(
    State(state): State<AppState>,
    Path(consumer): Path<String>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let bom = state
        .services
        .inventory()
        .dependencies_bom(&consumer, params.ask())
        .await?;
    Ok(cyclonedx(bom))
}
