//! Crypto-erasure (AISVS 3.6.2): the data keys of the retired versions' artifacts are
//! destroyed, and because a database backup taken before still holds them wrapped, the
//! KEK is rotated: every surviving data key is re-wrapped under a fresh epoch and the
//! old epochs are destroyed. Then the ciphertext is deleted, and the erasure verified:
//! no key material that remains opens any erased data key, and no ciphertext is left.
//!
//! The price, stated in the README: a database backup taken before an erasure opens no
//! artifact at all with the keys that remain (its surviving wrappings are under the
//! destroyed epoch too), so take a fresh backup after every erasure.

use super::{disabled_by, to_json};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::DecommissionStep;
use crate::domain::Retirement;
use crate::domain::RetirementId;
use crate::service::{ServiceError, Services};
use crate::store::erasure::{self as repo, ErasableArtifact};
use crate::store::fleet as fleet_repo;
use crate::store::kill_switch as steps;
use crate::vault::{VaultError, WrappedKey};
use serde::{Deserialize, Serialize};

/// Surviving keys re-wrapped per read and write. On PostgreSQL each write joins its
/// page against the table, so larger pages mean fewer passes over it; 50,000 keys are
/// about 10 MB in memory.
const REWRAP_PAGE: u64 = 50_000;

/// The two passes of `Decommission::rewrap_below`, as their audit records name them: the
/// rotation itself, and the check for late keys just before the old epochs go.
const REWRAP_ROTATION: &str = "rotation";
const REWRAP_BEFORE_DESTROY: &str = "before-destroy";

/// What the rotation step keeps: the epoch it re-wraps under, and the epochs it retires.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Rotation {
    pub target_epoch: u32,
    pub retired_epochs: Vec<u32>,
    #[serde(default)]
    pub rewrapped: u64,
}

/// An erased artifact, as the certificate lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErasedArtifact {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub size_bytes: i64,
    /// The destroyed data key's identifier (it is bound to the blob id).
    pub key_id: String,
    pub kek_epoch: u32,
}

/// What verification found.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Verification {
    pub method: String,
    pub result: String,
    pub keys_checked: usize,
    pub epochs_tried: Vec<u32>,
    pub ciphertext_remaining: usize,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// How long a KEK rotation lease lasts unless renewed (each of the two steps renews it).
const ROTATION_LEASE: chrono::Duration = chrono::Duration::minutes(5);

/// How long a step waits for another instance's rotation before it reports waiting.
const ROTATION_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

fn system() -> Actor {
    Actor::system()
}

impl Services {
    /// Destroys the data keys of every artifact of the disabled versions.
    pub(super) async fn step_erase_keys(
        &self,
        r: &Retirement,
    ) -> Result<Option<String>, ServiceError> {
        let disabled = disabled_by(self, r).await?;
        let version_ids: Vec<i64> = disabled.iter().map(|d| d.version_id).collect();
        let versions: std::collections::HashMap<i64, String> = disabled
            .into_iter()
            .map(|d| (d.version_id, d.version))
            .collect();
        in_write_tx!(self, |tx| {
            let now = self.now();
            // A kill switch lifted a moment ago (a false alarm) stops the erasure here.
            let current = crate::store::retirements::find(tx.conn(), r.id).await?;
            if current.is_none_or(|c| c.state != crate::domain::RetirementState::Executing) {
                return Err(ServiceError::Conflict(format!(
                    "retirement {} is no longer executing; nothing is erased",
                    r.id
                )));
            }
            let artifacts = repo::artifacts_of(tx.conn(), &version_ids).await?;
            let erased = repo::erase(tx.conn(), r.id, &artifacts, now).await?;
            let listed: Vec<ErasedArtifact> = artifacts
                .iter()
                .map(|a: &ErasableArtifact| ErasedArtifact {
                    name: a.path.clone(),
                    version: versions.get(&a.version_id).cloned().unwrap_or_default(),
                    sha256: a.sha256.clone(),
                    size_bytes: a.size_bytes,
                    key_id: a.blob_id.clone(),
                    kek_epoch: a.kek_epoch,
                })
                .collect();
            let outcome = format!("{} data key(s) destroyed ({} newly)", listed.len(), erased);
            steps::finish_step(
                tx.conn(),
                r.id,
                DecommissionStep::EraseKeys,
                now,
                now,
                &outcome,
                Some(&to_json(&listed)),
            )
            .await?;
            let entry = AuditEntry::new(
                system().audit_identity(),
                Action::KeysErased,
                SubjectType::Retirement,
                r.id.to_string(),
            )
            .after(&listed);
            self.append_audit(tx, now, entry).await?;
            Ok(())
        })?;
        Ok(None)
    }

    /// Takes (or renews) the fleet's KEK rotation lease, waiting a while for another
    /// instance's rotation to finish: two erasures on two replicas rotate one after the
    /// other, never interleaved (each would create an epoch, re-wrap the survivors, and
    /// destroy the other's). `None` when it is still held elsewhere.
    async fn rotation_lease(&self) -> Result<Option<()>, ServiceError> {
        let db = self.store().reader();
        let holder = self.inner.instance.as_str();
        let deadline = std::time::Instant::now() + ROTATION_WAIT;
        loop {
            let now = self.now();
            let dead = fleet_repo::rotation_lease_holder(db)
                .await?
                .filter(|h| h != holder && super::super::holder_has_died(h));
            if fleet_repo::take_rotation_lease(
                db,
                holder,
                now,
                now + ROTATION_LEASE,
                dead.as_deref(),
            )
            .await?
            {
                return Ok(Some(()));
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Re-wraps every surviving data key under a fresh KEK epoch.
    pub(super) async fn step_rotate_kek(
        &self,
        r: &Retirement,
    ) -> Result<Option<String>, ServiceError> {
        if self.rotation_lease().await?.is_none() {
            return Ok(Some(
                "waiting for another instance's KEK rotation to finish".into(),
            ));
        }
        let kek = self.vault()?.kek.clone();
        let rotation = match self.rotation(r.id).await? {
            Some(rotation) => rotation,
            None => {
                // Another instance may have rotated since this one last looked.
                kek.refresh().map_err(ServiceError::internal)?;
                let target_epoch = kek.current_epoch() + 1;
                let rotation = Rotation {
                    target_epoch,
                    retired_epochs: kek
                        .epochs()
                        .into_iter()
                        .filter(|e| *e < target_epoch)
                        .collect(),
                    rewrapped: 0,
                };
                // Recorded before the key exists, so a crash after creating it resumes
                // with the same epoch instead of making another.
                let db = self.store().reader();
                steps::start_step(db, r.id, DecommissionStep::RotateKek, self.now(), None).await?;
                steps::set_data_once(db, r.id, DecommissionStep::RotateKek, &to_json(&rotation))
                    .await?;
                // Another run may have recorded first.
                self.rotation(r.id).await?.unwrap_or(rotation)
            }
        };
        kek.ensure_epoch(rotation.target_epoch)
            .map_err(ServiceError::internal)?;
        self.failpoints().hit("inside:rotate-kek")?;
        let rewrapped = self
            .rewrap_below(rotation.target_epoch, r.id, REWRAP_ROTATION)
            .await?;
        let done = Rotation {
            rewrapped,
            ..rotation
        };
        let now = self.now();
        steps::finish_step(
            self.store().reader(),
            r.id,
            DecommissionStep::RotateKek,
            now,
            now,
            &format!(
                "{rewrapped} surviving data key(s) re-wrapped under KEK epoch {}",
                done.target_epoch
            ),
            Some(&to_json(&done)),
        )
        .await?;
        Ok(None)
    }

    pub(crate) async fn rotation(
        &self,
        id: RetirementId,
    ) -> Result<Option<Rotation>, ServiceError> {
        Ok(self
            .decommission()
            .step(id, DecommissionStep::RotateKek)
            .await?
            .and_then(|s| s.data)
            .and_then(|d| serde_json::from_str(&d).ok()))
    }

    /// Re-wraps every surviving data key under an epoch below `target` in one
    /// transaction, with its audit record; returns how many. `phase` names the pass
    /// in that record.
    ///
    /// The audit record is written even when nothing was re-wrapped: it is what orders
    /// this pass after every upload in flight. An upload wraps inside its own write
    /// transaction and appends to the same audit chain, so the two cannot both commit
    /// against one chain head: one of them retries. Either the upload commits first (and
    /// is re-wrapped here), or it retries after this commits, and wraps again under
    /// `target`, whose key file exists before the first pass begins. Within one
    /// instance the write gate orders them anyway; the chain orders them across
    /// instances sharing a database, where an upload that wrapped under an old epoch
    /// could otherwise commit after the last pass and lose its key with that epoch.
    pub(crate) async fn rewrap_below(
        &self,
        target: u32,
        retirement: RetirementId,
        phase: &'static str,
    ) -> Result<u64, ServiceError> {
        let kek = self.vault()?.kek.clone();
        in_write_tx!(self, |tx| {
            let mut after = 0;
            let mut total = 0u64;
            let mut from = std::collections::BTreeMap::<u32, u64>::new();
            // Where the time goes, for the log: reading, re-wrapping, writing.
            let (mut read, mut crypto, mut write) = Default::default();
            loop {
                let t = std::time::Instant::now();
                let page = repo::wrapped_below(tx.conn(), target, after, REWRAP_PAGE).await?;
                read += t.elapsed();
                let t = std::time::Instant::now();
                let Some(last) = page.last() else { break };
                after = last.0;
                let kek = kek.clone();
                let rewrapped = tokio::task::spawn_blocking(move || {
                    page.into_iter()
                        .map(|(id, blob, epoch, bytes)| {
                            let wrapped =
                                kek.rewrap(&WrappedKey { epoch, bytes }, &blob, target)?;
                            Ok((id, epoch, wrapped))
                        })
                        .collect::<Result<Vec<_>, VaultError>>()
                })
                .await
                .map_err(ServiceError::internal)?
                .map_err(ServiceError::internal)?;
                crypto += t.elapsed();
                let t = std::time::Instant::now();
                for (_, epoch, _) in &rewrapped {
                    *from.entry(*epoch).or_default() += 1;
                }
                let rows: Vec<(i64, Vec<u8>)> = rewrapped
                    .into_iter()
                    .map(|(id, _, w)| (id, w.bytes))
                    .collect();
                total += repo::rewrap(tx.conn(), target, &rows).await?;
                write += t.elapsed();
            }
            if total > 0 {
                let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
                tracing::info!(
                    keys = total,
                    read_ms = ms(read),
                    rewrap_ms = ms(crypto),
                    write_ms = ms(write),
                    "surviving data keys re-wrapped under KEK epoch {target}"
                );
            }
            let entry = AuditEntry::new(
                system().audit_identity(),
                Action::KekRotated,
                SubjectType::Retirement,
                retirement.to_string(),
            )
            .after(&serde_json::json!({
                "phase": phase,
                "toEpoch": target,
                "rewrapped": total,
                "fromEpochs": from,
            }));
            self.append_audit(tx, self.now(), entry).await?;
            Ok(total)
        })
    }

    /// Destroys every KEK epoch below the rotation's target, once no surviving data key
    /// is wrapped under one (a late upload from another instance is re-wrapped first).
    pub(super) async fn step_destroy_kek(
        &self,
        r: &Retirement,
    ) -> Result<Option<String>, ServiceError> {
        let rotation = self.rotation(r.id).await?.ok_or_else(|| {
            ServiceError::internal(std::io::Error::other("the KEK rotation left no record"))
        })?;
        if self.rotation_lease().await?.is_none() {
            return Ok(Some(
                "waiting for another instance's KEK rotation to finish".into(),
            ));
        }
        let kek = self.vault()?.kek.clone();
        let late = self
            .rewrap_below(rotation.target_epoch, r.id, REWRAP_BEFORE_DESTROY)
            .await?;
        if late > 0 {
            tracing::warn!(
                retirement = r.id.0,
                late,
                "re-wrapped keys written during the rotation"
            );
        }
        let destroyed = kek
            .destroy_below(rotation.target_epoch)
            .map_err(ServiceError::internal)?;
        let now = self.now();
        in_write_tx!(self, |tx| {
            let outcome = format!(
                "KEK epoch(s) {:?} destroyed; surviving keys are under epoch {}",
                rotation.retired_epochs, rotation.target_epoch
            );
            steps::finish_step(
                tx.conn(),
                r.id,
                DecommissionStep::DestroyKek,
                now,
                now,
                &outcome,
                None,
            )
            .await?;
            let entry = AuditEntry::new(
                system().audit_identity(),
                Action::KekDestroyed,
                SubjectType::Retirement,
                r.id.to_string(),
            )
            .after(&serde_json::json!({
                "retiredEpochs": rotation.retired_epochs,
                "destroyedNow": destroyed,
                "currentEpoch": rotation.target_epoch,
            }));
            self.append_audit(tx, now, entry).await
        })?;
        fleet_repo::release_rotation_lease(self.store().reader(), &self.inner.instance).await?;
        Ok(None)
    }

    /// Deletes the ciphertext of every erased artifact.
    pub(super) async fn step_delete_ciphertext(
        &self,
        r: &Retirement,
    ) -> Result<Option<String>, ServiceError> {
        let blobs = self.vault()?.blobs.clone();
        let erased = repo::erased_keys(self.store().reader(), r.id).await?;
        for (i, key) in erased.iter().enumerate() {
            blobs
                .remove(&key.blob_id)
                .await
                .map_err(ServiceError::internal)?;
            if i == 0 {
                self.failpoints().hit("inside:delete-ciphertext")?;
            }
        }
        let now = self.now();
        in_write_tx!(self, |tx| {
            let outcome = format!("{} ciphertext blob(s) deleted", erased.len());
            steps::finish_step(
                tx.conn(),
                r.id,
                DecommissionStep::DeleteCiphertext,
                now,
                now,
                &outcome,
                None,
            )
            .await?;
            let entry = AuditEntry::new(
                system().audit_identity(),
                Action::CiphertextDeleted,
                SubjectType::Retirement,
                r.id.to_string(),
            )
            .after(&erased.iter().map(|k| &k.blob_id).collect::<Vec<_>>());
            self.append_audit(tx, now, entry).await
        })?;
        Ok(None)
    }

    /// Tries to open each erased data key with everything that remains (every KEK epoch
    /// still present, whatever epoch the wrapping names), and to read its ciphertext.
    /// Anything that opens fails the step, and no certificate is issued.
    pub(super) async fn step_verify_erasure(
        &self,
        r: &Retirement,
    ) -> Result<Option<String>, ServiceError> {
        let vault = self.vault()?.clone();
        let erased = repo::erased_keys(self.store().reader(), r.id).await?;
        let version_ids: Vec<i64> = disabled_by(self, r)
            .await?
            .iter()
            .map(|d| d.version_id)
            .collect();
        let still_wrapped = repo::artifacts_of(self.store().reader(), &version_ids)
            .await?
            .into_iter()
            .filter(|a| !a.wrapped_key.is_empty() || a.erased_at.is_none())
            .count();
        let epochs = vault.kek.epochs();
        let mut opened = Vec::new();
        let mut remaining = 0;
        for key in &erased {
            for &epoch in epochs.iter().chain(std::iter::once(&key.kek_epoch)) {
                let attempt = WrappedKey {
                    epoch,
                    bytes: key.wrapped_key.clone(),
                };
                if vault.kek.unwrap(&attempt, &key.blob_id).is_ok() {
                    opened.push(format!("{} under epoch {epoch}", key.blob_id));
                }
            }
            match vault.blobs.open(&key.blob_id).await {
                Err(VaultError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                _ => remaining += 1,
            }
        }
        if !opened.is_empty() || remaining > 0 || still_wrapped > 0 {
            return Err(ServiceError::internal(std::io::Error::other(format!(
                "erasure verification failed: {} key(s) still open ({}), {remaining} ciphertext blob(s) remain, {still_wrapped} artifact(s) keep a wrapped key",
                opened.len(),
                opened.join(", ")
            ))));
        }
        let now = self.now();
        let verification = Verification {
            method: "each destroyed data key's last wrapping was tried under every remaining \
                     KEK epoch and its own, and its ciphertext was looked for in the blob store"
                .into(),
            result: "passed".into(),
            keys_checked: erased.len(),
            epochs_tried: epochs,
            ciphertext_remaining: 0,
            at: now,
        };
        in_write_tx!(self, |tx| {
            let outcome = format!(
                "passed: none of {} destroyed key(s) opens under the remaining KEK epoch(s) {:?}; no ciphertext remains",
                verification.keys_checked, verification.epochs_tried
            );
            steps::finish_step(
                tx.conn(),
                r.id,
                DecommissionStep::VerifyErasure,
                now,
                now,
                &outcome,
                Some(&to_json(&verification)),
            )
            .await?;
            let entry = AuditEntry::new(
                system().audit_identity(),
                Action::ErasureVerified,
                SubjectType::Retirement,
                r.id.to_string(),
            )
            .after(&verification);
            self.append_audit(tx, now, entry).await
        })?;
        Ok(None)
    }
}
