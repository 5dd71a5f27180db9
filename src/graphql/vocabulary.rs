//! The registry's small vocabularies as GraphQL enums: tiers and lifecycle statuses.

use crate::domain;
use async_graphql::Enum;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "Tier")]
pub enum TierGql {
    Critical,
    High,
    Standard,
}

impl TierGql {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            TierGql::Critical => "critical",
            TierGql::High => "high",
            TierGql::Standard => "standard",
        }
    }
}

impl From<domain::Tier> for TierGql {
    fn from(t: domain::Tier) -> Self {
        match t {
            domain::Tier::Critical => TierGql::Critical,
            domain::Tier::High => TierGql::High,
            domain::Tier::Standard => TierGql::Standard,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "LifecycleStatus")]
pub enum StatusGql {
    Development,
    Staging,
    Production,
    Deprecated,
    Retired,
}

impl StatusGql {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            StatusGql::Development => "development",
            StatusGql::Staging => "staging",
            StatusGql::Production => "production",
            StatusGql::Deprecated => "deprecated",
            StatusGql::Retired => "retired",
        }
    }
}

impl From<domain::LifecycleStatus> for StatusGql {
    fn from(s: domain::LifecycleStatus) -> Self {
        use domain::LifecycleStatus as L;
        match s {
            L::Development => StatusGql::Development,
            L::Staging => StatusGql::Staging,
            L::Production => StatusGql::Production,
            L::Deprecated => StatusGql::Deprecated,
            L::Retired => StatusGql::Retired,
        }
    }
}
