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
//!
//! # Performance
//!
//! Beside petgraph's own lists, each node keeps its *arrivals* (`arrivals.rs`: the edges
//! arriving there, inline when there is one): `dependents` walks read those, since
//! petgraph links a node's edges through the edges and a hub question paid a cache miss
//! for every edge. Each arrival carries what a walk needs so it reads neither edge nor
//! dependent: last seen, the `uses` range's number (`ranges`), whether anything depends
//! on the dependent, and the first eight bytes of its name (how an answer picks the first
//! 1,000 of a hub's dependents). `upsert_edge`, `remove_edge`, `remove_consumer` and the
//! upserts that rename keep them; a bulk load adds edges with `load_edge` and lays the
//! arrivals out once in `finish_load`; `snapshot().indexes_agree` checks them against
//! petgraph. `packed.rs` holds a second copy that walks read first: every node's arrivals
//! in one array, laid out breadth-first from the longest list, each arrival carrying
//! where its dependent's own arrivals lie (so expanding a dependent is one read, not a
//! slot and then the heap) and its hot part (dependent, span, flags: 16 bytes) apart from
//! the rest. It is laid out at `finish_load` and again at `set_revision` once enough
//! changed (`worth_repacking`); in between, a change to a node's arrivals *unpacks* that
//! node (`arrivals_changed`: its span and the spans in the packed arrivals that reach it
//! say so, found through a per-edge place index) and walks read it from its list; fields
//! changed in place go to both copies (`edit_arrival`). `indexes_agree` checks every
//! packed node against its list. Beyond the 1,000 an answer may list, a walk takes the
//! short way (`expand_beyond`): no path, no key, leaf consumers only counted per depth,
//! the next batch's packed arrivals read while this one expands; before listing,
//! `read_ahead` reads each kind of line the listed nodes need (node, consumer record,
//! name, edge) for all of them in one pass. A set of *parallel* edges (one link from
//! several origins) tells an answer which steps need their evidence gathered from
//! petgraph's lists. The *looping* set holds the `depends_on` edges that may lie on a
//! circle (exact after a load; an added link that closes one, or whose search grows long,
//! has the circles found again at `set_revision`), and each such edge's arrival is
//! flagged so; a walk looks for cycles only among those, by peeling (Kahn, each way) and
//! then Tarjan on what is left. Consumers are held as `Arc<Consumer>` and `ConsumerName`
//! is a shared `Arc<str>`: an answer's targets and the names in its paths
//! (`Step.from`/`to`, ranges, origin names) are reference counts, not copies, because a
//! hub answer lists a thousand.
//!
//! Why this file is long: every mutation of the graph keeps petgraph and the performance
//! layer (`WalkIndex`: arrivals, packed copy, parallel and looping edges) in step, and
//! they stay together here so that no mutation can update one and forget the other; the
//! notes below say how each part is kept.

mod arrivals;
mod build;
mod footprint;
mod packed;
mod query;
mod walk_index;

use arrivals::{Arrival, Arrivals, NO_RANGE, sort_prefix};
use packed::Packed;
use walk_index::WalkIndex;

pub use build::GraphBuilder;
pub use footprint::Footprint;
pub use query::{Answer, Counts, Cycle, Evidence, Impact, Query, Reached, Step, Target, Upstream};

use crate::domain::{
    Consumer, Derivation, EdgeKind, EdgeOrigin, ModelName, TeamName, Version, VersionRange,
};
use chrono::{DateTime, Utc};
use petgraph::Direction;
use petgraph::stable_graph::{EdgeIndex, NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeIndexable, EdgeRef, IntoEdgeReferences, NodeIndexable};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

pub use crate::domain::{ConsumerId, EdgeId, ModelId, VersionId};

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
    /// Shared with the answers that list it: cloning a thousand consumers' names, teams
    /// and contacts was much of a hub answer's time.
    Consumer(ConsumerId, Arc<Consumer>),
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
    /// What the walks read instead of petgraph's linked edge lists.
    walk: WalkIndex,
    /// Every range a `uses` edge has named, numbered in the order first seen; arrivals
    /// refer to them by number. One entry per distinct range text, which many edges
    /// share, so none is ever dropped.
    ranges: Vec<Arc<VersionRange>>,
    range_numbers: HashMap<String, u32, foldhash::fast::RandomState>,
    revision: i64,
}

/// How many consumers an added `depends_on` link's search for a circle through it may
/// visit before giving up, as if it had found one.
const LOOP_SEARCH_BOUND: usize = 4_096;

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

    /// Marks the graph current up to `revision`, once that revision's changes are in;
    /// circles that changes may have made are found again here, once for them all.
    pub fn set_revision(&mut self, revision: i64) {
        self.revision = revision;
        if self.walk.loops_unknown {
            self.mark_looping(self.loops());
            self.walk.loops_unknown = false;
        }
        if self.walk.packed.worth_repacking() {
            self.repack();
        }
    }

    /// Lays the packed arrivals out afresh from the per-node lists.
    fn repack(&mut self) {
        self.walk.packed = Packed::pack(&self.walk.arrivals, self.g.edge_bound());
    }

    /// After the arrivals at `ix` changed: walks stop reading their packed copy.
    fn arrivals_changed(&mut self, ix: NodeIndex) {
        self.walk.packed.unpack(
            ix,
            self.g
                .edges_directed(ix, Direction::Outgoing)
                .map(|e| e.id()),
        );
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
            return Err(GraphError::Missing("model", v.model.0));
        }
        self.model_versions
            .entry(v.model)
            .or_default()
            .insert(v.version, v.id);
        if let Some(&ix) = self.versions.get(&v.id) {
            self.replace_node(ix, Node::Version(v));
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
            self.replace_node(ix, Node::Consumer(id, Arc::new(c)));
        } else {
            let ix = self.g.add_node(Node::Consumer(id, Arc::new(c)));
            self.consumers.insert(id, ix);
        }
        self.consumer_names.insert(name, id);
    }

    /// The arrival of edge `ex` from `from`, numbering its range if it is new.
    fn arrival(&mut self, from: NodeIndex, ex: EdgeIndex) -> Arrival {
        Arrival {
            key: self.key_of(from),
            from_depended_on: self.depended_on(from),
            ..self.bare_arrival(from, ex)
        }
    }

    /// [`Self::arrival`] without what the dependent tells: its key, and whether anything
    /// depends on it.
    fn bare_arrival(&mut self, from: NodeIndex, ex: EdgeIndex) -> Arrival {
        let e = &self.g[ex];
        let last_seen = stamp(e.last_seen);
        let range = match &e.link {
            Link::Uses { range, .. } => match self.range_numbers.get(range.as_str()) {
                Some(&n) => n,
                None => {
                    let n = u32::try_from(self.ranges.len()).expect("fewer than 2^32 ranges");
                    self.range_numbers.insert(range.as_str().to_owned(), n);
                    self.ranges.push(Arc::clone(range));
                    n
                }
            },
            _ => NO_RANGE,
        };
        Arrival {
            from,
            edge: ex,
            range,
            from_depended_on: false,
            looping: false,
            last_seen,
            key: 0,
        }
    }

    /// The sort prefix of a node's name, as the arrivals of its edges keep it.
    fn key_of(&self, ix: NodeIndex) -> u64 {
        match &self.g[ix] {
            Node::Consumer(_, c) => sort_prefix(c.name.as_str()),
            Node::Version(v) => sort_prefix(v.model_name.as_str()),
            Node::Model(m) => sort_prefix(m.name.as_str()),
        }
    }

    /// The arrival at `to` of edge `ex`. A search: a popular model's arrivals are many.
    fn arrival_mut(&mut self, to: NodeIndex, ex: EdgeIndex) -> Option<&mut Arrival> {
        self.walk
            .arrivals
            .get_mut(to.index())?
            .as_mut_slice()
            .iter_mut()
            .find(|a| a.edge == ex)
    }

    /// Changes a field of the arrival at `to` of edge `ex`, in its list and in its packed
    /// copy alike.
    fn edit_arrival(&mut self, to: NodeIndex, ex: EdgeIndex, edit: impl Fn(&mut Arrival)) {
        if let Some(a) = self.arrival_mut(to, ex) {
            edit(a);
        }
        self.walk.packed.edit(ex, edit);
    }

    /// Whether anything depends on the node: it has arrivals.
    fn depended_on(&self, ix: NodeIndex) -> bool {
        self.walk
            .arrivals
            .get(ix.index())
            .is_some_and(|a| !a.is_empty())
    }

    /// Puts `node` in the place of the one at `ix`; if its name sorts differently, the
    /// arrivals of its edges learn so (a consumer seen again, the usual case, costs
    /// nothing more: a popular model's arrivals are long to search).
    fn replace_node(&mut self, ix: NodeIndex, node: Node) {
        let before = self.key_of(ix);
        self.g[ix] = node;
        if self.key_of(ix) != before {
            self.refresh_arrivals_from(ix);
        }
    }

    /// After a node's name or whether anything depends on it may have changed: the
    /// arrivals of the edges leaving it take the node's key and flag anew.
    fn refresh_arrivals_from(&mut self, ix: NodeIndex) {
        let key = self.key_of(ix);
        let depended_on = self.depended_on(ix);
        let leaving: Vec<(NodeIndex, EdgeIndex)> = self
            .g
            .edges_directed(ix, Direction::Outgoing)
            .map(|e| (e.target(), e.id()))
            .collect();
        for (to, ex) in leaving {
            self.edit_arrival(to, ex, |a| {
                a.key = key;
                a.from_depended_on = depended_on;
            });
        }
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
        if let Some(arrivals) = self.walk.arrivals.get_mut(ix.index()) {
            *arrivals = Arrivals::None;
        }
        self.arrivals_changed(ix);
        if let Some(Node::Consumer(_, c)) = self.g.remove_node(ix) {
            self.consumer_names.remove(c.name.as_str());
        }
    }

    pub fn upsert_edge(&mut self, e: EdgeRecord) -> Result<(), GraphError> {
        self.insert_edge(e, true)
    }

    /// Adds an edge read by a bulk load, leaving its arrival to [`Self::finish_load`]:
    /// a million arrivals grown one by one cost more than laying them out once.
    pub(super) fn load_edge(&mut self, e: EdgeRecord) -> Result<(), GraphError> {
        self.insert_edge(e, false)
    }

    /// Lays out the arrivals of every edge added by [`Self::load_edge`]: counted first,
    /// so that each node's array is allocated once at its size, then filled in the
    /// order of the edges' indexes. That is the order they were added, and so the order
    /// single upserts would give, because a graph being loaded has had no edge removed
    /// (petgraph reuses a removed edge's index).
    pub(super) fn finish_load(&mut self) {
        let mut count = vec![0usize; self.g.node_bound()];
        for e in (&self.g).edge_references() {
            count[e.target().index()] += 1;
        }
        self.walk.arrivals = count.into_iter().map(Arrivals::with_capacity).collect();
        // Keys read node by node in order, rather than once per edge at random.
        let keys: Vec<u64> = (0..self.g.node_bound())
            .map(|i| {
                let ix = NodeIndex::new(i);
                self.g.node_weight(ix).map_or(0, |_| self.key_of(ix))
            })
            .collect();
        let edges: Vec<EdgeIndex> = self.g.edge_indices().collect();
        for ex in edges {
            let (from, to) = self.g.edge_endpoints(ex).expect("an edge the graph lists");
            let arrival = Arrival {
                key: keys[from.index()],
                ..self.bare_arrival(from, ex)
            };
            self.walk.arrivals[to.index()].push(arrival);
        }
        // Only now that every node has its arrivals is it known who is depended on.
        let depended_on: Vec<bool> = self.walk.arrivals.iter().map(|a| !a.is_empty()).collect();
        for a in self
            .walk
            .arrivals
            .iter_mut()
            .flat_map(Arrivals::as_mut_slice)
        {
            a.from_depended_on = depended_on.get(a.from.index()).copied().unwrap_or(false);
        }
        self.walk.parallel.clear();
        let mut ends: Vec<(NodeIndex, EdgeIndex)> = Vec::new();
        for arrivals in &self.walk.arrivals {
            let Arrivals::Many(arrivals) = arrivals else {
                continue;
            };
            ends.clear();
            ends.extend(arrivals.iter().map(|a| (a.from, a.edge)));
            ends.sort_unstable();
            for pair in ends.windows(2) {
                if pair[0].0 == pair[1].0 {
                    self.walk.parallel.extend([pair[0].1, pair[1].1]);
                }
            }
        }
        self.mark_looping(self.loops());
        self.walk.loops_unknown = false;
        self.repack();
    }

    /// Makes `looping` the graph's looping edges, and their arrivals say so.
    fn mark_looping(&mut self, looping: HashSet<EdgeIndex, foldhash::fast::RandomState>) {
        let old = std::mem::take(&mut self.walk.looping);
        let flips: Vec<(EdgeIndex, bool)> = old
            .difference(&looping)
            .map(|&ex| (ex, false))
            .chain(looping.difference(&old).map(|&ex| (ex, true)))
            .collect();
        for (ex, flag) in flips {
            if let Some((_, to)) = self.g.edge_endpoints(ex) {
                self.edit_arrival(to, ex, |a| a.looping = flag);
            }
        }
        self.walk.looping = looping;
    }

    /// The `depends_on` edges whose two ends lie in one strongly connected part of the
    /// `depends_on` links (a consumer depending on itself included).
    fn loops(&self) -> HashSet<EdgeIndex, foldhash::fast::RandomState> {
        let links: Vec<(NodeIndex, NodeIndex, EdgeIndex)> = (&self.g)
            .edge_references()
            .filter(|e| matches!(e.weight().link, Link::DependsOn { .. }))
            .map(|e| (e.source(), e.target(), e.id()))
            .collect();
        let mut sub: petgraph::Graph<(), ()> = petgraph::Graph::new();
        // Per node index, its node in `sub`: a vector, since most consumers have a link.
        let mut local: Vec<Option<petgraph::graph::NodeIndex>> = vec![None; self.g.node_bound()];
        let mut at = |ix: NodeIndex, sub: &mut petgraph::Graph<(), ()>| {
            *local[ix.index()].get_or_insert_with(|| sub.add_node(()))
        };
        let ends: Vec<_> = links
            .iter()
            .map(|&(a, b, _)| {
                let (la, lb) = (at(a, &mut sub), at(b, &mut sub));
                sub.add_edge(la, lb, ());
                (la, lb)
            })
            .collect();
        let mut part = vec![usize::MAX; sub.node_count()];
        for (n, scc) in petgraph::algo::tarjan_scc(&sub).into_iter().enumerate() {
            if scc.len() > 1 {
                for l in scc {
                    part[l.index()] = n;
                }
            }
        }
        links
            .iter()
            .zip(ends)
            .filter(|&(_, (la, lb))| {
                la == lb || (part[la.index()] != usize::MAX && part[la.index()] == part[lb.index()])
            })
            .map(|(&(_, _, ex), _)| ex)
            .collect()
    }

    /// Keeps [`Self::looping`] a superset of the edges on circles once `from` depends on
    /// `to`: a new circle passes through that link only if `to` already reaches `from`.
    /// Circles are rare, so when it does (or the search grows too long) the circles are
    /// found again over the whole graph, once the change's revision is in.
    fn note_dependency(&mut self, from: NodeIndex, to: NodeIndex) {
        let mut seen: HashSet<NodeIndex> = HashSet::from([to]);
        let mut todo = vec![to];
        while let Some(at) = todo.pop() {
            if at == from || seen.len() > LOOP_SEARCH_BOUND {
                self.walk.loops_unknown = true;
                return;
            }
            for e in self.g.edges_directed(at, Direction::Outgoing) {
                if matches!(e.weight().link, Link::DependsOn { .. }) && seen.insert(e.target()) {
                    todo.push(e.target());
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
                    .ok_or(GraphError::Missing("model", model.0))?,
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
            self.edit_arrival(to, ex, |a| a.last_seen = last_seen);
            return Ok(());
        }
        let id = e.id;
        let ex = self.g.add_edge(from, to, e);
        self.edges.insert(id, ex);
        if !arrive {
            return Ok(());
        }
        if self.walk.arrivals.len() <= to.index() {
            self.walk
                .arrivals
                .resize_with(to.index() + 1, Arrivals::default);
        }
        let twins: Vec<EdgeIndex> = self.walk.arrivals[to.index()]
            .as_slice()
            .iter()
            .filter(|a| a.from == from)
            .map(|a| a.edge)
            .collect();
        if !twins.is_empty() {
            self.walk.parallel.extend(twins);
            self.walk.parallel.insert(ex);
        }
        let arrival = self.arrival(from, ex);
        let first = !self.depended_on(to);
        self.walk.arrivals[to.index()].push(arrival);
        self.arrivals_changed(to);
        if first {
            self.refresh_arrivals_from(to);
        }
        if matches!(self.g[ex].link, Link::DependsOn { .. }) {
            self.note_dependency(from, to);
        }
        Ok(())
    }

    pub fn remove_edge(&mut self, id: EdgeId) {
        let Some(ex) = self.edges.remove(&id) else {
            return;
        };
        if let Some((_, to)) = self.g.edge_endpoints(ex)
            && let Some(arrivals) = self.walk.arrivals.get_mut(to.index())
            && let Some(at) = arrivals.as_slice().iter().position(|a| a.edge == ex)
        {
            let gone = arrivals.remove(at);
            let last = arrivals.is_empty();
            if self.walk.parallel.remove(&ex) {
                let mut twins = arrivals.as_slice().iter().filter(|a| a.from == gone.from);
                if let (Some(last), None) = (twins.next(), twins.next()) {
                    self.walk.parallel.remove(&last.edge);
                }
            }
            self.arrivals_changed(to);
            if last {
                self.refresh_arrivals_from(to);
            }
        }
        self.walk.packed.forget_edge(ex);
        // A superset stays one: the edge's index may be reused, but not its flag.
        self.walk.looping.remove(&ex);
        self.g.remove_edge(ex);
    }

    pub fn consumer_id(&self, name: &str) -> Option<ConsumerId> {
        self.consumer_names.get(name).copied()
    }

    pub fn consumer(&self, id: ConsumerId) -> Option<&Consumer> {
        match self.consumers.get(&id).map(|&ix| &self.g[ix]) {
            Some(Node::Consumer(_, c)) => Some(c.as_ref()),
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
                Node::Consumer(_, c) => Some((id, c.as_ref())),
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
            .ok_or(GraphError::Missing("consumer", id.0))
    }

    fn version_ix(&self, id: VersionId) -> Result<NodeIndex, GraphError> {
        self.versions
            .get(&id)
            .copied()
            .ok_or(GraphError::Missing("version", id.0))
    }

    /// Everything the graph holds, in a canonical order, with each edge's endpoints as
    /// the graph wires them: two graphs with equal snapshots answer every question alike.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for (&id, &ix) in &self.consumers {
            if let Node::Consumer(_, c) = &self.g[ix] {
                s.consumers.insert(id, Consumer::clone(c));
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
        s.indexes_agree = self.indexes_agree();
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
    /// times; the parallel edges exactly those that share both ends with another; and
    /// the looping edges `depends_on` edges that include every one on a circle (unless
    /// the graph says it does not know them yet).
    fn indexes_agree(&self) -> bool {
        let looping_ok = (self.walk.loops_unknown || self.loops().is_subset(&self.walk.looping))
            && self.walk.looping.iter().all(|&ex| {
                self.g
                    .edge_weight(ex)
                    .is_some_and(|e| matches!(e.link, Link::DependsOn { .. }))
            });
        if !looping_ok {
            return false;
        }
        let parallel: HashSet<EdgeIndex> = (&self.g)
            .edge_references()
            .filter(|e| self.g.edges_connecting(e.source(), e.target()).count() > 1)
            .map(|e| e.id())
            .collect();
        if parallel != self.walk.parallel {
            return false;
        }
        let bound = self.g.node_bound();
        if self.walk.arrivals.len() > bound
            && self.walk.arrivals[bound..].iter().any(|a| !a.is_empty())
        {
            return false;
        }
        (0..bound).all(|i| {
            let ix = NodeIndex::new(i);
            let kept = self
                .walk
                .arrivals
                .get(i)
                .map(Arrivals::as_slice)
                .unwrap_or_default();
            let expected: Vec<Arrival> = if self.g.contains_node(ix) {
                self.g
                    .edges_directed(ix, Direction::Incoming)
                    .map(|e| Arrival {
                        from: e.source(),
                        edge: e.id(),
                        // A `uses` edge whose range has no number (or another's) gets
                        // one no arrival holds, so the comparison fails.
                        range: match &e.weight().link {
                            Link::Uses { range, .. } => self
                                .range_numbers
                                .get(range.as_str())
                                .copied()
                                .filter(|&n| self.ranges[n as usize] == *range)
                                .unwrap_or(NO_RANGE - 1),
                            _ => NO_RANGE,
                        },
                        from_depended_on: self
                            .g
                            .edges_directed(e.source(), Direction::Incoming)
                            .next()
                            .is_some(),
                        looping: self.walk.looping.contains(&e.id()),
                        last_seen: stamp(e.weight().last_seen),
                        key: self.key_of(e.source()),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            kept.iter().rev().eq(expected.iter())
        }) && self.walk.packed.agrees_with(&self.walk.arrivals)
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
    /// Whether the compact per-node arrivals, the set of parallel edges and the set of
    /// looping edges agree with petgraph's own edges.
    pub indexes_agree: bool,
}

#[cfg(test)]
mod tests;
