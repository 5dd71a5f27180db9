//! Restoring a database backup taken before an erasure.
//!
//! Such a backup holds data keys wrapped under KEK epochs the key store has since
//! destroyed: the artifacts erased after the backup (right: they stay unrecoverable), and
//! the survivors as they were wrapped then (their newer wrappings were made after the
//! backup). Start-up refuses that database, since it cannot tell a restore from a wrong
//! key store. `restore_report` tells them apart: epochs below the oldest one the key store
//! holds were destroyed by a rotation (epochs only grow); an epoch the store holds that
//! does not open, or a missing one above the oldest held, means a wrong key store, which
//! nothing here papers over. `accept_restore_erasures` records the first kind as erased,
//! audited, so the service starts and serves what the live key store still opens.

use super::{ServiceError, require_admin};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::store::erasure as repo;
use serde::Serialize;

/// Artifacts named per epoch in a report, at most.
const NAMED_PER_EPOCH: u64 = 20;

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// Where the KEKs are (a folder, or a token and label prefix).
    pub key_store: String,
    /// The epochs the key store holds.
    pub epochs_held: Vec<u32>,
    /// Surviving artifacts whose keys are wrapped under epochs destroyed since the backup:
    /// unrecoverable; `sunset restore accept-erasures` records them as erased.
    pub destroyed: Vec<EpochArtifacts>,
    /// Artifacts under epochs this key store should open and does not: the wrong key
    /// store (or a wrong label prefix). Nothing is accepted while there are any.
    pub foreign: Vec<EpochArtifacts>,
    /// Artifacts whose keys open: served as before.
    pub served: i64,
    /// Whether the service starts on this database as it is.
    pub ready: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct EpochArtifacts {
    pub epoch: u32,
    pub artifacts: i64,
    /// The first few, `model@version/path`.
    pub named: Vec<String>,
}

impl super::Admin<'_> {
    /// What the database holds under epochs the key store no longer opens.
    pub async fn restore_report(&self) -> Result<RestoreReport, ServiceError> {
        let vault = self.vault()?.clone();
        let kek = vault.kek.clone();
        let held = tokio::task::spawn_blocking(move || kek.refresh().map(|()| kek.epochs()))
            .await
            .map_err(ServiceError::internal)?
            .map_err(ServiceError::internal)?;
        let oldest_held = held.first().copied().unwrap_or(u32::MAX);
        let opens = self.epochs_that_open().await?;
        let (mut destroyed, mut foreign, mut served) = (Vec::new(), Vec::new(), 0);
        let db = self.store().reader();
        for (epoch, count) in repo::surviving_per_epoch(db).await? {
            if opens.contains(&epoch) {
                served += count;
                continue;
            }
            let entry = EpochArtifacts {
                epoch,
                artifacts: count,
                named: repo::named_under_epoch(db, epoch, NAMED_PER_EPOCH).await?,
            };
            if epoch < oldest_held {
                destroyed.push(entry);
            } else {
                foreign.push(entry);
            }
        }
        Ok(RestoreReport {
            key_store: vault.kek.describe(),
            epochs_held: held,
            ready: destroyed.is_empty() && foreign.is_empty(),
            destroyed,
            foreign,
            served,
        })
    }

    /// The epochs of which one surviving wrapping opens under the key store.
    async fn epochs_that_open(&self) -> Result<Vec<u32>, ServiceError> {
        let vault = self.vault()?;
        let sample = repo::one_wrapping_per_epoch(self.store().reader()).await?;
        let sample = sample
            .into_iter()
            .map(|(_, id, epoch, bytes)| (epoch, id, bytes));
        Ok(vault
            .opens_each(sample)
            .filter_map(|(epoch, opened)| opened.is_ok().then_some(epoch))
            .collect())
    }

    /// Records as erased every artifact under an epoch destroyed since the backup, in one
    /// audited transaction, so the service starts. Refused while the report names foreign
    /// artifacts (a wrong key store must be fixed, not accepted). Returns the report as it
    /// was before, and how many artifacts were recorded.
    pub async fn accept_restore_erasures(
        &self,
        actor: &Actor,
    ) -> Result<(RestoreReport, u64), ServiceError> {
        require_admin(actor, "accept a restore's erasures")?;
        let report = self.restore_report().await?;
        if !report.foreign.is_empty() {
            let epochs: Vec<String> = report.foreign.iter().map(|e| e.epoch.to_string()).collect();
            return Err(ServiceError::Conflict(format!(
                "the key store {} does not open data keys under KEK epoch(s) {} it should hold: it is not the key store this database was written with. Point sunset at the right key folder or token; nothing was changed",
                report.key_store,
                epochs.join(", ")
            )));
        }
        let Some(below) = report.epochs_held.first().copied() else {
            return Err(ServiceError::Conflict(format!(
                "the key store {} holds no KEK",
                report.key_store
            )));
        };
        if report.destroyed.is_empty() {
            return Ok((report, 0));
        }
        let now = self.now();
        let recorded = in_write_tx!(self, |tx| {
            let n = repo::erase_below_epoch(tx.conn(), below, now).await?;
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::RestoreErasuresAccepted,
                SubjectType::Artifact,
                format!("{n} artifact(s) under KEK epochs below {below}"),
            )
            .after(&report);
            self.append_audit(tx, now, entry).await?;
            Ok(n)
        })?;
        tracing::warn!(artifacts = recorded, below, actor = %actor.name, "a restored database's artifacts under destroyed KEK epochs were recorded as erased");
        Ok((report, recorded))
    }
}
