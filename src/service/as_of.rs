//! A model as it was at a past instant (AISVS 3.4.4), rebuilt from the audit trail alone:
//! its facts, versions and statuses, artifacts (and which were erased), signatures (and
//! which were revoked), provenance, and the consumers declared or observed using it;
//! with the sequence numbers of the records the answer rests on. Every record read is
//! authenticated (hash and MAC) first: the past is told only from records that prove
//! themselves.

use super::ServiceError;
use crate::audit::{Action, AuditEntry, SealedRecord, SubjectType};
use crate::auth::{Actor, ActorKind};
use crate::domain::{ModelName, Role};
use crate::store::audit::{ModelSubjects, RecordFilter};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelAsOf {
    pub at: DateTime<Utc>,
    /// The model's facts as last recorded (`None`: not yet registered at `at`).
    pub model: Option<Value>,
    pub versions: Vec<VersionAsOf>,
    pub consumers: Vec<ConsumerAsOf>,
    /// The audit records the answer rests on, by sequence number.
    pub rests_on: Vec<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionAsOf {
    pub version: String,
    pub status: String,
    pub status_changed_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub provenance: Value,
    pub artifacts: Vec<ArtifactAsOf>,
    pub signature: Option<SignatureAsOf>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactAsOf {
    pub path: String,
    pub sha256: String,
    pub size_bytes: u64,
    /// Its data key was destroyed by a retirement (crypto-erased).
    pub erased: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureAsOf {
    pub signer: String,
    pub bundle_sha256: String,
    pub revoked: bool,
}

/// A consumer's declared or observed link to the model.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerAsOf {
    pub consumer: String,
    pub kind: String,
    /// The target as recorded: `model@range` or `model@version`.
    pub target: String,
}

impl super::Audit<'_> {
    /// `model` as the audit trail says it was at `at`. Auditors and governance, or the
    /// operator at the host; recorded as a read of the log.
    pub async fn model_as_of(
        &self,
        actor: &Actor,
        model: &str,
        at: DateTime<Utc>,
    ) -> Result<ModelAsOf, ServiceError> {
        let name = ModelName::parse(model)?;
        let acting = self.acting_on(actor, &name).await?;
        let actor = &acting;
        if actor.kind != ActorKind::LocalOperator {
            super::authorise::require(
                actor,
                &[Role::Auditor, Role::Governance],
                "reconstruct a model's past",
            )?;
        }
        let records = self.history_of(&name, at).await?;
        let mut state = Fold::default();
        for r in &records {
            state.apply(&name, r);
        }
        let answer = state.into_answer(at);
        let entry = AuditEntry::new(
            actor.audit_identity(),
            Action::AuditRead,
            SubjectType::AuditLog,
            format!("audit_log:model_as_of:{name}"),
        )
        .after(&serde_json::json!({ "model": name.as_str(), "at": at, "restsOn": answer.rests_on.len() }));
        in_write_tx!(self, |tx| {
            self.append_audit(tx, self.now(), entry.clone()).await
        })?;
        Ok(answer)
    }

    /// Every authenticated record about the model up to `at` (inclusive): its own, its
    /// versions' and artifacts', its retirements', and the inventory's links to it.
    async fn history_of(
        &self,
        name: &ModelName,
        at: DateTime<Utc>,
    ) -> Result<Vec<SealedRecord>, ServiceError> {
        let db = self.store().reader();
        let retirements = match crate::store::registry::find_model(db, name).await? {
            Some((id, _)) => crate::store::retirements::of_model(db, id).await?,
            None => Vec::new(),
        };
        let filter = RecordFilter {
            about_model: Some(ModelSubjects {
                model: name.to_string(),
                retirements: retirements.iter().map(|r| r.id.to_string()).collect(),
                inventory_links: true,
            }),
            until: Some(at + chrono::Duration::microseconds(1)),
            ..Default::default()
        };
        self.authenticated_records(&filter, 0).await
    }
}

/// The state folded from records in sequence order.
#[derive(Default)]
struct Fold {
    model: Option<Value>,
    versions: BTreeMap<String, VersionAsOf>,
    consumers: std::collections::BTreeSet<ConsumerAsOf>,
    rests_on: Vec<i64>,
}

impl Fold {
    fn apply(&mut self, name: &ModelName, r: &SealedRecord) {
        let after = parse(r.after_state.as_deref());
        let used = match Action::parse(&r.action) {
            Some(Action::ModelCreated | Action::ModelUpdated) => {
                self.model = after;
                true
            }
            Some(Action::VersionCreated | Action::VersionStatusChanged) => self.version(after),
            Some(Action::ModelRolledBack) => self.rolled_back(after, r.recorded_at),
            Some(Action::ArtifactUploaded) => self.artifact(after),
            Some(Action::SignatureAttached) => self.signature(&r.subject, after),
            Some(Action::SignaturesRevoked) => self.revoked(name, after),
            Some(Action::KeysErased) => self.erased(after),
            Some(Action::EdgeDeclared | Action::UsageObserved) => self.linked(name, after),
            Some(Action::EdgeRemoved) => self.unlinked(name, parse(r.before_state.as_deref())),
            _ => false,
        };
        if used {
            self.rests_on.push(r.seq);
        }
    }

    fn version(&mut self, after: Option<Value>) -> bool {
        let Some(v) = after else { return false };
        let Some(version) = text(&v, "version") else {
            return false;
        };
        let entry = self.versions.entry(version.clone()).or_default();
        entry.version = version;
        entry.status = text(&v, "status").unwrap_or_default();
        entry.status_changed_at = v
            .get("statusChangedAt")
            .and_then(|t| serde_json::from_value(t.clone()).ok());
        entry.created_by = text(&v, "createdBy").unwrap_or_default();
        entry.provenance = v.get("provenance").cloned().unwrap_or(Value::Null);
        true
    }

    /// A rollback records the version it put back in production on the model's record
    /// (the version it displaced has a status change of its own).
    fn rolled_back(&mut self, after: Option<Value>, at: DateTime<Utc>) -> bool {
        let Some(version) = after.as_ref().and_then(|a| text(a, "production")) else {
            return false;
        };
        let Some(v) = self.versions.get_mut(&version) else {
            return false;
        };
        v.status = "production".to_owned();
        v.status_changed_at = Some(at);
        true
    }

    fn artifact(&mut self, after: Option<Value>) -> bool {
        // The upload record is the artifact's facts, flattened, with its key's names.
        let Some(a) = after.as_ref() else {
            return false;
        };
        let (Some(version), Some(path)) = (text(a, "version"), text(a, "path")) else {
            return false;
        };
        let Some(v) = self.versions.get_mut(&version) else {
            return false;
        };
        v.artifacts.retain(|x| x.path != path);
        v.artifacts.push(ArtifactAsOf {
            path,
            sha256: text(a, "sha256").unwrap_or_default(),
            size_bytes: a.get("sizeBytes").and_then(Value::as_u64).unwrap_or(0),
            erased: false,
        });
        true
    }

    fn signature(&mut self, subject: &str, after: Option<Value>) -> bool {
        let (Some(after), Some((_, version))) = (after, subject.split_once('@')) else {
            return false;
        };
        let Some(v) = self.versions.get_mut(version) else {
            return false;
        };
        v.signature = Some(SignatureAsOf {
            signer: text(&after, "signer").unwrap_or_default(),
            bundle_sha256: text(&after, "bundleSha256").unwrap_or_default(),
            revoked: false,
        });
        true
    }

    fn revoked(&mut self, name: &ModelName, after: Option<Value>) -> bool {
        let mut used = false;
        for entry in after
            .as_ref()
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if text(entry, "model").as_deref() != Some(name.as_str()) {
                continue;
            }
            let version = text(entry, "version").unwrap_or_default();
            if let Some(sig) = self
                .versions
                .get_mut(&version)
                .and_then(|v| v.signature.as_mut())
            {
                sig.revoked = true;
                used = true;
            }
        }
        used
    }

    fn erased(&mut self, after: Option<Value>) -> bool {
        let mut used = false;
        for entry in after
            .as_ref()
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(version), Some(path)) = (text(entry, "version"), text(entry, "name")) else {
                continue;
            };
            let artifacts = self.versions.get_mut(&version).map(|v| &mut v.artifacts);
            for a in artifacts.into_iter().flatten().filter(|a| a.path == path) {
                a.erased = true;
                used = true;
            }
        }
        used
    }

    fn linked(&mut self, name: &ModelName, after: Option<Value>) -> bool {
        match after.as_ref().and_then(|v| link_of(name, v)) {
            Some(link) => self.consumers.insert(link),
            None => false,
        }
    }

    fn unlinked(&mut self, name: &ModelName, before: Option<Value>) -> bool {
        let mut used = false;
        for view in before
            .as_ref()
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(link) = link_of(name, view) {
                used |= self.consumers.remove(&link);
            }
        }
        used
    }

    fn into_answer(self, at: DateTime<Utc>) -> ModelAsOf {
        ModelAsOf {
            at,
            model: self.model,
            versions: self.versions.into_values().collect(),
            consumers: self.consumers.into_iter().collect(),
            rests_on: self.rests_on,
        }
    }
}

/// The link an inventory edge record describes, when its target is this model.
fn link_of(name: &ModelName, view: &Value) -> Option<ConsumerAsOf> {
    let target = text(view, "to")?;
    let (model, _) = target.split_once('@')?;
    (model == name.as_str()).then(|| ConsumerAsOf {
        consumer: text(view, "from").unwrap_or_default(),
        kind: text(view, "kind").unwrap_or_default(),
        target,
    })
}

fn parse(state: Option<&str>) -> Option<Value> {
    state.and_then(|s| serde_json::from_str(s).ok())
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}
