//! Emergency deployments (AISVS 3.2.4): the one way past the validation gate. The
//! model's owners (or security) ask, with a risk assessment and how long it may run; a
//! security actor who did not ask approves, and the version goes to production in the
//! same transaction. When the time is up, the tick of `retirement.check_schedule` settles
//! it: validations passed by then (its own or signed ones), it stays; otherwise the model
//! is rolled back with `rollbackModel`'s checks. The model's contacts are told by email
//! when it starts and when it ends.

use super::registry::Authority;
use super::{ServiceError, authorise};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::{
    DeploymentState, EmergencyDeployment, LifecycleStatus, ModelName, RegisteredVersion, Role,
    Text, Version, VersionId,
};
use crate::store::WriteTx;
use crate::store::emergency_deployments as repo;

const REQUESTERS: &[Role] = &[Role::Owner, Role::Security];
const APPROVERS: &[Role] = &[Role::Security];
pub const MAX_RISK_ASSESSMENT: usize = 4_000;

impl super::Registry<'_> {
    /// Asks to put a version in staging in production past its validation gate, for
    /// `valid_hours`. The model's owners or security ask; one open request per version.
    pub async fn request_emergency_deployment(
        &self,
        actor: &Actor,
        (model, version): (&str, &str),
        risk_assessment: &str,
        valid_hours: u32,
    ) -> Result<EmergencyDeployment, ServiceError> {
        let name = ModelName::parse(model)?;
        let version = Version::parse(version)?;
        let risk = Text::parse_required("riskAssessment", risk_assessment, MAX_RISK_ASSESSMENT)?;
        let valid_hours = crate::domain::valid_hours(valid_hours)?;
        let acting = self.acting_on(actor, &name).await?;
        authorise::require(&acting, REQUESTERS, "request emergency deployments")?;
        let subject = format!("{name}@{version}");
        let asked = in_write_tx!(self, |tx| {
            let (model_id, m) = self.model_or_not_found(tx.conn(), &name).await?;
            super::registry::require_own_model(&acting, &m.owner_team, &name)?;
            let (version_id, _) = self
                .staged_version(
                    tx.conn(),
                    (model_id, &name),
                    version,
                    "emergency deployments",
                )
                .await?;
            if let Some(open) = repo::latest(tx.conn(), version_id).await?
                && open.state.is_open()
            {
                return Err(ServiceError::Conflict(format!(
                    "{open} is {} already",
                    open.state
                )));
            }
            let now = self.now();
            let mut asked = EmergencyDeployment {
                id: 0,
                model: name.clone(),
                version,
                risk_assessment: risk.as_str().to_owned(),
                requested_by: acting.name.clone(),
                requested_at: now,
                valid_hours,
                approved_by: None,
                approved_at: None,
                expires_at: None,
                state: DeploymentState::Requested,
                settled_at: None,
                outcome: None,
            };
            asked.id = repo::insert(tx.conn(), version_id, &asked).await?;
            self.record_deployment(
                tx,
                &acting,
                Action::EmergencyDeploymentRequested,
                (None, &asked),
            )
            .await?;
            Ok(asked)
        })?;
        tracing::warn!(version = %subject, actor = %actor.name, "emergency deployment requested");
        Ok(asked)
    }

    /// Approves a requested emergency deployment and puts the version in production:
    /// a security actor who did not ask. The version's signature must verify all the
    /// same; failed validations are recorded as overridden.
    pub async fn approve_emergency_deployment(
        &self,
        actor: &Actor,
        (model, version): (&str, &str),
    ) -> Result<RegisteredVersion, ServiceError> {
        let name = ModelName::parse(model)?;
        let parsed = Version::parse(version)?;
        let db = self.store().reader();
        let (model_id, _) = self.model_or_not_found(db, &name).await?;
        let (version_id, _) = crate::store::registry::find_version(db, model_id, &name, parsed)
            .await?
            .ok_or_else(|| no_version(&name, parsed))?;
        let asked = repo::latest(db, version_id)
            .await?
            .filter(|d| d.state == DeploymentState::Requested)
            .ok_or_else(|| no_request(&name, parsed))?;
        let after = self
            .move_version(
                actor,
                (model, version, LifecycleStatus::Production.as_str()),
                None,
                Authority::Emergency(asked),
            )
            .await?;
        self.tell_emergency_contacts().await;
        Ok(after)
    }

    /// Withdraws a requested emergency deployment: its requester or security.
    pub async fn withdraw_emergency_deployment(
        &self,
        actor: &Actor,
        (model, version): (&str, &str),
    ) -> Result<EmergencyDeployment, ServiceError> {
        let name = ModelName::parse(model)?;
        let version = Version::parse(version)?;
        let acting = self.acting_on(actor, &name).await?;
        in_write_tx!(self, |tx| {
            let (model_id, _) = self.model_or_not_found(tx.conn(), &name).await?;
            let (version_id, _) = self
                .version_or_not_found(tx.conn(), (model_id, &name), version)
                .await?;
            let asked = repo::latest(tx.conn(), version_id)
                .await?
                .filter(|d| d.state == DeploymentState::Requested)
                .ok_or_else(|| no_request(&name, version))?;
            if asked.requested_by != acting.name && acting.role != Role::Security {
                return Err(ServiceError::Forbidden(format!(
                    "{} asked for {asked}; they or security withdraw it",
                    asked.requested_by
                )));
            }
            let now = self.now();
            let withdrawn = asked.settled(
                DeploymentState::Withdrawn,
                format!("withdrawn by {}", acting.name),
                now,
            );
            repo::update(tx.conn(), &withdrawn).await?;
            self.record_deployment(
                tx,
                &acting,
                Action::EmergencyDeploymentSettled,
                (Some(&asked), &withdrawn),
            )
            .await?;
            Ok(withdrawn)
        })
    }

    /// The version's newest emergency deployment, if it ever had one.
    pub async fn emergency_deployment(
        &self,
        model: &ModelName,
        version: Version,
    ) -> Result<Option<EmergencyDeployment>, ServiceError> {
        let Some(id) = self.version_id(model, version).await? else {
            return Ok(None);
        };
        Ok(repo::latest(self.store().reader(), id).await?)
    }

    /// Inside the promotion's transaction: the approval of `asked`, by `actor`, still
    /// requested and the version's newest; written, and returned for the status change.
    pub(super) async fn emergency_approval(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        version_id: VersionId,
        asked: &EmergencyDeployment,
    ) -> Result<EmergencyDeployment, ServiceError> {
        authorise::require(actor, APPROVERS, "approve emergency deployments")?;
        let current = repo::latest(tx.conn(), version_id).await?;
        if current
            .as_ref()
            .is_none_or(|c| c.id != asked.id || c.state != DeploymentState::Requested)
        {
            return Err(ServiceError::Conflict(format!(
                "{asked} changed or was withdrawn meanwhile; look again"
            )));
        }
        if asked.requested_by == actor.name {
            return Err(ServiceError::Forbidden(format!(
                "{} asked for {asked}; a security actor who did not ask approves it",
                actor.name
            )));
        }
        let approved = asked.approved(&actor.name, self.now());
        repo::update(tx.conn(), &approved).await?;
        Ok(approved)
    }

    pub(super) async fn record_deployment(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        action: Action,
        (before, after): (Option<&EmergencyDeployment>, &EmergencyDeployment),
    ) -> Result<(), ServiceError> {
        let mut entry = AuditEntry::new(
            actor.audit_identity(),
            action,
            SubjectType::ModelVersion,
            format!("{}@{}", after.model, after.version),
        )
        .after(after);
        if let Some(before) = before {
            entry = entry.before(before);
        }
        self.append_audit(tx, self.now(), entry).await
    }
}

fn no_version(name: &ModelName, version: Version) -> ServiceError {
    ServiceError::NotFound(format!("model {name} has no version {version}"))
}

fn no_request(name: &ModelName, version: Version) -> ServiceError {
    ServiceError::NotFound(format!(
        "no emergency deployment of {name}@{version} waits for approval; its owners ask with requestEmergencyDeployment"
    ))
}

impl super::Registry<'_> {
    /// Settles the emergency deployments whose time is up (run on each claimed tick of
    /// `retirement.check_schedule`): validated when every validation passed by then
    /// (signed results over the version's own), otherwise rolled back with
    /// `rollbackModel`'s checks; superseded when another version already replaced it.
    /// Returns how many were settled.
    pub async fn settle_emergency_deployments(&self) -> Result<usize, ServiceError> {
        let due = repo::due(self.store().reader(), self.now()).await?;
        let mut settled = 0;
        for (version_id, d) in due {
            match self.settle_one(version_id, &d).await {
                Ok(()) => settled += 1,
                Err(e) => {
                    tracing::error!(error = %e, deployment = d.id, "could not settle an emergency deployment")
                }
            }
        }
        if settled > 0 {
            self.tell_emergency_contacts().await;
        }
        Ok(settled)
    }

    async fn settle_one(
        &self,
        version_id: VersionId,
        d: &EmergencyDeployment,
    ) -> Result<(), ServiceError> {
        let system = Actor::system();
        let db = self.store().reader();
        let Some((_, model, v)) = crate::store::registry::version_by_id(db, version_id).await?
        else {
            return Ok(());
        };
        let (state, outcome) = if v.status != LifecycleStatus::Production {
            (
                DeploymentState::Superseded,
                format!("the version was {} before its time was up", v.status),
            )
        } else {
            let attested = crate::store::validations::of_version(db, version_id).await?;
            let failed: Vec<String> =
                super::validations::gate_results(&v.provenance.validations, &attested)
                    .into_iter()
                    .filter(|(_, passed)| !passed)
                    .map(|(name, _)| name)
                    .collect();
            if failed.is_empty() {
                (
                    DeploymentState::Validated,
                    "every validation passed in time".to_owned(),
                )
            } else {
                let reason = format!(
                    "{d} ran out of time without passed validations ({})",
                    failed.join(", ")
                );
                match self
                    .rollback_model(&system, model.name.as_str(), &reason)
                    .await
                {
                    Ok(back) => (
                        DeploymentState::RolledBack,
                        format!("{reason}; rolled back to {}", back.version),
                    ),
                    Err(e) => (
                        DeploymentState::RollbackRefused,
                        format!("{reason}; the rollback was refused: {e}"),
                    ),
                }
            }
        };
        in_write_tx!(self, |tx| {
            let current = repo::latest(tx.conn(), version_id).await?;
            // Settled meanwhile (by an operator's call on another replica): nothing to do.
            if current.is_none_or(|c| c.id != d.id || c.state != DeploymentState::Active) {
                return Ok(());
            }
            let settled = d.settled(state, outcome.clone(), self.now());
            repo::update(tx.conn(), &settled).await?;
            self.record_deployment(
                tx,
                &system,
                Action::EmergencyDeploymentSettled,
                (Some(d), &settled),
            )
            .await
        })?;
        tracing::warn!(deployment = d.id, state = %state, %outcome, "emergency deployment settled");
        Ok(())
    }

    /// Emails the model's contacts of each approved emergency deployment whose state
    /// they have not been told yet; one that cannot be sent is tried again on the next
    /// tick. Without SMTP, or without contacts, nothing is sent (and the log says so).
    pub(crate) async fn tell_emergency_contacts(&self) {
        if let Err(e) = self.tell_contacts().await {
            tracing::warn!(error = %e, "could not tell contacts of emergency deployments; tried again on the next tick");
        }
    }

    async fn tell_contacts(&self) -> Result<(), ServiceError> {
        let db = self.store().reader();
        let retirements = self.retirements();
        let email = retirements.email_channel()?;
        for (_, d) in repo::untold(db).await? {
            let (_, model) = self.model_or_not_found(db, &d.model).await?;
            let contacts: Vec<&str> = model
                .contacts
                .as_slice()
                .iter()
                .map(|c| c.as_str())
                .collect();
            match (email, contacts.is_empty()) {
                (Some(mailer), false) => {
                    let to = notifiers::email::Recipients::parse(contacts.iter().copied())
                        .map_err(ServiceError::internal)?;
                    let id = format!("emergency-deployment-{}-{}", d.id, d.state);
                    let outcome = mailer.send_plain(&id, (&subject(&d), &body(&d)), &to).await;
                    if !outcome.is_delivered() {
                        tracing::warn!(
                            deployment = d.id,
                            ?outcome,
                            "emergency deployment mail not delivered; tried again on the next tick"
                        );
                        continue;
                    }
                }
                _ => tracing::warn!(
                    deployment = d.id,
                    "no email to send an emergency deployment's notice with (no SMTP or no contacts)"
                ),
            }
            in_write_tx!(self, |tx| {
                Ok(repo::notified(tx.conn(), d.id, d.state).await?)
            })?;
        }
        Ok(())
    }
}

fn subject(d: &EmergencyDeployment) -> String {
    match d.state {
        DeploymentState::Active => format!(
            "[sunset] {}@{} is in production by emergency deployment",
            d.model, d.version
        ),
        state => format!(
            "[sunset] emergency deployment of {}@{} ended: {}",
            d.model,
            d.version,
            state.as_str().replace('_', " ")
        ),
    }
}

fn body(d: &EmergencyDeployment) -> String {
    let at = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    };
    format!(
        "{d}\n\nState: {}\nAsked by: {}\nApproved by: {}\nIn production until: {}\n{}\nRisk assessment:\n{}\n\nIts validations must pass by then (the version's own results, or signed ones with attestValidation), or the model is rolled back to its previous production version.\n",
        d.state,
        d.requested_by,
        d.approved_by.as_deref().unwrap_or(""),
        at(d.expires_at),
        d.outcome
            .as_deref()
            .map(|o| format!("Outcome: {o}\n"))
            .unwrap_or_default(),
        d.risk_assessment,
    )
}
