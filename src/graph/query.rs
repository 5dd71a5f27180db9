//! Questions to the graph: who depends on a model version (`dependents`), what a
//! consumer depends on (`dependencies`), and a summary of a retirement's reach (`impact`).
//!
//! Both walks are breadth-first, so each node is reached by a shortest path, which is the
//! path shown to explain it. A node is visited once, so cycles cannot loop; cycles among
//! the consumers reached are found afterwards (Tarjan) and reported. Answers are honest
//! about what they leave out: nodes beyond the depth limit and beyond the size limit are
//! counted, and an answer that leaves anything out says it is not complete.

use super::{EdgeRecord, InventoryGraph, Link, Node};
use crate::domain::{Consumer, ConsumerName, Derivation, EdgeKind, EdgeOrigin, ModelName, Version};
use chrono::{DateTime, Duration, Utc};
use petgraph::Direction;
use petgraph::stable_graph::{EdgeIndex, NodeIndex};
use petgraph::visit::{EdgeRef, NodeIndexable};
use std::collections::BTreeMap;

/// Maps keyed by node or edge index, hashed fast: a hub question visits tens of thousands.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// How to walk. `limit` bounds the nodes returned, `max_depth` the edges followed.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    pub transitive: bool,
    pub max_depth: u32,
    pub include_stale: bool,
    pub limit: usize,
    pub now: DateTime<Utc>,
    pub stale_after: Duration,
}

impl Query {
    /// Every node reachable, stale edges included, none returned: the walk behind
    /// reachability, change fan-out and impact, which count or test rather than list.
    /// `now` and `stale_after` only decide which edges are reported stale.
    fn everything(now: DateTime<Utc>, stale_after: Duration) -> Self {
        Self {
            transitive: true,
            max_depth: u32::MAX,
            include_stale: true,
            limit: 0,
            now,
            stale_after,
        }
    }
}

/// A node an answer reaches.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Consumer(Consumer),
    Version { model: ModelName, version: Version },
}

impl Target {
    pub fn label(&self) -> String {
        match self {
            Target::Consumer(c) => c.name.to_string(),
            Target::Version { model, version } => format!("{model}@{version}"),
        }
    }
}

/// One origin's evidence of a link.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub origin: EdgeOrigin,
    pub origin_name: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub observations: u64,
    pub stale: bool,
}

/// One edge of an explaining path, from the dependent to what it depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub kind: EdgeKind,
    pub from: String,
    pub to: String,
    /// For `uses`: the version or range the consumer declared or was seen using.
    pub range: Option<String>,
    pub derivation: Option<Derivation>,
    pub evidence: Vec<Evidence>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reached {
    pub target: Target,
    /// Edges between the node asked about and this one.
    pub depth: u32,
    /// The shortest explaining path, read from the dependent towards the dependency.
    pub path: Vec<Step>,
}

/// Consumers that depend on one another in a circle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    pub consumers: Vec<ConsumerName>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The inventory revision the answer was computed on.
    pub revision: i64,
    /// Ordered by depth, then consumers before versions, then name.
    pub reached: Vec<Reached>,
    /// Nodes within the depth limit; `reached` holds the first `limit` of them.
    pub total: usize,
    /// Of `total`, the consumers (the rest are derived model versions).
    pub consumers_total: usize,
    /// Nodes that exist beyond the depth limit.
    pub omitted_by_depth: usize,
    /// Nodes within the depth limit left out by the size limit.
    pub omitted_by_limit: usize,
    /// Edges not followed because they are stale and stale edges were not asked for.
    pub stale_edges_skipped: usize,
    pub cycles: Vec<Cycle>,
}

impl Answer {
    /// Whether nothing was left out. Stale edges skipped on request do not make an
    /// answer incomplete: they are what was asked for, and counted.
    pub fn complete(&self) -> bool {
        self.omitted_by_depth == 0 && self.omitted_by_limit == 0
    }
}

/// Counts by one attribute, ordered by key.
pub type Counts = BTreeMap<String, usize>;

#[derive(Debug, Clone, PartialEq)]
pub struct Impact {
    pub revision: i64,
    pub direct: usize,
    pub total: usize,
    pub derived_versions: usize,
    pub by_team: Counts,
    pub by_environment: Counts,
    pub by_kind: Counts,
    /// Consumers with traffic observed (scan or download) within `active_days`.
    pub active: usize,
    pub active_days: u32,
    pub stale_edges: usize,
    pub cycles: Vec<Cycle>,
}

/// Where [`InventoryGraph::upstream_models`] starts.
#[derive(Debug, Clone, Copy)]
pub enum Upstream {
    Consumer(super::ConsumerId),
    Version(super::VersionId),
    Model(super::ModelId),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// Against the edges: from a model version to whoever depends on it.
    Dependents,
    /// Along the edges: from a consumer to what it depends on.
    Dependencies,
}

/// One node a walk reached.
#[derive(Clone, Copy)]
struct Visit {
    ix: NodeIndex,
    depth: u32,
    /// The node this one was reached from, and the edge between them.
    via: Option<(NodeIndex, EdgeIndex)>,
    /// Known from the edge that reached it, so counting consumers reads no node.
    consumer: bool,
}

/// The nodes a walk reached, in the order reached (so by depth), with a dense index from
/// node to visit. A hub question reaches tens of thousands of nodes; slots in a vector
/// beat a hash map there, and the vector is kept per thread and cleared by what was
/// visited, so a small question does not pay for the size of the graph.
struct Visits {
    order: Vec<Visit>,
    /// Per node index: its position in `order` plus one, or 0.
    slot: Vec<u32>,
}

thread_local! {
    static SLOTS: std::cell::Cell<Vec<u32>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Visits {
    fn new(node_bound: usize) -> Self {
        let mut slot = SLOTS.with(|s| s.take());
        if slot.len() < node_bound {
            slot.resize(node_bound, 0);
        }
        Self {
            order: Vec::new(),
            slot,
        }
    }

    fn get(&self, ix: NodeIndex) -> Option<&Visit> {
        match self.slot.get(ix.index()).copied().unwrap_or(0) {
            0 => None,
            n => self.order.get(n as usize - 1),
        }
    }

    fn contains(&self, ix: NodeIndex) -> bool {
        self.slot.get(ix.index()).is_some_and(|&n| n != 0)
    }

    /// Adds `v` unless its node was reached already; says whether it was added.
    fn insert(&mut self, v: Visit) -> bool {
        let i = v.ix.index();
        if i >= self.slot.len() {
            self.slot.resize(i + 1, 0);
        }
        if self.slot[i] != 0 {
            return false;
        }
        self.order.push(v);
        self.slot[i] = u32::try_from(self.order.len()).unwrap_or(u32::MAX);
        true
    }

    fn iter(&self) -> std::slice::Iter<'_, Visit> {
        self.order.iter()
    }
}

impl Drop for Visits {
    fn drop(&mut self) {
        for v in &self.order {
            if let Some(s) = self.slot.get_mut(v.ix.index()) {
                *s = 0;
            }
        }
        let slot = std::mem::take(&mut self.slot);
        SLOTS.with(|s| s.set(slot));
    }
}

impl InventoryGraph {
    /// Who depends on `version`, `None` when the graph does not hold that version.
    pub fn dependents(&self, version: super::VersionId, q: &Query) -> Option<Answer> {
        let start = *self.versions.get(&version)?;
        Some(self.walk(start, Walk::Dependents, q))
    }

    /// What `consumer` depends on, `None` when the graph does not hold that consumer.
    pub fn dependencies(&self, consumer: super::ConsumerId, q: &Query) -> Option<Answer> {
        let start = *self.consumers.get(&consumer)?;
        Some(self.walk(start, Walk::Dependencies, q))
    }

    /// An answer, and every link among its nodes and the node asked about, as
    /// `(dependent, dependency)` labels: what a bill of materials lists.
    pub fn answer_with_links(
        &self,
        start: Upstream,
        dependents: bool,
        q: &Query,
    ) -> Option<(Answer, Vec<(String, String)>)> {
        let start = match start {
            Upstream::Consumer(id) => *self.consumers.get(&id)?,
            Upstream::Version(id) => *self.versions.get(&id)?,
            Upstream::Model(_) => return None,
        };
        let walk = if dependents {
            Walk::Dependents
        } else {
            Walk::Dependencies
        };
        let (answer, returned) = self.walk_nodes(start, walk, q);
        let mut set: HashSet<NodeIndex> = returned.into_iter().collect();
        set.insert(start);
        let mut links = Vec::new();
        let mut next = Vec::new();
        for &ix in &set {
            next.clear();
            self.neighbours(ix, Walk::Dependencies, &mut next);
            for &(ex, to) in &next {
                let followed = q.include_stale || !self.g[ex].is_stale(q.now, q.stale_after);
                if followed && set.contains(&to) {
                    links.push((self.label(ix), self.label(to)));
                }
            }
        }
        links.sort();
        links.dedup();
        Some((answer, links))
    }

    /// Whether `version` was made, directly or through others, from `ancestor`.
    pub fn derives_from(&self, version: super::VersionId, ancestor: super::VersionId) -> bool {
        let (Some(&from), Some(&to)) = (self.versions.get(&version), self.versions.get(&ancestor))
        else {
            return false;
        };
        let q = Query::everything(DateTime::<Utc>::MIN_UTC, Duration::zero());
        // Walking dependencies from a version follows only `derived_from` edges.
        self.traverse(from, Walk::Dependencies, &q).0.contains(to)
    }

    /// The models whose `dependents` answers a change at this consumer or version can
    /// alter: every model version it reaches along its dependencies, and its own.
    pub fn upstream_models(&self, from: Upstream) -> std::collections::BTreeSet<ModelName> {
        let start = match from {
            Upstream::Consumer(id) => self.consumers.get(&id),
            Upstream::Version(id) => self.versions.get(&id),
            Upstream::Model(id) => {
                return self.model(id).map(|m| m.name.clone()).into_iter().collect();
            }
        };
        let Some(&start) = start else {
            return Default::default();
        };
        let q = Query::everything(DateTime::<Utc>::MIN_UTC, Duration::zero());
        let (visits, _, _) = self.traverse(start, Walk::Dependencies, &q);
        visits
            .iter()
            .filter_map(|v| match &self.g[v.ix] {
                Node::Version(v) => Some(v.model_name.clone()),
                _ => None,
            })
            .collect()
    }

    /// A summary of everyone a version's retirement would reach, stale edges included:
    /// counting them is safer than forgetting them.
    pub fn impact(
        &self,
        version: super::VersionId,
        now: DateTime<Utc>,
        stale_after: Duration,
        active_days: u32,
    ) -> Option<Impact> {
        let start = *self.versions.get(&version)?;
        let q = Query::everything(now, stale_after);
        let (visits, stale_skipped, cycles) = self.traverse(start, Walk::Dependents, &q);
        let since = now - Duration::days(i64::from(active_days));
        let mut impact = Impact {
            revision: self.revision,
            direct: 0,
            total: 0,
            derived_versions: 0,
            by_team: Counts::new(),
            by_environment: Counts::new(),
            by_kind: Counts::new(),
            active: 0,
            active_days,
            stale_edges: stale_skipped,
            cycles,
        };
        let mut stale = HashSet::default();
        for visit in visits.iter() {
            let ix = visit.ix;
            if ix == start {
                continue;
            }
            if let Some((_, ex)) = visit.via
                && self.g[ex].is_stale(now, stale_after)
            {
                stale.insert(ex);
            }
            match &self.g[ix] {
                Node::Consumer(_, c) => {
                    impact.total += 1;
                    if visit.depth == 1 {
                        impact.direct += 1;
                    }
                    *impact.by_team.entry(c.owner_team.to_string()).or_default() += 1;
                    *impact
                        .by_environment
                        .entry(c.environment.to_string())
                        .or_default() += 1;
                    *impact.by_kind.entry(c.kind.to_string()).or_default() += 1;
                    let observed = self
                        .g
                        .edges_directed(ix, Direction::Outgoing)
                        .any(|e| !e.weight().origin.is_declared() && e.weight().last_seen >= since);
                    if observed {
                        impact.active += 1;
                    }
                }
                Node::Version(_) => impact.derived_versions += 1,
                Node::Model(_) => {}
            }
        }
        impact.stale_edges = stale.len();
        Some(impact)
    }

    fn walk(&self, start: NodeIndex, walk: Walk, q: &Query) -> Answer {
        self.walk_nodes(start, walk, q).0
    }

    /// The answer, and the nodes it returns (without `start`).
    fn walk_nodes(&self, start: NodeIndex, walk: Walk, q: &Query) -> (Answer, Vec<NodeIndex>) {
        let (visits, stale_edges_skipped, cycles) = self.traverse(start, walk, q);
        // Visits come in the order reached, so by depth; the first is `start`.
        let reached_all = &visits.order[1..];
        let within = &reached_all[..reached_all.partition_point(|v| v.depth <= q.max_depth)];
        let omitted_by_depth = reached_all.len() - within.len();
        let consumers_total = within.iter().filter(|v| v.consumer).count();
        let total = within.len();
        let returned = total.min(q.limit);
        // The first `returned` by depth and then name: every depth before the one the cut
        // falls in, and the first of that one. Only those nodes are read for their names.
        let mut chosen: Vec<(u32, (u8, &str, Version), NodeIndex)> = Vec::with_capacity(returned);
        if returned > 0 {
            let keyed = |v: &Visit| (v.depth, self.order_key(v.ix), v.ix);
            let cut_depth = within[returned - 1].depth;
            let before = within.partition_point(|v| v.depth < cut_depth);
            let end = within.partition_point(|v| v.depth <= cut_depth);
            chosen.extend(within[..before].iter().map(keyed));
            let mut bucket: Vec<_> = within[before..end].iter().map(keyed).collect();
            let need = returned - before;
            if need < bucket.len() {
                bucket.select_nth_unstable(need - 1);
                bucket.truncate(need);
            }
            chosen.extend(bucket);
            chosen.sort_unstable();
        }
        let reached = chosen
            .iter()
            .map(|&(depth, _, ix)| Reached {
                target: self.target(ix),
                depth,
                path: self.path(ix, &visits, walk, q),
            })
            .collect();
        let answer = Answer {
            revision: self.revision,
            reached,
            total,
            consumers_total,
            omitted_by_depth,
            omitted_by_limit: total - returned,
            stale_edges_skipped,
            cycles,
        };
        (answer, chosen.iter().map(|w| w.2).collect())
    }

    /// Breadth-first from `start`. Nodes beyond `max_depth` are still visited (and
    /// counted by the caller) so an answer can say how much a depth limit left out;
    /// a non-transitive question stops at depth one.
    fn traverse(&self, start: NodeIndex, walk: Walk, q: &Query) -> (Visits, usize, Vec<Cycle>) {
        let mut visits = Visits::new(self.g.node_bound());
        visits.insert(Visit {
            ix: start,
            depth: 0,
            via: None,
            consumer: matches!(self.g[start], Node::Consumer(..)),
        });
        let mut stale_skipped: HashSet<EdgeIndex> = HashSet::default();
        // Followed `depends_on` links, as (dependent, dependency): every one among the
        // nodes reached is met on the way when the walk is transitive, so cycles need no
        // second pass over the consumers' edges.
        let mut links: Vec<(NodeIndex, NodeIndex)> = Vec::new();
        let mut next: Vec<(EdgeIndex, NodeIndex)> = Vec::new();
        let mut at = 0;
        while let Some(&Visit { ix, depth, .. }) = visits.order.get(at) {
            at += 1;
            if !q.transitive && depth >= 1 {
                continue;
            }
            next.clear();
            self.neighbours(ix, walk, &mut next);
            for &(ex, to) in &next {
                let edge = &self.g[ex];
                if !q.include_stale && edge.is_stale(q.now, q.stale_after) {
                    stale_skipped.insert(ex);
                    continue;
                }
                let (consumer, depends_on) = match (&edge.link, walk) {
                    (Link::DependsOn { .. }, Walk::Dependents) => (true, Some((to, ix))),
                    (Link::DependsOn { .. }, Walk::Dependencies) => (true, Some((ix, to))),
                    (Link::Uses { .. }, Walk::Dependents) => (true, None),
                    (Link::Uses { .. } | Link::DerivedFrom { .. }, _) => (false, None),
                };
                if let Some(link) = depends_on {
                    links.push(link);
                }
                visits.insert(Visit {
                    ix: to,
                    depth: depth + 1,
                    via: Some((ix, ex)),
                    consumer,
                });
            }
        }
        if !q.transitive {
            // Links between nodes at depth one were not walked; look them up.
            links = self.links_among(&visits, q);
        }
        let cycles = self.cycles(&visits, links);
        (visits, stale_skipped.len(), cycles)
    }

    /// The nodes one step from `ix`, with the edge that leads there.
    fn neighbours(&self, ix: NodeIndex, walk: Walk, out: &mut Vec<(EdgeIndex, NodeIndex)>) {
        match (walk, &self.g[ix]) {
            (Walk::Dependents, Node::Version(v)) => {
                if let Some(&model) = self.models.get(&v.model) {
                    for e in self.g.edges_directed(model, Direction::Incoming) {
                        if let Link::Uses { range, .. } = &e.weight().link
                            && range.matches(v.version)
                        {
                            out.push((e.id(), e.source()));
                        }
                    }
                }
                for e in self.g.edges_directed(ix, Direction::Incoming) {
                    if matches!(e.weight().link, Link::DerivedFrom { .. }) {
                        out.push((e.id(), e.source()));
                    }
                }
            }
            (Walk::Dependents, Node::Consumer(..)) => {
                for e in self.g.edges_directed(ix, Direction::Incoming) {
                    if matches!(e.weight().link, Link::DependsOn { .. }) {
                        out.push((e.id(), e.source()));
                    }
                }
            }
            (Walk::Dependencies, Node::Consumer(..)) => {
                for e in self.g.edges_directed(ix, Direction::Outgoing) {
                    match &e.weight().link {
                        Link::DependsOn { .. } => out.push((e.id(), e.target())),
                        Link::Uses { model, range, .. } => {
                            for (&version, id) in
                                self.model_versions.get(model).into_iter().flatten()
                            {
                                if range.matches(version)
                                    && let Some(&vx) = self.versions.get(id)
                                {
                                    out.push((e.id(), vx));
                                }
                            }
                        }
                        Link::DerivedFrom { .. } => {}
                    }
                }
            }
            (Walk::Dependencies, Node::Version(_)) => {
                for e in self.g.edges_directed(ix, Direction::Outgoing) {
                    if matches!(e.weight().link, Link::DerivedFrom { .. }) {
                        out.push((e.id(), e.target()));
                    }
                }
            }
            (_, Node::Model(_)) => {}
        }
    }

    /// Followed `depends_on` links among the consumers visited.
    fn links_among(&self, visits: &Visits, q: &Query) -> Vec<(NodeIndex, NodeIndex)> {
        let mut links = Vec::new();
        for v in visits.iter().filter(|v| v.consumer) {
            for e in self.g.edges_directed(v.ix, Direction::Outgoing) {
                let followed = q.include_stale || !e.weight().is_stale(q.now, q.stale_after);
                if matches!(e.weight().link, Link::DependsOn { .. })
                    && followed
                    && visits.contains(e.target())
                {
                    links.push((v.ix, e.target()));
                }
            }
        }
        links
    }

    /// Circles among `links` (dependent, dependency) between consumers the walk reached.
    fn cycles(&self, visits: &Visits, links: Vec<(NodeIndex, NodeIndex)>) -> Vec<Cycle> {
        if links.is_empty() {
            return Vec::new();
        }
        // Each node is known by its place in the walk, which makes every table below dense.
        let n = visits.order.len();
        let place = |ix: NodeIndex| visits.slot[ix.index()] as usize - 1;
        let pairs: Vec<(usize, usize)> = links.iter().map(|&(a, b)| (place(a), place(b))).collect();
        // Only a consumer with links both in and out can be on a circle. Peeling off the
        // others one by one, each freeing its neighbours, leaves the (usually tiny) part
        // worth Tarjan's time, in time linear in the links.
        let outs = Adjacency::new(n, pairs.iter().copied());
        let ins = Adjacency::new(n, pairs.iter().map(|&(a, b)| (b, a)));
        let mut out_degree: Vec<u32> = (0..n).map(|i| outs.of(i).len() as u32).collect();
        let mut in_degree: Vec<u32> = (0..n).map(|i| ins.of(i).len() as u32).collect();
        let mut gone = vec![false; n];
        let mut peel: Vec<usize> = pairs
            .iter()
            .flat_map(|&(a, b)| [a, b])
            .filter(|&i| out_degree[i] == 0 || in_degree[i] == 0)
            .collect();
        while let Some(i) = peel.pop() {
            if std::mem::replace(&mut gone[i], true) {
                continue;
            }
            for &m in outs.of(i) {
                let m = m as usize;
                in_degree[m] -= 1;
                if in_degree[m] == 0 && !gone[m] {
                    peel.push(m);
                }
            }
            for &m in ins.of(i) {
                let m = m as usize;
                out_degree[m] -= 1;
                if out_degree[m] == 0 && !gone[m] {
                    peel.push(m);
                }
            }
        }
        let mut sub: petgraph::Graph<NodeIndex, ()> = petgraph::Graph::new();
        let mut local: HashMap<usize, petgraph::graph::NodeIndex> = HashMap::default();
        for &(a, b) in pairs.iter().filter(|&&(a, b)| !gone[a] && !gone[b]) {
            let la = *local
                .entry(a)
                .or_insert_with(|| sub.add_node(visits.order[a].ix));
            let lb = *local
                .entry(b)
                .or_insert_with(|| sub.add_node(visits.order[b].ix));
            sub.add_edge(la, lb, ());
        }
        let mut cycles: Vec<Cycle> = petgraph::algo::tarjan_scc(&sub)
            .into_iter()
            .filter(|scc| scc.len() > 1)
            .map(|scc| {
                let mut consumers: Vec<ConsumerName> = scc
                    .into_iter()
                    .filter_map(|l| match &self.g[sub[l]] {
                        Node::Consumer(_, c) => Some(c.name.clone()),
                        _ => None,
                    })
                    .collect();
                consumers.sort();
                Cycle { consumers }
            })
            .collect();
        cycles.sort_by(|a, b| a.consumers.cmp(&b.consumers));
        cycles
    }

    fn label(&self, ix: NodeIndex) -> String {
        match &self.g[ix] {
            Node::Consumer(_, c) => c.name.to_string(),
            Node::Version(v) => format!("{}@{}", v.model_name, v.version),
            Node::Model(m) => m.name.to_string(),
        }
    }

    /// Orders nodes as answers list them: consumers by name, then versions by model and
    /// version; without building labels.
    fn order_key(&self, ix: NodeIndex) -> (u8, &str, Version) {
        match &self.g[ix] {
            Node::Consumer(_, c) => (0, c.name.as_str(), Version::new(0, 0, 0)),
            Node::Version(v) => (1, v.model_name.as_str(), v.version),
            Node::Model(m) => (2, m.name.as_str(), Version::new(0, 0, 0)),
        }
    }

    fn target(&self, ix: NodeIndex) -> Target {
        match &self.g[ix] {
            Node::Consumer(_, c) => Target::Consumer(c.clone()),
            Node::Version(v) => Target::Version {
                model: v.model_name.clone(),
                version: v.version,
            },
            Node::Model(m) => Target::Version {
                model: m.name.clone(),
                version: Version::new(0, 0, 0),
            },
        }
    }

    /// The path that explains `ix`, from the dependent towards the dependency.
    fn path(&self, ix: NodeIndex, visits: &Visits, walk: Walk, q: &Query) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut at = ix;
        while let Some((prev, ex)) = visits.get(at).and_then(|v| v.via) {
            // Walking dependents, `at` depends on `prev`; walking dependencies, the reverse.
            let (from, to) = match walk {
                Walk::Dependents => (at, prev),
                Walk::Dependencies => (prev, at),
            };
            steps.push(self.step(from, to, ex, q));
            at = prev;
        }
        if walk == Walk::Dependencies {
            steps.reverse();
        }
        steps
    }

    fn step(&self, from: NodeIndex, to: NodeIndex, ex: EdgeIndex, q: &Query) -> Step {
        let chosen = &self.g[ex];
        let (a, b) = self.g.edge_endpoints(ex).unwrap_or((from, to));
        let mut evidence: Vec<Evidence> = self
            .g
            .edges_connecting(a, b)
            .map(|e| e.weight())
            .filter(|e| same_link(&e.link, &chosen.link))
            .map(|e| evidence(e, q))
            .filter(|e| q.include_stale || !e.stale)
            .collect();
        evidence.sort_by(|x, y| (x.origin, &x.origin_name).cmp(&(y.origin, &y.origin_name)));
        let (range, derivation) = match &chosen.link {
            Link::Uses { range, .. } => (Some(range.to_string()), None),
            Link::DerivedFrom { derivation, .. } => (None, Some(*derivation)),
            Link::DependsOn { .. } => (None, None),
        };
        Step {
            kind: chosen.link.kind(),
            from: self.label(from),
            to: self.label(to),
            range,
            derivation,
            evidence,
        }
    }
}

/// Links grouped by the node they leave, as offsets into one list (compressed rows).
struct Adjacency {
    start: Vec<u32>,
    to: Vec<u32>,
}

impl Adjacency {
    fn new(n: usize, pairs: impl Iterator<Item = (usize, usize)> + Clone) -> Self {
        let mut start = vec![0u32; n + 1];
        for (a, _) in pairs.clone() {
            start[a + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut to = vec![0u32; start[n] as usize];
        for (a, b) in pairs {
            to[fill[a] as usize] = b as u32;
            fill[a] += 1;
        }
        Self { start, to }
    }

    fn of(&self, i: usize) -> &[u32] {
        &self.to[self.start[i] as usize..self.start[i + 1] as usize]
    }
}

/// Whether two edges record one link (what [`Link::key`] says, without formatting it).
fn same_link(a: &Link, b: &Link) -> bool {
    match (a, b) {
        (Link::Uses { range: x, .. }, Link::Uses { range: y, .. }) => {
            std::sync::Arc::ptr_eq(x, y) || x.as_str() == y.as_str()
        }
        (Link::DerivedFrom { .. }, Link::DerivedFrom { .. })
        | (Link::DependsOn { .. }, Link::DependsOn { .. }) => true,
        _ => false,
    }
}

fn evidence(e: &EdgeRecord, q: &Query) -> Evidence {
    Evidence {
        origin: e.origin,
        origin_name: e.origin_name.to_string(),
        first_seen: e.first_seen,
        last_seen: e.last_seen,
        observations: e.observations,
        stale: e.is_stale(q.now, q.stale_after),
    }
}
