//! Models and versions over GraphQL.

use super::guard::{ANY_ROLE, ModelGuard, RoleGuard, actor, services};
use super::page_size;
use super::vocabulary::{StatusGql, TierGql};
use crate::domain::{
    self, ProvenanceInput, RegisteredModel, RegisteredVersion, Role, ValidationResult,
};
use crate::service::{ModelInput, ModelPatch, VersionInput};
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

pub struct Model(RegisteredModel);

/// A registered model.
#[Object]
impl Model {
    async fn name(&self) -> &str {
        self.0.name.as_str()
    }
    async fn owner_team(&self) -> &str {
        self.0.owner_team.as_str()
    }
    async fn tier(&self) -> TierGql {
        self.0.tier.into()
    }
    async fn description(&self) -> &str {
        &self.0.description
    }
    async fn contacts(&self) -> Vec<&str> {
        self.0
            .contacts
            .as_slice()
            .iter()
            .map(|c| c.as_str())
            .collect()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The rules its promotions, declarations and versions keep: its tier's defaults
    /// with the model's own values over them.
    async fn policy(&self, ctx: &Context<'_>) -> Result<super::governance::ModelPolicyGql> {
        let (in_force, own) = services(ctx)?
            .registry()
            .model_policy(self.0.name.as_str())
            .await?;
        Ok(super::governance::ModelPolicyGql::new(in_force, own))
    }
    /// Versions in ascending semantic-version order. The cursor is the version string.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn versions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, ModelVersion>> {
        let limit = page_size(first)?;
        let after_version = after
            .as_deref()
            .map(domain::Version::parse)
            .transpose()
            .map_err(crate::service::ServiceError::from)?;
        let mut items = services(ctx)?
            .registry()
            .versions(&self.0.name, after_version, limit + 1)
            .await?;
        let has_next = items.len() as u64 > limit;
        items.truncate(limit as usize);
        let mut conn = Connection::new(after.is_some(), has_next);
        conn.edges.extend(
            items
                .into_iter()
                .map(|v| Edge::new(v.version.to_string(), ModelVersion(v))),
        );
        Ok(conn)
    }
}

pub struct ModelVersion(pub(super) RegisteredVersion);

/// One semantic version of a model, with its provenance and lifecycle status.
#[Object]
impl ModelVersion {
    async fn model(&self) -> &str {
        self.0.model.as_str()
    }
    async fn version(&self) -> String {
        self.0.version.to_string()
    }
    async fn status(&self) -> StatusGql {
        self.0.status.into()
    }
    async fn status_changed_at(&self) -> DateTime<Utc> {
        self.0.status_changed_at
    }
    /// The version's artifacts, by path (encrypted at rest; downloaded over REST).
    async fn artifacts(&self, ctx: &Context<'_>) -> Result<Vec<Artifact>> {
        let model = self.0.model.as_str();
        let version = self.0.version.to_string();
        Ok(services(ctx)?
            .artifacts()
            .list(model, &version)
            .await?
            .into_iter()
            .map(|a| Artifact {
                path: a.path,
                kind: a.kind.as_str().to_owned(),
                size_bytes: a.size_bytes,
                sha256: a.sha256,
                created_at: a.created_at,
                created_by: a.created_by,
            })
            .collect())
    }

    /// Validation results a validator signed over this version's artifacts (in-toto
    /// attestations, verified when attached), oldest first. The promotion gate reads
    /// them over the provenance's own results of the same name.
    async fn attested_validations(&self, ctx: &Context<'_>) -> Result<Vec<ValidationAttestation>> {
        Ok(services(ctx)?
            .registry()
            .attested_validations(self.0.model.as_str(), &self.0.version.to_string())
            .await?
            .into_iter()
            .map(ValidationAttestation::from)
            .collect())
    }

    /// The promotion to production waiting for a second person's approval, if any.
    async fn promotion_request(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<super::governance::PromotionRequestGql>> {
        Ok(services(ctx)?
            .registry()
            .promotion_request(&self.0.model, self.0.version)
            .await?
            .map(Into::into))
    }

    /// Its newest emergency deployment, if it ever had one.
    async fn emergency_deployment(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<super::governance::EmergencyDeploymentGql>> {
        Ok(services(ctx)?
            .registry()
            .emergency_deployment(&self.0.model, self.0.version)
            .await?
            .map(Into::into))
    }

    /// The signature bundle attached to the version, if any.
    async fn signature(&self, ctx: &Context<'_>) -> Result<Option<VersionSignature>> {
        let stored = services(ctx)?
            .registry()
            .signature(self.0.model.as_str(), &self.0.version.to_string())
            .await?;
        Ok(stored.map(|s| VersionSignature {
            signer: s.signer,
            bundle_sha256: s.bundle_sha256,
            uploaded_at: s.uploaded_at,
            uploaded_by: s.uploaded_by,
        }))
    }

    /// The retirement that retired this version, or the pending one that will; with its
    /// state, steps and certificate.
    async fn retirement(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<super::retirements::Retirement>> {
        Ok(services(ctx)?
            .decommission()
            .retirement_of_version(self.0.model.as_str(), &self.0.version.to_string())
            .await?
            .map(Into::into))
    }

    async fn provenance(&self) -> Provenance {
        let p = &self.0.provenance;
        Provenance {
            authorized_by: self.0.created_by.clone(),
            created_at: self.0.created_at,
            training_data: p
                .training_data
                .iter()
                .map(|d| DataChecksum {
                    source: d.source.clone(),
                    sha256: d.sha256.to_string(),
                })
                .collect(),
            validations: p
                .validations
                .iter()
                .map(|v| Validation {
                    name: v.name.clone(),
                    passed: v.passed,
                    score: v.score,
                    threshold: v.threshold,
                })
                .collect(),
            runtime_dependencies: p
                .runtime_dependencies
                .iter()
                .map(|d| Dependency {
                    package: d.package.clone(),
                    version: d.version.clone(),
                })
                .collect(),
        }
    }
}

/// A file of a version.
#[derive(SimpleObject)]
pub struct Artifact {
    path: String,
    /// weights, config, tokenizer or other.
    kind: String,
    size_bytes: u64,
    /// Hex SHA-256 of the plaintext.
    sha256: String,
    created_at: DateTime<Utc>,
    created_by: String,
}

/// A verified OpenSSF model-signing bundle attached to a version.
#[derive(SimpleObject)]
pub struct VersionSignature {
    /// The registered signer whose key verified it.
    signer: String,
    /// Hex SHA-256 of the bundle as uploaded.
    bundle_sha256: String,
    uploaded_at: DateTime<Utc>,
    uploaded_by: String,
}

/// Where a version came from (AISVS 3.1.3).
#[derive(SimpleObject)]
pub struct Provenance {
    /// The token that registered the version.
    authorized_by: String,
    created_at: DateTime<Utc>,
    training_data: Vec<DataChecksum>,
    validations: Vec<Validation>,
    runtime_dependencies: Vec<Dependency>,
}

#[derive(SimpleObject, InputObject)]
#[graphql(input_name = "DataChecksumInput")]
pub struct DataChecksum {
    source: String,
    /// 64 hex digits, optionally prefixed `sha256:`.
    sha256: String,
}

#[derive(SimpleObject, InputObject)]
#[graphql(input_name = "ValidationInput")]
pub struct Validation {
    name: String,
    passed: bool,
    score: Option<f64>,
    threshold: Option<f64>,
}

/// Validation results signed by a validator, verified against the version's artifacts.
#[derive(SimpleObject)]
pub struct ValidationAttestation {
    signer: String,
    suite: String,
    results: Vec<Validation>,
    /// SHA-256 of the envelope as attached.
    envelope_sha256: String,
    attached_at: DateTime<Utc>,
    attached_by: String,
}

impl From<crate::domain::AttestedValidation> for ValidationAttestation {
    fn from(a: crate::domain::AttestedValidation) -> Self {
        Self {
            signer: a.signer,
            suite: a.suite,
            results: a
                .results
                .into_iter()
                .map(|v| Validation {
                    name: v.name,
                    passed: v.passed,
                    score: v.score,
                    threshold: v.threshold,
                })
                .collect(),
            envelope_sha256: a.envelope_sha256,
            attached_at: a.attached_at,
            attached_by: a.attached_by,
        }
    }
}

#[derive(SimpleObject, InputObject)]
#[graphql(input_name = "DependencyInput")]
pub struct Dependency {
    package: String,
    version: String,
}

#[derive(InputObject)]
pub struct CreateModelInput {
    name: String,
    owner_team: String,
    tier: TierGql,
    #[graphql(default)]
    description: String,
    #[graphql(default)]
    contacts: Vec<String>,
}

#[derive(InputObject)]
pub struct UpdateModelInput {
    owner_team: Option<String>,
    tier: Option<TierGql>,
    description: Option<String>,
    contacts: Option<Vec<String>>,
}

#[derive(InputObject)]
pub struct CreateVersionInput {
    model: String,
    /// Strict MAJOR.MINOR.PATCH, greater than every existing version of the model.
    version: String,
    #[graphql(default)]
    training_data: Vec<DataChecksum>,
    #[graphql(default)]
    validations: Vec<Validation>,
    #[graphql(default)]
    runtime_dependencies: Vec<Dependency>,
}

#[derive(Default)]
pub struct RegistryQuery;

#[Object]
impl RegistryQuery {
    /// Models ordered by name, optionally of one team. The cursor is the model name.
    #[graphql(
        guard = "RoleGuard::new(ANY_ROLE)",
        complexity = "first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn models(
        &self,
        ctx: &Context<'_>,
        team: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Model>> {
        let limit = page_size(first)?;
        let mut items = services(ctx)?
            .registry()
            .models(team.as_deref(), after.as_deref(), limit + 1)
            .await?;
        let has_next = items.len() as u64 > limit;
        items.truncate(limit as usize);
        let mut conn = Connection::new(after.is_some(), has_next);
        conn.edges.extend(
            items
                .into_iter()
                .map(|m| Edge::new(m.name.to_string(), Model(m))),
        );
        Ok(conn)
    }

    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn model(&self, ctx: &Context<'_>, name: String) -> Result<Option<Model>> {
        Ok(services(ctx)?.registry().model(&name).await?.map(Model))
    }

    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn model_version(
        &self,
        ctx: &Context<'_>,
        model: String,
        version: String,
    ) -> Result<Option<ModelVersion>> {
        Ok(services(ctx)?
            .registry()
            .version(&model, &version)
            .await?
            .map(ModelVersion))
    }

    /// Who is asking: the authenticated token's name, role and team.
    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn me(&self, ctx: &Context<'_>) -> Result<Me> {
        let a = actor(ctx)?;
        Ok(Me {
            name: a.name.clone(),
            role: a.role.as_str().to_owned(),
            team: a.team.as_ref().map(|t| t.to_string()),
        })
    }
}

#[derive(SimpleObject)]
pub struct Me {
    name: String,
    role: String,
    team: Option<String>,
}

#[derive(Default)]
pub struct RegistryMutation;

#[Object]
impl RegistryMutation {
    /// Registers a model for the caller's team.
    #[graphql(guard = "ModelGuard::new(&[Role::Owner], &input.name)")]
    async fn create_model(&self, ctx: &Context<'_>, input: CreateModelInput) -> Result<Model> {
        let input = ModelInput {
            name: input.name,
            owner_team: input.owner_team,
            tier: input.tier.as_str().to_owned(),
            description: input.description,
            contacts: input.contacts,
        };
        Ok(Model(
            services(ctx)?
                .registry()
                .create_model(actor(ctx)?, input)
                .await?,
        ))
    }

    #[graphql(guard = "ModelGuard::new(&[Role::Owner], &name)")]
    async fn update_model(
        &self,
        ctx: &Context<'_>,
        name: String,
        input: UpdateModelInput,
    ) -> Result<Model> {
        let patch = ModelPatch {
            owner_team: input.owner_team,
            tier: input.tier.map(|t| t.as_str().to_owned()),
            description: input.description,
            contacts: input.contacts,
        };
        Ok(Model(
            services(ctx)?
                .registry()
                .update_model(actor(ctx)?, &name, patch)
                .await?,
        ))
    }

    /// Attaches validation results signed by a validator (a DSSE envelope holding an
    /// in-toto statement whose subjects are exactly the version's artifacts by SHA-256,
    /// predicate `https://sunset.invalid/validation-results/v1` with `suite` and
    /// `results`). Verified first; a refused one keeps nothing. The model's team's
    /// owners, security or admin.
    #[graphql(guard = "ModelGuard::new(&[Role::Owner, Role::Security, Role::Admin], &model)")]
    async fn attest_validation(
        &self,
        ctx: &Context<'_>,
        model: String,
        version: String,
        envelope: String,
    ) -> Result<ValidationAttestation> {
        Ok(services(ctx)?
            .registry()
            .attest_validation(actor(ctx)?, &model, &version, &envelope)
            .await?
            .into())
    }

    /// Registers a new version, in development, with its provenance.
    #[graphql(guard = "ModelGuard::new(&[Role::Owner], &input.model)")]
    async fn create_version(
        &self,
        ctx: &Context<'_>,
        input: CreateVersionInput,
    ) -> Result<ModelVersion> {
        let provenance = ProvenanceInput {
            training_data: input
                .training_data
                .into_iter()
                .map(|d| (d.source, d.sha256))
                .collect(),
            validations: input
                .validations
                .into_iter()
                .map(|v| ValidationResult {
                    name: v.name,
                    passed: v.passed,
                    score: v.score,
                    threshold: v.threshold,
                })
                .collect(),
            runtime_dependencies: input
                .runtime_dependencies
                .into_iter()
                .map(|d| (d.package, d.version))
                .collect(),
        };
        let input = VersionInput {
            model: input.model,
            version: input.version,
            provenance,
        };
        Ok(ModelVersion(
            services(ctx)?
                .registry()
                .create_version(actor(ctx)?, input)
                .await?,
        ))
    }

    /// Moves production back to the version that was production before, after verifying
    /// its signature and every artifact's digest again; the current one is deprecated.
    #[graphql(guard = "ModelGuard::new(crate::service::ROLLBACK_ROLES, &model)")]
    async fn rollback_model(
        &self,
        ctx: &Context<'_>,
        model: String,
        reason: String,
    ) -> Result<ModelVersion> {
        Ok(ModelVersion(
            services(ctx)?
                .registry()
                .rollback_model(actor(ctx)?, &model, &reason)
                .await?,
        ))
    }

    /// Moves a version along its lifecycle. Promotion to production needs every
    /// validation passed (past failed ones only by an emergency deployment) and, under a
    /// policy's productionApproval, a second person (approvePromotion); it deprecates the
    /// model's previous production version. A justification given is recorded.
    #[graphql(guard = "ModelGuard::new(&[Role::Owner, Role::Governance, Role::Security], &model)")]
    async fn transition_version(
        &self,
        ctx: &Context<'_>,
        model: String,
        version: String,
        to: StatusGql,
        justification: Option<String>,
    ) -> Result<ModelVersion> {
        let v = services(ctx)?
            .registry()
            .transition_version(
                actor(ctx)?,
                &model,
                &version,
                to.as_str(),
                justification.as_deref(),
            )
            .await?;
        Ok(ModelVersion(v))
    }
}
