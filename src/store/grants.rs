//! Grants of a role on models, to a token or a team.

use super::StoreError;
use super::entities::grant;
use crate::domain::{Grant, GrantId, GrantPattern, Grantee, Role, TeamName, TokenName};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, Set,
};

const TOKEN: &str = "token";
const TEAM: &str = "team";

pub async fn insert(conn: &impl ConnectionTrait, g: &Grant) -> Result<GrantId, StoreError> {
    let (kind, name) = split(&g.grantee);
    let row = grant::ActiveModel {
        pattern: Set(g.pattern.to_string()),
        grantee_kind: Set(kind.to_owned()),
        grantee: Set(name.to_owned()),
        role: Set(g.role.as_str().to_owned()),
        expires_at: Set(g.expires_at),
        created_at: Set(g.created_at),
        created_by: Set(g.created_by.clone()),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(GrantId(row.id))
}

pub async fn find(conn: &impl ConnectionTrait, id: GrantId) -> Result<Option<Grant>, StoreError> {
    grant::Entity::find_by_id(id.0)
        .one(conn)
        .await?
        .map(to_grant)
        .transpose()
}

pub async fn delete(conn: &impl ConnectionTrait, id: GrantId) -> Result<(), StoreError> {
    grant::Entity::delete_by_id(id.0).exec(conn).await?;
    Ok(())
}

/// Every grant, oldest first, unexpired ones only unless `with_expired`.
pub async fn list(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    with_expired: bool,
) -> Result<Vec<Grant>, StoreError> {
    let mut q = grant::Entity::find().order_by_asc(grant::Column::Id);
    if !with_expired {
        q = q.filter(
            Condition::any()
                .add(grant::Column::ExpiresAt.is_null())
                .add(grant::Column::ExpiresAt.gt(now)),
        );
    }
    q.all(conn).await?.into_iter().map(to_grant).collect()
}

/// The grants held by token `token` or by its team: the candidates for its role on a model.
pub async fn held_by(
    conn: &impl ConnectionTrait,
    token: &TokenName,
    team: Option<&TeamName>,
) -> Result<Vec<Grant>, StoreError> {
    let mut holders = Condition::any().add(
        Condition::all()
            .add(grant::Column::GranteeKind.eq(TOKEN))
            .add(grant::Column::Grantee.eq(token.as_str())),
    );
    if let Some(team) = team {
        holders = holders.add(
            Condition::all()
                .add(grant::Column::GranteeKind.eq(TEAM))
                .add(grant::Column::Grantee.eq(team.as_str())),
        );
    }
    grant::Entity::find()
        .filter(holders)
        .all(conn)
        .await?
        .into_iter()
        .map(to_grant)
        .collect()
}

fn split(g: &Grantee) -> (&'static str, &str) {
    match g {
        Grantee::Token(n) => (TOKEN, n.as_str()),
        Grantee::Team(n) => (TEAM, n.as_str()),
    }
}

fn to_grant(row: grant::Model) -> Result<Grant, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("grant {}: {what}", row.id));
    let grantee = match row.grantee_kind.as_str() {
        TOKEN => Grantee::Token(TokenName::parse(&row.grantee).map_err(|_| corrupt("grantee"))?),
        TEAM => Grantee::Team(TeamName::parse(&row.grantee).map_err(|_| corrupt("grantee"))?),
        _ => return Err(corrupt("grantee kind")),
    };
    Ok(Grant {
        id: GrantId(row.id),
        pattern: GrantPattern::parse(&row.pattern).map_err(|_| corrupt("pattern"))?,
        grantee,
        role: Role::parse(&row.role).map_err(|_| corrupt("role"))?,
        expires_at: row.expires_at,
        created_at: row.created_at,
        created_by: row.created_by,
    })
}
