//! Grants, model policies and promotions waiting for approval, over GraphQL.

use super::guard::{ANY_ROLE, ModelGuard, RoleGuard, actor, services};
use super::registry::ModelVersion;
use super::tokens::RoleGql;
use crate::domain::{EmergencyDeployment, Grant, Grantee, ModelPolicy, PolicyOverrides, Role};
use crate::service::{GrantInput, PolicyInput, PromotionRequest};
use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

/// A role held on one model (`fraud-scorer`), a family (`fraud-*`) or every model (`*`),
/// by one token or every token of a team. On a model the most specific grant decides
/// the role; without one, the token's own role stands.
#[derive(SimpleObject)]
#[graphql(name = "Grant")]
pub struct GrantGql {
    id: ID,
    /// `name`, `prefix*` or `*`.
    model: String,
    role: String,
    /// The token holding it, when granted to one token.
    token: Option<String>,
    /// The team whose tokens hold it, when granted to a team.
    team: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    created_by: String,
}

impl From<Grant> for GrantGql {
    fn from(g: Grant) -> Self {
        let (token, team) = match g.grantee {
            Grantee::Token(t) => (Some(t.to_string()), None),
            Grantee::Team(t) => (None, Some(t.to_string())),
        };
        Self {
            id: ID(g.id.to_string()),
            model: g.pattern.to_string(),
            role: g.role.to_string(),
            token,
            team,
            expires_at: g.expires_at,
            created_at: g.created_at,
            created_by: g.created_by,
        }
    }
}

/// A grant to make: name exactly one of `token` and `team`.
#[derive(InputObject)]
pub struct GrantRoleInput {
    /// A model's name, a prefix followed by `*`, or `*`.
    model: String,
    role: RoleGql,
    token: Option<String>,
    team: Option<String>,
    /// When the grant stops counting; unset: until revoked.
    expires_at: Option<DateTime<Utc>>,
}

/// The rules in force for a model, and which of them are its own.
#[derive(SimpleObject)]
#[graphql(name = "ModelPolicy")]
pub struct ModelPolicyGql {
    /// Promotion to production needs a second person's approval with a change reference.
    production_approval: bool,
    /// The environments consumers may declare use from; empty: any.
    environments: Vec<String>,
    /// The most versions kept (every status but retired); null: no limit.
    max_versions: Option<u32>,
    /// Days a deprecated version is kept before retention proposes its retirement.
    retention_days: Option<u32>,
    /// When set, retention schedules a due version's retirement itself once no consumer
    /// has been seen for this many days; null: retention only proposes.
    quiet_days: Option<u32>,
    /// Always true: every artifact is encrypted with a key of its own.
    encryption_required: bool,
    /// Always true: no version is served or promoted without a verified signature.
    signing_required: bool,
    /// The rules set on this model rather than by its tier.
    own_rules: Vec<String>,
}

impl ModelPolicyGql {
    pub fn new(p: ModelPolicy, own: PolicyOverrides) -> Self {
        let own_rules = own.own_rules().into_iter().map(str::to_owned).collect();
        Self {
            production_approval: p.production_approval,
            environments: p.environments.iter().map(|e| e.to_string()).collect(),
            max_versions: p.max_versions,
            retention_days: p.retention_days,
            quiet_days: p.quiet_days,
            encryption_required: true,
            signing_required: true,
            own_rules,
        }
    }
}

/// A model's own policy values; each left out follows the model's tier.
#[derive(InputObject)]
pub struct ModelPolicyInput {
    production_approval: Option<bool>,
    environments: Option<Vec<String>>,
    max_versions: Option<u32>,
    retention_days: Option<u32>,
    quiet_days: Option<u32>,
    /// Always on; false is refused.
    encryption_required: Option<bool>,
    /// Always on; false is refused.
    signing_required: Option<bool>,
}

/// A promotion to production waiting for a second person's approval.
#[derive(SimpleObject)]
#[graphql(name = "PromotionRequest")]
pub struct PromotionRequestGql {
    /// The change ticket or other reference the requester gave.
    reference: String,
    requested_by: String,
    requested_at: DateTime<Utc>,
}

impl From<PromotionRequest> for PromotionRequestGql {
    fn from(r: PromotionRequest) -> Self {
        Self {
            reference: r.reference,
            requested_by: r.requested_by,
            requested_at: r.requested_at,
        }
    }
}

/// An emergency deployment: a version put in production past its validation gate, on
/// a risk assessment, for a limited time.
#[derive(SimpleObject)]
#[graphql(name = "EmergencyDeployment")]
pub struct EmergencyDeploymentGql {
    id: ID,
    model: String,
    version: String,
    /// REQUESTED, ACTIVE, VALIDATED, ROLLED_BACK, ROLLBACK_REFUSED, SUPERSEDED or
    /// WITHDRAWN.
    state: String,
    risk_assessment: String,
    requested_by: String,
    requested_at: DateTime<Utc>,
    valid_hours: u32,
    approved_by: Option<String>,
    approved_at: Option<DateTime<Utc>>,
    /// When its validations must have passed, or it is rolled back.
    expires_at: Option<DateTime<Utc>>,
    settled_at: Option<DateTime<Utc>>,
    outcome: Option<String>,
}

impl From<EmergencyDeployment> for EmergencyDeploymentGql {
    fn from(d: EmergencyDeployment) -> Self {
        Self {
            id: ID(d.id.to_string()),
            model: d.model.to_string(),
            version: d.version.to_string(),
            state: d.state.as_str().to_ascii_uppercase(),
            risk_assessment: d.risk_assessment,
            requested_by: d.requested_by,
            requested_at: d.requested_at,
            valid_hours: d.valid_hours,
            approved_by: d.approved_by,
            approved_at: d.approved_at,
            expires_at: d.expires_at,
            settled_at: d.settled_at,
            outcome: d.outcome,
        }
    }
}

#[derive(Default)]
pub struct GovernanceQuery;

#[Object]
impl GovernanceQuery {
    /// The grants that reach `model` (unexpired unless `withExpired`). Without a model,
    /// every grant: admins, auditors, governance and security only.
    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn grants(
        &self,
        ctx: &Context<'_>,
        model: Option<String>,
        #[graphql(default = false)] with_expired: bool,
    ) -> Result<Vec<GrantGql>> {
        Ok(services(ctx)?
            .admin()
            .grants(actor(ctx)?, model.as_deref(), with_expired)
            .await?
            .into_iter()
            .map(GrantGql::from)
            .collect())
    }
}

#[derive(Default)]
pub struct GovernanceMutation;

const OWNERS: &[Role] = &[Role::Owner, Role::Admin];
const GOVERNANCE: &[Role] = &[Role::Governance];
const REQUESTERS: &[Role] = &[Role::Owner, Role::Security];
const WITHDRAWERS: &[Role] = &[Role::Owner, Role::Security, Role::Governance];
const APPROVERS: &[Role] = &[Role::Owner];
const SECURITY: &[Role] = &[Role::Security];

#[Object]
impl GovernanceMutation {
    /// Grants a role on models. Admins grant any role but admin on any pattern; a
    /// model's owners grant reader or owner on it by name. Audited.
    #[graphql(guard = "ModelGuard::new(OWNERS, &input.model)")]
    async fn grant_role(&self, ctx: &Context<'_>, input: GrantRoleInput) -> Result<GrantGql> {
        let grant = services(ctx)?
            .admin()
            .grant_role(
                actor(ctx)?,
                GrantInput {
                    model: input.model,
                    role: Role::from(input.role).as_str().to_owned(),
                    token: input.token,
                    team: input.team,
                    expires_at: input.expires_at,
                },
            )
            .await?;
        Ok(grant.into())
    }

    /// Revokes a grant: whoever may make it. Audited.
    #[graphql(guard = "RoleGuard::new(OWNERS)")]
    async fn revoke_grant(&self, ctx: &Context<'_>, id: ID) -> Result<GrantGql> {
        let grant = services(ctx)?
            .admin()
            .revoke_grant(actor(ctx)?, id.as_str())
            .await?;
        Ok(grant.into())
    }

    /// Sets a model's own policy values (governance); those left out follow its tier.
    /// Encryption and signing are always required: turning either off is refused.
    #[graphql(guard = "ModelGuard::new(GOVERNANCE, &model)")]
    async fn set_model_policy(
        &self,
        ctx: &Context<'_>,
        model: String,
        input: ModelPolicyInput,
    ) -> Result<ModelPolicyGql> {
        let services = services(ctx)?;
        services
            .registry()
            .set_model_policy(
                actor(ctx)?,
                &model,
                PolicyInput {
                    production_approval: input.production_approval,
                    environments: input.environments,
                    max_versions: input.max_versions,
                    retention_days: input.retention_days,
                    quiet_days: input.quiet_days,
                    encryption_required: input.encryption_required,
                    signing_required: input.signing_required,
                },
            )
            .await?;
        let (in_force, own) = services.registry().model_policy(&model).await?;
        Ok(ModelPolicyGql::new(in_force, own))
    }

    /// Asks for a version in staging to go to production, with a change reference
    /// (`reference`); a second person approves it with `approvePromotion`. The model's
    /// owners or security ask; asking again replaces the request. Audited.
    #[graphql(guard = "ModelGuard::new(REQUESTERS, &model)")]
    async fn request_promotion(
        &self,
        ctx: &Context<'_>,
        model: String,
        version: String,
        reference: String,
    ) -> Result<PromotionRequestGql> {
        Ok(services(ctx)?
            .registry()
            .request_promotion(actor(ctx)?, &model, &version, &reference)
            .await?
            .into())
    }

    /// Withdraws a waiting promotion request: its requester, or governance. Audited.
    #[graphql(guard = "ModelGuard::new(WITHDRAWERS, &model)")]
    async fn withdraw_promotion(
        &self,
        ctx: &Context<'_>,
        model: String,
        version: String,
    ) -> Result<PromotionRequestGql> {
        Ok(services(ctx)?
            .registry()
            .withdraw_promotion(actor(ctx)?, &model, &version)
            .await?
            .into())
    }

    /// Approves a waiting promotion and makes it: an owner of the model's team other than
    /// the requester. Audited with the request.
    #[graphql(guard = "ModelGuard::new(APPROVERS, &model)")]
    async fn approve_promotion(
        &self,
        ctx: &Context<'_>,
        model: String,
        version: String,
        justification: Option<String>,
    ) -> Result<ModelVersion> {
        let v = services(ctx)?
            .registry()
            .approve_promotion(actor(ctx)?, &model, &version, justification.as_deref())
            .await?;
        Ok(ModelVersion(v))
    }

    /// Asks to put a version in staging in production past its validation gate, on a
    /// written risk assessment, for `validHours` (1 to 168): the model's owners or
    /// security. Audited.
    #[graphql(guard = "ModelGuard::new(REQUESTERS, &model)")]
    async fn request_emergency_deployment(
        &self,
        ctx: &Context<'_>,
        model: String,
        version: String,
        risk_assessment: String,
        valid_hours: u32,
    ) -> Result<EmergencyDeploymentGql> {
        Ok(services(ctx)?
            .registry()
            .request_emergency_deployment(
                actor(ctx)?,
                (&model, &version),
                &risk_assessment,
                valid_hours,
            )
            .await?
            .into())
    }

    /// Approves an emergency deployment and puts the version in production: a security
    /// actor who did not ask. Its signature must verify; failed validations are recorded
    /// as overridden. When its time is up it must have passed them, or the model is
    /// rolled back. The model's contacts are told.
    #[graphql(guard = "ModelGuard::new(SECURITY, &model)")]
    async fn approve_emergency_deployment(
        &self,
        ctx: &Context<'_>,
        model: String,
        version: String,
    ) -> Result<ModelVersion> {
        let v = services(ctx)?
            .registry()
            .approve_emergency_deployment(actor(ctx)?, (&model, &version))
            .await?;
        Ok(ModelVersion(v))
    }

    /// Withdraws a requested emergency deployment: its requester, or security. Audited.
    #[graphql(guard = "ModelGuard::new(REQUESTERS, &model)")]
    async fn withdraw_emergency_deployment(
        &self,
        ctx: &Context<'_>,
        model: String,
        version: String,
    ) -> Result<EmergencyDeploymentGql> {
        Ok(services(ctx)?
            .registry()
            .withdraw_emergency_deployment(actor(ctx)?, (&model, &version))
            .await?
            .into())
    }
}
