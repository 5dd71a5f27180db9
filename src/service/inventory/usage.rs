//! Observed usage (downloads with a bound token, traffic a scan saw): a consumer nobody
//! declared is discovered, a new edge audited, a repeat only counted.

use crate::audit::{Action, AuditEntry, SubjectType};
use crate::domain::ModelId;
use crate::domain::{
    Consumer, ConsumerKind, ConsumerName, Contacts, EdgeOrigin, Environment, ModelName, TeamName,
    Version, VersionRange,
};
use crate::graph::Link;
use crate::service::ServiceError;
use crate::store::inventory::{self as repo, Entity, NewConsumer, Sighting};
use crate::store::registry as registry_repo;
use std::sync::Arc;

use super::declare::describe;
use super::*;

impl crate::service::Inventory<'_> {
    /// Records that `consumer` used `model@version` (a download, or traffic a scan saw).
    /// A consumer nobody declared is created, marked discovered; a new edge or consumer
    /// is audited, a repeat only counted.
    pub async fn observe_usage(
        &self,
        consumer: &ConsumerName,
        model: &ModelName,
        version: Version,
        origin: EdgeOrigin,
        origin_name: &str,
        count: u64,
    ) -> Result<(), ServiceError> {
        in_write_tx!(self, |tx| {
            let (model_id, m) = registry_repo::find_model(tx.conn(), model)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("no model named {model}")))?;
            let usage = Usage {
                consumer,
                model,
                model_id: model_id.0,
                model_team: &m.owner_team,
                version,
                origin,
                origin_name,
                count,
                span: None,
            };
            self.record_usage(tx, self.now(), usage).await
        })?;
        self.after_inventory_commit().await;
        Ok(())
    }

    /// The body of [`Self::observe_usage`], inside the caller's transaction.
    pub(crate) async fn record_usage(
        &self,
        tx: &mut crate::store::WriteTx,
        now: chrono::DateTime<chrono::Utc>,
        u: Usage<'_>,
    ) -> Result<(), ServiceError> {
        let (consumer_id, discovered) = match repo::find_consumer(tx.conn(), u.consumer).await? {
            Some((id, _)) => (id, None),
            None => {
                // Nobody vouched for it: owned, until someone declares it, by the team of
                // the model it was seen using, who must hear of that model's retirement.
                let c = Consumer {
                    name: u.consumer.clone(),
                    kind: ConsumerKind::Other,
                    owner_team: u.model_team.clone(),
                    environment: Environment::parse("unknown")?,
                    contacts: Contacts::default(),
                    webhook_url: None,
                    discovered: true,
                };
                let id = repo::insert_consumer(
                    tx.conn(),
                    NewConsumer {
                        consumer: &c,
                        sealed_secret: None,
                        at: now,
                        by: &format!("{}:{}", u.origin, u.origin_name),
                    },
                )
                .await?;
                repo::record_change(tx.conn(), now, Entity::Consumer, id).await?;
                (id, Some(c))
            }
        };
        let link = Link::Uses {
            consumer: consumer_id,
            model: ModelId(u.model_id),
            range: Arc::new(VersionRange::exact(u.version)),
        };
        let (record, created) = repo::record_edge(
            tx.conn(),
            Sighting {
                link: &link,
                origin: u.origin,
                origin_name: u.origin_name,
                at: u.span.map_or(now, |(_, last)| last),
                since: u.span.map(|(first, _)| first),
                count: u.count,
            },
        )
        .await?;
        repo::record_change(tx.conn(), now, Entity::Edge, record.id).await?;
        let system = format!("{}:{}", u.origin, u.origin_name);
        if let Some(c) = &discovered {
            let entry = AuditEntry::new(
                (system.as_str(), "system"),
                Action::ConsumerDiscovered,
                SubjectType::Consumer,
                c.name.as_str(),
            )
            .after(c);
            self.append_audit(tx, now, entry).await?;
        }
        if created {
            let resolved = Resolved {
                link: link.clone(),
                from: u.consumer.to_string(),
                to: format!("{}@{}", u.model, u.version),
                teams: Vec::new(),
            };
            let view = describe(&resolved, &record);
            let entry = AuditEntry::new(
                (system.as_str(), "system"),
                Action::UsageObserved,
                SubjectType::InventoryEdge,
                format!("{} uses {}", view.from, view.to),
            )
            .after(&view);
            self.append_audit(tx, now, entry).await?;
        }
        Ok(())
    }
}

/// One observed use of a model version, to record.
pub(crate) struct Usage<'a> {
    pub consumer: &'a ConsumerName,
    pub model: &'a ModelName,
    pub model_id: i64,
    pub model_team: &'a TeamName,
    pub version: Version,
    pub origin: EdgeOrigin,
    pub origin_name: &'a str,
    pub count: u64,
    /// When the traffic happened (first, last), if the evidence says; otherwise now.
    pub span: Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
}
