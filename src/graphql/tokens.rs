//! API tokens over GraphQL: admin only.

use super::guard::{RoleGuard, actor, services};
use crate::domain::{Role, TokenInfo};
use async_graphql::{Context, Enum, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "Role")]
pub enum RoleGql {
    Reader,
    Owner,
    Governance,
    Security,
    Auditor,
    Admin,
}

impl From<RoleGql> for Role {
    fn from(r: RoleGql) -> Self {
        match r {
            RoleGql::Reader => Role::Reader,
            RoleGql::Owner => Role::Owner,
            RoleGql::Governance => Role::Governance,
            RoleGql::Security => Role::Security,
            RoleGql::Auditor => Role::Auditor,
            RoleGql::Admin => Role::Admin,
        }
    }
}

#[derive(SimpleObject)]
pub struct ApiToken {
    name: String,
    role: String,
    team: Option<String>,
    created_at: DateTime<Utc>,
    created_by: String,
    revoked_at: Option<DateTime<Utc>>,
    /// The consumer this token acts for; its downloads count as observed usage.
    consumer: Option<String>,
}

impl From<TokenInfo> for ApiToken {
    fn from(t: TokenInfo) -> Self {
        Self {
            name: t.name.to_string(),
            role: t.role.to_string(),
            team: t.team.map(|t| t.to_string()),
            created_at: t.created_at,
            created_by: t.created_by,
            revoked_at: t.revoked_at,
            consumer: t.consumer.map(|c| c.to_string()),
        }
    }
}

#[derive(SimpleObject)]
pub struct CreatedApiToken {
    token: ApiToken,
    /// The bearer secret. Shown this once; only its hash is stored.
    secret: String,
}

#[derive(Default)]
pub struct TokenQuery;

#[Object]
impl TokenQuery {
    #[graphql(guard = "RoleGuard::new(&[Role::Admin])")]
    async fn api_tokens(&self, ctx: &Context<'_>) -> Result<Vec<ApiToken>> {
        Ok(services(ctx)?
            .admin()
            .tokens(actor(ctx)?)
            .await?
            .into_iter()
            .map(ApiToken::from)
            .collect())
    }
}

#[derive(Default)]
pub struct TokenMutation;

#[Object]
impl TokenMutation {
    /// Creates a token; an owner token needs a team. A token bound to a `consumer`
    /// records that consumer's artifact downloads in the inventory.
    #[graphql(guard = "RoleGuard::new(&[Role::Admin])")]
    async fn create_api_token(
        &self,
        ctx: &Context<'_>,
        name: String,
        role: RoleGql,
        team: Option<String>,
        consumer: Option<String>,
    ) -> Result<CreatedApiToken> {
        let role: Role = role.into();
        let (info, secret) = services(ctx)?
            .admin()
            .create_token(
                actor(ctx)?,
                &name,
                role.as_str(),
                team.as_deref(),
                consumer.as_deref(),
            )
            .await?;
        Ok(CreatedApiToken {
            token: info.into(),
            secret: secret.expose().to_owned(),
        })
    }

    #[graphql(guard = "RoleGuard::new(&[Role::Admin])")]
    async fn revoke_api_token(&self, ctx: &Context<'_>, name: String) -> Result<ApiToken> {
        Ok(services(ctx)?
            .admin()
            .revoke_token(actor(ctx)?, &name)
            .await?
            .into())
    }
}
