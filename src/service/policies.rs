//! Model policies (AISVS 3.2, the registry design's policies): each tier's defaults
//! with a model's own values over them, set by governance; and promotions to production
//! that a policy makes wait for a second person's approval.

use super::{ServiceError, authorise};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::{
    Environment, LifecycleStatus, ModelId, ModelName, ModelPolicy, ParseError, PolicyOverrides,
    RegisteredVersion, Role, Text, Tier, Version,
};
use crate::store::policies as repo;
pub use crate::store::policies::PromotionRequest;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// A model's own policy values as a client sends them; each unset one follows the tier.
#[derive(Debug, Clone, Default)]
pub struct PolicyInput {
    pub production_approval: Option<bool>,
    pub environments: Option<Vec<String>>,
    pub max_versions: Option<u32>,
    pub retention_days: Option<u32>,
    pub quiet_days: Option<u32>,
    /// Always on; `false` is refused.
    pub encryption_required: Option<bool>,
    /// Always on; `false` is refused.
    pub signing_required: Option<bool>,
}

/// A promotion's request and its approval, recorded with the status change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub reference: String,
    pub approved_by: String,
    pub approved_at: DateTime<Utc>,
}

/// What a policy change records: the model's own values and the rules in force, before
/// and after.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct PolicyState<'a> {
    own: &'a PolicyOverrides,
    in_force: &'a ModelPolicy,
}

pub const MAX_REFERENCE: usize = 200;
const POLICY_SETTERS: &[Role] = &[Role::Governance];
const PROMOTIONS: &str = "promotions to production";
const REQUESTERS: &[Role] = &[Role::Owner, Role::Security];

/// Refuses a promotion to production the policy makes wait when it comes without its
/// approval, or with one that is not a second person's or not the waiting request's.
pub(super) fn check_approval(
    policy: &ModelPolicy,
    actor: &Actor,
    subject: &str,
    (approval, waiting): (Option<&Approval>, Option<&PromotionRequest>),
) -> Result<(), ServiceError> {
    let Some(approval) = approval else {
        if policy.production_approval {
            return Err(ServiceError::Policy(format!(
                "rule productionApproval: promotion of {subject} to production needs the approval of a second person with a change reference; ask with requestPromotion, and another person approves with approvePromotion"
            )));
        }
        return Ok(());
    };
    let Some(waiting) = waiting
        .filter(|w| w.requested_by == approval.requested_by && w.reference == approval.reference)
    else {
        return Err(ServiceError::Conflict(format!(
            "the promotion request of {subject} changed or was withdrawn meanwhile; approve it again"
        )));
    };
    if waiting.requested_by == actor.name {
        return Err(ServiceError::Forbidden(format!(
            "{} requested the promotion of {subject}; a second person approves it",
            actor.name
        )));
    }
    Ok(())
}

impl super::Registry<'_> {
    /// The rules in force for a model: its own values over its tier's defaults.
    pub(super) async fn policy_in(
        &self,
        conn: &impl crate::store::Conn,
        model: ModelId,
        tier: Tier,
    ) -> Result<ModelPolicy, ServiceError> {
        let own = repo::overrides(conn, model).await?;
        Ok(own.over(&self.inner.policy.of(tier)))
    }

    /// A model's policy: the rules in force and its own values among them.
    pub async fn model_policy(
        &self,
        model: &str,
    ) -> Result<(ModelPolicy, PolicyOverrides), ServiceError> {
        let name = ModelName::parse(model)?;
        let db = self.store().reader();
        let (id, m) = self.model_or_not_found(db, &name).await?;
        let own = repo::overrides(db, id).await?;
        Ok((own.over(&self.inner.policy.of(m.tier)), own))
    }

    /// Sets a model's own policy values (governance): the values given replace the
    /// model's own, and the rest follow its tier again. Audited, before and after.
    pub async fn set_model_policy(
        &self,
        actor: &Actor,
        model: &str,
        input: PolicyInput,
    ) -> Result<ModelPolicy, ServiceError> {
        let name = ModelName::parse(model)?;
        for (field, on) in [
            ("encryptionRequired", input.encryption_required),
            ("signingRequired", input.signing_required),
        ] {
            if on == Some(false) {
                return Err(ParseError::new(
                    field,
                    "cannot be turned off: sunset encrypts every artifact with a key of its own and serves no version without a verified signature, for every model",
                )
                .into());
            }
        }
        let own = PolicyOverrides {
            production_approval: input.production_approval,
            environments: input.environments,
            max_versions: input.max_versions,
            retention_days: input.retention_days,
            quiet_days: input.quiet_days,
        }
        .checked()?;
        let acting = self.acting_on(actor, &name).await?;
        authorise::require(&acting, POLICY_SETTERS, "set model policies")?;
        let in_force = in_write_tx!(self, |tx| {
            let (id, m) = self.model_or_not_found(tx.conn(), &name).await?;
            let before_own = repo::overrides(tx.conn(), id).await?;
            let defaults = self.inner.policy.of(m.tier);
            let now = self.now();
            repo::set_overrides(tx.conn(), id, &own, (now, &acting.name)).await?;
            let in_force = own.over(&defaults);
            let entry = AuditEntry::new(
                acting.audit_identity(),
                Action::PolicyChanged,
                SubjectType::Model,
                name.as_str(),
            )
            .before(&PolicyState {
                own: &before_own,
                in_force: &before_own.over(&defaults),
            })
            .after(&PolicyState {
                own: &own,
                in_force: &in_force,
            });
            self.append_audit(tx, now, entry).await?;
            Ok(in_force)
        })?;
        tracing::info!(model = %name, actor = %actor.name, "model policy set");
        Ok(in_force)
    }

    /// Asks for a version in staging to be promoted to production, with a change
    /// reference; another person approves it (`approve_promotion`). The model's owners
    /// or security ask. Asking again replaces the request.
    pub async fn request_promotion(
        &self,
        actor: &Actor,
        model: &str,
        version: &str,
        reference: &str,
    ) -> Result<PromotionRequest, ServiceError> {
        let name = ModelName::parse(model)?;
        let version = Version::parse(version)?;
        let reference = Text::parse("reference", reference, MAX_REFERENCE)?;
        if reference.as_str().is_empty() {
            return Err(ParseError::new(
                "reference",
                "is empty; name the change ticket or other record that authorises the promotion",
            )
            .into());
        }
        let acting = self.acting_on(actor, &name).await?;
        authorise::require(&acting, REQUESTERS, "request promotions")?;
        let subject = format!("{name}@{version}");
        let request = in_write_tx!(self, |tx| {
            let (model_id, m) = self.model_or_not_found(tx.conn(), &name).await?;
            super::registry::require_own_model(&acting, &m.owner_team, &name)?;
            let (version_id, v) = self
                .staged_version(tx.conn(), (model_id, &name), version, PROMOTIONS)
                .await?;
            let now = self.now();
            let request = PromotionRequest {
                reference: reference.as_str().to_owned(),
                requested_by: acting.name.clone(),
                requested_at: now,
            };
            repo::put_promotion_request(tx.conn(), version_id, &request).await?;
            let entry = AuditEntry::new(
                acting.audit_identity(),
                Action::PromotionRequested,
                SubjectType::ModelVersion,
                subject.clone(),
            )
            .before(&v)
            .after(&request);
            self.append_audit(tx, now, entry).await?;
            Ok(request)
        })?;
        tracing::info!(version = %subject, actor = %actor.name, "promotion requested");
        Ok(request)
    }

    /// Withdraws a waiting promotion request: its requester, or governance.
    pub async fn withdraw_promotion(
        &self,
        actor: &Actor,
        model: &str,
        version: &str,
    ) -> Result<PromotionRequest, ServiceError> {
        let name = ModelName::parse(model)?;
        let version = Version::parse(version)?;
        let acting = self.acting_on(actor, &name).await?;
        let subject = format!("{name}@{version}");
        in_write_tx!(self, |tx| {
            let (model_id, _) = self.model_or_not_found(tx.conn(), &name).await?;
            let (version_id, _) = self
                .staged_version(tx.conn(), (model_id, &name), version, PROMOTIONS)
                .await?;
            let waiting = repo::promotion_request(tx.conn(), version_id)
                .await?
                .ok_or_else(|| no_request(&subject))?;
            if waiting.requested_by != acting.name && acting.role != Role::Governance {
                return Err(ServiceError::Forbidden(format!(
                    "{} asked for the promotion of {subject}; they or governance withdraw it",
                    waiting.requested_by
                )));
            }
            repo::clear_promotion_request(tx.conn(), version_id).await?;
            let entry = AuditEntry::new(
                acting.audit_identity(),
                Action::PromotionWithdrawn,
                SubjectType::ModelVersion,
                subject.clone(),
            )
            .before(&waiting);
            self.append_audit(tx, self.now(), entry).await?;
            Ok(waiting)
        })
    }

    /// Approves a waiting promotion and makes it: a second person who may make the
    /// move (an owner of the model's team). The status change records the request and
    /// the approval.
    pub async fn approve_promotion(
        &self,
        actor: &Actor,
        model: &str,
        version: &str,
        justification: Option<&str>,
    ) -> Result<RegisteredVersion, ServiceError> {
        let name = ModelName::parse(model)?;
        let parsed = Version::parse(version)?;
        let subject = format!("{name}@{parsed}");
        let db = self.store().reader();
        let (model_id, _) = self.model_or_not_found(db, &name).await?;
        let (version_id, _) = self
            .staged_version(db, (model_id, &name), parsed, PROMOTIONS)
            .await?;
        let waiting = repo::promotion_request(db, version_id)
            .await?
            .ok_or_else(|| no_request(&subject))?;
        let approval = Approval {
            requested_by: waiting.requested_by,
            requested_at: waiting.requested_at,
            reference: waiting.reference,
            approved_by: actor.name.clone(),
            approved_at: self.now(),
        };
        self.move_version(
            actor,
            (model, version, LifecycleStatus::Production.as_str()),
            justification,
            super::registry::Authority::Approved(approval),
        )
        .await
    }

    /// The environments each of `models` lets consumers declare use from, for those
    /// that restrict them: read once for a group of registration webhooks (one query,
    /// two when a tier restricts environments by default).
    pub(crate) async fn environment_rules(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        models: &[ModelId],
    ) -> Result<HashMap<ModelId, Vec<Environment>>, ServiceError> {
        if models.is_empty() {
            return Ok(HashMap::new());
        }
        let mut own: HashMap<ModelId, PolicyOverrides> =
            repo::overrides_of(db, models).await?.into_iter().collect();
        let tiers_restrict = Tier::ALL
            .iter()
            .any(|t| !self.inner.policy.of(*t).environments.is_empty());
        let tiers: Vec<(ModelId, Tier)> = if tiers_restrict {
            repo::tiers_of(db, models).await?
        } else {
            // No tier restricts: only models with their own rules can; their tier's
            // default is no restriction, whichever it is.
            own.keys().map(|&id| (id, Tier::Standard)).collect()
        };
        Ok(tiers
            .into_iter()
            .map(|(id, tier)| {
                let rules = own.remove(&id).unwrap_or_default();
                (id, rules.over(&self.inner.policy.of(tier)).environments)
            })
            .filter(|(_, envs)| !envs.is_empty())
            .collect())
    }

    /// The promotion waiting for approval of a version, if one waits.
    pub async fn promotion_request(
        &self,
        model: &ModelName,
        version: Version,
    ) -> Result<Option<PromotionRequest>, ServiceError> {
        let Some(id) = self.version_id(model, version).await? else {
            return Ok(None);
        };
        Ok(repo::promotion_request(self.store().reader(), id).await?)
    }

    /// `version_or_not_found`, in staging: where promotions and emergency deployments
    /// start (`purpose` completes the refusal).
    pub(super) async fn staged_version(
        &self,
        conn: &impl crate::store::Conn,
        model: (ModelId, &ModelName),
        version: Version,
        purpose: &str,
    ) -> Result<(crate::domain::VersionId, RegisteredVersion), ServiceError> {
        let (id, v) = self.version_or_not_found(conn, model, version).await?;
        if v.status != LifecycleStatus::Staging {
            return Err(ServiceError::Conflict(format!(
                "{}@{version} is {}; {purpose} start from staging",
                model.1, v.status
            )));
        }
        Ok((id, v))
    }

    /// The row id of `model@version`, if it exists.
    pub(super) async fn version_id(
        &self,
        model: &ModelName,
        version: Version,
    ) -> Result<Option<crate::domain::VersionId>, ServiceError> {
        let db = self.store().reader();
        let Some((model_id, _)) = crate::store::registry::find_model(db, model).await? else {
            return Ok(None);
        };
        Ok(
            crate::store::registry::find_version(db, model_id, model, version)
                .await?
                .map(|(id, _)| id),
        )
    }
}

fn no_request(subject: &str) -> ServiceError {
    ServiceError::NotFound(format!(
        "no promotion of {subject} waits for approval; its owners ask with requestPromotion"
    ))
}
