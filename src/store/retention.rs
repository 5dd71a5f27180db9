//! Retention: the versions it weighs, and its proposals.

use super::StoreError;
use super::entities::{model, model_version, retention_proposal};
use crate::domain::{
    DueBecause, KeptVersion, LifecycleStatus, ModelId, ModelName, ProposalState, RetentionProposal,
    RetirementId, Version, VersionId,
};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use std::collections::HashMap;

/// The models with at least one deprecated version: the only ones retention can find
/// anything due in.
pub async fn models_with_deprecated(
    conn: &impl ConnectionTrait,
) -> Result<Vec<ModelId>, StoreError> {
    let ids: Vec<i64> = model_version::Entity::find()
        .select_only()
        .column(model_version::Column::ModelId)
        .distinct()
        .filter(model_version::Column::Status.eq(LifecycleStatus::Deprecated.as_str()))
        .into_tuple()
        .all(conn)
        .await?;
    Ok(ids.into_iter().map(ModelId).collect())
}

/// Every version of `models` not retired, by model, with the model's name.
pub async fn kept_versions(
    conn: &impl ConnectionTrait,
    models: &[ModelId],
) -> Result<HashMap<ModelId, (ModelName, Vec<KeptVersion>)>, StoreError> {
    let mut out: HashMap<ModelId, (ModelName, Vec<KeptVersion>)> = HashMap::new();
    for chunk in super::statement_chunks(models) {
        let ids = chunk.iter().map(|m| m.0);
        for m in model::Entity::find()
            .filter(model::Column::Id.is_in(ids.clone()))
            .all(conn)
            .await?
        {
            let name = ModelName::parse(&m.name)
                .map_err(|e| StoreError::Corrupt(format!("models row {}: {e}", m.id)))?;
            out.insert(ModelId(m.id), (name, Vec::new()));
        }
        for v in model_version::Entity::find()
            .filter(model_version::Column::ModelId.is_in(ids))
            .filter(model_version::Column::Status.ne(LifecycleStatus::Retired.as_str()))
            .all(conn)
            .await?
        {
            let kept = kept(&v)?;
            if let Some((_, versions)) = out.get_mut(&ModelId(v.model_id)) {
                versions.push(kept);
            }
        }
    }
    Ok(out)
}

fn kept(v: &model_version::Model) -> Result<KeptVersion, StoreError> {
    Ok(KeptVersion {
        id: VersionId(v.id),
        version: super::registry::version_of(v)?,
        status: LifecycleStatus::parse(&v.status)
            .map_err(|e| StoreError::Corrupt(format!("model_versions row {}: {e}", v.id)))?,
        status_changed_at: v.status_changed_at,
        created_at: v.created_at,
        promoted_at: v.promoted_at,
    })
}

/// A proposal's row, before it is written.
pub struct NewProposal<'a> {
    pub model: ModelId,
    pub version: VersionId,
    pub because: DueBecause,
    pub why: &'a str,
    pub state: ProposalState,
    pub at: DateTime<Utc>,
    pub retirement: Option<RetirementId>,
}

/// Writes the proposal unless the version has one already; its id when written.
pub async fn insert_if_new(
    conn: &impl ConnectionTrait,
    p: &NewProposal<'_>,
) -> Result<Option<i64>, StoreError> {
    let decided = (p.state != ProposalState::Proposed).then_some(p.at);
    let row = retention_proposal::ActiveModel {
        model_id: Set(p.model.0),
        version_id: Set(p.version.0),
        reason: Set(p.because.as_str().to_owned()),
        why: Set(p.why.to_owned()),
        state: Set(p.state.as_str().to_owned()),
        proposed_at: Set(p.at),
        decided_at: Set(decided),
        decided_by: Set(decided.map(|_| "retention".to_owned())),
        retirement_id: Set(p.retirement.map(|r| r.0)),
        ..Default::default()
    };
    let inserted = retention_proposal::Entity::insert(row)
        .on_conflict(
            OnConflict::column(retention_proposal::Column::VersionId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    if inserted == 0 {
        return Ok(None);
    }
    Ok(by_version(conn, p.version).await?.map(|r| r.id))
}

/// The decision on an open proposal.
pub struct Decision<'a> {
    pub state: ProposalState,
    pub at: DateTime<Utc>,
    pub by: &'a str,
    pub note: Option<&'a str>,
    pub retirement: Option<RetirementId>,
}

/// Records `d` on proposal `id` if it is still open; false when it was decided already.
pub async fn decide(
    conn: &impl ConnectionTrait,
    id: i64,
    d: &Decision<'_>,
) -> Result<bool, StoreError> {
    use sea_orm::sea_query::Expr;
    let done = retention_proposal::Entity::update_many()
        .col_expr(
            retention_proposal::Column::State,
            Expr::value(d.state.as_str()),
        )
        .col_expr(
            retention_proposal::Column::DecidedAt,
            Expr::value(Some(d.at)),
        )
        .col_expr(
            retention_proposal::Column::DecidedBy,
            Expr::value(Some(d.by.to_owned())),
        )
        .col_expr(
            retention_proposal::Column::Note,
            Expr::value(d.note.map(str::to_owned)),
        )
        .col_expr(
            retention_proposal::Column::RetirementId,
            Expr::value(d.retirement.map(|r| r.0)),
        )
        .filter(retention_proposal::Column::Id.eq(id))
        .filter(retention_proposal::Column::State.eq(ProposalState::Proposed.as_str()))
        .exec(conn)
        .await?;
    Ok(done.rows_affected == 1)
}

/// The raw proposal of a version, if any.
async fn by_version(
    conn: &impl ConnectionTrait,
    version: VersionId,
) -> Result<Option<retention_proposal::Model>, StoreError> {
    Ok(retention_proposal::Entity::find()
        .filter(retention_proposal::Column::VersionId.eq(version.0))
        .one(conn)
        .await?)
}

/// The proposal of `version` of `model`, if any.
pub async fn of_version(
    conn: &impl ConnectionTrait,
    (model, version): (&ModelName, Version),
    id: VersionId,
) -> Result<Option<RetentionProposal>, StoreError> {
    by_version(conn, id)
        .await?
        .map(|row| to_proposal(model.clone(), version, row))
        .transpose()
}

/// The proposals of those of `versions` that have one, in any state: id and state.
pub async fn proposed_among(
    conn: &impl ConnectionTrait,
    versions: &[VersionId],
) -> Result<HashMap<VersionId, (i64, ProposalState)>, StoreError> {
    let mut out = HashMap::new();
    for chunk in super::statement_chunks(versions) {
        let rows: Vec<(i64, i64, String)> = retention_proposal::Entity::find()
            .select_only()
            .column(retention_proposal::Column::Id)
            .column(retention_proposal::Column::VersionId)
            .column(retention_proposal::Column::State)
            .filter(retention_proposal::Column::VersionId.is_in(chunk.iter().map(|v| v.0)))
            .into_tuple()
            .all(conn)
            .await?;
        for (id, v, state) in rows {
            out.insert(VersionId(v), (id, parse_state(&state)?));
        }
    }
    Ok(out)
}

/// The open proposals: `(id, version, "model@version")`.
pub async fn open(
    conn: &impl ConnectionTrait,
) -> Result<Vec<(i64, VersionId, String)>, StoreError> {
    let rows: Vec<(i64, i64)> = retention_proposal::Entity::find()
        .select_only()
        .column(retention_proposal::Column::Id)
        .column(retention_proposal::Column::VersionId)
        .filter(retention_proposal::Column::State.eq(ProposalState::Proposed.as_str()))
        .into_tuple()
        .all(conn)
        .await?;
    let versions: Vec<VersionId> = rows.iter().map(|&(_, v)| VersionId(v)).collect();
    let names = version_names(conn, &versions).await?;
    Ok(rows
        .into_iter()
        .map(|(id, v)| {
            let subject = names
                .get(&VersionId(v))
                .map(|(m, v)| format!("{m}@{v}"))
                .unwrap_or_default();
            (id, VersionId(v), subject)
        })
        .collect())
}

/// Proposals, newest first, of one model or all, in one state or any; at most `limit`.
pub async fn list(
    conn: &impl ConnectionTrait,
    model: Option<ModelId>,
    state: Option<ProposalState>,
    limit: u64,
) -> Result<Vec<RetentionProposal>, StoreError> {
    let mut q = retention_proposal::Entity::find();
    if let Some(m) = model {
        q = q.filter(retention_proposal::Column::ModelId.eq(m.0));
    }
    if let Some(s) = state {
        q = q.filter(retention_proposal::Column::State.eq(s.as_str()));
    }
    let rows = q
        .order_by_desc(retention_proposal::Column::Id)
        .limit(limit)
        .all(conn)
        .await?;
    let versions: Vec<VersionId> = rows.iter().map(|r| VersionId(r.version_id)).collect();
    let names = version_names(conn, &versions).await?;
    rows.into_iter()
        .filter_map(|row| {
            let (model, version) = names.get(&VersionId(row.version_id))?.clone();
            Some(to_proposal(model, version, row))
        })
        .collect()
}

/// The model name and version of each of `versions`.
async fn version_names(
    conn: &impl ConnectionTrait,
    versions: &[VersionId],
) -> Result<HashMap<VersionId, (ModelName, Version)>, StoreError> {
    let mut out = HashMap::new();
    for chunk in super::statement_chunks(versions) {
        let rows = model_version::Entity::find()
            .filter(model_version::Column::Id.is_in(chunk.iter().map(|v| v.0)))
            .find_also_related(model::Entity)
            .all(conn)
            .await?;
        for (v, m) in rows {
            let Some(m) = m else { continue };
            let name = ModelName::parse(&m.name)
                .map_err(|e| StoreError::Corrupt(format!("models row {}: {e}", m.id)))?;
            out.insert(VersionId(v.id), (name, super::registry::version_of(&v)?));
        }
    }
    Ok(out)
}

fn parse_state(raw: &str) -> Result<ProposalState, StoreError> {
    ProposalState::parse(raw)
        .map_err(|e| StoreError::Corrupt(format!("retention proposal state: {e}")))
}

fn to_proposal(
    model: ModelName,
    version: Version,
    row: retention_proposal::Model,
) -> Result<RetentionProposal, StoreError> {
    let corrupt =
        |e: String| StoreError::Corrupt(format!("retention_proposals row {}: {e}", row.id));
    Ok(RetentionProposal {
        id: row.id,
        model,
        version,
        because: DueBecause::parse(&row.reason).map_err(|e| corrupt(e.to_string()))?,
        why: row.why,
        state: parse_state(&row.state)?,
        proposed_at: row.proposed_at,
        decided_at: row.decided_at,
        decided_by: row.decided_by,
        note: row.note,
        retirement: row.retirement_id.map(RetirementId),
    })
}
