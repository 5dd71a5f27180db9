//! The consumer inventory (AISVS 3.1.5): declaring consumers and their edges, recording
//! observed usage, keeping this instance's graph current, and answering questions.
//!
//! Every change commits with an inventory revision (`store::inventory`); after its
//! commit, the writer brings its own graph up to date before answering, so a client
//! reads its own writes. Other instances catch up from the same sequence on a short
//! poll (`Services::follow_inventory`).

use super::{ServiceError, Services};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::config::InventorySettings;
use crate::domain::{
    Consumer, ConsumerKind, ConsumerName, Contacts, Derivation, EdgeKind, EdgeOrigin, Environment,
    EvidenceRemover, ModelName, Role, TeamName, Version, VersionRange, WebhookUrl,
};
use crate::graph::{
    Answer, ConsumerId, EdgeRecord, Impact, InventoryGraph, Link, Query, VersionId,
};
use crate::store::inventory::{self as repo, Change, Entity, NewConsumer, Sighting};
use crate::store::{Conn, registry as registry_repo};
use base64::Engine;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// This instance's graph and how it follows the database.
pub(crate) struct Inventory {
    graph: RwLock<InventoryGraph>,
    /// One refresh at a time, so changes apply in order.
    refresh: tokio::sync::Mutex<()>,
    settings: InventorySettings,
    revision: tokio::sync::watch::Sender<i64>,
    /// Committed changes as this instance applies them, for subscriptions.
    events: tokio::sync::broadcast::Sender<InventoryEvent>,
    /// Commands that only write (the CLI) never load the graph, and need not follow it.
    loaded: std::sync::atomic::AtomicBool,
    /// Set when the graph met a change referring to something it lacks, so it missed one;
    /// cleared only once it has been loaded again whole. Until then every refresh tries
    /// the load, so a load that fails (the database away for a moment) is retried rather
    /// than leaving the graph short of what it missed.
    needs_reload: std::sync::atomic::AtomicBool,
}

impl Inventory {
    pub(crate) fn new(settings: InventorySettings) -> Self {
        Self {
            loaded: std::sync::atomic::AtomicBool::new(false),
            needs_reload: std::sync::atomic::AtomicBool::new(false),
            graph: RwLock::new(InventoryGraph::new()),
            refresh: tokio::sync::Mutex::new(()),
            settings,
            revision: tokio::sync::watch::channel(0).0,
            events: tokio::sync::broadcast::channel(1024).0,
        }
    }

    /// Whether this instance knows it missed a change and has not yet reloaded whole.
    pub(crate) fn is_behind(&self) -> bool {
        self.needs_reload.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// One committed inventory change, as a subscription sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryEvent {
    pub revision: i64,
    /// `consumer`, `edge`, `model` or `version`; `graph` when the graph was loaded again
    /// whole (for every model: ask again).
    pub entity: &'static str,
    /// Whether the thing was created or changed (true) or removed (false).
    pub present: bool,
    /// The models whose dependents this change can alter.
    pub models: Arc<std::collections::BTreeSet<ModelName>>,
}

/// What a consumer is declared as.
#[derive(Debug, Clone, Default)]
pub struct ConsumerInput {
    pub name: String,
    pub kind: String,
    pub owner_team: String,
    pub environment: String,
    pub contacts: Vec<String>,
    /// Where notices go; a signing secret is generated the first time one is set.
    pub webhook_url: Option<String>,
}

/// A declared consumer, and its notice-signing secret when one was just made.
#[derive(Debug, Clone)]
pub struct DeclaredConsumer {
    pub consumer: Consumer,
    pub created: bool,
    /// `whsec_…`, shown once.
    pub webhook_secret: Option<String>,
}

/// How a question is asked, before bounds are applied.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    pub transitive: bool,
    pub max_depth: Option<u32>,
    pub include_stale: bool,
    pub limit: Option<usize>,
}

/// One side of an edge to declare or remove.
#[derive(Debug, Clone)]
pub enum EdgeSpec {
    Uses {
        consumer: String,
        model: String,
        version: String,
    },
    DependsOn {
        consumer: String,
        target: String,
    },
    DerivedFrom {
        model: String,
        version: String,
        parent_model: String,
        parent_version: String,
        derivation: Option<String>,
    },
}

/// An edge as audit records and answers show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EdgeView {
    pub kind: EdgeKind,
    pub from: String,
    pub to: String,
    pub range: Option<String>,
    pub derivation: Option<Derivation>,
    pub origin: EdgeOrigin,
    pub origin_name: String,
    pub first_seen: chrono::DateTime<chrono::Utc>,
    pub last_seen: chrono::DateTime<chrono::Utc>,
    pub observations: u64,
}

/// A link resolved to database ids, with the names that describe it.
pub(crate) struct Resolved {
    pub link: Link,
    pub from: String,
    pub to: String,
    /// The teams whose owners may change it.
    pub teams: Vec<TeamName>,
}

impl Services {
    pub(crate) fn inventory_settings(&self) -> &InventorySettings {
        &self.inner.inventory.settings
    }

    /// Loads the graph from the database; done once at start.
    pub async fn load_inventory(&self) -> Result<(), ServiceError> {
        let _one = self.inner.inventory.refresh.lock().await;
        let fresh = repo::load(self.store().reader()).await?;
        let revision = fresh.revision();
        tracing::info!(
            revision,
            consumers = fresh.consumer_count(),
            edges = fresh.edge_count(),
            "inventory graph loaded"
        );
        *self.write_graph() = fresh;
        self.inner
            .inventory
            .loaded
            .store(true, std::sync::atomic::Ordering::Release);
        self.inner.inventory.revision.send_replace(revision);
        Ok(())
    }

    /// Applies every change committed since the graph's revision; returns the revision
    /// now reached. A change that refers to something the graph lacks means it missed
    /// one, and the graph is loaded again whole (here, or on the next refresh if that
    /// load fails).
    pub async fn refresh_inventory(&self) -> Result<i64, ServiceError> {
        let _one = self.inner.inventory.refresh.lock().await;
        if !self
            .inner
            .inventory
            .loaded
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Ok(self.read_graph().revision());
        }
        let db = self.store().reader();
        loop {
            if self.inner.inventory.needs_reload.load(Ordering::Acquire) {
                let fresh = repo::load(db).await?;
                *self.write_graph() = fresh;
                self.inner
                    .inventory
                    .needs_reload
                    .store(false, Ordering::Release);
                let revision = self.read_graph().revision();
                tracing::info!(revision, "inventory graph loaded again");
                // Subscribers cannot tell what changed across a whole load: they are
                // told so, whatever model they follow, and ask again.
                let _ = self.inner.inventory.events.send(InventoryEvent {
                    revision,
                    entity: "graph",
                    present: true,
                    models: Arc::new(std::collections::BTreeSet::new()),
                });
            }
            let from = self.read_graph().revision();
            let changes = repo::changes_after(db, from, 500).await?;
            let Some(last) = changes.last().map(|c| c.revision) else {
                break;
            };
            // Revisions commit without gaps, so a gap means the changes this graph still
            // needed were pruned (`inventory.change_retention_days`): load it whole.
            if changes.first().is_some_and(|c| c.revision != from + 1) {
                tracing::warn!(
                    revision = from,
                    "the changes after this graph's revision were pruned; reloading it"
                );
                self.inner
                    .inventory
                    .needs_reload
                    .store(true, Ordering::Release);
                continue;
            }
            let (updates, sources_changed) = read_updates(db, &changes).await?;
            if sources_changed {
                // A source was created or disabled (here or elsewhere): open secrets afresh.
                self.forget_webhook_secrets();
            }
            if !self.apply_updates(updates, last) {
                tracing::warn!(
                    revision = last,
                    "inventory graph missed a change; reloading it"
                );
            }
        }
        Ok(self.publish_revision())
    }

    /// Applies what this instance's own commit wrote, without reading it back, when the
    /// graph stands right before it (no change committed elsewhere in between); otherwise
    /// catches up from the database as [`Self::refresh_inventory`] does.
    pub(crate) async fn after_own_commit(&self, written: Written) {
        {
            let _one = self.inner.inventory.refresh.lock().await;
            let loaded = self
                .inner
                .inventory
                .loaded
                .load(std::sync::atomic::Ordering::Acquire);
            let last = written.updates.last().map(|&(revision, _)| revision);
            if let Some(last) = last
                && loaded
                && written.first == self.read_graph().revision() + 1
            {
                if self.apply_updates(written.updates, last) {
                    self.publish_revision();
                    return;
                }
                // Cannot happen while the graph stands right before the commit: what the
                // commit refers to committed earlier. Should it anyway, the refresh below
                // rebuilds the graph rather than leave it half-updated.
                tracing::warn!(
                    revision = last,
                    "inventory graph lacked what this instance's commit refers to; reloading it"
                );
            }
        }
        self.after_inventory_commit().await;
    }

    /// Applies updates in order, telling subscriptions which answers each alters, and
    /// moves the graph to `last`; false if one referred to something the graph lacks,
    /// which marks the graph for loading again whole.
    fn apply_updates(&self, updates: Vec<(i64, Update)>, last: i64) -> bool {
        let events = &self.inner.inventory.events;
        let watched = events.receiver_count() > 0;
        let mut g = self.write_graph();
        let mut ok = true;
        for (revision, update) in updates {
            // Which answers the change alters is read before and after it: a removed edge
            // no longer leads anywhere afterwards.
            let source = update.source(&g);
            let mut models = match (watched, source) {
                (true, Some(s)) => g.upstream_models(s),
                _ => Default::default(),
            };
            let (entity, present) = (update.entity(), update.present());
            let applied = update.apply(&mut g);
            ok &= applied;
            if watched && applied {
                if let Some(s) = source {
                    models.extend(g.upstream_models(s));
                }
                let _ = events.send(InventoryEvent {
                    revision,
                    entity,
                    present,
                    models: Arc::new(models),
                });
            }
        }
        g.set_revision(last);
        if !ok {
            self.inner
                .inventory
                .needs_reload
                .store(true, Ordering::Release);
        }
        ok
    }

    /// Tells those waiting on the revision where the graph stands; returns it.
    fn publish_revision(&self) -> i64 {
        let revision = self.read_graph().revision();
        self.inner.inventory.revision.send_if_modified(|r| {
            let moved = *r != revision;
            *r = revision;
            moved
        });
        revision
    }

    /// Follows changes made by other instances; runs until its task is aborted.
    pub async fn follow_inventory(&self) {
        let every = Duration::from_millis(self.inventory_settings().poll_interval_ms);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.refresh_inventory().await {
                tracing::warn!(error = %e, "could not follow inventory changes");
            }
            if let Err(e) = self.prune_inventory_changes().await {
                tracing::warn!(error = %e, "pruning inventory changes failed; retried later");
            }
            self.follow_key_rotations().await;
            self.follow_revocations().await;
        }
    }

    /// Follows KEK rotations made by other instances: loads new epochs and forgets
    /// destroyed ones, so an erasure through any instance completes on every one.
    async fn follow_key_rotations(&self) {
        let Ok(vault) = self.vault() else { return };
        let kek = vault.kek.clone();
        match tokio::task::spawn_blocking(move || kek.refresh()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not re-read the KEK store"),
            Err(e) => tracing::warn!(error = %e, "re-reading the KEK store panicked"),
        }
    }

    /// Deletes inventory changes older than `inventory.change_retention_days`, at most
    /// once an hour on this instance (several instances pruning is harmless); returns how
    /// many were deleted.
    pub async fn prune_inventory_changes(&self) -> Result<u64, ServiceError> {
        let now = self.now();
        if !super::claim_due(&self.inner.changes_pruned_at, now.timestamp(), 3_600) {
            return Ok(0);
        }
        self.prune_inventory_changes_now().await
    }

    /// [`Self::prune_inventory_changes`] whenever it last ran (an operator's or a test's
    /// call, which must not be skipped because the follower pruned a moment before).
    pub async fn prune_inventory_changes_now(&self) -> Result<u64, ServiceError> {
        let now = self.now();
        let keep =
            chrono::Duration::days(i64::from(self.inventory_settings().change_retention_days));
        let pruned = in_write_tx!(self, |tx| {
            Ok(repo::prune_changes(tx.conn(), now - keep).await?)
        })?;
        if pruned > 0 {
            tracing::info!(pruned, "inventory changes pruned");
        }
        Ok(pruned)
    }

    /// Committed inventory changes, as this instance applies them.
    pub fn inventory_events(&self) -> tokio::sync::broadcast::Receiver<InventoryEvent> {
        self.inner.inventory.events.subscribe()
    }

    /// How many subscriptions are listening on this instance.
    pub fn inventory_subscribers(&self) -> usize {
        self.inner.inventory.events.receiver_count()
    }

    /// The revision this instance's graph has reached, as it moves.
    pub fn inventory_revision(&self) -> tokio::sync::watch::Receiver<i64> {
        self.inner.inventory.revision.subscribe()
    }

    /// The whole graph's content, for tests that compare it with a fresh load.
    pub fn inventory_snapshot(&self) -> crate::graph::Snapshot {
        self.read_graph().snapshot()
    }

    /// The graph as built from the database now, for the same comparison.
    pub async fn inventory_snapshot_from_database(
        &self,
    ) -> Result<crate::graph::Snapshot, ServiceError> {
        Ok(repo::load(self.store().reader()).await?.snapshot())
    }

    pub(super) fn read_graph(&self) -> std::sync::RwLockReadGuard<'_, InventoryGraph> {
        // A panic while holding the lock leaves a graph that may be half-updated; the
        // next refresh reads the rows again, so carrying on is safe.
        self.inner
            .inventory
            .graph
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn write_graph(&self) -> std::sync::RwLockWriteGuard<'_, InventoryGraph> {
        self.inner
            .inventory
            .graph
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Brings the graph up to date after this instance committed a change.
    pub(crate) async fn after_inventory_commit(&self) {
        if let Err(e) = self.refresh_inventory().await {
            tracing::warn!(error = %e, "could not apply an inventory change to the graph yet");
        }
    }

    pub async fn consumer(&self, name: &str) -> Result<Consumer, ServiceError> {
        let name = ConsumerName::parse(name)?;
        repo::find_consumer(self.store().reader(), &name)
            .await?
            .map(|(_, c)| c)
            .ok_or_else(|| ServiceError::NotFound(format!("no consumer named {name}")))
    }

    /// Consumers by name, optionally of one team, after a name (keyset paging).
    pub fn consumers(
        &self,
        team: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Consumer>, ServiceError> {
        let team = team.map(TeamName::parse).transpose()?;
        let g = self.read_graph();
        Ok(g.consumers()
            .into_iter()
            .map(|(_, c)| c)
            .filter(|c| team.as_ref().is_none_or(|t| &c.owner_team == t))
            .filter(|c| after.is_none_or(|a| c.name.as_str() > a))
            .take(limit)
            .cloned()
            .collect())
    }

    /// Every edge at a consumer, both ways.
    pub fn consumer_edges(&self, name: &ConsumerName) -> Vec<EdgeView> {
        let g = self.read_graph();
        let Some(id) = g.consumer_id(name.as_str()) else {
            return Vec::new();
        };
        g.edges_of_consumer(id)
            .into_iter()
            .map(|e| edge_view(&g, e))
            .collect()
    }

    pub async fn declare_consumer(
        &self,
        actor: &Actor,
        input: ConsumerInput,
    ) -> Result<DeclaredConsumer, ServiceError> {
        let consumer = Consumer {
            name: ConsumerName::parse(&input.name)?,
            kind: ConsumerKind::parse(&input.kind)?,
            owner_team: TeamName::parse(&input.owner_team)?,
            environment: Environment::parse(&input.environment)?,
            contacts: Contacts::parse(&input.contacts)?,
            webhook_url: input
                .webhook_url
                .as_deref()
                .filter(|u| !u.trim().is_empty())
                .map(WebhookUrl::parse)
                .transpose()?,
            discovered: false,
        };
        if let Some(url) = &consumer.webhook_url {
            self.check_webhook_destination(url)?;
        }
        may_manage(actor, &consumer.owner_team, "declare consumers of team")?;
        require_admin_for_points(actor, consumer.kind)?;
        let sealer = self.service_key().secret_sealer();
        let binding = secret_binding(&consumer.name);
        let declared = in_write_tx!(self, |tx| {
            let now = self.now();
            let existing = repo::find_consumer(tx.conn(), &consumer.name).await?;
            let (id, created, secret, before) = match existing {
                None => {
                    let secret = consumer.webhook_url.as_ref().map(|_| new_whsec());
                    let sealed = secret
                        .as_deref()
                        .map(|s| sealer.seal(&binding, s.as_bytes()));
                    let id = repo::insert_consumer(
                        tx.conn(),
                        NewConsumer {
                            consumer: &consumer,
                            sealed_secret: sealed.as_deref(),
                            at: now,
                            by: &actor.name,
                        },
                    )
                    .await?;
                    (id, true, secret, None)
                }
                Some((id, old)) => {
                    may_manage(actor, &old.owner_team, "change consumers of team")?;
                    require_admin_for_points(actor, old.kind)?;
                    let has_secret = repo::consumer_secret(tx.conn(), id).await?.is_some();
                    let secret = (consumer.webhook_url.is_some() && !has_secret).then(new_whsec);
                    let sealed = secret
                        .as_deref()
                        .map(|s| sealer.seal(&binding, s.as_bytes()));
                    let replace = if consumer.webhook_url.is_none() {
                        Some(None)
                    } else {
                        sealed.as_deref().map(Some)
                    };
                    repo::update_consumer(tx.conn(), id, &consumer, replace, now).await?;
                    (id, false, secret, Some(old))
                }
            };
            repo::record_change(tx.conn(), now, Entity::Consumer, id).await?;
            let mut entry = AuditEntry::new(
                actor.audit_identity(),
                if created {
                    Action::ConsumerDeclared
                } else {
                    Action::ConsumerUpdated
                },
                SubjectType::Consumer,
                consumer.name.as_str(),
            )
            .after(&consumer);
            if let Some(before) = &before {
                entry = entry.before(before);
            }
            self.append_audit(tx, now, entry).await?;
            Ok(DeclaredConsumer {
                consumer: consumer.clone(),
                created,
                webhook_secret: secret,
            })
        })?;
        self.after_inventory_commit().await;
        Ok(declared)
    }

    pub async fn remove_consumer(&self, actor: &Actor, name: &str) -> Result<(), ServiceError> {
        let name = ConsumerName::parse(name)?;
        in_write_tx!(self, |tx| {
            let now = self.now();
            let (id, old) = repo::find_consumer(tx.conn(), &name)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("no consumer named {name}")))?;
            may_manage(actor, &old.owner_team, "remove consumers of team")?;
            require_admin_for_points(actor, old.kind)?;
            let edges = repo::delete_consumer(tx.conn(), id).await?;
            for edge in &edges {
                repo::record_change(tx.conn(), now, Entity::Edge, *edge).await?;
            }
            repo::record_change(tx.conn(), now, Entity::Consumer, id).await?;
            #[derive(Serialize)]
            #[serde(rename_all = "camelCase")]
            struct Removed<'a> {
                consumer: &'a Consumer,
                edges_removed: usize,
            }
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::ConsumerRemoved,
                SubjectType::Consumer,
                name.as_str(),
            )
            .before(&Removed {
                consumer: &old,
                edges_removed: edges.len(),
            });
            self.append_audit(tx, now, entry).await
        })?;
        self.after_inventory_commit().await;
        Ok(())
    }

    /// Declares an edge (origin `api`), or confirms it again, which refreshes its
    /// last-seen time so it does not go stale.
    pub async fn declare_edge(
        &self,
        actor: &Actor,
        spec: EdgeSpec,
    ) -> Result<Vec<EdgeView>, ServiceError> {
        let views = in_write_tx!(self, |tx| {
            let now = self.now();
            let resolved = resolve(tx.conn(), &spec, true).await?;
            may_manage_any(actor, &resolved.teams, "declare edges of team")?;
            if let Link::DerivedFrom {
                version, parent, ..
            } = &resolved.link
            {
                self.refuse_derivation_cycle(*version, *parent, &[])?;
            }
            let (record, _) = repo::record_edge(
                tx.conn(),
                Sighting {
                    link: &resolved.link,
                    origin: EdgeOrigin::Api,
                    origin_name: &actor.name,
                    at: now,
                    since: None,
                    count: 1,
                },
            )
            .await?;
            repo::record_change(tx.conn(), now, Entity::Edge, record.id).await?;
            let view = describe(&resolved, &record);
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::EdgeDeclared,
                SubjectType::InventoryEdge,
                format!("{} {} {}", view.from, view.kind, view.to),
            )
            .after(&view);
            self.append_audit(tx, now, entry).await?;
            Ok(repo::edges_of_link(tx.conn(), &resolved.link)
                .await?
                .iter()
                .map(|e| describe(&resolved, e))
                .collect::<Vec<_>>())
        })?;
        self.after_inventory_commit().await;
        Ok(views)
    }

    /// Removes a link, with the evidence of every origin. Observed usage that goes on
    /// will be recorded again by the next scan or download.
    pub async fn remove_edge(&self, actor: &Actor, spec: EdgeSpec) -> Result<usize, ServiceError> {
        let removed = in_write_tx!(self, |tx| {
            let now = self.now();
            let resolved = resolve(tx.conn(), &spec, false).await?;
            may_manage_any(actor, &resolved.teams, "remove edges of team")?;
            let rows = repo::edges_of_link(tx.conn(), &resolved.link).await?;
            if rows.is_empty() {
                return Err(ServiceError::NotFound(format!(
                    "there is no {} edge from {} to {}",
                    resolved.link.kind(),
                    resolved.from,
                    resolved.to
                )));
            }
            let remover = EvidenceRemover {
                name: &actor.name,
                is_admin: actor.role == Role::Admin,
                owns_dependent: resolved
                    .teams
                    .first()
                    .is_some_and(|team| may_manage(actor, team, "").is_ok()),
            };
            let (removable, kept): (Vec<_>, Vec<_>) = rows
                .iter()
                .partition(|e| e.origin.removable_by(&e.origin_name, &remover));
            if removable.is_empty() {
                let others: Vec<String> = kept
                    .iter()
                    .map(|e| format!("{} from {}", e.origin, e.origin_name))
                    .collect();
                return Err(ServiceError::Forbidden(format!(
                    "none of the evidence of {} {} {} is yours to remove ({}): evidence \
                     belongs to whoever gave it, observed usage goes stale on its own, and an \
                     admin may remove any",
                    resolved.from,
                    resolved.link.kind(),
                    resolved.to,
                    others.join(", ")
                )));
            }
            for row in &removable {
                repo::delete_edge(tx.conn(), row.id).await?;
                repo::record_change(tx.conn(), now, Entity::Edge, row.id).await?;
            }
            let views: Vec<EdgeView> = rows.iter().map(|e| describe(&resolved, e)).collect();
            let remaining: Vec<EdgeView> = kept.iter().map(|e| describe(&resolved, e)).collect();
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::EdgeRemoved,
                SubjectType::InventoryEdge,
                format!("{} {} {}", resolved.from, resolved.link.kind(), resolved.to),
            )
            .before(&views)
            .after(&serde_json::json!({ "remaining": remaining }));
            self.append_audit(tx, now, entry).await?;
            Ok(removable.len())
        })?;
        self.after_inventory_commit().await;
        Ok(removed)
    }

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

    /// The body of [`Services::observe_usage`], inside the caller's transaction.
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
            model: u.model_id,
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
                (&system, "system"),
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
                (&system, "system"),
                Action::UsageObserved,
                SubjectType::InventoryEdge,
                format!("{} uses {}", view.from, view.to),
            )
            .after(&view);
            self.append_audit(tx, now, entry).await?;
        }
        Ok(())
    }

    /// Refuses a derivation that would close a circle, counting `also` (version, parent)
    /// pairs not committed yet: the derivations a message declared before this one.
    pub(crate) fn refuse_derivation_cycle(
        &self,
        version: VersionId,
        parent: VersionId,
        also: &[(VersionId, VersionId)],
    ) -> Result<(), ServiceError> {
        if version == parent {
            return Err(ServiceError::Conflict(
                "a version cannot be derived from itself".into(),
            ));
        }
        // If the parent already derives from the child, the new edge would close a circle.
        if self.read_graph().derives_from_with(parent, version, also) {
            return Err(ServiceError::Conflict(
                "the parent version is itself derived from this version; derivations cannot form a circle".into(),
            ));
        }
        Ok(())
    }

    fn bounded(&self, ask: Ask) -> Result<Query, ServiceError> {
        let s = self.inventory_settings();
        let max_depth = ask.max_depth.unwrap_or(s.max_depth.min(20));
        if max_depth == 0 || max_depth > s.max_depth {
            return Err(ServiceError::Invalid(crate::domain::ParseError::new(
                "maxDepth",
                format!("must be between 1 and {}, not {max_depth}", s.max_depth),
            )));
        }
        let limit = ask.limit.unwrap_or(s.max_results.min(1_000));
        if limit == 0 || limit > s.max_results {
            return Err(ServiceError::Invalid(crate::domain::ParseError::new(
                "limit",
                format!("must be between 1 and {}, not {limit}", s.max_results),
            )));
        }
        Ok(Query {
            transitive: ask.transitive,
            max_depth,
            include_stale: ask.include_stale,
            limit,
            now: self.now(),
            stale_after: s.stale_after(),
        })
    }

    /// Looks a version up in the graph, catching up once if it is not there yet (it may
    /// have been registered through another instance a moment ago).
    async fn graph_version(&self, model: &str, version: &str) -> Result<VersionId, ServiceError> {
        let model = ModelName::parse(model)?;
        let version = Version::parse(version)?;
        let find = |s: &Self| {
            let g = s.read_graph();
            g.model_id(model.as_str())
                .and_then(|m| g.version_id(m, version))
        };
        if let Some(id) = find(self) {
            return Ok(id);
        }
        self.refresh_inventory().await?;
        find(self).ok_or_else(|| ServiceError::NotFound(format!("no version {model}@{version}")))
    }

    pub(super) async fn graph_consumer(&self, name: &str) -> Result<ConsumerId, ServiceError> {
        let name = ConsumerName::parse(name)?;
        if let Some(id) = self.read_graph().consumer_id(name.as_str()) {
            return Ok(id);
        }
        self.refresh_inventory().await?;
        self.read_graph()
            .consumer_id(name.as_str())
            .ok_or_else(|| ServiceError::NotFound(format!("no consumer named {name}")))
    }

    /// Who depends on `model@version`.
    pub async fn dependents(
        &self,
        model: &str,
        version: &str,
        ask: Ask,
    ) -> Result<Answer, ServiceError> {
        let q = self.bounded(ask)?;
        let id = self.graph_version(model, version).await?;
        let answer = self.read_graph().dependents(id, &q);
        answer
            .map(|a| self.honest(a))
            .ok_or_else(|| ServiceError::NotFound(format!("no version {model}@{version}")))
    }

    /// What `consumer` depends on.
    pub async fn dependencies(&self, consumer: &str, ask: Ask) -> Result<Answer, ServiceError> {
        let q = self.bounded(ask)?;
        let id = self.graph_consumer(consumer).await?;
        let answer = self.read_graph().dependencies(id, &q);
        answer
            .map(|a| self.honest(a))
            .ok_or_else(|| ServiceError::NotFound(format!("no consumer named {consumer}")))
    }

    /// Marks an answer computed while the graph waits to be loaded again (see
    /// `Inventory::needs_reload`) as behind, and so not complete.
    fn honest(&self, mut answer: Answer) -> Answer {
        answer.behind = self.inner.inventory.needs_reload.load(Ordering::Acquire);
        answer
    }

    /// A CycloneDX 1.6 BOM of who depends on `model@version`.
    pub async fn dependents_bom(
        &self,
        model: &str,
        version: &str,
        ask: Ask,
    ) -> Result<serde_json::Value, ServiceError> {
        let q = self.bounded(ask)?;
        let id = self.graph_version(model, version).await?;
        let g = self.read_graph();
        let (answer, links) = g
            .answer_with_links(crate::graph::Upstream::Version(id), true, &q)
            .ok_or_else(|| ServiceError::NotFound(format!("no version {model}@{version}")))?;
        let answer = self.honest(answer);
        let root = crate::graph::Target::Version {
            model: ModelName::parse(model)?,
            version: Version::parse(version)?,
        };
        Ok(crate::export::cyclonedx::bom(
            &root,
            &answer,
            &links,
            rand::random(),
            self.now(),
        ))
    }

    /// A CycloneDX 1.6 BOM of what `consumer` depends on.
    pub async fn dependencies_bom(
        &self,
        consumer: &str,
        ask: Ask,
    ) -> Result<serde_json::Value, ServiceError> {
        let q = self.bounded(ask)?;
        let id = self.graph_consumer(consumer).await?;
        let g = self.read_graph();
        let root = g
            .consumer_target(id)
            .ok_or_else(|| ServiceError::NotFound(format!("no consumer named {consumer}")))?;
        let (answer, links) = g
            .answer_with_links(crate::graph::Upstream::Consumer(id), false, &q)
            .ok_or_else(|| ServiceError::NotFound(format!("no consumer named {consumer}")))?;
        let answer = self.honest(answer);
        Ok(crate::export::cyclonedx::bom(
            &root,
            &answer,
            &links,
            rand::random(),
            self.now(),
        ))
    }

    pub async fn impact(
        &self,
        model: &str,
        version: &str,
        active_days: u32,
    ) -> Result<Impact, ServiceError> {
        if !(1..=3650).contains(&active_days) {
            return Err(ServiceError::Invalid(crate::domain::ParseError::new(
                "activeDays",
                format!("must be between 1 and 3650, not {active_days}"),
            )));
        }
        let id = self.graph_version(model, version).await?;
        let stale_after = self.inventory_settings().stale_after();
        self.read_graph()
            .impact(id, self.now(), stale_after, active_days)
            .ok_or_else(|| ServiceError::NotFound(format!("no version {model}@{version}")))
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

/// What one commit of this instance wrote to the inventory, in the order of its changes,
/// from revision `first` on: applied to the graph as it is, with no read-back.
pub(crate) struct Written {
    first: i64,
    updates: Vec<(i64, Update)>,
}

impl Written {
    /// Changes numbered from `first`, one per call below.
    pub(crate) fn starting_at(first: i64) -> Self {
        Self {
            first,
            updates: Vec::new(),
        }
    }

    fn next(&self) -> i64 {
        self.first + i64::try_from(self.updates.len()).unwrap_or(i64::MAX)
    }

    pub(crate) fn consumer(&mut self, id: ConsumerId, consumer: Consumer) {
        self.updates
            .push((self.next(), Update::Consumer(id, Some(consumer))));
    }

    pub(crate) fn edge(&mut self, edge: EdgeRecord) {
        self.updates
            .push((self.next(), Update::Edge(edge.id, Some(edge))));
    }
}

/// A change, read back from the database (or as its writer wrote it), ready to apply.
enum Update {
    Consumer(ConsumerId, Option<Consumer>),
    Edge(i64, Option<EdgeRecord>),
    Model(Option<crate::graph::ModelInfo>),
    Version(Option<crate::graph::VersionInfo>),
}

impl Update {
    fn entity(&self) -> &'static str {
        match self {
            Update::Consumer(..) => "consumer",
            Update::Edge(..) => "edge",
            Update::Model(_) => "model",
            Update::Version(_) => "version",
        }
    }

    fn present(&self) -> bool {
        match self {
            Update::Consumer(_, c) => c.is_some(),
            Update::Edge(_, e) => e.is_some(),
            Update::Model(m) => m.is_some(),
            Update::Version(v) => v.is_some(),
        }
    }

    /// Where the change sits in the graph, for finding the answers it alters.
    fn source(&self, g: &InventoryGraph) -> Option<crate::graph::Upstream> {
        use crate::graph::Upstream;
        match self {
            Update::Consumer(id, _) => Some(Upstream::Consumer(*id)),
            Update::Edge(_, Some(e)) => Some(e.source()),
            Update::Edge(id, None) => g.edge(*id).map(EdgeRecord::source),
            Update::Model(m) => m.as_ref().map(|m| Upstream::Model(m.id)),
            Update::Version(v) => v.as_ref().map(|v| Upstream::Version(v.id)),
        }
    }

    /// Applies the update; false when the graph lacks something it refers to.
    fn apply(self, g: &mut InventoryGraph) -> bool {
        match self {
            Update::Consumer(id, Some(c)) => g.upsert_consumer(id, c),
            Update::Consumer(id, None) => g.remove_consumer(id),
            Update::Edge(_, Some(e)) => return g.upsert_edge(e).is_ok(),
            Update::Edge(id, None) => g.remove_edge(id),
            Update::Model(Some(m)) => g.upsert_model(m),
            Update::Version(Some(v)) => return g.upsert_version(v).is_ok(),
            // Models and versions are never deleted.
            Update::Model(None) | Update::Version(None) => {}
        }
        true
    }
}

/// The graph updates the changes name, in order with their revisions, and whether a
/// webhook source (not in the graph) changed. Consumers and edges, nearly every change,
/// are read many per statement: a group of registrations is hundreds of changes.
async fn read_updates(
    db: &impl Conn,
    changes: &[Change],
) -> Result<(Vec<(i64, Update)>, bool), ServiceError> {
    let ids = |entity| {
        changes
            .iter()
            .filter(|c| c.entity == entity)
            .map(|c| c.id)
            .collect::<Vec<_>>()
    };
    let consumers = repo::batch::consumers_by_id(db, &ids(Entity::Consumer)).await?;
    let edges = repo::batch::edges_by_id(db, &ids(Entity::Edge)).await?;
    let mut updates = Vec::with_capacity(changes.len());
    let mut sources_changed = false;
    for change in changes {
        let update = match change.entity {
            Entity::Consumer => Update::Consumer(change.id, consumers.get(&change.id).cloned()),
            Entity::Edge => Update::Edge(change.id, edges.get(&change.id).cloned()),
            Entity::Model => Update::Model(repo::model_info(db, change.id).await?),
            Entity::Version => Update::Version(repo::version_info(db, change.id).await?),
            Entity::WebhookSource => {
                sources_changed = true;
                continue;
            }
        };
        updates.push((change.revision, update));
    }
    Ok((updates, sources_changed))
}

/// Resolves names to rows. `for_declare` also checks what only a new edge must satisfy.
pub(crate) async fn resolve(
    db: &impl Conn,
    spec: &EdgeSpec,
    for_declare: bool,
) -> Result<Resolved, ServiceError> {
    match spec {
        EdgeSpec::Uses {
            consumer,
            model,
            version,
        } => {
            let (cid, c) = find_consumer(db, consumer).await?;
            let model = ModelName::parse(model)?;
            let range = VersionRange::parse(version)?;
            let (mid, m) = registry_repo::find_model(db, &model)
                .await?
                .ok_or_else(|| no_model(&model))?;
            if for_declare
                && let Some(exact) = range.as_exact()
                && registry_repo::find_version(db, mid, &model, exact)
                    .await?
                    .is_none()
            {
                return Err(no_pinned_version(&model, exact));
            }
            Ok(Resolved {
                to: format!("{model}@{range}"),
                from: c.name.to_string(),
                link: Link::Uses {
                    consumer: cid,
                    model: mid.0,
                    range: Arc::new(range),
                },
                teams: vec![c.owner_team, m.owner_team],
            })
        }
        EdgeSpec::DependsOn { consumer, target } => {
            let (cid, c) = find_consumer(db, consumer).await?;
            let (tid, t) = find_consumer(db, target).await?;
            if cid == tid {
                return Err(self_dependency(consumer));
            }
            Ok(Resolved {
                link: Link::DependsOn {
                    consumer: cid,
                    target: tid,
                },
                from: c.name.to_string(),
                to: t.name.to_string(),
                teams: vec![c.owner_team],
            })
        }
        EdgeSpec::DerivedFrom {
            model,
            version,
            parent_model,
            parent_version,
            derivation,
        } => {
            let (vid, team, label) = find_version(db, model, version).await?;
            let (pid, _, parent_label) = find_version(db, parent_model, parent_version).await?;
            let derivation = derivation
                .as_deref()
                .map(Derivation::parse)
                .transpose()?
                .unwrap_or(Derivation::Other);
            Ok(Resolved {
                link: Link::DerivedFrom {
                    version: vid,
                    parent: pid,
                    derivation,
                },
                from: label,
                to: parent_label,
                teams: vec![team],
            })
        }
    }
}

async fn find_consumer(db: &impl Conn, name: &str) -> Result<(ConsumerId, Consumer), ServiceError> {
    let name = ConsumerName::parse(name)?;
    repo::find_consumer(db, &name)
        .await?
        .ok_or_else(|| no_consumer(&name))
}

// What resolving a link can find wrong, worded once for every path that resolves links.

pub(crate) fn no_consumer(name: &ConsumerName) -> ServiceError {
    ServiceError::NotFound(format!("no consumer named {name}"))
}

pub(crate) fn no_model(name: &ModelName) -> ServiceError {
    ServiceError::NotFound(format!("no model named {name}"))
}

pub(crate) fn no_pinned_version(model: &ModelName, exact: crate::domain::Version) -> ServiceError {
    ServiceError::NotFound(format!(
        "no version {model}@{exact}; a pinned version must exist (use a range for future ones)"
    ))
}

pub(crate) fn self_dependency(consumer: &str) -> ServiceError {
    ServiceError::Invalid(crate::domain::ParseError::new(
        "dependsOn",
        format!("{consumer} cannot depend on itself"),
    ))
}

async fn find_version(
    db: &impl Conn,
    model: &str,
    version: &str,
) -> Result<(VersionId, TeamName, String), ServiceError> {
    let model = ModelName::parse(model)?;
    let version = Version::parse(version)?;
    let (mid, m) = registry_repo::find_model(db, &model)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no model named {model}")))?;
    let (vid, _) = registry_repo::find_version(db, mid, &model, version)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no version {model}@{version}")))?;
    Ok((vid.0, m.owner_team, format!("{model}@{version}")))
}

fn describe(r: &Resolved, e: &EdgeRecord) -> EdgeView {
    let (range, derivation) = match &e.link {
        Link::Uses { range, .. } => (Some(range.to_string()), None),
        Link::DerivedFrom { derivation, .. } => (None, Some(*derivation)),
        Link::DependsOn { .. } => (None, None),
    };
    EdgeView {
        kind: e.link.kind(),
        from: r.from.clone(),
        to: r.to.clone(),
        range,
        derivation,
        origin: e.origin,
        origin_name: e.origin_name.to_string(),
        first_seen: e.first_seen,
        last_seen: e.last_seen,
        observations: e.observations,
    }
}

fn edge_view(g: &InventoryGraph, e: &EdgeRecord) -> EdgeView {
    let consumer = |id| {
        g.consumer(id)
            .map(|c| c.name.to_string())
            .unwrap_or_else(|| format!("consumer #{id}"))
    };
    let version = |id| {
        g.version(id)
            .map(|v| format!("{}@{}", v.model_name, v.version))
            .unwrap_or_else(|| format!("version #{id}"))
    };
    let (from, to) = match &e.link {
        Link::Uses {
            consumer: c,
            model,
            range,
        } => (
            consumer(*c),
            format!(
                "{}@{range}",
                g.model(*model)
                    .map(|m| m.name.to_string())
                    .unwrap_or_else(|| format!("model #{model}"))
            ),
        ),
        Link::DependsOn {
            consumer: c,
            target,
        } => (consumer(*c), consumer(*target)),
        Link::DerivedFrom {
            version: v, parent, ..
        } => (version(*v), version(*parent)),
    };
    describe(
        &Resolved {
            link: e.link.clone(),
            from,
            to,
            teams: Vec::new(),
        },
        e,
    )
}

/// Owners manage their own team's consumers; admins any.
pub(super) fn may_manage(actor: &Actor, team: &TeamName, what: &str) -> Result<(), ServiceError> {
    match actor.role {
        Role::Admin => Ok(()),
        Role::Owner if actor.team.as_ref() == Some(team) => Ok(()),
        Role::Owner => Err(ServiceError::Forbidden(format!(
            "an owner of team {} may not {what} {team}",
            actor
                .team
                .as_ref()
                .map(TeamName::as_str)
                .unwrap_or("(none)")
        ))),
        other => Err(ServiceError::Forbidden(format!(
            "role {other} may not {what} {team}; its owners and admins may"
        ))),
    }
}

/// For an edge, owning either end is enough: the consumer's owner declares what it
/// uses, and a model's owner may record a consumer it knows of.
fn may_manage_any(actor: &Actor, teams: &[TeamName], what: &str) -> Result<(), ServiceError> {
    let first = teams
        .first()
        .ok_or_else(|| ServiceError::Forbidden(format!("nobody but an admin may {what} (none)")))?;
    if teams.iter().any(|t| may_manage(actor, t, what).is_ok()) {
        return Ok(());
    }
    may_manage(actor, first, what)
}

/// Enforcement points act on kill switches, so only an admin registers or changes one.
fn require_admin_for_points(actor: &Actor, kind: ConsumerKind) -> Result<(), ServiceError> {
    if kind != ConsumerKind::Gateway {
        return Ok(());
    }
    super::authorise::require(
        actor,
        &[Role::Admin],
        "register or change an enforcement point",
    )
}

/// What a consumer's sealed webhook secret is bound to.
pub(super) fn secret_binding(name: &ConsumerName) -> String {
    format!("consumer-webhook:{name}")
}

/// A Standard Webhooks secret: `whsec_` and base64 of 32 random bytes.
pub(crate) fn new_whsec() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}
