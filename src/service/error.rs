//! The one error type of the use cases. Transports map it once: GraphQL in
//! `graphql::error`, HTTP in `http::error`. `Internal` keeps its cause for the log and
//! is answered with a generic message, so no database text reaches a client.

use crate::domain::ParseError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Invalid(#[from] ParseError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    /// Other writers kept changing the same data; redone by `in_write_tx!`, and
    /// reported only when it kept happening.
    #[error("{0}")]
    Contended(String),
    /// The thing existed and was retired on purpose (a disabled version): HTTP 410.
    #[error("{0}")]
    Gone(String),
    /// Refused for now, by design: a brownout window of a retirement's notice period
    /// (HTTP 503 with `Retry-After`, the seconds until the window ends).
    #[error("{message}")]
    BrownedOut {
        message: String,
        retry_after_secs: u64,
    },
    /// The model's policy refuses this; the message names the rule (`rule maxVersions: …`).
    #[error("{0}")]
    Policy(String),
    /// Stored data failed verification and is not served (AISVS 3.1.2).
    #[error("{0}")]
    Integrity(String),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        if e.is_contention() {
            return ServiceError::Contended(
                "other changes were being made at the same time; try again".into(),
            );
        }
        ServiceError::Internal(Box::new(e))
    }
}

/// A move the retirement state machine refuses: someone asked for it in the wrong state.
impl From<crate::domain::IllegalMove> for ServiceError {
    fn from(e: crate::domain::IllegalMove) -> Self {
        ServiceError::Conflict(e.to_string())
    }
}

impl ServiceError {
    /// The stable code clients switch on (`extensions.code` in GraphQL).
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Invalid(_) => "VALIDATION",
            ServiceError::NotFound(_) => "NOT_FOUND",
            ServiceError::Conflict(_) | ServiceError::Contended(_) => "CONFLICT",
            ServiceError::Forbidden(_) => "FORBIDDEN",
            ServiceError::Integrity(_) => "INTEGRITY",
            ServiceError::Gone(_) => "GONE",
            ServiceError::Policy(_) => "POLICY",
            ServiceError::BrownedOut { .. } => "BROWNOUT",
            ServiceError::Internal(_) => "INTERNAL",
        }
    }

    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ServiceError::Internal(Box::new(e))
    }
}
