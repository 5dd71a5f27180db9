//! `modelAsOf`: a model as the audit trail says it was at a past instant.

use super::guard::{actor, services};
use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

/// A model at a past instant, rebuilt from authenticated audit records alone.
#[derive(SimpleObject)]
pub struct PastModel {
    at: DateTime<Utc>,
    /// Whether the model was registered at that instant.
    registered: bool,
    owner_team: Option<String>,
    tier: Option<String>,
    description: Option<String>,
    contacts: Vec<String>,
    versions: Vec<PastVersion>,
    /// Consumers declared or observed using the model then.
    consumers: Vec<PastConsumer>,
    /// The sequence numbers of the audit records the answer rests on.
    rests_on: Vec<i64>,
}

#[derive(SimpleObject)]
pub struct PastVersion {
    version: String,
    /// The lifecycle status, in lowercase as recorded.
    status: String,
    status_changed_at: Option<DateTime<Utc>>,
    created_by: String,
    /// The provenance as recorded (JSON).
    provenance: String,
    artifacts: Vec<PastArtifact>,
    signature: Option<PastSignature>,
}

#[derive(SimpleObject)]
pub struct PastArtifact {
    path: String,
    sha256: String,
    size_bytes: u64,
    /// Crypto-erased by a retirement by then.
    erased: bool,
}

#[derive(SimpleObject)]
pub struct PastSignature {
    signer: String,
    bundle_sha256: String,
    revoked: bool,
}

#[derive(SimpleObject)]
pub struct PastConsumer {
    consumer: String,
    kind: String,
    /// `model@range` or `model@version`, as recorded.
    target: String,
}

impl From<crate::service::ModelAsOf> for PastModel {
    fn from(m: crate::service::ModelAsOf) -> Self {
        let fact = |k: &str| {
            m.model
                .as_ref()
                .and_then(|v| v.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let contacts = m
            .model
            .as_ref()
            .and_then(|v| v.get("contacts"))
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            at: m.at,
            registered: m.model.is_some(),
            owner_team: fact("ownerTeam"),
            tier: fact("tier"),
            description: fact("description"),
            contacts,
            versions: m.versions.into_iter().map(PastVersion::from).collect(),
            consumers: m
                .consumers
                .into_iter()
                .map(|c| PastConsumer {
                    consumer: c.consumer,
                    kind: c.kind,
                    target: c.target,
                })
                .collect(),
            rests_on: m.rests_on,
        }
    }
}

impl From<crate::service::VersionAsOf> for PastVersion {
    fn from(v: crate::service::VersionAsOf) -> Self {
        Self {
            version: v.version,
            status: v.status,
            status_changed_at: v.status_changed_at,
            created_by: v.created_by,
            provenance: v.provenance.to_string(),
            artifacts: v
                .artifacts
                .into_iter()
                .map(|a| PastArtifact {
                    path: a.path,
                    sha256: a.sha256,
                    size_bytes: a.size_bytes,
                    erased: a.erased,
                })
                .collect(),
            signature: v.signature.map(|s| PastSignature {
                signer: s.signer,
                bundle_sha256: s.bundle_sha256,
                revoked: s.revoked,
            }),
        }
    }
}

#[derive(Default)]
pub struct AsOfQuery;

#[Object]
impl AsOfQuery {
    /// The model `name` as it was at `at`: its facts, versions and statuses, artifacts
    /// (and which were erased), signatures (and which were revoked), provenance, and the
    /// consumers declared or observed using it, rebuilt from authenticated audit records,
    /// with the records it rests on. Auditors and governance; recorded as a read.
    #[graphql(complexity = 50)]
    async fn model_as_of(
        &self,
        ctx: &Context<'_>,
        name: String,
        at: DateTime<Utc>,
    ) -> Result<PastModel> {
        Ok(services(ctx)?
            .audit()
            .model_as_of(actor(ctx)?, &name, at)
            .await?
            .into())
    }
}
