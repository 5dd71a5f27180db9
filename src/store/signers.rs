//! Authorised signers and their public keys.

use super::StoreError;
use super::entities::signer;
use crate::domain::{Signer, StoredSignature};
use crate::domain::{SignerKey, SignerName};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};

pub async fn insert(conn: &impl ConnectionTrait, s: &Signer) -> Result<(), StoreError> {
    signer::ActiveModel {
        name: Set(s.name.to_string()),
        algorithm: Set(s.algorithm.as_str().to_owned()),
        public_key_pem: Set(s.public_key_pem.clone()),
        key_id: Set(s.key_id.clone()),
        enabled: Set(s.enabled),
        created_at: Set(s.created_at),
        created_by: Set(s.created_by.clone()),
        disabled_at: Set(s.disabled_at),
        purposes: Set(crate::domain::SignerPurpose::list_text(&s.purposes)),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}

pub async fn find_by_name(
    conn: &impl ConnectionTrait,
    name: &SignerName,
) -> Result<Option<Signer>, StoreError> {
    signer::Entity::find()
        .filter(signer::Column::Name.eq(name.as_str()))
        .one(conn)
        .await?
        .map(parse)
        .transpose()
}

pub async fn find_by_key_id(
    conn: &impl ConnectionTrait,
    key_id: &str,
) -> Result<Option<Signer>, StoreError> {
    signer::Entity::find()
        .filter(signer::Column::KeyId.eq(key_id))
        .one(conn)
        .await?
        .map(parse)
        .transpose()
}

pub async fn list(conn: &impl ConnectionTrait) -> Result<Vec<Signer>, StoreError> {
    signer::Entity::find()
        .order_by_asc(signer::Column::Name)
        .all(conn)
        .await?
        .into_iter()
        .map(parse)
        .collect()
}

pub async fn disable(
    conn: &impl ConnectionTrait,
    name: &SignerName,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    signer::Entity::update_many()
        .col_expr(signer::Column::Enabled, Expr::value(false))
        .col_expr(signer::Column::DisabledAt, Expr::value(Some(at)))
        .filter(signer::Column::Name.eq(name.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}

fn parse(r: signer::Model) -> Result<Signer, StoreError> {
    let corrupt =
        |e: crate::domain::ParseError| StoreError::Corrupt(format!("signers row {}: {e}", r.id));
    let key = SignerKey::parse_pem(&r.public_key_pem).map_err(corrupt)?;
    Ok(Signer {
        name: SignerName::parse(&r.name).map_err(corrupt)?,
        purposes: crate::domain::SignerPurpose::parse_list(&r.purposes).map_err(corrupt)?,
        algorithm: key.algorithm,
        public_key_pem: r.public_key_pem.clone(),
        key_id: r.key_id.clone(),
        enabled: r.enabled,
        created_at: r.created_at,
        created_by: r.created_by.clone(),
        disabled_at: r.disabled_at,
    })
}

pub async fn signature_of(
    conn: &impl ConnectionTrait,
    version: super::registry::VersionId,
) -> Result<Option<StoredSignature>, StoreError> {
    use super::entities::version_signature as vs;
    Ok(vs::Entity::find()
        .filter(vs::Column::VersionId.eq(version.0))
        .one(conn)
        .await?
        .map(|r| StoredSignature {
            bundle: r.bundle,
            bundle_sha256: r.bundle_sha256,
            signer: r.signer,
            uploaded_at: r.uploaded_at,
            uploaded_by: r.uploaded_by,
        }))
}

/// Stores `signature` as the version's one signature, replacing any earlier one.
pub async fn put_signature(
    conn: &impl ConnectionTrait,
    version: super::registry::VersionId,
    signature: &StoredSignature,
) -> Result<(), StoreError> {
    use super::entities::version_signature as vs;
    vs::Entity::delete_many()
        .filter(vs::Column::VersionId.eq(version.0))
        .exec(conn)
        .await?;
    vs::ActiveModel {
        version_id: Set(version.0),
        bundle: Set(signature.bundle.clone()),
        bundle_sha256: Set(signature.bundle_sha256.clone()),
        signer: Set(signature.signer.clone()),
        uploaded_at: Set(signature.uploaded_at),
        uploaded_by: Set(signature.uploaded_by.clone()),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}
