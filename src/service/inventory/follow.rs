//! Keeping this instance's graph current: the load at start, its own commits applied as
//! written, and the changes other instances commit, followed on a short poll.

use crate::domain::Consumer;
use crate::graph::{ConsumerId, EdgeId, EdgeRecord, InventoryGraph, ModelId, VersionId};
use crate::service::{ServiceError, Services};
use crate::store::Conn;
use crate::store::inventory::{self as repo, Entity};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;

/// The most changes one read of the sequence takes.
const CHANGES_PER_READ: u64 = 500;

impl crate::service::Inventory<'_> {
    /// Loads the graph from the database; done once at start.
    pub async fn load_inventory(&self) -> Result<(), ServiceError> {
        let _one = self.inner.inventory.refresh.lock().await;
        let fresh = load_graph(self.store().reader()).await?;
        let revision = fresh.revision();
        tracing::info!(
            revision,
            consumers = fresh.consumer_count(),
            edges = fresh.edge_count(),
            "inventory graph loaded"
        );
        *self.write_graph() = fresh;
        crate::memory::released();
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
                let fresh = load_graph(db).await?;
                *self.write_graph() = fresh;
                crate::memory::released();
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
            let read = repo::changes_with_rows(db, from, CHANGES_PER_READ).await?;
            let changes = &read.changes;
            let Some(last) = changes.last().map(|c| c.revision) else {
                break;
            };
            // A short read took every change committed when it ran: asking again would
            // cost a round trip that finds nothing (a later commit wakes or polls anew).
            let complete = changes.len() < CHANGES_PER_READ as usize;
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
            let (updates, sources_changed) = read_updates(db, read).await?;
            if sources_changed {
                // A source was created or disabled (here or elsewhere): open secrets afresh.
                self.forget_webhook_secrets();
            }
            if !self.apply_updates(updates, last) {
                tracing::warn!(
                    revision = last,
                    "inventory graph missed a change; reloading it"
                );
                continue;
            }
            if complete {
                break;
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
        let laid_out_again = g.set_revision(last);
        drop(g);
        if laid_out_again {
            crate::memory::released();
        }
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
            let polled = self
                .poll_or_wake(&mut tick, crate::store::notify::Topic::Inventory)
                .await;
            if let Err(e) = self.refresh_inventory().await {
                tracing::warn!(error = %e, "could not follow inventory changes");
            }
            // Woken by a commit, only the graph is due: a busy fleet commits many times
            // a poll, and the chores below (the KEK store above all) need not follow it.
            if !polled {
                continue;
            }
            if let Err(e) = self.prune_inventory_changes().await {
                tracing::warn!(error = %e, "pruning inventory changes failed; retried later");
            }
            self.follow_key_rotations().await;
            self.decommission().follow_revocations().await;
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
        if !crate::service::claim_due(&self.inner.changes_pruned_at, now.timestamp(), 3_600) {
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
        Ok(load_graph(self.store().reader()).await?.snapshot())
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
    Edge(EdgeId, Option<EdgeRecord>),
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
            Update::Edge(id, None) => g.edge(*id).as_ref().map(EdgeRecord::source),
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
/// came with the changes (`repo::changes_with_rows`): a group of registrations is
/// hundreds of changes. Models and versions, rare, are read one by one.
async fn read_updates(
    db: &impl Conn,
    read: repo::ChangesRead,
) -> Result<(Vec<(i64, Update)>, bool), ServiceError> {
    let repo::ChangesRead {
        changes,
        consumers,
        edges,
    } = read;
    let mut updates = Vec::with_capacity(changes.len());
    let mut sources_changed = false;
    for change in &changes {
        let update = match change.entity {
            Entity::Consumer => {
                let id = ConsumerId(change.id);
                Update::Consumer(id, consumers.get(&id).cloned())
            }
            Entity::Edge => {
                let id = EdgeId(change.id);
                Update::Edge(id, edges.get(&id).cloned())
            }
            Entity::Model => Update::Model(repo::model_info(db, ModelId(change.id)).await?),
            Entity::Version => Update::Version(repo::version_info(db, VersionId(change.id)).await?),
            Entity::WebhookSource => {
                sources_changed = true;
                continue;
            }
        };
        updates.push((change.revision, update));
    }
    Ok((updates, sources_changed))
}

/// The graph is read by every capability that asks who depends on what.
impl Services {
    pub(in crate::service) fn read_graph(&self) -> std::sync::RwLockReadGuard<'_, InventoryGraph> {
        // A panic while holding the lock leaves a graph that may be half-updated; the
        // next refresh reads the rows again, so carrying on is safe.
        self.inner
            .inventory
            .graph
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// The whole graph as the database holds it now: storage reads the rows, the graph
/// builds itself from them.
pub async fn load_graph(db: &sea_orm::DatabaseConnection) -> Result<InventoryGraph, ServiceError> {
    let mut built = crate::graph::GraphBuilder::new();
    let revision = repo::read_all(db, |rows| {
        match rows {
            repo::Rows::Sizes {
                models,
                versions,
                consumers,
                edges,
            } => built.reserve(models, versions, consumers, edges),
            repo::Rows::Models(page) => page.into_iter().for_each(|m| built.model(m)),
            repo::Rows::Versions(page) => {
                for (id, model, version) in page {
                    built
                        .version(id, model, version)
                        .map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))?;
                }
            }
            repo::Rows::Consumers(page) => {
                page.into_iter().for_each(|(id, c)| built.consumer(id, c));
            }
            repo::Rows::Edges(page) => page.into_iter().for_each(|e| built.edge(e)),
        }
        Ok(())
    })
    .await?;
    Ok(built.finish(revision))
}
