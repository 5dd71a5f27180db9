//! The single mapping from service errors to GraphQL errors, with `extensions.code`.
//! Internal errors are logged with their cause chain and answered generically.

use crate::service::ServiceError;
use async_graphql::{Error, ErrorExtensions};

impl From<ServiceError> for Error {
    fn from(e: ServiceError) -> Self {
        let code = e.code();
        if let ServiceError::Internal(cause) = &e {
            let mut chain = cause.to_string();
            let mut source = cause.source();
            while let Some(s) = source {
                chain.push_str(": ");
                chain.push_str(&s.to_string());
                source = s.source();
            }
            tracing::error!(error = %chain, "internal error while answering GraphQL");
        }
        Error::new(e.to_string()).extend_with(|_, ext| ext.set("code", code))
    }
}

pub fn validation(message: impl Into<String>) -> Error {
    Error::new(message.into()).extend_with(|_, ext| ext.set("code", "VALIDATION"))
}

pub fn forbidden(message: impl Into<String>) -> Error {
    Error::new(message.into()).extend_with(|_, ext| ext.set("code", "FORBIDDEN"))
}

pub fn unauthenticated() -> Error {
    Error::new("no authenticated actor").extend_with(|_, ext| ext.set("code", "UNAUTHENTICATED"))
}
