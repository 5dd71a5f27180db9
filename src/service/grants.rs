//! Grants of a role on a model or a family of models, and the role a token acts with
//! on a model (`Services::acting_on`). See `domain::grant` for how the deciding grant
//! is chosen.

use super::{ServiceError, authorise};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::{Actor, ActorKind};
use crate::domain::{
    Grant, GrantId, GrantPattern, Grantee, ModelName, ParseError, Role, TeamName, TokenName,
};
use crate::store::grants as repo;
use chrono::{DateTime, Utc};

/// A grant as a client asks for it: exactly one of `token` and `team`.
#[derive(Debug, Clone)]
pub struct GrantInput {
    pub model: String,
    pub role: String,
    pub token: Option<String>,
    pub team: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Who may list every grant rather than a model's.
const OVERSEERS: &[Role] = &[Role::Admin, Role::Auditor, Role::Governance, Role::Security];

impl super::Admin<'_> {
    /// Grants a role on models. Admins grant any role but admin on any pattern; a
    /// model's owners grant reader or owner on that model by name, nothing wider.
    pub async fn grant_role(
        &self,
        actor: &Actor,
        input: GrantInput,
    ) -> Result<Grant, ServiceError> {
        let pattern = GrantPattern::parse(&input.model)?;
        let role = crate::domain::grantable(Role::parse(&input.role)?)?;
        let grantee = match (input.token.as_deref(), input.team.as_deref()) {
            (Some(t), None) => Grantee::Token(TokenName::parse(t)?),
            (None, Some(t)) => Grantee::Team(TeamName::parse(t)?),
            _ => {
                return Err(
                    ParseError::new("grantee", "name exactly one of token and team").into(),
                );
            }
        };
        let now = self.now();
        if input.expires_at.is_some_and(|at| at <= now) {
            return Err(ParseError::new("expiresAt", "is not in the future").into());
        }
        self.may_grant(actor, &pattern, role).await?;
        let grant = in_write_tx!(self, |tx| {
            if let Grantee::Token(name) = &grantee {
                let found = crate::store::tokens::find_by_name(tx.conn(), name).await?;
                if found.is_none_or(|t| t.revoked_at.is_some()) {
                    return Err(ServiceError::NotFound(format!(
                        "no active token named {name}"
                    )));
                }
            }
            let mut grant = Grant {
                id: GrantId(0),
                pattern: pattern.clone(),
                grantee: grantee.clone(),
                role,
                expires_at: input.expires_at,
                created_at: now,
                created_by: actor.name.clone(),
            };
            grant.id = repo::insert(tx.conn(), &grant).await?;
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::GrantCreated,
                SubjectType::Grant,
                pattern.to_string(),
            )
            .after(&grant);
            self.append_audit(tx, now, entry).await?;
            Ok(grant)
        })?;
        tracing::info!(grant = %grant.id, pattern = %grant.pattern, grantee = %grant.grantee, role = %grant.role, actor = %actor.name, "role granted");
        Ok(grant)
    }

    /// Revokes a grant; who may make it may revoke it.
    pub async fn revoke_grant(&self, actor: &Actor, id: &str) -> Result<Grant, ServiceError> {
        let id: GrantId = id
            .parse()
            .map_err(|_| ParseError::new("id", "is not a grant id"))?;
        let revoked = in_write_tx!(self, |tx| {
            let grant = repo::find(tx.conn(), id)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("no grant {id}")))?;
            self.may_grant(actor, &grant.pattern, grant.role).await?;
            repo::delete(tx.conn(), id).await?;
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::GrantRevoked,
                SubjectType::Grant,
                grant.pattern.to_string(),
            )
            .before(&grant);
            self.append_audit(tx, self.now(), entry).await?;
            Ok(grant)
        })?;
        tracing::info!(grant = %id, actor = %actor.name, "grant revoked");
        Ok(revoked)
    }

    /// The grants that reach `model` (every grant without one: admins, auditors,
    /// governance and security only), unexpired unless `with_expired`.
    pub async fn grants(
        &self,
        actor: &Actor,
        model: Option<&str>,
        with_expired: bool,
    ) -> Result<Vec<Grant>, ServiceError> {
        let model = model.map(ModelName::parse).transpose()?;
        if model.is_none() {
            authorise::require(
                actor,
                OVERSEERS,
                "list every grant (name a model to see its own)",
            )?;
        }
        let all = repo::list(self.store().reader(), self.now(), with_expired).await?;
        Ok(match model {
            Some(m) => all.into_iter().filter(|g| g.pattern.matches(&m)).collect(),
            None => all,
        })
    }

    /// Admins grant on anything; owners (by role or by grant) of a model grant reader
    /// or owner on it by name.
    async fn may_grant(
        &self,
        actor: &Actor,
        pattern: &GrantPattern,
        role: Role,
    ) -> Result<(), ServiceError> {
        if actor.role == Role::Admin {
            return Ok(());
        }
        let GrantPattern::Exact(model) = pattern else {
            return Err(ServiceError::Forbidden(format!(
                "only admins grant on a family of models ({pattern}); a model's owners grant on it by name"
            )));
        };
        let acting = self.acting_on(actor, model).await?;
        let (_, found) = self
            .registry()
            .model_or_not_found(self.store().reader(), model)
            .await?;
        super::registry::require_team_owner(&acting, &found.owner_team, &format!("model {model}"))?;
        if !matches!(role, Role::Reader | Role::Owner) {
            return Err(ServiceError::Forbidden(format!(
                "owners grant reader or owner on their models; {role} is granted by an admin"
            )));
        }
        Ok(())
    }
}

impl super::Services {
    /// `actor` as it acts on `model`: with the role of the most specific grant it holds
    /// there (an owner's grant makes it an owner of the model's team), or as it is. The
    /// CLI's operator and the service's own jobs hold no grants.
    pub async fn acting_on(&self, actor: &Actor, model: &ModelName) -> Result<Actor, ServiceError> {
        if actor.kind != ActorKind::Token {
            return Ok(actor.clone());
        }
        let Ok(token) = TokenName::parse(&actor.name) else {
            return Ok(actor.clone());
        };
        let db = self.store().reader();
        let held = repo::held_by(db, &token, actor.team.as_ref()).await?;
        let Some(grant) = Grant::deciding(&held, model, (&token, actor.team.as_ref()), self.now())
        else {
            return Ok(actor.clone());
        };
        let mut acting = actor.clone();
        acting.role = grant.role;
        if grant.role == Role::Owner
            && let Some((_, m)) = crate::store::registry::find_model(db, model).await?
        {
            acting.team = Some(m.owner_team);
        }
        Ok(acting)
    }

    /// `actor` as it acts on the model of retirement `id` (as it is when there is no
    /// such retirement: the use case answers that).
    pub async fn acting_on_retirement(
        &self,
        actor: &Actor,
        id: crate::domain::RetirementId,
    ) -> Result<Actor, ServiceError> {
        if actor.kind != ActorKind::Token {
            return Ok(actor.clone());
        }
        match crate::store::retirements::find(self.store().reader(), id).await? {
            Some(r) => self.acting_on(actor, &r.model).await,
            None => Ok(actor.clone()),
        }
    }
}
