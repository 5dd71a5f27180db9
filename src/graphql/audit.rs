//! The audit log over GraphQL: auditor only, every read recorded.

use super::guard::{RoleGuard, actor, services};
use crate::audit::{Checkpoint, SealedRecord};
use crate::domain::Role;
use crate::service::AuditQuery;
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Guard, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

/// Declares that a field needs the auditor role and, unlike a plain role guard, records
/// every refusal in the audit log (AISVS 3.4.2).
struct AuditorGuard;

impl Guard for AuditorGuard {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let actor = actor(ctx)?;
        if actor.role == Role::Auditor {
            return Ok(());
        }
        let query = AuditQuery::default();
        Err(services(ctx)?
            .audit()
            .refuse_audit_read(actor, &query)
            .await
            .into())
    }
}

#[derive(InputObject, Default)]
pub struct AuditFilter {
    /// e.g. `fraud-scorer` or `fraud-scorer@1.2.0`
    subject: Option<String>,
    /// A token name, or `cli:<user>`.
    actor: Option<String>,
    /// A change type such as `version.status_changed`.
    action: Option<String>,
    /// Records at or after this time.
    from: Option<DateTime<Utc>>,
    /// Records before this time.
    until: Option<DateTime<Utc>>,
}

/// One record of the hash-chained audit trail.
#[derive(SimpleObject)]
pub struct AuditRecord {
    seq: i64,
    recorded_at: DateTime<Utc>,
    actor: String,
    actor_role: String,
    action: String,
    subject_type: String,
    subject: String,
    /// The state before the change, as the JSON text the hash covers.
    before: Option<String>,
    /// The state after the change, as the JSON text the hash covers.
    after: Option<String>,
    prev_hash: String,
    hash: String,
    /// The address the change's request came from (the connection's peer, or what a
    /// trusted proxy named); null for the CLI, scheduled jobs, webhook batches, and
    /// records written before addresses were kept. Covered by the hash when present.
    client_ip: Option<String>,
}

impl From<SealedRecord> for AuditRecord {
    fn from(r: SealedRecord) -> Self {
        Self {
            seq: r.seq,
            recorded_at: r.recorded_at,
            actor: r.actor,
            actor_role: r.actor_role,
            action: r.action,
            subject_type: r.subject_type,
            subject: r.subject,
            before: r.before_state,
            after: r.after_state,
            prev_hash: r.prev_hash,
            hash: r.hash,
            client_ip: r.client_ip,
        }
    }
}

/// A signed checkpoint of the chain head; keep one to detect later truncation.
#[derive(SimpleObject)]
pub struct AuditCheckpoint {
    seq: i64,
    head_hash: String,
    signed_at: DateTime<Utc>,
    key_id: String,
    signature: String,
    /// The checkpoint as one JSON line, for `sunset audit verify --checkpoint FILE`.
    json: String,
}

impl From<Checkpoint> for AuditCheckpoint {
    fn from(c: Checkpoint) -> Self {
        let json = serde_json::to_string(&c).unwrap_or_default();
        Self {
            seq: c.seq,
            head_hash: c.head_hash,
            signed_at: c.signed_at,
            key_id: c.key_id,
            signature: c.signature,
            json,
        }
    }
}

/// A model's compliance report for a period, as JSON and signed.
#[derive(SimpleObject)]
pub struct ComplianceReportDocument {
    /// The report, as JSON: the signed envelope's payload, byte for byte.
    json: String,
    /// The report signed by the service key, as a DSSE envelope (JSON) to hand on and
    /// verify offline with `sunset report verify`.
    envelope: String,
    /// Audit records about the model in the period.
    events: i32,
    /// Promotions to production in the period.
    promotions: i32,
    /// Status changes that overrode failed validations.
    overrides: i32,
    /// Downloads, rollbacks and signed documents refused for integrity.
    integrity_refusals: i32,
    /// The whole audit chain verified when the report was made.
    chain_verified: bool,
    /// The signed checkpoint the report ends at.
    checkpoint_seq: Option<i64>,
}

impl From<crate::service::SignedReport> for ComplianceReportDocument {
    fn from(s: crate::service::SignedReport) -> Self {
        let r = &s.report;
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        Self {
            events: count(r.events.total),
            promotions: count(r.status_changes.iter().filter(|c| c.is_promotion()).count()),
            overrides: count(
                r.status_changes
                    .iter()
                    .filter(|c| !c.overridden_validations.is_empty())
                    .count(),
            ),
            integrity_refusals: count(r.integrity_refusals.len()),
            chain_verified: r.audit_chain.verified,
            checkpoint_seq: r.audit_chain.checkpoint.as_ref().map(|c| c.seq),
            json: s.json,
            envelope: s.envelope,
        }
    }
}

#[derive(Default)]
pub struct AuditQueryRoot;

#[Object]
impl AuditQueryRoot {
    /// Audit records in sequence order. Needs the auditor role; every call, refused
    /// ones included, is itself recorded. The cursor is the sequence number.
    #[graphql(
        guard = "AuditorGuard",
        complexity = "first.unwrap_or(50).max(0) as usize * child_complexity"
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, AuditRecord>> {
        let first = match first {
            None => 50,
            Some(n) if (1..=500).contains(&n) => n as u64,
            Some(n) => {
                return Err(super::error::validation(format!(
                    "first must be between 1 and 500, not {n}"
                )));
            }
        };
        let after_seq = after
            .as_deref()
            .map(|a| {
                a.parse::<i64>().map_err(|_| {
                    super::error::validation(format!(
                        "after {a:?} is not a cursor from this connection"
                    ))
                })
            })
            .transpose()?;
        let f = filter.unwrap_or_default();
        let query = AuditQuery {
            subject: f.subject,
            actor: f.actor,
            action: f.action,
            from: f.from,
            until: f.until,
        };
        let page = services(ctx)?
            .audit()
            .audit_records(actor(ctx)?, &query, after_seq, first)
            .await?;
        let mut conn = Connection::new(after_seq.is_some(), page.has_next);
        conn.edges.extend(
            page.records
                .into_iter()
                .map(|r| Edge::new(r.seq.to_string(), AuditRecord::from(r))),
        );
        Ok(conn)
    }

    /// A model's compliance report for `[from, to]`, both inclusive (by default from its registration
    /// to now): events by type, actors and their addresses, versions affected,
    /// promotions with their approvals and overrides, rollbacks, retirements with their
    /// notices and certificates, integrity refusals, and the audit chain's verification
    /// with the signed checkpoint it ends at. Auditors and governance; recorded.
    #[graphql(complexity = 50)]
    async fn compliance_report(
        &self,
        ctx: &Context<'_>,
        model: String,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<ComplianceReportDocument> {
        Ok(services(ctx)?
            .audit()
            .compliance_report(actor(ctx)?, &model, from, to)
            .await?
            .into())
    }
}

#[derive(Default)]
pub struct AuditMutation;

#[Object]
impl AuditMutation {
    /// Signs a checkpoint of the current chain head with the service key.
    #[graphql(guard = "RoleGuard::new(&[Role::Auditor, Role::Admin])")]
    async fn sign_audit_checkpoint(&self, ctx: &Context<'_>) -> Result<AuditCheckpoint> {
        Ok(services(ctx)?
            .audit()
            .sign_audit_checkpoint(actor(ctx)?)
            .await?
            .into())
    }
}
