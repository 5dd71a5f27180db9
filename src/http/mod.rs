//! The axum router. Every route needs a bearer token except `/healthz`, `/readyz` and
//! the GraphiQL page (static HTML that holds no data; `http.graphiql = false` turns it off).

mod audit_export;
mod auth;
mod error;
mod health;

pub use auth::Authenticated;
pub use error::ApiError;

use crate::config::Settings;
use crate::graphql::SunsetSchema;
use crate::service::Services;
use async_graphql::http::GraphiQLSource;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Router, middleware};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub schema: SunsetSchema,
    pub graphiql: bool,
}

pub fn router(state: AppState, settings: &Settings) -> Router {
    let authenticated = Router::new()
        .route("/graphql", axum::routing::post(graphql))
        .route("/v1/audit/export", get(audit_export::export))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/graphql", get(graphiql))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .merge(authenticated)
        .layer(DefaultBodyLimit::max(settings.http.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(settings.http.max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn graphql(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    request: GraphQLRequest,
) -> GraphQLResponse {
    state
        .schema
        .execute(request.into_inner().data(actor))
        .await
        .into()
}

async fn graphiql(State(state): State<AppState>) -> axum::response::Response {
    if !state.graphiql {
        return ApiError::not_found("GraphiQL is turned off (http.graphiql = false)")
            .into_response();
    }
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .title("sunset")
            .finish(),
    )
    .into_response()
}
