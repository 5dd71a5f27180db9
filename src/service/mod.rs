//! Use cases. Each public method is one change or one question: it authorizes the
//! actor, parses its input into domain types, runs in one write transaction and appends
//! its audit record inside it.
//!
//! Architecture invariant: GraphQL resolvers, REST handlers, the CLI and the scheduler
//! call `service`, never `store`.

mod audit_log;
mod error;
mod registry;
mod tokens;

pub use audit_log::{AuditPage, AuditQuery, VerifyOutcome, read_checkpoint_lines};
pub use error::ServiceError;
pub use registry::{ModelInput, ModelPatch, VersionInput};

use crate::attest::ServiceKey;
use crate::clock::Clock;
use crate::store::Store;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything a use case needs, cheap to clone.
#[derive(Clone)]
pub struct Services {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: Arc<dyn Clock>,
    service_key: ServiceKey,
    /// Where signed checkpoints are appended outside the database.
    checkpoint_file: PathBuf,
}

impl Services {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        service_key: ServiceKey,
        checkpoint_file: PathBuf,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                service_key,
                checkpoint_file,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.now()
    }

    pub fn service_key(&self) -> &ServiceKey {
        &self.inner.service_key
    }
}
