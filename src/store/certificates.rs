//! Destruction certificates as issued: the DSSE envelope's exact bytes, one per
//! retirement (a unique key, so a resumed execution can never issue a second).

use super::StoreError;
use super::entities::certificate;
use crate::domain::RetirementId;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCertificate {
    pub id: i64,
    pub retirement_id: RetirementId,
    pub envelope: String,
    pub sha256: String,
    pub issued_at: DateTime<Utc>,
}

/// Stores a certificate unless one exists for its retirement; returns whether it did.
pub async fn insert(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
    envelope: &str,
    sha256: &str,
    issued_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let inserted = certificate::Entity::insert(certificate::ActiveModel {
        retirement_id: Set(retirement_id.0),
        envelope: Set(envelope.to_owned()),
        sha256: Set(sha256.to_owned()),
        issued_at: Set(issued_at),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::column(certificate::Column::RetirementId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(inserted == 1)
}

pub async fn find(
    conn: &impl ConnectionTrait,
    id: i64,
) -> Result<Option<StoredCertificate>, StoreError> {
    Ok(certificate::Entity::find_by_id(id)
        .one(conn)
        .await?
        .map(parse))
}

pub async fn of_retirement(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
) -> Result<Option<StoredCertificate>, StoreError> {
    Ok(certificate::Entity::find()
        .filter(certificate::Column::RetirementId.eq(retirement_id))
        .one(conn)
        .await?
        .map(parse))
}

pub async fn count_for(
    conn: &impl ConnectionTrait,
    retirement_id: RetirementId,
) -> Result<u64, StoreError> {
    use sea_orm::PaginatorTrait;
    Ok(certificate::Entity::find()
        .filter(certificate::Column::RetirementId.eq(retirement_id))
        .count(conn)
        .await?)
}

/// Every certificate, newest first.
pub async fn list(conn: &impl ConnectionTrait) -> Result<Vec<StoredCertificate>, StoreError> {
    Ok(certificate::Entity::find()
        .order_by_desc(certificate::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(parse)
        .collect())
}

fn parse(r: certificate::Model) -> StoredCertificate {
    StoredCertificate {
        id: r.id,
        retirement_id: RetirementId(r.retirement_id),
        envelope: r.envelope,
        sha256: r.sha256,
        issued_at: r.issued_at,
    }
}
