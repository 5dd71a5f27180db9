//! GraphQL transport: one file per domain, merged into one schema. Resolvers parse
//! nothing themselves and touch no storage: they call `service` and map its errors once
//! (`error.rs`). Every field declares the roles it needs with a [`guard::RoleGuard`].

mod as_of;
mod audit;
mod brownouts;
mod calendar_feeds;
mod error;
pub mod execution;
mod governance;
mod guard;
mod inventory;
mod registry;
mod retention;
mod retirements;
mod signers;
mod tokens;
mod vocabulary;

use crate::config::GraphqlSettings;
use crate::service::Services;
use async_graphql::{MergedObject, MergedSubscription, Schema};

#[derive(MergedObject, Default)]
pub struct Query(
    registry::RegistryQuery,
    audit::AuditQueryRoot,
    as_of::AsOfQuery,
    governance::GovernanceQuery,
    tokens::TokenQuery,
    signers::SignerQuery,
    inventory::InventoryQuery,
    retirements::RetirementQuery,
    retention::RetentionQuery,
    brownouts::BrownoutQuery,
    calendar_feeds::CalendarFeedQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    registry::RegistryMutation,
    audit::AuditMutation,
    governance::GovernanceMutation,
    tokens::TokenMutation,
    signers::SignerMutation,
    inventory::InventoryMutation,
    retirements::RetirementMutation,
    retention::RetentionMutation,
    calendar_feeds::CalendarFeedMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(
    inventory::InventorySubscription,
    retirements::RetirementSubscription,
    brownouts::BrownoutSubscription,
);

pub type SunsetSchema = Schema<Query, Mutation, Subscription>;

pub use execution::{Outcome, Schemas};

/// The schema with its limits. Requests add the authenticated `Actor` as data.
pub fn build_schema(services: Option<Services>, limits: &GraphqlSettings) -> SunsetSchema {
    build_with_depth(services, limits, limits.max_depth)
}

/// The schema for data and the one for introspection-only operations (see `execution`).
pub fn build_schemas(services: Option<Services>, limits: &GraphqlSettings) -> Schemas {
    let introspection_depth = limits.max_depth.max(execution::INTROSPECTION_MAX_DEPTH);
    execution::schemas(
        build_schema(services.clone(), limits),
        build_with_depth(services, limits, introspection_depth),
        limits,
    )
}

fn build_with_depth(
    services: Option<Services>,
    limits: &GraphqlSettings,
    max_depth: usize,
) -> SunsetSchema {
    let mut builder = Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .limit_depth(max_depth)
    .limit_complexity(limits.max_complexity)
    .limit_recursive_depth(32)
    .limit_directives(8);
    if let Some(services) = services {
        builder = builder.data(services);
    }
    builder.finish()
}

/// The SDL as committed in `graphql/schema.graphql`.
pub fn sdl() -> String {
    build_schema(None, &GraphqlSettings::default()).sdl()
}

/// Page size for connections: 20 unless asked, 1 to 100.
fn page_size(first: Option<i32>) -> async_graphql::Result<u64> {
    match first {
        None => Ok(20),
        Some(n) if (1..=100).contains(&n) => Ok(n as u64),
        Some(n) => Err(error::validation(format!(
            "first must be between 1 and 100, not {n}"
        ))),
    }
}
