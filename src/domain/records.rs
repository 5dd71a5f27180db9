//! The registry's aggregates as the rest of the service sees them: parsed, whole, and
//! serialisable as the before/after snapshots of audit records.

use super::{
    Contacts, LifecycleStatus, ModelName, Provenance, Role, TeamName, Tier, TokenName, Version,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredModel {
    pub name: ModelName,
    pub owner_team: TeamName,
    pub tier: Tier,
    pub description: String,
    pub contacts: Contacts,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredVersion {
    pub model: ModelName,
    pub version: Version,
    pub status: LifecycleStatus,
    pub provenance: Provenance,
    /// The authorizing identity: the token that created the version.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub status_changed_at: DateTime<Utc>,
}

/// An API token's public facts; the secret is shown once at creation and never again.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub name: TokenName,
    pub role: Role,
    pub team: Option<TeamName>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The consumer the token acts for: its artifact downloads are observed usage.
    pub consumer: Option<super::ConsumerName>,
}
