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

        let registered = in_write_tx!(self, |tx| {
            let (model_id, model) = self.model_or_not_found(tx.conn(), &model_name).await?;
            require_team_owner(actor, &model.owner_team, &format!("model {model_name}"))?;
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
        let model_name = ModelName::parse(model)?;
        let version = Version::parse(version)?;
        let to = LifecycleStatus::parse(to)?;
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
            let attested = crate::store::validations::of_version(tx.conn(), version_id).await?;
            let overridden = judge_transition(
                actor,
                (&subject, &before, to),
                (&model_name, &registered_model.owner_team),
                (&attested, justification.is_some()),
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
            };
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

/// The rule for `from → to`, or a conflict naming where the version can go instead.
fn transition_rule(
    from: LifecycleStatus,
    to: LifecycleStatus,
    subject: &str,
) -> Result<crate::domain::TransitionRule, ServiceError> {
    from.rule_to(to).ok_or_else(|| {
        let allowed: Vec<&str> = from
            .successors()
            .into_iter()
            .map(LifecycleStatus::as_str)
            .collect();
        ServiceError::Conflict(format!(
            "{subject} is {from} and cannot move to {to}; from {from} it can move to: {}",
            if allowed.is_empty() {
                "nothing (final)".to_owned()
            } else {
                allowed.join(", ")
            }
        ))
    })
}

/// Whether `actor` may make this move, and whether it does so by override (a role the
/// rule lets pass failed validations, with a justification). Failed validations refuse
/// anyone else.
fn authorise_transition(
    actor: &Actor,
    rule: &crate::domain::TransitionRule,
    (subject, from, to): (&str, LifecycleStatus, LifecycleStatus),
    (model, owner_team): (&ModelName, &crate::domain::TeamName),
    failed: &[String],
    justified: bool,
) -> Result<bool, ServiceError> {
    if rule.override_role == Some(actor.role) {
        if !justified {
            return Err(ServiceError::Forbidden(format!(
                "a {} override of {subject} to {to} needs a written justification",
                actor.role
            )));
        }
        return Ok(true);
    }
    if !actor.has_role(rule.roles) {
        let roles: Vec<&str> = rule.roles.iter().map(|r| r.as_str()).collect();
        return Err(ServiceError::Forbidden(format!(
            "role {} may not move {subject} from {from} to {to}; {} may",
            actor.role,
            roles.join(" or ")
        )));
    }
    if actor.role == Role::Owner {
        require_team_owner(actor, owner_team, &format!("model {model}"))?;
    }
    if !failed.is_empty() {
        return Err(ServiceError::Conflict(format!(
            "{subject} cannot be promoted to {to}: validations failed: {}; every validation must pass, or a security-role actor may override with a justification",
            failed.join(", ")
        )));
    }
    Ok(false)
}

/// Whether `actor` may move `before` to `to` under the transition rules: the failed
/// validations the move overrides (empty unless a security override), or why not.
fn judge_transition(
    actor: &Actor,
    (subject, before, to): (&str, &RegisteredVersion, LifecycleStatus),
    owner: (&ModelName, &crate::domain::TeamName),
    (attested, justified): (&[crate::store::validations::AttestedValidation], bool),
) -> Result<Vec<String>, ServiceError> {
    let from = before.status;
    let rule = transition_rule(from, to, subject)?;
    // Signed results stand over the version's own claims of the same name.
    let failed: Vec<String> = if rule.needs_passed_validations {
        super::validations::gate_results(&before.provenance.validations, attested)
            .into_iter()
            .filter(|(_, passed)| !passed)
            .map(|(name, _)| name)
            .collect()
    } else {
        Vec::new()
    };
    let is_override =
        authorise_transition(actor, &rule, (subject, from, to), owner, &failed, justified)?;
    Ok(if is_override { failed } else { Vec::new() })
}
