//! The audit tables: records, the chain head, and signed checkpoints.

use super::StoreError;
use super::entities::{audit_checkpoint, audit_record};
use crate::audit::{Checkpoint, SealedRecord};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

/// Inserts sealed records, many per statement (on PostgreSQL, one).
pub(super) async fn insert_records(
    conn: &impl ConnectionTrait,
    records: &[SealedRecord],
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        let rows: Vec<audit_record::ActiveModel> = records.iter().map(row_of).collect();
        conn.execute_raw(super::pg_rows::statement(
            "INSERT INTO audit_records (seq, recorded_at, actor, actor_role, action, \
             subject_type, subject, before_state, after_state, prev_hash, hash, mac, client_ip) \
             SELECT * FROM jsonb_to_recordset(CAST($1 AS jsonb)) AS r(seq bigint, \
             recorded_at timestamptz, actor text, actor_role text, action text, \
             subject_type text, subject text, before_state text, after_state text, \
             prev_hash text, hash text, mac text, client_ip text)",
            [super::pg_rows::active_rows(&rows)?],
        ))
        .await?;
        return Ok(());
    }
    for chunk in super::statement_chunks(records) {
        // No read-back: the records are already known in full.
        audit_record::Entity::insert_many(chunk.iter().map(row_of))
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

fn row_of(r: &SealedRecord) -> audit_record::ActiveModel {
    audit_record::ActiveModel {
        seq: Set(r.seq),
        recorded_at: Set(r.recorded_at),
        actor: Set(r.actor.clone()),
        actor_role: Set(r.actor_role.clone()),
        action: Set(r.action.clone()),
        subject_type: Set(r.subject_type.clone()),
        subject: Set(r.subject.clone()),
        before_state: Set(r.before_state.clone()),
        after_state: Set(r.after_state.clone()),
        prev_hash: Set(r.prev_hash.clone()),
        hash: Set(r.hash.clone()),
        mac: Set(r.mac.clone()),
        client_ip: Set(r.client_ip.clone()),
    }
}

/// The last committed record's `(seq, hash)`, or genesis for an empty log.
pub async fn head(conn: &impl ConnectionTrait) -> Result<(i64, String), StoreError> {
    // Only the two columns: the last record's states can be kilobytes.
    let last: Option<(i64, String)> = audit_record::Entity::find()
        .select_only()
        .column(audit_record::Column::Seq)
        .column(audit_record::Column::Hash)
        .order_by_desc(audit_record::Column::Seq)
        .into_tuple()
        .one(conn)
        .await?;
    Ok(last.unwrap_or_else(|| (0, crate::audit::GENESIS_HASH.to_owned())))
}

#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    pub subject: Option<String>,
    /// Records about one model: the model itself, its versions and their artifacts
    /// (`name@…`), and its retirements (by id).
    pub about_model: Option<ModelSubjects>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// The last sequence number to read. A follower reading what was appended since it
    /// last looked bounds the range on both sides: PostgreSQL then plans an index range
    /// scan even for a cached generic plan, where `seq > $1` alone is planned as a scan
    /// of the whole log (a third of it assumed to match).
    pub through_seq: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct ModelSubjects {
    pub model: String,
    pub retirements: Vec<String>,
    /// Also the inventory's links to the model (`consumer uses model@range`).
    pub inventory_links: bool,
}

impl ModelSubjects {
    fn condition(&self) -> sea_orm::Condition {
        use sea_orm::sea_query::LikeExpr;
        // Model names may hold `_`, a LIKE wildcard: escape it (and the escape itself).
        let prefix = self
            .model
            .replace('\\', "\\\\")
            .replace('_', "\\_")
            .replace('%', "\\%");
        let mut any = sea_orm::Condition::any()
            .add(audit_record::Column::Subject.eq(self.model.clone()))
            .add(
                audit_record::Column::Subject
                    .like(LikeExpr::new(format!("{prefix}@%")).escape('\\')),
            );
        if self.inventory_links {
            any = any.add(
                sea_orm::Condition::all()
                    .add(audit_record::Column::SubjectType.eq("inventory_edge"))
                    .add(
                        audit_record::Column::Subject
                            .like(LikeExpr::new(format!("% {prefix}@%")).escape('\\')),
                    ),
            );
        }
        if !self.retirements.is_empty() {
            any = any.add(
                sea_orm::Condition::all()
                    .add(audit_record::Column::SubjectType.eq("retirement"))
                    .add(audit_record::Column::Subject.is_in(self.retirements.clone())),
            );
        }
        any
    }
}

/// Records matching `filter` with `seq > after_seq`, in sequence order, at most `limit`.
pub async fn find_records(
    conn: &impl ConnectionTrait,
    filter: &RecordFilter,
    after_seq: i64,
    limit: u64,
) -> Result<Vec<SealedRecord>, StoreError> {
    let mut q = audit_record::Entity::find().filter(audit_record::Column::Seq.gt(after_seq));
    if let Some(through) = filter.through_seq {
        q = q.filter(audit_record::Column::Seq.lte(through));
    }
    if let Some(s) = &filter.subject {
        q = q.filter(audit_record::Column::Subject.eq(s.clone()));
    }
    if let Some(m) = &filter.about_model {
        q = q.filter(m.condition());
    }
    if let Some(a) = &filter.actor {
        q = q.filter(audit_record::Column::Actor.eq(a.clone()));
    }
    if let Some(a) = &filter.action {
        q = q.filter(audit_record::Column::Action.eq(a.clone()));
    }
    if let Some(t) = filter.from {
        q = q.filter(audit_record::Column::RecordedAt.gte(t));
    }
    if let Some(t) = filter.until {
        q = q.filter(audit_record::Column::RecordedAt.lt(t));
    }
    let rows = q
        .order_by_asc(audit_record::Column::Seq)
        .limit(limit)
        .all(conn)
        .await?;
    Ok(rows.into_iter().map(to_sealed).collect())
}

fn to_sealed(m: audit_record::Model) -> SealedRecord {
    SealedRecord {
        seq: m.seq,
        recorded_at: m.recorded_at,
        actor: m.actor,
        actor_role: m.actor_role,
        action: m.action,
        subject_type: m.subject_type,
        subject: m.subject,
        before_state: m.before_state,
        after_state: m.after_state,
        prev_hash: m.prev_hash,
        hash: m.hash,
        mac: m.mac,
        client_ip: m.client_ip,
    }
}

pub async fn insert_checkpoint(
    conn: &impl ConnectionTrait,
    cp: &Checkpoint,
) -> Result<(), StoreError> {
    audit_checkpoint::ActiveModel {
        seq: Set(cp.seq),
        head_hash: Set(cp.head_hash.clone()),
        signed_at: Set(cp.signed_at),
        key_id: Set(cp.key_id.clone()),
        signature: Set(cp.signature.clone()),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}

pub async fn checkpoints(conn: &impl ConnectionTrait) -> Result<Vec<Checkpoint>, StoreError> {
    let rows = audit_checkpoint::Entity::find()
        .order_by_asc(audit_checkpoint::Column::Seq)
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|m| Checkpoint {
            seq: m.seq,
            head_hash: m.head_hash,
            signed_at: m.signed_at,
            key_id: m.key_id,
            signature: m.signature,
        })
        .collect())
}
