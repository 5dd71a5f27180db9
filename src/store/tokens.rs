//! API tokens: stored by name with the SHA-256 of the secret.

use super::StoreError;
use super::entities::api_token;
use crate::domain::{Role, TeamName, TokenInfo, TokenName};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};

pub struct NewToken<'a> {
    pub name: &'a TokenName,
    pub role: Role,
    pub team: Option<&'a TeamName>,
    pub token_hash: &'a str,
    pub created_at: DateTime<Utc>,
    pub created_by: &'a str,
    pub consumer_id: Option<crate::domain::ConsumerId>,
}

pub async fn insert(conn: &impl ConnectionTrait, t: NewToken<'_>) -> Result<TokenInfo, StoreError> {
    let row = api_token::ActiveModel {
        name: Set(t.name.to_string()),
        role: Set(t.role.as_str().to_owned()),
        team: Set(t.team.map(|t| t.to_string())),
        token_hash: Set(t.token_hash.to_owned()),
        created_at: Set(t.created_at),
        created_by: Set(t.created_by.to_owned()),
        revoked_at: Set(None),
        consumer_id: Set(t.consumer_id.map(i64::from)),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    to_info(conn, row).await
}

/// The active (not revoked) token whose hash is `token_hash`, with that stored hash.
pub async fn find_active_by_hash(
    conn: &impl ConnectionTrait,
    token_hash: &str,
) -> Result<Option<(TokenInfo, String)>, StoreError> {
    let row = api_token::Entity::find()
        .filter(api_token::Column::TokenHash.eq(token_hash))
        .filter(api_token::Column::RevokedAt.is_null())
        .one(conn)
        .await?;
    match row {
        Some(r) => {
            let hash = r.token_hash.clone();
            Ok(Some((to_info(conn, r).await?, hash)))
        }
        None => Ok(None),
    }
}

pub async fn find_by_name(
    conn: &impl ConnectionTrait,
    name: &TokenName,
) -> Result<Option<TokenInfo>, StoreError> {
    match api_token::Entity::find()
        .filter(api_token::Column::Name.eq(name.as_str()))
        .one(conn)
        .await?
    {
        Some(r) => Ok(Some(to_info(conn, r).await?)),
        None => Ok(None),
    }
}

pub async fn list(conn: &impl ConnectionTrait) -> Result<Vec<TokenInfo>, StoreError> {
    let rows = api_token::Entity::find()
        .order_by_asc(api_token::Column::Name)
        .all(conn)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(to_info(conn, r).await?);
    }
    Ok(out)
}

pub async fn count_active_admins(conn: &impl ConnectionTrait) -> Result<u64, StoreError> {
    use sea_orm::PaginatorTrait;
    Ok(api_token::Entity::find()
        .filter(api_token::Column::Role.eq(Role::Admin.as_str()))
        .filter(api_token::Column::RevokedAt.is_null())
        .count(conn)
        .await?)
}

pub async fn revoke(
    conn: &impl ConnectionTrait,
    name: &TokenName,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    api_token::Entity::update_many()
        .col_expr(
            api_token::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(Some(at)),
        )
        .filter(api_token::Column::Name.eq(name.as_str()))
        .filter(api_token::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

async fn to_info(
    conn: &impl ConnectionTrait,
    r: api_token::Model,
) -> Result<TokenInfo, StoreError> {
    // A consumer removed since the token was bound leaves the token unbound.
    let consumer = match r.consumer_id {
        Some(id) => super::inventory::consumer_by_id(conn, crate::domain::ConsumerId(id))
            .await?
            .map(|c| c.name),
        None => None,
    };
    let corrupt =
        |e: crate::domain::ParseError| StoreError::Corrupt(format!("api_tokens row {}: {e}", r.id));
    Ok(TokenInfo {
        name: TokenName::parse(&r.name).map_err(corrupt)?,
        role: Role::parse(&r.role).map_err(corrupt)?,
        team: r
            .team
            .as_deref()
            .map(TeamName::parse)
            .transpose()
            .map_err(corrupt)?,
        created_at: r.created_at,
        created_by: r.created_by.clone(),
        revoked_at: r.revoked_at,
        consumer,
    })
}
