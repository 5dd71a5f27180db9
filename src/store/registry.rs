//! Models and their versions.

use super::StoreError;
use super::entities::{model, model_version};
use crate::domain::{
    Contacts, LifecycleStatus, ModelName, Provenance, RegisteredModel, RegisteredVersion, TeamName,
    Tier, Version,
};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

pub use crate::domain::{ModelId, VersionId};

pub async fn insert_model(
    conn: &impl ConnectionTrait,
    m: &RegisteredModel,
) -> Result<ModelId, StoreError> {
    let row = model::ActiveModel {
        name: Set(m.name.to_string()),
        owner_team: Set(m.owner_team.to_string()),
        tier: Set(m.tier.as_str().to_owned()),
        description: Set(m.description.clone()),
        contacts: Set(contacts_json(&m.contacts)),
        created_at: Set(m.created_at),
        updated_at: Set(m.updated_at),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(ModelId(row.id))
}

pub async fn update_model(
    conn: &impl ConnectionTrait,
    id: ModelId,
    m: &RegisteredModel,
) -> Result<(), StoreError> {
    model::ActiveModel {
        id: Set(id.0),
        name: Set(m.name.to_string()),
        owner_team: Set(m.owner_team.to_string()),
        tier: Set(m.tier.as_str().to_owned()),
        description: Set(m.description.clone()),
        contacts: Set(contacts_json(&m.contacts)),
        created_at: Set(m.created_at),
        updated_at: Set(m.updated_at),
    }
    .update(conn)
    .await?;
    Ok(())
}

pub async fn find_model(
    conn: &impl ConnectionTrait,
    name: &ModelName,
) -> Result<Option<(ModelId, RegisteredModel)>, StoreError> {
    model::Entity::find()
        .filter(model::Column::Name.eq(name.as_str()))
        .one(conn)
        .await?
        .map(|row| Ok((ModelId(row.id), to_model(row)?)))
        .transpose()
}

/// Models ordered by name, after `after_name`, optionally of one team.
pub async fn list_models(
    conn: &impl ConnectionTrait,
    team: Option<&TeamName>,
    after_name: Option<&str>,
    limit: u64,
) -> Result<Vec<RegisteredModel>, StoreError> {
    let filter = ModelFilter {
        team,
        after_name,
        ..ModelFilter::default()
    };
    search_models(conn, &filter, limit).await
}

/// What a catalogue search asks: every part optional, all of them must hold.
#[derive(Debug, Clone, Default)]
pub struct ModelFilter<'a> {
    /// Part of the name (names hold no `%` or `_` wildcards' meaning: see the caller).
    pub name_part: Option<&'a str>,
    pub team: Option<&'a TeamName>,
    pub tier: Option<Tier>,
    /// Models with at least one version in this status.
    pub status: Option<LifecycleStatus>,
    pub after_name: Option<&'a str>,
}

pub async fn search_models(
    conn: &impl ConnectionTrait,
    filter: &ModelFilter<'_>,
    limit: u64,
) -> Result<Vec<RegisteredModel>, StoreError> {
    use sea_orm::sea_query::Query;
    let mut q = model::Entity::find();
    if let Some(part) = filter.name_part {
        q = q.filter(model::Column::Name.contains(part));
    }
    if let Some(team) = filter.team {
        q = q.filter(model::Column::OwnerTeam.eq(team.as_str()));
    }
    if let Some(tier) = filter.tier {
        q = q.filter(model::Column::Tier.eq(tier.as_str()));
    }
    if let Some(status) = filter.status {
        q = q.filter(
            model::Column::Id.in_subquery(
                Query::select()
                    .column(model_version::Column::ModelId)
                    .from(model_version::Entity)
                    .and_where(model_version::Column::Status.eq(status.as_str()))
                    .to_owned(),
            ),
        );
    }
    if let Some(after) = filter.after_name {
        q = q.filter(model::Column::Name.gt(after));
    }
    q.order_by_asc(model::Column::Name)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(to_model)
        .collect()
}

pub async fn insert_version(
    conn: &impl ConnectionTrait,
    model_id: ModelId,
    v: &RegisteredVersion,
) -> Result<VersionId, StoreError> {
    let row = model_version::ActiveModel {
        model_id: Set(model_id.0),
        major: Set(component(v.version.major)),
        minor: Set(component(v.version.minor)),
        patch: Set(component(v.version.patch)),
        status: Set(v.status.as_str().to_owned()),
        provenance: Set(provenance_json(&v.provenance)?),
        created_by: Set(v.created_by.clone()),
        created_at: Set(v.created_at),
        status_changed_at: Set(v.status_changed_at),
        promoted_at: Set(None),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(VersionId(row.id))
}

pub async fn find_version(
    conn: &impl ConnectionTrait,
    model_id: ModelId,
    model_name: &ModelName,
    version: Version,
) -> Result<Option<(VersionId, RegisteredVersion)>, StoreError> {
    model_version::Entity::find()
        .filter(model_version::Column::ModelId.eq(model_id.0))
        .filter(model_version::Column::Major.eq(component(version.major)))
        .filter(model_version::Column::Minor.eq(component(version.minor)))
        .filter(model_version::Column::Patch.eq(component(version.patch)))
        .one(conn)
        .await?
        .map(|row| Ok((VersionId(row.id), to_version(model_name, row)?)))
        .transpose()
}

/// The greatest version of the model, if it has any.
pub async fn latest_version(
    conn: &impl ConnectionTrait,
    model_id: ModelId,
) -> Result<Option<Version>, StoreError> {
    let row = model_version::Entity::find()
        .filter(model_version::Column::ModelId.eq(model_id.0))
        .order_by_desc(model_version::Column::Major)
        .order_by_desc(model_version::Column::Minor)
        .order_by_desc(model_version::Column::Patch)
        .one(conn)
        .await?;
    row.map(|r| version_of(&r)).transpose()
}

/// Versions in ascending order, after `after` when given.
pub async fn list_versions(
    conn: &impl ConnectionTrait,
    model_id: ModelId,
    model_name: &ModelName,
    after: Option<Version>,
    limit: u64,
) -> Result<Vec<RegisteredVersion>, StoreError> {
    let mut q = model_version::Entity::find().filter(model_version::Column::ModelId.eq(model_id.0));
    if let Some(v) = after {
        let (ma, mi, pa) = (component(v.major), component(v.minor), component(v.patch));
        use model_version::Column as C;
        q = q.filter(
            Condition::any()
                .add(C::Major.gt(ma))
                .add(Condition::all().add(C::Major.eq(ma)).add(C::Minor.gt(mi)))
                .add(
                    Condition::all()
                        .add(C::Major.eq(ma))
                        .add(C::Minor.eq(mi))
                        .add(C::Patch.gt(pa)),
                ),
        );
    }
    q.order_by_asc(model_version::Column::Major)
        .order_by_asc(model_version::Column::Minor)
        .order_by_asc(model_version::Column::Patch)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(|row| to_version(model_name, row))
        .collect()
}

/// Versions of the model currently in `status`.
pub async fn versions_in_status(
    conn: &impl ConnectionTrait,
    model_id: ModelId,
    model_name: &ModelName,
    status: LifecycleStatus,
) -> Result<Vec<(VersionId, RegisteredVersion)>, StoreError> {
    model_version::Entity::find()
        .filter(model_version::Column::ModelId.eq(model_id.0))
        .filter(model_version::Column::Status.eq(status.as_str()))
        .all(conn)
        .await?
        .into_iter()
        .map(|row| Ok((VersionId(row.id), to_version(model_name, row)?)))
        .collect()
}

pub async fn set_status(
    conn: &impl ConnectionTrait,
    id: VersionId,
    status: LifecycleStatus,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    model_version::Entity::update_many()
        .col_expr(model_version::Column::Status, Expr::value(status.as_str()))
        .col_expr(model_version::Column::StatusChangedAt, Expr::value(at))
        .filter(model_version::Column::Id.eq(id.0))
        .exec(conn)
        .await?;
    if status == LifecycleStatus::Production {
        model_version::Entity::update_many()
            .col_expr(model_version::Column::PromotedAt, Expr::value(Some(at)))
            .filter(model_version::Column::Id.eq(id.0))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// The deprecated version that was production most recently: where a rollback goes.
pub async fn previous_production(
    conn: &impl ConnectionTrait,
    model_id: ModelId,
    model_name: &ModelName,
) -> Result<Option<(VersionId, RegisteredVersion)>, StoreError> {
    model_version::Entity::find()
        .filter(model_version::Column::ModelId.eq(model_id.0))
        .filter(model_version::Column::Status.eq(LifecycleStatus::Deprecated.as_str()))
        .filter(model_version::Column::PromotedAt.is_not_null())
        .order_by_desc(model_version::Column::PromotedAt)
        .one(conn)
        .await?
        .map(|row| Ok((VersionId(row.id), to_version(model_name, row)?)))
        .transpose()
}

fn component(n: u32) -> i32 {
    // Version::parse bounds every component to i32::MAX.
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn contacts_json(c: &Contacts) -> String {
    serde_json::to_string(c).unwrap_or_else(|_| "[]".into())
}

fn provenance_json(p: &Provenance) -> Result<String, StoreError> {
    serde_json::to_string(p).map_err(|e| StoreError::Corrupt(format!("provenance: {e}")))
}

pub(super) fn version_of(r: &model_version::Model) -> Result<Version, StoreError> {
    let part = |n: i32| {
        u32::try_from(n).map_err(|_| {
            StoreError::Corrupt(format!("model_versions row {}: negative component", r.id))
        })
    };
    Ok(Version::new(part(r.major)?, part(r.minor)?, part(r.patch)?))
}

fn to_model(r: model::Model) -> Result<RegisteredModel, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(format!("models row {}: {e}", r.id));
    let contacts: Vec<String> =
        serde_json::from_str(&r.contacts).map_err(|e| corrupt(e.to_string()))?;
    Ok(RegisteredModel {
        name: ModelName::parse(&r.name).map_err(|e| corrupt(e.to_string()))?,
        owner_team: TeamName::parse(&r.owner_team).map_err(|e| corrupt(e.to_string()))?,
        tier: Tier::parse(&r.tier).map_err(|e| corrupt(e.to_string()))?,
        description: r.description.clone(),
        contacts: Contacts::parse(&contacts).map_err(|e| corrupt(e.to_string()))?,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

fn to_version(
    model_name: &ModelName,
    r: model_version::Model,
) -> Result<RegisteredVersion, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(format!("model_versions row {}: {e}", r.id));
    Ok(RegisteredVersion {
        model: model_name.clone(),
        version: version_of(&r)?,
        status: LifecycleStatus::parse(&r.status).map_err(|e| corrupt(e.to_string()))?,
        provenance: serde_json::from_str(&r.provenance).map_err(|e| corrupt(e.to_string()))?,
        created_by: r.created_by.clone(),
        created_at: r.created_at,
        status_changed_at: r.status_changed_at,
    })
}

/// A version by its row id, with its model.
pub async fn version_by_id(
    conn: &impl ConnectionTrait,
    id: VersionId,
) -> Result<Option<(ModelId, RegisteredModel, RegisteredVersion)>, StoreError> {
    let Some(v) = model_version::Entity::find_by_id(id.0).one(conn).await? else {
        return Ok(None);
    };
    let Some(m) = model::Entity::find_by_id(v.model_id).one(conn).await? else {
        return Ok(None);
    };
    let model_id = ModelId(m.id);
    let model = to_model(m)?;
    let version = to_version(&model.name, v)?;
    Ok(Some((model_id, model, version)))
}

/// The ids of the models of these names that exist, by name.
pub async fn model_ids(
    conn: &impl ConnectionTrait,
    names: &[&ModelName],
) -> Result<std::collections::HashMap<ModelName, ModelId>, StoreError> {
    let mut ids = std::collections::HashMap::with_capacity(names.len());
    for chunk in super::statement_chunks(names) {
        let rows: Vec<(i64, String)> = model::Entity::find()
            .select_only()
            .column(model::Column::Id)
            .column(model::Column::Name)
            .filter(model::Column::Name.is_in(chunk.iter().map(|n| n.as_str())))
            .into_tuple()
            .all(conn)
            .await?;
        for (id, name) in rows {
            let name = ModelName::parse(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            ids.insert(name, ModelId(id));
        }
    }
    Ok(ids)
}

/// The ids of those of these `(model, version)` pairs that exist.
pub async fn version_ids(
    conn: &impl ConnectionTrait,
    wanted: &[(ModelId, Version)],
) -> Result<std::collections::HashMap<(ModelId, Version), VersionId>, StoreError> {
    let mut found = std::collections::HashMap::new();
    for chunk in super::statement_chunks(wanted) {
        let mut any = Condition::any();
        for (model, v) in chunk {
            any = any.add(
                Condition::all()
                    .add(model_version::Column::ModelId.eq(model.0))
                    .add(model_version::Column::Major.eq(component(v.major)))
                    .add(model_version::Column::Minor.eq(component(v.minor)))
                    .add(model_version::Column::Patch.eq(component(v.patch))),
            );
        }
        let rows: Vec<(i64, i64, i32, i32, i32)> = model_version::Entity::find()
            .select_only()
            .column(model_version::Column::Id)
            .column(model_version::Column::ModelId)
            .column(model_version::Column::Major)
            .column(model_version::Column::Minor)
            .column(model_version::Column::Patch)
            .filter(any)
            .into_tuple()
            .all(conn)
            .await?;
        for (id, model, major, minor, patch) in rows {
            let part = |p: i32| {
                u32::try_from(p).map_err(|_| StoreError::Corrupt(format!("version part {p}")))
            };
            found.insert(
                (
                    ModelId(model),
                    Version::new(part(major)?, part(minor)?, part(patch)?),
                ),
                VersionId(id),
            );
        }
    }
    Ok(found)
}
