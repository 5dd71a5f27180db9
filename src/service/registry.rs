//! The model registry: models, versions, and their lifecycle.

use super::ServiceError;
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::{
    Contacts, LifecycleStatus, ModelName, Provenance, ProvenanceInput, RegisteredModel,
    RegisteredVersion, Role, TeamName, Text, Tier, Version,
};
use crate::store::WriteTx;
use crate::store::inventory as inventory_repo;
use crate::store::registry::{self as repo, ModelId};
use chrono::{DateTime, Utc};
use serde::Serialize;

pub const MAX_DESCRIPTION: usize = 4_000;
pub const MAX_JUSTIFICATION: usize = 4_000;
pub const MAX_PAGE: u64 = 100;

/// A new model as a client sends it.
#[derive(Debug, Clone)]
pub struct ModelInput {
    pub name: String,
    pub owner_team: String,
    pub tier: String,
    pub description: String,
    pub contacts: Vec<String>,
}

/// Changes to a model; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ModelPatch {
    pub owner_team: Option<String>,
    pub tier: Option<String>,
    pub description: Option<String>,
    pub contacts: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct VersionInput {
    pub model: String,
    pub version: String,
    pub provenance: ProvenanceInput,
}

/// What a status change records after it: the version, and the override if there was one.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusChange<'a> {
    #[serde(flatten)]
    version: &'a RegisteredVersion,
    #[serde(skip_serializing_if = "Option::is_none")]
    justification: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    overridden_validations: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    superseded_by: Option<String>,
    /// The retirement that moved it (to `retired` by its kill switch, or back when the
    /// kill switch was lifted).
    #[serde(skip_serializing_if = "Option::is_none")]
    retirement: Option<crate::domain::RetirementId>,
    /// The request and the second person's approval, for a promotion a policy made wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    approval: Option<&'a super::Approval>,
    /// The emergency deployment that put it in production past failed validations.
    #[serde(skip_serializing_if = "Option::is_none")]
    emergency: Option<&'a crate::domain::EmergencyDeployment>,
}

/// On whose word a version moves.
pub(super) enum Authority {
    /// The transition rules alone.
    Ordinary,
    /// A waiting promotion request, approved by a second person.
    Approved(super::Approval),
    /// An emergency deployment, approved by a security actor who did not ask.
    Emergency(crate::domain::EmergencyDeployment),
}

impl Authority {
    fn approval(&self) -> Option<&super::Approval> {
        match self {
            Authority::Approved(a) => Some(a),
            _ => None,
        }
    }
}

impl super::Registry<'_> {
    /// Moves a version to `to` on behalf of retirement `retirement` (its kill switch
    /// retiring it, or a lifted kill switch putting it back), with the same audit record
    /// a `transitionVersion` writes. Inside the caller's transaction; no transition rule
    /// applies, since retirement owns these moves.
    pub(super) async fn move_for_retirement(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        (version_id, before): (repo::VersionId, &RegisteredVersion),
        to: LifecycleStatus,
        retirement: crate::domain::RetirementId,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        if before.status == to {
            return Ok(());
        }
        repo::set_status(tx.conn(), version_id, to, now).await?;
        let mut after = before.clone();
        after.status = to;
        after.status_changed_at = now;
        let change = StatusChange {
            version: &after,
            justification: None,
            overridden_validations: Vec::new(),
            superseded_by: None,
            retirement: Some(retirement),
            approval: None,
            emergency: None,
        };
        let entry = AuditEntry::new(
            actor.audit_identity(),
            Action::VersionStatusChanged,
            SubjectType::ModelVersion,
            format!("{}@{}", before.model, before.version),
        )
        .before(before)
        .after(&change);
        self.append_audit(tx, now, entry).await
    }
}

/// An owner acts on `model` only for its own team; other roles are someone else's to
/// judge (the caller has checked them).
pub(super) fn require_own_model(
    actor: &Actor,
    team: &TeamName,
    model: &ModelName,
) -> Result<(), ServiceError> {
    if actor.role == Role::Owner {
        require_team_owner(actor, team, &format!("model {model}"))?;
    }
    Ok(())
}

/// Owners act only for their own team.
pub(super) fn require_team_owner(
    actor: &Actor,
    team: &TeamName,
    what: &str,
) -> Result<(), ServiceError> {
    if actor.role == Role::Owner && actor.team.as_ref() == Some(team) {
        return Ok(());
    }
    Err(ServiceError::Forbidden(match (&actor.role, &actor.team) {
        (Role::Owner, Some(own)) => format!(
            "{what} belongs to team {team}; token {} is an owner for team {own}",
            actor.name
        ),
        (Role::Owner, None) => format!(
            "token {} has the owner role but no team; {what} belongs to team {team}",
            actor.name
        ),
        (role, _) => {
            format!("role {role} may not change {what}; an owner token of team {team} may")
        }
    }))
}

impl super::Registry<'_> {
    pub async fn create_model(
        &self,
        actor: &Actor,
        input: ModelInput,
    ) -> Result<RegisteredModel, ServiceError> {
        let name = ModelName::parse(&input.name)?;
        let owner_team = TeamName::parse(&input.owner_team)?;
        let tier = Tier::parse(&input.tier)?;
        let description = Text::parse("description", &input.description, MAX_DESCRIPTION)?;
        let contacts = Contacts::parse(&input.contacts)?;
        let acting = self.acting_on(actor, &name).await?;
        let actor = &acting;
        require_team_owner(actor, &owner_team, &format!("model {name}"))?;

        let now = self.now();
        let model = RegisteredModel {
            name,
            owner_team,
            tier,
            description: description.as_str().to_owned(),
            contacts,
            created_at: now,
            updated_at: now,
        };
        in_write_tx!(self, |tx| {
            if repo::find_model(tx.conn(), &model.name).await?.is_some() {
                return Err(ServiceError::Conflict(format!(
                    "model {} already exists",
                    model.name
                )));
            }
            let model_id = repo::insert_model(tx.conn(), &model).await?;
            // The inventory graph holds every model, so consumers can be attached to it.
            inventory_repo::record_change(
                tx.conn(),
                model.created_at,
                inventory_repo::Entity::Model,
                model_id.0,
            )
            .await?;
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::ModelCreated,
                SubjectType::Model,
                model.name.as_str(),
            )
            .after(&model);
            self.append_audit(tx, now, entry).await
        })?;
        self.inventory().after_inventory_commit().await;
        tracing::info!(model = %model.name, actor = %actor.name, "model created");
        Ok(model)
    }

    pub async fn update_model(
        &self,
        actor: &Actor,
        name: &str,
        patch: ModelPatch,
    ) -> Result<RegisteredModel, ServiceError> {
        let name = ModelName::parse(name)?;
        let owner_team = patch
            .owner_team
            .as_deref()
            .map(TeamName::parse)
            .transpose()?;
        let tier = patch.tier.as_deref().map(Tier::parse).transpose()?;
        let description = patch
            .description
            .as_deref()
            .map(|d| Text::parse("description", d, MAX_DESCRIPTION))
            .transpose()?;
        let contacts = patch.contacts.as_deref().map(Contacts::parse).transpose()?;
        let acting = self.acting_on(actor, &name).await?;
        let actor = &acting;

        in_write_tx!(self, |tx| {
            let (id, before) = self.model_or_not_found(tx.conn(), &name).await?;
            require_team_owner(actor, &before.owner_team, &format!("model {name}"))?;
            let now = self.now();
            let mut after = before.clone();
            if let Some(t) = &owner_team {
                after.owner_team = t.clone();
            }
            if let Some(t) = tier {
                after.tier = t;
            }
            if let Some(d) = &description {
                after.description = d.as_str().to_owned();
            }
            if let Some(c) = &contacts {
                after.contacts = c.clone();
            }
            if after == before {
                return Ok(before);
            }
            after.updated_at = now;
            repo::update_model(tx.conn(), id, &after).await?;
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::ModelUpdated,
                SubjectType::Model,
                name.as_str(),
            )
            .before(&before)
            .after(&after);
            self.append_audit(tx, now, entry).await?;
            Ok(after)
        })
    }

    pub async fn create_version(
        &self,
        actor: &Actor,
        input: VersionInput,
    ) -> Result<RegisteredVersion, ServiceError> {
        let model_name = ModelName::parse(&input.model)?;
        let version = Version::parse(&input.version)?;
        let provenance = Provenance::parse(input.provenance)?;
        let acting = self.acting_on(actor, &model_name).await?;
        let actor = &acting;

        let registered = in_write_tx!(self, |tx| {
            let (model_id, model) = self.model_or_not_found(tx.conn(), &model_name).await?;
            require_team_owner(actor, &model.owner_team, &format!("model {model_name}"))?;
            let policy = self.policy_in(tx.conn(), model_id, model.tier).await?;
            if policy.max_versions.is_some() {
                let kept = crate::store::policies::kept_versions(tx.conn(), model_id).await?;
                if let Some(why) = policy.refuses_new_version(kept) {
                    return Err(ServiceError::Policy(format!("model {model_name}: {why}")));
                }
            }
            if let Some(latest) = repo::latest_version(tx.conn(), model_id).await?
                && version <= latest
            {
                return Err(ServiceError::Conflict(format!(
                    "version {version} is not greater than {latest}, the latest version of {model_name}; a new version must be greater than every existing one"
                )));
            }
            let now = self.now();
            let registered = RegisteredVersion {
                model: model_name.clone(),
                version,
                status: LifecycleStatus::Development,
                provenance: provenance.clone(),
                created_by: actor.name.clone(),
                created_at: now,
                status_changed_at: now,
            };
            let version_id = repo::insert_version(tx.conn(), model_id, &registered).await?;
            inventory_repo::record_change(
                tx.conn(),
                registered.created_at,
                inventory_repo::Entity::Version,
                version_id.0,
            )
            .await?;
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::VersionCreated,
                SubjectType::ModelVersion,
                format!("{model_name}@{version}"),
            )
            .after(&registered);
            self.append_audit(tx, now, entry).await?;
            Ok(registered)
        })?;
        self.inventory().after_inventory_commit().await;
        tracing::info!(model = %model_name, %version, actor = %actor.name, "version created");
        Ok(registered)
    }

    /// Moves a version along its lifecycle. Promotion to production deprecates the
    /// model's current production version in the same transaction.
    pub async fn transition_version(
        &self,
        actor: &Actor,
        model: &str,
        version: &str,
        to: &str,
        justification: Option<&str>,
    ) -> Result<RegisteredVersion, ServiceError> {
        self.move_version(
            actor,
            (model, version, to),
            justification,
            Authority::Ordinary,
        )
        .await
    }

    /// A transition on `authority`: the transition rules alone, a promotion's approval
    /// by a second person (`approve_promotion`), or an emergency deployment's
    /// (`approve_emergency_deployment`).
    pub(super) async fn move_version(
        &self,
        actor: &Actor,
        (model, version, to): (&str, &str, &str),
        justification: Option<&str>,
        authority: Authority,
    ) -> Result<RegisteredVersion, ServiceError> {
        let model_name = ModelName::parse(model)?;
        let version = Version::parse(version)?;
        let to = LifecycleStatus::parse(to)?;
        let acting = self.acting_on(actor, &model_name).await?;
        let actor = &acting;
        let justification = justification
            .map(|j| Text::parse_required("justification", j, MAX_JUSTIFICATION))
            .transpose()?;
        let subject = format!("{model_name}@{version}");
        if to == LifecycleStatus::Retired {
            return Err(ServiceError::Forbidden(format!(
                "no role may move {subject} to retired with transitionVersion: retirement owns that \
                 status, so dependents are told first and the artifacts are erased after; \
                 use scheduleRetirement (with notice) or emergencyRetirement (security, at once)"
            )));
        }

        let (after, from, overridden) = in_write_tx!(self, |tx| {
            let (model_id, registered_model) =
                self.model_or_not_found(tx.conn(), &model_name).await?;
            let (version_id, before) =
                repo::find_version(tx.conn(), model_id, &model_name, version)
                    .await?
                    .ok_or_else(|| {
                        ServiceError::NotFound(format!(
                            "model {model_name} has no version {version}"
                        ))
                    })?;
            let emergency = match &authority {
                Authority::Emergency(d) => {
                    let approved = self.emergency_approval(tx, actor, version_id, d).await?;
                    Some(approved)
                }
                // An emergency's approval is its second person; others answer to the policy.
                _ if to == LifecycleStatus::Production => {
                    let policy = self
                        .policy_in(tx.conn(), model_id, registered_model.tier)
                        .await?;
                    let waiting =
                        crate::store::policies::promotion_request(tx.conn(), version_id).await?;
                    super::policies::check_approval(
                        &policy,
                        actor,
                        &subject,
                        (authority.approval(), waiting.as_ref()),
                    )?;
                    None
                }
                _ => None,
            };
            let attested = crate::store::validations::of_version(tx.conn(), version_id).await?;
            let overridden = super::transition_gate::judge_transition(
                actor,
                (&subject, &before, to),
                (&model_name, &registered_model.owner_team),
                (&attested, emergency.is_some()),
            )?;
            // Signed artifacts only, whoever asks: a security override covers failed
            // validations, never a missing or broken signature.
            if matches!(to, LifecycleStatus::Staging | LifecycleStatus::Production)
                && let Err(reason) = self.check_version_signature(tx.conn(), version_id).await?
            {
                return Err(ServiceError::Conflict(format!(
                    "{subject} cannot move to {to}: {reason}"
                )));
            }
            let now = self.now();
            if to == LifecycleStatus::Production {
                self.deprecate_production(tx, actor, (model_id, &model_name), version, now)
                    .await?;
            }
            repo::set_status(tx.conn(), version_id, to, now).await?;
            let mut after = before.clone();
            after.status = to;
            after.status_changed_at = now;
            let change = StatusChange {
                version: &after,
                justification: justification.as_ref().map(Text::as_str),
                overridden_validations: overridden.iter().map(String::as_str).collect(),
                superseded_by: None,
                retirement: None,
                approval: authority.approval(),
                emergency: emergency.as_ref(),
            };
            // A request waits for the version in staging only.
            crate::store::policies::clear_promotion_request(tx.conn(), version_id).await?;
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::VersionStatusChanged,
                SubjectType::ModelVersion,
                subject.clone(),
            )
            .before(&before)
            .after(&change);
            self.append_audit(tx, now, entry).await?;
            Ok((after, before.status, overridden))
        })?;
        if !overridden.is_empty() {
            tracing::warn!(version = %subject, actor = %actor.name, failed = ?overridden, "promotion despite failed validations, by override");
        }
        tracing::info!(version = %subject, %from, %to, actor = %actor.name, "version status changed");
        Ok(after)
    }

    /// Moves the model's production version(s) to deprecated: `version` replaces them.
    async fn deprecate_production(
        &self,
        tx: &mut crate::store::WriteTx,
        actor: &Actor,
        (model_id, model_name): (repo::ModelId, &ModelName),
        version: Version,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ServiceError> {
        let current =
            repo::versions_in_status(tx.conn(), model_id, model_name, LifecycleStatus::Production)
                .await?;
        for (id, current) in current {
            repo::set_status(tx.conn(), id, LifecycleStatus::Deprecated, now).await?;
            let mut deprecated = current.clone();
            deprecated.status = LifecycleStatus::Deprecated;
            deprecated.status_changed_at = now;
            let change = StatusChange {
                version: &deprecated,
                justification: None,
                overridden_validations: Vec::new(),
                superseded_by: Some(version.to_string()),
                retirement: None,
                approval: None,
                emergency: None,
            };
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::VersionStatusChanged,
                SubjectType::ModelVersion,
                format!("{model_name}@{}", current.version),
            )
            .before(&current)
            .after(&change);
            self.append_audit(tx, now, entry).await?;
        }
        Ok(())
    }

    pub async fn model(&self, name: &str) -> Result<Option<RegisteredModel>, ServiceError> {
        let name = ModelName::parse(name)?;
        Ok(repo::find_model(self.store().reader(), &name)
            .await?
            .map(|(_, m)| m))
    }

    pub async fn models(
        &self,
        team: Option<&str>,
        after: Option<&str>,
        first: u64,
    ) -> Result<Vec<RegisteredModel>, ServiceError> {
        let team = team.map(TeamName::parse).transpose()?;
        Ok(repo::list_models(
            self.store().reader(),
            team.as_ref(),
            after,
            first.min(MAX_PAGE),
        )
        .await?)
    }

    pub async fn version(
        &self,
        model: &str,
        version: &str,
    ) -> Result<Option<RegisteredVersion>, ServiceError> {
        let model_name = ModelName::parse(model)?;
        let version = Version::parse(version)?;
        let Some((id, _)) = repo::find_model(self.store().reader(), &model_name).await? else {
            return Ok(None);
        };
        Ok(
            repo::find_version(self.store().reader(), id, &model_name, version)
                .await?
                .map(|(_, v)| v),
        )
    }

    pub async fn versions(
        &self,
        model: &ModelName,
        after: Option<Version>,
        first: u64,
    ) -> Result<Vec<RegisteredVersion>, ServiceError> {
        let Some((id, _)) = repo::find_model(self.store().reader(), model).await? else {
            return Ok(Vec::new());
        };
        Ok(
            repo::list_versions(self.store().reader(), id, model, after, first.min(MAX_PAGE))
                .await?,
        )
    }

    pub(super) async fn version_or_not_found(
        &self,
        conn: &impl crate::store::Conn,
        (model_id, name): (ModelId, &ModelName),
        version: Version,
    ) -> Result<(crate::domain::VersionId, RegisteredVersion), ServiceError> {
        repo::find_version(conn, model_id, name, version)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("model {name} has no version {version}")))
    }

    pub(super) async fn model_or_not_found(
        &self,
        conn: &impl crate::store::Conn,
        name: &ModelName,
    ) -> Result<(ModelId, RegisteredModel), ServiceError> {
        repo::find_model(conn, name)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no model named {name}")))
    }
}
