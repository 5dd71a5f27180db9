//! Reading, exporting, checkpointing and verifying the audit trail. Every read, refused
//! ones included, is itself an audit record (AISVS 3.4.2).

use super::ServiceError;
use crate::audit::{
    Action, AuditEntry, ChainBreak, ChainVerifier, Checkpoint, SealedRecord, SubjectType,
    VerifyReport,
};
use crate::auth::Actor;
use crate::domain::{ParseError, Role};
use crate::store::audit::{self as repo, RecordFilter};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::io::Write;

pub const MAX_PAGE: u64 = 500;

/// Whether `actor` may read the audit log: what a page asks before it offers the log
/// (reads by anyone else are refused, and the refusal recorded).
pub fn may_read_audit(actor: &Actor) -> bool {
    actor.role == Role::Auditor
}
const VERIFY_BATCH: u64 = 1_000;

/// Filters an auditor may apply; all optional, combined with AND.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

impl AuditQuery {
    fn to_filter(&self) -> Result<RecordFilter, ServiceError> {
        for (field, value) in [("subject", &self.subject), ("actor", &self.actor)] {
            if value.as_ref().is_some_and(|v| v.len() > 256) {
                return Err(ParseError::new(field, "is longer than 256 bytes").into());
            }
        }
        if let Some(action) = &self.action
            && Action::parse(action).is_none()
        {
            {
                let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
                return Err(ParseError::new(
                    "action",
                    format!(
                        "{action:?} is not a change type; one of {} is accepted",
                        known.join(", ")
                    ),
                )
                .into());
            }
        }
        Ok(RecordFilter {
            subject: self.subject.clone(),
            about_model: None,
            actor: self.actor.clone(),
            action: self.action.clone(),
            from: self.from,
            until: self.until,
            through_seq: None,
        })
    }
}

pub struct AuditPage {
    pub records: Vec<SealedRecord>,
    pub has_next: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReadRecord<'a> {
    query: &'a AuditQuery,
    #[serde(skip_serializing_if = "Option::is_none")]
    after_seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    returned: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
}

/// The outcome of `sunset audit verify`: intact up to a head, or the first break.
pub type VerifyOutcome = Result<VerifyReport, ChainBreak>;

impl super::Audit<'_> {
    /// Every record after `after` matching `filter`, in order, each authenticated (its
    /// hash and MAC): what signed documents may rest on. One that does not authenticate
    /// is an integrity error naming it.
    pub(crate) async fn authenticated_records(
        &self,
        filter: &repo::RecordFilter,
        mut after: i64,
    ) -> Result<Vec<SealedRecord>, ServiceError> {
        let key = self.service_key().audit_mac_key();
        let mut found = Vec::new();
        loop {
            let page = repo::find_records(self.store().reader(), filter, after, MAX_PAGE).await?;
            for record in &page {
                if !record.authenticates(key) {
                    return Err(ServiceError::Integrity(format!(
                        "audit record {} ({}) does not authenticate; run `sunset audit verify`",
                        record.seq, record.action
                    )));
                }
            }
            let done = (page.len() as u64) < MAX_PAGE;
            after = page.last().map_or(after, |r| r.seq);
            found.extend(page);
            if done {
                return Ok(found);
            }
        }
    }

    /// Records that `actor` tried to read the audit log without the auditor role.
    pub async fn refuse_audit_read(&self, actor: &Actor, query: &AuditQuery) -> ServiceError {
        let message = format!(
            "reading the audit log needs the auditor role; token {} has role {}",
            actor.name, actor.role
        );
        let record = ReadRecord {
            query,
            after_seq: None,
            returned: None,
            refused: Some(message.clone()),
        };
        let entry = AuditEntry::new(
            actor.audit_identity(),
            Action::AuditReadDenied,
            SubjectType::AuditLog,
            "audit_log",
        )
        .after(&record);
        let recorded = in_write_tx!(self, |tx| {
            self.append_audit(tx, self.now(), entry.clone()).await
        });
        if let Err(e) = recorded {
            tracing::error!(error = %e, actor = %actor.name, "could not record a refused audit read");
        }
        ServiceError::Forbidden(message)
    }

    /// A page of audit records in sequence order, after `after_seq`. The read is recorded
    /// in the same transaction, so no one reads the log without leaving a trace.
    pub async fn audit_records(
        &self,
        actor: &Actor,
        query: &AuditQuery,
        after_seq: Option<i64>,
        first: u64,
    ) -> Result<AuditPage, ServiceError> {
        if actor.role != Role::Auditor {
            return Err(self.refuse_audit_read(actor, query).await);
        }
        let filter = query.to_filter()?;
        let limit = first.clamp(1, MAX_PAGE);
        in_write_tx!(self, |tx| {
            let mut records =
                repo::find_records(tx.conn(), &filter, after_seq.unwrap_or(0), limit + 1).await?;
            let has_next = records.len() as u64 > limit;
            records.truncate(limit as usize);
            let read = ReadRecord {
                query,
                after_seq,
                returned: Some(records.len()),
                refused: None,
            };
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::AuditRead,
                SubjectType::AuditLog,
                "audit_log",
            )
            .after(&read);
            self.append_audit(tx, self.now(), entry).await?;
            Ok(AuditPage { records, has_next })
        })
    }

    /// Authorizes and records an export; the caller then pages with [`Self::audit_export_page`].
    pub async fn begin_audit_export(
        &self,
        actor: &Actor,
        query: &AuditQuery,
    ) -> Result<RecordFilter, ServiceError> {
        if actor.role != Role::Auditor {
            return Err(self.refuse_audit_read(actor, query).await);
        }
        let filter = query.to_filter()?;
        let read = ReadRecord {
            query,
            after_seq: None,
            returned: None,
            refused: None,
        };
        let entry = AuditEntry::new(
            actor.audit_identity(),
            Action::AuditExported,
            SubjectType::AuditLog,
            "audit_log",
        )
        .after(&read);
        in_write_tx!(self, |tx| {
            self.append_audit(tx, self.now(), entry.clone()).await
        })?;
        Ok(filter)
    }

    pub async fn audit_export_page(
        &self,
        filter: &RecordFilter,
        after_seq: i64,
    ) -> Result<Vec<SealedRecord>, ServiceError> {
        Ok(repo::find_records(self.store().reader(), filter, after_seq, MAX_PAGE).await?)
    }

    /// Signs the current head, keeps the checkpoint in the database and appends it to the
    /// checkpoint file in the data folder.
    pub async fn sign_audit_checkpoint(&self, actor: &Actor) -> Result<Checkpoint, ServiceError> {
        super::authorise::require(
            actor,
            &[Role::Auditor, Role::Admin],
            "sign audit checkpoints",
        )?;
        // Any committed head is a true statement about the log, however soon it moves on.
        let db = self.store().reader();
        let (seq, hash) = repo::head(db).await?;
        let checkpoint = Checkpoint::sign(self.service_key().signing_key(), seq, &hash, self.now());
        repo::insert_checkpoint(db, &checkpoint).await?;
        if let Err(e) = self.append_checkpoint_file(&checkpoint) {
            tracing::error!(error = %e, "could not append the checkpoint to the checkpoint file; it is kept in the database");
        }
        tracing::info!(seq, actor = %actor.name, "audit checkpoint signed");
        Ok(checkpoint)
    }

    /// Signs a checkpoint only when records were added since the last one.
    pub async fn sign_audit_checkpoint_if_moved(&self) -> Result<Option<Checkpoint>, ServiceError> {
        let (seq, _) = repo::head(self.store().reader()).await?;
        let last = repo::checkpoints(self.store().reader())
            .await?
            .into_iter()
            .map(|c| c.seq)
            .max();
        if last == Some(seq) || seq == 0 {
            return Ok(None);
        }
        self.sign_audit_checkpoint(&Actor::system()).await.map(Some)
    }

    fn append_checkpoint_file(&self, checkpoint: &Checkpoint) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.inner.checkpoint_file)?;
        let line = serde_json::to_string(checkpoint).map_err(std::io::Error::other)?;
        writeln!(file, "{line}")?;
        file.sync_data()
    }

    /// Checkpoints kept outside the database, in the data folder.
    pub fn file_checkpoints(&self) -> Result<Vec<Checkpoint>, ChainBreak> {
        read_checkpoint_lines(&self.inner.checkpoint_file)
    }

    /// Walks the whole chain from genesis, checking every checkpoint in the database, in
    /// the checkpoint file, and in `kept` (checkpoints an auditor kept elsewhere).
    /// [`Self::verify_audit_chain`] for an auditor through a transport (the console),
    /// with the newest signed checkpoint; recorded like any read of the log.
    pub async fn verify_audit_chain_for(
        &self,
        actor: &Actor,
    ) -> Result<(VerifyOutcome, Option<Checkpoint>), ServiceError> {
        let asked = AuditQuery::default();
        if actor.role != Role::Auditor {
            return Err(self.refuse_audit_read(actor, &asked).await);
        }
        let outcome = self.verify_audit_chain(Vec::new()).await?;
        let newest = repo::checkpoints(self.store().reader())
            .await?
            .into_iter()
            .max_by_key(|c| c.seq);
        let read = ReadRecord {
            query: &asked,
            after_seq: None,
            returned: None,
            refused: None,
        };
        let entry = AuditEntry::new(
            actor.audit_identity(),
            Action::AuditRead,
            SubjectType::AuditLog,
            "audit_log:verify",
        )
        .after(&read);
        in_write_tx!(self, |tx| {
            self.append_audit(tx, self.now(), entry.clone()).await
        })?;
        Ok((outcome, newest))
    }

    pub async fn verify_audit_chain(
        &self,
        kept: Vec<Checkpoint>,
    ) -> Result<VerifyOutcome, ServiceError> {
        let db = self.store().reader();
        let mut checkpoints = repo::checkpoints(db).await?;
        match self.file_checkpoints() {
            Ok(found) => checkpoints.extend(found),
            Err(b) => return Ok(Err(b)),
        }
        checkpoints.extend(kept);
        let key = self.service_key().verifying_key();
        for cp in &checkpoints {
            if let Err(e) = cp.verify_signature(&key) {
                return Ok(Err(ChainBreak::BadCheckpoint {
                    checkpoint_id: cp.key_and_seq(),
                    reason: e.to_string(),
                }));
            }
        }
        let mut verifier = ChainVerifier::new(self.service_key().audit_mac_key(), &checkpoints);
        let everything = RecordFilter::default();
        let mut after = 0;
        loop {
            let batch = repo::find_records(db, &everything, after, VERIFY_BATCH).await?;
            let Some(last) = batch.last() else { break };
            after = last.seq;
            for r in &batch {
                if let Err(b) = verifier.push(r) {
                    return Ok(Err(b));
                }
            }
        }
        let report = match verifier.finish() {
            Ok(r) => r,
            Err(b) => return Ok(Err(b)),
        };
        Ok(Ok(report))
    }
}

/// Reads a JSON Lines file of checkpoints; a missing file holds none.
pub fn read_checkpoint_lines(path: &std::path::Path) -> Result<Vec<Checkpoint>, ChainBreak> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ChainBreak::BadCheckpoint {
                checkpoint_id: path.display().to_string(),
                reason: e.to_string(),
            });
        }
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| ChainBreak::BadCheckpoint {
                checkpoint_id: format!("{} line {}", path.display(), i + 1),
                reason: e.to_string(),
            })
        })
        .collect()
}
