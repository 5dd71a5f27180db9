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
//! Walks do not read petgraph's own lists. Each node's *arrivals* (`arrivals.rs`: the
//! edges arriving there) are what `dependents` walks read, since petgraph links a node's
//! edges through the edges and a hub question paid a cache miss for every edge. Each
//! arrival carries what a walk needs so it reads neither edge nor dependent: last seen,
//! the `uses` range's number (`ranges`), whether anything depends on the dependent, and
//! the first eight bytes of its name (how an answer picks the first 1,000 of a hub's
//! dependents). They are held once (`walk_index.rs`): *packed* (`packed.rs`), every
//! node's in one array laid out breadth-first from the longest list, each arrival
//! carrying where its dependent's own arrivals lie (so expanding a dependent is one read)
//! and its hot part (dependent, span, flags: 16 bytes) apart from the rest (edge, range,
//! last seen, key: 24 bytes), neither repeating the other; or, for a
//! node whose arrivals changed since the layout, in a list of its own. A bulk load adds
//! edges with `load_edge` and lays every arrival out once in `finish_load`; a change to a
//! node's arrivals first *unpacks* it (`arrivals_change`: the packed arrivals move to its
//! list, and its span and the spans in the packed arrivals that reach it say so, found
//! through a per-edge place index); fields changed in place go to whichever copy walks
//! read (`edit_arrival`); `set_revision` lays everything out again once enough changed
//! (`worth_repacking`). `snapshot().indexes_agree` checks the arrivals against petgraph.
//! Beyond the 1,000 an answer may list, a walk takes the short way (`expand_beyond`): no
//! path, no key, leaf consumers only counted per depth, the next batch's packed arrivals
//! read while this one expands; before listing, `read_ahead` reads each kind of line the
//! listed nodes need (node, consumer record, name, edge) for all of them in one pass. A
//! set of *parallel* edges (one link from several origins) tells an answer which steps
//! need their evidence gathered from petgraph's lists. The *looping* set holds the
//! `depends_on` edges that may lie on a circle (exact after a load; an added link that
//! closes one, or whose search grows long, has the circles found again at
//! `set_revision`), and each such edge's arrival is flagged so; a walk looks for cycles
//! only among those, by peeling (Kahn, each way) and then Tarjan on what is left.
//!
//! Memory (`footprint.rs` estimates it part by part): an edge is held as a compact record
//! (`edge.rs`: its link told by its two ends and numbers into the tables of ranges and
//! origin names, times in microseconds; 56 bytes with petgraph's links), built into an
//! [`EdgeRecord`] only when asked for; ids map to places through vectors indexed by id
//! (`id_index.rs`), names to places through tables of node indexes hashed by the names the
//! nodes hold (`name_index.rs`); a model's versions are one boxed slice
//! (`model_versions.rs`); a node is 32 bytes (a model's team a number, a version's model
//! its node, whose name it shows: `ModelInfo` and `VersionInfo` are built when asked
//! for); names are shared `Arc<str>`, and consumers' teams and environments are held once
//! each. Consumers are held as
//! `Arc<Consumer>`: an answer's targets and the names in its paths (`Step.from`/`to`,
//! ranges, origin names) are reference counts, not copies, because a hub answer lists a
//! thousand.
//!
//! Why this file is long: every mutation of the graph keeps petgraph and the performance
//! layer (`WalkIndex`: arrivals, packed copy, parallel and looping edges) in step, and
//! they stay together here so that no mutation can update one and forget the other; the
//! notes below say how each part is kept.

mod arrivals;
mod build;
mod edge;
mod footprint;
mod id_index;
mod model_versions;
mod name_index;
mod packed;
mod query;
mod walk_index;

use arrivals::{Arrival, NO_RANGE, sort_prefix};
use edge::{Edge, Kind, Numbered};
use id_index::IdIndex;
use model_versions::ModelVersions;
use name_index::NameIndex;
use packed::{At, Packed};
use walk_index::{WalkIndex, parallel_edges};

pub use build::GraphBuilder;
pub use footprint::Footprint;
pub use query::{Answer, Counts, Cycle, Evidence, Impact, Query, Reached, Step, Target, Upstream};

use crate::domain::{
    Consumer, Derivation, EdgeKind, EdgeOrigin, Environment, ModelName, TeamName, Version,
    VersionRange,
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
    /// Its owner team is a number among the graph's `model_teams`: with the fields
    /// inline, the node takes 32 bytes where a whole `ModelInfo` took 48.
    Model {
        id: ModelId,
        name: ModelName,
        team: u32,
    },
    /// Its model's node holds the name answers show with it.
    Version {
        id: VersionId,
        model: NodeIndex,
        version: Version,
    },
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
    g: StableDiGraph<Node, Edge>,
    consumers: IdIndex<ConsumerId, NodeIndex>,
    /// The consumers by name (see `name_index.rs`).
    consumer_names: NameIndex,
    models: IdIndex<ModelId, NodeIndex>,
    model_names: NameIndex,
    /// Per model, its versions in order, for resolving ranges.
    model_versions: HashMap<ModelId, ModelVersions>,
    versions: IdIndex<VersionId, NodeIndex>,
    edges: IdIndex<EdgeId, EdgeIndex>,
    /// What the walks read instead of petgraph's linked edge lists.
    walk: WalkIndex,
    /// Every range a `uses` edge has named; edges and arrivals refer to them by number.
    ranges: Numbered<VersionRange>,
    /// Every name an edge's origin has had; edges refer to them by number.
    origins: Numbered<str>,
    /// The teams owning models; model nodes refer to them by number.
    model_teams: Numbered<TeamName>,
    /// The teams and environments consumers name, each held once and shared by every
    /// consumer that names it (a few hundred names among millions of consumers).
    teams: HashSet<TeamName>,
    environments: HashSet<Environment>,
    revision: i64,
}

/// How many consumers an added `depends_on` link's search for a circle through it may
/// visit before giving up, as if it had found one.
const LOOP_SEARCH_BOUND: usize = 4_096;

/// The one copy of `name` that `held` keeps, which keeps `name` if it had none.
fn shared<T: Clone + Eq + std::hash::Hash>(held: &mut HashSet<T>, name: T) -> T {
    if let Some(kept) = held.get(&name) {
        return kept.clone();
    }
    held.insert(name.clone());
    name
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

/// The name of the consumer at `ix`, as [`NameIndex`] reads it ("" for another node).
fn consumer_name(g: &StableDiGraph<Node, Edge>, ix: NodeIndex) -> &str {
    match g.node_weight(ix) {
        Some(Node::Consumer(_, c)) => c.name.as_str(),
        _ => "",
    }
}

/// The name of the model at `ix`, as [`NameIndex`] reads it ("" for another node).
fn model_name(g: &StableDiGraph<Node, Edge>, ix: NodeIndex) -> &str {
    match g.node_weight(ix) {
        Some(Node::Model { name, .. }) => name.as_str(),
        _ => "",
    }
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
    /// circles that changes may have made are found again here, once for them all, and
    /// the arrivals laid out again if enough changed. Returns whether they were: the old
    /// layout, a large allocation, was just freed.
    pub fn set_revision(&mut self, revision: i64) -> bool {
        self.revision = revision;
        if self.walk.loops_unknown {
            self.mark_looping(self.loops());
            self.walk.loops_unknown = false;
        }
        let repack = self.walk.packed.worth_repacking();
        if repack {
            self.repack();
        }
        repack
    }

    /// Lays the arrivals out afresh in one array.
    fn repack(&mut self) {
        self.walk.repack(self.g.node_bound(), self.g.edge_bound());
    }

    /// Before the arrivals at `ix` change: walks read them from its list from now on.
    fn arrivals_change(&mut self, ix: NodeIndex) {
        self.walk.unpack(
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
        let team = self
            .model_teams
            .number_made(m.owner_team.as_str(), || Arc::new(m.owner_team.clone()));
        let node = Node::Model {
            id: m.id,
            name: m.name.clone(),
            team,
        };
        let ix = if let Some(&ix) = self.models.get(&m.id) {
            if let Node::Model { name, .. } = &self.g[ix] {
                let old = name.clone();
                self.model_names
                    .remove(old.as_str(), ix, |n| model_name(&self.g, n));
            }
            self.g[ix] = node;
            ix
        } else {
            let ix = self.g.add_node(node);
            self.models.insert(m.id, ix);
            ix
        };
        self.model_names
            .insert(m.name.as_str(), ix, |n| model_name(&self.g, n));
    }

    /// Adds or replaces a version; its model name is its model's.
    pub fn upsert_version(&mut self, v: VersionInfo) -> Result<(), GraphError> {
        self.put_version(v.id, v.model, v.version)
    }

    pub(super) fn put_version(
        &mut self,
        id: VersionId,
        model_id: ModelId,
        version: Version,
    ) -> Result<(), GraphError> {
        let Some(&model) = self.models.get(&model_id) else {
            return Err(GraphError::Missing("model", model_id.0));
        };
        self.model_versions
            .entry(model_id)
            .or_default()
            .insert(version, id);
        let node = Node::Version { id, model, version };
        if let Some(&ix) = self.versions.get(&id) {
            self.replace_node(ix, node);
        } else {
            let ix = self.g.add_node(node);
            self.versions.insert(id, ix);
        }
        Ok(())
    }

    pub fn upsert_consumer(&mut self, id: ConsumerId, mut c: Consumer) {
        c.owner_team = shared(&mut self.teams, c.owner_team);
        c.environment = shared(&mut self.environments, c.environment);
        let name = c.name.shared();
        let ix = if let Some(&ix) = self.consumers.get(&id) {
            if let Node::Consumer(_, old) = &self.g[ix] {
                let old = Arc::clone(old);
                self.consumer_names
                    .remove(old.name.as_str(), ix, |n| consumer_name(&self.g, n));
            }
            self.replace_node(ix, Node::Consumer(id, Arc::new(c)));
            ix
        } else {
            let ix = self.g.add_node(Node::Consumer(id, Arc::new(c)));
            self.consumers.insert(id, ix);
            ix
        };
        self.consumer_names
            .insert(&name, ix, |n| consumer_name(&self.g, n));
    }

    /// The arrival of edge `ex` from `from`.
    fn arrival(&mut self, from: NodeIndex, ex: EdgeIndex) -> Arrival {
        Arrival {
            key: self.key_of(from),
            from_depended_on: self.depended_on(from),
            ..self.bare_arrival(from, ex)
        }
    }

    /// [`Self::arrival`] without what the dependent tells: its key, and whether anything
    /// depends on it.
    fn bare_arrival(&self, from: NodeIndex, ex: EdgeIndex) -> Arrival {
        let e = &self.g[ex];
        let last_seen = stamp(e.last_seen());
        Arrival {
            from,
            edge: ex,
            range: e.range,
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
            Node::Version { model, .. } => sort_prefix(model_name(&self.g, *model)),
            Node::Model { name, .. } => sort_prefix(name.as_str()),
        }
    }

    /// The arrival at `to` of edge `ex`. A search: a popular model's arrivals are many.
    fn arrival_mut(&mut self, to: NodeIndex, ex: EdgeIndex) -> Option<&mut Arrival> {
        self.walk
            .lists
            .get_mut(&to)?
            .as_mut_slice()
            .iter_mut()
            .find(|a| a.edge == ex)
    }

    /// Changes a field of the arrival at `to` of edge `ex`, in its list and in its packed
    /// copy, whichever it has (a node unpacked keeps its old packed copy, unread).
    fn edit_arrival(&mut self, to: NodeIndex, ex: EdgeIndex, edit: impl Fn(&mut Arrival)) {
        if let Some(a) = self.arrival_mut(to, ex) {
            edit(a);
        }
        self.walk.packed.edit(ex, edit);
    }

    /// Whether anything depends on the node: it has arrivals.
    fn depended_on(&self, ix: NodeIndex) -> bool {
        !self.walk.at(ix).is_empty()
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
        self.arrivals_change(ix);
        self.walk.lists.remove(&ix);
        if let Node::Consumer(_, c) = &self.g[ix] {
            let c = Arc::clone(c);
            self.consumer_names
                .remove(c.name.as_str(), ix, |n| consumer_name(&self.g, n));
        }
        self.g.remove_node(ix);
    }

    pub fn upsert_edge(&mut self, e: EdgeRecord) -> Result<(), GraphError> {
        self.insert_edge(e, true)
    }

    /// Room for this many more nodes and edges, allocated at that size: a bulk load
    /// knows how many it will add.
    pub(super) fn reserve(
        &mut self,
        models: usize,
        versions: usize,
        consumers: usize,
        edges: usize,
    ) {
        self.g.reserve_exact_nodes(models + versions + consumers);
        self.g.reserve_exact_edges(edges);
        self.model_names.reserve(models, |n| model_name(&self.g, n));
        self.consumer_names
            .reserve(consumers, |n| consumer_name(&self.g, n));
    }

    /// Adds an edge read by a bulk load, leaving its arrival to [`Self::finish_load`]:
    /// a million arrivals grown one by one cost more than laying them out once.
    pub(super) fn load_edge(&mut self, e: EdgeRecord) -> Result<(), GraphError> {
        self.insert_edge(e, false)
    }

    /// Lays out the arrivals of every edge added by [`Self::load_edge`], packed: first
    /// in one array grouped by node (counted first, so it is allocated once and given
    /// back whole), in the order of the edges' indexes. That is the order they were
    /// added, and so the order single upserts would give, because a graph being loaded
    /// has had no edge removed (petgraph reuses a removed edge's index).
    pub(super) fn finish_load(&mut self) {
        let n = self.g.node_bound();
        let mut start = vec![0usize; n + 1];
        for e in (&self.g).edge_references() {
            start[e.target().index() + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        // Keys read node by node in order, rather than once per edge at random.
        let keys: Vec<u64> = (0..n)
            .map(|i| {
                let ix = NodeIndex::new(i);
                self.g.node_weight(ix).map_or(0, |_| self.key_of(ix))
            })
            .collect();
        let mut fill = start.clone();
        let mut all: Vec<Arrival> = Vec::with_capacity(start[n]);
        // Safe stand-ins, each overwritten below: every slot is some edge's.
        all.resize(start[n], Arrival::empty());
        for ex in self.g.edge_indices() {
            let (from, to) = self.g.edge_endpoints(ex).expect("an edge the graph lists");
            all[fill[to.index()]] = Arrival {
                key: keys[from.index()],
                ..self.bare_arrival(from, ex)
            };
            fill[to.index()] += 1;
        }
        drop((fill, keys));
        // Only now that every node's arrivals are counted is it known who is depended on.
        let depended_on: Vec<bool> = (0..n).map(|i| start[i + 1] > start[i]).collect();
        for a in &mut all {
            a.from_depended_on = depended_on.get(a.from.index()).copied().unwrap_or(false);
        }
        let of = |i: usize| &all[start[i]..start[i + 1]];
        self.walk.parallel = parallel_edges((0..n).map(of));
        self.walk.lists.clear();
        self.walk.packed = Packed::pack(n, |i| At::Live(of(i)), self.g.edge_bound());
        self.mark_looping(self.loops());
        self.walk.loops_unknown = false;
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
            .filter(|e| e.weight().depends_on())
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
                if e.weight().depends_on() && seen.insert(e.target()) {
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
        let e = self.compact(e);
        let last_seen = stamp(e.last_seen());
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
        // Found among the dependent's own edges, which are few: the arrivals at `to` are a
        // hub's hundreds of thousands.
        let twins: Vec<EdgeIndex> = self
            .g
            .edges_connecting(from, to)
            .map(|e| e.id())
            .filter(|&e| e != ex)
            .collect();
        if !twins.is_empty() {
            self.walk.parallel.extend(twins);
            self.walk.parallel.insert(ex);
        }
        let arrival = self.arrival(from, ex);
        let first = !self.depended_on(to);
        self.arrivals_change(to);
        self.walk.list_mut(to).push(arrival);
        if first {
            self.refresh_arrivals_from(to);
        }
        if self.g[ex].depends_on() {
            self.note_dependency(from, to);
        }
        Ok(())
    }

    pub fn remove_edge(&mut self, id: EdgeId) {
        let Some(ex) = self.edges.remove(&id) else {
            return;
        };
        let place = self.g.edge_endpoints(ex).and_then(|(_, to)| {
            let at = self.walk.at(to).iter().position(|a| a.edge == ex)?;
            Some((to, at))
        });
        if let Some((to, at)) = place {
            self.arrivals_change(to);
            let arrivals = self.walk.lists.entry(to).or_default();
            let gone = arrivals.remove(at);
            let last = arrivals.is_empty();
            if self.walk.parallel.remove(&ex) {
                let mut twins = arrivals.as_slice().iter().filter(|a| a.from == gone.from);
                if let (Some(last), None) = (twins.next(), twins.next()) {
                    self.walk.parallel.remove(&last.edge);
                }
            }
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
        let ix = self
            .consumer_names
            .get(name, |n| consumer_name(&self.g, n))?;
        match &self.g[ix] {
            Node::Consumer(id, _) => Some(*id),
            _ => None,
        }
    }

    pub fn consumer(&self, id: ConsumerId) -> Option<&Consumer> {
        match self.consumers.get(&id).map(|&ix| &self.g[ix]) {
            Some(Node::Consumer(_, c)) => Some(c.as_ref()),
            _ => None,
        }
    }

    pub fn model_id(&self, name: &str) -> Option<ModelId> {
        let ix = self.model_names.get(name, |n| model_name(&self.g, n))?;
        match &self.g[ix] {
            Node::Model { id, .. } => Some(*id),
            _ => None,
        }
    }

    pub fn model(&self, id: ModelId) -> Option<ModelInfo> {
        self.model_info(*self.models.get(&id)?)
    }

    /// The model at `ix`, as the rest of the service sees it.
    fn model_info(&self, ix: NodeIndex) -> Option<ModelInfo> {
        match self.g.node_weight(ix)? {
            Node::Model { id, name, team } => Some(ModelInfo {
                id: *id,
                name: name.clone(),
                owner_team: TeamName::clone(self.model_teams.get(*team)?),
            }),
            _ => None,
        }
    }

    /// The name of a version's model, `ix` the model node the version's names: models
    /// are never removed, and a node never changes kind.
    fn version_model_name(&self, ix: NodeIndex) -> &ModelName {
        match &self.g[ix] {
            Node::Model { name, .. } => name,
            _ => unreachable!("a version's model node is a model"),
        }
    }

    pub fn version_id(&self, model: ModelId, version: Version) -> Option<VersionId> {
        self.model_versions.get(&model)?.get(version)
    }

    pub fn version(&self, id: VersionId) -> Option<VersionInfo> {
        self.version_info(*self.versions.get(&id)?)
    }

    /// The version at `ix`, as the rest of the service sees it.
    fn version_info(&self, ix: NodeIndex) -> Option<VersionInfo> {
        match self.g.node_weight(ix)? {
            Node::Version { id, model, version } => match self.g.node_weight(*model)? {
                Node::Model {
                    id: model_id, name, ..
                } => Some(VersionInfo {
                    id: *id,
                    model: *model_id,
                    model_name: name.clone(),
                    version: *version,
                }),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn edge(&self, id: EdgeId) -> Option<EdgeRecord> {
        self.edges.get(&id).and_then(|&ex| self.record(ex))
    }

    /// Every edge at a consumer, either way, for listing.
    pub fn edges_of_consumer(&self, id: ConsumerId) -> Vec<EdgeRecord> {
        let Some(&ix) = self.consumers.get(&id) else {
            return Vec::new();
        };
        let mut out: Vec<EdgeRecord> = self
            .g
            .edges_directed(ix, Direction::Outgoing)
            .chain(self.g.edges_directed(ix, Direction::Incoming))
            .filter_map(|e| self.record(e.id()))
            .collect();
        out.sort_by_key(|e| e.id);
        out
    }

    /// An edge as the graph is told it: its link's ranges and origin's name numbered.
    fn compact(&mut self, e: EdgeRecord) -> Edge {
        let (kind, range) = match &e.link {
            Link::Uses { range, .. } => (Kind::Uses, self.ranges.number(range.as_str(), range)),
            Link::DerivedFrom { derivation, .. } => (Kind::DerivedFrom(*derivation), NO_RANGE),
            Link::DependsOn { .. } => (Kind::DependsOn, NO_RANGE),
        };
        let origin_name = self.origins.number(&e.origin_name, &e.origin_name);
        Edge::new(
            e.id,
            kind,
            range,
            e.origin,
            origin_name,
            e.first_seen,
            e.last_seen,
            e.observations,
        )
    }

    /// The row an edge holds, as it was told: its link's ids read from its two ends.
    fn record(&self, ex: EdgeIndex) -> Option<EdgeRecord> {
        let e = self.g.edge_weight(ex)?;
        let (from, to) = self.g.edge_endpoints(ex)?;
        let link = match (e.kind, &self.g[from], &self.g[to]) {
            (Kind::Uses, Node::Consumer(consumer, _), Node::Model { id, .. }) => Link::Uses {
                consumer: *consumer,
                model: *id,
                range: Arc::clone(self.ranges.get(e.range)?),
            },
            (
                Kind::DerivedFrom(derivation),
                Node::Version { id: version, .. },
                Node::Version { id: parent, .. },
            ) => Link::DerivedFrom {
                version: *version,
                parent: *parent,
                derivation,
            },
            (Kind::DependsOn, Node::Consumer(consumer, _), Node::Consumer(target, _)) => {
                Link::DependsOn {
                    consumer: *consumer,
                    target: *target,
                }
            }
            _ => return None,
        };
        Some(EdgeRecord {
            id: e.id,
            link,
            origin: e.origin,
            origin_name: Arc::clone(self.origins.get(e.origin_name)?),
            first_seen: e.first_seen(),
            last_seen: e.last_seen(),
            observations: e.observations(),
        })
    }

    /// All consumers, ordered by name.
    pub fn consumers(&self) -> Vec<(ConsumerId, &Consumer)> {
        let mut out: Vec<(ConsumerId, &Consumer)> = self
            .consumers
            .iter()
            .filter_map(|(id, ix)| match &self.g[ix] {
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
        for (id, ix) in self.consumers.iter() {
            if let Node::Consumer(_, c) = &self.g[ix] {
                s.consumers.insert(id, Consumer::clone(c));
            }
        }
        for (id, ix) in self.models.iter() {
            if let Some(m) = self.model_info(ix) {
                s.models.insert(id, m);
            }
        }
        for (id, ix) in self.versions.iter() {
            if let Some(v) = self.version_info(ix) {
                s.versions.insert(id, v);
            }
        }
        for (id, ex) in self.edges.iter() {
            if let (Some((a, b)), Some(e)) = (self.g.edge_endpoints(ex), self.record(ex)) {
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
            && self
                .walk
                .looping
                .iter()
                .all(|&ex| self.g.edge_weight(ex).is_some_and(Edge::depends_on));
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
        // A list is kept for unpacked nodes alone, and none for a node the graph lacks.
        if self.walk.lists.iter().any(|(&ix, list)| {
            self.walk.packed.span(ix).is_packed() || (ix.index() >= bound && !list.is_empty())
        }) {
            return false;
        }
        (0..bound).all(|i| {
            let ix = NodeIndex::new(i);
            let kept = self.walk.at(ix);
            let expected: Vec<Arrival> = if self.g.contains_node(ix) {
                self.g
                    .edges_directed(ix, Direction::Incoming)
                    .map(|e| Arrival {
                        from: e.source(),
                        edge: e.id(),
                        // An edge whose range does not fit its kind gets a number no
                        // arrival holds, so the comparison fails.
                        range: if e.weight().range_fits_kind()
                            && (e.weight().range == NO_RANGE
                                || self.ranges.get(e.weight().range).is_some())
                        {
                            e.weight().range
                        } else {
                            NO_RANGE - 1
                        },
                        from_depended_on: self
                            .g
                            .edges_directed(e.source(), Direction::Incoming)
                            .next()
                            .is_some(),
                        looping: self.walk.looping.contains(&e.id()),
                        last_seen: stamp(e.weight().last_seen()),
                        key: self.key_of(e.source()),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            kept.iter().rev().eq(expected.iter().copied())
        }) && self.walk.packed.consistent()
    }

    fn node_label(&self, ix: NodeIndex) -> String {
        match &self.g[ix] {
            Node::Consumer(id, _) => format!("consumer:{id}"),
            Node::Model { id, .. } => format!("model:{id}"),
            Node::Version { id, .. } => format!("version:{id}"),
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
