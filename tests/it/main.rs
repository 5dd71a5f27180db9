//! The one integration-test binary. Every storage-touching test runs twice, on SQLite
//! and on the real PostgreSQL server (see `on_both_backends!`).

#[macro_use]
mod support;

mod architecture;
mod artifacts;
mod as_of;
mod audit;
mod auth;
mod cli;
mod compliance;
mod console;
mod crash;
mod cyclonedx;
mod emergency_deployments;
mod governance;
mod inventory;
mod metrics;
mod model_signing_tool;
mod registrations;
mod registry;
mod replicas;
mod retention;
mod retirements;
mod rollback;
mod scans;
mod schema;
mod signatures;
mod signers;
mod subscriptions;
mod tls;
mod validations;
