//! Bearer-token authentication, as middleware on every protected route.

use super::{ApiError, AppState};
use crate::auth::Actor;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The authenticated actor, put in the request by [`require_token`].
pub struct Authenticated(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .map(Authenticated)
            .ok_or_else(|| ApiError::unauthenticated("this route needs a bearer token"))
    }
}

pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let graphql = request.uri().path() == "/graphql";
    let refuse =
        |error: ApiError| if graphql { error.for_graphql() } else { error }.into_response();
    let Some(value) = request.headers().get(AUTHORIZATION) else {
        return refuse(ApiError::unauthenticated(
            "missing Authorization header; send `Authorization: Bearer <token>`",
        ));
    };
    let Some(secret) = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return refuse(ApiError::unauthenticated(
            "the Authorization header must be `Bearer <token>`",
        ));
    };
    match state.services.admin().authenticate(secret).await {
        Ok(Some(actor)) => {
            let from = state
                .client_addresses
                .of(request.extensions(), request.headers());
            let actor = actor.from_address(from);
            // Cheap clones (shared bytes): the route is spelled out only for a refusal.
            let (method, uri) = (request.method().clone(), request.uri().clone());
            request.extensions_mut().insert(actor.clone());
            let response = next.run(request).await;
            let refused = response
                .extensions()
                .get::<super::error::RefusedBecause>()
                .map(|r| r.0.clone());
            if let Some(message) = refused {
                let route = format!("{method} {}", uri.path());
                record_refusal(&state, &actor, &route, message).await;
            }
            response
        }
        Ok(None) => refuse(ApiError::unauthenticated("unknown or revoked token")),
        Err(e) => refuse(ApiError::from(e)),
    }
}

/// Records a route's refusal of an authenticated caller. (GraphQL answers refusals in
/// its body, never 403, and records them per field in `http/mod.rs`.) The audit export's
/// refusal is recorded by the service, as `audit.read_denied` with the query asked.
pub(super) async fn record_refusal(state: &AppState, actor: &Actor, route: &str, message: String) {
    if route.ends_with(" /v1/audit/export") {
        return;
    }
    let refusal = crate::service::Refusal {
        at: route.to_owned(),
        message,
    };
    state
        .services
        .audit()
        .record_refusals(actor, route, &[refusal])
        .await;
}
