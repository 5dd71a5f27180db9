//! HTTP error responses: `{"error": {"code", "message"}}` with the matching status.

use crate::service::ServiceError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Answer in GraphQL's shape too (`errors[].extensions.code`), for `/graphql`.
    graphql: bool,
}

impl ApiError {
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "UNAUTHENTICATED",
            message: message.into(),
            graphql: false,
        }
    }

    /// The same error, also as a GraphQL response's `errors` list, so a GraphQL client
    /// refused at `/graphql` reads its code where it reads every other.
    pub fn for_graphql(mut self) -> Self {
        self.graphql = true;
        self
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "FORBIDDEN",
            message: message.into(),
            graphql: false,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "NOT_FOUND",
            message: message.into(),
            graphql: false,
        }
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "TIMEOUT",
            message: message.into(),
            graphql: false,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "UNAVAILABLE",
            message: message.into(),
            graphql: false,
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let status = match &e {
            ServiceError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
            ServiceError::Conflict(_) | ServiceError::Contended(_) | ServiceError::Policy(_) => {
                StatusCode::CONFLICT
            }
            ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
            ServiceError::Integrity(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ServiceError::Gone(_) => StatusCode::GONE,
            ServiceError::BrownedOut { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ServiceError::Internal(cause) => {
                tracing::error!(error = %cause, "internal error while answering HTTP");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Self {
            status,
            code: e.code(),
            message: e.to_string(),
            graphql: false,
        }
    }
}

/// Put on a 403 response, so the authentication middleware can record the refusal.
#[derive(Debug, Clone)]
pub struct RefusedBecause(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body =
            serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        if self.graphql {
            body["errors"] = serde_json::json!([{ "message": self.message, "extensions": { "code": self.code } }]);
        }
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::FORBIDDEN {
            response
                .extensions_mut()
                .insert(RefusedBecause(self.message.clone()));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sunset\""),
            );
        }
        response
    }
}
