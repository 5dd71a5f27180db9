//! Artifacts of a version: streamed in, encrypted under a fresh data key, streamed out
//! verified (AISVS 3.1.2, 3.3.3).
//!
//! Upload: the request body is cut into chunks on the async side, one blocking worker
//! hashes them (SHA-256, the digest the OpenSSF model-signing format uses) and another
//! seals and writes them, so memory stays flat for any size. The blob becomes visible
//! only when complete, and the artifact row (with the wrapped data key) and its audit
//! record commit together afterwards; on any failure the blob is removed.
//!
//! Download: a blocking worker reads, authenticates and decrypts chunk by chunk, while a
//! second one hashes the plaintext on the other core before releasing each chunk; the
//! final chunk is released only once the whole digest matches, so a client that reads to
//! the end has the exact bytes or an error, never altered data.

mod download;
mod upload;

use super::registry::require_team_owner;
use super::{ServiceError, Services};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::{
    ArtifactKind, ArtifactPath, LifecycleStatus, ModelName, RegisteredVersion, Sha256Digest,
    Version,
};
use crate::store::artifacts::{self as repo, StoredArtifact};
use crate::store::registry::{self as registry_repo, VersionId};
use crate::vault::WrappedKey;
use chrono::{DateTime, Utc};
use download::{DigestCheck, PlainChunks, decrypt_chunks, start_decrypting};
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use upload::{Sealed, seal_body};

/// The largest artifact accepted: 1 TiB.
pub const MAX_ARTIFACT_BYTES: u64 = 1 << 40;
/// Chunks in flight between the async side and the crypto worker.
const PIPELINE_DEPTH: usize = 8;

/// An artifact as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactInfo {
    pub model: String,
    pub version: String,
    pub path: String,
    pub kind: ArtifactKind,
    pub size_bytes: u64,
    pub sha256: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

impl ArtifactInfo {
    fn of(model: &ModelName, version: Version, a: &StoredArtifact) -> Self {
        Self {
            model: model.to_string(),
            version: version.to_string(),
            path: a.path.to_string(),
            kind: a.kind,
            size_bytes: a.size_bytes,
            sha256: a.sha256.to_string(),
            created_at: a.created_at,
            created_by: a.created_by.clone(),
        }
    }
}

/// What the audit trail keeps of an upload: enough to name the key it would take to erase it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UploadRecord<'a> {
    #[serde(flatten)]
    artifact: &'a ArtifactInfo,
    blob_id: &'a str,
    kek_epoch: u32,
}

impl super::Artifacts<'_> {
    pub(super) async fn locate_version(
        &self,
        conn: &impl crate::store::Conn,
        model: &ModelName,
        version: Version,
    ) -> Result<(crate::domain::RegisteredModel, VersionId, RegisteredVersion), ServiceError> {
        let (model_id, registered) = registry_repo::find_model(conn, model)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no model named {model}")))?;
        let (version_id, v) = registry_repo::find_version(conn, model_id, model, version)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound(format!("model {model} has no version {version}"))
            })?;
        Ok((registered, version_id, v))
    }

    /// Checks that `actor` may add `path` to the version now.
    async fn check_upload(
        &self,
        conn: &impl crate::store::Conn,
        actor: &Actor,
        model: &ModelName,
        version: Version,
        path: &ArtifactPath,
    ) -> Result<VersionId, ServiceError> {
        let (registered, version_id, v) = self.locate_version(conn, model, version).await?;
        require_team_owner(actor, &registered.owner_team, &format!("model {model}"))?;
        if v.status != LifecycleStatus::Development {
            return Err(ServiceError::Conflict(format!(
                "{model}@{version} is {}; artifacts can be added only while a version is in development, and are immutable once it is promoted",
                v.status
            )));
        }
        if repo::find(conn, version_id, path).await?.is_some() {
            return Err(ServiceError::Conflict(format!(
                "{model}@{version} already has an artifact at {path}; artifacts are never overwritten"
            )));
        }
        Ok(version_id)
    }

    /// Streams `body` into the vault as the artifact `path` of a version in development.
    pub async fn upload_artifact<S, B, E>(
        &self,
        actor: &Actor,
        model: &str,
        version: &str,
        path: &str,
        kind: Option<&str>,
        mut body: S,
    ) -> Result<ArtifactInfo, ServiceError>
    where
        S: Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let model = ModelName::parse(model)?;
        let version = Version::parse(version)?;
        let path = ArtifactPath::parse(path)?;
        let kind = kind
            .map(ArtifactKind::parse)
            .transpose()?
            .unwrap_or(ArtifactKind::Other);
        let acting = self.acting_on(actor, &model).await?;
        let actor = &acting;
        // Refuse before reading a byte of the body.
        self.check_upload(self.store().reader(), actor, &model, version, &path)
            .await?;

        let vault = self.vault()?.clone();
        let Sealed {
            blob_id,
            size_bytes,
            sha256,
            data_key,
        } = seal_body(&vault, &mut body, self.failpoints().clone()).await?;

        let mut stored = StoredArtifact {
            path: path.clone(),
            kind,
            size_bytes,
            sha256: Sha256Digest::parse(&sha256)?,
            blob_id: blob_id.clone(),
            kek_epoch: 0,
            wrapped_key: Vec::new(),
            created_at: self.now(),
            created_by: actor.name.clone(),
        };
        let info = ArtifactInfo::of(&model, version, &stored);
        let committed = in_write_tx!(self, |tx| {
            let version_id = self
                .check_upload(tx.conn(), actor, &model, version, &path)
                .await?;
            // Wrapped inside the transaction, under the epoch current now: a KEK rotation
            // re-wraps in a transaction of its own, so this row is either re-wrapped by
            // it or wrapped under the new epoch, never left under a destroyed one.
            let wrapped = vault
                .kek
                .wrap(&data_key, &blob_id)
                .map_err(ServiceError::internal)?;
            stored.kek_epoch = wrapped.epoch;
            stored.wrapped_key = wrapped.bytes;
            repo::insert(tx.conn(), version_id, &stored).await?;
            let record = UploadRecord {
                artifact: &info,
                blob_id: &blob_id,
                kek_epoch: stored.kek_epoch,
            };
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::ArtifactUploaded,
                SubjectType::Artifact,
                format!("{model}@{version}/{path}"),
            )
            .after(&record);
            self.append_audit(tx, stored.created_at, entry).await
        });
        // Tests lose the commit's answer here, as a dropped connection would.
        let committed = committed.and_then(|()| {
            self.failpoints()
                .hit("after-commit:upload")
                .map_err(ServiceError::from)
        });
        if let Err(e) = committed {
            self.discard_blob_unless_committed(&blob_id).await;
            return Err(e);
        }
        tracing::info!(artifact = %format!("{model}@{version}/{path}"), size_bytes, actor = %actor.name, "artifact uploaded");
        Ok(info)
    }

    /// Removes the blob of an upload whose commit failed, unless its row exists after
    /// all: a commit whose answer was lost (the connection dropped during COMMIT) may have
    /// committed, and removing the blob would leave a row naming nothing. When that cannot
    /// be told, the blob stays (an orphan costs disk; a lost artifact costs the model).
    async fn discard_blob_unless_committed(&self, blob_id: &str) {
        let Ok(vault) = self.vault() else { return };
        match repo::blob_in_use(self.store().reader(), blob_id).await {
            Ok(false) => {
                if let Err(cleanup) = vault.blobs.remove(blob_id).await {
                    tracing::error!(blob = %blob_id, error = %cleanup, "could not remove the blob of a failed upload");
                }
            }
            Ok(true) => {
                tracing::warn!(blob = %blob_id, "the upload's commit reported an error but its row exists; the blob is kept");
            }
            Err(e) => {
                tracing::error!(blob = %blob_id, error = %e, "could not tell whether a failed upload committed; its blob is kept");
            }
        }
    }

    pub async fn list(
        &self,
        model: &str,
        version: &str,
    ) -> Result<Vec<ArtifactInfo>, ServiceError> {
        let model = ModelName::parse(model)?;
        let version = Version::parse(version)?;
        let db = self.store().reader();
        let (_, version_id, _) = self.locate_version(db, &model, version).await?;
        Ok(repo::list(db, version_id)
            .await?
            .iter()
            .map(|a| ArtifactInfo::of(&model, version, a))
            .collect())
    }

    /// Opens an artifact for reading: its facts, the pending retirement that covers its
    /// version (for the response's Sunset headers), and its plaintext as a stream of
    /// verified chunks. An integrity failure before the first byte is an error here; one later ends
    /// the stream with an error. Either way the refusal is recorded in the audit log.
    pub async fn open_artifact(
        &self,
        actor: &Actor,
        model: &str,
        version: &str,
        path: &str,
    ) -> Result<
        (
            ArtifactInfo,
            Option<crate::domain::Retirement>,
            impl Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
        ),
        ServiceError,
    > {
        let model = ModelName::parse(model)?;
        let version = Version::parse(version)?;
        let path = ArtifactPath::parse(path)?;
        let subject = format!("{model}@{version}/{path}");
        self.refuse_if_retired(actor, &model, version, &subject)
            .await?;
        // The retirement covering this version, if one is pending: read once, for the
        // levers a consumer's download meets and for the Sunset headers.
        let pending = match self
            .retirements()
            .pending_retirement_covering(&model, version)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "looking up a pending retirement for a download failed");
                None
            }
        };
        if let (Some(consumer), Some(r)) = (&actor.consumer, &pending)
            && let Err(refused) = self
                .retirements()
                .refuse_by_levers(r, version, consumer)
                .await
        {
            if matches!(
                refused,
                ServiceError::Gone(_) | ServiceError::BrownedOut { .. }
            ) {
                self.record_download_refusal(actor, &subject, &refused.to_string())
                    .await;
            }
            return Err(refused);
        }
        let db = self.store().reader();
        let (_, version_id, v) = self.locate_version(db, &model, version).await?;
        let stored = repo::find(db, version_id, &path).await?.ok_or_else(|| {
            ServiceError::NotFound(format!("{model}@{version} has no artifact at {path}"))
        })?;
        let info = ArtifactInfo::of(&model, version, &stored);
        // What has been promoted is served only under a signature that still verifies.
        if matches!(
            v.status,
            LifecycleStatus::Staging | LifecycleStatus::Production
        ) && let Err(reason) = self
            .registry()
            .check_version_signature(db, version_id)
            .await?
        {
            let reason = format!("{model}@{version}: {reason}");
            return Err(self.refuse_download(actor, &subject, &reason).await);
        }
        if stored.wrapped_key.is_empty() {
            // Erased outside a retirement: a restored backup's artifacts whose KEK epoch
            // was destroyed after the backup (see `restore.rs`).
            let why = format!("{subject} was crypto-erased: its data key no longer exists");
            self.record_download_refusal(actor, &subject, &why).await;
            return Err(ServiceError::Gone(why));
        }
        let vault = self.vault()?;
        let mut plain = match start_decrypting(vault, &stored).await {
            Ok(rx) => rx,
            Err(reason) => return Err(self.refuse_download(actor, &subject, &reason).await),
        };
        // Wait for the first chunk, so that a blob that fails at once gets a proper error response.
        let first = plain
            .recv()
            .await
            .unwrap_or_else(|| Err("the decryption worker stopped".into()));
        let first = match first {
            Ok(chunk) => chunk,
            Err(reason) => return Err(self.refuse_download(actor, &subject, &reason).await),
        };
        self.note_download(actor, &model, version, &subject, pending.as_ref())
            .await;
        let rest = self.rest_of_stream(actor, subject, plain);
        Ok((
            info,
            pending,
            futures_util::stream::iter([Ok(first.into_bytes())]).chain(rest),
        ))
    }

    /// The kill switch comes first: a retired version is not served, whoever asks. Read
    /// from the database on every download, so a switch pulled through any instance holds
    /// on all of them from its commit. Who still reaches for a retired model is what a
    /// decommissioning must find, so the refusal is recorded.
    async fn refuse_if_retired(
        &self,
        actor: &Actor,
        model: &ModelName,
        version: Version,
        subject: &str,
    ) -> Result<(), ServiceError> {
        let Some(d) = self.decommission().disabled_version(model, version).await? else {
            return Ok(());
        };
        let why = format!(
            "{model}@{version} was retired and is no longer served (disabled {} by retirement {}): {}",
            d.disabled_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            d.retirement_id
                .map_or_else(|| "-".to_owned(), |r| r.to_string()),
            d.reason
        );
        self.record_download_refusal(actor, subject, &why).await;
        Err(ServiceError::Gone(why))
    }

    /// What a download that has started tells the rest of sunset; none of it may cost the
    /// client its download, so failures are logged, not returned. A bound token's download
    /// is evidence that its consumer uses this version (AISVS 3.1.5), and with `pending`
    /// (the retirement covering this version) a download during the notice period is
    /// evidence too (the caller may be a dependent
    /// nobody knew of, who must be told at once): checked before the body flows, so the
    /// notice is in the outbox when the client has its first byte.
    async fn note_download(
        &self,
        actor: &Actor,
        model: &ModelName,
        version: Version,
        subject: &str,
        pending: Option<&crate::domain::Retirement>,
    ) {
        if let Some(consumer) = &actor.consumer
            && let Err(e) = self
                .inventory()
                .observe_usage(
                    consumer,
                    model,
                    version,
                    crate::domain::EdgeOrigin::Download,
                    &actor.name,
                    1,
                )
                .await
        {
            tracing::error!(%consumer, artifact = %subject, error = %e, "could not record a download as observed usage");
        }
        if let Some(r) = pending
            && actor.consumer.is_some()
            && let Err(e) = self
                .retirements()
                .check_retirement(r.id, crate::domain::FoundBy::Download)
                .await
        {
            tracing::warn!(retirement = r.id.0, error = %e, "checking a retirement after a download failed");
        }
    }

    /// The chunks after the first, as the verifying worker releases them; a failure ends
    /// the stream with an error and is recorded as a refused download.
    fn rest_of_stream(
        &self,
        actor: &Actor,
        subject: String,
        plain: PlainChunks,
    ) -> impl Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
        let services = Services::clone(self);
        let actor = actor.clone();
        futures_util::stream::unfold(Some(plain), move |rx| {
            let services = services.clone();
            let actor = actor.clone();
            let subject = subject.clone();
            async move {
                let mut rx = rx?;
                match rx.recv().await? {
                    Ok(chunk) => Some((Ok(chunk.into_bytes()), Some(rx))),
                    Err(reason) => {
                        let error = services
                            .artifacts()
                            .refuse_download(&actor, &subject, &reason)
                            .await;
                        Some((Err(std::io::Error::other(error.to_string())), None))
                    }
                }
            }
        })
    }

    /// Decrypts every artifact of a version and checks its SHA-256, discarding the
    /// plaintext: `Ok(())`, or what failed. Reads whole blobs, so it is for rare,
    /// deliberate moments such as a rollback.
    pub(super) async fn verify_artifacts(
        &self,
        version: VersionId,
    ) -> Result<Result<(), String>, ServiceError> {
        let vault = self.vault()?.clone();
        for stored in repo::list(self.store().reader(), version).await? {
            let wrapped = WrappedKey {
                epoch: stored.kek_epoch,
                bytes: stored.wrapped_key.clone(),
            };
            let opened = match vault.kek.unwrap(&wrapped, &stored.blob_id) {
                Ok(key) => vault
                    .blobs
                    .open(&stored.blob_id)
                    .await
                    .map(|blob| (key, blob)),
                Err(e) => Err(e),
            };
            let (key, blob) = match opened {
                Ok(v) => v,
                Err(e) => return Ok(Err(format!("{}: {e}", stored.path))),
            };
            let expected = stored.sha256.to_string();
            let context = stored.blob_id.clone();
            let checked = tokio::task::spawn_blocking(move || {
                let mut digest = DigestCheck::new(expected);
                let mut failed = None;
                decrypt_chunks(&key, context.as_bytes(), (blob, None), |chunk, last| {
                    failed = digest.check(&chunk, last).err();
                    failed.is_none()
                })?;
                failed.map_or(Ok(()), Err)
            })
            .await
            .map_err(ServiceError::internal)?;
            if let Err(reason) = checked {
                return Ok(Err(format!("{}: {reason}", stored.path)));
            }
        }
        Ok(Ok(()))
    }

    /// Records a refused download and returns the error that says why.
    async fn refuse_download(&self, actor: &Actor, subject: &str, reason: &str) -> ServiceError {
        tracing::error!(artifact = %subject, actor = %actor.name, %reason, "artifact download refused");
        self.record_download_refusal(actor, subject, reason).await;
        ServiceError::Integrity(format!(
            "{subject} failed its integrity check and is not served: {reason}"
        ))
    }

    async fn record_download_refusal(&self, actor: &Actor, subject: &str, reason: &str) {
        let entry = AuditEntry::new(
            actor.audit_identity(),
            Action::ArtifactDownloadRefused,
            SubjectType::Artifact,
            subject,
        )
        .after(&serde_json::json!({ "reason": reason }));
        let recorded = in_write_tx!(self, |tx| {
            self.append_audit(tx, self.now(), entry.clone()).await
        });
        if let Err(e) = recorded {
            tracing::error!(error = %e, "could not record a refused download");
        }
    }
}
