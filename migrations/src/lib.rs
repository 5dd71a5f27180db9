//! Schema migrations for sunset, applied by `sunset migrate` and at every `sunset serve`.
//!
//! One file per change, named `mYYYYMMDD_NNNNNN_intent.rs`; the file name is the
//! migration's recorded name (sea-orm's `DeriveMigrationName`), so never rename one
//! that has shipped. Migrations carry their own `Iden` enums and never import the
//! application's entities: an entity describes today's schema, a migration the schema
//! of its day. See README.md in this folder for expand/contract changes.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_foundation;
mod m20261122_000002_create_artifacts;
mod m20261122_000003_create_signers;
mod m20261122_000004_create_version_signatures;
mod m20261122_000005_add_promoted_at;
mod m20261122_000006_create_inventory;
mod m20261122_000007_create_scans;
mod m20261130_000008_partial_edge_indexes;
mod m20261201_000009_create_retirements;
mod m20261201_000010_create_kill_switch;
mod m20261201_000011_create_erasure;
mod m20261201_000012_create_enforcement_confirmations;
mod m20261201_000013_artifacts_fillfactor;
mod m20261201_000014_artifacts_fillfactor_half;
mod m20261206_000015_retired_by_kill_switch;
mod m20261206_000016_fleet_coordination;
mod m20261206_000017_create_calendar_feeds;
mod m20261206_000018_delivery_claims;
mod m20261206_000019_create_console_sessions;
mod m20261206_000020_dependents_by_consumer;
mod m20261207_000021_audit_client_ip;
mod m20261207_000022_retirement_levers;
mod m20261207_000023_validation_attestations;
mod m20261207_000024_grants_and_policies;
mod m20261207_000025_emergency_deployments;
mod m20261207_000026_retention_proposals;
mod m20261207_000027_brownout_pushes;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_foundation::Migration),
            Box::new(m20261122_000002_create_artifacts::Migration),
            Box::new(m20261122_000003_create_signers::Migration),
            Box::new(m20261122_000004_create_version_signatures::Migration),
            Box::new(m20261122_000005_add_promoted_at::Migration),
            Box::new(m20261122_000006_create_inventory::Migration),
            Box::new(m20261122_000007_create_scans::Migration),
            Box::new(m20261130_000008_partial_edge_indexes::Migration),
            Box::new(m20261201_000009_create_retirements::Migration),
            Box::new(m20261201_000010_create_kill_switch::Migration),
            Box::new(m20261201_000011_create_erasure::Migration),
            Box::new(m20261201_000012_create_enforcement_confirmations::Migration),
            Box::new(m20261201_000013_artifacts_fillfactor::Migration),
            Box::new(m20261201_000014_artifacts_fillfactor_half::Migration),
            Box::new(m20261206_000015_retired_by_kill_switch::Migration),
            Box::new(m20261206_000016_fleet_coordination::Migration),
            Box::new(m20261206_000017_create_calendar_feeds::Migration),
            Box::new(m20261206_000018_delivery_claims::Migration),
            Box::new(m20261206_000019_create_console_sessions::Migration),
            Box::new(m20261206_000020_dependents_by_consumer::Migration),
            Box::new(m20261207_000021_audit_client_ip::Migration),
            Box::new(m20261207_000022_retirement_levers::Migration),
            Box::new(m20261207_000023_validation_attestations::Migration),
            Box::new(m20261207_000024_grants_and_policies::Migration),
            Box::new(m20261207_000025_emergency_deployments::Migration),
            Box::new(m20261207_000026_retention_proposals::Migration),
            Box::new(m20261207_000027_brownout_pushes::Migration),
        ]
    }
}
