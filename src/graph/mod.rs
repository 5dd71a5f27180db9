//! The consumer inventory as a graph in memory (AISVS 3.1.5): consumers, models and
//! their versions as nodes; `uses`, `derived_from` and `depends_on` as edges, each
//! pointing from the dependent to what it depends on.
//!
//! The database is the source of truth. This graph is loaded from it at start and then
//! follows its change sequence: every committed inventory change has a revision, and
//! [`InventoryGraph::revision`] says up to which one the graph is current. It does no I/O;
//! `service::inventory` feeds it.
//!
//! A `uses` edge points at the model node, not at a version, because it may name a range
//! (`^2.1`): whether it reaches a version is decided when a question is asked, so a
//! version released later is covered without rewriting edges. One fact learned from two
//! origins (declared by a webhook, observed by a scan) is two parallel edges; answers
//! show them together as the evidence of one link.

mod query;

pub use query::{Answer, Counts, Cycle, Evidence, Impact, Query, Reached, Step, Target, Upstream};

use crate::domain::{
    Consumer, Derivation, EdgeKind, EdgeOrigin, ModelName, TeamName, Version, VersionRange,
};
use chrono::{DateTime, Utc};
use petgraph::Direction;
use petgraph::stable_graph::{EdgeIndex, NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences, NodeIndexable};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Database row ids, which are stable for the life of a row.
pub type ConsumerId = i64;
pub type ModelId = i64;
pub type VersionId = i64;
pub type EdgeId = i64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub id: ModelId,
    pub name: ModelName,
    pub owner_team: TeamName,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub id: VersionId,
    pub model: ModelId,
    /// Model names never change, so each version carries its own for answers.
    pub model_name: ModelName,
    pub version: Version,
}

/// What an edge connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Uses {
        consumer: ConsumerId,
        model: ModelId,
        range: Arc<VersionRange>,
    },
    DerivedFrom {
        version: VersionId,
        parent: VersionId,
        derivation: Derivation,
    },
    DependsOn {
        consumer: ConsumerId,
        target: ConsumerId,
    },
}

impl Link {
    pub fn kind(&self) -> EdgeKind {
        match self {
            Link::Uses { .. } => EdgeKind::Uses,
            Link::DerivedFrom { .. } => EdgeKind::DerivedFrom,
            Link::DependsOn { .. } => EdgeKind::DependsOn,
        }
    }

    /// The canonical identity of the link: one row per key and origin in the database.
    /// The derivation is not part of it: two versions are related one way at most.
    pub fn key(&self) -> String {
        match self {
            Link::Uses {
                consumer,
                model,
                range,
            } => format!("uses:{consumer}:{model}:{range}"),
            Link::DerivedFrom {
                version, parent, ..
            } => format!("derived_from:{version}:{parent}"),
            Link::DependsOn { consumer, target } => format!("depends_on:{consumer}:{target}"),
        }
    }
}

/// One edge row: a link and one origin's evidence of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeRecord {
    pub id: EdgeId,
    pub link: Link,
    pub origin: EdgeOrigin,
    /// The webhook source, scan source or token that reported it; the actor for `api`.
    pub origin_name: Arc<str>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub observations: u64,
}

impl EdgeRecord {
    /// The node the edge leaves: the dependent.
    pub fn source(&self) -> query::Upstream {
        match &self.link {
            Link::Uses { consumer, .. } | Link::DependsOn { consumer, .. } => {
                query::Upstream::Consumer(*consumer)
            }
            Link::DerivedFrom { version, .. } => query::Upstream::Version(*version),
        }
    }

    pub fn is_stale(&self, now: DateTime<Utc>, stale_after: chrono::Duration) -> bool {
        now - self.last_seen > stale_after
    }
}

#[derive(Debug, Clone)]
enum Node {
    Consumer(ConsumerId, Consumer),
    Model(ModelInfo),
    Version(VersionInfo),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    /// A change refers to a node the graph does not hold: it missed a change, and
    /// should be rebuilt from the database.
    #[error("the inventory graph has no {0} {1}; it must be reloaded")]
    Missing(&'static str, i64),
}

/// The inventory graph at one revision.
#[derive(Debug, Clone, Default)]
pub struct InventoryGraph {
    g: StableDiGraph<Node, EdgeRecord>,
    consumers: HashMap<ConsumerId, NodeIndex>,
    consumer_names: HashMap<String, ConsumerId>,
    models: HashMap<ModelId, NodeIndex>,
    model_names: HashMap<String, ModelId>,
    /// Per model, its versions in order, for resolving ranges.
    model_versions: HashMap<ModelId, BTreeMap<Version, VersionId>>,
    versions: HashMap<VersionId, NodeIndex>,
    edges: HashMap<EdgeId, EdgeIndex>,
    /// Per node index, the edges arriving there: who depends on that node. The same
    /// edges petgraph holds, kept again as one small array per node, because petgraph
    /// links a node's edges through the edges themselves and a `dependents` walk paid a
    /// cache miss for every edge it looked at; with its hubs' tens of thousands of
    /// dependents, that walk was most of a question's time.
    arrivals: Vec<Vec<Arrival>>,
    /// Edges that share both ends with another edge: one link reported by several
    /// origins, whose evidence an answer gathers. Few edges have one, and knowing which
    /// spares an answer reading every edge of each node it explains.
    parallel: HashSet<EdgeIndex>,
    revision: i64,
}

/// An edge as the node it arrives at keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Arrival {
    /// The dependent.
    from: NodeIndex,
    edge: EdgeIndex,
    /// The edge's `last_seen` as [`stamp`] gives it, so a walk can skip stale edges
    /// without reading them. (A `uses` edge's range is read from the edge: sixteen
    /// bytes an arrival rather than twenty-four keeps a million of them small.)
    last_seen: i64,
}

/// A time as nanoseconds since the epoch, clamped to what an `i64` holds (the years 1677
/// to 2262), so that comparing two is comparing two numbers.
fn stamp(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

impl InventoryGraph {
    pub fn new() -> Self {
        Self::default()
    }

    /// The last inventory revision applied.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    pub fn set_revision(&mut self, revision: i64) {
        self.revision = revision;
    }

    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    pub fn upsert_model(&mut self, m: ModelInfo) {
        if let Some(&ix) = self.models.get(&m.id) {
            self.g[ix] = Node::Model(m.clone());
        } else {
            let ix = self.g.add_node(Node::Model(m.clone()));
            self.models.insert(m.id, ix);
        }
        self.model_names.insert(m.name.as_str().to_owned(), m.id);
    }

    pub fn upsert_version(&mut self, v: VersionInfo) -> Result<(), GraphError> {
        if !self.models.contains_key(&v.model) {
            return Err(GraphError::Missing("model", v.model));
        }
        self.model_versions
            .entry(v.model)
            .or_default()
            .insert(v.version, v.id);
        if let Some(&ix) = self.versions.get(&v.id) {
            self.g[ix] = Node::Version(v);
        } else {
            let id = v.id;
            let ix = self.g.add_node(Node::Version(v));
            self.versions.insert(id, ix);
        }
        Ok(())
    }

    pub fn upsert_consumer(&mut self, id: ConsumerId, c: Consumer) {
        let name = c.name.as_str().to_owned();
        if let Some(&ix) = self.consumers.get(&id) {
            if let Node::Consumer(_, old) = &self.g[ix] {
                self.consumer_names.remove(old.name.as_str());
            }
            self.g[ix] = Node::Consumer(id, c);
        } else {
            let ix = self.g.add_node(Node::Consumer(id, c));
            self.consumers.insert(id, ix);
        }
        self.consumer_names.insert(name, id);
    }

    /// Removes a consumer and every edge at it.
    pub fn remove_consumer(&mut self, id: ConsumerId) {
        let Some(ix) = self.consumers.remove(&id) else {
            return;
        };
        let incident: Vec<EdgeId> = self
            .g
            .edges_directed(ix, Direction::Outgoing)
            .chain(self.g.edges_directed(ix, Direction::Incoming))
            .map(|e| e.weight().id)
            .collect();
        for edge in incident {
            // Each leaves the arrivals of the node at its other end.
            self.remove_edge(edge);
        }
        // petgraph reuses the index of a removed node.
        if let Some(arrivals) = self.arrivals.get_mut(ix.index()) {
            *arrivals = Vec::new();
        }
        if let Some(Node::Consumer(_, c)) = self.g.remove_node(ix) {
            self.consumer_names.remove(c.name.as_str());
        }
    }

    pub fn upsert_edge(&mut self, e: EdgeRecord) -> Result<(), GraphError> {
        self.insert_edge(e, true)
    }

    /// Adds an edge read by a bulk load, leaving its arrival to [`Self::finish_load`]:
    /// a million arrivals grown one by one cost more than laying them out once.
    pub fn load_edge(&mut self, e: EdgeRecord) -> Result<(), GraphError> {
        self.insert_edge(e, false)
    }

    /// Lays out the arrivals of every edge added by [`Self::load_edge`]: counted first,
    /// so that each node's array is allocated once at its size, then filled in the
    /// order of the edges' indexes. That is the order they were added, and so the order
    /// single upserts would give, because a graph being loaded has had no edge removed
    /// (petgraph reuses a removed edge's index).
    pub fn finish_load(&mut self) {
        let mut count = vec![0usize; self.g.node_bound()];
        for e in (&self.g).edge_references() {
            count[e.target().index()] += 1;
        }
        self.arrivals = count.into_iter().map(Vec::with_capacity).collect();
        for e in (&self.g).edge_references() {
            self.arrivals[e.target().index()].push(Arrival {
                from: e.source(),
                edge: e.id(),
                last_seen: stamp(e.weight().last_seen),
            });
        }
        self.parallel.clear();
        let mut ends: Vec<(NodeIndex, EdgeIndex)> = Vec::new();
        for arrivals in self.arrivals.iter().filter(|a| a.len() > 1) {
            ends.clear();
            ends.extend(arrivals.iter().map(|a| (a.from, a.edge)));
            ends.sort_unstable();
            for pair in ends.windows(2) {
                if pair[0].0 == pair[1].0 {
                    self.parallel.extend([pair[0].1, pair[1].1]);
                }
            }
        }
    }

    fn insert_edge(&mut self, e: EdgeRecord, arrive: bool) -> Result<(), GraphError> {
        let (from, to) = match &e.link {
            Link::Uses {
                consumer, model, ..
            } => (
                self.consumer_ix(*consumer)?,
                *self
                    .models
                    .get(model)
                    .ok_or(GraphError::Missing("model", *model))?,
            ),
            Link::DerivedFrom {
                version, parent, ..
            } => (self.version_ix(*version)?, self.version_ix(*parent)?),
            Link::DependsOn { consumer, target } => {
                (self.consumer_ix(*consumer)?, self.consumer_ix(*target)?)
            }
        };
        let last_seen = stamp(e.last_seen);
        if let Some(&ex) = self.edges.get(&e.id)
            && let Some(w) = self.g.edge_weight_mut(ex)
        {
            // The link of a row never changes; its evidence does.
            *w = e;
            // (During a bulk load there are no arrivals yet; `finish_load` reads the time.)
            if let Some(a) = self
                .arrivals
                .get_mut(to.index())
                .and_then(|arrivals| arrivals.iter_mut().find(|a| a.edge == ex))
            {
                a.last_seen = last_seen;
            }
            return Ok(());
        }
        let id = e.id;
        let ex = self.g.add_edge(from, to, e);
        self.edges.insert(id, ex);
        if !arrive {
            return Ok(());
        }
        if self.arrivals.len() <= to.index() {
            self.arrivals.resize_with(to.index() + 1, Vec::new);
        }
        let twins: Vec<EdgeIndex> = self.arrivals[to.index()]
            .iter()
            .filter(|a| a.from == from)
            .map(|a| a.edge)
            .collect();
        if !twins.is_empty() {
            self.parallel.extend(twins);
            self.parallel.insert(ex);
        }
        self.arrivals[to.index()].push(Arrival {
            from,
            edge: ex,
            last_seen,
        });
        Ok(())
    }

    pub fn remove_edge(&mut self, id: EdgeId) {
        let Some(ex) = self.edges.remove(&id) else {
            return;
        };
        if let Some((_, to)) = self.g.edge_endpoints(ex)
            && let Some(arrivals) = self.arrivals.get_mut(to.index())
            && let Some(at) = arrivals.iter().position(|a| a.edge == ex)
        {
            // `remove`, not `swap_remove`: walks meet a node's dependents in the order
            // they arrived, which keeps the path chosen to explain each stable.
            let gone = arrivals.remove(at);
            if self.parallel.remove(&ex) {
                let mut twins = arrivals.iter().filter(|a| a.from == gone.from);
                if let (Some(last), None) = (twins.next(), twins.next()) {
                    self.parallel.remove(&last.edge);
                }
            }
        }
        self.g.remove_edge(ex);
    }

    pub fn consumer_id(&self, name: &str) -> Option<ConsumerId> {
        self.consumer_names.get(name).copied()
    }

    pub fn consumer(&self, id: ConsumerId) -> Option<&Consumer> {
        match self.consumers.get(&id).map(|&ix| &self.g[ix]) {
            Some(Node::Consumer(_, c)) => Some(c),
            _ => None,
        }
    }

    pub fn model_id(&self, name: &str) -> Option<ModelId> {
        self.model_names.get(name).copied()
    }

    pub fn model(&self, id: ModelId) -> Option<&ModelInfo> {
        match self.models.get(&id).map(|&ix| &self.g[ix]) {
            Some(Node::Model(m)) => Some(m),
            _ => None,
        }
    }

    pub fn version_id(&self, model: ModelId, version: Version) -> Option<VersionId> {
        self.model_versions.get(&model)?.get(&version).copied()
    }

    pub fn version(&self, id: VersionId) -> Option<&VersionInfo> {
        match self.versions.get(&id).map(|&ix| &self.g[ix]) {
            Some(Node::Version(v)) => Some(v),
            _ => None,
        }
    }

    pub fn edge(&self, id: EdgeId) -> Option<&EdgeRecord> {
        self.edges.get(&id).and_then(|&ex| self.g.edge_weight(ex))
    }

    /// Every edge at a consumer, either way, for listing.
    pub fn edges_of_consumer(&self, id: ConsumerId) -> Vec<&EdgeRecord> {
        let Some(&ix) = self.consumers.get(&id) else {
            return Vec::new();
        };
        let mut out: Vec<&EdgeRecord> = self
            .g
            .edges_directed(ix, Direction::Outgoing)
            .chain(self.g.edges_directed(ix, Direction::Incoming))
            .map(|e| e.weight())
            .collect();
        out.sort_by_key(|e| e.id);
        out
    }

    /// All consumers, ordered by name.
    pub fn consumers(&self) -> Vec<(ConsumerId, &Consumer)> {
        let mut out: Vec<(ConsumerId, &Consumer)> = self
            .consumers
            .iter()
            .filter_map(|(&id, &ix)| match &self.g[ix] {
                Node::Consumer(_, c) => Some((id, c)),
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        out
    }

    fn consumer_ix(&self, id: ConsumerId) -> Result<NodeIndex, GraphError> {
        self.consumers
            .get(&id)
            .copied()
            .ok_or(GraphError::Missing("consumer", id))
    }

    fn version_ix(&self, id: VersionId) -> Result<NodeIndex, GraphError> {
        self.versions
            .get(&id)
            .copied()
            .ok_or(GraphError::Missing("version", id))
    }

    /// Everything the graph holds, in a canonical order, with each edge's endpoints as
    /// the graph wires them: two graphs with equal snapshots answer every question alike.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for (&id, &ix) in &self.consumers {
            if let Node::Consumer(_, c) = &self.g[ix] {
                s.consumers.insert(id, c.clone());
            }
        }
        for (&id, &ix) in &self.models {
            if let Node::Model(m) = &self.g[ix] {
                s.models.insert(id, m.clone());
            }
        }
        for (&id, &ix) in &self.versions {
            if let Node::Version(v) = &self.g[ix] {
                s.versions.insert(id, v.clone());
            }
        }
        for (&id, &ex) in &self.edges {
            if let Some((a, b)) = self.g.edge_endpoints(ex) {
                let e = self.g[ex].clone();
                s.edges
                    .insert(id, (self.node_label(a), self.node_label(b), e));
            }
        }
        s.arrivals_agree = self.arrivals_agree();
        s.node_count = self.g.node_count();
        s.edge_count = self.g.edge_count();
        s.index_sizes = [
            self.consumers.len(),
            self.consumer_names.len(),
            self.models.len(),
            self.model_names.len(),
            self.versions.len(),
            self.edges.len(),
        ];
        s
    }

    /// Whether each node's arrivals are exactly the edges petgraph has arriving there,
    /// in the reverse of petgraph's order (which puts the newest first), with their
    /// times, and the parallel edges exactly those that share both ends with another.
    fn arrivals_agree(&self) -> bool {
        let parallel: HashSet<EdgeIndex> = (&self.g)
            .edge_references()
            .filter(|e| self.g.edges_connecting(e.source(), e.target()).count() > 1)
            .map(|e| e.id())
            .collect();
        if parallel != self.parallel {
            return false;
        }
        let bound = self.g.node_bound();
        if self.arrivals.len() > bound && self.arrivals[bound..].iter().any(|a| !a.is_empty()) {
            return false;
        }
        (0..bound).all(|i| {
            let ix = NodeIndex::new(i);
            let kept = self.arrivals.get(i).map(Vec::as_slice).unwrap_or_default();
            let expected: Vec<Arrival> = if self.g.contains_node(ix) {
                self.g
                    .edges_directed(ix, Direction::Incoming)
                    .map(|e| Arrival {
                        from: e.source(),
                        edge: e.id(),
                        last_seen: stamp(e.weight().last_seen),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            kept.iter().rev().eq(expected.iter())
        })
    }

    fn node_label(&self, ix: NodeIndex) -> String {
        match &self.g[ix] {
            Node::Consumer(id, _) => format!("consumer:{id}"),
            Node::Model(m) => format!("model:{}", m.id),
            Node::Version(v) => format!("version:{}", v.id),
        }
    }
}

/// See [`InventoryGraph::snapshot`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub consumers: BTreeMap<ConsumerId, Consumer>,
    pub models: BTreeMap<ModelId, ModelInfo>,
    pub versions: BTreeMap<VersionId, VersionInfo>,
    pub edges: BTreeMap<EdgeId, (String, String, EdgeRecord)>,
    pub node_count: usize,
    pub edge_count: usize,
    /// The sizes of the lookup maps, so an entry left behind shows too.
    pub index_sizes: [usize; 6],
    /// Whether the compact per-node arrivals and the set of parallel edges agree with
    /// petgraph's own edges.
    pub arrivals_agree: bool,
}

#[cfg(test)]
mod tests;
