//! API tokens: creation, revocation, and authentication of a presented secret.

use super::{ServiceError, require_admin};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::{Actor, TokenSecret, hash_token, hashes_equal};
use crate::domain::{Role, TeamName, TokenInfo, TokenName};
use crate::store::tokens::{self as repo, NewToken};

impl super::Admin<'_> {
    /// Creates a token and returns its secret, which is not stored and cannot be shown again.
    /// Names are never reused, revoked ones included, so an audit identity always means one token.
    pub async fn create_token(
        &self,
        actor: &Actor,
        name: &str,
        role: &str,
        team: Option<&str>,
        consumer: Option<&str>,
    ) -> Result<(TokenInfo, TokenSecret), ServiceError> {
        let name = TokenName::parse(name)?;
        let consumer = consumer
            .map(crate::domain::ConsumerName::parse)
            .transpose()?;
        let role = Role::parse(role)?;
        let team = team.map(TeamName::parse).transpose()?;
        require_admin(actor, "create tokens")?;
        if role == Role::Owner && team.is_none() {
            return Err(ServiceError::Invalid(crate::domain::ParseError::new(
                "team",
                "is required for an owner token: an owner manages one team's models",
            )));
        }
        let secret = TokenSecret::generate();
        let token_hash = secret.hash();
        let info = in_write_tx!(self, |tx| {
            if repo::find_by_name(tx.conn(), &name).await?.is_some() {
                return Err(ServiceError::Conflict(format!(
                    "a token named {name} exists or existed; token names are never reused"
                )));
            }
            let consumer_id = match &consumer {
                Some(c) => Some(
                    crate::store::inventory::find_consumer(tx.conn(), c)
                        .await?
                        .ok_or_else(|| ServiceError::NotFound(format!("no consumer named {c}")))?
                        .0,
                ),
                None => None,
            };
            let now = self.now();
            let info = repo::insert(
                tx.conn(),
                NewToken {
                    name: &name,
                    role,
                    team: team.as_ref(),
                    token_hash: &token_hash,
                    created_at: now,
                    created_by: &actor.name,
                    consumer_id,
                },
            )
            .await?;
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::TokenCreated,
                SubjectType::ApiToken,
                name.as_str(),
            )
            .after(&info);
            self.append_audit(tx, now, entry).await?;
            Ok(info)
        })?;
        tracing::info!(token = %name, %role, actor = %actor.name, "token created");
        Ok((info, secret))
    }

    pub async fn revoke_token(&self, actor: &Actor, name: &str) -> Result<TokenInfo, ServiceError> {
        let name = TokenName::parse(name)?;
        require_admin(actor, "revoke tokens")?;
        let after = in_write_tx!(self, |tx| {
            let before = repo::find_by_name(tx.conn(), &name)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("no token named {name}")))?;
            if before.revoked_at.is_some() {
                return Err(ServiceError::Conflict(format!(
                    "token {name} is already revoked"
                )));
            }
            let now = self.now();
            repo::revoke(tx.conn(), &name, now).await?;
            let after = TokenInfo {
                revoked_at: Some(now),
                ..before.clone()
            };
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::TokenRevoked,
                SubjectType::ApiToken,
                name.as_str(),
            )
            .before(&before)
            .after(&after);
            self.append_audit(tx, now, entry).await?;
            Ok(after)
        })?;
        tracing::info!(token = %name, actor = %actor.name, "token revoked");
        Ok(after)
    }

    pub async fn tokens(&self, actor: &Actor) -> Result<Vec<TokenInfo>, ServiceError> {
        require_admin(actor, "list tokens")?;
        Ok(repo::list(self.store().reader()).await?)
    }

    /// The actor behind a presented secret, or `None` for an unknown or revoked token.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<Actor>, ServiceError> {
        // Bound the work an unauthenticated caller can cause.
        if presented.len() > 256 {
            return Ok(None);
        }
        let hash = hash_token(presented);
        let found = repo::find_active_by_hash(self.store().reader(), &hash).await?;
        Ok(found.and_then(|(info, stored)| {
            hashes_equal(&stored, &hash).then(|| Actor::from_token(&info))
        }))
    }
}
