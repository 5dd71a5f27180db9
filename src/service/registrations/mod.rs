//! Registration webhooks: sources (a CI/CD system, a deployment controller), each with
//! its own `whsec_` secret, and the batches they post to `/v1/hooks/registrations`.
//!
//! A batch is verified (Standard Webhooks signature and timestamp window), parsed whole,
//! and applied with its message id, so a redelivered message is applied once and an
//! invalid registration fails the whole batch with nothing written. Messages arriving
//! together commit together (`group`), the one way every registration is written.

use super::inventory::new_whsec;
use super::{ServiceError, Services, require_admin};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::{Consumer, ParseError};
use crate::ingest::registrations::{self, Registration};
use crate::ingest::standard_webhooks::{Headers, Message, Secret, WebhookError};
use crate::store::inventory::{self as inventory_repo, Entity};
use crate::store::webhook_sources::{self as repo, Source};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::{Arc, RwLock};

mod group;

pub(crate) use group::Job;

/// The enabled sources' secrets, opened, so verifying a message costs no database read.
/// Emptied when a source changes, here or (through the inventory change sequence, within
/// `inventory.poll_interval_ms`) on another instance.
#[derive(Default)]
pub(crate) struct SecretCache(RwLock<Option<OpenedSecrets>>);

/// Each enabled source with its secret, opened.
type OpenedSecrets = Arc<Vec<(Source, Secret)>>;

/// What this instance keeps for registration webhooks between calls.
#[derive(Default)]
pub(super) struct State {
    pub(super) secrets: SecretCache,
    /// Started on the first registration webhook: commits waiting messages together.
    /// Started again if it ever stops (a panic in a group), so registrations never
    /// meet a dead queue.
    pub(super) queue: std::sync::Mutex<Option<tokio::sync::mpsc::Sender<Job>>>,
    /// When webhook receipts were last pruned (Unix seconds).
    pub(super) receipts_pruned_at: std::sync::atomic::AtomicI64,
}

/// A source as shown to admins; its secret is shown once, at creation.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSourceInfo {
    pub name: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

impl From<&Source> for WebhookSourceInfo {
    fn from(s: &Source) -> Self {
        Self {
            name: s.name.clone(),
            enabled: s.enabled,
            created_at: s.created_at,
            created_by: s.created_by.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Applied {
        registrations: usize,
        edges: usize,
        revision: i64,
        /// Consumers the message declared otherwise but the source may not change
        /// (it did not create them), each with why; their links were still recorded.
        kept: Vec<String>,
    },
    /// This message id was applied before; nothing was done again.
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The message is not from a known source, or not fresh.
    #[error("{0}")]
    Unauthenticated(String),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

fn binding(name: &str) -> String {
    format!("webhook-source:{name}")
}

impl crate::service::Inventory<'_> {
    /// Registers a source and returns its `whsec_` secret, shown this once.
    pub async fn create_webhook_source(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<(WebhookSourceInfo, String), ServiceError> {
        let name = crate::domain::TokenName::parse(name)
            .map_err(|e| ParseError::new("source name", e.message))?;
        require_admin(actor, "register webhook sources")?;
        let secret = new_whsec();
        let sealed = self
            .service_key()
            .secret_sealer()
            .seal(&binding(name.as_str()), secret.as_bytes());
        let info = in_write_tx!(self, |tx| {
            if repo::find_by_name(tx.conn(), name.as_str())
                .await?
                .is_some()
            {
                return Err(ServiceError::Conflict(format!(
                    "a webhook source named {name} exists; names are never reused"
                )));
            }
            let now = self.now();
            let source = repo::insert(tx.conn(), name.as_str(), &sealed, now, &actor.name).await?;
            // Through the change sequence, other instances learn to open secrets afresh.
            inventory_repo::record_change(tx.conn(), now, Entity::WebhookSource, source.id).await?;
            let info = WebhookSourceInfo::from(&source);
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::WebhookSourceCreated,
                SubjectType::WebhookSource,
                name.as_str(),
            )
            .after(&info);
            self.append_audit(tx, now, entry).await?;
            Ok(info)
        })?;
        self.forget_webhook_secrets();
        Ok((info, secret))
    }

    pub async fn disable_webhook_source(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<WebhookSourceInfo, ServiceError> {
        require_admin(actor, "disable webhook sources")?;
        let info = in_write_tx!(self, |tx| {
            let source = repo::find_by_name(tx.conn(), name)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("no webhook source named {name}")))?;
            let before = WebhookSourceInfo::from(&source);
            repo::disable(tx.conn(), source.id).await?;
            inventory_repo::record_change(tx.conn(), self.now(), Entity::WebhookSource, source.id)
                .await?;
            let after = WebhookSourceInfo {
                enabled: false,
                ..before.clone()
            };
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::WebhookSourceDisabled,
                SubjectType::WebhookSource,
                name,
            )
            .before(&before)
            .after(&after);
            self.append_audit(tx, self.now(), entry).await?;
            Ok(after)
        })?;
        self.forget_webhook_secrets();
        Ok(info)
    }

    pub async fn webhook_sources(&self) -> Result<Vec<WebhookSourceInfo>, ServiceError> {
        Ok(repo::list(self.store().reader())
            .await?
            .iter()
            .map(WebhookSourceInfo::from)
            .collect())
    }

    pub(super) fn forget_webhook_secrets(&self) {
        *self
            .inner
            .registrations
            .secrets
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }

    async fn webhook_secrets(&self) -> Result<Arc<Vec<(Source, Secret)>>, ServiceError> {
        if let Some(cached) = self
            .inner
            .registrations
            .secrets
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(cached);
        }
        let sealer = self.service_key().secret_sealer();
        let mut opened = Vec::new();
        for source in repo::list(self.store().reader()).await? {
            if !source.enabled {
                continue;
            }
            let plain = sealer
                .open(&binding(&source.name), &source.sealed_secret)
                .map_err(ServiceError::internal)?;
            let text = std::str::from_utf8(&plain).map_err(ServiceError::internal)?;
            let secret = Secret::parse(text).map_err(ServiceError::internal)?;
            opened.push((source, secret));
        }
        let opened = Arc::new(opened);
        *self
            .inner
            .registrations
            .secrets
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(opened.clone());
        Ok(opened)
    }

    /// Which enabled source signed this message, if any.
    async fn signer_of(
        &self,
        message: &Message<'_>,
        body: &[u8],
    ) -> Result<Option<Source>, ServiceError> {
        // No reload when nothing matches: sources created or disabled anywhere reach every
        // instance through the change sequence, so a flood of forged signatures costs no
        // database read.
        let secrets = self.webhook_secrets().await?;
        Ok(secrets
            .iter()
            .find(|(_, s)| message.verify(s, body))
            .map(|(source, _)| source.clone()))
    }

    /// The enabled webhook source that signed this message, checked fresh (replay
    /// window) and authentic; its name and the message id.
    pub(crate) async fn authenticate_source<'a>(
        &self,
        headers: &Headers<'a>,
        body: &[u8],
    ) -> Result<(crate::store::webhook_sources::Source, &'a str), ReceiveError> {
        let settings = self.inventory_settings();
        let message = Message::parse(headers, self.now(), settings.webhook_tolerance_secs)
            .map_err(|e| ReceiveError::Unauthenticated(e.to_string()))?;
        let source = self
            .signer_of(&message, body)
            .await?
            .ok_or_else(|| ReceiveError::Unauthenticated(WebhookError::Signature.to_string()))?;
        Ok((source, message.id))
    }

    /// Verifies, parses and applies one registration webhook.
    pub async fn receive_registrations(
        &self,
        headers: Headers<'_>,
        body: &[u8],
    ) -> Result<Received, ReceiveError> {
        let received = self.receive_one(headers, body).await;
        let outcome = match &received {
            Ok(Received::Applied { .. }) => "applied",
            Ok(_) => "duplicate",
            Err(ReceiveError::Unauthenticated(_)) => "unauthenticated",
            Err(_) => "refused",
        };
        crate::prometheus::record_registrations(outcome, 1);
        received
    }

    async fn receive_one(
        &self,
        headers: Headers<'_>,
        body: &[u8],
    ) -> Result<Received, ReceiveError> {
        let settings = self.inventory_settings();
        let message = Message::parse(&headers, self.now(), settings.webhook_tolerance_secs)
            .map_err(|e| ReceiveError::Unauthenticated(e.to_string()))?;
        let source = self
            .signer_of(&message, body)
            .await?
            .ok_or_else(|| ReceiveError::Unauthenticated(WebhookError::Signature.to_string()))?;
        let batch = registrations::parse(body, settings.max_registrations)
            .map_err(|e| ServiceError::Invalid(ParseError::new("registration", e.to_string())))?;
        let received = self.apply_queued(source.clone(), message.id, batch).await?;
        if let Received::Applied {
            registrations,
            edges,
            ..
        } = &received
        {
            tracing::info!(source = %source.name, message = %message.id, registrations, edges, "registrations applied");
        }
        Ok(received)
    }

    /// Drops receipts no replay could need, at most once per tolerance window. A message
    /// accepted at time R carried a timestamp within the tolerance of R, so from
    /// R + 2 × tolerance on it is refused as stale before its id is looked up: its receipt
    /// has done its work. Without this the table grows by one row per message forever.
    async fn prune_receipts(&self) {
        let tolerance =
            i64::try_from(self.inventory_settings().webhook_tolerance_secs).unwrap_or(i64::MAX / 4);
        let now = self.now();
        if !super::claim_due(
            &self.inner.registrations.receipts_pruned_at,
            now.timestamp(),
            tolerance,
        ) {
            return;
        }
        let before = now - chrono::Duration::seconds(2 * tolerance);
        let pruned = in_write_tx!(self, |tx| {
            Ok(repo::prune_receipts(tx.conn(), before).await?)
        });
        match pruned {
            Ok(n) if n > 0 => tracing::debug!(pruned = n, "webhook receipts pruned"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning webhook receipts failed; retried later"),
        }
    }
}

/// The audit record of one applied message.
/// The audit record of a registration source changing a consumer it created.
fn consumer_changed_entry(origin_name: &str, before: &Consumer, after: &Consumer) -> AuditEntry {
    AuditEntry::new(
        (format!("webhook:{origin_name}").as_str(), "system"),
        Action::ConsumerUpdated,
        SubjectType::Consumer,
        before.name.as_str(),
    )
    .before(before)
    .after(after)
}

fn applied_entry(
    origin_name: &str,
    message_id: &str,
    batch: &[Registration],
    edges: usize,
) -> AuditEntry {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Applied<'a> {
        source: &'a str,
        message_id: &'a str,
        registrations: Vec<String>,
        edges: usize,
    }
    AuditEntry::new(
        (format!("webhook:{origin_name}").as_str(), "system"),
        Action::RegistrationsApplied,
        SubjectType::WebhookSource,
        origin_name,
    )
    .after(&Applied {
        source: origin_name,
        message_id,
        registrations: batch.iter().map(Registration::label).collect(),
        edges,
    })
}
